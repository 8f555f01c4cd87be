//! Every subject, its message type, and every durable consumer: defined here once.
//!
//! ```text
//! catalog.harvest.request   HarvestRequest     gateway, processor (fan-out) -> harvester
//! catalog.harvested         HarvestedLocation  harvester -> processor
//! catalog.entities.batch    ProcessedBatch     processor -> catalog-store
//! catalog.entities.changed  ChangeEvent        catalog-store (outbox relay) -> search
//! catalog.dead              DeadLetter         any consumer that gives up on a message
//! ```
//!
//! On NATS all of them live in one stream ([`STREAM`]); a deployment may prefix subjects and
//! the stream name (a namespace) to share a NATS cluster with other installations.

use std::marker::PhantomData;
use std::time::Duration;

use bytes::Bytes;
use cadastre_proto::v1 as pb;

use crate::{Bus, Outgoing, Published, Result, TRACEPARENT, TraceContext};

/// The JetStream stream holding every subject below.
pub const STREAM: &str = "CATALOG";
/// The subjects [`STREAM`] captures.
pub const STREAM_SUBJECTS: &str = "catalog.>";

pub const HARVEST_REQUESTS: Subject<pb::HarvestRequest> = Subject::new("catalog.harvest.request");
pub const HARVESTED: Subject<pb::HarvestedLocation> = Subject::new("catalog.harvested");
pub const ENTITY_BATCHES: Subject<pb::ProcessedBatch> = Subject::new("catalog.entities.batch");
pub const ENTITY_CHANGES: Subject<pb::ChangeEvent> = Subject::new("catalog.entities.changed");
pub const DEAD_LETTERS: Subject<pb::DeadLetter> = Subject::new("catalog.dead");

/// The harvester's replicas share harvest requests.
pub const HARVESTER: ConsumerSpec = ConsumerSpec::new("harvester", HARVEST_REQUESTS.name);
/// The processor's replicas share harvested locations. A part takes well under a second to
/// process, so one held by a replica that died comes back soon.
pub const PROCESSOR: ConsumerSpec =
    ConsumerSpec::new("processor", HARVESTED.name).with_ack_wait(Duration::from_secs(10));
/// catalog-store's replicas share processed batches: in flight, twice what the store groups
/// into one transaction (`cadastre_catalog_store::bus`'s grouping), so the next group is
/// delivered while one is applied. A delivery waits for the group before its own and then
/// its own: a group of 512 took 15-20 s to apply at a million entities on SQLite and about
/// 30 s on PostgreSQL, hence an ack wait of twice the slowest and more.
pub const STORE_WRITER: ConsumerSpec = ConsumerSpec::new("catalog-store", ENTITY_BATCHES.name)
    .with_max_in_flight(1024)
    .with_ack_wait(Duration::from_secs(120));
/// The search service's replicas share the change feed.
pub const SEARCH_INDEXER: ConsumerSpec = ConsumerSpec::new("search", ENTITY_CHANGES.name);

/// `cadastre up` counts harvested files and processed entities for its progress display.
pub const PROGRESS_HARVESTED: ConsumerSpec =
    ConsumerSpec::new("progress-harvested", HARVESTED.name).with_max_in_flight(1024);
pub const PROGRESS_BATCHES: ConsumerSpec =
    ConsumerSpec::new("progress-batches", ENTITY_BATCHES.name).with_max_in_flight(1024);

/// A subject and the one message type it carries.
#[derive(Debug)]
pub struct Subject<M> {
    pub name: &'static str,
    message: PhantomData<fn() -> M>,
}

impl<M> Clone for Subject<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Subject<M> {}

impl<M: prost::Message + Default> Subject<M> {
    pub const fn new(name: &'static str) -> Self {
        Subject {
            name,
            message: PhantomData,
        }
    }

    /// Publishes `message`, de-duplicated by `id` (unique per subject) when given, carrying
    /// `trace` (a new trace when `None`).
    pub async fn publish(
        &self,
        bus: &dyn Bus,
        message: &M,
        id: Option<String>,
        trace: Option<&TraceContext>,
    ) -> Result<Published> {
        let outgoing = self.outgoing(message, id, trace);
        bus.publish(self.name, outgoing).await
    }

    /// Publishes `messages` (each with its de-duplication id) in order without waiting for
    /// each to be stored before sending the next; the answers come in the same order.
    pub async fn publish_all(
        &self,
        bus: &dyn Bus,
        messages: impl IntoIterator<Item = (M, Option<String>)>,
    ) -> Vec<Result<Published>> {
        let outgoing = messages
            .into_iter()
            .map(|(message, id)| self.outgoing(&message, id, None))
            .collect();
        bus.publish_all(self.name, outgoing).await
    }

    fn outgoing(&self, message: &M, id: Option<String>, trace: Option<&TraceContext>) -> Outgoing {
        // The current span's context when traces are exported (so the receiver's span is its
        // child); else the caller's, else a new trace.
        let traceparent =
            cadastre_telemetry::propagation::current_traceparent().unwrap_or_else(|| {
                trace
                    .cloned()
                    .unwrap_or_else(TraceContext::new_root)
                    .to_header()
            });
        let mut outgoing = Outgoing {
            payload: Bytes::from(message.encode_to_vec()),
            // De-duplication ids are per subject: the stream holds every subject, and a
            // harvest and its batch may well share an id.
            id: id.map(|id| format!("{}:{id}", self.name)),
            ..Outgoing::default()
        };
        outgoing.headers.insert(TRACEPARENT.to_owned(), traceparent);
        cadastre_telemetry::metrics::counter!("cadastre_bus_published_total", "subject" => self.name)
            .increment(1);
        outgoing
    }
}

/// A durable consumer of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    /// Durable name: consumers joined under one name share the work.
    pub name: &'static str,
    pub subject: &'static str,
    /// Unacknowledged deliveries at most, across every member.
    pub max_in_flight: usize,
    /// A delivery not settled within this comes again.
    pub ack_wait: Duration,
    /// Deliveries before a message is dead-lettered.
    pub max_deliveries: u32,
}

impl ConsumerSpec {
    pub const fn new(name: &'static str, subject: &'static str) -> Self {
        ConsumerSpec {
            name,
            subject,
            max_in_flight: 64,
            ack_wait: Duration::from_secs(30),
            max_deliveries: 5,
        }
    }

    pub const fn with_max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.max_in_flight = max_in_flight;
        self
    }

    pub const fn with_ack_wait(mut self, ack_wait: Duration) -> Self {
        self.ack_wait = ack_wait;
        self
    }

    pub const fn with_max_deliveries(mut self, max_deliveries: u32) -> Self {
        self.max_deliveries = max_deliveries;
        self
    }
}
