//! The processor on the shared examples and on the cases around them: annotations, relations,
//! errors kept with rule, line and column, Location fan-out and its limits, placeholders.

use std::path::{Path, PathBuf};

use cadastre_model::Validator;
use cadastre_model::entity::annotations;
use cadastre_processor::{Processed, Processor, Settings, generated_location_ref};
use cadastre_proto::v1 as pb;
use serde_json::Value;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/catalog-model-examples")
        .canonicalize()
        .unwrap()
}

fn document(target: &str, content: &[u8]) -> pb::RawDocument {
    pb::RawDocument {
        target: target.to_owned(),
        content: content.to_vec(),
        content_hash: String::new(),
    }
}

fn harvested(location_key: &str, documents: Vec<pb::RawDocument>) -> pb::HarvestedLocation {
    pb::HarvestedLocation {
        location_key: location_key.to_owned(),
        harvest_id: "h-1".into(),
        documents,
        ..Default::default()
    }
}

fn processor() -> Processor {
    Processor::new(Validator::default(), Settings::default())
}

fn bodies(processed: &Processed) -> Vec<Value> {
    processed
        .batch
        .batch
        .as_ref()
        .unwrap()
        .upserts
        .iter()
        .map(|u| serde_json::from_slice(&u.body_json).unwrap())
        .collect()
}

fn errors_of<'a>(processed: &'a Processed, location_key: &str) -> &'a [pb::ProcessingError] {
    &processed
        .batch
        .batch
        .as_ref()
        .unwrap()
        .errors
        .iter()
        .find(|group| group.location_key == location_key)
        .unwrap_or_else(|| panic!("no error group for {location_key}"))
        .errors
}

#[test]
fn every_example_entity_arrives_annotated_with_its_relations() {
    let dir = examples();
    let mut documents = Vec::new();
    for entry in walk(&dir) {
        let target = entry.to_string_lossy().into_owned();
        documents.push(document(&target, &std::fs::read(&entry).unwrap()));
    }
    let location_key = format!("file:{}/*.yaml", dir.display());
    let processed = processor().process(&harvested(&location_key, documents.clone()));
    let batch = processed.batch.batch.as_ref().unwrap();
    assert_eq!(processed.summary.files as usize, documents.len());
    assert!(processed.summary.entities > 50, "{:?}", processed.summary);
    assert_eq!(batch.upserts.len() as u32, processed.summary.entities);
    for upsert in &batch.upserts {
        let body: Value = serde_json::from_slice(&upsert.body_json).unwrap();
        let file = upsert.location_key.strip_prefix("file:").unwrap();
        assert!(Path::new(file).starts_with(&dir), "{}", upsert.location_key);
        let notes = &body["metadata"]["annotations"];
        assert_eq!(
            notes[annotations::MANAGED_BY_LOCATION],
            upsert.location_key.as_str()
        );
        assert_eq!(
            notes[annotations::MANAGED_BY_ORIGIN_LOCATION],
            location_key.as_str()
        );
        assert!(
            body.get("relations").is_none(),
            "the store assembles relations"
        );
        assert_eq!(upsert.origin_location, location_key);
        assert_eq!(upsert.parent_ref, generated_location_ref(&location_key));
    }
    // Relations come with their entity, both directions.
    let artist_web = batch
        .upserts
        .iter()
        .find(|u| {
            let body: Value = serde_json::from_slice(&u.body_json).unwrap();
            body["metadata"]["name"] == "artist-lookup"
        })
        .expect("artist-lookup is in the examples");
    let edges: Vec<(&str, &str, &str)> = artist_web
        .edges
        .iter()
        .map(|e| {
            (
                e.source_ref.as_str(),
                e.r#type.as_str(),
                e.target_ref.as_str(),
            )
        })
        .collect();
    assert!(
        edges
            .iter()
            .any(|(s, t, _)| *s == "component:default/artist-lookup" && *t == "ownedBy"),
        "{edges:?}"
    );
    assert!(
        edges
            .iter()
            .any(|(_, t, target)| *t == "ownerOf" && *target == "component:default/artist-lookup"),
        "{edges:?}"
    );
    // Every file read is covered: its errors are replaced (cleared when none).
    for doc in &documents {
        let key = format!("file:{}", doc.target);
        assert!(batch.replaced_locations.contains(&key), "{key}");
        let _ = errors_of(&processed, &key);
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "yaml")
            && !path.to_string_lossy().contains(".oas.")
        {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn locations_fan_out_to_their_targets() {
    let all = examples().join("all.yaml");
    let target = all.to_string_lossy().into_owned();
    let location_key = format!("file:{target}");
    let processed = processor().process(&harvested(
        &location_key,
        vec![document(&target, &std::fs::read(&all).unwrap())],
    ));
    let keys: Vec<&str> = processed
        .fan_out
        .iter()
        .map(|r| r.location_key.as_str())
        .collect();
    let expected = format!("file:{}", examples().join("all-apis.yaml").display());
    assert!(keys.contains(&expected.as_str()), "{keys:?}");
    assert_eq!(keys.len(), 6);
    for request in &processed.fan_out {
        assert_eq!(request.depth, 1);
        assert_eq!(request.origin_location_key, location_key);
        assert_eq!(request.parent_location_key, location_key);
        assert_eq!(request.parent_entity_ref, "location:default/example-all");
        assert_eq!(request.trigger(), pb::HarvestTrigger::FanOut);
        assert!(!request.request_id.is_empty());
    }
    // The fanned-out harvest keeps the origin and names its parent entity.
    let child_target = examples().join("all-apis.yaml");
    let child = &processed.fan_out[0];
    let child_processed = processor().process(&pb::HarvestedLocation {
        location_key: child.location_key.clone(),
        origin_location_key: child.origin_location_key.clone(),
        parent_entity_ref: child.parent_entity_ref.clone(),
        depth: child.depth,
        harvest_id: "h-2".into(),
        documents: vec![document(
            &child_target.to_string_lossy(),
            &std::fs::read(&child_target).unwrap(),
        )],
        ..Default::default()
    });
    for upsert in &child_processed.batch.batch.as_ref().unwrap().upserts {
        assert_eq!(upsert.origin_location, location_key);
        assert_eq!(upsert.parent_ref, "location:default/example-all");
    }
}

#[test]
fn location_chains_are_bounded_and_may_not_point_at_themselves() {
    let yaml = b"apiVersion: backstage.io/v1alpha1
kind: Location
metadata:
  name: loop
spec:
  targets: [./here.yaml]
";
    let deep = pb::HarvestedLocation {
        depth: Settings::default().max_fan_out_depth,
        ..harvested(
            "file:/srv/here.yaml",
            vec![document("/srv/here.yaml", yaml)],
        )
    };
    let processed = processor().process(&deep);
    assert!(processed.fan_out.is_empty());
    let errors = errors_of(&processed, "file:/srv/here.yaml");
    let finding = errors[0].finding.as_ref().unwrap();
    assert_eq!(finding.rule, "location-target");
    assert!(
        finding.message.contains("deeper than"),
        "{}",
        finding.message
    );

    let processed = processor().process(&harvested(
        "file:/srv/here.yaml",
        vec![document("/srv/here.yaml", yaml)],
    ));
    assert!(processed.fan_out.is_empty());
    let finding = errors_of(&processed, "file:/srv/here.yaml")[0]
        .finding
        .clone()
        .unwrap();
    assert!(
        finding.message.contains("points back"),
        "{}",
        finding.message
    );
}

#[test]
fn invalid_documents_are_kept_as_errors_and_valid_neighbours_arrive() {
    let yaml = b"apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: good
spec:
  type: service
  lifecycle: production
  owner: team-a
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: Bad Name!
spec:
  type: service
  lifecycle: production
  owner: team-a
";
    let processed = processor().process(&harvested(
        "url:https://github.com/acme/repo/blob/main/catalog-info.yaml",
        vec![document(
            "https://github.com/acme/repo/blob/main/catalog-info.yaml",
            yaml,
        )],
    ));
    let names: Vec<Value> = bodies(&processed)
        .iter()
        .map(|b| b["metadata"]["name"].clone())
        .collect();
    assert_eq!(names, [Value::from("good")]);
    assert_eq!(processed.summary.failed_documents, 1);
    let errors = errors_of(
        &processed,
        "url:https://github.com/acme/repo/blob/main/catalog-info.yaml",
    );
    let finding = errors[0].finding.as_ref().unwrap();
    assert_eq!(finding.rule, "name-format");
    assert_eq!(finding.path, "metadata.name");
    let position = finding.position.unwrap();
    assert_eq!((position.line, position.column), (13, 9));
    assert_eq!(
        finding.file,
        "https://github.com/acme/repo/blob/main/catalog-info.yaml"
    );
    // URL locations get source, view and edit URLs.
    let body = &bodies(&processed)[0];
    let notes = &body["metadata"]["annotations"];
    assert_eq!(
        notes[annotations::SOURCE_LOCATION],
        "url:https://github.com/acme/repo/blob/main/"
    );
    assert_eq!(
        notes[annotations::VIEW_URL],
        "https://github.com/acme/repo/blob/main/catalog-info.yaml"
    );
    assert_eq!(
        notes[annotations::EDIT_URL],
        "https://github.com/acme/repo/edit/main/catalog-info.yaml"
    );
}

#[test]
fn removed_files_are_covered_and_read_failures_kept() {
    let mut input = harvested("file:/srv/*.yaml", Vec::new());
    input.removed_targets = vec!["/srv/gone.yaml".into()];
    input.errors = vec![pb::Finding {
        rule: "location-read".into(),
        message: "/srv/locked.yaml: permission denied".into(),
        ..Default::default()
    }];
    let processed = processor().process(&input);
    let batch = processed.batch.batch.as_ref().unwrap();
    assert_eq!(batch.replaced_locations, ["file:/srv/gone.yaml"]);
    assert!(errors_of(&processed, "file:/srv/gone.yaml").is_empty());
    assert_eq!(
        errors_of(&processed, "file:/srv/*.yaml")[0]
            .finding
            .as_ref()
            .unwrap()
            .message,
        "/srv/locked.yaml: permission denied"
    );
}

#[test]
fn placeholders_read_what_the_harvester_attached() {
    let yaml = b"apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: petstore
spec:
  type: openapi
  lifecycle: production
  owner: team-a
  definition:
    $text: ./petstore.oas.yaml
";
    let mut input = harvested("file:/srv/api.yaml", vec![document("/srv/api.yaml", yaml)]);
    let processed = processor().process(&input);
    assert!(bodies(&processed).is_empty());
    let finding = errors_of(&processed, "file:/srv/api.yaml")[0]
        .finding
        .clone()
        .unwrap();
    assert_eq!(finding.rule, "placeholder-read");
    assert_eq!(finding.position.unwrap().line, 9, "where `definition` is");

    input.attachments = vec![document("/srv/petstore.oas.yaml", b"openapi: 3.0.0\n")];
    let processed = processor().process(&input);
    assert_eq!(
        bodies(&processed)[0]["spec"]["definition"],
        "openapi: 3.0.0\n"
    );
    assert!(errors_of(&processed, "file:/srv/api.yaml").is_empty());
}

#[test]
fn kind_rules_decide_which_kinds_a_location_may_bring() {
    let rules = vec![
        cadastre_processor::KindRule {
            allow: vec!["Component".into(), "API".into()],
            location_type: Some("url".into()),
            target_prefix: None,
        },
        cadastre_processor::KindRule {
            allow: vec!["Group".into()],
            location_type: Some("url".into()),
            target_prefix: Some("https://git.example.com/org/people/".into()),
        },
    ];
    let processor = Processor::new(
        Validator::default(),
        Settings {
            kind_rules: rules,
            ..Settings::default()
        },
    );
    let both = b"apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: svc\nspec:\n  type: service\n  lifecycle: production\n  owner: team-a\n---\napiVersion: backstage.io/v1alpha1\nkind: Group\nmetadata:\n  name: team-a\nspec:\n  type: team\n  children: []\n";
    let target = "https://git.example.com/org/repo/blob/main/catalog-info.yaml";
    let processed = processor.process(&harvested(
        &format!("url:{target}"),
        vec![document(target, both)],
    ));
    let kinds: Vec<String> = bodies(&processed)
        .iter()
        .map(|b| b["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["Component"]);
    let errors = errors_of(&processed, &format!("url:{target}"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].entity_ref, "group:default/team-a");
    assert_eq!(errors[0].finding.as_ref().unwrap().rule, "kind-not-allowed");

    // The people repository may bring groups.
    let people = "https://git.example.com/org/people/blob/main/catalog-info.yaml";
    let processed = processor.process(&harvested(
        &format!("url:{people}"),
        vec![document(people, both)],
    ));
    assert_eq!(bodies(&processed).len(), 2);
    // Without rules, every kind from anywhere.
    assert!(cadastre_processor::kind_allowed(&[], "Anything", "file:/x"));
}
