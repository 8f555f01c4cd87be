//! Properties over generated input: the parsers never panic, the JSON predicate language
//! round-trips, cursors round-trip, search rows stay within their limits.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cadastre_query::search_rows::scalar_text;
use cadastre_query::search_rows::{MAX_KEY_LENGTH, MAX_VALUE_LENGTH};
use cadastre_query::{
    Condition, Cursor, FullTextFilter, OrderField, Predicate, Projection, cursor, json_predicate,
    legacy_filter, search_rows,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn key() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_/-]{0,6}(\\.[a-z0-9_/-]{1,6}){0,3}"
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9 :/._-]{0,10}"
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        any::<bool>().prop_map(Condition::Exists),
        prop::collection::vec(text(), 0..4).prop_map(Condition::In),
        text().prop_map(Condition::HasPrefix),
    ]
}

/// Predicates as the parsers produce them: lower-case keys and values, relation
/// conditions only on `relations` and with at least one target.
fn predicate() -> impl Strategy<Value = Predicate> {
    let field =
        (key(), condition()).prop_map(|(key, condition)| Predicate::Field { key, condition });
    let relation = (
        "[a-z]{1,10}",
        prop::collection::vec("[a-z]{1,6}:[a-z]{1,6}/[a-z0-9-]{1,8}", 1..4),
    )
        .prop_map(|(relation_type, targets)| Predicate::relation(&relation_type, &targets));
    let leaf = prop_oneof![3 => field, 1 => relation];
    leaf.prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Predicate::All),
            prop::collection::vec(inner.clone(), 0..4).prop_map(Predicate::Any),
            inner.prop_map(|p| Predicate::Not(Box::new(p))),
        ]
    })
}

/// Arbitrary JSON, with keys biased towards the operators of the predicate language.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    let json_key = prop_oneof![
        prop::sample::select(vec![
            "$all",
            "$any",
            "$not",
            "$exists",
            "$in",
            "$hasPrefix",
            "$contains",
            "$nope",
            "relations",
            "type",
            "targetRef",
            "kind",
            "",
            "metadata.name",
        ])
        .prop_map(str::to_owned),
        ".{0,8}",
    ];
    leaf.prop_recursive(5, 64, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((json_key.clone(), inner), 0..4)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Entities: arbitrary JSON under the usual roots, with long keys and values now and then.
fn entity() -> impl Strategy<Value = Value> {
    let long = "[a-zA-ZÄÖİß.]{150,260}";
    (json_value(), json_value(), long, ".{0,30}").prop_map(|(spec, metadata, long, name)| {
        let mut entity = serde_json::json!({
            "kind": "Component",
            "metadata": {"name": name, "annotations": {long.clone(): long.clone()}},
            "spec": spec,
            "extra": metadata,
        });
        entity["metadata"][long.to_uppercase()] = Value::String(long.to_uppercase());
        entity
    })
}

/// The search rows as first written, plainly (a copy of every path and pair): the oracle
/// the store's faster walk must agree with.
fn reference_search_rows(entity: &Value) -> Vec<(String, Option<String>, Option<String>)> {
    fn visit(path: &str, node: &Value, out: &mut Vec<(String, Option<String>)>) {
        let excluded = [
            "status",
            "attachments",
            "relations",
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
        ];
        if excluded.contains(&path) {
            return;
        }
        match node {
            Value::Null => out.push((path.to_owned(), None)),
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
                    let child = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    visit(&child, value, out);
                }
            }
            _ => out.push((path.to_owned(), scalar_text(node))),
        }
    }
    let mut raw = Vec::new();
    visit("", entity, &mut raw);
    let field = |name: &str| entity.get("metadata").and_then(|m| m.get(name));
    raw.push(("metadata.name".into(), field("name").and_then(scalar_text)));
    let namespace = field("namespace").and_then(scalar_text);
    let missing = namespace.as_deref().is_none_or(str::is_empty);
    if namespace.is_some() {
        raw.push(("metadata.namespace".into(), namespace));
    }
    if missing {
        raw.push(("metadata.namespace".into(), Some("default".into())));
    }
    raw.push(("metadata.uid".into(), field("uid").and_then(scalar_text)));
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for (raw_key, raw_value) in raw {
        let key = raw_key.to_lowercase();
        if key.is_empty() || key.chars().count() > MAX_KEY_LENGTH {
            continue;
        }
        let (value, original) = match raw_value {
            Some(original) if original.to_lowercase().chars().count() <= MAX_VALUE_LENGTH => {
                (Some(original.to_lowercase()), Some(original))
            }
            _ => (None, None),
        };
        if seen.insert((key.clone(), value.clone())) {
            rows.push((key, value, original));
        }
    }
    rows
}

proptest! {
    #[test]
    fn legacy_filter_never_panics(filters in prop::collection::vec(".{0,40}", 0..4)) {
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        let _ = legacy_filter::parse(&filters);
    }

    #[test]
    fn legacy_filter_structured_input_gives_lower_case_keys(
        filters in prop::collection::vec("[a-zA-Z.=, ]{0,30}", 0..4)
    ) {
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        if let Ok(predicate) = legacy_filter::parse(&filters) {
            let written = json_predicate::to_json(&predicate).to_string();
            prop_assert_eq!(written.to_lowercase(), written);
            // A legacy filter is always expressible in the predicate language.
            prop_assert_eq!(json_predicate::parse(&json_predicate::to_json(&predicate)).unwrap(), predicate);
        }
    }

    #[test]
    fn every_legacy_filter_survives_a_cursor(filters in prop::collection::vec(".{0,40}", 0..4)) {
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        if let Ok(predicate) = legacy_filter::parse(&filters) {
            prop_assert!(predicate.is_normalized());
            let cursor = Cursor::new(predicate, vec![], None, None);
            prop_assert_eq!(cursor::decode(&cursor.encode()), Ok(cursor));
        }
    }

    #[test]
    fn every_json_predicate_survives_a_cursor(value in json_value()) {
        if let Ok(predicate) = json_predicate::parse(&value) {
            prop_assert!(predicate.is_normalized());
            let cursor = Cursor::new(predicate, vec![], None, None);
            prop_assert_eq!(cursor::decode(&cursor.encode()), Ok(cursor));
        }
    }

    #[test]
    fn json_predicate_never_panics(value in json_value()) {
        let _ = json_predicate::parse(&value);
    }

    #[test]
    fn json_predicate_round_trips(predicate in predicate()) {
        let written = json_predicate::to_json(&predicate);
        prop_assert_eq!(json_predicate::parse(&written), Ok(predicate));
    }

    #[test]
    fn cursor_round_trips(
        predicate in predicate(),
        order in prop::option::of((key(), any::<bool>())),
        term in prop::option::of("[a-z0-9]{1,8}"),
        after in prop::option::of((prop::option::of(".{0,20}"), "[a-z]{1,8}:[a-z]{1,8}/[a-z0-9-]{1,12}")),
        is_previous in any::<bool>(),
        total_items in prop::option::of(any::<u64>()),
    ) {
        let order_fields: Vec<OrderField> = order
            .into_iter()
            .map(|(field, descending)| OrderField { field, descending })
            .collect();
        let full_text = term.map(|term| FullTextFilter { term, fields: vec!["metadata.name".into()] });
        let mut cursor = Cursor::new(predicate, order_fields, full_text, total_items);
        if let Some((value, entity_ref)) = after {
            cursor = if is_previous {
                cursor.previous_page(value, entity_ref)
            } else {
                cursor.next_page(value, entity_ref)
            };
        }
        prop_assert_eq!(cursor::decode(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn cursor_decode_never_panics(text in ".{0,200}") {
        let _ = cursor::decode(&text);
    }

    #[test]
    fn cursor_decode_never_panics_on_encoded_json(value in json_value()) {
        let _ = cursor::decode(&URL_SAFE_NO_PAD.encode(value.to_string()));
        let wrapped = serde_json::json!({"predicate": value, "after": [null, "x:y/z"]});
        let _ = cursor::decode(&URL_SAFE_NO_PAD.encode(wrapped.to_string()));
    }

    #[test]
    fn cursor_decode_rejects_or_accepts_mutations_without_panicking(
        predicate in predicate(), index in any::<prop::sample::Index>(), byte in b'-'..=b'z'
    ) {
        let mut text = Cursor::new(predicate, vec![], None, Some(1)).encode().into_bytes();
        let at = index.index(text.len());
        text[at] = byte;
        let _ = cursor::decode(&String::from_utf8_lossy(&text));
    }

    #[test]
    fn projection_never_panics(value in json_value(), paths in prop::collection::vec("[a-z$.]{0,12}", 0..4)) {
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        if let Ok(projection) = Projection::parse(&paths) {
            let projected = projection.apply(&value);
            prop_assert!(projected.is_object() || projection.is_empty());
        }
    }

    #[test]
    fn search_rows_are_lower_case_and_bounded(entity in entity()) {
        let rows = search_rows(&entity);
        for row in &rows {
            prop_assert_eq!(&row.key.to_lowercase(), &row.key);
            prop_assert!(!row.key.is_empty());
            prop_assert!(row.key.chars().count() <= MAX_KEY_LENGTH, "{}", row.key);
            prop_assert_eq!(row.value.is_none(), row.original.is_none());
            if let (Some(value), Some(original)) = (&row.value, &row.original) {
                prop_assert!(value.chars().count() <= MAX_VALUE_LENGTH);
                prop_assert_eq!(&value.to_lowercase(), value);
                prop_assert_eq!(&original.to_lowercase(), value);
            }
        }
        for special in ["metadata.name", "metadata.namespace", "metadata.uid"] {
            prop_assert!(rows.iter().any(|row| row.key == special), "{} missing", special);
        }
        let mut pairs: Vec<_> = rows.iter().map(|row| (&row.key, &row.value)).collect();
        let count = pairs.len();
        pairs.sort();
        pairs.dedup();
        prop_assert_eq!(pairs.len(), count);
    }

    #[test]
    fn search_rows_agree_with_the_plain_walk(entity in entity(), other in json_value()) {
        for value in [entity, other] {
            let rows: Vec<_> = search_rows(&value)
                .into_iter()
                .map(|row| (row.key, row.value, row.original))
                .collect();
            prop_assert_eq!(rows, reference_search_rows(&value));
        }
    }

    #[test]
    fn search_rows_never_panic_on_any_json(value in json_value()) {
        let _ = search_rows(&value);
    }
}
