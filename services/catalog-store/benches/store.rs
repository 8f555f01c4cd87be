//! catalog-store benchmark: a synthetic catalog of realistic shape, on SQLite and PostgreSQL,
//! printing one table.
//!
//! ```sh
//! scripts/bench-store 100000,1000000          # starts PostgreSQL itself
//! cargo bench -p cadastre-catalog-store --bench store -- --sizes 100000 --backends sqlite
//! ```
//!
//! Measures batch upsert rates (created: the whole catalog into an empty store; unchanged: the
//! last 100,000 again, then the whole catalog again as a full refresh sends it; updated: the
//! last 100,000 with a new description), and over gRPC on loopback, from five seconds after
//! the last write: by-ref lookups, the first page of `kind=component,spec.type=service` (100
//! rows, with its total), and facets over `spec.type` and `relations.ownedBy`, each as
//! p50/p99. By-ref lookups right after the writes are reported on stderr.

// A bench binary's job is to print its table (stdout) and progress (stderr).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::{Duration, Instant};

use cadastre_catalog_store::grpc::to_proto_predicate;
use cadastre_catalog_store::{Batch, CatalogStore, Upsert};
use cadastre_model::Validator;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use cadastre_synth::{Organisation, Rng};
use sea_orm::{ConnectionTrait, Database};

/// The allocator the `cadastre` binary runs with, so the rates are the ones it gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Entities per batch (one transaction); `CADASTRE_BENCH_BATCH` overrides it.
fn batch_size() -> usize {
    std::env::var("CADASTRE_BENCH_BATCH")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000)
}
const LOOKUPS: usize = 2_000;
const QUERIES: usize = 200;
/// Pause between the writes and the measured reads, for the store's work after a burst of
/// writes to finish.
const SETTLE: Duration = Duration::from_secs(5);
/// Facet requests per facet: with 30, the p99 was the slowest one (a cold first read, or a
/// background checkpoint meeting one), so the figure moved from 28 to 247 ms between runs.
const FACETS: usize = 200;

#[derive(Debug)]
struct Options {
    sizes: Vec<usize>,
    backends: Vec<String>,
}

fn options() -> Options {
    let mut options = Options {
        sizes: vec![100_000],
        backends: vec!["sqlite".into(), "postgres".into()],
    };
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --all-targets` runs bench binaries without `--bench`: a quick smoke run
    // that proves the benchmark still works, not the benchmark itself.
    if !args.iter().any(|a| a == "--bench") {
        options.sizes = vec![500];
        options.backends = vec!["sqlite".into()];
    }
    let mut index = 1;
    while index < args.len() {
        match args[index].as_str() {
            "--sizes" => {
                index += 1;
                options.sizes = args[index]
                    .split(',')
                    .map(|s| s.trim().parse().expect("sizes are numbers"))
                    .collect();
            }
            "--backends" => {
                index += 1;
                options.backends = args[index].split(',').map(str::to_owned).collect();
            }
            // `cargo bench` passes `--bench`; ignore what is not ours.
            _ => {}
        }
        index += 1;
    }
    options
}

#[derive(Debug, Default)]
struct Row {
    backend: String,
    size: usize,
    created_per_s: f64,
    updated_per_s: f64,
    unchanged_per_s: f64,
    /// Unchanged, over the whole catalog.
    refreshed_per_s: f64,
    by_ref: (Duration, Duration),
    filtered: (Duration, Duration),
    facet_type: (Duration, Duration),
    facet_owner: (Duration, Duration),
}

fn main() {
    // `RUST_LOG=cadastre_catalog_store=debug` shows where each batch spends its time.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let options = options();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut rows = Vec::new();
    for &size in &options.sizes {
        for backend in &options.backends {
            eprintln!("== {backend}, {size} entities");
            rows.push(runtime.block_on(bench(backend, size)));
            print_table(&rows);
        }
    }
}

async fn open(backend: &str, dir: &std::path::Path) -> CatalogStore {
    match backend {
        "sqlite" => CatalogStore::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.join("bench.db").display()
        ))
        .await
        .unwrap(),
        "postgres" => {
            let admin_url = std::env::var("CADASTRE_BENCH_POSTGRES_URL")
                .or_else(|_| std::env::var("CADASTRE_TEST_POSTGRES_URL"))
                .expect("set CADASTRE_BENCH_POSTGRES_URL (scripts/bench-store does)");
            let admin = Database::connect(admin_url.as_str()).await.unwrap();
            let name = format!("cadastre_bench_{}", std::process::id());
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await
                .unwrap();
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            CatalogStore::connect(&format!("{base}/{name}"))
                .await
                .unwrap()
        }
        other => panic!("unknown backend {other}"),
    }
}

/// The batch of entities `range` of the organisation, validated, with their relations.
fn batch(
    org: &Organisation,
    validator: &Validator,
    range: std::ops::Range<usize>,
    edit: bool,
) -> Batch {
    let upserts = range
        .map(|index| {
            let mut body = org.entity(index);
            if edit {
                body["metadata"]["description"] =
                    serde_json::Value::String(format!("edited {index}"));
            }
            let valid = validator
                .validate(body, None)
                .expect("synthetic entities are valid");
            let mut body = valid.entity.to_value();
            body.as_object_mut().unwrap().remove("relations");
            let repo = index / 100;
            Upsert {
                body,
                edges: valid.edges,
                location_key: Some(format!(
                    "url:https://git.example.com/acme/repo-{repo}/blob/main/catalog-info.yaml"
                )),
                origin_location: Some(
                    "url:https://git.example.com/acme/root/blob/main/all.yaml".into(),
                ),
                parent_ref: None,
                commit: None,
            }
        })
        .collect();
    Batch {
        upserts,
        ..Batch::default()
    }
}

/// Applies `org[range]` in batches; returns entities per second of store time.
async fn ingest(
    store: &CatalogStore,
    org: &Organisation,
    validator: &Validator,
    range: std::ops::Range<usize>,
    edit: bool,
) -> f64 {
    let batch_size = batch_size();
    let mut spent = Duration::ZERO;
    let mut start = range.start;
    let mut last_report = Instant::now();
    while start < range.end {
        let end = (start + batch_size).min(range.end);
        let batch = batch(org, validator, start..end, edit);
        let began = Instant::now();
        store.apply_batch(batch).await.unwrap();
        spent += began.elapsed();
        start = end;
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "   {start}/{} ({:.0}/s)",
                range.end,
                (start - range.start) as f64 / spent.as_secs_f64()
            );
            last_report = Instant::now();
        }
    }
    (range.end - range.start) as f64 / spent.as_secs_f64()
}

/// [`LOOKUPS`] by-ref lookups of entities chosen at random (`seed`), one at a time: p50, p99.
async fn lookups(
    client: &mut CatalogServiceClient<tonic::transport::Channel>,
    org: &Organisation,
    seed: u64,
) -> (Duration, Duration) {
    let mut rng = Rng::new(seed);
    let mut samples = Vec::with_capacity(LOOKUPS);
    for _ in 0..LOOKUPS {
        let entity_ref = org.entity_ref(rng.below(org.len()));
        let began = Instant::now();
        client
            .get_entity_by_ref(pb::GetEntityByRefRequest { entity_ref })
            .await
            .unwrap();
        samples.push(began.elapsed());
    }
    percentiles(samples)
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

async fn bench(backend: &str, size: usize) -> Row {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(backend, dir.path()).await;
    let org = Organisation::new(42, size);
    let validator = Validator::default();
    let mut row = Row {
        backend: backend.to_owned(),
        size,
        ..Row::default()
    };
    row.created_per_s = ingest(&store, &org, &validator, 0..org.len(), false).await;
    let sample = org.len().min(100_000);
    let tail = org.len() - sample..org.len();
    row.unchanged_per_s = ingest(&store, &org, &validator, tail.clone(), false).await;
    // A full refresh sends every entity again, nearly all unchanged: the oldest ones' pages
    // are the least likely in a cache.
    row.refreshed_per_s = ingest(&store, &org, &validator, 0..org.len(), false).await;
    row.updated_per_s = ingest(&store, &org, &validator, tail, true).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(cadastre_catalog_store::server::run(
        store.clone(),
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let mut client = CatalogServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap();

    // Lookups while the store is still busy after the writes (on PostgreSQL, the merge of
    // pending search entries runs up to a second after the last write; the server writes out
    // its dirty pages), reported on stderr; then, a few seconds later, the measured ones.
    let (p50, p99) = lookups(&mut client, &org, 8).await;
    eprintln!("   by-ref right after the writes: p50 {p50:.2?}, p99 {p99:.2?}");
    tokio::time::sleep(SETTLE).await;
    row.by_ref = lookups(&mut client, &org, 7).await;

    let filter = to_proto_predicate(
        &cadastre_query::legacy_filter::parse(&["kind=component,spec.type=service"]).unwrap(),
    );
    let mut samples = Vec::with_capacity(QUERIES);
    for _ in 0..QUERIES {
        let began = Instant::now();
        let page = client
            .query_entities(pb::QueryEntitiesRequest {
                filter: Some(filter.clone()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        samples.push(began.elapsed());
        assert_eq!(page.items.len(), 100);
    }
    row.filtered = percentiles(samples);

    for (facet, slot) in [
        ("spec.type", &mut row.facet_type),
        ("relations.ownedBy", &mut row.facet_owner),
    ] {
        eprintln!("   facet {facet}: {FACETS} requests");
        let mut samples = Vec::with_capacity(FACETS);
        for _ in 0..FACETS {
            let began = Instant::now();
            client
                .get_facets(pb::GetFacetsRequest {
                    facets: vec![facet.to_owned()],
                    filter: None,
                })
                .await
                .unwrap();
            samples.push(began.elapsed());
        }
        *slot = percentiles(samples);
    }
    let _ = stop.send(());
    let _ = server.await;
    row
}

fn ms((p50, p99): (Duration, Duration)) -> String {
    format!(
        "{:.2} / {:.2}",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    )
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| backend | entities | upsert created/s | upsert updated/s | upsert unchanged/s | full refresh unchanged/s | by-ref p50/p99 ms | filtered page p50/p99 ms | facet spec.type p50/p99 ms | facet relations.ownedBy p50/p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
            row.backend,
            row.size,
            row.created_per_s,
            row.updated_per_s,
            row.unchanged_per_s,
            row.refreshed_per_s,
            ms(row.by_ref),
            ms(row.filtered),
            ms(row.facet_type),
            ms(row.facet_owner)
        );
    }
}
