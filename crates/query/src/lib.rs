//! Cadastre's catalog query language, with Backstage's semantics (`shared/spec/catalog-api.md`
//! §2–§3): what the REST API parses and what catalog-store evaluates.
//!
//! - [`predicate`]: the predicate tree every query compiles to.
//! - [`legacy_filter`]: the repeated `filter` query parameter (`kind=user,spec.type=x`).
//! - [`json_predicate`]: the JSON predicate language of POST bodies (`$all`, `$in`, …), both
//!   ways.
//! - [`fields`]: `fields` response projection.
//! - [`order`]: `order`, `orderField` and `orderBy` sort orders.
//! - [`full_text`]: the `by-query` full-text filter.
//! - [`cursor`]: the opaque keyset-pagination cursor of `by-query`.
//! - [`facets`]: the `facet` parameters of `/entity-facets`.
//! - [`search_rows`](mod@search_rows): the flat, lower-cased `key = value` rows of an
//!   entity that all matching, ordering and facets run on (`shared/spec/entity-model.md`
//!   §10.7).
//! - [`wire`]: predicates in their `cadastre.v1` proto form, for clients of catalog-store.
//!
//! Every parser fails with a [`QueryError`] whose message says exactly what was wrong; it
//! is meant to be returned to the client as is (HTTP 400, gRPC `INVALID_ARGUMENT`).
//!
//! No I/O: strings and JSON in, plain values out.

pub mod cursor;
pub mod error;
pub mod facets;
pub mod fields;
pub mod full_text;
pub mod json_predicate;
pub mod legacy_filter;
pub mod order;
pub mod predicate;
pub mod search_rows;
pub mod wire;

pub use cursor::{Boundary, Cursor};
pub use error::QueryError;
pub use fields::Projection;
pub use predicate::{Condition, FullTextFilter, OrderField, Predicate};
pub use search_rows::{SearchRow, search_rows};
