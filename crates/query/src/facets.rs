//! The `facet` parameters of `GET /entity-facets` (and the `facets` of its POST body;
//! `shared/spec/catalog-api.md` §3).
//!
//! Facets are dotted keys (`kind`, `spec.type`, `metadata.tags`, `relations.ownedBy`),
//! matched case-insensitively against the search rows, while the response is keyed by the
//! facet string exactly as requested. Empty facets are skipped; none left is an error
//! ("Missing facet parameter"). A facet requested twice is answered once.

use crate::error::QueryError;

/// Each requested facet with its search key: `(as requested, trimmed and lower-cased)`.
pub fn parse(facets: &[&str]) -> Result<Vec<(String, String)>, QueryError> {
    let mut parsed: Vec<(String, String)> = Vec::new();
    for facet in facets {
        let key = facet.trim().to_lowercase();
        if key.is_empty() || parsed.iter().any(|(requested, _)| requested == facet) {
            continue;
        }
        parsed.push(((*facet).to_owned(), key));
    }
    if parsed.is_empty() {
        return Err(QueryError::MissingFacet);
    }
    Ok(parsed)
}
