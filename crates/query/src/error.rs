//! The one error type of the crate: a request that does not parse.
//!
//! Every message says exactly what was wrong, in words a client can act on: they become the
//! bodies of HTTP 400 (`InputError`) and gRPC `INVALID_ARGUMENT` answers verbatim.

use thiserror::Error;

/// A query parameter or body part that is not valid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QueryError {
    /// A legacy `filter` statement without a key, such as `=x`.
    #[error("filter statement \"{statement}\" has an empty key")]
    EmptyFilterKey {
        /// The statement as written (trimmed).
        statement: String,
    },

    /// A JSON predicate outside the predicate language.
    #[error("invalid query predicate{}: {message}", located(at))]
    InvalidPredicate {
        /// Where in the predicate, e.g. `$all[1]."spec.type".$in` (empty at the top).
        at: String,
        /// What is wrong there.
        message: String,
    },

    /// A `fields` path with `[`: array indexing is not supported.
    #[error("fields path \"{0}\" contains \"[\": array indexing is not supported")]
    FieldsIndexing(String),

    /// An `order`, `orderField` or `orderBy` entry that is not one of the accepted forms.
    #[error("{parameter} \"{value}\" is invalid: expected {expected}")]
    InvalidOrder {
        /// The parameter (`order`, `orderField`, `orderBy`).
        parameter: &'static str,
        /// The value as given.
        value: String,
        /// The accepted forms.
        expected: &'static str,
    },

    /// A pagination cursor that does not decode or validate (including an empty one).
    #[error("Malformed cursor")]
    MalformedCursor,

    /// No (non-empty) `facet` was given.
    #[error("Missing facet parameter")]
    MissingFacet,
}

fn located(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!(" at {at}")
    }
}
