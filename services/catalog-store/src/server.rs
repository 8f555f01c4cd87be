//! Serving the store over gRPC: `CatalogService`, the standard health service and
//! reflection, on a listener the caller bound (tests bind port 0).

use std::future::Future;
use std::time::Duration;

use cadastre_proto::serve::{serve, standard_routes};
use cadastre_proto::v1::catalog_service_server::CatalogServiceServer;
use tokio::net::TcpListener;

pub use cadastre_proto::serve::{DEFAULT_GRACE_PERIOD, ServeError};

use crate::CatalogStore;
use crate::grpc::CatalogGrpc;

/// Serves `store` on `listener` until `shutdown` completes, then drains in-flight calls for
/// at most `grace_period` before closing what is left.
pub async fn run(
    store: CatalogStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    grace_period: Duration,
) -> Result<(), ServeError> {
    let routes = standard_routes::<CatalogServiceServer<CatalogGrpc>>()
        .await?
        .add_service(CatalogGrpc::new(store).into_server());
    tracing::info!(address = ?listener.local_addr().ok(), "catalog-store serving gRPC");
    serve(routes, listener, shutdown, grace_period).await
}
