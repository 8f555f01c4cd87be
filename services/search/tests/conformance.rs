//! One conformance suite, run against both backends: tantivy in a temporary folder, and a
//! real OpenSearch node (the one `scripts/test` starts, named by `CADASTRE_TEST_OPENSEARCH_URL`;
//! each test uses its own index prefix).

#[path = "../../catalog-store/tests/common/mod.rs"]
mod store_common;

use std::sync::Arc;

use cadastre_search::opensearch::{OpenSearchBackend, OpenSearchSettings};
use cadastre_search::tantivy::TantivyBackend;
use cadastre_search::{
    FacetField, Filters, IndexBatch, SearchBackend, SearchDocument, SearchError, SearchQuery,
};
use serde_json::json;

/// A backend and what keeps it alive.
struct Subject {
    backend: Arc<dyn SearchBackend>,
    _dir: Option<tempfile::TempDir>,
    /// How to open the same indexes again (a restart).
    reopen: Reopen,
}

enum Reopen {
    Tantivy(std::path::PathBuf),
    OpenSearch(OpenSearchSettings),
}

impl Subject {
    /// The same indexes opened again, as after a restart (tantivy allows one writer at a time,
    /// so the running backend closes first).
    async fn restarted(self) -> Subject {
        let Subject {
            backend,
            _dir,
            reopen,
        } = self;
        drop(backend);
        let backend: Arc<dyn SearchBackend> = match &reopen {
            Reopen::Tantivy(path) => Arc::new(TantivyBackend::open(path).unwrap()),
            Reopen::OpenSearch(settings) => {
                Arc::new(OpenSearchBackend::connect(settings.clone()).await.unwrap())
            }
        };
        Subject {
            backend,
            _dir,
            reopen,
        }
    }
}

async fn tantivy() -> Subject {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search");
    Subject {
        backend: Arc::new(TantivyBackend::open(&path).unwrap()),
        _dir: Some(dir),
        reopen: Reopen::Tantivy(path),
    }
}

async fn opensearch() -> Subject {
    let mut settings = OpenSearchSettings::new(&cadastre_testkit::opensearch_url());
    settings.index_prefix = format!("test-{}", uuid_like());
    Subject {
        backend: Arc::new(OpenSearchBackend::connect(settings.clone()).await.unwrap()),
        _dir: None,
        reopen: Reopen::OpenSearch(settings),
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `docs` into the serving index, durable at `checkpoint`, and makes them visible.
async fn index(backend: &dyn SearchBackend, docs: Vec<SearchDocument>, checkpoint: u64) {
    let serving = backend.serving().await.unwrap();
    backend
        .write(
            &serving,
            IndexBatch {
                upserts: docs,
                checkpoint: Some(checkpoint),
                ..IndexBatch::default()
            },
        )
        .await
        .unwrap();
    backend.refresh(&serving).await.unwrap();
}

async fn remove(backend: &dyn SearchBackend, refs: &[&str], checkpoint: u64) {
    let serving = backend.serving().await.unwrap();
    backend
        .write(
            &serving,
            IndexBatch {
                removals: refs.iter().map(|r| (*r).to_owned()).collect(),
                checkpoint: Some(checkpoint),
                ..IndexBatch::default()
            },
        )
        .await
        .unwrap();
    backend.refresh(&serving).await.unwrap();
}

fn entity(
    kind: &str,
    name: &str,
    spec: serde_json::Value,
    metadata: serde_json::Value,
) -> SearchDocument {
    let mut meta = json!({"name": name, "namespace": "default"});
    meta.as_object_mut()
        .unwrap()
        .extend(metadata.as_object().cloned().unwrap_or_default());
    let body = json!({"apiVersion": "backstage.io/v1alpha1", "kind": kind, "metadata": meta, "spec": spec});
    SearchDocument::from_entity(&body, &format!("etag-{name}"), 1).unwrap()
}

fn component(name: &str, owner: &str, description: &str) -> SearchDocument {
    entity(
        "Component",
        name,
        json!({"type": "service", "lifecycle": "production", "owner": owner}),
        json!({"description": description}),
    )
}

/// A small catalog with the shapes the text rules care about.
fn payments() -> Vec<SearchDocument> {
    vec![
        entity(
            "Component",
            "payment-gateway",
            json!({"type": "service", "lifecycle": "production", "owner": "team-pay", "system": "checkout"}),
            json!({"title": "Payment Gateway", "description": "Takes card payments", "tags": ["java", "pci"]}),
        ),
        entity(
            "Component",
            "payments-ledger",
            json!({"type": "library", "lifecycle": "experimental", "owner": "team-ledger"}),
            json!({"description": "Double-entry bookkeeping", "tags": ["rust"]}),
        ),
        entity(
            "Component",
            "gateway-proxy",
            json!({"type": "service", "lifecycle": "production", "owner": "team-edge"}),
            json!({"description": "Routes traffic to the payment services", "tags": ["go", "pci"]}),
        ),
        entity(
            "API",
            "ledger-api",
            json!({"type": "openapi", "lifecycle": "production", "owner": "team-ledger", "definition": "x"}),
            json!({"description": "The ledger's interface"}),
        ),
        entity(
            "Group",
            "team-pay",
            json!({"type": "team", "children": []}),
            json!({"title": "Payments Team"}),
        ),
    ]
}

fn refs(results: &cadastre_search::SearchResults) -> Vec<String> {
    results
        .hits
        .iter()
        .map(|hit| hit.document.entity_ref.clone())
        .collect()
}

async fn search(backend: &dyn SearchBackend, text: &str) -> Vec<String> {
    refs(&backend.search(&SearchQuery::text(text)).await.unwrap())
}

async fn the_examples_are_each_found_by_their_name(subject: Subject) {
    let docs: Vec<SearchDocument> = store_common::examples_batch()
        .upserts
        .iter()
        .map(|upsert| SearchDocument::from_entity(&upsert.body, "e", 1).unwrap())
        .collect();
    assert!(docs.len() > 40, "the examples hold {} entities", docs.len());
    let backend = &*subject.backend;
    index(backend, docs.clone(), 1).await;
    let everything = backend.search(&SearchQuery::text("")).await.unwrap();
    assert_eq!(everything.total, docs.len() as u64);
    let serving = backend.serving().await.unwrap();
    assert_eq!(backend.count(&serving).await.unwrap(), docs.len() as u64);
    for doc in &docs {
        let found = search(backend, &doc.name).await;
        assert!(
            found.contains(&doc.entity_ref),
            "{:?} not among the hits for its name: {found:?}",
            doc.entity_ref
        );
    }
    // The owner of the artist lookup is found through its name.
    let by_owner = search(backend, "team-a").await;
    assert!(
        by_owner.contains(&"component:default/artist-lookup".to_owned()),
        "{by_owner:?}"
    );
}

async fn separators_prefixes_typos_and_case_all_match(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 1).await;
    let gateway = "component:default/payment-gateway".to_owned();
    for query in [
        "payment gateway",
        "Payment-Gateway",
        "PAYMENT_GATEWAY",
        "paymentgateway",
        "paymentgate",
    ] {
        let found = search(backend, query).await;
        assert_eq!(found.first(), Some(&gateway), "query {query:?}: {found:?}");
    }
    // Search as you type: every leading part of a word.
    let found = search(backend, "paym").await;
    assert!(
        found.contains(&gateway) && found.contains(&"component:default/payments-ledger".to_owned()),
        "{found:?}"
    );
    assert!(search(backend, "p").await.contains(&gateway));
    // Small typos.
    for query in ["gatway", "paymnet gateway", "ledgre"] {
        assert!(
            !search(backend, query).await.is_empty(),
            "typo {query:?} found nothing"
        );
    }
    assert!(search(backend, "gatway").await.contains(&gateway));
    // Every word must match somewhere.
    assert!(search(backend, "payment zebra").await.is_empty());
    // Tags, owner names and descriptions are searched too.
    assert!(
        search(backend, "pci")
            .await
            .contains(&"component:default/gateway-proxy".to_owned())
    );
    assert!(
        search(backend, "bookkeeping")
            .await
            .contains(&"component:default/payments-ledger".to_owned())
    );
    assert!(search(backend, "checkout").await.contains(&gateway));
}

async fn names_and_titles_rank_above_descriptions(subject: Subject) {
    let backend = &*subject.backend;
    index(
        backend,
        vec![
            component("billing-reports", "team-a", "Summaries of invoices"),
            component("invoices", "team-a", "Stores invoices"),
            component("statements", "team-a", "Mentions invoices once"),
        ],
        1,
    )
    .await;
    let found = search(backend, "invoices").await;
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0], "component:default/invoices");
}

async fn filters_narrow_and_facets_count(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 1).await;
    let run = |filters: Filters| async {
        let mut query = SearchQuery::text("");
        query.filters = filters;
        let mut found = refs(&backend.search(&query).await.unwrap());
        found.sort();
        found
    };
    let list = |values: &[&str]| values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        run(Filters::default().with(FacetField::Kind, &list(&["API"]))).await,
        vec!["api:default/ledger-api"]
    );
    assert_eq!(
        run(Filters::default().with(FacetField::Owner, &list(&["Team-Ledger"]))).await,
        vec![
            "api:default/ledger-api",
            "component:default/payments-ledger"
        ]
    );
    // Values of one filter OR-ed, filters AND-ed.
    assert_eq!(
        run(Filters::default()
            .with(FacetField::Tags, &list(&["pci", "rust"]))
            .with(FacetField::Type, &list(&["service"])))
        .await,
        vec![
            "component:default/gateway-proxy",
            "component:default/payment-gateway"
        ]
    );
    assert_eq!(
        run(Filters::default()
            .with(FacetField::Lifecycle, &list(&["experimental"]))
            .with(FacetField::Namespace, &list(&["default"])))
        .await,
        vec!["component:default/payments-ledger"]
    );
    assert!(
        run(Filters::default().with(FacetField::Namespace, &list(&["other"])))
            .await
            .is_empty()
    );
    // Text and filters together, with facet counts over what matches.
    let mut query = SearchQuery::text("pay");
    query.facets = vec![FacetField::Kind, FacetField::Tags, FacetField::Owner];
    let results = backend.search(&query).await.unwrap();
    let facet = |field: FacetField| {
        results
            .facets
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, values)| values.clone())
            .unwrap()
    };
    assert_eq!(results.total, 3, "{:?}", refs(&results));
    assert_eq!(
        facet(FacetField::Kind),
        vec![("component".to_owned(), 2), ("group".to_owned(), 1)]
    );
    let tags = facet(FacetField::Tags);
    assert!(
        tags.contains(&("java".to_owned(), 1)) && tags.contains(&("rust".to_owned(), 1)),
        "{tags:?}"
    );
    assert!(facet(FacetField::Owner).contains(&("group:default/team-pay".to_owned(), 1)));
}

async fn highlights_mark_the_matching_words(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 1).await;
    let mut query = SearchQuery::text("payment");
    query.highlight = true;
    let results = backend.search(&query).await.unwrap();
    let hit = results
        .hits
        .iter()
        .find(|hit| hit.document.name == "payment-gateway")
        .unwrap();
    assert!(
        hit.highlights
            .contains(&("name".to_owned(), "<mark>payment</mark>-gateway".to_owned())),
        "{:?}",
        hit.highlights
    );
    assert!(hit.highlights.contains(&(
        "description".to_owned(),
        "Takes card <mark>payments</mark>".to_owned()
    )));
}

async fn cursors_walk_every_hit_once(subject: Subject) {
    let backend = &*subject.backend;
    let docs: Vec<SearchDocument> = (0..30)
        .map(|i| component(&format!("bulk-service-{i:02}"), "team-bulk", "one of many"))
        .collect();
    index(backend, docs, 1).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let query = SearchQuery::new("bulk", Filters::default(), &[], 7, &cursor, false).unwrap();
        let results = backend.search(&query).await.unwrap();
        assert_eq!(results.total, 30);
        seen.extend(refs(&results));
        pages += 1;
        match query.next_cursor(results.total) {
            Some(next) => cursor = next,
            None => break,
        }
    }
    assert_eq!(pages, 5);
    let count = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!((count, seen.len()), (30, 30));
}

/// Matches are counted exactly up to the query's cap, then the total is the cap and a lower
/// bound; the page is the same as with every match counted, and holds only matches.
async fn totals_past_the_cap_are_lower_bounds(subject: Subject) {
    let backend = &*subject.backend;
    let mut docs: Vec<SearchDocument> = (0..30)
        .map(|i| component(&format!("bulk-service-{i:02}"), "team-bulk", "one of many"))
        .collect();
    // These match `bulk` better than the services (name and title) but not `many`.
    docs.extend((0..10).map(|i| {
        entity(
            "Component",
            &format!("bulk-loader-{i:02}"),
            json!({"type": "library", "owner": "team-load"}),
            json!({"title": "Bulk bulk loader", "description": "loads"}),
        )
    }));
    index(backend, docs, 1).await;
    let run = |text: &str, filters: Filters, limit: u32, cap: u64| {
        let text = text.to_owned();
        async move {
            let mut query = SearchQuery::new(&text, filters, &[], limit, "", false).unwrap();
            query.exact_total_up_to = cap;
            let results = backend.search(&query).await.unwrap();
            (results.total, results.total_is_lower_bound, refs(&results))
        }
    };
    let kinds = |kind: &str| Filters::default().with(FacetField::Kind, &[kind.to_owned()]);

    let (total, lower, every) = run("bulk many", Filters::default(), 5, 1_000).await;
    assert_eq!((total, lower), (30, false));
    assert!(
        every.iter().all(|r| r.contains("bulk-service")),
        "{every:?}"
    );
    assert_eq!(every.len(), 5);
    // Capped: the same page, the cap as a lower bound.
    assert_eq!(
        run("bulk many", Filters::default(), 5, 10).await,
        (10, true, every.clone())
    );
    // Exactly the cap is still exact; one under it is not.
    assert_eq!(run("bulk many", Filters::default(), 5, 30).await.0, 30);
    assert!(!run("bulk many", Filters::default(), 5, 30).await.1);
    assert_eq!(
        run("bulk many", Filters::default(), 5, 29).await,
        (29, true, every.clone())
    );
    // A page deeper than the cap counts one past itself, so the next page is known to exist.
    let (total, lower, page) = run("bulk many", Filters::default(), 20, 10).await;
    assert_eq!((total, lower, page.len()), (21, true, 20));
    // One word, with a filter, both ways.
    let (total, lower, best) = run("bulk", kinds("component"), 5, 1_000).await;
    assert_eq!((total, lower), (40, false));
    assert_eq!(
        run("bulk", kinds("component"), 5, 12).await,
        (12, true, best)
    );
    assert_eq!(
        run("bulk", kinds("api"), 5, 12).await,
        (0, false, Vec::new())
    );
    // Filters alone count the same way; no text and no filters counts everything.
    assert_eq!(run("", kinds("component"), 5, 12).await.0, 12);
    let (total, lower, _) = run("", Filters::default(), 5, 12).await;
    assert_eq!((total, lower), (40, false));

    // Removed documents are not counted.
    remove(
        backend,
        &[
            "component:default/bulk-service-00",
            "component:default/bulk-service-01",
        ],
        2,
    )
    .await;
    assert_eq!(run("bulk many", Filters::default(), 5, 1_000).await.0, 28);
    assert!(!run("bulk many", Filters::default(), 5, 28).await.1);
    assert_eq!(run("bulk many", Filters::default(), 5, 27).await.0, 27);
    let (total, lower, _) = run("", Filters::default(), 5, 1).await;
    assert_eq!((total, lower), (38, false));
}

async fn suggestions_complete_names_first(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 1).await;
    let suggest = |prefix: &'static str, limit: usize| async move {
        backend
            .suggest(prefix, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.entity_ref)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        suggest("pay", 8).await[..2].to_vec(),
        vec![
            "component:default/payment-gateway",
            "component:default/payments-ledger"
        ]
    );
    // A name that starts with the prefix comes before one with a later word that does.
    let gate = suggest("Gate", 8).await;
    assert_eq!(
        gate,
        vec![
            "component:default/gateway-proxy",
            "component:default/payment-gateway"
        ]
    );
    // Separators typed or not.
    assert_eq!(
        suggest("payment-gat", 8).await,
        vec!["component:default/payment-gateway"]
    );
    // Titles: the group is found by "Payments Team".
    assert!(
        suggest("paymentst", 8)
            .await
            .contains(&"group:default/team-pay".to_owned())
    );
    assert_eq!(suggest("pay", 1).await.len(), 1);
    assert!(suggest("zzz", 8).await.is_empty());
    assert!(suggest("  ", 8).await.is_empty());
    remove(backend, &["component:default/gateway-proxy"], 2).await;
    assert_eq!(
        suggest("gate", 8).await,
        vec!["component:default/payment-gateway"]
    );
}

/// Many clients at once (queries take turns on tantivy): every query gets the answer it gets
/// alone, and none is left waiting.
async fn many_queries_at_once_get_their_own_answers(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 1).await;
    let words = ["payment", "gateway", "ledger", "team", "pay", "proxy"];
    let mut alone = Vec::new();
    for word in words {
        alone.push((
            search(backend, word).await,
            backend.suggest(word, 8).await.unwrap(),
        ));
    }
    assert!(alone.iter().any(|(hits, _)| hits.len() > 1));
    let together = futures::future::join_all((0..48).map(|client| {
        let word = words[client % words.len()];
        async move {
            let hits = search(backend, word).await;
            let suggestions = backend.suggest(word, 8).await.unwrap();
            (client % words.len(), hits, suggestions)
        }
    }));
    let together = tokio::time::timeout(std::time::Duration::from_secs(60), together)
        .await
        .expect("every query answered");
    assert_eq!(together.len(), 48);
    for (word, hits, suggestions) in together {
        assert_eq!(hits, alone[word].0, "search for {:?}", words[word]);
        assert_eq!(suggestions, alone[word].1, "suggest for {:?}", words[word]);
    }
}

async fn updates_replace_and_removals_delete(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 1).await;
    let mut renamed = payments().remove(0);
    renamed.title = "Card Acquirer".into();
    renamed.sequence = 2;
    index(backend, vec![renamed], 2).await;
    let serving = backend.serving().await.unwrap();
    assert_eq!(backend.count(&serving).await.unwrap(), 5);
    assert_eq!(
        search(backend, "acquirer").await,
        vec!["component:default/payment-gateway"]
    );
    remove(
        backend,
        &[
            "component:default/payment-gateway",
            "component:default/never-there",
        ],
        3,
    )
    .await;
    assert!(search(backend, "acquirer").await.is_empty());
    assert_eq!(backend.count(&serving).await.unwrap(), 4);
    assert_eq!(backend.checkpoint(&serving).await.unwrap(), 3);
}

async fn checkpoints_and_documents_survive_a_restart(subject: Subject) {
    index(&*subject.backend, payments(), 42).await;
    let serving = subject.backend.serving().await.unwrap();
    let restarted = subject.restarted().await;
    let reopened = &*restarted.backend;
    assert_eq!(reopened.serving().await.unwrap(), serving);
    assert_eq!(reopened.checkpoint(&serving).await.unwrap(), 42);
    assert_eq!(search(reopened, "ledger").await.len(), 2);
}

async fn a_rebuilt_index_serves_only_once_switched(subject: Subject) {
    let backend = &*subject.backend;
    index(backend, payments(), 5).await;
    let old = backend.serving().await.unwrap();
    let new = backend.create_index().await.unwrap();
    assert_ne!(old, new);
    assert_eq!(backend.checkpoint(&new).await.unwrap(), 0);
    backend
        .write(
            &new,
            IndexBatch {
                upserts: vec![component(
                    "fresh-service",
                    "team-new",
                    "only in the new index",
                )],
                checkpoint: Some(9),
                ..IndexBatch::default()
            },
        )
        .await
        .unwrap();
    backend.refresh(&new).await.unwrap();
    // The old index still serves while the new one fills.
    assert!(search(backend, "fresh").await.is_empty());
    assert_eq!(search(backend, "gateway").await.len(), 2);
    backend.switch_to(&new).await.unwrap();
    assert_eq!(backend.serving().await.unwrap(), new);
    assert_eq!(
        search(backend, "fresh").await,
        vec!["component:default/fresh-service"]
    );
    assert!(search(backend, "gateway").await.is_empty());
    assert_eq!(backend.checkpoint(&new).await.unwrap(), 9);
    // The old index is gone.
    assert!(backend.count(&old).await.is_err());
    // An unfinished index can be dropped; the serving one cannot.
    let abandoned = backend.create_index().await.unwrap();
    backend.drop_index(&abandoned).await.unwrap();
    assert!(matches!(
        backend.drop_index(&new).await,
        Err(SearchError::Index(_))
    ));
    // A restart serves the new index.
    let restarted = subject.restarted().await;
    let reopened = &*restarted.backend;
    assert_eq!(reopened.serving().await.unwrap(), new);
    assert_eq!(
        search(reopened, "fresh").await,
        vec!["component:default/fresh-service"]
    );
}

macro_rules! conformance {
    ($($scenario:ident),* $(,)?) => {
        mod on_tantivy {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::tantivy().await).await;
                }
            )*
        }
        mod on_opensearch {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::opensearch().await).await;
                }
            )*
        }
    };
}

conformance!(
    the_examples_are_each_found_by_their_name,
    separators_prefixes_typos_and_case_all_match,
    names_and_titles_rank_above_descriptions,
    filters_narrow_and_facets_count,
    highlights_mark_the_matching_words,
    cursors_walk_every_hit_once,
    totals_past_the_cap_are_lower_bounds,
    suggestions_complete_names_first,
    many_queries_at_once_get_their_own_answers,
    updates_replace_and_removals_delete,
    checkpoints_and_documents_survive_a_restart,
    a_rebuilt_index_serves_only_once_switched,
);

/// Replicas starting together on an empty cluster end up serving one and the same index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_share_one_opensearch_index() {
    let mut settings = OpenSearchSettings::new(&cadastre_testkit::opensearch_url());
    settings.index_prefix = format!("test-{}", uuid_like());
    let connecting = (0..4).map(|_| OpenSearchBackend::connect(settings.clone()));
    let replicas = futures::future::join_all(connecting).await;
    let mut serving = Vec::new();
    for replica in replicas {
        serving.push(replica.unwrap().serving().await.unwrap());
    }
    serving.dedup();
    assert_eq!(serving.len(), 1, "{serving:?}");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let aliased: serde_json::Value = reqwest::get(format!(
        "{}/_alias/{}-entities",
        cadastre_testkit::opensearch_url().trim_end_matches('/'),
        settings.index_prefix
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        aliased.as_object().unwrap().len(),
        1,
        "the alias names several indexes: {aliased}"
    );
    // And the alias names only it: what one replica writes, every other one finds.
    let (first, second) = (
        OpenSearchBackend::connect(settings.clone()).await.unwrap(),
        OpenSearchBackend::connect(settings.clone()).await.unwrap(),
    );
    index(
        &first,
        vec![component("shared-service", "team-s", "shared")],
        1,
    )
    .await;
    second.refresh(&serving[0]).await.unwrap();
    assert_eq!(
        search(&second, "shared-service").await,
        ["component:default/shared-service"]
    );
}
