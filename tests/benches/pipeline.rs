//! Ingestion benchmark: a git repository of synthetic entities of realistic shape (owners,
//! systems, APIs, dependencies; one `catalog-info.yaml` per directory) through the harvester,
//! a real NATS JetStream, the processor and catalog-store. Prints one table:
//! entities per second end to end, and commit-to-store latency p50/p99 for one changed file.
//!
//! ```sh
//! scripts/bench-pipeline 100000            # starts NATS (and PostgreSQL) itself
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs a small smoke version.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadastre_bus::Bus;
use cadastre_bus::nats::{JetStreamBus, StreamSettings};
use cadastre_bus::subjects::HARVEST_REQUESTS;
use cadastre_catalog_store::CatalogStore;
use cadastre_proto::v1 as pb;
use cadastre_synth::Organisation;
use cadastre_testkit::git;

/// The allocator the `cadastre` binary (every service) runs with, so the rates are the ones
/// a deployment gets: with glibc's, a third of the ingest's busy CPU was in the C library,
/// most of it `malloc` and `free`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Options {
    size: usize,
    commits: usize,
    backend: String,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let mut options = Options {
        size: if bench { 100_000 } else { 300 },
        commits: if bench { 50 } else { 3 },
        backend: "sqlite".into(),
    };
    let mut index = 1;
    while index < args.len() {
        match args[index].as_str() {
            "--size" => {
                index += 1;
                options.size = args[index].parse().expect("--size N");
            }
            "--commits" => {
                index += 1;
                options.commits = args[index].parse().expect("--commits N");
            }
            "--backend" => {
                index += 1;
                options.backend.clone_from(&args[index]);
            }
            _ => {}
        }
        index += 1;
    }
    options
}

/// One directory per entity, each with its `catalog-info.yaml` (JSON is YAML).
fn make_repository(repo: &Path, org: &Organisation) {
    std::fs::create_dir_all(repo).unwrap();
    git(repo, &["init", "--quiet", "--initial-branch=main"]);
    for index in 0..org.len() {
        let dir = repo.join(format!("e{:03}/e{index}", index % 1000));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("catalog-info.yaml"), org.entity(index).to_string()).unwrap();
    }
    git(repo, &["add", "."]);
    git(repo, &["commit", "--quiet", "-m", "catalog"]);
    // Packed, as a git host keeps a repository.
    git(repo, &["gc", "--quiet"]);
}

async fn store_for(backend: &str, dir: &Path) -> CatalogStore {
    match backend {
        "sqlite" => CatalogStore::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.join("catalog.db").display()
        ))
        .await
        .unwrap(),
        "postgres" => CatalogStore::connect(
            &cadastre_testkit::fresh_postgres_database("cadastre_bench").await,
        )
        .await
        .unwrap(),
        other => panic!("unknown backend {other}"),
    }
}

async fn count(store: &CatalogStore) -> usize {
    usize::try_from(store.entity_count().await.unwrap()).unwrap()
}

async fn request(bus: &dyn Bus, key: &str, trigger: pb::HarvestTrigger) {
    let id = uuid::Uuid::new_v4().to_string();
    HARVEST_REQUESTS
        .publish(
            bus,
            &pb::HarvestRequest {
                location_key: key.to_owned(),
                trigger: trigger.into(),
                request_id: id.clone(),
                ..Default::default()
            },
            Some(id),
            None,
        )
        .await
        .unwrap();
}

fn percentile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)]
}

fn main() {
    // `RUST_LOG=info` shows each service's work as it happens.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .init();
    }
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(options));
}

async fn run(options: Options) {
    let nats = cadastre_testkit::nats_url();
    let scratch = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let repo = scratch.path().join("repo");
    let org = Organisation::new(5, options.size);
    eprintln!("== making a repository of {} entities", options.size);
    make_repository(&repo, &org);

    let store = store_for(&options.backend, scratch.path()).await;
    let bus: Arc<dyn Bus> = Arc::new(
        JetStreamBus::connect(
            &nats,
            StreamSettings {
                namespace: format!("b{}", uuid::Uuid::new_v4().simple()),
                ..StreamSettings::default()
            },
        )
        .await
        .unwrap(),
    );
    let harvester = Arc::new(
        cadastre_harvester::Harvester::new(cadastre_harvester::Settings {
            cache_dir: scratch.path().join("cache"),
            allow_local_repositories: true,
            ..cadastre_harvester::Settings::default()
        })
        .unwrap(),
    );
    let processor = Arc::new(cadastre_processor::Processor::new(
        cadastre_model::Validator::default(),
        cadastre_processor::Settings::default(),
    ));
    let never = std::future::pending::<()>;
    tokio::spawn(cadastre_harvester::service::run(
        Arc::clone(&bus),
        harvester,
        never(),
    ));
    // As `cadastre processor` runs by default: one worker per core, one queue group
    // (`CADASTRE_BENCH_PROCESSOR_WORKERS` overrides it).
    let workers = std::env::var("CADASTRE_BENCH_PROCESSOR_WORKERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
    for _ in 0..workers {
        tokio::spawn(cadastre_processor::service::run(
            Arc::clone(&bus),
            Arc::clone(&processor),
            never(),
        ));
    }
    // As `cadastre store` runs it: the writer on a thread of its own.
    let _writer = cadastre::priority::on_own_thread("store-writer", {
        let (bus, store) = (Arc::clone(&bus), store.clone());
        move || cadastre_catalog_store::bus::apply_batches(bus, store, never())
    })
    .expect("the store's writer thread");

    let key = format!("git:file://{}#ref=main", repo.display());
    eprintln!("== ingesting");
    let began = Instant::now();
    request(&*bus, &key, pb::HarvestTrigger::Registered).await;
    let mut last_report = Instant::now();
    loop {
        let stored = count(&store).await;
        if stored >= options.size {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "   {stored}/{} ({:.0}/s)",
                options.size,
                stored as f64 / began.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        assert!(
            began.elapsed() < Duration::from_secs(3600),
            "ingestion stalled at {stored}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ingest = began.elapsed();
    let rate = options.size as f64 / ingest.as_secs_f64();
    // A first import into an empty SQLite store builds its read indexes once it is done;
    // the commits below are measured on the store as it is afterwards.
    let mut indexes_pending = store.watch_indexes_pending();
    while *indexes_pending.borrow_and_update() > 0 {
        indexes_pending.changed().await.unwrap();
    }
    let read_indexes = began.elapsed();

    eprintln!("== {} commits of one changed file", options.commits);
    let mut latencies = Vec::with_capacity(options.commits);
    for round in 0..options.commits {
        let index = (round * 7919) % options.size;
        let entity_ref = org.entity_ref(index);
        let mut body = org.entity(index);
        let description = format!("edited in round {round}");
        body["metadata"]["description"] = serde_json::Value::String(description.clone());
        let file = repo.join(format!("e{:03}/e{index}/catalog-info.yaml", index % 1000));
        std::fs::write(&file, body.to_string()).unwrap();
        git(&repo, &["commit", "--quiet", "-am", &description]);
        // The clock starts when the push is reported, as a git host's webhook would.
        let pushed = Instant::now();
        request(&*bus, &key, pb::HarvestTrigger::Webhook).await;
        loop {
            let stored = store.entity_by_ref(&entity_ref).await.unwrap();
            if stored.is_some_and(|e| e.body.contains(&description)) {
                break;
            }
            assert!(
                pushed.elapsed() < Duration::from_secs(60),
                "round {round}: the change did not arrive"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let latency = pushed.elapsed();
        if latency > Duration::from_millis(500) {
            eprintln!("   round {round}: {:.0} ms", latency.as_secs_f64() * 1e3);
        }
        latencies.push(latency);
    }
    let p50 = percentile(&mut latencies, 0.50);
    let p99 = percentile(&mut latencies, 0.99);
    println!();
    println!(
        "| store | entities | ingest time | end-to-end entities/s | read indexes built | commits | commit-to-store p50 | commit-to-store p99 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.1} s | {:.0} | {:.1} s | {} | {:.1} ms | {:.1} ms |",
        options.backend,
        options.size,
        ingest.as_secs_f64(),
        rate,
        read_indexes.as_secs_f64(),
        options.commits,
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
}
