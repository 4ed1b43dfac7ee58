//! `stridelog demo`: the showcase athlete seeded once through the command path, the read models
//! and the correlation snapshot built, a password set, and commands to try printed. Serving
//! afterwards is the binary's `serve`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use store::EventStore;
use uuid::Uuid;

use crate::demo::{self, DemoConfig};

/// The demo athlete's password: printed by `stridelog demo`, and only ever set by it.
const DEMO_PASSWORD: &str = "stridelog-demo";

// No doc comment: the `Demo` subcommand's own describes the command in `--help`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Days of history, ending yesterday.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    #[arg(long, default_value_t = demo::SHOWCASE_SEED)]
    pub seed: u64,
    #[arg(long, env = "STRIDELOG_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Seed only; do not serve afterwards.
    #[arg(long)]
    pub no_serve: bool,
}

/// Seeds the demo athlete once; a second run finds them and only reports. `open` opens the
/// store at `store_url`; it is awaited only once the arguments are found valid.
pub async fn seed(
    args: &DemoArgs,
    store_url: &str,
    open: impl Future<Output = anyhow::Result<EventStore>>,
) -> anyhow::Result<()> {
    if args.days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let store = open.await?;
    store.migrate().await.context("migration failed")?;
    // Yesterday: the domain refuses instants more than a day ahead, and an evening run on the
    // last day west of UTC already falls on the next UTC day.
    let config = DemoConfig {
        seed: args.seed,
        athletes: 1,
        days: args.days,
        end_date: chrono::Utc::now().date_naive() - chrono::Duration::days(1),
    };
    let athlete = demo::athlete_id(&config, 0);
    seed_once(&store, &config, athlete).await?;
    let email = showcase_email(&config)?;
    let read_db = build_read_models(&store, store_url).await?;
    set_password(&read_db, athlete, &email).await?;
    let position = store.last_committed().await?.position;
    print_instructions(&config, athlete, &email, args.listen, position);
    Ok(())
}

async fn seed_once(store: &EventStore, config: &DemoConfig, athlete: Uuid) -> anyhow::Result<()> {
    let stream = store::StreamId::new("athlete", athlete.to_string());
    if store.stream_version(&stream).await? > 0 {
        eprintln!("demo: athlete {athlete} is already here");
        return Ok(());
    }
    let mut last = std::time::Instant::now();
    let bus = commands::CommandBus::new(
        store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let summary = demo::run_showcase(&bus, config, |p| {
        if last.elapsed() >= std::time::Duration::from_secs(1) {
            last = std::time::Instant::now();
            eprintln!(
                "demo: {} of {} commands",
                p.athlete_commands_done, p.athlete_commands_total
            );
        }
    })
    .await?;
    eprintln!(
        "demo: {} events over {} days ({} runs)",
        summary.events, config.days, summary.counts.runs
    );
    Ok(())
}

fn showcase_email(config: &DemoConfig) -> anyhow::Result<String> {
    demo::plan_showcase(config)
        .into_iter()
        .find_map(|c| match c {
            demo::PlannedCommand::Athlete {
                command: domain::athlete::AthleteCommand::Register { email, .. },
                ..
            } => Some(email),
            _ => None,
        })
        .context("the demo plan registers its athlete")
}

/// The read models and the correlation snapshot, before serving: otherwise the embedded worker
/// analyses the athlete while the projections are still catching up, and the next analysis
/// waits out the worker's debounce, so `/v1/correlations` would show a partial year for the
/// first ten minutes.
async fn build_read_models(
    store: &EventStore,
    store_url: &str,
) -> anyhow::Result<projections::ReadDb> {
    let read_db = projections::ReadDb::connect(store_url).await?;
    let engine = projections::Engine::new(store.clone(), read_db.clone(), projections::all());
    eprintln!("demo: building the read models");
    for p in projections::all() {
        engine
            .catch_up(p.as_ref(), std::time::Duration::from_secs(600))
            .await?;
    }
    let analysed = workers::correlations::step(&engine, "demo", 10).await?;
    if analysed.computed > 0 {
        eprintln!("demo: correlations analysed");
    }
    Ok(read_db)
}

/// The generator registers the athlete through the command path; the demo gives them a
/// password so the API can be tried at once.
async fn set_password(
    read_db: &projections::ReadDb,
    athlete: Uuid,
    email: &str,
) -> anyhow::Result<()> {
    let identity = identity::IdentityDb::new(read_db.pool.clone());
    if identity.account(athlete).await?.is_none() {
        let hash = identity::Passwords::new(1)?.hash(DEMO_PASSWORD).await?;
        identity
            .insert_pending(athlete, email, &hash, domain::athlete::Role::Athlete)
            .await?;
        identity.activate(athlete).await?;
    }
    Ok(())
}

fn print_instructions(
    config: &DemoConfig,
    athlete: Uuid,
    email: &str,
    listen: SocketAddr,
    position: i64,
) {
    let base = format!("http://{listen}");
    let month_ago = config.end_date - chrono::Duration::days(29);
    let end = config.end_date;
    let bin = invocation();
    println!("demo athlete: {athlete}");
    println!("  login: {email} / {DEMO_PASSWORD}");
    println!("  API documentation: {base}/docs");
    println!();
    println!("  TOKEN=$(curl -s {base}/v1/auth/login -H 'content-type: application/json' \\");
    println!(
        "      -d '{{\"email\":\"{email}\",\"password\":\"{DEMO_PASSWORD}\"}}' | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')"
    );
    println!("  curl -s {base}/v1/me -H \"authorization: Bearer $TOKEN\"");
    println!("  curl -s '{base}/v1/activities?limit=5' -H \"authorization: Bearer $TOKEN\"");
    println!(
        "  curl -s '{base}/v1/checkins?from={month_ago}&to={end}' -H \"authorization: Bearer $TOKEN\""
    );
    println!(
        "  curl -s -X PUT {base}/v1/checkins/$(date +%F) -H \"authorization: Bearer $TOKEN\" \\"
    );
    println!("      -H 'content-type: application/json' -d '{{\"sleep_h\":7.5,\"stress\":2}}'");
    println!("  curl -s '{base}/v1/efficiency/trends?days=90' -H \"authorization: Bearer $TOKEN\"");
    println!(
        "  curl -s '{base}/v1/training-load?from={month_ago}' -H \"authorization: Bearer $TOKEN\""
    );
    println!("  curl -s '{base}/v1/correlations?days=365' -H \"authorization: Bearer $TOKEN\"");
    println!(
        "  curl -s {base}/v1/activities/import -H \"authorization: Bearer $TOKEN\" -F file=@testdata/activities/run-2013-02-06.fit"
    );
    println!();
    println!("  {bin} events athlete {athlete} | tail");
    println!("  {bin} audit {athlete} | tail");
    println!("  {bin} replay athlete {athlete} --as-of {}", position / 2);
    println!("  {bin} projections list");
}

/// How to run this binary again from the current directory, for the commands the demo prints:
/// `cargo run` leaves no `stridelog` on the PATH, so the path it runs from (relative when it is
/// under the current directory), quoted for a POSIX shell when it needs to be.
fn invocation() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "stridelog".to_string();
    };
    let shown = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(|p| p.to_path_buf()))
        .map_or_else(
            || exe.display().to_string(),
            |relative| format!("./{}", relative.display()),
        );
    let plain = shown
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+".contains(c));
    if plain {
        shown
    } else {
        format!("'{}'", shown.replace('\'', "'\\''"))
    }
}
