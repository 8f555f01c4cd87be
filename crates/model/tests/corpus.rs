//! The invalid-entity corpus: every file under `tests/corpus/invalid/` declares, in its
//! leading comment lines, exactly which findings (rule id, line, severity) reading it must
//! produce. Derived from `shared/spec/entity-model.md`; see `tests/corpus/README.md`.
//!
//! Header lines (leading `#` lines of the file, before any YAML):
//!
//! ```text
//! # expect: name-format @ 4              one finding: rule id and 1-based line (`@ -`: none)
//! # expect: placeholder-deferred @ 9 warning   severity, `error` unless given
//! # location: /corpus/apis/entity.yaml   where the file lives (placeholders resolve against it)
//! # custom-kinds: [{"kind": "AiResource", "api_versions": ["backstage.io/v1alpha1"]}]
//! # limits: {"max_depth": 4}             Limits::default() with these fields replaced
//! # discrepancy: <text>                  the expectation follows the spec, not today's code
//! # note: <text>                         free text
//! ```
//!
//! Cases that cannot be files (invalid UTF-8, BOM + CRLF, oversize) are built inline below.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use cadastre_model::{
    CatalogReader, CustomKind, FileReport, KindRegistry, Limits, PlaceholderReader, ReadOutcome,
    Rule, Severity, Validator,
};

/// Virtual directory that maps to `tests/corpus/files/`.
const VIRTUAL_BASE: &str = "/corpus/";
/// The one git location that also maps to `tests/corpus/files/`.
const GITHUB_BASE: &str = "https://github.com/acme/repo/blob/main/";

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// Serves `tests/corpus/files/` under `/corpus/` and under [`GITHUB_BASE`]; defers other
/// remote targets; everything else is a read failure.
struct CorpusFiles {
    root: PathBuf,
}

impl PlaceholderReader for CorpusFiles {
    fn read(&self, target: &str) -> Result<ReadOutcome, String> {
        let relative = if let Some(rest) = target.strip_prefix(VIRTUAL_BASE) {
            rest
        } else if let Some(rest) = target.strip_prefix(GITHUB_BASE) {
            rest
        } else if target
            .to_ascii_lowercase()
            .starts_with("https://github.com/acme/")
        {
            return Err(format!("{target}: not found in the test repository"));
        } else if target.starts_with("https://") || target.starts_with("http://") {
            return Ok(ReadOutcome::Deferred(
                "remote content is not fetched by the corpus test".to_owned(),
            ));
        } else {
            return Err(format!("{target}: outside the corpus"));
        };
        if relative.split('/').any(|part| part == "..") {
            return Err(format!("{target}: escapes the corpus"));
        }
        fs::read_to_string(self.root.join(relative))
            .map(ReadOutcome::Content)
            .map_err(|error| format!("{target}: {error}"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Expected {
    rule: Rule,
    line: Option<u32>,
    severity: Severity,
}

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} @ {line}", self.rule)?,
            None => write!(f, "{} @ -", self.rule)?,
        }
        if self.severity == Severity::Warning {
            f.write_str(" warning")?;
        }
        Ok(())
    }
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    location: String,
    custom_kinds: Vec<CustomKind>,
    limits: Limits,
    expected: Vec<Expected>,
    discrepancy: Option<String>,
}

impl Case {
    fn inline(name: &str, bytes: Vec<u8>, expected: Vec<Expected>) -> Case {
        Case {
            name: format!("(inline) {name}"),
            bytes,
            location: format!("{VIRTUAL_BASE}{name}.yaml"),
            custom_kinds: Vec::new(),
            limits: Limits::default(),
            expected,
            discrepancy: None,
        }
    }
}

fn parse_expectation(text: &str) -> Result<Expected, String> {
    let (rule, rest) = text
        .split_once('@')
        .ok_or_else(|| format!("expected `<rule-id> @ <line> [warning]`, got {text:?}"))?;
    let rule = Rule::from_id(rule.trim()).ok_or_else(|| format!("unknown rule id in {text:?}"))?;
    let mut words = rest.split_whitespace();
    let line = match words.next() {
        Some("-") => None,
        Some(number) => Some(
            number
                .parse::<u32>()
                .map_err(|_| format!("bad line number in {text:?}"))?,
        ),
        None => return Err(format!("missing line in {text:?}")),
    };
    let severity = match words.next() {
        None | Some("error") => Severity::Error,
        Some("warning") => Severity::Warning,
        Some(other) => return Err(format!("unknown severity {other:?} in {text:?}")),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {extra:?} in {text:?}"));
    }
    Ok(Expected {
        rule,
        line,
        severity,
    })
}

fn limits_from_json(text: &str) -> Result<Limits, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("limits: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "limits: expected a JSON object".to_owned())?;
    let mut limits = Limits::default();
    for (key, value) in object {
        let number = value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("limits.{key}: expected a non-negative integer"))?;
        match key.as_str() {
            "max_file_bytes" => limits.max_file_bytes = number,
            "max_depth" => limits.max_depth = number,
            "max_alias_nodes" => limits.max_alias_nodes = number,
            "max_documents" => limits.max_documents = number,
            other => return Err(format!("limits: unknown field {other:?}")),
        }
    }
    Ok(limits)
}

/// Reads the header of a corpus file.
fn load_case(path: &Path) -> Result<Case, String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("file name is not UTF-8")?
        .to_owned();
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "corpus files must be UTF-8")?;
    let mut case = Case {
        location: format!("{VIRTUAL_BASE}{name}"),
        name,
        bytes: bytes.clone(),
        custom_kinds: Vec::new(),
        limits: Limits::default(),
        expected: Vec::new(),
        discrepancy: None,
    };
    for line in text.lines() {
        let Some(comment) = line.strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = comment.trim().split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "expect" => case.expected.push(parse_expectation(value)?),
            "location" => case.location = value.to_owned(),
            "custom-kinds" => {
                case.custom_kinds =
                    serde_json::from_str(value).map_err(|e| format!("custom-kinds: {e}"))?;
            }
            "limits" => case.limits = limits_from_json(value)?,
            "discrepancy" => {
                let note = case.discrepancy.get_or_insert_with(String::new);
                if !note.is_empty() {
                    note.push(' ');
                }
                note.push_str(value);
            }
            "note" => {}
            other
                if !other.is_empty()
                    && other.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') =>
            {
                return Err(format!("unknown header {other:?}"));
            }
            _ => {}
        }
    }
    if case.expected.is_empty() {
        return Err("declares no `# expect:` line; every corpus file is invalid".to_owned());
    }
    let rule_id = case.name.split("--").next().unwrap_or_default();
    let Some(rule) = Rule::from_id(rule_id) else {
        return Err(format!(
            "file names start with the rule id they cover (`<rule-id>--<case>.yaml`), {rule_id:?} is not one"
        ));
    };
    if !case.expected.iter().any(|e| e.rule == rule) {
        return Err(format!("named after {rule_id} but does not expect it"));
    }
    Ok(case)
}

fn file_cases() -> Vec<Case> {
    let dir = corpus_dir().join("invalid");
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| load_case(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn expect(rule: Rule, line: Option<u32>) -> Expected {
    Expected {
        rule,
        line,
        severity: Severity::Error,
    }
}

/// A small valid entity, for the inline cases.
const COMPONENT: &str = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n";

fn inline_cases() -> Vec<Case> {
    let mut invalid_utf8 = COMPONENT.as_bytes().to_vec();
    // Line 9: `description: caf<0xE9>` (Latin-1, not UTF-8).
    invalid_utf8.extend_from_slice(b"  description: caf\xe9\n");
    let mut truncated_utf8 = b"# a UTF-8 sequence cut short on line 2\nkind: \xe2\x82\n".to_vec();
    truncated_utf8.extend_from_slice(COMPONENT.as_bytes());

    let oversize = format!("{COMPONENT}  description: {}\n", "x".repeat(200));
    let oversize_limits = Limits {
        max_file_bytes: 200,
        ..Limits::default()
    };
    // A file exactly at the size limit is read (the limit is inclusive).
    let at_limit = COMPONENT.replace("name: svc", "name: -bad");
    let at_limit_limits = Limits {
        max_file_bytes: at_limit.len(),
        ..Limits::default()
    };

    // A BOM and CRLF line endings are fine; lines still count from 1.
    let bom_crlf = format!(
        "\u{feff}{}",
        COMPONENT
            .replace("name: svc", "name: svc_")
            .replace('\n', "\r\n")
    );

    vec![
        Case::inline(
            "yaml-invalid-utf8--latin1-byte",
            invalid_utf8,
            vec![expect(Rule::YamlInvalidUtf8, Some(9))],
        ),
        Case::inline(
            "yaml-invalid-utf8--truncated-sequence",
            truncated_utf8,
            vec![expect(Rule::YamlInvalidUtf8, Some(2))],
        ),
        Case {
            limits: oversize_limits,
            ..Case::inline(
                "yaml-too-large--over-limit",
                oversize.into_bytes(),
                vec![expect(Rule::YamlTooLarge, None)],
            )
        },
        Case {
            limits: at_limit_limits,
            ..Case::inline(
                "name-format--file-exactly-at-size-limit",
                at_limit.into_bytes(),
                vec![expect(Rule::NameFormat, Some(4))],
            )
        },
        Case::inline(
            "name-format--bom-and-crlf",
            bom_crlf.into_bytes(),
            vec![expect(Rule::NameFormat, Some(4))],
        ),
    ]
}

struct Actual {
    key: Expected,
    path: String,
    message: String,
}

fn actual_findings(report: &FileReport) -> Vec<Actual> {
    let mut found: Vec<Actual> = report
        .all_findings()
        .map(|f| Actual {
            key: Expected {
                rule: f.rule,
                line: f.position.map(|p| p.line),
                severity: f.severity,
            },
            path: f.path.clone(),
            message: f.message.clone(),
        })
        .collect();
    found.sort_by_key(|a| a.key);
    found
}

/// Runs one case; returns a description of what went wrong, if anything.
fn run_case(case: &Case, files: &CorpusFiles) -> Option<String> {
    let registry = match KindRegistry::with_custom(&case.custom_kinds) {
        Ok(registry) => registry,
        Err(error) => return Some(format!("custom-kinds header rejected: {error}")),
    };
    let validator = Validator::new(registry);
    let reader = CatalogReader {
        validator: &validator,
        limits: case.limits,
        placeholders: files,
    };
    let report = reader.read(&case.location, &case.bytes);
    let actual = actual_findings(&report);

    let mut problems = String::new();
    // A document is valid exactly when it has no error finding.
    for document in &report.documents {
        let has_errors = document.findings.iter().any(|f| f.is_error());
        if document.entity.is_some() == has_errors {
            let _ = writeln!(
                problems,
                "  document {} ({:?}): entity is {} but it has {} error(s)",
                document.document,
                document.entity_ref,
                if document.entity.is_some() {
                    "valid"
                } else {
                    "invalid"
                },
                document.findings.iter().filter(|f| f.is_error()).count()
            );
        }
    }

    let mut expected: BTreeMap<Expected, usize> = BTreeMap::new();
    for e in &case.expected {
        *expected.entry(*e).or_default() += 1;
    }
    let mut got: BTreeMap<Expected, usize> = BTreeMap::new();
    for a in &actual {
        *got.entry(a.key).or_default() += 1;
    }
    if expected != got {
        let keys: BTreeSet<&Expected> = expected.keys().chain(got.keys()).collect();
        for key in keys {
            let want = expected.get(key).copied().unwrap_or(0);
            let have = got.get(key).copied().unwrap_or(0);
            if want > have {
                let _ = writeln!(
                    problems,
                    "  missing    {key}  (expected {want}, got {have})"
                );
            } else if have > want {
                let _ = writeln!(
                    problems,
                    "  unexpected {key}  (expected {want}, got {have})"
                );
            }
        }
        let _ = writeln!(problems, "  expected:");
        for e in &case.expected {
            let _ = writeln!(problems, "    {e}");
        }
        let _ = writeln!(problems, "  actual:");
        if actual.is_empty() {
            let _ = writeln!(problems, "    (no findings)");
        }
        for a in &actual {
            let _ = writeln!(problems, "    {}  {}: {}", a.key, a.path, a.message);
        }
    }
    if problems.is_empty() {
        return None;
    }
    if let Some(note) = &case.discrepancy {
        problems.insert_str(
            0,
            &format!("  KNOWN SPEC/VALIDATOR DISCREPANCY (expectation follows the spec): {note}\n"),
        );
    }
    Some(problems)
}

#[test]
fn corpus_cases_yield_exactly_their_expected_findings() {
    let files = CorpusFiles {
        root: corpus_dir().join("files"),
    };
    let cases: Vec<Case> = file_cases().into_iter().chain(inline_cases()).collect();
    let mut failures = String::new();
    let mut failed = 0;
    for case in &cases {
        if let Some(problems) = run_case(case, &files) {
            failed += 1;
            let _ = writeln!(failures, "\n{}:\n{problems}", case.name);
        }
    }
    assert!(
        failures.is_empty(),
        "{failed} of {} corpus cases failed:\n{failures}",
        cases.len()
    );
}

#[test]
fn every_rule_has_a_corpus_case() {
    let cases: Vec<Case> = file_cases().into_iter().chain(inline_cases()).collect();
    let covered: BTreeSet<Rule> = cases
        .iter()
        .flat_map(|case| case.expected.iter().map(|e| e.rule))
        .collect();
    // Raised by the ingestion pipeline, not by reading a file: the harvester's and the
    // processor's tests cover them.
    let pipeline = [
        Rule::LocationRead,
        Rule::LocationTarget,
        Rule::EntityRefConflict,
        Rule::KindNotAllowed,
    ];
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .filter(|rule| !covered.contains(rule) && !pipeline.contains(rule))
        .map(|rule| rule.id())
        .collect();
    assert!(
        missing.is_empty(),
        "rules without a case in tests/corpus/invalid/ (add `<rule-id>--<case>.yaml`): {missing:?}"
    );
}

#[test]
fn corpus_file_names_are_well_formed() {
    for case in file_cases() {
        let stem = case.name.trim_end_matches(".yaml");
        assert!(
            stem.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{}: use lower-case letters, digits and dashes",
            case.name
        );
    }
}
