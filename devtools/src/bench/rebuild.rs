//! `stridelog bench rebuild`: read-model rebuild throughput against reading the log alone, and
//! follower lag under a steady append rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::demo::{self, DemoConfig};
use chrono::NaiveDate;
use projections::{Engine, ReadDb};
use serde_json::json;
use store::{
    AppendRequest, EventLog, EventStore, ExpectedVersion, LogCursor, MasterKey, StoreOptions,
};
use uuid::Uuid;

use super::{progress, report, round, round3};

#[derive(Debug, clap::Args)]
pub struct Options {
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
}

pub async fn measure(url: &str, o: Options) -> anyhow::Result<()> {
    let store = EventStore::connect(
        url,
        MasterKey::generate(),
        StoreOptions {
            max_connections: 24,
        },
    )
    .await?;
    store.migrate().await?;
    let config = DemoConfig {
        seed: o.seed,
        athletes: o.athletes,
        days: o.days,
        end_date: NaiveDate::from_ymd_opt(2026, 11, 20).expect("a date"),
    };
    seed(&store, &config).await?;
    let db = ReadDb::connect(url).await?;
    settle(&db).await?;
    let engine = Engine::new(store.clone(), db, projections::all());
    rebuilds(&engine, &store, o.json).await?;
    follower_lag(&store, Arc::new(engine), demo::athlete_id(&config, 0), &o).await
}

async fn seed(store: &EventStore, config: &DemoConfig) -> anyhow::Result<()> {
    progress(&format!(
        "seeding {} athletes x {} days",
        config.athletes, config.days
    ));
    let started = Instant::now();
    let mut reported = 0;
    let events = demo::seed_direct(store, config, 16, |done, total| {
        if done >= reported + 50 || done == total {
            reported = done;
            progress(&format!("seeded {done} of {total} athletes"));
        }
    })
    .await?;
    progress(&format!(
        "{events} events in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Leaves the seeded log as an operator's log is when it is rebuilt: vacuumed, analysed and
/// checkpointed. Otherwise the first reads of the fresh rows pay for setting their hint bits
/// (PostgreSQL), and a checkpoint due to the seeding's writes lands in whichever measurement
/// happens to be running.
async fn settle(db: &ReadDb) -> anyhow::Result<()> {
    progress("settling the log (vacuum, analyse, checkpoint)");
    let statements: &[&str] = if db.is_sqlite() {
        &["ANALYZE", "PRAGMA wal_checkpoint(TRUNCATE)"]
    } else {
        &["VACUUM ANALYZE", "CHECKPOINT"]
    };
    for sql in statements {
        sqlx::query(sqlx::AssertSqlSafe(*sql))
            .execute(&db.pool)
            .await?;
    }
    Ok(())
}

/// The baseline: the same events read and decrypted from the log in the batch size a rebuild
/// reads ([`projections::BUILD_BATCH`]).
/// Returns the events read and the rate.
async fn read_whole_log(store: &EventStore) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let mut cursor = LogCursor::START;
    let mut read = 0usize;
    loop {
        let batch = store.read_log(cursor, projections::BUILD_BATCH).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.cursor;
        read += batch.len();
    }
    let baseline_s = started.elapsed().as_secs_f64();
    Ok((read, read as f64 / baseline_s))
}

/// Times `rebuild` (returning its seconds and its baseline) against a baseline read of the whole log taken just before it, so that the
/// ratio compares two runs a few seconds apart: on a shared machine the read rate alone drifts
/// by a fifth over a benchmark's minutes.
async fn timed<F: std::future::Future<Output = anyhow::Result<()>>>(
    store: &EventStore,
    projection: &str,
    rebuild: F,
    json: bool,
) -> anyhow::Result<(f64, f64)> {
    let (read, baseline) = read_whole_log(store).await?;
    progress(&format!("rebuilding {projection}"));
    let started = Instant::now();
    rebuild.await?;
    let secs = started.elapsed().as_secs_f64();
    let rate = read as f64 / secs;
    report(
        json,
        json!({"bench": "rebuild", "projection": projection, "events": read,
               "events_per_s": round(rate), "baseline_events_per_s": round(baseline),
               "ratio": round3(rate / baseline)}),
    );
    Ok((secs, baseline))
}

async fn rebuilds(engine: &Engine, store: &EventStore, json: bool) -> anyhow::Result<()> {
    // The live generations first (not timed), so each rebuild below is what operators run: a
    // new generation built from position 0 beside a live one that has nothing left to do.
    for p in projections::all() {
        progress(&format!("building the live {}", p.name()));
        engine
            .catch_up(p.as_ref(), Duration::from_secs(3600))
            .await?;
    }
    // The read the baselines repeat, once untimed: the first read after seeding is slower.
    let (read, _) = read_whole_log(store).await?;
    let mut total_s = 0.0;
    let mut baselines = Vec::new();
    for name in engine.names() {
        let (secs, baseline) = timed(store, name, engine.rebuild(name, |_, _| {}), json).await?;
        total_s += secs;
        baselines.push(baseline);
    }
    baselines.sort_by(f64::total_cmp);
    let baseline = baselines[baselines.len() / 2];
    let all = read as f64 / total_s;
    report(
        json,
        json!({"bench": "rebuild", "projection": "all (one after another)", "events": read,
               "events_per_s": round(all), "baseline_events_per_s": round(baseline),
               "ratio": round3(all / baseline)}),
    );
    // What `projections rebuild --all` runs: every read model in one pass over the log.
    let names = engine.names();
    timed(
        store,
        "all (one pass)",
        engine.rebuild_all(&names, |_, _, _| {}),
        json,
    )
    .await?;
    Ok(())
}

/// The projector runs while appends arrive at a steady rate; every 10th append measures how
/// long until every read model has applied it.
async fn follower_lag(
    store: &EventStore,
    engine: Arc<Engine>,
    athlete: Uuid,
    o: &Options,
) -> anyhow::Result<()> {
    progress(&format!(
        "follower lag at {} appends/s for {} s",
        o.rate, o.lag_seconds
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stop_rx.await;
                })
                .await
        })
    };
    let names = engine.names();
    let interval = Duration::from_secs_f64(1.0 / o.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (o.rate * o.lag_seconds) as usize;
    let mut waits = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let req = lag_append(athlete, i);
        let store = store.clone();
        let engine = engine.clone();
        let names = names.clone();
        let sample = i % 10 == 0;
        waits.push(tokio::spawn(async move {
            let out = store.append(&req).await?;
            let acked = Instant::now();
            if sample {
                engine
                    .wait_for(&names, out.positions[0], Duration::from_secs(30))
                    .await?;
                return anyhow::Ok(Some(acked.elapsed()));
            }
            Ok(None)
        }));
    }
    let mut lags = Vec::new();
    for w in waits {
        if let Some(l) = w.await?? {
            lags.push(l);
        }
    }
    let _ = stop_tx.send(());
    runner.await??;
    report_lag(lags, o);
    Ok(())
}

/// One small personal event on a stream of its own.
fn lag_append(athlete: Uuid, i: usize) -> AppendRequest {
    AppendRequest {
        stream: store::StreamId::new("journal", format!("{athlete}:lag-{}", Uuid::now_v7())),
        expected: ExpectedVersion::NoStream,
        events: vec![store::NewEvent::new(
            "InsightFeedbackGiven",
            "1.0",
            json!({"type": "InsightFeedbackGiven", "athlete_id": athlete, "date": "2026-11-20",
                   "insight_id": format!("lag-{i}"), "helpful": true, "notes": null}),
            true,
        )],
        metadata: store::Metadata::new(store::Actor::user(athlete, "athlete")).for_athlete(athlete),
        idempotency: None,
    }
}

fn report_lag(mut lags: Vec<Duration>, o: &Options) {
    lags.sort_unstable();
    let pct = |p: f64| {
        lags[((p / 100.0) * (lags.len() as f64 - 1.0)).round() as usize].as_secs_f64() * 1000.0
    };
    report(
        o.json,
        json!({"bench": "follower_lag", "appends_per_s": o.rate, "seconds": o.lag_seconds,
               "samples": lags.len(), "p50_ms": round3(pct(50.0)), "p99_ms": round3(pct(99.0)),
               "max_ms": round3(pct(100.0))}),
    );
}
