//! `cadastre harvester|processor|search|gateway`: each service as its own process, on NATS,
//! until SIGINT or SIGTERM. (`cadastre store` joins the bus too when one is configured.)
//!
//! Each `run_*` connects what the service needs and calls its `serve_*`, which `cadastre up`
//! also calls, with the in-process bus and one shutdown for all.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use cadastre_bus::Bus;
use cadastre_bus::nats::{JetStreamBus, StreamSettings};
use cadastre_model::Validator;
use cadastre_proto::transport::GrpcChannel;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;

use crate::config::{BusConfig, Config};
use crate::store::{redact, shutdown_signal};

/// Connects to the configured NATS.
pub async fn connect_bus(config: &BusConfig) -> anyhow::Result<Arc<dyn Bus>> {
    let url = config
        .nats_url
        .as_deref()
        .context("no NATS to connect to: set bus.nats_url or CADASTRE_BUS_NATS_URL")?;
    let bus = JetStreamBus::connect(
        url,
        StreamSettings {
            namespace: config.namespace.clone(),
            ..StreamSettings::default()
        },
    )
    .await
    .with_context(|| format!("connecting to NATS at {}", redact(url)))?;
    tracing::info!(url = %redact(url), "connected to NATS JetStream");
    Ok(Arc::new(bus))
}

/// Serves `/live`, `/ready`, `/metrics` and gRPC health on `listen` (when set) until
/// `shutdown`.
pub async fn start_admin(
    listen: Option<std::net::SocketAddr>,
    ready: cadastre_telemetry::admin::Readiness,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let Some(listen) = listen else {
        return Ok(());
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("admin.listen: binding {listen}"))?;
    let stop = shutdown.wait();
    tokio::spawn(async move {
        if let Err(error) = cadastre_telemetry::admin::serve(listener, ready, stop).await {
            tracing::error!(%error, "the admin endpoints stopped");
        }
    });
    Ok(())
}

/// Ready while the bus answers.
pub fn bus_readiness(bus: &Arc<dyn Bus>) -> cadastre_telemetry::admin::Readiness {
    let bus = Arc::clone(bus);
    cadastre_telemetry::admin::readiness(move || {
        let bus = Arc::clone(&bus);
        async move { bus.check().await.map_err(|error| error.to_string()) }
    })
}

/// A shutdown signal several tasks can wait for.
#[derive(Debug, Clone)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Fires on SIGINT or SIGTERM.
    pub fn on_signal() -> Self {
        let (tell, listen) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            shutdown_signal().await;
            let _ = tell.send(true);
        });
        Shutdown(listen)
    }

    /// Fires when `stop` is sent `true` (or dropped).
    pub fn from_watch(stop: tokio::sync::watch::Receiver<bool>) -> Self {
        Shutdown(stop)
    }

    /// Whether the stop was asked for already.
    pub fn is_stopping(&self) -> bool {
        *self.0.borrow()
    }

    pub fn wait(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut listen = self.0.clone();
        async move {
            let _ = listen.wait_for(|stop| *stop).await;
        }
    }
}

pub async fn run_harvester(config: &Config) -> anyhow::Result<()> {
    let bus = connect_bus(&config.bus).await?;
    let shutdown = Shutdown::on_signal();
    start_admin(config.admin.listen, bus_readiness(&bus), &shutdown).await?;
    serve_harvester(config, bus, Harvesters::Replicas, shutdown).await
}

/// Who else may read locations, which decides where harvest leases are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Harvesters {
    /// Replicas in other processes: leases in catalog-store, which they all see.
    Replicas,
    /// This process is the only harvester (`cadastre up`): its workers take leases from
    /// memory. Asking the store would queue each read twice behind the import's writes
    /// (SQLite has one writer), which held a 100,000-entity import to three reads a second.
    OnlyThisProcess,
}

/// Answers harvest requests and, every `refresh_interval`, asks for every registered
/// location to be read again.
pub async fn serve_harvester(
    config: &Config,
    bus: Arc<dyn Bus>,
    harvesters: Harvesters,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let h = &config.harvester;
    let harvester = Arc::new(harvester(config)?);
    let endpoint = tonic::transport::Endpoint::from_shared(h.store_url.clone())
        .with_context(|| format!("harvester.store_url {:?}", h.store_url))?;
    // Workers take a lease per location, so two never read one at once; it outlives the
    // longest read, and a request waits a little for it before coming back.
    let (ttl, wait) = (
        h.timeout * 2 + std::time::Duration::from_secs(30),
        std::time::Duration::from_secs(5),
    );
    let leases = match harvesters {
        Harvesters::Replicas => {
            cadastre_harvester::lease::Leases::new(endpoint.connect_lazy(), ttl, wait)
        }
        Harvesters::OnlyThisProcess => cadastre_harvester::lease::Leases::in_process(ttl, wait),
    };
    // Reads mostly wait (on git, on the network), so several run at once, each one more
    // member of the queue group; the leases keep them off each other's locations.
    let workers = run_workers(h.workers.max(1), || {
        cadastre_harvester::service::run_with(
            Arc::clone(&bus),
            Arc::clone(&harvester),
            Some(leases.for_worker()),
            shutdown.wait(),
        )
    });
    if !h.refresh_interval.is_zero() {
        let client = CatalogServiceClient::new(endpoint.connect_lazy());
        tokio::spawn(cadastre_harvester::service::schedule(
            Arc::clone(&bus),
            h.refresh_interval,
            move || {
                let mut client = client.clone();
                async move {
                    let locations = client
                        .list_locations(cadastre_proto::v1::ListLocationsRequest {})
                        .await
                        .map_err(|status| status.message().to_owned())?
                        .into_inner()
                        .locations;
                    Ok(locations
                        .into_iter()
                        .map(|l| format!("{}:{}", l.r#type, l.target))
                        .collect())
                }
            },
            shutdown.wait(),
        ));
    }
    tracing::info!(workers = h.workers.max(1), "harvester running");
    workers.await.context("harvester")?;
    tracing::info!("harvester stopped");
    Ok(())
}

/// The harvester the configuration describes (credentials read from the environment).
pub fn harvester(config: &Config) -> anyhow::Result<cadastre_harvester::Harvester> {
    let h = &config.harvester;
    let mut credentials = cadastre_harvester::Credentials::default();
    for (host, variable) in &h.credentials_env {
        let value = std::env::var(variable).with_context(|| {
            format!("harvester.credentials_env: {variable} (for {host}) is not set")
        })?;
        credentials.0.insert(host.to_ascii_lowercase(), value);
    }
    let settings = cadastre_harvester::Settings {
        max_file_bytes: config.limits.max_file_bytes as u64,
        timeout: h.timeout,
        allowed_hosts: h.allowed_hosts.clone(),
        allow_private_addresses: h.allow_private_addresses,
        allow_local_repositories: h.allow_local_repositories,
        credentials,
        cache_dir: h.cache_dir.clone(),
        ca_file: h.ca_file.clone(),
        ..cadastre_harvester::Settings::default()
    };
    cadastre_harvester::Harvester::new(settings).map_err(anyhow::Error::msg)
}

/// The processor the configuration describes (custom kinds, kind rules, limits).
pub fn processor(config: &Config) -> anyhow::Result<cadastre_processor::Processor> {
    Ok(cadastre_processor::Processor::new(
        Validator::new(config.registry()?),
        cadastre_processor::Settings {
            max_fan_out_depth: config.processor.max_fan_out_depth,
            limits: config.limits,
            kind_rules: config.processor.kind_rules.clone(),
        },
    ))
}

pub async fn run_processor(config: &Config) -> anyhow::Result<()> {
    let bus = connect_bus(&config.bus).await?;
    let shutdown = Shutdown::on_signal();
    start_admin(config.admin.listen, bus_readiness(&bus), &shutdown).await?;
    serve_processor(config, bus, shutdown).await
}

/// Runs `workers` copies of a consumer loop, each a member of the same queue group (as
/// replicas would be), until every one has stopped; the first error is the answer.
async fn run_workers<Loop, Run, E>(workers: usize, start: Loop) -> anyhow::Result<()>
where
    Loop: Fn() -> Run,
    Run: Future<Output = Result<(), E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        running.spawn(start());
    }
    while let Some(finished) = running.join_next().await {
        finished.context("a worker panicked")??;
    }
    Ok(())
}

/// Turns harvested files into entity batches.
pub async fn serve_processor(
    config: &Config,
    bus: Arc<dyn Bus>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let processor = Arc::new(processor(config)?);
    let workers = config.processor.workers.max(1);
    tracing::info!(workers, "processor running");
    // Each worker is one more member of the queue group, as another replica would be: a
    // part is CPU work on one core, and a file's documents are read in order.
    run_workers(workers, || {
        cadastre_processor::service::run(Arc::clone(&bus), Arc::clone(&processor), shutdown.wait())
    })
    .await
    .context("processor")?;
    tracing::info!("processor stopped");
    Ok(())
}

pub async fn run_search(
    config: &crate::config::SearchConfig,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    serve_search(config, listener, admin, Shutdown::on_signal()).await
}

/// Opens the index (OpenSearch or tantivy), follows the store's change feed into it when
/// `indexing`, and serves `SearchService` on `listener`.
pub async fn serve_search(
    config: &crate::config::SearchConfig,
    listener: tokio::net::TcpListener,
    admin: Option<std::net::SocketAddr>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let store = if config.indexing {
        Some(remote(&config.store_url, "search.store_url")?)
    } else {
        None
    };
    let search = open_search(config, store, None, &shutdown).await?;
    serve_opened_search(config, search, listener, admin, shutdown).await
}

/// Opens the index (OpenSearch or tantivy) and, given a `store` (when `indexing`), starts
/// following its change feed into it. The indexer, and the tantivy index's writing threads,
/// run on `indexing_runtime` when given (`cadastre up` gives its lower-priority one), else on
/// this runtime.
pub async fn open_search(
    config: &crate::config::SearchConfig,
    store: Option<GrpcChannel>,
    indexing_runtime: Option<tokio::runtime::Handle>,
    shutdown: &Shutdown,
) -> anyhow::Result<cadastre_search::server::SearchGrpc> {
    use cadastre_search::SearchBackend;
    let indexing_runtime = indexing_runtime.unwrap_or_else(tokio::runtime::Handle::current);
    let backend: Arc<dyn SearchBackend> = match &config.opensearch_url {
        Some(url) => {
            let mut settings = cadastre_search::opensearch::OpenSearchSettings::new(url);
            settings.index_prefix = config.index_prefix.clone();
            settings.shards = config.shards;
            settings.replicas = config.replicas;
            settings.username = config.opensearch_username.clone();
            settings.password = config.opensearch_password.clone();
            let backend = cadastre_search::opensearch::OpenSearchBackend::connect(settings)
                .await
                .with_context(|| format!("connecting to OpenSearch at {}", redact(url)))?;
            Arc::new(backend)
        }
        None => {
            let dir = config.index_dir.clone();
            // Opened on the indexing runtime: the writer's threads start there and keep
            // its priority.
            let backend = indexing_runtime
                .spawn_blocking(move || cadastre_search::tantivy::TantivyBackend::open(&dir))
                .await
                .context("opening the index")?
                .with_context(|| format!("opening the index in {}", config.index_dir.display()))?;
            Arc::new(backend)
        }
    };
    let indexer = if let Some(store) = store {
        let indexer = cadastre_search::indexer::Indexer::new(Arc::clone(&backend), store);
        let follower = Arc::clone(&indexer);
        let stop = shutdown.wait();
        indexing_runtime.spawn(async move {
            if let Err(error) = follower.follow(stop).await {
                tracing::error!(%error, "the indexer stopped");
            }
        });
        Some(indexer)
    } else {
        None
    };
    Ok(cadastre_search::server::SearchGrpc::new(backend, indexer))
}

/// Serves an opened search service on `listener` (and readiness on `admin`).
pub async fn serve_opened_search(
    config: &crate::config::SearchConfig,
    search: cadastre_search::server::SearchGrpc,
    listener: tokio::net::TcpListener,
    admin: Option<std::net::SocketAddr>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let ready = {
        let backend = Arc::clone(search.backend());
        cadastre_telemetry::admin::readiness(move || {
            let backend = Arc::clone(&backend);
            async move {
                let index = backend.serving().await.map_err(|e| e.to_string())?;
                backend.count(&index).await.map_err(|e| e.to_string())?;
                Ok(())
            }
        })
    };
    start_admin(admin, ready, &shutdown).await?;
    cadastre_search::server::run(search, listener, shutdown.wait(), config.grace_period).await?;
    tracing::info!("search stopped");
    Ok(())
}

/// A channel to the service at `url` (the setting `name`), connected on first use.
pub fn remote(url: &str, name: &str) -> anyhow::Result<GrpcChannel> {
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_owned())
        .with_context(|| format!("{name} {url:?}"))?;
    Ok(cadastre_proto::transport::remote(endpoint.connect_lazy()))
}

/// How the gateway reaches the store and search.
#[derive(Debug, Clone)]
pub struct GatewayPeers {
    pub store: GrpcChannel,
    pub search: GrpcChannel,
}

impl GatewayPeers {
    /// The configured `gateway.store_url` and `gateway.search_url`.
    pub fn remote(config: &crate::config::GatewayConfig) -> anyhow::Result<GatewayPeers> {
        Ok(GatewayPeers {
            store: remote(&config.store_url, "gateway.store_url")?,
            search: remote(&config.search_url, "gateway.search_url")?,
        })
    }
}

pub async fn run_gateway(config: &Config) -> anyhow::Result<()> {
    let bus = connect_bus(&config.bus).await?;
    let listener = tokio::net::TcpListener::bind(config.gateway.listen)
        .await
        .with_context(|| format!("listening on {}", config.gateway.listen))?;
    let peers = GatewayPeers::remote(&config.gateway)?;
    serve_gateway(
        config,
        bus,
        peers,
        listener,
        config.admin.listen,
        Shutdown::on_signal(),
    )
    .await
}

/// Serves the REST API (and the web UI) on `listener`, in front of the store and search.
pub async fn serve_gateway(
    config: &Config,
    bus: Arc<dyn Bus>,
    peers: GatewayPeers,
    listener: tokio::net::TcpListener,
    admin: Option<std::net::SocketAddr>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let g = &config.gateway;
    let mut tokens = Vec::new();
    for (scope, variable) in &g.tokens {
        let token = std::env::var(variable)
            .ok()
            .filter(|token| !token.trim().is_empty())
            .with_context(|| format!("gateway.tokens: {variable} is not set"))?;
        let scope = cadastre_gateway::auth::Scope::parse(scope)
            .with_context(|| format!("gateway.tokens: unknown scope {scope:?}"))?;
        tokens.push((token, scope));
    }
    let settings = cadastre_gateway::Settings {
        location_types: g.location_types.clone(),
        auth: cadastre_gateway::auth::Auth {
            tokens,
            anonymous_reads: g.anonymous_reads,
            open: false,
        },
        webhooks: cadastre_gateway::webhooks::WebhookSecrets {
            github: g.github_webhook_secret.clone(),
            gitlab: g.gitlab_webhook_token.clone(),
        },
        rate_limit: (g.rate_limit_per_second > 0.0).then_some(
            cadastre_gateway::limits::RateLimit {
                per_second: g.rate_limit_per_second,
                burst: g.rate_limit_burst.max(1.0),
            },
        ),
        request_deadline: g.request_timeout,
        max_body_bytes: g.max_body_bytes,
        ui: g.ui.clone(),
    }
    .for_listen(g.listen)
    .map_err(anyhow::Error::msg)?;
    // Dry runs read locations in the gateway, with the harvester's and processor's settings.
    let previewer = cadastre_gateway::preview::Previewer::new(
        Arc::new(harvester(config)?),
        Arc::new(processor(config)?),
    );
    let mut gateway = cadastre_gateway::Gateway::new(peers.store, bus, settings)
        .with_search(peers.search)
        .with_previewer(previewer);
    if g.entity_cache_entries > 0 {
        gateway = gateway.with_entity_cache(g.entity_cache_entries, shutdown.wait());
    }
    // The gateway answers /live, /ready and /metrics on its own port too.
    start_admin(admin, gateway.readiness(), &shutdown).await?;
    cadastre_gateway::serve(gateway.router(), listener, shutdown.wait()).await?;
    tracing::info!("gateway stopped");
    Ok(())
}
