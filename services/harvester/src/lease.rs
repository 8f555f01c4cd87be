//! One harvester at a time per location: before reading a location, a worker takes the
//! lease `harvest:<location key>`. Replicas in separate processes take it from
//! catalog-store (leases are rows there, so every replica sees the same ones); the workers of
//! a single process that is the only harvester (`cadastre up`) take it from memory, without
//! asking the store, whose one SQLite writer is busy with an import's transactions. A lease
//! expires on its own if its holder dies mid-harvest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use tokio::time::Instant;
use tonic::transport::Channel;

/// How often a worker asks again while another holds the lease.
const POLL: Duration = Duration::from_millis(200);

/// Takes and gives back location leases for one harvester worker.
#[derive(Debug, Clone)]
pub struct Leases {
    backing: Backing,
    holder: String,
    ttl: Duration,
    wait: Duration,
}

/// Where the leases are kept.
#[derive(Debug, Clone)]
enum Backing {
    /// In catalog-store, shared by every replica.
    Store(CatalogServiceClient<Channel>),
    /// In this process: lease name -> (holder, expiry).
    Process(Arc<Mutex<HashMap<String, (String, Instant)>>>),
}

/// What asking for a lease came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leased {
    /// This worker holds it: harvest, then release.
    Held,
    /// Another worker kept it for the whole wait.
    Busy,
    /// The store cannot be asked: harvest anyway (a second read is wasteful, never wrong).
    Unavailable(String),
}

impl Leases {
    /// Leases kept in catalog-store, lasting `ttl` (longer than a harvest may take), waited
    /// for at most `wait`.
    pub fn new(store: Channel, ttl: Duration, wait: Duration) -> Leases {
        Leases::with(Backing::Store(CatalogServiceClient::new(store)), ttl, wait)
    }

    /// Leases kept in this process, for a harvester that is the only one.
    pub fn in_process(ttl: Duration, wait: Duration) -> Leases {
        Leases::with(Backing::Process(Arc::default()), ttl, wait)
    }

    fn with(backing: Backing, ttl: Duration, wait: Duration) -> Leases {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "harvester".to_owned());
        Leases {
            backing,
            holder: format!("{host}/{}/{}", std::process::id(), uuid::Uuid::new_v4()),
            ttl,
            wait,
        }
    }

    /// The same leases for another worker: a holder of its own, so the workers of one
    /// process exclude each other too (a holder asking again only renews its lease).
    pub fn for_worker(&self) -> Leases {
        Leases {
            holder: format!("{}/{}", self.holder, uuid::Uuid::new_v4()),
            ..self.clone()
        }
    }

    fn name(location_key: &str) -> String {
        format!("harvest:{location_key}")
    }

    /// Takes the lease on `location_key`, waiting while another worker holds it.
    pub async fn acquire(&self, location_key: &str) -> Leased {
        let deadline = Instant::now() + self.wait;
        let name = Self::name(location_key);
        loop {
            match self.try_acquire(&name).await {
                Ok(true) => return Leased::Held,
                Ok(false) if Instant::now() >= deadline => return Leased::Busy,
                Ok(false) => tokio::time::sleep(POLL).await,
                Err(reason) => return Leased::Unavailable(reason),
            }
        }
    }

    async fn try_acquire(&self, name: &str) -> Result<bool, String> {
        match &self.backing {
            Backing::Store(store) => store
                .clone()
                .acquire_lease(pb::AcquireLeaseRequest {
                    name: name.to_owned(),
                    holder: self.holder.clone(),
                    ttl_millis: u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX),
                })
                .await
                .map(|answer| answer.get_ref().acquired)
                .map_err(|status| status.message().to_owned()),
            Backing::Process(leases) => {
                let mut leases = leases.lock().map_err(|e| e.to_string())?;
                let now = Instant::now();
                let free = leases
                    .get(name)
                    .is_none_or(|(holder, expires)| *expires < now || *holder == self.holder);
                if free {
                    leases.insert(name.to_owned(), (self.holder.clone(), now + self.ttl));
                }
                Ok(free)
            }
        }
    }

    /// Gives the lease back (it would expire anyway).
    pub async fn release(&self, location_key: &str) {
        let name = Self::name(location_key);
        let released = match &self.backing {
            Backing::Store(store) => store
                .clone()
                .release_lease(pb::ReleaseLeaseRequest {
                    name,
                    holder: self.holder.clone(),
                })
                .await
                .map(|_| ())
                .map_err(|status| status.message().to_owned()),
            Backing::Process(leases) => leases
                .lock()
                .map(|mut leases| {
                    if leases
                        .get(&name)
                        .is_some_and(|(holder, _)| *holder == self.holder)
                    {
                        leases.remove(&name);
                    }
                })
                .map_err(|e| e.to_string()),
        };
        if let Err(reason) = released {
            tracing::warn!(location_key, error = %reason, "cannot release a harvest lease; it will expire");
        }
    }
}
