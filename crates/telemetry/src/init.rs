//! The process's logging and tracing set-up.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The standard variables naming an OTLP collector (the traces one wins).
const OTLP_ENDPOINT_ENVS: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
}

/// Keeps the trace exporter alive; dropping it flushes the spans still buffered.
#[derive(Debug)]
#[must_use = "dropping it stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported (an OTLP endpoint is configured).
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "flushing the last spans failed");
        }
    }
}

/// Installs the global subscriber: logs on stderr (filter from `RUST_LOG`, else
/// `default_filter`) and, with an OTLP endpoint in the environment, spans exported as
/// `service`. Also installs the Prometheus recorder. Call once, inside a Tokio runtime (the
/// exporter's gRPC channel lives on it).
pub fn init(service: &str, default_filter: &str) -> Result<Telemetry, TelemetryError> {
    crate::metrics::install();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let endpoint = OTLP_ENDPOINT_ENVS
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .filter(|endpoint| !endpoint.trim().is_empty());
    let Some(endpoint) = endpoint else {
        // A second call (tests starting several services in one process) keeps the first.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(logs)
            .try_init();
        return Ok(Telemetry { provider: None });
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
        .map_err(|error| TelemetryError::Exporter {
            endpoint: endpoint.clone(),
            message: error.to_string(),
        })?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("cadastre");
    opentelemetry::global::set_tracer_provider(provider.clone());
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(logs)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init();
    tracing::info!(%endpoint, service, "exporting traces over OTLP");
    Ok(Telemetry {
        provider: Some(provider),
    })
}
