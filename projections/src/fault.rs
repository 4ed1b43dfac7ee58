//! Which failures are worth waiting out. A projection error is either transient (the database
//! or the pool was momentarily unable: retrying the same event later succeeds) or
//! deterministic (the event cannot be applied by this build, however often it is tried). Only
//! the second may ever skip an event; skipping on the first loses read-model rows for nothing.

use std::time::Duration;

/// How a failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Wait and retry the same events; never skip. The reason is a fixed phrase, safe to log
    /// (it never carries payload data).
    Transient(&'static str),
    /// Retrying will fail again: after a one-event retry, the event is poison.
    Deterministic,
}

impl ErrorClass {
    pub fn is_transient(self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// Classifies an error by the first cause in its chain that is known to be transient. Anything
/// not recognised is deterministic: the engine still retries it once, one event at a time,
/// before it skips anything.
pub fn classify(error: &anyhow::Error) -> ErrorClass {
    for cause in error.chain() {
        if let Some(t) = cause.downcast_ref::<TransientFailure>() {
            return ErrorClass::Transient(t.reason);
        }
        if let Some(e) = cause.downcast_ref::<sqlx::Error>()
            && let class @ ErrorClass::Transient(_) = classify_sqlx(e)
        {
            return class;
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>()
            && let class @ ErrorClass::Transient(_) = classify_io(e)
        {
            return class;
        }
        if let Some(e) = cause.downcast_ref::<tokio::task::JoinError>()
            && e.is_cancelled()
        {
            return ErrorClass::Transient("task cancelled");
        }
    }
    ErrorClass::Deterministic
}

/// sqlx's own errors: the pool and the connection, and database errors by their code.
pub fn classify_sqlx(error: &sqlx::Error) -> ErrorClass {
    use ErrorClass::Transient;
    match error {
        sqlx::Error::PoolTimedOut => Transient("pool timed out"),
        sqlx::Error::PoolClosed => Transient("pool closed"),
        sqlx::Error::Io(_) => Transient("connection lost"),
        sqlx::Error::Tls(_) => Transient("connection lost"),
        // Unexpected bytes on the wire: the connection, not the event, is broken.
        sqlx::Error::Protocol(_) => Transient("connection protocol error"),
        sqlx::Error::WorkerCrashed => Transient("connection worker crashed"),
        sqlx::Error::BeginFailed => Transient("transaction could not begin"),
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
        _ => ErrorClass::Deterministic,
    }
}

fn classify_database(db: &dyn sqlx::error::DatabaseError) -> ErrorClass {
    use ErrorClass::Transient;
    let Some(code) = db.code() else {
        return ErrorClass::Deterministic;
    };
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        // Extended result codes: the primary code is the low byte.
        return match code.parse::<i32>().map(|c| c & 0xff) {
            Ok(5) => Transient("database busy"),
            Ok(6) => Transient("table locked"),
            _ => ErrorClass::Deterministic,
        };
    }
    match code.as_ref() {
        "40001" => Transient("serialization failure"),
        "40P01" => Transient("deadlock"),
        "55P03" => Transient("lock not available"),
        "57014" => Transient("statement cancelled"),
        "57P01" | "57P02" | "57P03" => Transient("server shutting down or starting"),
        "53300" => Transient("too many connections"),
        c if c.starts_with("08") => Transient("connection lost"),
        _ => ErrorClass::Deterministic,
    }
}

fn classify_io(error: &std::io::Error) -> ErrorClass {
    use std::io::ErrorKind::*;
    match error.kind() {
        TimedOut | Interrupted | WouldBlock => ErrorClass::Transient("i/o timed out"),
        ConnectionReset | ConnectionAborted | ConnectionRefused | BrokenPipe | NotConnected => {
            ErrorClass::Transient("connection lost")
        }
        _ => ErrorClass::Deterministic,
    }
}

/// Capped exponential backoff: 50 ms, doubling, at most 5 s by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1`, after `failures` consecutive failures (≥ 1).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(30);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }
}

/// A transient failure the engine gave up waiting out for now: nothing was skipped and the
/// checkpoint did not move past `position`; the next pass retries from there.
#[derive(Debug, thiserror::Error)]
#[error(
    "{projection}: transient failure at position {position} ({reason}); nothing skipped, will retry"
)]
pub struct TransientFailure {
    pub projection: &'static str,
    pub position: i64,
    pub reason: &'static str,
    #[source]
    pub source: anyhow::Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_connection_errors_are_transient() {
        let pool = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("reading the file");
        assert_eq!(classify(&pool), ErrorClass::Transient("pool timed out"));
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(
            classify(&anyhow::Error::from(io)),
            ErrorClass::Transient("connection lost")
        );
    }

    #[test]
    fn decode_and_logic_errors_are_deterministic() {
        assert_eq!(
            classify(&anyhow::anyhow!("cannot decode X v1: missing field")),
            ErrorClass::Deterministic
        );
        assert_eq!(
            classify(&anyhow::Error::from(sqlx::Error::RowNotFound)),
            ErrorClass::Deterministic
        );
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            classify(&anyhow::Error::from(missing)),
            ErrorClass::Deterministic
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::default();
        let delays: Vec<u128> = (1..=9).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        assert_eq!(b.delay(1000), Duration::from_secs(5));
    }
}
