//! What every Cadastre service shares to be observed:
//!
//! - [`init`]: structured logs (`tracing`, filtered by `RUST_LOG`) and, when
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans exported over OTLP/gRPC under the service's
//!   name;
//! - [`metrics`]: the process-wide Prometheus recorder the `metrics` macros write to;
//! - [`propagation`]: W3C trace context carried across gRPC metadata and bus headers, so one
//!   trace follows a push from the webhook through harvester, processor and store;
//! - [`admin`]: `/live`, `/ready`, `/metrics` and the gRPC health service on one port.

pub mod admin;
pub mod grpc_metrics;
pub mod http_metrics;
pub mod metrics;
pub mod propagation;

mod init;

pub use init::{Telemetry, TelemetryError, init};
