//! The web UI in a real headless Chromium: `tests/browser/check.mjs` drives Debian's
//! `/usr/bin/chromium` with playwright-core (from the npm registry; playwright's own browser
//! download is not used) against a gateway loaded with the shared examples, and writes a
//! screenshot of each page to `target/ui-screenshots/`. A second gateway, allowing `file`
//! locations, takes a registration through the form. Needs `chromium`, `node` and `npm`
//! (scripts/test installs them); without Chromium the test fails, it never skips.

mod common;

use std::path::{Path, PathBuf};

use cadastre_catalog_store::{Batch, LocationErrors, ProcessingError, Upsert};
use cadastre_model::{Finding, Position, Rule};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Where screenshots go: `<target dir>/ui-screenshots`.
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("ui-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_works_in_a_real_browser() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install Debian's browser with \
         `apt-get install -y chromium chromium-driver` (scripts/test does)"
    );
    let project = common::npm_project("browser", "playwright-core");
    let running = common::start_with_search().await;
    // The search index follows the store: wait until it holds the examples.
    let mut indexed = false;
    for _ in 0..200 {
        let response = running
            .http
            .get(
                running
                    .base
                    .replace("/api/catalog", "/api/search/suggest?prefix=artist-lo"),
            )
            .send()
            .await
            .unwrap();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if body["suggestions"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
        {
            indexed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        indexed,
        "the search index never caught up with the examples"
    );
    // An invalid file's entity, owned by team-a: its error shows on its page and its owner's.
    let location = "url:https://example.com/broken/catalog-info.yaml";
    let broken = "component:default/broken-in-browser";
    let edge = |source: &str, relation: &str, target: &str| cadastre_model::RelationEdge {
        source: source.into(),
        relation_type: relation.into(),
        target: target.into(),
    };
    running
        .store
        .apply_batch(Batch {
            upserts: vec![Upsert {
                body: serde_json::json!({
                    "apiVersion": "backstage.io/v1alpha1",
                    "kind": "Component",
                    "metadata": {"name": "broken-in-browser"},
                    "spec": {"type": "service", "lifecycle": "production", "owner": "team-a"}
                }),
                edges: vec![
                    edge(broken, "ownedBy", "group:default/team-a"),
                    edge("group:default/team-a", "ownerOf", broken),
                ],
                location_key: Some(location.into()),
                origin_location: None,
                parent_ref: None,
                commit: None,
            }],
            errors: vec![LocationErrors {
                location_key: location.into(),
                errors: vec![ProcessingError {
                    location_key: location.into(),
                    entity_ref: Some(broken.into()),
                    file: "https://example.com/broken/catalog-info.yaml".into(),
                    finding: Finding::error(
                        Rule::NameFormat,
                        "spec.system",
                        "spec.system must be an entity reference",
                    )
                    .at(Some(Position {
                        line: 9,
                        column: 11,
                    })),
                    recorded_at: 0,
                }],
            }],
            ..Batch::default()
        })
        .await
        .unwrap();
    let origin = running.base.trim_end_matches("/api/catalog").to_owned();
    // A second gateway that allows `file` locations, for registering one through the form.
    let settings = cadastre_gateway::Settings {
        location_types: vec!["url".into(), "file".into()],
        ..cadastre_gateway::Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let registering = common::start_with(settings).await;
    let register_origin = registering.base.trim_end_matches("/api/catalog").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("catalog-info.yaml");
    std::fs::write(
        &file,
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: browser-registered\n\
         spec:\n  type: service\n  lifecycle: production\n  owner: team-a\n",
    )
    .unwrap();
    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let report = common::node_report(
        project,
        "check.mjs",
        vec![
            origin,
            shots.to_string_lossy().into_owned(),
            register_origin,
            file.to_string_lossy().into_owned(),
        ],
    )
    .await;
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["checked"],
        serde_json::json!([
            "catalog",
            "filter by kind",
            "sort by owner",
            "search suggestions",
            "entity page",
            "follow a relation",
            "relations graph",
            "graph interaction",
            "group page",
            "errors on entity and owner",
            "api definition",
            "ingestion",
            "register a location",
            "search results",
            "phone width",
            "dark mode",
            "keyboard focus",
            "no console errors"
        ])
    );
    for shot in report["screenshots"].as_array().unwrap() {
        assert!(Path::new(shot.as_str().unwrap()).exists(), "{shot}");
    }
}
