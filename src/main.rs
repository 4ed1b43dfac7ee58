//! `stridelog`: the one binary. `stridelog --help` lists the subcommands; docs/operations.md
//! describes each and every setting.

mod bench;
mod config;
mod events_cli;

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
    },
    /// Apply the store's migrations and exit.
    Migrate {
        #[arg(long)]
        json: bool,
    },
    /// Read the event log: tail it live, or show a stream or an athlete, as of any point.
    #[command(subcommand)]
    Events(events_cli::EventsCommand),
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
        Command::Serve { listen } => serve(&cli.store, listen).await,
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
        Command::Bench(cmd) => bench::run(&cli.store, cmd).await,
    }
}

async fn serve(args: &StoreArgs, listen: SocketAddr) -> anyhow::Result<()> {
    let store = args.open().await?;
    store.migrate().await.context("migration failed")?;
    let info = store.info().await?;
    let commands = commands::CommandBus::new(
        store.clone(),
        domain::DomainServices::new(Arc::new(commands::SystemClock)),
        domain::upcasters(),
    );
    let app = api::router(api::AppState { store, commands });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        address = %listener.local_addr()?,
        backend = info.backend,
        schema_version = info.schema_version,
        "stridelog serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .context("server failed")
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
