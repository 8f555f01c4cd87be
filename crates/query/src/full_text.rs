//! The full-text filter of `by-query` (`fullTextFilterTerm`, `fullTextFilterFields` or the
//! body's `fullTextFilter`; `shared/spec/catalog-api.md` §3): a case-insensitive substring
//! match of the term against the search-row values of some fields.
//!
//! The term is trimmed and lower-cased; an empty term means no filter. Fields are given as
//! comma-separated lists (the GET parameter) or a list (the body), trimmed, lower-cased,
//! de-duplicated; without any, the first order field is searched, else `metadata.uid`.

use crate::predicate::{FullTextFilter, OrderField};

/// The field searched when there are neither fields nor order fields.
pub const DEFAULT_FIELD: &str = "metadata.uid";

/// The full-text filter for `term` over `fields` (each a comma-separated list), or `None`
/// when the term is empty after trimming.
pub fn build(term: &str, fields: &[&str], order_fields: &[OrderField]) -> Option<FullTextFilter> {
    let term = term.trim();
    if term.is_empty() {
        return None;
    }
    let mut keys: Vec<String> = Vec::new();
    for field in fields.iter().flat_map(|list| list.split(',')) {
        let field = field.trim().to_lowercase();
        if !field.is_empty() && !keys.contains(&field) {
            keys.push(field);
        }
    }
    if keys.is_empty() {
        keys.push(match order_fields.first() {
            Some(order) => order.field.to_lowercase(),
            None => DEFAULT_FIELD.to_owned(),
        });
    }
    Some(FullTextFilter {
        term: term.to_lowercase(),
        fields: keys,
    })
}
