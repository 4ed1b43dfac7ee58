//! An athlete's export (GDPR Articles 15 and 20): every event of theirs, decrypted, each kind
//! also as JSON and CSV, their read-model rows, and the activity files they imported, in one
//! zip with a README. Built by a worker from a queued job; the archive is stored as a blob
//! sealed with the athlete's data key, so erasure makes it unreadable with everything else.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use projections::Engine;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};
use store::EventStore;
use uuid::Uuid;

/// The version of the archive's layout and of each JSON file in it.
pub const SCHEMA_VERSION: u32 = 1;
/// How long a download token is good for.
pub const DOWNLOAD_TTL_S: i64 = 24 * 3600;
/// A job running this long without finishing is taken over by another worker.
pub const RUNNING_LEASE_S: i64 = 10 * 60;
/// The blob format of archives (never listed among the athlete's kept files).
pub const ARCHIVE_FORMAT: &str = "stridelog-export-zip";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    pub job_id: Uuid,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Records written so far, of `progress_total` (0 until the worker has counted them).
    pub progress_done: i64,
    pub progress_total: i64,
    pub byte_len: Option<i64>,
    /// A fixed phrase; the cause is in the worker's log.
    pub error: Option<String>,
}

fn now_us() -> i64 {
    Utc::now().timestamp_micros()
}

fn time(us: i64) -> anyhow::Result<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us).context("time out of range")
}

const JOB_COLUMNS: &str = "job_id, state, requested_at_us, finished_at_us, progress_done, \
                           progress_total, byte_len, error";

/// An `export_jobs` row, as [`JOB_COLUMNS`] reads it.
#[derive(sqlx::FromRow)]
struct JobRow {
    job_id: String,
    state: String,
    requested_at_us: i64,
    finished_at_us: Option<i64>,
    progress_done: i64,
    progress_total: i64,
    byte_len: Option<i64>,
    error: Option<String>,
}

fn job_of(r: JobRow) -> anyhow::Result<Job> {
    Ok(Job {
        job_id: r.job_id.parse()?,
        state: r.state,
        requested_at: time(r.requested_at_us)?,
        finished_at: r.finished_at_us.map(time).transpose()?,
        progress_done: r.progress_done,
        progress_total: r.progress_total,
        byte_len: r.byte_len,
        error: r.error,
    })
}

/// The athlete's open job (queued or running), or a new one: asking twice gives one export.
/// `true` with a job created now.
pub async fn request(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<(Job, bool)> {
    let open = || async {
        anyhow::Ok(
            sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM export_jobs WHERE athlete_id = $1 \
                 AND state IN ('queued', 'running')"
            )))
            .bind(athlete.to_string())
            .fetch_optional(pool)
            .await?
            .map(job_of)
            .transpose()?,
        )
    };
    if let Some(job) = open().await? {
        return Ok((job, false));
    }
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO export_jobs (job_id, athlete_id, state, requested_at_us) \
         VALUES ($1, $2, 'queued', $3)",
    )
    .bind(id.to_string())
    .bind(athlete.to_string())
    .bind(now_us())
    .execute(pool)
    .await;
    match inserted {
        Ok(_) => {}
        // A request racing this one opened the job first (`export_jobs_open`): it is theirs
        // and ours.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            return Ok((open().await?.context("the open job just inserted")?, false));
        }
        Err(e) => return Err(e.into()),
    }
    Ok((
        job(pool, athlete, id)
            .await?
            .context("the job just inserted")?,
        true,
    ))
}

/// One of the athlete's jobs; someone else's answers `None`.
pub async fn job(pool: &AnyPool, athlete: Uuid, job_id: Uuid) -> anyhow::Result<Option<Job>> {
    sqlx::query_as::<_, JobRow>(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM export_jobs WHERE job_id = $1 AND athlete_id = $2"
    )))
    .bind(job_id.to_string())
    .bind(athlete.to_string())
    .fetch_optional(pool)
    .await?
    .map(job_of)
    .transpose()
}

/// Erasure: the athlete's export jobs go (their archives went with the kept files and the key).
pub async fn forget(pool: &AnyPool, athlete: Uuid) -> anyhow::Result<()> {
    sqlx::query("DELETE FROM export_jobs WHERE athlete_id = $1")
        .bind(athlete.to_string())
        .execute(pool)
        .await?;
    Ok(())
}

fn token_hash(token: &str) -> String {
    store::blobs::sha256_hex(token.as_bytes())
}

/// A new download token for a finished job, good for [`DOWNLOAD_TTL_S`] and one download; it
/// replaces the job's previous one. Only its hash is kept.
pub async fn issue_download(
    pool: &AnyPool,
    athlete: Uuid,
    job_id: Uuid,
) -> anyhow::Result<Option<(String, DateTime<Utc>)>> {
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    let expires = now_us() + DOWNLOAD_TTL_S * 1_000_000;
    let updated = sqlx::query(
        "UPDATE export_jobs SET token_hash = $1, token_expires_at_us = $2, \
         token_used_at_us = NULL WHERE job_id = $3 AND athlete_id = $4 AND state = 'done'",
    )
    .bind(token_hash(&token))
    .bind(expires)
    .bind(job_id.to_string())
    .bind(athlete.to_string())
    .execute(pool)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(None);
    }
    Ok(Some((token, time(expires)?)))
}

/// The archive a download token opens, once: `(athlete, blob id)`; `None` for an unknown,
/// expired or used token.
pub async fn take_download(pool: &AnyPool, token: &str) -> anyhow::Result<Option<(Uuid, Uuid)>> {
    let hash = token_hash(token);
    let now = now_us();
    let used = sqlx::query(
        "UPDATE export_jobs SET token_used_at_us = $1 WHERE token_hash = $2 \
         AND token_used_at_us IS NULL AND token_expires_at_us > $1 AND state = 'done'",
    )
    .bind(now)
    .bind(&hash)
    .execute(pool)
    .await?;
    if used.rows_affected() == 0 {
        return Ok(None);
    }
    let row: Option<(String, Option<String>)> =
        sqlx::query_as("SELECT athlete_id, blob_id FROM export_jobs WHERE token_hash = $1")
            .bind(&hash)
            .fetch_optional(pool)
            .await?;
    Ok(match row {
        Some((athlete, Some(blob))) => Some((athlete.parse()?, blob.parse()?)),
        _ => None,
    })
}

/// Builds the oldest queued export (or one whose worker stopped mid-way). `false` when there
/// was none.
pub async fn step(engine: &Engine, store: &EventStore) -> anyhow::Result<bool> {
    let pool = &engine.db().pool;
    let now = now_us();
    let candidate: Option<(String, String)> = sqlx::query_as(
        "SELECT job_id, athlete_id FROM export_jobs WHERE state = 'queued' \
         OR (state = 'running' AND started_at_us < $1) ORDER BY requested_at_us LIMIT 1",
    )
    .bind(now - RUNNING_LEASE_S * 1_000_000)
    .fetch_optional(pool)
    .await?;
    let Some((job_id, athlete)) = candidate else {
        return Ok(false);
    };
    // Claimed only if nobody else claimed it meanwhile.
    let claimed = sqlx::query(
        "UPDATE export_jobs SET state = 'running', started_at_us = $1 WHERE job_id = $2 \
         AND (state = 'queued' OR (state = 'running' AND started_at_us < $3))",
    )
    .bind(now)
    .bind(&job_id)
    .bind(now - RUNNING_LEASE_S * 1_000_000)
    .execute(pool)
    .await?;
    if claimed.rows_affected() == 0 {
        return Ok(true);
    }
    let athlete: Uuid = athlete.parse()?;
    match build(engine, store, &job_id, athlete).await {
        Ok((blob, len)) => {
            sqlx::query(
                "UPDATE export_jobs SET state = 'done', finished_at_us = $1, blob_id = $2, \
                 byte_len = $3, progress_done = progress_total WHERE job_id = $4",
            )
            .bind(now_us())
            .bind(blob.to_string())
            .bind(len)
            .bind(&job_id)
            .execute(pool)
            .await?;
        }
        Err(e) => {
            tracing::error!(job = %job_id, error = %format!("{e:#}"), "export failed");
            sqlx::query(
                "UPDATE export_jobs SET state = 'failed', finished_at_us = $1, \
                 error = 'the archive could not be built' WHERE job_id = $2",
            )
            .bind(now_us())
            .bind(&job_id)
            .execute(pool)
            .await?;
        }
    }
    Ok(true)
}

async fn progress(pool: &AnyPool, job_id: &str, done: i64, total: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE export_jobs SET progress_done = $1, progress_total = $2 WHERE job_id = $3")
        .bind(done)
        .bind(total)
        .bind(job_id)
        .execute(pool)
        .await?;
    Ok(())
}

/// One cell of a CSV: quoted when it holds a separator, a quote or a line break.
fn csv_cell(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => v.to_string(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Rows of objects as CSV: a column per key (the union, in order of first appearance after
/// the fixed leading ones); nested values as JSON text.
pub fn to_csv(rows: &[BTreeMap<String, Value>], leading: &[&str]) -> String {
    let mut columns: Vec<String> = leading.iter().map(|s| s.to_string()).collect();
    let mut seen: BTreeSet<String> = columns.iter().cloned().collect();
    for r in rows {
        for k in r.keys() {
            if seen.insert(k.clone()) {
                columns.push(k.clone());
            }
        }
    }
    let mut out = columns
        .iter()
        .map(|c| csv_cell(&Value::String(c.clone())))
        .collect::<Vec<_>>()
        .join(",");
    out.push('\n');
    for r in rows {
        let line = columns
            .iter()
            .map(|c| csv_cell(r.get(c).unwrap_or(&Value::Null)))
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A read-model row as JSON, whatever its column types.
fn row_json(r: &sqlx::any::AnyRow) -> Value {
    use sqlx::Column as _;
    let mut m = serde_json::Map::new();
    for (i, c) in r.columns().iter().enumerate() {
        let v = if let Ok(v) = r.try_get::<Option<i64>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<f64>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<String>, _>(i) {
            json!(v)
        } else if let Ok(v) = r.try_get::<Option<bool>, _>(i) {
            json!(v)
        } else {
            Value::Null
        };
        m.insert(c.name().to_string(), v);
    }
    Value::Object(m)
}

async fn build(
    engine: &Engine,
    store: &EventStore,
    job_id: &str,
    athlete: Uuid,
) -> anyhow::Result<(Uuid, i64)> {
    let pool = &engine.db().pool;
    let events = store.read_athlete(athlete, None).await?;
    let blobs = store.list_blobs(athlete, ARCHIVE_FORMAT).await?;
    let names = engine.names();
    let mut a = Archive {
        pool,
        job_id,
        athlete,
        total: (events.len() + blobs.len() + names.len()) as i64,
        done: 0,
        files: Vec::new(),
    };
    a.advance(0).await?;
    let by_type = a.add_events(&events).await?;
    a.add_read_models(engine, &names).await?;
    a.add_files(store, &blobs).await?;
    let readme = readme(athlete, events.len(), &by_type, blobs.len());
    a.files.insert(0, ("README.md".into(), readme.into_bytes()));
    let files = a.files;
    let zipped = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<u8>> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in files {
            w.start_file(name, options)?;
            w.write_all(&bytes)?;
        }
        Ok(w.finish()?.into_inner())
    })
    .await??;
    let stored = store.put_blob(athlete, ARCHIVE_FORMAT, &zipped).await?;
    Ok((stored.blob_id, zipped.len() as i64))
}

/// An archive being assembled, and the job's progress through it (events, then read models,
/// then files, each counted).
struct Archive<'a> {
    pool: &'a AnyPool,
    job_id: &'a str,
    athlete: Uuid,
    total: i64,
    done: i64,
    files: Vec<(String, Vec<u8>)>,
}

type Records = BTreeMap<String, Vec<BTreeMap<String, Value>>>;

impl Archive<'_> {
    async fn advance(&mut self, by: i64) -> anyhow::Result<()> {
        self.done += by;
        progress(self.pool, self.job_id, self.done, self.total).await
    }

    /// One JSON document of the archive.
    fn doc(&self, kind: &str, records: Value) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(&json!({
            "schema_version": SCHEMA_VERSION,
            "kind": kind,
            "athlete_id": self.athlete,
            "records": records,
        }))?)
    }

    /// The log: every event, and each kind on its own as JSON and CSV. Returns the records
    /// by kind, for the README.
    async fn add_events(&mut self, events: &[store::RecordedEvent]) -> anyhow::Result<Records> {
        let mut all = Vec::with_capacity(events.len());
        let mut by_type = Records::new();
        for (i, e) in events.iter().enumerate() {
            let payload = e.payload.json().cloned().unwrap_or(Value::Null);
            all.push(json!({
                "position": e.position,
                "recorded_at": e.recorded_at,
                "stream": e.stream.to_string(),
                "event_type": e.event_type,
                "event_version": e.event_version,
                "actor_role": e.metadata.actor.role,
                "impersonator_id": e.metadata.impersonator_id,
                "payload": payload,
            }));
            let mut row = BTreeMap::new();
            row.insert("position".to_string(), json!(e.position));
            row.insert("recorded_at".to_string(), json!(e.recorded_at));
            row.insert("stream".to_string(), json!(e.stream.to_string()));
            match payload {
                Value::Object(m) => row.extend(m),
                other => {
                    row.insert("value".into(), other);
                }
            }
            by_type.entry(e.event_type.clone()).or_default().push(row);
            if i % 1000 == 999 {
                self.advance(1000).await?;
            }
        }
        self.advance(events.len() as i64 % 1000).await?;
        let doc = self.doc("events", Value::Array(all))?;
        self.files.push(("events.json".into(), doc));
        for (event_type, rows) in &by_type {
            let doc = self.doc(event_type, serde_json::to_value(rows)?)?;
            self.files.push((format!("by_kind/{event_type}.json"), doc));
            self.files.push((
                format!("by_kind/{event_type}.csv"),
                to_csv(rows, &["position", "recorded_at", "stream"]).into_bytes(),
            ));
        }
        Ok(by_type)
    }

    /// The read models: every row of theirs, as the API serves them from.
    async fn add_read_models(&mut self, engine: &Engine, names: &[&str]) -> anyhow::Result<()> {
        for name in names {
            let p = engine.projection(name)?.clone();
            let t = engine.active_tables(name).await?;
            for base in p.tables() {
                let table = t.table(base);
                // Tables without an athlete column (site-wide counters) hold nothing of theirs.
                let Ok(rows) = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM {table} WHERE athlete_id = $1"
                )))
                .bind(self.athlete.to_string())
                .fetch_all(self.pool)
                .await
                else {
                    continue;
                };
                if rows.is_empty() {
                    continue;
                }
                let rows: Vec<Value> = rows.iter().map(row_json).collect();
                let doc = self.doc(&format!("{name}.{base}"), Value::Array(rows))?;
                self.files
                    .push((format!("read_models/{name}/{base}.json"), doc));
            }
            self.advance(1).await?;
        }
        if let Some(s) = projections::correlations::snapshot(self.pool, self.athlete).await? {
            let doc = self.doc("correlations.snapshot", serde_json::to_value(&s)?)?;
            self.files
                .push(("read_models/correlations/snapshot.json".into(), doc));
        }
        Ok(())
    }

    /// The files they imported, as they sent them.
    async fn add_files(
        &mut self,
        store: &EventStore,
        blobs: &[store::blobs::BlobRef],
    ) -> anyhow::Result<()> {
        let mut file_list = Vec::new();
        for b in blobs {
            if let Some(bytes) = store.get_blob(self.athlete, b.blob_id).await? {
                let name = format!("files/{}.{}", b.sha256, b.format);
                file_list.push(json!({"path": name, "format": b.format, "sha256": b.sha256,
                    "bytes": b.byte_len}));
                self.files.push((name, bytes));
            }
            self.advance(1).await?;
        }
        let doc = self.doc("files", Value::Array(file_list))?;
        self.files.push(("files/index.json".into(), doc));
        Ok(())
    }
}

fn readme(athlete: Uuid, events: usize, by_type: &Records, files: usize) -> String {
    let kinds: Vec<String> = by_type
        .iter()
        .map(|(k, v)| format!("- `by_kind/{k}.json` and `.csv`: {} records", v.len()))
        .collect();
    format!(
        "# Your stridelog data\n\n\
         Exported {now} (layout version {SCHEMA_VERSION}) for account {athlete}.\n\n\
         - `events.json`: everything you (or someone on your behalf) recorded, oldest first, \
         {events} events. This is the source of everything else.\n\
         {kinds}\n\
         - `read_models/`: the rows the service computed from those events (profile, \
         journal, activities and their efficiency metrics, correlation analyses).\n\
         - `files/`: the activity files you imported, byte for byte ({files} files; \
         `files/index.json` lists them).\n\n\
         Every JSON file has `schema_version`, `kind` and `records`. CSV files have one row \
         per record and a header; nested values are JSON text.\n",
        now = Utc::now().to_rfc3339(),
        kinds = kinds.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let rows = vec![
            BTreeMap::from([
                ("position".to_string(), json!(1)),
                ("notes".to_string(), json!("a, \"b\"\nc")),
            ]),
            BTreeMap::from([
                ("position".to_string(), json!(2)),
                ("sleep_h".to_string(), json!(7.5)),
                ("tags".to_string(), json!(["x"])),
            ]),
        ];
        assert_eq!(
            to_csv(&rows, &["position"]),
            "position,notes,sleep_h,tags\n1,\"a, \"\"b\"\"\nc\",,\n2,,7.5,\"[\"\"x\"\"]\"\n"
        );
    }
}
