//! One trace follows a push: gateway, harvester, processor, catalog-store and search run as
//! separate processes on a real NATS, each exporting spans over OTLP to a small collector in
//! this test; after a signed push webhook, one trace id holds spans from all five services.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Service, free_port, log_tails, wait_for_port};
use hmac::{Hmac, KeyInit, Mac};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::{Value, json};

const SECRET: &str = "trace-test-secret";

/// trace id (hex) → service name → span names.
type Traces = Arc<Mutex<BTreeMap<String, BTreeMap<String, BTreeSet<String>>>>>;

/// The collector: keeps who sent which span of which trace.
#[derive(Clone, Default)]
struct Collector {
    traces: Traces,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut traces = self.traces.lock().unwrap();
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| attribute.value.as_ref())
                .and_then(|value| match &value.value {
                    Some(
                        opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(name),
                    ) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans
                .scope_spans
                .iter()
                .flat_map(|scope| &scope.spans)
            {
                traces
                    .entry(hex::encode(&span.trace_id))
                    .or_default()
                    .entry(service.clone())
                    .or_default()
                    .insert(span.name.clone());
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn start(config: &Path, service: &str, otlp: &str, logs: &Path) -> Service {
    let log = std::fs::File::create(logs.join(format!("{service}.log"))).unwrap();
    Service(
        Command::new(env!("CARGO_BIN_EXE_cadastre"))
            .arg("--config")
            .arg(config)
            .arg(service)
            .env_remove("CADASTRE_BUS_NATS_URL")
            .env("RUST_LOG", "info,async_nats=warn")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp)
            // Export every 200 ms instead of every 5 s.
            .env("OTEL_BSP_SCHEDULE_DELAY", "200")
            .env("CADASTRE_GATEWAY_GITHUB_WEBHOOK_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start cadastre"),
    )
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn commit_description(repo: &Path, description: &str) -> String {
    std::fs::write(
        repo.join("catalog-info.yaml"),
        format!(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: traced\n  description: {description}\nspec:\n  type: service\n  lifecycle: production\n  owner: team-t\n"
        ),
    )
    .unwrap();
    cadastre_testkit::git(repo, &["add", "."]);
    cadastre_testkit::git(repo, &["commit", "-q", "-m", description]);
    cadastre_testkit::git(repo, &["rev-parse", "HEAD"])
}

async fn wait_for_description(http: &reqwest::Client, base: &str, description: &str, logs: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let response = http
            .get(format!(
                "{base}/api/catalog/entities/by-name/component/default/traced"
            ))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            let entity: Value = response.json().await.unwrap();
            if entity["metadata"]["description"] == description {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no {description:?} yet\n{}",
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_follows_a_push_through_five_services() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let nats = cadastre_testkit::nats_url();
    let scratch = tempfile::tempdir().unwrap();
    let logs = scratch.path();

    let collector = Collector::default();
    let traces = Arc::clone(&collector.traces);
    let otlp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let otlp = format!("http://{}", otlp_listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(
                otlp_listener,
            )),
    );

    let repo = scratch.path().join("repo");
    std::fs::create_dir_all(&repo).unwrap();
    cadastre_testkit::git(&repo, &["init", "-q", "-b", "main"]);
    commit_description(&repo, "first");

    let (store_port, gateway_port, search_port) = (free_port(), free_port(), free_port());
    let namespace = format!("t{}", uuid::Uuid::new_v4().simple());
    let config = scratch.path().join("cadastre.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndatabase_url = \"sqlite://{}?mode=rwc\"\nlisten = \"127.0.0.1:{store_port}\"\n\n\
             [bus]\nnats_url = \"{nats}\"\nnamespace = \"{namespace}\"\n\n\
             [harvester]\nrefresh_interval_secs = 0\nallow_local_repositories = true\ncache_dir = \"{}\"\n\n\
             [search]\nlisten = \"127.0.0.1:{search_port}\"\nstore_url = \"http://127.0.0.1:{store_port}\"\nindex_dir = \"{}\"\n\n\
             [gateway]\nlisten = \"127.0.0.1:{gateway_port}\"\nstore_url = \"http://127.0.0.1:{store_port}\"\nsearch_url = \"http://127.0.0.1:{search_port}\"\nlocation_types = [\"git\"]\n",
            scratch.path().join("catalog.db").display(),
            scratch.path().join("cache").display(),
            scratch.path().join("search").display(),
        ),
    )
    .unwrap();
    let _store = start(&config, "store", &otlp, logs);
    wait_for_port(store_port, logs).await;
    let _harvester = start(&config, "harvester", &otlp, logs);
    let _processor = start(&config, "processor", &otlp, logs);
    let _search = start(&config, "search", &otlp, logs);
    let _gateway = start(&config, "gateway", &otlp, logs);
    wait_for_port(gateway_port, logs).await;

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{gateway_port}");
    let repository_url = format!("file://{}", repo.display());
    let registered = http
        .post(format!("{base}/api/catalog/locations"))
        .json(&json!({"type": "git", "target": format!("{repository_url}#ref=main")}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201, "{}", log_tails(logs));
    wait_for_description(&http, &base, "first", logs).await;

    let second = commit_description(&repo, "second");
    let body = serde_json::to_vec(&json!({
        "ref": "refs/heads/main",
        "after": second,
        "repository": {"clone_url": repository_url, "html_url": repository_url, "default_branch": "main"},
    }))
    .unwrap();
    let pushed = http
        .post(format!("{base}/api/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "push")
        .header("x-github-delivery", "trace-1")
        .header("x-hub-signature-256", sign(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 202);
    wait_for_description(&http, &base, "second", logs).await;

    // The push's trace: the gateway's webhook request, then each service that handled it.
    let wanted = [
        "cadastre-gateway",
        "cadastre-harvester",
        "cadastre-processor",
        "cadastre-store",
        "cadastre-search",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = {
            let traces = traces.lock().unwrap();
            traces
                .iter()
                .find(|(_, services)| {
                    services
                        .get("cadastre-gateway")
                        .is_some_and(|spans| spans.contains("POST /api/webhooks/github"))
                        && wanted.iter().all(|service| services.contains_key(*service))
                })
                .map(|(trace, services)| (trace.clone(), services.clone()))
        };
        if let Some((trace, services)) = found {
            assert_eq!(trace.len(), 32);
            assert!(services.len() >= 5, "{services:?}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no trace holds spans of {wanted:?}: {:?}\n{}",
            traces.lock().unwrap(),
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
