//! Extractors whose rejections are problem+json with a sentence a client can act on: axum's own
//! answer in plain text and, for some errors, with Rust type names.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::Problem;

/// A JSON body. Wrong content type: 415; unparseable: 400; wrong shape or value: 422 with
/// the field's path; over the body limit: 413.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Every request body is a JSON object. serde's derived structs also accept an array of
        // their fields in order (`[null, null]` would read as "no change"), so the shape is
        // checked on the parsed value first; the value is then read into `T` through axum's
        // own path-reporting deserializer, so errors still name the field.
        let value = match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(json_problem(rejection)),
        };
        if !value.is_object() {
            return Err(Problem::invalid("body", "must be a JSON object"));
        }
        let bytes = serde_json::to_vec(&value).map_err(Problem::internal)?;
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rejection) => Err(json_problem(rejection)),
        }
    }
}

fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported content type",
        )
        .detail("Send the body as JSON with `Content-Type: application/json`."),
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!(
            "The body is not valid JSON: {}",
            clean(&e.body_text())
        )),
        JsonRejection::JsonDataError(e) => {
            let text = clean(&e.body_text());
            let (field, detail) = split_path(&text);
            Problem::invalid(field, detail)
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Body too large",
        )
        .detail(format!(
            "Request bodies are limited to {} KiB.",
            crate::BODY_LIMIT_BYTES / 1024
        )),
        other => Problem::bad_request(clean(&other.body_text())),
    }
}

/// Query parameters; a refused value is 422 naming the parameter.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(Query(v)),
            Err(QueryRejection::FailedToDeserializeQueryString(e)) => {
                let text = clean(&e.body_text());
                let (field, detail) = split_path(&text);
                Err(Problem::invalid(field, detail))
            }
            Err(other) => Err(Problem::bad_request(clean(&other.body_text()))),
        }
    }
}

/// Path parameters; an id or date that cannot be one is 422.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(Problem::invalid("path", clean(&e.body_text())))
            }
            Err(other) => Err(Problem::internal(other.body_text())),
        }
    }
}

/// serde and axum prefix their messages with the extractor's wording and may name Rust types
/// (`u8`, `struct CheckInBody`); callers see JSON terms instead.
fn clean(text: &str) -> String {
    let mut s = text.to_string();
    for prefix in [
        "Failed to deserialize the JSON body into the target type: ",
        "Failed to parse the request body as JSON: ",
        "Failed to deserialize query string: ",
        "Failed to deserialize query string. Error: ",
        "Invalid URL: ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest.to_string();
        }
    }
    let mut out = String::with_capacity(s.len());
    for word in s.split_inclusive([' ', ',']) {
        let (core, tail) = split_tail(word);
        let replaced = match core {
            "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "usize" => "an integer",
            "f32" | "f64" => "a number",
            "struct" => "an",
            other if other.ends_with("Body") || other.ends_with("Params") => "object",
            other => other,
        };
        out.push_str(replaced);
        out.push_str(tail);
    }
    out
}

fn split_tail(word: &str) -> (&str, &str) {
    let end = word.trim_end_matches([' ', ',']).len();
    word.split_at(end)
}

/// `"laps[0].distance_m: invalid type..."` into the path and the message.
fn split_path(text: &str) -> (String, String) {
    match text.split_once(": ") {
        Some((path, rest))
            if !path.is_empty()
                && path
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c)) =>
        {
            (path.to_string(), rest.to_string())
        }
        _ => ("body".to_string(), text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_type_names_become_json_terms() {
        assert_eq!(
            clean("effort: invalid type: string \"x\", expected u8 at line 1 column 12"),
            "effort: invalid type: string \"x\", expected an integer at line 1 column 12"
        );
        assert_eq!(
            clean("invalid type: integer `3`, expected struct CheckInBody"),
            "invalid type: integer `3`, expected an object"
        );
    }

    #[test]
    fn paths_are_split_from_messages() {
        assert_eq!(
            split_path("laps[0].distance_m: invalid type"),
            ("laps[0].distance_m".into(), "invalid type".into())
        );
        assert_eq!(
            split_path("missing field `sport` at line 1"),
            ("body".into(), "missing field `sport` at line 1".into())
        );
    }
}
