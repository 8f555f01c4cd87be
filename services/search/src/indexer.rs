//! Keeps the serving index in step with catalog-store, and rebuilds it with no downtime.
//!
//! The indexer follows the store's change feed (`WatchChanges`) from the sequence the index
//! was last made durable at, and writes in bulk: each round takes the changes waiting (up to
//! [`ROUND`]), reads the current bodies of the refs they name in one `GetEntitiesByRefs`, and
//! writes them with the round's last sequence as the new checkpoint. The next round is
//! gathered and read while one is written. After a crash it resumes
//! from that checkpoint: a round is replayed at worst, and writes are idempotent (upsert or
//! delete by ref), so nothing is missed and nothing is doubled.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cadastre_proto::transport::GrpcChannel;
use cadastre_proto::v1 as pb;
use cadastre_proto::v1::catalog_service_client::CatalogServiceClient;
use tokio_stream::StreamExt;

use crate::{IndexBatch, Result, SearchBackend, SearchDocument, SearchError};

/// What a search document is built from: everything but `relations`, which the store then
/// does not read (the relations of a group owning thousands of entities are thousands of rows,
/// and every entity that joins it changes the group's etag, so its document is rewritten).
const DOCUMENT_FIELDS: [&str; 4] = ["apiVersion", "kind", "metadata", "spec"];
/// Traces a round's spans continue, at most (a bulk load's round carries one per harvest part).
const TRACES_PER_ROUND: usize = 32;
/// Changes written per round, at most. A round is this large only while the indexer is
/// behind (changes waiting); each round is a commit, a segment and a reader reload. A cold
/// million's `cadastre up` was ready at 312.9 s with rounds of 1,000 and at 264.7 s with
/// 4,000, search catching up with the store instead of trailing it by 400,000 entities.
const ROUND: usize = 4_000;
/// Changes written after which the indexer, once caught up, compacts the index
/// ([`SearchBackend::compact`]): a large load.
const COMPACT_AFTER_CHANGES: usize = 20_000;
/// How long a round waits for more changes once it has one.
const GATHER: Duration = Duration::from_millis(20);
/// Rounds are written (committed) at most this often: while changes stream in, a round
/// gathers until this long after the previous write. Committing every 20 ms made a segment,
/// an fsync and a reader reload per few documents, and tantivy spent more time merging those
/// segments than indexing (a cold ingest's profile); an idle index still shows a lone change
/// after [`GATHER`].
const MIN_WRITE_INTERVAL: Duration = Duration::from_millis(250);
/// While the indexer is behind (its rounds are full), a backend that refreshes on request
/// ([`SearchBackend::refreshes_on_request`]) is refreshed at most this often; once a round is
/// not full it is refreshed at once. Each refresh makes a segment that merges later: at the
/// one-second refresh OpenSearch does by itself, 200,000 documents cost it 41.8-45.7 CPU
/// seconds, and 35.5-35.9 s at five seconds, with no merges during the load.
const REFRESH_WHILE_BEHIND: Duration = Duration::from_secs(5);
/// Refs read from the store per call.
const READ_CHUNK: usize = 500;
/// Documents written per bulk during a rebuild.
const REBUILD_BULK: usize = 2_000;
/// A rebuild logs its progress this often.
const PROGRESS_EVERY: u64 = 50_000;

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub index: String,
    pub entities: u64,
    pub sequence: u64,
    pub duration: Duration,
}

#[derive(Debug)]
pub struct Indexer {
    backend: Arc<dyn SearchBackend>,
    store: CatalogServiceClient<GrpcChannel>,
    /// Held while writing to the serving index, and while switching it.
    writing: tokio::sync::Mutex<()>,
    /// Bumped at every switch: a follower writing to an older index starts over.
    switches: AtomicU64,
    rebuilding: AtomicBool,
}

impl Indexer {
    /// An indexer reading entities from the store on `store` ([`cadastre_proto::transport`]).
    pub fn new(backend: Arc<dyn SearchBackend>, store: GrpcChannel) -> Arc<Indexer> {
        Arc::new(Indexer {
            backend,
            store: CatalogServiceClient::new(store).max_decoding_message_size(64 * 1024 * 1024),
            writing: tokio::sync::Mutex::new(()),
            switches: AtomicU64::new(0),
            rebuilding: AtomicBool::new(false),
        })
    }

    pub fn backend(&self) -> &Arc<dyn SearchBackend> {
        &self.backend
    }

    pub fn is_rebuilding(&self) -> bool {
        self.rebuilding.load(Ordering::SeqCst)
    }

    /// Follows the change feed into the serving index until `shutdown`; reconnects (with
    /// back-off) when the store is away.
    pub async fn follow(&self, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        loop {
            let round = self.follow_once(&mut shutdown);
            match round.await {
                Ok(Stop::Shutdown) => return Ok(()),
                Ok(Stop::Switched) => failures = 0,
                Err(error) => {
                    failures += 1;
                    let wait = Duration::from_millis(200 * 2u64.pow(failures.min(5)));
                    tracing::warn!(%error, ?wait, "following the change feed failed; resuming from the checkpoint");
                    tokio::select! {
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    }

    /// Follows the feed in two steps that overlap: gathering a round and reading its
    /// entities from the store, and writing the round before it. Run one after the other,
    /// a cold million's catch-up left the two cores idle 29% of the time (a profile of the
    /// indexer following the store); a round read ahead is written once the one before is.
    async fn follow_once(
        &self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<Stop> {
        let switches = self.switches.load(Ordering::SeqCst);
        let index = self.backend.serving().await?;
        let after = self.backend.checkpoint(&index).await?;
        tracing::info!(%index, after, "following the change feed");
        let mut feed = self
            .store
            .clone()
            .watch_changes(pb::WatchChangesRequest {
                after_sequence: after,
                follow: true,
            })
            .await?
            .into_inner();
        let last_write = std::sync::Mutex::new(
            tokio::time::Instant::now()
                .checked_sub(MIN_WRITE_INTERVAL)
                .unwrap_or_else(tokio::time::Instant::now),
        );
        let written_at = || {
            *last_write
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        // One round read ahead, at most: the one being written holds the rest back.
        let (ready, mut rounds) = tokio::sync::mpsc::channel::<ReadRound>(1);
        let read = async {
            loop {
                let first = tokio::select! {
                    () = shutdown.as_mut() => return Ok(Stop::Shutdown),
                    next = feed.next() => next,
                };
                let Some(first) = first else {
                    return Err(SearchError::Index("the change feed ended".into()));
                };
                let mut changes = vec![first?];
                let deadline =
                    (tokio::time::Instant::now() + GATHER).max(written_at() + MIN_WRITE_INTERVAL);
                while changes.len() < ROUND {
                    match tokio::time::timeout_at(deadline, feed.next()).await {
                        Ok(Some(change)) => changes.push(change?),
                        Ok(None) | Err(_) => break,
                    }
                }
                let Some(round) = self.read_round(&changes).await? else {
                    continue;
                };
                if ready.send(round).await.is_err() {
                    // The writer stopped; its answer is the one returned.
                    return std::future::pending().await;
                }
            }
        };
        let write = async {
            let mut refresh = RefreshPolicy::new(self.backend.refreshes_on_request());
            let mut compaction = CompactPolicy::default();
            // The sequence of the last change written.
            let mut applied = 0;
            loop {
                // `None`: no round came within the idle deadline that follows a full one.
                let next = match refresh.idle_deadline() {
                    Some(deadline) => tokio::time::timeout_at(deadline, rounds.recv()).await.ok(),
                    None => Some(rounds.recv().await),
                };
                let round = match next {
                    Some(None) => break,
                    Some(Some(round)) => Some(round),
                    None => None,
                };
                let _writing = self.writing.lock().await;
                if self.switches.load(Ordering::SeqCst) != switches {
                    return Ok(Stop::Switched);
                }
                let refresh_now = match round {
                    Some(round) => {
                        let full = round.full;
                        let written = round.batch.upserts.len() + round.batch.removals.len();
                        applied = round.batch.checkpoint.unwrap_or(applied);
                        self.write_round(&index, round).await?;
                        *last_write
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            tokio::time::Instant::now();
                        if compaction.written(written, full) && self.caught_up(applied).await? {
                            self.backend.compact(&index).await?;
                            compaction.compacted();
                        }
                        refresh.written(full)
                    }
                    // Nothing more came after a full round: show what was written.
                    None => {
                        if compaction.written(0, false) && self.caught_up(applied).await? {
                            self.backend.compact(&index).await?;
                            compaction.compacted();
                        }
                        true
                    }
                };
                if refresh_now {
                    self.backend.refresh(&index).await?;
                    refresh.refreshed();
                }
            }
            // The reader ended first; its answer is the one returned.
            std::future::pending().await
        };
        tokio::select! {
            stop = read => stop,
            stop = write => stop,
        }
    }

    /// Whether the change feed holds nothing after `applied` (the sequence last written).
    async fn caught_up(&self, applied: u64) -> Result<bool> {
        Ok(applied >= self.feed_head().await?)
    }

    /// The sequence of the store's last change.
    async fn feed_head(&self) -> Result<u64> {
        Ok(self
            .store
            .clone()
            .get_feed_head(pb::GetFeedHeadRequest {})
            .await?
            .into_inner()
            .sequence)
    }

    /// Writes the current state of the entities `changes` name into `index`, with the last
    /// change's sequence as the checkpoint.
    async fn apply(&self, index: &str, changes: &[pb::ChangeEvent]) -> Result<()> {
        match self.read_round(changes).await? {
            Some(round) => self.write_round(index, round).await,
            None => Ok(()),
        }
    }

    /// The spans of a round: one `index` span per trace its changes carry (a push's trace
    /// thus reaches search through the feed even when its change shares a round with
    /// others), each lasting until the round is written; the first is the one reads and the
    /// write run in.
    fn round_spans(changes: &[pb::ChangeEvent]) -> Vec<tracing::Span> {
        let mut traces: Vec<&str> = Vec::new();
        for change in changes {
            let traceparent = change.traceparent.as_str();
            if !traceparent.is_empty()
                && traces.len() < TRACES_PER_ROUND
                && !traces.contains(&traceparent)
            {
                traces.push(traceparent);
            }
        }
        let span_for = |parent: Option<&str>| {
            let span =
                tracing::info_span!("index", otel.kind = "consumer", changes = changes.len());
            if let Some(parent) = parent {
                cadastre_telemetry::propagation::set_parent(&span, parent);
            }
            span
        };
        let mut spans: Vec<tracing::Span> = traces.iter().map(|t| span_for(Some(t))).collect();
        if spans.is_empty() {
            spans.push(span_for(None));
        }
        spans
    }

    /// Reads the current state of the entities `changes` name: the documents to write, the
    /// refs to remove, and the last change's sequence as the checkpoint. `None` for no
    /// changes.
    async fn read_round(&self, changes: &[pb::ChangeEvent]) -> Result<Option<ReadRound>> {
        let Some(last) = changes.last().map(|change| change.sequence) else {
            return Ok(None);
        };
        let spans = Self::round_spans(changes);
        let batch = tracing::Instrument::instrument(
            self.read_documents_of(changes, last),
            spans[0].clone(),
        )
        .await?;
        Ok(Some(ReadRound {
            batch,
            spans,
            full: changes.len() >= ROUND,
        }))
    }

    async fn read_documents_of(
        &self,
        changes: &[pb::ChangeEvent],
        last: u64,
    ) -> Result<IndexBatch> {
        // The latest change per ref decides; the store gives the body as it is now. A change
        // of only an entity's relations (another entity started or stopped pointing at it)
        // leaves its document as it is: documents hold no relations. At a cold ingest that is
        // about one change in four (every new component moves its owner's and its APIs' etags).
        let mut latest: HashMap<&str, &pb::ChangeEvent> = HashMap::new();
        for change in changes.iter().filter(|change| !change.relations_only) {
            latest.insert(&change.entity_ref, change);
        }
        let mut batch = IndexBatch {
            checkpoint: Some(last),
            ..IndexBatch::default()
        };
        let mut upserted: Vec<(&str, u64)> = Vec::new();
        for (entity_ref, change) in latest {
            if change.change == "removed" {
                batch.removals.push(entity_ref.to_owned());
            } else {
                upserted.push((entity_ref, change.sequence));
            }
        }
        for chunk in upserted.chunks(READ_CHUNK) {
            let found = self
                .store
                .clone()
                .get_entities_by_refs(pb::GetEntitiesByRefsRequest {
                    entity_refs: chunk.iter().map(|(r, _)| (*r).to_owned()).collect(),
                    fields: DOCUMENT_FIELDS.iter().map(|f| (*f).to_owned()).collect(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            for ((entity_ref, sequence), item) in chunk.iter().zip(found.items) {
                match item
                    .entity
                    .as_ref()
                    .and_then(|stored| document(stored, *sequence))
                {
                    Some(doc) => batch.upserts.push(doc),
                    // Removed since the change: a later change in the feed says so too.
                    None => batch.removals.push((*entity_ref).to_owned()),
                }
            }
        }
        Ok(batch)
    }

    /// Writes a round read before into `index`; its spans close with the write.
    async fn write_round(&self, index: &str, round: ReadRound) -> Result<()> {
        let ReadRound { batch, spans, .. } = round;
        let last = batch.checkpoint.unwrap_or_default();
        let upserts = batch.upserts.len();
        let removals = batch.removals.len();
        let started = std::time::Instant::now();
        tracing::Instrument::instrument(self.backend.write(index, batch), spans[0].clone()).await?;
        drop(spans);
        {
            use cadastre_telemetry::metrics::{counter, gauge, histogram};
            histogram!("cadastre_search_write_seconds").record(started.elapsed().as_secs_f64());
            counter!("cadastre_search_indexed_documents_total")
                .increment((upserts + removals) as u64);
            gauge!("cadastre_search_applied_sequence").set(last as f64);
        }
        tracing::debug!(%index, sequence = last, upserts, removals, "index round written");
        Ok(())
    }

    /// Builds a new index from every entity in the store (from the feed head read first),
    /// catches it up with the changes since, and switches to it; the serving index keeps
    /// serving (and following) until then.
    pub async fn rebuild(&self) -> Result<RebuildReport> {
        if self.rebuilding.swap(true, Ordering::SeqCst) {
            return Err(SearchError::InvalidArgument(
                "a rebuild is already running".into(),
            ));
        }
        let started = Instant::now();
        let index = self.backend.create_index().await;
        let result = match index {
            Ok(index) => {
                let built = self.build(&index, started).await;
                if built.is_err()
                    && let Err(error) = self.backend.drop_index(&index).await
                {
                    tracing::warn!(%error, %index, "cannot delete the unfinished index");
                }
                built
            }
            Err(error) => Err(error),
        };
        self.rebuilding.store(false, Ordering::SeqCst);
        result
    }

    async fn build(&self, index: &str, started: Instant) -> Result<RebuildReport> {
        // Every entity streamed is at least as new as this; the changes after it are replayed
        // onto the new index before it serves.
        let from = self.feed_head().await?;
        tracing::info!(%index, from, "rebuilding the search index from the store");
        let stream = self
            .store
            .clone()
            .stream_entities(pb::StreamEntitiesRequest { batch_size: 1_000 })
            .await?
            .into_inner();
        // Reading and parsing run in their own task, a few bulks ahead of the writes.
        let (bulks, mut ready) = tokio::sync::mpsc::channel::<Result<Vec<SearchDocument>>>(4);
        let reader = tokio::spawn(read_documents(stream, from, bulks));
        let mut entities = 0u64;
        while let Some(bulk) = ready.recv().await {
            let upserts = bulk?;
            let before = entities;
            entities += upserts.len() as u64;
            if entities / PROGRESS_EVERY > before / PROGRESS_EVERY {
                let rate = entities as f64 / started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(%index, entities, rate = rate as u64, "rebuild progress");
            }
            self.backend
                .write(
                    index,
                    IndexBatch {
                        upserts,
                        ..IndexBatch::default()
                    },
                )
                .await?;
        }
        reader
            .await
            .map_err(|error| SearchError::Index(format!("the reader failed: {error}")))?;
        self.backend
            .write(
                index,
                IndexBatch {
                    checkpoint: Some(from),
                    ..IndexBatch::default()
                },
            )
            .await?;
        // Catch up outside the lock first (it may be long), then the rest under it.
        let caught_up = self.catch_up(index, from).await?;
        let _writing = self.writing.lock().await;
        let sequence = self.catch_up(index, caught_up).await?;
        self.backend.refresh(index).await?;
        self.backend.switch_to(index).await?;
        self.switches.fetch_add(1, Ordering::SeqCst);
        self.backend.compact(index).await?;
        let report = RebuildReport {
            index: index.to_owned(),
            entities,
            sequence,
            duration: started.elapsed(),
        };
        tracing::info!(%index, entities, sequence, duration = ?report.duration, "rebuild done; the new index serves");
        Ok(report)
    }

    /// Applies every change after `after` to `index`; answers the last sequence applied.
    async fn catch_up(&self, index: &str, after: u64) -> Result<u64> {
        let mut feed = self
            .store
            .clone()
            .watch_changes(pb::WatchChangesRequest {
                after_sequence: after,
                follow: false,
            })
            .await?
            .into_inner();
        let mut last = after;
        let mut round = Vec::with_capacity(ROUND);
        while let Some(change) = feed.next().await {
            round.push(change?);
            if round.len() == ROUND {
                self.apply(index, &round).await?;
                last = round[round.len() - 1].sequence;
                round.clear();
            }
        }
        if let Some(change) = round.last() {
            last = change.sequence;
            self.apply(index, &round).await?;
        }
        Ok(last)
    }
}

/// Sends the documents of `stream` in bulks of [`REBUILD_BULK`], then ends (or sends the
/// error that stopped it).
async fn read_documents(
    mut stream: tonic::Streaming<pb::StoredEntity>,
    sequence: u64,
    bulks: tokio::sync::mpsc::Sender<Result<Vec<SearchDocument>>>,
) {
    let mut pending = Vec::with_capacity(REBUILD_BULK);
    while let Some(stored) = stream.next().await {
        match stored {
            Ok(stored) => {
                if let Some(doc) = document(&stored, sequence) {
                    pending.push(doc);
                }
            }
            Err(status) => {
                let _ = bulks.send(Err(status.into())).await;
                return;
            }
        }
        if pending.len() == REBUILD_BULK {
            let bulk = std::mem::replace(&mut pending, Vec::with_capacity(REBUILD_BULK));
            if bulks.send(Ok(bulk)).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = bulks.send(Ok(pending)).await;
    }
}

enum Stop {
    Shutdown,
    Switched,
}

/// A round's documents, read from the store and waiting to be written, with the spans of the
/// traces its changes carry.
struct ReadRound {
    batch: IndexBatch,
    spans: Vec<tracing::Span>,
    /// The round took as many changes as a round may: more were waiting.
    full: bool,
}

/// When the follower compacts the index ([`SearchBackend::compact`]): after at least
/// [`COMPACT_AFTER_CHANGES`] written since the last compaction, once it has caught up with the
/// change feed's head (the end of a large load). A round that is not full is not enough:
/// while a load streams in, rounds end at their deadline with the feed still far ahead, and a
/// compaction at each of those merged the whole index again and again (a cold million's search
/// then trailed the store by 200,000 entities more).
#[derive(Debug, Default)]
struct CompactPolicy {
    /// Changes written since the last compaction.
    written: usize,
}

impl CompactPolicy {
    /// `changes` were written, in a `full` round; answers whether to see if the follower has
    /// caught up, to compact.
    fn written(&mut self, changes: usize, full: bool) -> bool {
        self.written += changes;
        !full && self.written >= COMPACT_AFTER_CHANGES
    }

    fn compacted(&mut self) {
        self.written = 0;
    }
}

/// When the follower refreshes a backend that refreshes on request: after a round that was
/// not full (it has caught up: a push shows at once), after a full one only once
/// [`REFRESH_WHILE_BEHIND`] has passed, and when no round follows a full one within
/// [`MIN_WRITE_INTERVAL`].
#[derive(Debug)]
struct RefreshPolicy {
    on_request: bool,
    refreshed_at: tokio::time::Instant,
    /// Written since the last refresh.
    unseen: bool,
}

impl RefreshPolicy {
    fn new(on_request: bool) -> Self {
        RefreshPolicy {
            on_request,
            refreshed_at: tokio::time::Instant::now(),
            unseen: false,
        }
    }

    /// A round was written; answers whether to refresh now.
    fn written(&mut self, full: bool) -> bool {
        self.unseen = self.on_request;
        self.unseen && (!full || self.refreshed_at.elapsed() >= REFRESH_WHILE_BEHIND)
    }

    fn refreshed(&mut self) {
        self.refreshed_at = tokio::time::Instant::now();
        self.unseen = false;
    }

    /// Until when to wait for the next round before refreshing what is unseen.
    fn idle_deadline(&self) -> Option<tokio::time::Instant> {
        self.unseen
            .then(|| tokio::time::Instant::now() + MIN_WRITE_INTERVAL)
    }
}

/// The search document of a stored entity.
pub fn document(stored: &pb::StoredEntity, sequence: u64) -> Option<SearchDocument> {
    let entity = stored.entity.as_ref()?;
    let body: serde_json::Value = serde_json::from_slice(&entity.body_json).ok()?;
    SearchDocument::from_entity(&body, &entity.etag, sequence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_caught_up_round_is_shown_at_once_and_full_ones_every_few_seconds() {
        let mut policy = RefreshPolicy::new(true);
        assert_eq!(
            policy.idle_deadline(),
            None,
            "nothing written, nothing to show"
        );
        assert!(
            policy.written(false),
            "a round that is not full is refreshed"
        );
        policy.refreshed();
        assert!(
            !policy.written(true),
            "a full round right after a refresh waits"
        );
        let deadline = policy
            .idle_deadline()
            .expect("a full round waits for the next");
        assert_eq!(deadline, tokio::time::Instant::now() + MIN_WRITE_INTERVAL);
        tokio::time::advance(REFRESH_WHILE_BEHIND).await;
        assert!(policy.written(true), "behind for long enough");
        policy.refreshed();
        assert_eq!(policy.idle_deadline(), None);
    }

    #[test]
    fn the_index_is_compacted_after_a_large_load() {
        let mut policy = CompactPolicy::default();
        assert!(!policy.written(3, false), "a push alone");
        assert!(
            !policy.written(COMPACT_AFTER_CHANGES, true),
            "not while rounds are full"
        );
        assert!(
            policy.written(10, false),
            "a round that is not full, after a load"
        );
        assert!(
            policy.written(0, false),
            "until compacted (the feed may be ahead)"
        );
        policy.compacted();
        assert!(!policy.written(10, false), "a push after the compaction");
        assert!(!policy.written(COMPACT_AFTER_CHANGES - 20, false));
        assert!(policy.written(10, false), "small rounds add up too");
    }

    #[tokio::test]
    async fn a_backend_that_shows_its_writes_is_never_refreshed() {
        let mut policy = RefreshPolicy::new(false);
        assert!(!policy.written(false));
        assert!(!policy.written(true));
        assert_eq!(policy.idle_deadline(), None);
    }
}
