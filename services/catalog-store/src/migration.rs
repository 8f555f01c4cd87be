//! Versioned schema migrations, run at start (`Migrator::up`).
//!
//! One schema for both backends; the few differences (identity columns, JSONB and its GIN
//! index) are spelled per backend. Timestamps are microseconds since the Unix epoch.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

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
