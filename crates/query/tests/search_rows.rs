//! Search rows, entity-model.md §10.7, on the worked example of §12.

use cadastre_query::search_rows::{MAX_KEY_LENGTH, MAX_VALUE_LENGTH, scalar_text};
use cadastre_query::{SearchRow, search_rows};
use serde_json::{Value, json};

fn example() -> Value {
    json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {
            "name": "artist-web",
            "namespace": "music",
            "tags": ["java", "Web"],
            "annotations": {
                "backstage.io/managed-by-location": "url:https://github.com/acme/repo/tree/main/catalog-info.yaml",
                "backstage.io/orphan": "true"
            },
            "links": [{"url": "https://example.com", "title": "Home"}],
            "uid": "3f1c0b7e-8a51-4d8e-9b0e-1c2d3e4f5a6b",
            "etag": "abc"
        },
        "spec": {
            "type": "website", "lifecycle": "production", "owner": "artist-relations",
            "providesApis": ["artist-api"], "replicas": 3, "ratio": 1.5, "whole": 2.0,
            "public": true, "retired": null
        },
        "relations": [{"type": "ownedBy", "targetRef": "group:music/artist-relations"}],
        "status": {"items": [{"type": "x", "level": "error"}]},
        "attachments": {"a": 1}
    })
}

fn get<'a>(rows: &'a [SearchRow], key: &str) -> Vec<&'a SearchRow> {
    rows.iter().filter(|row| row.key == key).collect()
}

fn value<'a>(rows: &'a [SearchRow], key: &str) -> Vec<Option<&'a str>> {
    get(rows, key)
        .iter()
        .map(|row| row.value.as_deref())
        .collect()
}

#[test]
fn flattens_leaves_lower_cased() {
    let rows = search_rows(&example());
    assert_eq!(value(&rows, "apiversion"), [Some("backstage.io/v1alpha1")]);
    assert_eq!(value(&rows, "kind"), [Some("component")]);
    assert_eq!(get(&rows, "kind")[0].original.as_deref(), Some("Component"));
    assert_eq!(value(&rows, "spec.owner"), [Some("artist-relations")]);
    assert_eq!(value(&rows, "spec.replicas"), [Some("3")]);
    assert_eq!(value(&rows, "spec.ratio"), [Some("1.5")]);
    assert_eq!(value(&rows, "spec.whole"), [Some("2")]);
    assert_eq!(value(&rows, "spec.public"), [Some("true")]);
    assert_eq!(value(&rows, "spec.retired"), [None]);
    assert_eq!(get(&rows, "spec.retired")[0].original, None);
    assert_eq!(
        value(&rows, "metadata.annotations.backstage.io/orphan"),
        [Some("true")]
    );
    assert_eq!(value(&rows, "metadata.etag"), [Some("abc")]);
}

#[test]
fn lists_give_values_and_item_keys() {
    let rows = search_rows(&example());
    assert_eq!(value(&rows, "metadata.tags"), [Some("java"), Some("web")]);
    assert_eq!(value(&rows, "metadata.tags.java"), [Some("true")]);
    assert_eq!(value(&rows, "metadata.tags.web"), [Some("true")]);
    assert_eq!(value(&rows, "spec.providesapis.artist-api"), [Some("true")]);
    // Objects in lists: the path has no index.
    assert_eq!(
        value(&rows, "metadata.links.url"),
        [Some("https://example.com")]
    );
    assert_eq!(
        get(&rows, "metadata.links.title")[0].original.as_deref(),
        Some("Home")
    );
}

#[test]
fn status_attachments_and_relations_are_excluded() {
    let rows = search_rows(&example());
    for row in &rows {
        for excluded in ["status", "attachments", "relations"] {
            assert!(!row.key.starts_with(excluded), "{row:?}");
        }
    }
}

#[test]
fn name_namespace_and_uid_are_always_present() {
    let rows = search_rows(&example());
    assert_eq!(value(&rows, "metadata.name"), [Some("artist-web")]);
    assert_eq!(value(&rows, "metadata.namespace"), [Some("music")]);
    assert_eq!(
        value(&rows, "metadata.uid"),
        [Some("3f1c0b7e-8a51-4d8e-9b0e-1c2d3e4f5a6b")]
    );

    let rows = search_rows(&json!({"kind": "User", "metadata": {"name": "Jane"}}));
    assert_eq!(value(&rows, "metadata.name"), [Some("jane")]);
    assert_eq!(value(&rows, "metadata.namespace"), [Some("default")]);
    assert_eq!(value(&rows, "metadata.uid"), [None]);

    let rows = search_rows(&json!({}));
    assert_eq!(value(&rows, "metadata.name"), [None]);
    assert_eq!(value(&rows, "metadata.namespace"), [Some("default")]);
    assert_eq!(value(&rows, "metadata.uid"), [None]);
}

#[test]
fn long_keys_are_dropped_and_long_values_lose_their_value() {
    let long_key = "k".repeat(MAX_KEY_LENGTH); // "metadata.annotations." + 200 > 200
    let just_fits = "a".repeat(MAX_KEY_LENGTH - "spec.".len());
    let long_value = "V".repeat(MAX_VALUE_LENGTH + 1);
    let max_value = "V".repeat(MAX_VALUE_LENGTH);
    let rows = search_rows(&json!({
        "metadata": {"name": "x", "annotations": {long_key.clone(): "v"}},
        "spec": {just_fits.clone(): "v", "long": long_value, "max": max_value.clone()},
    }));
    assert!(
        rows.iter()
            .all(|row| row.key.chars().count() <= MAX_KEY_LENGTH)
    );
    assert!(get(&rows, &format!("metadata.annotations.{long_key}")).is_empty());
    assert_eq!(value(&rows, &format!("spec.{just_fits}")), [Some("v")]);
    assert_eq!(value(&rows, "spec.long"), [None]);
    assert_eq!(get(&rows, "spec.long")[0].original, None);
    assert_eq!(
        value(&rows, "spec.max"),
        [Some(max_value.to_lowercase().as_str())]
    );
    assert_eq!(
        get(&rows, "spec.max")[0].original.as_deref(),
        Some(max_value.as_str())
    );
}

#[test]
fn identical_rows_are_kept_once_with_the_first_original() {
    let rows = search_rows(&json!({
        "metadata": {"name": "x", "tags": ["Java", "java", "JAVA"]},
    }));
    let tags = get(&rows, "metadata.tags");
    assert_eq!(tags.len(), 1);
    assert_eq!(tags[0].original.as_deref(), Some("Java"));
    assert_eq!(get(&rows, "metadata.tags.java").len(), 1);
    let mut keys: Vec<_> = rows.iter().map(|r| (&r.key, &r.value)).collect();
    let before = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), before);
}

#[test]
fn keys_keep_their_case_insensitive_form() {
    let rows = search_rows(&json!({"metadata": {"name": "x", "labels": {"Team": "A"}}}));
    assert_eq!(value(&rows, "metadata.labels.team"), [Some("a")]);
}

#[test]
fn scalar_text_follows_javascript_for_numbers() {
    assert_eq!(scalar_text(&json!(3)).as_deref(), Some("3"));
    assert_eq!(scalar_text(&json!(-3)).as_deref(), Some("-3"));
    assert_eq!(scalar_text(&json!(3.0)).as_deref(), Some("3"));
    assert_eq!(scalar_text(&json!(-0.0)).as_deref(), Some("0"));
    assert_eq!(scalar_text(&json!(0.25)).as_deref(), Some("0.25"));
    assert_eq!(scalar_text(&json!(false)).as_deref(), Some("false"));
    assert_eq!(scalar_text(&json!("Mixed")).as_deref(), Some("Mixed"));
    assert_eq!(scalar_text(&json!(null)), None);
    assert_eq!(scalar_text(&json!([])), None);
}
