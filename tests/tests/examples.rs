//! Every file in `examples/` (a verbatim copy of `shared/examples`) gets the verdict that
//! `examples/README.md` gives it, through `cadastre validate`'s own code path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cadastre::config::{self, Environment};
use cadastre::validate::{self, FileResult, LocalFiles, Options, OutputFormat};
use cadastre_model::{CatalogReader, Limits, Rule, Validator};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Validates one example set as `cadastre validate --all-yaml DIR` would.
fn validate_set(set: &str, validator: &Validator) -> BTreeMap<String, FileResult> {
    let dir = examples_dir().join(set);
    let options = Options {
        paths: vec![dir.clone()],
        all_yaml: true,
        format: OutputFormat::Json,
        limits: Limits::default(),
    };
    let outcome = validate::check(&options, validator, &mut std::io::empty()).unwrap();
    outcome
        .files
        .into_iter()
        .map(|file| {
            let relative = Path::new(&file.path)
                .strip_prefix(&dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (relative, file)
        })
        .collect()
}

fn errors(file: &FileResult) -> Vec<(Rule, String)> {
    file.findings
        .iter()
        .filter(|f| f.is_error())
        .map(|f| (f.rule, f.path.clone()))
        .collect()
}

/// Files that are not entity files (content referenced by placeholders).
const NOT_ENTITY_FILES: &[&str] = &["apis/petstore-webhook.oas.yaml"];

#[test]
fn catalog_model_examples_get_the_documented_verdicts() {
    let results = validate_set("catalog-model-examples", &Validator::default());
    assert_eq!(
        results.len(),
        51,
        "files found: {:?}",
        results.keys().collect::<Vec<_>>()
    );

    let rejected: BTreeMap<&str, Vec<(Rule, String)>> = BTreeMap::from([
        (
            "ai-resources/code-review-plugin.yaml",
            vec![(Rule::KindUnknown, "kind".to_owned())],
        ),
        (
            "ai-resources/frontend-design-skill.yaml",
            vec![(Rule::KindUnknown, "kind".to_owned())],
        ),
        (
            "ai-resources/use-internal-apis-rule.yaml",
            vec![(Rule::KindUnknown, "kind".to_owned())],
        ),
        (
            "apis/backstage-mcp-server-api.yaml",
            vec![(Rule::SpecFieldRequired, "spec.definition".to_owned())],
        ),
    ]);
    for (path, file) in &results {
        if NOT_ENTITY_FILES.contains(&path.as_str()) {
            continue;
        }
        match rejected.get(path.as_str()) {
            Some(expected) => assert_eq!(&errors(file), expected, "{path}"),
            None => assert!(
                errors(file).is_empty(),
                "{path} should be accepted: {:?}",
                file.findings
            ),
        }
    }

    // Remote `$text` targets are not fetched by `validate`: a warning, not an error.
    for path in [
        "apis/spotify-api.yaml",
        "apis/wayback-archive-api.yaml",
        "apis/wayback-search-api.yaml",
    ] {
        let rules: Vec<Rule> = results[path].findings.iter().map(|f| f.rule).collect();
        assert_eq!(rules, [Rule::PlaceholderDeferred], "{path}");
    }

    // Counts the README gives.
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    for file in results.values() {
        for entity_ref in &file.entities {
            *kinds
                .entry(entity_ref.split(':').next().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(kinds["api"], 9, "10 APIs, one (mcp-server) rejected");
    assert_eq!(kinds["component"], 13);
    assert_eq!(kinds["system"], 3);
    assert_eq!(kinds["domain"], 3);
    assert_eq!(kinds["resource"], 1);
    assert_eq!(kinds["user"], 17);
    // Two users named `guest`, in different namespaces, are different entities.
    let team_a = &results["acme/team-a-group.yaml"].entities;
    assert!(
        team_a.contains(&"user:default/guest".to_owned())
            && team_a.contains(&"user:development/guest".to_owned())
    );
}

#[test]
fn create_app_examples_get_the_documented_verdicts() {
    let results = validate_set("create-app-default-app", &Validator::default());
    for path in ["entities.yaml", "org.yaml", "template/template.yaml"] {
        assert!(
            errors(&results[path]).is_empty(),
            "{path}: {:?}",
            results[path].findings
        );
    }
    assert_eq!(results["entities.yaml"].entities.len(), 3);
    assert_eq!(
        results["template/template.yaml"].entities,
        ["template:default/example-nodejs-template"]
    );
    let skeleton = &results["template/content/catalog-info.yaml"];
    assert_eq!(
        errors(skeleton),
        [(Rule::NameFormat, "metadata.name".to_owned())]
    );
    assert_eq!(
        skeleton.findings[0].position.map(|p| (p.line, p.column)),
        Some((4, 9))
    );
}

#[test]
fn relative_text_placeholder_resolves_against_the_file_beside_it() {
    let apis = examples_dir().join("catalog-model-examples/apis");
    let file = apis.join("petstore-webhook-api.yaml");
    let validator = Validator::default();
    let local_files = LocalFiles::new(Limits::default().max_file_bytes);
    let reader = CatalogReader {
        validator: &validator,
        limits: Limits::default(),
        placeholders: &local_files,
    };
    let report = reader.read(&file.to_string_lossy(), &std::fs::read(&file).unwrap());
    let entity = &report
        .valid_entities()
        .next()
        .expect("petstore-webhook is valid")
        .entity;
    let expected = std::fs::read_to_string(apis.join("petstore-webhook.oas.yaml")).unwrap();
    assert_eq!(entity.spec_str("definition"), Some(expected.as_str()));
}

#[test]
fn remote_placeholders_from_another_repository_are_refused() {
    // Registered from Backstage's repository, these point into APIs-guru's: refused, as in
    // a stock Backstage.
    let apis = examples_dir().join("catalog-model-examples/apis");
    let validator = Validator::default();
    let local_files = LocalFiles::new(Limits::default().max_file_bytes);
    let reader = CatalogReader {
        validator: &validator,
        limits: Limits::default(),
        placeholders: &local_files,
    };
    for name in [
        "spotify-api.yaml",
        "wayback-archive-api.yaml",
        "wayback-search-api.yaml",
    ] {
        let url = format!(
            "https://github.com/backstage/backstage/blob/master/packages/catalog-model/examples/apis/{name}"
        );
        let report = reader.read(&url, &std::fs::read(apis.join(name)).unwrap());
        let rules: Vec<Rule> = report.all_findings().map(|f| f.rule).collect();
        assert_eq!(rules, [Rule::PlaceholderRepository], "{name}");
        assert_eq!(report.valid_entities().count(), 0);
    }
}

struct NoEnvironment;

impl Environment for NoEnvironment {
    fn get(&self, _: &str) -> Option<String> {
        None
    }
}

#[test]
fn a_custom_kind_from_configuration_accepts_ai_resources() {
    let config_file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/config/custom-kinds.toml");
    let config = config::load(Some(&config_file), &NoEnvironment).unwrap();
    let validator = Validator::new(config.registry().unwrap());
    let results = validate_set("catalog-model-examples", &validator);
    for name in [
        "code-review-plugin",
        "frontend-design-skill",
        "use-internal-apis-rule",
    ] {
        let file = &results[&format!("ai-resources/{name}.yaml")];
        assert!(errors(file).is_empty(), "{name}: {:?}", file.findings);
        assert_eq!(file.entities.len(), 1, "{name}");
        assert!(
            file.entities[0].starts_with("airesource:default/"),
            "{name}"
        );
    }
}
