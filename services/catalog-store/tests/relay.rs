//! The change feed relayed to the bus: every committed change, in order, resuming where it
//! stopped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::memory::InProcessBus;
use cadastre_bus::subjects::SEARCH_INDEXER;
use cadastre_bus::{Bus, Consumer};
use cadastre_catalog_store::Batch;
use cadastre_proto::v1 as pb;
use common::component;

async fn next_change(consumer: &mut Box<dyn Consumer>) -> pb::ChangeEvent {
    let delivery = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a change within 10 s")
        .unwrap();
    let event = delivery.decode().unwrap();
    delivery.ack().await.unwrap();
    event
}

#[tokio::test]
async fn every_change_reaches_the_bus_once_in_order() {
    let harness = common::sqlite().await;
    let store = harness.store.clone();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new());
    let mut search = bus.consume(&SEARCH_INDEXER).await.unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let relay = tokio::spawn(cadastre_catalog_store::bus::relay_changes(
        Arc::clone(&bus),
        store.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    store
        .apply_batch(Batch {
            upserts: vec![
                component("a", "team-a", "url:x"),
                component("b", "team-a", "url:x"),
            ],
            ..Batch::default()
        })
        .await
        .unwrap();
    let first = next_change(&mut search).await;
    let second = next_change(&mut search).await;
    assert_eq!(
        (first.entity_ref.as_str(), second.entity_ref.as_str()),
        ("component:default/a", "component:default/b")
    );
    assert!(second.sequence > first.sequence);
    let _ = stop.send(());
    relay.await.unwrap().unwrap();

    // Changes committed while no relay runs are published when one starts again, and what
    // was published before is not published again.
    store
        .apply_batch(Batch {
            removals: vec!["component:default/a".into()],
            ..Batch::default()
        })
        .await
        .unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(cadastre_catalog_store::bus::relay_changes(
        Arc::clone(&bus),
        store.clone(),
        async {
            let _ = stopped.await;
        },
    ));
    let removed = next_change(&mut search).await;
    assert_eq!(removed.entity_ref, "component:default/a");
    assert!(removed.sequence > second.sequence);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), search.next())
            .await
            .is_err(),
        "nothing published twice"
    );
}
