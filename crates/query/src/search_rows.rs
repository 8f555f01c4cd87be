//! The search rows of an entity (`shared/spec/entity-model.md` §10.7): the flat, lower-cased
//! `key = value` pairs that back all filtering, ordering, facets and full-text filtering.
//!
//! Every leaf of the stitched entity becomes a row keyed by its dotted path:
//!
//! - strings, numbers and booleans give their text, lower-cased (numbers as JSON text, with
//!   integral values written without a fraction as JavaScript does, so `1.0` gives `1`);
//!   `null` gives a row with no value;
//! - objects recurse (`spec.owner`); list items recurse under the list's own path (no
//!   index: `metadata.links.url`), and string items also give `<path>.<item> = true`
//!   (`metadata.tags.java`), so that several tags can be required at once;
//! - the root subtrees `status`, `attachments` and `relations` are left out (relations are
//!   matched through the store's relations table as `relations.<type> = <target ref>`);
//! - `metadata.name`, `metadata.namespace` and `metadata.uid` are always present (with no
//!   value when missing), and a missing or empty namespace also reads as `default`;
//! - keys longer than [`MAX_KEY_LENGTH`] characters are dropped; values longer than
//!   [`MAX_VALUE_LENGTH`] are stored without a value (the key still exists);
//! - identical `(key, value)` rows are kept once (the first one, with its original case).
//!
//! Unlike Backstage, a missing namespace gives only the `default` row, not also a null one
//! (served entities always carry a namespace, so this never differs in practice).

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};
use std::collections::HashSet;

/// Keys longer than this many characters (after lower-casing) are not indexed.
pub const MAX_KEY_LENGTH: usize = 200;
/// Values longer than this many characters (after lower-casing) are indexed without a value.
pub const MAX_VALUE_LENGTH: usize = 200;

/// Root paths left out of the generic walk: the first three are not indexed at all, the
/// last three are added explicitly.
const EXCLUDED_PATHS: [&str; 6] = [
    "status",
    "attachments",
    "relations",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];

/// One indexed `key = value` pair of an entity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SearchRow {
    /// The dotted path, lower-cased, at most [`MAX_KEY_LENGTH`] characters.
    pub key: String,
    /// The lower-cased value; `None` for null and for values over [`MAX_VALUE_LENGTH`].
    pub value: Option<String>,
    /// The value in its original case (what facets report); `None` exactly when `value` is.
    pub original: Option<String>,
}

/// The search rows of a (stitched) entity, in document order, then the special keys.
pub fn search_rows(entity: &Value) -> Vec<SearchRow> {
    let mut raw: Vec<(String, Option<String>)> = Vec::new();
    visit("", entity, &mut raw);

    let metadata = entity.get("metadata");
    let field = |name: &str| metadata.and_then(|m| m.get(name));
    raw.push(("metadata.name".into(), field("name").and_then(scalar_text)));
    let namespace = field("namespace").and_then(scalar_text);
    let namespace_missing = namespace.as_deref().is_none_or(str::is_empty);
    if namespace.is_some() {
        raw.push(("metadata.namespace".into(), namespace));
    }
    if namespace_missing {
        raw.push(("metadata.namespace".into(), Some("default".into())));
    }
    raw.push(("metadata.uid".into(), field("uid").and_then(scalar_text)));

    let mut seen = HashSet::new();
    let mut rows = Vec::with_capacity(raw.len());
    for (raw_key, raw_value) in raw {
        let key = raw_key.to_lowercase();
        if key.is_empty() || key.chars().count() > MAX_KEY_LENGTH {
            continue;
        }
        let (value, original) = match raw_value {
            Some(original) => {
                let value = original.to_lowercase();
                if value.chars().count() > MAX_VALUE_LENGTH {
                    (None, None)
                } else {
                    (Some(value), Some(original))
                }
            }
            None => (None, None),
        };
        if seen.insert((key.clone(), value.clone())) {
            rows.push(SearchRow {
                key,
                value,
                original,
            });
        }
    }
    rows
}

/// Walks `node` at `path`, pushing `(raw key, raw value)` pairs.
fn visit(path: &str, node: &Value, out: &mut Vec<(String, Option<String>)>) {
    if EXCLUDED_PATHS.contains(&path) {
        return;
    }
    match node {
        Value::Null => out.push((path.to_owned(), None)),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            out.push((path.to_owned(), scalar_text(node)));
        }
        Value::Array(items) => {
            for item in items {
                visit(path, item, out);
                if let Value::String(text) = item {
                    out.push((format!("{path}.{text}"), Some("true".to_owned())));
                }
            }
        }
        Value::Object(map) => {
            for (key, value) in map {
                if path.is_empty() {
                    visit(key, value, out);
                } else {
                    visit(&format!("{path}.{key}"), value, out);
                }
            }
        }
    }
}

/// The text of a primitive as the search rows and predicates compare it (not yet
/// lower-cased): strings as they are, booleans as `true`/`false`, numbers as JSON text
/// with integral values written without a fraction (`1.0` → `1`, as JavaScript's
/// `String(n)`). `None` for null, lists and objects.
pub fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number_text(number)),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn number_text(number: &Number) -> String {
    if number.is_i64() || number.is_u64() {
        return number.to_string();
    }
    match number.as_f64() {
        Some(float) if float.is_finite() && float.fract() == 0.0 && float.abs() < 1e21 => {
            // `+ 0.0` turns -0 into 0, as JavaScript prints it.
            format!("{:.0}", float + 0.0)
        }
        _ => number.to_string(),
    }
}
