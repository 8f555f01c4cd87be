//! A first import into an empty store defers its read-only indexes and builds them once the
//! writer is idle; reads answer the same meanwhile, and a crash in between leaves them to
//! build at the next open. On SQLite and on PostgreSQL.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use cadastre_catalog_store::{
    Batch, CatalogStore, EntityQuery, POSTGRES_SEARCH_INDEXES, ProcessedBatch, Receipt,
    deferrable_indexes,
};
use cadastre_query::{OrderField, Predicate, legacy_filter};
use common::{Harness, component};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::common::sqlite().await).await } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::common::postgres().await).await } )*
        }
    };
}

on_both_backends!(
    a_first_import_builds_its_read_indexes_once_it_is_done,
    indexes_a_crash_left_deferred_are_built_at_the_next_open,
    small_groups_keep_the_indexes,
);

/// Batches in the smallest group that defers the read indexes.
const LARGE_GROUP: usize = 64;

fn backend(url: &str) -> DbBackend {
    if url.starts_with("sqlite:") {
        DbBackend::Sqlite
    } else {
        DbBackend::Postgres
    }
}

/// The indexes a first import defers on the harness's backend.
fn deferred(url: &str) -> Vec<&'static str> {
    deferrable_indexes(backend(url))
}

/// Rows of `sql` (two text columns) on the database behind `url`, through a connection of
/// their own.
async fn pairs(url: &str, sql: &str) -> BTreeMap<String, String> {
    let db = Database::connect(url).await.unwrap();
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    rows.iter()
        .map(|row| {
            (
                row.try_get_by_index(0).unwrap(),
                row.try_get_by_index(1).unwrap(),
            )
        })
        .collect()
}

/// Every index of the database, by name, with the statement that creates it.
async fn indexes(url: &str) -> BTreeMap<String, String> {
    let sql = match backend(url) {
        DbBackend::Postgres => {
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        }
        _ => "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
    };
    pairs(url, sql).await
}

async fn deferred_records(url: &str) -> usize {
    pairs(url, "SELECT name, definition FROM deferred_indexes")
        .await
        .len()
}

/// `count` batches of one harvest, two components each, owned by three teams.
fn group(harvest: &str, count: usize) -> Vec<ProcessedBatch> {
    (0..count)
        .map(|n| {
            let upserts = (0..2)
                .map(|i| {
                    let name = format!("{harvest}-{n}-{i}");
                    let mut upsert = component(
                        &name,
                        &format!("team-{}", n % 3),
                        &format!("url:{name}.yaml"),
                    );
                    upsert.body["spec"]["system"] = format!("system-{}", n % 4).into();
                    upsert
                })
                .collect();
            ProcessedBatch {
                batch_id: format!("{harvest}/{n}"),
                batch: Batch {
                    upserts,
                    ..Batch::default()
                },
                receipt: Receipt {
                    harvest_id: format!("{harvest}/{n}"),
                    location_key: format!("url:{harvest}-{n}"),
                    trigger: "registered".into(),
                    files_read: 2,
                    parts: 1,
                    ..Receipt::default()
                },
            }
        })
        .collect()
}

async fn apply(store: &CatalogStore, batches: Vec<ProcessedBatch>) {
    for result in store.apply_processed_all(batches).await {
        result.unwrap();
    }
}

/// Lists, filters, orderings, facets and one entity's history: what the deferred indexes
/// serve, answered as text to compare.
async fn reads(store: &CatalogStore) -> Vec<String> {
    let mut answers = Vec::new();
    for (filters, order) in [
        (vec!["kind=component", "spec.type=service"], "metadata.name"),
        (vec!["spec.owner=team-1"], "spec.owner"),
        (
            vec!["spec.system=system-2", "kind=component"],
            "spec.system",
        ),
        (vec![], "metadata.name"),
    ] {
        let page = store
            .query_entities(&EntityQuery {
                filter: legacy_filter::parse(&filters).unwrap(),
                order: vec![OrderField {
                    field: order.into(),
                    descending: true,
                }],
                limit: 50,
                include_total: true,
                ..EntityQuery::default()
            })
            .await
            .unwrap();
        assert!(page.total_items > 0, "{filters:?} matched nothing");
        let refs: Vec<String> = page.items.into_iter().map(|e| e.entity_ref).collect();
        answers.push(format!(
            "{filters:?} by {order}: {} {refs:?}",
            page.total_items
        ));
    }
    let facets = ["kind", "spec.type", "spec.owner", "spec.system"].map(String::from);
    let counts = store
        .facets(&facets, &Predicate::everything())
        .await
        .unwrap();
    answers.push(format!("{counts:?}"));
    let history = store
        .history("component:default/first-7-1", 10)
        .await
        .unwrap();
    assert!(!history.is_empty());
    answers.push(format!(
        "{:?}",
        history
            .iter()
            .map(|c| (c.sequence, c.generation))
            .collect::<Vec<_>>()
    ));
    answers
}

/// Waits until the store has built every deferred index.
async fn built(store: &CatalogStore) {
    let mut pending = store.watch_indexes_pending();
    tokio::time::timeout(Duration::from_secs(120), async {
        while *pending.borrow_and_update() > 0 {
            pending.changed().await.unwrap();
        }
    })
    .await
    .expect("the deferred indexes built within two minutes");
}

async fn a_first_import_builds_its_read_indexes_once_it_is_done(harness: Harness) {
    let store = &harness.store;
    let deferred = deferred(&harness.url);
    let schema = indexes(&harness.url).await;
    for name in &deferred {
        assert!(schema.contains_key(*name), "{name} in {schema:?}");
    }
    assert_eq!(store.indexes_pending(), 0);

    // An import's first groups are small, taken while the rest is read.
    apply(store, group("seed", 3)).await;
    assert_eq!(store.indexes_pending(), 0);
    apply(store, group("first", LARGE_GROUP)).await;
    // The builder waits for two idle seconds: this look comes right after the commit.
    assert_eq!(store.indexes_pending(), deferred.len() as u32);
    let during = indexes(&harness.url).await;
    for name in &deferred {
        assert!(!during.contains_key(*name), "{name} still there");
    }
    assert_eq!(deferred_records(&harness.url).await, deferred.len());
    assert!(during.contains_key("relation_edges_target"));

    // Writes and reads go on meanwhile; reads scan instead of seeking.
    apply(store, group("second", 3)).await;
    assert_eq!(store.indexes_pending(), deferred.len() as u32);
    let while_deferred = reads(store).await;

    built(store).await;
    assert_eq!(
        indexes(&harness.url).await,
        schema,
        "rebuilt as the migrations made them"
    );
    assert_eq!(deferred_records(&harness.url).await, 0);
    assert_eq!(reads(store).await, while_deferred);
    assert_eq!(
        store.entity_count().await.unwrap(),
        2 * (LARGE_GROUP as u64 + 6)
    );
}

async fn indexes_a_crash_left_deferred_are_built_at_the_next_open(harness: Harness) {
    let deferred = deferred(&harness.url);
    let schema = indexes(&harness.url).await;
    apply(&harness.store, group("first", LARGE_GROUP)).await;
    assert_eq!(harness.store.indexes_pending(), deferred.len() as u32);
    // Gone before the writer was idle long enough to build anything.
    drop(harness.store);

    let reopened = CatalogStore::connect(&harness.url).await.unwrap();
    assert_eq!(reopened.indexes_pending(), deferred.len() as u32);
    built(&reopened).await;
    assert_eq!(indexes(&harness.url).await, schema);
    // A store with entities never defers again.
    apply(&reopened, group("again", LARGE_GROUP)).await;
    assert_eq!(reopened.indexes_pending(), 0);
    assert_eq!(indexes(&harness.url).await, schema);
}

async fn small_groups_keep_the_indexes(harness: Harness) {
    let schema = indexes(&harness.url).await;
    apply(&harness.store, group("small", LARGE_GROUP - 1)).await;
    assert_eq!(harness.store.indexes_pending(), 0);
    assert_eq!(indexes(&harness.url).await, schema);
}

/// A PostgreSQL replica that did not defer the indexes learns of them from the database and
/// reports them until another builds them.
#[tokio::test]
async fn a_postgres_replica_reports_what_another_deferred() {
    let harness = common::postgres().await;
    let replica = CatalogStore::connect(&harness.url).await.unwrap();
    apply(&harness.store, group("first", LARGE_GROUP)).await;
    let deferred = deferred(&harness.url);
    for index in POSTGRES_SEARCH_INDEXES {
        assert!(deferred.contains(&index), "{index} deferred: {deferred:?}");
    }
    assert_eq!(harness.store.indexes_pending(), deferred.len() as u32);
    let mut pending = replica.watch_indexes_pending();
    tokio::time::timeout(Duration::from_secs(30), async {
        while *pending.borrow_and_update() == 0 {
            pending.changed().await.unwrap();
        }
    })
    .await
    .expect("the replica saw the deferred indexes");
    built(&replica).await;
    built(&harness.store).await;
    assert_eq!(deferred_records(&harness.url).await, 0);
}
