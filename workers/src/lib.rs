//! Background work that runs beside or apart from `serve`. Every worker can run in any number
//! of processes: leases in the database decide who does what, never process memory.

use std::future::Future;
use std::sync::Arc;

use projections::{Engine, ReadDb};
use store::EventStore;

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
