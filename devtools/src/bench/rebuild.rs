//! `stridelog bench rebuild`: read-model rebuild throughput against reading the log alone, and
//! follower lag under a steady append rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use crate::demo::{self, DemoConfig};
use projections::{Engine, ReadDb};
use serde_json::json;
use store::{
    AppendRequest, EventLog, EventStore, ExpectedVersion, LogCursor, MasterKey, StoreOptions,
};
use uuid::Uuid;

use super::{progress, report, round, round3};

pub struct Options {
    pub athletes: usize,
    pub days: u32,
    pub seed: u64,
    pub rate: u32,
    pub lag_seconds: u32,
    pub json: bool,
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
    progress(&format!(
        "seeding {} athletes x {} days",
        o.athletes, o.days
    ));
    let started = Instant::now();
    let mut reported = 0;
    let events = demo::seed_direct(&store, &config, 16, |done, total| {
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

    // Baseline: the same events read and decrypted from the log in the engine's batch size.
    progress("baseline: reading the whole log");
    let started = Instant::now();
    let mut cursor = LogCursor::START;
    let mut read = 0usize;
    loop {
        let batch = store.read_log(cursor, 500).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.cursor;
        read += batch.len();
    }
    let baseline_s = started.elapsed().as_secs_f64();
    let baseline = read as f64 / baseline_s;

    let engine = Engine::new(
        store.clone(),
        ReadDb::connect(url).await?,
        projections::all(),
    );
    // The live generations first (not timed), so each rebuild below is what operators run: a
    // new generation built from position 0 beside a live one that has nothing left to do.
    for p in projections::all() {
        progress(&format!("building the live {}", p.name()));
        engine
            .catch_up(p.as_ref(), Duration::from_secs(3600))
            .await?;
    }
    let mut total_s = 0.0;
    for name in engine.names() {
        progress(&format!("rebuilding {name}"));
        let started = Instant::now();
        engine.rebuild(name, |_, _| {}).await?;
        let secs = started.elapsed().as_secs_f64();
        total_s += secs;
        let rate = read as f64 / secs;
        report(
            o.json,
            json!({"bench": "rebuild", "projection": name, "events": read,
                   "events_per_s": round(rate), "baseline_events_per_s": round(baseline),
                   "ratio": round3(rate / baseline)}),
        );
    }
    let all = read as f64 / total_s;
    report(
        o.json,
        json!({"bench": "rebuild", "projection": "all (one after another)", "events": read,
               "events_per_s": round(all), "baseline_events_per_s": round(baseline),
               "ratio": round3(all / baseline)}),
    );
    // What `projections rebuild --all` runs: every read model in one pass over the log.
    progress("rebuilding all in one pass");
    let names = engine.names();
    let started = Instant::now();
    engine.rebuild_all(&names, |_, _, _| {}).await?;
    let secs = started.elapsed().as_secs_f64();
    let rate = read as f64 / secs;
    report(
        o.json,
        json!({"bench": "rebuild", "projection": "all (one pass)", "events": read,
               "events_per_s": round(rate), "baseline_events_per_s": round(baseline),
               "ratio": round3(rate / baseline)}),
    );

    // Lag: the projector runs while appends arrive at a steady rate; every 10th append measures
    // how long until every read model has applied it.
    progress(&format!(
        "follower lag at {} appends/s for {} s",
        o.rate, o.lag_seconds
    ));
    let engine = Arc::new(engine);
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
    let athlete = demo::athlete_id(&config, 0);
    let total = (o.rate * o.lag_seconds) as usize;
    let mut waits = Vec::new();
    for i in 0..total {
        ticker.tick().await;
        let req = AppendRequest {
            stream: store::StreamId::new("journal", format!("{athlete}:lag-{}", Uuid::now_v7())),
            expected: ExpectedVersion::NoStream,
            events: vec![store::NewEvent::new(
                "InsightFeedbackGiven",
                "1.0",
                json!({"type": "InsightFeedbackGiven", "athlete_id": athlete, "date": "2026-11-20",
                       "insight_id": format!("lag-{i}"), "helpful": true, "notes": null}),
                true,
            )],
            metadata: store::Metadata::new(store::Actor::user(athlete, "athlete"))
                .for_athlete(athlete),
            idempotency: None,
        };
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
    Ok(())
}
