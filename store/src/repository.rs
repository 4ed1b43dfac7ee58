//! cqrs-es's `PersistedEventRepository` over our store, so any cqrs-es `Aggregate` can be
//! loaded and committed through `PersistedEventStore` / `CqrsFramework` with the global log,
//! encryption and idempotency underneath.
//!
//! cqrs-es carries metadata as `HashMap<String, String>`; these keys map onto [`Metadata`]:
//! `actor_id`, `actor_role`, `impersonator_id`, `correlation_id`, `causation_id`,
//! `idempotency_key`, `athlete_id`.

use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::Aggregate;
use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use serde_json::Value;
use uuid::Uuid;

use crate::follow::EventLog;
use crate::model::*;
use crate::{EventStore, StoreError};

/// Decides, per event type, whether payloads are personal (encrypted with the athlete's key).
pub type PersonalFn = Arc<dyn Fn(&str) -> bool + Send + Sync>;

#[derive(Clone)]
pub struct Repository {
    store: EventStore,
    personal: PersonalFn,
}

impl Repository {
    pub fn new(store: EventStore, personal: PersonalFn) -> Self {
        Self { store, personal }
    }
}

fn persistence(e: StoreError) -> PersistenceError {
    match e {
        StoreError::Conflict { .. } => PersistenceError::OptimisticLockError,
        StoreError::Database(e) => PersistenceError::ConnectionError(Box::new(e)),
        StoreError::Corrupt(_) => PersistenceError::DeserializationError(Box::new(e)),
        other => PersistenceError::UnknownError(Box::new(other)),
    }
}

fn parse_id(map: &HashMap<String, String>, key: &str) -> Result<Option<Uuid>, PersistenceError> {
    map.get(key)
        .map(|s| {
            Uuid::parse_str(s)
                .map_err(|e| PersistenceError::UnknownError(format!("metadata {key}: {e}").into()))
        })
        .transpose()
}

/// cqrs-es metadata map → our metadata.
pub fn metadata_from_map(map: &HashMap<String, String>) -> Result<Metadata, PersistenceError> {
    Ok(Metadata {
        actor: Actor {
            user_id: parse_id(map, "actor_id")?,
            role: map
                .get("actor_role")
                .cloned()
                .unwrap_or_else(|| "system".into()),
        },
        impersonator_id: parse_id(map, "impersonator_id")?,
        correlation_id: parse_id(map, "correlation_id")?.unwrap_or_else(Uuid::now_v7),
        causation_id: parse_id(map, "causation_id")?,
        idempotency_key: map.get("idempotency_key").cloned(),
        athlete_id: parse_id(map, "athlete_id")?,
    })
}

/// Our metadata → cqrs-es metadata map.
pub fn metadata_to_map(m: &Metadata) -> HashMap<String, String> {
    let mut map = HashMap::new();
    if let Some(id) = m.actor.user_id {
        map.insert("actor_id".into(), id.to_string());
    }
    map.insert("actor_role".into(), m.actor.role.clone());
    map.insert("correlation_id".into(), m.correlation_id.to_string());
    let optional = [
        ("impersonator_id", m.impersonator_id.map(|v| v.to_string())),
        ("causation_id", m.causation_id.map(|v| v.to_string())),
        ("idempotency_key", m.idempotency_key.clone()),
        ("athlete_id", m.athlete_id.map(|v| v.to_string())),
    ];
    for (k, v) in optional {
        if let Some(v) = v {
            map.insert(k.into(), v);
        }
    }
    map
}

fn to_serialized(e: RecordedEvent) -> Result<SerializedEvent, PersistenceError> {
    let payload = match e.payload {
        Payload::Json(v) => v,
        Payload::Erased => {
            return Err(PersistenceError::DeserializationError(
                format!("event {} was erased with its athlete", e.event_id).into(),
            ));
        }
    };
    Ok(SerializedEvent {
        aggregate_id: e.stream.stream_id,
        sequence: e.stream_version as usize,
        aggregate_type: e.stream.stream_type,
        event_type: e.event_type,
        event_version: e.event_version,
        payload,
        metadata: serde_json::to_value(metadata_to_map(&e.metadata))?,
    })
}

impl PersistedEventRepository for Repository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.get_last_events::<A>(aggregate_id, 0).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        self.store
            .read_stream(&stream, last_sequence as u64, None)
            .await
            .map_err(persistence)?
            .into_iter()
            .map(to_serialized)
            .collect()
    }

    /// Streams are kept short by modelling (per activity, per athlete-day), so no snapshots.
    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        if snapshot_update.is_some() {
            return Err(PersistenceError::UnknownError(
                "snapshots are not supported: use PersistedEventStore::new_event_store".into(),
            ));
        }
        let Some(first) = events.first() else {
            return Ok(());
        };
        let map: HashMap<String, String> = serde_json::from_value(first.metadata.clone())?;
        let metadata = metadata_from_map(&map)?;
        let req = AppendRequest {
            stream: StreamId::new(&first.aggregate_type, &first.aggregate_id),
            expected: ExpectedVersion::from_loaded(first.sequence as u64 - 1),
            events: events
                .iter()
                .map(|e| NewEvent {
                    event_id: Uuid::now_v7(),
                    event_type: e.event_type.clone(),
                    event_version: e.event_version.clone(),
                    payload: e.payload.clone(),
                    personal: metadata.athlete_id.is_some() && (self.personal)(&e.event_type),
                })
                .collect(),
            metadata,
            idempotency: None,
        };
        self.store.append(&req).await.map_err(persistence)?;
        Ok(())
    }

    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        let events = self.get_events::<A>(aggregate_id).await?;
        let (mut feed, stream) = ReplayStream::new(events.len().max(1));
        for e in events {
            feed.push(Ok(e)).await?;
        }
        Ok(stream)
    }

    /// Every event of the aggregate type, in global log order. Errors reach the consumer as
    /// errors (never as a silently shortened replay).
    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        let (mut feed, stream) = ReplayStream::new(256);
        let store = self.store.clone();
        tokio::spawn(async move {
            let mut cursor = LogCursor::START;
            loop {
                let batch = match store.read_log(cursor, 500).await {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = feed.push(Err(persistence(e))).await;
                        return;
                    }
                };
                let Some(last) = batch.last() else { return };
                cursor = last.cursor;
                for e in batch
                    .into_iter()
                    .filter(|e| e.stream.stream_type == A::TYPE)
                {
                    if feed.push(to_serialized(e)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(stream)
    }
}
