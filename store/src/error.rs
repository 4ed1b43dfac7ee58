use crate::model::StreamId;

/// Everything an append or read can fail with. Callers match on the first four; the rest are
/// infrastructure failures that surface as 503/500 and a log line.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer got there first: reload, decide again (if safe), append again.
    #[error("stream {stream} changed concurrently (expected version {expected})")]
    Conflict { stream: StreamId, expected: String },
    /// The idempotency key was already used for a different request.
    #[error("idempotency key `{key}` was already used for a different request")]
    IdempotencyKeyReused { key: String },
    /// An event id that is already stored.
    #[error("event {0} is already stored")]
    DuplicateEvent(uuid::Uuid),
    /// The athlete's data key was destroyed; nothing more can be written for them.
    #[error("athlete {0} was erased")]
    AthleteErased(uuid::Uuid),
    /// A request the store refuses before touching the database (empty append, personal event
    /// without an athlete).
    #[error("{0}")]
    Invalid(String),
    #[error("encryption: {0}")]
    Crypto(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is malformed: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Conflict { .. })
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
