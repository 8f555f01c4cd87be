//! Cadastre's entity model: what the catalog accepts, exactly.
//!
//! - [`yaml`]: a YAML reader safe on hostile input (limits, duplicate keys, positions).
//! - [`validate`]: envelope, metadata, kind specs, case clashes and relations, reporting
//!   every error with a stable [`Rule`] id, a field path and a line and column.
//! - [`reference`]: entity references, parsed with context defaults, canonical and
//!   case-insensitive.
//! - [`kinds`]: the built-in kinds and custom kinds declared with a JSON Schema.
//! - [`relations`]: relations derived from spec fields, in both directions.
//! - [`placeholder`]: `$text`, `$json`, `$yaml`, read through a trait.
//! - [`document`]: one catalog file end to end.
//!
//! The crate does no I/O: bytes come in, entities and findings go out. The rules follow
//! Backstage's catalog (`shared/spec/entity-model.md`) so existing catalog files behave the
//! same here.

pub mod document;
pub mod entity;
pub mod finding;
pub mod format;
pub mod kinds;
pub mod path;
pub mod placeholder;
pub mod reference;
pub mod relations;
pub mod validate;
pub mod yaml;

pub use document::{CatalogReader, DocumentReport, FileReport};
pub use entity::{Entity, Metadata, Relation};
pub use finding::{Finding, Position, Rule, Severity};
pub use kinds::{CustomKind, KindRegistry};
pub use path::FieldPath;
pub use placeholder::{PlaceholderReader, ReadOutcome};
pub use reference::{EntityRef, RefContext};
pub use relations::RelationEdge;
pub use validate::{ValidEntity, Validator};
pub use yaml::Limits;
