//! Turning events into stored bytes and back, shared by both backends.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::crypto::{DataKey, MasterKey};
use crate::error::{StoreError, StoreResult};
use crate::model::{
    AppendOutcome, AppendRequest, ExpectedVersion, Idempotency, LogCursor, Metadata, NewEvent,
    Payload, RecordedEvent, StreamId,
};

/// An event row as both backends select it: the event joined with its athlete's wrapped key.
pub(crate) struct RawEvent {
    pub position: i64,
    pub tx: i64,
    pub event_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub stream_version: i64,
    pub event_type: String,
    pub event_version: String,
    pub athlete_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
    pub metadata: serde_json::Value,
    pub payload: Vec<u8>,
    pub encrypted: bool,
    /// `None` once the athlete is erased.
    pub wrapped_key: Option<Vec<u8>>,
}

/// The stored form of one event's payload.
pub(crate) struct Sealed {
    pub bytes: Vec<u8>,
    pub encrypted: bool,
}

/// Checks an append before any I/O, so a refused request touches nothing.
pub(crate) fn check_append(events: &[NewEvent], metadata: &Metadata) -> StoreResult<()> {
    if events.is_empty() {
        return Err(StoreError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    if events.iter().any(|e| e.personal) && metadata.athlete_id.is_none() {
        return Err(StoreError::Invalid(
            "a personal event needs metadata.athlete_id (it picks the encryption key)".into(),
        ));
    }
    Ok(())
}

pub(crate) fn seal_events(events: &[NewEvent], key: Option<&DataKey>) -> StoreResult<Vec<Sealed>> {
    events
        .iter()
        .map(|e| {
            let json = serde_json::to_vec(&e.payload)
                .map_err(|err| StoreError::Invalid(format!("payload is not JSON: {err}")))?;
            match (e.personal, key) {
                (true, Some(key)) => Ok(Sealed {
                    bytes: key.seal(&json, &e.event_id)?,
                    encrypted: true,
                }),
                (true, None) => Err(StoreError::Crypto(
                    "no data key for a personal event".into(),
                )),
                (false, _) => Ok(Sealed {
                    bytes: json,
                    encrypted: false,
                }),
            }
        })
        .collect()
}

/// Decodes a batch, unwrapping each athlete's data key once per batch.
pub(crate) fn decode(rows: Vec<RawEvent>, master: &MasterKey) -> StoreResult<Vec<RecordedEvent>> {
    let mut keys: HashMap<Uuid, DataKey> = HashMap::new();
    rows.into_iter()
        .map(|row| {
            let payload = if !row.encrypted {
                Payload::Json(serde_json::from_slice(&row.payload).map_err(|e| {
                    StoreError::Corrupt(format!("event {}: payload: {e}", row.event_id))
                })?)
            } else {
                match (row.athlete_id, &row.wrapped_key) {
                    (Some(athlete), Some(wrapped)) => {
                        let key = match keys.get(&athlete) {
                            Some(k) => k.clone(),
                            None => {
                                let k = master.unwrap_data_key(wrapped)?;
                                keys.insert(athlete, k.clone());
                                k
                            }
                        };
                        let json = key.open(&row.payload, &row.event_id)?;
                        Payload::Json(serde_json::from_slice(&json).map_err(|e| {
                            StoreError::Corrupt(format!("event {}: payload: {e}", row.event_id))
                        })?)
                    }
                    _ => Payload::Erased,
                }
            };
            let metadata: Metadata = serde_json::from_value(row.metadata).map_err(|e| {
                StoreError::Corrupt(format!("event {}: metadata: {e}", row.event_id))
            })?;
            Ok(RecordedEvent {
                position: row.position,
                cursor: LogCursor {
                    tx: row.tx,
                    position: row.position,
                },
                event_id: row.event_id,
                stream: StreamId::new(row.stream_type, row.stream_id),
                stream_version: u64::try_from(row.stream_version)
                    .map_err(|_| StoreError::Corrupt("negative stream version".into()))?,
                event_type: row.event_type,
                event_version: row.event_version,
                recorded_at: row.recorded_at,
                metadata,
                payload,
            })
        })
        .collect()
}

/// An idempotency record found again: its outcome if the request matches, a refusal if not.
pub(crate) fn stored_outcome(
    idem: &Idempotency,
    request_hash: String,
    outcome: serde_json::Value,
) -> StoreResult<AppendOutcome> {
    if request_hash != idem.request_hash {
        return Err(StoreError::IdempotencyKeyReused {
            key: idem.key.clone(),
        });
    }
    let mut outcome: AppendOutcome = serde_json::from_value(outcome)
        .map_err(|e| StoreError::Corrupt(format!("idempotency outcome: {e}")))?;
    outcome.replayed = true;
    Ok(outcome)
}

/// Why an append inside a transaction stopped.
pub(crate) enum AppendFailure {
    Store(StoreError),
    /// Another append holds this idempotency key: answer with its stored outcome.
    IdempotencyTaken,
}

impl<E: Into<StoreError>> From<E> for AppendFailure {
    fn from(e: E) -> Self {
        AppendFailure::Store(e.into())
    }
}

/// The typed error for an append whose stream is not at the expected version.
pub(crate) fn conflict(req: &AppendRequest) -> StoreError {
    StoreError::Conflict {
        stream: req.stream.clone(),
        expected: match req.expected {
            ExpectedVersion::NoStream => "none".into(),
            ExpectedVersion::Exact(v) => v.to_string(),
            ExpectedVersion::Any => "any".into(),
        },
    }
}
