//! Processed batches from the bus, applied at most once, and the harvest receipts they build.
//!
//! A processed batch carries an idempotency key (`batch_id`): the key is recorded in the
//! batch's own transaction, so a batch the bus delivers twice (the store crashed before its
//! ack) is applied once. The receipt of its harvest is updated in the same transaction, so
//! the receipt always says exactly what was applied.

use std::borrow::Cow;
use std::collections::BTreeSet;

use sea_orm::{ConnectionTrait, DatabaseTransaction, QueryResult};

use crate::sql::{Sql, WriteVerb};
use crate::time_util::now_micros;
use crate::write::{Deferred, Prepared, prepare, prepare_all};
use crate::{Batch, BatchOutcome, CatalogStore, ProcessedBatch, ProcessedOutcome, Receipt, Result};

/// Refs and files listed per receipt, at most.
const MAX_LISTED: usize = 1_000;
/// Receipts returned per request, at most.
const MAX_RECEIPTS: u32 = 500;

/// Processed batches to apply together, with their refs, hashes and columns derived: CPU work
/// done before the group's turn to write (see [`CatalogStore::apply_prepared`]). A lone
/// batch (a push) is left to be prepared as it is applied.
#[derive(Debug)]
pub struct PreparedGroup {
    batches: Vec<ProcessedBatch>,
    prepared: Option<Result<Vec<Prepared>>>,
}

impl PreparedGroup {
    /// Prepares `batches` for `store` on every core; call it off the writer's thread.
    pub fn new(store: &CatalogStore, batches: Vec<ProcessedBatch>) -> Self {
        let prepared = (batches.len() > 1).then(|| {
            prepare_all(
                batches.iter().map(|processed| &processed.batch),
                store.keeps_facts(),
            )
        });
        Self { batches, prepared }
    }

    /// The batches' ids, in order.
    pub fn batch_ids(&self) -> Vec<String> {
        self.batches.iter().map(|b| b.batch_id.clone()).collect()
    }
}

/// Frees `garbage` on the blocking pool. A group of 512 batches holds about 30,000 entities
/// as JSON trees, millions of allocations: freeing them took 0.4 s on the writer's thread
/// after each commit, while the next group waited for its turn.
fn release_elsewhere<T: Send + 'static>(garbage: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn_blocking(move || drop(garbage))),
        Err(_) => drop(garbage),
    }
}

impl CatalogStore {
    /// Applies a batch from the processor once, and records it in its harvest's receipt.
    /// A batch seen before changes nothing. A part of a harvest older than one already
    /// applied for some of its files (a late redelivery, or a duplicate harvest that
    /// overtook it) is applied for the other files only.
    pub async fn apply_processed(&self, processed: ProcessedBatch) -> Result<ProcessedOutcome> {
        let prepared = prepare(&processed.batch)?;
        let _writer = self.writer().lock().await;
        let txn = self.begin_write().await?;
        let mut deferred = Deferred::default();
        let mut outcome = self
            .apply_processed_in(&txn, &processed, prepared, &mut deferred)
            .await?;
        let bumped = self.settle(&txn, deferred).await?;
        txn.commit().await?;
        outcome.outcome.last_sequence = outcome.outcome.last_sequence.max(bumped);
        self.publish_head(outcome.outcome.last_sequence);
        Ok(outcome)
    }

    /// Applies several processed batches in one transaction, in order (each as
    /// [`Self::apply_processed`] would): one commit instead of many. If the group fails, each
    /// batch is tried on its own, so one bad batch does not hold back the others.
    pub async fn apply_processed_all(
        &self,
        batches: Vec<ProcessedBatch>,
    ) -> Vec<Result<ProcessedOutcome>> {
        self.apply_prepared(PreparedGroup::new(self, batches)).await
    }

    /// [`Self::apply_processed_all`] for a group whose work before the transaction is done.
    pub async fn apply_prepared(&self, group: PreparedGroup) -> Vec<Result<ProcessedOutcome>> {
        let PreparedGroup { batches, prepared } = group;
        if let Some(prepared) = prepared {
            let together = match prepared {
                Ok(prepared) => self.apply_processed_together(&batches, prepared).await,
                Err(error) => Err(error),
            };
            match together {
                Ok(outcomes) => {
                    release_elsewhere(batches);
                    return outcomes.into_iter().map(Ok).collect();
                }
                Err(error) => {
                    tracing::debug!(%error, "a group of batches failed; applying them one by one");
                }
            }
        }
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            results.push(self.apply_processed(batch).await);
        }
        results
    }

    async fn apply_processed_together(
        &self,
        batches: &[ProcessedBatch],
        prepared: Vec<Prepared>,
    ) -> Result<Vec<ProcessedOutcome>> {
        let started = std::time::Instant::now();
        let _writer = self.writer().lock().await;
        let txn = self.begin_write().await?;
        tracing::debug!(batches = batches.len(), waited = ?started.elapsed(), "group of batches begun");
        let deferred_indexes = self
            .defer_indexes_for_first_import(&txn, batches.len())
            .await?;
        let mut outcomes = Vec::with_capacity(batches.len());
        // A popular entity the batches all point at is bumped once, after the last of them,
        // and the counts are written once.
        let mut deferred = Deferred::default();
        for (processed, prepared) in batches.iter().zip(prepared) {
            outcomes.push(
                self.apply_processed_in(&txn, processed, prepared, &mut deferred)
                    .await?,
            );
        }
        let bumped = self.settle(&txn, deferred).await?;
        let started = std::time::Instant::now();
        txn.commit().await?;
        self.note_group_committed(batches.len());
        tracing::debug!(batches = outcomes.len(), commit = ?started.elapsed(), "processed batches committed together");
        if let Some(dropped) = deferred_indexes {
            self.publish_deferred(dropped);
        }
        let last = outcomes
            .iter()
            .map(|o| o.outcome.last_sequence)
            .chain([bumped])
            .max()
            .unwrap_or_default();
        self.publish_head(last);
        Ok(outcomes)
    }

    async fn apply_processed_in(
        &self,
        txn: &DatabaseTransaction,
        processed: &ProcessedBatch,
        mut prepared: Prepared,
        deferred: &mut Deferred,
    ) -> Result<ProcessedOutcome> {
        let ProcessedBatch {
            batch_id,
            batch,
            receipt,
        } = processed;
        let mut phases = crate::write::Phases::start();
        if self.already_applied(txn, batch_id).await? {
            return Ok(ProcessedOutcome {
                outcome: BatchOutcome::default(),
                duplicate: true,
            });
        }
        let mut batch = Cow::Borrowed(batch);
        if receipt.harvest_started_at > 0 {
            let stale = self
                .newer_harvested(txn, &covered_keys(&batch), receipt.harvest_started_at)
                .await?;
            if !stale.is_empty() {
                tracing::warn!(batch = %batch_id, harvest = %receipt.harvest_id, files = ?stale, "a newer harvest already applied these files; applying the rest of this part");
                batch = Cow::Owned(without_keys(batch.into_owned(), &stale));
                if covered_keys(&batch).is_empty() && batch.removals.is_empty() {
                    return Ok(ProcessedOutcome {
                        outcome: BatchOutcome::default(),
                        duplicate: true,
                    });
                }
                prepared = prepare(&batch)?;
            }
            self.record_harvested(txn, &covered_keys(&batch), receipt.harvest_started_at)
                .await?;
        }
        let gone = self
            .no_longer_produced(txn, &batch.replaced_locations, &prepared)
            .await?;
        self.settle_gone(&mut prepared, gone);
        phases.mark("checks");
        let outcome = self
            .apply_in_deferring(txn, &batch, prepared, deferred)
            .await?;
        phases.mark("apply");
        let now = now_micros();
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO applied_batches (batch_id, applied_at) VALUES (")
            .bind(batch_id.clone())
            .push(", ")
            .bind(now)
            .push(")");
        txn.execute_raw(sql.build()).await?;
        if !receipt.harvest_id.is_empty() {
            self.record_receipt(txn, receipt, &outcome, now).await?;
        }
        phases.mark("receipt");
        tracing::debug!(batch = %batch_id, phases = ?phases.spent, "processed batch applied");
        Ok(ProcessedOutcome {
            outcome,
            duplicate: false,
        })
    }

    async fn already_applied(&self, txn: &DatabaseTransaction, batch_id: &str) -> Result<bool> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT batch_id FROM applied_batches WHERE batch_id = ")
            .bind(batch_id.to_owned());
        Ok(txn.query_one_raw(sql.build()).await?.is_some())
    }

    /// Which of `keys` a harvest started after `started_at` has already applied.
    async fn newer_harvested(
        &self,
        txn: &DatabaseTransaction,
        keys: &BTreeSet<String>,
        started_at: i64,
    ) -> Result<BTreeSet<String>> {
        let keys: Vec<String> = keys.iter().cloned().collect();
        let mut newer = BTreeSet::new();
        for chunk in keys.chunks(KEY_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT location_key FROM harvested_files WHERE harvest_started_at > ")
                .bind(started_at)
                .push(" AND location_key IN ")
                .bind_list(chunk);
            for row in txn.query_all_raw(sql.build()).await? {
                newer.insert(row.try_get("", "location_key")?);
            }
        }
        Ok(newer)
    }

    /// Notes that a harvest started at `started_at` has applied `keys` (a later one stays).
    async fn record_harvested(
        &self,
        txn: &DatabaseTransaction,
        keys: &BTreeSet<String>,
        started_at: i64,
    ) -> Result<()> {
        let keys: Vec<&String> = keys.iter().collect();
        for chunk in keys.chunks(KEY_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert)
                .push("harvested_files (location_key, harvest_started_at) VALUES ");
            for (index, key) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind((*key).clone())
                    .push(", ")
                    .bind(started_at)
                    .push(")");
            }
            sql.push(
                " ON CONFLICT (location_key) DO UPDATE SET harvest_started_at = CASE \
                 WHEN excluded.harvest_started_at > harvested_files.harvest_started_at \
                 THEN excluded.harvest_started_at ELSE harvested_files.harvest_started_at END",
            );
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    /// Adds one applied part to its harvest's receipt.
    async fn record_receipt(
        &self,
        txn: &DatabaseTransaction,
        part: &Receipt,
        outcome: &BatchOutcome,
        now: i64,
    ) -> Result<()> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT * FROM harvest_receipts WHERE harvest_id = ")
            .bind(part.harvest_id.clone());
        let mut receipt = match txn.query_one_raw(sql.build()).await? {
            Some(row) => receipt_from_row(&row)?,
            None => Receipt {
                harvest_id: part.harvest_id.clone(),
                location_key: part.location_key.clone(),
                trigger: part.trigger.clone(),
                reason: part.reason.clone(),
                commit: part.commit.clone(),
                harvest_started_at: part.harvest_started_at,
                parts: part.parts,
                ..Receipt::default()
            },
        };
        receipt.files_read += part.files_read;
        receipt.files_unchanged += part.files_unchanged;
        receipt.failed += part.failed;
        receipt.created += outcome.created;
        receipt.updated += outcome.updated;
        receipt.unchanged += outcome.unchanged;
        receipt.removed += outcome.removed + outcome.orphaned;
        receipt.conflicts += u32::try_from(outcome.conflicts.len()).unwrap_or(u32::MAX);
        extend_bounded(&mut receipt.changed_refs, &outcome.changed_refs);
        extend_bounded(&mut receipt.removed_refs, &outcome.removed_refs);
        extend_bounded(&mut receipt.removed_refs, &outcome.orphaned_refs);
        extend_bounded(&mut receipt.failed_files, &part.failed_files);
        receipt.harvest_started_at = min_known(receipt.harvest_started_at, part.harvest_started_at);
        receipt.harvest_finished_at = receipt.harvest_finished_at.max(part.harvest_finished_at);
        receipt.processed_at = receipt.processed_at.max(part.processed_at);
        receipt.applied_at = now;
        receipt.parts = receipt.parts.max(part.parts).max(1);
        receipt.parts_applied += 1;

        let json = |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO harvest_receipts (harvest_id, location_key, trigger, reason, commit_sha, files_read, files_unchanged, created, updated, unchanged, removed, failed, conflicts, changed_refs, removed_refs, failed_files, harvest_started_at, harvest_finished_at, processed_at, applied_at, parts, parts_applied) VALUES (")
            .bind(receipt.harvest_id.clone())
            .push(", ")
            .bind(receipt.location_key.clone())
            .push(", ")
            .bind(receipt.trigger.clone())
            .push(", ")
            .bind(receipt.reason.clone())
            .push(", ")
            .bind(receipt.commit.clone());
        for count in [
            receipt.files_read,
            receipt.files_unchanged,
            receipt.created,
            receipt.updated,
            receipt.unchanged,
            receipt.removed,
            receipt.failed,
            receipt.conflicts,
        ] {
            sql.push(", ").bind(i64::from(count));
        }
        for list in [
            &receipt.changed_refs,
            &receipt.removed_refs,
            &receipt.failed_files,
        ] {
            sql.push(", ").bind(json(list));
        }
        for time in [
            receipt.harvest_started_at,
            receipt.harvest_finished_at,
            receipt.processed_at,
            receipt.applied_at,
        ] {
            sql.push(", ").bind(time);
        }
        sql.push(", ")
            .bind(i64::from(receipt.parts))
            .push(", ")
            .bind(i64::from(receipt.parts_applied))
            .push(") ON CONFLICT (harvest_id) DO UPDATE SET ");
        let updated = [
            "files_read",
            "files_unchanged",
            "created",
            "updated",
            "unchanged",
            "removed",
            "failed",
            "conflicts",
            "changed_refs",
            "removed_refs",
            "failed_files",
            "harvest_started_at",
            "harvest_finished_at",
            "processed_at",
            "applied_at",
            "parts",
            "parts_applied",
        ];
        for (index, column) in updated.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push(column).push(" = excluded.").push(column);
        }
        txn.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Receipts, newest first: of one location, or of all when `location_key` is empty.
    pub async fn harvest_receipts(&self, location_key: &str, limit: u32) -> Result<Vec<Receipt>> {
        let limit = if limit == 0 {
            50
        } else {
            limit.min(MAX_RECEIPTS)
        };
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT * FROM harvest_receipts");
        if !location_key.is_empty() {
            sql.push(" WHERE location_key = ")
                .bind(location_key.to_owned());
        }
        sql.push(" ORDER BY applied_at DESC, harvest_id LIMIT ")
            .bind(i64::from(limit));
        self.db()
            .query_all_raw(sql.build())
            .await?
            .iter()
            .map(receipt_from_row)
            .collect()
    }
}

fn extend_bounded(list: &mut Vec<String>, more: &[String]) {
    let room = MAX_LISTED.saturating_sub(list.len());
    list.extend(more.iter().take(room).cloned());
}

fn min_known(a: i64, b: i64) -> i64 {
    match (a, b) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.min(b),
    }
}

fn receipt_from_row(row: &QueryResult) -> Result<Receipt> {
    let count = |column: &str| -> Result<u32> {
        let value: i64 = row.try_get("", column)?;
        Ok(u32::try_from(value).unwrap_or(u32::MAX))
    };
    let list = |column: &str| -> Result<Vec<String>> {
        let text: String = row.try_get("", column)?;
        serde_json::from_str(&text)
            .map_err(|e| crate::StoreError::Corrupt(format!("receipt {column}: {e}")))
    };
    Ok(Receipt {
        harvest_id: row.try_get("", "harvest_id")?,
        location_key: row.try_get("", "location_key")?,
        trigger: row.try_get("", "trigger")?,
        reason: row.try_get("", "reason")?,
        commit: row.try_get("", "commit_sha")?,
        files_read: count("files_read")?,
        files_unchanged: count("files_unchanged")?,
        created: count("created")?,
        updated: count("updated")?,
        unchanged: count("unchanged")?,
        removed: count("removed")?,
        failed: count("failed")?,
        conflicts: count("conflicts")?,
        changed_refs: list("changed_refs")?,
        removed_refs: list("removed_refs")?,
        failed_files: list("failed_files")?,
        harvest_started_at: row.try_get("", "harvest_started_at")?,
        harvest_finished_at: row.try_get("", "harvest_finished_at")?,
        processed_at: row.try_get("", "processed_at")?,
        applied_at: row.try_get("", "applied_at")?,
        parts: count("parts")?,
        parts_applied: count("parts_applied")?,
    })
}

/// Keys per `IN (...)` lookup or multi-row insert of `harvested_files`.
const KEY_CHUNK: usize = 500;

/// The files (and registered locations) a batch speaks for: those it replaces, those its
/// entities come from, and those whose errors it sets.
fn covered_keys(batch: &Batch) -> BTreeSet<String> {
    batch
        .replaced_locations
        .iter()
        .cloned()
        .chain(
            batch
                .upserts
                .iter()
                .filter_map(|upsert| upsert.location_key.clone()),
        )
        .chain(
            batch
                .errors
                .iter()
                .map(|errors| errors.location_key.clone()),
        )
        .collect()
}

/// `batch` without what it says about `keys`.
fn without_keys(mut batch: Batch, keys: &BTreeSet<String>) -> Batch {
    let kept = |key: &Option<String>| key.as_ref().is_none_or(|key| !keys.contains(key));
    batch.upserts.retain(|upsert| kept(&upsert.location_key));
    batch
        .errors
        .retain(|errors| !keys.contains(&errors.location_key));
    batch
        .replaced_locations
        .retain(|location| !keys.contains(location));
    batch
}
