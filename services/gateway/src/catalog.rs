//! Backstage's catalog routes under `/api/catalog` (`shared/spec/catalog-api.md` §3–§5), each
//! a translation to one or two `CatalogService` calls.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cadastre_proto::v1 as pb;
use cadastre_query::{Predicate, Projection};
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Gateway;
use crate::error::ApiError;
use crate::params::Params;

/// The query parameters of `GET /entities/by-query`.
pub(crate) const BY_QUERY_PARAMS: &[&str] = &[
    "filter",
    "fields",
    "limit",
    "offset",
    "orderField",
    "fullTextFilterTerm",
    "fullTextFilterFields",
    "cursor",
    "totalItems",
];

/// `by-query` pages hold this many entities unless asked otherwise (Backstage's default).
const DEFAULT_QUERY_LIMIT: u32 = 200;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/entities", get(list_entities))
        .route(
            "/entities/by-query",
            get(query_entities).post(query_entities_by_predicate),
        )
        .route("/entities/by-refs", post(entities_by_refs))
        .route(
            "/entities/by-uid/{uid}",
            get(entity_by_uid).delete(remove_entity_by_uid),
        )
        .route(
            "/entities/by-name/{kind}/{namespace}/{name}",
            get(entity_by_name),
        )
        .route(
            "/entities/by-name/{kind}/{namespace}/{name}/ancestry",
            get(ancestry),
        )
        .route("/entity-facets", get(facets).post(facets_by_predicate))
        .route("/locations", get(list_locations).post(add_location))
        .route(
            "/locations/{id}",
            get(get_location)
                .put(update_location)
                .delete(remove_location),
        )
        .route("/locations/by-query", post(query_locations))
        .route(
            "/locations/by-entity/{kind}/{namespace}/{name}",
            get(location_by_entity),
        )
        .route("/refresh", post(refresh))
        .route("/validate-entity", post(validate_entity))
        .route("/analyze-location", post(analyze_location))
        .route("/openapi.json", get(openapi))
}

/// The served entity JSON of a stored entity, projected to `fields` when given.
pub(crate) fn entity_json(
    stored: &pb::StoredEntity,
    fields: &Projection,
) -> Result<Value, ApiError> {
    let entity = stored.entity.as_ref().ok_or_else(ApiError::internal)?;
    let value: Value = serde_json::from_slice(&entity.body_json).map_err(|error| {
        tracing::error!(%error, entity = %entity.entity_ref, "a stored body is not JSON");
        ApiError::internal()
    })?;
    Ok(if fields.is_empty() {
        value
    } else {
        fields.apply(&value)
    })
}

/// The proto form of a JSON predicate from a body.
fn predicate_of(query: Option<&Value>) -> Result<Option<pb::Predicate>, ApiError> {
    Ok(query
        .map(cadastre_query::json_predicate::parse)
        .transpose()?
        .map(|predicate| cadastre_query::wire::to_proto(&predicate)))
}

/// `totalItems`: `include` (the default) or `exclude`; whether to skip counting.
fn excludes_total(value: Option<&str>) -> Result<bool, ApiError> {
    match value {
        None | Some("include") => Ok(false),
        Some("exclude") => Ok(true),
        Some(other) => Err(ApiError::input(format!(
            "totalItems must be 'include' or 'exclude', not {other:?}"
        ))),
    }
}

fn filter_of(params: &Params) -> Result<Option<pb::Predicate>, ApiError> {
    legacy_filter(&params.all("filter"))
}

/// The proto predicate of Backstage `filter` values (sets OR-ed); `None` when there are none.
/// Shared with the web UI, whose facet links are `filter` values too.
pub(crate) fn legacy_filter(filters: &[&str]) -> Result<Option<pb::Predicate>, ApiError> {
    if filters.is_empty() {
        return Ok(None);
    }
    let predicate = cadastre_query::legacy_filter::parse(filters)?;
    Ok(Some(cadastre_query::wire::to_proto(&predicate)))
}

/// The served entity as stored, passed through without parsing (the store serves it as JSON).
fn raw_entity(stored: &pb::StoredEntity) -> Result<Response, ApiError> {
    let entity = stored.entity.as_ref().ok_or_else(ApiError::internal)?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        entity.body_json.clone(),
    )
        .into_response())
}

/// A JSON object body: Backstage refuses other content types and non-objects.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/json") {
        return Err(ApiError::input(if content_type.is_empty() {
            "Content-Type missing".to_owned()
        } else {
            format!("Illegal Content-Type {content_type:?}; expected application/json")
        }));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::input(format!("Malformed request body: {error}")))?;
    if !value.is_object() {
        return Err(ApiError::input("Expected body to be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|error| ApiError::input(format!("Malformed request body: {error}")))
}

async fn entity_by_name(
    State(gateway): State<Gateway>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let stored = stored_by_name(&gateway, &kind, &namespace, &name).await?;
    raw_entity(&stored)
}

/// The stored entity `kind:namespace/name` (case-insensitive), shared with the entity cache, or
/// Backstage's 404 (the web UI's entity page looks entities up the same way).
pub(crate) async fn stored_by_name(
    gateway: &Gateway,
    kind: &str,
    namespace: &str,
    name: &str,
) -> Result<Arc<pb::StoredEntity>, ApiError> {
    let entity_ref = format!("{kind}:{namespace}/{name}").to_lowercase();
    let cache = gateway.entity_cache();
    if let Some(stored) = cache.and_then(|cache| cache.get(&entity_ref)) {
        return Ok(stored);
    }
    let ticket = cache.and_then(|cache| cache.ticket(&entity_ref));
    let found = gateway
        .catalog()
        .get_entity_by_ref(pb::GetEntityByRefRequest {
            entity_ref: entity_ref.clone(),
        })
        .await;
    match found {
        Ok(stored) => {
            let stored = Arc::new(stored.into_inner());
            if let (Some(cache), Some(ticket)) = (cache, ticket) {
                cache.insert(&entity_ref, ticket, Arc::clone(&stored));
            }
            Ok(stored)
        }
        Err(status) if status.code() == tonic::Code::NotFound => Err(ApiError::not_found(format!(
            "No entity named '{name}' found, with kind '{kind}' in namespace '{namespace}'"
        ))),
        Err(status) => Err(status.into()),
    }
}

async fn entity_by_uid(
    State(gateway): State<Gateway>,
    Path(uid): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    match gateway
        .catalog()
        .get_entity_by_uid(pb::GetEntityByUidRequest { uid: uid.clone() })
        .await
    {
        Ok(stored) => raw_entity(&stored.into_inner()),
        Err(status) if status.code() == tonic::Code::NotFound => {
            Err(ApiError::not_found(format!("No entity with uid {uid}")))
        }
        Err(status) => Err(status.into()),
    }
}

async fn ancestry(
    State(gateway): State<Gateway>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entity_ref = format!("{kind}:{namespace}/{name}").to_lowercase();
    let answer = gateway
        .catalog()
        .get_ancestry(pb::GetEntityByRefRequest {
            entity_ref: entity_ref.clone(),
        })
        .await;
    let answer = match answer {
        Ok(answer) => answer.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Err(ApiError::not_found(format!("No such entity {entity_ref}")));
        }
        Err(status) => return Err(status.into()),
    };
    let items = answer
        .items
        .into_iter()
        .map(|item| {
            let entity = item
                .entity
                .map(|stored| entity_json(&stored, &Projection::everything()))
                .transpose()?;
            Ok(json!({"entity": entity, "parentEntityRefs": item.parent_refs}))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(axum::Json(json!({"rootEntityRef": answer.root_ref, "items": items})).into_response())
}

async fn query_entities(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), BY_QUERY_PARAMS)?;
    let fields = params.list("fields");
    // Checked here so a bad path is refused whatever the store does with it.
    Projection::parse(&params.all("fields"))?;
    let order = cadastre_query::order::parse_order_field(&params.all("orderField"))?;
    let exclude_total = excludes_total(params.one("totalItems")?)?;
    let cursor = params.one("cursor")?.unwrap_or_default().to_owned();
    let request = pb::QueryEntitiesRequest {
        filter: filter_of(&params)?,
        order: order
            .into_iter()
            .map(|o| pb::OrderField {
                field: o.field,
                descending: o.descending,
            })
            .collect(),
        full_text_term: params
            .one("fullTextFilterTerm")?
            .unwrap_or_default()
            .trim()
            .to_owned(),
        full_text_fields: params.list("fullTextFilterFields"),
        fields,
        limit: params.number("limit")?.unwrap_or(DEFAULT_QUERY_LIMIT),
        offset: params.number("offset")?.unwrap_or(0),
        cursor,
        exclude_total,
    };
    page_answer(&gateway, request).await
}

/// One `by-query` page as Backstage answers it.
async fn page_answer(
    gateway: &Gateway,
    request: pb::QueryEntitiesRequest,
) -> Result<Response, ApiError> {
    let page = gateway
        .catalog()
        .query_entities(request)
        .await?
        .into_inner();
    let mut page_info = serde_json::Map::new();
    if !page.next_cursor.is_empty() {
        page_info.insert("nextCursor".into(), page.next_cursor.into());
    }
    if !page.prev_cursor.is_empty() {
        page_info.insert("prevCursor".into(), page.prev_cursor.into());
    }
    // The items are the store's served (and projected) JSON: written out as they are.
    let mut body = b"{\"items\":".to_vec();
    body.extend(json_array(page.items));
    body.extend(format!(",\"totalItems\":{},\"pageInfo\":", page.total_items).into_bytes());
    body.extend(Value::Object(page_info).to_string().into_bytes());
    body.push(b'}');
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// A JSON array of the entities' served bodies, copied as they are.
fn json_array(items: Vec<pb::StoredEntity>) -> Vec<u8> {
    let mut array = vec![b'['];
    for (index, entity) in items.into_iter().filter_map(|item| item.entity).enumerate() {
        if index > 0 {
            array.push(b',');
        }
        array.extend(entity.body_json);
    }
    array.push(b']');
    array
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ByRefsBody {
    entity_refs: Vec<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    query: Option<Value>,
}

async fn entities_by_refs(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["filter", "fields"])?;
    let body: ByRefsBody = json_body(&headers, &body).map_err(|error| {
        ApiError::input(format!(
            "Malformed request body (did you remember to specify an application/json content type?): {}",
            error.message
        ))
    })?;
    let mut field_params: Vec<&str> = params.all("fields");
    field_params.extend(body.fields.iter().map(String::as_str));
    let fields = Projection::parse(&field_params)?;
    let mut predicate: Option<Predicate> = None;
    if !params.all("filter").is_empty() {
        predicate = Some(cadastre_query::legacy_filter::parse(&params.all("filter"))?);
    }
    if let Some(query) = &body.query {
        let parsed = cadastre_query::json_predicate::parse(query)?;
        predicate = Some(match predicate {
            Some(filter) => filter.and(parsed),
            None => parsed,
        });
    }
    // Backstage matches refs verbatim against canonical ones: others come back null.
    let canonical = |r: &str| r == r.to_lowercase() && r.contains(':') && r.contains('/');
    let asked: Vec<String> = body
        .entity_refs
        .iter()
        .filter(|r| canonical(r))
        .cloned()
        .collect();
    let found = if asked.is_empty() {
        Vec::new()
    } else {
        gateway
            .catalog()
            .get_entities_by_refs(pb::GetEntitiesByRefsRequest {
                entity_refs: asked,
                fields: Vec::new(),
                filter: predicate.as_ref().map(cadastre_query::wire::to_proto),
            })
            .await?
            .into_inner()
            .items
    };
    let mut found = found.into_iter();
    let items = body
        .entity_refs
        .iter()
        .map(|r| {
            if !canonical(r) {
                return Ok(Value::Null);
            }
            match found.next().and_then(|item| item.entity) {
                Some(stored) => entity_json(&stored, &fields),
                None => Ok(Value::Null),
            }
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn facets(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["facet", "filter"])?;
    let facets: Vec<String> = params
        .all("facet")
        .into_iter()
        .map(str::trim)
        .filter(|facet| !facet.is_empty())
        .map(str::to_owned)
        .collect();
    facets_answer(&gateway, facets, filter_of(&params)?).await
}

async fn facets_answer(
    gateway: &Gateway,
    facets: Vec<String>,
    filter: Option<pb::Predicate>,
) -> Result<Response, ApiError> {
    let facets: Vec<String> = facets
        .into_iter()
        .map(|facet| facet.trim().to_owned())
        .filter(|facet| !facet.is_empty())
        .collect();
    if facets.is_empty() {
        return Err(ApiError::input("Missing facet parameter"));
    }
    let facets: serde_json::Map<String, Value> = facet_counts(gateway, facets, filter)
        .await?
        .into_iter()
        .map(|facet| {
            let values = facet
                .values
                .into_iter()
                .map(|v| json!({"value": v.value, "count": v.count}))
                .collect();
            (facet.facet, Value::Array(values))
        })
        .collect();
    Ok(axum::Json(json!({ "facets": facets })).into_response())
}

/// The counts of each value of `facets` over the entities matching `filter` (also what the
/// web UI's facet filters show).
pub(crate) async fn facet_counts(
    gateway: &Gateway,
    facets: Vec<String>,
    filter: Option<pb::Predicate>,
) -> Result<Vec<pb::Facet>, ApiError> {
    Ok(gateway
        .catalog()
        .get_facets(pb::GetFacetsRequest { facets, filter })
        .await?
        .into_inner()
        .facets)
}

fn location_json(location: &pb::Location) -> Value {
    json!({
        "id": location.id,
        "type": location.r#type,
        "target": location.target,
        "entityRef": location.entity_ref,
    })
}

async fn list_locations(State(gateway): State<Gateway>) -> Result<Response, ApiError> {
    let locations = gateway.locations().await?;
    let items: Vec<Value> = locations
        .iter()
        .map(|location| json!({ "data": location_json(location) }))
        .collect();
    Ok(axum::Json(items).into_response())
}

async fn get_location(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let location = gateway
        .catalog()
        .get_location(pb::GetLocationRequest { id })
        .await?
        .into_inner();
    Ok(axum::Json(location_json(&location)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationBody {
    #[serde(rename = "type")]
    location_type: String,
    target: String,
    #[serde(default)]
    #[allow(dead_code)]
    presence: Option<Presence>,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum Presence {
    Required,
    Optional,
}

pub(crate) fn check_location_type(gateway: &Gateway, location_type: &str) -> Result<(), ApiError> {
    let allowed = &gateway.settings().location_types;
    if !allowed.iter().any(|t| t == location_type) {
        return Err(ApiError::input(format!(
            "Registered locations must be of an allowed type {}",
            serde_json::to_string(allowed).unwrap_or_default()
        )));
    }
    Ok(())
}

/// `POST /locations?dryRun=true`: the location read and processed now, nothing stored.
async fn dry_run_location(
    gateway: &Gateway,
    location_type: &str,
    target: &str,
) -> Result<Response, ApiError> {
    let (exists, preview) = preview_location(gateway, location_type, target).await?;
    if !preview.errors.is_empty() {
        return Err(ApiError::input(preview.errors.join("; ")));
    }
    let key = format!("{location_type}:{target}");
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({
            "exists": exists,
            "location": {
                "id": key,
                "type": location_type,
                "target": target,
                "entityRef": cadastre_processor::generated_location_ref(&key),
            },
            "entities": preview.entities,
        })),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateLocationBody {
    #[serde(rename = "type")]
    location_type: String,
    target: String,
}

/// `PUT /locations/{id}`: the location points elsewhere, keeping its id; what came through
/// the old target goes and the new one is read.
async fn update_location(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: UpdateLocationBody = json_body(&headers, &body)?;
    check_location_type(&gateway, &body.location_type)?;
    let location = gateway
        .catalog()
        .update_location(pb::UpdateLocationRequest {
            id,
            r#type: body.location_type,
            target: body.target,
        })
        .await?
        .into_inner();
    gateway
        .harvest(
            &format!("{}:{}", location.r#type, location.target),
            "registered",
        )
        .await?;
    Ok(axum::Json(location_json(&location)).into_response())
}

/// Registers a location and asks for it to be harvested at once. An existing one is a
/// conflict, unless `refresh_on_conflict`: then it is answered, and harvested again.
pub(crate) async fn register_location(
    gateway: &Gateway,
    location_type: &str,
    target: &str,
    refresh_on_conflict: bool,
) -> Result<pb::Location, ApiError> {
    let added = gateway
        .catalog()
        .add_location(pb::AddLocationRequest {
            r#type: location_type.to_owned(),
            target: target.to_owned(),
        })
        .await;
    let location = match added {
        Ok(location) => location.into_inner(),
        Err(status) if status.code() == tonic::Code::AlreadyExists && refresh_on_conflict => {
            gateway
                .locations()
                .await?
                .into_iter()
                .find(|l| l.r#type == location_type && l.target == target)
                .ok_or_else(|| ApiError::conflict(status.message().to_owned()))?
        }
        Err(status) if status.code() == tonic::Code::AlreadyExists => {
            return Err(ApiError::conflict(format!(
                "Location {location_type}:{target} already exists"
            )));
        }
        Err(status) => return Err(status.into()),
    };
    gateway
        .harvest(
            &format!("{}:{}", location.r#type, location.target),
            "registered",
        )
        .await?;
    Ok(location)
}

/// What registering `location_type:target` would add (read now, nothing stored), and whether
/// it is registered already.
pub(crate) async fn preview_location(
    gateway: &Gateway,
    location_type: &str,
    target: &str,
) -> Result<(bool, crate::preview::Preview), ApiError> {
    let previewer = gateway
        .previewer()
        .ok_or_else(|| ApiError::unavailable("Dry runs are not configured on this gateway"))?;
    let exists = gateway
        .locations()
        .await?
        .iter()
        .any(|l| l.r#type == location_type && l.target == target);
    Ok((exists, previewer.preview(location_type, target).await))
}

async fn add_location(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["dryRun", "onConflict"])?;
    let dry_run = params
        .one("dryRun")?
        .is_some_and(|value| matches!(value.to_lowercase().as_str(), "true" | "yes" | "1"));
    let refresh_on_conflict = match params.one("onConflict")? {
        None | Some("reject") => false,
        Some("refresh") => true,
        Some(other) => {
            return Err(ApiError::input(format!(
                "onConflict must be 'reject' or 'refresh', not {other:?}"
            )));
        }
    };
    let body: LocationBody = json_body(&headers, &body)?;
    check_location_type(&gateway, &body.location_type)?;
    if dry_run {
        return dry_run_location(&gateway, &body.location_type, &body.target).await;
    }
    let location = register_location(
        &gateway,
        &body.location_type,
        &body.target,
        refresh_on_conflict,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"location": location_json(&location), "entities": []})),
    )
        .into_response())
}

async fn remove_location(
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    gateway
        .catalog()
        .remove_location(pb::RemoveLocationRequest { id })
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RefreshBody {
    entity_ref: String,
    #[serde(default)]
    #[allow(dead_code)]
    authorization_token: Option<String>,
}

async fn refresh(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: RefreshBody = json_body(&headers, &body)?;
    let targets = gateway
        .catalog()
        .request_refresh(pb::RequestRefreshRequest {
            entity_ref: body.entity_ref.to_lowercase(),
        })
        .await?
        .into_inner()
        .location_keys;
    for key in targets {
        gateway.harvest(&key, "refresh").await?;
    }
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct QueryBody {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    order_by: Vec<OrderBy>,
    #[serde(default)]
    full_text_filter: Option<FullTextBody>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    offset: Option<u32>,
    #[serde(default)]
    total_items: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrderBy {
    field: String,
    #[serde(default)]
    order: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FullTextBody {
    #[serde(default)]
    term: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// `POST /entities/by-query`: the same page, asked with a JSON predicate.
async fn query_entities_by_predicate(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: QueryBody = json_body(&headers, &body)?;
    if body.cursor.as_deref() == Some("") {
        return Err(ApiError::input("cursor must not be empty"));
    }
    let filter = predicate_of(body.query.as_ref())?;
    let order = body
        .order_by
        .iter()
        .map(|o| {
            cadastre_query::order::order_by(&o.field, o.order.as_deref()).map(|o| pb::OrderField {
                field: o.field,
                descending: o.descending,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Projection::parse(&body.fields.iter().map(String::as_str).collect::<Vec<_>>())?;
    let exclude_total = excludes_total(body.total_items.as_deref())?;
    let (full_text_term, full_text_fields) = body
        .full_text_filter
        .map(|f| (f.term.trim().to_owned(), f.fields))
        .unwrap_or_default();
    let request = pb::QueryEntitiesRequest {
        filter,
        order,
        full_text_term,
        full_text_fields,
        fields: body.fields,
        limit: body.limit.unwrap_or(DEFAULT_QUERY_LIMIT),
        offset: body.offset.unwrap_or(0),
        cursor: body.cursor.unwrap_or_default(),
        exclude_total,
    };
    page_answer(&gateway, request).await
}

/// Entities read per page while `GET /entities` streams them.
const LIST_PAGE: u32 = 1_000;

/// The `after` cursor of `GET /entities` (Backstage's legacy pagination).
#[derive(serde::Serialize, Deserialize)]
struct LegacyCursor {
    limit: Option<u32>,
    offset: u32,
}

/// `GET /entities`: every matching entity as one JSON array, streamed page by page; or, with
/// `limit`/`offset`/`after`, one page and a `link` header to the next.
async fn list_entities(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let params = Params::parse(
        query.as_deref(),
        &["filter", "fields", "order", "limit", "offset", "after"],
    )?;
    let filter = filter_of(&params)?;
    Projection::parse(&params.all("fields"))?;
    let order: Vec<pb::OrderField> = cadastre_query::order::parse_order(&params.all("order"))?
        .into_iter()
        .map(|o| pb::OrderField {
            field: o.field,
            descending: o.descending,
        })
        .collect();
    let fields = params.list("fields");
    let mut limit = params.number("limit")?;
    let mut offset = params.number("offset")?;
    if let Some(after) = params.one("after")? {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(after)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LegacyCursor>(&bytes).ok())
            .ok_or_else(|| ApiError::input("Malformed after cursor"))?;
        limit = decoded.limit;
        offset = Some(decoded.offset);
    }
    if limit == Some(0) {
        return Err(ApiError::input("limit must be greater than 0"));
    }
    let request = pb::QueryEntitiesRequest {
        filter,
        order,
        fields,
        exclude_total: true,
        ..Default::default()
    };
    let paginated = limit.is_some() || offset.is_some();
    let offset = offset.unwrap_or(0);
    if let (true, Some(limit)) = (paginated, limit) {
        // One page, and whether there is a next.
        let page = gateway
            .catalog()
            .query_entities(pb::QueryEntitiesRequest {
                limit: limit + 1,
                offset,
                ..request
            })
            .await?
            .into_inner();
        let more = page.items.len() > limit as usize;
        let items: Vec<pb::StoredEntity> = page.items.into_iter().take(limit as usize).collect();
        let mut response = (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json_array(items),
        )
            .into_response();
        if more {
            let next = LegacyCursor {
                limit: Some(limit),
                offset: offset + limit,
            };
            let cursor = base64::engine::general_purpose::STANDARD
                .encode(serde_json::to_vec(&next).unwrap_or_default());
            let mut kept: Vec<String> =
                url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
                    .filter(|(key, _)| !matches!(key.as_ref(), "offset" | "after" | "limit"))
                    .map(|(key, value)| {
                        url::form_urlencoded::Serializer::new(String::new())
                            .append_pair(&key, &value)
                            .finish()
                    })
                    .collect();
            kept.push(
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("after", &cursor)
                    .finish(),
            );
            if let Ok(link) = axum::http::HeaderValue::from_str(&format!(
                "</entities?{}>; rel=\"next\"",
                kept.join("&")
            )) {
                response
                    .headers_mut()
                    .insert(axum::http::header::LINK, link);
            }
        }
        return Ok(response);
    }
    // Everything (after `offset`): streamed, one store page at a time.
    let first = gateway
        .catalog()
        .query_entities(pb::QueryEntitiesRequest {
            limit: LIST_PAGE,
            offset,
            ..request.clone()
        })
        .await?
        .into_inner();
    let catalog = gateway.catalog();
    // Later pages follow the cursor, which carries the filter and order but not the fields.
    let fields = request.fields;
    let chunks = futures::stream::unfold(
        (Some(first), catalog, fields, false),
        |(page, mut catalog, fields, mut wrote_any)| async move {
            let page = page?;
            let mut chunk = String::new();
            for entity in page.items.into_iter().filter_map(|stored| stored.entity) {
                if wrote_any {
                    chunk.push(',');
                }
                wrote_any = true;
                chunk.push_str(&String::from_utf8_lossy(&entity.body_json));
            }
            let next = if page.next_cursor.is_empty() {
                None
            } else {
                match catalog
                    .query_entities(pb::QueryEntitiesRequest {
                        cursor: page.next_cursor,
                        limit: LIST_PAGE,
                        fields: fields.clone(),
                        ..Default::default()
                    })
                    .await
                {
                    Ok(next) => Some(next.into_inner()),
                    Err(status) => {
                        // The status is already sent; the body ends short of its `]`, which a
                        // client sees as malformed JSON rather than as a complete list.
                        tracing::error!(%status, "listing entities failed midway");
                        return Some((
                            Err(std::io::Error::other(status.to_string())),
                            (None, catalog, fields, wrote_any),
                        ));
                    }
                }
            };
            Some((
                Ok::<_, std::io::Error>(Bytes::from(chunk)),
                (next, catalog, fields, wrote_any),
            ))
        },
    );
    let body = futures::stream::once(async { Ok::<_, std::io::Error>(Bytes::from_static(b"[")) })
        .chain(chunks)
        .chain(futures::stream::once(async {
            Ok(Bytes::from_static(b"]"))
        }));
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(body),
    )
        .into_response())
}

async fn remove_entity_by_uid(
    State(gateway): State<Gateway>,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    let found = gateway
        .catalog()
        .get_entity_by_uid(pb::GetEntityByUidRequest { uid })
        .await;
    let entity_ref = match found {
        Ok(stored) => stored.into_inner().entity.map(|e| e.entity_ref),
        Err(status) if status.code() == tonic::Code::NotFound => None,
        Err(status) => return Err(status.into()),
    };
    if let Some(entity_ref) = entity_ref {
        gateway
            .catalog()
            .apply_batch(pb::ApplyBatchRequest {
                removals: vec![entity_ref],
                ..Default::default()
            })
            .await?;
    }
    // Backstage answers 204 whether or not the uid existed.
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn location_by_entity(
    State(gateway): State<Gateway>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let entity_ref = format!("{kind}:{namespace}/{name}").to_lowercase();
    let missing = || ApiError::not_found(format!("No location found for entity {entity_ref}"));
    let stored = match gateway
        .catalog()
        .get_entity_by_ref(pb::GetEntityByRefRequest {
            entity_ref: entity_ref.clone(),
        })
        .await
    {
        Ok(stored) => stored.into_inner(),
        Err(status) if status.code() == tonic::Code::NotFound => return Err(missing()),
        Err(status) => return Err(status.into()),
    };
    let entity = entity_json(&stored, &Projection::everything())?;
    let origin = entity["metadata"]["annotations"]["backstage.io/managed-by-origin-location"]
        .as_str()
        .ok_or_else(missing)?
        .to_owned();
    let location = gateway
        .locations()
        .await?
        .into_iter()
        .find(|l| format!("{}:{}", l.r#type, l.target) == origin)
        .ok_or_else(missing)?;
    Ok(axum::Json(location_json(&location)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FacetsBody {
    facets: Vec<String>,
    #[serde(default)]
    query: Option<Value>,
}

/// `POST /entity-facets`: facets over a JSON predicate.
async fn facets_by_predicate(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: FacetsBody = json_body(&headers, &body)?;
    let filter = predicate_of(body.query.as_ref())?;
    facets_answer(&gateway, body.facets, filter).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ValidateBody {
    entity: Value,
    location: String,
}

/// `POST /validate-entity`: the entity checked with the catalog's rules, nothing stored.
async fn validate_entity(headers: HeaderMap, body: Bytes) -> Response {
    let errors = |messages: Vec<Value>| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "errors": messages })),
        )
            .into_response()
    };
    let body: ValidateBody = match json_body(&headers, &body) {
        Ok(body) => body,
        Err(error) => return errors(vec![json!({"name": error.name, "message": error.message})]),
    };
    if !body.location.starts_with("url:") {
        return errors(vec![json!({
            "name": "InputError",
            "message": format!("Invalid location ref {:?}, only 'url:<target>' is supported", body.location)
        })]);
    }
    match cadastre_model::Validator::default().validate(body.entity, None) {
        Ok(_) => StatusCode::OK.into_response(),
        Err(findings) => errors(
            findings
                .iter()
                .filter(|finding| finding.is_error())
                .map(|finding| {
                    json!({
                        "name": "InputError",
                        "message": if finding.path.is_empty() {
                            finding.message.clone()
                        } else {
                            format!("{}: {}", finding.path, finding.message)
                        },
                        "rule": finding.rule.id(),
                    })
                })
                .collect(),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AnalyzeBody {
    location: AnalyzedLocation,
    #[serde(default)]
    catalog_filename: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AnalyzedLocation {
    #[serde(rename = "type")]
    #[allow(dead_code)]
    location_type: String,
    target: String,
}

/// `POST /analyze-location`: the catalog files the repository already holds (read as a git
/// location, with the harvester's and processor's code), or, when it holds none (or cannot be
/// read), a skeleton Component as Backstage proposes.
async fn analyze_location(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: AnalyzeBody = json_body(&headers, &body)?;
    let url = url::Url::parse(&body.location.target)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https" | "file"))
        .ok_or_else(|| ApiError::input("The given location.target is not a URL"))?;
    let existing = existing_entity_files(&gateway, &url, body.catalog_filename.as_deref()).await?;
    if !existing.is_empty() {
        return Ok(axum::Json(json!({
            "existingEntityFiles": existing,
            "generateEntities": [],
        }))
        .into_response());
    }
    let segments: Vec<&str> = url
        .path_segments()
        .map(|segments| segments.filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    // `https://host/owner/repo/…` names the repository second; a local path names it last.
    let repository = if url.scheme() == "file" {
        segments.last()
    } else {
        segments.get(1).or(segments.first())
    }
    .map(|name| name.trim_end_matches(".git"))
    .unwrap_or("unnamed");
    let name: String = repository
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut annotations = serde_json::Map::new();
    let host = url.host_str().unwrap_or_default().to_lowercase();
    let slug_key = match host.as_str() {
        "github.com" => Some("github.com/project-slug"),
        "gitlab.com" => Some("gitlab.com/project-slug"),
        "bitbucket.org" => Some("bitbucket.org/repo-slug"),
        "dev.azure.com" => Some("dev.azure.com/project-repo"),
        _ => None,
    };
    if let (Some(key), [owner, repo, ..]) = (slug_key, segments.as_slice()) {
        annotations.insert(
            key.into(),
            json!(format!("{owner}/{}", repo.trim_end_matches(".git"))),
        );
    }
    Ok(axum::Json(json!({
        "existingEntityFiles": [],
        "generateEntities": [{
            "entity": {
                "apiVersion": "backstage.io/v1alpha1",
                "kind": "Component",
                "metadata": {"name": name, "annotations": annotations},
                "spec": {"type": "other", "lifecycle": "unknown"},
            },
            "fields": [{
                "field": "spec.owner",
                "description": "Entity owner: a group or user ref, e.g. group:default/team-a",
                "state": "needsUserInput",
                "value": null,
            }],
        }],
    }))
    .into_response())
}

/// The entities in the repository's `catalogFilename` files (default `catalog-info.yaml`,
/// anywhere in it), each with its file and whether the catalog has it already.
async fn existing_entity_files(
    gateway: &Gateway,
    repository: &url::Url,
    catalog_filename: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let Some(previewer) = gateway.previewer() else {
        return Ok(Vec::new());
    };
    let filename = catalog_filename.unwrap_or("catalog-info.yaml");
    if filename.is_empty() || filename.contains(['/', '#', '&']) {
        return Err(ApiError::input(format!(
            "catalogFilename must be a file name, not {filename:?}"
        )));
    }
    let mut repository = repository.clone();
    repository.set_fragment(None);
    let target = format!("{repository}#path=**/{filename}");
    let found = match previewer.entities_in("git", &target).await {
        Ok(found) => found,
        Err(reason) => {
            tracing::info!(%repository, %reason, "analyze-location: the repository cannot be read");
            return Ok(Vec::new());
        }
    };
    let refs: Vec<String> = found
        .iter()
        .map(|found| crate::preview::entity_ref(&found.entity))
        .collect();
    let registered = gateway
        .catalog()
        .get_entities_by_refs(pb::GetEntitiesByRefsRequest {
            entity_refs: refs,
            fields: vec!["kind".into()],
            filter: None,
        })
        .await?
        .into_inner()
        .items;
    Ok(found
        .into_iter()
        .zip(registered)
        .map(|(found, registered)| {
            json!({
                "entity": found.entity,
                "isRegistered": registered.entity.is_some(),
                "location": {"type": "url", "target": found.file},
            })
        })
        .collect())
}

async fn openapi() -> Response {
    axum::Json(crate::openapi::document()).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationsQueryBody {
    #[serde(default)]
    query: Option<Value>,
    #[serde(default)]
    limit: Option<u32>,
    #[serde(default)]
    cursor: Option<String>,
}

/// The `POST /locations/by-query` cursor: the page size, the last id, the query.
#[derive(serde::Serialize, Deserialize)]
struct LocationsCursor {
    limit: u32,
    #[serde(rename = "afterId")]
    after_id: String,
    query: Option<Value>,
}

/// Whether a location (its `id`, `type`, `target`, `entityRef`) satisfies `predicate`;
/// values compare case-insensitively, as entity predicates do.
fn location_matches(predicate: &Predicate, location: &pb::Location) -> bool {
    use cadastre_query::Condition;
    match predicate {
        Predicate::All(items) => items.iter().all(|p| location_matches(p, location)),
        Predicate::Any(items) => items.iter().any(|p| location_matches(p, location)),
        Predicate::Not(inner) => !location_matches(inner, location),
        Predicate::Field { key, condition } => {
            let value = match key.as_str() {
                "id" => Some(&location.id),
                "type" => Some(&location.r#type),
                "target" => Some(&location.target),
                "entityref" => Some(&location.entity_ref),
                _ => None,
            }
            .map(|value| value.to_lowercase());
            match condition {
                Condition::Exists(exists) => value.is_some() == *exists,
                Condition::In(values) => value.is_some_and(|v| values.contains(&v)),
                Condition::HasPrefix(prefix) => value.is_some_and(|v| v.starts_with(prefix)),
                Condition::Relation { .. } => false,
            }
        }
    }
}

/// `POST /locations/by-query`: registered locations matching a predicate, ordered by id, in
/// pages with a cursor.
async fn query_locations(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let body: LocationsQueryBody = json_body(&headers, &body)?;
    let (limit, after, query) = match body.cursor.as_deref() {
        Some(cursor) => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(cursor)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<LocationsCursor>(&bytes).ok())
                .ok_or_else(|| ApiError::input("Malformed cursor"))?;
            (decoded.limit, Some(decoded.after_id), decoded.query)
        }
        None => (body.limit.unwrap_or(1_000), None, body.query),
    };
    if limit == 0 {
        return Err(ApiError::input("limit must be at least 1"));
    }
    let predicate = query
        .as_ref()
        .map(cadastre_query::json_predicate::parse)
        .transpose()?;
    let mut matching: Vec<pb::Location> = gateway
        .locations()
        .await?
        .into_iter()
        .filter(|l| predicate.as_ref().is_none_or(|p| location_matches(p, l)))
        .collect();
    matching.sort_by(|a, b| a.id.cmp(&b.id));
    let total = matching.len();
    let page: Vec<&pb::Location> = matching
        .iter()
        .filter(|l| after.as_deref().is_none_or(|after| l.id.as_str() > after))
        .take(limit as usize + 1)
        .collect();
    let more = page.len() > limit as usize;
    let items: Vec<Value> = page
        .iter()
        .take(limit as usize)
        .map(|l| location_json(l))
        .collect();
    let mut page_info = serde_json::Map::new();
    if more && let Some(last) = page.get(limit as usize - 1) {
        let cursor = LocationsCursor {
            limit,
            after_id: last.id.clone(),
            query,
        };
        page_info.insert(
            "nextCursor".into(),
            Value::String(
                base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(&cursor).unwrap_or_default()),
            ),
        );
    }
    Ok(
        axum::Json(json!({"items": items, "totalItems": total, "pageInfo": page_info}))
            .into_response(),
    )
}
