//! Reading the log for the projections: each batch read and decoded once however many
//! generations ask for it, and read ahead while history is being built.

use super::*;

/// Events read from the log after a cursor, decoded once for every projection that reads them.
pub(super) struct ReadBatch {
    pub(super) events: Vec<RecordedEvent>,
    pub(super) decoded: Vec<Result<DomainEvent, serde_json::Error>>,
}

/// A read of up to `.1` events after the cursor `.0`.
type BatchKey = (LogCursor, i64);

/// One batch, read once however many generations ask for it at the same time.
type BatchCell = Arc<tokio::sync::OnceCell<Arc<ReadBatch>>>;

/// Batches kept for projections reading from the same cursor: generations built side by side
/// (`rebuild --all`, a version bump of several projections) read and decrypt the log once.
const RECENT_BATCHES: usize = 16;

/// How many batches a reader of a full batch has read ahead of it. Each one fetched starts the
/// fetch of the next before it is decoded, so the database's work on one batch overlaps the
/// decoding of another and the projections' writes of a third. A rebuild of one projection
/// left the machine 40% idle with one batch read ahead.
const READ_AHEAD: usize = 2;

#[derive(Clone)]
pub(super) struct Reader {
    log: EventStore,
    pub(super) decoder: Arc<Decoder>,
    recent: Arc<std::sync::Mutex<std::collections::VecDeque<(BatchKey, BatchCell)>>>,
}

impl Reader {
    pub(super) fn new(log: EventStore) -> Self {
        Self {
            log,
            decoder: Arc::new(Decoder::default()),
            recent: Default::default(),
        }
    }

    /// The batch after `after`, from the recent ones when another generation read it already
    /// (or is reading it now). A kept batch may be shorter than a fresh read would be (events
    /// committed since), never different: the log never changes behind a cursor a reader has
    /// passed (gap-safe reading). Only full batches stay kept, so a projection at the head sees
    /// new events on its next read; after a full batch the next ones are read ahead,
    /// overlapping the log read with the projections' writes while history is being built.
    pub(super) async fn read(
        &self,
        after: LogCursor,
        limit: i64,
    ) -> anyhow::Result<Arc<ReadBatch>> {
        let cell = self.cell((after, limit)).0;
        let batch = cell
            .get_or_try_init(|| self.load(after, limit, READ_AHEAD))
            .await?
            .clone();
        let full = batch.events.len() as i64 == limit;
        if !full {
            let mut recent = self.recent.lock().expect("not poisoned");
            recent.retain(|(c, kept)| !(*c == (after, limit) && Arc::ptr_eq(kept, &cell)));
        } else if let Some(last) = batch.events.last() {
            self.read_ahead(last.cursor, limit, READ_AHEAD - 1);
        }
        Ok(batch)
    }

    /// Fetches a batch, starts fetching up to `ahead` more after it when it is full, then
    /// decodes it.
    async fn load(
        &self,
        after: LogCursor,
        limit: i64,
        ahead: usize,
    ) -> anyhow::Result<Arc<ReadBatch>> {
        let fetched = self.log.fetch_log(after, limit).await?;
        if fetched.len() as i64 == limit
            && ahead > 0
            && let Some(next) = fetched.last_cursor()
        {
            self.read_ahead(next, limit, ahead - 1);
        }
        let events = self.log.decode_log(fetched)?;
        let decoded = events.iter().map(|e| self.decoder.decode(e)).collect();
        Ok(Arc::new(ReadBatch { events, decoded }))
    }

    /// Reads the batch after `after` in the background, unless it is kept or being read.
    fn read_ahead(&self, after: LogCursor, limit: i64, ahead: usize) {
        let (cell, new) = self.cell((after, limit));
        if new {
            let reader = self.clone();
            tokio::spawn(async move {
                // A failed read ahead leaves the cell empty: the next reader reads it.
                let _ = cell
                    .get_or_try_init(|| reader.load(after, limit, ahead))
                    .await;
            });
        }
    }

    /// The kept cell for a read of `limit` events after a cursor, and whether it was just made.
    fn cell(&self, after: BatchKey) -> (BatchCell, bool) {
        let mut recent = self.recent.lock().expect("not poisoned");
        if let Some((_, cell)) = recent.iter().find(|(c, _)| *c == after) {
            return (cell.clone(), false);
        }
        if recent.len() == RECENT_BATCHES {
            recent.pop_front();
        }
        let cell = BatchCell::default();
        recent.push_back((after, cell.clone()));
        (cell, true)
    }
}
