//! Flat documents: the error fields sit at the top level.
//!
//! The shapes, in our words:
//!
//! - **vLLM (older servers) and Mistral (older API)**: `{"object": "error", "message", "type",
//!   "param", "code"}`, where `code` may be the HTTP status as a number. The `object` marker
//!   makes it an error document even inside a `200` stream. Mistral may put a FastAPI
//!   `{"detail": [...]}` object in `message`; its first item's `msg` is used;
//! - **OpenAI's Responses API stream**: an `error` event whose data is `{"type": "error",
//!   "code", "message", "param"}` (no nested object); the `type` marker makes it an error
//!   document in-band too;
//! - **a bare message** (AWS Bedrock's `{"message"}` or `{"Message"}`, optionally with the AWS
//!   JSON protocol's `__type`; Cohere's `{"id", "message"}`; Mistral's `{"message",
//!   "request_id"}` on a 401);
//! - **Azure API Management**: `{"statusCode": 429, "message": "..."}`;
//! - **FastAPI validation** (Mistral's 422 and other Python servers): `{"detail": "<text>"}` or
//!   `{"detail": [{"loc": [...], "msg": "...", "type": "..."}]}`; the first item's message and
//!   last `loc` element are kept.
//!
//! Apart from the `object: "error"` form these shapes are too loose to mean "error" on their own,
//! so they only count when the HTTP status already says it is one.

use super::json::{Node, Obj};
use super::{Fields, MAX_FIELD_CHARS, clean, clean_message, code_field, status_field, str_field};

pub(super) fn read(o: &Obj<'_>, f: &mut Fields, http_error: bool) -> bool {
    let marked = o.get("object").and_then(Node::as_str) == Some("error")
        || (o.get("type").and_then(Node::as_str) == Some("error")
            && o.get("message").is_some_and(Node::is_string));
    if !marked && !http_error {
        return false;
    }
    let message = match o.get("message").or_else(|| o.get("Message")) {
        Some(Node::String(s)) => Some(clean_message(s)),
        Some(Node::Object(m)) => detail_message(m),
        _ => None,
    };
    if marked {
        f.message = message;
        f.code = code_field(o, "code");
        f.status = status_field(o, "code");
        f.error_type = str_field(o, "type", MAX_FIELD_CHARS);
        f.param = str_field(o, "param", MAX_FIELD_CHARS);
        return true;
    }
    if let Some(m) = message {
        f.message = Some(m);
        f.status = status_field(o, "statusCode");
        f.request_id = str_field(o, "request_id", MAX_FIELD_CHARS);
        if let Some(t) = o.get("__type").and_then(Node::as_str) {
            // "com.amazon.coral.service#ThrottlingException" -> "ThrottlingException"
            let t = t.rsplit('#').next().unwrap_or(t);
            f.code = Some(clean(t, MAX_FIELD_CHARS));
        }
        return true;
    }
    match o.get("detail") {
        Some(Node::String(s)) if !s.trim().is_empty() => {
            f.message = Some(clean_message(s));
            true
        }
        Some(Node::Array(items)) => {
            let first = items.first().and_then(Node::as_object);
            f.message = first
                .and_then(|i| i.get("msg"))
                .and_then(Node::as_str)
                .map(clean_message);
            f.param = first
                .and_then(|i| i.get("loc"))
                .and_then(Node::as_array)
                .and_then(|l| l.last())
                .and_then(|l| match l {
                    Node::String(s) => Some(clean(s, MAX_FIELD_CHARS)),
                    Node::Number(n) => Some(super::number_text(n)),
                    _ => None,
                });
            f.error_type = first.and_then(|i| str_field(i, "type", MAX_FIELD_CHARS));
            f.message.is_some()
        }
        _ => false,
    }
}

/// The first `msg` of a FastAPI `{"detail": [{"msg": ...}]}` object (or a `detail` string).
fn detail_message(m: &Obj<'_>) -> Option<String> {
    match m.get("detail")? {
        Node::String(s) => Some(clean_message(s)),
        Node::Array(items) => items
            .first()?
            .get("msg")
            .and_then(Node::as_str)
            .map(clean_message),
        _ => None,
    }
}
