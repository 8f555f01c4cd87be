//! `cadastre validate PATH...`: check catalog files the way the catalog will, before a push.
//!
//! Prints like a compiler (`path:line:col: error[rule-id]: message`) or JSON, and exits 0 when
//! everything is valid, 1 when anything is invalid, 2 on a usage or I/O error.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use cadastre_model::{
    CatalogReader, FileReport, Finding, Limits, PlaceholderReader, ReadOutcome, Rule, Validator,
};
use rayon::prelude::*;
use serde::Serialize;
use thiserror::Error;

/// Exit status when every file is valid.
pub const EXIT_VALID: i32 = 0;
/// Exit status when anything is invalid.
pub const EXIT_INVALID: i32 = 1;
/// Exit status for usage and I/O errors.
pub const EXIT_USAGE: i32 = 2;

/// How findings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

/// What to validate and how.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files, directories, or `-` for standard input.
    pub paths: Vec<PathBuf>,
    /// In directories, read every `*.yaml`/`*.yml`, not only `catalog-info.yaml`.
    pub all_yaml: bool,
    pub format: OutputFormat,
    pub limits: Limits,
}

/// Problems that stop validation before any verdict (exit status 2).
#[derive(Debug, Error)]
pub enum UsageError {
    #[error("no paths given: pass files, directories or - for standard input")]
    NoPaths,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("standard input can be read only once")]
    StdinTwice,
}

/// One file to read: where it is shown as, and where its bytes come from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Stdin,
}

impl Source {
    fn display(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Stdin => "<stdin>".to_owned(),
        }
    }
}

/// Reads placeholder targets from the local disk. Remote content is not fetched here: the
/// harvester reads it (with its allow-list) when the location is ingested.
#[derive(Debug)]
pub struct LocalFiles {
    max_bytes: usize,
}

impl LocalFiles {
    /// Reads files of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        LocalFiles { max_bytes }
    }
}

impl PlaceholderReader for LocalFiles {
    fn read(&self, target: &str) -> Result<ReadOutcome, String> {
        if target.contains("://") {
            return Ok(ReadOutcome::Deferred(
                "remote content is read by the harvester when the location is ingested, not by `cadastre validate`".to_owned(),
            ));
        }
        let bytes = read_limited(Path::new(target), self.max_bytes).map_err(|e| e.to_string())?;
        String::from_utf8(bytes)
            .map(ReadOutcome::Content)
            .map_err(|_| "not valid UTF-8".to_owned())
    }
}

fn read_limited(path: &Path, max_bytes: usize) -> std::io::Result<Vec<u8>> {
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    // One byte more than allowed tells "too large" apart from "exactly at the limit".
    file.take(max_bytes as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The verdict on one file, ready to print.
#[derive(Debug, Serialize)]
pub struct FileResult {
    pub path: String,
    /// Canonical refs of the valid entities in the file.
    pub entities: Vec<String>,
    pub findings: Vec<Finding>,
}

/// The verdict on the whole run.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub files: usize,
    pub entities: usize,
    pub invalid_documents: usize,
    pub errors: usize,
    pub warnings: usize,
}

#[derive(Debug, Serialize)]
pub struct Outcome {
    pub files: Vec<FileResult>,
    pub summary: Summary,
}

impl Outcome {
    pub fn exit_code(&self) -> i32 {
        if self.summary.errors > 0 {
            EXIT_INVALID
        } else {
            EXIT_VALID
        }
    }
}

/// Runs validation and prints the result. Returns the exit status.
pub fn run(
    options: &Options,
    validator: &Validator,
    stdin: &mut dyn Read,
    out: &mut dyn Write,
) -> Result<i32, UsageError> {
    let outcome = check(options, validator, stdin)?;
    let io_error = |source| UsageError::Io {
        path: PathBuf::from("<stdout>"),
        source,
    };
    match options.format {
        OutputFormat::Text => print_text(&outcome, out).map_err(io_error)?,
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, &outcome).map_err(|e| io_error(e.into()))?;
            writeln!(out).map_err(io_error)?;
        }
    }
    Ok(outcome.exit_code())
}

/// Validates everything `options` names and returns the findings, without printing.
pub fn check(
    options: &Options,
    validator: &Validator,
    stdin: &mut dyn Read,
) -> Result<Outcome, UsageError> {
    let sources = collect_sources(options)?;
    let stdin_bytes = if sources.iter().any(|s| matches!(s, Source::Stdin)) {
        let mut bytes = Vec::new();
        stdin
            .take(options.limits.max_file_bytes as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| UsageError::Io {
                path: PathBuf::from("-"),
                source,
            })?;
        Some(bytes)
    } else {
        None
    };
    let placeholders = LocalFiles::new(options.limits.max_file_bytes);
    let reader = CatalogReader {
        validator,
        limits: options.limits,
        placeholders: &placeholders,
    };
    let reports: Vec<(String, FileReport)> = sources
        .par_iter()
        .map(|source| {
            let report = match source {
                Source::Stdin => reader.read("-", stdin_bytes.as_deref().unwrap_or_default()),
                Source::File(path) => match read_limited(path, options.limits.max_file_bytes) {
                    Ok(bytes) => reader.read(&path.to_string_lossy(), &bytes),
                    Err(error) => Err(error).map_err(|source| UsageError::Io {
                        path: path.clone(),
                        source,
                    })?,
                },
            };
            Ok((source.display(), report))
        })
        .collect::<Result<_, UsageError>>()?;
    Ok(summarise(reports))
}

/// Expands directories into files, in a stable order.
fn collect_sources(options: &Options) -> Result<Vec<Source>, UsageError> {
    if options.paths.is_empty() {
        return Err(UsageError::NoPaths);
    }
    let mut sources = Vec::new();
    let mut stdin_seen = false;
    for path in &options.paths {
        if path.as_os_str() == "-" {
            if stdin_seen {
                return Err(UsageError::StdinTwice);
            }
            stdin_seen = true;
            sources.push(Source::Stdin);
            continue;
        }
        let metadata = std::fs::metadata(path).map_err(|source| UsageError::Io {
            path: path.clone(),
            source,
        })?;
        if !metadata.is_dir() {
            sources.push(Source::File(path.clone()));
            continue;
        }
        let mut found = Vec::new();
        let walker = walkdir::WalkDir::new(path)
            .follow_links(false)
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !is_skipped_dir(entry));
        for entry in walker {
            let entry = entry.map_err(|error| UsageError::Io {
                path: error.path().map_or_else(|| path.clone(), Path::to_path_buf),
                source: error.into(),
            })?;
            if entry.file_type().is_file() && is_catalog_file(entry.path(), options.all_yaml) {
                found.push(entry.into_path());
            }
        }
        found.sort();
        sources.extend(found.into_iter().map(Source::File));
    }
    Ok(sources)
}

fn is_skipped_dir(entry: &walkdir::DirEntry) -> bool {
    entry.file_type().is_dir()
        && matches!(
            entry.file_name().to_str(),
            Some(".git" | "node_modules" | "target")
        )
}

fn is_catalog_file(path: &Path, all_yaml: bool) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if all_yaml {
        name.ends_with(".yaml") || name.ends_with(".yml")
    } else {
        matches!(name, "catalog-info.yaml" | "catalog-info.yml")
    }
}

/// Turns per-file reports into results, flagging refs defined twice across the run.
fn summarise(reports: Vec<(String, FileReport)>) -> Outcome {
    let mut first_seen: HashMap<String, String> = HashMap::new();
    let mut files = Vec::with_capacity(reports.len());
    let mut summary = Summary {
        files: reports.len(),
        entities: 0,
        invalid_documents: 0,
        errors: 0,
        warnings: 0,
    };
    for (path, report) in reports {
        let mut findings: Vec<Finding> = report.findings.clone();
        let mut entities = Vec::new();
        for document in &report.documents {
            findings.extend(document.findings.iter().cloned());
            let Some(valid) = &document.entity else {
                summary.invalid_documents += 1;
                continue;
            };
            let entity_ref = valid.entity.canonical_ref();
            let place = format!("{path} (document {})", document.document + 1);
            match first_seen.get(&entity_ref) {
                Some(first) => {
                    summary.invalid_documents += 1;
                    let position = document.position;
                    findings.push(
                        Finding::error(
                            Rule::EntityRefDuplicate,
                            "metadata.name",
                            format!("{entity_ref} is already defined in {first}; refs are unique case-insensitively"),
                        )
                        .at(position),
                    );
                }
                None => {
                    first_seen.insert(entity_ref.clone(), place);
                    entities.push(entity_ref);
                }
            }
        }
        findings.sort_by_key(|f| f.position);
        summary.entities += entities.len();
        summary.errors += findings.iter().filter(|f| f.is_error()).count();
        summary.warnings += findings.iter().filter(|f| !f.is_error()).count();
        files.push(FileResult {
            path,
            entities,
            findings,
        });
    }
    Outcome { files, summary }
}

fn print_text(outcome: &Outcome, out: &mut dyn Write) -> std::io::Result<()> {
    for file in &outcome.files {
        for finding in &file.findings {
            match finding.position {
                Some(position) => {
                    write!(out, "{}:{}:{}: ", file.path, position.line, position.column)?
                }
                None => write!(out, "{}: ", file.path)?,
            }
            writeln!(out, "{finding}")?;
        }
    }
    let summary = &outcome.summary;
    let verdict = if summary.errors > 0 {
        "invalid"
    } else {
        "valid"
    };
    writeln!(
        out,
        "{verdict}: {} files, {} entities valid, {} documents invalid, {} errors, {} warnings",
        summary.files,
        summary.entities,
        summary.invalid_documents,
        summary.errors,
        summary.warnings
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\nspec:\n  type: website\n  lifecycle: production\n  owner: team-a\n";

    fn options(paths: Vec<PathBuf>, format: OutputFormat) -> Options {
        Options {
            paths,
            all_yaml: false,
            format,
            limits: Limits::default(),
        }
    }

    fn run_to_string(options: &Options, stdin: &str) -> (i32, String) {
        let mut out = Vec::new();
        let code = run(
            options,
            &Validator::default(),
            &mut stdin.as_bytes(),
            &mut out,
        )
        .unwrap();
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn prints_like_a_compiler_and_sets_the_exit_status() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("service/catalog-info.yaml");
        std::fs::create_dir_all(good.parent().unwrap()).unwrap();
        std::fs::write(&good, VALID).unwrap();
        let bad = dir.path().join("bad/catalog-info.yaml");
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        std::fs::write(&bad, VALID.replace("name: web", "name: -web")).unwrap();
        std::fs::write(dir.path().join("bad/other.yaml"), "not: [valid").unwrap();

        let (code, text) = run_to_string(
            &options(vec![dir.path().to_owned()], OutputFormat::Text),
            "",
        );
        assert_eq!(code, EXIT_INVALID, "{text}");
        let expected_line = format!("{}:4:9: error[name-format]: metadata.name:", bad.display());
        assert!(text.contains(&expected_line), "{text}");
        assert!(
            text.ends_with(
                "invalid: 2 files, 1 entities valid, 1 documents invalid, 1 errors, 0 warnings\n"
            ),
            "{text}"
        );

        let (code, text) = run_to_string(&options(vec![good.clone()], OutputFormat::Text), "");
        assert_eq!(
            (code, text.as_str()),
            (
                EXIT_VALID,
                "valid: 1 files, 1 entities valid, 0 documents invalid, 0 errors, 0 warnings\n"
            )
        );

        let mut all = options(vec![dir.path().to_owned()], OutputFormat::Json);
        all.all_yaml = true;
        let (code, text) = run_to_string(&all, "");
        assert_eq!(code, EXIT_INVALID);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["summary"]["files"], 3);
        assert_eq!(json["files"][1]["findings"][0]["rule"], "yaml-syntax");
    }

    #[test]
    fn reads_standard_input_and_flags_duplicates() {
        let twice = format!("{VALID}---\n{}", VALID.replace("name: web", "name: WEB"));
        let (code, text) = run_to_string(
            &options(vec![PathBuf::from("-")], OutputFormat::Text),
            &twice,
        );
        assert_eq!(code, EXIT_INVALID, "{text}");
        assert!(
            text.contains("<stdin>:13:9: error[entity-ref-duplicate]"),
            "{text}"
        );
    }

    #[test]
    fn placeholders_resolve_against_files_beside_the_entity() {
        let dir = tempfile::tempdir().unwrap();
        let api = dir.path().join("api");
        std::fs::create_dir_all(api.join("schemas")).unwrap();
        std::fs::write(api.join("schemas/openapi.yaml"), "openapi: 3.0.0\n").unwrap();
        std::fs::write(
            api.join("schemas/links.json"),
            r#"[{"url": "https://docs.example"}]"#,
        )
        .unwrap();
        std::fs::write(api.join("schemas/profile.yaml"), "displayName: Team A\n").unwrap();
        let entity = "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: orders\n  links:\n    $json: ./schemas/links.json\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team-a\n  definition:\n    $text: schemas/openapi.yaml\n  extra:\n    $yaml: ./schemas/profile.yaml\n";
        std::fs::write(api.join("catalog-info.yaml"), entity).unwrap();
        let (code, text) = run_to_string(
            &options(vec![dir.path().to_owned()], OutputFormat::Text),
            "",
        );
        assert_eq!(code, EXIT_VALID, "{text}");

        std::fs::remove_file(api.join("schemas/openapi.yaml")).unwrap();
        let (code, text) = run_to_string(
            &options(vec![dir.path().to_owned()], OutputFormat::Text),
            "",
        );
        assert_eq!(code, EXIT_INVALID);
        assert!(
            text.contains(":11:3: error[placeholder-read]: spec.definition: "),
            "{text}"
        );
    }

    #[test]
    fn usage_errors_are_distinct_from_invalid_files() {
        let missing = options(
            vec![PathBuf::from("/definitely/not/here")],
            OutputFormat::Text,
        );
        let error = run(
            &missing,
            &Validator::default(),
            &mut "".as_bytes(),
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(matches!(error, UsageError::Io { .. }));
        let none = options(vec![], OutputFormat::Text);
        assert!(matches!(
            check(&none, &Validator::default(), &mut "".as_bytes()),
            Err(UsageError::NoPaths)
        ));
    }
}
