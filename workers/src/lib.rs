//! Background work that runs beside or apart from `serve`. Every worker can run in any number
//! of processes: leases in the database decide who does what, never process memory.

pub mod correlations;
pub mod exports;
pub mod supervise;

use std::future::Future;
use std::sync::Arc;

use projections::{Engine, ReadDb};
use store::EventStore;

pub use supervise::{RestartBackoff, WorkerState, WorkerStatus, Workers, supervise};

/// The projector daemon: keeps every read model up to date until `stop` resolves. Several may
/// run against one database; each projection is applied by exactly one of them at a time.
pub async fn run_projector(
    store: EventStore,
    url: &str,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let db = ReadDb::connect(url).await?;
    let engine = Arc::new(Engine::new(store, db, projections::all()));
    tracing::info!(runner = engine.owner(), projections = ?engine.names(), "projector started");
    engine.run(stop).await?;
    tracing::info!("projector stopped");
    Ok(())
}

/// How often the correlation worker looks for due athletes when it found none.
pub const CORRELATION_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// The correlation worker: computes snapshots for athletes with a queued request or changed
/// inputs (debounced), until `stop` resolves. Any number may run; leases share the athletes.
pub async fn run_correlations(
    store: EventStore,
    url: &str,
    poll: std::time::Duration,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let db = ReadDb::connect(url).await?;
    let engine = Engine::new(store.clone(), db, projections::all());
    let owner = format!("correlations-{}", engine.owner());
    tracing::info!(%owner, "correlation worker started");
    tokio::pin!(stop);
    loop {
        let busy = match correlations::step(&engine, &owner, 16).await {
            // Failures hold their athlete's lease until it expires, so only successes mean
            // there may be more to do at once.
            Ok(s) => s.computed > 0,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "correlation worker step failed");
                false
            }
        };
        // Exports are built by the same worker: both are per-athlete jobs that read the read
        // models, and an export is rare enough not to need a worker of its own.
        let exported = match exports::step(&engine, &store).await {
            Ok(built) => built,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "export step failed");
                false
            }
        };
        let busy = busy || exported;
        let pause = if busy {
            std::time::Duration::ZERO
        } else {
            poll
        };
        tokio::select! {
            biased;
            _ = &mut stop => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("correlation worker stopped");
    Ok(())
}

/// Every background worker in this process: the projector and the correlation worker, until
/// `stop` resolves. The first failure ends them all: for `stridelog worker`, whose process
/// supervisor (systemd, Kubernetes) restarts it. `serve` uses [`run_supervised`] instead.
pub async fn run_all(
    store: EventStore,
    url: &str,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let projector = run_projector(store.clone(), url, stopped(rx.clone()));
    let correlations = run_correlations(store, url, CORRELATION_POLL, stopped(rx));
    let signal = async move {
        stop.await;
        let _ = tx.send(true);
        Ok(())
    };
    tokio::try_join!(projector, correlations, signal).map(|_| ())
}

/// The workers `serve` embeds, each supervised: one that fails or panics is restarted after a
/// backoff while the API goes on serving, and `workers` shows which is down (`/health`).
pub async fn run_supervised(
    store: EventStore,
    url: &str,
    workers: Workers,
    backoff: RestartBackoff,
    stop: impl Future<Output = ()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let projector = supervise("projector", workers.clone(), backoff, rx.clone(), {
        let (store, url) = (store.clone(), url.to_string());
        move |signal| {
            let (store, url) = (store.clone(), url.clone());
            async move { run_projector(store, &url, signal.wait()).await }
        }
    });
    let correlations = supervise("correlations", workers, backoff, rx, {
        let url = url.to_string();
        move |signal| {
            let (store, url) = (store.clone(), url.clone());
            async move { run_correlations(store, &url, CORRELATION_POLL, signal.wait()).await }
        }
    });
    let signal = async move {
        stop.await;
        let _ = tx.send(true);
    };
    tokio::join!(projector, correlations, signal);
}
