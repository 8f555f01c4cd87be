//! gateway: the front door. Backstage's catalog REST API under `/api/catalog`, answered from
//! catalog-store over gRPC; registrations and refreshes become harvest requests on the bus.
//! Stateless: any number of replicas.

pub mod auth;
pub mod cadastre_api;
pub mod catalog;
pub mod dry_run;
pub mod entity_cache;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod params;
pub mod preview;
pub mod search;
pub mod ui;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use cadastre_bus::Bus;
use cadastre_bus::subjects::HARVEST_REQUESTS;
pub use cadastre_proto::transport::GrpcChannel;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use cadastre_proto::v1::search_service_client::SearchServiceClient;

pub use error::ApiError;

/// What the gateway allows.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Location types `POST /locations` accepts (Backstage allows only `url` by default).
    pub location_types: Vec<String>,
    pub auth: auth::Auth,
    pub webhooks: webhooks::WebhookSecrets,
    /// Per client address; `None`: no limit.
    pub rate_limit: Option<limits::RateLimit>,
    /// How long a request may take.
    pub request_deadline: std::time::Duration,
    /// The largest request body of the API routes (webhooks take up to 5 MiB, as Backstage).
    pub max_body_bytes: usize,
    /// The web UI's settings (the tools linked from entity pages).
    pub ui: ui::UiSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            location_types: vec!["url".into(), "git".into()],
            auth: auth::Auth {
                anonymous_reads: true,
                ..auth::Auth::default()
            },
            webhooks: webhooks::WebhookSecrets::default(),
            rate_limit: None,
            request_deadline: std::time::Duration::from_secs(30),
            max_body_bytes: 1024 * 1024,
            ui: ui::UiSettings::default(),
        }
    }
}

impl Settings {
    /// Settles who may call a gateway on `listen`: with no token configured, a gateway on
    /// loopback (one user's laptop) is open, as a local development server is; anywhere
    /// else it refuses to start, since writes would be open to anyone who can reach it.
    pub fn for_listen(mut self, listen: std::net::SocketAddr) -> Result<Settings, String> {
        if self.auth.tokens.is_empty() {
            if !listen.ip().is_loopback() {
                return Err(format!(
                    "the gateway listens on {listen}, beyond loopback, and no token is configured: \
                     add [[gateway.tokens]] (scope and the environment variable holding the token)"
                ));
            }
            self.auth.open = true;
        }
        Ok(self)
    }
}

/// The state every route shares: clients of the backends. Cloned for every request (each
/// layer and handler takes its own), so everything in it is shared: a client is cloned only
/// for a call.
#[derive(Debug, Clone)]
pub struct Gateway {
    catalog: Arc<CatalogServiceClient<GrpcChannel>>,
    search: Option<Arc<SearchServiceClient<GrpcChannel>>>,
    bus: Arc<dyn Bus>,
    settings: Arc<Settings>,
    deliveries: Arc<webhooks::Deliveries>,
    /// Entities by ref, kept in step with the store's change feed (by-name lookups).
    entities: Option<Arc<entity_cache::EntityCache>>,
    /// Reads locations for `POST /locations?dryRun=true` and `POST /analyze-location`.
    previewer: Option<preview::Previewer>,
    /// The catalog page's facet counts per filter set, reused for a moment.
    catalog_facets: Arc<ui::CatalogFacets>,
}

impl Gateway {
    /// A gateway in front of the store on `store` ([`cadastre_proto::transport`]).
    pub fn new(store: GrpcChannel, bus: Arc<dyn Bus>, settings: Settings) -> Gateway {
        Gateway {
            catalog: Arc::new(
                CatalogServiceClient::new(store).max_decoding_message_size(64 * 1024 * 1024),
            ),
            search: None,
            bus,
            settings: Arc::new(settings),
            deliveries: Arc::new(webhooks::Deliveries::default()),
            entities: None,
            previewer: None,
            catalog_facets: Arc::default(),
        }
    }

    /// Keeps up to `capacity` entities for by-name lookups, following the store's change feed
    /// (until `shutdown`) to forget each one that changes. Must be called within a runtime.
    pub fn with_entity_cache(
        mut self,
        capacity: usize,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Gateway {
        let cache = Arc::new(entity_cache::EntityCache::new(capacity));
        tokio::spawn(Arc::clone(&cache).follow(self.catalog(), shutdown));
        self.entities = Some(cache);
        self
    }

    /// Answers dry-run registrations and repository analysis by reading locations with
    /// `previewer`.
    pub fn with_previewer(mut self, previewer: preview::Previewer) -> Gateway {
        self.previewer = Some(previewer);
        self
    }

    /// The entity cache, if [`Gateway::with_entity_cache`] made one.
    pub fn entity_cache(&self) -> Option<&entity_cache::EntityCache> {
        self.entities.as_deref()
    }

    /// A handle on the entity cache that outlives the router (tests look inside it).
    pub fn entity_cache_handle(&self) -> Option<Arc<entity_cache::EntityCache>> {
        self.entities.clone()
    }

    pub(crate) fn previewer(&self) -> Option<&preview::Previewer> {
        self.previewer.as_ref()
    }

    /// Answers the search routes from the search service on `channel`.
    pub fn with_search(mut self, channel: GrpcChannel) -> Gateway {
        self.search = Some(Arc::new(SearchServiceClient::new(channel)));
        self
    }

    pub(crate) fn search(&self) -> Result<SearchServiceClient<GrpcChannel>, ApiError> {
        self.search
            .as_deref()
            .cloned()
            .ok_or_else(|| ApiError::unavailable("Search is not configured on this gateway"))
    }

    pub(crate) fn catalog(&self) -> CatalogServiceClient<GrpcChannel> {
        CatalogServiceClient::clone(&self.catalog)
    }

    /// Every registered location.
    pub(crate) async fn locations(&self) -> Result<Vec<pb::Location>, ApiError> {
        Ok(self
            .catalog()
            .list_locations(pb::ListLocationsRequest {})
            .await?
            .into_inner()
            .locations)
    }

    pub(crate) fn catalog_facets(&self) -> &ui::CatalogFacets {
        &self.catalog_facets
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    pub(crate) fn webhook_secrets(&self) -> &webhooks::WebhookSecrets {
        &self.settings.webhooks
    }

    pub(crate) fn deliveries(&self) -> &webhooks::Deliveries {
        &self.deliveries
    }

    /// Asks the harvester to read `location_key` now.
    pub(crate) async fn harvest(&self, location_key: &str, reason: &str) -> Result<(), ApiError> {
        let trigger = match reason {
            "registered" => pb::HarvestTrigger::Registered,
            _ => pb::HarvestTrigger::Refresh,
        };
        let id = format!("api/{}", uuid::Uuid::new_v4());
        self.publish_harvest(location_key, trigger, "", &id).await
    }

    /// Publishes `request`, de-duplicated on the bus by its `request_id`.
    pub(crate) async fn publish_harvest_request(
        &self,
        request: pb::HarvestRequest,
    ) -> Result<(), ApiError> {
        HARVEST_REQUESTS
            .publish(&*self.bus, &request, Some(request.request_id.clone()), None)
            .await
            .map_err(|error| {
                tracing::warn!(%error, location_key = %request.location_key, "cannot ask for a harvest");
                ApiError::unavailable("The harvester cannot be reached; try again shortly")
            })?;
        Ok(())
    }

    /// Publishes a harvest request, de-duplicated on the bus by `id`.
    pub(crate) async fn publish_harvest(
        &self,
        location_key: &str,
        trigger: pb::HarvestTrigger,
        commit: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        self.publish_harvest_request(pb::HarvestRequest {
            location_key: location_key.to_owned(),
            trigger: trigger.into(),
            reason: format!("{} through the gateway", trigger.as_str_name()),
            commit: commit.to_owned(),
            request_id: id.to_owned(),
            ..Default::default()
        })
        .await
    }

    /// Every route: `/api/catalog/…` (Backstage's catalog API), `/api/search/…`,
    /// `/api/webhooks/…` (which check signatures instead of tokens) and the web UI (`/`,
    /// `/search`, `/catalog/…`, `/static/…`).
    pub fn router(self) -> Router {
        let auth = Arc::new(self.settings.auth.clone());
        let buckets = self
            .settings
            .rate_limit
            .map(|limit| Arc::new(limits::Buckets::new(limit)));
        let deadline = self.settings.request_deadline;
        // Layers run outside in: the error body, the rate limit, the deadline, then the rest.
        let limits = |routes: Router<Gateway>, body_limit: usize| {
            let mut routes = routes
                .layer(axum::extract::DefaultBodyLimit::max(body_limit))
                .layer(axum::middleware::from_fn_with_state(
                    deadline,
                    limits::deadline,
                ));
            if let Some(buckets) = &buckets {
                routes = routes.layer(axum::middleware::from_fn_with_state(
                    Arc::clone(buckets),
                    limits::rate_limit,
                ));
            }
            routes
        };
        let limited = |routes: Router<Gateway>, body_limit: usize| {
            limits(routes.fallback(unknown_route), body_limit)
                .layer(axum::middleware::from_fn(error::with_request))
                .with_state(self.clone())
        };
        let with_tokens = |routes: Router<Gateway>| {
            routes.layer(axum::middleware::from_fn_with_state(
                Arc::clone(&auth),
                auth::check,
            ))
        };
        let body_limit = self.settings.max_body_bytes;
        let catalog = limited(with_tokens(catalog::routes()), body_limit);
        let search = limited(with_tokens(search::routes()), body_limit);
        let cadastre = limited(with_tokens(cadastre_api::routes()), body_limit);
        let webhooks = limited(webhooks::routes(), 5 * 1024 * 1024);
        // The web UI reads like the read API (same tokens and limits); its errors are pages.
        // References to entities the catalog lacks are shown as such, not linked.
        let ui_pages = ui::routes().layer(axum::middleware::from_fn_with_state(
            Arc::clone(&auth),
            auth::check_page,
        ));
        let ui = limits(ui_pages.merge(ui::sign_in_routes()), body_limit)
            .layer(axum::middleware::from_fn_with_state(
                self.clone(),
                ui::dangling::mark_missing,
            ))
            .layer(axum::middleware::from_fn(ui::html_errors))
            .with_state(self.clone());
        // Probes and metrics answer without a token: they reveal nothing of the catalog.
        cadastre_telemetry::metrics::install();
        let admin = cadastre_telemetry::admin::routes(self.readiness());
        Router::new()
            .nest("/api/catalog", catalog)
            .nest("/api/search", search)
            .nest("/api/cadastre/v1", cadastre)
            .nest("/api/webhooks", webhooks)
            .merge(admin)
            .merge(ui)
            .layer(axum::middleware::from_fn(
                cadastre_telemetry::http_metrics::record,
            ))
    }

    /// Ready when catalog-store answers, and search too when it is configured.
    pub fn readiness(&self) -> cadastre_telemetry::admin::Readiness {
        let (catalog, search) = (self.catalog(), self.search.as_deref().cloned());
        cadastre_telemetry::admin::readiness(move || {
            let (mut catalog, search) = (catalog.clone(), search.clone());
            async move {
                catalog
                    .get_feed_head(pb::GetFeedHeadRequest {})
                    .await
                    .map_err(|status| format!("catalog-store: {}", status.message()))?;
                if let Some(mut search) = search {
                    search
                        .get_index_status(pb::GetIndexStatusRequest {})
                        .await
                        .map_err(|status| format!("search: {}", status.message()))?;
                }
                Ok(())
            }
        })
    }
}

async fn unknown_route(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("No route {method} {}", uri.path()))
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = ?listener.local_addr().ok(), "gateway serving HTTP");
    // The client's address is what the rate limit counts by.
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
