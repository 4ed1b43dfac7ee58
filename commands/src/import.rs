//! Importing an activity file: parse, deduplicate, keep the file, record the activity. The
//! HTTP import and `stridelog import` both come here, so a file gives the same activity either
//! way. Nothing is appended for a file that cannot be read.

use chrono::{DateTime, Utc};
use domain::activity::{Activity, ActivityCommand, RecordActivity, SampleStreamRef};
use domain::efficiency::{Efficiency, analyze};
use store::StreamId;
use uuid::Uuid;

use crate::{CommandBus, CommandContext, CommandError};

/// Same run, another file: starts within this of each other...
pub const DUPLICATE_START_S: i64 = 60;
/// ...and distances within this fraction of each other.
pub const DUPLICATE_DISTANCE: f64 = 0.02;

/// An activity already recorded, as a duplicate candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub activity_id: Uuid,
    pub start_time: DateTime<Utc>,
    pub distance_m: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Imported {
    Recorded {
        activity_id: Uuid,
        position: i64,
        start_time: DateTime<Utc>,
        distance_m: Option<f64>,
        efficiency: Box<Efficiency>,
    },
    /// This very file was imported before.
    AlreadyImported { activity_id: Uuid },
    /// The same run from another file (another format or device) is already recorded.
    DuplicateOf { activity_id: Uuid },
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: {problem}")]
    Unreadable { file: String, problem: String },
    #[error("{file}: {source}")]
    Refused {
        file: String,
        #[source]
        source: CommandError,
    },
}

/// The activity id of a file: the same bytes give the same activity.
pub fn activity_id(athlete: Uuid, sha256: &str) -> Uuid {
    Uuid::new_v5(&athlete, format!("activity:{sha256}").as_bytes())
}

pub fn is_duplicate(c: &Candidate, start: DateTime<Utc>, distance_m: Option<f64>) -> bool {
    let close_start = (c.start_time - start).num_seconds().abs() <= DUPLICATE_START_S;
    let close_distance = match (c.distance_m, distance_m) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => (a - b).abs() <= DUPLICATE_DISTANCE * a.max(b),
        _ => false,
    };
    close_start && close_distance
}

/// A file read and analysed, not yet recorded.
#[derive(Debug, Clone)]
pub struct Prepared {
    file: String,
    bytes: Vec<u8>,
    format: ingest::Format,
    parsed: ingest::Parsed,
    efficiency: Efficiency,
}

impl Prepared {
    pub fn start_time(&self) -> DateTime<Utc> {
        self.parsed.start_time
    }
}

/// Reads and analyses one file on the blocking pool (a large file takes a while to parse and
/// must not hold up the runtime's other requests). Nothing is stored.
pub async fn prepare(file: &str, bytes: Vec<u8>) -> Result<Prepared, ImportError> {
    let file = file.to_string();
    let name = file.clone();
    tokio::task::spawn_blocking(move || {
        let unreadable = |problem: String| ImportError::Unreadable {
            file: file.clone(),
            problem,
        };
        let format = ingest::Format::of_name(&file)
            .ok_or_else(|| unreadable(ingest::ImportError::Unsupported.to_string()))?;
        let parsed = ingest::parse(format, &bytes).map_err(|e| unreadable(e.to_string()))?;
        let efficiency = analyze(parsed.sport, &parsed.samples);
        Ok(Prepared {
            file,
            bytes,
            format,
            parsed,
            efficiency,
        })
    })
    .await
    .unwrap_or_else(|e| {
        Err(ImportError::Unreadable {
            file: name,
            problem: format!("the file could not be analysed ({e})"),
        })
    })
}

/// Imports one file for `athlete`, recorded in `timezone`. `earlier` are the athlete's
/// activities near the file's start, for the cross-format duplicate check.
pub async fn import_file(
    bus: &CommandBus,
    ctx: &CommandContext,
    file: &str,
    bytes: &[u8],
    timezone: &str,
    earlier: &[Candidate],
) -> Result<Imported, ImportError> {
    let prepared = prepare(file, bytes.to_vec()).await?;
    record(bus, ctx, prepared, timezone, earlier).await
}

/// Records a prepared file, unless it or the same run from another file already is.
pub async fn record(
    bus: &CommandBus,
    ctx: &CommandContext,
    prepared: Prepared,
    timezone: &str,
    earlier: &[Candidate],
) -> Result<Imported, ImportError> {
    let Prepared {
        file,
        bytes,
        format,
        parsed,
        efficiency: e,
    } = prepared;
    let file = file.as_str();
    let athlete = ctx.athlete_id;
    let sha256 = store::blobs::sha256_hex(&bytes);
    let id = activity_id(athlete, &sha256);
    let refused = |source: CommandError| ImportError::Refused {
        file: file.to_string(),
        source,
    };
    let distance_m = (e.distance_m > 0.0).then_some(e.distance_m);
    if let Some(before) = recorded_before(bus, id, earlier, parsed.start_time, distance_m)
        .await
        .map_err(refused)?
    {
        return Ok(before);
    }
    let heart_rate = HeartRate::of(&parsed.samples);
    let format_name = format_name(format);
    let blob = bus
        .store()
        .put_blob(athlete, format_name, &bytes)
        .await
        .map_err(|e| refused(e.into()))?;
    let command = ActivityCommand::RecordActivity(RecordActivity {
        athlete_id: athlete,
        activity_id: id,
        sport: parsed.sport,
        name: activity_name(file),
        start_time: parsed.start_time,
        timezone: timezone.to_string(),
        distance_m,
        moving_time_s: e.moving_time_s,
        elapsed_time_s: parsed.samples.iter().filter_map(|s| s.t_s).reduce(f64::max),
        avg_hr_bpm: heart_rate.avg_bpm,
        max_hr_bpm: heart_rate.max_bpm,
        elevation_gain_m: e.elevation_gain_m.map(|g| g.min(20_000.0)),
        elevation_loss_m: e.elevation_loss_m.map(|l| l.min(20_000.0)),
        source: format.source(),
        external_id: Some(format!("sha256:{sha256}")),
        laps: Vec::new(),
        samples: Some(SampleStreamRef {
            blob_id: blob.blob_id,
            format: format_name.to_string(),
            sha256: blob.sha256,
            sample_count: parsed.samples.len() as u64,
            byte_len: blob.byte_len,
        }),
    });
    // Keyed by the file, so two uploads of it racing each other record one activity.
    let ctx = ctx.clone().with_idempotency_key(format!("import:{sha256}"));
    let executed = bus
        .execute::<Activity>(&ctx, &id.to_string(), command)
        .await
        .map_err(refused)?;
    let position = executed.outcome.map(|o| o.cursor.position).unwrap_or(0);
    Ok(Imported::Recorded {
        activity_id: id,
        position,
        start_time: parsed.start_time,
        distance_m,
        efficiency: Box::new(e),
    })
}

/// What stands in for recording activity `id`: the activity itself when this very file was
/// imported before, or an `earlier` one that is the same run from another file.
async fn recorded_before(
    bus: &CommandBus,
    id: Uuid,
    earlier: &[Candidate],
    start: DateTime<Utc>,
    distance_m: Option<f64>,
) -> Result<Option<Imported>, CommandError> {
    let stream = StreamId::new(<Activity as cqrs_es::Aggregate>::TYPE, id.to_string());
    if bus.store().stream_version(&stream).await? > 0 {
        return Ok(Some(Imported::AlreadyImported { activity_id: id }));
    }
    Ok(earlier
        .iter()
        .find(|c| is_duplicate(c, start, distance_m))
        .map(|c| Imported::DuplicateOf {
            activity_id: c.activity_id,
        }))
}

/// The samples' heart rate, over the plausible readings only.
struct HeartRate {
    avg_bpm: Option<f64>,
    max_bpm: Option<f64>,
}

impl HeartRate {
    fn of(samples: &[domain::efficiency::Sample]) -> Self {
        let hr: Vec<f64> = samples
            .iter()
            .filter_map(|s| s.hr_bpm)
            .filter(|h| (25.0..=250.0).contains(h))
            .collect();
        HeartRate {
            avg_bpm: (!hr.is_empty()).then(|| hr.iter().sum::<f64>() / hr.len() as f64),
            max_bpm: hr.iter().copied().reduce(f64::max),
        }
    }
}

fn format_name(format: ingest::Format) -> &'static str {
    match format {
        ingest::Format::Fit => "fit",
        ingest::Format::Gpx => "gpx",
        ingest::Format::Tcx => "tcx",
    }
}

/// The name comes from the upload's file name, which nobody typed as a name: characters
/// text may not hold (docs/decisions.md) are dropped rather than refusing the file.
fn activity_name(file: &str) -> Option<String> {
    std::path::Path::new(file)
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .chars()
                .filter(|c| domain::validation::storable_char(*c, false))
                .take(200)
                .collect::<String>()
        })
        .filter(|n| !n.trim().is_empty())
}
