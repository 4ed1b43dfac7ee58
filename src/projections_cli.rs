//! `stridelog projections …` and `stridelog audit`: operators' view of the read side.

use std::time::{Duration, Instant};

use anyhow::bail;
use chrono::{DateTime, Utc};
use projections::audit::{AuditFilter, trail};
use projections::{Engine, Resolution};
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum ProjectionsCommand {
    /// Every projection: version, checkpoint, lag, state, skipped events.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Rebuild beside the live tables from position 0, then switch (one projection, or all in
    /// one pass over the log).
    Rebuild {
        name: Option<String>,
        #[arg(long, conflicts_with = "name")]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Rebuild into a shadow copy and compare with the live read model: `equal` (exit 0) or the
    /// differing rows (exit 1).
    Verify {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// The events a projection skipped because it could not apply them, resolved or not.
    Skipped {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Re-apply one skipped event after its cause was fixed (or, with --dismiss, accept that
    /// it can never apply); either way readiness stops failing on it.
    Retry {
        name: String,
        position: i64,
        /// Do not apply it: mark it dismissed, accepting the read model lacks it.
        #[arg(long)]
        dismiss: bool,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(engine: &Engine, cmd: ProjectionsCommand) -> anyhow::Result<bool> {
    match cmd {
        ProjectionsCommand::List { json } => list(engine, json).await,
        ProjectionsCommand::Rebuild { name, all, json } => rebuild(engine, name, all, json).await,
        ProjectionsCommand::Verify { name, json } => verify(engine, &name, json).await,
        ProjectionsCommand::Skipped { name, json } => skipped(engine, &name, json).await,
        ProjectionsCommand::Retry {
            name,
            position,
            dismiss,
            json,
        } => retry(engine, &name, position, dismiss, json).await,
    }
}

async fn list(engine: &Engine, json: bool) -> anyhow::Result<bool> {
    let status = engine.status().await?;
    if json {
        for s in &status {
            println!("{}", serde_json::to_string(s)?);
        }
    } else {
        println!(
            "{:<14} {:>7} {:>10} {:>9} {:>9} {:<12} {:>7}",
            "projection", "version", "checkpoint", "behind", "lag_s", "state", "skipped"
        );
        for s in &status {
            println!(
                "{:<14} {:>7} {:>10} {:>9} {:>9.1} {:<12} {:>7}",
                s.name,
                s.active_version,
                s.checkpoint_position,
                s.positions_behind,
                s.seconds_behind,
                s.state,
                s.skipped_events
            );
        }
    }
    Ok(true)
}

async fn rebuild(
    engine: &Engine,
    name: Option<String>,
    all: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let names: Vec<String> = match (name, all) {
        (Some(n), false) => {
            engine.projection(&n)?;
            vec![n]
        }
        (None, true) => engine.names().iter().map(|s| s.to_string()).collect(),
        _ => bail!("name a projection or pass --all"),
    };
    // One pass over the log for all of them: each batch is read once and applied to
    // every generation being built.
    let started = Instant::now();
    let mut last = Instant::now() - Duration::from_secs(10);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    engine
        .rebuild_all(&refs, |name, position, head| {
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(0.001);
                let rate = position as f64 / secs;
                let eta = if rate > 0.0 {
                    (head - position).max(0) as f64 / rate
                } else {
                    f64::NAN
                };
                eprintln!(
                    "rebuild {name}: position {position} of {head} ({:.0} %), {rate:.0} positions/s, ETA {eta:.0} s",
                    100.0 * position as f64 / head.max(1) as f64
                );
            }
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    let status = engine.status().await?;
    for name in &names {
        let s = status
            .iter()
            .find(|s| s.name == name.as_str())
            .expect("known");
        if json {
            println!(
                "{}",
                serde_json::json!({"name": name, "generation": s.active_generation,
                    "events": s.events_applied, "seconds": secs,
                    "events_per_s": s.events_applied as f64 / secs.max(0.001)})
            );
        } else {
            println!(
                "{name}: rebuilt generation {} from {} events in {secs:.1} s",
                s.active_generation, s.events_applied
            );
        }
    }
    Ok(true)
}

/// True when the rebuilt copy equals the live read model.
async fn verify(engine: &Engine, name: &str, json: bool) -> anyhow::Result<bool> {
    let diffs = engine.verify(name).await?;
    if json {
        println!(
            "{}",
            serde_json::json!({"name": name, "equal": diffs.is_empty(), "differences": diffs})
        );
    } else if diffs.is_empty() {
        println!("equal");
    } else {
        for d in &diffs {
            println!("{d}");
        }
    }
    Ok(diffs.is_empty())
}

async fn skipped(engine: &Engine, name: &str, json: bool) -> anyhow::Result<bool> {
    let skipped = engine.skipped(name).await?;
    for s in &skipped {
        if json {
            println!("{}", serde_json::to_string(s)?);
        } else {
            let state = match (s.resolution, s.resolved_at) {
                (Some(r), Some(at)) => format!("{} {}", r.text(), at.to_rfc3339()),
                _ => "unresolved".to_string(),
            };
            println!(
                "{:>8}  {}  {}  {state}  {}",
                s.position, s.event_type, s.event_id, s.error
            );
        }
    }
    Ok(true)
}

async fn retry(
    engine: &Engine,
    name: &str,
    position: i64,
    dismiss: bool,
    json: bool,
) -> anyhow::Result<bool> {
    let resolution = if dismiss {
        engine.dismiss_skipped(name, position).await?;
        Resolution::Dismissed
    } else {
        engine.retry_skipped(name, position).await?;
        Resolution::Applied
    };
    let left = engine
        .skipped(name)
        .await?
        .iter()
        .filter(|s| s.resolution.is_none())
        .count();
    if json {
        println!(
            "{}",
            serde_json::json!({"name": name, "position": position,
                "resolution": resolution, "unresolved_left": left})
        );
    } else {
        println!(
            "{name}: position {position} {}; {left} unresolved left",
            resolution.text()
        );
    }
    Ok(true)
}

/// `stridelog audit <athlete>`: brings the audit log up to date, then prints the trail.
pub async fn audit(
    engine: &Engine,
    athlete: Uuid,
    since: Option<DateTime<Utc>>,
    actor: Option<Uuid>,
    json: bool,
) -> anyhow::Result<()> {
    let p = engine.projection("audit")?.clone();
    engine.catch_up(p.as_ref(), Duration::from_secs(60)).await?;
    let tables = engine.active_tables("audit").await?;
    let entries = trail(
        &engine.db().pool,
        &tables,
        athlete,
        &AuditFilter {
            since,
            actor,
            event_type: None,
        },
    )
    .await?;
    for e in &entries {
        if json {
            println!("{}", serde_json::to_string(e)?);
        } else {
            let actor = e.actor_id.as_deref().unwrap_or("system");
            let via = e
                .impersonator_id
                .as_deref()
                .map(|i| format!(" (impersonated by admin {i})"))
                .unwrap_or_default();
            println!(
                "{}  {:<24} {:<48} by {} {actor}{via}",
                e.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
                e.event_type,
                e.stream,
                e.actor_role
            );
        }
    }
    if !json {
        eprintln!("{} entries", entries.len());
    }
    Ok(())
}
