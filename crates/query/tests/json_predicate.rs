//! The JSON predicate language, with the forms of catalog-api.md §2.2.

use cadastre_query::json_predicate::{parse, to_json};
use cadastre_query::{Condition, Predicate, QueryError};
use serde_json::{Value, json};

fn field(key: &str, condition: Condition) -> Predicate {
    Predicate::Field {
        key: key.into(),
        condition,
    }
}

fn values(values: &[&str]) -> Condition {
    Condition::In(values.iter().map(|v| (*v).to_owned()).collect())
}

fn error(value: Value) -> String {
    parse(&value).unwrap_err().to_string()
}

#[test]
fn primitives_are_lower_cased_strings() {
    assert_eq!(
        parse(&json!({"kind": "Component"})).unwrap(),
        field("kind", values(&["component"]))
    );
    assert_eq!(
        parse(&json!({"spec.replicas": 3})).unwrap(),
        field("spec.replicas", values(&["3"]))
    );
    assert_eq!(
        parse(&json!({"spec.ratio": 1.0})).unwrap(),
        field("spec.ratio", values(&["1"]))
    );
    assert_eq!(
        parse(&json!({"metadata.annotations.backstage.io/orphan": true})).unwrap(),
        field(
            "metadata.annotations.backstage.io/orphan",
            values(&["true"])
        )
    );
}

#[test]
fn several_keys_are_anded_and_lower_cased() {
    assert_eq!(
        parse(&json!({"Kind": "API", "spec.Type": {"$in": ["openapi", "GraphQL", 2]}})).unwrap(),
        Predicate::All(vec![
            field("kind", values(&["api"])),
            field("spec.type", values(&["openapi", "graphql", "2"])),
        ])
    );
}

#[test]
fn combinators() {
    assert_eq!(
        parse(&json!({"$all": [{"kind": "user"}, {"$not": {"spec.profile.email": {"$exists": true}}}]}))
            .unwrap(),
        Predicate::All(vec![
            field("kind", values(&["user"])),
            Predicate::Not(Box::new(Predicate::exists("spec.profile.email", true))),
        ])
    );
    assert_eq!(parse(&json!({"$any": []})).unwrap(), Predicate::Any(vec![]));
    assert!(parse(&json!({"$all": []})).unwrap().is_everything());
    assert!(parse(&json!({})).unwrap().is_everything());
}

#[test]
fn operators() {
    assert_eq!(
        parse(&json!({"metadata.name": {"$hasPrefix": "Artist-"}})).unwrap(),
        field("metadata.name", Condition::HasPrefix("artist-".into()))
    );
    assert_eq!(
        parse(&json!({"metadata.tags": {"$contains": "Java"}})).unwrap(),
        field("metadata.tags", values(&["java"]))
    );
    assert_eq!(
        parse(&json!({"spec.type": {"$in": []}})).unwrap(),
        field("spec.type", values(&[]))
    );
    assert_eq!(
        parse(&json!({"spec.owner": {"$exists": false}})).unwrap(),
        Predicate::exists("spec.owner", false)
    );
}

#[test]
fn relations_contains() {
    assert_eq!(
        parse(&json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": "group:default/Team-A"}}}))
            .unwrap(),
        Predicate::relation("ownedby", &["group:default/team-a"])
    );
    assert_eq!(
        parse(&json!({"relations": {"$contains": {"Type": "ownedBy", "TARGETREF": {"$in": ["group:default/a", "user:default/b"]}}}}))
            .unwrap(),
        Predicate::relation("ownedby", &["group:default/a", "user:default/b"])
    );
    // Without targetRef: any relation of that type.
    assert_eq!(
        parse(&json!({"relations": {"$contains": {"type": "ownedBy"}}})).unwrap(),
        Predicate::exists("relations.ownedby", true)
    );
}

#[test]
fn rejects_top_level_primitives() {
    assert_eq!(
        error(json!("component")),
        "invalid query predicate: expected an object ($all, $any, $not or a field expression), \
         got the string \"component\"; wrap it in a field expression, e.g. {\"kind\": \"component\"}"
    );
    assert!(error(json!(null)).contains("got null"));
    assert!(
        error(json!([{"kind": "x"}])).starts_with("invalid query predicate: expected an object")
    );
}

#[test]
fn rejects_null_values_with_a_hint() {
    assert_eq!(
        error(json!({"spec.owner": null})),
        "invalid query predicate at \"spec.owner\": null is not a valid value (expected a string, \
         number or boolean; use {\"$exists\": false} to match a missing key)"
    );
}

#[test]
fn rejects_unsupported_shapes_saying_where() {
    assert_eq!(
        error(json!({"$all": [{"kind": "x"}, {"spec.type": {"$in": [{"a": 1}]}}]})),
        "invalid query predicate at $all[1].\"spec.type\": \"$in\" expects a list of strings, \
         numbers or booleans, got [{\"a\":1}]"
    );
    assert_eq!(
        error(json!({"$any": {"kind": "x"}})),
        "invalid query predicate at $any: expected a list of predicates, got {\"kind\":\"x\"}"
    );
    assert_eq!(
        error(json!({"$not": {"$nor": []}})),
        "invalid query predicate at $not: unknown operator \"$nor\" (expected \"$all\", \"$any\" \
         or \"$not\"; field keys must not start with \"$\")"
    );
    assert_eq!(
        error(json!({"$all": [], "kind": "x"})),
        "invalid query predicate: operator \"$all\" cannot be combined with other keys (got keys \
         \"$all\", \"kind\")"
    );
    assert_eq!(
        error(json!({"kind": {"$exists": true, "$in": ["a"]}})),
        "invalid query predicate at \"kind\": expected exactly one operator, got keys \
         \"$exists\", \"$in\""
    );
    assert_eq!(
        error(json!({"kind": {"$regex": "a.*"}})),
        "invalid query predicate at \"kind\": unknown operator \"$regex\" (expected \"$exists\", \
         \"$in\", \"$hasPrefix\" or \"$contains\")"
    );
    assert_eq!(
        error(json!({"spec": {"owner": "x"}})),
        "invalid query predicate at \"spec\": nested objects are not supported (got key \
         \"owner\"); use a dotted key such as \"spec.owner\" instead"
    );
    assert!(error(json!({"kind": ["a", "b"]})).contains("a list is not a valid value"));
    assert!(error(json!({"kind": {}})).contains("got an empty object"));
    assert!(
        error(json!({"kind": {"$exists": "yes"}})).contains("\"$exists\" expects true or false")
    );
    assert!(error(json!({"kind": {"$hasPrefix": 1}})).contains("\"$hasPrefix\" expects a string"));
    assert!(error(json!({"kind": {"$contains": null}})).contains("\"$contains\" expects"));
    assert!(error(json!({"": "x"})).contains("field keys must not be empty"));
}

#[test]
fn rejects_bad_relation_shapes() {
    assert_eq!(
        error(json!({"metadata.tags": {"$contains": {"type": "x"}}})),
        "invalid query predicate at \"metadata.tags\": the object form of \"$contains\" is only \
         supported for the key \"relations\"; use a string, number or boolean"
    );
    assert_eq!(
        error(json!({"relations": {"$contains": {"targetRef": "group:default/a"}}})),
        "invalid query predicate at \"relations\".$contains: a relation needs a \"type\" string"
    );
    assert!(
        error(json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": {"$in": []}}}}))
            .ends_with("\"targetRef\" has an empty \"$in\" list")
    );
    assert!(
        error(json!({"relations": {"$contains": {"type": "ownedBy", "targetRef": 3}}}))
            .contains("\"targetRef\" must be a string or {\"$in\": [strings]}, got 3")
    );
    assert!(
        error(json!({"relations": {"$contains": {"type": "ownedBy", "source": "x"}}}))
            .contains("unsupported key \"source\"")
    );
    assert!(
        error(json!({"relations": {"$contains": {"type": "a", "TYPE": "b"}}}))
            .contains("duplicate key \"TYPE\"")
    );
}

#[test]
fn errors_are_invalid_predicate_errors() {
    assert!(matches!(
        parse(&json!(1)).unwrap_err(),
        QueryError::InvalidPredicate { .. }
    ));
}

#[test]
fn to_json_writes_the_language_back() {
    let predicate = Predicate::Any(vec![
        Predicate::All(vec![
            field("kind", values(&["component"])),
            field("spec.type", values(&["service", "website"])),
            field("metadata.name", Condition::HasPrefix("artist".into())),
        ]),
        Predicate::Not(Box::new(Predicate::exists("spec.owner", true))),
        Predicate::relation("ownedby", &["group:default/a"]),
        Predicate::relation("partof", &["system:default/a", "system:default/b"]),
    ]);
    let written = to_json(&predicate);
    assert_eq!(
        written,
        json!({"$any": [
            {"$all": [
                {"kind": "component"},
                {"spec.type": {"$in": ["service", "website"]}},
                {"metadata.name": {"$hasPrefix": "artist"}},
            ]},
            {"$not": {"spec.owner": {"$exists": true}}},
            {"relations": {"$contains": {"type": "ownedby", "targetRef": "group:default/a"}}},
            {"relations": {"$contains": {"type": "partof", "targetRef": {"$in": ["system:default/a", "system:default/b"]}}}},
        ]})
    );
    assert_eq!(parse(&written).unwrap(), predicate);
}
