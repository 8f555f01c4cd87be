//! `cadastre store`: runs catalog-store on its own (the distributed deployment's system of
//! record), until SIGINT or SIGTERM.

use std::path::Path;

use anyhow::Context as _;
use cadastre_catalog_store::CatalogStore;

use crate::config::StoreConfig;

/// Connects (creating a SQLite file's folder if needed), migrates, and serves gRPC.
pub async fn run(config: &StoreConfig) -> anyhow::Result<()> {
    if let Some(path) = sqlite_path(&config.database_url)
        && let Some(parent) = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let store = CatalogStore::connect(&config.database_url)
        .await
        .with_context(|| format!("connecting to {}", redact(&config.database_url)))?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    cadastre_catalog_store::server::run(store, listener, shutdown_signal(), config.grace_period)
        .await?;
    tracing::info!("catalog-store stopped");
    Ok(())
}

/// The file of a `sqlite://path?…` URL.
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://")?;
    Some(rest.split('?').next().unwrap_or(rest))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sqlite_paths_and_redacts_passwords() {
        assert_eq!(
            sqlite_path("sqlite://.cadastre/catalog.db?mode=rwc"),
            Some(".cadastre/catalog.db")
        );
        assert_eq!(sqlite_path("postgres://x"), None);
        assert_eq!(
            redact("postgres://user:secret@db:5432/cadastre"),
            "postgres://user:***@db:5432/cadastre"
        );
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
