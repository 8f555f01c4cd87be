//! Backstage's legacy `filter` query parameter (`shared/spec/catalog-api.md` §2.1), parsed
//! into a [`Predicate`].
//!
//! - Each `filter` parameter is one *filter set*; several sets are OR-ed ([`Predicate::Any`]).
//! - Within a set, comma-separated statements are AND-ed ([`Predicate::All`]), except that
//!   statements repeating a key merge into one list: `kind=user,kind=group` is
//!   kind ∈ {user, group}.
//! - `key=value` is equality, `key` is "exists" (with any value, including null), `key=`
//!   is "equals the empty string". Only the first `=` splits (`a=b=c` is `a` = `b=c`);
//!   there is no escaping of `,`.
//! - Whitespace around statements, keys and values is trimmed; empty statements are
//!   ignored; a statement with an empty key (`=x`) is an error.
//! - Keys and values are lower-cased (matching is case-insensitive). Keys are kept as
//!   written otherwise: `metadata.tags.java`, `metadata.annotations.backstage.io/orphan`,
//!   and `relations.ownedby` (relations are matched as `relations.<type> = <ref>` by the
//!   evaluator).
//!
//! As in Backstage, a set with no statements at all (`filter=` or `filter=,,`) is dropped:
//! with no other set the result matches everything, and `filter=&filter=kind=user` is
//! just `kind=user`. No `filter` parameter matches everything.

use crate::error::QueryError;
use crate::predicate::{Condition, Predicate};

/// Parses the values of the repeated `filter` query parameter.
pub fn parse(filters: &[&str]) -> Result<Predicate, QueryError> {
    let mut sets = Vec::new();
    for filter in filters {
        if let Some(set) = parse_set(filter)? {
            sets.push(set);
        }
    }
    Ok(match sets.len() {
        0 => Predicate::everything(),
        1 => sets.remove(0),
        _ => Predicate::Any(sets),
    })
}

/// Parses one filter set; `None` when it has no statements.
fn parse_set(filter: &str) -> Result<Option<Predicate>, QueryError> {
    // Keys in first-seen order, each with the values required of it (none: exists).
    let mut by_key: Vec<(String, Vec<String>)> = Vec::new();
    for statement in filter.split(',').map(str::trim) {
        if statement.is_empty() {
            continue;
        }
        let (key, value) = match statement.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (statement, None),
        };
        if key.is_empty() {
            return Err(QueryError::EmptyFilterKey {
                statement: statement.to_owned(),
            });
        }
        let key = key.to_lowercase();
        let index = match by_key.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                by_key.push((key, Vec::new()));
                by_key.len() - 1
            }
        };
        if let Some(value) = value {
            let value = value.to_lowercase();
            let values = &mut by_key[index].1;
            if !values.contains(&value) {
                values.push(value);
            }
        }
    }

    let mut conditions: Vec<Predicate> = by_key
        .into_iter()
        .map(|(key, values)| Predicate::Field {
            key,
            // A bare key next to `key=value` adds nothing: a value implies existence.
            condition: if values.is_empty() {
                Condition::Exists(true)
            } else {
                Condition::In(values)
            },
        })
        .collect();
    Ok(match conditions.len() {
        0 => None,
        1 => Some(conditions.remove(0)),
        _ => Some(Predicate::All(conditions)),
    })
}
