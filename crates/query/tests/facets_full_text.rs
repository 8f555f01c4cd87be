//! `facet` parameters and the full-text filter, catalog-api.md §3.

use cadastre_query::full_text::build;
use cadastre_query::order::parse_order_field;
use cadastre_query::{FullTextFilter, QueryError, facets};

#[test]
fn facets_keep_the_requested_string_and_match_lower_cased() {
    assert_eq!(
        facets::parse(&["kind", "relations.ownedBy", "Metadata.Tags", "kind"]).unwrap(),
        vec![
            ("kind".to_owned(), "kind".to_owned()),
            (
                "relations.ownedBy".to_owned(),
                "relations.ownedby".to_owned()
            ),
            ("Metadata.Tags".to_owned(), "metadata.tags".to_owned()),
        ]
    );
    assert_eq!(
        facets::parse(&["", "spec.type"]).unwrap(),
        vec![("spec.type".to_owned(), "spec.type".to_owned())]
    );
}

#[test]
fn facets_are_required() {
    for missing in [&[][..], &[""], &["", "  "]] {
        let error = facets::parse(missing).unwrap_err();
        assert_eq!(error, QueryError::MissingFacet);
        assert_eq!(error.to_string(), "Missing facet parameter");
    }
}

#[test]
fn full_text_term_is_trimmed_and_lower_cased() {
    assert_eq!(
        build(
            "  Artist ",
            &["metadata.name, Spec.Owner", "metadata.name"],
            &[]
        ),
        Some(FullTextFilter {
            term: "artist".into(),
            fields: vec!["metadata.name".into(), "spec.owner".into()],
        })
    );
}

#[test]
fn full_text_fields_default_to_the_sort_field_then_the_uid() {
    let order = parse_order_field(&["metadata.title,desc", "kind"]).unwrap();
    assert_eq!(
        build("x", &[], &order).unwrap().fields,
        vec!["metadata.title".to_owned()]
    );
    assert_eq!(
        build("x", &[" , "], &order).unwrap().fields,
        vec!["metadata.title"]
    );
    assert_eq!(build("x", &[], &[]).unwrap().fields, vec!["metadata.uid"]);
}

#[test]
fn an_empty_term_is_no_filter() {
    assert_eq!(build("", &["kind"], &[]), None);
    assert_eq!(build("   ", &[], &[]), None);
}
