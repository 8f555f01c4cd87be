//! `POST /locations?dryRun=true`: a location read and processed now, in the gateway, through
//! the harvester's and the processor's own code, following `Location` entities as the
//! pipeline would; nothing is stored or published. Backstage's answer: the entities it would
//! add (the generated Location entity first), or 400 with every processing error.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use cadastre_harvester::Harvester;
use cadastre_processor::Processor;
use cadastre_proto::v1 as pb;
use serde_json::Value;

/// Locations one dry run may read (the registered one and what its Location entities name).
const MAX_LOCATIONS: usize = 200;

/// Reads and processes locations without storing anything.
#[derive(Debug, Clone)]
pub struct Previewer {
    harvester: Arc<Harvester>,
    processor: Arc<Processor>,
}

/// What registering a location would add.
#[derive(Debug, Default)]
pub struct Preview {
    /// The processed entities, the generated Location entity first.
    pub entities: Vec<Value>,
    /// Every processing error, as `location: [rule] path: message`.
    pub errors: Vec<String>,
}

impl Previewer {
    pub fn new(harvester: Arc<Harvester>, processor: Arc<Processor>) -> Previewer {
        Previewer {
            harvester,
            processor,
        }
    }

    /// Reads `location_type:target` and everything its Location entities lead to.
    pub async fn preview(&self, location_type: &str, target: &str) -> Preview {
        let key = format!("{location_type}:{target}");
        let mut preview = Preview {
            entities: vec![cadastre_model::entity::generated_location(
                location_type,
                target,
            )],
            errors: Vec::new(),
        };
        let mut seen_refs = BTreeSet::from([cadastre_processor::generated_location_ref(&key)]);
        let mut seen_locations = BTreeSet::from([key.clone()]);
        let mut queue = VecDeque::from([pb::HarvestRequest {
            request_id: format!("dry-run/{}", uuid::Uuid::new_v4()),
            location_key: key.clone(),
            trigger: pb::HarvestTrigger::Registered.into(),
            reason: "dry run".into(),
            origin_location_key: key.clone(),
            ..Default::default()
        }]);
        while let Some(request) = queue.pop_front() {
            let harvest = self.harvester.harvest(&request).await;
            let processor = Arc::clone(&self.processor);
            let processed = match tokio::task::spawn_blocking(move || {
                processor.process(&harvest.message)
            })
            .await
            {
                Ok(processed) => processed,
                Err(error) => {
                    preview.errors.push(format!(
                        "{}: processing failed: {error}",
                        request.location_key
                    ));
                    continue;
                }
            };
            let batch = processed.batch.batch.unwrap_or_default();
            for located in &batch.errors {
                for error in &located.errors {
                    let Some(finding) = &error.finding else {
                        continue;
                    };
                    if finding.severity() == pb::Severity::Warning {
                        continue;
                    }
                    preview.errors.push(format!(
                        "{}: [{}] {}{}",
                        located.location_key,
                        finding.rule,
                        if finding.path.is_empty() {
                            String::new()
                        } else {
                            format!("{}: ", finding.path)
                        },
                        finding.message
                    ));
                }
            }
            for upsert in &batch.upserts {
                let Ok(entity) = serde_json::from_slice::<Value>(&upsert.body_json) else {
                    continue;
                };
                let entity_ref = entity_ref(&entity);
                if !seen_refs.insert(entity_ref.clone()) {
                    preview
                        .errors
                        .push(format!("Duplicate nested entity: {entity_ref}"));
                    continue;
                }
                preview.entities.push(entity);
            }
            for next in processed.fan_out {
                if seen_locations.len() >= MAX_LOCATIONS {
                    preview.errors.push(format!(
                        "{key} leads to more than {MAX_LOCATIONS} locations; the rest were not read"
                    ));
                    queue.clear();
                    break;
                }
                if seen_locations.insert(next.location_key.clone()) {
                    queue.push_back(next);
                }
            }
        }
        preview
    }
}

/// An entity found in a file of a location.
#[derive(Debug, Clone)]
pub struct FoundEntity {
    pub entity: Value,
    /// The file's target (for git, `<repository>/blob/<ref>/<path>`).
    pub file: String,
}

impl Previewer {
    /// The valid entities the files of one location hold (Location entities not followed).
    /// `Err` when the location itself cannot be read.
    pub async fn entities_in(
        &self,
        location_type: &str,
        target: &str,
    ) -> Result<Vec<FoundEntity>, String> {
        let key = format!("{location_type}:{target}");
        let request = pb::HarvestRequest {
            request_id: format!("analyze/{}", uuid::Uuid::new_v4()),
            location_key: key.clone(),
            trigger: pb::HarvestTrigger::Registered.into(),
            reason: "analyze".into(),
            origin_location_key: key,
            ..Default::default()
        };
        let harvest = self.harvester.harvest(&request).await;
        if harvest.message.documents.is_empty()
            && let Some(error) = harvest.message.errors.first()
        {
            return Err(error.message.clone());
        }
        let processor = Arc::clone(&self.processor);
        let message = harvest.message;
        let processed = tokio::task::spawn_blocking(move || processor.process(&message))
            .await
            .map_err(|error| format!("processing failed: {error}"))?;
        let batch = processed.batch.batch.unwrap_or_default();
        Ok(batch
            .upserts
            .iter()
            .filter_map(|upsert| {
                let entity: Value = serde_json::from_slice(&upsert.body_json).ok()?;
                let file = entity
                    .pointer("/metadata/annotations/backstage.io~1managed-by-location")
                    .and_then(Value::as_str)
                    .and_then(|key| key.split_once(':'))
                    .map(|(_, file)| file.to_owned())?;
                Some(FoundEntity { entity, file })
            })
            .collect())
    }
}

/// `kind:namespace/name` of an entity body, lower case.
pub fn entity_ref(entity: &Value) -> String {
    let text = |pointer: &str| {
        entity
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase()
    };
    let namespace = text("/metadata/namespace");
    format!(
        "{}:{}/{}",
        text("/kind"),
        if namespace.is_empty() {
            "default".to_owned()
        } else {
            namespace
        },
        text("/metadata/name")
    )
}
