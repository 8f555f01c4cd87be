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
use std::hash::{Hash, Hasher};

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
///
/// The store derives them for every entity it writes, so the walk keeps one path buffer
/// and allocates only what a row keeps (its key, value and original value).
pub fn search_rows(entity: &Value) -> Vec<SearchRow> {
    let mut rows = Rows::default();
    let mut path = String::new();
    visit(&mut path, entity, &mut rows);

    let metadata = entity.get("metadata");
    let field = |name: &str| metadata.and_then(|m| m.get(name));
    rows.push("metadata.name", field("name").and_then(scalar_text));
    let namespace = field("namespace").and_then(scalar_text);
    let namespace_missing = namespace.as_deref().is_none_or(str::is_empty);
    if namespace.is_some() {
        rows.push("metadata.namespace", namespace);
    }
    if namespace_missing {
        rows.push("metadata.namespace", Some("default".into()));
    }
    rows.push("metadata.uid", field("uid").and_then(scalar_text));
    rows.rows
}

/// The rows so far, each `(key, value)` kept once: a set of their hashes finds the (rare)
/// repeat without a copy of every pair.
#[derive(Default)]
struct Rows {
    rows: Vec<SearchRow>,
    seen: HashSet<u64>,
}

impl Rows {
    /// Adds the row of `raw_key` (the path as written) and `raw_value` (not yet lower-cased),
    /// unless its key or value is out of bounds or the same row is already there.
    fn push(&mut self, raw_key: &str, raw_value: Option<String>) {
        let key = lower_case(raw_key);
        if key.is_empty() || longer_than(&key, MAX_KEY_LENGTH) {
            return;
        }
        let (value, original) = match raw_value {
            Some(original) => {
                let value = lower_case(&original);
                if longer_than(&value, MAX_VALUE_LENGTH) {
                    (None, None)
                } else {
                    (Some(value), Some(original))
                }
            }
            None => (None, None),
        };
        let mut hasher = std::hash::DefaultHasher::new();
        (&key, &value).hash(&mut hasher);
        let repeat = !self.seen.insert(hasher.finish())
            && self
                .rows
                .iter()
                .any(|row| row.key == key && row.value == value);
        if !repeat {
            self.rows.push(SearchRow {
                key,
                value,
                original,
            });
        }
    }
}

/// `text` lower-cased; ASCII (nearly every key and value) without Unicode's tables.
fn lower_case(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

fn longer_than(text: &str, limit: usize) -> bool {
    text.len() > limit && text.chars().count() > limit
}

/// Walks `node` at `path` (the path as written, restored before returning), pushing its rows.
fn visit(path: &mut String, node: &Value, out: &mut Rows) {
    if EXCLUDED_PATHS.contains(&path.as_str()) {
        return;
    }
    match node {
        Value::Null => out.push(path, None),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => out.push(path, scalar_text(node)),
        Value::Array(items) => {
            for item in items {
                visit(path, item, out);
                if let Value::String(text) = item {
                    let len = path.len();
                    path.push('.');
                    path.push_str(text);
                    out.push(path, Some("true".to_owned()));
                    path.truncate(len);
                }
            }
        }
        Value::Object(map) => {
            for (key, value) in map {
                let len = path.len();
                if len > 0 {
                    path.push('.');
                }
                path.push_str(key);
                visit(path, value, out);
                path.truncate(len);
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
