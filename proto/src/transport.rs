//! How a client reaches a gRPC service: across the network through a tonic [`Channel`], or,
//! when the service runs in the same process (`cadastre up`), by calling its generated server
//! directly. Both speak the same protobuf over the same generated client and server; the
//! in-process way skips the socket, the HTTP/2 framing and the four tasks that carry a call
//! across them (the client's buffer and connection, the server's connection and stream).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tower::ServiceExt as _;
use tower::util::BoxCloneSyncService;
use tracing::Instrument as _;

/// Why a call could not be carried (the network; an in-process call cannot fail this way).
/// A concrete type rather than a boxed error: generated clients' bounds on a boxed error
/// trip the compiler's higher-ranked lifetime checks in the callers' async functions.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct TransportError(Box<dyn std::error::Error + Send + Sync>);

/// A client's way to a service (give it to a generated client's `new`). Cheap to clone.
pub type GrpcChannel =
    BoxCloneSyncService<http::Request<Body>, http::Response<Body>, TransportError>;

/// Calls across the network; each call carries the current span's trace context.
pub fn remote(channel: Channel) -> GrpcChannel {
    BoxCloneSyncService::new(
        InterceptedService::new(channel, cadastre_telemetry::propagation::Propagate)
            .map_response(|response| response.map(Body::new))
            .map_err(|error| TransportError(error.into())),
    )
}

/// Calls `server` (a generated `…Server`, or tonic's `Routes`) in the caller's task. Each call
/// gets the span and latency metric a networked server gives it, the span a child of the
/// caller's.
pub fn in_process<S>(server: S) -> GrpcChannel
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let served = tower::Layer::layer(
        &cadastre_telemetry::grpc_metrics::GrpcMetricsLayer,
        Spanned(server),
    );
    BoxCloneSyncService::new(served.map_err(|never: Infallible| match never {}))
}

/// Runs each call inside a `grpc.server` span, as the networked server's `trace_fn` does.
#[derive(Clone)]
struct Spanned<S>(S);

impl<S> tower::Service<http::Request<Body>> for Spanned<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let span = tracing::info_span!(
            "grpc.server",
            otel.kind = "server",
            rpc.method = %request.uri().path()
        );
        Box::pin(self.0.call(request).instrument(span))
    }
}

#[cfg(test)]
mod tests {
    use tokio_stream::StreamExt as _;
    use tonic_health::ServingStatus;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_check_response::ServingStatus as Status;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;

    #[tokio::test]
    async fn in_process_calls_answer_unary_and_streaming_calls_and_errors() {
        let (reporter, health) = tonic_health::server::health_reporter();
        reporter
            .set_service_status("cadastre.v1.Test", ServingStatus::Serving)
            .await;
        let mut client = HealthClient::new(in_process(health));
        let asked = |service: &str| HealthCheckRequest {
            service: service.to_owned(),
        };

        let answer = client.check(asked("cadastre.v1.Test")).await.unwrap();
        assert_eq!(answer.into_inner().status(), Status::Serving);

        let unknown = client
            .check(asked("cadastre.v1.Nothing"))
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::NotFound);

        // A server stream: the current status, then each change as it is reported.
        let mut watched = client
            .watch(asked("cadastre.v1.Test"))
            .await
            .unwrap()
            .into_inner();
        let first = watched.next().await.unwrap().unwrap();
        assert_eq!(first.status(), Status::Serving);
        reporter
            .set_service_status("cadastre.v1.Test", ServingStatus::NotServing)
            .await;
        let second = watched.next().await.unwrap().unwrap();
        assert_eq!(second.status(), Status::NotServing);
    }
}
