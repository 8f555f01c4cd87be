//! Serving the store over gRPC: `CatalogService`, the standard health service and
//! reflection, on a listener the caller bound (tests bind port 0).

use std::future::Future;
use std::time::Duration;

use cadastre_proto::v1::catalog_service_server::CatalogServiceServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;

use crate::CatalogStore;
use crate::grpc::CatalogGrpc;

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// How long in-flight calls and open streams get to finish after shutdown is requested.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Serves `store` on `listener` until `shutdown` completes, then drains in-flight calls for
/// at most `grace_period` before closing what is left.
pub async fn run(
    store: CatalogStore,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    grace_period: Duration,
) -> Result<(), ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<CatalogServiceServer<CatalogGrpc>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(cadastre_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    tracing::info!(address = ?listener.local_addr().ok(), "catalog-store serving gRPC");
    // Accepted sockets do not inherit TCP_NODELAY: without it small responses wait for the
    // peer's delayed ACK (about 40 ms per call on loopback).
    let incoming = TcpListenerStream::new(listener).map(|connection| {
        if let Ok(stream) = &connection
            && let Err(error) = stream.set_nodelay(true)
        {
            tracing::warn!(%error, "cannot set TCP_NODELAY");
        }
        connection
    });
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        let _ = stopping.send(());
    };
    let serve = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(CatalogGrpc::new(store).into_server())
        .serve_with_incoming_shutdown(incoming, signal);
    let deadline = async move {
        if stopped.await.is_ok() {
            tokio::time::sleep(grace_period).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = serve => result?,
        () = deadline => tracing::warn!(?grace_period, "grace period over; closing the connections still open"),
    }
    Ok(())
}
