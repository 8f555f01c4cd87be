//! The harvester as a service: one member of the `harvester` durable consumer, and the
//! periodic refresh of every registered location.

use std::sync::Arc;
use std::time::Duration;

use cadastre_bus::subjects::{HARVEST_REQUESTS, HARVESTED, HARVESTER};
use cadastre_bus::worker::{self, Handled};
use cadastre_bus::{Bus, BusError};
use cadastre_proto::v1 as pb;

use crate::lease::{Leased, Leases};
use crate::{Harvester, PartLimits};

/// Answers harvest requests until `shutdown`: reads the location, publishes what it found in
/// parts, then remembers what was read and acknowledges the request.
pub async fn run(
    bus: Arc<dyn Bus>,
    harvester: Arc<Harvester>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    run_with(bus, harvester, None, shutdown).await
}

/// [`run`], reading a location only while holding its lease (with replicas, so two never read
/// one location at once).
pub async fn run_with(
    bus: Arc<dyn Bus>,
    harvester: Arc<Harvester>,
    leases: Option<Leases>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError> {
    worker::run(
        &*bus,
        &HARVESTER,
        shutdown,
        |request: pb::HarvestRequest, trace| {
            let bus = Arc::clone(&bus);
            let harvester = Arc::clone(&harvester);
            let leases = leases.clone();
            async move {
                let key = request.location_key.clone();
                let held = match &leases {
                    None => false,
                    Some(leases) => match leases.acquire(&key).await {
                        Leased::Held => true,
                        Leased::Busy => {
                            return Handled::Retry(format!(
                                "another harvester is reading {key}"
                            ));
                        }
                        Leased::Unavailable(reason) => {
                            tracing::warn!(location_key = %key, %reason, "no lease (catalog-store unreachable); harvesting anyway");
                            false
                        }
                    },
                };
                let handled = harvest_and_publish(&*bus, &harvester, &request, trace).await;
                if held && let Some(leases) = &leases {
                    leases.release(&key).await;
                }
                handled
            }
        },
    )
    .await
}

async fn harvest_and_publish(
    bus: &dyn Bus,
    harvester: &Harvester,
    request: &pb::HarvestRequest,
    trace: Option<cadastre_bus::TraceContext>,
) -> Handled {
    let harvest = harvester.harvest(request).await;
    let trace = trace.map(|t| t.child());
    for part in harvest.parts(PartLimits::default()) {
        let id = format!("{}/{}", part.harvest_id, part.part);
        if let Err(error) = HARVESTED
            .publish(bus, &part, Some(id), trace.as_ref())
            .await
        {
            // Nothing is remembered: the retry reads the location again.
            return Handled::Retry(error.to_string());
        }
    }
    harvester.commit(&request.location_key, harvest.next_state);
    Handled::Done
}

/// Asks for a harvest of each of `locations()` every `interval` (each spread by up to a
/// quarter of it, so locations do not all go at once), until `shutdown`.
pub async fn schedule<F, Fut>(
    bus: Arc<dyn Bus>,
    interval: Duration,
    mut locations: F,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), BusError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<String>, String>>,
{
    tokio::pin!(shutdown);
    loop {
        let jitter = jitter(interval / 4);
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            () = tokio::time::sleep(interval + jitter) => {}
        }
        let keys = match locations().await {
            Ok(keys) => keys,
            Err(error) => {
                tracing::warn!(%error, "cannot list locations for the scheduled refresh");
                continue;
            }
        };
        // One request per location per period: the id makes replicas' schedules collapse.
        let period = now_secs() / interval.as_secs().max(1);
        for key in keys {
            let request = pb::HarvestRequest {
                request_id: format!("schedule/{period}/{key}"),
                location_key: key,
                trigger: pb::HarvestTrigger::Schedule.into(),
                reason: "scheduled refresh".into(),
                ..Default::default()
            };
            HARVEST_REQUESTS
                .publish(&*bus, &request, Some(request.request_id.clone()), None)
                .await?;
        }
    }
}

fn jitter(max: Duration) -> Duration {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let millis = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(random % millis)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
