//! Backstage's own `@backstage/catalog-client` (from the npm registry, unchanged) against the
//! gateway: `tests/catalog-client/check.mjs` drives its calls and asserts on the results.
//! Needs `node` and `npm` (scripts/test checks for them).

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstages_catalog_client_works_unchanged() {
    let project = common::npm_project("catalog-client", "@backstage/catalog-client");
    let settings = cadastre_gateway::Settings {
        location_types: vec!["url".into(), "file".into()],
        ..cadastre_gateway::Settings::default()
    }
    .for_listen("127.0.0.1:7007".parse().unwrap())
    .unwrap();
    let running = common::start_with(settings).await;
    let dir = tempfile::tempdir().unwrap();
    let dry_run_file = dir.path().join("catalog-info.yaml");
    std::fs::write(
        &dry_run_file,
        cadastre_testkit::component_yaml("dry-run-service", "team-a"),
    )
    .unwrap();
    let report = common::node_report(
        project,
        "check.mjs",
        vec![
            running.base.clone(),
            dry_run_file.to_str().unwrap().to_owned(),
        ],
    )
    .await;
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
            "addLocation dryRun",
            "refreshEntity",
            "getEntities",
            "predicates",
            "validateEntity",
            "removeEntityByUid",
            "analyzeLocation"
        ])
    );
}
