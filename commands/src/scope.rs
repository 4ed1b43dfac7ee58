//! A scope a request's commands run in, set by the admin data-injection route around the
//! athlete route it replays: in a dry run every command is decided and nothing is appended, and
//! in both cases the scope learns which events were decided. It is task-local, so the athlete
//! routes need no parameter for it and cannot tell an injection from the athlete's own request
//! (they validate and decide exactly as they always do).

use std::sync::{Arc, Mutex};

tokio::task_local! {
    static SCOPE: Arc<Injection>;
}

#[derive(Debug, Default)]
pub struct Injection {
    dry_run: bool,
    decided: Mutex<Vec<String>>,
}

impl Injection {
    pub fn new(dry_run: bool) -> Arc<Self> {
        Arc::new(Self {
            dry_run,
            decided: Mutex::new(Vec::new()),
        })
    }

    /// The event types decided in this scope, in order.
    pub fn decided(&self) -> Vec<String> {
        self.decided
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs `f` with `scope` current.
pub async fn run<F: Future>(scope: Arc<Injection>, f: F) -> F::Output {
    SCOPE.scope(scope, f).await
}

/// Whether commands in the current scope are decided only.
pub(crate) fn dry_run() -> bool {
    SCOPE.try_with(|s| s.dry_run).unwrap_or(false)
}

/// Records events decided (in a dry run) or appended, when a scope is current.
pub(crate) fn record(event_types: impl Iterator<Item = String>) {
    let _ = SCOPE.try_with(|s| {
        s.decided
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(event_types)
    });
}
