use std::collections::HashMap;
use std::sync::Arc;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use domain::{CataloguedEvent, DomainError, DomainServices};
use serde::Serialize;
use sha2::{Digest, Sha256};
use store::{
    Actor, AppendOutcome, AppendRequest, EventStore, ExpectedVersion, Idempotency, Metadata,
    NewEvent, Payload, StoreError, StreamId,
};
use uuid::Uuid;

/// The wall clock, for production.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl domain::Clock for SystemClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// Who is acting and on whose data. Built by the API from the verified token (never from a
/// request body), by the CLI for operators, or by jobs as the system.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub actor: Actor,
    pub impersonator_id: Option<Uuid>,
    /// The athlete whose data the command touches: picks the encryption key and the audit trail.
    pub athlete_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

impl CommandContext {
    /// An athlete acting on their own data.
    pub fn athlete(athlete_id: Uuid) -> Self {
        Self {
            actor: Actor::user(athlete_id, "athlete"),
            impersonator_id: None,
            athlete_id,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
        }
    }

    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            actor: self.actor.clone(),
            impersonator_id: self.impersonator_id,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            idempotency_key: self.idempotency_key.clone(),
            athlete_id: Some(self.athlete_id),
        }
    }
}

/// Why a command did not append.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Refused by validation or a domain rule; the message is for the caller.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Someone else changed the aggregate between load and append.
    #[error("the {aggregate} changed while this command was decided; reload and try again")]
    Conflict { aggregate: &'static str },
    #[error("this athlete's data was erased")]
    Erased,
    #[error("idempotency key `{0}` was already used for a different request")]
    IdempotencyKeyReused(String),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AthleteErased(_) => CommandError::Erased,
            StoreError::IdempotencyKeyReused { key } => CommandError::IdempotencyKeyReused(key),
            other => CommandError::Store(other),
        }
    }
}

/// What a handled command did.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed {
    /// `None` when the aggregate decided nothing needed to change (an idempotent no-op).
    pub outcome: Option<AppendOutcome>,
}

impl Executed {
    pub fn replayed(&self) -> bool {
        self.outcome.as_ref().is_some_and(|o| o.replayed)
    }
}

/// How many times a retry-safe command is decided before a conflict is reported. Partial
/// updates (`PATCH`) are merge commands sent here, and a burst of them on one stream (tested:
/// 100 at once on one athlete, api/tests/patch.rs) must all land. Within one process they take
/// turns per stream (see [`CommandBus::turn`]); across processes (several `serve`s) they
/// conflict, so the budget is generous and the retries back off (see [`backoff`]).
const MAX_ATTEMPTS: usize = 40;

/// The pause before deciding again after the `attempt`-th conflict: a random time below
/// 2^attempt ms, capped at 64 ms. Without it, writers that lost together reload together and
/// collide again; spreading them lets each round commit several of them in turn.
fn backoff(attempt: usize) -> std::time::Duration {
    let ceiling_ms = 1u64 << attempt.clamp(1, 6);
    let jitter_us = rand::random::<u64>() % (ceiling_ms * 1000);
    std::time::Duration::from_micros(jitter_us)
}

/// Per stream, the turn of retried commands in this process.
type Turns = Arc<std::sync::Mutex<HashMap<StreamId, Arc<tokio::sync::Mutex<()>>>>>;

/// Executes commands against the store. Cheap to clone.
#[derive(Clone)]
pub struct CommandBus {
    store: EventStore,
    services: DomainServices,
    upcasters: Arc<Vec<Box<dyn EventUpcaster>>>,
    turns: Turns,
}

impl CommandBus {
    pub fn new(
        store: EventStore,
        services: DomainServices,
        upcasters: Vec<Box<dyn EventUpcaster>>,
    ) -> Self {
        Self {
            store,
            services,
            upcasters: Arc::new(upcasters),
            turns: Turns::default(),
        }
    }

    /// Waits for this process's turn on `stream`. Retried commands on one stream would
    /// otherwise all load the same version, all but one conflict, and all reload: a burst of n
    /// costs about n^2/2 loads and holds that many database connections. Taking turns, each
    /// loads once and appends once. Plain `execute` does not take turns: it reports conflicts.
    async fn turn(&self, stream: &StreamId) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut turns = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            // Forget streams nobody holds or waits on: the map stays as small as the streams
            // with commands in flight.
            turns.retain(|_, l| Arc::strong_count(l) > 1);
            turns.entry(stream.clone()).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Loads, decides, appends once. A concurrent change is reported as
    /// [`CommandError::Conflict`]; use this for commands whose decision the caller must see
    /// made against the state they saw.
    pub async fn execute<A>(
        &self,
        ctx: &CommandContext,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<Executed, CommandError>
    where
        A: Aggregate<Services = DomainServices, Error = DomainError>,
        A::Event: CataloguedEvent,
        A::Command: Serialize + Clone,
    {
        self.run::<A>(ctx, aggregate_id, command, 1).await
    }

    /// Like [`CommandBus::execute`], but on a conflict reloads and decides again (a few times).
    /// Only for commands that are safe to re-decide on newer state, such as logging a check-in.
    pub async fn execute_with_retry<A>(
        &self,
        ctx: &CommandContext,
        aggregate_id: &str,
        command: A::Command,
    ) -> Result<Executed, CommandError>
    where
        A: Aggregate<Services = DomainServices, Error = DomainError>,
        A::Event: CataloguedEvent,
        A::Command: Serialize + Clone,
    {
        self.run::<A>(ctx, aggregate_id, command, MAX_ATTEMPTS)
            .await
    }

    async fn run<A>(
        &self,
        ctx: &CommandContext,
        aggregate_id: &str,
        command: A::Command,
        attempts: usize,
    ) -> Result<Executed, CommandError>
    where
        A: Aggregate<Services = DomainServices, Error = DomainError>,
        A::Event: CataloguedEvent,
        A::Command: Serialize + Clone,
    {
        let stream = StreamId::new(A::TYPE, aggregate_id);
        let idempotency = match &ctx.idempotency_key {
            Some(key) => {
                let idem = Idempotency {
                    scope: ctx.actor.user_id.unwrap_or(ctx.athlete_id).to_string(),
                    key: key.clone(),
                    request_hash: request_hash(&stream, &command)?,
                };
                if let Some(outcome) = self.store.find_idempotent(&idem).await? {
                    return Ok(Executed {
                        outcome: Some(outcome),
                    });
                }
                Some(idem)
            }
            None => None,
        };

        let _turn = match attempts {
            1 => None,
            _ => Some(self.turn(&stream).await),
        };
        for attempt in 1..=attempts {
            let (mut aggregate, version) = self.load::<A>(&stream).await?;
            let sink = EventSink::default();
            aggregate
                .handle(command.clone(), &self.services, &sink)
                .await?;
            let events = sink.collect().await;
            if events.is_empty() {
                return Ok(Executed { outcome: None });
            }
            if crate::scope::dry_run() {
                crate::scope::record(events.iter().map(cqrs_es::DomainEvent::event_type));
                return Ok(Executed { outcome: None });
            }
            let erasure = events.iter().any(|e| e.is_erasure());
            let req = AppendRequest {
                stream: stream.clone(),
                expected: ExpectedVersion::from_loaded(version),
                events: new_events(&events)?,
                metadata: ctx.metadata(),
                idempotency: idempotency.clone(),
            };
            let appended = if erasure {
                self.store.erase_athlete(ctx.athlete_id, &req).await
            } else {
                self.store.append(&req).await
            };
            match appended {
                Ok(outcome) => {
                    crate::scope::record(events.iter().map(cqrs_es::DomainEvent::event_type));
                    return Ok(Executed {
                        outcome: Some(outcome),
                    });
                }
                Err(e) if e.is_conflict() && attempt < attempts => {
                    tracing::debug!(stream = %stream, attempt, "conflict; deciding again");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(e) if e.is_conflict() => {
                    return Err(CommandError::Conflict { aggregate: A::TYPE });
                }
                Err(e) => return Err(e.into()),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Whether `activity_id` is a live activity of `athlete_id`, read from its own stream (not a
    /// read model, so an activity recorded a moment ago counts). Someone else's activity, a
    /// deleted one and an erased one all answer `false`, like an unknown id.
    pub async fn activity_is_live_of(
        &self,
        athlete_id: Uuid,
        activity_id: Uuid,
    ) -> Result<bool, CommandError> {
        let stream = StreamId::new(
            <domain::activity::Activity as Aggregate>::TYPE,
            activity_id.to_string(),
        );
        match self.load::<domain::activity::Activity>(&stream).await {
            Ok((activity, _)) => Ok(activity.is_live_of(athlete_id)),
            Err(CommandError::Erased) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Rebuilds the aggregate from its stream (short by design: one activity, one day), through
    /// the upcasters so old event versions load as current ones.
    pub async fn load<A>(&self, stream: &StreamId) -> Result<(A, u64), CommandError>
    where
        A: Aggregate,
    {
        let mut aggregate = A::default();
        let mut version = 0;
        for recorded in self.store.read_stream(stream, 0, None).await? {
            let Payload::Json(payload) = recorded.payload else {
                return Err(CommandError::Erased);
            };
            let mut serialized = SerializedEvent::new(
                recorded.stream.stream_id,
                recorded.stream_version as usize,
                recorded.stream.stream_type,
                recorded.event_type,
                recorded.event_version,
                payload,
                serde_json::Value::Null,
            );
            for upcaster in self.upcasters.iter() {
                if upcaster.can_upcast(&serialized.event_type, &serialized.event_version) {
                    serialized = upcaster.upcast(serialized);
                }
            }
            let event: A::Event = serde_json::from_value(serialized.payload).map_err(|e| {
                CommandError::Store(StoreError::Corrupt(format!(
                    "{} v{} in {stream}: {e}",
                    serialized.event_type, serialized.event_version
                )))
            })?;
            aggregate.apply(event);
            version = recorded.stream_version;
        }
        Ok((aggregate, version))
    }
}

/// Domain events as the store takes them: type, version, JSON payload, personal or not.
pub fn new_events<E: CataloguedEvent>(events: &[E]) -> Result<Vec<NewEvent>, CommandError> {
    events
        .iter()
        .map(|e| {
            Ok(NewEvent::new(
                e.event_type(),
                e.event_version(),
                serde_json::to_value(e)
                    .map_err(|err| CommandError::Store(StoreError::Invalid(err.to_string())))?,
                e.is_personal(),
            ))
        })
        .collect()
}

/// The identity of a request for idempotency: the same key must come with the same command.
fn request_hash<C: Serialize>(stream: &StreamId, command: &C) -> Result<String, CommandError> {
    let body = serde_json::to_vec(command)
        .map_err(|e| CommandError::Store(StoreError::Invalid(e.to_string())))?;
    let mut hasher = Sha256::new();
    hasher.update(stream.to_string().as_bytes());
    hasher.update([0]);
    hasher.update(&body);
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
