//! `stridelog bench`: measurements reported as ratios to a baseline taken in the same run, on a
//! throwaway database, so figures from different machines can be compared.

use std::future::Future;

use anyhow::{Context, bail};
use sqlx::PgPool;
use uuid::Uuid;

mod analyze;
mod api;
mod append;
mod correlations;
mod rebuild;

#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Append throughput and latency against plain INSERT + COMMIT, then batch appends, then
    /// command latency for an athlete with ten years of history against a new athlete.
    /// Needs PostgreSQL; creates and drops its own database on that server.
    Append(append::Args),
    /// Rebuild throughput of every read model over generated athletes, beside a baseline that
    /// reads and decrypts the same events with no projection work; then follower lag under a
    /// steady append rate. PostgreSQL with --database-url postgres://… (a scratch database is
    /// created and dropped), else a scratch SQLite file.
    Rebuild(rebuild::Options),
    /// Parse + efficiency analysis of a one-hour 1 Hz run (GPX), beside parsing alone. No
    /// database.
    Analyze(analyze::Args),
    /// The correlation analysis of one athlete with 730 days of data (every input, both
    /// outcomes, lags 0-7, both methods), single-threaded, beside building its daily series
    /// from the read models; then one worker process computing every athlete's snapshot.
    /// PostgreSQL with --database-url postgres://… (a scratch database is created and dropped),
    /// else a scratch SQLite file.
    Correlations(correlations::Config),
    /// HTTP requests per second and latency of `GET /v1/activities` and
    /// `PUT /v1/checkins/{date}` at N concurrent connections, each beside `GET /health` on the
    /// same server in the same run. Needs PostgreSQL; creates and drops its own database.
    Api(api::Options),
}

/// Runs `cmd` against the server or file at `store_url`; `redact` shows that URL in errors
/// without its password.
pub async fn run(
    store_url: &str,
    redact: fn(&str) -> String,
    cmd: BenchCommand,
) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Append(args) => append::run(store_url, redact, args).await,
        BenchCommand::Analyze(args) => analyze::run(args),
        BenchCommand::Api(options) => api::run(store_url, redact, options).await,
        BenchCommand::Correlations(config) => correlations::run(store_url, redact, config).await,
        BenchCommand::Rebuild(options) => {
            on_scratch(store_url, redact, |url, _| async move {
                rebuild::measure(&url, options).await
            })
            .await
        }
    }
}

fn require_postgres(store_url: &str, bench: &str) -> anyhow::Result<()> {
    if !store_url.starts_with("postgres") {
        bail!(
            "bench {bench} measures PostgreSQL: set --database-url postgres://… (a server where it may create a database)"
        );
    }
    Ok(())
}

/// Runs `measure` with the URL of a scratch store and its backend's name: a database created
/// (and dropped afterwards) on the PostgreSQL server `store_url` names, else a SQLite file in a
/// temporary directory.
async fn on_scratch<F, Fut>(
    store_url: &str,
    redact: fn(&str) -> String,
    measure: F,
) -> anyhow::Result<()>
where
    F: FnOnce(String, &'static str) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if store_url.starts_with("postgres") {
        let scratch = ScratchDb::create(store_url, redact).await?;
        let result = measure(scratch.url.clone(), "postgres").await;
        scratch.drop_db().await;
        return result;
    }
    let dir = tempfile::tempdir()?;
    measure(
        format!("sqlite://{}/bench.db", dir.path().display()),
        "sqlite",
    )
    .await
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
