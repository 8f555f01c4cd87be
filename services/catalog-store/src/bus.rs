//! catalog-store on the bus: it applies the processor's batches, and relays its change feed
//! (the outbox) to `catalog.entities.changed`.

use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::subjects::{ENTITY_CHANGES, STORE_WRITER};
use cadastre_bus::worker::{self, Grouping, Handled};
use cadastre_bus::{Bus, BusError};
use cadastre_proto::v1 as pb;
use sea_orm::ConnectionTrait;

use crate::sql::Sql;
use crate::{CatalogStore, PreparedGroup, StoreError};

/// Changes relayed per round.
const RELAY_BATCH: u32 = 500;
/// The relay's name in `relay_positions`.
const RELAY: &str = "entity-changes";

/// How processed batches are grouped into transactions. A processed batch is one harvested
/// file's worth (about 100 entities). Most of a transaction's cost on SQLite is writing the
/// pages it touched to the log and checkpointing them; a page of an index is written once per
/// transaction however many of its rows changed, so larger transactions write far less per
/// entity (ARCHITECTURE.md, decisions). A lone batch (a push) is applied at once; a
/// stream of them (an import) waits up to `linger` to fill a group. Two groups are handled at
/// once: the next is parsed and prepared while one is written (see [`apply_batches`]).
const GROUPING: Grouping = Grouping {
    max: 512,
    gap: Duration::from_millis(2),
    linger: Duration::from_millis(500),
    overlap: 2,
};

/// Applies processed batches until `shutdown`, each once (see
/// [`CatalogStore::apply_processed`]), several per transaction when several are waiting;
/// each is acknowledged only after the transaction commits.
///
/// A group's work before its transaction (decoding its batches, hashing, deriving columns)
/// runs on the blocking pool while the group before it is written, then waits for that
/// group's transaction to end: transactions stay one at a time, in the order the groups
/// formed, and the writer does not wait for the CPU work between them.
pub async fn apply_batches(
    bus: Arc<dyn Bus>,
    store: CatalogStore,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    // Dropped when the group before the next one has been applied.
    let mut previous_applied: Option<tokio::sync::oneshot::Receiver<()>> = None;
    worker::run_grouped(
        &*bus,
        &STORE_WRITER,
        shutdown,
        GROUPING,
        |messages: Vec<pb::ProcessedBatch>| {
            let store = store.clone();
            let (applied, next_may_apply) = tokio::sync::oneshot::channel::<()>();
            let turn = previous_applied.replace(next_may_apply);
            async move {
                let started = std::time::Instant::now();
                let count = messages.len();
                let preparing = store.clone();
                let prepared =
                    tokio::task::spawn_blocking(move || prepare_group(&preparing, messages)).await;
                let (mut answers, positions, group) = match prepared {
                    Ok(prepared) => prepared,
                    Err(error) => {
                        let reason = format!("preparing the group failed: {error}");
                        return vec![Handled::Retry(reason); count];
                    }
                };
                tracing::debug!(batches = positions.len(), spent = ?started.elapsed(), "group of batches prepared");
                if let Some(turn) = turn {
                    // An error only means the group before is gone (it was dropped).
                    let _ = turn.await;
                }
                let ids = group.batch_ids();
                let results = store.apply_prepared(group).await;
                drop(applied);
                for ((index, batch_id), result) in positions.into_iter().zip(ids).zip(results) {
                    answers[index] = Some(match result {
                        Ok(applied) => {
                            tracing::info!(
                                batch = %batch_id,
                                duplicate = applied.duplicate,
                                created = applied.outcome.created,
                                updated = applied.outcome.updated,
                                unchanged = applied.outcome.unchanged,
                                removed = applied.outcome.removed,
                                orphaned = applied.outcome.orphaned,
                                conflicts = applied.outcome.conflicts.len(),
                                "batch applied"
                            );
                            Handled::Done
                        }
                        Err(StoreError::InvalidArgument(reason)) => Handled::Reject(reason),
                        Err(error) => Handled::Retry(error.to_string()),
                    });
                }
                answers
                    .into_iter()
                    .map(|answer| answer.unwrap_or_else(|| Handled::Retry("not handled".into())))
                    .collect()
            }
        },
    )
    .await
}

/// Converts a group's messages and prepares the valid ones. Answers the rejections by
/// position, the positions of the valid batches, and the prepared group.
fn prepare_group(
    store: &CatalogStore,
    messages: Vec<pb::ProcessedBatch>,
) -> (Vec<Option<Handled>>, Vec<usize>, PreparedGroup) {
    let mut answers: Vec<Option<Handled>> = vec![None; messages.len()];
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (index, message) in messages.into_iter().enumerate() {
        match crate::grpc::from_proto_processed(message) {
            Ok(processed) => {
                valid.push(processed);
                positions.push(index);
            }
            Err(status) => {
                answers[index] = Some(Handled::Reject(status.message().to_owned()));
            }
        }
    }
    (answers, positions, PreparedGroup::new(store, valid))
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
        let changes = store.feed_after(position, RELAY_BATCH).await?;
        if changes.is_empty() {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                _ = head.changed() => {}
                // Another process (a replica) may have written.
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        // The round is sent before any ack is awaited: one round trip per round, not per
        // change (a cold million publishes about 1.8 million changes).
        let sequences: Vec<u64> = changes.iter().map(|change| change.sequence).collect();
        let events = changes.into_iter().map(|change| {
            let id = format!("change/{}", change.sequence);
            (crate::grpc::to_proto_change(change), Some(id))
        });
        let answers = ENTITY_CHANGES.publish_all(&*bus, events).await;
        let mut failed = false;
        for (sequence, answer) in sequences.into_iter().zip(answers) {
            if let Err(error) = answer {
                // The rest of the round goes again from here; those the bus stored already
                // are dropped as repeats.
                tracing::warn!(%error, sequence, "cannot publish a change; retrying");
                failed = true;
                break;
            }
            position = sequence;
        }
        store.save_relay_position(RELAY, position).await?;
        if failed {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
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
        let _writer = self.single_statement_writer().await;
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO relay_positions (name, sequence) VALUES (")
            .bind(name.to_owned())
            .push(", ")
            .bind(i64::try_from(sequence).unwrap_or(i64::MAX))
            .push(") ON CONFLICT (name) DO UPDATE SET sequence = excluded.sequence");
        self.writes().execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Takes the lease `name` for `holder` until `ttl` from now, if it is free, expired, or
    /// already `holder`'s (which renews it). Answers whether `holder` has it now.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> crate::Result<bool> {
        if name.is_empty() || holder.is_empty() {
            return Err(crate::StoreError::InvalidArgument(
                "a lease needs a name and a holder".into(),
            ));
        }
        let _writer = self.single_statement_writer().await;
        let now = crate::time_util::now_micros();
        let expires_at = now.saturating_add(i64::try_from(ttl.as_micros()).unwrap_or(i64::MAX));
        // One statement, so two callers cannot both win: the row is written only when it is
        // new, expired or the caller's own.
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO leases (name, holder, expires_at) VALUES (")
            .bind(name.to_owned())
            .push(", ")
            .bind(holder.to_owned())
            .push(", ")
            .bind(expires_at)
            .push(
                ") ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
                 expires_at = excluded.expires_at WHERE leases.expires_at < ",
            )
            .bind(now)
            .push(" OR leases.holder = excluded.holder");
        let written = self.writes().execute_raw(sql.build()).await?;
        Ok(written.rows_affected() == 1)
    }

    /// Gives the lease back, if `holder` still has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> crate::Result<()> {
        let _writer = self.single_statement_writer().await;
        let mut sql = Sql::new(self.backend());
        sql.push("DELETE FROM leases WHERE name = ")
            .bind(name.to_owned())
            .push(" AND holder = ")
            .bind(holder.to_owned());
        self.writes().execute_raw(sql.build()).await?;
        Ok(())
    }
}
