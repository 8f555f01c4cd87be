//! Requests and latency of an axum router's routes, as middleware
//! (`axum::middleware::from_fn(http_metrics::record)`); each request also runs in a server
//! span, child of the caller's `traceparent` header when it sends one.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Records `cadastre_http_requests_total{route,status}` and
/// `cadastre_http_request_seconds{route}`, by the matched route (not the raw path, whose
/// values would be unbounded).
pub async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!(
        "http.server",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        http.method = %request.method(),
        http.route = %route
    );
    if let Some(parent) = request
        .headers()
        .get(crate::propagation::TRACEPARENT)
        .and_then(|value| value.to_str().ok())
    {
        crate::propagation::set_parent(&span, parent);
    }
    let started = Instant::now();
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    metrics::counter!(
        "cadastre_http_requests_total",
        "route" => route.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("cadastre_http_request_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
