//! Anthropic's error document.
//!
//! The shape, in our words: the top level has `"type": "error"`, an `error` object with its own
//! `type` (the machine-readable category, such as `overloaded_error`, `rate_limit_error`,
//! `invalid_request_error`) and a `message`, and, in newer responses, a top-level `request_id`.
//! The same document arrives as the data of an SSE `event: error`. Anthropic has no separate
//! `code`: the error `type` is the code, so it is reported both as [`code`] and [`error_type`].
//! Status 529 means overloaded.
//!
//! [`code`]: crate::ApiError::code
//! [`error_type`]: crate::ApiError::error_type

use super::json::{Node, Obj};
use super::{Fields, MAX_FIELD_CHARS, clean_message, str_field};
use crate::error::Dialect;

pub(super) fn read(o: &Obj<'_>, f: &mut Fields) -> bool {
    if o.get("type").and_then(Node::as_str) != Some("error") {
        return false;
    }
    let Some(Node::Object(err)) = o.get("error") else {
        return false;
    };
    f.dialect = Some(Dialect::Anthropic);
    f.error_type = str_field(err, "type", MAX_FIELD_CHARS);
    f.code = f.error_type.clone();
    f.message = err.get("message").and_then(Node::as_str).map(clean_message);
    f.request_id = str_field(o, "request_id", MAX_FIELD_CHARS);
    true
}
