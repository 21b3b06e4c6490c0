//! The `success: false` envelope (seed 001).
//!
//! The shape, in our words: a top-level `success` flag set to `false`, an `error` object with an
//! UPPER_SNAKE `code`, a `message` and an optional `details` object naming the offending
//! `field` and describing the `issue`, and a `meta` object with the `request_id` and an ISO 8601
//! `timestamp`. Some examples in the seed omit `success` and keep only `error` + `meta`, so
//! either marker (or a `details` *object*) identifies the envelope.
//!
//! `details.field` becomes [`param`](crate::ApiError::param), `details.issue` becomes
//! [`detail`](crate::ApiError::detail), `meta.timestamp` is kept as sent.

use super::json::{Node, Obj};
use super::{Fields, MAX_FIELD_CHARS, clean_message, code_field, str_field};
use crate::error::Dialect;

pub(super) fn read(o: &Obj<'_>, f: &mut Fields) -> bool {
    let Some(Node::Object(err)) = o.get("error") else {
        return false;
    };
    let marked = o.get("success") == Some(&Node::Bool(false))
        || matches!(o.get("meta"), Some(Node::Object(_)))
        || matches!(err.get("details"), Some(Node::Object(_)));
    if !marked {
        return false;
    }
    f.dialect = Some(Dialect::Envelope);
    f.code = code_field(err, "code");
    f.message = err.get("message").and_then(Node::as_str).map(clean_message);
    if let Some(Node::Object(d)) = err.get("details") {
        f.param = str_field(d, "field", MAX_FIELD_CHARS);
        f.detail = d.get("issue").and_then(Node::as_str).map(clean_message);
    }
    if let Some(Node::Object(m)) = o.get("meta") {
        f.request_id = str_field(m, "request_id", MAX_FIELD_CHARS);
        f.timestamp = str_field(m, "timestamp", MAX_FIELD_CHARS);
    }
    true
}
