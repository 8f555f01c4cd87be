//! `order`, `orderField` and `orderBy`, catalog-api.md §3.

use cadastre_query::order::{order_by, parse_order, parse_order_field};
use cadastre_query::{OrderField, QueryError};

fn asc(field: &str) -> OrderField {
    OrderField {
        field: field.into(),
        descending: false,
    }
}

fn desc(field: &str) -> OrderField {
    OrderField {
        field: field.into(),
        descending: true,
    }
}

#[test]
fn order_params() {
    assert_eq!(
        parse_order(&["asc:metadata.name", "desc:Spec.Type"]).unwrap(),
        vec![asc("metadata.name"), desc("spec.type")]
    );
    assert_eq!(parse_order(&[]).unwrap(), vec![]);
    // Only the first colon splits.
    assert_eq!(
        parse_order(&["asc:metadata.annotations.a:b"]).unwrap(),
        vec![asc("metadata.annotations.a:b")]
    );
}

#[test]
fn bad_order_params() {
    for bad in ["metadata.name", "up:kind", "asc:", "ASC:kind", "asc: ", ""] {
        let error = parse_order(&["asc:kind", bad]).unwrap_err();
        assert_eq!(
            error,
            QueryError::InvalidOrder {
                parameter: "order",
                value: bad.into(),
                expected: "\"asc:<field>\" or \"desc:<field>\"",
            }
        );
    }
    assert_eq!(
        parse_order(&["up:kind"]).unwrap_err().to_string(),
        "order \"up:kind\" is invalid: expected \"asc:<field>\" or \"desc:<field>\""
    );
}

#[test]
fn order_field_params() {
    assert_eq!(
        parse_order_field(&["metadata.name,asc", "Spec.Type,desc", "kind"]).unwrap(),
        vec![asc("metadata.name"), desc("spec.type"), asc("kind")]
    );
}

#[test]
fn bad_order_field_params() {
    for bad in ["kind,up", "kind,", "kind,asc,desc", ",asc", "", "kind,DESC"] {
        assert!(
            matches!(
                parse_order_field(&[bad]).unwrap_err(),
                QueryError::InvalidOrder {
                    parameter: "orderField",
                    ..
                }
            ),
            "{bad:?}"
        );
    }
    assert_eq!(
        parse_order_field(&["kind,up"]).unwrap_err().to_string(),
        "orderField \"kind,up\" is invalid: expected \"<field>\", \"<field>,asc\" or \"<field>,desc\""
    );
}

#[test]
fn order_by_entries() {
    assert_eq!(
        order_by("Metadata.Name", None).unwrap(),
        asc("metadata.name")
    );
    assert_eq!(order_by("kind", Some("desc")).unwrap(), desc("kind"));
    assert_eq!(
        order_by("kind", Some("down")).unwrap_err().to_string(),
        "orderBy \"kind down\" is invalid: expected a non-empty field with order \"asc\" or \"desc\""
    );
    assert!(order_by(" ", Some("asc")).is_err());
}
