//! The typed entity envelope and typed specs of the built-in kinds.
//!
//! A validated entity is held as [`Entity`]; unknown metadata keys and unknown spec keys are
//! kept (Backstage allows them), so converting back to JSON loses nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::reference::EntityRef;

/// Well-known annotation keys.
pub mod annotations {
    pub const MANAGED_BY_LOCATION: &str = "backstage.io/managed-by-location";
    pub const MANAGED_BY_ORIGIN_LOCATION: &str = "backstage.io/managed-by-origin-location";
    pub const ORPHAN: &str = "backstage.io/orphan";
    pub const VIEW_URL: &str = "backstage.io/view-url";
    pub const EDIT_URL: &str = "backstage.io/edit-url";
    pub const SOURCE_LOCATION: &str = "backstage.io/source-location";
    pub const TECHDOCS_REF: &str = "backstage.io/techdocs-ref";
}

/// The name of the `Location` entity generated for the registered location `type:target`
/// (Backstage's `generated-<sha1 of the key>`).
pub fn generated_location_name(location_key: &str) -> String {
    use sha1::Digest as _;
    format!(
        "generated-{}",
        hex::encode(sha1::Sha1::digest(location_key.as_bytes()))
    )
}

/// The `Location` entity registering `location_type:target` generates.
pub fn generated_location(location_type: &str, target: &str) -> Value {
    let key = format!("{location_type}:{target}");
    serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Location",
        "metadata": {
            "name": generated_location_name(&key),
            "namespace": "default",
            "annotations": {
                annotations::MANAGED_BY_LOCATION: key,
                annotations::MANAGED_BY_ORIGIN_LOCATION: key,
            }
        },
        "spec": {"type": location_type, "target": target}
    })
}

/// An entity: `apiVersion`, `kind`, `metadata`, `spec`, and the computed `relations`/`status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<Relation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub name: String,
    /// Always set once validated (`default` when the source omits it).
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Any other metadata key, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn default_namespace() -> String {
    crate::reference::DEFAULT_NAMESPACE.to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub link_type: Option<String>,
    /// Other keys, which Backstage's schema tolerates, kept as written.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A relation as it appears in an entity's `relations` array.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Relation {
    #[serde(rename = "type")]
    pub relation_type: String,
    #[serde(rename = "targetRef")]
    pub target_ref: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<StatusItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusItem {
    #[serde(rename = "type")]
    pub item_type: String,
    pub level: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

impl Entity {
    /// This entity's reference (kind, namespace, name as written).
    pub fn entity_ref(&self) -> EntityRef {
        EntityRef::new(&self.kind, &self.metadata.namespace, &self.metadata.name)
    }

    /// The canonical `kind:namespace/name`, lower case.
    pub fn canonical_ref(&self) -> String {
        self.entity_ref().canonical()
    }

    /// The entity as JSON (what the API serves).
    pub fn to_value(&self) -> Value {
        // Serialising plain maps, strings and vectors cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A spec field as a string, if present.
    pub fn spec_str(&self, field: &str) -> Option<&str> {
        self.spec.as_ref()?.get(field)?.as_str()
    }

    /// The spec of a built-in kind, typed. `None` for custom kinds or a spec that does not fit.
    pub fn builtin_spec(&self) -> Option<BuiltinSpec> {
        let spec = Value::Object(self.spec.clone()?);
        let typed = match self.kind.as_str() {
            "Component" => BuiltinSpec::Component(serde_json::from_value(spec).ok()?),
            "API" => BuiltinSpec::Api(serde_json::from_value(spec).ok()?),
            "Resource" => BuiltinSpec::Resource(serde_json::from_value(spec).ok()?),
            "System" => BuiltinSpec::System(serde_json::from_value(spec).ok()?),
            "Domain" => BuiltinSpec::Domain(serde_json::from_value(spec).ok()?),
            "Group" => BuiltinSpec::Group(serde_json::from_value(spec).ok()?),
            "User" => BuiltinSpec::User(serde_json::from_value(spec).ok()?),
            "Location" => BuiltinSpec::Location(serde_json::from_value(spec).ok()?),
            "Template" => BuiltinSpec::Template(serde_json::from_value(spec).ok()?),
            _ => return None,
        };
        Some(typed)
    }
}

/// The typed spec of each built-in kind.
#[derive(Debug, Clone, PartialEq)]
pub enum BuiltinSpec {
    Component(ComponentSpec),
    Api(ApiSpec),
    Resource(ResourceSpec),
    System(SystemSpec),
    Domain(DomainSpec),
    Group(GroupSpec),
    User(UserSpec),
    Location(LocationSpec),
    Template(TemplateSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    #[serde(rename = "type")]
    pub component_type: String,
    pub lifecycle: String,
    pub owner: String,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub subcomponent_of: Option<String>,
    #[serde(default)]
    pub provides_apis: Vec<String>,
    #[serde(default)]
    pub consumes_apis: Vec<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiSpec {
    #[serde(rename = "type")]
    pub api_type: String,
    pub lifecycle: String,
    pub owner: String,
    pub definition: String,
    #[serde(default)]
    pub system: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub owner: String,
    #[serde(default)]
    pub system: Option<String>,
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSpec {
    pub owner: String,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default, rename = "type")]
    pub system_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainSpec {
    pub owner: String,
    #[serde(default)]
    pub subdomain_of: Option<String>,
    #[serde(default, rename = "type")]
    pub domain_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub picture: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSpec {
    #[serde(rename = "type")]
    pub group_type: String,
    pub children: Vec<String>,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserSpec {
    pub member_of: Vec<String>,
    #[serde(default)]
    pub profile: Option<Profile>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationSpec {
    #[serde(default, rename = "type")]
    pub location_type: Option<String>,
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub presence: Option<String>,
}

impl LocationSpec {
    /// `target` then `targets`, as Backstage reads them.
    pub fn all_targets(&self) -> Vec<&str> {
        self.target
            .iter()
            .chain(self.targets.iter())
            .map(String::as_str)
            .collect()
    }

    /// A missing target is an error unless presence is `optional`.
    pub fn is_optional(&self) -> bool {
        self.presence.as_deref() == Some("optional")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    #[serde(rename = "type")]
    pub template_type: String,
    pub steps: Vec<Value>,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub lifecycle: Option<String>,
    #[serde(default)]
    pub parameters: Option<Value>,
    #[serde(default)]
    pub output: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_unknown_keys_and_types_the_spec() {
        let value = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {"name": "x", "namespace": "default", "custom": {"a": 1},
                         "links": [{"url": "https://x.example", "title": "X", "extra": 1}]},
            "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", "extra": true}
        });
        let entity: Entity = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(entity.to_value(), value);
        assert_eq!(entity.canonical_ref(), "component:default/x");
        match entity.builtin_spec() {
            Some(BuiltinSpec::Component(spec)) => assert_eq!(spec.owner, "team-a"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
