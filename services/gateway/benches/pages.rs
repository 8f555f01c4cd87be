//! Page times of the web UI: a synthetic catalog in catalog-store (SQLite) behind the gateway,
//! with search (tantivy, following the store), all in this process. Each page is asked for
//! sequentially over loopback (one client, so the time is the server's plus a loopback round
//! trip) and its p50/p99 printed as a markdown table.
//!
//! ```sh
//! cargo bench -p cadastre-gateway --bench pages -- 100000
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs a small smoke version.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cadastre_bus::Bus;
use cadastre_bus::memory::InProcessBus;
use cadastre_catalog_store::{Batch, CatalogStore};
use cadastre_gateway::{Gateway, Settings};
use cadastre_proto::transport::remote;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::search_service_client::SearchServiceClient;
use cadastre_synth::Organisation;
use tokio::net::TcpListener;
use tonic::transport::Channel;

/// Pages answering over this many milliseconds (p50) are flagged.
const TARGET_MS: f64 = 50.0;

struct Options {
    size: usize,
    requests: usize,
    smoke: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let size = args.iter().find_map(|a| a.parse().ok());
    Options {
        size: size.unwrap_or(if smoke { 500 } else { 100_000 }),
        requests: if smoke { 5 } else { 200 },
        smoke,
    }
}

async fn fill(store: &CatalogStore, org: &Organisation) {
    let started = Instant::now();
    for first in (0..org.len()).step_by(2_000) {
        let bodies = (first..(first + 2_000).min(org.len())).map(|i| org.entity(i));
        store
            .apply_batch(Batch::of_bodies(bodies, "file:/load.yaml"))
            .await
            .unwrap();
    }
    eprintln!(
        "store filled with {} entities in {:.0?}",
        org.len(),
        started.elapsed()
    );
}

/// How long one page is asked for at most (a slow page gets fewer requests).
const BUDGET: Duration = Duration::from_secs(20);

/// Asks for `path` `requests` times in turn (or for [`BUDGET`], at least 5 times); answers
/// the p50 and p99 in milliseconds, the requests made and the size of the last page.
async fn time(http: &reqwest::Client, url: &str, requests: usize) -> (f64, f64, usize, usize) {
    let mut samples = Vec::with_capacity(requests);
    let mut bytes = 0;
    let started = Instant::now();
    for n in 0..requests {
        if n >= 5 && started.elapsed() > BUDGET {
            break;
        }
        let asked = Instant::now();
        let response = http.get(url).send().await.unwrap();
        let status = response.status();
        let body = response.bytes().await.unwrap();
        samples.push(asked.elapsed());
        assert!(status.is_success(), "{url}: {status}");
        bytes = body.len();
    }
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64()
            * 1_000.0
    };
    (at(0.50), at(0.99), samples.len(), bytes)
}

async fn text(http: &reqwest::Client, url: &str) -> String {
    let response = http.get(url).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.text().await.unwrap()
}

/// The `href` of the link with `rel="next"`, unescaped.
fn next_link(html: &str) -> Option<String> {
    let start = html.find("rel=\"next\" href=\"")? + 17;
    let end = start + html[start..].find('"')?;
    Some(html[start..end].replace("&amp;", "&"))
}

/// The entity page path of `entity_ref` (`kind:namespace/name`).
fn page_of(entity_ref: &str) -> String {
    let (kind, rest) = entity_ref.split_once(':').unwrap();
    let (namespace, name) = rest.split_once('/').unwrap();
    format!("/catalog/{namespace}/{kind}/{name}")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = options();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let scratch = tempfile::tempdir().unwrap();
    let store = CatalogStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        scratch.path().join("catalog.db").display()
    ))
    .await
    .unwrap();
    let org = Organisation::new(3, options.size);
    fill(&store, &org).await;
    let store_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let store_url = format!("http://{}", store_listener.local_addr().unwrap());
    tokio::spawn(cadastre_catalog_store::server::run(
        store.clone(),
        store_listener,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    let store_channel = remote(Channel::from_shared(store_url).unwrap().connect_lazy());

    // Search as the harness wires it: tantivy, following the store's change feed.
    let backend: Arc<dyn cadastre_search::SearchBackend> = Arc::new(
        cadastre_search::tantivy::TantivyBackend::open(scratch.path().join("index")).unwrap(),
    );
    let indexer =
        cadastre_search::indexer::Indexer::new(Arc::clone(&backend), store_channel.clone());
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
    let search_channel = remote(Channel::from_shared(search_url).unwrap().connect_lazy());
    let indexing = Instant::now();
    let mut search = SearchServiceClient::new(search_channel.clone());
    loop {
        let documents = match search.get_index_status(pb::GetIndexStatusRequest {}).await {
            Ok(status) => status.into_inner().documents,
            Err(_) => 0,
        };
        if documents >= org.len() as u64 {
            break;
        }
        assert!(
            indexing.elapsed() < Duration::from_secs(1_800),
            "search indexed only {documents} of {} entities",
            org.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "search indexed {} entities in {:.0?}",
        org.len(),
        indexing.elapsed()
    );

    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let settings = Settings::default()
        .for_listen("127.0.0.1:7007".parse().unwrap())
        .unwrap();
    let gateway = Gateway::new(store_channel, bus, settings).with_search(search_channel);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(cadastre_gateway::serve(
        gateway.router(),
        listener,
        std::future::pending(),
    ));
    let http = reqwest::Client::new();

    // One entity of each kind the pages need, and an owner with components.
    let find = |kind: &str| {
        (0..org.len())
            .map(|i| org.entity(i))
            .find(|body| body["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in the synthetic catalog"))
    };
    let component = find("Component");
    let name_of = |body: &serde_json::Value| {
        format!(
            "{}:default/{}",
            body["kind"].as_str().unwrap().to_lowercase(),
            body["metadata"]["name"].as_str().unwrap()
        )
    };
    let owner = component["spec"]["owner"].as_str().unwrap().to_owned();
    let group_page = page_of(&if owner.contains(':') {
        owner.clone()
    } else {
        format!("group:default/{owner}")
    });
    let component_page = page_of(&name_of(&component));
    let api_page = page_of(&name_of(&find("API")));
    let owner_filter = owner.rsplit('/').next().unwrap_or(&owner).to_owned();
    let third = {
        let first = text(&http, &format!("{base}/")).await;
        let second = text(&http, &format!("{base}{}", next_link(&first).unwrap())).await;
        next_link(&second).unwrap()
    };

    let pages: Vec<(&str, String)> = vec![
        ("catalog, first page", "/".to_owned()),
        (
            "catalog, kind + owner filter",
            format!(
                "/?filter=kind%3Dcomponent&filter=relations.ownedby%3Dgroup%3Adefault%2F{owner_filter}"
            ),
        ),
        ("catalog, components", "/?filter=kind%3Dcomponent".to_owned()),
        (
            "catalog, components + lifecycle",
            "/?filter=kind%3Dcomponent&filter=spec.lifecycle%3Dproduction".to_owned(),
        ),
        (
            "catalog, components + tag",
            "/?filter=kind%3Dcomponent&filter=metadata.tags%3Djava".to_owned(),
        ),
        (
            "catalog, components + namespace",
            "/?filter=kind%3Dcomponent&filter=metadata.namespace%3Ddefault".to_owned(),
        ),
        (
            "catalog, sorted by kind (desc)",
            "/?order=kind&dir=desc".to_owned(),
        ),
        (
            "catalog, sorted by name",
            "/?order=metadata.name&dir=asc".to_owned(),
        ),
        (
            "catalog, sorted by owner (desc)",
            "/?order=spec.owner&dir=desc".to_owned(),
        ),
        ("catalog, page 3 (cursor)", third),
        ("search results", "/search?q=payment".to_owned()),
        ("entity page, component", component_page),
        ("entity page, group", group_page),
        ("entity page, API", api_page),
        ("ingestion", "/ingestion".to_owned()),
        ("register form", "/register".to_owned()),
        // The store calls behind the catalog page, through the REST API, to tell which one a
        // slow page waits for.
        (
            "(REST) 50 by name",
            "/api/catalog/entities/by-query?limit=50&orderField=metadata.name&fields=kind".to_owned(),
        ),
        (
            "(REST) 50 by ref, no total",
            "/api/catalog/entities/by-query?limit=50&totalItems=exclude&fields=kind".to_owned(),
        ),
        (
            "(REST) 50 by owner desc",
            "/api/catalog/entities/by-query?limit=50&orderField=spec.owner,desc&fields=kind".to_owned(),
        ),
        (
            "(REST) facets kind, type, lifecycle, namespace",
            "/api/catalog/entity-facets?facet=kind&facet=spec.type&facet=spec.lifecycle&facet=metadata.namespace".to_owned(),
        ),
        (
            "(REST) facet spec.owner",
            "/api/catalog/entity-facets?facet=spec.owner".to_owned(),
        ),
        (
            "(REST) facet relations.ownedBy",
            "/api/catalog/entity-facets?facet=relations.ownedBy".to_owned(),
        ),
        (
            "(REST) facet metadata.tags",
            "/api/catalog/entity-facets?facet=metadata.tags".to_owned(),
        ),
    ];
    // Warm the connections and the store's page cache once.
    for (_, path) in &pages {
        text(&http, &format!("{base}{path}")).await;
    }
    println!(
        "\n| page | entities | requests | p50 ms | p99 ms | KiB |\n|---|---:|---:|---:|---:|---:|"
    );
    let mut slow = Vec::new();
    for (page, path) in &pages {
        let (p50, p99, requests, bytes) =
            time(&http, &format!("{base}{path}"), options.requests).await;
        println!(
            "| {page} | {} | {requests} | {p50:.1} | {p99:.1} | {:.0} |",
            org.len(),
            bytes as f64 / 1024.0
        );
        if p50 > TARGET_MS && !page.starts_with('(') {
            slow.push(format!("{page} ({path})"));
        }
    }
    if !slow.is_empty() && !options.smoke {
        eprintln!("over {TARGET_MS} ms at p50: {}", slow.join(", "));
    }
}
