//! gRPC Trailers-Only responses.
//!
//! The shape, in our words: when a gRPC server fails before sending any message it may answer
//! with headers only: HTTP status `200`, `content-type: application/grpc`, a `grpc-status`
//! header holding the decimal status code (0 is OK, 1..=16 are errors) and an optional
//! `grpc-message` header holding the description, percent-encoded (RFC 3986 style, over UTF-8).
//! A gateway that turns gRPC into HTTP may send the same headers next to a 4xx/5xx.
//!
//! The code is reported as its canonical name in [`error_type`](crate::ApiError::error_type)
//! (`UNAVAILABLE`) and as decimal text in [`code`](crate::ApiError::code) (`"14"`); the kind
//! comes from [`codes::grpc_kind`](super::codes::grpc_kind). The message is decoded with the
//! `percent-encoding` crate, invalid UTF-8 replaced. A body-level error document, when there is
//! one, is preferred; the headers then only fill what it left out.

use super::{Fields, MAX_FIELD_CHARS, clean, clean_message, codes};
use crate::error::hints::{Present, Slot};
use http::HeaderMap;

/// Reads the gRPC status headers; `true` when they report an error.
pub(super) fn read(headers: &HeaderMap, present: &Present<'_>, f: &mut Fields) -> bool {
    let Some(code) = present.parse(headers, Slot::GrpcStatus, |s| s.parse::<u32>().ok()) else {
        return false;
    };
    if code == 0 {
        return false;
    }
    let (kind, name) = codes::grpc_kind(code).unwrap_or((crate::ErrorKind::Unknown, "UNKNOWN"));
    let from_body = f.message.is_some() || f.code.is_some();
    if !from_body {
        f.kind = Some(kind);
        f.code = Some(code.to_string());
        f.error_type = Some(clean(name, MAX_FIELD_CHARS));
    }
    if f.message.is_none() {
        f.message = present.str(headers, Slot::GrpcMessage).map(|m| {
            let decoded = percent_encoding::percent_decode_str(m).decode_utf8_lossy();
            clean_message(&decoded)
        });
    }
    true
}
