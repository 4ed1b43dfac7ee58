//! `stridelog import <files...> --athlete <id>`: activity files into an athlete's history,
//! through the same import path as `POST /v1/activities/import`.

use std::sync::Arc;

use anyhow::Context;
use commands::import::{Candidate, Imported, prepare, record};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::io::IsTerminal;
use uuid::Uuid;

use crate::config::StoreArgs;

pub async fn run(
    args: &StoreArgs,
    files: Vec<std::path::PathBuf>,
    athlete: Uuid,
    json_out: bool,
) -> anyhow::Result<()> {
    if files.is_empty() {
        anyhow::bail!("name at least one file to import");
    }
    let mut importer = Importer::open(args, athlete).await?;
    let mut failed = 0usize;
    let total = files.len();
    // A bar on a terminal; one line per file otherwise (logs, CI), both on stderr so stdout
    // stays machine-readable.
    let tty = std::io::stderr().is_terminal();
    let bar = progress_bar(total, tty);
    for (i, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        bar.set_message(name.clone());
        let outcome = importer.import(path, &name).await?;
        if outcome.is_err() {
            failed += 1;
        }
        let line = json_line(&name, &outcome);
        bar.inc(1);
        let status = format!("import: [{}/{total}] {name}: {}", i + 1, summary(&outcome));
        // Errors always print; on a terminal the bar stands in for the other lines.
        if !tty || outcome.is_err() {
            bar.suspend(|| eprintln!("{status}"));
        }
        if json_out {
            println!("{line}");
        }
    }
    bar.finish_and_clear();
    if failed > 0 {
        anyhow::bail!("{failed} of {total} files could not be imported");
    }
    Ok(())
}

/// Imports files for one athlete, as the operator acting for them.
struct Importer {
    bus: commands::CommandBus,
    ctx: commands::CommandContext,
    pool: sqlx::AnyPool,
    activities: projections::Tables,
    athlete: Uuid,
    timezone: String,
    /// Activities recorded by this run, which the read model may not show yet.
    batch: Vec<Candidate>,
}

impl Importer {
    async fn open(args: &StoreArgs, athlete: Uuid) -> anyhow::Result<Self> {
        let store = args.open().await?;
        store.migrate().await.context("migration failed")?;
        let athlete_stream = store::StreamId::new("athlete", athlete.to_string());
        if store.stream_version(&athlete_stream).await? == 0 {
            anyhow::bail!("no athlete {athlete}");
        }
        let engine = projections::Engine::new(
            store.clone(),
            projections::ReadDb::connect(&args.url()).await?,
            projections::all(),
        );
        let pool = engine.db().pool.clone();
        let timezone = match projections::profile::profile(
            &pool,
            &engine.active_tables("profile").await?,
            athlete,
        )
        .await?
        {
            Some(p) => p.preferences.timezone,
            None => "UTC".to_string(),
        };
        let bus = commands::CommandBus::new(
            store.clone(),
            domain::DomainServices::new(Arc::new(commands::SystemClock)),
            domain::upcasters(),
        );
        // The operator acts for the athlete; the events say so (actor: system).
        let ctx = commands::CommandContext {
            actor: store::Actor::system(),
            impersonator_id: None,
            athlete_id: athlete,
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            idempotency_key: None,
        };
        let activities = engine.active_tables("activities").await?;
        Ok(Self {
            bus,
            ctx,
            pool,
            activities,
            athlete,
            timezone,
            batch: Vec::new(),
        })
    }

    /// One file's outcome, its error as printed; the outer error stops the whole run (the
    /// read model could not be read).
    async fn import(
        &mut self,
        path: &std::path::Path,
        name: &str,
    ) -> anyhow::Result<Result<Imported, String>> {
        let prepared = match std::fs::read(path) {
            Err(e) => return Ok(Err(format!("{name}: cannot read: {e}"))),
            Ok(bytes) => match prepare(name, bytes).await {
                Err(e) => return Ok(Err(e.to_string())),
                Ok(prepared) => prepared,
            },
        };
        let mut earlier = self.batch.clone();
        let near = projections::activities::starting_near(
            &self.pool,
            &self.activities,
            self.athlete,
            prepared.start_time(),
        )
        .await?;
        earlier.extend(near.iter().map(|a| Candidate {
            activity_id: a.activity_id,
            start_time: a.start_time,
            distance_m: a.distance_m,
        }));
        let outcome = record(&self.bus, &self.ctx, prepared, &self.timezone, &earlier)
            .await
            .map_err(|e| e.to_string());
        if let Ok(Imported::Recorded {
            activity_id,
            start_time,
            distance_m,
            ..
        }) = &outcome
        {
            self.batch.push(Candidate {
                activity_id: *activity_id,
                start_time: *start_time,
                distance_m: *distance_m,
            });
        }
        Ok(outcome)
    }
}

fn progress_bar(total: usize, tty: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total as u64),
        if tty {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("import {bar:30} {pos}/{len} files, ETA {eta} {wide_msg}")
            .expect("a valid template"),
    );
    bar
}

/// The file's line on stdout with `--json`.
fn json_line(name: &str, outcome: &Result<Imported, String>) -> serde_json::Value {
    match outcome {
        Ok(Imported::Recorded {
            activity_id,
            position,
            efficiency,
            ..
        }) => json!({"file": name, "status": "recorded", "activity_id": activity_id,
                     "position": position, "efficiency": efficiency}),
        Ok(Imported::AlreadyImported { activity_id }) => {
            json!({"file": name, "status": "already_imported", "activity_id": activity_id})
        }
        Ok(Imported::DuplicateOf { activity_id }) => {
            json!({"file": name, "status": "duplicate", "activity_id": activity_id})
        }
        Err(e) => json!({"file": name, "status": "error", "error": e}),
    }
}

/// What happened to the file, for its line on stderr.
fn summary(outcome: &Result<Imported, String>) -> String {
    match outcome {
        Ok(Imported::Recorded { efficiency, .. }) => match efficiency.efficiency_factor {
            Some(ef) => format!("recorded (EF {ef:.4})"),
            None => "recorded".to_string(),
        },
        Ok(Imported::AlreadyImported { .. }) => "already imported".to_string(),
        Ok(Imported::DuplicateOf { activity_id }) => format!("the same run as {activity_id}"),
        Err(e) => e.clone(),
    }
}
