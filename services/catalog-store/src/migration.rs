//! Versioned schema migrations, run at start (`Migrator::up`).
//!
//! One schema for both backends; the few differences (identity columns, JSONB, the search
//! documents' facts) are spelled per backend. Timestamps are microseconds since the Unix epoch.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::prelude::*;

use crate::sql::Sql;
use crate::write::FirstValues;

/// All migrations, oldest first. Never edit a published one: add the next.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(InitialSchema),
            Box::new(HistoryCarriesBodies),
            Box::new(HarvestReceipts),
            Box::new(RelayPositions),
            Box::new(Leases),
            Box::new(ChangesCarryTraces),
            Box::new(NameOrder),
            Box::new(ErrorsNewestFirst),
            Box::new(OwnerAndSystemColumns),
            Box::new(HarvestedFiles),
            Box::new(RelationEdgePairs),
            Box::new(RelationVersions),
            Box::new(DeferredIndexes),
            Box::new(EntityDocuments),
            Box::new(SearchIndexByPath),
            Box::new(RoomForUpdates),
            Box::new(SearchFacts),
        ]
    }
}

#[derive(Debug, DeriveMigrationName)]
struct InitialSchema;

#[async_trait::async_trait]
impl MigrationTrait for InitialSchema {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        for statement in initial_schema(backend) {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for table in [
            "processing_errors",
            "locations",
            "changes",
            "relations",
            "entities",
        ] {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {table}"))
                .await?;
        }
        Ok(())
    }
}

fn initial_schema(backend: DbBackend) -> Vec<String> {
    let (id, json) = match backend {
        DbBackend::Postgres => ("BIGSERIAL PRIMARY KEY", "JSONB"),
        _ => ("INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT"),
    };
    let mut statements = vec![
        // The entity as processed (`body`, without relations, uid and etag: those are added
        // when it is served), the hot filter keys as columns, every other key in
        // `search_doc` (lower-cased key -> list of lower-cased values). `relations_version`
        // moves when the entity's outgoing relations change, so the etag (a hash of content
        // and version) changes without rewriting the body.
        format!(
            "CREATE TABLE entities (
                id {id},
                uid TEXT NOT NULL UNIQUE,
                entity_ref TEXT NOT NULL UNIQUE,
                kind TEXT NOT NULL,
                namespace TEXT NOT NULL,
                name TEXT NOT NULL,
                kind_l TEXT NOT NULL,
                spec_type TEXT NULL,
                spec_type_l TEXT NULL,
                lifecycle TEXT NULL,
                lifecycle_l TEXT NULL,
                etag TEXT NOT NULL,
                generation BIGINT NOT NULL,
                relations_version BIGINT NOT NULL DEFAULT 0,
                content_hash TEXT NOT NULL,
                body TEXT NOT NULL,
                search_doc {json} NOT NULL,
                location_key TEXT NULL,
                origin_location TEXT NULL,
                parent_ref TEXT NULL,
                orphan BOOLEAN NOT NULL DEFAULT FALSE,
                created_at BIGINT NOT NULL,
                updated_at BIGINT NOT NULL
            )"
        ),
        "CREATE INDEX entities_kind_type ON entities (kind_l, spec_type_l, entity_ref)".into(),
        "CREATE INDEX entities_type ON entities (spec_type_l)".into(),
        "CREATE INDEX entities_location ON entities (location_key)".into(),
        "CREATE INDEX entities_parent ON entities (parent_ref)".into(),
        // Relation rows belong to the entity whose processing emitted them.
        "CREATE TABLE relations (
            originating_entity_id BIGINT NOT NULL,
            source_ref TEXT NOT NULL,
            type TEXT NOT NULL,
            type_l TEXT NOT NULL,
            target_ref TEXT NOT NULL
        )"
        .into(),
        "CREATE INDEX relations_source ON relations (source_ref, type_l, target_ref)".into(),
        "CREATE INDEX relations_target ON relations (type_l, target_ref, source_ref)".into(),
        "CREATE INDEX relations_origin ON relations (originating_entity_id)".into(),
        // The history of every entity and the change feed (outbox) in one table: a change
        // and its feed entry commit together. `sequence` only grows, in commit order
        // (writers are serialised).
        format!(
            "CREATE TABLE changes (
                sequence {id},
                entity_ref TEXT NOT NULL,
                uid TEXT NOT NULL,
                generation BIGINT NOT NULL,
                content_hash TEXT NOT NULL,
                etag TEXT NOT NULL,
                change TEXT NOT NULL,
                body TEXT NULL,
                location_key TEXT NULL,
                commit_sha TEXT NULL,
                recorded_at BIGINT NOT NULL
            )"
        ),
        "CREATE INDEX changes_entity ON changes (entity_ref, sequence)".into(),
        "CREATE TABLE locations (
            id TEXT PRIMARY KEY,
            type TEXT NOT NULL,
            target TEXT NOT NULL,
            entity_ref TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            UNIQUE (type, target)
        )"
        .into(),
        format!(
            "CREATE TABLE processing_errors (
                id {id},
                location_key TEXT NOT NULL,
                entity_ref TEXT NULL,
                rule TEXT NOT NULL,
                severity TEXT NOT NULL,
                path TEXT NOT NULL,
                line BIGINT NULL,
                col BIGINT NULL,
                message TEXT NOT NULL,
                file TEXT NOT NULL,
                recorded_at BIGINT NOT NULL
            )"
        ),
        // Entity counts per (kind, spec.type, spec.lifecycle), original case, "" when absent:
        // totals and facets over hot keys read this small table instead of counting rows.
        "CREATE TABLE hot_counts (
            kind TEXT NOT NULL,
            spec_type TEXT NOT NULL,
            lifecycle TEXT NOT NULL,
            kind_l TEXT NOT NULL,
            spec_type_l TEXT NOT NULL,
            lifecycle_l TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (kind, spec_type, lifecycle)
        )"
        .into(),
        // Distinct sources per (relation type, target), counted from the edges entities emit
        // about themselves; `relation_types` counts the edges emitted about others (inverse
        // edges). Where a type has none, the counts are exact and facets read them.
        "CREATE TABLE relation_counts (
            type_l TEXT NOT NULL,
            target_ref TEXT NOT NULL,
            n BIGINT NOT NULL,
            PRIMARY KEY (type_l, target_ref)
        )"
        .into(),
        "CREATE TABLE relation_types (
            type_l TEXT PRIMARY KEY,
            inverse_edges BIGINT NOT NULL
        )"
        .into(),
        "CREATE INDEX errors_location ON processing_errors (location_key)".into(),
        "CREATE INDEX errors_entity ON processing_errors (entity_ref)".into(),
    ];
    if backend == DbBackend::Postgres {
        statements.push("CREATE INDEX entities_search ON entities USING GIN (search_doc)".into());
        // lz4 compresses large bodies several times faster than the default pglz; servers
        // built without it keep the default.
        statements.push(
            "DO $$ BEGIN
                ALTER TABLE entities ALTER COLUMN body SET COMPRESSION lz4;
                ALTER TABLE entities ALTER COLUMN search_doc SET COMPRESSION lz4;
                ALTER TABLE changes ALTER COLUMN body SET COMPRESSION lz4;
            EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
            END $$"
                .into(),
        );
    }
    statements
}

/// Content changes carry their body and the relations the entity emitted about itself, written
/// with the change: replacing an entity no longer reads and rewrites its previous change.
/// Earlier rows kept the newest body only in `entities`; they are filled from there.
/// Entities keep a hash of the edges they emit, so an edit that leaves them alone does not
/// touch the relations table.
#[derive(Debug)]
struct HistoryCarriesBodies;

// The first migration's derived name is the file's ("migration"); later ones are named here.
impl MigrationName for HistoryCarriesBodies {
    fn name(&self) -> &str {
        "m0002_history_carries_bodies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for HistoryCarriesBodies {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("ALTER TABLE changes ADD COLUMN own_relations TEXT NULL")
            .await?;
        // Rows written before have none: their relations are rewritten on their next change.
        db.execute_unprepared("ALTER TABLE entities ADD COLUMN edges_hash TEXT NULL")
            .await?;
        db.execute_unprepared(
            "UPDATE changes SET body = (SELECT e.body FROM entities e WHERE e.entity_ref = changes.entity_ref)
             WHERE body IS NULL AND change IN ('created', 'updated')",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE changes DROP COLUMN own_relations")
            .await?;
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE entities DROP COLUMN edges_hash")
            .await?;
        Ok(())
    }
}

/// Receipts of harvests, and the processed batches already applied (the idempotency keys
/// that make a redelivered batch a no-op).
#[derive(Debug)]
struct HarvestReceipts;

impl MigrationName for HarvestReceipts {
    fn name(&self) -> &str {
        "m0003_harvest_receipts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for HarvestReceipts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for statement in [
            "CREATE TABLE harvest_receipts (
                harvest_id TEXT PRIMARY KEY,
                location_key TEXT NOT NULL,
                trigger TEXT NOT NULL,
                reason TEXT NOT NULL,
                commit_sha TEXT NOT NULL,
                files_read BIGINT NOT NULL,
                files_unchanged BIGINT NOT NULL,
                created BIGINT NOT NULL,
                updated BIGINT NOT NULL,
                unchanged BIGINT NOT NULL,
                removed BIGINT NOT NULL,
                failed BIGINT NOT NULL,
                conflicts BIGINT NOT NULL,
                changed_refs TEXT NOT NULL,
                removed_refs TEXT NOT NULL,
                failed_files TEXT NOT NULL,
                harvest_started_at BIGINT NOT NULL,
                harvest_finished_at BIGINT NOT NULL,
                processed_at BIGINT NOT NULL,
                applied_at BIGINT NOT NULL,
                parts BIGINT NOT NULL,
                parts_applied BIGINT NOT NULL
            )",
            "CREATE INDEX receipts_location ON harvest_receipts (location_key, applied_at)",
            "CREATE INDEX receipts_applied ON harvest_receipts (applied_at)",
            "CREATE TABLE applied_batches (
                batch_id TEXT PRIMARY KEY,
                applied_at BIGINT NOT NULL
            )",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared("DROP TABLE IF EXISTS applied_batches")
            .await?;
        db.execute_unprepared("DROP TABLE IF EXISTS harvest_receipts")
            .await?;
        Ok(())
    }
}

/// Where each relay of the change feed to the bus got to.
#[derive(Debug)]
struct RelayPositions;

impl MigrationName for RelayPositions {
    fn name(&self) -> &str {
        "m0004_relay_positions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RelayPositions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE relay_positions (name TEXT PRIMARY KEY, sequence BIGINT NOT NULL)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS relay_positions")
            .await?;
        Ok(())
    }
}

/// Named leases with an expiry, e.g. so two harvester replicas never read one location at
/// the same time.
#[derive(Debug)]
struct Leases;

impl MigrationName for Leases {
    fn name(&self) -> &str {
        "m0005_leases"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Leases {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS leases")
            .await?;
        Ok(())
    }
}

/// Each change keeps the trace context of the write that made it, so search's indexing joins
/// the trace of the push that caused it.
#[derive(Debug)]
struct ChangesCarryTraces;

impl MigrationName for ChangesCarryTraces {
    fn name(&self) -> &str {
        "m0006_changes_carry_traces"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ChangesCarryTraces {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE changes ADD COLUMN trace_parent TEXT NULL")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("ALTER TABLE changes DROP COLUMN trace_parent")
            .await?;
        Ok(())
    }
}

/// Ordering by `metadata.name` reads an index instead of every entity's document.
#[derive(Debug)]
struct NameOrder;

impl MigrationName for NameOrder {
    fn name(&self) -> &str {
        "m0007_name_order"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for NameOrder {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // The catalog's usual view: every entity, or one kind, by name.
        db.execute_unprepared(
            "CREATE INDEX entities_name_order ON entities (lower(name), entity_ref)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX entities_kind_name_order ON entities (kind_l, lower(name), entity_ref)",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS entities_name_order")
            .await?;
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS entities_kind_name_order")
            .await?;
        Ok(())
    }
}

/// Every processing error, newest first, in pages: the listing walks this index from its end.
#[derive(Debug)]
struct ErrorsNewestFirst;

impl MigrationName for ErrorsNewestFirst {
    fn name(&self) -> &str {
        "m0008_errors_newest_first"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ErrorsNewestFirst {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("CREATE INDEX errors_newest ON processing_errors (recorded_at, id)")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP INDEX IF EXISTS errors_newest")
            .await?;
        Ok(())
    }
}

/// `spec.owner` and `spec.system` become hot columns: filtering, ordering and facets over them
/// read indexes instead of every entity's document. Each holds the first value `search_doc`
/// holds for its key (lower-cased, and in original case for facets); the rare entity with
/// more than one value is flagged, and reads consult its document too.
#[derive(Debug)]
struct OwnerAndSystemColumns;

impl MigrationName for OwnerAndSystemColumns {
    fn name(&self) -> &str {
        "m0009_owner_and_system_columns"
    }
}

/// Entity rows read and rewritten per backfill statement.
const BACKFILL_CHUNK: i64 = 500;

/// The indexes of [`OwnerAndSystemColumns`], created after the backfill (one pass each
/// instead of one insert per row). Each ordering index carries the original-case value last,
/// so facet counts (all entities, or one kind) read only the index.
const OWNER_SYSTEM_INDEXES: [(&str, &str); 5] = [
    (
        "entities_owner_order",
        "(spec_owner_l, entity_ref, spec_owner)",
    ),
    (
        "entities_kind_owner_order",
        "(kind_l, spec_owner_l, entity_ref, spec_owner)",
    ),
    (
        "entities_system_order",
        "(spec_system_l, entity_ref, spec_system)",
    ),
    (
        "entities_kind_system_order",
        "(kind_l, spec_system_l, entity_ref, spec_system)",
    ),
    (
        "entities_owner_system_multi",
        "(id) WHERE owner_system_multi",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for OwnerAndSystemColumns {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for column in [
            "spec_owner TEXT NULL",
            "spec_owner_l TEXT NULL",
            "spec_system TEXT NULL",
            "spec_system_l TEXT NULL",
            "owner_system_multi BOOLEAN NOT NULL DEFAULT FALSE",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE entities ADD COLUMN {column}"))
                .await?;
        }
        backfill_owner_and_system(db, manager.get_database_backend()).await?;
        for (name, definition) in OWNER_SYSTEM_INDEXES {
            db.execute_unprepared(&format!("CREATE INDEX {name} ON entities {definition}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for (name, _) in OWNER_SYSTEM_INDEXES {
            db.execute_unprepared(&format!("DROP INDEX IF EXISTS {name}"))
                .await?;
        }
        for column in [
            "spec_owner",
            "spec_owner_l",
            "spec_system",
            "spec_system_l",
            "owner_system_multi",
        ] {
            db.execute_unprepared(&format!("ALTER TABLE entities DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }
}

/// Fills the owner and system columns of existing rows from their stored bodies, by the code
/// that fills them on write (the stored body is what `search_doc` was built from). Rows
/// without either key in their document keep the defaults and are not read.
async fn backfill_owner_and_system(
    db: &impl ConnectionTrait,
    backend: DbBackend,
) -> Result<(), DbErr> {
    let has_either_key = match backend {
        DbBackend::Postgres => "search_doc ?| array['spec.owner', 'spec.system']",
        _ => {
            "(json_type(search_doc, '$.\"spec.owner\"') IS NOT NULL \
             OR json_type(search_doc, '$.\"spec.system\"') IS NOT NULL)"
        }
    };
    let mut after = 0_i64;
    let mut filled = 0_u64;
    loop {
        let mut select = Sql::new(backend);
        select
            .push("SELECT id, body FROM entities WHERE id > ")
            .bind(after)
            .push(&format!(" AND {has_either_key} ORDER BY id LIMIT "))
            .bind(BACKFILL_CHUNK);
        let rows = db.query_all_raw(select.build()).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("", "id")?;
        let mut update = Sql::new(backend);
        update.push("WITH v (id, spec_owner, spec_owner_l, spec_system, spec_system_l, owner_system_multi) AS (VALUES ");
        for (index, row) in rows.iter().enumerate() {
            let id: i64 = row.try_get("", "id")?;
            let body: String = row.try_get("", "body")?;
            let body: serde_json::Value = serde_json::from_str(&body)
                .map_err(|e| DbErr::Custom(format!("entity row {id}: body is not JSON: {e}")))?;
            let values = FirstValues::of(&cadastre_query::search_rows(&body));
            if index > 0 {
                update.push(", ");
            }
            update.push("(").bind(id).push(", ");
            values.bind(&mut update);
            update.push(")");
        }
        update.push(
            ") UPDATE entities SET spec_owner = v.spec_owner, spec_owner_l = v.spec_owner_l, \
             spec_system = v.spec_system, spec_system_l = v.spec_system_l, \
             owner_system_multi = v.owner_system_multi FROM v WHERE entities.id = v.id",
        );
        db.execute_raw(update.build()).await?;
        filled += rows.len() as u64;
    }
    tracing::info!(entities = filled, "owner and system columns filled");
    Ok(())
}

/// When each file (and each registered location, for its own errors) was last covered by an
/// applied part of a harvest: a part of an older harvest that arrives late is dropped for the
/// files a newer harvest has already applied, and applied for the others.
#[derive(Debug)]
struct HarvestedFiles;

impl MigrationName for HarvestedFiles {
    fn name(&self) -> &str {
        "m0010_harvested_files"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for HarvestedFiles {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE harvested_files (
                    location_key TEXT PRIMARY KEY,
                    harvest_started_at BIGINT NOT NULL
                )",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared("DROP TABLE IF EXISTS harvested_files")
            .await?;
        Ok(())
    }
}

/// One row per relation edge and the edge back (see `edges`), read as both through the
/// `relations` view, which takes the table's name so every read stays as it was. Rows written
/// before are copied as they are, each an edge without an inverse: the same edges, read the
/// same way; an entity's rows are paired the next time its relations change.
#[derive(Debug)]
struct RelationEdgePairs;

impl MigrationName for RelationEdgePairs {
    fn name(&self) -> &str {
        "m0011_relation_edge_pairs"
    }
}

/// The edges `relation_edges` stands for: each row's own edge, and the edge back where the
/// row has one. Filters on the view's columns reach both halves' indexes.
const RELATIONS_VIEW: &str = "CREATE VIEW relations AS
    SELECT originating_entity_id, source_ref, type, type_l, target_ref FROM relation_edges
    UNION ALL
    SELECT originating_entity_id, target_ref AS source_ref, inverse_type AS type,
        lower(inverse_type) AS type_l, source_ref AS target_ref
    FROM relation_edges WHERE inverse_type IS NOT NULL";

#[async_trait::async_trait]
impl MigrationTrait for RelationEdgePairs {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Clustered by source on SQLite: a row is its primary key's b-tree entry, no rowid
        // table besides.
        let without_rowid = match manager.get_database_backend() {
            DbBackend::Postgres => "",
            _ => " WITHOUT ROWID",
        };
        for statement in [
            format!(
                "CREATE TABLE relation_edges (
                    originating_entity_id BIGINT NOT NULL,
                    source_ref TEXT NOT NULL,
                    type TEXT NOT NULL,
                    type_l TEXT NOT NULL,
                    target_ref TEXT NOT NULL,
                    inverse_type TEXT NULL,
                    PRIMARY KEY (source_ref, type_l, target_ref, originating_entity_id)
                ){without_rowid}"
            ),
            // The edges about an entity and filters by (type, target). It carries the type of
            // the edge back, so the view's second half (an entity's edges stored in other
            // entities' rows: a group's thousands of `ownerOf`) reads the index alone.
            "CREATE INDEX relation_edges_target ON relation_edges (target_ref, type_l, source_ref, inverse_type)"
                .into(),
            // The rows an entity emitted, replaced when its relations change.
            "CREATE INDEX relation_edges_origin ON relation_edges (originating_entity_id)".into(),
            "INSERT INTO relation_edges (originating_entity_id, source_ref, type, type_l, target_ref)
                SELECT originating_entity_id, source_ref, type, type_l, target_ref FROM relations
                WHERE true ON CONFLICT DO NOTHING"
                .into(),
            "DROP TABLE relations".into(),
            RELATIONS_VIEW.into(),
        ] {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Every edge the view reads becomes a row again, in a table of the old shape.
        const COLUMNS: &str = "(originating_entity_id BIGINT NOT NULL, source_ref TEXT NOT NULL,
            type TEXT NOT NULL, type_l TEXT NOT NULL, target_ref TEXT NOT NULL)";
        for statement in [
            format!("CREATE TABLE relation_rows {COLUMNS}"),
            "INSERT INTO relation_rows SELECT originating_entity_id, source_ref, type, type_l, target_ref FROM relations".into(),
            "DROP VIEW relations".into(),
            "DROP TABLE relation_edges".into(),
            format!("CREATE TABLE relations {COLUMNS}"),
            "INSERT INTO relations SELECT * FROM relation_rows".into(),
            "DROP TABLE relation_rows".into(),
            "CREATE INDEX relations_source ON relations (source_ref, type_l, target_ref)".into(),
            "CREATE INDEX relations_target ON relations (type_l, target_ref, source_ref)".into(),
            "CREATE INDEX relations_origin ON relations (originating_entity_id)".into(),
        ] {
            db.execute_unprepared(&statement)
                .await
                .map_err(|e| DbErr::Custom(format!("{statement}: {e}")))?;
        }
        Ok(())
    }
}

/// Relations versions, etags and update times moved by other entities' relations (a bump: a
/// group gains an `ownerOf` when a component names it as owner) are kept in a narrow table of
/// their own. Bumping one rewrote its entity's whole row (about 3 KB at a million entities, a
/// page at a random place each); the bumped entities (groups, systems, APIs) are a small part
/// of the catalog, and their rows here fill few pages. A row here is newer than the entity's
/// own columns, and is removed whenever the entity's row is written again.
#[derive(Debug)]
struct RelationVersions;

impl MigrationName for RelationVersions {
    fn name(&self) -> &str {
        "m0012_relation_versions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RelationVersions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE relation_versions (
                    entity_id BIGINT PRIMARY KEY,
                    relations_version BIGINT NOT NULL,
                    etag TEXT NOT NULL,
                    updated_at BIGINT NOT NULL
                )",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Back into the entities' own columns.
        db.execute_unprepared(
            "UPDATE entities SET relations_version = v.relations_version, etag = v.etag, \
             updated_at = v.updated_at FROM relation_versions v WHERE entities.id = v.entity_id",
        )
        .await?;
        db.execute_unprepared("DROP TABLE relation_versions")
            .await?;
        Ok(())
    }
}

/// Where a first import into an empty store records the read indexes it dropped, to
/// build once it is done (see `first_import`): by name, with the statement that creates each.
#[derive(Debug)]
struct DeferredIndexes;

impl MigrationName for DeferredIndexes {
    fn name(&self) -> &str {
        "m0013_deferred_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for DeferredIndexes {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE deferred_indexes (name TEXT PRIMARY KEY, definition TEXT NOT NULL)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        // Rebuilt before the record goes: a store migrated down keeps its read indexes.
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                manager.get_database_backend(),
                "SELECT definition FROM deferred_indexes",
            ))
            .await?;
        for row in rows {
            let definition: String = row.try_get("", "definition")?;
            db.execute_unprepared(&definition).await?;
        }
        db.execute_unprepared("DROP TABLE deferred_indexes").await?;
        Ok(())
    }
}

/// Each entity's body and search document in a table of their own (`entity_documents`, keyed
/// by the entity's id), out of `entities`: at a million entities the two made each entity row
/// about 3.7 KB, one row per page, and every scan of the table (each deferred index build,
/// filters on columns) and every lookup of an entity's hash before a write read 3.7 GB of
/// pages for a few hundred bytes of columns. On PostgreSQL an update that leaves an entity's
/// indexed columns alone can now be a HOT update of `entities` (room is left on each page for
/// it), rewriting none of its index entries.
#[derive(Debug)]
struct EntityDocuments;

impl MigrationName for EntityDocuments {
    fn name(&self) -> &str {
        "m0014_entity_documents"
    }
}

/// Builds the GIN index of the search documents on `table` (PostgreSQL), under the name it
/// has always had, whether a first import had deferred it or not; and gives `entities` the
/// page fill that suits where the documents are.
async fn move_search_index(
    db: &impl ConnectionTrait,
    table: &str,
    entities_fill: &str,
) -> Result<(), DbErr> {
    db.execute_unprepared("DELETE FROM deferred_indexes WHERE name = 'entities_search'")
        .await?;
    db.execute_unprepared("DROP INDEX IF EXISTS entities_search")
        .await?;
    db.execute_unprepared(&format!(
        "CREATE INDEX entities_search ON {table} USING GIN (search_doc)"
    ))
    .await?;
    db.execute_unprepared(&format!("ALTER TABLE entities {entities_fill}"))
        .await?;
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for EntityDocuments {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        let postgres = backend == DbBackend::Postgres;
        // On SQLite an INTEGER PRIMARY KEY is the row id: a document is found without an
        // index of its own.
        let (key, json) = if postgres {
            ("BIGINT PRIMARY KEY", "JSONB")
        } else {
            ("INTEGER PRIMARY KEY", "TEXT")
        };
        db.execute_unprepared(&format!(
            "CREATE TABLE entity_documents (entity_id {key}, body TEXT NOT NULL, search_doc {json} NOT NULL)"
        ))
        .await?;
        if postgres {
            db.execute_unprepared(
                "DO $$ BEGIN
                    ALTER TABLE entity_documents ALTER COLUMN body SET COMPRESSION lz4;
                    ALTER TABLE entity_documents ALTER COLUMN search_doc SET COMPRESSION lz4;
                EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
                END $$",
            )
            .await?;
        }
        db.execute_unprepared(
            "INSERT INTO entity_documents (entity_id, body, search_doc) \
             SELECT id, body, search_doc FROM entities ORDER BY id",
        )
        .await?;
        if postgres {
            // Room on each page for an updated row's new version beside the old one.
            move_search_index(db, "entity_documents", "SET (fillfactor = 80)").await?;
        }
        for column in ["body", "search_doc"] {
            db.execute_unprepared(&format!("ALTER TABLE entities DROP COLUMN {column}"))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();
        let db = manager.get_connection();
        let postgres = backend == DbBackend::Postgres;
        let json = if postgres { "JSONB" } else { "TEXT" };
        db.execute_unprepared("ALTER TABLE entities ADD COLUMN body TEXT NOT NULL DEFAULT ''")
            .await?;
        db.execute_unprepared(&format!(
            "ALTER TABLE entities ADD COLUMN search_doc {json} NOT NULL DEFAULT '{{}}'"
        ))
        .await?;
        db.execute_unprepared(
            "UPDATE entities SET body = d.body, search_doc = d.search_doc \
             FROM entity_documents d WHERE entities.id = d.entity_id",
        )
        .await?;
        if postgres {
            move_search_index(db, "entities", "RESET (fillfactor)").await?;
        }
        db.execute_unprepared("DROP TABLE entity_documents").await?;
        Ok(())
    }
}

/// On PostgreSQL, the search documents' GIN index hashes each key with each of its values
/// (`jsonb_path_ops`) instead of indexing keys and values apart (`jsonb_ops`), and the keys
/// each document has get a GIN index of their own, for filters on a key's existence, which
/// `jsonb_path_ops` cannot answer. Measured on the million-entity benchmark's documents: the
/// `jsonb_ops` index took about 55 s to build on one core (and was the last of the deferred
/// builds to finish, by a minute); the two new ones build side by side, and a distributed
/// import's builds ended 55 s after the store had every entity instead of 96 s. SQLite:
/// nothing.
#[derive(Debug)]
struct SearchIndexByPath;

impl MigrationName for SearchIndexByPath {
    fn name(&self) -> &str {
        "m0015_search_index_by_path"
    }
}

/// The keys of a search document, as the existence filters' index holds them.
const SEARCH_KEYS_FUNCTION: &str = "CREATE OR REPLACE FUNCTION cadastre_search_keys(doc jsonb) \
     RETURNS text[] LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE \
     AS $$ SELECT coalesce(array_agg(key), '{}') FROM jsonb_object_keys(doc) AS key $$";

#[async_trait::async_trait]
impl MigrationTrait for SearchIndexByPath {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // A first import under way may have dropped the old index and kept its definition:
        // both indexes are made now, with the definitions a later deferral reads.
        db.execute_unprepared("DELETE FROM deferred_indexes WHERE name = 'entities_search'")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS entities_search")
            .await?;
        db.execute_unprepared(SEARCH_KEYS_FUNCTION).await?;
        db.execute_unprepared(
            "CREATE INDEX entities_search ON entity_documents USING GIN (search_doc jsonb_path_ops)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX entity_documents_keys ON entity_documents USING GIN (cadastre_search_keys(search_doc))",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(
            "DELETE FROM deferred_indexes WHERE name IN ('entities_search', 'entity_documents_keys')",
        )
        .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS entity_documents_keys")
            .await?;
        db.execute_unprepared("DROP FUNCTION IF EXISTS cadastre_search_keys(jsonb)")
            .await?;
        db.execute_unprepared("DROP INDEX IF EXISTS entities_search")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX entities_search ON entity_documents USING GIN (search_doc)",
        )
        .await?;
        Ok(())
    }
}

/// On PostgreSQL, room for updates, in two places:
///
/// - Half of each `entities` page is left free (`fillfactor = 50`, was 80): an update that
///   leaves the indexed columns alone (a new description, a new etag) is a HOT update only if
///   the row's new version fits on its page. A row is about 430 bytes, so a fifth of a page
///   held three new versions for its six or seven rows: on a 100,000-entity store 27% of such
///   updates were HOT, each of the others writing an entry into every one of the table's
///   indexes; at half, all were, and 1,000 of them took 22.5 ms instead of 40–51 ms. The
///   rows' pages double in number (about 1.1 GB at a million), which reads through indexes
///   do not notice. Pages already written keep their fill until the table is rewritten
///   (`VACUUM FULL entities`).
/// - The search documents' two GIN indexes take up to 32 MB of new entries in their pending
///   lists (`gin_pending_list_limit`, 4 MB by default) before a write must merge them into
///   the index itself; the store merges them off the write path every second
///   ([`crate::CatalogStore`]'s background merge).
///
/// A first import under way keeps the GIN indexes' definitions to build them later: the
/// option is added there. SQLite: nothing.
#[derive(Debug)]
struct RoomForUpdates;

impl MigrationName for RoomForUpdates {
    fn name(&self) -> &str {
        "m0016_room_for_updates"
    }
}

/// The GIN indexes of the search documents (`m0015`).
const SEARCH_INDEXES: [&str; 2] = ["entities_search", "entity_documents_keys"];

/// Pending-list room of the search documents' GIN indexes, in KiB (32 MB).
const GIN_PENDING_LIST_KIB: u32 = 32_768;

#[async_trait::async_trait]
impl MigrationTrait for RoomForUpdates {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        leave_room_for_updates(manager, true).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        leave_room_for_updates(manager, false).await
    }
}

/// `m0016` up (`room`) or down, for the built search indexes and the definitions of those a
/// first import deferred.
async fn leave_room_for_updates(manager: &SchemaManager<'_>, room: bool) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    let fill = if room { 50 } else { 80 };
    db.execute_unprepared(&format!("ALTER TABLE entities SET (fillfactor = {fill})"))
        .await?;
    for index in SEARCH_INDEXES {
        let (option, definition) = if room {
            (
                format!("SET (gin_pending_list_limit = {GIN_PENDING_LIST_KIB})"),
                format!(
                    "definition || ' WITH (gin_pending_list_limit=''{GIN_PENDING_LIST_KIB}'')' \
                     WHERE name = '{index}' AND definition NOT LIKE '% WITH (%'"
                ),
            )
        } else {
            (
                "RESET (gin_pending_list_limit)".to_owned(),
                format!(
                    "regexp_replace(definition, ' WITH \\(gin_pending_list_limit=''\\d+''\\)$', '') \
                     WHERE name = '{index}'"
                ),
            )
        };
        db.execute_unprepared(&format!("ALTER INDEX IF EXISTS {index} {option}"))
            .await?;
        db.execute_unprepared(&format!(
            "UPDATE deferred_indexes SET definition = {definition}"
        ))
        .await?;
    }
    Ok(())
}

/// On PostgreSQL, filters on the search documents' keys read facts (`entity_facts`, see
/// `crate::facts`) instead of the documents' two GIN indexes, which took every key and value
/// of a document again on each update. Each document row keeps its facts packed (`facts`).
/// Existing documents' facts are computed here by the code that computes them on write. The
/// facts' lookup index is built after they are all in (one pass instead of one insert per
/// fact). SQLite: nothing (its filters read the documents).
#[derive(Debug)]
struct SearchFacts;

impl MigrationName for SearchFacts {
    fn name(&self) -> &str {
        "m0017_search_facts"
    }
}

/// The facts' index for filters; a first import defers it (see `first_import`).
const FACTS_LOOKUP_INDEX: &str =
    "CREATE UNIQUE INDEX entity_facts_lookup ON entity_facts (key_hash, value_hash, entity_id)";

/// Documents read and rewritten per statement of the facts' backfill.
const FACTS_BACKFILL_CHUNK: i64 = 1_000;

#[async_trait::async_trait]
impl MigrationTrait for SearchFacts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for statement in [
            "ALTER TABLE entity_documents ADD COLUMN facts BYTEA NOT NULL DEFAULT ''::bytea",
            // The writer's way in (an entity's facts), in the order new entities' facts come.
            "CREATE TABLE entity_facts (entity_id BIGINT NOT NULL, key_hash BIGINT NOT NULL, \
             value_hash BIGINT NOT NULL, PRIMARY KEY (entity_id, key_hash, value_hash))",
        ] {
            db.execute_unprepared(statement).await?;
        }
        backfill_facts(db).await?;
        for statement in [
            FACTS_LOOKUP_INDEX,
            // A key's values are far from independent of the key: without this the planner
            // multiplies their frequencies.
            "CREATE STATISTICS entity_facts_pairs (dependencies, mcv) ON key_hash, value_hash FROM entity_facts",
            "DELETE FROM deferred_indexes WHERE name IN ('entities_search', 'entity_documents_keys')",
            "DROP INDEX IF EXISTS entities_search",
            "DROP INDEX IF EXISTS entity_documents_keys",
            "DROP FUNCTION IF EXISTS cadastre_search_keys(jsonb)",
        ] {
            db.execute_unprepared(statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        let gin = format!("WITH (gin_pending_list_limit = {GIN_PENDING_LIST_KIB})");
        for statement in [
            "DELETE FROM deferred_indexes WHERE name = 'entity_facts_lookup'".to_owned(),
            "DROP TABLE entity_facts".to_owned(),
            "ALTER TABLE entity_documents DROP COLUMN facts".to_owned(),
            SEARCH_KEYS_FUNCTION.to_owned(),
            format!(
                "CREATE INDEX entities_search ON entity_documents USING GIN (search_doc jsonb_path_ops) {gin}"
            ),
            format!(
                "CREATE INDEX entity_documents_keys ON entity_documents USING GIN (cadastre_search_keys(search_doc)) {gin}"
            ),
        ] {
            db.execute_unprepared(&statement).await?;
        }
        Ok(())
    }
}

/// Computes the facts of every stored search document and writes them, with each document's
/// packed copy.
async fn backfill_facts(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    let backend = DbBackend::Postgres;
    let mut after = 0_i64;
    let mut documents = 0_u64;
    loop {
        let mut select = Sql::new(backend);
        select
            .push("SELECT entity_id, search_doc::text AS doc FROM entity_documents WHERE entity_id > ")
            .bind(after)
            .push(" ORDER BY entity_id LIMIT ")
            .bind(FACTS_BACKFILL_CHUNK);
        let rows = db.query_all_raw(select.build()).await?;
        let Some(last) = rows.last() else { break };
        after = last.try_get("", "entity_id")?;
        let mut packed = Sql::new(backend);
        packed.push("WITH v (id, facts) AS (VALUES ");
        let mut fact_rows = crate::facts::FactRows::new();
        for (index, row) in rows.iter().enumerate() {
            let id: i64 = row.try_get("", "entity_id")?;
            let doc: String = row.try_get("", "doc")?;
            let doc: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&doc)
                .map_err(|e| DbErr::Custom(format!("document {id} is not a JSON object: {e}")))?;
            let facts = crate::facts::Facts::of_document(&doc);
            fact_rows.extend(facts.iter().map(|fact| (id, fact)));
            if index > 0 {
                packed.push(", ");
            }
            packed
                .push("(")
                .bind(id)
                .push(", ")
                .bind(facts.to_bytes())
                .push(")");
        }
        packed.push(") UPDATE entity_documents SET facts = v.facts FROM v WHERE entity_id = v.id");
        db.execute_raw(packed.build()).await?;
        let mut insert = Sql::new(backend);
        crate::facts::insert_statement(&mut insert, &fact_rows);
        db.execute_raw(insert.build()).await?;
        documents += rows.len() as u64;
        if documents.is_multiple_of(100_000) {
            tracing::info!(documents, "search facts computed so far");
        }
    }
    tracing::info!(documents, "search facts computed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Batch, CatalogStore, Upsert};
    use cadastre_model::RelationEdge;
    use serde_json::json;

    type OwnerSystemRow = (
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        bool,
    );

    async fn owner_system_columns(store: &CatalogStore) -> Vec<OwnerSystemRow> {
        let sql = Sql::new(store.backend())
            .push("SELECT entity_ref, spec_owner, spec_owner_l, spec_system, spec_system_l, owner_system_multi FROM entities ORDER BY entity_ref")
            .clone();
        let mut out = Vec::new();
        for row in store.db().query_all_raw(sql.build()).await.unwrap() {
            out.push((
                row.try_get("", "entity_ref").unwrap(),
                row.try_get("", "spec_owner").unwrap(),
                row.try_get("", "spec_owner_l").unwrap(),
                row.try_get("", "spec_system").unwrap(),
                row.try_get("", "spec_system_l").unwrap(),
                row.try_get("", "owner_system_multi").unwrap(),
            ));
        }
        out
    }

    /// How many migrations there are from `name` on, `name` included.
    fn migrations_since(name: &str) -> u32 {
        let names: Vec<String> = Migrator::migrations()
            .iter()
            .map(|migration| migration.name().to_owned())
            .collect();
        let position = names.iter().position(|n| n == name).unwrap();
        <u32 as TryFrom<usize>>::try_from(names.len() - position).unwrap()
    }

    /// Rows written before the columns existed get what a write gives them.
    async fn backfill_fills_what_writes_fill(store: CatalogStore) {
        let entity = |kind: &str, name: &str, spec: serde_json::Value| Upsert {
            body: json!({"kind": kind, "metadata": {"name": name}, "spec": spec}),
            edges: Vec::new(),
            location_key: None,
            origin_location: None,
            parent_ref: None,
            commit: None,
        };
        let mut upserts = vec![
            entity(
                "Component",
                "mixed",
                json!({"owner": "Team-A", "system": "Billing"}),
            ),
            entity("Component", "list", json!({"owner": ["team-c", "Team-D"]})),
            entity(
                "Component",
                "cased-keys",
                json!({"owner": "x", "Owner": "Y"}),
            ),
            entity("Component", "number", json!({"owner": 42, "system": null})),
            entity("Component", "long", json!({"owner": "o".repeat(300)})),
            entity("Group", "team-a", json!({"type": "team"})),
        ];
        // More than one backfill statement's worth.
        upserts.extend((0..BACKFILL_CHUNK + 7).map(|i| {
            entity(
                "Component",
                &format!("c{i}"),
                json!({"owner": format!("Team-{}", i % 13)}),
            )
        }));
        store
            .apply_batch(Batch {
                upserts,
                ..Batch::default()
            })
            .await
            .unwrap();
        let written = owner_system_columns(&store).await;
        assert!(written.contains(&(
            "component:default/list".into(),
            Some("team-c".into()),
            Some("team-c".into()),
            None,
            None,
            true
        )));
        assert!(written.contains(&(
            "component:default/mixed".into(),
            Some("Team-A".into()),
            Some("team-a".into()),
            Some("Billing".into()),
            Some("billing".into()),
            false
        )));

        // Back to before m0009, then forward again: the backfill. Through the writing
        // connection, as at start: statements of one migration spread over the reading pool's
        // connections could each see a different schema.
        Migrator::down(
            store.writes(),
            Some(migrations_since("m0009_owner_and_system_columns")),
        )
        .await
        .unwrap();
        Migrator::up(store.writes(), None).await.unwrap();
        assert_eq!(owner_system_columns(&store).await, written);
    }

    #[tokio::test]
    async fn backfill_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("catalog.db").display()
        );
        backfill_fills_what_writes_fill(CatalogStore::connect(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn backfill_on_postgres() {
        let url = cadastre_testkit::fresh_postgres_database("cadastre_test").await;
        backfill_fills_what_writes_fill(CatalogStore::connect(&url).await.unwrap()).await;
    }

    /// Facts rows as `entity_facts` holds them, and as the stored documents and their packed
    /// copies say they should be: `(held, from documents, packed)`, each sorted.
    async fn facts_three_ways(store: &CatalogStore) -> [Vec<(i64, (i64, i64))>; 3] {
        let query = |text: &str| Sql::new(DbBackend::Postgres).push(text).clone().build();
        let mut held = Vec::new();
        for row in store
            .db()
            .query_all_raw(query(
                "SELECT entity_id, key_hash, value_hash FROM entity_facts",
            ))
            .await
            .unwrap()
        {
            let get = |column| row.try_get::<i64>("", column).unwrap();
            held.push((get("entity_id"), (get("key_hash"), get("value_hash"))));
        }
        let (mut derived, mut packed) = (Vec::new(), Vec::new());
        for row in store
            .db()
            .query_all_raw(query(
                "SELECT entity_id, search_doc::text AS doc, facts FROM entity_documents",
            ))
            .await
            .unwrap()
        {
            let id: i64 = row.try_get("", "entity_id").unwrap();
            let doc: String = row.try_get("", "doc").unwrap();
            let doc = serde_json::from_str(&doc).unwrap();
            derived.extend(
                crate::facts::Facts::of_document(&doc)
                    .iter()
                    .map(|f| (id, f)),
            );
            let bytes: Vec<u8> = row.try_get("", "facts").unwrap();
            let facts = crate::facts::Facts::from_bytes(&bytes).unwrap();
            packed.extend(facts.iter().map(|f| (id, f)));
        }
        let mut all = [held, derived, packed];
        for rows in &mut all {
            rows.sort_unstable();
        }
        all
    }

    /// On PostgreSQL the facts follow creates, updates and removals (only what changed is
    /// written), and the backfill of m0017 computes the same from the stored documents.
    #[tokio::test]
    async fn facts_follow_writes_and_the_backfill_on_postgres() {
        let url = cadastre_testkit::fresh_postgres_database("cadastre_test").await;
        let store = CatalogStore::connect(&url).await.unwrap();
        let component =
            |name: &str, tags: serde_json::Value, description: serde_json::Value| Upsert {
                body: json!({"kind": "Component", "metadata": {"name": name, "tags": tags,
                    "description": description}, "spec": {"type": "service"}}),
                edges: Vec::new(),
                location_key: None,
                origin_location: None,
                parent_ref: None,
                commit: None,
            };
        let batch = |upserts, removals| Batch {
            upserts,
            removals,
            ..Batch::default()
        };
        store
            .apply_batch(batch(
                vec![
                    component("a", json!(["go", "java"]), json!("first")),
                    component("b", json!(["go"]), json!(null)),
                    component("c", json!([]), json!("third")),
                ],
                vec![],
            ))
            .await
            .unwrap();
        let [held, derived, packed] = facts_three_ways(&store).await;
        assert!(held.len() > 3 * 5, "{held:?}");
        assert_eq!(held, derived);
        assert_eq!(held, packed);
        let ids = |rows: &[(i64, (i64, i64))]| {
            rows.iter()
                .map(|(id, _)| *id)
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(ids(&held).len(), 3);

        // A new tag and description for a, b removed: a's unchanged facts keep their rows.
        let kind_fact_of_a = format!(
            "SELECT CAST(f.ctid AS TEXT) FROM entity_facts f JOIN entities e ON e.id = f.entity_id \
             WHERE e.name = 'a' AND f.key_hash = {}",
            crate::facts::hash("kind")
        );
        let ctid_of_name = kind_fact_of_a.as_str();
        let before = scalar(&store, ctid_of_name).await;
        store
            .apply_batch(batch(
                vec![component("a", json!(["go", "rust"]), json!("second"))],
                vec!["component:default/b".into()],
            ))
            .await
            .unwrap();
        let [held, derived, packed] = facts_three_ways(&store).await;
        assert_eq!(held, derived);
        assert_eq!(held, packed);
        assert_eq!(ids(&held).len(), 2);
        let rust = crate::facts::hash("rust");
        let java = crate::facts::hash("java");
        assert!(held.iter().any(|(_, (_, value))| *value == rust));
        assert!(!held.iter().any(|(_, (_, value))| *value == java));
        let untouched = scalar(&store, ctid_of_name).await;
        assert_eq!(
            before, untouched,
            "a fact that did not change was rewritten"
        );

        Migrator::down(store.writes(), Some(1)).await.unwrap();
        Migrator::up(store.writes(), None).await.unwrap();
        assert_eq!(facts_three_ways(&store).await[0], held);
    }

    /// The first column of the first row `query` answers, as text.
    async fn scalar(store: &CatalogStore, query: &str) -> String {
        let sql = Sql::new(store.backend()).push(query).clone();
        let row = store
            .db()
            .query_one_raw(sql.build())
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<String>(0).unwrap()
    }

    /// The room `m0016` gives: the entity rows' pages, the search indexes' pending lists (a
    /// built index, and the definition of one a first import deferred), and back.
    #[tokio::test]
    async fn room_for_updates_on_postgres() {
        let url = cadastre_testkit::fresh_postgres_database("cadastre_test").await;
        let store = CatalogStore::connect(&url).await.unwrap();
        let options = async |relation: &str| {
            scalar(
                &store,
                &format!(
                    "SELECT coalesce(array_to_string(reloptions, ','), '') FROM pg_class WHERE relname = '{relation}'"
                ),
            )
            .await
        };
        let deferred = async || scalar(&store, "SELECT definition FROM deferred_indexes").await;
        // Back to before the search facts (m0017), which replaced the GIN indexes.
        Migrator::down(store.writes(), Some(1)).await.unwrap();
        assert_eq!(options("entities").await, "fillfactor=50");
        assert_eq!(
            options("entities_search").await,
            "gin_pending_list_limit=32768"
        );
        // As if a first import had dropped the keys index and kept its definition.
        Migrator::down(store.writes(), Some(1)).await.unwrap();
        assert_eq!(options("entities").await, "fillfactor=80");
        assert_eq!(options("entity_documents_keys").await, "");
        let definition = scalar(
            &store,
            "SELECT pg_get_indexdef('entity_documents_keys'::regclass)",
        )
        .await;
        for statement in [
            "DROP INDEX entity_documents_keys".to_owned(),
            format!(
                "INSERT INTO deferred_indexes (name, definition) VALUES ('entity_documents_keys', '{definition}')"
            ),
        ] {
            store.db().execute_unprepared(&statement).await.unwrap();
        }
        Migrator::up(store.writes(), Some(1)).await.unwrap();
        assert_eq!(options("entities").await, "fillfactor=50");
        assert_eq!(
            deferred().await,
            format!("{definition} WITH (gin_pending_list_limit='32768')")
        );
        Migrator::down(store.writes(), Some(1)).await.unwrap();
        assert_eq!(deferred().await, definition);
    }

    /// Entities serve the same relations before m0011, after it, and back down again.
    async fn relations_survive_the_edge_pair_migration(store: CatalogStore) {
        let edge = |source: &str, relation_type: &str, target: &str| RelationEdge {
            source: source.into(),
            relation_type: relation_type.into(),
            target: target.into(),
        };
        let component = Upsert {
            body: json!({"kind": "Component", "metadata": {"name": "web"},
                "spec": {"owner": "team-a", "system": "shop"}}),
            edges: vec![
                edge("component:default/web", "ownedBy", "group:default/team-a"),
                edge("group:default/team-a", "ownerOf", "component:default/web"),
                edge("component:default/web", "partOf", "system:default/shop"),
                edge("system:default/shop", "hasPart", "component:default/web"),
                // Emitted without its inverse.
                edge("component:default/web", "dependsOn", "resource:default/db"),
            ],
            location_key: None,
            origin_location: None,
            parent_ref: None,
            commit: None,
        };
        let group = Upsert {
            body: json!({"kind": "Group", "metadata": {"name": "team-a"},
                "spec": {"type": "team", "children": []}}),
            edges: Vec::new(),
            ..component.clone()
        };
        store
            .apply_batch(Batch {
                upserts: vec![component.clone(), group],
                ..Batch::default()
            })
            .await
            .unwrap();
        // A later component owned by the group moves the group's relations version (kept in
        // `relation_versions` since m0012).
        let api = Upsert {
            body: json!({"kind": "Component", "metadata": {"name": "api"},
                "spec": {"owner": "team-a"}}),
            edges: vec![
                edge("component:default/api", "ownedBy", "group:default/team-a"),
                edge("group:default/team-a", "ownerOf", "component:default/api"),
            ],
            ..component
        };
        store
            .apply_batch(Batch {
                upserts: vec![api],
                ..Batch::default()
            })
            .await
            .unwrap();
        let refs = [
            "component:default/web",
            "group:default/team-a",
            "system:default/shop",
        ];
        let served = |store: CatalogStore| async move {
            let mut out = Vec::new();
            for entity_ref in refs {
                out.push(
                    store
                        .entity_by_ref(entity_ref)
                        .await
                        .unwrap()
                        .map(|e| e.body),
                );
            }
            out
        };
        let paired = served(store.clone()).await;
        assert!(paired[0].as_deref().unwrap().contains("dependsOn"));
        assert!(
            paired[1]
                .as_deref()
                .unwrap()
                .contains("component:default/api")
        );
        let bumped = Sql::new(store.backend())
            .push("SELECT COUNT(*) AS n FROM relation_versions")
            .clone();
        let row = store.db().query_one_raw(bumped.build()).await.unwrap();
        let bumped: i64 = row.unwrap().try_get("", "n").unwrap();
        assert_eq!(bumped, 1, "the group's bump is kept apart from its row");
        // Down (m0016 to m0011): the group's bumped etag back in its row, and one row per
        // edge again (reads need m0012, so these are looked at directly). Up: those rows
        // copied, each without an inverse, and served as before.
        Migrator::down(store.writes(), Some(6)).await.unwrap();
        let group: serde_json::Value = serde_json::from_str(paired[1].as_deref().unwrap()).unwrap();
        assert_eq!(
            scalar(
                &store,
                "SELECT etag FROM entities WHERE entity_ref = 'group:default/team-a'"
            )
            .await,
            group["metadata"]["etag"].as_str().unwrap()
        );
        assert_eq!(
            scalar(&store, "SELECT CAST(COUNT(*) AS TEXT) FROM relations").await,
            "7",
            "web's five edges and api's two, one row each"
        );
        Migrator::up(store.writes(), None).await.unwrap();
        assert_eq!(served(store.clone()).await, paired);
    }

    #[tokio::test]
    async fn edge_pairs_migrate_on_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("catalog.db").display()
        );
        relations_survive_the_edge_pair_migration(CatalogStore::connect(&url).await.unwrap()).await;
    }

    #[tokio::test]
    async fn edge_pairs_migrate_on_postgres() {
        let url = cadastre_testkit::fresh_postgres_database("cadastre_pairs").await;
        relations_survive_the_edge_pair_migration(CatalogStore::connect(&url).await.unwrap()).await;
    }
}
