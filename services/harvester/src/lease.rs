//! One harvester at a time per location: before reading a location, a replica takes the
//! lease `harvest:<location key>` from catalog-store (leases are rows there, so every replica
//! sees the same ones). The lease expires on its own if its holder dies mid-harvest.

use std::time::Duration;

use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use tonic::transport::Channel;

/// How often a replica asks again while another holds the lease.
const POLL: Duration = Duration::from_millis(200);

/// Takes and gives back location leases for one harvester replica.
#[derive(Debug, Clone)]
pub struct Leases {
    store: CatalogServiceClient<Channel>,
    holder: String,
    ttl: Duration,
    wait: Duration,
}

/// What asking for a lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// This replica holds it: harvest, then release.
    Held,
    /// Another replica kept it for the whole wait.
    Busy,
    /// The store cannot be asked: harvest anyway (a second read is wasteful, never wrong).
    Unavailable(String),
}

impl Leases {
    /// Leases lasting `ttl` (longer than a harvest may take), waited for at most `wait`.
    pub fn new(store: Channel, ttl: Duration, wait: Duration) -> Leases {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "harvester".to_owned());
        Leases {
            store: CatalogServiceClient::new(store),
            holder: format!("{host}/{}/{}", std::process::id(), uuid::Uuid::new_v4()),
            ttl,
            wait,
        }
    }

    fn name(location_key: &str) -> String {
        format!("harvest:{location_key}")
    }

    /// Takes the lease on `location_key`, waiting while another replica holds it.
    pub async fn acquire(&self, location_key: &str) -> Leased {
        let deadline = tokio::time::Instant::now() + self.wait;
        let request = pb::AcquireLeaseRequest {
            name: Self::name(location_key),
            holder: self.holder.clone(),
            ttl_millis: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
        };
        loop {
            match self.store.clone().acquire_lease(request.clone()).await {
                Ok(answer) if answer.get_ref().acquired => return Leased::Held,
                Ok(_) if tokio::time::Instant::now() >= deadline => return Leased::Busy,
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(status) => return Leased::Unavailable(status.message().to_owned()),
            }
        }
    }

    /// Gives the lease back (it would expire anyway).
    pub async fn release(&self, location_key: &str) {
        let released = self
            .store
            .clone()
            .release_lease(pb::ReleaseLeaseRequest {
                name: Self::name(location_key),
                holder: self.holder.clone(),
            })
            .await;
        if let Err(status) = released {
            tracing::warn!(location_key, error = %status.message(), "cannot release a harvest lease; it will expire");
        }
    }
}
