//! A first import into an empty store builds its read-only indexes once, after the import,
//! instead of entry by entry as every entity arrives.
//!
//! At a million entities the ten indexes below are larger than SQLite's writer's page cache:
//! each new entity changed a page at a random place in each, read from disk and written back.
//! A cold million imported in 330-357 s with them; with them dropped the store had every
//! entity in 220 s, and building them afterwards takes 3-10 s each (see ARCHITECTURE.md,
//! decisions). PostgreSQL defers the same ten and the lookup index of the search documents'
//! facts ([`POSTGRES_SEARCH_INDEXES`]; when they were a GIN index of the documents, deferring
//! it made 100,000 entities' creation 43% faster: 4,447/s against 3,119/s in the store
//! bench).
//!
//! - In a store that was empty when it opened, the first group of at least
//!   [`DEFER_FROM_GROUP_OF`] batches (while fewer than [`DEFER_WHILE_FEWER_THAN`] entities
//!   are stored) drops them in its own transaction, and records their definitions, as the
//!   database keeps them, in `deferred_indexes`: a rollback keeps them, a crash leaves the
//!   record.
//! - Once the writer has been idle for [`IDLE_BEFORE_BUILD`] (or no large group has come for
//!   [`BUILD_AFTER_LAST_LARGE_GROUP`], so steady small writes do not put it off for ever), a
//!   background task builds them, each in a transaction with the removal of its record,
//!   holding the writer: one at a time on SQLite, three at a time on PostgreSQL (whose table
//!   locks hold other replicas' writes meanwhile). At open, a record left by a crash is built
//!   the same way; PostgreSQL replicas that did not drop them learn of the records from the
//!   table.
//! - Until then reads answer the same, scanning instead of seeking; the feed head reports the
//!   indexes still to build ([`CatalogStore::indexes_pending`]) and `cadastre up` says
//!   "ready" only once there are none.
//!
//! The writer never reads these indexes. `relation_edges_target` is not among them: the search
//! indexer reads every stored entity's relations through it as it follows the import.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};

use crate::sql::Sql;
use crate::{CatalogStore, Result};

/// The indexes only reads use (orderings, filters, facets, an entity's history).
pub const DEFERRABLE_INDEXES: [&str; 10] = [
    "entities_kind_type",
    "entities_type",
    "entities_parent",
    "entities_name_order",
    "entities_kind_name_order",
    "entities_owner_order",
    "entities_kind_owner_order",
    "entities_system_order",
    "entities_kind_system_order",
    "changes_entity",
];

/// On PostgreSQL, the lookup index of the search documents' facts (filters on the values of
/// keys without a column of their own, and on their existence) is deferred too. The writer
/// reads facts by entity, through the table's primary key, which stays.
pub const POSTGRES_SEARCH_INDEXES: [&str; 1] = ["entity_facts_lookup"];

/// The indexes a first import defers on `backend`.
pub fn deferrable_indexes(backend: DbBackend) -> Vec<&'static str> {
    let mut names = DEFERRABLE_INDEXES.to_vec();
    if backend == DbBackend::Postgres {
        names.extend(POSTGRES_SEARCH_INDEXES);
    }
    names
}

/// Index builds at once on PostgreSQL, each in a transaction of its own: the facts' lookup
/// index, the longest, goes first, and the other indexes are built beside it. SQLite has one
/// writer: one build at a time.
const POSTGRES_BUILDS_AT_ONCE: usize = 3;

/// Batches in a group, at least, for a first import to defer the indexes: registering a few
/// repositories does not, an organisation's worth of them does (groups of 150-512 batches at
/// a million entities).
pub(crate) const DEFER_FROM_GROUP_OF: usize = 64;

/// Entities stored, at most, when the first large group comes for it to defer the indexes:
/// an import's first groups are small, taken while the rest is still being read.
const DEFER_WHILE_FEWER_THAN: i64 = 20_000;

/// How long the writer has been idle before the deferred indexes are built. Between two
/// groups of an import it waits a fraction of a second.
const IDLE_BEFORE_BUILD: Duration = Duration::from_secs(2);

/// How long after the last large group committed the indexes are built even if small writes
/// never leave the writer idle.
const BUILD_AFTER_LAST_LARGE_GROUP: Duration = Duration::from_secs(30);

/// When the writer last committed, and when a group large enough to defer indexes last began
/// or committed.
#[derive(Debug)]
pub(crate) struct WriterActivity {
    last_commit: Instant,
    last_large_group: Instant,
}

impl WriterActivity {
    /// Whether the deferred indexes may be built at `now`: the writer has been idle long
    /// enough, or large groups stopped coming a while ago. Counted from a large group's
    /// commit as well as its start: a group of a distributed import on PostgreSQL takes
    /// 30 s and more, and counted from its start alone, indexes were built between two
    /// groups of the import.
    fn time_to_build(&self, now: Instant) -> bool {
        self.idle_for(now) >= IDLE_BEFORE_BUILD
            || now.duration_since(self.last_large_group) >= BUILD_AFTER_LAST_LARGE_GROUP
    }

    /// How long the writer has been idle at `now`.
    pub(crate) fn idle_for(&self, now: Instant) -> Duration {
        now.duration_since(self.last_commit)
    }
}

impl crate::Inner {
    /// How long the writer has been idle.
    pub(crate) fn writer_idle_for(&self) -> Duration {
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .idle_for(Instant::now())
    }
}

impl Default for WriterActivity {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            last_commit: now,
            last_large_group: now,
        }
    }
}

impl CatalogStore {
    /// Read indexes a first import deferred that are still to be built (0 once the store's
    /// reads are as fast as they get).
    pub fn indexes_pending(&self) -> u32 {
        *self.inner.indexes_pending.borrow()
    }

    /// Notified whenever [`Self::indexes_pending`] changes.
    pub fn watch_indexes_pending(&self) -> tokio::sync::watch::Receiver<u32> {
        self.inner.indexes_pending.subscribe()
    }

    /// At open: how many indexes a crashed import left to build, and whether the store is
    /// empty (so a first import may defer them).
    pub(crate) async fn load_deferred_indexes(&self) -> Result<()> {
        let pending = count(self.writes(), "SELECT COUNT(*) AS n FROM deferred_indexes").await?;
        let empty = count(
            self.writes(),
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM entities LIMIT 1) AS any_entity",
        )
        .await?
            == 0;
        self.inner
            .indexes_pending
            .send_replace(u32::try_from(pending).unwrap_or(u32::MAX));
        self.inner
            .may_defer_indexes
            .store(pending == 0 && empty, Ordering::Relaxed);
        if pending > 0 {
            tracing::info!(
                pending,
                "read indexes a first import deferred are still to build; building them once the writer is idle"
            );
        }
        Ok(())
    }

    /// In a group's transaction, before it writes: drops the deferrable indexes if this is
    /// the first large group of a store that opened empty and holds little yet. Answers how
    /// many it dropped, to publish once the transaction commits.
    pub(crate) async fn defer_indexes_for_first_import(
        &self,
        txn: &DatabaseTransaction,
        batches: usize,
    ) -> Result<Option<u32>> {
        if batches < DEFER_FROM_GROUP_OF {
            return Ok(None);
        }
        self.activity().last_large_group = Instant::now();
        if !self.inner.may_defer_indexes.swap(false, Ordering::Relaxed) {
            return Ok(None);
        }
        // The first groups of an import are small ones, taken while the rest is harvested.
        let stored = count(txn, "SELECT COUNT(*) AS n FROM entities").await?;
        if stored >= DEFER_WHILE_FEWER_THAN {
            return Ok(None);
        }
        let mut sql = Sql::new(self.backend());
        if self.backend() == DbBackend::Postgres {
            sql.push("SELECT indexname AS name, indexdef AS definition FROM pg_indexes WHERE schemaname = current_schema() AND indexname IN ");
        } else {
            sql.push(
                "SELECT name, sql AS definition FROM sqlite_master WHERE type = 'index' AND name IN ",
            );
        }
        sql.bind_list(&deferrable_indexes(self.backend()));
        let mut dropped = 0;
        for row in txn.query_all_raw(sql.build()).await? {
            let name: String = row.try_get("", "name")?;
            let definition: String = row.try_get("", "definition")?;
            let mut record = Sql::new(self.backend());
            record
                .push("INSERT INTO deferred_indexes (name, definition) VALUES (")
                .bind(name.clone())
                .push(", ")
                .bind(definition)
                .push(")");
            txn.execute_raw(record.build()).await?;
            // The names are this module's own constants.
            txn.execute_unprepared(&format!("DROP INDEX {name}"))
                .await?;
            dropped += 1;
        }
        tracing::info!(
            dropped,
            batches,
            "first import into an empty store: read indexes are built once it is done"
        );
        Ok(Some(dropped))
    }

    /// Publishes the indexes a committed group deferred.
    pub(crate) fn publish_deferred(&self, dropped: u32) {
        self.inner
            .indexes_pending
            .send_modify(|pending| *pending += dropped);
    }

    /// Notes a commit, for the idle test of the index builder.
    pub(crate) fn note_commit(&self) {
        self.activity().last_commit = Instant::now();
    }

    /// Notes a committed group of `batches` (the caller still holds the writer); the commit
    /// itself is noted when the head is published.
    pub(crate) fn note_group_committed(&self, batches: usize) {
        if batches >= DEFER_FROM_GROUP_OF {
            self.activity().last_large_group = Instant::now();
        }
    }

    fn activity(&self) -> std::sync::MutexGuard<'_, WriterActivity> {
        // A panic while holding it left two instants; they are still instants.
        self.inner
            .activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn time_to_build(&self) -> bool {
        self.activity().time_to_build(Instant::now())
    }

    /// Builds deferred indexes (see [`Self::build_deferred_indexes`]) while nothing else
    /// writes. Stops when the store is dropped.
    pub(crate) fn build_deferred_indexes_in_background(&self) {
        let inner = std::sync::Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { return };
                let store = CatalogStore { inner };
                if store.backend() == DbBackend::Postgres
                    && let Err(error) = store.refresh_indexes_pending().await
                {
                    tracing::warn!(%error, "could not read the deferred read indexes");
                    continue;
                }
                if store.indexes_pending() == 0 || !store.time_to_build() {
                    continue;
                }
                // A writer at work, or waiting, goes first.
                let Ok(_writer) = store.inner.writer.try_lock() else {
                    continue;
                };
                if let Err(error) = store.build_deferred_indexes().await {
                    tracing::warn!(%error, "building a deferred read index failed; trying again shortly");
                }
            }
        });
    }

    /// On PostgreSQL, where another replica may have deferred them: the records' count.
    async fn refresh_indexes_pending(&self) -> Result<()> {
        let pending = count(self.db(), "SELECT COUNT(*) AS n FROM deferred_indexes").await?;
        let pending = u32::try_from(pending).unwrap_or(u32::MAX);
        self.inner
            .indexes_pending
            .send_if_modified(|known| std::mem::replace(known, pending) != pending);
        Ok(())
    }

    /// Builds deferred indexes, each in a transaction with the removal of its record: on
    /// SQLite the first by name, on PostgreSQL all of them, a few at a time, the facts' lookup
    /// index first. The caller holds the writer. On PostgreSQL a build does not take the writers'
    /// lock: its table lock holds other replicas' writes, and a record another replica is
    /// building is skipped.
    async fn build_deferred_indexes(&self) -> Result<()> {
        let postgres = self.backend() == DbBackend::Postgres;
        let rows = self
            .writes()
            .query_all_raw(Statement::from_string(
                self.backend(),
                "SELECT name FROM deferred_indexes ORDER BY name",
            ))
            .await?;
        let mut names = rows
            .iter()
            .map(|row| row.try_get::<String>("", "name"))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if names.is_empty() {
            self.inner.indexes_pending.send_replace(0);
            return Ok(());
        }
        let at_once = if postgres {
            // The longest builds first.
            names.sort_by_key(|name| !POSTGRES_SEARCH_INDEXES.contains(&name.as_str()));
            POSTGRES_BUILDS_AT_ONCE
        } else {
            names.truncate(1);
            1
        };
        let results: Vec<Result<()>> = futures::stream::iter(names)
            .map(|name| self.build_deferred_index(name))
            .buffer_unordered(at_once)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn build_deferred_index(&self, name: String) -> Result<()> {
        let postgres = self.backend() == DbBackend::Postgres;
        let txn = if postgres {
            self.db().begin().await?
        } else {
            self.writes().begin().await?
        };
        let mut record = Sql::new(self.backend());
        record
            .push("SELECT definition FROM deferred_indexes WHERE name = ")
            .bind(name.clone());
        if postgres {
            record.push(" FOR UPDATE SKIP LOCKED");
        }
        let Some(row) = txn.query_one_raw(record.build()).await? else {
            // Built meanwhile (by another replica).
            txn.commit().await?;
            return Ok(());
        };
        let definition: String = row.try_get("", "definition")?;
        let started = Instant::now();
        txn.execute_unprepared(&definition).await?;
        let mut done = Sql::new(self.backend());
        done.push("DELETE FROM deferred_indexes WHERE name = ")
            .bind(name.clone());
        txn.execute_raw(done.build()).await?;
        txn.commit().await?;
        self.inner
            .indexes_pending
            .send_modify(|pending| *pending = pending.saturating_sub(1));
        let pending = self.indexes_pending();
        tracing::info!(index = %name, spent = ?started.elapsed(), pending, "deferred read index built");
        Ok(())
    }
}

/// The count a `SELECT COUNT(*) AS n …` answers.
async fn count(db: &impl ConnectionTrait, sql: &str) -> Result<i64> {
    Ok(db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?
        .map(|row| row.try_get::<i64>("", "n"))
        .transpose()?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_large_group_puts_the_builds_off_from_its_commit() {
        let began = Instant::now();
        let mut activity = WriterActivity {
            last_commit: began,
            last_large_group: began,
        };
        // The group commits after 40 s of work.
        let committed = began + Duration::from_secs(40);
        activity.last_commit = committed;
        activity.last_large_group = committed;
        assert!(!activity.time_to_build(committed + Duration::from_millis(500)));
        // Small writes keep the writer busy: built 30 s after the large group's commit.
        activity.last_commit = committed + Duration::from_secs(29);
        assert!(!activity.time_to_build(committed + Duration::from_secs(29)));
        assert!(activity.time_to_build(committed + BUILD_AFTER_LAST_LARGE_GROUP));
        // Or once the writer has been idle for a while.
        activity.last_commit = committed;
        assert!(activity.time_to_build(committed + IDLE_BEFORE_BUILD));
    }
}
