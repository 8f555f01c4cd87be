//! A gateway in front of a real catalog-store (SQLite, loaded with the shared examples, served
//! over gRPC on loopback) and the in-process bus, on a free loopback port.

#![allow(dead_code)]

#[path = "../../../catalog-store/tests/common/mod.rs"]
mod store_common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::memory::InProcessBus;
use cadastre_bus::subjects::HARVESTER;
use cadastre_bus::{Bus, Consumer};
use cadastre_gateway::{Gateway, Settings};
use cadastre_proto::transport::remote;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tonic::transport::Channel;

pub struct Running {
    /// `http://127.0.0.1:PORT/api/catalog`.
    pub base: String,
    pub http: reqwest::Client,
    /// Harvest requests the gateway published.
    pub harvests: Box<dyn Consumer>,
    /// The store behind the gateway, for arranging what a test needs.
    pub store: cadastre_catalog_store::CatalogStore,
    /// The gateway's entity cache, when started with one.
    pub entity_cache: Option<Arc<cadastre_gateway::entity_cache::EntityCache>>,
    _search_dir: tempfile::TempDir,
    _stop: tokio::sync::oneshot::Sender<()>,
    _harness: store_common::Harness,
}

/// A gateway open to every caller, as on a laptop's loopback.
/// The settings every test gateway starts from, unless it is given its own.
fn default_settings() -> Settings {
    Settings::default()
        .for_listen("127.0.0.1:7007".parse().unwrap())
        .unwrap()
}

pub async fn start() -> Running {
    start_with(default_settings()).await
}

pub async fn start_with(settings: Settings) -> Running {
    start_full(settings, false, false).await
}

/// [`start`], with the search service (tantivy, following the store) behind `/api/search`.
pub async fn start_with_search() -> Running {
    start_full(default_settings(), true, false).await
}

/// [`start`], with the gateway's entity cache following the store's change feed.
pub async fn start_with_entity_cache() -> Running {
    start_full(default_settings(), false, true).await
}

/// [`start`] on an empty store.
pub async fn start_empty() -> Running {
    start_on(
        store_common::sqlite().await,
        default_settings(),
        false,
        false,
    )
    .await
}

async fn start_full(settings: Settings, with_search: bool, entity_cache: bool) -> Running {
    let harness = store_common::sqlite().await;
    harness
        .store
        .apply_batch(store_common::examples_batch())
        .await
        .unwrap();
    start_on(harness, settings, with_search, entity_cache).await
}

async fn start_on(
    harness: store_common::Harness,
    settings: Settings,
    with_search: bool,
    entity_cache: bool,
) -> Running {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}", store_listener.local_addr().unwrap());
    let (store_stop, store_stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(cadastre_catalog_store::server::run(
        harness.store.clone(),
        store_listener,
        async move {
            let mut stopped = store_stopped;
            let _ = stopped.wait_for(|s| *s).await;
        },
        Duration::from_secs(1),
    ));
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let harvests = bus.consume(&HARVESTER).await.unwrap();
    let store_channel = remote(Channel::from_shared(store_url).unwrap().connect_lazy());
    let search_dir = tempfile::tempdir().unwrap();
    // Dry runs read locations with the harvester's and the processor's own code.
    let previewer = cadastre_gateway::preview::Previewer::new(
        Arc::new(
            cadastre_harvester::Harvester::new(cadastre_harvester::Settings {
                cache_dir: search_dir.path().join("harvester"),
                allow_local_repositories: true,
                ..cadastre_harvester::Settings::default()
            })
            .unwrap(),
        ),
        Arc::new(cadastre_processor::Processor::new(
            cadastre_model::Validator::default(),
            cadastre_processor::Settings::default(),
        )),
    );
    let mut gateway = Gateway::new(store_channel.clone(), bus, settings).with_previewer(previewer);
    if with_search {
        let backend: Arc<dyn cadastre_search::SearchBackend> = Arc::new(
            cadastre_search::tantivy::TantivyBackend::open(search_dir.path().join("index"))
                .unwrap(),
        );
        let indexer = cadastre_search::indexer::Indexer::new(Arc::clone(&backend), store_channel);
        let follower = Arc::clone(&indexer);
        tokio::spawn(async move { follower.follow(std::future::pending()).await });
        let search_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let search_url = format!("http://{}", search_listener.local_addr().unwrap());
        tokio::spawn(cadastre_search::server::run(
            cadastre_search::server::SearchGrpc::new(backend, Some(indexer)),
            search_listener,
            std::future::pending(),
            Duration::from_secs(1),
        ));
        gateway = gateway.with_search(remote(
            Channel::from_shared(search_url).unwrap().connect_lazy(),
        ));
    }
    if entity_cache {
        gateway = gateway.with_entity_cache(1_000, std::future::pending());
    }
    let entity_cache = gateway.entity_cache_handle();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/catalog", listener.local_addr().unwrap());
    tokio::spawn(cadastre_gateway::serve(
        gateway.router(),
        listener,
        async move {
            let _ = stopped.await;
            let _ = store_stop.send(true);
        },
    ));
    let _ = rustls::crypto::ring::default_provider().install_default();
    Running {
        base,
        http: reqwest::Client::new(),
        harvests,
        store: harness.store.clone(),
        entity_cache,
        _search_dir: search_dir,
        _stop: stop,
        _harness: harness,
    }
}

impl Running {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// `tests/<folder>` with its npm packages installed (`npm ci`, from its package-lock.json)
/// unless `node_modules/<package>` is there already (scripts/test installs them up front).
pub fn npm_project(folder: &str, package: &str) -> PathBuf {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(folder);
    if !project.join("node_modules").join(package).exists() {
        let install = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&project)
            .output()
            .expect("npm runs");
        assert!(
            install.status.success(),
            "npm ci failed:\n{}",
            String::from_utf8_lossy(&install.stderr)
        );
    }
    project
}

/// Runs `node <script> <args…>` in `project` (off the async runtime, so the gateway keeps
/// serving) and reads the one JSON report it prints; fails with its output when it fails.
pub async fn node_report(project: PathBuf, script: &str, args: Vec<String>) -> Value {
    let script = script.to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(&script)
            .args(&args)
            .current_dir(&project)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the node check failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap()
}
