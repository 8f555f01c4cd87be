//! Errors of the store, each mapping to one gRPC status.

use thiserror::Error;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum StoreError {
    /// The request is malformed: a bad filter, ref, cursor or page size.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// From the SQLite connections of `sqlite_reads`.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored data that does not decode (a bug or a hand-edited database).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The process is stopping: work it started for a request was cancelled.
    #[error("{0}")]
    Stopping(String),
}

impl From<cadastre_query::QueryError> for StoreError {
    fn from(error: cadastre_query::QueryError) -> Self {
        StoreError::InvalidArgument(error.to_string())
    }
}

impl From<StoreError> for tonic::Status {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::InvalidArgument(message) => tonic::Status::invalid_argument(message),
            StoreError::NotFound(message) => tonic::Status::not_found(message),
            StoreError::AlreadyExists(message) => tonic::Status::already_exists(message),
            StoreError::Database(error) => {
                tracing::error!(%error, "database error");
                tonic::Status::unavailable("the catalog database is unavailable")
            }
            StoreError::Sqlite(error) => {
                tracing::error!(%error, "database error");
                tonic::Status::unavailable("the catalog database is unavailable")
            }
            StoreError::Stopping(message) => tonic::Status::unavailable(message),
            StoreError::Corrupt(message) => {
                tracing::error!(%message, "corrupt stored data");
                tonic::Status::internal("an internal error occurred")
            }
        }
    }
}
