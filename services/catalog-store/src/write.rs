//! The write path: batches of upserts and removals in one transaction, location
//! registration, processing errors, and "stitching" (assembling each touched entity's
//! relations, etag and change record).

mod ahead;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use cadastre_model::{EntityRef, RefContext, RelationEdge};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, TransactionTrait};
use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::edges::{EdgeRow, pair_edges};
use crate::facts::{self, Fact, FactRows, Facts};
use crate::sql::{Sql, WriteVerb};
use crate::time_util::now_micros;
use crate::{
    Batch, BatchOutcome, CatalogStore, ChangeKind, Location, LocationErrors, ProcessingError,
    Result, StoreError, Upsert,
};

/// Rows per multi-row INSERT (keeps bound parameters well under both backends' limits:
/// 32,766 on SQLite, 65,535 on PostgreSQL; an entity row binds 25).
const INSERT_CHUNK: usize = 800;
/// Rows per `UPDATE … CASE id WHEN …` (the CASE is evaluated per row: keep it short).
const CASE_CHUNK: usize = 200;
/// Upserts in a batch from which its columns are derived while the stored rows are looked up
/// (see `ahead`): below it, the threads' hand-offs cost more than they overlap.
const DERIVE_AHEAD_FROM: usize = 64;
/// Refs per `IN (...)` lookup.
const LOOKUP_CHUNK: usize = 500;
/// Serialises writers across store replicas on PostgreSQL.
const WRITER_LOCK_KEY: i64 = 0x0CAD_A57E;

/// What the store knows about an entity before a batch touches it.
#[derive(Debug, Clone)]
struct ExistingRow {
    id: i64,
    uid: String,
    content_hash: String,
    location_key: Option<String>,
    generation: i64,
    orphan: bool,
    relations_version: i64,
    /// Its relations version is kept apart, in `relation_versions` (see migration m0012):
    /// writing its row takes it back.
    version_apart: bool,
    /// Hash of the edges it emitted (absent on rows written before it was kept).
    edges_hash: Option<String>,
    /// `(kind, spec.type, spec.lifecycle)` as stored, for the hot counts.
    hot: HotKey,
    /// What its secondary indexes hold, to tell whether new content moves them.
    indexed: IndexedValues,
}

/// The values an entity row's secondary indexes are built from (the lower-cased columns
/// follow from them). An update that leaves them as they are does not assign those columns:
/// SQLite rewrites an index's entry whenever a column of it is assigned, even to the value
/// it holds, and at a million entities each such entry is a page at a random place.
#[derive(Debug, Clone)]
struct IndexedValues {
    kind: String,
    name: String,
    spec_type: Option<String>,
    first_values: FirstValues,
    location_key: Option<String>,
    parent_ref: Option<String>,
}

/// One cell of `hot_counts`: original-case kind, type and lifecycle ("" when absent).
type HotKey = (String, String, String);

/// An upsert that changes the store: a new entity or new content for an existing one.
struct Write<'a> {
    upsert: &'a Upsert,
    existing: Option<&'a ExistingRow>,
    columns: EntityColumns,
}

impl Write<'_> {
    /// Whether the entity's relation rows are (re)written: it is new, or its edges changed.
    fn rewires(&self) -> bool {
        self.existing
            .is_none_or(|row| row.edges_hash.as_deref() != Some(self.columns.edges_hash.as_str()))
    }
}

/// An entity row about to be inserted: new, or the new content of an existing entity (whose
/// old row was deleted; id, uid and creation time are kept).
struct NewRow<'a> {
    write: &'a Write<'a>,
    uid: String,
    generation: i64,
    version: i64,
    etag: String,
}

/// The entity columns secondary indexes are built from, in the order
/// [`EntityColumns::bind_indexed`] binds them.
const INDEXED_COLUMNS: &str = "kind, name, kind_l, spec_type, spec_type_l, spec_owner, spec_owner_l, spec_system, spec_system_l, owner_system_multi, location_key, parent_ref";
/// The other entity columns a write sets, in the order [`NewRow::bind_plain`] binds them.
const PLAIN_COLUMNS: &str = "namespace, lifecycle, lifecycle_l, etag, generation, relations_version, content_hash, edges_hash, origin_location, orphan, updated_at";

impl NewRow<'_> {
    /// Binds the values of [`INDEXED_COLUMNS`] and then [`PLAIN_COLUMNS`].
    fn bind_content(&self, sql: &mut Sql, now: i64) {
        self.write.columns.bind_indexed(sql);
        sql.push(", ");
        self.bind_plain(sql, now);
    }

    /// Binds the values of [`PLAIN_COLUMNS`].
    fn bind_plain(&self, sql: &mut Sql, now: i64) {
        let columns = &self.write.columns;
        sql.bind(columns.namespace.clone())
            .push(", ")
            .bind(columns.lifecycle.clone())
            .push(", ")
            .bind(columns.lifecycle.as_deref().map(str::to_lowercase))
            .push(", ")
            .bind(self.etag.clone())
            .push(", ")
            .bind(self.generation)
            .push(", ")
            .bind(self.version)
            .push(", ")
            .bind(columns.content_hash.clone())
            .push(", ")
            .bind(columns.edges_hash.clone())
            .push(", ")
            .bind(columns.origin_location.clone())
            .push(", FALSE, ")
            .bind(now);
    }

    /// Binds the row of `entity_documents`: the entity's id, body and search document, and its
    /// packed facts where they are kept.
    fn bind_document(&self, sql: &mut Sql, id: i64) {
        let columns = &self.write.columns;
        sql.push("(")
            .bind(id)
            .push(", ")
            .bind(columns.body.clone())
            .push(", ")
            .bind(columns.search_doc.clone());
        if sql.backend() == DbBackend::Postgres {
            sql.push("::jsonb");
        }
        if let Some(facts) = &columns.facts {
            sql.push(", ").bind(facts.to_bytes());
        }
        sql.push(")");
    }

    /// The search document's facts, which a store that keeps them derived with the columns.
    fn facts(&self) -> Result<&Facts> {
        self.write.columns.facts.as_ref().ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{}: no facts derived for its search document",
                self.write.columns.entity_ref
            ))
        })
    }

    /// Whether the new content leaves the entity's secondary indexes as they are.
    fn keeps_indexes(&self) -> bool {
        self.write
            .existing
            .is_some_and(|existing| self.write.columns.indexed_as(&existing.indexed))
    }
}

/// A row of the change feed about to be written.
struct ChangeRow {
    entity_ref: String,
    uid: String,
    generation: i64,
    content_hash: String,
    etag: String,
    kind: ChangeKind,
    body: Option<String>,
    /// JSON `[[type, target], ...]`: what the entity emitted about itself, for history.
    own_relations: Option<String>,
    location_key: Option<String>,
    commit: Option<String>,
}

impl ChangeRow {
    /// A created or updated entity, with its body and the relations it emits about itself.
    fn content(
        write: &Write<'_>,
        uid: &str,
        generation: i64,
        etag: &str,
        kind: ChangeKind,
    ) -> Self {
        ChangeRow {
            entity_ref: write.columns.entity_ref.clone(),
            uid: uid.to_owned(),
            generation,
            content_hash: write.columns.content_hash.clone(),
            etag: etag.to_owned(),
            kind,
            body: Some(write.columns.body.clone()),
            own_relations: Some(own_relations_json(write)),
            location_key: write.upsert.location_key.clone(),
            commit: write.upsert.commit.clone(),
        }
    }
}

/// Where a batch spent its time, reported as one debug event per batch.
#[derive(Debug)]
pub(crate) struct Phases {
    last: std::time::Instant,
    pub(crate) spent: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    pub(crate) fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            spent: Vec::new(),
        }
    }

    /// Ends the phase called `name`.
    pub(crate) fn mark(&mut self, name: &'static str) {
        let now = std::time::Instant::now();
        self.spent.push((name, now - self.last));
        self.last = now;
    }
}

/// What a transaction's batches leave to do once, after the last of them
/// (`CatalogStore::settle`): a stream of batches pointing at the same popular group or API
/// bumps it once per transaction, not once per batch, and the counts are added up first.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    /// Entities whose relations moved, for a new relations version and etag.
    bumps: BTreeSet<String>,
    /// Entities created in the transaction (none of their etags was ever seen).
    created: BTreeSet<String>,
    /// Per `(kind, spec.type, spec.lifecycle)`.
    hot_counts: BTreeMap<HotKey, i64>,
    /// Distinct sources per `(relation type, target)`, from edges about the source itself.
    relation_counts: BTreeMap<(String, String), i64>,
    /// Edges emitted about others, per relation type.
    inverse_edges: BTreeMap<String, i64>,
}

/// The relations an upsert emits about its own entity, as stored with its history.
fn own_relations_json(write: &Write<'_>) -> String {
    let own: BTreeSet<(&str, String)> = write
        .upsert
        .edges
        .iter()
        .filter(|edge| edge.source.eq_ignore_ascii_case(&write.columns.entity_ref))
        .map(|edge| (edge.relation_type.as_str(), edge.target.to_lowercase()))
        .collect();
    serde_json::to_string(&own).unwrap_or_else(|_| "[]".into())
}

/// The etag: changes whenever the content or the relations change.
fn etag(content_hash: &str, relations_version: i64) -> String {
    let mut hasher = Sha1::new();
    hasher.update(content_hash.as_bytes());
    hasher.update(b"/");
    hasher.update(relations_version.to_string().as_bytes());
    hex::encode(hasher.finalize())
}

impl CatalogStore {
    /// Applies a batch in one transaction: all or nothing.
    pub async fn apply_batch(&self, batch: Batch) -> Result<BatchOutcome> {
        let mut phases = Phases::start();
        let mut prepared = prepare(&batch)?;
        phases.mark("hash");
        let batch = Arc::new(batch);
        // Columns are derived while another batch holds the writer, if one does, and while
        // the stored rows are looked up. Not from before `BEGIN` when the writer is free: a
        // thread deriving on the other core held `BEGIN` up by 2 ms.
        let _writer = match self.inner.writer.try_lock() {
            Ok(writer) => writer,
            Err(_) => {
                prepared.ahead = self.derive_ahead(&batch, &prepared);
                self.inner.writer.lock().await
            }
        };
        let txn = self.begin_write().await?;
        phases.mark("begin");
        if prepared.ahead.is_none() {
            prepared.ahead = self.derive_ahead(&batch, &prepared);
        }
        let gone = self
            .no_longer_produced(&txn, &batch.replaced_locations, &prepared)
            .await?;
        self.settle_gone(&mut prepared, gone);
        let outcome = self.apply_in(&txn, &batch, prepared).await?;
        phases.mark("apply");
        txn.commit().await?;
        phases.mark("commit");
        // Deriving ahead pays when most upserts change; when most are unchanged, it mostly
        // derives for nothing (a refresh), so the next batch does without.
        let changed = outcome.created + outcome.updated;
        self.inner
            .derive_ahead
            .store(changed >= outcome.unchanged, Ordering::Relaxed);
        tracing::debug!(phases = ?phases.spent, "batch committed");
        self.publish_head(outcome.last_sequence);
        Ok(outcome)
    }

    /// Starts deriving the columns of `batch`'s upserts, if there are enough of them and the
    /// last batch mostly changed (see `ahead`).
    fn derive_ahead(&self, batch: &Arc<Batch>, prepared: &Prepared) -> Option<ahead::DeriveAhead> {
        (batch.upserts.len() >= DERIVE_AHEAD_FROM
            && self.inner.derive_ahead.load(Ordering::Relaxed))
        .then(|| ahead::DeriveAhead::start(Arc::clone(batch), prepared, self.keeps_facts()))
    }

    /// Registers a location and its generated Location entity.
    pub async fn add_location(&self, location_type: &str, target: &str) -> Result<Location> {
        check_location(location_type, target)?;
        let _writer = self.inner.writer.lock().await;
        let txn = self.begin_write().await?;
        self.refuse_taken(&txn, location_type, target).await?;
        let location = Location {
            id: uuid::Uuid::new_v4().to_string(),
            location_type: location_type.to_owned(),
            target: target.to_owned(),
            entity_ref: String::new(),
            created_at: now_micros(),
        };
        let (location, outcome) = self.insert_location_in(&txn, location).await?;
        txn.commit().await?;
        self.publish_head(outcome.last_sequence);
        Ok(location)
    }

    /// Points a location somewhere else, keeping its id: what came through the old target
    /// goes (as on removal) and a new generated Location entity is emitted for the new one.
    pub async fn update_location(
        &self,
        id: &str,
        location_type: &str,
        target: &str,
    ) -> Result<Location> {
        check_location(location_type, target)?;
        let _writer = self.inner.writer.lock().await;
        let txn = self.begin_write().await?;
        let old = self
            .location_by_id(&txn, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Found no location with ID {id}")))?;
        if old.location_type == location_type && old.target == target {
            return Ok(old);
        }
        self.refuse_taken(&txn, location_type, target).await?;
        let forgotten = self.forget_location_in(&txn, &old).await?;
        let mut sql = Sql::new(self.backend());
        sql.push("DELETE FROM locations WHERE id = ")
            .bind(id.to_owned());
        txn.execute_raw(sql.build()).await?;
        let location = Location {
            location_type: location_type.to_owned(),
            target: target.to_owned(),
            ..old
        };
        let (location, outcome) = self.insert_location_in(&txn, location).await?;
        txn.commit().await?;
        self.publish_head(outcome.last_sequence.max(forgotten.last_sequence));
        Ok(location)
    }

    async fn refuse_taken(
        &self,
        txn: &DatabaseTransaction,
        location_type: &str,
        target: &str,
    ) -> Result<()> {
        if self
            .find_location_by_key(txn, location_type, target)
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists(format!(
                "Location {location_type}:{target} already exists"
            )));
        }
        Ok(())
    }

    /// Inserts the location's row and its generated Location entity (named after the key).
    async fn insert_location_in(
        &self,
        txn: &DatabaseTransaction,
        mut location: Location,
    ) -> Result<(Location, BatchOutcome)> {
        let key = location.key();
        location.entity_ref = format!(
            "location:default/{}",
            cadastre_model::entity::generated_location_name(&key)
        );
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO locations (id, type, target, entity_ref, created_at) VALUES (")
            .bind(location.id.clone())
            .push(", ")
            .bind(location.location_type.clone())
            .push(", ")
            .bind(location.target.clone())
            .push(", ")
            .bind(location.entity_ref.clone())
            .push(", ")
            .bind(location.created_at)
            .push(")");
        txn.execute_raw(sql.build()).await?;
        let body =
            cadastre_model::entity::generated_location(&location.location_type, &location.target);
        let batch = Batch {
            upserts: vec![Upsert {
                body,
                edges: Vec::new(),
                // Registration produces it, not a harvest of the location: a harvest that
                // replaces what the location holds must leave it (it goes with the location).
                location_key: None,
                origin_location: Some(key),
                parent_ref: None,
                commit: None,
            }],
            ..Batch::default()
        };
        let prepared = prepare(&batch)?;
        let outcome = self.apply_in(txn, &batch, prepared).await?;
        Ok((location, outcome))
    }

    /// Unregisters a location; every entity that came through it goes too. Returns how many.
    pub async fn remove_location(&self, id: &str) -> Result<u64> {
        let _writer = self.inner.writer.lock().await;
        let txn = self.begin_write().await?;
        let location = self
            .location_by_id(&txn, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Found no location with ID {id}")))?;
        let outcome = self.forget_location_in(&txn, &location).await?;
        let mut sql = Sql::new(self.backend());
        sql.push("DELETE FROM locations WHERE id = ")
            .bind(id.to_owned());
        txn.execute_raw(sql.build()).await?;
        txn.commit().await?;
        self.publish_head(outcome.last_sequence);
        Ok(u64::from(outcome.removed))
    }

    /// Removes every entity that came through `location` (its generated entity included) and
    /// the processing errors of it and the locations it fanned out to.
    async fn forget_location_in(
        &self,
        txn: &DatabaseTransaction,
        location: &Location,
    ) -> Result<BatchOutcome> {
        let key = location.key();
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT entity_ref, location_key FROM entities WHERE origin_location = ")
            .bind(key.clone());
        let rows = txn.query_all_raw(sql.build()).await?;
        let mut removals = Vec::with_capacity(rows.len());
        let mut location_keys: BTreeSet<String> = BTreeSet::from([key]);
        for row in rows {
            removals.push(row.try_get::<String>("", "entity_ref")?);
            if let Some(child_key) = row.try_get::<Option<String>>("", "location_key")? {
                location_keys.insert(child_key);
            }
        }
        let batch = Batch {
            removals,
            ..Batch::default()
        };
        let prepared = prepare(&batch)?;
        let outcome = self.apply_in(txn, &batch, prepared).await?;
        let keys: Vec<String> = location_keys.into_iter().collect();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM processing_errors WHERE location_key IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
        }
        Ok(outcome)
    }

    /// Entities no longer produced are removed or kept as orphans, as configured.
    pub(crate) fn settle_gone(&self, prepared: &mut Prepared, gone: Vec<String>) {
        match self.orphan_policy() {
            crate::OrphanPolicy::Remove => prepared.removal_refs.extend(gone),
            crate::OrphanPolicy::Keep => prepared.orphan_refs.extend(gone),
        }
    }

    /// Entities held by `locations` that the batch neither upserts nor already removes.
    pub(crate) async fn no_longer_produced(
        &self,
        txn: &DatabaseTransaction,
        locations: &[String],
        prepared: &Prepared,
    ) -> Result<Vec<String>> {
        let kept: BTreeSet<&str> = prepared
            .upsert_refs
            .iter()
            .chain(&prepared.removal_refs)
            .map(String::as_str)
            .collect();
        let mut gone = Vec::new();
        for chunk in locations.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT entity_ref FROM entities WHERE location_key IN ")
                .bind_list(chunk)
                .push(" ORDER BY entity_ref");
            for row in txn.query_all_raw(sql.build()).await? {
                let entity_ref: String = row.try_get("", "entity_ref")?;
                if !kept.contains(entity_ref.as_str()) {
                    gone.push(entity_ref);
                }
            }
        }
        Ok(gone)
    }

    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let txn = self.writes().begin().await?;
        if self.backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})"))
                .await?;
        }
        Ok(txn)
    }

    pub(crate) fn publish_head(&self, last_sequence: u64) {
        self.note_commit();
        if last_sequence > 0 {
            self.inner.head.send_if_modified(|head| {
                let newer = last_sequence > *head;
                if newer {
                    *head = last_sequence;
                    cadastre_telemetry::metrics::gauge!("cadastre_store_feed_head")
                        .set(last_sequence as f64);
                }
                newer
            });
        }
    }

    /// Applies one batch in `txn`, its bumps and counts included.
    pub(crate) async fn apply_in(
        &self,
        txn: &DatabaseTransaction,
        batch: &Batch,
        prepared: Prepared,
    ) -> Result<BatchOutcome> {
        let mut deferred = Deferred::default();
        let mut outcome = self
            .apply_in_deferring(txn, batch, prepared, &mut deferred)
            .await?;
        let bumped = self.settle(txn, deferred).await?;
        outcome.last_sequence = outcome.last_sequence.max(bumped);
        Ok(outcome)
    }

    /// Applies one batch in `txn`, leaving its bumps and counts to `deferred`, for
    /// [`Self::settle`] once the transaction's batches are applied.
    pub(crate) async fn apply_in_deferring(
        &self,
        txn: &DatabaseTransaction,
        batch: &Batch,
        prepared: Prepared,
        deferred: &mut Deferred,
    ) -> Result<BatchOutcome> {
        let started = std::time::Instant::now();
        cadastre_telemetry::metrics::histogram!("cadastre_store_batch_entities")
            .record((batch.upserts.len() + batch.removals.len()) as f64);
        let outcome = self.apply_in_timed(txn, batch, prepared, deferred).await;
        cadastre_telemetry::metrics::histogram!("cadastre_store_apply_seconds")
            .record(started.elapsed().as_secs_f64());
        outcome
    }

    /// Writes the counts, and gives every entity whose relations moved and that existed
    /// before the transaction a new relations version, etag and `relations` change.
    /// Answers the last change sequence written (0 if none).
    pub(crate) async fn settle(
        &self,
        txn: &DatabaseTransaction,
        deferred: Deferred,
    ) -> Result<u64> {
        let started = std::time::Instant::now();
        self.apply_hot_deltas(txn, &deferred.hot_counts).await?;
        self.apply_relation_deltas(txn, &deferred.relation_counts, &deferred.inverse_edges)
            .await?;
        // An entity created in this transaction is first seen with its relations as they
        // are at commit: nobody holds an older etag of it.
        let refs: Vec<String> = deferred
            .bumps
            .difference(&deferred.created)
            .cloned()
            .collect();
        let changes = self.bump_relations(txn, &refs, now_micros()).await?;
        let last = self.record_changes(txn, &changes, now_micros()).await?;
        tracing::debug!(bumped = changes.len(), spent = ?started.elapsed(), "counts and relations versions settled");
        Ok(last)
    }

    async fn apply_in_timed(
        &self,
        txn: &DatabaseTransaction,
        batch: &Batch,
        mut prepared: Prepared,
        deferred: &mut Deferred,
    ) -> Result<BatchOutcome> {
        let now = now_micros();
        let mut phases = Phases::start();
        let mut outcome = BatchOutcome::default();
        let lookup: Vec<String> = prepared
            .upsert_refs
            .iter()
            .chain(prepared.removal_refs.iter())
            .chain(prepared.orphan_refs.iter())
            .cloned()
            .collect();
        let existing = self.load_existing(txn, &lookup).await?;
        phases.mark("load");

        // 1. Decide what each upsert and removal does, in memory.
        let mut removed: Vec<(&str, &ExistingRow)> = Vec::new();
        for entity_ref in &prepared.removal_refs {
            if let Some(row) = existing.get(entity_ref) {
                removed.push((entity_ref, row));
            }
        }
        let mut changed = Vec::new();
        // (ref, newcomer's location, holder's location)
        let mut conflicts: Vec<(&str, &str, &str)> = Vec::new();
        for (index, ((upsert, entity_ref), hash)) in batch
            .upserts
            .iter()
            .zip(&prepared.upsert_refs)
            .zip(&prepared.upsert_hashes)
            .enumerate()
        {
            let row = existing.get(entity_ref);
            if let Some(row) = row {
                if let Some(holder) = &row.location_key
                    && row.location_key != upsert.location_key
                {
                    outcome.conflicts.push(entity_ref.clone());
                    if let Some(newcomer) = &upsert.location_key {
                        conflicts.push((entity_ref, newcomer, holder));
                    }
                    continue;
                }
                if row.content_hash == *hash && !row.orphan {
                    outcome.unchanged += 1;
                    continue;
                }
            }
            changed.push((upsert, entity_ref, hash, row, index));
        }
        if let Some(ahead) = prepared.ahead.take() {
            let mut wanted = vec![false; batch.upserts.len()];
            for change in &changed {
                wanted[change.4] = true;
            }
            prepared.columns = ahead.finish(&wanted).await?;
        }
        let derive = |(upsert, entity_ref, hash, _, _): &(
            &Upsert,
            &String,
            &String,
            Option<&ExistingRow>,
            usize,
        )| {
            EntityColumns::from_upsert(upsert, entity_ref, hash, self.keeps_facts())
        };
        let columns = if prepared.columns.len() == batch.upserts.len() {
            let derived = &mut prepared.columns;
            changed
                .iter()
                .map(|change| derived[change.4].take().unwrap_or_else(|| derive(change)))
                .collect()
        } else {
            par_map(&changed, derive)
        };
        let mut writes: Vec<Write<'_>> = Vec::with_capacity(changed.len());
        for ((upsert, _, _, existing, _), columns) in changed.into_iter().zip(columns) {
            writes.push(Write {
                upsert,
                existing,
                columns: columns?,
            });
        }
        phases.mark("prepare");

        // 2. The relation rows of entities whose edges change (or that go away) are replaced;
        //    an edit to a description leaves the relations table alone (same `edges_hash`).
        let rewired: BTreeSet<i64> = removed
            .iter()
            .map(|(_, row)| row.id)
            .chain(
                writes
                    .iter()
                    .filter(|write| write.rewires())
                    .filter_map(|write| write.existing.map(|row| row.id)),
            )
            .collect();
        let rewired_ids: Vec<i64> = rewired.iter().copied().collect();
        let old_edges = self.relations_of(txn, &rewired_ids).await?;
        for chunk in rewired_ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM relation_edges WHERE originating_entity_id IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
        }
        phases.mark("take_relations");
        let removed_ids: Vec<i64> = removed.iter().map(|(_, row)| row.id).collect();
        for chunk in removed_ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM entities WHERE id IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM entity_documents WHERE entity_id IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
            if self.keeps_facts() {
                let mut sql = Sql::new(self.backend());
                sql.push("DELETE FROM entity_facts WHERE entity_id IN ")
                    .bind_list(chunk);
                txn.execute_raw(sql.build()).await?;
            }
        }
        self.forget_relation_versions(txn, removed.iter().map(|(_, row)| *row))
            .await?;

        // 3. Whose outgoing relations change: compare the edges the touched entities emitted
        //    before and after, per source.
        let mut before: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for (_, source, relation_type, target) in &old_edges {
            before
                .entry(source.clone())
                .or_default()
                .insert((relation_type.clone(), target.clone()));
        }
        let mut after: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
        for write in writes.iter().filter(|write| write.rewires()) {
            for edge in &write.upsert.edges {
                after
                    .entry(edge.source.to_lowercase())
                    .or_default()
                    .insert((edge.relation_type.clone(), edge.target.to_lowercase()));
            }
        }
        let removed_refs: BTreeSet<&str> =
            removed.iter().map(|(entity_ref, _)| *entity_ref).collect();
        let moved: BTreeSet<String> = before
            .keys()
            .chain(after.keys())
            .filter(|source| before.get(*source) != after.get(*source))
            .filter(|source| !removed_refs.contains(source.as_str()))
            .cloned()
            .collect();

        // 4. Write the entities: inserts and updates, with their final etag.
        let mut changes: Vec<ChangeRow> = Vec::new();
        let mut inserted_ids: HashMap<String, i64> = HashMap::new();
        let (creates, updates): (Vec<&Write<'_>>, Vec<&Write<'_>>) =
            writes.iter().partition(|w| w.existing.is_none());
        for (group, kind) in [
            (&creates, ChangeKind::Created),
            (&updates, ChangeKind::Updated),
        ] {
            for chunk in group.chunks(INSERT_CHUNK / 2) {
                let rows: Vec<NewRow<'_>> = chunk
                    .iter()
                    .map(|write| {
                        let moved_here = i64::from(moved.contains(&write.columns.entity_ref));
                        let (uid, generation, version) = match write.existing {
                            Some(row) => (
                                row.uid.clone(),
                                row.generation + 1,
                                row.relations_version + moved_here,
                            ),
                            // Time-ordered: new uids append to the uid index instead of
                            // touching a random page of it each.
                            None => (uuid::Uuid::now_v7().to_string(), 1, moved_here),
                        };
                        NewRow {
                            write,
                            etag: etag(&write.columns.content_hash, version),
                            uid,
                            generation,
                            version,
                        }
                    })
                    .collect();
                match kind {
                    ChangeKind::Created => {
                        inserted_ids.extend(self.insert_entities(txn, &rows, now).await?);
                    }
                    _ => self.update_entities(txn, &rows, now).await?,
                }
                for row in &rows {
                    changes.push(ChangeRow::content(
                        row.write,
                        &row.uid,
                        row.generation,
                        &row.etag,
                        kind,
                    ));
                }
                let count = u32::try_from(rows.len()).unwrap_or(u32::MAX);
                match kind {
                    ChangeKind::Created => outcome.created += count,
                    _ => outcome.updated += count,
                }
            }
        }

        phases.mark("entities");
        // 5. The new relation rows: one per edge and the edge back (see `edges`).
        let mut edge_rows: Vec<(i64, EdgeRow)> = Vec::new();
        for write in &writes {
            if !write.rewires() {
                continue;
            }
            let id = match write.existing {
                Some(row) => row.id,
                None => inserted_ids
                    .get(&write.columns.entity_ref)
                    .copied()
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "no id came back for {}",
                            write.columns.entity_ref
                        ))
                    })?,
            };
            edge_rows.extend(
                pair_edges(&write.columns.entity_ref, &write.upsert.edges)
                    .into_iter()
                    .map(|row| (id, row)),
            );
        }
        self.insert_relations(txn, &edge_rows).await?;
        phases.mark("relations");

        // 6. Entities outside the batch whose relations moved get a new version and etag
        //    only, once per transaction (`settle`).
        let written: BTreeSet<&str> = writes
            .iter()
            .map(|w| w.columns.entity_ref.as_str())
            .collect();
        let others: Vec<String> = moved
            .into_iter()
            .filter(|r| !written.contains(r.as_str()))
            .collect();
        let bumps_deferred = others.len();
        deferred.bumps.extend(others);
        deferred.created.extend(
            writes
                .iter()
                .filter(|w| w.existing.is_none())
                .map(|w| w.columns.entity_ref.clone()),
        );

        // 6b. Entities no longer produced, kept as orphans: marked, with a new etag.
        let newly_orphaned: Vec<(&str, &ExistingRow)> = prepared
            .orphan_refs
            .iter()
            .filter_map(|entity_ref| {
                existing
                    .get(entity_ref)
                    .filter(|row| !row.orphan)
                    .map(|row| (entity_ref.as_str(), row))
            })
            .collect();
        let orphaned = self.mark_orphans(txn, &newly_orphaned, now).await?;
        outcome.orphaned = u32::try_from(orphaned.len()).unwrap_or(u32::MAX);
        outcome.orphaned_refs = orphaned.iter().map(|c| c.entity_ref.clone()).collect();
        changes.extend(orphaned);

        // 7. Keep the per-(kind, type, lifecycle) counts in step (written by `settle`).
        let deltas = &mut deferred.hot_counts;
        for (_, row) in &removed {
            *deltas.entry(row.hot.clone()).or_default() -= 1;
        }
        for write in &writes {
            if let Some(row) = write.existing {
                *deltas.entry(row.hot.clone()).or_default() -= 1;
            }
            *deltas.entry(write.columns.hot_key()).or_default() += 1;
        }
        let originators: HashMap<i64, &str> = removed
            .iter()
            .map(|(entity_ref, row)| (row.id, *entity_ref))
            .chain(writes.iter().filter_map(|w| {
                w.existing
                    .map(|row| (row.id, w.columns.entity_ref.as_str()))
            }))
            .collect();
        let own = &mut deferred.relation_counts;
        let inverse = &mut deferred.inverse_edges;
        let mut count =
            |originator: &str, source: &str, relation_type: &str, target: &str, delta: i64| {
                let relation_type = relation_type.to_lowercase();
                if source.eq_ignore_ascii_case(originator) {
                    *own.entry((relation_type, target.to_lowercase()))
                        .or_default() += delta;
                } else {
                    *inverse.entry(relation_type).or_default() += delta;
                }
            };
        for (id, source, relation_type, target) in &old_edges {
            let originator = originators.get(id).copied().unwrap_or_default();
            count(originator, source, relation_type, target, -1);
        }
        for write in writes.iter().filter(|write| write.rewires()) {
            let mut edges: Vec<&RelationEdge> = write.upsert.edges.iter().collect();
            edges.sort();
            edges.dedup();
            for edge in edges {
                count(
                    &write.columns.entity_ref,
                    &edge.source,
                    &edge.relation_type,
                    &edge.target,
                    1,
                );
            }
        }
        phases.mark("counts");

        // 8. Removals and every change go to the change feed.
        for (entity_ref, row) in &removed {
            changes.push(ChangeRow {
                entity_ref: (*entity_ref).to_owned(),
                uid: row.uid.clone(),
                generation: row.generation,
                content_hash: row.content_hash.clone(),
                etag: String::new(),
                kind: ChangeKind::Removed,
                body: None,
                own_relations: None,
                location_key: row.location_key.clone(),
                commit: None,
            });
            outcome.removed += 1;
            outcome.removed_refs.push((*entity_ref).to_owned());
        }
        outcome.changed_refs = writes
            .iter()
            .map(|write| write.columns.entity_ref.clone())
            .collect();
        outcome.last_sequence = self.record_changes(txn, &changes, now).await?;
        phases.mark("changes");

        self.replace_errors(txn, &batch.errors, now).await?;
        // A refused ref is a visible error on the newcomer's location (Backstage only logs
        // it), written after the newcomer's errors were replaced.
        self.insert_errors(txn, &group_conflicts(&conflicts), now)
            .await?;
        phases.mark("errors");
        tracing::debug!(
            created = outcome.created,
            updated = outcome.updated,
            unchanged = outcome.unchanged,
            removed = outcome.removed,
            bumps_deferred,
            phases = ?phases.spent,
            "batch applied"
        );
        Ok(outcome)
    }

    async fn apply_hot_deltas(
        &self,
        txn: &DatabaseTransaction,
        deltas: &BTreeMap<HotKey, i64>,
    ) -> Result<()> {
        let changed: Vec<(&HotKey, &i64)> =
            deltas.iter().filter(|(_, delta)| **delta != 0).collect();
        for chunk in changed.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert).push("hot_counts (kind, spec_type, lifecycle, kind_l, spec_type_l, lifecycle_l, n) VALUES ");
            for (index, ((kind, spec_type, lifecycle), delta)) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(kind.clone())
                    .push(", ")
                    .bind(spec_type.clone())
                    .push(", ")
                    .bind(lifecycle.clone())
                    .push(", ")
                    .bind(kind.to_lowercase())
                    .push(", ")
                    .bind(spec_type.to_lowercase())
                    .push(", ")
                    .bind(lifecycle.to_lowercase())
                    .push(", ")
                    .bind(**delta)
                    .push(")");
            }
            sql.push(" ON CONFLICT (kind, spec_type, lifecycle) DO UPDATE SET n = hot_counts.n + excluded.n");
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    async fn load_existing(
        &self,
        txn: &DatabaseTransaction,
        refs: &[String],
    ) -> Result<HashMap<String, ExistingRow>> {
        let mut existing = HashMap::with_capacity(refs.len());
        for chunk in refs.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT e.id, e.entity_ref, e.uid, e.content_hash, e.location_key, e.generation, e.orphan, COALESCE(v.relations_version, e.relations_version) AS relations_version, v.relations_version AS version_apart, e.edges_hash, e.kind, e.name, e.spec_type, e.lifecycle, e.spec_owner, e.spec_owner_l, e.spec_system, e.spec_system_l, e.owner_system_multi, e.parent_ref FROM entities e LEFT JOIN relation_versions v ON v.entity_id = e.id WHERE e.entity_ref IN ")
                .bind_list(chunk);
            for row in txn.query_all_raw(sql.build()).await? {
                let kind: String = row.try_get("", "kind")?;
                let spec_type: Option<String> = row.try_get("", "spec_type")?;
                let location_key: Option<String> = row.try_get("", "location_key")?;
                let first_value = |original: &str, lowered: &str| -> Result<FirstValue> {
                    Ok(FirstValue {
                        original: row.try_get("", original)?,
                        lowered: row.try_get("", lowered)?,
                    })
                };
                let indexed = IndexedValues {
                    kind: kind.clone(),
                    name: row.try_get("", "name")?,
                    spec_type: spec_type.clone(),
                    first_values: FirstValues {
                        owner: first_value("spec_owner", "spec_owner_l")?,
                        system: first_value("spec_system", "spec_system_l")?,
                        more_values: row.try_get("", "owner_system_multi")?,
                    },
                    location_key: location_key.clone(),
                    parent_ref: row.try_get("", "parent_ref")?,
                };
                existing.insert(
                    row.try_get::<String>("", "entity_ref")?,
                    ExistingRow {
                        id: row.try_get("", "id")?,
                        uid: row.try_get("", "uid")?,
                        content_hash: row.try_get("", "content_hash")?,
                        location_key,
                        generation: row.try_get("", "generation")?,
                        orphan: row.try_get("", "orphan")?,
                        relations_version: row.try_get("", "relations_version")?,
                        version_apart: row.try_get::<Option<i64>>("", "version_apart")?.is_some(),
                        edges_hash: row.try_get("", "edges_hash")?,
                        hot: (
                            kind,
                            spec_type.unwrap_or_default(),
                            row.try_get::<Option<String>>("", "lifecycle")?
                                .unwrap_or_default(),
                        ),
                        indexed,
                    },
                );
            }
        }
        Ok(existing)
    }

    /// The relation rows the given entities emitted: `(originating id, source, type, target)`.
    async fn relations_of(
        &self,
        txn: &DatabaseTransaction,
        ids: &[i64],
    ) -> Result<Vec<(i64, String, String, String)>> {
        let mut edges = Vec::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT originating_entity_id, source_ref, type, target_ref FROM relations WHERE originating_entity_id IN ")
                .bind_list(chunk);
            for row in txn.query_all_raw(sql.build()).await? {
                edges.push((
                    row.try_get("", "originating_entity_id")?,
                    row.try_get("", "source_ref")?,
                    row.try_get("", "type")?,
                    row.try_get("", "target_ref")?,
                ));
            }
        }
        Ok(edges)
    }

    /// Applies changes to the relation counts: `(type, target) -> delta` for edges entities
    /// emit about themselves, `type -> delta` for edges about others.
    async fn apply_relation_deltas(
        &self,
        txn: &DatabaseTransaction,
        own: &BTreeMap<(String, String), i64>,
        inverse: &BTreeMap<String, i64>,
    ) -> Result<()> {
        let own: Vec<_> = own.iter().filter(|(_, d)| **d != 0).collect();
        for chunk in own.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert)
                .push("relation_counts (type_l, target_ref, n) VALUES ");
            for (index, ((relation_type, target), delta)) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(relation_type.clone())
                    .push(", ")
                    .bind(target.clone())
                    .push(", ")
                    .bind(**delta)
                    .push(")");
            }
            sql.push(" ON CONFLICT (type_l, target_ref) DO UPDATE SET n = relation_counts.n + excluded.n");
            txn.execute_raw(sql.build()).await?;
        }
        let inverse: Vec<_> = inverse.iter().filter(|(_, d)| **d != 0).collect();
        for chunk in inverse.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert)
                .push("relation_types (type_l, inverse_edges) VALUES ");
            for (index, (relation_type, delta)) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind((*relation_type).clone())
                    .push(", ")
                    .bind(**delta)
                    .push(")");
            }
            sql.push(" ON CONFLICT (type_l) DO UPDATE SET inverse_edges = relation_types.inverse_edges + excluded.inverse_edges");
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    async fn insert_relations(
        &self,
        txn: &DatabaseTransaction,
        rows: &[(i64, EdgeRow)],
    ) -> Result<()> {
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert).push("relation_edges (originating_entity_id, source_ref, type, type_l, target_ref, inverse_type) VALUES ");
            for (index, (id, row)) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(*id)
                    .push(", ")
                    .bind(row.source.clone())
                    .push(", ")
                    .bind(row.relation_type.clone())
                    .push(", ")
                    .bind(row.relation_type.to_lowercase())
                    .push(", ")
                    .bind(row.target.clone())
                    .push(", ")
                    .bind(row.inverse_type.clone())
                    .push(")");
            }
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    /// Inserts new entity rows in one statement; returns their ids by ref.
    async fn insert_entities(
        &self,
        txn: &DatabaseTransaction,
        rows: &[NewRow<'_>],
        now: i64,
    ) -> Result<Vec<(String, i64)>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(self.backend());
        sql.write_verb(WriteVerb::Insert)
            .push("entities (uid, entity_ref, ")
            .push(INDEXED_COLUMNS)
            .push(", ")
            .push(PLAIN_COLUMNS)
            .push(", created_at) VALUES ");
        for (index, row) in rows.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push("(")
                .bind(row.uid.clone())
                .push(", ")
                .bind(row.write.columns.entity_ref.clone())
                .push(", ");
            row.bind_content(&mut sql, now);
            sql.push(", ").bind(now).push(")");
        }
        sql.push(" RETURNING id, entity_ref");
        let mut ids: Vec<(String, i64)> = Vec::with_capacity(rows.len());
        for row in txn.query_all_raw(sql.build()).await? {
            ids.push((row.try_get("", "entity_ref")?, row.try_get("", "id")?));
        }
        let by_ref: HashMap<&str, i64> = ids.iter().map(|(r, id)| (r.as_str(), *id)).collect();
        let mut documents = Vec::with_capacity(rows.len());
        for row in rows {
            let entity_ref = row.write.columns.entity_ref.as_str();
            let id = by_ref
                .get(entity_ref)
                .copied()
                .ok_or_else(|| StoreError::Corrupt(format!("no id came back for {entity_ref}")))?;
            documents.push((row, id));
        }
        self.write_documents(txn, &documents, WriteVerb::Insert)
            .await?;
        Ok(ids)
    }

    /// Writes the body and search document of each entity row: inserted for new rows, else
    /// replaced. Where facts are kept, theirs follow: all of a new row's, and what changed of
    /// a replaced row's (its old facts come back from the statement that replaces them).
    async fn write_documents(
        &self,
        txn: &DatabaseTransaction,
        rows: &[(&NewRow<'_>, i64)],
        verb: WriteVerb,
    ) -> Result<()> {
        let facts = self.keeps_facts();
        let (table_columns, value_columns) = if facts {
            (
                "(entity_id, body, search_doc, facts)",
                "(id, body, search_doc, facts)",
            )
        } else {
            ("(entity_id, body, search_doc)", "(id, body, search_doc)")
        };
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            match verb {
                WriteVerb::Insert => sql
                    .write_verb(verb)
                    .push("entity_documents ")
                    .push(table_columns)
                    .push(" VALUES "),
                WriteVerb::Update => sql.push("WITH v ").push(value_columns).push(" AS (VALUES "),
            };
            for (index, (row, id)) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                row.bind_document(&mut sql, *id);
            }
            match (verb, facts) {
                (WriteVerb::Insert, _) => {
                    txn.execute_raw(sql.build()).await?;
                }
                (WriteVerb::Update, false) => {
                    sql.push(") ")
                        .write_verb(verb)
                        .push("entity_documents SET body = v.body, search_doc = v.search_doc FROM v WHERE entity_documents.entity_id = v.id");
                    txn.execute_raw(sql.build()).await?;
                }
                (WriteVerb::Update, true) => {
                    // Every part of one statement sees the rows as they were before it.
                    sql.push("), old AS (SELECT d.entity_id, d.facts FROM entity_documents d WHERE d.entity_id IN (SELECT id FROM v)), \
                         written AS (UPDATE entity_documents SET body = v.body, search_doc = v.search_doc, facts = v.facts FROM v WHERE entity_documents.entity_id = v.id) \
                         SELECT entity_id, facts FROM old");
                    let mut old = HashMap::with_capacity(chunk.len());
                    for row in txn.query_all_raw(sql.build()).await? {
                        let id: i64 = row.try_get("", "entity_id")?;
                        let packed: Vec<u8> = row.try_get("", "facts")?;
                        old.insert(id, Facts::from_bytes(&packed)?);
                    }
                    let (mut gone, mut came) = (FactRows::new(), FactRows::new());
                    for (row, id) in chunk {
                        let before = old.remove(id).ok_or_else(|| {
                            StoreError::Corrupt(format!(
                                "{} has no document row to replace",
                                row.write.columns.entity_ref
                            ))
                        })?;
                        let (deleted, inserted) = before.changes_to(row.facts()?);
                        gone.extend(deleted.into_iter().map(|fact| (*id, fact)));
                        came.extend(inserted.into_iter().map(|fact| (*id, fact)));
                    }
                    self.write_facts(txn, &gone, facts::delete_statement)
                        .await?;
                    self.write_facts(txn, &came, facts::insert_statement)
                        .await?;
                }
            }
        }
        if facts && verb == WriteVerb::Insert {
            let mut all = FactRows::new();
            for (row, id) in rows {
                all.extend(row.facts()?.iter().map(|fact| (*id, fact)));
            }
            self.write_facts(txn, &all, facts::insert_statement).await?;
        }
        Ok(())
    }

    /// Runs the statement `build` makes of `rows`, if there are any.
    async fn write_facts(
        &self,
        txn: &DatabaseTransaction,
        rows: &[(i64, Fact)],
        build: fn(&mut Sql, &[(i64, Fact)]),
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut sql = Sql::new(self.backend());
        build(&mut sql, rows);
        txn.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Writes new content into existing rows in place: id, uid, ref and creation time stay.
    /// Rows whose indexed values stay too are written without assigning those columns, so
    /// their index entries are not rewritten (see [`IndexedValues`]).
    async fn update_entities(
        &self,
        txn: &DatabaseTransaction,
        rows: &[NewRow<'_>],
        now: i64,
    ) -> Result<()> {
        let (plain, moving): (Vec<&NewRow<'_>>, Vec<&NewRow<'_>>) =
            rows.iter().partition(|row| row.keeps_indexes());
        self.update_rows(txn, &plain, false, now).await?;
        self.update_rows(txn, &moving, true, now).await?;
        let documents: Vec<(&NewRow<'_>, i64)> = rows
            .iter()
            .filter_map(|row| row.write.existing.map(|existing| (row, existing.id)))
            .collect();
        self.write_documents(txn, &documents, WriteVerb::Update)
            .await?;
        // Their rows hold their relations versions again.
        self.forget_relation_versions(txn, rows.iter().filter_map(|row| row.write.existing))
            .await
    }

    /// One `UPDATE … FROM (VALUES …)` of `rows`: every content column, or with `indexed`
    /// false only [`PLAIN_COLUMNS`].
    async fn update_rows(
        &self,
        txn: &DatabaseTransaction,
        rows: &[&NewRow<'_>],
        indexed: bool,
        now: i64,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns: Vec<&str> = indexed
            .then_some(INDEXED_COLUMNS)
            .into_iter()
            .chain([PLAIN_COLUMNS])
            .flat_map(|list| list.split(", "))
            .collect();
        let mut sql = Sql::new(self.backend());
        sql.push("WITH v (id, ")
            .push(&columns.join(", "))
            .push(") AS (VALUES ");
        for (index, row) in rows.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            let id = row
                .write
                .existing
                .map(|existing| existing.id)
                .ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{} has no row to update",
                        row.write.columns.entity_ref
                    ))
                })?;
            sql.push("(").bind(id).push(", ");
            if indexed {
                row.bind_content(&mut sql, now);
            } else {
                row.bind_plain(&mut sql, now);
            }
            sql.push(")");
        }
        sql.push(") ")
            .write_verb(WriteVerb::Update)
            .push("entities SET ");
        for (index, column) in columns.iter().enumerate() {
            if index > 0 {
                sql.push(", ");
            }
            sql.push(column).push(" = v.").push(column);
        }
        sql.push(" FROM v WHERE entities.id = v.id");
        txn.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Moves the relations version (and so the etag) of entities whose relations changed
    /// because of other entities; returns their change rows.
    async fn bump_relations(
        &self,
        txn: &DatabaseTransaction,
        refs: &[String],
        now: i64,
    ) -> Result<Vec<ChangeRow>> {
        let mut changes = Vec::new();
        for chunk in refs.chunks(CASE_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT e.id, e.entity_ref, e.uid, e.generation, e.content_hash, COALESCE(v.relations_version, e.relations_version) AS relations_version, e.location_key FROM entities e LEFT JOIN relation_versions v ON v.entity_id = e.id WHERE e.entity_ref IN ")
                .bind_list(chunk);
            let rows = txn.query_all_raw(sql.build()).await?;
            if rows.is_empty() {
                continue;
            }
            // Into the narrow table (see migration m0012), not the entity's row.
            let mut upsert = Sql::new(self.backend());
            upsert
                .write_verb(WriteVerb::Insert)
                .push("relation_versions (entity_id, relations_version, etag, updated_at) VALUES ");
            for (index, row) in rows.into_iter().enumerate() {
                let id: i64 = row.try_get("", "id")?;
                let content_hash: String = row.try_get("", "content_hash")?;
                let version: i64 = row.try_get::<i64>("", "relations_version")? + 1;
                let etag = etag(&content_hash, version);
                if index > 0 {
                    upsert.push(", ");
                }
                upsert
                    .push("(")
                    .bind(id)
                    .push(", ")
                    .bind(version)
                    .push(", ")
                    .bind(etag.clone())
                    .push(", ")
                    .bind(now)
                    .push(")");
                changes.push(ChangeRow {
                    entity_ref: row.try_get("", "entity_ref")?,
                    uid: row.try_get("", "uid")?,
                    generation: row.try_get("", "generation")?,
                    content_hash,
                    etag,
                    kind: ChangeKind::Relations,
                    body: None,
                    own_relations: None,
                    location_key: row.try_get("", "location_key")?,
                    commit: None,
                });
            }
            upsert.push(
                " ON CONFLICT (entity_id) DO UPDATE SET relations_version = excluded.relations_version, \
                 etag = excluded.etag, updated_at = excluded.updated_at",
            );
            txn.execute_raw(upsert.build()).await?;
        }
        Ok(changes)
    }

    /// Drops the relations versions kept apart for `rows` that have one: their rows now hold
    /// them (written again), or are gone.
    async fn forget_relation_versions<'a>(
        &self,
        txn: &DatabaseTransaction,
        rows: impl Iterator<Item = &'a ExistingRow>,
    ) -> Result<()> {
        let ids: Vec<i64> = rows
            .filter(|row| row.version_apart)
            .map(|row| row.id)
            .collect();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM relation_versions WHERE entity_id IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    /// Marks entities as orphans (a new relations version, so a new etag); their change rows.
    async fn mark_orphans(
        &self,
        txn: &DatabaseTransaction,
        rows: &[(&str, &ExistingRow)],
        now: i64,
    ) -> Result<Vec<ChangeRow>> {
        let mut changes = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(CASE_CHUNK) {
            let mut update = Sql::new(self.backend());
            update
                .write_verb(WriteVerb::Update)
                .push("entities SET orphan = TRUE, updated_at = ")
                .bind(now)
                .push(", relations_version = CASE id");
            for (_, row) in chunk {
                update
                    .push(" WHEN ")
                    .bind(row.id)
                    .push(" THEN ")
                    .bind(row.relations_version + 1);
            }
            update.push(" END, etag = CASE id");
            let mut ids = Vec::with_capacity(chunk.len());
            for (entity_ref, row) in chunk {
                let etag = etag(&row.content_hash, row.relations_version + 1);
                update
                    .push(" WHEN ")
                    .bind(row.id)
                    .push(" THEN ")
                    .bind(etag.clone());
                ids.push(row.id);
                changes.push(ChangeRow {
                    entity_ref: (*entity_ref).to_owned(),
                    uid: row.uid.clone(),
                    generation: row.generation,
                    content_hash: row.content_hash.clone(),
                    etag,
                    kind: ChangeKind::Orphaned,
                    body: None,
                    own_relations: None,
                    location_key: row.location_key.clone(),
                    commit: None,
                });
            }
            update.push(" END WHERE id IN ").bind_list(&ids);
            txn.execute_raw(update.build()).await?;
            self.forget_relation_versions(txn, chunk.iter().map(|(_, row)| *row))
                .await?;
        }
        Ok(changes)
    }

    /// Appends changes to the feed in one statement per chunk; returns the highest sequence.
    async fn record_changes(
        &self,
        txn: &DatabaseTransaction,
        changes: &[ChangeRow],
        now: i64,
    ) -> Result<u64> {
        let mut last = 0;
        // The write's trace, so whoever follows the feed can continue it.
        let trace_parent = cadastre_telemetry::propagation::current_traceparent();
        for chunk in changes.chunks(INSERT_CHUNK / 2) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert).push("changes (entity_ref, uid, generation, content_hash, etag, change, body, own_relations, location_key, commit_sha, trace_parent, recorded_at) VALUES ");
            for (index, change) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(change.entity_ref.clone())
                    .push(", ")
                    .bind(change.uid.clone())
                    .push(", ")
                    .bind(change.generation)
                    .push(", ")
                    .bind(change.content_hash.clone())
                    .push(", ")
                    .bind(change.etag.clone())
                    .push(", ")
                    .bind(change.kind.as_str())
                    .push(", ")
                    .bind(change.body.clone())
                    .push(", ")
                    .bind(change.own_relations.clone())
                    .push(", ")
                    .bind(change.location_key.clone())
                    .push(", ")
                    .bind(change.commit.clone())
                    .push(", ")
                    .bind(trace_parent.clone())
                    .push(", ")
                    .bind(now)
                    .push(")");
            }
            sql.push(" RETURNING sequence");
            for row in txn.query_all_raw(sql.build()).await? {
                let sequence: i64 = row.try_get("", "sequence")?;
                last = last.max(u64::try_from(sequence).unwrap_or_default());
            }
        }
        Ok(last)
    }

    /// Clears the errors of every location reported on, then records the new ones. A batch
    /// reports every file it read (so fixed errors are cleared): with one entity per file that
    /// is 60 locations a batch, so they are cleared a chunk of locations per statement.
    async fn replace_errors(
        &self,
        txn: &DatabaseTransaction,
        reported: &[LocationErrors],
        now: i64,
    ) -> Result<()> {
        let keys: Vec<&str> = reported
            .iter()
            .map(|location| location.location_key.as_str())
            .collect();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM processing_errors WHERE location_key IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
        }
        self.insert_errors(txn, reported, now).await
    }

    /// Records the errors of every location, a chunk of rows per statement.
    async fn insert_errors(
        &self,
        txn: &DatabaseTransaction,
        reported: &[LocationErrors],
        now: i64,
    ) -> Result<()> {
        let rows: Vec<(&str, &ProcessingError)> = reported
            .iter()
            .flat_map(|location| {
                location
                    .errors
                    .iter()
                    .map(|error| (location.location_key.as_str(), error))
            })
            .collect();
        for chunk in rows.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.write_verb(WriteVerb::Insert).push("processing_errors (location_key, entity_ref, rule, severity, path, line, col, message, file, recorded_at) VALUES ");
            for (index, (location_key, error)) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                let finding = &error.finding;
                sql.push("(")
                    .bind(*location_key)
                    .push(", ")
                    .bind(error.entity_ref.as_ref().map(|r| r.to_lowercase()))
                    .push(", ")
                    .bind(finding.rule.id())
                    .push(", ")
                    .bind(finding.severity.to_string())
                    .push(", ")
                    .bind(finding.path.clone())
                    .push(", ")
                    .bind(finding.position.map(|p| i64::from(p.line)))
                    .push(", ")
                    .bind(finding.position.map(|p| i64::from(p.column)))
                    .push(", ")
                    .bind(finding.message.clone())
                    .push(", ")
                    .bind(error.file.clone())
                    .push(", ")
                    .bind(if error.recorded_at > 0 {
                        error.recorded_at
                    } else {
                        now
                    })
                    .push(")");
            }
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }
}

/// Conflicts as processing errors, grouped by the newcomer's location.
fn group_conflicts(conflicts: &[(&str, &str, &str)]) -> Vec<LocationErrors> {
    let mut groups: BTreeMap<String, Vec<ProcessingError>> = BTreeMap::new();
    for (entity_ref, newcomer, holder) in conflicts {
        groups
            .entry((*newcomer).to_owned())
            .or_default()
            .push(ProcessingError {
                location_key: (*newcomer).to_owned(),
                entity_ref: Some((*entity_ref).to_owned()),
                finding: cadastre_model::Finding::error(
                    cadastre_model::Rule::EntityRefConflict,
                    "metadata.name",
                    format!(
                        "{entity_ref} is already defined by {holder}; the first location keeps it"
                    ),
                ),
                file: newcomer
                    .split_once(':')
                    .map_or(*newcomer, |(_, target)| target)
                    .to_owned(),
                recorded_at: 0,
            });
    }
    groups
        .into_iter()
        .map(|(location_key, errors)| LocationErrors {
            location_key,
            errors,
        })
        .collect()
}

/// Refs and content hashes of a batch, checked and computed before any write.
#[derive(Debug)]
pub(crate) struct Prepared {
    upsert_refs: Vec<String>,
    upsert_hashes: Vec<String>,
    pub(crate) removal_refs: Vec<String>,
    /// Refs no longer produced, to keep as orphans.
    pub(crate) orphan_refs: Vec<String>,
    /// Each upsert's columns, when they were derived ahead of the transaction (a group's,
    /// while the group before it is written); otherwise empty, and derived for the upserts
    /// that changed.
    columns: Vec<Option<Result<EntityColumns>>>,
    /// The columns being derived while the stored rows are looked up (see `ahead`).
    ahead: Option<ahead::DeriveAhead>,
}

/// Maps `items` on every core. Preparing a batch (serialising, hashing, extracting columns)
/// is CPU work that would otherwise run on one core while the writer lock is held.
fn par_map<T: Sync, R: Send>(items: &[T], map: impl Fn(&T) -> R + Sync) -> Vec<R> {
    const SERIAL_BELOW: usize = 64;
    if items.len() < SERIAL_BELOW {
        return items.iter().map(map).collect();
    }
    par_map_any(items, map)
}

/// Maps `items` on every core however few they are; the results in the same order.
fn par_map_any<T: Sync, R: Send>(items: &[T], map: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if threads < 2 || items.len() < 2 {
        return items.iter().map(map).collect();
    }
    let map = &map;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(items.len().div_ceil(threads))
            .map(|chunk| scope.spawn(move || chunk.iter().map(map).collect::<Vec<R>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| {
                worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

pub(crate) fn prepare(batch: &Batch) -> Result<Prepared> {
    prepare_with(batch, par_map)
}

/// [`prepare`] for each of a group of batches, with every upsert's columns, the batches
/// spread over the cores (one batch on one thread: about 100 upserts each, not worth a
/// thread of their own). It runs before the group's turn to write, so deriving the columns of
/// upserts that turn out unchanged costs no time on the writer's path.
pub(crate) fn prepare_all<'a>(
    batches: impl Iterator<Item = &'a Batch>,
    with_facts: bool,
) -> Result<Vec<Prepared>> {
    let batches: Vec<&Batch> = batches.collect();
    par_map_any(&batches, |batch| {
        let mut prepared = prepare_with(batch, |upserts, hash| upserts.iter().map(hash).collect())?;
        prepared.columns = batch
            .upserts
            .iter()
            .zip(&prepared.upsert_refs)
            .zip(&prepared.upsert_hashes)
            .map(|((upsert, entity_ref), hash)| {
                Some(EntityColumns::from_upsert(
                    upsert, entity_ref, hash, with_facts,
                ))
            })
            .collect();
        Ok(prepared)
    })
    .into_iter()
    .collect()
}

type HashAll = fn(&[Upsert], fn(&Upsert) -> String) -> Vec<String>;

fn prepare_with(batch: &Batch, hash_all: HashAll) -> Result<Prepared> {
    let mut seen = BTreeSet::new();
    let mut upsert_refs = Vec::with_capacity(batch.upserts.len());
    for (index, upsert) in batch.upserts.iter().enumerate() {
        let entity_ref = body_ref(&upsert.body)
            .map_err(|message| StoreError::InvalidArgument(format!("upsert {index}: {message}")))?;
        if !seen.insert(entity_ref.clone()) {
            return Err(StoreError::InvalidArgument(format!(
                "{entity_ref} appears twice in one batch"
            )));
        }
        upsert_refs.push(entity_ref);
    }
    let removal_refs = batch
        .removals
        .iter()
        .map(|text| canonical_ref(text))
        .collect::<Result<Vec<_>>>()?;
    if let Some(both) = removal_refs.iter().find(|r| seen.contains(*r)) {
        return Err(StoreError::InvalidArgument(format!(
            "{both} is both upserted and removed in one batch"
        )));
    }
    Ok(Prepared {
        upsert_hashes: hash_all(&batch.upserts, content_hash),
        upsert_refs,
        removal_refs,
        orphan_refs: Vec::new(),
        columns: Vec::new(),
        ahead: None,
    })
}

/// Parses a full ref (`kind:namespace/name`, namespace optional) into its canonical form.
pub(crate) fn canonical_ref(text: &str) -> Result<String> {
    EntityRef::parse(text, RefContext::default())
        .map(|entity_ref| entity_ref.canonical())
        .map_err(|error| StoreError::InvalidArgument(error.to_string()))
}

fn body_ref(body: &Value) -> std::result::Result<String, String> {
    let kind = body
        .get("kind")
        .and_then(Value::as_str)
        .filter(|k| !k.is_empty())
        .ok_or("the entity has no kind")?;
    let metadata = body.get("metadata").ok_or("the entity has no metadata")?;
    let name = metadata
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("the entity has no metadata.name")?;
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(cadastre_model::reference::DEFAULT_NAMESPACE);
    Ok(EntityRef::new(kind, namespace, name).canonical())
}

/// Hash of what the processor produced: the body and where it came from.
fn content_hash(upsert: &Upsert) -> String {
    let mut hasher = Sha1::new();
    // Serialised straight into the hasher: no copy of the body text.
    serde_json::to_writer(&mut hasher, &upsert.body).expect("JSON values serialise");
    for part in [
        &upsert.location_key,
        &upsert.origin_location,
        &upsert.parent_ref,
    ] {
        hasher.update([0]);
        hasher.update(part.as_deref().unwrap_or_default().as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// Hash of a set of edges, independent of order, duplicates and ref case.
fn edges_hash(edges: &[RelationEdge]) -> String {
    let set: BTreeSet<(String, &str, String)> = edges
        .iter()
        .map(|edge| {
            (
                edge.source.to_lowercase(),
                edge.relation_type.as_str(),
                edge.target.to_lowercase(),
            )
        })
        .collect();
    let mut hasher = Sha1::new();
    for (source, relation_type, target) in set {
        for part in [source.as_str(), relation_type, target.as_str()] {
            hasher.update(part.as_bytes());
            hasher.update([0]);
        }
    }
    hex::encode(hasher.finalize())
}

/// Columns derived from an upsert's body.
#[derive(Debug)]
struct EntityColumns {
    entity_ref: String,
    kind: String,
    namespace: String,
    name: String,
    spec_type: Option<String>,
    lifecycle: Option<String>,
    /// `spec.owner` and `spec.system` as `search_doc` holds them (first value).
    first_values: FirstValues,
    content_hash: String,
    /// The body without relations, status, uid and etag (serving adds them).
    body: String,
    search_doc: String,
    /// The search document's facts, where the backend keeps them (PostgreSQL; see `facts`).
    facts: Option<Facts>,
    /// Hash of the set of edges it emits: equal means its relation rows stay as they are.
    edges_hash: String,
    location_key: Option<String>,
    origin_location: Option<String>,
    parent_ref: Option<String>,
}

impl EntityColumns {
    /// The columns of `upsert`; with `with_facts`, its search document's facts too.
    fn from_upsert(
        upsert: &Upsert,
        entity_ref: &str,
        hash: &str,
        with_facts: bool,
    ) -> Result<Self> {
        // Most bodies have nothing to strip (the processor sends none of it): they are
        // written as they are, without a copy (a copy was 16% of deriving).
        let stripped = if needs_stripping(&upsert.body) {
            Some(stripped(upsert.body.clone(), entity_ref)?)
        } else {
            None
        };
        let body = stripped.as_ref().unwrap_or(&upsert.body);
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let spec = body.get("spec");
        let rows = cadastre_query::search_rows(body);
        let first_values = FirstValues::of(&rows);
        let document = SearchDocument::of(rows);
        let facts = with_facts.then(|| {
            Facts::of_keys(
                document
                    .0
                    .iter()
                    .map(|(key, values)| (key.as_str(), values.iter().map(Option::as_deref))),
                document.0.len(),
            )
        });
        Ok(EntityColumns {
            entity_ref: entity_ref.to_owned(),
            kind: text(body.get("kind")).unwrap_or_default(),
            namespace: text(body.pointer("/metadata/namespace")).unwrap_or_default(),
            name: text(body.pointer("/metadata/name")).unwrap_or_default(),
            spec_type: text(spec.and_then(|s| s.get("type"))),
            lifecycle: text(spec.and_then(|s| s.get("lifecycle"))),
            first_values,
            content_hash: hash.to_owned(),
            // Straight into a buffer: `Display` (`to_string`) goes through the formatter a
            // token at a time, a quarter of deriving.
            body: json_text(body),
            facts,
            search_doc: json_text(&document),
            edges_hash: edges_hash(&upsert.edges),
            location_key: upsert.location_key.clone(),
            origin_location: upsert.origin_location.clone(),
            parent_ref: upsert.parent_ref.as_deref().map(str::to_lowercase),
        })
    }

    fn hot_key(&self) -> HotKey {
        (
            self.kind.clone(),
            self.spec_type.clone().unwrap_or_default(),
            self.lifecycle.clone().unwrap_or_default(),
        )
    }

    /// Binds the values of [`INDEXED_COLUMNS`].
    fn bind_indexed(&self, sql: &mut Sql) {
        sql.bind(self.kind.clone())
            .push(", ")
            .bind(self.name.clone())
            .push(", ")
            .bind(self.kind.to_lowercase())
            .push(", ")
            .bind(self.spec_type.clone())
            .push(", ")
            .bind(self.spec_type.as_deref().map(str::to_lowercase))
            .push(", ");
        self.first_values.bind(sql);
        sql.push(", ")
            .bind(self.location_key.clone())
            .push(", ")
            .bind(self.parent_ref.clone());
    }

    /// Whether these columns put the row where `indexed` has it in every secondary index.
    fn indexed_as(&self, indexed: &IndexedValues) -> bool {
        self.kind == indexed.kind
            && self.name == indexed.name
            && self.spec_type == indexed.spec_type
            && self.first_values == indexed.first_values
            && self.location_key == indexed.location_key
            && self.parent_ref == indexed.parent_ref
    }
}

/// Whether `body` holds what serving adds (relations, status, uid, etag) or lacks its
/// namespace: what [`stripped`] changes.
fn needs_stripping(body: &Value) -> bool {
    let Some(object) = body.as_object() else {
        return true;
    };
    if object.contains_key("relations") || object.contains_key("status") {
        return true;
    }
    object
        .get("metadata")
        .and_then(Value::as_object)
        .is_none_or(|metadata| {
            metadata.contains_key("uid")
                || metadata.contains_key("etag")
                || !metadata.contains_key("namespace")
        })
}

/// `body` as stored: without relations, status, uid and etag (serving adds them), and with
/// its namespace.
fn stripped(mut body: Value, entity_ref: &str) -> Result<Value> {
    let object = body.as_object_mut().ok_or_else(|| {
        StoreError::InvalidArgument(format!("{entity_ref}: the entity must be a JSON object"))
    })?;
    object.remove("relations");
    object.remove("status");
    let metadata = object
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            StoreError::InvalidArgument(format!("{entity_ref}: metadata must be an object"))
        })?;
    metadata.remove("uid");
    metadata.remove("etag");
    if !metadata.contains_key("namespace") {
        metadata.insert(
            "namespace".into(),
            Value::String(cadastre_model::reference::DEFAULT_NAMESPACE.into()),
        );
    }
    Ok(body)
}

fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).expect("JSON values and search documents serialise")
}

/// An entity's search document, as `search_doc` holds it: each key of its search rows with
/// their values (null for none), keys in the order they first appear.
struct SearchDocument(Vec<(String, Vec<Option<String>>)>);

impl SearchDocument {
    fn of(rows: Vec<cadastre_query::SearchRow>) -> Self {
        // Each row's key's place, numbered as keys first appear.
        let mut places: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
        let place: Vec<usize> = rows
            .iter()
            .map(|row| {
                let next = places.len();
                *places.entry(row.key.as_str()).or_insert(next)
            })
            .collect();
        drop(places);
        let mut keys: Vec<(String, Vec<Option<String>>)> = Vec::with_capacity(place.len());
        for (row, place) in rows.into_iter().zip(place) {
            if place == keys.len() {
                keys.push((row.key, vec![row.value]));
            } else {
                keys[place].1.push(row.value);
            }
        }
        SearchDocument(keys)
    }
}

impl serde::Serialize for SearchDocument {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, values) in &self.0 {
            map.serialize_entry(key, values)?;
        }
        map.end()
    }
}

/// The first value of a key in `search_doc`: in original case (what facets report) and
/// lower-cased (what filters and ordering compare). Both `None` when the first value is null
/// or too long to index, as in the document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FirstValue {
    pub(crate) original: Option<String>,
    pub(crate) lowered: Option<String>,
}

/// The columns of the first-value hot keys, `spec.owner` and `spec.system`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FirstValues {
    pub(crate) owner: FirstValue,
    pub(crate) system: FirstValue,
    /// Either key has more than one value in the document (a list, or `spec.Owner` next to
    /// `spec.owner`): the columns hold the first, and reads also consult the document.
    pub(crate) more_values: bool,
}

impl FirstValues {
    /// From an entity's search rows: the same rows, in the same order, `search_doc` is built
    /// from, so each column holds what `search_doc -> key ->> 0` gives.
    pub(crate) fn of(rows: &[cadastre_query::SearchRow]) -> Self {
        let mut out = FirstValues::default();
        let mut owners = 0;
        let mut systems = 0;
        for row in rows {
            let (slot, seen) = match row.key.as_str() {
                "spec.owner" => (&mut out.owner, &mut owners),
                "spec.system" => (&mut out.system, &mut systems),
                _ => continue,
            };
            if *seen == 0 {
                *slot = FirstValue {
                    original: row.original.clone(),
                    lowered: row.value.clone(),
                };
            }
            *seen += 1;
        }
        out.more_values = owners > 1 || systems > 1;
        out
    }

    /// Binds `spec_owner, spec_owner_l, spec_system, spec_system_l, owner_system_multi`.
    pub(crate) fn bind(&self, sql: &mut Sql) {
        sql.bind(self.owner.original.clone())
            .push(", ")
            .bind(self.owner.lowered.clone())
            .push(", ")
            .bind(self.system.original.clone())
            .push(", ")
            .bind(self.system.lowered.clone())
            .push(", ")
            .bind(self.more_values);
    }
}

fn check_location(location_type: &str, target: &str) -> Result<()> {
    if location_type.trim().is_empty() || target.trim().is_empty() {
        return Err(StoreError::InvalidArgument(
            "a location needs a type and a target".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn etags_follow_content_and_relations() {
        assert_eq!(etag("abc", 0), etag("abc", 0));
        assert_ne!(etag("abc", 0), etag("abc", 1));
        assert_ne!(etag("abc", 0), etag("abd", 0));
        assert_eq!(etag("abc", 0).len(), 40);
    }

    #[test]
    fn only_edits_to_indexed_values_move_index_entries() {
        let columns = |edit: &dyn Fn(&mut Value)| {
            let mut body = json!({
                "kind": "Component",
                "metadata": {"name": "svc", "description": "Old"},
                "spec": {"type": "service", "owner": "team-a", "lifecycle": "production"}
            });
            edit(&mut body);
            let upsert = Upsert {
                body,
                edges: Vec::new(),
                location_key: Some("url:x".into()),
                origin_location: Some("url:x".into()),
                parent_ref: None,
                commit: None,
            };
            EntityColumns::from_upsert(&upsert, "component:default/svc", "hash", false).unwrap()
        };
        // What the store holds for the entity as first written.
        let stored = IndexedValues {
            kind: "Component".into(),
            name: "svc".into(),
            spec_type: Some("service".into()),
            first_values: FirstValues {
                owner: FirstValue {
                    original: Some("team-a".into()),
                    lowered: Some("team-a".into()),
                },
                ..FirstValues::default()
            },
            location_key: Some("url:x".into()),
            parent_ref: None,
        };
        let stays = [
            columns(&|_| {}),
            columns(&|body| body["metadata"]["description"] = "New".into()),
            columns(&|body| body["metadata"]["tags"] = json!(["java"])),
            columns(&|body| body["spec"]["lifecycle"] = "deprecated".into()),
        ];
        for columns in &stays {
            assert!(columns.indexed_as(&stored), "{}", columns.body);
        }
        let moves = [
            columns(&|body| body["spec"]["owner"] = "team-b".into()),
            columns(&|body| body["spec"]["owner"] = "Team-A".into()),
            columns(&|body| body["spec"]["owner"] = json!(["team-a", "team-b"])),
            columns(&|body| body["spec"]["type"] = "website".into()),
            columns(&|body| body["spec"]["system"] = "billing".into()),
            columns(&|body| body["metadata"]["name"] = "Svc".into()),
        ];
        for columns in &moves {
            assert!(!columns.indexed_as(&stored), "{}", columns.body);
        }
    }

    /// The search document and facts are those of the document built as a JSON object (as
    /// stored before), and a body with nothing to strip is written as the stripped copy is.
    #[test]
    fn columns_match_the_json_object_they_describe() {
        let bodies = [
            json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                   "metadata": {"name": "svc", "namespace": "default", "description": null,
                                "tags": ["java", "Go", "java"], "links": [{"url": "https://a"}, {"url": "https://b"}]},
                   "spec": {"type": "service", "owner": ["team-a", "Team-B"], "lifecycle": "production"}}),
            json!({"kind": "Group", "metadata": {"name": "Team-A", "uid": "u-1", "etag": "e"},
                   "spec": {"children": [], "type": "team"}, "relations": [{"type": "ownerOf"}],
                   "status": {"items": []}}),
        ];
        for body in bodies {
            let upsert = Upsert {
                body: body.clone(),
                edges: Vec::new(),
                location_key: None,
                origin_location: None,
                parent_ref: None,
                commit: None,
            };
            let entity_ref = body_ref(&body).unwrap();
            let columns = EntityColumns::from_upsert(&upsert, &entity_ref, "h", true).unwrap();
            let copy = stripped(body.clone(), &entity_ref).unwrap();
            assert_eq!(columns.body, copy.to_string());
            assert!(!needs_stripping(&copy), "{copy}");
            let mut object = serde_json::Map::new();
            for row in cadastre_query::search_rows(&copy) {
                let values = object.entry(row.key).or_insert_with(|| json!([]));
                values
                    .as_array_mut()
                    .unwrap()
                    .push(row.value.map_or(Value::Null, Value::String));
            }
            assert_eq!(
                columns.search_doc,
                Value::Object(object.clone()).to_string()
            );
            assert_eq!(columns.facts.unwrap(), Facts::of_document(&object));
        }
    }

    #[test]
    fn parallel_maps_keep_the_order() {
        let items: Vec<u32> = (0..1_001).collect();
        let doubled: Vec<u32> = items.iter().map(|i| i * 2).collect();
        assert_eq!(par_map(&items, |i| i * 2), doubled);
        assert_eq!(par_map_any(&items, |i| i * 2), doubled);
        assert_eq!(par_map_any(&[7], |i: &u32| i + 1), vec![8]);
        assert!(par_map_any(&Vec::<u32>::new(), |i| *i).is_empty());
    }

    #[test]
    fn batches_are_checked_before_writing() {
        let upsert = |name: &str| Upsert {
            body: json!({"kind": "Component", "metadata": {"name": name}}),
            edges: Vec::new(),
            location_key: None,
            origin_location: None,
            parent_ref: None,
            commit: None,
        };
        let twice = Batch {
            upserts: vec![upsert("a"), upsert("A")],
            ..Batch::default()
        };
        assert!(
            matches!(prepare(&twice), Err(StoreError::InvalidArgument(m)) if m.contains("appears twice"))
        );
        let nameless = Batch {
            upserts: vec![Upsert {
                body: json!({"kind": "Component", "metadata": {}}),
                ..upsert("x")
            }],
            ..Batch::default()
        };
        assert!(matches!(
            prepare(&nameless),
            Err(StoreError::InvalidArgument(_))
        ));
        let overlap = Batch {
            upserts: vec![upsert("a")],
            removals: vec!["component:default/A".into()],
            ..Batch::default()
        };
        assert!(
            matches!(prepare(&overlap), Err(StoreError::InvalidArgument(m)) if m.contains("both upserted and removed"))
        );
        let bad_removal = Batch {
            removals: vec!["component:".into()],
            ..Batch::default()
        };
        assert!(matches!(
            prepare(&bad_removal),
            Err(StoreError::InvalidArgument(_))
        ));
    }
}
