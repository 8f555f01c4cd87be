//! Relation derivation: every spec field that names other entities produces a relation in
//! both directions (`spec/entity-model.md` §5).

use serde_json::{Map, Value};

use crate::entity::Relation;
use crate::finding::{Finding, Rule};
use crate::kinds::{FieldShape, KindDefinition};
use crate::path::FieldPath;
use crate::reference::{EntityRef, RefContext, RefError};

/// One directed relation between two entities, by canonical ref.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RelationEdge {
    pub source: String,
    #[serde(rename = "type")]
    pub relation_type: String,
    pub target: String,
}

/// Relations emitted by one entity's spec, in both directions, with any reference errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DerivedRelations {
    pub edges: Vec<RelationEdge>,
    pub errors: Vec<(FieldPath, Finding)>,
}

impl DerivedRelations {
    /// The relations whose source is `source` (what goes into the entity's own `relations`),
    /// sorted by type then target and de-duplicated.
    pub fn outgoing(&self, source: &str) -> Vec<Relation> {
        outgoing(&self.edges, source)
    }
}

/// The relations among `edges` whose source is `source`, as an entity's `relations` array:
/// sorted by type then target, de-duplicated.
pub fn outgoing(edges: &[RelationEdge], source: &str) -> Vec<Relation> {
    let mut relations: Vec<Relation> = edges
        .iter()
        .filter(|edge| edge.source == source)
        .map(|edge| Relation {
            relation_type: edge.relation_type.clone(),
            target_ref: edge.target.clone(),
        })
        .collect();
    relations.sort();
    relations.dedup();
    relations
}

/// Derives the relations of an entity from its spec and kind definition.
///
/// Refs that omit a namespace inherit the entity's own namespace.
pub fn derive(
    entity: &EntityRef,
    spec: &Map<String, Value>,
    definition: &KindDefinition,
) -> DerivedRelations {
    let source = entity.canonical();
    let mut derived = DerivedRelations::default();
    for field in &definition.fields {
        let Some(rule) = &field.relation else {
            continue;
        };
        let Some(value) = spec.get(&field.name) else {
            continue;
        };
        let context = RefContext::new(rule.default_kind.as_deref(), Some(&entity.namespace));
        let path = || FieldPath::keys(&["spec", &field.name]);
        // Backstage's emitter takes one ref or a list of refs for any relation field.
        let targets: Vec<(Option<usize>, &Value)> = match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Some(i), v))
                .collect(),
            Value::Null => continue,
            other => vec![(None, other)],
        };
        for (index, target) in targets {
            let item_path = || index.map_or_else(path, |i| path().index(i));
            let text = match target.as_str() {
                // An empty string fails the field's shape check; report it once, there.
                Some("") if field.shape != FieldShape::Any => continue,
                Some(text) => text,
                // Non-strings fail the shape check, except in unchecked fields, where the
                // reference itself is what is wrong.
                None if field.shape != FieldShape::Any => continue,
                None => {
                    let path = item_path();
                    let message = format!("{target} is not an entity reference: expected a string");
                    derived.errors.push((
                        path.clone(),
                        Finding::error(Rule::EntityRefFormat, path.to_string(), message),
                    ));
                    continue;
                }
            };
            match EntityRef::parse(text, context) {
                Ok(target_ref) => {
                    let target = target_ref.canonical();
                    derived.edges.push(RelationEdge {
                        source: source.clone(),
                        relation_type: rule.forward.clone(),
                        target: target.clone(),
                    });
                    derived.edges.push(RelationEdge {
                        source: target,
                        relation_type: rule.inverse.clone(),
                        target: source.clone(),
                    });
                }
                Err(error) => {
                    let rule_id = match error {
                        RefError::Malformed(_) => Rule::EntityRefFormat,
                        RefError::MissingKind(_) => Rule::EntityRefKindRequired,
                    };
                    let path = item_path();
                    derived.errors.push((
                        path.clone(),
                        Finding::error(rule_id, path.to_string(), error.to_string()),
                    ));
                }
            }
        }
    }
    derived
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::KindRegistry;
    use serde_json::json;

    #[test]
    fn derives_both_directions_with_namespace_inheritance() {
        let registry = KindRegistry::builtin();
        let spec = json!({
            "type": "website", "lifecycle": "production", "owner": "artist-relations",
            "system": "public-websites", "providesApis": ["artist-api"],
            "dependsOn": ["resource:default/artists-db"]
        });
        let me = EntityRef::new("Component", "music", "artist-web");
        let derived = derive(
            &me,
            spec.as_object().unwrap(),
            registry.get("Component").unwrap(),
        );
        assert!(derived.errors.is_empty());
        let outgoing: Vec<(String, String)> = derived
            .outgoing("component:music/artist-web")
            .into_iter()
            .map(|r| (r.relation_type, r.target_ref))
            .collect();
        assert_eq!(
            outgoing,
            [
                (
                    "dependsOn".to_owned(),
                    "resource:default/artists-db".to_owned()
                ),
                (
                    "ownedBy".to_owned(),
                    "group:music/artist-relations".to_owned()
                ),
                (
                    "partOf".to_owned(),
                    "system:music/public-websites".to_owned()
                ),
                ("providesApi".to_owned(), "api:music/artist-api".to_owned()),
            ]
        );
        assert!(derived.edges.contains(&RelationEdge {
            source: "group:music/artist-relations".into(),
            relation_type: "ownerOf".into(),
            target: "component:music/artist-web".into(),
        }));
        assert_eq!(derived.edges.len(), 8);
    }

    #[test]
    fn reports_bad_refs_at_their_item() {
        let registry = KindRegistry::builtin();
        let spec = json!({"type": "service", "lifecycle": "x", "owner": "group:", "dependsOn": ["ok:a", "db"]});
        let me = EntityRef::new("Component", "default", "c");
        let derived = derive(
            &me,
            spec.as_object().unwrap(),
            registry.get("Component").unwrap(),
        );
        let found: Vec<(String, Rule)> = derived
            .errors
            .iter()
            .map(|(p, f)| (p.to_string(), f.rule))
            .collect();
        assert_eq!(
            found,
            [
                ("spec.owner".to_owned(), Rule::EntityRefFormat),
                ("spec.dependsOn[1]".to_owned(), Rule::EntityRefKindRequired),
            ]
        );
    }
}
