//! The store's vocabulary: what an append carries in, what a read hands back.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A stream is one aggregate instance: `athlete/<uuid>`, `activity/<uuid>`, `journal/<uuid>:<date>`.
/// The type doubles as cqrs-es's `Aggregate::TYPE`, the id as its `aggregate_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamId {
    pub stream_type: String,
    pub stream_id: String,
}

impl StreamId {
    pub fn new(stream_type: impl Into<String>, stream_id: impl Into<String>) -> Self {
        Self {
            stream_type: stream_type.into(),
            stream_id: stream_id.into(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

impl std::str::FromStr for StreamId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('/') {
            Some((t, id)) if !t.is_empty() && !id.is_empty() => Ok(Self::new(t, id)),
            _ => Err(format!(
                "stream ids look like `<type>/<id>` (e.g. `athlete/7f0c…`), got `{s}`"
            )),
        }
    }
}

/// What the writer believes the stream's version to be. Versions count from 1; 0 means "no stream".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
    /// Append after whatever is there. Only for streams whose invariants do not depend on order.
    Any,
}

impl ExpectedVersion {
    pub fn from_loaded(version: u64) -> Self {
        if version == 0 {
            Self::NoStream
        } else {
            Self::Exact(version)
        }
    }
}

/// Who caused an event. Roles are kept as strings here because the store serves every aggregate
/// and must read events written by future roles without a schema change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `None` for the system itself (jobs, migrations, the demo seeder).
    pub user_id: Option<Uuid>,
    pub role: String,
}

impl Actor {
    pub fn system() -> Self {
        Self {
            user_id: None,
            role: "system".into(),
        }
    }

    pub fn user(user_id: Uuid, role: impl Into<String>) -> Self {
        Self {
            user_id: Some(user_id),
            role: role.into(),
        }
    }
}

/// Metadata travels in clear beside every event, so it holds ids and codes only, never personal
/// data: it must stay readable for audit after the athlete's payloads are shredded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub actor: Actor,
    /// The admin acting as `actor`, while impersonating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub impersonator_id: Option<Uuid>,
    /// Shared by every event one request or job produced, across streams.
    pub correlation_id: Uuid,
    /// The event or command that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The athlete whose data this is; decides which data key encrypts the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub athlete_id: Option<Uuid>,
}

impl Metadata {
    pub fn new(actor: Actor) -> Self {
        Self {
            actor,
            impersonator_id: None,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
            athlete_id: None,
        }
    }

    pub fn for_athlete(mut self, athlete_id: Uuid) -> Self {
        self.athlete_id = Some(athlete_id);
        self
    }
}

/// One event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Unique across the store; a second append of the same id is refused.
    pub event_id: Uuid,
    pub event_type: String,
    pub event_version: String,
    pub payload: serde_json::Value,
    /// Personal payloads are encrypted with the athlete's data key (needs `Metadata::athlete_id`).
    pub personal: bool,
}

impl NewEvent {
    pub fn new(
        event_type: impl Into<String>,
        event_version: impl Into<String>,
        payload: serde_json::Value,
        personal: bool,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            event_version: event_version.into(),
            payload,
            personal,
        }
    }
}

/// A command's idempotency key, scoped to the caller, with a hash of the request it answered:
/// the same key with a different request is a client bug and is refused, not silently replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub scope: String,
    pub key: String,
    pub request_hash: String,
}

/// Everything one append writes, in one transaction.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub metadata: Metadata,
    pub idempotency: Option<Idempotency>,
}

/// Where an event sits in the global log. The log is ordered by `(tx, position)`: on PostgreSQL
/// `tx` is the writing transaction's id, which is what makes reading gap-safe (see
/// docs/architecture.md); on SQLite writers are serialised, so `tx` equals `position`.
/// `position` alone identifies an event and is what operators type.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LogCursor {
    pub tx: i64,
    pub position: i64,
}

impl LogCursor {
    /// Before the first event.
    pub const START: LogCursor = LogCursor { tx: 0, position: 0 };
}

impl fmt::Display for LogCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.tx, self.position)
    }
}

/// What an acknowledged append wrote. Stored with an idempotency key, so a repeated command
/// gets exactly this back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub stream_version: u64,
    pub event_ids: Vec<Uuid>,
    pub positions: Vec<i64>,
    /// The last event's place in the log; read models that reached it reflect this append.
    pub cursor: LogCursor,
    /// True when this outcome was replayed from an earlier append with the same idempotency key.
    #[serde(skip)]
    pub replayed: bool,
}

/// A payload as a reader sees it: erased once the athlete's data key is destroyed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", content = "data", rename_all = "snake_case")]
pub enum Payload {
    Json(serde_json::Value),
    Erased,
}

impl Payload {
    pub fn json(&self) -> Option<&serde_json::Value> {
        match self {
            Payload::Json(v) => Some(v),
            Payload::Erased => None,
        }
    }
}

/// A committed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: i64,
    pub cursor: LogCursor,
    pub event_id: Uuid,
    pub stream: StreamId,
    pub stream_version: u64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    pub metadata: Metadata,
    pub payload: Payload,
}

/// A point in history for time travel: everything up to and including a log position, or
/// everything recorded at or before an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Position(i64),
    Time(DateTime<Utc>),
}

impl std::str::FromStr for AsOf {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(p) = s.parse::<i64>() {
            return if p >= 0 {
                Ok(AsOf::Position(p))
            } else {
                Err(format!("a log position is 0 or more, got {p}"))
            };
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| AsOf::Time(t.with_timezone(&Utc)))
            .map_err(|_| {
                format!("--as-of takes a log position (e.g. 1200) or an RFC 3339 time (e.g. 2026-11-27T08:00:00Z), got `{s}`")
            })
    }
}

/// What `/health` and `stridelog migrate` report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreInfo {
    pub backend: &'static str,
    /// The newest applied migration.
    pub schema_version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_parse_and_print() {
        let s: StreamId = "journal/5b1d:2026-11-27".parse().unwrap();
        assert_eq!(s, StreamId::new("journal", "5b1d:2026-11-27"));
        assert_eq!(s.to_string(), "journal/5b1d:2026-11-27");
        assert!("nostream".parse::<StreamId>().is_err());
        assert!("/x".parse::<StreamId>().is_err());
    }

    #[test]
    fn as_of_takes_positions_and_times() {
        assert_eq!("1200".parse::<AsOf>().unwrap(), AsOf::Position(1200));
        let t = "2026-11-27T08:00:00+01:00".parse::<AsOf>().unwrap();
        assert_eq!(
            t,
            AsOf::Time("2026-11-27T07:00:00Z".parse::<DateTime<Utc>>().unwrap())
        );
        assert!("-3".parse::<AsOf>().is_err());
        assert!("yesterday".parse::<AsOf>().is_err());
    }

    #[test]
    fn cursors_order_by_transaction_then_position() {
        let a = LogCursor {
            tx: 10,
            position: 7,
        };
        let b = LogCursor {
            tx: 11,
            position: 3,
        };
        assert!(a < b);
        assert!(LogCursor::START < a);
    }
}
