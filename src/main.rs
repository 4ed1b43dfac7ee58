//! `stridelog`: the one binary. `stridelog --help` lists the subcommands; docs/operations.md
//! describes each and every setting.

mod analyze_cli;
mod bench;
mod bench_analyze;
mod bench_api;
mod bench_correlations;
mod bench_rebuild;
mod config;
mod correlations_cli;
mod events_cli;
mod import_cli;
mod projections_cli;
mod users_cli;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tracing_subscriber::EnvFilter;

use config::StoreArgs;

#[derive(Debug, Parser)]
#[command(
    name = "stridelog",
    version,
    about = "Running-efficiency backend for endurance athletes"
)]
struct Cli {
    #[command(flatten)]
    store: StoreArgs,

    /// Log line format.
    #[arg(long, env = "STRIDELOG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum ReplayCommand {
    /// The athlete's profile, counts per kind of data and latest journal days, folded from their
    /// events up to `--as-of` (a log position or an RFC 3339 time).
    Athlete {
        athlete_id: uuid::Uuid,
        #[arg(long)]
        as_of: store::AsOf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API (migrates the store first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "STRIDELOG_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Do not run the projector in this process (run `stridelog worker` processes instead).
        #[arg(long, env = "STRIDELOG_NO_EMBEDDED_WORKER")]
        no_worker: bool,
        #[command(flatten)]
        jwt: config::JwtArgs,
    },
    /// Apply the store's migrations and exit.
    Migrate {
        #[arg(long)]
        json: bool,
    },
    /// Read the event log: tail it live, or show a stream or an athlete, as of any point.
    #[command(subcommand)]
    Events(events_cli::EventsCommand),
    /// A realistic athlete on the embedded default (a year of runs, check-ins, nutrition, work
    /// and body composition from the generator), then the API on localhost.
    Demo {
        /// Days of history, ending yesterday.
        #[arg(long, default_value_t = 365)]
        days: u32,
        #[arg(long, default_value_t = commands::demo::SHOWCASE_SEED)]
        seed: u64,
        #[arg(long, env = "STRIDELOG_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Seed only; do not serve afterwards.
        #[arg(long)]
        no_serve: bool,
    },
    /// Run the background workers (the projector, the correlation worker) until SIGTERM/Ctrl-C;
    /// the first failure ends the process, for its supervisor to restart.
    Worker,
    /// Inspect, rebuild and verify read models.
    #[command(subcommand)]
    Projections(projections_cli::ProjectionsCommand),
    /// Import FIT, GPX and TCX files into an athlete's history.
    Import {
        files: Vec<std::path::PathBuf>,
        #[arg(long)]
        athlete: uuid::Uuid,
        /// One JSON object per file on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Efficiency metrics of an activity file, offline.
    #[command(subcommand)]
    Analyze(analyze_cli::AnalyzeCommand),
    /// Correlation discovery, offline.
    #[command(subcommand)]
    Correlations(correlations_cli::CorrelationsCommand),
    /// Account administration: roles.
    #[command(subcommand)]
    Users(users_cli::UsersCommand),
    /// One athlete's audit trail: who did what to their data, and when.
    Audit {
        athlete_id: uuid::Uuid,
        /// Only entries at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only entries by this user (as actor or impersonating admin).
        #[arg(long)]
        actor: Option<uuid::Uuid>,
        #[arg(long)]
        json: bool,
    },
    /// Replay history: an athlete as they were at a position or time.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Measure the store (see docs/operations.md, "Benchmarks").
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn init_logging(format: LogFormat) {
    // Quiet by default on the CLI's stderr; RUST_LOG widens it.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,tower_http=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One readable line: the error and its causes, no backtrace.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                line.push_str(": ");
                line.push_str(&cause.to_string());
            }
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            no_worker,
            jwt,
        } => {
            let secret = jwt.secret()?;
            serve(&cli.store, listen, !no_worker, &secret).await
        }
        Command::Demo {
            days,
            seed,
            listen,
            no_serve,
        } => {
            // The demo signs tokens with a key kept beside its database, so it runs with no
            // configuration; `serve` refuses to start without a configured one.
            let secret = config::demo_jwt_secret(&cli.store)?;
            demo(&cli.store, days, seed, listen, &secret).await?;
            if no_serve {
                Ok(())
            } else {
                serve(&cli.store, listen, true, &secret).await
            }
        }
        Command::Worker => {
            let store = cli.store.open().await?;
            store.migrate().await.context("migration failed")?;
            workers::run_all(store, &cli.store.url(), shutdown()).await
        }
        Command::Projections(cmd) => {
            let engine = engine(&cli.store).await?;
            if projections_cli::run(&engine, cmd).await? {
                Ok(())
            } else {
                // `verify` found differences: already printed, exit 1 without an error line.
                std::process::exit(1)
            }
        }
        Command::Users(cmd) => users_cli::run(&cli.store, cmd).await,
        Command::Analyze(cmd) => analyze_cli::run(cmd),
        Command::Correlations(cmd) => correlations_cli::run(cmd),
        Command::Import {
            files,
            athlete,
            json,
        } => import_cli::run(&cli.store, files, athlete, json).await,
        Command::Audit {
            athlete_id,
            since,
            actor,
            json,
        } => {
            let engine = engine(&cli.store).await?;
            projections_cli::audit(&engine, athlete_id, since, actor, json).await
        }
        Command::Migrate { json } => {
            let store = cli.store.open().await?;
            store.migrate().await.context("migration failed")?;
            let info = store.info().await?;
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "{} store at schema version {}",
                    info.backend, info.schema_version
                );
            }
            Ok(())
        }
        Command::Events(cmd) => {
            let store = cli.store.open().await?;
            events_cli::run(store, cmd).await
        }
        Command::Replay(ReplayCommand::Athlete {
            athlete_id,
            as_of,
            json,
        }) => {
            let store = cli.store.open().await?;
            let state = projections::replay::athlete_at(&store, athlete_id, as_of).await?;
            if json {
                println!("{}", serde_json::to_string(&state)?);
            } else {
                println!("{}", serde_json::to_string_pretty(&state)?);
            }
            Ok(())
        }
        Command::Bench(cmd) => bench::run(&cli.store, cmd).await,
    }
}

/// Seeds the demo athlete once; a second run finds them and only reports.
async fn demo(
    args: &StoreArgs,
    days: u32,
    seed: u64,
    listen: SocketAddr,
    jwt_secret: &[u8],
) -> anyhow::Result<()> {
    use commands::demo::{self, DemoConfig};
    if days == 0 {
        anyhow::bail!("--days must be at least 1");
    }
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    // Yesterday: the domain refuses instants more than a day ahead, and an evening run on the
    // last day west of UTC already falls on the next UTC day.
    let config = DemoConfig {
        seed,
        athletes: 1,
        days,
        end_date: chrono::Utc::now().date_naive() - chrono::Duration::days(1),
    };
    let athlete = demo::athlete_id(&config, 0);
    let stream = store::StreamId::new("athlete", athlete.to_string());
    if store.stream_version(&stream).await? > 0 {
        eprintln!("demo: athlete {athlete} is already here");
    } else {
        let mut last = std::time::Instant::now();
        let bus = commands::CommandBus::new(
            store.clone(),
            domain::DomainServices::new(Arc::new(commands::SystemClock)),
            domain::upcasters(),
        );
        let summary = demo::run_showcase(&bus, &config, |p| {
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
            "demo: {} events over {days} days ({} runs)",
            summary.events, summary.counts.runs
        );
    }
    let email = demo::plan_showcase(&config)
        .into_iter()
        .find_map(|c| match c {
            demo::PlannedCommand::Athlete {
                command: domain::athlete::AthleteCommand::Register { email, .. },
                ..
            } => Some(email),
            _ => None,
        })
        .context("the demo plan registers its athlete")?;
    // The read models and the correlation snapshot, before serving: otherwise the embedded
    // worker analyses the athlete while the projections are still catching up, and the next
    // analysis waits out the worker's debounce, so `/v1/correlations` would show a partial year
    // for the first ten minutes.
    let read_db = projections::ReadDb::connect(&args.url()).await?;
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
    // The generator registers the athlete through the command path; the demo gives them a
    // password so the API can be tried at once.
    let identity = api::auth::IdentityDb::new(read_db.pool.clone());
    if identity.account(athlete).await?.is_none() {
        let hash = api::auth::Passwords::new(1)?.hash(DEMO_PASSWORD).await?;
        identity
            .insert_pending(athlete, &email, &hash, domain::athlete::Role::Athlete)
            .await?;
        identity.activate(athlete).await?;
    }
    let _ = jwt_secret;
    let position = store.last_committed().await?.position;
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
    Ok(())
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

/// The demo athlete's password: printed by `stridelog demo`, and only ever set by it.
const DEMO_PASSWORD: &str = "stridelog-demo";

async fn engine(args: &StoreArgs) -> anyhow::Result<projections::Engine> {
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    let db = projections::ReadDb::connect(&args.url()).await?;
    Ok(projections::Engine::new(store, db, projections::all()))
}

async fn serve(
    args: &StoreArgs,
    listen: SocketAddr,
    embedded_worker: bool,
    jwt_secret: &[u8],
) -> anyhow::Result<()> {
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    // The single-process default keeps read models current itself; deployments with separate
    // `stridelog worker` processes turn this off (leases would make it harmless either way).
    // Each embedded worker is supervised: restarted after a failure, and shown in /health.
    let (stop_worker, worker_stopped) = tokio::sync::oneshot::channel::<()>();
    let supervised = workers::Workers::default();
    let worker = embedded_worker.then(|| {
        let (store, url, supervised) = (store.clone(), args.url(), supervised.clone());
        tokio::spawn(async move {
            let stop = async {
                let _ = worker_stopped.await;
            };
            workers::run_supervised(store, &url, supervised, Default::default(), stop).await;
        })
    });
    let info = store.info().await?;
    let commands = commands::CommandBus::new(
        store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let read_db = projections::ReadDb::connect(&args.url()).await?;
    let engine = std::sync::Arc::new(projections::Engine::new(
        store.clone(),
        read_db,
        projections::all(),
    ));
    let app = api::router(
        api::AppState::new(store, commands, engine, jwt_secret)?.with_workers(supervised),
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        backend = info.backend,
        schema_version = info.schema_version,
        "stridelog serving"
    );
    // Connect info gives login throttling the client's address.
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .context("server failed");
    let _ = stop_worker.send(());
    if let Some(worker) = worker {
        let _ = worker.await;
    }
    served
}

/// Ctrl-C or SIGTERM: stop accepting, finish in-flight requests, exit.
async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}
