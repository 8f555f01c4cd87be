//! On PostgreSQL, filters on the keys of the search documents read `entity_facts`: a row per
//! (key, value) pair an entity's document holds, `(entity_id, key_hash, value_hash)`, indexed
//! by `(key_hash, value_hash, entity_id)` for filters (a key's existence is a range of that
//! index, one value a point in it) and by `entity_id` first for the writer.
//!
//! Why not a GIN index of the documents, as before (migration m0017): an update writes a new
//! version of the document's row, and a GIN index takes an entry for each of its twenty-odd
//! keys and values again, however little changed. At a million entities, 1,000 updates of a
//! description took 57-72 ms with the two GIN indexes (17 ms without), and merging their
//! pending entries into the indexes took another 180-450 ms of a core. Here an update writes
//! only the facts that changed: a new description is one row deleted and one inserted. That
//! is the write amplification that slows Backstage's key/value search table, which replaces
//! every row of an entity on each change.
//!
//! Each document row also keeps its facts, packed (`entity_documents.facts`), so the writer
//! learns what to delete from the row it replaces instead of reading the facts table.
//!
//! Hashes are the first eight bytes of SHA-256: a different (key, value) with the same hashes
//! would make an entity match a filter it should not, and finding one for a given value is a
//! second preimage of 64 bits of SHA-256, not a birthday search. A null value (or one too long
//! to index: the document holds null for it too) has hash 0 and matches only existence.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::sql::Sql;
use crate::{Result, StoreError};

/// A (key hash, value hash) pair.
pub(crate) type Fact = (i64, i64);

/// The value hash of a null value.
const NULL_VALUE: i64 = 0;

/// Bytes a fact takes packed: two big-endian 64-bit integers.
const PACKED: usize = 16;

/// The hash a key or value is stored and looked up by.
pub(crate) fn hash(text: &str) -> i64 {
    let digest = Sha256::digest(text.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The facts of one search document, sorted and without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts(Vec<Fact>);

impl Facts {
    /// The facts of a search document: each key with each of its values (an array of strings
    /// and nulls, as the store writes them).
    pub(crate) fn of_document(document: &Map<String, Value>) -> Facts {
        Facts::of_keys(
            document.iter().map(|(key, values)| {
                let values = values.as_array().map(Vec::as_slice).unwrap_or_default();
                (key.as_str(), values.iter().map(Value::as_str))
            }),
            document.len(),
        )
    }

    /// The facts of `keys`, each with its values (`None` for null); a key without values has
    /// the null one.
    pub(crate) fn of_keys<'a, V: Iterator<Item = Option<&'a str>>>(
        keys: impl Iterator<Item = (&'a str, V)>,
        count: usize,
    ) -> Facts {
        let mut facts = Vec::with_capacity(count + count / 2);
        for (key, values) in keys {
            let key_hash = hash(key);
            let before = facts.len();
            facts.extend(values.map(|value| (key_hash, value.map_or(NULL_VALUE, hash))));
            if facts.len() == before {
                facts.push((key_hash, NULL_VALUE));
            }
        }
        facts.sort_unstable();
        facts.dedup();
        Facts(facts)
    }

    /// Packed, as `entity_documents.facts` holds them.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.0.len() * PACKED);
        for (key_hash, value_hash) in &self.0 {
            bytes.extend_from_slice(&key_hash.to_be_bytes());
            bytes.extend_from_slice(&value_hash.to_be_bytes());
        }
        bytes
    }

    /// From their packed form.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Facts> {
        if !bytes.len().is_multiple_of(PACKED) {
            return Err(StoreError::Corrupt(format!(
                "packed facts of {} bytes, not a multiple of {PACKED}",
                bytes.len()
            )));
        }
        let integer = |part: &[u8]| {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(part);
            i64::from_be_bytes(eight)
        };
        let mut facts: Vec<Fact> = bytes
            .chunks_exact(PACKED)
            .map(|fact| (integer(&fact[..8]), integer(&fact[8..])))
            .collect();
        facts.sort_unstable();
        facts.dedup();
        Ok(Facts(facts))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = Fact> + '_ {
        self.0.iter().copied()
    }

    /// What going from `self` to `new` deletes and inserts: `(gone, came)`.
    pub(crate) fn changes_to(&self, new: &Facts) -> (Vec<Fact>, Vec<Fact>) {
        let (mut gone, mut came) = (Vec::new(), Vec::new());
        let (mut old, mut new) = (self.0.iter().peekable(), new.0.iter().peekable());
        loop {
            match (old.peek(), new.peek()) {
                (Some(a), Some(b)) if a == b => {
                    old.next();
                    new.next();
                }
                (Some(a), Some(b)) if a < b => gone.extend(old.next()),
                (Some(_), Some(_)) | (None, Some(_)) => came.extend(new.next()),
                (Some(_), None) => gone.extend(old.next()),
                (None, None) => return (gone, came),
            }
        }
    }
}

/// Fact rows of entities: `(entity id, fact)`.
pub(crate) type FactRows = Vec<(i64, Fact)>;

/// Appends `unnest(…) AS name(entity_id, key_hash, value_hash)` of `rows`: three arrays, each
/// bound as one text value, so a statement carries any number of rows in three parameters.
fn push_unnest(sql: &mut Sql, rows: &[(i64, Fact)], name: &str) {
    let mut columns = [String::from("{"), String::from("{"), String::from("{")];
    for (index, (entity_id, (key_hash, value_hash))) in rows.iter().enumerate() {
        for (column, value) in columns.iter_mut().zip([entity_id, key_hash, value_hash]) {
            if index > 0 {
                column.push(',');
            }
            column.push_str(&value.to_string());
        }
    }
    sql.push("unnest(");
    for (index, mut column) in columns.into_iter().enumerate() {
        column.push('}');
        if index > 0 {
            sql.push(", ");
        }
        sql.bind(column).push("::bigint[]");
    }
    sql.push(") AS ")
        .push(name)
        .push("(entity_id, key_hash, value_hash)");
}

/// `INSERT` of `rows` into `entity_facts`.
pub(crate) fn insert_statement(sql: &mut Sql, rows: &[(i64, Fact)]) {
    sql.push("INSERT INTO entity_facts (entity_id, key_hash, value_hash) SELECT * FROM ");
    push_unnest(sql, rows, "n");
}

/// `DELETE` of `rows` from `entity_facts`.
pub(crate) fn delete_statement(sql: &mut Sql, rows: &[(i64, Fact)]) {
    sql.push("DELETE FROM entity_facts f USING ");
    push_unnest(sql, rows, "g");
    sql.push(
        " WHERE f.entity_id = g.entity_id AND f.key_hash = g.key_hash AND f.value_hash = g.value_hash",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn document(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn a_document_has_a_fact_per_key_and_value() {
        let facts = Facts::of_document(&document(json!({
            "kind": ["component"],
            "metadata.tags": ["go", "java", "go"],
            "metadata.description": [null],
        })));
        let mut expected = vec![
            (hash("kind"), hash("component")),
            (hash("metadata.tags"), hash("go")),
            (hash("metadata.tags"), hash("java")),
            (hash("metadata.description"), NULL_VALUE),
        ];
        expected.sort_unstable();
        assert_eq!(facts, Facts(expected));
        // Key and value are hashed apart: a key's facts share its hash.
        assert_ne!(hash("kind"), hash("component"));
    }

    #[test]
    fn packing_keeps_the_facts() {
        let facts = Facts::of_document(&document(json!({"a": ["x", null], "b": ["y"]})));
        assert_eq!(Facts::from_bytes(&facts.to_bytes()).unwrap(), facts);
        assert_eq!(Facts::from_bytes(&[]).unwrap(), Facts::default());
        assert!(matches!(
            Facts::from_bytes(&[0; 15]),
            Err(StoreError::Corrupt(message)) if message.contains("15 bytes")
        ));
    }

    #[test]
    fn changes_are_what_differs() {
        let old = Facts(vec![(1, 1), (1, 2), (2, 5), (4, 0)]);
        let new = Facts(vec![(1, 2), (2, 6), (3, 1), (4, 0), (5, 5)]);
        assert_eq!(
            old.changes_to(&new),
            (vec![(1, 1), (2, 5)], vec![(2, 6), (3, 1), (5, 5)])
        );
        assert_eq!(old.changes_to(&old), (vec![], vec![]));
        assert_eq!(Facts::default().changes_to(&old), (vec![], old.0.clone()));
        assert_eq!(old.changes_to(&Facts::default()), (old.0.clone(), vec![]));
    }

    #[test]
    fn rows_travel_as_three_arrays() {
        let mut sql = Sql::new(sea_orm::DbBackend::Postgres);
        insert_statement(&mut sql, &[(7, (1, -2)), (8, (3, 4))]);
        let (text, values) = sql.into_parts();
        assert_eq!(
            text,
            "INSERT INTO entity_facts (entity_id, key_hash, value_hash) SELECT * FROM \
             unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS n(entity_id, key_hash, value_hash)"
        );
        let texts: Vec<String> = values
            .into_iter()
            .map(|value| match value {
                sea_orm::Value::String(Some(text)) => text,
                other => panic!("not text: {other:?}"),
            })
            .collect();
        assert_eq!(texts, ["{7,8}", "{1,3}", "{-2,4}"]);
    }
}
