//! `stridelog`: the one binary. `stridelog --help` lists the subcommands; docs/operations.md
//! describes each and every setting.

mod analyze_cli;
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

/// glibc's allocator spent a third of a rebuild's client CPU in malloc and free, most of it
/// consolidating fragmented chunks between batches (D38).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// The operator replaying: an admin or owner account (email or id), recorded in the
        /// security log. Without it the replay is recorded as `system`.
        #[arg(long)]
        actor: Option<String>,
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
        // Boxed: the Serve variant would otherwise be many times the size of the others.
        #[command(flatten)]
        edge: Box<config::EdgeArgs>,
        #[command(flatten)]
        limits: Box<config::LimitArgs>,
        #[command(flatten)]
        cache: config::CacheArgs,
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
    #[cfg(feature = "devtools")]
    Demo(devtools::showcase::DemoArgs),
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
        by: Option<uuid::Uuid>,
        /// The operator reading the trail: an admin or owner account (email or id), recorded
        /// in the security log as the reader. Without it the read is recorded as `system`.
        #[arg(long)]
        actor: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Replay history: an athlete as they were at a position or time.
    #[command(subcommand)]
    Replay(ReplayCommand),
    /// Measure the store (see docs/operations.md, "Benchmarks").
    #[cfg(feature = "devtools")]
    #[command(subcommand)]
    Bench(devtools::bench::BenchCommand),
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

/// `stridelog projections …`; exits 1 when `verify` finds differences.
async fn projections_command(
    args: &StoreArgs,
    cmd: projections_cli::ProjectionsCommand,
) -> anyhow::Result<()> {
    let engine = engine(args).await?;
    if projections_cli::run(&engine, cmd).await? {
        Ok(())
    } else {
        // `verify` found differences: already printed, exit 1 without an error line.
        std::process::exit(1)
    }
}

/// `stridelog migrate`: brings the schema up to date and says which version it is at.
async fn migrate(args: &StoreArgs, json: bool) -> anyhow::Result<()> {
    let store = args.open().await?;
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

/// `stridelog replay athlete`: the athlete's state as of a point in the log.
async fn replay_athlete(
    args: &StoreArgs,
    athlete_id: uuid::Uuid,
    as_of: store::AsOf,
    actor: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    let identity = identity::IdentityDb::new(projections::ReadDb::connect(&args.url()).await?.pool);
    let actor = users_cli::operator(&identity, actor).await?;
    let state = projections::replay::athlete_at(&store, athlete_id, as_of).await?;
    users_cli::record_view(&identity, actor, athlete_id, "replay").await?;
    if json {
        println!("{}", serde_json::to_string(&state)?);
    } else {
        println!("{}", serde_json::to_string_pretty(&state)?);
    }
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            listen,
            no_worker,
            jwt,
            edge,
            limits,
            cache,
        } => {
            let secret = jwt.secret()?;
            let cache = cache.cache(limits.redis_url.as_deref(), &limits.redis_prefix)?;
            let limits = limits.settings()?;
            serve(
                &cli.store, listen, !no_worker, &secret, &edge, limits, cache,
            )
            .await
        }
        #[cfg(feature = "devtools")]
        Command::Demo(args) => {
            // The demo signs tokens with a key kept beside its database, so it runs with no
            // configuration; `serve` refuses to start without a configured one.
            let secret = config::demo_jwt_secret(&cli.store)?;
            devtools::showcase::seed(&args, &cli.store.url(), cli.store.open()).await?;
            if args.no_serve {
                Ok(())
            } else {
                serve(
                    &cli.store,
                    args.listen,
                    true,
                    &secret,
                    &config::EdgeArgs::default(),
                    Default::default(),
                    Default::default(),
                )
                .await
            }
        }
        Command::Worker => {
            let store = cli.store.open().await?;
            store.migrate().await.context("migration failed")?;
            workers::run_all(store, &cli.store.url(), shutdown()).await
        }
        Command::Projections(cmd) => projections_command(&cli.store, cmd).await,
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
            by,
            actor,
            json,
        } => {
            let engine = engine(&cli.store).await?;
            let identity = identity::IdentityDb::new(engine.db().pool.clone());
            let actor = users_cli::operator(&identity, actor.as_deref()).await?;
            projections_cli::audit(&engine, athlete_id, since, by, json).await?;
            users_cli::record_view(&identity, actor, athlete_id, "audit").await
        }
        Command::Migrate { json } => migrate(&cli.store, json).await,
        Command::Events(cmd) => {
            let store = cli.store.open().await?;
            events_cli::run(store, cmd).await
        }
        Command::Replay(ReplayCommand::Athlete {
            athlete_id,
            as_of,
            actor,
            json,
        }) => replay_athlete(&cli.store, athlete_id, as_of, actor.as_deref(), json).await,
        #[cfg(feature = "devtools")]
        Command::Bench(cmd) => devtools::bench::run(&cli.store.url(), config::redact, cmd).await,
    }
}

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
    edge: &config::EdgeArgs,
    limits: api::limits::Settings,
    cache: api::cache::ReadCache,
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
        api::AppState::new(store, commands, engine, jwt_secret)?
            .with_workers(supervised)
            .with_request_limits(edge.requests())
            .with_limits(limits)?
            .with_cache(cache),
    );
    // Connections are capped below the descriptor limit, raised first to the hard limit the
    // system allows (a soft limit of 1,024 is common and far below what a server needs).
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024);
    let connections = edge.connections(nofile);
    let listener =
        api::server::listen(listen).with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        backend = info.backend,
        schema_version = info.schema_version,
        "stridelog serving"
    );
    tracing::info!(
        max_connections = connections.max_connections,
        max_per_client = connections.max_per_client,
        nofile,
        "connection limits"
    );
    let served = api::server::serve(listener, app, connections, shutdown())
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
