//! The athlete's export (GDPR Articles 15 and 20): `POST /v1/me/export` queues it (the open
//! job again while one is open), a worker builds it (`workers::exports`), `GET
//! /v1/me/export/{export_id}` reports progress and, once done, hands out a download link good for
//! 24 hours and one download. The link's token is the credential, so the download itself needs
//! no bearer token (a browser can follow it); it goes in the query string, which is never
//! logged.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::extract::{Path, Query};
use crate::policy::Caller;
use crate::problem::{ApiResult, Problem};

#[derive(Debug, Serialize, ToSchema)]
pub struct ExportJob {
    pub job_id: Uuid,
    /// `queued`, `running`, `done` or `failed`.
    pub state: String,
    pub requested_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Records written so far, of `progress_total` (0 until counted).
    pub progress_done: i64,
    pub progress_total: i64,
    pub size_bytes: Option<i64>,
    pub error: Option<String>,
    /// Once done: a link for one download, valid until `download_expires_at`. Each read of
    /// this job gives a new link and retires the previous one.
    pub download_url: Option<String>,
    pub download_expires_at: Option<DateTime<Utc>>,
}

impl From<workers::exports::Job> for ExportJob {
    fn from(j: workers::exports::Job) -> Self {
        ExportJob {
            job_id: j.job_id,
            state: j.state,
            requested_at: j.requested_at,
            finished_at: j.finished_at,
            progress_done: j.progress_done,
            progress_total: j.progress_total,
            size_bytes: j.byte_len,
            error: j.error,
            download_url: None,
            download_expires_at: None,
        }
    }
}

/// Asks for an export of everything the caller's account holds. While one is queued or
/// running, the same job answers.
#[utoipa::path(post, path = "/v1/me/export", tag = "me",
    responses((status = 202, body = ExportJob)))]
pub async fn request(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let (job, _) = workers::exports::request(state.read_pool(), caller.account_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(ExportJob::from(job))).into_response())
}

/// An export's state and progress; once done, a download link.
#[utoipa::path(get, path = "/v1/me/export/{export_id}", tag = "me",
    params(("export_id" = Uuid, Path)), responses((status = 200, body = ExportJob)))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(job_id): Path<Uuid>,
) -> ApiResult<axum::Json<ExportJob>> {
    let pool = state.read_pool();
    let job = workers::exports::job(pool, caller.account_id, job_id)
        .await?
        .ok_or_else(|| Problem::not_found("export"))?;
    let mut view = ExportJob::from(job);
    if view.state == "done"
        && let Some((token, expires)) =
            workers::exports::issue_download(pool, caller.account_id, job_id).await?
    {
        view.download_url = Some(format!("/v1/exports/download?token={token}"));
        view.download_expires_at = Some(expires);
    }
    Ok(axum::Json(view))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DownloadParams {
    /// From `download_url`.
    #[param(min_length = 64, max_length = 64)]
    pub token: String,
}

/// The archive (a zip), once per link. The link is the credential.
#[utoipa::path(get, path = "/v1/exports/download", tag = "me",
    params(DownloadParams),
    responses((status = 200, description = "The zip archive", content_type = "application/zip"),
        (status = 404, description = "Unknown, expired or used link", body = Problem)))]
pub async fn download(
    State(state): State<AppState>,
    Query(p): Query<DownloadParams>,
) -> ApiResult<Response> {
    let gone = || Problem::not_found("download link (it may have expired or been used)");
    if p.token.len() != 64 || !p.token.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(gone());
    }
    let (athlete, blob) = workers::exports::take_download(state.read_pool(), &p.token)
        .await?
        .ok_or_else(gone)?;
    let bytes = state
        .store
        .get_blob(athlete, blob)
        .await
        .map_err(Problem::internal)?
        .ok_or_else(gone)?;
    let mut res = bytes.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"stridelog-export.zip\""),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
