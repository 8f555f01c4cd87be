//! Kind definitions: the built-in kinds of `spec/entity-model.md` §4, and custom kinds
//! declared without code (a name, accepted apiVersions, a JSON Schema for `spec`, and the
//! spec fields that produce relations).

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// `apiVersion`s accepted by every built-in kind but Template.
pub const BACKSTAGE_API_VERSIONS: &[&str] = &["backstage.io/v1alpha1", "backstage.io/v1beta1"];
/// The only `apiVersion` a Template accepts.
pub const TEMPLATE_API_VERSION: &str = "scaffolder.backstage.io/v1beta3";

/// The shape a spec field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldShape {
    /// A string of length ≥ 1.
    Text,
    /// A list of strings of length ≥ 1 (Backstage's relation emitter also takes one string).
    TextList,
    /// A mapping.
    Object,
    /// A mapping with optional `displayName`, `email`, `picture` strings.
    Profile,
    /// `required` or `optional`.
    Presence,
    /// Template steps: a list of mappings, each with a string `action`.
    Steps,
    /// Template parameters: a mapping, or a list of mappings.
    Parameters,
    /// Anything (processed but not schema-checked, like `dependencyOf`).
    Any,
}

/// A relation a spec field produces, in both directions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationRule {
    /// The relation from the entity to the target, e.g. `ownedBy`.
    pub forward: String,
    /// The relation from the target back to the entity, e.g. `ownerOf`.
    pub inverse: String,
    /// Kind assumed when a reference omits it; `None` makes the kind mandatory.
    pub default_kind: Option<String>,
}

/// One field of a kind's `spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecField {
    pub name: String,
    pub shape: FieldShape,
    pub required: bool,
    pub relation: Option<RelationRule>,
}

/// What the registry knows about a kind.
pub struct KindDefinition {
    pub kind: String,
    pub api_versions: Vec<String>,
    pub fields: Vec<SpecField>,
    /// For custom kinds: the compiled JSON Schema of `spec`.
    pub spec_schema: Option<jsonschema::Validator>,
    pub builtin: bool,
}

impl fmt::Debug for KindDefinition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindDefinition")
            .field("kind", &self.kind)
            .field("api_versions", &self.api_versions)
            .field("fields", &self.fields)
            .field("has_spec_schema", &self.spec_schema.is_some())
            .field("builtin", &self.builtin)
            .finish()
    }
}

impl KindDefinition {
    pub fn accepts_api_version(&self, api_version: &str) -> bool {
        self.api_versions.iter().any(|v| v == api_version)
    }
}

/// A kind declared in configuration, without code.
///
/// ```toml
/// [[kinds]]
/// kind = "AiResource"
/// api_versions = ["backstage.io/v1alpha1"]
/// spec_schema = { type = "object", required = ["type", "owner"] }
/// relations = [{ field = "owner", forward = "ownedBy", inverse = "ownerOf", default_kind = "group" }]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomKind {
    pub kind: String,
    pub api_versions: Vec<String>,
    /// JSON Schema for `spec`; absent means any mapping.
    #[serde(default)]
    pub spec_schema: Option<Value>,
    #[serde(default)]
    pub relations: Vec<CustomRelation>,
}

/// A spec field of a custom kind that holds one reference or a list of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRelation {
    pub field: String,
    pub forward: String,
    pub inverse: String,
    #[serde(default)]
    pub default_kind: Option<String>,
}

/// Why a custom kind could not be registered.
#[derive(Debug, Error)]
pub enum KindError {
    #[error("kind {0:?} is not a valid kind name (a letter, then letters and digits)")]
    InvalidName(String),
    #[error("kind {0:?} is built in and cannot be redefined")]
    Builtin(String),
    #[error("kind {0:?} is declared twice")]
    Duplicate(String),
    #[error("kind {kind:?}: apiVersion {api_version:?} is not valid")]
    InvalidApiVersion { kind: String, api_version: String },
    #[error("kind {kind:?} declares no apiVersions")]
    NoApiVersions { kind: String },
    #[error("kind {kind:?}: relation type {relation:?} must be a word (letters, digits, _)")]
    InvalidRelation { kind: String, relation: String },
    #[error("kind {kind:?}: its spec_schema is not a valid JSON Schema: {message}")]
    InvalidSchema { kind: String, message: String },
}

/// Every kind the validator recognises. Kind names match case-sensitively, as in Backstage.
#[derive(Debug)]
pub struct KindRegistry {
    kinds: HashMap<String, KindDefinition>,
}

impl Default for KindRegistry {
    fn default() -> Self {
        KindRegistry::builtin()
    }
}

impl KindRegistry {
    /// The nine built-in kinds.
    pub fn builtin() -> Self {
        let kinds = builtin_kinds()
            .into_iter()
            .map(|def| (def.kind.clone(), def))
            .collect();
        KindRegistry { kinds }
    }

    /// The built-in kinds plus custom ones.
    pub fn with_custom(custom: &[CustomKind]) -> Result<Self, KindError> {
        let mut registry = KindRegistry::builtin();
        for kind in custom {
            registry.add_custom(kind)?;
        }
        Ok(registry)
    }

    fn add_custom(&mut self, custom: &CustomKind) -> Result<(), KindError> {
        let name = &custom.kind;
        if !crate::format::is_kind(name) {
            return Err(KindError::InvalidName(name.clone()));
        }
        if let Some(existing) = self.kinds.get(name) {
            return Err(if existing.builtin {
                KindError::Builtin(name.clone())
            } else {
                KindError::Duplicate(name.clone())
            });
        }
        if custom.api_versions.is_empty() {
            return Err(KindError::NoApiVersions { kind: name.clone() });
        }
        if let Some(bad) = custom
            .api_versions
            .iter()
            .find(|v| !crate::format::is_api_version(v))
        {
            return Err(KindError::InvalidApiVersion {
                kind: name.clone(),
                api_version: bad.clone(),
            });
        }
        let is_word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
        if let Some(bad) = custom
            .relations
            .iter()
            .flat_map(|r| [&r.forward, &r.inverse])
            .find(|r| !is_word(r))
        {
            return Err(KindError::InvalidRelation {
                kind: name.clone(),
                relation: bad.clone(),
            });
        }
        let spec_schema = custom
            .spec_schema
            .as_ref()
            .map(|schema| {
                jsonschema::validator_for(schema).map_err(|error| KindError::InvalidSchema {
                    kind: name.clone(),
                    message: error.to_string(),
                })
            })
            .transpose()?;
        let fields = custom
            .relations
            .iter()
            .map(|relation| SpecField {
                name: relation.field.clone(),
                shape: FieldShape::Any,
                required: false,
                relation: Some(RelationRule {
                    forward: relation.forward.clone(),
                    inverse: relation.inverse.clone(),
                    default_kind: relation.default_kind.clone(),
                }),
            })
            .collect();
        self.kinds.insert(
            name.clone(),
            KindDefinition {
                kind: name.clone(),
                api_versions: custom.api_versions.clone(),
                fields,
                spec_schema,
                builtin: false,
            },
        );
        Ok(())
    }

    pub fn get(&self, kind: &str) -> Option<&KindDefinition> {
        self.kinds.get(kind)
    }

    /// Kind names, sorted.
    pub fn kinds(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

fn relation(forward: &str, inverse: &str, default_kind: Option<&str>) -> Option<RelationRule> {
    Some(RelationRule {
        forward: forward.to_owned(),
        inverse: inverse.to_owned(),
        default_kind: default_kind.map(str::to_owned),
    })
}

fn field(
    name: &str,
    shape: FieldShape,
    required: bool,
    relation: Option<RelationRule>,
) -> SpecField {
    SpecField {
        name: name.to_owned(),
        shape,
        required,
        relation,
    }
}

fn builtin(kind: &str, api_versions: &[&str], fields: Vec<SpecField>) -> KindDefinition {
    KindDefinition {
        kind: kind.to_owned(),
        api_versions: api_versions.iter().map(|v| (*v).to_owned()).collect(),
        fields,
        spec_schema: None,
        builtin: true,
    }
}

fn builtin_kinds() -> Vec<KindDefinition> {
    use FieldShape::*;
    let owner = || {
        field(
            "owner",
            Text,
            true,
            relation("ownedBy", "ownerOf", Some("group")),
        )
    };
    let system = || {
        field(
            "system",
            Text,
            false,
            relation("partOf", "hasPart", Some("system")),
        )
    };
    let depends_on = || {
        field(
            "dependsOn",
            TextList,
            false,
            relation("dependsOn", "dependencyOf", None),
        )
    };
    let dependency_of = || {
        field(
            "dependencyOf",
            Any,
            false,
            relation("dependencyOf", "dependsOn", None),
        )
    };
    let v1 = BACKSTAGE_API_VERSIONS;
    vec![
        builtin(
            "Component",
            v1,
            vec![
                field("type", Text, true, None),
                field("lifecycle", Text, true, None),
                owner(),
                system(),
                field(
                    "subcomponentOf",
                    Text,
                    false,
                    relation("partOf", "hasPart", Some("component")),
                ),
                field(
                    "providesApis",
                    TextList,
                    false,
                    relation("providesApi", "apiProvidedBy", Some("api")),
                ),
                field(
                    "consumesApis",
                    TextList,
                    false,
                    relation("consumesApi", "apiConsumedBy", Some("api")),
                ),
                depends_on(),
                dependency_of(),
            ],
        ),
        builtin(
            "API",
            v1,
            vec![
                field("type", Text, true, None),
                field("lifecycle", Text, true, None),
                owner(),
                field("definition", Text, true, None),
                system(),
            ],
        ),
        builtin(
            "Resource",
            v1,
            vec![
                field("type", Text, true, None),
                owner(),
                system(),
                depends_on(),
                dependency_of(),
            ],
        ),
        builtin(
            "System",
            v1,
            vec![
                owner(),
                field(
                    "domain",
                    Text,
                    false,
                    relation("partOf", "hasPart", Some("domain")),
                ),
                field("type", Text, false, None),
            ],
        ),
        builtin(
            "Domain",
            v1,
            vec![
                owner(),
                field(
                    "subdomainOf",
                    Text,
                    false,
                    relation("partOf", "hasPart", Some("domain")),
                ),
                field("type", Text, false, None),
            ],
        ),
        builtin(
            "Group",
            v1,
            vec![
                field("type", Text, true, None),
                field(
                    "children",
                    TextList,
                    true,
                    relation("parentOf", "childOf", Some("group")),
                ),
                field(
                    "parent",
                    Text,
                    false,
                    relation("childOf", "parentOf", Some("group")),
                ),
                field(
                    "members",
                    TextList,
                    false,
                    relation("hasMember", "memberOf", Some("user")),
                ),
                field("profile", Profile, false, None),
            ],
        ),
        builtin(
            "User",
            v1,
            vec![
                field(
                    "memberOf",
                    TextList,
                    true,
                    relation("memberOf", "hasMember", Some("group")),
                ),
                field("profile", Profile, false, None),
            ],
        ),
        builtin(
            "Location",
            v1,
            vec![
                field("type", Text, false, None),
                field("target", Text, false, None),
                field("targets", TextList, false, None),
                field("presence", Presence, false, None),
            ],
        ),
        builtin(
            "Template",
            &[TEMPLATE_API_VERSION],
            vec![
                field("type", Text, true, None),
                field("steps", Steps, true, None),
                owner_optional(),
                field("lifecycle", Text, false, None),
                field("parameters", Parameters, false, None),
                field("output", Object, false, None),
            ],
        ),
    ]
}

fn owner_optional() -> SpecField {
    field(
        "owner",
        FieldShape::Text,
        false,
        relation("ownedBy", "ownerOf", Some("group")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn has_the_nine_builtin_kinds() {
        assert_eq!(
            KindRegistry::builtin().kinds(),
            [
                "API",
                "Component",
                "Domain",
                "Group",
                "Location",
                "Resource",
                "System",
                "Template",
                "User"
            ]
        );
    }

    #[test]
    fn registers_custom_kinds_and_rejects_bad_ones() {
        let good = CustomKind {
            kind: "AiResource".into(),
            api_versions: vec!["backstage.io/v1alpha1".into()],
            spec_schema: Some(json!({"type": "object", "required": ["owner"]})),
            relations: vec![CustomRelation {
                field: "owner".into(),
                forward: "ownedBy".into(),
                inverse: "ownerOf".into(),
                default_kind: Some("group".into()),
            }],
        };
        let registry = KindRegistry::with_custom(std::slice::from_ref(&good)).unwrap();
        assert!(registry.get("AiResource").unwrap().spec_schema.is_some());

        let builtin = CustomKind {
            kind: "Component".into(),
            ..good.clone()
        };
        assert!(matches!(
            KindRegistry::with_custom(&[builtin]),
            Err(KindError::Builtin(_))
        ));
        let twice = KindRegistry::with_custom(&[good.clone(), good.clone()]);
        assert!(matches!(twice, Err(KindError::Duplicate(_))));
        let bad_schema = CustomKind {
            spec_schema: Some(json!({"type": 12})),
            ..good.clone()
        };
        assert!(matches!(
            KindRegistry::with_custom(&[bad_schema]),
            Err(KindError::InvalidSchema { .. })
        ));
        let bad_name = CustomKind {
            kind: "ai-resource".into(),
            ..good
        };
        assert!(matches!(
            KindRegistry::with_custom(&[bad_name]),
            Err(KindError::InvalidName(_))
        ));
    }
}
