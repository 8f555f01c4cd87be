//! The import progress `cadastre up` shows on the terminal: files and entities read (counted
//! from the bus, as the harvester and processor publish them), entities stored and indexed
//! (asked of the store and search), and documents refused with errors.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cadastre_bus::Bus;
use cadastre_bus::memory::InProcessBus;
use cadastre_bus::subjects::{PROGRESS_BATCHES, PROGRESS_HARVESTED};
use cadastre_proto::transport::GrpcChannel;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use cadastre_proto::v1::search_service_client::SearchServiceClient;

use crate::services::Shutdown;

/// What the bus has carried so far.
#[derive(Debug, Default)]
pub struct Counts {
    pub files_read: AtomicU64,
    pub entities_read: AtomicU64,
    pub errors: AtomicU64,
    /// Locations whose harvest the processor has turned into a batch.
    pub locations_processed: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// One line of progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub files_read: u64,
    pub entities_read: u64,
    pub stored: u64,
    pub indexed: u64,
    pub errors: u64,
    /// Read indexes the store builds after a first import (see catalog-store's `first_import`).
    pub indexes_pending: u32,
}

impl std::fmt::Display for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} files read, {} entities read, {} stored, {} indexed, {} errors",
            self.files_read, self.entities_read, self.stored, self.indexed, self.errors
        )?;
        if self.indexes_pending > 0 {
            write!(f, "; {} read indexes to build", self.indexes_pending)?;
        }
        Ok(())
    }
}

/// Counts what passes on the bus until `shutdown`. Joins its consumers before returning, so
/// nothing published afterwards is missed.
pub async fn count(
    bus: Arc<dyn Bus>,
    counts: Arc<Counts>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let harvested = bus.consume(&PROGRESS_HARVESTED).await?;
    let batches = bus.consume(&PROGRESS_BATCHES).await?;
    tokio::spawn(each(harvested, shutdown.clone(), {
        let counts = Arc::clone(&counts);
        move |location: pb::HarvestedLocation| {
            counts
                .files_read
                .fetch_add(location.documents.len() as u64, Ordering::Relaxed);
        }
    }));
    tokio::spawn(each(batches, shutdown, move |batch: pb::ProcessedBatch| {
        let upserts = batch.batch.as_ref().map_or(0, |b| b.upserts.len() as u64);
        let receipt = batch.receipt.unwrap_or_default();
        counts
            .entities_read
            .fetch_add(upserts + u64::from(receipt.failed), Ordering::Relaxed);
        counts
            .errors
            .fetch_add(u64::from(receipt.failed), Ordering::Relaxed);
        if let Ok(mut seen) = counts.locations_processed.lock() {
            seen.insert(batch.location_key);
        }
    }));
    Ok(())
}

/// Hands every message `consumer` delivers to `count`, acknowledging it, until `shutdown`.
async fn each<M: prost::Message + Default>(
    mut consumer: Box<dyn cadastre_bus::Consumer>,
    shutdown: Shutdown,
    mut count: impl FnMut(M),
) {
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let delivery = tokio::select! {
            () = &mut stop => return,
            delivery = consumer.next() => delivery,
        };
        let Ok(delivery) = delivery else { return };
        if let Ok(message) = delivery.decode::<M>() {
            count(message);
        }
        let _ = delivery.ack().await;
    }
}

/// Prints a line whenever the numbers move (at most once a second) until the import settles:
/// every registered location processed, nothing left on the bus for two seconds, the store's
/// read indexes built, and search caught up with the store. Then prints the summary and returns.
///
/// Settled means the bus is empty, not that the numbers stopped moving: a store transaction
/// of a large group of batches can keep them still for seconds mid-import.
pub async fn report(
    counts: Arc<Counts>,
    bus: InProcessBus,
    registered: Vec<String>,
    store: GrpcChannel,
    search: GrpcChannel,
    ui: String,
    shutdown: Shutdown,
) {
    let mut store = CatalogServiceClient::new(store);
    let mut search = SearchServiceClient::new(search);
    let stop = shutdown.wait();
    tokio::pin!(stop);
    let mut last: Option<Snapshot> = None;
    let mut settled_ticks = 0;
    loop {
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Ok(now) = snapshot(&counts, &mut store, &mut search).await else {
            continue;
        };
        if last != Some(now) {
            terminal_line(&format!("importing: {now}"));
        }
        // Two looks in a row, a second apart: each stage publishes what it makes before it
        // acknowledges what it took, so an empty bus is a settled pipeline; the second look
        // is a margin, not a known gap.
        if bus.unsettled() == 0 {
            settled_ticks += 1;
        } else {
            settled_ticks = 0;
        }
        last = Some(now);
        let all_processed = counts
            .locations_processed
            .lock()
            .map(|seen| registered.iter().all(|key| seen.contains(key)))
            .unwrap_or(false);
        if all_processed
            && settled_ticks >= 2
            && now.indexes_pending == 0
            && caught_up(&mut store, &mut search).await
        {
            terminal_line(&format!(
                "ready: {} entities, {} indexed, {} documents with errors; the catalog is at {ui}",
                now.stored, now.indexed, now.errors
            ));
            return;
        }
    }
}

async fn snapshot(
    counts: &Counts,
    store: &mut CatalogServiceClient<GrpcChannel>,
    search: &mut SearchServiceClient<GrpcChannel>,
) -> Result<Snapshot, tonic::Status> {
    let stored = store
        .query_entities(pb::QueryEntitiesRequest {
            limit: 0,
            ..Default::default()
        })
        .await?
        .into_inner()
        .total_items;
    let indexed = search
        .get_index_status(pb::GetIndexStatusRequest {})
        .await?
        .into_inner()
        .documents;
    let indexes_pending = store
        .get_feed_head(pb::GetFeedHeadRequest {})
        .await?
        .into_inner()
        .indexes_pending;
    Ok(Snapshot {
        files_read: counts.files_read.load(Ordering::Relaxed),
        entities_read: counts.entities_read.load(Ordering::Relaxed),
        stored,
        indexed,
        errors: counts.errors.load(Ordering::Relaxed),
        indexes_pending,
    })
}

/// Whether search has applied every change the store has recorded.
async fn caught_up(
    store: &mut CatalogServiceClient<GrpcChannel>,
    search: &mut SearchServiceClient<GrpcChannel>,
) -> bool {
    let head = store.get_feed_head(pb::GetFeedHeadRequest {}).await;
    let status = search.get_index_status(pb::GetIndexStatusRequest {}).await;
    match (head, status) {
        (Ok(head), Ok(status)) => status.into_inner().sequence >= head.into_inner().sequence,
        _ => false,
    }
}

/// Progress is for the person at the terminal, beside the logs: plain lines on stderr.
fn terminal_line(line: &str) {
    let _ = writeln!(std::io::stderr(), "cadastre: {line}");
}
