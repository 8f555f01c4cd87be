//! `cadastre store`: runs catalog-store on its own (the distributed deployment's system of
//! record), until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use cadastre_bus::Bus;
use cadastre_catalog_store::CatalogStore;

use crate::config::{BusConfig, StoreConfig};

/// Connects (creating a SQLite file's folder if needed), migrates, and serves gRPC; with a
/// bus configured, also applies the processor's batches and relays the change feed.
pub async fn run(
    config: &StoreConfig,
    bus: &BusConfig,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let store = open(config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let bus = match bus.nats_url {
        Some(_) => Some(crate::services::connect_bus(bus).await?),
        None => None,
    };
    let relay = bus.is_some();
    let shutdown = crate::services::Shutdown::on_signal();
    let ready = {
        let (store, bus) = (store.clone(), bus.clone());
        cadastre_telemetry::admin::readiness(move || {
            let (store, bus) = (store.clone(), bus.clone());
            async move {
                store.ping().await.map_err(|e| format!("database: {e}"))?;
                if let Some(bus) = bus {
                    bus.check().await.map_err(|e| e.to_string())?;
                }
                Ok(())
            }
        })
    };
    crate::services::start_admin(admin, ready, &shutdown).await?;
    serve(store, config, bus, relay, listener, shutdown).await
}

/// Connects to the configured database (creating a SQLite file's folder if needed) and
/// migrates it.
pub async fn open(config: &StoreConfig) -> anyhow::Result<CatalogStore> {
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
    store.set_orphan_policy(config.orphans);
    Ok(store)
}

/// Serves gRPC on `listener`; with a bus, also applies the processor's batches from it and,
/// when `relay_changes`, publishes the change feed to it (for consumers on NATS).
pub async fn serve(
    store: CatalogStore,
    config: &StoreConfig,
    bus: Option<Arc<dyn Bus>>,
    relay_changes: bool,
    listener: tokio::net::TcpListener,
    shutdown: crate::services::Shutdown,
) -> anyhow::Result<()> {
    let mut bus_tasks = Vec::new();
    if let Some(bus) = bus {
        // The writer on a thread of its own: each statement of its transactions is a round
        // trip through this task, which would otherwise queue behind every other task.
        let writer = crate::priority::on_own_thread("store-writer", {
            let (bus, store, stop) = (Arc::clone(&bus), store.clone(), shutdown.wait());
            move || cadastre_catalog_store::bus::apply_batches(bus, store, stop)
        })?;
        bus_tasks.push(tokio::spawn(async move {
            writer
                .await
                .context("the store's writer thread stopped")?
                .map_err(anyhow::Error::from)
        }));
        if relay_changes {
            bus_tasks.push(tokio::spawn({
                let (store, stop) = (store.clone(), shutdown.wait());
                async move {
                    cadastre_catalog_store::bus::relay_changes(bus, store, stop)
                        .await
                        .map_err(anyhow::Error::from)
                }
            }));
        }
    }
    cadastre_catalog_store::server::run(store, listener, shutdown.wait(), config.grace_period)
        .await?;
    for task in bus_tasks {
        task.await.context("catalog-store bus task")??;
    }
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
