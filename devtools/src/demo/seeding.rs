//! Fast seeding for benchmarks and tests with many athletes.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use commands::CommandError;
use cqrs_es::Aggregate;
use domain::activity::Activity;
use domain::athlete::Athlete;
use domain::journal::{Journal, journal_id};
use uuid::Uuid;

use super::{DemoConfig, PlannedCommand, athlete_id, plan_athlete};

/// Seeds a large plan fast, for benchmarks: every athlete's commands are decided by the real
/// aggregates in memory (the same validation and the same events as the command path), and each
/// stream is then appended in one batch instead of one load and one append per command.
/// Athletes are seeded `concurrency` at a time. Returns the number of events appended.
pub async fn seed_direct(
    store: &store::EventStore,
    config: &DemoConfig,
    concurrency: usize,
    mut progress: impl FnMut(usize, usize),
) -> Result<usize, CommandError> {
    let services = domain::DomainServices::new(std::sync::Arc::new(commands::SystemClock));
    let mut total = 0;
    let mut next = 0;
    while next < config.athletes {
        let batch: Vec<usize> = (next..config.athletes.min(next + concurrency)).collect();
        next += batch.len();
        let tasks: Vec<_> = batch
            .into_iter()
            .map(|index| {
                let (store, services, config) = (store.clone(), services.clone(), *config);
                tokio::spawn(async move { seed_athlete(&store, &services, &config, index).await })
            })
            .collect();
        for task in tasks {
            total += task.await.map_err(|e| {
                CommandError::Store(store::StoreError::Invalid(format!("seeding task: {e}")))
            })??;
        }
        progress(next, config.athletes);
    }
    Ok(total)
}

async fn seed_athlete(
    store: &store::EventStore,
    services: &domain::DomainServices,
    config: &DemoConfig,
    index: usize,
) -> Result<usize, CommandError> {
    let athlete_id = athlete_id(config, index);
    let mut athlete = Athlete::default();
    let mut athlete_events = Vec::new();
    let mut activities: BTreeMap<Uuid, (Activity, Vec<store::NewEvent>)> = BTreeMap::new();
    let mut journals: BTreeMap<NaiveDate, (Journal, Vec<store::NewEvent>)> = BTreeMap::new();
    for planned in plan_athlete(config, index) {
        match planned {
            PlannedCommand::Athlete { command, .. } => {
                athlete_events.extend(decide(&mut athlete, services, command).await?);
            }
            PlannedCommand::Activity {
                activity_id,
                command,
                ..
            } => {
                let (agg, events) = activities.entry(activity_id).or_default();
                events.extend(decide(agg, services, command).await?);
            }
            PlannedCommand::Journal { date, command, .. } => {
                let (agg, events) = journals.entry(date).or_default();
                events.extend(decide(agg, services, command).await?);
            }
        }
    }
    let metadata =
        store::Metadata::new(store::Actor::user(athlete_id, "athlete")).for_athlete(athlete_id);
    let mut streams = vec![(
        store::StreamId::new(Athlete::TYPE, athlete_id.to_string()),
        athlete_events,
    )];
    streams.extend(
        activities.into_iter().map(|(id, (_, events))| {
            (store::StreamId::new(Activity::TYPE, id.to_string()), events)
        }),
    );
    streams.extend(journals.into_iter().map(|(date, (_, events))| {
        (
            store::StreamId::new(Journal::TYPE, journal_id(athlete_id, date)),
            events,
        )
    }));
    let mut appended = 0;
    for (stream, events) in streams.into_iter().filter(|(_, e)| !e.is_empty()) {
        appended += events.len();
        store
            .append(&store::AppendRequest {
                stream,
                expected: store::ExpectedVersion::NoStream,
                events,
                metadata: metadata.clone(),
                idempotency: None,
            })
            .await?;
    }
    Ok(appended)
}

async fn decide<A>(
    aggregate: &mut A,
    services: &domain::DomainServices,
    command: A::Command,
) -> Result<Vec<store::NewEvent>, CommandError>
where
    A: Aggregate<Services = domain::DomainServices, Error = domain::DomainError>,
    A::Event: domain::CataloguedEvent,
{
    let sink = cqrs_es::event_sink::EventSink::default();
    aggregate.handle(command, services, &sink).await?;
    commands::new_events(&sink.collect().await)
}
