//! CPU-bound work (parsing kept activity files, correlation analysis) runs on tokio's blocking
//! threads, never on the async workers that serve HTTP and drive the projector, and at most one
//! job per core at a time: a burst of analyses queues here instead of starving the runtime.

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use tokio::sync::Semaphore;

fn slots() -> &'static Arc<Semaphore> {
    static SLOTS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Arc::new(Semaphore::new(cores))
    })
}

/// Runs `job` on a blocking thread once a core is free. A panic in it becomes an error (the
/// caller decides: the projector skips the event as poison, the correlation worker fails the
/// athlete's run), never a crash of the calling task.
pub async fn run<T, F>(job: F) -> anyhow::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let permit = slots()
        .clone()
        .acquire_owned()
        .await
        .context("the CPU job queue is closed")?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        job()
    })
    .await
    .context("a CPU job failed")
}
