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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_at_most_one_per_core() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let active = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..cores * 4)
            .map(|i| {
                let (active, most) = (active.clone(), most.clone());
                tokio::spawn(run(move || {
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    // Long enough for the others to pile up behind the permits.
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    active.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                }))
            })
            .collect();
        let mut results = Vec::new();
        for job in jobs {
            results.push(job.await.unwrap().unwrap());
        }
        assert_eq!(results, (0..cores * 4).map(|i| i * 2).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(
            (1..=cores).contains(&most),
            "{most} jobs at once on {cores} cores"
        );
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_not_a_crash() {
        let err = run(|| -> u32 { panic!("corrupt file") }).await.unwrap_err();
        assert_eq!(err.to_string(), "a CPU job failed");
        // The permit came back: the next job runs.
        assert_eq!(run(|| 7).await.unwrap(), 7);
    }
}
