//! `cadastre search` as a real process, killed (SIGKILL) while it is working through the
//! store's change feed, then started again: the index ends equal to the store, the same refs
//! with the same etags. On tantivy, and on the OpenSearch node `scripts/test` starts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use cadastre_catalog_store::{Batch, CatalogStore, Upsert};
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::search_service_client::SearchServiceClient;
use cadastre_synth::Organisation;
use common::{free_port, log_tails, start, wait_for_port};
use tonic::transport::Channel;

/// Few enough to page through the whole index (its window is 10,000 hits), enough that
/// indexing takes a while.
const ENTITIES: usize = 8_000;
const BATCH: usize = 400;

fn batch(org: &Organisation, range: std::ops::Range<usize>, description: &str) -> Batch {
    Batch {
        upserts: range
            .map(|index| {
                let mut body = org.entity(index);
                body["metadata"]["description"] = description.into();
                Upsert {
                    body,
                    edges: Vec::new(),
                    location_key: Some("file:/synthetic.yaml".into()),
                    origin_location: Some("file:/synthetic.yaml".into()),
                    parent_ref: None,
                    commit: None,
                }
            })
            .collect(),
        ..Batch::default()
    }
}

async fn status(client: &mut SearchServiceClient<Channel>) -> Option<pb::IndexStatus> {
    client
        .get_index_status(pb::GetIndexStatusRequest {})
        .await
        .ok()
        .map(|response| response.into_inner())
}

/// Every ref the index serves, with its etag; `Err` naming a ref that paging met twice.
/// Pages are offsets into the results: on OpenSearch, documents a refresh makes searchable (or
/// removes) between two pages shift the ones after them, so while the last round becomes
/// searchable (its checkpoint is readable at once) a ref can show up on two pages. A ref
/// indexed twice shows up twice every time, and the test ends at its deadline.
async fn indexed(
    client: &mut SearchServiceClient<Channel>,
) -> Result<BTreeMap<String, String>, String> {
    let mut all = BTreeMap::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .search(pb::SearchRequest {
                limit: 100,
                cursor,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for hit in page.hits {
            if all.insert(hit.entity_ref.clone(), hit.etag).is_some() {
                return Err(hit.entity_ref);
            }
        }
        if page.next_cursor.is_empty() {
            return Ok(all);
        }
        cursor = page.next_cursor;
    }
}

async fn stored(store: &CatalogStore) -> BTreeMap<String, String> {
    store
        .entities_after(None, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|entity| (entity.entity_ref, entity.etag))
        .collect()
}

async fn connect(port: u16, logs: &Path) -> SearchServiceClient<Channel> {
    wait_for_port(port, logs).await;
    SearchServiceClient::new(
        Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

async fn a_search_service_killed_mid_stream_ends_equal_to_the_store(opensearch: Option<String>) {
    let scratch = tempfile::tempdir().unwrap();
    let logs = scratch.path();
    let database_url = format!("sqlite://{}?mode=rwc", logs.join("catalog.db").display());
    let (store_port, search_port) = (free_port(), free_port());
    let mut config = format!(
        "[store]\ndatabase_url = \"{database_url}\"\nlisten = \"127.0.0.1:{store_port}\"\n\n\
         [search]\nlisten = \"127.0.0.1:{search_port}\"\nstore_url = \"http://127.0.0.1:{store_port}\"\n\
         index_dir = \"{}\"\nindex_prefix = \"crash-{}\"\n",
        logs.join("search").display(),
        uuid::Uuid::new_v4().simple()
    );
    if let Some(url) = &opensearch {
        config.push_str(&format!("opensearch_url = \"{url}\"\n"));
    }
    let config_path = logs.join("cadastre.toml");
    std::fs::write(&config_path, config).unwrap();

    let _store = start(&config_path, &["store"], &logs.join("store.log"));
    wait_for_port(store_port, logs).await;
    let store = CatalogStore::connect(&database_url).await.unwrap();
    let org = Organisation::new(5, ENTITIES);
    for first in (0..ENTITIES).step_by(BATCH) {
        store
            .apply_batch(batch(&org, first..(first + BATCH).min(ENTITIES), "first"))
            .await
            .unwrap();
    }
    let head = store.head_sequence().await.unwrap();

    // Kill the search service once it has made some, but not all, of the feed durable.
    let search = start(&config_path, &["search"], &logs.join("search-1.log"));
    let mut client = connect(search_port, logs).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let killed_at = loop {
        assert!(
            Instant::now() < deadline,
            "no progress:\n{}",
            log_tails(logs)
        );
        if let Some(status) = status(&mut client).await
            && status.sequence > 0
        {
            search.crash();
            break status.sequence;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        killed_at < head,
        "the index had caught up ({killed_at} of {head}) before the kill: make the feed longer"
    );

    // Changes keep coming while search is down: every fifth entity changes.
    let changed = batch(&org, 0..ENTITIES, "second");
    let changed = Batch {
        upserts: changed.upserts.into_iter().step_by(5).collect(),
        ..Batch::default()
    };
    store.apply_batch(changed).await.unwrap();
    store
        .apply_batch(Batch {
            removals: vec![org.entity_ref(1), org.entity_ref(2)],
            ..Batch::default()
        })
        .await
        .unwrap();
    let head = store.head_sequence().await.unwrap();

    let _search = start(&config_path, &["search"], &logs.join("search-2.log"));
    let mut client = connect(search_port, logs).await;
    let expected = stored(&store).await;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut seen_twice = None;
    loop {
        let status = status(&mut client).await.unwrap();
        if status.sequence == head {
            match indexed(&mut client).await {
                Ok(index) if index == expected => break,
                Ok(_) => {}
                Err(entity_ref) => seen_twice = Some(entity_ref),
            }
        }
        assert!(
            Instant::now() < deadline,
            "the index is at {} of {head} (last ref seen twice: {seen_twice:?}):\n{}",
            status.sequence,
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(expected.len(), ENTITIES - 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_tantivy() {
    a_search_service_killed_mid_stream_ends_equal_to_the_store(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_opensearch() {
    a_search_service_killed_mid_stream_ends_equal_to_the_store(Some(
        cadastre_testkit::opensearch_url(),
    ))
    .await;
}
