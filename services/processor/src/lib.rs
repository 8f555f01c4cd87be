//! processor: turns what the harvester read into what the store keeps.
//!
//! Stateless: one [`HarvestedLocation`](pb::HarvestedLocation) in, one
//! [`Processed`] out — a [`ProcessedBatch`](pb::ProcessedBatch) for catalog-store (entities
//! with their relations and well-known annotations, every finding kept against the file and
//! entity that caused it) and the harvest requests that Location entities fan out to.
//! Replicas share the work as one durable consumer on the bus.
//!
//! Which location holds an entity, and what happens to entities a location stops producing,
//! is decided by the store in the batch's transaction (it knows every holder); the processor
//! says which file locations the batch covers completely (`replaced_locations`).

pub mod service;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cadastre_model::entity::annotations;
use cadastre_model::placeholder::resolve_target;
use cadastre_model::{
    CatalogReader, Finding, Limits, PlaceholderReader, ReadOutcome, Rule, Severity, Validator,
};
use cadastre_proto::v1 as pb;
use serde_json::Value;
use sha1::{Digest, Sha1};

/// Location types a Location entity may point at.
pub const LOCATION_TYPES: [&str; 3] = ["file", "url", "git"];

#[derive(Debug, Clone)]
pub struct Settings {
    /// Location entities may chain this deep (a registered location is depth 0).
    pub max_fan_out_depth: u32,
    pub limits: Limits,
    /// Which kinds may come from which locations; none: every kind from anywhere.
    pub kind_rules: Vec<KindRule>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_fan_out_depth: 8,
            limits: Limits::default(),
            kind_rules: Vec::new(),
        }
    }
}

/// Kinds allowed from the locations a rule names (as Backstage's `catalog.rules`): an
/// entity is kept when some rule matching its location allows its kind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KindRule {
    /// Kinds, case-insensitive.
    pub allow: Vec<String>,
    /// Only locations of this type (`url`, `git`, `file`), if given.
    pub location_type: Option<String>,
    /// Only locations whose target starts with this, if given.
    pub target_prefix: Option<String>,
}

impl KindRule {
    fn matches(&self, location_key: &str) -> bool {
        let (location_type, target) = location_key.split_once(':').unwrap_or(("", location_key));
        self.location_type
            .as_deref()
            .is_none_or(|t| t == location_type)
            && self
                .target_prefix
                .as_deref()
                .is_none_or(|p| target.starts_with(p))
    }
}

/// Whether `kind` may come from the registered location `origin` under `rules`.
pub fn kind_allowed(rules: &[KindRule], kind: &str, origin: &str) -> bool {
    rules.is_empty()
        || rules
            .iter()
            .filter(|rule| rule.matches(origin))
            .any(|rule| rule.allow.iter().any(|k| k.eq_ignore_ascii_case(kind)))
}

/// The processor's output for one harvest.
#[derive(Debug, Clone, Default)]
pub struct Processed {
    pub batch: pb::ProcessedBatch,
    /// New harvest targets from Location entities.
    pub fan_out: Vec<pb::HarvestRequest>,
    pub summary: Summary,
}

/// Counts for the ingestion receipt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: u32,
    pub entities: u32,
    /// Documents refused (with errors kept against their file).
    pub failed_documents: u32,
    pub errors: u32,
    pub warnings: u32,
}

#[derive(Debug)]
pub struct Processor {
    validator: Validator,
    settings: Settings,
}

impl Processor {
    pub fn new(validator: Validator, settings: Settings) -> Self {
        Processor {
            validator,
            settings,
        }
    }

    /// Processes one harvest. Never fails: every problem becomes a kept processing error.
    pub fn process(&self, harvested: &pb::HarvestedLocation) -> Processed {
        let location_type = location_type(&harvested.location_key);
        let origin = if harvested.origin_location_key.is_empty() {
            harvested.location_key.clone()
        } else {
            harvested.origin_location_key.clone()
        };
        let placeholders = Attachments::new(harvested);
        let reader = CatalogReader {
            validator: &self.validator,
            limits: self.settings.limits,
            placeholders: &placeholders,
        };
        let mut processed = Processed::default();
        let mut upserts = Vec::new();
        let mut errors: BTreeMap<String, Vec<pb::ProcessingError>> = BTreeMap::new();
        let mut replaced = BTreeSet::new();

        // Problems reading the location itself belong to it; they travel in the first part
        // of a harvest, so only that part replaces them.
        if harvested.part == 0 {
            errors.insert(
                harvested.location_key.clone(),
                harvested
                    .errors
                    .iter()
                    .map(|finding| pb::ProcessingError {
                        location_key: harvested.location_key.clone(),
                        finding: Some(finding.clone()),
                        ..Default::default()
                    })
                    .collect(),
            );
        }

        let mut failed_files = BTreeSet::new();
        for document in &harvested.documents {
            processed.summary.files += 1;
            let file_key = format!("{location_type}:{}", document.target);
            replaced.insert(file_key.clone());
            let file_errors = errors.entry(file_key.clone()).or_default();
            let report = reader.read(&document.target, &document.content);
            let mut keep = |finding: &Finding, entity_ref: Option<&str>| {
                match finding.severity {
                    Severity::Error => {
                        processed.summary.errors += 1;
                        failed_files.insert(document.target.clone());
                    }
                    Severity::Warning => processed.summary.warnings += 1,
                }
                file_errors.push(to_proto_error(
                    &file_key,
                    entity_ref,
                    finding,
                    &document.target,
                ));
            };
            for finding in &report.findings {
                keep(finding, None);
            }
            for doc in &report.documents {
                for finding in &doc.findings {
                    keep(finding, doc.entity_ref.as_deref());
                }
                let Some(valid) = &doc.entity else {
                    processed.summary.failed_documents += 1;
                    continue;
                };
                let entity_ref = valid.entity.canonical_ref();
                if !kind_allowed(&self.settings.kind_rules, &valid.entity.kind, &origin) {
                    let finding = Finding::error(
                        Rule::KindNotAllowed,
                        "kind",
                        format!(
                            "kind {} may not come from location {origin} (processor.kind_rules)",
                            valid.entity.kind
                        ),
                    );
                    keep(&finding, Some(&entity_ref));
                    processed.summary.failed_documents += 1;
                    continue;
                }
                let mut body = valid.entity.to_value();
                if let Some(object) = body.as_object_mut() {
                    object.remove("relations");
                    object.remove("status");
                }
                add_annotations(
                    &mut body,
                    location_type,
                    &document.target,
                    &file_key,
                    &origin,
                );
                if valid.entity.kind.eq_ignore_ascii_case("Location") {
                    match self.fan_out(harvested, &origin, &file_key, &entity_ref, &body) {
                        Ok(requests) => processed.fan_out.extend(requests),
                        Err(finding) => {
                            keep(&finding, Some(&entity_ref));
                        }
                    }
                }
                processed.summary.entities += 1;
                upserts.push(pb::EntityUpsert {
                    body_json: body.to_string().into_bytes(),
                    edges: valid
                        .edges
                        .iter()
                        .map(|edge| pb::RelationEdge {
                            source_ref: edge.source.clone(),
                            r#type: edge.relation_type.clone(),
                            target_ref: edge.target.clone(),
                        })
                        .collect(),
                    location_key: file_key.clone(),
                    origin_location: origin.clone(),
                    parent_ref: parent_ref(harvested),
                    commit: harvested.commit.clone(),
                });
            }
        }
        for target in &harvested.removed_targets {
            let file_key = format!("{location_type}:{target}");
            replaced.insert(file_key.clone());
            // The file is gone: so are its errors.
            errors.entry(file_key).or_default();
        }

        let micros = |value: i64| {
            if value == 0 {
                String::new()
            } else {
                rfc3339(value)
            }
        };
        processed.batch = pb::ProcessedBatch {
            batch_id: format!("{}/{}", harvested.harvest_id, harvested.part),
            location_key: harvested.location_key.clone(),
            harvest_id: harvested.harvest_id.clone(),
            receipt: Some(pb::HarvestReceipt {
                harvest_id: harvested.harvest_id.clone(),
                location_key: harvested.location_key.clone(),
                trigger: trigger_name(harvested.trigger()).to_owned(),
                reason: harvested.reason.clone(),
                commit: harvested.commit.clone(),
                files_read: processed.summary.files,
                files_unchanged: u32::try_from(harvested.unchanged_targets.len())
                    .unwrap_or(u32::MAX),
                failed: processed.summary.failed_documents,
                failed_files: failed_files.into_iter().collect(),
                harvest_started_at: micros(harvested.started_at_micros),
                harvest_finished_at: micros(harvested.finished_at_micros),
                processed_at: rfc3339(now_micros()),
                parts: harvested.parts.max(1),
                ..Default::default()
            }),
            batch: Some(pb::ApplyBatchRequest {
                upserts,
                removals: Vec::new(),
                // Every file read is reported, errors or none, so fixed errors are cleared.
                errors: errors
                    .into_iter()
                    .map(|(location_key, errors)| pb::LocationErrors {
                        location_key,
                        errors,
                    })
                    .collect(),
                replaced_locations: replaced.into_iter().collect(),
            }),
        };
        processed
    }

    /// The harvest requests a Location entity asks for, or why it may not.
    fn fan_out(
        &self,
        harvested: &pb::HarvestedLocation,
        origin: &str,
        file_key: &str,
        entity_ref: &str,
        body: &Value,
    ) -> Result<Vec<pb::HarvestRequest>, Finding> {
        let spec = body.get("spec");
        let file_target = file_key
            .split_once(':')
            .map_or(file_key, |(_, target)| target);
        let own_type = location_type(file_key);
        let target_type = spec
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .unwrap_or(own_type);
        if !LOCATION_TYPES.contains(&target_type) {
            return Err(Finding::error(
                Rule::LocationTarget,
                "spec.type",
                format!(
                    "location type {target_type:?} is not supported (use one of {})",
                    LOCATION_TYPES.join(", ")
                ),
            ));
        }
        let depth = harvested.depth + 1;
        if depth > self.settings.max_fan_out_depth {
            return Err(Finding::error(
                Rule::LocationTarget,
                "spec",
                format!(
                    "Location entities chain deeper than {} levels; not following {entity_ref} (a loop?)",
                    self.settings.max_fan_out_depth
                ),
            ));
        }
        let mut targets: Vec<&str> = Vec::new();
        if let Some(target) = spec.and_then(|s| s.get("target")).and_then(Value::as_str) {
            targets.push(target);
        }
        if let Some(list) = spec
            .and_then(|s| s.get("targets"))
            .and_then(Value::as_array)
        {
            targets.extend(list.iter().filter_map(Value::as_str));
        }
        let mut requests = Vec::new();
        for target in targets {
            let resolved = resolve_target(file_target, target)
                .map_err(|reason| Finding::error(Rule::LocationTarget, "spec.target", reason))?;
            let location_key = format!("{target_type}:{resolved}");
            if location_key == file_key || location_key == harvested.location_key {
                return Err(Finding::error(
                    Rule::LocationTarget,
                    "spec.target",
                    format!("{target} points back at the file that declares it"),
                ));
            }
            requests.push(pb::HarvestRequest {
                request_id: format!(
                    "{}/{}",
                    harvested.harvest_id,
                    hex::encode(Sha1::digest(location_key.as_bytes()))
                ),
                location_key,
                trigger: pb::HarvestTrigger::FanOut.into(),
                reason: format!("{entity_ref} in {file_key}"),
                commit: String::new(),
                depth,
                parent_location_key: file_key.to_owned(),
                origin_location_key: origin.to_owned(),
                parent_entity_ref: entity_ref.to_owned(),
            });
        }
        Ok(requests)
    }
}

/// How a trigger is named in receipts.
pub fn trigger_name(trigger: pb::HarvestTrigger) -> &'static str {
    match trigger {
        pb::HarvestTrigger::Unspecified => "unspecified",
        pb::HarvestTrigger::Registered => "registered",
        pb::HarvestTrigger::Refresh => "refresh",
        pb::HarvestTrigger::Webhook => "webhook",
        pb::HarvestTrigger::Schedule => "schedule",
        pb::HarvestTrigger::FanOut => "fan_out",
    }
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn rfc3339(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// `file` from `file:/srv/catalog-info.yaml`.
pub fn location_type(location_key: &str) -> &str {
    location_key
        .split_once(':')
        .map_or("url", |(location_type, _)| location_type)
}

/// The ref of the Location entity catalog-store generates for a registered location.
pub fn generated_location_ref(location_key: &str) -> String {
    format!(
        "location:default/{}",
        cadastre_model::entity::generated_location_name(location_key)
    )
}

/// The entity that led to this harvest: the Location entity that pointed here, or the one
/// the store generated for the registered location.
fn parent_ref(harvested: &pb::HarvestedLocation) -> String {
    if harvested.parent_entity_ref.is_empty() {
        generated_location_ref(&harvested.location_key)
    } else {
        harvested.parent_entity_ref.clone()
    }
}

/// The well-known annotations, as Backstage's processing adds them. `managed-by-*` always
/// reflect where the entity was read; source, view and edit URLs are derived for URLs and
/// never override what the file says.
fn add_annotations(
    body: &mut Value,
    location_type: &str,
    target: &str,
    file_key: &str,
    origin: &str,
) {
    let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations_value = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    let Some(map) = annotations_value.as_object_mut() else {
        return;
    };
    map.insert(
        annotations::MANAGED_BY_LOCATION.into(),
        Value::String(file_key.to_owned()),
    );
    map.insert(
        annotations::MANAGED_BY_ORIGIN_LOCATION.into(),
        Value::String(origin.to_owned()),
    );
    if location_type == "file" {
        return;
    }
    let mut derived = vec![(
        annotations::SOURCE_LOCATION,
        format!("url:{}", directory_of(target)),
    )];
    if target.starts_with("https://") || target.starts_with("http://") {
        derived.push((annotations::VIEW_URL, target.to_owned()));
        if let Some(edit) = edit_url(target) {
            derived.push((annotations::EDIT_URL, edit));
        }
    }
    for (key, value) in derived {
        map.entry(key).or_insert(Value::String(value));
    }
}

fn directory_of(target: &str) -> &str {
    match target.rfind('/') {
        Some(index) => &target[..=index],
        None => target,
    }
}

/// The web editor URL for files on GitHub and GitLab (`blob` → `edit`).
fn edit_url(view_url: &str) -> Option<String> {
    let url = url::Url::parse(view_url).ok()?;
    let host = url.host_str()?;
    if host.contains("gitlab") && view_url.contains("/-/blob/") {
        return Some(view_url.replacen("/-/blob/", "/-/edit/", 1));
    }
    if host.contains("github") && view_url.contains("/blob/") {
        return Some(view_url.replacen("/blob/", "/edit/", 1));
    }
    None
}

fn to_proto_error(
    file_key: &str,
    entity_ref: Option<&str>,
    finding: &Finding,
    file: &str,
) -> pb::ProcessingError {
    pb::ProcessingError {
        location_key: file_key.to_owned(),
        entity_ref: entity_ref.unwrap_or_default().to_owned(),
        finding: Some(pb::Finding {
            rule: finding.rule.id().to_owned(),
            severity: match finding.severity {
                Severity::Error => pb::Severity::Error,
                Severity::Warning => pb::Severity::Warning,
            }
            .into(),
            path: finding.path.clone(),
            message: finding.message.clone(),
            position: finding.position.map(|p| pb::Position {
                line: p.line,
                column: p.column,
            }),
            file: file.to_owned(),
        }),
        recorded_at: String::new(),
    }
}

/// Placeholder targets the harvester read along with the documents.
struct Attachments<'a> {
    by_target: HashMap<&'a str, &'a [u8]>,
}

impl<'a> Attachments<'a> {
    fn new(harvested: &'a pb::HarvestedLocation) -> Self {
        Attachments {
            by_target: harvested
                .attachments
                .iter()
                .chain(&harvested.documents)
                .map(|doc| (doc.target.as_str(), doc.content.as_slice()))
                .collect(),
        }
    }
}

impl PlaceholderReader for Attachments<'_> {
    fn read(&self, target: &str) -> Result<ReadOutcome, String> {
        let content = self
            .by_target
            .get(target)
            .ok_or_else(|| format!("{target} was not read with the location"))?;
        String::from_utf8(content.to_vec())
            .map(ReadOutcome::Content)
            .map_err(|_| format!("{target} is not UTF-8 text"))
    }
}
