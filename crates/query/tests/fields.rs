//! `fields` projection, catalog-api.md §2.3.

use cadastre_query::{Projection, QueryError};
use serde_json::{Value, json};

fn entity() -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "artist-web",
            "namespace": "music",
            "tags": ["java"],
            "annotations": {
                "backstage.io/techdocs-ref": "dir:.",
                "backstage.io/view-url": "https://example.com/x"
            }
        },
        "spec": {"type": "website", "owner": "team-a"},
        "relations": [{"type": "ownedBy", "targetRef": "group:music/team-a"}]
    })
}

fn project(params: &[&str]) -> Value {
    Projection::parse(params).unwrap().apply(&entity())
}

#[test]
fn keeps_listed_values_and_subtrees() {
    assert_eq!(
        project(&["kind,metadata.name,metadata.annotations"]),
        json!({
            "kind": "Component",
            "metadata": {
                "name": "artist-web",
                "annotations": {
                    "backstage.io/techdocs-ref": "dir:.",
                    "backstage.io/view-url": "https://example.com/x"
                }
            }
        })
    );
}

#[test]
fn keys_containing_dots_are_matched_against_real_keys() {
    assert_eq!(
        project(&["metadata.annotations.backstage.io/techdocs-ref"]),
        json!({"metadata": {"annotations": {"backstage.io/techdocs-ref": "dir:."}}})
    );
}

#[test]
fn the_parameter_repeats_and_paths_are_trimmed() {
    assert_eq!(
        project(&[" kind ", "spec.type, ,metadata.name", ""]),
        json!({"kind": "Component", "spec": {"type": "website"}, "metadata": {"name": "artist-web"}})
    );
}

#[test]
fn missing_paths_are_omitted() {
    assert_eq!(
        project(&["kind,spec.lifecycle,metadata.annotations.nope,nothing.at.all"]),
        json!({"kind": "Component"})
    );
    assert_eq!(project(&["spec.lifecycle"]), json!({}));
}

#[test]
fn paths_do_not_step_into_lists() {
    assert_eq!(project(&["metadata.tags.0"]), json!({}));
    assert_eq!(
        project(&["metadata.tags"]),
        json!({"metadata": {"tags": ["java"]}})
    );
    assert_eq!(
        project(&["relations"]),
        json!({"relations": [{"type": "ownedBy", "targetRef": "group:music/team-a"}]})
    );
}

#[test]
fn overlapping_paths_keep_the_larger_subtree() {
    let whole = json!({"spec": {"type": "website", "owner": "team-a"}});
    assert_eq!(project(&["spec.type,spec"]), whole);
    assert_eq!(project(&["spec,spec.type"]), whole);
}

#[test]
fn a_shorter_key_that_leads_nowhere_falls_back_to_a_longer_one() {
    let entity = json!({"a": {"x": 1}, "a.b": {"c": 2}});
    let projection = Projection::parse(&["a.b.c"]).unwrap();
    assert_eq!(projection.apply(&entity), json!({"a.b": {"c": 2}}));
    // The shortest key wins when both resolve.
    let entity = json!({"a": {"b": 1}, "a.b": 2});
    assert_eq!(
        Projection::parse(&["a.b"]).unwrap().apply(&entity),
        json!({"a": {"b": 1}})
    );
}

#[test]
fn keys_are_case_sensitive() {
    assert_eq!(project(&["Kind"]), json!({}));
}

#[test]
fn empty_projection_keeps_everything() {
    assert_eq!(project(&[]), entity());
    assert_eq!(project(&[" , ", ""]), entity());
    assert!(Projection::parse(&[]).unwrap().is_empty());
    assert!(Projection::everything().is_empty());
}

#[test]
fn array_indexing_is_rejected() {
    let error = Projection::parse(&["kind", "metadata.tags[0]"]).unwrap_err();
    assert_eq!(error, QueryError::FieldsIndexing("metadata.tags[0]".into()));
    assert_eq!(
        error.to_string(),
        "fields path \"metadata.tags[0]\" contains \"[\": array indexing is not supported"
    );
}

#[test]
fn adversarial_paths_stay_fast() {
    // Keys "a", "a.a", "a.a.a", … at every level and a long path that never resolves.
    fn level(depth: usize) -> Value {
        let mut map = serde_json::Map::new();
        if depth > 0 {
            for width in 1..=4 {
                map.insert(vec!["a"; width].join("."), level(depth - 1));
            }
        }
        Value::Object(map)
    }
    let entity = level(6);
    let path = format!("{}.missing", vec!["a"; 40].join("."));
    let projection = Projection::parse(&[&path]).unwrap();
    assert_eq!(projection.apply(&entity), json!({}));
    let found = Projection::parse(&["a.a.a.a.a.a.a.a.a.a"]).unwrap();
    assert!(found.apply(&entity).is_object());
}

#[test]
fn knows_whether_relations_can_be_in_the_answer() {
    let keeps = |fields: &[&str]| Projection::parse(fields).unwrap().keeps_relations();
    assert!(keeps(&[]));
    assert!(keeps(&["kind,relations"]));
    assert!(keeps(&["metadata.name", "relations.type"]));
    assert!(!keeps(&["apiVersion,kind,metadata,spec"]));
    assert!(!keeps(&["relationsExtra"]));
}
