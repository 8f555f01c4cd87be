//! catalog-store: Cadastre's system of record.
//!
//! Keeps every entity, relation, location, processing error and change, with sea-orm on
//! PostgreSQL (production) or SQLite (embedded), and serves them over gRPC
//! ([`grpc::CatalogGrpc`]).
//!
//! Design notes (see ARCHITECTURE.md):
//! - writes arrive in batches, one transaction each, skipping entities whose content hash did
//!   not change; writers are serialised so change sequence numbers follow commit order;
//! - every change is a row of `changes`, written in the same transaction: it is both the
//!   entity's history and the change feed (outbox) consumers resume from;
//! - filters read indexed hot columns, the `relations` table, or one JSON document per entity
//!   (`search_doc`; on PostgreSQL its facts, a row per key and value, written as a
//!   difference): nothing is rewritten for entities or keys that did not change, which is
//!   what made Backstage's key/value search table slow;
//! - an entity's body and search document live in `entity_documents`, beside its row in
//!   `entities`: the rows that writes look up and indexes are built from stay a few hundred
//!   bytes each.

pub mod bus;
mod edges;
mod error;
mod facts;
mod first_import;
pub mod grpc;
mod migration;
mod point_readers;
mod read;
mod receipts;
mod serve;
pub mod server;
pub mod sql;
mod sqlite_reads;
mod time_util;
pub mod types;
mod write;

use std::sync::Arc;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;
use tokio::sync::{Mutex, watch};

pub use error::{Result, StoreError};
pub use first_import::{DEFERRABLE_INDEXES, POSTGRES_SEARCH_INDEXES, deferrable_indexes};
pub use receipts::PreparedGroup;
pub use types::*;

/// The store: a database connection pool, the writer lock and the change-feed head.
#[derive(Debug, Clone)]
pub struct CatalogStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    /// Where transactions that write run. On SQLite a pool of one connection of its own: a
    /// connection's page cache is dropped whenever another connection has written, so writes
    /// spread over the readers' pool started each transaction with a cold cache and read the
    /// indexes' pages again. On PostgreSQL the same pool as reads.
    writes: DatabaseConnection,
    backend: DbBackend,
    /// On a SQLite file, the common reads run here rather than through sqlx (see
    /// `sqlite_reads`).
    sqlite_reads: Option<Arc<sqlite_reads::SqliteReads>>,
    /// One batch at a time per process (PostgreSQL adds an advisory lock across replicas).
    writer: Mutex<()>,
    /// The highest committed change sequence, for watchers in this process.
    head: watch::Sender<u64>,
    /// Whether entities a location no longer produces are removed (else kept as orphans).
    remove_orphans: std::sync::atomic::AtomicBool,
    /// Read indexes a first import deferred, still to build (see `first_import`).
    indexes_pending: watch::Sender<u32>,
    /// Whether the next large group may defer the read indexes: an empty SQLite store.
    may_defer_indexes: std::sync::atomic::AtomicBool,
    /// When the writer last committed, for the index builder's idle test.
    activity: std::sync::Mutex<first_import::WriterActivity>,
    /// Whether `apply_batch` derives columns while it looks up the stored rows: the last batch
    /// mostly changed (see `write::ahead`).
    derive_ahead: std::sync::atomic::AtomicBool,
}

/// Serialises migrations across processes starting together (replicas, or a store and a
/// tool opening the same database): on PostgreSQL an advisory lock held by an open
/// transaction; on SQLite, whose writers queue anyway, a second attempt that finds the work
/// done.
async fn migrate(db: &DatabaseConnection) -> Result<()> {
    use sea_orm::TransactionTrait;
    const MIGRATION_LOCK_KEY: i64 = 0x0CAD_A57F;
    if db.get_database_backend() == DbBackend::Postgres {
        let lock = db.begin().await?;
        lock.execute_unprepared(&format!(
            "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
        ))
        .await?;
        migration::Migrator::up(db, None).await?;
        lock.commit().await?;
        return Ok(());
    }
    // Another process migrating holds SQLite's write lock; once it is done, a new attempt
    // finds the work applied.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut attempt = 1;
    loop {
        match migration::Migrator::up(db, None).await {
            Ok(()) => return Ok(()),
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(%error, attempt, "migration failed; another process may be migrating; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                attempt += 1;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

impl CatalogStore {
    /// Connects to `url` (`postgres://…` or `sqlite://path?mode=rwc`) and migrates the schema.
    pub async fn connect(url: &str) -> Result<Self> {
        if !url.starts_with("sqlite:") {
            let mut options = connect_options(url);
            options.max_connections(16);
            return Self::open(Database::connect(options).await?).await;
        }
        // SQLite allows one writer; the other connections serve readers.
        let readers = connect_sqlite(
            url,
            3,
            READER_CACHE_KIB,
            READER_ROW_BUFFER,
            READER_MMAP_BYTES,
        )
        .await?;
        let writer = connect_sqlite(url, 1, WRITER_CACHE_KIB, WRITER_ROW_BUFFER, 0).await?;
        // A database in a file (not in memory) is also read without sqlx.
        let file =
            <sea_orm::sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
                .ok()
                .map(|options| options.get_filename().to_owned())
                .filter(|path| path.is_file());
        let sqlite_reads = file
            .map(|file| sqlite_reads::SqliteReads::open(&file).map(Arc::new))
            .transpose()?;
        Self::open_with_writer(readers, writer, sqlite_reads).await
    }

    /// Uses an existing connection and migrates the schema.
    pub async fn open(db: DatabaseConnection) -> Result<Self> {
        Self::open_with_writer(db.clone(), db, None).await
    }

    /// Reads from `db` (and `sqlite_reads`), writes through `writes`, after migrating the
    /// schema.
    async fn open_with_writer(
        db: DatabaseConnection,
        writes: DatabaseConnection,
        sqlite_reads: Option<Arc<sqlite_reads::SqliteReads>>,
    ) -> Result<Self> {
        migrate(&writes).await?;
        let backend = db.get_database_backend();
        let store = CatalogStore {
            inner: Arc::new(Inner {
                db,
                writes,
                backend,
                sqlite_reads,
                writer: Mutex::new(()),
                head: watch::channel(0).0,
                remove_orphans: std::sync::atomic::AtomicBool::new(false),
                indexes_pending: watch::channel(0).0,
                may_defer_indexes: std::sync::atomic::AtomicBool::new(false),
                activity: std::sync::Mutex::default(),
                derive_ahead: std::sync::atomic::AtomicBool::new(true),
            }),
        };
        let head = store.head_sequence().await?;
        store.inner.head.send_replace(head);
        match backend {
            DbBackend::Sqlite => {
                store.load_deferred_indexes().await?;
                store.checkpoint_in_background();
                store.build_deferred_indexes_in_background();
            }
            DbBackend::Postgres => {
                store.load_deferred_indexes().await?;
                store.analyze_in_background();
                store.build_deferred_indexes_in_background();
            }
            _ => {}
        }
        Ok(store)
    }

    /// Copies SQLite's write-ahead log into the database file every 5 seconds, off the write
    /// path: with SQLite's automatic checkpoints, a commit every few batches stalled for tens
    /// of milliseconds copying and syncing pages. A page changed by many commits between two
    /// checkpoints is copied once: every 5 s rather than every second, a 100,000-entity import
    /// wrote 19% less. Stops when the store is dropped.
    fn checkpoint_in_background(&self) {
        let inner = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // Whether the log's file may be large (a restart writes over it, keeping its size).
            let mut log_file_large = false;
            loop {
                tick.tick().await;
                let Some(inner) = inner.upgrade() else { return };
                // PASSIVE never waits for writers or readers; what it cannot copy now, the
                // next round does.
                let log_frames = match checkpoint(&inner.db, "PASSIVE").await {
                    Ok(progress) => progress.log_frames,
                    Err(error) => {
                        tracing::warn!(%error, "SQLite checkpoint failed");
                        continue;
                    }
                };
                if log_frames > WAL_FRAMES_KEPT_WHEN_IDLE {
                    log_file_large = true;
                } else if log_file_large && inner.writer_idle_for() >= IDLE_BEFORE_TRUNCATE {
                    // The writer has gone quiet: give the disk back. Little is left to copy,
                    // and cutting the file takes a quarter of a second a gigabyte.
                    let _writer = inner.writer.lock().await;
                    match checkpoint(&inner.writes, "TRUNCATE").await {
                        // A reader still in the log: the next idle tick tries again.
                        Ok(progress) if progress.busy => {
                            tracing::debug!("SQLite log not truncated: a reader still uses it");
                        }
                        Ok(_) => {
                            log_file_large = false;
                            tracing::debug!("SQLite log truncated while the writer is idle");
                        }
                        Err(error) => tracing::warn!(%error, "SQLite log truncation failed"),
                    }
                    continue;
                }
                // But the log only starts over once no reader still uses it, which readers
                // that never pause (the feed's followers during an import) never allow: it
                // grew to 6 GB over a 100,000-entity import. Past a bound, hold the writer
                // off, copy the rest and restart the log.
                if log_frames > WAL_FRAMES_BEFORE_RESTART {
                    // The hold is the copy (and the sync) of what the writer committed since
                    // the last passive copy: copy again beside it while a round still finds
                    // much that is new.
                    let mut copied_to = log_frames;
                    for _ in 0..PASSIVE_ROUNDS_BEFORE_RESTART {
                        match checkpoint(&inner.db, "PASSIVE").await {
                            Ok(progress) => {
                                let appended = progress.log_frames - copied_to;
                                copied_to = progress.log_frames;
                                if appended <= WAL_FRAMES_APPENDED_TO_RESTART {
                                    break;
                                }
                            }
                            Err(error) => {
                                tracing::warn!(%error, "SQLite checkpoint failed");
                                break;
                            }
                        }
                    }
                    let waited = std::time::Instant::now();
                    let _writer = inner.writer.lock().await;
                    let held = std::time::Instant::now();
                    // On the writer's own connection, whose page cache survives it. First
                    // what the writer committed since the last copy (timed apart), then the
                    // restart: readers leave the log and the next write starts it over.
                    let copied = checkpoint(&inner.writes, "PASSIVE").await;
                    let copied_in = held.elapsed();
                    let restarted = match copied {
                        Ok(_) => checkpoint(&inner.writes, "RESTART").await,
                        Err(error) => Err(error),
                    };
                    match restarted {
                        // Readers kept the log; past the bound, the next tick tries again.
                        Ok(progress) if progress.busy => tracing::debug!(
                            log_frames,
                            held = ?held.elapsed(),
                            "SQLite log not restarted: a reader still uses it"
                        ),
                        Ok(_) => tracing::debug!(
                            log_frames,
                            copied_to,
                            waited = ?(held - waited),
                            copied_in = ?copied_in,
                            held = ?held.elapsed(),
                            "SQLite log restarted"
                        ),
                        Err(error) => tracing::warn!(%error, "SQLite log restart failed"),
                    }
                }
            }
        });
    }

    /// Refreshes PostgreSQL's statistics of the large tables once this process has written
    /// many changes since it last did (at least 10,000, and a fifth of the changes so far).
    /// Without them the planner guesses that a list of 100 refs matches half of a table and
    /// scans it: a page of 100 entities, with their relations read by ref, took 70 ms after
    /// a 100,000-entity import instead of 2 ms, until autovacuum came by. Stops when the
    /// store is dropped.
    fn analyze_in_background(&self) {
        let inner = Arc::downgrade(&self.inner);
        let mut head = self.subscribe();
        tokio::spawn(async move {
            let mut analyzed_at = *head.borrow();
            loop {
                // Changes come in bursts: look again at most every few seconds.
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
                if head.changed().await.is_err() {
                    return;
                }
                let now = *head.borrow_and_update();
                if now.saturating_sub(analyzed_at) < ANALYZE_AFTER_CHANGES.max(analyzed_at / 5) {
                    continue;
                }
                let Some(inner) = inner.upgrade() else { return };
                let started = std::time::Instant::now();
                let analyzed = inner.db.execute_unprepared(ANALYZE_STATEMENT).await;
                // A failure (a role that does not own the tables) is reported once per round
                // of changes, not at every look.
                analyzed_at = now;
                match analyzed {
                    Ok(_) => {
                        tracing::debug!(sequence = now, spent = ?started.elapsed(), "PostgreSQL statistics refreshed");
                    }
                    Err(error) => tracing::warn!(%error, "ANALYZE failed"),
                }
            }
        });
    }

    /// Sets what happens to entities a location no longer produces (default: kept as orphans).
    pub fn set_orphan_policy(&self, policy: OrphanPolicy) {
        self.inner.remove_orphans.store(
            policy == OrphanPolicy::Remove,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub fn orphan_policy(&self) -> OrphanPolicy {
        if self
            .inner
            .remove_orphans
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            OrphanPolicy::Remove
        } else {
            OrphanPolicy::Keep
        }
    }

    pub fn backend(&self) -> DbBackend {
        self.inner.backend
    }

    /// Whether search documents' facts are kept in `entity_facts` (PostgreSQL; see `facts`).
    pub(crate) fn keeps_facts(&self) -> bool {
        self.backend() == DbBackend::Postgres
    }

    /// The lock every writer in this process holds for its transaction.
    pub(crate) fn writer(&self) -> &Mutex<()> {
        &self.inner.writer
    }

    /// What a write of one statement outside a batch (a lease, the relay's position) holds:
    /// on SQLite the writer lock, since a transaction open meanwhile could not commit; on
    /// PostgreSQL nothing, so a lease is never queued behind a large batch's transaction.
    pub(crate) async fn single_statement_writer(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend() {
            DbBackend::Postgres => None,
            _ => Some(self.inner.writer.lock().await),
        }
    }

    pub(crate) fn sqlite_reads(&self) -> Option<&Arc<sqlite_reads::SqliteReads>> {
        self.inner.sqlite_reads.as_ref()
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The connection writes go through (see `Inner::writes`).
    pub(crate) fn writes(&self) -> &DatabaseConnection {
        &self.inner.writes
    }

    /// Whether the database answers (for readiness).
    pub async fn ping(&self) -> Result<()> {
        Ok(self.inner.db.ping().await?)
    }

    /// Notified with the highest sequence after each commit in this process.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.head.subscribe()
    }
}

/// Options shared by every pool: a database that does not answer is reported quickly rather
/// than retried for long.
fn connect_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .sqlx_logging(false)
        .connect_timeout(std::time::Duration::from_secs(5))
        .acquire_timeout(std::time::Duration::from_secs(5));
    options
}

/// Page cache of each reading SQLite connection. Reads are served mostly from the memory map;
/// a reader's cache is dropped whenever the writer commits, which during an import is always.
const READER_CACHE_KIB: i64 = 64 << 10;
/// Page cache of the writing SQLite connection: it keeps the indexes' pages from one
/// transaction to the next, and holds the pages a group of batches dirties (most leaf pages of
/// the random indexes at a million entities). The writer reads the file through it, without a
/// memory map. A million-entity `cadastre up` import with groups of 512 batches: 371 s and
/// 2.9 GiB peak, against 402 s and 2.6 GiB with 256 MiB and the map. Since the next group is
/// prepared while one is written (two groups in memory), 768 MiB: 348.7 s and 3.2 GiB peak
/// against 329.4 s and 3.4 GiB with 1 GiB, whose scale bench peaked at 3.9 GiB of the 4 GiB
/// the process may use.
const WRITER_CACHE_KIB: i64 = 768 << 10;
/// Memory map of each reading connection: the catalog is read far more than written.
const READER_MMAP_BYTES: i64 = 1 << 30;
/// Rows a reading connection's thread runs ahead of the task reading them (sqlx's default):
/// a stream of every entity stays bounded.
const READER_ROW_BUFFER: usize = 50;
/// Rows the writing connection's thread may hand over without waiting for its task. Its
/// statements return ids and sequences (`RETURNING`), a few hundred small rows each: with
/// room for all of them the thread goes straight on to the next statement instead of waiting,
/// every 50 rows, for the task to be scheduled. A 300,000-entity `cadastre up` import took
/// 79.7 s (2 runs) instead of 86.2 (8 runs); see ARCHITECTURE.md, decisions.
const WRITER_ROW_BUFFER: usize = 4096;

/// A pool of `connections` to the SQLite database at `url`, each with a page cache of
/// `cache_kib` and a memory map of `mmap_bytes` (0: none).
async fn connect_sqlite(
    url: &str,
    connections: u32,
    cache_kib: i64,
    row_buffer: usize,
    mmap_bytes: i64,
) -> Result<DatabaseConnection> {
    let mut options = connect_options(url);
    options
        .max_connections(connections)
        .map_sqlx_sqlite_opts(move |opts| {
            opts.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(std::time::Duration::from_secs(30))
                .pragma("cache_size", format!("-{cache_kib}"))
                .pragma("mmap_size", mmap_bytes.to_string())
                .pragma("temp_store", "memory")
                // Checkpoints run in the background (see `checkpoint_in_background`), not
                // inside a writer's commit.
                .pragma("wal_autocheckpoint", "0")
                // A restarted log is written over from its start, not cut back: the writer's
                // first commit after a restart would cut it, and cutting a 1.4 GB file takes
                // 0.25 s on this machine.
                .pragma("journal_size_limit", WAL_BYTES_KEPT.to_string())
                .foreign_keys(false)
                .row_buffer_size(row_buffer)
        });
    // Opening sets the journal mode, which needs the database to itself for a moment: stores
    // opening one new file together may find it locked. Try again, for a while.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(error)
                if error.to_string().contains("database is locked")
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Log frames (4 KiB pages) past which the background checkpoint restarts the log: 1 GiB.
/// A restart holds the writer while it copies and syncs what the writer committed since the
/// last passive checkpoint (a group's commit, 100,000 frames and more during an import) and
/// waits for readers. At 256 MiB a truncation (the restart before) ran every 5 s during an
/// import, holding the writer for 15% of it.
const WAL_FRAMES_BEFORE_RESTART: i64 = 262_144;

/// The write-ahead log's file is cut back to this size only (2 GiB) when the log starts over:
/// past [`WAL_FRAMES_BEFORE_RESTART`] it is restarted, so a file of this size is written over.
const WAL_BYTES_KEPT: i64 = 2 << 30;

/// Log frames (256 MiB) past which the log's file is cut back once the writer is idle for
/// [`IDLE_BEFORE_TRUNCATE`]: a restart keeps the file's size (up to [`WAL_BYTES_KEPT`]), 2 GiB
/// of disk after a large import otherwise.
const WAL_FRAMES_KEPT_WHEN_IDLE: i64 = 65_536;

/// How long the writer has been idle before the log's file is cut back.
const IDLE_BEFORE_TRUNCATE: std::time::Duration = std::time::Duration::from_secs(10);

/// Changes written, at least, before PostgreSQL's statistics are refreshed again.
const ANALYZE_AFTER_CHANGES: u64 = 10_000;

/// The statistics the store refreshes: the row counts of the large tables, the columns reads
/// look rows up by, and the search documents (the planner estimates a filter on them from
/// their sample). Bodies are left out: no plan uses their statistics, and sampling them read
/// 30,000 of them per table. After a 100,000-entity store bench this took 1.15-1.23 s,
/// against 1.88-2.81 s for every column (PostgreSQL 15, two runs each).
const ANALYZE_STATEMENT: &str = "ANALYZE entities, entity_documents (entity_id), entity_facts, \
     relation_edges, \
     changes (sequence, entity_ref, change, recorded_at)";

/// Passive checkpoints, at most, before a restart: each copies what the writer appended
/// during the one before.
const PASSIVE_ROUNDS_BEFORE_RESTART: usize = 4;

/// Frames a passive round found new (16 MiB) at or below which the restart may hold the
/// writer: it copied little, so the writer appended little meanwhile.
const WAL_FRAMES_APPENDED_TO_RESTART: i64 = 4_096;

/// What a checkpoint saw: whether it was held off, and the frames in the log when it ran.
struct CheckpointProgress {
    /// The checkpoint could not finish (a `RESTART` or `TRUNCATE` that readers held off).
    busy: bool,
    log_frames: i64,
}

/// Runs `PRAGMA wal_checkpoint(MODE)`.
async fn checkpoint(db: &DatabaseConnection, mode: &str) -> Result<CheckpointProgress> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            format!("PRAGMA wal_checkpoint({mode})"),
        ))
        .await?;
    let column = |index| {
        row.as_ref()
            .and_then(|row| row.try_get_by_index::<i64>(index).ok())
            .unwrap_or(0)
    };
    Ok(CheckpointProgress {
        busy: column(0) != 0,
        log_frames: column(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The first row `sql` answers on PostgreSQL, if any.
    async fn first_row(store: &CatalogStore, sql: String) -> Option<sea_orm::QueryResult> {
        store
            .db()
            .query_one_raw(sea_orm::Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap()
    }

    /// When PostgreSQL last analyzed `table` (its statistics time), if ever.
    async fn last_analyzed(store: &CatalogStore, table: &str) -> Option<String> {
        let sql = format!(
            "SELECT CAST(last_analyze AS TEXT) AS at FROM pg_stat_user_tables WHERE relname = '{table}'"
        );
        first_row(store, sql).await?.try_get("", "at").unwrap()
    }

    /// Whether PostgreSQL holds statistics of `table.column`.
    async fn has_statistics(store: &CatalogStore, table: &str, column: &str) -> bool {
        let sql = format!(
            "SELECT 1 AS found FROM pg_stats WHERE tablename = '{table}' AND attname = '{column}'"
        );
        first_row(store, sql).await.is_some()
    }

    /// A component owned by team-a, with its `ownedBy` edge.
    fn owned_component(name: &str) -> Upsert {
        Upsert {
            body: json!({
                "kind": "Component",
                "metadata": {"name": name},
                "spec": {"owner": "team-a"},
            }),
            edges: vec![cadastre_model::RelationEdge {
                source: format!("component:default/{name}"),
                relation_type: "ownedBy".into(),
                target: "group:default/team-a".into(),
            }],
            location_key: None,
            origin_location: None,
            parent_ref: None,
            commit: None,
        }
    }

    async fn apply(store: &CatalogStore, upserts: Vec<Upsert>) {
        store
            .apply_batch(Batch {
                upserts,
                ..Batch::default()
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn postgres_statistics_follow_a_large_import() {
        let url = cadastre_testkit::fresh_postgres_database("cadastre_analyze").await;
        let store = CatalogStore::connect(&url).await.unwrap();
        assert_eq!(last_analyzed(&store, "relation_edges").await, None);
        for part in 0..(ANALYZE_AFTER_CHANGES / 1_000 + 1) {
            let upserts = (0..1_000)
                .map(|i| owned_component(&format!("c{part}-{i}")))
                .collect();
            apply(&store, upserts).await;
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        // `changes` is the statement's last table.
        while last_analyzed(&store, "changes").await.is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "no ANALYZE after {} changes",
                ANALYZE_AFTER_CHANGES + 1_000
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert!(last_analyzed(&store, "entities").await.is_some());
        assert!(last_analyzed(&store, "relation_edges").await.is_some());
        for (table, column) in [
            ("entities", "entity_ref"),
            ("entity_documents", "entity_id"),
            ("entity_facts", "key_hash"),
            ("relation_edges", "target_ref"),
            ("changes", "entity_ref"),
        ] {
            assert!(
                has_statistics(&store, table, column).await,
                "no statistics of {table}.{column}"
            );
        }
    }
}
