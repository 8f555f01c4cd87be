//! Serving gRPC the same way in every service: the service's routes plus the standard health
//! service and reflection, TCP_NODELAY on accepted sockets, and a graceful shutdown bounded
//! by a grace period.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::server::NamedService;
use tonic::service::Routes;

/// Why a server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// How long in-flight calls and open streams get to finish after shutdown is requested.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(5);

/// Routes with the health service (reporting `S` as serving) and reflection over every
/// Cadastre contract; add the service itself with [`Routes::add_service`].
pub async fn standard_routes<S: NamedService>() -> Result<Routes, ServeError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<S>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    Ok(Routes::new(health_service).add_service(reflection))
}

/// Serves `routes` on `listener` until `shutdown` completes, then drains in-flight calls for
/// at most `grace_period` before closing what is left.
pub async fn serve(
    routes: Routes,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
    grace_period: Duration,
) -> Result<(), ServeError> {
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
    // Each call gets a span (child of the caller's trace context) and its latency recorded.
    let serve = tonic::transport::Server::builder()
        .trace_fn(cadastre_telemetry::propagation::grpc_server_span)
        .layer(cadastre_telemetry::grpc_metrics::GrpcMetricsLayer)
        .add_routes(routes)
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
