//! Findings: what is wrong with a document, where, and under which stable rule.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A position in a source file: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How bad a finding is. Errors make an entity (or file) invalid; warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

macro_rules! rules {
    ($( $(#[$doc:meta])* $variant:ident = $id:literal ),+ $(,)?) => {
        /// Every rule Cadastre checks, with an id that never changes once published.
        ///
        /// The ids appear in CLI output, the API and the UI, and users grep for them:
        /// rename a variant if you like, never its id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Rule {
            $( $(#[$doc])* $variant, )+
        }

        impl Rule {
            /// Every rule, in declaration order.
            pub const ALL: &'static [Rule] = &[$(Rule::$variant),+];

            /// The stable id, e.g. `name-format`.
            pub fn id(self) -> &'static str {
                match self { $( Rule::$variant => $id, )+ }
            }

            /// Looks a rule up by its stable id.
            pub fn from_id(id: &str) -> Option<Rule> {
                match id { $( $id => Some(Rule::$variant), )+ _ => None }
            }
        }
    };
}

rules! {
    // --- reading YAML (reported against the file) ---
    /// The bytes are not valid UTF-8.
    YamlInvalidUtf8 = "yaml-invalid-utf8",
    /// The file is larger than the configured limit.
    YamlTooLarge = "yaml-too-large",
    /// The YAML parser rejected the text (bad indentation, tabs, unclosed quotes, unknown alias…).
    YamlSyntax = "yaml-syntax",
    /// A mapping repeats a key.
    YamlDuplicateKey = "yaml-duplicate-key",
    /// Nesting is deeper than the configured limit.
    YamlTooDeep = "yaml-too-deep",
    /// Aliases expand to more nodes than the configured limit (billion laughs).
    YamlAliasLimit = "yaml-alias-limit",
    /// More documents in one file than the configured limit.
    YamlTooManyDocuments = "yaml-too-many-documents",
    /// A mapping key that is itself a mapping or sequence (cannot be represented as JSON).
    YamlComplexKey = "yaml-complex-key",
    /// A document whose root is not a mapping.
    YamlNotAMapping = "yaml-not-a-mapping",

    // --- the envelope ---
    /// `apiVersion` missing, not a string or empty.
    ApiVersionRequired = "api-version-required",
    /// `apiVersion` is not `[prefix/]version`.
    ApiVersionFormat = "api-version-format",
    /// `kind` missing, not a string or empty.
    KindRequired = "kind-required",
    /// `kind` is not a letter followed by letters and digits, at most 63 long.
    KindFormat = "kind-format",
    /// `metadata` missing or not a mapping.
    MetadataRequired = "metadata-required",
    /// A root key other than apiVersion, kind, metadata and spec (including `relations`/`status`).
    RootFieldUnknown = "root-field-unknown",
    /// `spec` missing or not a mapping where the kind requires it.
    SpecRequired = "spec-required",

    // --- metadata ---
    /// `metadata.name` missing, not a string or empty.
    NameRequired = "name-required",
    /// `metadata.name` is not a valid object name.
    NameFormat = "name-format",
    /// `metadata.namespace` is not a DNS label.
    NamespaceFormat = "namespace-format",
    /// `metadata.title` is not a non-empty string.
    TitleFormat = "title-format",
    /// `metadata.description` is not a string.
    DescriptionFormat = "description-format",
    /// `metadata.labels` is not a mapping of strings.
    LabelsType = "labels-type",
    /// A label key is not a valid prefixed key.
    LabelKeyFormat = "label-key-format",
    /// A label value is neither empty nor a valid object name.
    LabelValueFormat = "label-value-format",
    /// `metadata.annotations` is not a mapping of strings.
    AnnotationsType = "annotations-type",
    /// An annotation key is not a valid prefixed key.
    AnnotationKeyFormat = "annotation-key-format",
    /// `metadata.tags` is not a list of strings.
    TagsType = "tags-type",
    /// A tag is not lower-case `[a-z0-9:+#]` runs joined by single dashes.
    TagFormat = "tag-format",
    /// `metadata.links` is not a list of mappings.
    LinksType = "links-type",
    /// A link's `url` is missing or not an absolute URL.
    LinkUrl = "link-url",
    /// A link's `title`, `icon` or `type` is not a non-blank string.
    LinkField = "link-field",
    /// `metadata.uid` or `metadata.etag` is not a non-empty string.
    ServerFieldFormat = "server-field-format",
    /// Two keys of the flattened entity differ only by letter case.
    KeysCaseClash = "keys-case-clash",

    // --- kinds and their spec ---
    /// No kind definition recognises this kind.
    KindUnknown = "kind-unknown",
    /// The kind is known but not with this apiVersion.
    ApiVersionUnsupported = "api-version-unsupported",
    /// A required spec field is missing.
    SpecFieldRequired = "spec-field-required",
    /// A spec field has the wrong type (or is an empty string / empty list item).
    SpecFieldType = "spec-field-type",
    /// A spec field is not one of the allowed values.
    SpecFieldEnum = "spec-field-enum",
    /// A custom kind's spec does not match its JSON Schema.
    SpecSchema = "spec-schema",

    // --- references ---
    /// An entity reference is not of the form `[kind:][namespace/]name`.
    EntityRefFormat = "entity-ref-format",
    /// An entity reference needs an explicit kind here (e.g. `dependsOn`).
    EntityRefKindRequired = "entity-ref-kind-required",
    /// The same entity ref is produced twice in one validation run.
    EntityRefDuplicate = "entity-ref-duplicate",

    // --- placeholders ---
    /// A `$text`/`$json`/`$yaml` placeholder is malformed or its content does not parse.
    PlaceholderInvalid = "placeholder-invalid",
    /// A placeholder's target could not be read.
    PlaceholderRead = "placeholder-read",
    /// A placeholder points outside the entity's repository.
    PlaceholderRepository = "placeholder-repository",
    /// A placeholder was left unresolved on purpose (remote content not fetched).
    PlaceholderDeferred = "placeholder-deferred",

    // --- ingestion ---
    /// A location could not be read (unreachable, refused host, too large, timed out).
    LocationRead = "location-read",
    /// A Location entity points where it may not: too deep a chain of Location entities,
    /// back at itself, or at an unsupported location type.
    LocationTarget = "location-target",
    /// The entity is already held by another location; the first holder keeps it.
    EntityRefConflict = "entity-ref-conflict",
    /// The entity's kind may not come from this location (the processor's kind rules).
    KindNotAllowed = "kind-not-allowed",
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.id())
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let id = String::deserialize(deserializer)?;
        Rule::from_id(&id)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown rule id {id:?}")))
    }
}

/// One problem: which rule, which field, what is wrong, and where in the source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// Path of the field, e.g. `spec.owner`, `metadata.tags[1]`,
    /// `metadata.annotations["backstage.io/view-url"]`; empty for the whole document.
    pub path: String,
    pub message: String,
    /// Where in the YAML source, when the entity came from YAML.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

impl Finding {
    pub fn error(rule: Rule, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            rule,
            severity: Severity::Error,
            path: path.into(),
            message: message.into(),
            position: None,
        }
    }

    pub fn warning(rule: Rule, path: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(rule, path, message)
        }
    }

    pub fn at(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]: ", self.severity, self.rule)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_ids_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for rule in Rule::ALL {
            assert!(seen.insert(rule.id()), "duplicate id {}", rule.id());
            assert_eq!(Rule::from_id(rule.id()), Some(*rule));
        }
        assert_eq!(Rule::from_id("no-such-rule"), None);
    }

    #[test]
    fn finding_serialises_rule_as_id() {
        let finding = Finding::error(Rule::NameFormat, "metadata.name", "bad")
            .at(Some(Position { line: 3, column: 9 }));
        let json = serde_json::to_value(&finding).unwrap();
        assert_eq!(json["rule"], "name-format");
        assert_eq!(json["severity"], "error");
        assert_eq!(json["position"]["line"], 3);
        let back: Finding = serde_json::from_value(json).unwrap();
        assert_eq!(back, finding);
    }
}
