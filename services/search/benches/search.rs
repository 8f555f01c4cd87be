//! Search benchmark on a synthetic catalog of realistic shape. Per backend and size it prints
//! one row: bulk indexing rate, a full rebuild (every entity streamed from a real
//! catalog-store over gRPC into a new index, then the switch), and p50/p99 of one-word,
//! two-word and prefix queries with a kind filter, and of suggestions.
//!
//! ```sh
//! scripts/bench-search 100000 1000000          # tantivy at each size, OpenSearch at 100,000
//! ```
//!
//! Under `cargo test --all-targets` (no `--bench`) it runs a small smoke version.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cadastre_catalog_store::{Batch, CatalogStore};
use cadastre_search::indexer::Indexer;
use cadastre_search::opensearch::{OpenSearchBackend, OpenSearchSettings};
use cadastre_search::tantivy::TantivyBackend;
use cadastre_search::{
    FacetField, Filters, IndexBatch, SearchBackend, SearchDocument, SearchQuery,
};
use cadastre_synth::{Organisation, Rng};
use tonic::transport::Channel;

const BULK: usize = 5_000;
const STORE_BATCH: usize = 2_000;

struct Options {
    sizes: Vec<usize>,
    opensearch: Option<(String, usize)>,
    queries: usize,
    smoke: bool,
    /// Only time reading every entity from the store (where a rebuild spends its time).
    stream_only: bool,
    /// Index from memory only: no store, no rebuild (for looking at queries).
    no_rebuild: bool,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut options = Options {
        sizes: Vec::new(),
        opensearch: None,
        queries: if smoke { 20 } else { 300 },
        smoke,
        stream_only: false,
        no_rebuild: false,
    };
    let mut index = 0;
    while index < args.len() {
        match args[index].as_str() {
            "--opensearch" => {
                let url = args[index + 1].clone();
                let size = args[index + 2].parse().expect("--opensearch URL SIZE");
                options.opensearch = Some((url, size));
                index += 2;
            }
            "--stream-only" => options.stream_only = true,
            "--no-rebuild" => options.no_rebuild = true,
            "--queries" => {
                options.queries = args[index + 1].parse().expect("--queries N");
                index += 1;
            }
            other => {
                if let Ok(size) = other.parse() {
                    options.sizes.push(size);
                }
            }
        }
        index += 1;
    }
    if options.sizes.is_empty() {
        options.sizes.push(if smoke { 500 } else { 100_000 });
    }
    options
}

fn documents(org: &Organisation) -> Vec<SearchDocument> {
    (0..org.len())
        .map(|i| SearchDocument::from_entity(&org.entity(i), "bench", 1).expect("an entity"))
        .collect()
}

/// Words people type: from titles (so they occur), in one and two-word queries and prefixes.
fn query_words(docs: &[SearchDocument], rng: &mut Rng, count: usize) -> Vec<Vec<String>> {
    (0..count)
        .map(|_| {
            let doc = &docs[rng.below(docs.len())];
            cadastre_search::document::words(&doc.title)
        })
        .filter(|words| words.len() >= 2)
        .collect()
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[index].as_secs_f64() * 1_000.0
    };
    (at(0.50), at(0.99))
}

struct Row {
    backend: &'static str,
    size: usize,
    bulk_rate: f64,
    rebuild: Option<Duration>,
    one_word: (f64, f64),
    two_words: (f64, f64),
    prefix: (f64, f64),
    suggest: (f64, f64),
}

/// Fills a new index from memory in bulks and switches to it; documents per second.
async fn bulk_index(backend: &dyn SearchBackend, docs: &[SearchDocument]) -> f64 {
    let started = Instant::now();
    let index = backend.create_index().await.unwrap();
    for (n, chunk) in docs.chunks(BULK).enumerate() {
        let last = (n + 1) * BULK >= docs.len();
        backend
            .write(
                &index,
                IndexBatch {
                    upserts: chunk.to_vec(),
                    checkpoint: last.then_some(1),
                    ..IndexBatch::default()
                },
            )
            .await
            .unwrap();
    }
    backend.refresh(&index).await.unwrap();
    backend.switch_to(&index).await.unwrap();
    docs.len() as f64 / started.elapsed().as_secs_f64()
}

async fn timed_queries(
    backend: &dyn SearchBackend,
    queries: &[Vec<String>],
    make: impl Fn(&[String]) -> String,
    smoke: bool,
) -> (f64, f64) {
    let mut samples = Vec::with_capacity(queries.len());
    let mut found = 0;
    for words in queries {
        let mut query = SearchQuery::text(&make(words));
        query.limit = 20;
        query.filters = Filters::default().with(FacetField::Kind, &["component".to_owned()]);
        let started = Instant::now();
        let results = backend.search(&query).await.unwrap();
        samples.push(started.elapsed());
        found += usize::from(results.total > 0);
    }
    if smoke {
        assert!(
            found * 2 >= queries.len(),
            "most queries find something ({found} of {})",
            queries.len()
        );
    }
    percentiles(samples)
}

async fn measure(
    name: &'static str,
    backend: Arc<dyn SearchBackend>,
    docs: &[SearchDocument],
    store: Option<&Channel>,
    options: &Options,
) -> Row {
    eprintln!("{name} {}: bulk indexing", docs.len());
    let bulk_rate = bulk_index(&*backend, docs).await;
    let rebuild = match store {
        Some(channel) => {
            eprintln!("{name} {}: rebuilding from the store", docs.len());
            let indexer = Indexer::new(
                Arc::clone(&backend),
                cadastre_proto::transport::remote(channel.clone()),
            );
            let report = indexer.rebuild().await.unwrap();
            assert_eq!(report.entities as usize, docs.len());
            Some(report.duration)
        }
        None => None,
    };
    let serving = backend.serving().await.unwrap();
    backend.refresh(&serving).await.unwrap();
    assert_eq!(backend.count(&serving).await.unwrap() as usize, docs.len());
    let mut rng = Rng::new(7);
    let queries = query_words(docs, &mut rng, options.queries * 2);
    let queries = &queries[..queries.len().min(options.queries)];
    eprintln!("{name} {}: querying", docs.len());
    // Warm up caches as a running service would be.
    timed_queries(
        &*backend,
        &queries[..queries.len().min(20)],
        |w| w[0].clone(),
        false,
    )
    .await;
    let one_word = timed_queries(&*backend, queries, |w| w[0].clone(), options.smoke).await;
    let two_words = timed_queries(&*backend, queries, |w| w[..2].join(" "), options.smoke).await;
    let prefix = timed_queries(
        &*backend,
        queries,
        |w| w[0].chars().take(3).collect(),
        options.smoke,
    )
    .await;
    let mut samples = Vec::new();
    for (i, words) in queries.iter().enumerate() {
        let typed: String = words[0].chars().take(1 + i % 4).collect();
        let started = Instant::now();
        let suggestions = backend.suggest(&typed, 8).await.unwrap();
        samples.push(started.elapsed());
        if options.smoke {
            assert!(
                !suggestions.is_empty() || typed.len() > 2,
                "no suggestion for {typed:?}"
            );
        }
    }
    Row {
        backend: name,
        size: docs.len(),
        bulk_rate,
        rebuild,
        one_word,
        two_words,
        prefix,
        suggest: percentiles(samples),
    }
}

/// A catalog-store (SQLite in `dir`) holding `org`, served over gRPC on loopback.
async fn store_with(org: &Organisation, dir: &std::path::Path) -> Channel {
    let url = format!("sqlite://{}?mode=rwc", dir.join("catalog.db").display());
    let store = CatalogStore::connect(&url).await.unwrap();
    let started = Instant::now();
    for first in (0..org.len()).step_by(STORE_BATCH) {
        let bodies = (first..(first + STORE_BATCH).min(org.len())).map(|i| org.entity(i));
        store
            .apply_batch(Batch::of_bodies(bodies, "file:/bench.yaml"))
            .await
            .unwrap();
    }
    eprintln!(
        "store filled with {} entities in {:.0?}",
        org.len(),
        started.elapsed()
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(cadastre_catalog_store::server::run(
        store,
        listener,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

async fn time_stream(store: &Channel) {
    use tokio_stream::StreamExt as _;
    let started = Instant::now();
    let mut stream =
        cadastre_proto::v1::catalog_service_client::CatalogServiceClient::new(store.clone())
            .stream_entities(cadastre_proto::v1::StreamEntitiesRequest { batch_size: 1_000 })
            .await
            .unwrap()
            .into_inner();
    let mut count = 0u64;
    let mut parsed = Duration::ZERO;
    while let Some(entity) = stream.next().await {
        let entity = entity.unwrap();
        let parsing = Instant::now();
        assert!(cadastre_search::indexer::document(&entity, 1).is_some());
        parsed += parsing.elapsed();
        count += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "streamed {count} entities in {elapsed:.1?} ({:.0}/s), of which parsing {parsed:.1?}",
        count as f64 / elapsed.as_secs_f64()
    );
}

fn print(rows: &[Row]) {
    println!(
        "\n| backend | entities | bulk index /s | rebuild | one word p50/p99 ms | two words p50/p99 ms | prefix p50/p99 ms | suggest p50/p99 ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let pair = |(p50, p99): (f64, f64)| format!("{p50:.2} / {p99:.2}");
        println!(
            "| {} | {} | {:.0} | {} | {} | {} | {} | {} |",
            row.backend,
            row.size,
            row.bulk_rate,
            row.rebuild
                .map(|d| format!("{:.1} s", d.as_secs_f64()))
                .unwrap_or_else(|| "-".into()),
            pair(row.one_word),
            pair(row.two_words),
            pair(row.prefix),
            pair(row.suggest),
        );
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let options = options();
    let mut rows = Vec::new();
    for &size in &options.sizes {
        let org = Organisation::new(1, size);
        let docs = documents(&org);
        let scratch = tempfile::tempdir().unwrap();
        let backend = Arc::new(TantivyBackend::open(scratch.path().join("search")).unwrap());
        if options.no_rebuild {
            rows.push(measure("tantivy", backend, &docs, None, &options).await);
            continue;
        }
        let store = store_with(&org, scratch.path()).await;
        if options.stream_only {
            time_stream(&store).await;
            continue;
        }
        rows.push(measure("tantivy", backend, &docs, Some(&store), &options).await);
    }
    if let Some((url, size)) = &options.opensearch {
        let org = Organisation::new(1, *size);
        let docs = documents(&org);
        let scratch = tempfile::tempdir().unwrap();
        let store = store_with(&org, scratch.path()).await;
        let mut settings = OpenSearchSettings::new(url);
        settings.index_prefix = format!("bench-{}", std::process::id());
        let backend = Arc::new(OpenSearchBackend::connect(settings).await.unwrap());
        rows.push(measure("opensearch", backend, &docs, Some(&store), &options).await);
    }
    print(&rows);
}
