//! The OpenAPI 3.1 document of the gateway, generated from one table of its operations
//! ([`OPERATIONS`]), served at `/api/catalog/openapi.json`. A test walks the table against the
//! running router, so the document cannot name a route that does not answer.

use serde_json::{Value, json};

/// One operation: method, path (under `/api`), summary, query parameters, whether it takes a
/// JSON body, and its success status.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub query: &'static [&'static str],
    pub body: bool,
    pub success: u16,
}

const fn op(
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    query: &'static [&'static str],
    body: bool,
    success: u16,
) -> Operation {
    Operation {
        method,
        path,
        summary,
        query,
        body,
        success,
    }
}

const FILTER: &[&str] = &["filter", "fields"];
const BY_QUERY: &[&str] = crate::catalog::BY_QUERY_PARAMS;

/// Every operation the gateway serves (webhooks aside, which are documented in the README).
pub const OPERATIONS: &[Operation] = &[
    op(
        "get",
        "/catalog/entities",
        "Every matching entity, or one page of them",
        &["filter", "fields", "order", "limit", "offset", "after"],
        false,
        200,
    ),
    op(
        "get",
        "/catalog/entities/by-query",
        "A page of entities, with a total and cursors",
        BY_QUERY,
        false,
        200,
    ),
    op(
        "post",
        "/catalog/entities/by-query",
        "A page of entities selected by a JSON predicate",
        &[],
        true,
        200,
    ),
    op(
        "post",
        "/catalog/entities/by-refs",
        "Entities by ref, in order, null where unknown",
        FILTER,
        true,
        200,
    ),
    op(
        "get",
        "/catalog/entities/by-uid/{uid}",
        "One entity by uid",
        &[],
        false,
        200,
    ),
    op(
        "delete",
        "/catalog/entities/by-uid/{uid}",
        "Remove an entity",
        &[],
        false,
        204,
    ),
    op(
        "get",
        "/catalog/entities/by-name/{kind}/{namespace}/{name}",
        "One entity by name",
        &[],
        false,
        200,
    ),
    op(
        "get",
        "/catalog/entities/by-name/{kind}/{namespace}/{name}/ancestry",
        "The entity and the locations that emitted it",
        &[],
        false,
        200,
    ),
    op(
        "get",
        "/catalog/entity-facets",
        "Value counts of fields",
        &["facet", "filter"],
        false,
        200,
    ),
    op(
        "post",
        "/catalog/entity-facets",
        "Value counts of fields over a JSON predicate",
        &[],
        true,
        200,
    ),
    op(
        "get",
        "/catalog/locations",
        "Registered locations",
        &[],
        false,
        200,
    ),
    op(
        "post",
        "/catalog/locations",
        "Register a location (harvested at once); with dryRun, read it now and answer what it would add",
        &["dryRun", "onConflict"],
        true,
        201,
    ),
    op(
        "get",
        "/catalog/locations/{id}",
        "One registered location",
        &[],
        false,
        200,
    ),
    op(
        "put",
        "/catalog/locations/{id}",
        "Point a location at another type and target, keeping its id",
        &[],
        true,
        200,
    ),
    op(
        "delete",
        "/catalog/locations/{id}",
        "Remove a location and what it produced",
        &[],
        false,
        204,
    ),
    op(
        "get",
        "/catalog/locations/by-entity/{kind}/{namespace}/{name}",
        "The registered location an entity came from",
        &[],
        false,
        200,
    ),
    op(
        "post",
        "/catalog/refresh",
        "Harvest an entity's locations again",
        &[],
        true,
        200,
    ),
    op(
        "post",
        "/catalog/validate-entity",
        "Check an entity with the catalog's rules",
        &[],
        true,
        200,
    ),
    op(
        "post",
        "/catalog/analyze-location",
        "Propose an entity for a repository",
        &[],
        true,
        200,
    ),
    op(
        "get",
        "/catalog/openapi.json",
        "This document",
        &[],
        false,
        200,
    ),
    op(
        "get",
        "/search/query",
        "Full-text search (Backstage's search API)",
        &["term", "types", "filters", "pageCursor", "pageLimit"],
        false,
        200,
    ),
    op(
        "get",
        "/search/suggest",
        "Completions for the search box",
        &["prefix", "limit"],
        false,
        200,
    ),
    op(
        "get",
        "/cadastre/v1/entities/{kind}/{namespace}/{name}/history",
        "Every change of an entity",
        &["limit"],
        false,
        200,
    ),
    op(
        "get",
        "/cadastre/v1/entities/{kind}/{namespace}/{name}/as-of/{time}",
        "An entity as it was at a time",
        &[],
        false,
        200,
    ),
    op(
        "get",
        "/cadastre/v1/receipts",
        "Ingestion receipts",
        &["location", "limit"],
        false,
        200,
    ),
    op(
        "get",
        "/cadastre/v1/status",
        "The change feed's head, read indexes still being built, and search's progress",
        &[],
        false,
        200,
    ),
    op(
        "get",
        "/cadastre/v1/processing-errors",
        "Kept processing errors by location, entity or owner",
        &["location", "entity", "owner", "limit"],
        false,
        200,
    ),
];

/// The document.
pub fn document() -> Value {
    let error = json!({"$ref": "#/components/schemas/Error"});
    let mut paths = serde_json::Map::new();
    for operation in OPERATIONS {
        let path_parameters = operation
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{').and_then(|p| p.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}));
        let query_parameters = operation.query.iter().map(|name| {
            json!({"name": name, "in": "query", "required": false, "schema": {"type": "string"}})
        });
        let mut entry = json!({
            "summary": operation.summary,
            "parameters": path_parameters.chain(query_parameters).collect::<Vec<_>>(),
            "responses": {
                operation.success.to_string(): {"description": "Success"},
                "4XX": {"description": "The request was refused", "content": {"application/json": {"schema": error}}},
                "5XX": {"description": "A backend failed", "content": {"application/json": {"schema": error}}},
            },
        });
        if operation.body {
            entry["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": {"type": "object"}}},
            });
        }
        let path = paths
            .entry(format!("/api{}", operation.path))
            .or_insert_with(|| json!({}));
        path[operation.method] = entry;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Cadastre",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Backstage's catalog REST API, search, and what Cadastre adds.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {
                "type": "object",
                "required": ["error", "request", "response"],
                "properties": {
                    "error": {"type": "object", "properties": {"name": {"type": "string"}, "message": {"type": "string"}}},
                    "request": {"type": "object", "properties": {"method": {"type": "string"}, "url": {"type": "string"}}},
                    "response": {"type": "object", "properties": {"statusCode": {"type": "integer"}}},
                },
            }},
        },
        "security": [{"bearer": []}, {}],
        "paths": paths,
    })
}
