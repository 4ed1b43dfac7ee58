//! `POST /v1/activities/import`: FIT, GPX and TCX files as multipart/form-data, through the
//! same import path as `stridelog import`.

use axum::extract::State;
use axum::extract::multipart::{Multipart, MultipartError, MultipartRejection};
use axum::http::{HeaderMap, StatusCode, header};
use commands::CommandContext;
use commands::import::{Candidate, ImportError, Imported, prepare, record};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};

/// One file's size limit. A 24-hour 1 Hz FIT file is about 3 MiB, its GPX about 15 MiB.
pub const MAX_FILE_BYTES: usize = 16 * 1024 * 1024;
/// One request's limit, all parts together.
pub const MAX_REQUEST_BYTES: usize = 32 * 1024 * 1024;
pub const MAX_FILES: usize = 20;
/// How long an import waits for a slot before 503.
const IMPORT_SLOT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The form: one or more parts named `file`, each with its file name (the extension says the
/// format: `.fit`, `.gpx`, `.tcx`).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // describes the request for the OpenAPI document only
pub struct ImportForm {
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 20)]
    file: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportStatus {
    /// A new activity.
    Recorded,
    /// This very file was imported before: the activity it gave.
    AlreadyImported,
    /// The same run from another file (start within 60 s, distance within 2 %) is already
    /// recorded: that activity.
    Duplicate,
    /// The file could not be read; nothing was stored for it.
    Error,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportedFile {
    pub file: String,
    pub status: ImportStatus,
    pub activity_id: Option<Uuid>,
    /// Why the file could not be imported.
    pub error: Option<String>,
}

/// What happened to each file, in the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    pub files: Vec<ImportedFile>,
    pub recorded: usize,
    pub failed: usize,
    /// The log position of the last activity recorded, for `?min_position=`.
    pub position: Option<i64>,
}

/// Import activity files: FIT, GPX 1.0/1.1 or TCX, one or more parts named `file` (at most 20
/// files, 16 MiB each, 32 MiB in all). The same file twice gives one activity; the same run
/// in two formats is recorded once. Each file's outcome is listed; a file that cannot be read
/// is named with its problem and stores nothing. When no file could be imported the answer is
/// 422 with one error per file.
#[utoipa::path(post, path = "/v1/activities/import", tag = "activities",
    request_body(content = ImportForm, content_type = "multipart/form-data"),
    responses((status = 200, body = ImportReport)))]
pub async fn import_activities(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, axum::Json<ImportReport>)> {
    let multipart_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart_type {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
        )
        .detail("Send the files as multipart/form-data, in parts named \"file\"."));
    }
    let multipart = multipart.map_err(|e| {
        Problem::bad_request(format!("malformed multipart body: {}", e.body_text()))
    })?;
    // The upload is buffered and parsed only in a slot: at most `import_slots` at once.
    let _slot = crate::bounds::import_slot(&state.import_slots, IMPORT_SLOT_WAIT).await?;
    // Read every part first: a malformed or oversized request stores nothing at all.
    let files = read_files(multipart).await?;

    let profile = super::me::current_profile(&state, caller.account_id).await?;
    state.caught_up(&["activities"]).await?;
    let mut importer = Importer {
        tables: state.tables("activities").await?,
        state: &state,
        account_id: caller.account_id,
        ctx: caller.context(),
        timezone: &profile.preferences.timezone,
        batch: Vec::new(),
    };
    let mut report = ImportReport {
        files: Vec::new(),
        recorded: 0,
        failed: 0,
        position: None,
    };
    for (name, bytes) in files {
        let outcome = importer.import(&name, bytes).await?;
        report.add(name, outcome, &mut importer.batch)?;
    }
    if report.failed == report.files.len() {
        return Err(nothing_imported(&report));
    }
    Ok((StatusCode::OK, axum::Json(report)))
}

/// Every part of the form, as (file name, bytes), within the limits on count and size.
async fn read_files(mut multipart: Multipart) -> ApiResult<Vec<(String, Vec<u8>)>> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_problem)? {
        if field.name() != Some("file") {
            return Err(Problem::invalid(
                field.name().unwrap_or("(unnamed part)"),
                "unknown part; send the files as parts named \"file\"",
            ));
        }
        if files.len() == MAX_FILES {
            return Err(Problem::invalid(
                "file",
                format!("at most {MAX_FILES} files per request"),
            ));
        }
        let name = field
            .file_name()
            .map(|n| n.chars().take(200).collect::<String>())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("file {}", files.len() + 1));
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_problem)? {
            if bytes.len() + chunk.len() > MAX_FILE_BYTES {
                return Err(too_large(format!(
                    "{name}: larger than {} MiB",
                    MAX_FILE_BYTES / (1024 * 1024)
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        files.push((name, bytes));
    }
    if files.is_empty() {
        return Err(Problem::invalid(
            "file",
            "no files; send one or more parts named \"file\"",
        ));
    }
    Ok(files)
}

/// Imports one request's files for one athlete.
struct Importer<'a> {
    state: &'a AppState,
    tables: projections::Tables,
    account_id: Uuid,
    ctx: CommandContext,
    timezone: &'a str,
    /// The activities this request has recorded so far: a later file of the same run is a
    /// duplicate of them before the projection has caught up.
    batch: Vec<Candidate>,
}

impl Importer<'_> {
    /// One file's outcome; the outer error is the request's (the read side failed).
    async fn import(&self, name: &str, bytes: Vec<u8>) -> ApiResult<Result<Imported, ImportError>> {
        let prepared = match prepare(name, bytes).await {
            Err(e) => return Ok(Err(e)),
            Ok(prepared) => prepared,
        };
        let near = projections::activities::starting_near(
            self.state.read_pool(),
            &self.tables,
            self.account_id,
            prepared.start_time(),
        )
        .await?;
        let mut earlier = self.batch.clone();
        earlier.extend(near.iter().map(|a| Candidate {
            activity_id: a.activity_id,
            start_time: a.start_time,
            distance_m: a.distance_m,
        }));
        Ok(record(
            &self.state.commands,
            &self.ctx,
            prepared,
            self.timezone,
            &earlier,
        )
        .await)
    }
}

impl ImportReport {
    /// Lists one file's outcome; a recorded activity joins `batch`.
    fn add(
        &mut self,
        file: String,
        outcome: Result<Imported, ImportError>,
        batch: &mut Vec<Candidate>,
    ) -> ApiResult<()> {
        let (status, activity_id, error) = match outcome {
            Ok(Imported::Recorded {
                activity_id,
                position,
                start_time,
                distance_m,
                ..
            }) => {
                batch.push(Candidate {
                    activity_id,
                    start_time,
                    distance_m,
                });
                self.recorded += 1;
                self.position = Some(position).filter(|p| *p > 0).or(self.position);
                (ImportStatus::Recorded, Some(activity_id), None)
            }
            Ok(Imported::AlreadyImported { activity_id }) => {
                (ImportStatus::AlreadyImported, Some(activity_id), None)
            }
            Ok(Imported::DuplicateOf { activity_id }) => {
                (ImportStatus::Duplicate, Some(activity_id), None)
            }
            Err(ImportError::Unreadable { problem, .. }) => {
                self.failed += 1;
                (ImportStatus::Error, None, Some(problem))
            }
            // A refusal of the command itself (the store, an erased account) is not about the
            // file: it is the request's answer.
            Err(ImportError::Refused { source, .. }) => return Err(source.into()),
        };
        self.files.push(ImportedFile {
            file,
            status,
            activity_id,
            error,
        });
        Ok(())
    }
}

/// The 422 when no file could be imported: one error per file.
fn nothing_imported(report: &ImportReport) -> Problem {
    let mut p = Problem::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "unreadable-files",
        "No file could be imported",
    )
    .detail(
        report
            .files
            .iter()
            .map(|f| format!("{}: {}", f.file, f.error.as_deref().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join("; "),
    );
    for (i, f) in report.files.iter().enumerate() {
        p = p.field(
            format!("file[{i}]"),
            format!("{}: {}", f.file, f.error.as_deref().unwrap_or_default()),
        );
    }
    p
}

fn too_large(detail: String) -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload-too-large",
        "Request too large",
    )
    .detail(detail)
}

fn multipart_problem(e: MultipartError) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(format!(
            "the request is larger than {} MiB",
            MAX_REQUEST_BYTES / (1024 * 1024)
        ))
    } else {
        Problem::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}
