//! Rendering an [`ApiError`] as a response in one [`Dialect`].
//!
//! # The shapes we write
//!
//! | dialect | body |
//! |---|---|
//! | [`Dialect::OpenAi`] | `{"error":{"message","type","code","param"}}`; `code` and `param` are `null` when absent |
//! | [`Dialect::Infuzu`] | `{"error":{"code","message"}}`, lower_snake codes |
//! | [`Dialect::Envelope`] | `{"success":false,"error":{"code","message"[,"details":{"field","issue"}]},"meta":{"request_id","timestamp"}}`, UPPER_SNAKE codes |
//! | [`Dialect::Infron`] | `{"error":{"code":<number>,"message","type","param"}}`, `code` equal to the response status |
//! | [`Dialect::Anthropic`] | `{"type":"error","error":{"type","message"},"request_id"}` |
//!
//! # Status and code
//!
//! Each dialect has a vocabulary: the codes its documentation lists, with the statuses they are
//! sent with. When the error already carries a code from that vocabulary (because it was read
//! from that dialect, or a guard produced it), the code is kept, and so is the error's status if
//! the vocabulary allows it for that code. Otherwise the dialect's canonical code for the error's
//! [`ErrorKind`] is used, with the error's own status when it means that kind (a 422 stays a
//! 422), else the dialect's status for the kind. Status 529 exists only in the Anthropic dialect
//! (`overloaded_error`); elsewhere an overload is a 503.
//!
//! Infron has a numeric code and a free-form `type`; where the status alone does not name the
//! kind (a context-length 400, a moderation 403, an overload 503) the type carries the precise
//! name (`context_length_exceeded`, `content_filter`, `overloaded`). Anthropic's types are a
//! closed set: `ContextLengthExceeded` and `ContentFiltered` render as `invalid_request_error`
//! and `QuotaExceeded` as `rate_limit_error`, so a reader gets back the nearest kind, and the
//! `x-should-retry` header keeps the retry verdict. Every other dialect round-trips every kind
//! (`Unknown` reads back as `ServerError`).
//!
//! # Headers
//!
//! `content-type: application/json`; `retry-after` in whole seconds, rounded up, when the error
//! carries a retry hint; `x-request-id` when it carries a request id; `x-should-retry: true|false`
//! from [`ApiError::is_retryable`], which the official SDKs honor.
//!
//! # Bounds and secrets
//!
//! Every text field is bounded (messages to [`MAX_RENDERED_MESSAGE_CHARS`] characters, codes,
//! types, params and request ids to 256) and passes through
//! [`mask_secrets`](super::secret::mask_secrets), so a rendered body never echoes a key, and
//! its size is bounded whatever the error holds.
//!
//! # Time stamps
//!
//! The envelope dialect's `meta.timestamp` is an RFC 3339 UTC time. The crate has no date
//! dependency (and `httpdate` only writes the IMF-fixdate form), so the few lines that turn a
//! `SystemTime` into `YYYY-MM-DDTHH:MM:SSZ` are written here ([`rfc3339_utc`]), using the
//! well-known days-to-civil-date arithmetic.

use super::{ApiError, Dialect, ErrorKind, secret};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest message a rendered body carries, in characters.
pub(crate) const MAX_RENDERED_MESSAGE_CHARS: usize = 2048;

/// The longest code, type, param, issue or request id a rendered body carries, in characters.
const MAX_FIELD_CHARS: usize = 256;

/// Infuzu's documented codes and the statuses they are sent with (lower_snake).
pub(crate) const INFUZU_CODES: &[(&str, ErrorKind, u16)] = &[
    ("invalid_request_body", ErrorKind::InvalidRequest, 400),
    ("multiple_api_keys", ErrorKind::InvalidRequest, 400),
    ("missing_required_field", ErrorKind::InvalidRequest, 400),
    ("invalid_field", ErrorKind::InvalidRequest, 400),
    ("missing_api_key", ErrorKind::Authentication, 401),
    ("invalid_api_key", ErrorKind::Authentication, 401),
    ("not_enough_funds", ErrorKind::InsufficientFunds, 402),
    (
        "unsupported_media_type",
        ErrorKind::UnsupportedMediaType,
        415,
    ),
    ("rate_limit_exceeded", ErrorKind::RateLimited, 429),
    ("internal_server_error", ErrorKind::ServerError, 500),
];

/// The envelope dialect's documented codes and statuses (UPPER_SNAKE). The field-specific
/// codes are validation errors, sent as 400.
pub(crate) const ENVELOPE_CODES: &[(&str, ErrorKind, u16)] = &[
    ("MISSING_API_KEY", ErrorKind::Authentication, 401),
    ("INVALID_API_KEY", ErrorKind::Authentication, 401),
    ("EXPIRED_API_KEY", ErrorKind::Authentication, 401),
    ("REVOKED_API_KEY", ErrorKind::Authentication, 401),
    ("INSUFFICIENT_PERMISSIONS", ErrorKind::PermissionDenied, 403),
    ("ACCOUNT_SUSPENDED", ErrorKind::PermissionDenied, 403),
    ("QUOTA_EXCEEDED", ErrorKind::QuotaExceeded, 403),
    ("INVALID_REQUEST", ErrorKind::InvalidRequest, 400),
    ("MISSING_REQUIRED_FIELD", ErrorKind::InvalidRequest, 400),
    ("INVALID_FIELD_VALUE", ErrorKind::InvalidRequest, 400),
    ("UNSUPPORTED_MODEL", ErrorKind::InvalidRequest, 400),
    ("INVALID_FILE_FORMAT", ErrorKind::InvalidRequest, 400),
    ("FILE_TOO_LARGE", ErrorKind::PayloadTooLarge, 400),
    ("RESOURCE_NOT_FOUND", ErrorKind::NotFound, 404),
    ("ENDPOINT_NOT_FOUND", ErrorKind::NotFound, 404),
    ("MODEL_NOT_FOUND", ErrorKind::NotFound, 404),
    ("RATE_LIMIT_EXCEEDED", ErrorKind::RateLimited, 429),
    ("CONCURRENT_LIMIT_EXCEEDED", ErrorKind::RateLimited, 429),
    ("INTERNAL_ERROR", ErrorKind::ServerError, 500),
    ("MODEL_UNAVAILABLE", ErrorKind::ServerError, 500),
    ("PROCESSING_ERROR", ErrorKind::ServerError, 500),
    ("SERVICE_UNAVAILABLE", ErrorKind::ServiceUnavailable, 503),
    ("SERVICE_UNAVAILABLE", ErrorKind::ServiceUnavailable, 502),
    ("OVERLOADED", ErrorKind::Overloaded, 503),
    ("OVERLOADED", ErrorKind::Overloaded, 502),
    ("PROMPT_TOO_LONG", ErrorKind::ContextLengthExceeded, 400),
    ("INVALID_TEMPERATURE", ErrorKind::InvalidRequest, 400),
    ("INVALID_MAX_TOKENS", ErrorKind::InvalidRequest, 400),
    ("INVALID_IMAGE_SIZE", ErrorKind::InvalidRequest, 400),
    ("INVALID_IMAGE_QUALITY", ErrorKind::InvalidRequest, 400),
    ("PROMPT_VIOLATION", ErrorKind::ContentFiltered, 400),
];

/// Codes that mean the same thing in the Infuzu and envelope vocabularies.
const SYNONYMS: &[(&str, &str)] = &[
    ("invalid_request_body", "INVALID_REQUEST"),
    ("missing_required_field", "MISSING_REQUIRED_FIELD"),
    ("invalid_field", "INVALID_FIELD_VALUE"),
    ("missing_api_key", "MISSING_API_KEY"),
    ("invalid_api_key", "INVALID_API_KEY"),
    ("rate_limit_exceeded", "RATE_LIMIT_EXCEEDED"),
    ("internal_server_error", "INTERNAL_ERROR"),
];

/// Anthropic's error types and their statuses.
pub(crate) const ANTHROPIC_TYPES: &[(&str, u16)] = &[
    ("invalid_request_error", 400),
    ("authentication_error", 401),
    ("billing_error", 402),
    ("permission_error", 403),
    ("not_found_error", 404),
    ("request_too_large", 413),
    ("rate_limit_error", 429),
    ("api_error", 500),
    ("timeout_error", 504),
    ("overloaded_error", 529),
];

/// The Infuzu code and status for a kind (seed table first, our own lower_snake otherwise).
pub(crate) fn infuzu_code(kind: ErrorKind) -> (&'static str, u16) {
    match kind {
        ErrorKind::InvalidRequest => ("invalid_request_body", 400),
        ErrorKind::Authentication => ("invalid_api_key", 401),
        ErrorKind::InsufficientFunds => ("not_enough_funds", 402),
        ErrorKind::UnsupportedMediaType => ("unsupported_media_type", 415),
        ErrorKind::RateLimited => ("rate_limit_exceeded", 429),
        ErrorKind::ServerError | ErrorKind::Unknown => ("internal_server_error", 500),
        ErrorKind::ContextLengthExceeded => ("context_length_exceeded", 400),
        k => (k.as_str(), k.default_status().as_u16()),
    }
}

/// The envelope code and status for a kind.
pub(crate) fn envelope_code(kind: ErrorKind) -> (&'static str, u16) {
    match kind {
        ErrorKind::InvalidRequest => ("INVALID_REQUEST", 400),
        ErrorKind::Authentication => ("INVALID_API_KEY", 401),
        ErrorKind::PermissionDenied => ("INSUFFICIENT_PERMISSIONS", 403),
        ErrorKind::InsufficientFunds => ("INSUFFICIENT_FUNDS", 402),
        ErrorKind::NotFound => ("RESOURCE_NOT_FOUND", 404),
        ErrorKind::Conflict => ("CONFLICT", 409),
        ErrorKind::PayloadTooLarge => ("PAYLOAD_TOO_LARGE", 413),
        ErrorKind::UnsupportedMediaType => ("UNSUPPORTED_MEDIA_TYPE", 415),
        ErrorKind::ContextLengthExceeded => ("PROMPT_TOO_LONG", 400),
        ErrorKind::ContentFiltered => ("PROMPT_VIOLATION", 400),
        ErrorKind::RequestTimeout => ("REQUEST_TIMEOUT", 408),
        ErrorKind::RateLimited => ("RATE_LIMIT_EXCEEDED", 429),
        ErrorKind::QuotaExceeded => ("QUOTA_EXCEEDED", 403),
        ErrorKind::ServerError | ErrorKind::Unknown => ("INTERNAL_ERROR", 500),
        ErrorKind::BadGateway => ("BAD_GATEWAY", 502),
        ErrorKind::ServiceUnavailable => ("SERVICE_UNAVAILABLE", 503),
        ErrorKind::Overloaded => ("OVERLOADED", 503),
        ErrorKind::GatewayTimeout => ("GATEWAY_TIMEOUT", 504),
    }
}

/// The OpenAI-compatible `(type, code, status)` for a kind.
pub(crate) fn openai_code(kind: ErrorKind) -> (&'static str, &'static str, u16) {
    match kind {
        ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request_error", 400),
        ErrorKind::Authentication => ("authentication_error", "invalid_api_key", 401),
        ErrorKind::PermissionDenied => ("permission_error", "forbidden", 403),
        ErrorKind::InsufficientFunds => ("payment_required", "payment_required", 402),
        ErrorKind::NotFound => ("not_found_error", "not_found", 404),
        ErrorKind::Conflict => ("invalid_request_error", "conflict", 409),
        ErrorKind::PayloadTooLarge => ("invalid_request_error", "payload_too_large", 413),
        ErrorKind::UnsupportedMediaType => ("invalid_request_error", "unsupported_media_type", 415),
        ErrorKind::ContextLengthExceeded => {
            ("invalid_request_error", "context_length_exceeded", 400)
        }
        ErrorKind::ContentFiltered => ("invalid_request_error", "content_filter", 400),
        ErrorKind::RequestTimeout => ("invalid_request_error", "request_timeout", 408),
        ErrorKind::RateLimited => ("rate_limit_error", "rate_limit_exceeded", 429),
        ErrorKind::QuotaExceeded => ("insufficient_quota", "insufficient_quota", 429),
        ErrorKind::ServerError | ErrorKind::Unknown => ("server_error", "api_error", 500),
        ErrorKind::BadGateway => ("server_error", "bad_gateway", 502),
        ErrorKind::ServiceUnavailable => ("server_error", "service_unavailable", 503),
        ErrorKind::Overloaded => ("server_error", "overloaded", 503),
        ErrorKind::GatewayTimeout => ("server_error", "gateway_timeout", 504),
    }
}

/// The OpenAI-compatible `type` values we keep when an error carries one.
const OPENAI_TYPES: &[&str] = &[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "rate_limit_error",
    "insufficient_quota",
    "server_error",
    "payment_required",
];

/// Anthropic's `type` and status for a kind.
pub(crate) fn anthropic_type(kind: ErrorKind) -> (&'static str, u16) {
    match kind {
        ErrorKind::Authentication => ("authentication_error", 401),
        ErrorKind::PermissionDenied => ("permission_error", 403),
        ErrorKind::InsufficientFunds => ("billing_error", 402),
        ErrorKind::NotFound => ("not_found_error", 404),
        ErrorKind::PayloadTooLarge => ("request_too_large", 413),
        ErrorKind::RateLimited | ErrorKind::QuotaExceeded => ("rate_limit_error", 429),
        ErrorKind::ServerError | ErrorKind::Unknown => ("api_error", 500),
        ErrorKind::BadGateway => ("api_error", 502),
        ErrorKind::ServiceUnavailable => ("api_error", 503),
        ErrorKind::GatewayTimeout => ("timeout_error", 504),
        ErrorKind::Overloaded => ("overloaded_error", 529),
        // Anthropic reports refusals in-band (`stop_reason: "refusal"`); an error response for
        // one is a plain invalid request.
        ErrorKind::ContentFiltered => ("invalid_request_error", 400),
        k => ("invalid_request_error", k.default_status().as_u16()),
    }
}

/// Status 529, Anthropic's "overloaded".
const OVERLOADED_529: u16 = 529;

/// Bounds `s` to `max` characters and masks anything that looks like a key.
fn bounded(s: &str, max: usize) -> String {
    let masked = secret::mask_secrets(s);
    if masked.chars().count() <= max {
        masked.into_owned()
    } else {
        let mut out: String = masked.chars().take(max).collect();
        out.push('…');
        out
    }
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Whether a code is lower_snake ASCII (`[a-z0-9_]+`), the style of the OpenAI-compatible and
/// Infuzu vocabularies.
fn is_lower_snake(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= MAX_FIELD_CHARS
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && code.bytes().any(|b| b.is_ascii_lowercase())
}

/// Everything [`ApiError::render`] decided, before it is written out. Shared with the server's
/// streaming error event, which writes the same body without a response around it.
#[derive(Debug)]
pub(crate) struct Rendered {
    pub(crate) status: StatusCode,
    pub(crate) body: Vec<u8>,
}

/// A tiny JSON object writer that keeps fields in the order the vendor documents them
/// (`serde_json::Map` sorts keys unless the crate-wide `preserve_order` feature is on, which
/// would change every other module's output). Strings are escaped by `serde_json`.
#[derive(Debug)]
struct Json {
    out: Vec<u8>,
    first: bool,
}

impl Default for Json {
    fn default() -> Json {
        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        Json { out, first: true }
    }
}

impl Json {
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.extend_from_slice(value.as_bytes());
    }

    fn str(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        match value {
            // Writing a string into a Vec cannot fail; `serde_json` does the escaping.
            Some(v) => {
                if serde_json::to_writer(&mut self.out, v).is_err() {
                    self.out.extend_from_slice(b"null");
                }
            }
            None => self.out.extend_from_slice(b"null"),
        }
    }

    fn open(&mut self, key: &str) {
        self.key(key);
        self.out.push(b'{');
        self.first = true;
    }

    fn close(&mut self) {
        self.out.push(b'}');
        self.first = false;
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.push(b'}');
        self.out
    }
}

impl ApiError {
    /// Renders the error as a response in `dialect`: the status, `content-type:
    /// application/json`, `retry-after` (whole seconds, rounded up) when the error carries a
    /// retry hint, `x-request-id` when it carries a request id, and the dialect's JSON body.
    ///
    /// Status and code: each dialect has a vocabulary (the codes its documentation lists, with
    /// their statuses). A code the error already carries from that vocabulary is kept, with the
    /// error's status when the vocabulary allows it. Otherwise the dialect's canonical code for
    /// the [`ErrorKind`] is used, with the error's own status when that status means the kind
    /// (a 422 stays a 422), else the dialect's status for the kind. Status 529 exists only in
    /// the Anthropic dialect (`overloaded_error`); elsewhere an overload is a 503. The envelope's
    /// `meta.timestamp` is the error's own [`timestamp`](ApiError::timestamp) when it has a
    /// well-formed one, else now. Text fields are bounded (messages to 2048 characters) and
    /// key-looking tokens masked, so the body never echoes a secret.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_llm_errors::{ApiError, Dialect, ErrorKind};
    ///
    /// let err = ApiError::new(ErrorKind::Authentication, "no API key was sent")
    ///     .with_code("missing_api_key");
    /// let res = err.render(Dialect::Infuzu);
    /// assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    /// assert_eq!(
    ///     res.body().as_ref(),
    ///     br#"{"error":{"code":"missing_api_key","message":"no API key was sent"}}"#
    /// );
    /// let res = err.render(Dialect::Envelope);
    /// assert!(res.body().starts_with(br#"{"success":false,"error":{"code":"MISSING_API_KEY""#));
    /// ```
    pub fn render(&self, dialect: Dialect) -> Response<Bytes> {
        let rendered = self.render_parts(dialect, SystemTime::now());
        self.response_from_parts(rendered)
    }

    /// [`ApiError::render`] with an explicit clock for the envelope's `meta.timestamp` (used
    /// when the error has no timestamp of its own). Mainly for tests.
    pub fn render_at(&self, dialect: Dialect, now: SystemTime) -> Response<Bytes> {
        let rendered = self.render_parts(dialect, now);
        self.response_from_parts(rendered)
    }

    fn response_from_parts(&self, rendered: Rendered) -> Response<Bytes> {
        let mut res = Response::new(Bytes::from(rendered.body));
        *res.status_mut() = rendered.status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(d) = self.retry_after() {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(ceil_secs(d)));
        }
        // The retry verdict travels explicitly, so that a dialect without a slot for the kind
        // (Anthropic has no quota type) cannot turn a never-retry error into a retryable one.
        // The official OpenAI and Anthropic SDKs honor this header.
        headers.insert(
            header::HeaderName::from_static("x-should-retry"),
            HeaderValue::from_static(if self.is_retryable() { "true" } else { "false" }),
        );
        if let Some(id) = self.rendered_request_id() {
            if let Ok(v) = HeaderValue::from_str(&id) {
                headers.insert(header::HeaderName::from_static("x-request-id"), v);
            }
        }
        res
    }

    /// Sets the error's own time stamp (the envelope's `meta.timestamp`), an RFC 3339 time.
    /// Rendering uses it when it is well formed, else the current time.
    pub fn with_timestamp(mut self, timestamp: impl Into<String>) -> ApiError {
        self.inner_mut().timestamp = Some(timestamp.into().into_boxed_str());
        self
    }

    fn rendered_request_id(&self) -> Option<String> {
        self.request_id().map(|id| bounded(id, MAX_FIELD_CHARS))
    }

    /// The status and JSON body of the error in `dialect`.
    pub(crate) fn render_parts(&self, dialect: Dialect, now: SystemTime) -> Rendered {
        let kind = self.kind();
        let message = bounded(self.message(), MAX_RENDERED_MESSAGE_CHARS);
        let message = if message.is_empty() {
            default_message(kind).to_owned()
        } else {
            message
        };
        let param = self.param().map(|p| bounded(p, MAX_FIELD_CHARS));
        let mut w = Json::default();
        let st = match dialect {
            Dialect::Infuzu => {
                let (code, st) = self.vocab_code(INFUZU_CODES, |c| {
                    SYNONYMS.iter().find(|s| s.1 == c).map(|s| s.0)
                });
                let (code, st) = code.map_or_else(
                    || {
                        let (c, s) = infuzu_code(kind);
                        (c.to_owned(), self.status_for_kind(s))
                    },
                    |c| (c, st),
                );
                w.open("error");
                w.str("code", Some(&code));
                w.str("message", Some(&message));
                w.close();
                st
            }
            Dialect::Envelope => {
                let (code, st) = self.vocab_code(ENVELOPE_CODES, |c| {
                    SYNONYMS.iter().find(|s| s.0 == c).map(|s| s.1)
                });
                let (code, st) = code.map_or_else(
                    || {
                        let (c, s) = envelope_code(kind);
                        (c.to_owned(), self.status_for_kind(s))
                    },
                    |c| (c, st),
                );
                let issue = self
                    .detail()
                    .map(|d| bounded(d, MAX_RENDERED_MESSAGE_CHARS));
                let timestamp = self
                    .timestamp()
                    .filter(|t| looks_like_rfc3339(t))
                    .map_or_else(|| rfc3339_utc(now), str::to_owned);
                w.raw("success", "false");
                w.open("error");
                w.str("code", Some(&code));
                w.str("message", Some(&message));
                if param.is_some() || issue.is_some() {
                    w.open("details");
                    w.str("field", param.as_deref());
                    w.str("issue", issue.as_deref());
                    w.close();
                }
                w.close();
                w.open("meta");
                w.str("request_id", self.rendered_request_id().as_deref());
                w.str("timestamp", Some(&timestamp));
                w.close();
                st
            }
            Dialect::OpenAi => {
                let (ty, code, st) = openai_code(kind);
                let st = self.status_for_kind(st);
                let ty = self
                    .error_type()
                    .filter(|t| OPENAI_TYPES.contains(t))
                    .unwrap_or(ty);
                // Anthropic has no codes: its parser reports the error type as the code, and
                // that vocabulary is not OpenAI's, so such an error gets the canonical code.
                let carried = self
                    .code()
                    .filter(|_| self.dialect() != Some(Dialect::Anthropic));
                let code = match carried {
                    Some(c) if is_lower_snake(c) => c.to_owned(),
                    Some(c) if is_lower_snake(&c.to_ascii_lowercase()) => c.to_ascii_lowercase(),
                    _ => code.to_owned(),
                };
                w.open("error");
                w.str("message", Some(&message));
                w.str("type", Some(ty));
                w.str("code", Some(&code));
                w.str("param", param.as_deref());
                w.close();
                st
            }
            Dialect::Infron => {
                let (coarse, precise, _) = openai_code(kind);
                let st = self.status_for_kind(kind.default_status().as_u16());
                // Infron has no string code, only a free-form `type`. Where the status alone
                // does not name the kind (a 400 that is a context-length failure, a 403 that is
                // a moderation flag, a 503 that is an overload), the type carries the precise
                // name so that a reader gets the kind back.
                let status_names_kind = StatusCode::from_u16(st)
                    .ok()
                    .and_then(ErrorKind::from_status)
                    == Some(kind);
                let ty = if status_names_kind {
                    self.error_type()
                        .filter(|t| OPENAI_TYPES.contains(t))
                        .unwrap_or(coarse)
                } else {
                    precise
                };
                w.open("error");
                w.raw("code", &st.to_string());
                w.str("message", Some(&message));
                w.str("type", Some(ty));
                w.str("param", Some(param.as_deref().unwrap_or_default()));
                w.close();
                st
            }
            Dialect::Anthropic => {
                let (kty, kst) = anthropic_type(kind);
                let (ty, st) = match self
                    .error_type()
                    .and_then(|t| ANTHROPIC_TYPES.iter().find(|a| a.0 == t))
                    // A carried type is kept when it does not contradict the kind.
                    .filter(|a| kty == a.0 || kind == ErrorKind::Unknown)
                {
                    Some(&(t, s)) => (t, s),
                    None => (kty, kst),
                };
                let st = if ty == "overloaded_error" {
                    OVERLOADED_529
                } else {
                    self.status_for_kind(st)
                };
                w.str("type", Some("error"));
                w.open("error");
                w.str("type", Some(ty));
                w.str("message", Some(&message));
                w.close();
                w.str("request_id", self.rendered_request_id().as_deref());
                st
            }
        };
        Rendered {
            status: status(st),
            body: w.finish(),
        }
    }

    /// The error's code if it (or its synonym) is in `vocab`, with the status to send.
    fn vocab_code(
        &self,
        vocab: &[(&'static str, ErrorKind, u16)],
        synonym: impl Fn(&str) -> Option<&'static str>,
    ) -> (Option<String>, u16) {
        let Some(code) = self.code() else {
            return (None, 0);
        };
        let code = vocab
            .iter()
            .find(|v| v.0 == code)
            .map(|v| v.0)
            .or_else(|| synonym(code));
        let Some(code) = code else {
            return (None, 0);
        };
        let allowed: Vec<u16> = vocab.iter().filter(|v| v.0 == code).map(|v| v.2).collect();
        let st = match self.status().map(|s| s.as_u16()) {
            Some(s) if allowed.contains(&s) => s,
            _ => allowed.first().copied().unwrap_or(500),
        };
        (Some(code.to_owned()), st)
    }

    /// The error's own status when it means the error's kind (and is not Anthropic's 529),
    /// else `canonical`, the dialect's status for the kind.
    fn status_for_kind(&self, canonical: u16) -> u16 {
        match self.status() {
            Some(s)
                if s.as_u16() != OVERLOADED_529
                    && (s.as_u16() == canonical
                        || s == self.kind().default_status()
                        || (s.as_u16() >= 400
                            && ErrorKind::from_status(s) == Some(self.kind()))) =>
            {
                s.as_u16()
            }
            _ => canonical,
        }
    }
}

/// A short message of our own for an error that has none.
pub(crate) fn default_message(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "The request is invalid.",
        ErrorKind::Authentication => "Authentication failed.",
        ErrorKind::PermissionDenied => "This key may not perform this operation.",
        ErrorKind::InsufficientFunds => "The account does not have enough funds.",
        ErrorKind::NotFound => "The requested resource does not exist.",
        ErrorKind::Conflict => "The request conflicts with another change.",
        ErrorKind::PayloadTooLarge => "The request body is too large.",
        ErrorKind::UnsupportedMediaType => "The request content type is not supported.",
        ErrorKind::ContextLengthExceeded => "The input is too long for the model.",
        ErrorKind::ContentFiltered => "The content was refused by the content policy.",
        ErrorKind::RequestTimeout => "The request took too long.",
        ErrorKind::RateLimited => "Too many requests; slow down.",
        ErrorKind::QuotaExceeded => "The usage quota is exhausted.",
        ErrorKind::ServerError | ErrorKind::Unknown => "The server failed to handle the request.",
        ErrorKind::BadGateway => "The upstream service failed.",
        ErrorKind::ServiceUnavailable => "The service is temporarily unavailable.",
        ErrorKind::Overloaded => "The service is overloaded.",
        ErrorKind::GatewayTimeout => "The upstream service did not answer in time.",
    }
}

/// Whole seconds, rounded up: a hint of 1.2 s becomes `2`, never `1`.
pub(crate) fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

/// A loose check that a carried timestamp is an RFC 3339 time we can echo: short, ASCII, of the
/// form `YYYY-MM-DDTHH:MM:SS...`.
fn looks_like_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20
        && b.len() <= 40
        && s.is_ascii()
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && b[..4].iter().all(u8::is_ascii_digit)
        && !b.iter().any(|c| c.is_ascii_control() || *c == b'"')
}

/// Formats `t` as an RFC 3339 UTC time with second precision (`2024-01-01T00:00:00Z`).
/// Times before 1970 are written as the epoch.
pub(crate) fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian `(year, month, day)`, by eras of 400 years.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        assert_eq!(rfc3339_utc(t), "2024-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339_utc(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(rfc3339_utc(t), "2099-12-31T23:59:59Z");
        // Agrees with httpdate's calendar for a sweep of days.
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for day in (0..80_000u64).step_by(97) {
            let t = UNIX_EPOCH + Duration::from_secs(day * 86_400 + 45_296);
            // "Sun, 06 Nov 1994 12:34:56 GMT"
            let http = httpdate::fmt_http_date(t);
            let f: Vec<&str> = http.split(' ').collect();
            let month = MONTHS.iter().position(|m| *m == f[2]).unwrap() + 1;
            let expected = format!("{}-{month:02}-{}T{}Z", f[3], f[1], f[4]);
            assert_eq!(rfc3339_utc(t), expected);
        }
    }

    #[test]
    fn ceil_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1200)), 2);
        assert_eq!(ceil_secs(Duration::from_secs(3)), 3);
        assert_eq!(ceil_secs(Duration::ZERO), 0);
        assert_eq!(ceil_secs(Duration::MAX), u64::MAX);
    }

    #[test]
    fn rendered_output_is_bounded_and_masked() {
        let long = "x".repeat(100_000);
        let e = ApiError::new(
            ErrorKind::Authentication,
            format!("bad key sk-abcdefghijkl {long}"),
        )
        .with_code("y".repeat(100_000))
        .with_param("p".repeat(100_000))
        .with_request_id("r".repeat(100_000));
        for d in Dialect::ALL {
            let res = e.render(d);
            assert!(res.body().len() < 8 * 1024, "{d}: {}", res.body().len());
            let body = std::str::from_utf8(res.body()).unwrap();
            assert!(!body.contains("sk-abcdefghijkl"), "{d}");
            assert!(body.contains("sk-ab***"), "{d}");
        }
    }
}
