//! Search under `/api/search`: Backstage's `GET /query` (`shared/spec/catalog-api.md` §6), with
//! its bracket-encoded parameters (`types[0]=software-catalog`, `filters[kind]=Component`),
//! and `GET /suggest` for the search box. Answered by the search service over gRPC.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cadastre_proto::v1 as pb;
use serde_json::{Value, json};

use crate::Gateway;
use crate::error::ApiError;

/// Backstage's `search.maxTermLength` and `search.maxPageLimit`.
pub(crate) const MAX_TERM_LENGTH: usize = 100;
const MAX_PAGE_LIMIT: u32 = 100;
/// The only document type: catalog entities.
const CATALOG_TYPE: &str = "software-catalog";
/// Where matches are marked in highlights.
const PRE_TAG: &str = "<mark>";
const POST_TAG: &str = "</mark>";

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/query", get(query))
        .route("/suggest", get(suggest))
}

/// The `(key, value)` pairs of a query string, in order (the web UI reads its own the same way).
pub(crate) fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

async fn query(
    State(gateway): State<Gateway>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut request = pb::SearchRequest {
        filters: Some(pb::SearchFilters::default()),
        highlight: true,
        ..Default::default()
    };
    let filters = request.filters.get_or_insert_default();
    for (key, value) in pairs(raw.as_deref()) {
        if key == "term" {
            if value.chars().count() > MAX_TERM_LENGTH {
                return Err(ApiError::input(format!(
                    "The term is longer than {MAX_TERM_LENGTH} characters"
                )));
            }
            request.query = value;
        } else if key == "pageCursor" {
            request.cursor = value;
        } else if key == "pageLimit" {
            let limit: u32 = value.parse().map_err(|_| {
                ApiError::input(format!("pageLimit must be a whole number, not {value:?}"))
            })?;
            if limit > MAX_PAGE_LIMIT {
                return Err(ApiError::input(format!(
                    "pageLimit must be at most {MAX_PAGE_LIMIT}"
                )));
            }
            request.limit = limit;
        } else if key == "types" || (key.starts_with("types[") && key.ends_with(']')) {
            if value != CATALOG_TYPE {
                return Err(ApiError::input(format!(
                    "Unknown document type {value:?}; the only type is {CATALOG_TYPE:?}"
                )));
            }
        } else if let Some(field) = key
            .strip_prefix("filters[")
            .and_then(|k| k.strip_suffix(']'))
        {
            let field = field.split('[').next().unwrap_or(field);
            let target = match field {
                "kind" => &mut filters.kinds,
                "type" | "componentType" => &mut filters.types,
                "owner" => &mut filters.owners,
                "lifecycle" => &mut filters.lifecycles,
                "tags" => &mut filters.tags,
                "namespace" => &mut filters.namespaces,
                other => {
                    return Err(ApiError::input(format!(
                        "Unknown filter {other:?}; filters are kind, type, owner, lifecycle, tags, namespace"
                    )));
                }
            };
            target.push(value);
        } else {
            return Err(ApiError::input(format!("Unknown query parameter '{key}'")));
        }
    }
    let offset_rank = cursor_offset(&request.cursor);
    let answer = gateway.search()?.search(request).await?.into_inner();
    Ok(axum::Json(search_body(answer, offset_rank)).into_response())
}

/// Backstage's search answer for a page of hits whose first is ranked `offset_rank + 1`.
/// Written as structs, not built as a `Value`: a page of 25 hits with highlighted descriptions
/// is the gateway's largest share of a search.
fn search_body(answer: pb::SearchResponse, offset_rank: usize) -> SearchAnswer {
    let results = answer
        .hits
        .into_iter()
        .enumerate()
        .map(|(index, hit)| {
            let entity_type = if hit.r#type.is_empty() {
                "other".to_owned()
            } else {
                hit.r#type
            };
            SearchResult {
                result_type: CATALOG_TYPE,
                document: ResultDocument {
                    title: if hit.title.is_empty() {
                        hit.name.clone()
                    } else {
                        hit.title
                    },
                    text: hit.description,
                    location: format!(
                        "/catalog/{}/{}/{}",
                        hit.namespace,
                        hit.kind.to_lowercase(),
                        hit.name
                    ),
                    kind: hit.kind,
                    namespace: hit.namespace,
                    name: hit.name,
                    entity_ref: hit.entity_ref,
                    component_type: entity_type.clone(),
                    entity_type,
                    lifecycle: hit.lifecycle,
                    owner: hit.owner,
                    tags: hit.tags,
                },
                highlight: ResultHighlight {
                    pre_tag: PRE_TAG,
                    post_tag: POST_TAG,
                    fields: HighlightFields(hit.highlights),
                },
                rank: offset_rank + index + 1,
            }
        })
        .collect();
    SearchAnswer {
        results,
        number_of_results: answer.total,
        number_of_results_is_lower_bound: answer.total_is_lower_bound,
        next_page_cursor: answer.next_cursor,
    }
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchAnswer {
    results: Vec<SearchResult>,
    number_of_results: u64,
    /// Past 10,000 matches the count stops (as Elasticsearch's does for Backstage's own
    /// search backend): `numberOfResults` is then a lower bound, and says so.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    number_of_results_is_lower_bound: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    next_page_cursor: String,
}

#[derive(Debug, serde::Serialize)]
struct SearchResult {
    #[serde(rename = "type")]
    result_type: &'static str,
    document: ResultDocument,
    highlight: ResultHighlight,
    rank: usize,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDocument {
    title: String,
    text: String,
    location: String,
    kind: String,
    namespace: String,
    name: String,
    entity_ref: String,
    #[serde(rename = "type")]
    entity_type: String,
    component_type: String,
    lifecycle: String,
    owner: String,
    tags: Vec<String>,
}

#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultHighlight {
    pre_tag: &'static str,
    post_tag: &'static str,
    fields: HighlightFields,
}

/// Field → fragment, in the order search gave them; Backstage calls the description `text`.
#[derive(Debug)]
struct HighlightFields(Vec<pb::SearchHighlight>);

impl serde::Serialize for HighlightFields {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|h| {
            let field = if h.field == "description" {
                "text"
            } else {
                h.field.as_str()
            };
            (field, h.fragment.as_str())
        }))
    }
}

/// The offset a search cursor starts at (for ranks); 0 for the first page.
fn cursor_offset(cursor: &str) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|value| value["o"].as_u64())
        .unwrap_or(0) as usize
}

async fn suggest(
    State(gateway): State<Gateway>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let mut request = pb::SuggestRequest::default();
    for (key, value) in pairs(raw.as_deref()) {
        match key.as_str() {
            "prefix" | "term" => request.prefix = value,
            "limit" => {
                request.limit = value.parse().map_err(|_| {
                    ApiError::input(format!("limit must be a whole number, not {value:?}"))
                })?;
            }
            other => {
                return Err(ApiError::input(format!(
                    "Unknown query parameter '{other}'"
                )));
            }
        }
    }
    let answer = gateway.search()?.suggest(request).await?.into_inner();
    let suggestions: Vec<Value> = answer
        .suggestions
        .into_iter()
        .map(|s| json!({"entityRef": s.entity_ref, "kind": s.kind, "name": s.name, "title": s.title}))
        .collect();
    Ok(axum::Json(json!({ "suggestions": suggestions })).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_past_the_count_says_it_is_a_lower_bound() {
        let answer = |total_is_lower_bound| pb::SearchResponse {
            total: 10_000,
            total_is_lower_bound,
            next_cursor: "next".into(),
            ..Default::default()
        };
        let body = |answer| serde_json::to_value(search_body(answer, 0)).unwrap();
        let capped = body(answer(true));
        assert_eq!(capped["numberOfResults"], 10_000);
        assert_eq!(capped["numberOfResultsIsLowerBound"], true);
        assert_eq!(capped["nextPageCursor"], "next");
        // An exact count keeps Backstage's shape as it is.
        let exact = body(answer(false));
        assert_eq!(exact["numberOfResults"], 10_000);
        assert!(exact.get("numberOfResultsIsLowerBound").is_none());
    }

    #[test]
    fn a_hit_reads_as_backstage_writes_it() {
        let answer = pb::SearchResponse {
            total: 1,
            hits: vec![pb::SearchHit {
                entity_ref: "component:default/payment-gateway".into(),
                kind: "Component".into(),
                namespace: "default".into(),
                name: "payment-gateway".into(),
                description: "Takes payments".into(),
                tags: vec!["java".into()],
                highlights: vec![
                    pb::SearchHighlight {
                        field: "name".into(),
                        fragment: "<mark>payment</mark>-gateway".into(),
                    },
                    pb::SearchHighlight {
                        field: "description".into(),
                        fragment: "Takes <mark>payments</mark>".into(),
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let body = serde_json::to_string(&search_body(answer, 20)).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"results":[{"type":"software-catalog","document":{"title":"payment-gateway","#,
                r#""text":"Takes payments","location":"/catalog/default/component/payment-gateway","#,
                r#""kind":"Component","namespace":"default","name":"payment-gateway","#,
                r#""entityRef":"component:default/payment-gateway","type":"other","#,
                r#""componentType":"other","lifecycle":"","owner":"","tags":["java"]},"#,
                r#""highlight":{"preTag":"<mark>","postTag":"</mark>","fields":{"#,
                r#""name":"<mark>payment</mark>-gateway","text":"Takes <mark>payments</mark>"}},"#,
                r#""rank":21}],"numberOfResults":1}"#
            )
        );
    }
}
