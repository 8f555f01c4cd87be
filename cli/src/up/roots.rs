//! Which files `cadastre up --catalog FOLDER` registers: every catalog file under the folder
//! that nothing else in the folder already reads. A `Location` entity's targets (and `$text`,
//! `$json`, `$yaml` placeholders) are read through the file that names them, so registering
//! them too would harvest each entity twice, from two locations that then conflict.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use cadastre_model::Limits;
use cadastre_model::placeholder::{is_placeholder, resolve_target};
use serde_json::Value;

/// The files to register for `path`: the file itself, or the root files of a folder, as
/// absolute paths, sorted.
pub fn catalog_roots(path: &Path, limits: &Limits) -> std::io::Result<Vec<PathBuf>> {
    let path = std::fs::canonicalize(path)?;
    if !path.is_dir() {
        return Ok(vec![path]);
    }
    let files: BTreeSet<PathBuf> = walkdir::WalkDir::new(&path)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file() && is_yaml(entry.path()))
        .map(walkdir::DirEntry::into_path)
        .collect();
    let mut read_through_others = BTreeSet::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        // A file that does not parse stays a root: harvesting it shows its errors.
        let Ok(documents) = cadastre_model::yaml::parse_values(&text, limits) else {
            continue;
        };
        let base = file.to_string_lossy();
        for target in documents.iter().flat_map(targets_read_through) {
            let resolved = match local_repository_files(&target) {
                Some(pattern) => pattern,
                None => match resolve_target(&base, &target) {
                    Ok(resolved) => resolved,
                    Err(_) => continue,
                },
            };
            read_through_others.extend(matching(&files, &resolved));
        }
    }
    Ok(files
        .into_iter()
        .filter(|file| !read_through_others.contains(file))
        .collect())
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The targets a document makes the processor read: a file `Location`'s targets and the
/// placeholders anywhere in it.
fn targets_read_through(document: &Value) -> Vec<String> {
    let mut targets = Vec::new();
    let is_location = document
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|kind| kind.eq_ignore_ascii_case("location"));
    let spec = document.get("spec");
    // File locations, and git repositories on this disk (`file://…`), read local files.
    let file_type = spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .is_none_or(|t| t == "file" || t == "git");
    if is_location && file_type {
        if let Some(target) = spec.and_then(|s| s.get("target")).and_then(Value::as_str) {
            targets.push(target.to_owned());
        }
        if let Some(list) = spec
            .and_then(|s| s.get("targets"))
            .and_then(Value::as_array)
        {
            targets.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    placeholders(document, &mut targets);
    targets
}

fn placeholders(value: &Value, targets: &mut Vec<String>) {
    match value {
        Value::Object(map) if is_placeholder(value) => {
            targets.extend(map.values().filter_map(Value::as_str).map(str::to_owned));
        }
        Value::Object(map) => map.values().for_each(|v| placeholders(v, targets)),
        Value::Array(items) => items.iter().for_each(|v| placeholders(v, targets)),
        _ => {}
    }
}

/// The files a git location on this disk reads, as a path glob: `file:///srv/repo#path=a/*.yaml`
/// reads `/srv/repo/a/*.yaml` (default `**/catalog-info.yaml`), as the harvester does.
fn local_repository_files(target: &str) -> Option<String> {
    let url = url::Url::parse(target).ok()?;
    if url.scheme() != "file" {
        return None;
    }
    let path = url.to_file_path().ok()?;
    let glob = url
        .fragment()
        .into_iter()
        .flat_map(|fragment| fragment.split('&'))
        .find_map(|pair| pair.strip_prefix("path="))
        .unwrap_or(cadastre_harvester::location::DEFAULT_GIT_PATH);
    Some(format!("{}/{glob}", path.display()))
}

/// The files `target` (a path or a glob) names.
fn matching(files: &BTreeSet<PathBuf>, target: &str) -> Vec<PathBuf> {
    if !target.contains(['*', '?', '[', '{']) {
        let path = std::fs::canonicalize(target).unwrap_or_else(|_| PathBuf::from(target));
        return files.get(&path).cloned().into_iter().collect();
    }
    match globset::GlobBuilder::new(target)
        .literal_separator(true)
        .build()
    {
        Ok(glob) => {
            let matcher = glob.compile_matcher();
            files
                .iter()
                .filter(|file| matcher.is_match(file))
                .cloned()
                .collect()
        }
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_read_through_locations_and_placeholders_are_not_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("components")).unwrap();
        std::fs::write(
            root.join("all.yaml"),
            "apiVersion: backstage.io/v1alpha1\nkind: Location\nmetadata:\n  name: all\nspec:\n  targets:\n    - ./components/*.yaml\n",
        )
        .unwrap();
        std::fs::write(
            root.join("components/a.yaml"),
            "apiVersion: backstage.io/v1alpha1\nkind: API\nmetadata:\n  name: a\nspec:\n  type: openapi\n  lifecycle: production\n  owner: team\n  definition:\n    $text: ../definitions/a.yml\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("definitions")).unwrap();
        std::fs::write(root.join("definitions/a.yml"), "openapi: 3.0.0\n").unwrap();
        std::fs::write(root.join("lonely.yml"), "kind: Group\n").unwrap();
        std::fs::write(root.join("broken.yaml"), "kind: [\n").unwrap();
        std::fs::write(root.join("notes.txt"), "not yaml").unwrap();

        let roots = catalog_roots(root, &Limits::default()).unwrap();
        let names: Vec<String> = roots
            .iter()
            .map(|p| {
                p.strip_prefix(std::fs::canonicalize(root).unwrap())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, ["all.yaml", "broken.yaml", "lonely.yml"]);
    }

    #[test]
    fn a_generated_organisation_registers_its_root_location_only() {
        let dir = tempfile::tempdir().unwrap();
        let generated = crate::generate::run(
            &crate::generate::Options {
                size: 500,
                seed: 1,
                out: dir.path().join("org"),
                max_repos: 3,
                per_file: 50,
            },
            |_| {},
        )
        .unwrap();
        assert_eq!(
            catalog_roots(&dir.path().join("org"), &Limits::default()).unwrap(),
            [generated.root]
        );
    }

    #[test]
    fn a_file_is_its_own_root() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("catalog-info.yaml");
        std::fs::write(&file, "kind: Component\n").unwrap();
        assert_eq!(
            catalog_roots(&file, &Limits::default()).unwrap(),
            [std::fs::canonicalize(&file).unwrap()]
        );
    }

    #[test]
    fn the_examples_register_their_root_locations_only() {
        let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
        let roots = catalog_roots(&examples, &Limits::default()).unwrap();
        let names: Vec<String> = roots
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"all.yaml".to_owned()), "{names:?}");
        assert!(names.contains(&"acme-corp.yaml".to_owned()), "{names:?}");
        // Read through all-components.yaml's Location, so not registered on its own.
        assert!(
            !names.contains(&"petstore-component.yaml".to_owned()),
            "{names:?}"
        );
        assert!(!names.contains(&"all-apis.yaml".to_owned()), "{names:?}");
    }
}
