//! The write path: batches of upserts and removals in one transaction, location
//! registration, processing errors, and "stitching" (assembling each touched entity's
//! relations, etag and change record).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cadastre_model::{EntityRef, RefContext};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, TransactionTrait};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use crate::sql::Sql;
use crate::time_util::now_micros;
use crate::{
    Batch, BatchOutcome, CatalogStore, ChangeKind, Location, LocationErrors, Result, StoreError,
    Upsert,
};

/// Rows per multi-row INSERT (keeps bound parameters well under both backends' limits).
const INSERT_CHUNK: usize = 200;
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
}

/// A content change made by this batch, recorded when the entity is stitched.
#[derive(Debug, Clone)]
struct ContentChange {
    kind: ChangeKind,
    commit: Option<String>,
}

impl CatalogStore {
    /// Applies a batch in one transaction: all or nothing.
    pub async fn apply_batch(&self, batch: Batch) -> Result<BatchOutcome> {
        let prepared = prepare(&batch)?;
        let _writer = self.inner.writer.lock().await;
        let txn = self.begin_write().await?;
        let outcome = self.apply_in(&txn, &batch, prepared).await?;
        txn.commit().await?;
        self.publish_head(outcome.last_sequence);
        Ok(outcome)
    }

    /// Registers a location and its generated Location entity.
    pub async fn add_location(&self, location_type: &str, target: &str) -> Result<Location> {
        if location_type.trim().is_empty() || target.trim().is_empty() {
            return Err(StoreError::InvalidArgument(
                "a location needs a type and a target".into(),
            ));
        }
        let _writer = self.inner.writer.lock().await;
        let txn = self.begin_write().await?;
        if self
            .find_location_by_key(&txn, location_type, target)
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists(format!(
                "Location {location_type}:{target} already exists"
            )));
        }
        let key = format!("{location_type}:{target}");
        let name = format!("generated-{}", hex::encode(Sha1::digest(key.as_bytes())));
        let location = Location {
            id: uuid::Uuid::new_v4().to_string(),
            location_type: location_type.to_owned(),
            target: target.to_owned(),
            entity_ref: format!("location:default/{name}"),
            created_at: now_micros(),
        };
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
        let body = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Location",
            "metadata": {
                "name": name,
                "namespace": "default",
                "annotations": {
                    cadastre_model::entity::annotations::MANAGED_BY_LOCATION: key,
                    cadastre_model::entity::annotations::MANAGED_BY_ORIGIN_LOCATION: key,
                }
            },
            "spec": {"type": location_type, "target": target}
        });
        let batch = Batch {
            upserts: vec![Upsert {
                body,
                edges: Vec::new(),
                location_key: Some(key.clone()),
                origin_location: Some(key),
                parent_ref: None,
                commit: None,
            }],
            ..Batch::default()
        };
        let prepared = prepare(&batch)?;
        let outcome = self.apply_in(&txn, &batch, prepared).await?;
        txn.commit().await?;
        self.publish_head(outcome.last_sequence);
        Ok(location)
    }

    /// Unregisters a location; every entity that came through it goes too. Returns how many.
    pub async fn remove_location(&self, id: &str) -> Result<u64> {
        let _writer = self.inner.writer.lock().await;
        let txn = self.begin_write().await?;
        let location = self
            .location_by_id(&txn, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("Found no location with ID {id}")))?;
        let key = location.key();
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT entity_ref, location_key FROM entities WHERE origin_location = ")
            .bind(key.clone());
        let rows = txn.query_all_raw(sql.build()).await?;
        let mut removals = Vec::with_capacity(rows.len());
        let mut location_keys: BTreeSet<String> = BTreeSet::from([key.clone()]);
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
        let outcome = self.apply_in(&txn, &batch, prepared).await?;
        let mut sql = Sql::new(self.backend());
        sql.push("DELETE FROM locations WHERE id = ")
            .bind(id.to_owned());
        txn.execute_raw(sql.build()).await?;
        let keys: Vec<String> = location_keys.into_iter().collect();
        for chunk in keys.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM processing_errors WHERE location_key IN ")
                .bind_list(chunk);
            txn.execute_raw(sql.build()).await?;
        }
        txn.commit().await?;
        self.publish_head(outcome.last_sequence);
        Ok(u64::from(outcome.removed))
    }

    async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let txn = self.db().begin().await?;
        if self.backend() == DbBackend::Postgres {
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({WRITER_LOCK_KEY})"))
                .await?;
        }
        Ok(txn)
    }

    fn publish_head(&self, last_sequence: u64) {
        if last_sequence > 0 {
            self.inner.head.send_if_modified(|head| {
                let newer = last_sequence > *head;
                if newer {
                    *head = last_sequence;
                }
                newer
            });
        }
    }

    async fn apply_in(
        &self,
        txn: &DatabaseTransaction,
        batch: &Batch,
        prepared: Prepared,
    ) -> Result<BatchOutcome> {
        let now = now_micros();
        let mut outcome = BatchOutcome::default();
        let lookup: Vec<String> = prepared
            .upsert_refs
            .iter()
            .chain(prepared.removal_refs.iter())
            .cloned()
            .collect();
        let existing = self.load_existing(txn, &lookup).await?;
        // Entities whose outgoing relations may have changed: they are re-stitched.
        let mut affected: BTreeSet<String> = BTreeSet::new();
        let mut changes: HashMap<String, ContentChange> = HashMap::new();

        for entity_ref in &prepared.removal_refs {
            let Some(row) = existing.get(entity_ref) else {
                continue;
            };
            affected.extend(self.delete_relations_of(txn, row.id).await?);
            let mut sql = Sql::new(self.backend());
            sql.push("DELETE FROM entities WHERE id = ").bind(row.id);
            txn.execute_raw(sql.build()).await?;
            self.record_change(
                txn,
                entity_ref,
                &row.uid,
                row.generation,
                &row.content_hash,
                "",
                ChangeKind::Removed,
                None,
                None,
                None,
                now,
            )
            .await
            .map(|sequence| outcome.last_sequence = outcome.last_sequence.max(sequence))?;
            affected.remove(entity_ref);
            outcome.removed += 1;
        }

        for (upsert, entity_ref) in batch.upserts.iter().zip(&prepared.upsert_refs) {
            let hash = content_hash(upsert);
            let existing_row = existing.get(entity_ref);
            if let Some(row) = existing_row {
                if row.location_key.is_some() && row.location_key != upsert.location_key {
                    outcome.conflicts.push(entity_ref.clone());
                    continue;
                }
                if row.content_hash == hash && !row.orphan {
                    outcome.unchanged += 1;
                    continue;
                }
            }
            let columns = EntityColumns::from_upsert(upsert, entity_ref, &hash)?;
            let (id, kind) = match existing_row {
                Some(row) => {
                    affected.extend(self.delete_relations_of(txn, row.id).await?);
                    self.update_entity(txn, row, &columns, now).await?;
                    outcome.updated += 1;
                    (row.id, ChangeKind::Updated)
                }
                None => {
                    let id = self.insert_entity(txn, &columns, now).await?;
                    outcome.created += 1;
                    (id, ChangeKind::Created)
                }
            };
            self.insert_relations(txn, id, upsert).await?;
            affected.extend(upsert.edges.iter().map(|edge| edge.source.clone()));
            affected.insert(entity_ref.clone());
            changes.insert(
                entity_ref.clone(),
                ContentChange {
                    kind,
                    commit: upsert.commit.clone(),
                },
            );
        }

        let last = self.stitch(txn, &affected, &changes, now).await?;
        outcome.last_sequence = outcome.last_sequence.max(last);

        for location_errors in &batch.errors {
            self.replace_errors(txn, location_errors, now).await?;
        }
        Ok(outcome)
    }

    async fn load_existing(
        &self,
        txn: &DatabaseTransaction,
        refs: &[String],
    ) -> Result<HashMap<String, ExistingRow>> {
        let mut existing = HashMap::with_capacity(refs.len());
        for chunk in refs.chunks(LOOKUP_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT id, entity_ref, uid, content_hash, location_key, generation, orphan FROM entities WHERE entity_ref IN ")
                .bind_list(chunk);
            for row in txn.query_all_raw(sql.build()).await? {
                existing.insert(
                    row.try_get::<String>("", "entity_ref")?,
                    ExistingRow {
                        id: row.try_get("", "id")?,
                        uid: row.try_get("", "uid")?,
                        content_hash: row.try_get("", "content_hash")?,
                        location_key: row.try_get("", "location_key")?,
                        generation: row.try_get("", "generation")?,
                        orphan: row.try_get("", "orphan")?,
                    },
                );
            }
        }
        Ok(existing)
    }

    /// Deletes the relation rows an entity emitted; returns their sources.
    async fn delete_relations_of(
        &self,
        txn: &DatabaseTransaction,
        id: i64,
    ) -> Result<BTreeSet<String>> {
        let mut sql = Sql::new(self.backend());
        sql.push("SELECT DISTINCT source_ref FROM relations WHERE originating_entity_id = ")
            .bind(id);
        let mut sources = BTreeSet::new();
        for row in txn.query_all_raw(sql.build()).await? {
            sources.insert(row.try_get::<String>("", "source_ref")?);
        }
        let mut sql = Sql::new(self.backend());
        sql.push("DELETE FROM relations WHERE originating_entity_id = ")
            .bind(id);
        txn.execute_raw(sql.build()).await?;
        Ok(sources)
    }

    async fn insert_relations(
        &self,
        txn: &DatabaseTransaction,
        id: i64,
        upsert: &Upsert,
    ) -> Result<()> {
        let mut edges: Vec<_> = upsert.edges.iter().collect();
        edges.sort();
        edges.dedup();
        for chunk in edges.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("INSERT INTO relations (originating_entity_id, source_ref, type, type_l, target_ref) VALUES ");
            for (index, edge) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                sql.push("(")
                    .bind(id)
                    .push(", ")
                    .bind(edge.source.to_lowercase())
                    .push(", ")
                    .bind(edge.relation_type.clone())
                    .push(", ")
                    .bind(edge.relation_type.to_lowercase())
                    .push(", ")
                    .bind(edge.target.to_lowercase())
                    .push(")");
            }
            txn.execute_raw(sql.build()).await?;
        }
        Ok(())
    }

    async fn insert_entity(
        &self,
        txn: &DatabaseTransaction,
        columns: &EntityColumns,
        now: i64,
    ) -> Result<i64> {
        let uid = uuid::Uuid::new_v4().to_string();
        let mut sql = Sql::new(self.backend());
        sql.push(
            "INSERT INTO entities (uid, entity_ref, kind, namespace, name, kind_l, spec_type, spec_type_l, lifecycle_l, etag, generation, content_hash, body, search_doc, location_key, origin_location, parent_ref, orphan, created_at, updated_at) VALUES (",
        );
        sql.bind(uid)
            .push(", ")
            .bind(columns.entity_ref.clone())
            .push(", ");
        columns.bind_common(&mut sql);
        sql.push(", ").bind(1_i64).push(", ");
        columns.bind_content(&mut sql);
        sql.push(", FALSE, ")
            .bind(now)
            .push(", ")
            .bind(now)
            .push(") RETURNING id");
        let row = txn
            .query_one_raw(sql.build())
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT returned no id".into()))?;
        Ok(row.try_get("", "id")?)
    }

    async fn update_entity(
        &self,
        txn: &DatabaseTransaction,
        row: &ExistingRow,
        columns: &EntityColumns,
        now: i64,
    ) -> Result<()> {
        let mut sql = Sql::new(self.backend());
        sql.push("UPDATE entities SET (kind, namespace, name, kind_l, spec_type, spec_type_l, lifecycle_l, etag, generation, content_hash, body, search_doc, location_key, origin_location, parent_ref) = (");
        columns.bind_common(&mut sql);
        sql.push(", ").bind(row.generation + 1).push(", ");
        columns.bind_content(&mut sql);
        sql.push("), orphan = FALSE, updated_at = ")
            .bind(now)
            .push(" WHERE id = ")
            .bind(row.id);
        txn.execute_raw(sql.build()).await?;
        Ok(())
    }

    /// Assembles relations, etag and body for each affected entity and records a change for
    /// those whose etag moved. Returns the highest sequence written.
    async fn stitch(
        &self,
        txn: &DatabaseTransaction,
        affected: &BTreeSet<String>,
        changes: &HashMap<String, ContentChange>,
        now: i64,
    ) -> Result<u64> {
        let refs: Vec<String> = affected.iter().cloned().collect();
        let mut last_sequence = 0;
        for chunk in refs.chunks(LOOKUP_CHUNK) {
            let mut relations: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT source_ref, type, target_ref FROM relations WHERE source_ref IN ")
                .bind_list(chunk);
            for row in txn.query_all_raw(sql.build()).await? {
                relations
                    .entry(row.try_get("", "source_ref")?)
                    .or_default()
                    .push((row.try_get("", "type")?, row.try_get("", "target_ref")?));
            }
            let mut sql = Sql::new(self.backend());
            sql.push("SELECT id, entity_ref, uid, etag, generation, content_hash, body, location_key FROM entities WHERE entity_ref IN ")
                .bind_list(chunk);
            for row in txn.query_all_raw(sql.build()).await? {
                let entity_ref: String = row.try_get("", "entity_ref")?;
                let uid: String = row.try_get("", "uid")?;
                let old_etag: String = row.try_get("", "etag")?;
                let body: String = row.try_get("", "body")?;
                let mut outgoing = relations.remove(&entity_ref).unwrap_or_default();
                outgoing.sort();
                outgoing.dedup();
                let (stitched, etag) = stitch_body(&entity_ref, &body, &uid, &outgoing)?;
                let change = changes.get(&entity_ref);
                if etag == old_etag && change.is_none() {
                    continue;
                }
                let id: i64 = row.try_get("", "id")?;
                let mut sql = Sql::new(self.backend());
                sql.push("UPDATE entities SET body = ")
                    .bind(stitched.clone())
                    .push(", etag = ")
                    .bind(etag.clone())
                    .push(", updated_at = ")
                    .bind(now)
                    .push(" WHERE id = ")
                    .bind(id);
                txn.execute_raw(sql.build()).await?;
                let kind = change.map_or(ChangeKind::Relations, |c| c.kind);
                let commit = change.and_then(|c| c.commit.as_deref());
                let body = (kind != ChangeKind::Relations).then_some(stitched.as_str());
                let sequence = self
                    .record_change(
                        txn,
                        &entity_ref,
                        &uid,
                        row.try_get("", "generation")?,
                        &row.try_get::<String>("", "content_hash")?,
                        &etag,
                        kind,
                        body,
                        row.try_get::<Option<String>>("", "location_key")?
                            .as_deref(),
                        commit,
                        now,
                    )
                    .await?;
                last_sequence = last_sequence.max(sequence);
            }
        }
        Ok(last_sequence)
    }

    #[allow(clippy::too_many_arguments)]
    async fn record_change(
        &self,
        txn: &DatabaseTransaction,
        entity_ref: &str,
        uid: &str,
        generation: i64,
        content_hash: &str,
        etag: &str,
        kind: ChangeKind,
        body: Option<&str>,
        location_key: Option<&str>,
        commit: Option<&str>,
        now: i64,
    ) -> Result<u64> {
        let mut sql = Sql::new(self.backend());
        sql.push("INSERT INTO changes (entity_ref, uid, generation, content_hash, etag, change, body, location_key, commit_sha, recorded_at) VALUES (")
            .bind(entity_ref.to_owned())
            .push(", ")
            .bind(uid.to_owned())
            .push(", ")
            .bind(generation)
            .push(", ")
            .bind(content_hash.to_owned())
            .push(", ")
            .bind(etag.to_owned())
            .push(", ")
            .bind(kind.as_str())
            .push(", ")
            .bind(body.map(str::to_owned))
            .push(", ")
            .bind(location_key.map(str::to_owned))
            .push(", ")
            .bind(commit.map(str::to_owned))
            .push(", ")
            .bind(now)
            .push(") RETURNING sequence");
        let row = txn
            .query_one_raw(sql.build())
            .await?
            .ok_or_else(|| StoreError::Corrupt("INSERT returned no sequence".into()))?;
        let sequence: i64 = row.try_get("", "sequence")?;
        Ok(u64::try_from(sequence).unwrap_or_default())
    }

    async fn replace_errors(
        &self,
        txn: &DatabaseTransaction,
        location_errors: &LocationErrors,
        now: i64,
    ) -> Result<()> {
        let mut sql = Sql::new(self.backend());
        sql.push("DELETE FROM processing_errors WHERE location_key = ")
            .bind(location_errors.location_key.clone());
        txn.execute_raw(sql.build()).await?;
        for chunk in location_errors.errors.chunks(INSERT_CHUNK) {
            let mut sql = Sql::new(self.backend());
            sql.push("INSERT INTO processing_errors (location_key, entity_ref, rule, severity, path, line, col, message, file, recorded_at) VALUES ");
            for (index, error) in chunk.iter().enumerate() {
                if index > 0 {
                    sql.push(", ");
                }
                let finding = &error.finding;
                sql.push("(")
                    .bind(location_errors.location_key.clone())
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

/// Refs of a batch, checked before any write.
#[derive(Debug)]
struct Prepared {
    upsert_refs: Vec<String>,
    removal_refs: Vec<String>,
}

fn prepare(batch: &Batch) -> Result<Prepared> {
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
    Ok(Prepared {
        upsert_refs,
        removal_refs,
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
    hasher.update(upsert.body.to_string().as_bytes());
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

/// Columns derived from an upsert's body.
struct EntityColumns {
    entity_ref: String,
    kind: String,
    namespace: String,
    name: String,
    spec_type: Option<String>,
    lifecycle: Option<String>,
    content_hash: String,
    /// The body without relations, status, uid and etag (stitching adds them).
    body: String,
    search_doc: String,
    location_key: Option<String>,
    origin_location: Option<String>,
    parent_ref: Option<String>,
}

impl EntityColumns {
    fn from_upsert(upsert: &Upsert, entity_ref: &str, hash: &str) -> Result<Self> {
        let mut body = upsert.body.clone();
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
        let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
        let spec = body.get("spec");
        let mut document = Map::new();
        for row in cadastre_query::search_rows(&body) {
            let values = document
                .entry(row.key)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(values) = values {
                values.push(row.value.map_or(Value::Null, Value::String));
            }
        }
        Ok(EntityColumns {
            entity_ref: entity_ref.to_owned(),
            kind: text(body.get("kind")).unwrap_or_default(),
            namespace: text(body.pointer("/metadata/namespace")).unwrap_or_default(),
            name: text(body.pointer("/metadata/name")).unwrap_or_default(),
            spec_type: text(spec.and_then(|s| s.get("type"))),
            lifecycle: text(spec.and_then(|s| s.get("lifecycle"))),
            content_hash: hash.to_owned(),
            body: body.to_string(),
            search_doc: Value::Object(document).to_string(),
            location_key: upsert.location_key.clone(),
            origin_location: upsert.origin_location.clone(),
            parent_ref: upsert.parent_ref.as_deref().map(str::to_lowercase),
        })
    }

    /// `kind, namespace, name, kind_l, spec_type, spec_type_l, lifecycle_l, etag`.
    fn bind_common(&self, sql: &mut Sql) {
        sql.bind(self.kind.clone())
            .push(", ")
            .bind(self.namespace.clone())
            .push(", ")
            .bind(self.name.clone())
            .push(", ")
            .bind(self.kind.to_lowercase())
            .push(", ")
            .bind(self.spec_type.clone())
            .push(", ")
            .bind(self.spec_type.as_deref().map(str::to_lowercase))
            .push(", ")
            .bind(self.lifecycle.as_deref().map(str::to_lowercase))
            .push(", ")
            .bind(String::new());
    }

    /// `content_hash, body, search_doc, location_key, origin_location, parent_ref`.
    fn bind_content(&self, sql: &mut Sql) {
        sql.bind(self.content_hash.clone())
            .push(", ")
            .bind(self.body.clone())
            .push(", ");
        sql.bind(self.search_doc.clone());
        if sql.backend() == DbBackend::Postgres {
            sql.push("::jsonb");
        }
        sql.push(", ")
            .bind(self.location_key.clone())
            .push(", ")
            .bind(self.origin_location.clone())
            .push(", ")
            .bind(self.parent_ref.clone());
    }
}

/// The served body: the stored body with its relations, uid and etag. The etag is the SHA-1
/// of the body with relations, before uid and etag are filled in (as Backstage computes it).
fn stitch_body(
    entity_ref: &str,
    body: &str,
    uid: &str,
    relations: &[(String, String)],
) -> Result<(String, String)> {
    let mut value: Value = serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("{entity_ref}: {e}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| StoreError::Corrupt(format!("{entity_ref}: body is not an object")))?;
    object.remove("relations");
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("uid");
        metadata.remove("etag");
    }
    if !relations.is_empty() {
        let list = relations
            .iter()
            .map(|(relation_type, target)| json!({"type": relation_type, "targetRef": target}))
            .collect();
        object.insert("relations".into(), Value::Array(list));
    }
    let etag = hex::encode(Sha1::digest(value.to_string().as_bytes()));
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("uid".into(), Value::String(uid.to_owned()));
        metadata.insert("etag".into(), Value::String(etag.clone()));
    }
    Ok((value.to_string(), etag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stitching_sets_relations_uid_and_a_content_etag() {
        let body = r#"{"kind":"Group","metadata":{"name":"a","namespace":"default"},"spec":{}}"#;
        let relations = vec![("ownerOf".to_owned(), "component:default/x".to_owned())];
        let (stitched, etag) = stitch_body("group:default/a", body, "u-1", &relations).unwrap();
        let value: Value = serde_json::from_str(&stitched).unwrap();
        assert_eq!(value["relations"][0]["targetRef"], "component:default/x");
        assert_eq!(value["metadata"]["uid"], "u-1");
        assert_eq!(value["metadata"]["etag"], etag.as_str());
        // The etag ignores uid and etag, and follows the relations.
        let (again, etag_again) =
            stitch_body("group:default/a", &stitched, "u-2", &relations).unwrap();
        assert_eq!(etag_again, etag);
        assert_ne!(again, stitched);
        let (_, without) = stitch_body("group:default/a", body, "u-1", &[]).unwrap();
        assert_ne!(without, etag);
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
