//! The process-wide Prometheus recorder. Code anywhere records with the `metrics` macros
//! (re-exported here); `/metrics` renders what was recorded.
//!
//! Names (all prefixed `cadastre_`): `bus_messages_{consumed,acked,retried,redelivered,
//! dead_lettered}_total{consumer}`, `bus_published_total{subject}`,
//! `store_batch_entities` and `store_apply_seconds` (histograms), `store_feed_head`,
//! `search_applied_sequence`, `search_indexed_documents_total`, `search_write_seconds`,
//! `grpc_server_requests_total{path}` and `grpc_server_seconds{path}`,
//! `http_requests_total{route,status}` and `http_request_seconds{route}`.

use std::sync::OnceLock;

pub use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets, in seconds: 0.5 ms to 10 s.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Batch sizes.
const SIZES: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];

/// Installs the recorder (once per process; later calls do nothing).
pub fn install() {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_entities".into()), SIZES));
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            Err(error) => {
                tracing::warn!(%error, "metrics buckets refused; no metrics");
                return None;
            }
        };
        let handle = recorder.handle();
        // Another recorder already installed (a host program's): leave it in charge.
        metrics::set_global_recorder(recorder).ok()?;
        Some(handle)
    });
}

/// The metrics in Prometheus' text format.
pub fn render() -> String {
    install();
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}
