//! The pipeline as real processes (`cadastre store`, `cadastre harvester`,
//! `cadastre processor`) on a real NATS (`CADASTRE_TEST_NATS_URL`, started by `scripts/test`):
//! the processor is killed (SIGKILL) in the middle of a large location and started again; no
//! entity is lost and none is written twice.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadastre_bus::nats::{JetStreamBus, StreamSettings};
use cadastre_bus::subjects::HARVEST_REQUESTS;
use cadastre_catalog_store::{CatalogStore, ChangeKind};
use cadastre_proto::v1 as pb;
use cadastre_synth::Organisation;

mod common;

use common::{free_port, log_tails, start, wait_for_port};

const ENTITIES: usize = 12_000;
const PER_FILE: usize = 10;

fn write_location(dir: &Path) {
    let org = Organisation::new(11, ENTITIES);
    std::fs::create_dir_all(dir).unwrap();
    for file in 0..ENTITIES.div_ceil(PER_FILE) {
        let documents: Vec<String> = (file * PER_FILE..((file + 1) * PER_FILE).min(ENTITIES))
            .map(|index| org.entity(index).to_string())
            .collect();
        // JSON is YAML: one flow-style document per entity.
        std::fs::write(
            dir.join(format!("entities-{file:05}.yaml")),
            documents.join("\n---\n"),
        )
        .unwrap();
    }
}

async fn count(store: &CatalogStore) -> usize {
    usize::try_from(store.entity_count().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processor_killed_mid_harvest_loses_and_duplicates_nothing() {
    let nats = cadastre_testkit::nats_url();
    let scratch = tempfile::tempdir().unwrap();
    let location = scratch.path().join("catalog");
    write_location(&location);
    let namespace = format!("c{}", uuid::Uuid::new_v4().simple());
    let database = scratch.path().join("catalog.db");
    let database_url = format!("sqlite://{}?mode=rwc", database.display());
    let port = free_port();
    let config = scratch.path().join("cadastre.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\ndatabase_url = \"{database_url}\"\nlisten = \"127.0.0.1:{port}\"\n\n[bus]\nnats_url = \"{nats}\"\nnamespace = \"{namespace}\"\n\n[harvester]\nrefresh_interval_secs = 0\ncache_dir = \"{}\"\n",
            scratch.path().join("cache").display()
        ),
    )
    .unwrap();
    let logs = scratch.path();
    let _store = start(&config, &["store"], &logs.join("store.log"));
    let _harvester = start(&config, &["harvester"], &logs.join("harvester.log"));
    let mut processor = start(&config, &["processor"], &logs.join("processor-1.log"));

    // The store serves gRPC once its schema is in place; then open the same database to watch.
    wait_for_port(port, logs).await;
    let store = CatalogStore::connect(&database_url).await.unwrap();
    let bus = Arc::new(
        JetStreamBus::connect(
            &nats,
            StreamSettings {
                namespace: namespace.clone(),
                ..StreamSettings::default()
            },
        )
        .await
        .unwrap(),
    );
    let key = format!("file:{}/*.yaml", location.display());
    HARVEST_REQUESTS
        .publish(
            &*bus,
            &pb::HarvestRequest {
                location_key: key.clone(),
                trigger: pb::HarvestTrigger::Registered.into(),
                request_id: "register".into(),
                ..Default::default()
            },
            Some("register".into()),
            None,
        )
        .await
        .unwrap();

    // Kill the processor once some, not all, of the location is in the store.
    let deadline = Instant::now() + Duration::from_secs(120);
    let at_kill = loop {
        let stored = count(&store).await;
        if stored > 0 {
            break stored;
        }
        assert!(
            Instant::now() < deadline,
            "nothing arrived:\n{}",
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    processor.0.kill().unwrap();
    processor.0.wait().unwrap();
    let after_kill = count(&store).await;
    assert!(
        after_kill < ENTITIES,
        "the processor finished ({after_kill} entities) before it could be killed: make the location larger"
    );

    // Started again, it picks up what the killed one left unacknowledged.
    let _processor = start(&config, &["processor"], &logs.join("processor-2.log"));
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let stored = count(&store).await;
        if stored >= ENTITIES {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{stored} of {ENTITIES} entities after the restart (killed at {at_kill}):\n{}",
            log_tails(logs)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The second processor did work the first left: the kill really was mid-harvest.
    let second_log = std::fs::read_to_string(logs.join("processor-2.log")).unwrap();
    assert!(
        second_log.contains("processed"),
        "the restarted processor processed nothing:\n{second_log}"
    );
    // Let redeliveries settle, then check nothing was written twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count(&store).await, ENTITIES);
    let org = Organisation::new(11, ENTITIES);
    for index in (0..ENTITIES).step_by(97) {
        let entity_ref = org.entity_ref(index);
        let history = store.history(&entity_ref, 0).await.unwrap();
        let created = history
            .iter()
            .filter(|c| c.change == ChangeKind::Created)
            .count();
        let updated = history
            .iter()
            .filter(|c| c.change == ChangeKind::Updated)
            .count();
        assert_eq!((created, updated), (1, 0), "{entity_ref}: {history:?}");
        let entity = store.entity_by_ref(&entity_ref).await.unwrap().unwrap();
        assert_eq!(entity.generation, 1, "{entity_ref}");
    }
}
