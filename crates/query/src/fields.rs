//! Response projection with `fields` (`shared/spec/catalog-api.md` §2.3).
//!
//! `fields` holds comma-separated dotted paths and may be repeated (`fields=kind,metadata.name`
//! `&fields=spec`). Each path keeps that value or subtree of the entity; everything else is
//! dropped. Paths that do not exist are omitted. Paths containing `[` are rejected: there is
//! no array indexing (nor does a path step into lists).
//!
//! Keys may themselves contain dots (`backstage.io/techdocs-ref`), so a path's segments are
//! matched against the real keys: at each level the shortest run of segments naming an
//! existing key is taken (`metadata`, then `annotations`, then `backstage` does not exist
//! but `backstage.io/techdocs-ref` does), and longer runs are tried when the rest of the
//! path does not resolve below the shorter one. Keys are case-sensitive, like JSON.
//!
//! A projection without paths keeps the whole entity.

use crate::error::QueryError;
use serde_json::{Map, Value};
use std::collections::HashSet;

/// The `fields` of a request: which parts of each entity to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Projection {
    /// The paths, trimmed and non-empty, in the order given (duplicates removed).
    paths: Vec<String>,
}

impl Projection {
    /// Parses the values of the repeated `fields` parameter (or the `fields` list of a
    /// POST body); each value is a comma-separated list of paths.
    pub fn parse(params: &[&str]) -> Result<Self, QueryError> {
        let mut paths: Vec<String> = Vec::new();
        for path in params.iter().flat_map(|param| param.split(',')) {
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            if path.contains('[') {
                return Err(QueryError::FieldsIndexing(path.to_owned()));
            }
            if !paths.iter().any(|known| known == path) {
                paths.push(path.to_owned());
            }
        }
        Ok(Self { paths })
    }

    /// Keeps everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the projection keeps the whole entity (no paths were given).
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether the projected entity can hold anything of `relations` (so a server must look
    /// them up): the whole entity, or a path into or above them.
    pub fn keeps_relations(&self) -> bool {
        self.is_empty()
            || self
                .paths
                .iter()
                .any(|path| path == "relations" || path.starts_with("relations."))
    }

    /// The paths, as given.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    /// The projected entity: an object with only the listed values and subtrees (an empty
    /// object when none exists), or the entity itself when the projection is empty.
    pub fn apply(&self, entity: &Value) -> Value {
        if self.is_empty() {
            return entity.clone();
        }
        let mut output = Map::new();
        for path in &self.paths {
            let segments: Vec<&str> = path.split('.').collect();
            let mut failed = HashSet::new();
            let Some(keys) = resolve(entity, &segments, 0, &mut failed) else {
                continue;
            };
            let mut node = entity;
            for key in &keys {
                node = &node[key.as_str()];
            }
            insert(&mut output, &keys, node.clone());
        }
        Value::Object(output)
    }
}

/// The real keys naming `segments[start..]` below `node`, shortest key first, or `None`.
/// `failed` remembers `(node, start)` pairs that do not resolve, which keeps adversarial
/// paths over keys like `a`, `a.a`, `a.a.a` polynomial.
fn resolve(
    node: &Value,
    segments: &[&str],
    start: usize,
    failed: &mut HashSet<(usize, usize)>,
) -> Option<Vec<String>> {
    if start == segments.len() {
        return Some(Vec::new());
    }
    let Value::Object(map) = node else {
        return None;
    };
    let memo = (std::ptr::from_ref(node) as usize, start);
    if failed.contains(&memo) {
        return None;
    }
    let mut key = String::new();
    for (end, segment) in segments.iter().enumerate().skip(start) {
        if end > start {
            key.push('.');
        }
        key.push_str(segment);
        if let Some(child) = map.get(&key)
            && let Some(mut rest) = resolve(child, segments, end + 1, failed)
        {
            rest.insert(0, key);
            return Some(rest);
        }
    }
    failed.insert(memo);
    None
}

/// Sets `value` at `keys` in `output`, creating objects on the way. A later path below an
/// already copied subtree finds the objects in place; one above it replaces the subtree by
/// the larger one.
fn insert(output: &mut Map<String, Value>, keys: &[String], value: Value) {
    let Some((last, parents)) = keys.split_last() else {
        return;
    };
    let mut map = output;
    for key in parents {
        let slot = map
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        map = match slot {
            Value::Object(next) => next,
            _ => return,
        };
    }
    map.insert(last.clone(), value);
}
