//! W3C trace context (`traceparent`) across process boundaries: into gRPC metadata and bus
//! headers from the current span, and out of them as the parent of the receiving span. With
//! no trace exporter installed, spans carry no OpenTelemetry context and nothing is added.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The header (and metadata key) carrying the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The current span's context as a `traceparent` value, if it has a valid one.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes the context in `traceparent` the parent of `span` (ignored when malformed).
pub fn set_parent(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        let _ = span.set_parent(context);
    }
}

/// The span of one gRPC call a server receives, child of the caller's context when its
/// metadata carries one (for tonic's `Server::trace_fn`).
pub fn grpc_server_span(request: &http::Request<()>) -> tracing::Span {
    let span = tracing::info_span!(
        "grpc.server",
        otel.kind = "server",
        rpc.method = %request.uri().path()
    );
    if let Some(parent) = request
        .headers()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
    {
        set_parent(&span, parent);
    }
    span
}

/// Adds the current span's context to every gRPC call a client makes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Propagate;

impl tonic::service::Interceptor for Propagate {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(traceparent) = current_traceparent()
            && let Ok(value) = traceparent.parse()
        {
            request.metadata_mut().insert(TRACEPARENT, value);
        }
        Ok(request)
    }
}
