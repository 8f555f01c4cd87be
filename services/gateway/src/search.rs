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
    let results: Vec<Value> = answer
        .hits
        .into_iter()
        .enumerate()
        .map(|(index, hit)| {
            let fields: serde_json::Map<String, Value> = hit
                .highlights
                .iter()
                .map(|h| {
                    let field = if h.field == "description" { "text" } else { h.field.as_str() };
                    (field.to_owned(), Value::String(h.fragment.clone()))
                })
                .collect();
            json!({
                "type": CATALOG_TYPE,
                "document": {
                    "title": if hit.title.is_empty() { hit.name.clone() } else { hit.title.clone() },
                    "text": hit.description,
                    "location": format!("/catalog/{}/{}/{}", hit.namespace, hit.kind.to_lowercase(), hit.name),
                    "kind": hit.kind,
                    "namespace": hit.namespace,
                    "name": hit.name,
                    "entityRef": hit.entity_ref,
                    "type": if hit.r#type.is_empty() { "other".to_owned() } else { hit.r#type.clone() },
                    "componentType": if hit.r#type.is_empty() { "other".to_owned() } else { hit.r#type },
                    "lifecycle": hit.lifecycle,
                    "owner": hit.owner,
                    "tags": hit.tags,
                },
                "highlight": {"preTag": PRE_TAG, "postTag": POST_TAG, "fields": fields},
                "rank": offset_rank + index + 1,
            })
        })
        .collect();
    let mut body = json!({"results": results, "numberOfResults": answer.total});
    if !answer.next_cursor.is_empty() {
        body["nextPageCursor"] = Value::String(answer.next_cursor);
    }
    Ok(axum::Json(body).into_response())
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
