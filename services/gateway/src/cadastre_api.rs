//! What goes beyond Backstage, under `/api/cadastre/v1`: an entity's history and the entity as
//! it was at a time, ingestion receipts, processing errors by location, entity or owner, and
//! how far the store and search have come (`/status`).

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cadastre_proto::v1 as pb;
use serde_json::{Value, json};

use crate::Gateway;
use crate::error::ApiError;
use crate::params::Params;

pub fn routes() -> Router<Gateway> {
    Router::new()
        .route("/entities/{kind}/{namespace}/{name}/history", get(history))
        .route(
            "/entities/{kind}/{namespace}/{name}/as-of/{time}",
            get(as_of),
        )
        .route("/receipts", get(receipts))
        .route("/status", get(status))
        .route("/processing-errors", get(processing_errors))
        .route(
            "/validate-files",
            axum::routing::post(crate::dry_run::validate_files),
        )
}

fn entry_json(entry: pb::HistoryEntry) -> Value {
    let body: Value = serde_json::from_slice(&entry.body_json).unwrap_or(Value::Null);
    json!({
        "entityRef": entry.entity_ref,
        "uid": entry.uid,
        "generation": entry.generation,
        "change": entry.change,
        "locationKey": entry.location_key,
        "commit": entry.commit,
        "recordedAt": entry.recorded_at,
        "entity": body,
    })
}

async fn history(
    State(gateway): State<Gateway>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["limit"])?;
    let entries = gateway
        .catalog()
        .get_entity_history(pb::GetEntityHistoryRequest {
            entity_ref: format!("{kind}:{namespace}/{name}").to_lowercase(),
            limit: params.number("limit")?.unwrap_or(0),
        })
        .await?
        .into_inner()
        .entries;
    let items: Vec<Value> = entries.into_iter().map(entry_json).collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn as_of(
    State(gateway): State<Gateway>,
    Path((kind, namespace, name, time)): Path<(String, String, String, String)>,
) -> Result<Response, ApiError> {
    let entry = gateway
        .catalog()
        .get_entity_as_of(pb::GetEntityAsOfRequest {
            entity_ref: format!("{kind}:{namespace}/{name}").to_lowercase(),
            as_of: time,
        })
        .await?
        .into_inner();
    Ok(axum::Json(entry_json(entry)).into_response())
}

/// The change feed's head, the read indexes a first import still builds, and how far search
/// has applied the feed (when search is configured): an import is done, and reads as fast as
/// they get, once `indexesPending` is 0 and search's sequence reaches the feed's.
async fn status(State(gateway): State<Gateway>) -> Result<Response, ApiError> {
    let head = gateway
        .catalog()
        .get_feed_head(pb::GetFeedHeadRequest {})
        .await?
        .into_inner();
    let search = match gateway.search() {
        Ok(mut search) => {
            let index = search
                .get_index_status(pb::GetIndexStatusRequest {})
                .await?
                .into_inner();
            json!({
                "backend": index.backend, "index": index.index, "documents": index.documents,
                "sequence": index.sequence, "rebuilding": index.rebuilding,
            })
        }
        Err(_) => Value::Null,
    };
    Ok(axum::Json(json!({
        "feedSequence": head.sequence,
        "indexesPending": head.indexes_pending,
        "search": search,
    }))
    .into_response())
}

async fn receipts(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["location", "limit"])?;
    let receipts = gateway
        .catalog()
        .list_harvest_receipts(pb::ListHarvestReceiptsRequest {
            location_key: params.one("location")?.unwrap_or_default().to_owned(),
            limit: params.number("limit")?.unwrap_or(0),
        })
        .await?
        .into_inner()
        .receipts;
    let items: Vec<Value> = receipts
        .into_iter()
        .map(|r| {
            json!({
                "harvestId": r.harvest_id, "locationKey": r.location_key, "trigger": r.trigger,
                "reason": r.reason, "commit": r.commit, "filesRead": r.files_read,
                "filesUnchanged": r.files_unchanged, "created": r.created, "updated": r.updated,
                "unchanged": r.unchanged, "removed": r.removed, "failed": r.failed,
                "conflicts": r.conflicts, "changedRefs": r.changed_refs, "removedRefs": r.removed_refs,
                "failedFiles": r.failed_files, "harvestStartedAt": r.harvest_started_at,
                "harvestFinishedAt": r.harvest_finished_at, "processedAt": r.processed_at,
                "appliedAt": r.applied_at, "parts": r.parts, "partsApplied": r.parts_applied,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}

async fn processing_errors(
    State(gateway): State<Gateway>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    use pb::list_processing_errors_request::Scope;
    let params = Params::parse(query.as_deref(), &["location", "entity", "owner", "limit"])?;
    let scopes = [
        params
            .one("location")?
            .map(|v| Scope::LocationKey(v.to_owned())),
        params
            .one("entity")?
            .map(|v| Scope::EntityRef(v.to_lowercase())),
        params
            .one("owner")?
            .map(|v| Scope::OwnerRef(v.to_lowercase())),
    ];
    let mut given = scopes.into_iter().flatten();
    let (Some(scope), None) = (given.next(), given.next()) else {
        return Err(ApiError::input(
            "Give exactly one of the query parameters location, entity or owner",
        ));
    };
    let errors = gateway
        .catalog()
        .list_processing_errors(pb::ListProcessingErrorsRequest {
            scope: Some(scope),
            limit: params.number("limit")?.unwrap_or(0),
            cursor: String::new(),
        })
        .await?
        .into_inner()
        .errors;
    let items: Vec<Value> = errors
        .into_iter()
        .map(|error| {
            let finding = error.finding.unwrap_or_default();
            json!({
                "locationKey": error.location_key,
                "entityRef": error.entity_ref,
                "rule": finding.rule,
                "path": finding.path,
                "message": finding.message,
                "file": finding.file,
                "line": finding.position.map(|p| p.line),
                "column": finding.position.map(|p| p.column),
                "recordedAt": error.recorded_at,
            })
        })
        .collect();
    Ok(axum::Json(json!({ "items": items })).into_response())
}
