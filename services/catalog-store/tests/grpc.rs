//! `CatalogService` over real gRPC on loopback: the adapter's conversions, status codes,
//! streams, the health service, and a graceful shutdown.

mod common;

use std::time::Duration;

use cadastre_catalog_store::grpc::to_proto_predicate;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

struct Running {
    client: CatalogServiceClient<Channel>,
    channel: Channel,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    _harness: common::Harness,
}

async fn start() -> Running {
    let harness = common::sqlite().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let store = harness.store.clone();
    let server = tokio::spawn(async move {
        cadastre_catalog_store::server::run(
            store,
            listener,
            async {
                let _ = stopped.await;
            },
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    });
    let channel = Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        client: CatalogServiceClient::new(channel.clone()),
        channel,
        stop,
        server,
        _harness: harness,
    }
}

fn batch_request(batch: cadastre_catalog_store::Batch) -> pb::ApplyBatchRequest {
    pb::ApplyBatchRequest {
        upserts: batch
            .upserts
            .into_iter()
            .map(|upsert| pb::EntityUpsert {
                body_json: upsert.body.to_string().into_bytes(),
                edges: upsert
                    .edges
                    .into_iter()
                    .map(|edge| pb::RelationEdge {
                        source_ref: edge.source,
                        r#type: edge.relation_type,
                        target_ref: edge.target,
                    })
                    .collect(),
                location_key: upsert.location_key.unwrap_or_default(),
                origin_location: upsert.origin_location.unwrap_or_default(),
                parent_ref: upsert.parent_ref.unwrap_or_default(),
                commit: upsert.commit.unwrap_or_default(),
            })
            .collect(),
        removals: batch.removals,
        errors: Vec::new(),
        replaced_locations: batch.replaced_locations,
    }
}

#[tokio::test]
async fn serves_reads_writes_and_streams() {
    let mut running = start().await;
    let client = &mut running.client;

    let mut health = tonic_health::pb::health_client::HealthClient::new(running.channel.clone());
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "cadastre.v1.CatalogService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    // Follow the change feed from the start while writing.
    let mut feed = client
        .watch_changes(pb::WatchChangesRequest {
            after_sequence: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();

    let batch = common::examples_batch();
    let count = batch.upserts.len();
    let applied = client
        .apply_batch(batch_request(batch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(applied.created as usize, count);

    let first = tokio::time::timeout(Duration::from_secs(10), feed.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.sequence, 1);
    assert_eq!(first.change, "upserted");

    let entity = client
        .get_entity_by_ref(pb::GetEntityByRefRequest {
            entity_ref: "component:default/artist-lookup".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let body: serde_json::Value =
        serde_json::from_slice(&entity.entity.unwrap().body_json).unwrap();
    assert_eq!(body["spec"]["owner"], "team-a");

    let missing = client
        .get_entity_by_ref(pb::GetEntityByRefRequest {
            entity_ref: "component:default/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let malformed = client
        .get_entity_by_ref(pb::GetEntityByRefRequest {
            entity_ref: "component:".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);

    // A filtered, projected page.
    let filter =
        cadastre_query::legacy_filter::parse(&["kind=component,spec.type=service"]).unwrap();
    let page = client
        .query_entities(pb::QueryEntitiesRequest {
            filter: Some(to_proto_predicate(&filter)),
            fields: vec!["metadata.name".into(), "kind".into()],
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.items.len(), 3);
    assert!(!page.next_cursor.is_empty());
    let projected: serde_json::Value =
        serde_json::from_slice(&page.items[0].entity.as_ref().unwrap().body_json).unwrap();
    assert_eq!(projected.as_object().unwrap().len(), 2, "{projected}");
    assert!(projected["metadata"]["name"].is_string());
    let next = client
        .query_entities(pb::QueryEntitiesRequest {
            cursor: page.next_cursor.clone(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.total_items, page.total_items);
    assert_eq!(next.items.len() as u64 + 3, page.total_items);

    for bad in [
        pb::QueryEntitiesRequest {
            cursor: "garbage".into(),
            ..Default::default()
        },
        pb::QueryEntitiesRequest {
            limit: 100_000,
            ..Default::default()
        },
        pb::QueryEntitiesRequest {
            fields: vec!["metadata.tags[0]".into()],
            ..Default::default()
        },
        pb::QueryEntitiesRequest {
            filter: Some(pb::Predicate { kind: None }),
            ..Default::default()
        },
    ] {
        let status = client.query_entities(bad.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}: {status:?}");
        assert!(!status.message().is_empty());
    }
    let no_facets = client
        .get_facets(pb::GetFacetsRequest {
            facets: vec![],
            filter: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (no_facets.code(), no_facets.message()),
        (Code::InvalidArgument, "Missing facet parameter")
    );

    let facets = client
        .get_facets(pb::GetFacetsRequest {
            facets: vec!["kind".into()],
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    let component = facets.facets[0]
        .values
        .iter()
        .find(|v| v.value == "Component")
        .unwrap();
    assert_eq!(component.count, 13);

    let streamed: Vec<_> = client
        .stream_entities(pb::StreamEntitiesRequest { batch_size: 10 })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(streamed.len(), count);

    // A bad batch is refused whole.
    let mut bad = batch_request(cadastre_catalog_store::Batch {
        upserts: vec![common::component("fresh", "team-a", "url:x")],
        ..Default::default()
    });
    bad.upserts.push(pb::EntityUpsert {
        body_json: b"{not json".to_vec(),
        ..Default::default()
    });
    assert_eq!(
        client.apply_batch(bad).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let absent = client
        .get_entity_by_ref(pb::GetEntityByRefRequest {
            entity_ref: "component:default/fresh".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(absent.code(), Code::NotFound);

    // Locations.
    let location = client
        .add_location(pb::AddLocationRequest {
            r#type: "url".into(),
            target: "https://example.com/catalog-info.yaml".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let again = client
        .add_location(pb::AddLocationRequest {
            r#type: "url".into(),
            target: "https://example.com/catalog-info.yaml".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    let listed = client
        .list_locations(pb::ListLocationsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.locations, std::slice::from_ref(&location));

    // The follower sees the location's entity arrive.
    let mut saw_location = false;
    while let Ok(Some(Ok(event))) = tokio::time::timeout(Duration::from_secs(10), feed.next()).await
    {
        if event.entity_ref == location.entity_ref {
            saw_location = true;
            break;
        }
    }
    assert!(saw_location);

    running.stop.send(()).unwrap();
    drop(feed);
    tokio::time::timeout(Duration::from_secs(10), running.server)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn lists_every_processing_error_in_pages() {
    let mut running = start().await;
    for (location, times) in [("url:a", [1, 4]), ("url:b", [3, 2]), ("url:c", [5, 6])] {
        let errors = times
            .iter()
            .map(|at| cadastre_catalog_store::ProcessingError {
                location_key: location.into(),
                entity_ref: None,
                file: format!("{location}.yaml"),
                finding: cadastre_model::Finding::error(
                    cadastre_model::Rule::NameFormat,
                    "metadata.name",
                    format!("{location} at {at}"),
                ),
                recorded_at: *at,
            })
            .collect();
        running
            ._harness
            .store
            .apply_batch(cadastre_catalog_store::Batch {
                errors: vec![cadastre_catalog_store::LocationErrors {
                    location_key: location.into(),
                    errors,
                }],
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let client = &mut running.client;
    let mut listed = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = client
            .list_processing_errors(pb::ListProcessingErrorsRequest {
                scope: None,
                limit: 4,
                cursor: cursor.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.errors.into_iter().map(|e| e.finding.unwrap().message));
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    assert_eq!(
        listed,
        [
            "url:c at 6",
            "url:c at 5",
            "url:a at 4",
            "url:b at 3",
            "url:b at 2",
            "url:a at 1"
        ]
    );
    // A cursor with a scope, or a malformed one: INVALID_ARGUMENT.
    for bad in [
        pb::ListProcessingErrorsRequest {
            scope: Some(pb::list_processing_errors_request::Scope::LocationKey(
                "url:a".into(),
            )),
            limit: 4,
            cursor: "3130".into(),
        },
        pb::ListProcessingErrorsRequest {
            scope: None,
            limit: 4,
            cursor: "garbage".into(),
        },
    ] {
        let status = client.list_processing_errors(bad).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
}
