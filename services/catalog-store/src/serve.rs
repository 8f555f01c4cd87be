//! Serving an entity: the stored body with `metadata.uid`, `metadata.etag` and its outgoing
//! relations (sorted by type, then target), assembled when read.
//!
//! Relations are kept as rows, not inside bodies, so a popular group or API is not rewritten
//! each time another entity starts or stops pointing at it.
//!
//! Assembly runs on every read of an entity (a by-name lookup is mostly this and the read), so
//! it splices text: the stored body is serde_json's compact output, its members are copied as
//! they are and the new ones written after them. Parsing the body into a `Value` and printing
//! it again gave the same bytes and was a tenth of a lookup's CPU, most of it allocations.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The body as served, from the stored body text.
pub fn served_body(
    stored: &str,
    uid: &str,
    etag: &str,
    relations: Vec<(String, String)>,
) -> Result<String, serde_json::Error> {
    served_body_as(stored, uid, etag, relations, false)
}

/// [`served_body`], marking an orphan with `backstage.io/orphan: "true"` as Backstage does.
pub fn served_body_as(
    stored: &str,
    uid: &str,
    etag: &str,
    mut relations: Vec<(String, String)>,
    orphan: bool,
) -> Result<String, serde_json::Error> {
    relations.sort();
    relations.dedup();
    if !orphan && let Some(served) = spliced(stored, uid, etag, &relations) {
        return Ok(served);
    }
    through_value(stored, uid, etag, relations, orphan)
}

/// The served body by splicing text; `None` when the body is not the plain shape that allows
/// it (not an object, metadata not an object, a repeated member), which [`through_value`]
/// then serves.
fn spliced(stored: &str, uid: &str, etag: &str, relations: &[(String, String)]) -> Option<String> {
    let body: Members = serde_json::from_str(stored).ok()?;
    let mut out =
        Vec::with_capacity(stored.len() + uid.len() + etag.len() + 64 * relations.len() + 48);
    out.push(b'{');
    let mut relations_written = false;
    for (index, (key, value)) in body.0.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_key(&mut out, key);
        match key.as_ref() {
            "metadata" => {
                let metadata: Members = serde_json::from_str(value.get()).ok()?;
                metadata.write_with(&mut out, &[("uid", uid), ("etag", etag)]);
            }
            "relations" if !relations.is_empty() => {
                write_relations(&mut out, relations);
                relations_written = true;
            }
            _ => out.extend_from_slice(value.get().as_bytes()),
        }
    }
    if !relations.is_empty() && !relations_written {
        if !body.0.is_empty() {
            out.push(b',');
        }
        write_key(&mut out, "relations");
        write_relations(&mut out, relations);
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// [`served_body_as`] through a parsed `Value`: for orphans (an annotation added inside
/// `metadata.annotations`) and bodies [`spliced`] does not take.
fn through_value(
    stored: &str,
    uid: &str,
    etag: &str,
    relations: Vec<(String, String)>,
    orphan: bool,
) -> Result<String, serde_json::Error> {
    let mut value: Value = serde_json::from_str(stored)?;
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.insert("uid".into(), Value::String(uid.to_owned()));
        metadata.insert("etag".into(), Value::String(etag.to_owned()));
        if orphan {
            let annotations = metadata
                .entry("annotations")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(annotations) = annotations.as_object_mut() {
                annotations.insert(
                    cadastre_model::entity::annotations::ORPHAN.into(),
                    Value::String("true".into()),
                );
            }
        }
    }
    if let Some(object) = value.as_object_mut()
        && !relations.is_empty()
    {
        let list = relations
            .into_iter()
            .map(|(relation_type, target)| json!({"type": relation_type, "targetRef": target}))
            .collect();
        object.insert("relations".into(), Value::Array(list));
    }
    Ok(value.to_string())
}

/// An object's members in order, their values as text.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl Members<'_> {
    /// Writes the object with `set` members: each replaces the member of its name where it is,
    /// or is added at the end, in order (as `serde_json::Map::insert` keeps them).
    fn write_with(&self, out: &mut Vec<u8>, set: &[(&str, &str)]) {
        out.push(b'{');
        let mut first = true;
        let mut comma = |out: &mut Vec<u8>| {
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
        };
        for (key, value) in &self.0 {
            comma(out);
            write_key(out, key);
            match set.iter().find(|(name, _)| name == key) {
                Some((_, text)) => write_str(out, text),
                None => out.extend_from_slice(value.get().as_bytes()),
            }
        }
        for (name, text) in set {
            if !self.0.iter().any(|(key, _)| key == name) {
                comma(out);
                write_key(out, name);
                write_str(out, text);
            }
        }
        out.push(b'}');
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<'de>, A::Error> {
                let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::with_capacity(8);
                while let Some(Key(key)) = map.next_key()? {
                    if members.iter().any(|(seen, _)| *seen == key) {
                        // A parsed `Value` keeps the last of repeated members, in the first's
                        // place: leave that to `through_value`.
                        return Err(serde::de::Error::custom("repeated member"));
                    }
                    members.push((key, map.next_value()?));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// A member's name, borrowed from the text unless it holds escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
                formatter.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

fn write_key(out: &mut Vec<u8>, key: &str) {
    write_str(out, key);
    out.push(b':');
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing into a Vec cannot fail; serde_json escapes exactly as `Value::to_string` does.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn write_relations(out: &mut Vec<u8>, relations: &[(String, String)]) {
    out.push(b'[');
    for (index, (relation_type, target)) in relations.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"type\":");
        write_str(out, relation_type);
        out.extend_from_slice(b",\"targetRef\":");
        write_str(out, target);
        out.push(b'}');
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_ids_and_sorted_unique_relations() {
        let stored = r#"{"kind":"Group","metadata":{"name":"a","namespace":"default"},"spec":{}}"#;
        let relations = vec![
            ("ownerOf".to_owned(), "component:default/z".to_owned()),
            ("childOf".to_owned(), "group:default/root".to_owned()),
            ("ownerOf".to_owned(), "component:default/z".to_owned()),
        ];
        let served: Value =
            serde_json::from_str(&served_body(stored, "u-1", "e-1", relations).unwrap()).unwrap();
        assert_eq!(served["metadata"]["uid"], "u-1");
        assert_eq!(served["metadata"]["etag"], "e-1");
        assert_eq!(
            served["relations"],
            json!([{"type": "childOf", "targetRef": "group:default/root"}, {"type": "ownerOf", "targetRef": "component:default/z"}])
        );
        let bare: Value =
            serde_json::from_str(&served_body(stored, "u", "e", vec![]).unwrap()).unwrap();
        assert!(bare.get("relations").is_none());
    }

    /// Both ways of serving, byte for byte, for `stored` with and without relations.
    fn assert_same(stored: &str) {
        let relations = vec![
            ("ownedBy".to_owned(), "group:default/team-\"a\"".to_owned()),
            ("dependsOn".to_owned(), "resource:default/db-é".to_owned()),
            ("dependsOn".to_owned(), "resource:default/db-é".to_owned()),
        ];
        for relations in [Vec::new(), relations] {
            let fast = served_body_as(stored, "u-1", "e\\1", relations.clone(), false);
            let slow = through_value(stored, "u-1", "e\\1", dedup(relations), false);
            match (fast, slow) {
                (Ok(fast), Ok(slow)) => assert_eq!(fast, slow, "{stored}"),
                (fast, slow) => assert_eq!(fast.is_err(), slow.is_err(), "{stored}"),
            }
        }
    }

    fn dedup(mut relations: Vec<(String, String)>) -> Vec<(String, String)> {
        relations.sort();
        relations.dedup();
        relations
    }

    #[test]
    fn splicing_serves_what_a_parsed_value_serves() {
        let organisation = cadastre_synth::Organisation::new(7, 2_000);
        for index in 0..organisation.len() {
            let stored = organisation.entity(index).to_string();
            assert!(spliced(&stored, "u", "e", &[]).is_some(), "{stored}");
            assert_same(&stored);
        }
        // Bodies as the writer stores them: `Value::to_string()`.
        for body in [
            json!({}),
            json!({"metadata": {}}),
            json!({"kind": "A", "metadata": {"uid": "old", "name": "x", "etag": "old"},
                "relations": [1], "spec": {"n": 1.5e300, "m": -0.0, "list": [{"a\"b": "é\n\u{1}"}]}}),
            json!({"relations": [], "metadata": {"name": "x"}}),
            json!({"kind": "A", "metadata": "not an object"}),
        ] {
            assert_same(&body.to_string());
        }
        // Text the writer does not store, which splicing must leave to a parsed value.
        for stored in [
            r#"{"kind":"A","kind":"B","metadata":{"name":"x"}}"#,
            r#"{"kind":"A","metadata":{"name":"x","name":"y"}}"#,
            r#"{"k\u0069nd":"A","metadata":{"na\"me":"x"}}"#,
            r#"["not", "an", "object"]"#,
            r#"{"kind":"A""#,
        ] {
            assert_same(stored);
        }
    }

    #[test]
    fn orphans_are_marked() {
        let stored = r#"{"kind":"A","metadata":{"name":"x","annotations":{"a":"b"}}}"#;
        let served: Value =
            serde_json::from_str(&served_body_as(stored, "u", "e", vec![], true).unwrap()).unwrap();
        assert_eq!(
            served["metadata"]["annotations"],
            json!({"a": "b", "backstage.io/orphan": "true"})
        );
    }
}
