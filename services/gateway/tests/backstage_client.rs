//! Backstage's own `@backstage/catalog-client` (from the npm registry, unchanged) against the
//! gateway: `tests/catalog-client/check.mjs` drives its calls and asserts on the results.
//! Needs `node` and `npm` (scripts/test checks for them).

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstages_catalog_client_works_unchanged() {
    let project = common::npm_project("catalog-client", "@backstage/catalog-client");
    let running = common::start().await;
    let report = common::node_report(project, "check.mjs", vec![running.base.clone()]).await;
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
