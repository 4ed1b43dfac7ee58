//! Supervision of the workers `serve` embeds: a worker that returns an error, ends unasked or
//! panics is logged and restarted after a capped exponential backoff, and its state is kept
//! where `/health` reads it. The state describes this process's workers only, so it lives in
//! memory, not in the database.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

/// What a supervised worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerState {
    Running,
    /// Failed; waiting out the backoff before the next start.
    Restarting,
    /// Asked to stop, and stopped.
    Stopped,
}

/// One worker as `/health` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerStatus {
    pub name: &'static str,
    pub state: WorkerState,
    /// Since when it has been in `state`.
    pub since: DateTime<Utc>,
    /// Restarts since the process started.
    pub restarts: u32,
    /// Why it last failed (the error chain, or the panic message).
    pub last_error: Option<String>,
}

/// The supervised workers of this process; cheap to clone, shared with the API.
#[derive(Clone)]
pub struct Workers {
    state: Arc<watch::Sender<Vec<WorkerStatus>>>,
}

impl Default for Workers {
    fn default() -> Self {
        Self {
            state: Arc::new(watch::channel(Vec::new()).0),
        }
    }
}

impl Workers {
    /// Every worker, in the order they were first started.
    pub fn snapshot(&self) -> Vec<WorkerStatus> {
        self.state.borrow().clone()
    }

    /// Changes as they happen (tests wait on these rather than on time).
    pub fn subscribe(&self) -> watch::Receiver<Vec<WorkerStatus>> {
        self.state.subscribe()
    }

    fn set(&self, name: &'static str, state: WorkerState, error: Option<String>) {
        self.state.send_modify(|all| {
            let now = Utc::now();
            match all.iter_mut().find(|w| w.name == name) {
                Some(w) => {
                    if state == WorkerState::Running && w.state == WorkerState::Restarting {
                        w.restarts += 1;
                    }
                    w.state = state;
                    w.since = now;
                    if error.is_some() {
                        w.last_error = error;
                    }
                }
                None => all.push(WorkerStatus {
                    name,
                    state,
                    since: now,
                    restarts: 0,
                    last_error: error,
                }),
            }
        });
    }
}

/// How long to wait before restarting a worker that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartBackoff {
    pub first: Duration,
    pub max: Duration,
    /// A run at least this long resets the backoff: it was working, not crash-looping.
    pub healthy_after: Duration,
}

impl Default for RestartBackoff {
    fn default() -> Self {
        Self {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(300),
        }
    }
}

impl RestartBackoff {
    /// The delay after `delay`: doubled, at most `max`.
    pub fn next(&self, delay: Duration) -> Duration {
        delay.saturating_mul(2).min(self.max)
    }
}

/// Runs `start()` as a task until `stop` turns true, restarting it after a backoff whenever it
/// fails, panics or ends unasked. `start` gets a future that resolves when the worker should
/// stop.
pub async fn supervise<F, Fut>(
    name: &'static str,
    workers: Workers,
    backoff: RestartBackoff,
    mut stop: watch::Receiver<bool>,
    mut start: F,
) where
    F: FnMut(StopSignal) -> Fut,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let mut delay = backoff.first;
    loop {
        if *stop.borrow() {
            break;
        }
        workers.set(name, WorkerState::Running, None);
        let started = tokio::time::Instant::now();
        // A task of its own: a panic ends the task, not the supervisor.
        let outcome = tokio::spawn(start(StopSignal(stop.clone()))).await;
        if *stop.borrow() {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(worker = name, error = %format!("{e:#}"), "worker failed while stopping")
                }
                Err(e) => tracing::warn!(worker = name, error = %e, "worker failed while stopping"),
            }
            break;
        }
        let error = match outcome {
            Ok(Ok(())) => "ended without being asked to stop".to_string(),
            Ok(Err(e)) => format!("{e:#}"),
            Err(join) => match join.try_into_panic() {
                Ok(panic) => format!("panicked: {}", panic_message(panic.as_ref())),
                Err(join) => format!("{join}"),
            },
        };
        if started.elapsed() >= backoff.healthy_after {
            delay = backoff.first;
        }
        tracing::error!(worker = name, %error, restart_in_s = delay.as_secs_f64(), "worker failed; restarting it");
        workers.set(name, WorkerState::Restarting, Some(error));
        tokio::select! {
            _ = stop.wait_for(|s| *s) => break,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = backoff.next(delay);
    }
    workers.set(name, WorkerState::Stopped, None);
}

/// Resolves when the supervisor asks the worker to stop.
pub struct StopSignal(watch::Receiver<bool>);

impl StopSignal {
    pub async fn wait(mut self) {
        // A dropped sender means the supervisor is gone: stop as well.
        let _ = self.0.wait_for(|s| *s).await;
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Waits until the worker is in `state`. The runtime has one thread: the supervisor sleeps
    /// out its backoff only after the test task, woken by the change, has looked at it.
    async fn until(workers: &Workers, state: WorkerState, restarts: u32) -> WorkerStatus {
        let mut rx = workers.subscribe();
        let all = rx
            .wait_for(|all| {
                all.iter()
                    .any(|w| w.state == state && w.restarts == restarts)
            })
            .await
            .unwrap();
        all[0].clone()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_failing_worker_is_restarted_and_reported_in_between() {
        let workers = Workers::default();
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(0u32);
        let starts = Arc::new(AtomicU32::new(0));
        let backoff = RestartBackoff {
            first: Duration::from_millis(10),
            max: Duration::from_millis(20),
            healthy_after: Duration::from_secs(3600),
        };
        let supervisor = tokio::spawn({
            let (workers, starts) = (workers.clone(), starts.clone());
            supervise("w", workers, backoff, stopped, move |signal| {
                let n = starts.fetch_add(1, Ordering::SeqCst);
                let mut released = released.clone();
                async move {
                    // Each run fails only once the test has seen it running.
                    let _ = released.wait_for(|r| *r > n).await;
                    match n {
                        0 => anyhow::bail!("database unreachable"),
                        1 => panic!("a bug"),
                        _ => {
                            signal.wait().await;
                            Ok(())
                        }
                    }
                }
            })
        });
        until(&workers, WorkerState::Running, 0).await;
        release.send(1).unwrap();
        let restarting = until(&workers, WorkerState::Restarting, 0).await;
        assert_eq!(
            restarting.last_error.as_deref(),
            Some("database unreachable")
        );

        until(&workers, WorkerState::Running, 1).await;
        release.send(2).unwrap();
        let restarting = until(&workers, WorkerState::Restarting, 1).await;
        assert_eq!(restarting.last_error.as_deref(), Some("panicked: a bug"));

        let running = until(&workers, WorkerState::Running, 2).await;
        assert_eq!(
            running.last_error.as_deref(),
            Some("panicked: a bug"),
            "the last failure stays visible after the restart"
        );
        release.send(3).unwrap();
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        let done = workers.snapshot();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].state, WorkerState::Stopped);
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_stop_during_the_backoff_ends_the_supervisor() {
        let workers = Workers::default();
        let (stop, stopped) = watch::channel(false);
        let backoff = RestartBackoff {
            first: Duration::from_secs(3600),
            ..RestartBackoff::default()
        };
        let supervisor = tokio::spawn(supervise(
            "w",
            workers.clone(),
            backoff,
            stopped,
            |_| async { anyhow::bail!("still down") },
        ));
        until(&workers, WorkerState::Restarting, 0).await;
        stop.send(true).unwrap();
        supervisor.await.unwrap();
        let done = workers.snapshot();
        assert_eq!(done[0].state, WorkerState::Stopped);
        assert_eq!(done[0].last_error.as_deref(), Some("still down"));
    }

    #[test]
    fn restart_delays_double_up_to_the_cap() {
        let b = RestartBackoff::default();
        let mut delay = b.first;
        let mut seen = vec![delay.as_secs()];
        for _ in 0..7 {
            delay = b.next(delay);
            seen.push(delay.as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 32, 60, 60]);
    }
}
