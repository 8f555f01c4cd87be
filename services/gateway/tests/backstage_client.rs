//! Backstage's own `@backstage/catalog-client` (from the npm registry, unchanged) against the
//! gateway: `tests/catalog-client/check.mjs` drives its calls and asserts on the results.
//! Needs `node` and `npm` (scripts/test checks for them).

mod common;

use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstages_catalog_client_works_unchanged() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/catalog-client");
    if !project
        .join("node_modules/@backstage/catalog-client")
        .exists()
    {
        let install = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&project)
            .output()
            .expect("npm runs");
        assert!(
            install.status.success(),
            "npm ci failed:\n{}",
            String::from_utf8_lossy(&install.stderr)
        );
    }
    let running = common::start().await;
    let base = running.base.clone();
    let project_dir = project.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("check.mjs")
            .arg(&base)
            .current_dir(&project_dir)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the catalog client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["ok"], true);
    assert_eq!(
        report["checked"],
        serde_json::json!([
            "getEntityByRef",
            "getEntitiesByRefs",
            "queryEntities",
            "getEntityFacets",
            "getEntityAncestors",
            "locations",
            "refreshEntity",
            "getEntities",
            "predicates",
            "validateEntity",
            "removeEntityByUid",
            "analyzeLocation"
        ])
    );
}
