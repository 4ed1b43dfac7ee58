//! What every response leaving the server gets, whoever produced it (a handler, an extractor, a
//! timeout layer): an error is problem+json, never an empty or plain-text body; the browser
//! hardening headers; and `Cache-Control: no-store` on the API's answers, which hold tokens or
//! personal data, so no shared cache or browser disk keeps them.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::Problem;

/// Seconds a client is asked to wait after the server gave up on a request.
const TIMEOUT_RETRY_AFTER_S: u64 = 5;

/// The API documentation's policy: Swagger UI's own scripts and styles, served from here (it
/// works offline), the OpenAPI document fetched from here, and nothing else. Swagger UI sets
/// style attributes as it renders, hence `'unsafe-inline'` for styles only; no inline or
/// foreign script runs. The console sets its own, stricter policy.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

pub async fn harden(req: Request, next: Next) -> Response {
    let personal = req.uri().path().starts_with("/v1/");
    let docs = req.uri().path().starts_with("/docs");
    let mut res = next.run(req).await;
    let status = res.status();
    let content_type = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if status.is_client_error() || status.is_server_error() {
        // Bodies the framework or a layer wrote: empty (the timeout) or plain text (a body
        // over the limit). HTML error pages of the console and problem+json stay as they are.
        if content_type.is_empty() || content_type.starts_with("text/plain") {
            let headers = res.headers().clone();
            res = replacement(status).into_response();
            for (name, value) in &headers {
                if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                    res.headers_mut().insert(name.clone(), value.clone());
                }
            }
        }
    }
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    if docs {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if personal {
        h.entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-store"));
    }
    res
}

fn replacement(status: StatusCode) -> Problem {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => Problem::new(status, "timeout", "Request timed out")
            .detail(
                "The server did not finish this request in time. A write may or may not have \
                 happened: read before retrying one.",
            )
            .retry_after(TIMEOUT_RETRY_AFTER_S),
        StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(status, "too-large", "Request body too large").detail(format!(
                "JSON bodies are limited to {} bytes.",
                crate::BODY_LIMIT_BYTES
            ))
        }
        s => Problem::new(
            s,
            "http",
            s.canonical_reason().unwrap_or("The request was refused"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    use super::*;

    async fn through(status: StatusCode, content_type: Option<&'static str>) -> Response {
        let app = Router::new()
            .route(
                "/v1/x",
                get(move || async move {
                    let mut res = (status, "plain words").into_response();
                    match content_type {
                        Some(c) => {
                            res.headers_mut()
                                .insert(header::CONTENT_TYPE, HeaderValue::from_static(c));
                        }
                        None => {
                            res = status.into_response();
                        }
                    }
                    res
                }),
            )
            .layer(axum::middleware::from_fn(harden));
        app.oneshot(Request::get("/v1/x").body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn json(res: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn an_empty_timeout_becomes_a_problem_with_retry_after() {
        let res = through(StatusCode::SERVICE_UNAVAILABLE, None).await;
        assert_eq!(res.status(), 503);
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(res.headers()[header::RETRY_AFTER], "5");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let body = json(res).await;
        assert_eq!(body["status"], 503);
        assert_eq!(body["type"], "https://stridelog.dev/problems/timeout");
    }

    #[tokio::test]
    async fn plain_text_errors_become_problems_and_html_pages_stay() {
        let res = through(
            StatusCode::PAYLOAD_TOO_LARGE,
            Some("text/plain; charset=utf-8"),
        )
        .await;
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert_eq!(json(res).await["status"], 413);
        let res = through(StatusCode::FORBIDDEN, Some("text/html; charset=utf-8")).await;
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let res = through(StatusCode::OK, Some("text/plain")).await;
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(res.headers()[header::REFERRER_POLICY], "no-referrer");
    }
}
