//! What the index holds per entity, taken from the entity's body, and the text rules both
//! backends share: how text splits into words, and the compact form that makes
//! `paymentgate` find `payment-gateway`.

use cadastre_model::reference::{EntityRef, RefContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Annotations worth finding an entity by (a repository slug, a PagerDuty service…).
pub const SEARCHED_ANNOTATIONS: &[&str] = &[
    "github.com/project-slug",
    "gitlab.com/project-slug",
    "backstage.io/techdocs-ref",
    "pagerduty.com/service-id",
    "jira/project-key",
    "sonarqube.org/project-key",
];

/// One entity as the search index sees it. Values of the filter fields (kind, type, owner,
/// lifecycle, tags, namespace, system) are compared in lower case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SearchDocument {
    pub entity_ref: String,
    pub etag: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub title: String,
    pub description: String,
    /// `spec.type`.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// Canonical refs (`group:default/team-a`).
    pub owner: String,
    pub lifecycle: String,
    pub system: String,
    pub domain: String,
    pub tags: Vec<String>,
    pub link_titles: Vec<String>,
    /// Values of [`SEARCHED_ANNOTATIONS`].
    pub annotations: Vec<String>,
    /// The change feed sequence this state of the entity is at least as new as.
    pub sequence: u64,
}

impl SearchDocument {
    /// The document for an entity body (as stored or served), or `None` when the body is not
    /// an entity (no kind or name).
    pub fn from_entity(body: &Value, etag: &str, sequence: u64) -> Option<SearchDocument> {
        let kind = body.get("kind")?.as_str()?.to_owned();
        let metadata = body.get("metadata")?;
        let name = metadata.get("name")?.as_str()?.to_owned();
        let namespace = text(metadata, "namespace")
            .unwrap_or(cadastre_model::reference::DEFAULT_NAMESPACE)
            .to_owned();
        let spec = body.get("spec").unwrap_or(&Value::Null);
        let reference = |field: &str, default_kind: &str| {
            text(spec, field)
                .and_then(|value| {
                    EntityRef::parse(value, RefContext::new(Some(default_kind), Some(&namespace)))
                        .ok()
                })
                .map(|parsed| parsed.canonical())
                .unwrap_or_default()
        };
        let strings = |value: Option<&Value>| -> Vec<String> {
            value
                .and_then(Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_lowercase)
                        .collect()
                })
                .unwrap_or_default()
        };
        let link_titles = metadata
            .get("links")
            .and_then(Value::as_array)
            .map(|links| {
                links
                    .iter()
                    .filter_map(|link| link.get("title").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let annotations = metadata
            .get("annotations")
            .and_then(Value::as_object)
            .map(|annotations| {
                SEARCHED_ANNOTATIONS
                    .iter()
                    .filter_map(|key| annotations.get(*key).and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Some(SearchDocument {
            entity_ref: EntityRef::new(&kind, &namespace, &name).canonical(),
            etag: etag.to_owned(),
            owner: reference("owner", "group"),
            system: reference("system", "system"),
            domain: reference("domain", "domain"),
            entity_type: text(spec, "type").unwrap_or_default().to_lowercase(),
            lifecycle: text(spec, "lifecycle").unwrap_or_default().to_lowercase(),
            title: text(metadata, "title").unwrap_or_default().to_owned(),
            description: text(metadata, "description").unwrap_or_default().to_owned(),
            tags: strings(metadata.get("tags")),
            link_titles,
            annotations,
            kind,
            namespace,
            name,
            sequence,
        })
    }

    /// Text the owner, system and domain are found by: the names, without kind and namespace.
    pub fn relation_words(&self) -> Vec<&str> {
        [&self.owner, &self.system, &self.domain]
            .into_iter()
            .filter(|reference| !reference.is_empty())
            .map(|reference| ref_name(reference))
            .collect()
    }

    /// The name and its compact form (separators dropped), as indexed for matching.
    pub fn name_values(&self) -> Vec<String> {
        let compact = compact(&self.name);
        if compact == self.name.to_lowercase() {
            vec![self.name.clone()]
        } else {
            vec![self.name.clone(), compact]
        }
    }

    /// Whole-name keys for suggestions (the name and title, compacted): matched before
    /// [`Self::suggest_word_keys`].
    pub fn suggest_name_keys(&self) -> Vec<String> {
        let mut keys = vec![compact(&self.name)];
        let title = compact(&self.title);
        if !title.is_empty() && !keys.contains(&title) {
            keys.push(title);
        }
        keys
    }

    /// Keys that start at a later word of the name or title (`gateway…` for
    /// `payment-gateway`), so a suggestion also finds what does not start with the prefix.
    pub fn suggest_word_keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for text in [&self.name, &self.title] {
            let words = words(text);
            for start in 1..words.len() {
                let key: String = words[start..].concat();
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        keys
    }
}

fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object.get(key).and_then(Value::as_str)
}

/// The name part of a canonical ref.
pub fn ref_name(reference: &str) -> &str {
    reference.rsplit('/').next().unwrap_or(reference)
}

/// Lower-case words: runs of letters and digits. Both backends split text this way.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The text without separators, lower case: `Payment-Gateway` → `paymentgateway`.
pub fn compact(text: &str) -> String {
    words(text).concat()
}

/// The edit distance a word of the query may be off by: none for short words (too many
/// false matches), one from four letters, two from eight.
pub fn typo_distance(word: &str) -> u8 {
    match word.chars().count() {
        0..=3 => 0,
        4..=7 => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn takes_the_searched_fields_and_resolves_refs() {
        let body = json!({
            "apiVersion": "backstage.io/v1alpha1",
            "kind": "Component",
            "metadata": {
                "name": "payment-gateway",
                "namespace": "payments",
                "title": "Payment Gateway",
                "description": "Takes card payments",
                "tags": ["Java", "pci"],
                "links": [{"url": "https://x.invalid", "title": "Runbook"}],
                "annotations": {"github.com/project-slug": "acme/pay", "other": "x"}
            },
            "spec": {"type": "Service", "lifecycle": "production", "owner": "team-pay", "system": "default/checkout"}
        });
        let doc = SearchDocument::from_entity(&body, "e1", 7).unwrap();
        assert_eq!(doc.entity_ref, "component:payments/payment-gateway");
        assert_eq!(doc.owner, "group:payments/team-pay");
        assert_eq!(doc.system, "system:default/checkout");
        assert_eq!(doc.entity_type, "service");
        assert_eq!(doc.tags, vec!["java", "pci"]);
        assert_eq!(doc.link_titles, vec!["Runbook"]);
        assert_eq!(doc.annotations, vec!["acme/pay"]);
        assert_eq!(doc.name_values(), vec!["payment-gateway", "paymentgateway"]);
        assert_eq!(doc.suggest_name_keys(), vec!["paymentgateway"]);
        assert_eq!(doc.suggest_word_keys(), vec!["gateway"]);
        assert_eq!(doc.relation_words(), vec!["team-pay", "checkout"]);
        assert!(SearchDocument::from_entity(&json!({"kind": "X"}), "e", 0).is_none());
    }

    #[test]
    fn splits_and_compacts_on_any_separator() {
        assert_eq!(
            words("Payment-Gateway v2_beta"),
            vec!["payment", "gateway", "v2", "beta"]
        );
        assert_eq!(compact("payment gateway"), "paymentgateway");
        assert_eq!(typo_distance("api"), 0);
        assert_eq!(typo_distance("gatway"), 1);
        assert_eq!(typo_distance("paymentgatway"), 2);
    }
}
