//! Entity validation: the envelope, metadata formats, the kind's spec, case clashes and
//! relations, reporting every problem found (not only the first).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::entity::Entity;
use crate::finding::{Finding, Rule};
use crate::format;
use crate::kinds::{FieldShape, KindDefinition, KindRegistry, SpecField};
use crate::path::FieldPath;
use crate::placeholder::is_placeholder;
use crate::reference::{DEFAULT_NAMESPACE, EntityRef};
use crate::relations::{self, RelationEdge};
use crate::yaml::{SourceMap, json_type_name};

/// Root keys an entity may have in source data.
const ROOT_KEYS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];

/// A valid entity and every relation its spec produces (both directions).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidEntity {
    /// The entity with `metadata.namespace` filled and its outgoing `relations` set.
    pub entity: Entity,
    /// Every edge, including the inverse ones whose source is another entity.
    pub edges: Vec<RelationEdge>,
}

/// Validates entities against a [`KindRegistry`]. Cheap to share between threads.
#[derive(Debug, Default)]
pub struct Validator {
    registry: KindRegistry,
}

impl Validator {
    pub fn new(registry: KindRegistry) -> Self {
        Validator { registry }
    }

    pub fn registry(&self) -> &KindRegistry {
        &self.registry
    }

    /// Validates one entity. With a `source`, findings carry line and column.
    ///
    /// Returns the valid entity, or every error found.
    pub fn validate(
        &self,
        mut value: Value,
        source: Option<&SourceMap>,
    ) -> Result<ValidEntity, Vec<Finding>> {
        let mut checker = Checker::default();
        let Some(root) = value.as_object_mut() else {
            checker.error(
                Rule::YamlNotAMapping,
                FieldPath::root(),
                format!(
                    "an entity must be a mapping, got {}",
                    json_type_name(&value)
                ),
            );
            return Err(checker.into_findings(source));
        };

        for key in root.keys().filter(|k| !ROOT_KEYS.contains(&k.as_str())) {
            let message = match key.as_str() {
                "relations" | "status" => format!(
                    "unknown field: {key} is computed by the catalog and must not appear in source data"
                ),
                _ => format!(
                    "unknown field {key}: an entity has only apiVersion, kind, metadata and spec"
                ),
            };
            checker.key_error(Rule::RootFieldUnknown, FieldPath::keys(&[key]), message);
        }

        let name_ok = checker.check_metadata(root.get_mut("metadata"));
        let api_version = checker.check_api_version(root.get("apiVersion"));
        let kind = checker.check_kind(root.get("kind"));

        let definition = match (api_version, kind) {
            (Some(api_version), Some(kind)) => {
                self.check_kind_known(&mut checker, api_version, kind)
            }
            _ => None,
        };

        let namespace = root
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_owned();

        let mut edges = Vec::new();
        if let Some(definition) = definition {
            match root.get("spec") {
                Some(Value::Object(spec)) => {
                    checker.check_spec(spec, definition);
                    if let (Some(name), Some(kind)) = (metadata_name(root), kind) {
                        let me = EntityRef::new(kind, namespace.as_str(), name);
                        let derived = relations::derive(&me, spec, definition);
                        for (path, finding) in derived.errors {
                            checker.push(finding, path, false);
                        }
                        edges = derived.edges;
                    }
                }
                Some(other) => checker.key_error(
                    Rule::SpecRequired,
                    FieldPath::keys(&["spec"]),
                    format!("must be a mapping, got {}", json_type_name(other)),
                ),
                None => checker.error(
                    Rule::SpecRequired,
                    FieldPath::root(),
                    format!("spec is required for kind {}", definition.kind),
                ),
            }
        }

        check_key_casing(&mut checker, root);

        if !checker.problems.is_empty() || !name_ok {
            return Err(checker.into_findings(source));
        }

        let entity: Entity = match serde_json::from_value(value) {
            Ok(entity) => entity,
            Err(error) => {
                // Every shape serde relies on was checked above; this is a guard, not a path.
                checker.error(
                    Rule::SpecFieldType,
                    FieldPath::root(),
                    format!("entity does not fit the envelope: {error}"),
                );
                return Err(checker.into_findings(source));
            }
        };
        let mut entity = entity;
        let me = entity.canonical_ref();
        entity.relations = relations::outgoing(&edges, &me);
        Ok(ValidEntity { entity, edges })
    }

    fn check_kind_known<'r>(
        &'r self,
        checker: &mut Checker,
        api_version: &str,
        kind: &str,
    ) -> Option<&'r KindDefinition> {
        match self.registry.get(kind) {
            None => {
                checker.error(
                    Rule::KindUnknown,
                    FieldPath::keys(&["kind"]),
                    format!(
                        "no processor recognizes kind {kind:?} (apiVersion {api_version:?}); known kinds: {} (custom kinds can be declared in configuration)",
                        self.registry.kinds().join(", ")
                    ),
                );
                None
            }
            Some(definition) if !definition.accepts_api_version(api_version) => {
                checker.error(
                    Rule::ApiVersionUnsupported,
                    FieldPath::keys(&["apiVersion"]),
                    format!(
                        "kind {kind} does not accept apiVersion {api_version:?}; expected one of: {}",
                        definition.api_versions.join(", ")
                    ),
                );
                None
            }
            Some(definition) => Some(definition),
        }
    }
}

fn metadata_name(root: &Map<String, Value>) -> Option<&str> {
    root.get("metadata")?.get("name")?.as_str()
}

struct Problem {
    finding: Finding,
    path: FieldPath,
    at_key: bool,
}

#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn push(&mut self, finding: Finding, path: FieldPath, at_key: bool) {
        self.problems.push(Problem {
            finding,
            path,
            at_key,
        });
    }

    fn error(&mut self, rule: Rule, path: FieldPath, message: String) {
        let finding = Finding::error(rule, path.to_string(), message);
        self.push(finding, path, false);
    }

    /// An error best shown at the field's key rather than its value.
    fn key_error(&mut self, rule: Rule, path: FieldPath, message: String) {
        let finding = Finding::error(rule, path.to_string(), message);
        self.push(finding, path, true);
    }

    fn into_findings(self, source: Option<&SourceMap>) -> Vec<Finding> {
        let mut findings: Vec<Finding> = self
            .problems
            .into_iter()
            .map(|problem| {
                let position = source.map(|map| {
                    if problem.at_key {
                        map.locate_key(&problem.path)
                    } else {
                        map.locate(&problem.path)
                    }
                });
                problem.finding.at(position)
            })
            .collect();
        findings.sort_by_key(|f| f.position);
        findings
    }

    fn check_api_version<'v>(&mut self, value: Option<&'v Value>) -> Option<&'v str> {
        let path = || FieldPath::keys(&["apiVersion"]);
        match value {
            Some(Value::String(text)) if !text.is_empty() => {
                if format::is_api_version(text) {
                    return Some(text);
                }
                self.error(
                    Rule::ApiVersionFormat,
                    path(),
                    format!("apiVersion {text:?} is not valid: expected [<group>/]<version>, e.g. backstage.io/v1alpha1"),
                );
            }
            _ => self.error(Rule::ApiVersionRequired, path(), required_message(value)),
        }
        None
    }

    fn check_kind<'v>(&mut self, value: Option<&'v Value>) -> Option<&'v str> {
        let path = || FieldPath::keys(&["kind"]);
        match value {
            Some(Value::String(text)) if !text.is_empty() => {
                if format::is_kind(text) {
                    return Some(text);
                }
                self.error(
                    Rule::KindFormat,
                    path(),
                    format!("kind {text:?} is not valid: a letter followed by letters and digits, at most 63 characters"),
                );
            }
            _ => self.error(Rule::KindRequired, path(), required_message(value)),
        }
        None
    }

    /// Checks `metadata` and fills the default namespace. Returns whether a name is present.
    fn check_metadata(&mut self, metadata: Option<&mut Value>) -> bool {
        let Some(Value::Object(metadata)) = metadata else {
            let message = match metadata {
                None => "is required".to_owned(),
                Some(other) => format!("must be a mapping, got {}", json_type_name(other)),
            };
            self.key_error(
                Rule::MetadataRequired,
                FieldPath::keys(&["metadata"]),
                message,
            );
            return false;
        };
        let at = |key: &str| FieldPath::keys(&["metadata", key]);

        let name_present = match metadata.get("name") {
            Some(Value::String(name)) if !name.is_empty() => {
                if !format::is_object_name(name) {
                    self.error(
                        Rule::NameFormat,
                        at("name"),
                        format!("{name:?} is not a valid name: 1-63 characters, [a-zA-Z0-9] at both ends and [-_.a-zA-Z0-9] in between"),
                    );
                }
                true
            }
            other => {
                self.error(Rule::NameRequired, at("name"), required_message(other));
                false
            }
        };

        match metadata.get("namespace") {
            None => {
                metadata.insert("namespace".to_owned(), Value::String(DEFAULT_NAMESPACE.to_owned()));
            }
            Some(Value::String(ns)) if format::is_dns_label(ns) => {}
            Some(other) => self.error(
                Rule::NamespaceFormat,
                at("namespace"),
                format!("namespace {} is not valid: 1-63 lower-case letters and digits, joined by dashes", show(other)),
            ),
        }

        match metadata.get("title") {
            None => {}
            Some(Value::String(title)) if !title.is_empty() => {}
            Some(other) => self.error(
                Rule::TitleFormat,
                at("title"),
                format!("must be a non-empty string, got {}", show(other)),
            ),
        }
        if let Some(other) = metadata.get("description").filter(|v| !v.is_string()) {
            self.error(
                Rule::DescriptionFormat,
                at("description"),
                format!("must be a string, got {}", show(other)),
            );
        }
        self.check_string_map(
            metadata.get("labels"),
            "labels",
            Rule::LabelsType,
            Rule::LabelKeyFormat,
            Some(Rule::LabelValueFormat),
        );
        self.check_string_map(
            metadata.get("annotations"),
            "annotations",
            Rule::AnnotationsType,
            Rule::AnnotationKeyFormat,
            None,
        );
        self.check_tags(metadata.get("tags"));
        self.check_links(metadata.get("links"));
        for key in ["uid", "etag"] {
            match metadata.get(key) {
                None => {}
                Some(Value::String(text)) if !text.is_empty() => {}
                Some(other) => self.error(
                    Rule::ServerFieldFormat,
                    at(key),
                    format!("must be a non-empty string, got {}", show(other)),
                ),
            }
        }
        name_present
    }

    fn check_string_map(
        &mut self,
        value: Option<&Value>,
        field: &str,
        type_rule: Rule,
        key_rule: Rule,
        value_rule: Option<Rule>,
    ) {
        let path = || FieldPath::keys(&["metadata", field]);
        let map = match value {
            None => return,
            Some(Value::Object(map)) => map,
            Some(other) => {
                self.key_error(
                    type_rule,
                    path(),
                    format!(
                        "must be a mapping of strings, got {}",
                        json_type_name(other)
                    ),
                );
                return;
            }
        };
        for (key, item) in map {
            if !format::is_prefixed_key(key) {
                self.key_error(
                    key_rule,
                    path().key(key),
                    format!("{key:?} is not a valid key: [<dns-subdomain>/]<name>, name 1-63 characters, [a-zA-Z0-9] at both ends"),
                );
            }
            match item {
                Value::String(text) => {
                    if let Some(rule) = value_rule
                        && !format::is_label_value(text)
                    {
                        self.error(
                            rule,
                            path().key(key),
                            format!("{text:?} is not a valid value: empty, or 1-63 characters, [a-zA-Z0-9] at both ends and [-_.a-zA-Z0-9] in between"),
                        );
                    }
                }
                other => self.error(
                    type_rule,
                    path().key(key),
                    format!("must be a string, got {}", json_type_name(other)),
                ),
            }
        }
    }

    fn check_tags(&mut self, value: Option<&Value>) {
        let path = || FieldPath::keys(&["metadata", "tags"]);
        let items = match value {
            None => return,
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.key_error(
                    Rule::TagsType,
                    path(),
                    format!("must be a list of strings, got {}", json_type_name(other)),
                );
                return;
            }
        };
        for (index, item) in items.iter().enumerate() {
            match item {
                Value::String(tag) if !tag.is_empty() => {
                    if !format::is_tag(tag) {
                        self.error(
                            Rule::TagFormat,
                            path().index(index),
                            format!("tag {tag:?} is not valid: 1-63 characters of [a-z0-9:+#] in runs joined by single dashes"),
                        );
                    }
                }
                other => self.error(
                    Rule::TagsType,
                    path().index(index),
                    format!("must be a non-empty string, got {}", show(other)),
                ),
            }
        }
    }

    fn check_links(&mut self, value: Option<&Value>) {
        let path = || FieldPath::keys(&["metadata", "links"]);
        let items = match value {
            None => return,
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.key_error(
                    Rule::LinksType,
                    path(),
                    format!("must be a list of mappings, got {}", json_type_name(other)),
                );
                return;
            }
        };
        for (index, item) in items.iter().enumerate() {
            let item_path = || path().index(index);
            let Value::Object(link) = item else {
                self.error(
                    Rule::LinksType,
                    item_path(),
                    format!("must be a mapping with a url, got {}", json_type_name(item)),
                );
                continue;
            };
            match link.get("url") {
                Some(Value::String(url)) if format::is_absolute_url(url) => {}
                Some(Value::String(url)) => self.error(
                    Rule::LinkUrl,
                    item_path().key("url"),
                    format!("{url:?} is not an absolute URL (e.g. https://example.com/docs)"),
                ),
                Some(other) => self.error(
                    Rule::LinkUrl,
                    item_path().key("url"),
                    format!("must be a string, got {}", show(other)),
                ),
                None => self.error(Rule::LinkUrl, item_path(), "a link needs a url".to_owned()),
            }
            for key in ["title", "icon", "type"] {
                match link.get(key) {
                    None => {}
                    Some(Value::String(text)) if key == "type" && !text.is_empty() => {}
                    Some(Value::String(text)) if key != "type" && format::is_non_blank(text) => {}
                    Some(other) => self.error(
                        Rule::LinkField,
                        item_path().key(key),
                        format!("must be a non-blank string, got {}", show(other)),
                    ),
                }
            }
        }
    }

    fn check_spec(&mut self, spec: &Map<String, Value>, definition: &KindDefinition) {
        for field in &definition.fields {
            let path = || FieldPath::keys(&["spec", &field.name]);
            match spec.get(&field.name) {
                None if field.required => self.error(
                    Rule::SpecFieldRequired,
                    path(),
                    format!("is required for kind {}", definition.kind),
                ),
                None => {}
                Some(value) if is_placeholder(value) => {}
                Some(value) => self.check_shape(field, value, &path),
            }
        }
        if let Some(schema) = &definition.spec_schema {
            let instance = Value::Object(spec.clone());
            for error in schema.iter_errors(&instance) {
                let mut path = FieldPath::keys(&["spec"]);
                for segment in error.instance_path().iter() {
                    path = match segment {
                        jsonschema::paths::LocationSegment::Property(key) => path.key(&key),
                        jsonschema::paths::LocationSegment::Index(index) => path.index(index),
                    };
                }
                self.error(Rule::SpecSchema, path, error.to_string());
            }
        }
    }

    // Paths are passed as builders: they are only built when something is wrong, which keeps
    // the valid path free of allocations.
    fn check_shape(&mut self, field: &SpecField, value: &Value, path: &dyn Fn() -> FieldPath) {
        match field.shape {
            FieldShape::Any => {}
            FieldShape::Text => self.expect_text(value, path),
            FieldShape::TextList => match value {
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.expect_text(item, &|| path().index(index));
                    }
                }
                other => self.error(
                    Rule::SpecFieldType,
                    path(),
                    format!("must be a list of strings, got {}", json_type_name(other)),
                ),
            },
            FieldShape::Object => self.expect_object(value, path),
            FieldShape::Profile => {
                if let Value::Object(profile) = value {
                    for key in ["displayName", "email", "picture"] {
                        if let Some(item) = profile.get(key) {
                            self.expect_text(item, &|| path().key(key));
                        }
                    }
                } else {
                    self.expect_object(value, path);
                }
            }
            FieldShape::Presence => {
                if !matches!(value.as_str(), Some("required" | "optional")) {
                    self.error(
                        Rule::SpecFieldEnum,
                        path(),
                        format!("must be required or optional, got {}", show(value)),
                    );
                }
            }
            FieldShape::Steps => match value {
                Value::Array(steps) => {
                    for (index, step) in steps.iter().enumerate() {
                        self.check_step(step, &|| path().index(index));
                    }
                }
                other => self.error(
                    Rule::SpecFieldType,
                    path(),
                    format!("must be a list of steps, got {}", json_type_name(other)),
                ),
            },
            FieldShape::Parameters => match value {
                Value::Object(_) => {}
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.expect_object(item, &|| path().index(index));
                    }
                }
                other => self.error(
                    Rule::SpecFieldType,
                    path(),
                    format!(
                        "must be a mapping or a list of mappings, got {}",
                        json_type_name(other)
                    ),
                ),
            },
        }
    }

    fn check_step(&mut self, step: &Value, path: &dyn Fn() -> FieldPath) {
        let Value::Object(step) = step else {
            self.expect_object(step, path);
            return;
        };
        match step.get("action") {
            None => self.error(
                Rule::SpecFieldRequired,
                path().key("action"),
                "a step needs an action".to_owned(),
            ),
            Some(action) => self.expect_text(action, &|| path().key("action")),
        }
        for key in ["id", "name"] {
            if let Some(value) = step.get(key) {
                self.expect_text(value, &|| path().key(key));
            }
        }
        if let Some(input) = step.get("input") {
            self.expect_object(input, &|| path().key("input"));
        }
        if let Some(condition) = step.get("if")
            && !(condition.is_string() || condition.is_boolean())
        {
            self.error(
                Rule::SpecFieldType,
                path().key("if"),
                format!(
                    "must be a string or a boolean, got {}",
                    json_type_name(condition)
                ),
            );
        }
    }

    fn expect_text(&mut self, value: &Value, path: &dyn Fn() -> FieldPath) {
        match value {
            Value::String(text) if !text.is_empty() => {}
            other if is_placeholder(other) => {}
            other => self.error(
                Rule::SpecFieldType,
                path(),
                format!("must be a non-empty string, got {}", show(other)),
            ),
        }
    }

    fn expect_object(&mut self, value: &Value, path: &dyn Fn() -> FieldPath) {
        if !value.is_object() {
            self.error(
                Rule::SpecFieldType,
                path(),
                format!("must be a mapping, got {}", json_type_name(value)),
            );
        }
    }
}

/// A short description of a wrong value for messages.
fn show(value: &Value) -> String {
    match value {
        Value::String(text) if text.is_empty() => "an empty string".to_owned(),
        Value::String(text) if text.chars().count() <= 40 => format!("{text:?}"),
        other => json_type_name(other).to_owned(),
    }
}

fn required_message(value: Option<&Value>) -> String {
    match value {
        None => "is required".to_owned(),
        Some(other) => format!("must be a non-empty string, got {}", show(other)),
    }
}

/// Keys the catalog always writes: a source spelling them in another case would clash with
/// them once the entity is stored.
const ALWAYS_WRITTEN_KEYS: &[&str] = &[
    "metadata.uid",
    "metadata.etag",
    "metadata.namespace",
    "metadata.annotations.backstage.io/managed-by-location",
    "metadata.annotations.backstage.io/managed-by-origin-location",
];

/// Root keys left out of Backstage's flattening.
const UNFLATTENED_ROOT_KEYS: &[&str] = &["relations", "status", "attachments"];

/// Backstage flattens every entity into dotted keys for search; keys that differ only by
/// case make that throw, so such an entity can never become visible. Reject it up front.
///
/// The common case (no clash) is decided on 64-bit hashes of each flattened key, exact and
/// lower-cased, without building the keys; only a suspected clash runs the exact walk that
/// names the keys.
fn check_key_casing(checker: &mut Checker, root: &Map<String, Value>) {
    let mut hashes: Vec<(u64, u64)> = ALWAYS_WRITTEN_KEYS
        .iter()
        .map(|key| KeyHash::EMPTY.feed(key, false))
        .map(|hash| (hash.lower, hash.exact))
        .collect();
    for (key, value) in root {
        if !UNFLATTENED_ROOT_KEYS.contains(&key.as_str()) {
            hash_keys(value, KeyHash::EMPTY.feed(key, false), &mut hashes);
        }
    }
    hashes.sort_unstable();
    let suspected = hashes
        .windows(2)
        .any(|pair| pair[0].0 == pair[1].0 && pair[0].1 != pair[1].1);
    if suspected {
        report_key_casing(checker, root);
    }
}

/// FNV-1a over a flattened key, exact and lower-cased, fed segment by segment.
#[derive(Clone, Copy)]
struct KeyHash {
    exact: u64,
    lower: u64,
}

impl KeyHash {
    const EMPTY: KeyHash = KeyHash {
        exact: 0xcbf2_9ce4_8422_2325,
        lower: 0xcbf2_9ce4_8422_2325,
    };

    fn feed(self, segment: &str, dotted: bool) -> KeyHash {
        fn step(hash: u64, byte: u8) -> u64 {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        }
        let mut next = self;
        if dotted {
            next.exact = step(next.exact, b'.');
            next.lower = step(next.lower, b'.');
        }
        for byte in segment.bytes() {
            next.exact = step(next.exact, byte);
        }
        if segment.is_ascii() {
            for byte in segment.bytes() {
                next.lower = step(next.lower, byte.to_ascii_lowercase());
            }
        } else {
            for byte in segment.to_lowercase().bytes() {
                next.lower = step(next.lower, byte);
            }
        }
        next
    }
}

fn hash_keys(value: &Value, key: KeyHash, out: &mut Vec<(u64, u64)>) {
    match value {
        Value::Object(map) => {
            for (child_key, child) in map {
                hash_keys(child, key.feed(child_key, true), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                hash_keys(item, key, out);
                if let Value::String(text) = item {
                    let item_key = key.feed(text, true);
                    out.push((item_key.lower, item_key.exact));
                }
            }
        }
        _ => out.push((key.lower, key.exact)),
    }
}

/// The exact walk: names each pair of clashing keys.
fn report_key_casing(checker: &mut Checker, root: &Map<String, Value>) {
    #[derive(Clone, Copy)]
    enum Step<'a> {
        Key(&'a str),
        Index(usize),
    }
    struct Walk<'a> {
        seen: HashMap<String, String>,
        steps: Vec<Step<'a>>,
        clashes: Vec<(FieldPath, String, String)>,
    }
    impl<'a> Walk<'a> {
        fn record(&mut self, key: String) {
            let lower = key.to_lowercase();
            match self.seen.get(&lower) {
                Some(existing) if *existing != key => {
                    let mut path = FieldPath::root();
                    for step in &self.steps {
                        path = match step {
                            Step::Key(k) => path.key(k),
                            Step::Index(i) => path.index(*i),
                        };
                    }
                    self.clashes.push((path, existing.clone(), key));
                }
                Some(_) => {}
                None => {
                    self.seen.insert(lower, key);
                }
            }
        }

        fn visit(&mut self, dotted: &str, value: &'a Value) {
            match value {
                Value::Object(map) => {
                    for (key, child) in map {
                        let child_key = if dotted.is_empty() {
                            key.clone()
                        } else {
                            format!("{dotted}.{key}")
                        };
                        self.steps.push(Step::Key(key));
                        self.visit(&child_key, child);
                        self.steps.pop();
                    }
                }
                Value::Array(items) => {
                    for (index, item) in items.iter().enumerate() {
                        self.steps.push(Step::Index(index));
                        self.visit(dotted, item);
                        if let Value::String(text) = item {
                            self.record(format!("{dotted}.{text}"));
                        }
                        self.steps.pop();
                    }
                }
                _ => self.record(dotted.to_owned()),
            }
        }
    }
    let mut walk = Walk {
        seen: ALWAYS_WRITTEN_KEYS
            .iter()
            .map(|k| (k.to_lowercase(), (*k).to_owned()))
            .collect(),
        steps: Vec::new(),
        clashes: Vec::new(),
    };
    for (key, value) in root {
        if UNFLATTENED_ROOT_KEYS.contains(&key.as_str()) {
            continue;
        }
        walk.steps.push(Step::Key(key));
        walk.visit(key, value);
        walk.steps.pop();
    }
    for (path, first, second) in walk.clashes {
        checker.error(
            Rule::KeysCaseClash,
            path,
            format!("keys {first:?} and {second:?} differ only by letter case; the catalog cannot tell them apart"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_str};
    use serde_json::json;

    fn validate_yaml(text: &str) -> Result<ValidEntity, Vec<Finding>> {
        let parsed = parse_str(text, &Limits::default());
        assert!(parsed.findings.is_empty(), "{:?}", parsed.findings);
        let doc = parsed.documents.into_iter().next().unwrap();
        Validator::default().validate(doc.value, Some(&doc.source))
    }

    fn rules(result: Result<ValidEntity, Vec<Finding>>) -> Vec<(Rule, String, u32)> {
        result
            .unwrap_err()
            .into_iter()
            .map(|f| (f.rule, f.path, f.position.map_or(0, |p| p.line)))
            .collect()
    }

    #[test]
    fn accepts_the_worked_example() {
        let valid = validate_yaml(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: artist-web\n  namespace: music\n  tags: [java]\nspec:\n  type: website\n  lifecycle: production\n  owner: artist-relations\n  system: public-websites\n  providesApis: [artist-api]\n  dependsOn: [resource:default/artists-db]\n",
        )
        .unwrap();
        let relations: Vec<String> = valid
            .entity
            .relations
            .iter()
            .map(|r| format!("{} {}", r.relation_type, r.target_ref))
            .collect();
        assert_eq!(
            relations,
            [
                "dependsOn resource:default/artists-db",
                "ownedBy group:music/artist-relations",
                "partOf system:music/public-websites",
                "providesApi api:music/artist-api"
            ]
        );
        assert_eq!(valid.edges.len(), 8);
    }

    #[test]
    fn fills_the_default_namespace() {
        let valid = Validator::default()
            .validate(
                json!({"apiVersion": "backstage.io/v1alpha1", "kind": "Location", "metadata": {"name": "x"}, "spec": {}}),
                None,
            )
            .unwrap();
        assert_eq!(valid.entity.metadata.namespace, "default");
        assert_eq!(valid.entity.to_value()["metadata"]["namespace"], "default");
    }

    #[test]
    fn reports_every_error_with_positions() {
        let found = rules(validate_yaml(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: -bad\n  tags: [Java, ok]\n  links:\n    - url: not a url\nspec:\n  type: service\n  lifecycle: production\n  dependsOn: [db]\nstatus: {}\n",
        ));
        assert_eq!(
            found,
            [
                (Rule::NameFormat, "metadata.name".to_owned(), 4),
                (Rule::TagFormat, "metadata.tags[0]".to_owned(), 5),
                (Rule::LinkUrl, "metadata.links[0].url".to_owned(), 7),
                (Rule::SpecFieldRequired, "spec.owner".to_owned(), 8),
                (
                    Rule::EntityRefKindRequired,
                    "spec.dependsOn[0]".to_owned(),
                    11
                ),
                (Rule::RootFieldUnknown, "status".to_owned(), 12),
            ]
        );
    }

    #[test]
    fn unknown_kinds_and_api_versions() {
        let found = rules(validate_yaml(
            "apiVersion: backstage.io/v1alpha1\nkind: AiResource\nmetadata:\n  name: x\nspec: {}\n",
        ));
        assert_eq!(found, [(Rule::KindUnknown, "kind".to_owned(), 2)]);
        let found = rules(validate_yaml(
            "apiVersion: backstage.io/v1alpha1\nkind: Template\nmetadata:\n  name: x\nspec: {}\n",
        ));
        assert_eq!(
            found,
            [(Rule::ApiVersionUnsupported, "apiVersion".to_owned(), 1)]
        );
        // Kind matching is case-sensitive.
        let found = rules(validate_yaml(
            "apiVersion: backstage.io/v1alpha1\nkind: component\nmetadata:\n  name: x\nspec: {}\n",
        ));
        assert_eq!(found[0].0, Rule::KindUnknown);
    }

    #[test]
    fn custom_kinds_validate_against_their_schema() {
        let registry = KindRegistry::with_custom(&[crate::kinds::CustomKind {
            kind: "AiResource".into(),
            api_versions: vec!["backstage.io/v1alpha1".into()],
            spec_schema: Some(json!({"type": "object", "required": ["type", "owner"], "properties": {"type": {"type": "string"}}})),
            relations: vec![crate::kinds::CustomRelation {
                field: "owner".into(),
                forward: "ownedBy".into(),
                inverse: "ownerOf".into(),
                default_kind: Some("group".into()),
            }],
        }])
        .unwrap();
        let validator = Validator::new(registry);
        let ok = validator
            .validate(
                json!({"apiVersion": "backstage.io/v1alpha1", "kind": "AiResource", "metadata": {"name": "x"}, "spec": {"type": "skill", "owner": "team-a"}}),
                None,
            )
            .unwrap();
        assert_eq!(ok.entity.relations[0].target_ref, "group:default/team-a");
        let bad = validator
            .validate(
                json!({"apiVersion": "backstage.io/v1alpha1", "kind": "AiResource", "metadata": {"name": "x"}, "spec": {"type": 3}}),
                None,
            )
            .unwrap_err();
        let found: Vec<(Rule, &str)> = bad.iter().map(|f| (f.rule, f.path.as_str())).collect();
        assert!(found.contains(&(Rule::SpecSchema, "spec")), "{found:?}");
        assert!(
            found.contains(&(Rule::SpecSchema, "spec.type")),
            "{found:?}"
        );
    }

    #[test]
    fn rejects_keys_differing_only_by_case() {
        let found = rules(validate_yaml(
            "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: x\nspec:\n  type: service\n  lifecycle: production\n  owner: me\n  Type: other\n",
        ));
        assert_eq!(found, [(Rule::KeysCaseClash, "spec.Type".to_owned(), 9)]);
    }
}
