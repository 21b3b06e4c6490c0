//! Reading an error out of a response, whatever dialect it is in.
//!
//! One pass: the body prefix is parsed once with `serde_json` into a [`json::Node`] (a tree
//! that borrows its strings from the body and reads exactly what a `Value` would; see [`json`]
//! for why and how), the shape is detected from its keys, one reader per shape (one file each)
//! collects the fields, and [`codes`] decides the kind. Header-borne shapes (gRPC Trailers-Only, the AWS error-type
//! header) and non-JSON bodies have their own readers.
//!
//! Shapes are tried in this order, first match wins:
//!
//! | file | shape | who |
//! |---|---|---|
//! | [`anthropic`] | `{"type":"error","error":{"type","message"},"request_id"}` | Anthropic |
//! | [`envelope`] | `{"success":false,"error":{"code","message","details"},"meta"}` | seed 001 |
//! | [`gemini`] | `{"error":{"code":<n>,"message","status","details":[..]}}`, bare or in a one-element array | Gemini, Vertex |
//! | [`openai`] | `{"error":{"message","type","code","param",..}}` | OpenAI, Azure, Infuzu, Infron, OpenRouter, Groq, Together, DeepSeek, Mistral, vLLM (new) |
//! | [`plain`] | `{"error":"text", ..}` | xAI, TGI, Ollama |
//! | [`flat`] | `{"object":"error","message",..}`, `{"message"}`, `{"detail"}`, `{"statusCode","message"}` | vLLM/Mistral (old), Bedrock, Cohere, Mistral, FastAPI, Azure APIM |
//! | [`grpc`] | `grpc-status` / `grpc-message` headers | gRPC Trailers-Only |
//! | [`bedrock`] | `x-amzn-ErrorType` header | AWS Bedrock |
//! | [`text`] | anything else | HTML proxy pages, plain text |
//!
//! # Limits
//!
//! Only the first [`ParseOptions::get_max_body_bytes`] bytes of the body are read (64 KiB by
//! default). A document cut by that limit is not valid JSON, so it is summarized as text and the
//! status decides. Messages are bounded to [`MAX_MESSAGE_CHARS`] characters, codes, types and
//! params to [`MAX_FIELD_CHARS`], provider detail to [`MAX_DETAIL_CHARS`]; everything taken from
//! the peer has secrets masked.
//!
//! # Status
//!
//! [`ApiError::status`] is the HTTP status when it is an error (>= 400). For an error found in a
//! success response (an in-band error) it is the status the body carries (Infron's numeric
//! `code`, Azure's `status`), or `None` when the body carries none.

mod anthropic;
mod bedrock;
pub(crate) mod codes;
mod envelope;
mod flat;
mod gemini;
mod grpc;
pub(crate) mod json;
mod openai;
mod plain;
mod text;

use super::{ApiError, Dialect, ErrorKind, ParseOptions, api_error::Inner, hints, secret};
use http::{HeaderMap, StatusCode};
use json::{Node, Obj, Parsed};
use serde_json::Value;
use std::time::Duration;

/// Longest message we keep, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 2048;
/// Longest code, type, param, request id or timestamp we keep, in characters.
pub(crate) const MAX_FIELD_CHARS: usize = 256;
/// Longest provider detail (OpenRouter's `metadata.raw`) we keep, in characters.
pub(crate) const MAX_DETAIL_CHARS: usize = 1024;

/// What a shape reader collects. Strings are already cleaned (masked, bounded).
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub(crate) message: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) extra_codes: Vec<String>,
    pub(crate) error_type: Option<String>,
    pub(crate) param: Option<String>,
    pub(crate) detail: Option<String>,
    pub(crate) timestamp: Option<String>,
    pub(crate) request_id: Option<String>,
    /// A status carried by the body (a numeric `code`, Azure's `status`, `statusCode`).
    pub(crate) status: Option<u16>,
    pub(crate) dialect: Option<Dialect>,
    pub(crate) provider_detail: Option<String>,
    pub(crate) retry_delay: Option<Duration>,
    /// A kind the shape decided by itself.
    pub(crate) kind: Option<ErrorKind>,
}

pub(crate) fn from_response(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    options: &ParseOptions,
) -> Option<ApiError> {
    let body = &body[..body.len().min(options.get_max_body_bytes())];
    let http_error = status.as_u16() >= 400;
    let mut f = Fields::default();
    let fallback: Option<Value>;
    let json: Option<Node<'_>> = match looks_like_json(body) {
        false => None,
        true => match json::parse(body) {
            Parsed::Tree(n) => Some(n),
            Parsed::Invalid => None,
            Parsed::UseValue => {
                fallback = serde_json::from_slice(body).ok();
                fallback.as_ref().map(Node::from_value)
            }
        },
    };
    let mut found = json
        .as_ref()
        .is_some_and(|v| read_json(v, &mut f, http_error));
    let present = hints::Present::scan(headers);
    if present.has(hints::Present::GRPC_STATUS) {
        found |= grpc::read(headers, &present, &mut f);
    }
    if present.has(hints::Present::AMZN_ERROR_TYPE) {
        bedrock::read(headers, &present, &mut f);
    }
    if !http_error && !found {
        return None;
    }
    if f.message.is_none() && json.is_none() {
        f.message = Some(text::summary(status, body));
    }
    let status = if http_error {
        Some(status)
    } else {
        f.status
            .filter(|s| (400..=599).contains(s))
            .and_then(|s| StatusCode::from_u16(s).ok())
    };
    let mut inner = finish(f, status);
    let hints = hints::read(headers, present, inner.retry_after, &|| {
        options.wall_clock()
    });
    inner.retry_after = None;
    if let Some((d, src)) = hints.retry_after {
        inner.retry_after = Some(d);
        inner.retry_after_source = Some(src);
    }
    inner.should_retry = hints.should_retry;
    if let Some(id) = present.request_id() {
        inner.request_id = Some(id.into_boxed_str());
    }
    Some(ApiError::from_inner(inner))
}

/// An error document that arrived in-band (inside a 200 body or an SSE event's data): `None`
/// when the JSON carries no error object.
///
/// Recognized: OpenAI's `{"error":{...}}`; Infron/OpenRouter's top-level `error` with a numeric
/// or string code (possibly next to `choices[..].finish_reason: "error"`); Anthropic's
/// `{"type":"error","error":{...}}`; Gemini's `{"error":{"code","message","status"}}` and the
/// Vertex one-element array; the plain-string forms (`{"error":"..."}`). A numeric in-band code
/// (Infron, Gemini) becomes the status; the body's `retryDelay` becomes the retry hint.
#[allow(dead_code)] // used by the SSE inspector
pub(crate) fn from_json_in_band(body: &[u8]) -> Option<ApiError> {
    let body = &body[..body.len().min(ParseOptions::DEFAULT_MAX_BODY_BYTES)];
    let fallback: Option<Value>;
    let value = match json::parse(body) {
        Parsed::Tree(n) => n,
        Parsed::Invalid => return None,
        Parsed::UseValue => {
            fallback = serde_json::from_slice(body).ok();
            Node::from_value(fallback.as_ref()?)
        }
    };
    let mut f = Fields::default();
    if !read_json(&value, &mut f, false) {
        return None;
    }
    let status = f
        .status
        .filter(|s| (400..=599).contains(s))
        .and_then(|s| StatusCode::from_u16(s).ok());
    let mut inner = finish(f, status);
    if inner.retry_after.is_some() {
        inner.retry_after_source = Some(super::HintSource::BodyRetryDelay);
    }
    Some(ApiError::from_inner(inner))
}

/// Cheap pre-check so HTML and plain text skip the JSON parser.
fn looks_like_json(body: &[u8]) -> bool {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| &body[i..])
        .unwrap_or_default();
    let start = start.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(start);
    matches!(start.first(), Some(b'{' | b'['))
}

/// Detects the shape and reads it. `http_error`: whether the response status is already an
/// error, which lets the looser shapes (a bare `{"message"}`) count as error documents.
fn read_json(v: &Node<'_>, f: &mut Fields, http_error: bool) -> bool {
    let obj = match v {
        Node::Object(o) => o,
        // Vertex wraps the error object in a one-element array.
        Node::Array(a) => match a.first() {
            Some(Node::Object(o)) if o.contains_key("error") => o,
            _ => return false,
        },
        _ => return false,
    };
    anthropic::read(obj, f)
        || envelope::read(obj, f)
        || gemini::read(obj, f)
        || openai::read(obj, f)
        || plain::read(obj, f)
        || flat::read(obj, f, http_error)
}

/// Turns the collected fields into an `Inner`, deciding the kind.
fn finish(f: Fields, status: Option<StatusCode>) -> Inner {
    let message = f.message.unwrap_or_default();
    let kind = codes::classify(&codes::Evidence {
        decided: f.kind,
        status: status.map(|s| s.as_u16()),
        code: f.code.as_deref(),
        extra_codes: &f.extra_codes,
        error_type: f.error_type.as_deref(),
        message: &message,
    });
    let message = if message.is_empty() {
        match status {
            Some(s) => format!(
                "HTTP {} {}",
                s.as_u16(),
                s.canonical_reason().unwrap_or("error")
            ),
            None => kind.as_str().replace('_', " "),
        }
    } else {
        message
    };
    Inner {
        kind: Some(kind),
        status,
        code: f.code.map(String::into_boxed_str),
        message: message.into_boxed_str(),
        param: f.param.map(String::into_boxed_str),
        error_type: f.error_type.map(String::into_boxed_str),
        request_id: f.request_id.map(String::into_boxed_str),
        retry_after: f.retry_delay,
        retry_after_source: None,
        should_retry: None,
        detail_issue: f.detail.map(String::into_boxed_str),
        timestamp: f.timestamp.map(String::into_boxed_str),
        dialect: f.dialect,
        provider_detail: f.provider_detail.map(String::into_boxed_str),
    }
}

// ---- small helpers shared by the shape readers ----

/// A non-empty string field, cleaned and bounded to `max` characters.
pub(crate) fn str_field(o: &Obj<'_>, key: &str, max: usize) -> Option<String> {
    match o.get(key)? {
        Node::String(s) if !s.trim().is_empty() => Some(clean(s, max)),
        _ => None,
    }
}

/// A code: a non-empty string, or a number given as decimal text (seed 004, vLLM, Gemini).
pub(crate) fn code_field(o: &Obj<'_>, key: &str) -> Option<String> {
    match o.get(key)? {
        Node::String(s) if !s.trim().is_empty() => Some(clean(s, MAX_FIELD_CHARS)),
        Node::Number(n) => Some(number_text(n)),
        _ => None,
    }
}

/// A JSON number as decimal text, exactly as `serde_json` prints it. Integers (nearly every
/// code) take the integer `to_string`, which skips the formatting machinery.
pub(crate) fn number_text(n: &serde_json::Number) -> String {
    match (n.as_u64(), n.as_i64()) {
        (Some(u), _) => u.to_string(),
        (None, Some(i)) => i.to_string(),
        (None, None) => n.to_string(),
    }
}

/// A status-like number (a JSON number or a numeric string) in 100..=599.
pub(crate) fn status_field(o: &Obj<'_>, key: &str) -> Option<u16> {
    let n = match o.get(key)? {
        Node::Number(n) => n.as_u64()?,
        Node::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|n| (100..=599).contains(n))
}

/// Masks secrets and bounds the length of peer text to `max` characters.
///
/// The text is first cut a little past `max` (so masking stays cheap on a huge message; a key
/// cut there is still long enough to be recognized and masked), then masked, then cut to `max`.
pub(crate) fn clean(s: &str, max: usize) -> String {
    let s = s.trim();
    // A string of at most n bytes has at most n characters: skip the counting walk.
    let limit = max.saturating_add(64);
    let s = match s.len() > limit {
        true => s.char_indices().nth(limit).map_or(s, |(cut, _)| &s[..cut]),
        false => s,
    };
    let masked = secret::mask_secrets(s);
    if masked.len() <= max {
        return masked.into_owned();
    }
    match masked.char_indices().nth(max) {
        None => masked.into_owned(),
        Some((cut, _)) => {
            let mut out = masked[..cut].to_owned();
            out.push('…');
            out
        }
    }
}

/// Cleans a message.
pub(crate) fn clean_message(s: &str) -> String {
    clean(s, MAX_MESSAGE_CHARS)
}

#[cfg(test)]
mod tests;
