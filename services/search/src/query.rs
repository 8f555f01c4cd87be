//! Queries and results, independent of the backend; a query is checked here once, so both
//! backends refuse the same bad input with the same message.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::SearchError;

/// Hits per page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 25;
/// The largest page.
pub const MAX_LIMIT: usize = 100;
/// How deep pagination may go (offset plus limit), as OpenSearch's default window.
pub const MAX_WINDOW: usize = 10_000;
/// Suggestions when the caller does not say, and at most.
pub const DEFAULT_SUGGESTIONS: usize = 8;
pub const MAX_SUGGESTIONS: usize = 20;
/// Values per facet.
pub const FACET_SIZE: usize = 50;
/// Matches are counted exactly up to this many, as OpenSearch's default `track_total_hits`;
/// past it the total says "at least this many". Counting every match of a word that half a
/// million-entity catalog holds cost more than finding its best page.
pub const EXACT_TOTAL_UP_TO: u64 = 10_000;

/// A field entities are filtered and counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FacetField {
    Kind,
    Type,
    Owner,
    Lifecycle,
    Tags,
    Namespace,
    System,
}

impl FacetField {
    pub const ALL: [FacetField; 7] = [
        FacetField::Kind,
        FacetField::Type,
        FacetField::Owner,
        FacetField::Lifecycle,
        FacetField::Tags,
        FacetField::Namespace,
        FacetField::System,
    ];

    /// The name in requests and responses, and the keyword field in both indexes.
    pub fn name(self) -> &'static str {
        match self {
            FacetField::Kind => "kind",
            FacetField::Type => "type",
            FacetField::Owner => "owner",
            FacetField::Lifecycle => "lifecycle",
            FacetField::Tags => "tags",
            FacetField::Namespace => "namespace",
            FacetField::System => "system",
        }
    }

    pub fn parse(name: &str) -> Result<FacetField, SearchError> {
        FacetField::ALL
            .into_iter()
            .find(|field| field.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = FacetField::ALL.iter().map(|f| f.name()).collect();
                SearchError::InvalidArgument(format!(
                    "unknown facet {name:?}; facets are {}",
                    known.join(", ")
                ))
            })
    }
}

/// Filters: values of one field are OR-ed, fields are AND-ed. Values are lower case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filters {
    pub fields: Vec<(FacetField, Vec<String>)>,
}

impl Filters {
    /// Adds a filter on `field`; owners given as bare names become group refs in `default`.
    pub fn with(mut self, field: FacetField, values: &[String]) -> Filters {
        let values: Vec<String> = values
            .iter()
            .map(|value| value.trim().to_lowercase())
            .filter(|value| !value.is_empty())
            .map(|value| match field {
                FacetField::Owner if !value.contains(':') => {
                    cadastre_model::reference::EntityRef::parse(
                        &value,
                        cadastre_model::reference::RefContext::new(Some("group"), None),
                    )
                    .map(|r| r.canonical())
                    .unwrap_or(value)
                }
                FacetField::System if !value.contains(':') => format!(
                    "system:{}",
                    if value.contains('/') {
                        value
                    } else {
                        format!("default/{value}")
                    }
                ),
                _ => value,
            })
            .collect();
        if !values.is_empty() {
            self.fields.push((field, values));
        }
        self
    }
}

/// A checked search request.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    pub text: String,
    pub filters: Filters,
    pub facets: Vec<FacetField>,
    pub limit: usize,
    pub offset: usize,
    pub highlight: bool,
    /// Matches are counted exactly up to this many ([`EXACT_TOTAL_UP_TO`] unless a test
    /// says otherwise); see [`SearchQuery::total_cap`].
    pub exact_total_up_to: u64,
}

impl SearchQuery {
    /// A first page for `text`, no filters, the default limit.
    pub fn text(text: &str) -> SearchQuery {
        SearchQuery {
            text: text.to_owned(),
            filters: Filters::default(),
            facets: Vec::new(),
            limit: DEFAULT_LIMIT,
            offset: 0,
            highlight: false,
            exact_total_up_to: EXACT_TOTAL_UP_TO,
        }
    }

    /// Checks the limit and decodes the cursor (which must come from the same query).
    pub fn new(
        text: &str,
        filters: Filters,
        facets: &[String],
        limit: u32,
        cursor: &str,
        highlight: bool,
    ) -> Result<SearchQuery, SearchError> {
        let limit = match limit as usize {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                return Err(SearchError::InvalidArgument(format!(
                    "limit {n} is over the largest page, {MAX_LIMIT}"
                )));
            }
            n => n,
        };
        let facets = facets
            .iter()
            .map(|name| FacetField::parse(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut query = SearchQuery {
            text: text.to_owned(),
            filters,
            facets,
            limit,
            offset: 0,
            highlight,
            exact_total_up_to: EXACT_TOTAL_UP_TO,
        };
        if !cursor.is_empty() {
            let decoded = Cursor::decode(cursor)?;
            if decoded.fingerprint != query.fingerprint() {
                return Err(SearchError::InvalidArgument(
                    "the cursor belongs to a different query".into(),
                ));
            }
            query.offset = decoded.offset;
        }
        if query.offset + query.limit > MAX_WINDOW {
            return Err(SearchError::InvalidArgument(format!(
                "pages end at the first {MAX_WINDOW} hits; narrow the query"
            )));
        }
        Ok(query)
    }

    /// How far matches are counted: `None` counts them all, which costs nothing when the query
    /// has neither text nor filters (the index knows how many documents it holds); otherwise
    /// at least one past this page, so a total at the cap still tells whether a next page
    /// exists. A search that finds more answers the cap as a lower bound.
    pub fn total_cap(&self) -> Option<u64> {
        let everything =
            crate::document::words(&self.text).is_empty() && self.filters.fields.is_empty();
        (!everything).then(|| {
            self.exact_total_up_to
                .max((self.offset + self.limit) as u64 + 1)
        })
    }

    /// The cursor of the page after this one, if `total` hits leave one.
    pub fn next_cursor(&self, total: u64) -> Option<String> {
        let next = self.offset + self.limit;
        (total > next as u64 && next < MAX_WINDOW).then(|| {
            Cursor {
                offset: next,
                fingerprint: self.fingerprint(),
            }
            .encode()
        })
    }

    /// Identifies the query a cursor was made for (text and filters; not the page size).
    fn fingerprint(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.text.trim().to_lowercase().hash(&mut hasher);
        for (field, values) in &self.filters.fields {
            field.name().hash(&mut hasher);
            values.hash(&mut hasher);
        }
        hasher.finish()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Cursor {
    #[serde(rename = "o")]
    offset: usize,
    #[serde(rename = "f")]
    fingerprint: u64,
}

impl Cursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str) -> Result<Cursor, SearchError> {
        let bad = || SearchError::InvalidArgument(format!("cursor {text:?} is not valid"));
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

/// One hit; the entity's searched fields as indexed.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub document: crate::SearchDocument,
    pub score: f32,
    /// (field, fragment with `<mark>` around matches).
    pub highlights: Vec<(String, String)>,
}

impl Hit {
    /// A hit for `query`, with highlights if it asks for them; `typos` says whether it was
    /// found by the typo fallback (and so whether words within a typo are marked).
    pub fn found(
        document: crate::SearchDocument,
        score: f32,
        query: &SearchQuery,
        typos: bool,
    ) -> Hit {
        let highlights = if query.highlight {
            crate::highlight::highlights(
                &query.text,
                &[
                    ("name", &document.name),
                    ("title", &document.title),
                    ("description", &document.description),
                ],
                typos,
            )
        } else {
            Vec::new()
        };
        Hit {
            document,
            score,
            highlights,
        }
    }
}

/// `[(value, count)]` from a terms aggregation's result, the same JSON from both engines.
pub(crate) fn terms_buckets(result: &serde_json::Value) -> Vec<(String, u64)> {
    result["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|bucket| {
            Some((
                bucket["key"].as_str()?.to_owned(),
                bucket["doc_count"].as_u64()?,
            ))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchResults {
    pub hits: Vec<Hit>,
    /// Every match, or (when `total_is_lower_bound`) the query's total cap: at least that many.
    pub total: u64,
    pub total_is_lower_bound: bool,
    /// Per requested facet: values with counts, most frequent first.
    pub facets: Vec<(FacetField, Vec<(String, u64)>)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub entity_ref: String,
    pub kind: String,
    pub name: String,
    pub title: String,
}

impl From<crate::SearchDocument> for Suggestion {
    fn from(doc: crate::SearchDocument) -> Suggestion {
        Suggestion {
            entity_ref: doc.entity_ref,
            kind: doc.kind,
            name: doc.name,
            title: doc.title,
        }
    }
}

/// Checks a suggestion limit.
pub fn suggestion_limit(limit: u32) -> Result<usize, SearchError> {
    match limit as usize {
        0 => Ok(DEFAULT_SUGGESTIONS),
        n if n > MAX_SUGGESTIONS => Err(SearchError::InvalidArgument(format!(
            "limit {n} is over the most suggestions, {MAX_SUGGESTIONS}"
        ))),
        n => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_walk_pages_of_the_same_query_only() {
        let first = SearchQuery::new("pay", Filters::default(), &[], 10, "", false).unwrap();
        let cursor = first.next_cursor(25).unwrap();
        let second = SearchQuery::new("pay", Filters::default(), &[], 10, &cursor, false).unwrap();
        assert_eq!(second.offset, 10);
        assert!(second.next_cursor(20).is_none());
        let other = SearchQuery::new("other", Filters::default(), &[], 10, &cursor, false);
        assert!(
            matches!(other, Err(SearchError::InvalidArgument(m)) if m.contains("different query"))
        );
        let bad = SearchQuery::new("pay", Filters::default(), &[], 10, "%%%", false);
        assert!(matches!(bad, Err(SearchError::InvalidArgument(m)) if m.contains("not valid")));
    }

    #[test]
    fn refuses_oversize_pages_and_unknown_facets() {
        let big = SearchQuery::new("", Filters::default(), &[], 101, "", false);
        assert!(matches!(big, Err(SearchError::InvalidArgument(m)) if m.contains("largest page")));
        let facet = SearchQuery::new("", Filters::default(), &["colour".into()], 0, "", false);
        assert!(matches!(facet, Err(SearchError::InvalidArgument(m)) if m.contains("colour")));
    }

    #[test]
    fn owner_and_system_filters_take_bare_names() {
        let filters = Filters::default()
            .with(
                FacetField::Owner,
                &["Team-A".into(), "user:default/x".into()],
            )
            .with(FacetField::System, &["Checkout".into()])
            .with(FacetField::Tags, &[" ".into()]);
        assert_eq!(
            filters.fields,
            vec![
                (
                    FacetField::Owner,
                    vec![
                        "group:default/team-a".to_owned(),
                        "user:default/x".to_owned()
                    ]
                ),
                (
                    FacetField::System,
                    vec!["system:default/checkout".to_owned()]
                ),
            ]
        );
    }
}
