//! `stridelog bench append`: append throughput and latency against plain INSERT + COMMIT, then
//! batch appends, then command latency for an athlete with years of history against a new one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{TimeZone, Utc};
use commands::{CommandBus, CommandContext};
use cqrs_es::DomainEvent;
use domain::CataloguedEvent;
use domain::DomainServices;
use domain::activity::{
    Activity, ActivityCommand, ActivityEvent, ActivityRecorded, ActivitySource, RecordActivity,
    Sport,
};
use serde_json::json;
use sqlx::PgPool;
use store::{
    Actor, AppendRequest, EventStore, ExpectedVersion, MasterKey, Metadata, NewEvent, StoreOptions,
    StreamId,
};
use uuid::Uuid;

use super::{ScratchDb, progress, report, require_postgres, round, round3};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Concurrent writers to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    writers: Vec<usize>,
    /// Commands each writer issues per measurement.
    #[arg(long, default_value_t = 300)]
    commands_per_writer: usize,
    /// Years of history for the long-history measurement.
    #[arg(long, default_value_t = 10)]
    history_years: u32,
    /// One JSON object per line on stdout.
    #[arg(long)]
    json: bool,
}

/// Needs PostgreSQL: measures on a scratch database created on the server at `store_url`.
pub async fn run(store_url: &str, redact: fn(&str) -> String, args: Args) -> anyhow::Result<()> {
    require_postgres(store_url, "append")?;
    if args.writers.is_empty() || args.writers.contains(&0) || args.commands_per_writer == 0 {
        bail!("--writers and --commands-per-writer must be positive");
    }
    let scratch = ScratchDb::create(store_url, redact).await?;
    let result = measure(&scratch.url, &args).await;
    scratch.drop_db().await;
    result
}

async fn measure(url: &str, args: &Args) -> anyhow::Result<()> {
    let max_writers = args.writers.iter().copied().max().unwrap_or(1);
    let store = EventStore::connect(
        url,
        MasterKey::generate(),
        StoreOptions {
            max_connections: (max_writers as u32) + 4,
        },
    )
    .await?;
    store.migrate().await?;
    let pool = store.pg_pool().expect("postgres").clone();
    sqlx::query("CREATE TABLE bench_baseline (LIKE events INCLUDING DEFAULTS INCLUDING IDENTITY)")
        .execute(&pool)
        .await?;
    let bus = CommandBus::new(
        store.clone(),
        DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );

    progress("warming up");
    run_commands(&bus, 4, 25).await?;
    run_baseline(&pool, 4, 25, 1).await?;
    single_event_commands(&bus, &pool, args).await?;
    batch_appends(&store, &pool, max_writers, args).await?;
    long_history(&store, &bus, args).await
}

async fn single_event_commands(bus: &CommandBus, pool: &PgPool, args: &Args) -> anyhow::Result<()> {
    let per_writer = args.commands_per_writer;
    for &w in &args.writers {
        progress(&format!("{w} writer(s): plain INSERT + COMMIT baseline"));
        let base = run_baseline(pool, w, per_writer, 1).await?;
        progress(&format!("{w} writer(s): single-event commands"));
        let cmd = run_commands(bus, w, per_writer).await?;
        report(
            args.json,
            json!({
                "bench": "append",
                "writers": w,
                "events_per_s": round(cmd.events_per_s()),
                "baseline_events_per_s": round(base.events_per_s()),
                "ratio": round3(cmd.events_per_s() / base.events_per_s()),
                "p50_ms": round3(cmd.percentile_ms(50.0)),
                "p99_ms": round3(cmd.percentile_ms(99.0)),
                "baseline_p50_ms": round3(base.percentile_ms(50.0)),
                "baseline_p99_ms": round3(base.percentile_ms(99.0)),
            }),
        );
    }
    Ok(())
}

async fn batch_appends(
    store: &EventStore,
    pool: &PgPool,
    max_writers: usize,
    args: &Args,
) -> anyhow::Result<()> {
    let batch_writers = 4.min(max_writers);
    let batches = (args.commands_per_writer / 10).max(5);
    progress(&format!("{batch_writers} writer(s): 100-event appends"));
    let base = run_baseline(pool, batch_writers, batches, 100).await?;
    let batch = run_batches(store, batch_writers, batches, 100).await?;
    report(
        args.json,
        json!({
            "bench": "append_batch",
            "events_per_command": 100,
            "writers": batch_writers,
            "events_per_s": round(batch.events_per_s()),
            "baseline_events_per_s": round(base.events_per_s()),
            "ratio": round3(batch.events_per_s() / base.events_per_s()),
            "p50_ms": round3(batch.percentile_ms(50.0)),
            "p99_ms": round3(batch.percentile_ms(99.0)),
        }),
    );
    Ok(())
}

async fn long_history(store: &EventStore, bus: &CommandBus, args: &Args) -> anyhow::Result<()> {
    let history_years = args.history_years;
    progress(&format!(
        "seeding an athlete with {history_years} years of history"
    ));
    let veteran = Uuid::now_v7();
    let seeded = seed_history(store, veteran, history_years).await?;
    let newcomer = Uuid::now_v7();
    let samples = args.commands_per_writer.max(100);
    progress(&format!("{samples} commands each, alternating"));
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for i in 0..samples {
        // Alternate so drift (autovacuum, cache warmth) hits both sides alike.
        let (a, b) = if i % 2 == 0 {
            (veteran, newcomer)
        } else {
            (newcomer, veteran)
        };
        let ta = timed_record(bus, a).await?;
        let tb = timed_record(bus, b).await?;
        let (to, tn) = if a == veteran { (ta, tb) } else { (tb, ta) };
        old.push(to);
        new.push(tn);
    }
    let (old, new) = (Run::latencies(old), Run::latencies(new));
    report(
        args.json,
        json!({
            "bench": "history",
            "history_years": history_years,
            "history_events": seeded,
            "p50_ms_new_athlete": round3(new.percentile_ms(50.0)),
            "p50_ms_long_history": round3(old.percentile_ms(50.0)),
            "p99_ms_new_athlete": round3(new.percentile_ms(99.0)),
            "p99_ms_long_history": round3(old.percentile_ms(99.0)),
            "ratio": round3(old.percentile_ms(50.0) / new.percentile_ms(50.0)),
        }),
    );
    Ok(())
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    events: usize,
}

impl Run {
    /// Latencies alone, for percentiles.
    fn latencies(latencies: Vec<Duration>) -> Self {
        Self {
            latencies,
            elapsed: Duration::ZERO,
            events: 0,
        }
    }

    fn events_per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
        sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
    }
}

fn record_command(athlete: Uuid, i: usize) -> ActivityCommand {
    let start =
        Utc.with_ymd_and_hms(2026, 11, 20, 6, 30, 0).unwrap() - chrono::Duration::hours(i as i64);
    ActivityCommand::RecordActivity(RecordActivity {
        athlete_id: athlete,
        activity_id: Uuid::now_v7(),
        sport: Sport::Run,
        name: Some("Easy run".into()),
        start_time: start,
        timezone: "Europe/Berlin".into(),
        distance_m: Some(10_000.0),
        moving_time_s: 3_120.0,
        elapsed_time_s: Some(3_180.0),
        avg_hr_bpm: Some(142.0),
        max_hr_bpm: Some(158.0),
        elevation_gain_m: Some(64.0),
        elevation_loss_m: Some(61.0),
        source: ActivitySource::Manual,
        external_id: None,
        laps: vec![],
        samples: None,
    })
}

async fn timed_record(bus: &CommandBus, athlete: Uuid) -> anyhow::Result<Duration> {
    let cmd = record_command(athlete, 0);
    let ActivityCommand::RecordActivity(r) = &cmd else {
        unreachable!()
    };
    let id = r.activity_id.to_string();
    let started = Instant::now();
    bus.execute::<Activity>(&CommandContext::athlete(athlete), &id, cmd)
        .await?;
    Ok(started.elapsed())
}

async fn run_commands(bus: &CommandBus, writers: usize, per_writer: usize) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let athlete = Uuid::now_v7();
            let mut lat = Vec::with_capacity(per_writer);
            for _ in 0..per_writer {
                lat.push(timed_record(&bus, athlete).await?);
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Run {
        latencies,
        elapsed: started.elapsed(),
        events: writers * per_writer,
    })
}

/// The same shape of rows (a sealed payload's size, the same metadata), written by
/// BEGIN; INSERT; COMMIT through the same pool: what the database costs without the store.
async fn run_baseline(
    pool: &PgPool,
    writers: usize,
    per_writer: usize,
    events_per_tx: usize,
) -> anyhow::Result<Run> {
    let payload = vec![0x5au8; 420];
    let metadata = json!({"actor": {"user_id": Uuid::now_v7(), "role": "athlete"},
                          "correlation_id": Uuid::now_v7(), "athlete_id": Uuid::now_v7()});
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (pool, payload, metadata) = (pool.clone(), payload.clone(), metadata.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_writer);
            for _ in 0..per_writer {
                let t = Instant::now();
                let stream = Uuid::now_v7().to_string();
                let mut tx = pool.begin().await?;
                let ids: Vec<Uuid> = (0..events_per_tx).map(|_| Uuid::now_v7()).collect();
                let versions: Vec<i64> = (1..=events_per_tx as i64).collect();
                let payloads: Vec<&[u8]> = (0..events_per_tx).map(|_| payload.as_slice()).collect();
                sqlx::query(
                    "INSERT INTO bench_baseline (event_id, stream_type, stream_id, stream_version, \
                       event_type, event_version, athlete_id, metadata, payload, encrypted) \
                     SELECT u.id, 'activity', $1, u.v, 'ActivityRecorded', '2.0', NULL, $2, u.p, true \
                     FROM UNNEST($3::uuid[], $4::bigint[], $5::bytea[]) AS u(id, v, p)",
                )
                .bind(&stream)
                .bind(&metadata)
                .bind(&ids)
                .bind(&versions)
                .bind(&payloads)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Run {
        latencies,
        elapsed: started.elapsed(),
        events: writers * per_writer * events_per_tx,
    })
}

/// `ActivityRecorded` events exactly as the command path serialises them.
fn activity_events(athlete: Uuid, n: usize, hours_back: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| {
            let ActivityCommand::RecordActivity(r) = record_command(athlete, hours_back + i) else {
                unreachable!("record_command builds RecordActivity")
            };
            let event = ActivityEvent::ActivityRecorded(ActivityRecorded {
                activity_id: r.activity_id,
                athlete_id: r.athlete_id,
                sport: r.sport,
                name: r.name,
                start_time: r.start_time,
                timezone: r.timezone,
                distance_m: r.distance_m,
                moving_time_s: r.moving_time_s,
                elapsed_time_s: r.elapsed_time_s,
                avg_hr_bpm: r.avg_hr_bpm,
                max_hr_bpm: r.max_hr_bpm,
                elevation_gain_m: r.elevation_gain_m,
                elevation_loss_m: r.elevation_loss_m,
                source: r.source,
                external_id: r.external_id,
                laps: r.laps,
                samples: r.samples,
            });
            let mut new = NewEvent::new(
                event.event_type(),
                event.event_version(),
                serde_json::to_value(&event).expect("events serialise"),
                event.is_personal(),
            );
            new.event_id = r.activity_id;
            new
        })
        .collect()
}

async fn run_batches(
    store: &EventStore,
    writers: usize,
    per_writer: usize,
    size: usize,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let athlete = Uuid::now_v7();
            let mut lat = Vec::with_capacity(per_writer);
            for _ in 0..per_writer {
                let t = Instant::now();
                store
                    .append(&AppendRequest {
                        stream: StreamId::new("import", Uuid::now_v7().to_string()),
                        expected: ExpectedVersion::NoStream,
                        events: activity_events(athlete, size, 0),
                        metadata: Metadata::new(Actor::user(athlete, "athlete"))
                            .for_athlete(athlete),
                        idempotency: None,
                    })
                    .await?;
                lat.push(t.elapsed());
            }
            anyhow::Ok(lat)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    Ok(Run {
        latencies,
        elapsed: started.elapsed(),
        events: writers * per_writer * size,
    })
}

/// Ten years of a committed runner: an activity six days a week, each its own stream, as the
/// command path would have written them.
async fn seed_history(store: &EventStore, athlete: Uuid, years: u32) -> anyhow::Result<usize> {
    let days = years as usize * 365;
    let mut total = 0;
    let mut year_reported = 0;
    for day in (0..days).filter(|d| d % 7 != 6) {
        let year = day / 365 + 1;
        if year > year_reported {
            progress(&format!("seeding year {year} of {years}"));
            year_reported = year;
        }
        let events = activity_events(athlete, 1, day * 24);
        store
            .append(&AppendRequest {
                // Seeded events reuse the activity id as their event id (see activity_events).
                stream: StreamId::new("activity", events[0].event_id.to_string()),
                expected: ExpectedVersion::NoStream,
                events,
                metadata: Metadata::new(Actor::user(athlete, "athlete")).for_athlete(athlete),
                idempotency: None,
            })
            .await?;
        total += 1;
    }
    Ok(total)
}
