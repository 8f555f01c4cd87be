//! `cadastre up`: all five services in one process, for a laptop. The in-process bus, SQLite
//! and tantivy in a data folder; the web UI and the API on one local port; the given catalogs
//! (the bundled examples by default) registered and harvested at start.
//!
//! Each service is the same code the distributed deployment runs (`crate::services`). The
//! gateway and the indexer call the store and search through the same generated gRPC clients
//! and servers as across a cluster, in process (`cadastre_proto::transport::in_process`): no
//! socket and no HTTP/2 between them. The store and search also serve gRPC on ephemeral
//! loopback ports, for other programs on the machine.

pub mod progress;
pub mod roots;

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use cadastre_bus::Bus;
use cadastre_bus::memory::InProcessBus;
use cadastre_bus::subjects::{ENTITY_BATCHES, HARVEST_REQUESTS, HARVESTED};
use cadastre_proto::transport::{self, GrpcChannel};
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::config::Config;
use crate::services::{self, Shutdown};

/// Harvested parts (up to 256 documents each) waiting for the processor, at most.
const HARVESTED_BACKLOG: usize = 32;
/// Processed batches waiting for the store, at most. Twice the store's largest group, so the
/// processor goes on while the store applies one. With only one group's worth, the processor
/// waited out each transaction (15-20 s at a million entities), past its 10 s ack wait, and
/// processed those parts again: 112 s of its CPU in a million-entity import instead of 52 s.
const BATCH_BACKLOG: usize = 1024;
/// How long the services get to finish in-flight work after a stop is asked for.
const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// What `cadastre up` was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Holds the database, the search index and the harvester's cache.
    pub data_dir: PathBuf,
    /// The web UI and the API.
    pub listen: SocketAddr,
    /// Catalog files or folders to register (and harvest) at start.
    pub catalogs: Vec<PathBuf>,
}

/// Runs everything until SIGINT or SIGTERM, or until a service fails.
pub async fn run(config: Config, options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.data_dir)
        .with_context(|| format!("creating the data folder {}", options.data_dir.display()))?;
    let _lock = DataLock::acquire(&options.data_dir)?;

    let gateway_listener = TcpListener::bind(options.listen).await.with_context(|| {
        format!(
            "listening on {} (is another program using it? choose another with --listen)",
            options.listen
        )
    })?;
    let store_listener = TcpListener::bind("127.0.0.1:0").await?;
    let search_listener = TcpListener::bind("127.0.0.1:0").await?;
    let store_url = format!("http://{}", store_listener.local_addr()?);
    let search_url = format!("http://{}", search_listener.local_addr()?);
    let ui = format!("http://{}/", gateway_listener.local_addr()?);
    let config = embedded(
        config,
        &options.data_dir,
        &store_url,
        &search_url,
        options.listen,
    );

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let shutdown = Shutdown::from_watch(stopped);
    tokio::spawn({
        let stop = stop.clone();
        async move {
            crate::store::shutdown_signal().await;
            let _ = stop.send(true);
        }
    });

    // Harvests and processed batches wait for the stage after them, so memory stays bounded
    // however large the catalog (JetStream keeps such a backlog on disk; this bus has none).
    let in_process = InProcessBus::with_backlog_limits(&[
        (HARVESTED.name, HARVESTED_BACKLOG),
        (ENTITY_BATCHES.name, BATCH_BACKLOG),
    ]);
    let bus: Arc<dyn Bus> = Arc::new(in_process.clone());
    let counts = Arc::new(progress::Counts::default());
    progress::count(Arc::clone(&bus), Arc::clone(&counts), shutdown.clone()).await?;

    let store = crate::store::open(&config.store).await?;
    let store_channel = transport::in_process(
        cadastre_catalog_store::grpc::CatalogGrpc::new(store.clone()).into_server(),
    );
    let config = Arc::new(config);
    let mut services: JoinSet<(&'static str, anyhow::Result<()>)> = JoinSet::new();
    // Harvesting, processing and indexing run at a lower priority than serving and the
    // store's writer (see `priority`).
    let background = crate::priority::BackgroundRuntime::new()?;
    {
        let (config, bus, shutdown) = (Arc::clone(&config), Arc::clone(&bus), shutdown.clone());
        services.spawn(async move {
            let served = crate::store::serve(
                store,
                &config.store,
                Some(bus),
                false,
                store_listener,
                shutdown,
            )
            .await;
            ("catalog-store", served)
        });
    }
    {
        let (config, bus, shutdown) = (Arc::clone(&config), Arc::clone(&bus), shutdown.clone());
        services.spawn_on(
            async move {
                let served = services::serve_harvester(
                    &config,
                    bus,
                    services::Harvesters::OnlyThisProcess,
                    shutdown,
                )
                .await;
                ("harvester", served)
            },
            background.handle(),
        );
    }
    {
        let (config, bus, shutdown) = (Arc::clone(&config), Arc::clone(&bus), shutdown.clone());
        services.spawn_on(
            async move {
                let served = services::serve_processor(&config, bus, shutdown).await;
                ("processor", served)
            },
            background.handle(),
        );
    }
    let search = services::open_search(
        &config.search,
        config.search.indexing.then(|| store_channel.clone()),
        Some(background.handle().clone()),
        &shutdown,
    )
    .await?;
    let search_channel = transport::in_process(search.clone().into_server());
    {
        let (config, shutdown) = (Arc::clone(&config), shutdown.clone());
        services.spawn(async move {
            let served = services::serve_opened_search(
                &config.search,
                search,
                search_listener,
                None,
                shutdown,
            )
            .await;
            ("search", served)
        });
    }
    {
        let (config, bus, shutdown) = (Arc::clone(&config), Arc::clone(&bus), shutdown.clone());
        let peers = services::GatewayPeers {
            store: store_channel.clone(),
            search: search_channel.clone(),
        };
        services.spawn(async move {
            let served =
                services::serve_gateway(&config, bus, peers, gateway_listener, None, shutdown)
                    .await;
            ("gateway", served)
        });
    }
    tracing::info!(data_dir = %options.data_dir.display(), %ui, "cadastre up");

    let registered = register(&config, &options.catalogs, store_channel.clone(), &*bus).await?;
    tokio::spawn(progress::report(
        counts,
        in_process,
        registered,
        store_channel,
        search_channel,
        ui,
        shutdown.clone(),
    ));

    // Every service runs until the stop; one that ends first takes the others down with it.
    let first = services.join_next().await;
    let asked_to_stop = shutdown.is_stopping();
    let _ = stop.send(true);
    let outcome = match first {
        Some(Ok((name, Ok(())))) if !asked_to_stop => {
            Err(anyhow::anyhow!("{name} stopped unexpectedly"))
        }
        Some(Ok((name, Err(error)))) => Err(error.context(format!("{name} failed"))),
        Some(Err(error)) => Err(anyhow::anyhow!("a service panicked: {error}")),
        _ => Ok(()),
    };
    let drained = tokio::time::timeout(GRACE_PERIOD, async {
        while let Some(joined) = services.join_next().await {
            if let Ok((name, Err(error))) = joined {
                tracing::warn!(service = name, error = %format!("{error:#}"), "stopped with an error");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            "some services did not stop within {}s",
            GRACE_PERIOD.as_secs()
        );
    }
    outcome
}

/// The configuration with everything embedded: the data folder for state, the ephemeral
/// ports for the store and search, `file` locations allowed (this is one user's machine).
fn embedded(
    mut config: Config,
    data_dir: &Path,
    store_url: &str,
    search_url: &str,
    listen: SocketAddr,
) -> Config {
    config.store.database_url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("catalog.db").display()
    );
    config.search.index_dir = data_dir.join("search");
    config.search.opensearch_url = None;
    config.search.indexing = true;
    config.search.store_url = store_url.to_owned();
    config.harvester.cache_dir = data_dir.join("harvester");
    config.harvester.allow_local_repositories = true;
    config.harvester.store_url = store_url.to_owned();
    config.gateway.listen = listen;
    config.gateway.store_url = store_url.to_owned();
    config.gateway.search_url = search_url.to_owned();
    if !config.gateway.location_types.iter().any(|t| t == "file") {
        config.gateway.location_types.push("file".to_owned());
    }
    config
}

/// Registers each catalog's root files as `file` locations (already registered ones are
/// kept) and asks for every one to be harvested now. Returns their location keys.
async fn register(
    config: &Config,
    catalogs: &[PathBuf],
    store: GrpcChannel,
    bus: &dyn Bus,
) -> anyhow::Result<Vec<String>> {
    let mut client = CatalogServiceClient::new(store);
    let mut keys = Vec::new();
    for catalog in catalogs {
        let roots = roots::catalog_roots(catalog, &config.limits)
            .with_context(|| format!("reading the catalog {}", catalog.display()))?;
        if roots.is_empty() {
            tracing::warn!(catalog = %catalog.display(), "no *.yaml or *.yml files to register");
        }
        for root in roots {
            let target = root.to_string_lossy().into_owned();
            let added = client
                .add_location(pb::AddLocationRequest {
                    r#type: "file".into(),
                    target: target.clone(),
                })
                .await;
            let trigger = match added {
                Ok(_) => pb::HarvestTrigger::Registered,
                Err(status) if status.code() == tonic::Code::AlreadyExists => {
                    pb::HarvestTrigger::Refresh
                }
                Err(status) => {
                    return Err(anyhow::anyhow!(
                        "registering {target}: {}",
                        status.message()
                    ));
                }
            };
            let key = format!("file:{target}");
            let request = pb::HarvestRequest {
                request_id: format!("up/{}/{key}", std::process::id()),
                location_key: key.clone(),
                trigger: trigger.into(),
                reason: "cadastre up".into(),
                ..Default::default()
            };
            HARVEST_REQUESTS
                .publish(bus, &request, Some(request.request_id.clone()), None)
                .await?;
            keys.push(key);
        }
    }
    tracing::info!(locations = keys.len(), "catalogs registered");
    Ok(keys)
}

/// An exclusive lock on the data folder, held while `cadastre up` runs: two instances on one
/// SQLite file and one index folder would corrupt neither, but would fight over both.
#[derive(Debug)]
struct DataLock {
    _file: File,
}

impl DataLock {
    fn acquire(data_dir: &Path) -> anyhow::Result<DataLock> {
        let path = data_dir.join("lock");
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "another process".to_owned()
                } else {
                    format!("process {holder}")
                };
                anyhow::bail!(
                    "the data folder {} is in use by {holder} (another `cadastre up`?); \
                     stop it first, or choose another folder with --data-dir",
                    data_dir.display()
                );
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(error).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.flush()?;
        Ok(DataLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_second_lock_on_a_data_folder_is_refused_with_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataLock::acquire(dir.path()).unwrap();
        let refused = DataLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(refused.contains("is in use by process"), "{refused}");
        assert!(
            refused.contains(&std::process::id().to_string()),
            "{refused}"
        );
        drop(first);
        // Released: free again. Other tests of this process start programs, and a child
        // holds a copy of every open file (the lock's too) from its fork until its exec
        // closes them: a lock dropped in that moment is free only a moment later.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while let Err(error) = DataLock::acquire(dir.path()) {
            assert!(std::time::Instant::now() < deadline, "{error}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[test]
    fn embedded_state_lives_in_the_data_folder() {
        let config = embedded(
            Config::default(),
            Path::new("/tmp/c"),
            "http://127.0.0.1:1",
            "http://127.0.0.1:2",
            "127.0.0.1:7007".parse().unwrap(),
        );
        assert_eq!(
            config.store.database_url,
            "sqlite:///tmp/c/catalog.db?mode=rwc"
        );
        assert_eq!(config.search.index_dir, Path::new("/tmp/c/search"));
        assert!(config.gateway.location_types.contains(&"file".to_owned()));
        assert_eq!(config.gateway.search_url, "http://127.0.0.1:2");
    }
}
