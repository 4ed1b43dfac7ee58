//! `stridelog bench`: measurements reported as ratios to a baseline taken in the same run, on a
//! throwaway database, so figures from different machines can be compared.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
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

mod analyze;
mod api;
mod correlations;
mod rebuild;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Append throughput and latency against plain INSERT + COMMIT, then batch appends, then
    /// command latency for an athlete with ten years of history against a new athlete.
    /// Needs PostgreSQL; creates and drops its own database on that server.
    Append {
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
    },
    /// Rebuild throughput of every read model over generated athletes, beside a baseline that
    /// reads and decrypts the same events with no projection work; then follower lag under a
    /// steady append rate. PostgreSQL with --database-url postgres://… (a scratch database is
    /// created and dropped), else a scratch SQLite file.
    Rebuild {
        #[arg(long, default_value_t = 500)]
        athletes: usize,
        #[arg(long, default_value_t = 730)]
        days: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Appends per second for the lag measurement.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// Seconds of steady appends for the lag measurement.
        #[arg(long, default_value_t = 20)]
        lag_seconds: u32,
        #[arg(long)]
        json: bool,
    },
    /// Parse + efficiency analysis of a one-hour 1 Hz run (GPX), beside parsing alone. No
    /// database.
    Analyze {
        #[arg(long, default_value_t = 50)]
        rounds: usize,
        #[arg(long)]
        json: bool,
    },
    /// The correlation analysis of one athlete with 730 days of data (every input, both
    /// outcomes, lags 0-7, both methods), single-threaded, beside building its daily series
    /// from the read models; then one worker process computing every athlete's snapshot.
    /// PostgreSQL with --database-url postgres://… (a scratch database is created and dropped),
    /// else a scratch SQLite file.
    Correlations {
        #[arg(long, default_value_t = 1000)]
        athletes: usize,
        #[arg(long, default_value_t = 730)]
        days: u32,
        #[arg(long, default_value_t = 15)]
        rounds: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// HTTP requests per second and latency of `GET /v1/activities` and
    /// `PUT /v1/checkins/{date}` at N concurrent connections, each beside `GET /health` on the
    /// same server in the same run. Needs PostgreSQL; creates and drops its own database.
    Api {
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        athletes: usize,
        #[arg(long, default_value_t = 100)]
        activities_per_athlete: usize,
        #[arg(long)]
        json: bool,
    },
}

/// Runs `cmd` against the server or file at `store_url`; `redact` shows that URL in errors
/// without its password.
pub async fn run(
    store_url: &str,
    redact: fn(&str) -> String,
    cmd: BenchCommand,
) -> anyhow::Result<()> {
    let (writers, commands_per_writer, history_years, json) = match cmd {
        BenchCommand::Append {
            writers,
            commands_per_writer,
            history_years,
            json,
        } => (writers, commands_per_writer, history_years, json),
        BenchCommand::Analyze { rounds, json } => {
            if rounds == 0 {
                bail!("--rounds must be positive");
            }
            return analyze::measure(rounds, json);
        }
        BenchCommand::Api {
            connections,
            seconds,
            athletes,
            activities_per_athlete,
            json,
        } => {
            let url = store_url.to_string();
            if !url.starts_with("postgres") {
                bail!(
                    "bench api measures PostgreSQL: set --database-url postgres://… (a server where it may create a database)"
                );
            }
            let scratch = ScratchDb::create(&url, redact).await?;
            let secret: [u8; 32] = rand::random();
            let result = api::measure(
                &scratch.url,
                &secret,
                api::Options {
                    connections,
                    seconds,
                    athletes,
                    activities_per_athlete,
                    json,
                },
            )
            .await;
            scratch.drop_db().await;
            return result;
        }
        BenchCommand::Correlations {
            athletes,
            days,
            rounds,
            seed,
            json,
        } => {
            if athletes == 0 || rounds == 0 || days == 0 {
                bail!("--athletes, --days and --rounds must be positive");
            }
            let config = correlations::Config {
                athletes,
                days,
                rounds,
                seed,
                json,
            };
            let url = store_url.to_string();
            if url.starts_with("postgres") {
                let scratch = ScratchDb::create(&url, redact).await?;
                let result =
                    correlations::measure(&scratch.url, "postgres", config).await;
                scratch.drop_db().await;
                return result;
            }
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}/bench.db", dir.path().display());
            return correlations::measure(&url, "sqlite", config).await;
        }
        BenchCommand::Rebuild {
            athletes,
            days,
            seed,
            rate,
            lag_seconds,
            json,
        } => {
            let options = rebuild::Options {
                athletes,
                days,
                seed,
                rate,
                lag_seconds,
                json,
            };
            let url = store_url.to_string();
            if url.starts_with("postgres") {
                let scratch = ScratchDb::create(&url, redact).await?;
                let result = rebuild::measure(&scratch.url, options).await;
                scratch.drop_db().await;
                return result;
            }
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}/bench.db", dir.path().display());
            return rebuild::measure(&url, options).await;
        }
    };
    let url = store_url.to_string();
    if !url.starts_with("postgres") {
        bail!(
            "bench append measures PostgreSQL: set --database-url postgres://… (a server where it may create a database)"
        );
    }
    if writers.is_empty() || writers.contains(&0) || commands_per_writer == 0 {
        bail!("--writers and --commands-per-writer must be positive");
    }
    let scratch = ScratchDb::create(&url, redact).await?;
    let result = measure(
        &scratch.url,
        &writers,
        commands_per_writer,
        history_years,
        json,
    )
    .await;
    scratch.drop_db().await;
    result
}

struct ScratchDb {
    admin: PgPool,
    name: String,
    url: String,
}

impl ScratchDb {
    async fn create(url: &str, redact: fn(&str) -> String) -> anyhow::Result<Self> {
        let admin = PgPool::connect(url)
            .await
            .with_context(|| format!("cannot reach {}", redact(url)))?;
        let name = format!("stridelog_bench_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .context("the bench needs permission to create a database")?;
        let base = url.split('?').next().unwrap_or(url);
        let base = &base[..base.rfind('/').unwrap_or(base.len())];
        Ok(Self {
            admin,
            url: format!("{base}/{name}"),
            name,
        })
    }

    async fn drop_db(self) {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&self.admin)
        .await;
    }
}

/// Progress goes to stderr in both output modes, so stdout stays machine-readable.
pub(crate) fn progress(msg: &str) {
    eprintln!("bench: {msg}");
}

async fn measure(
    url: &str,
    writers: &[usize],
    per_writer: usize,
    history_years: u32,
    json: bool,
) -> anyhow::Result<()> {
    let max_writers = writers.iter().copied().max().unwrap_or(1);
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

    for &w in writers {
        progress(&format!("{w} writer(s): plain INSERT + COMMIT baseline"));
        let base = run_baseline(&pool, w, per_writer, 1).await?;
        progress(&format!("{w} writer(s): single-event commands"));
        let cmd = run_commands(&bus, w, per_writer).await?;
        report(
            json,
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

    let batch_writers = 4.min(max_writers);
    let batches = (per_writer / 10).max(5);
    progress(&format!("{batch_writers} writer(s): 100-event appends"));
    let base = run_baseline(&pool, batch_writers, batches, 100).await?;
    let batch = run_batches(&store, batch_writers, batches, 100).await?;
    report(
        json,
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

    progress(&format!(
        "seeding an athlete with {history_years} years of history"
    ));
    let veteran = Uuid::now_v7();
    let seeded = seed_history(&store, veteran, history_years).await?;
    let newcomer = Uuid::now_v7();
    let samples = per_writer.max(100);
    progress(&format!("{samples} commands each, alternating"));
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for i in 0..samples {
        // Alternate so drift (autovacuum, cache warmth) hits both sides alike.
        let (a, b) = if i % 2 == 0 {
            (veteran, newcomer)
        } else {
            (newcomer, veteran)
        };
        let ta = timed_record(&bus, a).await?;
        let tb = timed_record(&bus, b).await?;
        let (to, tn) = if a == veteran { (ta, tb) } else { (tb, ta) };
        old.push(to);
        new.push(tn);
    }
    let old = Run {
        latencies: old,
        elapsed: Duration::ZERO,
        events: 0,
    };
    let new = Run {
        latencies: new,
        elapsed: Duration::ZERO,
        events: 0,
    };
    report(
        json,
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

pub(crate) fn report(json: bool, value: serde_json::Value) {
    if json {
        println!("{value}");
    } else {
        let fields: Vec<String> = value
            .as_object()
            .expect("object")
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("{}", fields.join("  "));
    }
}

pub(crate) fn round(x: f64) -> f64 {
    x.round()
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

struct Run {
    latencies: Vec<Duration>,
    elapsed: Duration,
    events: usize,
}

impl Run {
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
