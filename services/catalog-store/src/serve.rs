//! Serving an entity: the stored body with `metadata.uid`, `metadata.etag` and its outgoing
//! relations (sorted by type, then target), assembled when read.
//!
//! Relations are kept as rows, not inside bodies, so a popular group or API is not rewritten
//! each time another entity starts or stops pointing at it.

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
    relations.sort();
    relations.dedup();
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
}
