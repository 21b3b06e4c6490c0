//! Reading an LLM error out of one server-sent event, and the cheap byte scan that decides
//! whether an event is worth reading at all.

use super::Event;
use crate::error::parse::{MAX_FIELD_CHARS, MAX_MESSAGE_CHARS, clean, from_json_in_band};
use crate::{ApiError, ErrorKind};
use memchr::memmem;
use serde_json::{Map, Value};
use std::sync::LazyLock;

impl ApiError {
    /// Reads an in-band error out of one server-sent event; `None` for a normal event.
    ///
    /// Recognized shapes (the JSON is read only when it can be an error, see below):
    ///
    /// - a top-level `error` member, object or string: OpenAI chat completions (`data:
    ///   {"error":{...}}`, often followed by `data: [DONE]`), OpenRouter and Infron (an `error`
    ///   with a numeric or string `code` next to `finish_reason: "error"`), vLLM, TGI (`{"error":
    ///   "...","error_type":"..."}`), Anthropic (`event: error` with `{"type":"error","error":
    ///   {...}}`), Gemini (`{"error":{"code":503,"status":"UNAVAILABLE",...}}`, also inside an
    ///   array);
    /// - Groq's `x_groq.error`;
    /// - OpenAI Responses: `event: error` with the flat `{"type":"error","code","message",
    ///   "param"}` shape, and `response.failed` with `response.error`;
    /// - a choice that ended with `finish_reason: "error"` and no error object;
    /// - ends by a content filter, returned with [`ErrorKind::ContentFiltered`]:
    ///   `finish_reason: "content_filter"`, Gemini's `finishReason` `SAFETY` (and its siblings)
    ///   or `promptFeedback.blockReason`, Anthropic's `stop_reason: "refusal"`, and a Responses
    ///   `response.incomplete` whose reason is `content_filter`.
    ///
    /// An event named `error` whose data is not JSON still yields an error with the data as
    /// its message. `[DONE]` and ordinary chunks yield `None`, also when their text talks about
    /// errors.
    ///
    /// ```
    /// use tower_llm_errors::{ApiError, sse::Event};
    ///
    /// let event = Event::new(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)
    ///     .with_event("error");
    /// let err = ApiError::from_sse_event(&event).unwrap();
    /// assert_eq!(err.error_type(), Some("overloaded_error"));
    ///
    /// let normal = Event::new(r#"{"choices":[{"delta":{"content":"an error occurred"}}]}"#);
    /// assert!(ApiError::from_sse_event(&normal).is_none());
    /// ```
    pub fn from_sse_event(event: &Event) -> Option<ApiError> {
        from_event(event.event(), event.data_bytes())
    }
}

/// Event names that announce an error (or a response that did not complete).
pub(crate) fn is_error_event_name(name: &[u8]) -> bool {
    matches!(
        name,
        b"error" | b"response.failed" | b"response.incomplete" | b"response.error"
    )
}

pub(crate) fn from_event(name: &str, data: &[u8]) -> Option<ApiError> {
    let data = data.trim_ascii();
    let named = is_error_event_name(name.as_bytes());
    if data == b"[DONE]" {
        return None;
    }
    match serde_json::from_slice::<Value>(data) {
        Ok(value) => from_value(named && name == "error", &value),
        Err(_) if name == "error" => {
            let text = String::from_utf8_lossy(data);
            let message = if text.is_empty() {
                "the stream sent an error event".to_owned()
            } else {
                clean(&text, MAX_MESSAGE_CHARS)
            };
            Some(ApiError::new(ErrorKind::Unknown, message))
        }
        Err(_) => None,
    }
}

/// The error in a JSON document that arrived in the stream: an event's data or a bare JSON
/// document (Gemini).
pub(crate) fn from_value(named_error: bool, value: &Value) -> Option<ApiError> {
    if let Value::Array(items) = value {
        return items.iter().find_map(|v| from_value(named_error, v));
    }
    let obj = value.as_object()?;
    if let Some(err) = obj.get("error").filter(|e| e.is_object() || e.is_string()) {
        let mut api = wrap(err)?;
        if api.error_type().is_none() {
            // Gemini's `status`, TGI's top-level `error_type`.
            let extra = err
                .get("status")
                .and_then(Value::as_str)
                .or_else(|| obj.get("error_type").and_then(Value::as_str));
            if let Some(t) = extra.filter(|t| !t.is_empty()) {
                api = api.with_error_type(clean(t, MAX_FIELD_CHARS));
            }
        }
        return Some(api);
    }
    if let Some(err) = obj
        .get("x_groq")
        .and_then(|g| g.get("error"))
        .filter(|e| e.is_object() || e.is_string())
    {
        return wrap(err);
    }
    let ty = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    match ty {
        "response.failed" => {
            let response = obj.get("response");
            return match response
                .and_then(|r| r.get("error"))
                .filter(|e| e.is_object())
            {
                Some(err) => wrap(err),
                None => Some(ApiError::new(
                    ErrorKind::Unknown,
                    "the response failed without an error object",
                )),
            };
        }
        "response.incomplete" => {
            let reason = obj
                .get("response")
                .and_then(|r| r.get("incomplete_details"))
                .and_then(|d| d.get("reason"))
                .and_then(Value::as_str);
            return (reason == Some("content_filter")).then(|| filtered("content_filter"));
        }
        "error" => return wrap_flat(obj),
        _ => {}
    }
    if named_error {
        return wrap_flat(obj);
    }
    content_end(obj)
}

/// `{"error": err}` read by the error model.
fn wrap(err: &Value) -> Option<ApiError> {
    let mut doc = Map::new();
    doc.insert("error".to_owned(), err.clone());
    let bytes = serde_json::to_vec(&Value::Object(doc)).ok()?;
    from_json_in_band(&bytes)
}

/// The OpenAI Responses flat error: `code`, `message`, `param` at the top level.
fn wrap_flat(obj: &Map<String, Value>) -> Option<ApiError> {
    let mut err = obj.clone();
    if err.get("type").and_then(Value::as_str) == Some("error") {
        err.remove("type");
    }
    err.remove("sequence_number");
    if !err.contains_key("message") && !err.contains_key("code") {
        return Some(ApiError::new(
            ErrorKind::Unknown,
            "the stream sent an error event",
        ));
    }
    wrap(&Value::Object(err))
}

fn filtered(reason: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ContentFiltered,
        "the output was stopped by a content filter",
    )
    .with_code(clean(reason, MAX_FIELD_CHARS))
}

/// Gemini `finishReason` values that mean the output was blocked.
const GEMINI_BLOCKED: &[&str] = &[
    "SAFETY",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
];

/// Content-filter ends and `finish_reason: "error"` in an otherwise normal chunk.
fn content_end(obj: &Map<String, Value>) -> Option<ApiError> {
    if let Some(choices) = obj.get("choices").and_then(Value::as_array) {
        for c in choices {
            match c.get("finish_reason").and_then(Value::as_str) {
                Some("content_filter") => return Some(filtered("content_filter")),
                Some("error") => {
                    return Some(ApiError::new(
                        ErrorKind::ServerError,
                        "the upstream stopped the stream with finish_reason error",
                    ));
                }
                _ => {}
            }
        }
    }
    if let Some(cands) = obj.get("candidates").and_then(Value::as_array) {
        for c in cands {
            if let Some(r) = c.get("finishReason").and_then(Value::as_str) {
                if GEMINI_BLOCKED.contains(&r) {
                    return Some(filtered(r));
                }
            }
        }
    }
    if let Some(r) = obj
        .get("promptFeedback")
        .and_then(|p| p.get("blockReason"))
        .and_then(Value::as_str)
    {
        return Some(filtered(r));
    }
    let stop = obj
        .get("delta")
        .and_then(|d| d.get("stop_reason"))
        .or_else(|| obj.get("message").and_then(|m| m.get("stop_reason")))
        .and_then(Value::as_str);
    if stop == Some("refusal") {
        return Some(filtered("refusal"));
    }
    None
}

/// The needles of the cheap scan.
pub(crate) struct Needles {
    /// `"error"` as a JSON token, key or value. Text that merely contains the word has no
    /// unescaped quotes around it (inside a JSON string they would be `\"`).
    pub(crate) error: memmem::Finder<'static>,
    /// The tail of a `finish_reason`, `stop_reason`, `finishReason`, `blockReason` or `reason`
    /// key (`eason"`); the value after it is checked in place ([`reason_is_suspect`]), so
    /// `null` and normal reasons cost one comparison.
    pub(crate) reason: memmem::Finder<'static>,
}

/// Byte frequencies of JSON text, so that memmem's prefilter looks for the needle's rarest
/// bytes (`rr` in `"error"`) rather than for `"`, which is everywhere in JSON.
#[derive(Clone, Copy)]
struct JsonRank;

impl memchr::arch::all::packedpair::HeuristicFrequencyRank for JsonRank {
    fn rank(&self, byte: u8) -> u8 {
        match byte {
            b'"' | b':' | b',' | b' ' | b'{' | b'}' => 255,
            b'a'..=b'z' => match byte {
                b'e' => 245,
                b't' => 240,
                b'a' => 235,
                b'o' => 230,
                b'i' | b'n' => 225,
                b's' => 220,
                b'r' => 215,
                b'h' | b'l' | b'd' => 200,
                _ => 180,
            },
            b'0'..=b'9' => 200,
            b'A'..=b'Z' => 120,
            _ => 60,
        }
    }
}

pub(crate) static NEEDLES: LazyLock<Needles> = LazyLock::new(|| {
    let b = memmem::FinderBuilder::new();
    Needles {
        error: b.build_forward_with_ranker(JsonRank, b"\"error\""),
        reason: b.build_forward_with_ranker(JsonRank, b"eason\""),
    }
});

/// The whole-run scan of the inspector's fast path: could a run of complete blocks hold
/// anything that the exact line loop would act on?
///
/// It must find a superset of what the per-line checks find, so it looks for substrings of
/// every trigger, picked so that their first two bytes are rare in JSON and in SSE framing
/// (the packed searcher's fingerprint is the first bytes of each pattern):
///
/// - `rror`: `"error"` in data, the reason value `"error"`, and the event names `error` and
///   `response.error`;
/// - `.failed`, `.incomplete`: the event names `response.failed`, `response.incomplete`;
/// - a substring of each other [`SUSPECT_REASONS`] value (`ilter` for `content_filter`,
///   `SAFETY` also covers `IMAGE_SAFETY`);
/// - `\n{`, `\n[`, `\r{`, `\r[`: a line that starts a bare JSON document (Gemini); the
///   exact path reads such a document in full, so no substring of its content would do.
///
/// Prose that happens to contain one of these only sends that run to the exact loop.
///
/// The search is `aho-corasick`'s packed SIMD searcher ("Teddy") where the CPU has it, and
/// its automaton otherwise. (A `memmem` pass per pattern would read the run a dozen times.)
pub(crate) enum RunScan {
    Packed(aho_corasick::packed::Searcher),
    Automaton(aho_corasick::AhoCorasick),
}

/// See [`RunScan`]. The order matters for speed only: Teddy puts pattern `i` and `i + 8` in
/// one of its 8 buckets (patterns whose leading bytes agree in their low nybbles share one
/// anyway), and a bucket matches any mix of its patterns' leading bytes; so the patterns that
/// share a bucket are picked to keep such mixes rare in JSON: `S…`, `.…`, the four line-start
/// patterns, and the two upper-case reasons.
const RUN_PATTERNS: &[&[u8]] = &[
    b"SAFETY",
    b".failed",
    b"\n{",
    b"BLOCKLIST",
    b"rror",
    b"ilter",
    b"efusal",
    b"OTHER",
    b"SPII",
    b".incomplete",
    b"\r{",
    b"PROHIBITED",
    b"\n[",
    b"\r[",
];

impl RunScan {
    /// Whether `run` (which starts at a line start) could hold a suspect event or a bare JSON
    /// document.
    pub(crate) fn is_suspect(&self, run: &[u8]) -> bool {
        matches!(run.first(), Some(b'{' | b'[')) || self.finds(run)
    }

    /// Whether any pattern occurs in `hay`. As a prefilter for one `data` value: when none
    /// does, [`data_is_suspect`] is false without its two `memmem` searches.
    pub(crate) fn finds(&self, hay: &[u8]) -> bool {
        match self {
            RunScan::Packed(packed) => packed.find(hay).is_some(),
            RunScan::Automaton(automaton) => automaton.is_match(hay),
        }
    }
}

pub(crate) static RUN_SCAN: LazyLock<RunScan> =
    LazyLock::new(|| match aho_corasick::packed::Searcher::new(RUN_PATTERNS) {
        Some(packed) => RunScan::Packed(packed),
        None => RunScan::Automaton(
            aho_corasick::AhoCorasick::new(RUN_PATTERNS)
                .expect("a fixed, small pattern set always builds"),
        ),
    });

/// Values after a `...reason"` key that make an event worth parsing.
const SUSPECT_REASONS: &[&[u8]] = &[
    b"content_filter",
    b"error",
    b"refusal",
    b"SAFETY",
    b"BLOCKLIST",
    b"PROHIBITED_CONTENT",
    b"SPII",
    b"IMAGE_SAFETY",
    b"OTHER",
];

/// Whether the `eason"` match ending at `after` (the index just past the quote) is followed by
/// a string value that can mean an error or a filtered end. `null` and normal reasons
/// (`"stop"`, `"end_turn"`, `"STOP"`, ...) are not.
pub(crate) fn reason_is_suspect(hay: &[u8], after: usize) -> bool {
    let rest = hay.get(after..).unwrap_or_default().trim_ascii_start();
    let Some(rest) = rest.strip_prefix(b":") else {
        return false;
    };
    let Some(rest) = rest.trim_ascii_start().strip_prefix(b"\"") else {
        return false;
    };
    let value = match memchr::memchr(b'"', rest) {
        Some(end) => &rest[..end],
        None => rest,
    };
    SUSPECT_REASONS.contains(&value)
}

/// The whole cheap scan on one `data` value: could this event be an error or a filtered end?
pub(crate) fn data_is_suspect(value: &[u8]) -> bool {
    if !RUN_SCAN.finds(value) {
        return false;
    }
    let n = &*NEEDLES;
    if n.error.find(value).is_some() {
        return true;
    }
    n.reason
        .find_iter(value)
        .any(|p| reason_is_suspect(value, p + 6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_ignores_prose_about_errors() {
        assert!(!data_is_suspect(
            br#"{"choices":[{"delta":{"content":"an error: \"error\" happened"},"finish_reason":null}]}"#
        ));
        assert!(data_is_suspect(br#"{"error":{"message":"x"}}"#));
        assert!(data_is_suspect(
            br#"{"choices":[{"finish_reason": "content_filter"}]}"#
        ));
        assert!(!data_is_suspect(
            br#"{"choices":[{"finish_reason":"stop"}]}"#
        ));
        assert!(!data_is_suspect(br#"{"delta":{"stop_reason":"end_turn"}}"#));
    }
}
