//! search: finds catalog entities by a few typed letters, at a million entities.
//!
//! One [`SearchBackend`] trait with two implementations, [`opensearch::OpenSearchBackend`]
//! (production) and [`tantivy::TantivyBackend`] (a local folder, embedded). The
//! [`indexer`] keeps the serving index in step with catalog-store's change feed and rebuilds
//! it from the store with no downtime; [`server`] serves `SearchService` over gRPC.

pub mod document;
pub mod highlight;
pub mod indexer;
pub mod opensearch;
pub mod plan;
pub mod query;
pub mod server;
pub mod tantivy;

use async_trait::async_trait;

pub use document::SearchDocument;
pub use query::{FacetField, Filters, Hit, SearchQuery, SearchResults, Suggestion};

/// What went wrong in search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The request was malformed; the message says how.
    #[error("{0}")]
    InvalidArgument(String),
    /// The index (tantivy) or the cluster (OpenSearch) failed.
    #[error("search index: {0}")]
    Index(String),
    /// catalog-store could not be read.
    #[error("catalog-store: {0}")]
    Store(#[from] tonic::Status),
    #[error("connecting to catalog-store: {0}")]
    Connect(#[from] tonic::transport::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<SearchError> for tonic::Status {
    fn from(error: SearchError) -> tonic::Status {
        match error {
            SearchError::InvalidArgument(message) => tonic::Status::invalid_argument(message),
            SearchError::Store(status) => tonic::Status::unavailable(status.message().to_owned()),
            other => tonic::Status::internal(other.to_string()),
        }
    }
}

pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// Writes for one index: removals by ref, then upserts (replacing any document with the same
/// ref). With a `checkpoint`, the write is made durable together with that change feed
/// sequence, which [`SearchBackend::checkpoint`] then returns.
#[derive(Debug, Clone, Default)]
pub struct IndexBatch {
    pub upserts: Vec<SearchDocument>,
    pub removals: Vec<String>,
    pub checkpoint: Option<u64>,
}

/// A search index that can be written in bulk, searched, and replaced by a rebuilt one.
///
/// A backend holds one *serving* index (an alias on OpenSearch, a folder named in `CURRENT`
/// on tantivy) and may hold one more being built. Writes are idempotent: applying a batch
/// twice leaves the same index.
#[async_trait]
pub trait SearchBackend: Send + Sync + std::fmt::Debug {
    /// `opensearch` or `tantivy`.
    fn backend_name(&self) -> &'static str;
    /// The index that serves queries.
    async fn serving(&self) -> Result<String>;
    /// Creates a new empty index that does not serve yet.
    async fn create_index(&self) -> Result<String>;
    /// Applies `batch` to `index`.
    async fn write(&self, index: &str, batch: IndexBatch) -> Result<()>;
    /// The change feed sequence `index` was last made durable at (0 when new).
    async fn checkpoint(&self, index: &str) -> Result<u64>;
    /// Documents in `index` (as of its last refresh).
    async fn count(&self, index: &str) -> Result<u64>;
    /// Makes everything written to `index` visible to searches.
    async fn refresh(&self, index: &str) -> Result<()>;
    /// Whether writes become visible only at [`Self::refresh`] (OpenSearch, whose indexes
    /// the indexer refreshes itself), not at [`Self::write`] (tantivy commits each write).
    fn refreshes_on_request(&self) -> bool {
        false
    }
    /// Serves `index` from now on, atomically, and deletes the index served before.
    async fn switch_to(&self, index: &str) -> Result<()>;
    /// Deletes an index that is not serving (a rebuild that failed).
    async fn drop_index(&self, index: &str) -> Result<()>;
    /// After a large load into `index`: merges its segments into fewer, in the background,
    /// where the backend leaves that to its caller (tantivy). OpenSearch merges by itself.
    async fn compact(&self, _index: &str) -> Result<()> {
        Ok(())
    }
    async fn search(&self, query: &SearchQuery) -> Result<SearchResults>;
    /// Entities whose name or title (compacted) starts with `prefix`, whole names first.
    async fn suggest(&self, prefix: &str, limit: usize) -> Result<Vec<Suggestion>>;
}

/// A name for a new physical index: `prefix-<milliseconds>-<n>`, lower case as OpenSearch
/// requires, and unique within the process even when two are made in one millisecond.
pub(crate) fn new_index_name(prefix: &str) -> String {
    static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or_default();
    let made = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}-{millis}-{made}")
}
