//! Helpers the test suites and benchmarks share. Everything here drives real programs and
//! servers (the `git` program, the PostgreSQL that `scripts/test` starts); nothing is faked.

use std::path::Path;
use std::process::Command;

/// Names the PostgreSQL server (any database on it) the tests create databases on.
pub const POSTGRES_URL_ENV: &str = "CADASTRE_TEST_POSTGRES_URL";
/// Names the NATS server (with JetStream) the tests use.
pub const NATS_URL_ENV: &str = "CADASTRE_TEST_NATS_URL";
/// Names the OpenSearch node `scripts/test` starts (`http://127.0.0.1:PORT`).
pub const OPENSEARCH_URL_ENV: &str = "CADASTRE_TEST_OPENSEARCH_URL";

/// Runs `git` in `repo` as a fixed author, without background housekeeping; its trimmed
/// output. Panics with git's message when it fails.
pub fn git(repo: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(repo)
        // No background `gc --auto` repacking the repository while a test reads it.
        .args(["-c", "gc.auto=0"])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Cadastre Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Cadastre Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git is installed (scripts/test installs it)");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// A valid `catalog-info.yaml` declaring one Component.
pub fn component_yaml(name: &str, owner: &str) -> String {
    format!(
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n  type: service\n  lifecycle: production\n  owner: {owner}\n"
    )
}

/// The URL of the test NATS server; panics saying how to get one.
pub fn nats_url() -> String {
    std::env::var(NATS_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{NATS_URL_ENV} is not set: run the suite with scripts/test, which starts nats-server"
        )
    })
}

/// The URL of the test OpenSearch node; panics saying how to get one.
pub fn opensearch_url() -> String {
    std::env::var(OPENSEARCH_URL_ENV).unwrap_or_else(|_| {
        panic!(
            "{OPENSEARCH_URL_ENV} is not set: run the suite with scripts/test, which starts an OpenSearch node"
        )
    })
}

/// Creates an empty database on the test PostgreSQL server; its URL.
pub async fn fresh_postgres_database(prefix: &str) -> String {
    use sea_orm::{ConnectionTrait, Database};
    let admin_url = std::env::var(POSTGRES_URL_ENV).unwrap_or_else(|_| {
        panic!("{POSTGRES_URL_ENV} is not set: run the suite with scripts/test, which starts PostgreSQL")
    });
    let admin = Database::connect(admin_url.as_str())
        .await
        .expect("the test PostgreSQL answers");
    let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("CREATE DATABASE");
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("a database path in the URL");
    format!("{base}/{name}")
}
