//! Stores starting together on one database (replicas, or a tool beside the service) all
//! come up: migrations are serialised, not raced.

use cadastre_catalog_store::CatalogStore;

async fn start_together(url: &str) {
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = url.to_owned();
            tokio::spawn(async move { CatalogStore::connect(&url).await })
        })
        .collect();
    for start in starts {
        let store = start.await.unwrap().unwrap();
        assert_eq!(store.entity_count().await.unwrap(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stores_starting_together_all_come_up() {
    start_together(&cadastre_testkit::fresh_postgres_database("cadastre_startup").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_stores_starting_together_all_come_up() {
    let dir = tempfile::tempdir().unwrap();
    start_together(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("catalog.db").display()
    ))
    .await;
}
