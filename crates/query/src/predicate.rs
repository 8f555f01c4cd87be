//! The predicate tree every catalog query compiles to, whatever its surface syntax
//! (Backstage's legacy `filter` parameters or its JSON predicate language).
//!
//! Keys are dotted paths, lower-cased (`spec.type`, `metadata.annotations.backstage.io/orphan`,
//! `relations.ownedby`); values are lower-cased strings. Matching is exact equality on the
//! lower-cased search rows of an entity (see [`mod@crate::search_rows`]), and relations match as
//! `relations.<type>` = `<target ref>`.

use serde::{Deserialize, Serialize};

/// The only key on which [`Condition::Relation`] is valid.
pub const RELATIONS_KEY: &str = "relations";

/// A condition on entities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    /// Every predicate holds (an empty list matches everything).
    All(Vec<Predicate>),
    /// At least one predicate holds (an empty list matches nothing).
    Any(Vec<Predicate>),
    /// The predicate does not hold.
    Not(Box<Predicate>),
    /// A condition on one key.
    Field { key: String, condition: Condition },
}

/// What must hold for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The key exists (with any value, including null or a value too long to match), or not.
    Exists(bool),
    /// The key has one of these values (lower-cased). One value is plain equality.
    In(Vec<String>),
    /// The key has a value starting with this (lower-cased) prefix.
    HasPrefix(String),
    /// For the key `relations` only: a relation of this type (lower-cased) to one of these
    /// targets (lower-cased refs). A relation of a type to *any* target is expressed as
    /// `relations.<type>` exists instead, which is what the predicate language's
    /// `{"$contains": {"type": "<t>"}}` (no `targetRef`) parses to.
    Relation {
        relation_type: String,
        targets: Vec<String>,
    },
}

impl Predicate {
    /// Matches every entity.
    pub fn everything() -> Self {
        Predicate::All(Vec::new())
    }

    /// `key = value` (both lower-cased here).
    pub fn equals(key: &str, value: &str) -> Self {
        Predicate::Field {
            key: key.to_lowercase(),
            condition: Condition::In(vec![value.to_lowercase()]),
        }
    }

    /// `key` exists (with any value, including null), or not; the key is lower-cased here.
    pub fn exists(key: &str, exists: bool) -> Self {
        Predicate::Field {
            key: key.to_lowercase(),
            condition: Condition::Exists(exists),
        }
    }

    /// A relation of `relation_type` to one of `targets` (all lower-cased here), on the key
    /// `relations`.
    pub fn relation<S: AsRef<str>>(relation_type: &str, targets: &[S]) -> Self {
        Predicate::Field {
            key: RELATIONS_KEY.to_owned(),
            condition: Condition::Relation {
                relation_type: relation_type.to_lowercase(),
                targets: targets.iter().map(|t| t.as_ref().to_lowercase()).collect(),
            },
        }
    }

    /// Both `self` and `other` hold; a side that matches everything is dropped, so
    /// combining with [`Predicate::everything`] gives the other side back.
    pub fn and(self, other: Predicate) -> Self {
        match (self.is_everything(), other.is_everything()) {
            (true, _) => other,
            (_, true) => self,
            _ => Predicate::All(vec![self, other]),
        }
    }

    /// Whether the predicate is in the form the parsers produce: keys non-empty and
    /// lower-case, values lower-case, relation conditions only on [`RELATIONS_KEY`] with at
    /// least one target.
    pub fn is_normalized(&self) -> bool {
        fn lower(text: &str) -> bool {
            text.to_lowercase() == text
        }
        match self {
            Predicate::All(items) | Predicate::Any(items) => {
                items.iter().all(Predicate::is_normalized)
            }
            Predicate::Not(inner) => inner.is_normalized(),
            Predicate::Field { key, condition } => {
                !key.is_empty()
                    && lower(key)
                    && match condition {
                        Condition::Exists(_) => true,
                        Condition::In(values) => values.iter().all(|v| lower(v)),
                        Condition::HasPrefix(prefix) => lower(prefix),
                        Condition::Relation {
                            relation_type,
                            targets,
                        } => {
                            key == RELATIONS_KEY
                                && !relation_type.is_empty()
                                && lower(relation_type)
                                && !targets.is_empty()
                                && targets.iter().all(|t| lower(t))
                        }
                    }
            }
        }
    }

    /// Whether the predicate matches everything (so a query needs no WHERE clause).
    pub fn is_everything(&self) -> bool {
        match self {
            Predicate::All(items) => items.iter().all(Predicate::is_everything),
            _ => false,
        }
    }
}

/// A case-insensitive substring filter over some fields (Backstage's `fullTextFilter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullTextFilter {
    /// Lower-cased and trimmed.
    pub term: String,
    /// Lower-cased keys whose values are searched.
    pub fields: Vec<String>,
}

/// One sort key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderField {
    /// Lower-cased dotted key.
    pub field: String,
    pub descending: bool,
}
