//! catalog-store on the bus: it applies the processor's batches, and relays its change feed
//! (the outbox) to `catalog.entities.changed`.

use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::subjects::{ENTITY_CHANGES, STORE_WRITER};
use cadastre_bus::worker::{self, Handled};
use cadastre_bus::{Bus, BusError};
use cadastre_proto::v1 as pb;
use sea_orm::ConnectionTrait;

use crate::sql::Sql;
use crate::{CatalogStore, StoreError};

/// Changes relayed per round.
const RELAY_BATCH: u32 = 500;
/// The relay's name in `relay_positions`.
const RELAY: &str = "entity-changes";

/// Applies processed batches until `shutdown`, each once (see
/// [`CatalogStore::apply_processed`]); acknowledged only after the transaction commits.
pub async fn apply_batches(
    bus: Arc<dyn Bus>,
    store: CatalogStore,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    worker::run(
        &*bus,
        &STORE_WRITER,
        shutdown,
        |message: pb::ProcessedBatch, _trace| {
            let store = store.clone();
            async move {
                let processed = match crate::grpc::from_proto_processed(message) {
                    Ok(processed) => processed,
                    Err(status) => return Handled::Reject(status.message().to_owned()),
                };
                let batch_id = processed.batch_id.clone();
                match store.apply_processed(processed).await {
                    Ok(applied) => {
                        tracing::info!(
                            batch = %batch_id,
                            duplicate = applied.duplicate,
                            created = applied.outcome.created,
                            updated = applied.outcome.updated,
                            unchanged = applied.outcome.unchanged,
                            removed = applied.outcome.removed,
                            conflicts = applied.outcome.conflicts.len(),
                            "batch applied"
                        );
                        Handled::Done
                    }
                    Err(StoreError::InvalidArgument(reason)) => Handled::Reject(reason),
                    Err(error) => Handled::Retry(error.to_string()),
                }
            }
        },
    )
    .await
}

/// Publishes every committed change, in sequence order, until `shutdown`. The position is
/// saved after each round: after a crash, the changes since are published again, and the
/// bus drops the repeats within its de-duplication window (consumers are idempotent beyond).
pub async fn relay_changes(
    bus: Arc<dyn Bus>,
    store: CatalogStore,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), StoreError> {
    tokio::pin!(shutdown);
    let mut head = store.subscribe();
    let mut position = store.relay_position(RELAY).await?;
    loop {
        let changes = store.changes_after(position, RELAY_BATCH).await?;
        if changes.is_empty() {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = head.changed() => {}
                // Another process (a replica) may have written.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        for change in changes {
            let sequence = change.sequence;
            let event = crate::grpc::to_proto_change(change);
            let published = ENTITY_CHANGES
                .publish(&*bus, &event, Some(format!("change/{sequence}")), None)
                .await;
            if let Err(error) = published {
                tracing::warn!(%error, sequence, "cannot publish a change; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                break;
            }
            position = sequence;
        }
        store.save_relay_position(RELAY, position).await?;
    }
}

impl CatalogStore {
    /// The last change sequence the relay `name` published.
    pub async fn relay_position(&self, name: &str) -> crate::Result<u64> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT sequence FROM relay_positions WHERE name = ")
            .bind(name.to_owned());
        Ok(match self.db().query_one_raw(sql.build()).await? {
            Some(row) => u64::try_from(row.try_get::<i64>("", "sequence")?).unwrap_or_default(),
            None => 0,
        })
    }

    pub async fn save_relay_position(&self, name: &str, sequence: u64) -> crate::Result<()> {
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO relay_positions (name, sequence) VALUES (")
            .bind(name.to_owned())
            .push(", ")
            .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
            .push(") ON CONFLICT (name) DO UPDATE SET sequence = excluded.sequence");
        self.db().execute_raw(sql.build()).await?;
        Ok(())
    }
}
