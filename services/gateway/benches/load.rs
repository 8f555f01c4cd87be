//! Load on the REST API: a synthetic catalog in catalog-store (SQLite) behind the gateway, all
//! in this process, and 64 concurrent HTTP clients on loopback for a fixed time per route.
//! Prints requests per second and p50/p99 for by-name lookups (through the store, and from
//! the gateway's entity cache once warmed) and a filtered query.
//!
//! ```sh
//! cargo bench -p cadastre-gateway --bench load -- 100000
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
use cadastre_synth::Organisation;
use tokio::net::TcpListener;

const CLIENTS: usize = 64;

struct Options {
    size: usize,
    duration: Duration,
    smoke: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let size = args.iter().find_map(|a| a.parse().ok());
    Options {
        size: size.unwrap_or(if smoke { 500 } else { 100_000 }),
        duration: if smoke {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(10)
        },
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

/// Runs `CLIENTS` clients for `duration`, each asking `path(client, n)` in turn; answers
/// requests per second and the p50/p99 latency in milliseconds.
async fn load(
    base: &str,
    duration: Duration,
    path: Arc<dyn Fn(usize, usize) -> String + Send + Sync>,
) -> (f64, f64, f64) {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    let started = Instant::now();
    let deadline = started + duration;
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let http = http.clone();
        let base = base.to_owned();
        let path = Arc::clone(&path);
        clients.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let url = format!("{base}{}", path(client, n));
                let asked = Instant::now();
                let response = http.get(&url).send().await.unwrap();
                let status = response.status();
                let _ = response.bytes().await.unwrap();
                assert!(status.is_success(), "{url}: {status}");
                samples.push(asked.elapsed());
                n += 1;
            }
            samples
        }));
    }
    let mut samples = Vec::new();
    for client in clients {
        samples.extend(client.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    samples.sort();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)].as_secs_f64()
            * 1_000.0
    };
    (samples.len() as f64 / elapsed, at(0.50), at(0.99))
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
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let settings = Settings::default()
        .for_listen("127.0.0.1:7007".parse().unwrap())
        .unwrap();
    let store_channel = cadastre_proto::transport::remote(
        tonic::transport::Channel::from_shared(store_url)
            .unwrap()
            .connect_lazy(),
    );
    let gateway = Gateway::new(store_channel.clone(), Arc::clone(&bus), settings.clone());
    // A second gateway on the same store, with the entity cache (as `cadastre gateway` runs).
    let cached = Gateway::new(store_channel, bus, settings)
        .with_entity_cache(2 * options.size, std::future::pending());
    let cache = cached.entity_cache_handle().unwrap();
    let mut bases = Vec::new();
    for gateway in [gateway, cached] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        bases.push(format!(
            "http://{}/api/catalog",
            listener.local_addr().unwrap()
        ));
        tokio::spawn(cadastre_gateway::serve(
            gateway.router(),
            listener,
            std::future::pending(),
        ));
    }
    let (base, cached_base) = (bases[0].clone(), bases[1].clone());

    let refs: Arc<Vec<String>> = Arc::new((0..org.len()).map(|i| org.entity_ref(i)).collect());
    let by_name = {
        let refs = Arc::clone(&refs);
        Arc::new(move |client: usize, n: usize| {
            let entity_ref = &refs[(client * 7_919 + n * 104_729) % refs.len()];
            let (kind, rest) = entity_ref.split_once(':').unwrap();
            let (namespace, name) = rest.split_once('/').unwrap();
            format!("/entities/by-name/{kind}/{namespace}/{name}")
        }) as Arc<dyn Fn(usize, usize) -> String + Send + Sync>
    };
    let filtered = Arc::new(|_: usize, _: usize| {
        "/entities/by-query?filter=kind=component,spec.type=service&limit=20&fields=metadata.name,spec.owner".to_owned()
    }) as Arc<dyn Fn(usize, usize) -> String + Send + Sync>;
    // Warm the connections, and the entity cache with every entity once.
    load(&base, Duration::from_millis(300), Arc::clone(&by_name)).await;
    let http = reqwest::Client::new();
    let warm_started = Instant::now();
    while cache.len() < org.len() && warm_started.elapsed() < Duration::from_secs(120) {
        for entity_ref in refs.iter().take(org.len()) {
            if cache.get(entity_ref).is_some() {
                continue;
            }
            let (kind, rest) = entity_ref.split_once(':').unwrap();
            let (namespace, name) = rest.split_once('/').unwrap();
            let url = format!("{cached_base}/entities/by-name/{kind}/{namespace}/{name}");
            let _ = http.get(&url).send().await.unwrap().bytes().await;
        }
    }
    eprintln!(
        "entity cache warmed: {} entities in {:.1?}",
        cache.len(),
        warm_started.elapsed()
    );
    let rows = [
        (
            "by-name (store over gRPC)",
            load(&base, options.duration, Arc::clone(&by_name)).await,
        ),
        (
            "by-name (entity cache)",
            load(&cached_base, options.duration, by_name).await,
        ),
        (
            "filtered query (20)",
            load(&base, options.duration, filtered).await,
        ),
    ];
    println!("\n| route | entities | clients | requests/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (route, (rate, p50, p99)) in rows {
        println!(
            "| {route} | {} | {CLIENTS} | {rate:.0} | {p50:.2} | {p99:.2} |",
            org.len()
        );
        if options.smoke {
            assert!(rate > 0.0);
        }
    }
}
