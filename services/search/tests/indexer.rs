//! The indexer against a real catalog-store (SQLite, served over gRPC on loopback) and the
//! search service over gRPC: the index follows the store's change feed, a rebuild while
//! changes flow loses none of them, and bad requests are refused clearly. On tantivy and on
//! the OpenSearch node `scripts/test` starts.

#[path = "../../catalog-store/tests/common/mod.rs"]
mod store_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cadastre_catalog_store::{Batch, CatalogStore, ChangeKind};
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::search_service_client::SearchServiceClient;
use cadastre_search::SearchBackend;
use cadastre_search::indexer::Indexer;
use cadastre_search::opensearch::{OpenSearchBackend, OpenSearchSettings};
use cadastre_search::server::SearchGrpc;
use cadastre_search::tantivy::TantivyBackend;
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

struct Running {
    store: CatalogStore,
    search: SearchServiceClient<Channel>,
    search_channel: Channel,
    stop: tokio::sync::watch::Sender<bool>,
    _harness: store_common::Harness,
    _dir: Option<tempfile::TempDir>,
}

enum Backend {
    Tantivy,
    OpenSearch,
}

async fn serve_on_loopback() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

async fn start(kind: Backend) -> Running {
    let harness = store_common::sqlite().await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        }
    };
    let (listener, store_url) = serve_on_loopback().await;
    tokio::spawn(cadastre_catalog_store::server::run(
        harness.store.clone(),
        listener,
        shutdown(),
        Duration::from_secs(1),
    ));
    let (backend, dir): (Arc<dyn SearchBackend>, _) = match kind {
        Backend::Tantivy => {
            let dir = tempfile::tempdir().unwrap();
            let backend = TantivyBackend::open(dir.path().join("search")).unwrap();
            (Arc::new(backend), Some(dir))
        }
        Backend::OpenSearch => {
            let mut settings = OpenSearchSettings::new(&cadastre_testkit::opensearch_url());
            settings.index_prefix = format!(
                "indexer-{}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            );
            (
                Arc::new(OpenSearchBackend::connect(settings).await.unwrap()),
                None,
            )
        }
    };
    let store_channel =
        cadastre_proto::transport::remote(Channel::from_shared(store_url).unwrap().connect_lazy());
    let indexer = Indexer::new(Arc::clone(&backend), store_channel);
    let follower = Arc::clone(&indexer);
    let follow_stop = shutdown();
    tokio::spawn(async move { follower.follow(follow_stop).await.unwrap() });
    let (listener, search_url) = serve_on_loopback().await;
    tokio::spawn(cadastre_search::server::run(
        SearchGrpc::new(backend, Some(indexer)),
        listener,
        shutdown(),
        Duration::from_secs(1),
    ));
    let search_channel = Channel::from_shared(search_url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        store: harness.store.clone(),
        search: SearchServiceClient::new(search_channel.clone()),
        search_channel,
        stop,
        _harness: harness,
        _dir: dir,
    }
}

/// Started, with the shared examples stored and indexed.
async fn start_with_examples(kind: Backend) -> Running {
    let mut running = start(kind).await;
    running
        .store
        .apply_batch(store_common::examples_batch())
        .await
        .unwrap();
    running.caught_up().await;
    running
}

impl Running {
    /// Waits until the index has applied every change the store has made (and, on
    /// OpenSearch, refreshed), for at most 60 s: until it holds every stored ref with the etag
    /// of that entity's last change of content.
    async fn caught_up(&mut self) {
        let head = self.store.head_sequence().await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let status = self
                .search
                .get_index_status(pb::GetIndexStatusRequest {})
                .await
                .unwrap()
                .into_inner();
            // Pages are offsets, so while the index still moves a ref may show on two pages.
            let indexed = self.pages().await;
            if status.sequence >= head && indexed.as_ref() == Some(&self.stored().await) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the index is at {} of {head}: {:?} documents, the store holds {}",
                status.sequence,
                indexed.map(|all| all.len()),
                self.stored().await.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every (ref, etag) a caught-up index serves, paged with cursors; each ref once.
    async fn indexed(&mut self) -> BTreeMap<String, String> {
        self.pages()
            .await
            .expect("a ref on two pages of an index at rest")
    }

    /// Every (ref, etag) on the pages, or `None` if a ref showed twice.
    async fn pages(&mut self) -> Option<BTreeMap<String, String>> {
        let mut all = BTreeMap::new();
        let mut cursor = String::new();
        loop {
            let page = self
                .search
                .search(pb::SearchRequest {
                    limit: 100,
                    cursor: cursor.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for hit in page.hits {
                if all.insert(hit.entity_ref, hit.etag).is_some() {
                    return None;
                }
            }
            if page.next_cursor.is_empty() {
                return Some(all);
            }
            cursor = page.next_cursor;
        }
    }

    /// Every stored ref with the etag its document must carry: that of the entity's latest
    /// change other than of its relations alone (those leave documents as they are).
    async fn stored(&self) -> BTreeMap<String, String> {
        let current = self.current_etags().await;
        let mut expected = BTreeMap::new();
        for change in self.store.changes_after(0, 1_000_000).await.unwrap() {
            if change.change != ChangeKind::Relations {
                expected.insert(change.entity_ref, change.etag);
            }
        }
        expected.retain(|entity_ref, _| current.contains_key(entity_ref));
        assert_eq!(
            expected.len(),
            current.len(),
            "a stored entity without a change"
        );
        expected
    }

    /// Every stored ref with its etag now.
    async fn current_etags(&self) -> BTreeMap<String, String> {
        self.store
            .entities_after(None, 100_000)
            .await
            .unwrap()
            .into_iter()
            .map(|entity| (entity.entity_ref, entity.etag))
            .collect()
    }

    async fn search(&mut self, text: &str) -> Vec<pb::SearchHit> {
        self.search
            .search(pb::SearchRequest {
                query: text.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .hits
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn describe(batch: &mut Batch, name: &str, description: &str) {
    let upsert = batch
        .upserts
        .iter_mut()
        .find(|u| u.body["metadata"]["name"] == name)
        .unwrap();
    upsert.body["metadata"]["description"] = description.into();
}

async fn the_index_follows_every_change(kind: Backend) {
    let mut running = start_with_examples(kind).await;
    assert!(running.indexed().await.len() > 40);

    let mut changed = store_common::examples_batch();
    describe(&mut changed, "artist-lookup", "Now with zeppelins");
    running.store.apply_batch(changed).await.unwrap();
    running.caught_up().await;
    let hits = running.search("zeppelins").await;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].entity_ref, "component:default/artist-lookup");

    running
        .store
        .apply_batch(Batch {
            removals: vec!["component:default/artist-lookup".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    running.caught_up().await;
    assert!(running.search("zeppelins").await.is_empty());
}

/// A component joining a group moves the group's etag in the store (its relations changed)
/// but not its content: the group's document is not rewritten, the component's is written.
async fn a_change_of_only_relations_rewrites_no_document(kind: Backend) {
    let mut running = start_with_examples(kind).await;
    let group = "group:default/team-a";
    let indexed_before = running.indexed().await[group].clone();
    running
        .store
        .apply_batch(Batch {
            upserts: vec![store_common::component(
                "joins-team-a",
                "team-a",
                "file:/joins.yaml",
            )],
            ..Batch::default()
        })
        .await
        .unwrap();
    let current = running.current_etags().await;
    assert_ne!(current[group], indexed_before, "the group's etag moved");
    running.caught_up().await;
    let indexed = running.indexed().await;
    assert_eq!(indexed[group], indexed_before, "the group's document stays");
    let newcomer = "component:default/joins-team-a";
    assert_eq!(indexed[newcomer], current[newcomer]);
}

async fn a_rebuild_while_changes_flow_misses_none(kind: Backend) {
    let mut running = start_with_examples(kind).await;
    let before = running
        .search
        .get_index_status(pb::GetIndexStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut client = running.search.clone();
    let rebuild = tokio::spawn(async move { client.rebuild(pb::RebuildRequest {}).await });
    for round in 0..20 {
        let upserts = (0..10)
            .map(|i| {
                store_common::component(
                    &format!("during-rebuild-{round}-{i}"),
                    "team-r",
                    "file:/r.yaml",
                )
            })
            .collect();
        running
            .store
            .apply_batch(Batch {
                upserts,
                ..Batch::default()
            })
            .await
            .unwrap();
    }
    let report = rebuild.await.unwrap().unwrap().into_inner();
    assert_ne!(report.index, before.index);
    running.caught_up().await;
    let status = running
        .search
        .get_index_status(pb::GetIndexStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.index, report.index);
    assert!(!status.rebuilding);
    assert_eq!(running.indexed().await.len(), running.stored().await.len());
    assert_eq!(
        running.search("during rebuild").await.len(),
        25,
        "a full first page"
    );
}

async fn bad_requests_are_invalid_arguments(kind: Backend) {
    let running = start(kind).await;
    let mut client = running.search.clone();
    let search = |request: pb::SearchRequest| {
        let mut client = client.clone();
        async move { client.search(request).await.unwrap_err() }
    };
    let too_big = search(pb::SearchRequest {
        limit: 500,
        ..Default::default()
    })
    .await;
    assert_eq!(too_big.code(), Code::InvalidArgument);
    assert!(
        too_big.message().contains("largest page"),
        "{}",
        too_big.message()
    );
    let cursor = search(pb::SearchRequest {
        cursor: "not-a-cursor".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(cursor.code(), Code::InvalidArgument);
    let facet = search(pb::SearchRequest {
        facets: vec!["colour".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(facet.code(), Code::InvalidArgument);
    assert!(facet.message().contains("colour"));
    let suggest = client
        .suggest(pb::SuggestRequest {
            prefix: "a".into(),
            limit: 50,
        })
        .await
        .unwrap_err();
    assert_eq!(suggest.code(), Code::InvalidArgument);
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(running.search_channel.clone());
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cadastre.v1.SearchService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
}

macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {
        mod on_tantivy {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::Tantivy).await;
                }
            )*
        }
        mod on_opensearch {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::OpenSearch).await;
                }
            )*
        }
    };
}

on_both!(
    the_index_follows_every_change,
    a_change_of_only_relations_rewrites_no_document,
    a_rebuild_while_changes_flow_misses_none,
    bad_requests_are_invalid_arguments,
);
