//! `POST /api/cadastre/v1/validate-files`: a pull request's catalog files checked against the
//! whole catalog before merge, nothing stored. Each file is read with the catalog's own rules
//! (line and column); then, against what the catalog holds: owners and other references that
//! lead nowhere, refs another location already holds or that the set defines twice, and what
//! would change — entities created, updated (which fields) or unchanged, and, when the set's
//! location is given, entities it would no longer produce.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use cadastre_model::{CatalogReader, Limits, PlaceholderReader, ReadOutcome, Validator};
use cadastre_proto::v1 as pb;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Gateway;
use crate::error::ApiError;

/// Files per request, at most.
const MAX_FILES: usize = 1_000;
/// Annotations the catalog adds itself: not a change the author made.
const CATALOG_ANNOTATIONS: &[&str] = &[
    "backstage.io/managed-by-location",
    "backstage.io/managed-by-origin-location",
    "backstage.io/source-location",
    "backstage.io/view-url",
    "backstage.io/edit-url",
    "backstage.io/orphan",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesBody {
    files: Vec<SubmittedFile>,
    /// The location (`type:target`) the files are read through, when known.
    #[serde(default)]
    location: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmittedFile {
    path: String,
    content: String,
}

/// An entity the set defines: its file, body and the relations it emits.
struct Defined {
    file: usize,
    entity: Value,
    /// (relation type, target ref).
    edges: Vec<(String, String)>,
}

/// Placeholders (`$text`, `$json`, `$yaml`) are not followed in a dry run.
struct NoReads;

impl PlaceholderReader for NoReads {
    fn read(&self, _target: &str) -> Result<ReadOutcome, String> {
        Ok(ReadOutcome::Deferred(
            "placeholders are not read in a dry run".into(),
        ))
    }
}

fn finding_json(finding: &cadastre_model::Finding) -> Value {
    json!({
        "rule": finding.rule.id(),
        "severity": if finding.is_error() { "error" } else { "warning" },
        "path": finding.path,
        "message": finding.message,
        "line": finding.position.map(|p| p.line),
        "column": finding.position.map(|p| p.column),
    })
}

fn problem(rule: &str, error: bool, path: &str, message: String) -> Value {
    json!({
        "rule": rule,
        "severity": if error { "error" } else { "warning" },
        "path": path,
        "message": message,
        "line": null,
        "column": null,
    })
}

/// The parts of an entity its author writes (the catalog's own annotations, uid and etag
/// aside), by top-level field.
fn authored(entity: &Value) -> BTreeMap<String, Value> {
    let mut fields = BTreeMap::new();
    if let Some(spec) = entity.get("spec") {
        fields.insert("spec".to_owned(), spec.clone());
    }
    if let Some(metadata) = entity.get("metadata").and_then(Value::as_object) {
        for (key, value) in metadata {
            let value = match key.as_str() {
                "uid" | "etag" | "namespace" => continue,
                "annotations" => {
                    let kept: serde_json::Map<String, Value> = value
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, _)| !CATALOG_ANNOTATIONS.contains(&k.as_str()))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    if kept.is_empty() {
                        continue;
                    }
                    Value::Object(kept)
                }
                _ => value.clone(),
            };
            fields.insert(format!("metadata.{key}"), value);
        }
    }
    fields
}

pub async fn validate_files(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: FilesBody = crate::catalog::json_body(&headers, &body)?;
    if body.files.is_empty() || body.files.len() > MAX_FILES {
        return Err(ApiError::input(format!(
            "Give between 1 and {MAX_FILES} files"
        )));
    }
    let validator = Validator::default();
    let reader = CatalogReader {
        validator: &validator,
        limits: Limits::default(),
        placeholders: &NoReads,
    };
    // 1. Each file on its own, with the catalog's rules.
    let mut files: Vec<(String, Vec<Value>)> = Vec::new();
    let mut defined: BTreeMap<String, Defined> = BTreeMap::new();
    for (index, file) in body.files.iter().enumerate() {
        let report = reader.read(&file.path, file.content.as_bytes());
        let mut problems: Vec<Value> = report.all_findings().map(finding_json).collect();
        for valid in report.valid_entities() {
            let entity_ref = valid.entity.canonical_ref();
            let edges: Vec<(String, String)> = valid
                .edges
                .iter()
                .filter(|edge| edge.source.eq_ignore_ascii_case(&entity_ref))
                .map(|edge| (edge.relation_type.clone(), edge.target.to_lowercase()))
                .collect();
            if let Some(first) = defined.get(&entity_ref).map(|d| d.file) {
                problems.push(problem(
                    "entity-ref-conflict",
                    true,
                    "metadata.name",
                    format!("{entity_ref} is also defined in {}", body.files[first].path),
                ));
                continue;
            }
            defined.insert(
                entity_ref,
                Defined {
                    file: index,
                    entity: valid.entity.to_value(),
                    edges,
                },
            );
        }
        files.push((file.path.clone(), problems));
    }
    // 2. Against the catalog: what the set's refs and their targets are there.
    let targets: BTreeSet<String> = defined
        .values()
        .flat_map(|d| d.edges.iter().map(|(_, target)| target.clone()))
        .filter(|target| !defined.contains_key(target))
        .collect();
    let lookup: Vec<String> = defined
        .keys()
        .cloned()
        .chain(targets.iter().cloned())
        .collect();
    let mut stored: HashMap<String, pb::StoredEntity> = HashMap::new();
    for chunk in lookup.chunks(500) {
        let items = gateway
            .catalog()
            .get_entities_by_refs(pb::GetEntitiesByRefsRequest {
                entity_refs: chunk.to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .items;
        for (entity_ref, item) in chunk.iter().zip(items) {
            if let Some(found) = item.entity {
                stored.insert(entity_ref.clone(), found);
            }
        }
    }
    let mut changes = Vec::new();
    for (
        entity_ref,
        Defined {
            file: index,
            entity,
            edges,
        },
    ) in &defined
    {
        for (relation_type, target) in edges {
            if !stored.contains_key(target) && !defined.contains_key(target) {
                let owner = relation_type == "ownedBy";
                files[*index].1.push(problem(
                    if owner {
                        "owner-unknown"
                    } else {
                        "reference-unknown"
                    },
                    owner,
                    if owner { "spec.owner" } else { "spec" },
                    format!(
                        "{entity_ref} {relation_type} {target}, which the catalog does not hold"
                    ),
                ));
            }
        }
        let Some(existing) = stored.get(entity_ref) else {
            changes.push(json!({"entityRef": entity_ref, "change": "created", "fields": []}));
            continue;
        };
        let holder = &existing.location_key;
        if let Some(location) = &body.location
            && !holder.is_empty()
            && !holder.starts_with(location.trim_end_matches('/'))
            && existing.origin_location != *location
        {
            files[*index].1.push(problem(
                "entity-ref-conflict",
                true,
                "metadata.name",
                format!("{entity_ref} is already held by location {holder}"),
            ));
            continue;
        }
        let current: Value = existing
            .entity
            .as_ref()
            .and_then(|e| serde_json::from_slice(&e.body_json).ok())
            .unwrap_or(Value::Null);
        let (before, after) = (authored(&current), authored(entity));
        let fields: Vec<&String> = before
            .keys()
            .chain(after.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .filter(|field| before.get(*field) != after.get(*field))
            .collect();
        let change = if fields.is_empty() {
            "unchanged"
        } else {
            "updated"
        };
        changes.push(json!({"entityRef": entity_ref, "change": change, "fields": fields}));
    }
    // 3. What the location holds that the set no longer defines.
    let mut removed = Vec::new();
    if let Some(location) = &body.location {
        let predicate = cadastre_query::Predicate::equals(
            "metadata.annotations.backstage.io/managed-by-origin-location",
            location,
        );
        let mut cursor = String::new();
        loop {
            let page = gateway
                .catalog()
                .query_entities(pb::QueryEntitiesRequest {
                    filter: Some(cadastre_query::wire::to_proto(&predicate)),
                    fields: vec![
                        "kind".into(),
                        "metadata.name".into(),
                        "metadata.namespace".into(),
                    ],
                    limit: 1_000,
                    cursor: cursor.clone(),
                    exclude_total: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for item in page.items {
                if let Some(entity) = item.entity
                    && !defined.contains_key(&entity.entity_ref)
                {
                    removed.push(entity.entity_ref);
                }
            }
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
    }
    let valid = files
        .iter()
        .all(|(_, problems)| problems.iter().all(|p| p["severity"] != "error"));
    let files: Vec<Value> = files
        .into_iter()
        .map(|(path, problems)| json!({"path": path, "findings": problems}))
        .collect();
    Ok(axum::Json(json!({
        "valid": valid,
        "files": files,
        "changes": changes,
        "removed": removed,
    }))
    .into_response())
}
