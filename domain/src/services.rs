use std::sync::Arc;

use chrono::{DateTime, Utc};

/// The one source of "now" the aggregates may use. Production passes the system clock (in
/// `commands`); tests pass a [`FixedClock`], which keeps this crate free of clock reads.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock stopped at one instant.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

/// What every aggregate's `handle` receives besides the command (cqrs-es `Aggregate::Services`).
#[derive(Clone)]
pub struct DomainServices {
    pub clock: Arc<dyn Clock>,
}

impl DomainServices {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }

    pub fn fixed(now: DateTime<Utc>) -> Self {
        Self::new(Arc::new(FixedClock(now)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
