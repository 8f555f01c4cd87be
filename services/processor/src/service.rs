//! The processor as a service: one member of the `processor` durable consumer.

use std::sync::Arc;

use cadastre_bus::subjects::{ENTITY_BATCHES, HARVEST_REQUESTS, PROCESSOR};
use cadastre_bus::worker::{self, Handled};
use cadastre_bus::{Bus, BusError};
use cadastre_proto::v1 as pb;

use crate::Processor;

/// Processes harvests until `shutdown`: each becomes a batch for the store and the
/// harvest requests its Location entities ask for, published before it is acknowledged.
pub async fn run(
    bus: Arc<dyn Bus>,
    processor: Arc<Processor>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    worker::run(
        &*bus,
        &PROCESSOR,
        shutdown,
        |harvested: pb::HarvestedLocation, trace| {
            let bus = Arc::clone(&bus);
            let processor = Arc::clone(&processor);
            async move {
                let location = harvested.location_key.clone();
                // Reading and validating is CPU work: off the async threads.
                let processed = match tokio::task::spawn_blocking(move || {
                    processor.process(&harvested)
                })
                .await
                {
                    Ok(processed) => processed,
                    Err(error) => return Handled::Reject(format!("processing panicked: {error}")),
                };
                let trace = trace.map(|t| t.child());
                if let Err(error) = ENTITY_BATCHES
                    .publish(
                        &*bus,
                        &processed.batch,
                        Some(processed.batch.batch_id.clone()),
                        trace.as_ref(),
                    )
                    .await
                {
                    return Handled::Retry(error.to_string());
                }
                for request in &processed.fan_out {
                    if let Err(error) = HARVEST_REQUESTS
                        .publish(
                            &*bus,
                            request,
                            Some(request.request_id.clone()),
                            trace.as_ref(),
                        )
                        .await
                    {
                        return Handled::Retry(error.to_string());
                    }
                }
                tracing::info!(
                    %location,
                    entities = processed.summary.entities,
                    failed = processed.summary.failed_documents,
                    fan_out = processed.fan_out.len(),
                    "processed"
                );
                Handled::Done
            }
        },
    )
    .await
}
