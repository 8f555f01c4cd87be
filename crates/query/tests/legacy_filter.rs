//! The legacy `filter` parameter, with the examples of catalog-api.md §2.1.

use cadastre_query::legacy_filter::parse;
use cadastre_query::{Condition, Predicate, QueryError};

fn field(key: &str, values: &[&str]) -> Predicate {
    Predicate::Field {
        key: key.into(),
        condition: Condition::In(values.iter().map(|v| (*v).to_owned()).collect()),
    }
}

#[test]
fn no_filter_matches_everything() {
    let predicate = parse(&[]).unwrap();
    assert_eq!(predicate, Predicate::everything());
    assert!(predicate.is_everything());
}

#[test]
fn repeated_key_in_one_set_is_an_or_list() {
    assert_eq!(
        parse(&["kind=user,kind=group"]).unwrap(),
        field("kind", &["user", "group"])
    );
}

#[test]
fn statements_of_a_set_are_anded_and_sets_are_ored() {
    assert_eq!(
        parse(&["kind=Component,spec.type=service", "kind=API"]).unwrap(),
        Predicate::Any(vec![
            Predicate::All(vec![
                field("kind", &["component"]),
                field("spec.type", &["service"]),
            ]),
            field("kind", &["api"]),
        ])
    );
}

#[test]
fn only_the_first_equals_sign_splits() {
    assert_eq!(parse(&["a=b=c"]).unwrap(), field("a", &["b=c"]));
}

#[test]
fn bare_key_is_existence() {
    assert_eq!(
        parse(&["metadata.tags.java"]).unwrap(),
        Predicate::exists("metadata.tags.java", true)
    );
}

#[test]
fn key_with_equals_and_nothing_is_the_empty_string() {
    assert_eq!(parse(&["spec.type="]).unwrap(), field("spec.type", &[""]));
}

#[test]
fn relation_keys_stay_field_keys_lower_cased() {
    assert_eq!(
        parse(&["relations.ownedBy=group:default/team-a"]).unwrap(),
        field("relations.ownedby", &["group:default/team-a"])
    );
}

#[test]
fn annotation_keys_are_used_verbatim() {
    assert_eq!(
        parse(&["metadata.annotations.backstage.io/orphan=true"]).unwrap(),
        field("metadata.annotations.backstage.io/orphan", &["true"])
    );
}

#[test]
fn keys_and_values_are_lower_cased_and_trimmed() {
    assert_eq!(
        parse(&["  Kind = User  , , ,Spec.Type= Service "]).unwrap(),
        Predicate::All(vec![
            field("kind", &["user"]),
            field("spec.type", &["service"])
        ])
    );
}

#[test]
fn keys_differing_in_case_merge() {
    assert_eq!(
        parse(&["Kind=user,kind=Group,KIND=user"]).unwrap(),
        field("kind", &["user", "group"])
    );
}

#[test]
fn bare_key_next_to_a_value_adds_nothing() {
    assert_eq!(
        parse(&["kind,kind=user"]).unwrap(),
        field("kind", &["user"])
    );
    assert_eq!(
        parse(&["kind=user,kind"]).unwrap(),
        field("kind", &["user"])
    );
}

#[test]
fn empty_key_is_an_error() {
    let error = parse(&["kind=user,=x"]).unwrap_err();
    assert_eq!(
        error,
        QueryError::EmptyFilterKey {
            statement: "=x".into()
        }
    );
    assert_eq!(
        error.to_string(),
        "filter statement \"=x\" has an empty key"
    );
    assert_eq!(
        parse(&[" = x "]).unwrap_err().to_string(),
        "filter statement \"= x\" has an empty key"
    );
    assert_eq!(
        parse(&["="]).unwrap_err().to_string(),
        "filter statement \"=\" has an empty key"
    );
}

#[test]
fn a_set_of_empty_statements_matches_everything_alone() {
    assert_eq!(parse(&[""]).unwrap(), Predicate::everything());
    assert_eq!(parse(&[" , ,"]).unwrap(), Predicate::everything());
}

#[test]
fn a_set_of_empty_statements_is_dropped_next_to_others() {
    // As in Backstage: the empty set does not turn the OR into "everything".
    assert_eq!(
        parse(&["", "kind=user", ","]).unwrap(),
        field("kind", &["user"])
    );
}

#[test]
fn an_error_in_any_set_fails_the_whole_filter() {
    assert!(parse(&["kind=user", "=oops"]).is_err());
}
