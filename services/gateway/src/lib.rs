//! gateway: the front door. Backstage's catalog REST API under `/api/catalog`, answered from
//! catalog-store over gRPC; registrations and refreshes become harvest requests on the bus.
//! Stateless: any number of replicas.

pub mod auth;
pub mod catalog;
pub mod error;
pub mod params;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use cadastre_bus::Bus;
use cadastre_bus::subjects::HARVEST_REQUESTS;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use tonic::transport::Channel;

pub use error::ApiError;

/// What the gateway allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Location types `POST /locations` accepts (Backstage allows only `url` by default).
    pub location_types: Vec<String>,
    pub auth: auth::Auth,
    pub webhooks: webhooks::WebhookSecrets,
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

/// The state every route shares: clients of the backends (cheap to clone).
#[derive(Debug, Clone)]
pub struct Gateway {
    catalog: CatalogServiceClient<Channel>,
    bus: Arc<dyn Bus>,
    settings: Arc<Settings>,
    deliveries: Arc<webhooks::Deliveries>,
}

impl Gateway {
    pub fn new(store: Channel, bus: Arc<dyn Bus>, settings: Settings) -> Gateway {
        Gateway {
            catalog: CatalogServiceClient::new(store).max_decoding_message_size(64 * 1024 * 1024),
            bus,
            settings: Arc::new(settings),
            deliveries: Arc::new(webhooks::Deliveries::default()),
        }
    }

    pub(crate) fn catalog(&self) -> CatalogServiceClient<Channel> {
        self.catalog.clone()
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

    /// Publishes a harvest request, de-duplicated on the bus by `id`.
    pub(crate) async fn publish_harvest(
        &self,
        location_key: &str,
        trigger: pb::HarvestTrigger,
        commit: &str,
        id: &str,
    ) -> Result<(), ApiError> {
        let request = pb::HarvestRequest {
            location_key: location_key.to_owned(),
            trigger: trigger.into(),
            reason: format!("{} through the gateway", trigger.as_str_name()),
            commit: commit.to_owned(),
            request_id: id.to_owned(),
            ..Default::default()
        };
        HARVEST_REQUESTS
            .publish(&*self.bus, &request, Some(request.request_id.clone()), None)
            .await
            .map_err(|error| {
                tracing::warn!(%error, location_key, "cannot ask for a harvest");
                ApiError::unavailable("The harvester cannot be reached; try again shortly")
            })?;
        Ok(())
    }

    /// Every route: `/api/catalog/…` (Backstage's catalog API) and `/api/webhooks/…`.
    pub fn router(self) -> Router {
        let auth = Arc::new(self.settings.auth.clone());
        let webhooks = webhooks::routes()
            .layer(axum::middleware::from_fn(error::with_request))
            .with_state(self.clone());
        let catalog = catalog::routes()
            .layer(axum::middleware::from_fn_with_state(auth, auth::check))
            .layer(axum::middleware::from_fn(error::with_request))
            .with_state(self);
        Router::new()
            .nest("/api/catalog", catalog)
            .nest("/api/webhooks", webhooks)
    }
}

/// Serves `router` on `listener` until `shutdown`.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::info!(address = ?listener.local_addr().ok(), "gateway serving HTTP");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
