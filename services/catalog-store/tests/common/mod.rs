//! Test harness: a fresh store on SQLite (a temporary file) or PostgreSQL (a fresh database
//! on the server `scripts/test` starts, named by `CADASTRE_TEST_POSTGRES_URL`), and the
//! shared examples as a batch.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use cadastre_catalog_store::{Batch, CatalogStore, Upsert};
use cadastre_model::{CatalogReader, Limits, PlaceholderReader, ReadOutcome, Validator};

/// A store and what keeps its database alive.
pub struct Harness {
    pub store: CatalogStore,
    /// The database's URL, for a test that changes it behind the store's back.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.db").display()
    );
    Harness {
        store: CatalogStore::connect(&url).await.unwrap(),
        url,
        _dir: Some(dir),
    }
}

pub async fn postgres() -> Harness {
    let url = cadastre_testkit::fresh_postgres_database("cadastre_test").await;
    Harness {
        store: CatalogStore::connect(&url).await.unwrap(),
        url,
        _dir: None,
    }
}

pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

struct LocalFiles;

impl PlaceholderReader for LocalFiles {
    fn read(&self, target: &str) -> Result<ReadOutcome, String> {
        if target.contains("://") {
            return Ok(ReadOutcome::Deferred("offline test".into()));
        }
        std::fs::read_to_string(target)
            .map(ReadOutcome::Content)
            .map_err(|e| e.to_string())
    }
}

/// Every valid entity of `examples/catalog-model-examples`, as the processor would send
/// them: one location key per file, all under one registered root.
pub fn examples_batch() -> Batch {
    let root = examples_dir().join("catalog-model-examples");
    let validator = Validator::default();
    let reader = CatalogReader {
        validator: &validator,
        limits: Limits::default(),
        placeholders: &LocalFiles,
    };
    let mut files: Vec<PathBuf> = walk(&root);
    files.sort();
    let origin = format!("file:{}", root.join("all.yaml").display());
    let mut upserts = Vec::new();
    for file in files {
        let location_key = format!("file:{}", file.display());
        let report = reader.read(&file.to_string_lossy(), &std::fs::read(&file).unwrap());
        for valid in report.valid_entities() {
            let mut body = valid.entity.to_value();
            body.as_object_mut().unwrap().remove("relations");
            upserts.push(Upsert {
                body,
                edges: valid.edges.clone(),
                location_key: Some(location_key.clone()),
                origin_location: Some(origin.clone()),
                parent_ref: None,
                commit: Some("abc123".into()),
            });
        }
    }
    Batch {
        upserts,
        ..Batch::default()
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
    out
}

/// A minimal valid component.
pub fn component(name: &str, owner: &str, location_key: &str) -> Upsert {
    let body = serde_json::json!({
        "apiVersion": "backstage.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "service", "lifecycle": "production", "owner": owner}
    });
    let me = format!("component:default/{name}");
    let owner_ref = format!("group:default/{owner}");
    Upsert {
        body,
        edges: vec![
            cadastre_model::RelationEdge {
                source: me.clone(),
                relation_type: "ownedBy".into(),
                target: owner_ref.clone(),
            },
            cadastre_model::RelationEdge {
                source: owner_ref,
                relation_type: "ownerOf".into(),
                target: me,
            },
        ],
        location_key: Some(location_key.into()),
        origin_location: Some(location_key.into()),
        parent_ref: None,
        commit: None,
    }
}
