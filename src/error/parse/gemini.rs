//! Google's error document (Gemini API, Vertex AI).
//!
//! The shape, in our words: an `error` object with a numeric `code` (the HTTP status), a
//! `message`, a `status` string naming the canonical gRPC code (`RESOURCE_EXHAUSTED`,
//! `INVALID_ARGUMENT`, `UNAVAILABLE`, ...) and an optional `details` array of typed messages, each
//! tagged by an `@type` URL:
//!
//! - `google.rpc.RetryInfo` carries `retryDelay`, a protobuf JSON duration such as `"30s"` or
//!   `"1.5s"`: it becomes the body retry hint, and a `RESOURCE_EXHAUSTED` that says when to come
//!   back is `RateLimited` (even when its message speaks of quota);
//! - `google.rpc.ErrorInfo` carries a `reason` (`API_KEY_INVALID`, `RATE_LIMIT_EXCEEDED`,
//!   `SERVICE_DISABLED`, ...) that is classified like a code, so a key error sent as 400 is
//!   `Authentication`;
//! - `google.rpc.QuotaFailure` lists `violations` with a `quotaId`/`quotaMetric`, kept in
//!   [`provider_detail`](crate::ApiError::provider_detail);
//! - `google.rpc.BadRequest` lists `fieldViolations`; the first `field` becomes the param.
//!
//! Vertex AI sometimes sends the same object wrapped in a one-element JSON array; the caller
//! unwraps it. The status string is the error type; the numeric code is the code, as text.

use super::json::{Node, Obj};
use super::{Fields, MAX_DETAIL_CHARS, MAX_FIELD_CHARS, clean, clean_message, code_field};
use crate::error::{ErrorKind, hints};

pub(super) fn read(o: &Obj<'_>, f: &mut Fields) -> bool {
    let Some(Node::Object(err)) = o.get("error") else {
        return false;
    };
    let (Some(Node::String(status)), Some(Node::Number(_))) = (err.get("status"), err.get("code"))
    else {
        return false;
    };
    f.code = code_field(err, "code");
    f.status = super::status_field(err, "code");
    f.error_type = Some(clean(status, MAX_FIELD_CHARS));
    f.message = err.get("message").and_then(Node::as_str).map(clean_message);
    let mut quota = Vec::new();
    if let Some(Node::Array(details)) = err.get("details") {
        for d in details.iter().take(16).filter_map(Node::as_object) {
            let ty = d.get("@type").and_then(Node::as_str).unwrap_or_default();
            if ty.ends_with("google.rpc.RetryInfo") {
                f.retry_delay = d
                    .get("retryDelay")
                    .and_then(Node::as_str)
                    .and_then(hints::parse_proto_duration);
            } else if ty.ends_with("google.rpc.ErrorInfo") {
                if let Some(r) = d.get("reason").and_then(Node::as_str) {
                    f.extra_codes.push(clean(r, MAX_FIELD_CHARS));
                }
            } else if ty.ends_with("google.rpc.QuotaFailure") {
                let violations = d.get("violations").and_then(Node::as_array);
                for v in violations.into_iter().flatten().take(4) {
                    let id = v
                        .get("quotaId")
                        .or_else(|| v.get("quotaMetric"))
                        .and_then(Node::as_str);
                    if let Some(id) = id {
                        quota.push(id);
                    }
                }
            } else if ty.ends_with("google.rpc.BadRequest") && f.param.is_none() {
                f.param = d
                    .get("fieldViolations")
                    .and_then(Node::as_array)
                    .and_then(|v| v.first())
                    .and_then(|v| v.get("field"))
                    .and_then(Node::as_str)
                    .map(|s| clean(s, MAX_FIELD_CHARS));
            }
        }
    }
    if !quota.is_empty() {
        f.provider_detail = Some(clean(
            &format!("quota: {}", quota.join(", ")),
            MAX_DETAIL_CHARS,
        ));
    }
    if status == "RESOURCE_EXHAUSTED" && f.retry_delay.is_some() {
        f.kind = Some(ErrorKind::RateLimited);
    }
    true
}
