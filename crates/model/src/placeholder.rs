//! `$text`, `$json` and `$yaml` placeholders (`spec/entity-model.md` §9).
//!
//! A mapping with exactly one key, `$text`, `$json` or `$yaml`, whose value is a location
//! (absolute, or relative to the file being read), is replaced by what that location holds:
//! raw text, parsed JSON, or the single YAML document. Reading goes through
//! [`PlaceholderReader`], so this module does no I/O itself.

use serde_json::Value;

use crate::finding::{Finding, Rule};
use crate::path::FieldPath;
use crate::yaml::{self, Limits};

/// The placeholder keys.
pub const PLACEHOLDER_KEYS: &[&str] = &["$text", "$json", "$yaml"];

/// What a reader did with a placeholder target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// The content, as text.
    Content(String),
    /// Not read on purpose (e.g. remote content in an offline check); the reason says why.
    /// The placeholder stays in place and is reported as a warning.
    Deferred(String),
}

/// Reads placeholder targets. Implemented by the harvester (files, URLs, git) and the CLI.
pub trait PlaceholderReader: Send + Sync {
    /// Reads `target`, which is already resolved against the entity's file: an absolute URL
    /// or a path. An `Err` is a read failure, reported as an error on the entity.
    fn read(&self, target: &str) -> Result<ReadOutcome, String>;
}

/// Whether `value` is a placeholder object (one key, a placeholder key).
pub fn is_placeholder(value: &Value) -> bool {
    match value {
        Value::Object(map) if map.len() == 1 => {
            map.keys().all(|k| PLACEHOLDER_KEYS.contains(&k.as_str()))
        }
        _ => false,
    }
}

/// Resolves every placeholder in `value`, in place. `base` is where the entity was read
/// from (a file path or URL). Returns the problems, each with the placeholder's path.
pub fn resolve_placeholders(
    value: &mut Value,
    base: &str,
    reader: &dyn PlaceholderReader,
    limits: &Limits,
) -> Vec<(FieldPath, Finding)> {
    let mut problems = Vec::new();
    // Most entities have no placeholder: find that out without building any path.
    if has_dollar_key(value) {
        visit(
            value,
            &FieldPath::root(),
            base,
            reader,
            limits,
            &mut problems,
        );
    }
    problems
}

fn has_dollar_key(value: &Value) -> bool {
    match value {
        Value::Object(map) => map
            .iter()
            .any(|(key, child)| key.starts_with('$') || has_dollar_key(child)),
        Value::Array(items) => items.iter().any(has_dollar_key),
        _ => false,
    }
}

fn visit(
    value: &mut Value,
    path: &FieldPath,
    base: &str,
    reader: &dyn PlaceholderReader,
    limits: &Limits,
    problems: &mut Vec<(FieldPath, Finding)>,
) {
    if is_placeholder(value) {
        match substitute(value, base, reader, limits) {
            Ok(Some(replacement)) => *value = replacement,
            Ok(None) => {}
            Err(finding) => {
                let finding = Finding {
                    path: path.to_string(),
                    ..finding
                };
                problems.push((path.clone(), finding));
            }
        }
        return;
    }
    match value {
        // Like Backstage: a mapping with a `$` key that is not a placeholder (`$ref`, or
        // several keys) is left alone, children included.
        Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => {}
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                visit(child, &path.key(key), base, reader, limits, problems);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter_mut().enumerate() {
                visit(child, &path.index(index), base, reader, limits, problems);
            }
        }
        _ => {}
    }
}

/// The replacement value, or a finding. A deferred read comes back as a warning finding and
/// the placeholder stays in place.
fn substitute(
    value: &Value,
    base: &str,
    reader: &dyn PlaceholderReader,
    limits: &Limits,
) -> Result<Option<Value>, Finding> {
    let Some((key, target)) = value.as_object().and_then(|m| m.iter().next()) else {
        return Ok(None);
    };
    let Some(target) = target.as_str() else {
        return Err(Finding::error(
            Rule::PlaceholderInvalid,
            "",
            format!("placeholder {key} must be given a string (a URL or relative path)"),
        ));
    };
    let resolved = resolve_target(base, target)
        .map_err(|message| Finding::error(Rule::PlaceholderInvalid, "", message))?;
    if let (Some(entity_repo), Some(target_repo)) =
        (git_repository(base), git_repository(&resolved))
        && entity_repo != target_repo
    {
        return Err(Finding::error(
            Rule::PlaceholderRepository,
            "",
            format!(
                "placeholder {key} may only reference files from the same repository as the entity; {resolved} is not in {}",
                entity_repo.join("/")
            ),
        ));
    }
    let text = match reader.read(&resolved) {
        Ok(ReadOutcome::Content(text)) => text,
        Ok(ReadOutcome::Deferred(reason)) => {
            return Err(Finding::warning(
                Rule::PlaceholderDeferred,
                "",
                format!("placeholder {key} {resolved} was not read: {reason}"),
            ));
        }
        Err(message) => {
            return Err(Finding::error(
                Rule::PlaceholderRead,
                "",
                format!("placeholder {key} could not read {resolved}: {message}"),
            ));
        }
    };
    let invalid = |message: String| {
        Finding::error(
            Rule::PlaceholderInvalid,
            "",
            format!("placeholder {key} {resolved}: {message}"),
        )
    };
    match key.as_str() {
        "$text" => Ok(Some(Value::String(text))),
        "$json" => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| invalid(format!("invalid JSON: {e}"))),
        _ => {
            let documents = yaml::parse_values(&text, limits)
                .map_err(|f| invalid(format!("invalid YAML: {}", f.message)))?;
            match <[Value; 1]>::try_from(documents) {
                Ok([document]) => Ok(Some(document)),
                Err(documents) => Err(invalid(format!(
                    "expected exactly one YAML document, found {}",
                    documents.len()
                ))),
            }
        }
    }
}

/// Resolves a placeholder target against the file it appears in.
///
/// Absolute URLs are used as they are. Relative targets follow URL semantics for URL bases
/// (a leading `/` means the repository root for git-hosted files) and path semantics for
/// file bases.
pub fn resolve_target(base: &str, target: &str) -> Result<String, String> {
    if target.is_empty() {
        return Err("placeholder target is empty".to_owned());
    }
    if is_url(target) {
        return Ok(target.to_owned());
    }
    if is_url(base) {
        let base_url =
            url::Url::parse(base).map_err(|e| format!("invalid base URL {base}: {e}"))?;
        if let Some(root) = target.strip_prefix('/')
            && let Some(repo_root) = git_tree_root(&base_url)
        {
            return Ok(format!("{repo_root}{root}"));
        }
        return base_url
            .join(target)
            .map(String::from)
            .map_err(|e| format!("cannot resolve {target} against {base}: {e}"));
    }
    Ok(join_path(base, target))
}

fn is_url(text: &str) -> bool {
    // A one-letter scheme is a Windows drive (C:\...), not a URL.
    matches!(url::Url::parse(text), Ok(url) if url.scheme().len() > 1)
}

/// Joins `target` to the directory of the file `base`, lexically (no file system access).
fn join_path(base: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        let mut dir: Vec<&str> = base.split('/').collect();
        dir.pop();
        dir
    };
    let absolute = target.starts_with('/') || (base.starts_with('/') && !target.starts_with('/'));
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(last) if !last.is_empty() && *last != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// For `https://host/owner/repo/blob/<ref>/path` (GitHub-style) and
/// `https://host/group/repo/-/blob/<ref>/path` (GitLab-style): the URL prefix up to and
/// including `<ref>/`.
fn git_tree_root(url: &url::Url) -> Option<String> {
    let segments: Vec<&str> = url.path_segments()?.collect();
    let marker = segments
        .iter()
        .position(|s| matches!(*s, "blob" | "tree" | "raw" | "edit" | "src"))
        .filter(|position| *position >= 2)?;
    let reference = segments.get(marker + 1)?;
    let prefix = segments[..=marker].join("/");
    // `file://` repositories (local mirrors, tests) have no host.
    Some(format!(
        "{}://{}/{prefix}/{reference}/",
        url.scheme(),
        url.host_str().unwrap_or_default()
    ))
}

/// The `[host, owner…, repo]` of a recognisable git-hosted file URL.
fn git_repository(location: &str) -> Option<Vec<String>> {
    let url = url::Url::parse(location).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let segments: Vec<&str> = url.path_segments()?.filter(|s| !s.is_empty()).collect();
    if host == "raw.githubusercontent.com" && segments.len() >= 3 {
        return Some(vec![
            "github.com".to_owned(),
            segments[0].to_ascii_lowercase(),
            segments[1].to_ascii_lowercase(),
        ]);
    }
    let marker = segments
        .iter()
        .position(|s| matches!(*s, "blob" | "tree" | "raw" | "edit" | "src"))
        .filter(|position| *position >= 2)?;
    let end = if segments[marker - 1] == "-" {
        marker - 1
    } else {
        marker
    };
    let mut repo = vec![host];
    repo.extend(segments[..end].iter().map(|s| s.to_ascii_lowercase()));
    Some(repo)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashMap;

    struct MapReader(HashMap<String, String>);

    impl PlaceholderReader for MapReader {
        fn read(&self, target: &str) -> Result<ReadOutcome, String> {
            if target.starts_with("https://") {
                return Ok(ReadOutcome::Deferred("offline".to_owned()));
            }
            self.0
                .get(target)
                .cloned()
                .map(ReadOutcome::Content)
                .ok_or_else(|| "no such file".to_owned())
        }
    }

    fn reader() -> MapReader {
        MapReader(HashMap::from([
            (
                "/repo/apis/api.yaml".to_owned(),
                "openapi: 3.0.0\ninfo: {title: x}\n".to_owned(),
            ),
            (
                "/repo/apis/data.json".to_owned(),
                "{\"a\": [1, 2]}".to_owned(),
            ),
            ("/repo/two.yaml".to_owned(), "a: 1\n---\nb: 2\n".to_owned()),
        ]))
    }

    #[test]
    fn substitutes_text_json_and_yaml() {
        let mut value = json!({"spec": {
            "definition": {"$text": "./api.yaml"},
            "data": {"$json": "data.json"},
            "doc": {"$yaml": "../apis/api.yaml"},
            "schema": {"$ref": "#/x"},
            "two": {"$text": "a", "$json": "b"},
            "nested": {"$schema": "x", "inner": {"$text": "./api.yaml"}}
        }});
        let problems = resolve_placeholders(
            &mut value,
            "/repo/apis/entity.yaml",
            &reader(),
            &Limits::default(),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            value["spec"]["definition"],
            "openapi: 3.0.0\ninfo: {title: x}\n"
        );
        assert_eq!(value["spec"]["data"], json!({"a": [1, 2]}));
        assert_eq!(value["spec"]["doc"]["info"]["title"], "x");
        // Not placeholders: left untouched.
        assert_eq!(value["spec"]["schema"], json!({"$ref": "#/x"}));
        assert_eq!(value["spec"]["two"], json!({"$text": "a", "$json": "b"}));
        assert_eq!(
            value["spec"]["nested"]["inner"],
            json!({"$text": "./api.yaml"})
        );
    }

    #[test]
    fn reports_bad_placeholders() {
        let mut value = json!({"spec": {
            "a": {"$text": 12},
            "b": {"$yaml": "/repo/two.yaml"},
            "c": {"$text": "missing.txt"},
            "d": {"$text": "https://example.com/x"}
        }});
        let problems =
            resolve_placeholders(&mut value, "/repo/e.yaml", &reader(), &Limits::default());
        let found: Vec<(String, Rule)> = problems
            .iter()
            .map(|(p, f)| (p.to_string(), f.rule))
            .collect();
        assert_eq!(
            found,
            [
                ("spec.a".to_owned(), Rule::PlaceholderInvalid),
                ("spec.b".to_owned(), Rule::PlaceholderInvalid),
                ("spec.c".to_owned(), Rule::PlaceholderRead),
                ("spec.d".to_owned(), Rule::PlaceholderDeferred),
            ]
        );
        assert!(!problems[3].1.is_error());
    }

    #[test]
    fn refuses_other_repositories() {
        let base = "https://github.com/backstage/backstage/blob/master/packages/catalog-model/examples/apis/spotify-api.yaml";
        let mut value = json!({"definition": {"$text": "https://github.com/APIs-guru/openapi-directory/blob/main/APIs/x.yaml"}});
        let problems = resolve_placeholders(&mut value, base, &reader(), &Limits::default());
        assert_eq!(problems[0].1.rule, Rule::PlaceholderRepository);
    }

    #[test]
    fn resolves_targets() {
        let base = "https://github.com/acme/repo/blob/main/services/a/catalog-info.yaml";
        assert_eq!(
            resolve_target(base, "./api.yaml").unwrap(),
            "https://github.com/acme/repo/blob/main/services/a/api.yaml"
        );
        assert_eq!(
            resolve_target(base, "/docs/api.yaml").unwrap(),
            "https://github.com/acme/repo/blob/main/docs/api.yaml"
        );
        assert_eq!(
            resolve_target("/a/b/c.yaml", "../d.yaml").unwrap(),
            "/a/d.yaml"
        );
        assert_eq!(
            resolve_target("a/b/c.yaml", "d.yaml").unwrap(),
            "a/b/d.yaml"
        );
        assert_eq!(resolve_target("c.yaml", "../d.yaml").unwrap(), "../d.yaml");
        // A local repository read through the harvester's git reader.
        assert_eq!(
            resolve_target(
                "file:///srv/repo/blob/main/a/catalog-info.yaml",
                "/docs/x.yaml"
            )
            .unwrap(),
            "file:///srv/repo/blob/main/docs/x.yaml"
        );
        assert_eq!(
            git_repository("https://gitlab.com/group/sub/repo/-/blob/main/x.yaml"),
            Some(vec![
                "gitlab.com".to_owned(),
                "group".to_owned(),
                "sub".to_owned(),
                "repo".to_owned()
            ])
        );
    }
}
