//! The admin endpoints every service answers, on one port: `GET /live` (the process runs),
//! `GET /ready` (its dependencies answer: 200, else 503 with the reason), `GET /metrics`
//! (Prometheus text) and the standard gRPC health service, which follows readiness.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// Answers whether the service can do its work now; `Err` says what is missing.
pub type Readiness =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// A readiness check from an async closure.
pub fn readiness<F, Fut>(check: F) -> Readiness
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(check()))
}

/// `/live`, `/ready` and `/metrics`, to merge into a service's own HTTP router or serve alone.
pub fn routes(ready: Readiness) -> Router {
    Router::new()
        .route("/live", get(|| async { "live\n" }))
        .route(
            "/ready",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    match ready().await {
                        Ok(()) => (StatusCode::OK, "ready\n".to_owned()).into_response(),
                        Err(reason) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("not ready: {reason}\n"),
                        )
                            .into_response(),
                    }
                }
            }),
        )
        .route("/metrics", get(metrics))
}

async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(),
    )
        .into_response()
}

/// Serves the admin routes and the gRPC health service (`""`, the whole server, reported
/// serving while `ready` answers) on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ready: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let grpc = tonic::service::Routes::new(health).into_axum_router();
    let router = routes(Arc::clone(&ready)).merge(grpc);
    let follow = tokio::spawn(async move {
        loop {
            let status = match ready().await {
                Ok(()) => tonic_health::ServingStatus::Serving,
                Err(_) => tonic_health::ServingStatus::NotServing,
            };
            reporter.set_service_status("", status).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    tracing::info!(address = %listener.local_addr()?, "admin endpoints: /live /ready /metrics, gRPC health");
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await;
    follow.abort();
    served
}
