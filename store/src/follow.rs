//! Following the global log: the one way read models, the relay and `events tail` consume it.

use std::time::Duration;

use futures::Stream;

use crate::error::StoreResult;
use crate::model::{LogCursor, RecordedEvent};

/// Read access to the global log, in log order, never skipping a committed event.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync {
    /// Up to `limit` events after `after`, in log order. An event missing from this answer
    /// because its transaction is still open will be returned by a later call, after `after`.
    async fn read_log(&self, after: LogCursor, limit: i64) -> StoreResult<Vec<RecordedEvent>>;

    /// The cursor of the newest event a follower may read now.
    async fn head(&self) -> StoreResult<LogCursor>;

    /// Returns when an append may have happened, or after `timeout`. A hint only.
    async fn wait_for_append(&self, timeout: Duration);
}

/// How often a follower polls when no wake-up hint arrives.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Every event after `from`, forever: batches while behind, then wake-ups and polling.
/// The stream ends only on an error, which it yields.
pub fn follow<L: EventLog + Clone + 'static>(
    log: L,
    from: LogCursor,
    batch: i64,
) -> impl Stream<Item = StoreResult<RecordedEvent>> {
    futures::stream::unfold(
        (log, from, std::collections::VecDeque::new(), false),
        move |(log, mut cursor, mut buffer, failed)| async move {
            if failed {
                return None;
            }
            loop {
                if let Some(event) = buffer.pop_front() {
                    return Some((Ok(event), (log, cursor, buffer, false)));
                }
                match log.read_log(cursor, batch).await {
                    Ok(events) if events.is_empty() => log.wait_for_append(POLL_INTERVAL).await,
                    Ok(events) => {
                        cursor = events.last().expect("non-empty").cursor;
                        buffer.extend(events);
                    }
                    Err(e) => return Some((Err(e), (log, cursor, buffer, true))),
                }
            }
        },
    )
}
