//! Reading an error out of a response, whatever dialect it is in.

use super::{ApiError, ErrorKind, ParseOptions, api_error::Inner, hints, secret};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

/// Longest message we keep, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 2048;

pub(crate) fn from_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    options: &ParseOptions,
) -> Option<ApiError> {
    let body = &body[..body.len().min(options.get_max_body_bytes())];
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let mut inner = match value.as_ref().and_then(from_json) {
        Some(inner) => inner,
        None if status.as_u16() < 400 => return None,
        None => Inner {
            message: summary(status, body).into_boxed_str(),
            ..Inner::default()
        },
    };
    if status.as_u16() >= 400 || inner.status.is_none() {
        inner.status = Some(status);
    }
    if inner.kind.is_none() {
        inner.kind = Some(
            inner
                .status
                .and_then(ErrorKind::from_status)
                .unwrap_or(ErrorKind::Unknown),
        );
    }
    apply_headers(&mut inner, headers, options);
    Some(ApiError::from_inner(inner))
}

/// An error document that arrived in-band (inside a 200 body or an SSE event): `None` when the
/// JSON carries no error object.
#[allow(dead_code)] // used by the SSE inspector
pub(crate) fn from_json_in_band(body: &[u8]) -> Option<ApiError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let mut inner = from_json(&value)?;
    if inner.kind.is_none() {
        inner.kind = Some(
            inner
                .status
                .and_then(ErrorKind::from_status)
                .unwrap_or(ErrorKind::Unknown),
        );
    }
    Some(ApiError::from_inner(inner))
}

fn apply_headers(inner: &mut Inner, headers: &HeaderMap, options: &ParseOptions) {
    if inner.request_id.is_none() {
        inner.request_id = hints::request_id(headers).map(String::into_boxed_str);
    }
    if let Some((d, src)) = hints::retry_after(headers, options.wall_clock()) {
        inner.retry_after = Some(d);
        inner.retry_after_source = Some(src);
    }
    if let Some(b) = hints::should_retry(headers) {
        inner.should_retry = Some(b);
    }
}

/// The generic `{"error": {...}}` / `{"error": "..."}` shape.
fn from_json(v: &Value) -> Option<Inner> {
    let err = v.get("error")?;
    let mut inner = Inner::default();
    match err {
        Value::Object(o) => {
            inner.message = text(o.get("message")).unwrap_or_default().into_boxed_str();
            inner.code = o
                .get("code")
                .and_then(code_text)
                .map(String::into_boxed_str);
            inner.error_type = text(o.get("type")).map(String::into_boxed_str);
            inner.param = text(o.get("param")).map(String::into_boxed_str);
            if let Some(n) = o.get("code").and_then(Value::as_u64) {
                inner.status = u16::try_from(n)
                    .ok()
                    .and_then(|n| StatusCode::from_u16(n).ok());
            }
        }
        Value::String(s) => inner.message = clean(s).into_boxed_str(),
        _ => return None,
    }
    Some(inner)
}

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(clean(s)),
        _ => None,
    }
}

fn code_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(clean(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Masks secrets and bounds the length of peer text.
pub(crate) fn clean(s: &str) -> String {
    let masked = secret::mask_secrets(s);
    if masked.chars().count() <= MAX_MESSAGE_CHARS {
        masked.into_owned()
    } else {
        let mut out: String = masked.chars().take(MAX_MESSAGE_CHARS).collect();
        out.push('…');
        out
    }
}

/// A short message for a body that is not an error document.
fn summary(status: StatusCode, _body: &[u8]) -> String {
    format!(
        "HTTP {} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("error")
    )
}
