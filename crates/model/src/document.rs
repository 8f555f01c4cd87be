//! Reading one catalog file end to end: YAML documents, placeholders, validation.
//!
//! This is what `cadastre validate` and the processor run per file. It does no I/O itself:
//! the caller passes the bytes, and placeholder targets are read through a
//! [`PlaceholderReader`].

use serde::Serialize;
use serde_json::Value;

use std::collections::HashMap;

use crate::finding::{Finding, Position, Rule};
use crate::path::FieldPath;
use crate::placeholder::{PlaceholderReader, resolve_placeholders};
use crate::validate::{ValidEntity, Validator};
use crate::yaml::{self, Limits};

/// The outcome for one document of a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DocumentReport {
    /// 0-based index of the document in its file.
    pub document: usize,
    /// `kind:namespace/name` (lower case) when the document names one, valid or not.
    pub entity_ref: Option<String>,
    /// Where the document names itself (`metadata.name`), or where it starts.
    pub position: Option<Position>,
    /// The valid entity, if there were no errors.
    #[serde(skip)]
    pub entity: Option<ValidEntity>,
    /// Errors and warnings for this document, in source order.
    pub findings: Vec<Finding>,
}

/// The outcome for one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FileReport {
    /// Problems with the file itself (YAML errors, non-mapping documents).
    pub findings: Vec<Finding>,
    pub documents: Vec<DocumentReport>,
}

impl FileReport {
    /// Every finding of the file and its documents.
    pub fn all_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .chain(self.documents.iter().flat_map(|d| d.findings.iter()))
    }

    pub fn error_count(&self) -> usize {
        self.all_findings().filter(|f| f.is_error()).count()
    }

    pub fn warning_count(&self) -> usize {
        self.all_findings().filter(|f| !f.is_error()).count()
    }

    /// The valid entities, in document order.
    pub fn valid_entities(&self) -> impl Iterator<Item = &ValidEntity> {
        self.documents.iter().filter_map(|d| d.entity.as_ref())
    }
}

/// Reads catalog files with one validator, one set of limits and one placeholder reader.
pub struct CatalogReader<'a> {
    pub validator: &'a Validator,
    pub limits: Limits,
    pub placeholders: &'a dyn PlaceholderReader,
}

impl std::fmt::Debug for CatalogReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatalogReader")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CatalogReader<'_> {
    /// Reads and validates every document of a file. `location` is where the file lives
    /// (path or URL); relative placeholder targets resolve against it.
    pub fn read(&self, location: &str, bytes: &[u8]) -> FileReport {
        let parsed = yaml::parse_bytes(bytes, &self.limits);
        let mut report = FileReport {
            findings: parsed.findings,
            documents: Vec::with_capacity(parsed.documents.len()),
        };
        let mut seen: HashMap<String, usize> = HashMap::new();
        for document in parsed.documents {
            let mut value = document.value;
            let entity_ref = describe_ref(&value);
            let position = Some(
                document
                    .source
                    .locate(&FieldPath::keys(&["metadata", "name"])),
            );
            // Backstage checks the envelope when it reads the file, before any placeholder is
            // substituted: a placeholder cannot stand in for the entity's identity.
            let placeholder_findings = if envelope_is_plain(&value) {
                resolve_placeholders(&mut value, location, self.placeholders, &self.limits)
            } else {
                Vec::new()
            };
            let mut findings: Vec<Finding> = placeholder_findings
                .into_iter()
                .map(|(path, finding)| {
                    let position = Some(document.source.locate(&path));
                    finding.at(position)
                })
                .collect();
            let placeholder_failed = findings.iter().any(Finding::is_error);
            let mut entity = match self.validator.validate(value, Some(&document.source)) {
                Ok(valid) if !placeholder_failed => Some(valid),
                Ok(_) => None,
                Err(errors) => {
                    findings.extend(errors);
                    None
                }
            };
            // Two documents of one file naming the same entity: the later one is refused
            // (Backstage's engine silently keeps one; its dry run reports the duplicate).
            if let Some(valid) = &entity {
                let entity_ref = valid.entity.canonical_ref();
                if let Some(first) = seen.get(&entity_ref) {
                    findings.push(
                        Finding::error(
                            Rule::EntityRefDuplicate,
                            "metadata.name",
                            format!("{entity_ref} is already defined by document {} of this file; refs are unique case-insensitively", first + 1),
                        )
                        .at(position),
                    );
                    entity = None;
                } else {
                    seen.insert(entity_ref, document.index);
                }
            }
            findings.sort_by_key(|f| f.position);
            report.documents.push(DocumentReport {
                document: document.index,
                entity_ref,
                position,
                entity,
                findings,
            });
        }
        report
    }
}

/// Whether the fields that identify an entity are plain strings (so placeholders may run).
fn envelope_is_plain(value: &Value) -> bool {
    let is_text = |v: Option<&Value>| matches!(v, Some(Value::String(s)) if !s.is_empty());
    let metadata = value.get("metadata");
    is_text(value.get("apiVersion"))
        && is_text(value.get("kind"))
        && is_text(metadata.and_then(|m| m.get("name")))
        && metadata
            .and_then(|m| m.get("namespace"))
            .is_none_or(|ns| is_text(Some(ns)))
        && metadata
            .and_then(|m| m.get("annotations"))
            .is_none_or(Value::is_object)
}

/// `kind:namespace/name` of a document that names itself, even if it is otherwise invalid.
fn describe_ref(value: &Value) -> Option<String> {
    let kind = value.get("kind")?.as_str()?;
    let metadata = value.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = metadata
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(crate::reference::DEFAULT_NAMESPACE);
    Some(crate::reference::EntityRef::new(kind, namespace, name).canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Rule;
    use crate::placeholder::ReadOutcome;

    struct NoFiles;
    impl PlaceholderReader for NoFiles {
        fn read(&self, _: &str) -> Result<ReadOutcome, String> {
            Err("no files here".to_owned())
        }
    }

    #[test]
    fn valid_neighbours_survive_a_bad_document() {
        let validator = Validator::default();
        let reader = CatalogReader {
            validator: &validator,
            limits: Limits::default(),
            placeholders: &NoFiles,
        };
        let report = reader.read(
            "/x/catalog-info.yaml",
            b"apiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: a\nspec:\n  type: team\n  children: []\n---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: b\nspec:\n  type: team\n---\n- not an entity\n",
        );
        assert_eq!(report.valid_entities().count(), 1);
        assert_eq!(
            report.documents[1].entity_ref.as_deref(),
            Some("group:default/b")
        );
        let rules: Vec<(Rule, u32)> = report
            .all_findings()
            .map(|f| (f.rule, f.position.unwrap().line))
            .collect();
        assert_eq!(
            rules,
            [(Rule::YamlNotAMapping, 16), (Rule::SpecFieldRequired, 13)]
        );
    }
}
