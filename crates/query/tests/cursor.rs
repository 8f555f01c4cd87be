//! `by-query` cursors, catalog-api.md §3.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use cadastre_query::cursor::{decode, encode};
use cadastre_query::{Cursor, FullTextFilter, OrderField, Predicate, QueryError, legacy_filter};
use serde_json::json;

fn cursor() -> Cursor {
    Cursor::new(
        legacy_filter::parse(&["kind=component,spec.type=service", "kind=api"]).unwrap(),
        vec![OrderField {
            field: "metadata.name".into(),
            descending: true,
        }],
        Some(FullTextFilter {
            term: "art".into(),
            fields: vec!["metadata.name".into()],
        }),
        Some(42),
    )
}

#[test]
fn round_trips() {
    let first = cursor();
    assert_eq!(decode(&encode(&first)).unwrap(), first);
    let next = first.next_page(
        Some("artist-web".into()),
        "component:default/artist-web".into(),
    );
    assert_eq!(
        next.after,
        Some((
            Some("artist-web".into()),
            "component:default/artist-web".into()
        ))
    );
    assert!(!next.is_previous);
    assert_eq!(decode(&next.encode()).unwrap(), next);
    let previous = next.previous_page(Some("a".into()), "component:default/a".into());
    assert!(previous.is_previous);
    assert_eq!(previous.total_items, Some(42));
    assert_eq!(decode(&previous.encode()).unwrap(), previous);

    let bare = Cursor::new(Predicate::everything(), vec![], None, None)
        .next_page(None, "component:default/x".into());
    assert_eq!(decode(&encode(&bare)).unwrap(), bare);
    assert_eq!(bare.sort_field(), None);
    assert_eq!(cursor().sort_field().unwrap().field, "metadata.name");
}

#[test]
fn is_url_safe_base64_of_json_without_padding() {
    let text = encode(&cursor().next_page(Some("~~~???".into()), "component:default/x".into()));
    assert!(
        text.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&text).unwrap()).unwrap();
    assert_eq!(json["totalItems"], 42);
    assert_eq!(
        serde_json::from_value::<Predicate>(json["predicate"].clone()).unwrap(),
        cursor().predicate
    );
    assert_eq!(json["after"], json!(["~~~???", "component:default/x"]));
    // Padding is tolerated on input.
    let padded = URL_SAFE.encode(URL_SAFE_NO_PAD.decode(&text).unwrap());
    assert_eq!(decode(&padded).unwrap(), decode(&text).unwrap());
}

fn assert_malformed(text: &str) {
    let error = decode(text).unwrap_err();
    assert_eq!(error, QueryError::MalformedCursor, "{text:?}");
    assert_eq!(error.to_string(), "Malformed cursor");
}

fn encoded(value: serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[test]
fn malformed_cursors_are_rejected() {
    assert_malformed("");
    assert_malformed("not base64!");
    assert_malformed("e30"); // {}: no predicate
    assert_malformed(&URL_SAFE_NO_PAD.encode("not json"));
    assert_malformed(&encoded(json!([1, 2])));
    assert_malformed(&encoded(json!({"predicate": "kind"})));
    assert_malformed(&encoded(json!({"predicate": {"kind": null}})));
    assert_malformed(&encoded(json!({"predicate": {"$all": []}})));
    let everything = json!({"all": []});
    assert_malformed(&encoded(json!({"predicate": everything, "extra": 1})));
    assert_malformed(&encoded(json!({"predicate": everything, "totalItems": -1})));
    assert_malformed(&encoded(
        json!({"predicate": everything, "isPrevious": true}),
    ));
    assert_malformed(&encoded(
        json!({"predicate": everything, "after": [null, ""]}),
    ));
    assert_malformed(&encoded(json!({"predicate": everything, "after": ["a"]})));
    assert_malformed(&encoded(
        json!({"predicate": everything, "orderFields": [{"field": "Kind", "descending": false}]}),
    ));
    assert_malformed(&encoded(
        json!({"predicate": everything, "fullText": {"term": "", "fields": ["kind"]}}),
    ));
    assert_malformed(&encoded(
        json!({"predicate": everything, "fullText": {"term": "x", "fields": []}}),
    ));
    // Predicates not in the parsers' form: upper case, relations elsewhere, no targets.
    let field = |key: &str, condition: serde_json::Value| {
        encoded(json!({"predicate": {"field": {"key": key, "condition": condition}}}))
    };
    assert_malformed(&field("Kind", json!({"in": ["a"]})));
    assert_malformed(&field("kind", json!({"in": ["A"]})));
    assert_malformed(&field("", json!({"exists": true})));
    assert_malformed(&field("kind", json!({"has_prefix": "A"})));
    assert_malformed(&field(
        "spec",
        json!({"relation": {"relation_type": "ownedby", "targets": ["a"]}}),
    ));
    assert_malformed(&field(
        "relations",
        json!({"relation": {"relation_type": "ownedby", "targets": []}}),
    ));
    // Standard base64 with `+`/`/` is not the cursor alphabet.
    let text = STANDARD.encode(
        json!({"predicate": {"field": {"key": "k", "condition": {"in": ["a>>>?"]}}}}).to_string(),
    );
    if text.contains('+') || text.contains('/') {
        assert_malformed(&text);
    }
    // A truncated cursor.
    let good = encode(&cursor());
    assert_malformed(&good[..good.len() / 2]);
}

#[test]
fn a_legacy_filter_with_dollar_keys_survives_the_cursor() {
    let cursor = Cursor::new(
        legacy_filter::parse(&["$all=x,kind"]).unwrap(),
        vec![],
        None,
        None,
    );
    assert_eq!(decode(&cursor.encode()).unwrap(), cursor);
}

#[test]
fn minimal_hand_made_cursor_decodes() {
    assert_eq!(
        decode(&encoded(json!({"predicate": {"all": []}}))).unwrap(),
        Cursor::new(Predicate::everything(), vec![], None, None)
    );
}
