//! The store's domain types, in plain Rust: what goes in and what comes out, independent of
//! gRPC and of the database.

use cadastre_model::{Finding, RelationEdge};
use cadastre_query::{FullTextFilter, OrderField, Predicate};
use serde_json::Value;

/// An entity as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntity {
    /// Canonical `kind:namespace/name`, lower case.
    pub entity_ref: String,
    pub uid: String,
    pub etag: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The entity JSON as served: metadata with uid and etag, `relations` sorted.
    pub body: String,
    pub generation: i64,
    pub content_hash: String,
    pub location_key: Option<String>,
    pub origin_location: Option<String>,
    pub parent_ref: Option<String>,
    pub orphan: bool,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

impl StoredEntity {
    /// The body parsed as JSON.
    pub fn body_json(&self) -> crate::Result<Value> {
        serde_json::from_str(&self.body)
            .map_err(|e| crate::StoreError::Corrupt(format!("{}: {e}", self.entity_ref)))
    }
}

/// One entity to store, as the processor produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsert {
    /// The processed entity, without `relations` and `status`.
    pub body: Value,
    /// Every relation edge its spec produced, both directions.
    pub edges: Vec<RelationEdge>,
    pub location_key: Option<String>,
    pub origin_location: Option<String>,
    pub parent_ref: Option<String>,
    pub commit: Option<String>,
}

/// The processing errors of one location, replacing what was kept before.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationErrors {
    pub location_key: String,
    pub errors: Vec<ProcessingError>,
}

/// A processing error kept against the location and entity that caused it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessingError {
    pub location_key: String,
    /// `None` when the error concerns the file, not one entity.
    pub entity_ref: Option<String>,
    /// The file (or URL) the error is in.
    pub file: String,
    pub finding: Finding,
    pub recorded_at: i64,
}

/// A page of processing errors, and where the next page starts (`None` on the last).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessingErrorPage {
    pub errors: Vec<ProcessingError>,
    pub next_cursor: Option<String>,
}

/// Writes applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Batch {
    pub upserts: Vec<Upsert>,
    /// Refs of entities to remove.
    pub removals: Vec<String>,
    pub errors: Vec<LocationErrors>,
    /// Location keys this batch covers completely: entities they hold that the batch does
    /// not upsert are no longer produced, and are removed with it.
    pub replaced_locations: Vec<String>,
}

impl Batch {
    /// Upserts of `bodies` as one location produced them, without relation edges (for
    /// benchmarks and tests that fill a store quickly).
    pub fn of_bodies(bodies: impl IntoIterator<Item = Value>, location_key: &str) -> Batch {
        Batch {
            upserts: bodies
                .into_iter()
                .map(|body| Upsert {
                    body,
                    edges: Vec::new(),
                    location_key: Some(location_key.to_owned()),
                    origin_location: Some(location_key.to_owned()),
                    parent_ref: None,
                    commit: None,
                })
                .collect(),
            ..Batch::default()
        }
    }
}

/// What a batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    pub removed: u32,
    /// Entities their location no longer produces, kept as orphans.
    pub orphaned: u32,
    pub orphaned_refs: Vec<String>,
    /// Refs refused because another location holds them.
    pub conflicts: Vec<String>,
    /// Refs created or updated, and refs removed, in batch order.
    pub changed_refs: Vec<String>,
    pub removed_refs: Vec<String>,
    /// The highest change sequence this batch wrote (0 if none).
    pub last_sequence: u64,
}

/// One harvest of one location: what triggered it and what it did. Built up as the parts
/// of the harvest are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    pub harvest_id: String,
    pub location_key: String,
    pub trigger: String,
    pub reason: String,
    pub commit: String,
    pub files_read: u32,
    pub files_unchanged: u32,
    pub created: u32,
    pub updated: u32,
    pub unchanged: u32,
    /// Entities no longer produced: removed, or kept as orphans (per the store's policy).
    pub removed: u32,
    pub failed: u32,
    pub conflicts: u32,
    pub changed_refs: Vec<String>,
    pub removed_refs: Vec<String>,
    pub failed_files: Vec<String>,
    /// Microseconds since the Unix epoch (0 when unknown).
    pub harvest_started_at: i64,
    pub harvest_finished_at: i64,
    pub processed_at: i64,
    pub applied_at: i64,
    pub parts: u32,
    pub parts_applied: u32,
}

/// A batch from the processor: applied at most once (by `batch_id`), recorded in its
/// harvest's receipt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessedBatch {
    pub batch_id: String,
    pub batch: Batch,
    /// What the processor knows of the harvest; the store adds what applying did.
    pub receipt: Receipt,
}

/// What applying a processed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessedOutcome {
    pub outcome: BatchOutcome,
    /// The batch had been applied before: nothing was done.
    pub duplicate: bool,
}

/// A query over entities (Backstage's `by-query`).
#[derive(Debug, Clone, PartialEq)]
pub struct EntityQuery {
    pub filter: Predicate,
    pub order: Vec<OrderField>,
    pub full_text: Option<FullTextFilter>,
    pub limit: u32,
    pub offset: u32,
    /// From a previous page; carries filter, order and full text.
    pub cursor: Option<String>,
    pub include_total: bool,
    /// Serve the entities' relations; without, they are not read (for a projection that
    /// drops them: an API consumed by thousands of services has thousands of relations).
    pub with_relations: bool,
}

impl Default for EntityQuery {
    fn default() -> Self {
        EntityQuery {
            filter: Predicate::everything(),
            order: Vec::new(),
            full_text: None,
            limit: DEFAULT_PAGE_SIZE,
            offset: 0,
            cursor: None,
            include_total: true,
            with_relations: true,
        }
    }
}

/// Backstage's default page size for `by-query`.
pub const DEFAULT_PAGE_SIZE: u32 = 200;
/// The largest page a query may ask for.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityPage {
    pub items: Vec<StoredEntity>,
    pub total_items: u64,
    pub next_cursor: Option<String>,
    pub prev_cursor: Option<String>,
}

/// Value counts for one facet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacetValues {
    /// The facet as requested.
    pub facet: String,
    /// `(value, count)`, sorted by value.
    pub values: Vec<(String, u64)>,
}

/// One step of an entity's ancestry.
#[derive(Debug, Clone, PartialEq)]
pub struct AncestryItem {
    pub entity: StoredEntity,
    pub parent_refs: Vec<String>,
}

/// What kind of change a history entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Created,
    Updated,
    /// Only the entity's relations changed (another entity's spec points at it now, or no
    /// longer): its etag changed, its own content did not.
    Relations,
    Removed,
    /// Its location no longer produces it; kept, marked `backstage.io/orphan: "true"`.
    Orphaned,
}

/// What happens to an entity its location no longer produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OrphanPolicy {
    /// Keep it, marked as an orphan (Backstage's default), until it is produced again or
    /// removed.
    #[default]
    Keep,
    /// Remove it with the batch that stopped producing it.
    Remove,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Relations => "relations",
            ChangeKind::Removed => "removed",
            ChangeKind::Orphaned => "orphaned",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "created" => ChangeKind::Created,
            "updated" => ChangeKind::Updated,
            "relations" => ChangeKind::Relations,
            "removed" => ChangeKind::Removed,
            "orphaned" => ChangeKind::Orphaned,
            _ => return None,
        })
    }
}

/// One recorded change: an entry of an entity's history and of the change feed.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub sequence: u64,
    pub entity_ref: String,
    pub uid: String,
    pub generation: i64,
    pub content_hash: String,
    pub etag: String,
    pub change: ChangeKind,
    /// The body after the change (for created and updated).
    pub body: Option<String>,
    pub location_key: Option<String>,
    pub commit: Option<String>,
    /// The W3C trace context of the write that made it, when traces are exported.
    pub trace_parent: Option<String>,
    pub recorded_at: i64,
}

/// A registered location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub id: String,
    pub location_type: String,
    pub target: String,
    pub entity_ref: String,
    pub created_at: i64,
}

impl Location {
    /// `type:target`, the key entities and errors refer to.
    pub fn key(&self) -> String {
        format!("{}:{}", self.location_type, self.target)
    }
}

/// Which processing errors to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorScope {
    Location(String),
    Entity(String),
    Owner(String),
}
