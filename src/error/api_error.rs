use super::{Dialect, ErrorKind, ParseOptions};
use http::{HeaderMap, StatusCode};
use std::{fmt, sync::Arc, time::Duration};

/// Where a retry hint came from. Reported by [`ApiError::retry_after_source`] and in the retry
/// layer's tracing events.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HintSource {
    /// The `retry-after-ms` header (OpenAI, Azure OpenAI).
    RetryAfterMs,
    /// The `Retry-After` header in delta-seconds.
    RetryAfterSeconds,
    /// The `Retry-After` header as an HTTP-date.
    RetryAfterDate,
    /// An `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` duration for an empty bucket.
    RateLimitReset,
    /// An `anthropic-ratelimit-*-reset` RFC 3339 time for an empty bucket.
    AnthropicReset,
    /// The gRPC `grpc-retry-pushback-ms` trailer or header.
    GrpcPushback,
    /// A `retryDelay` in the body (Gemini's `google.rpc.RetryInfo`).
    BodyRetryDelay,
    /// Set by code (a server rendering an error, a gateway's own rate limiter).
    Explicit,
}

impl HintSource {
    /// A stable snake_case name for logs (`"retry_after_ms"`).
    pub fn as_str(self) -> &'static str {
        match self {
            HintSource::RetryAfterMs => "retry_after_ms",
            HintSource::RetryAfterSeconds => "retry_after_seconds",
            HintSource::RetryAfterDate => "retry_after_date",
            HintSource::RateLimitReset => "ratelimit_reset",
            HintSource::AnthropicReset => "anthropic_ratelimit_reset",
            HintSource::GrpcPushback => "grpc_retry_pushback",
            HintSource::BodyRetryDelay => "body_retry_delay",
            HintSource::Explicit => "explicit",
        }
    }
}

/// One LLM API failure, normalized from whatever dialect the upstream spoke.
///
/// `ApiError` is opaque: read it through accessors. It is cheap to clone (one `Arc`), `Send`,
/// `Sync` and `'static`, and implements [`std::error::Error`], so it travels inside a
/// [`BoxError`](crate::BoxError) and comes back out with `downcast_ref::<ApiError>()`.
///
/// Its `Debug` and `Display` output never contains request headers, and messages taken from a
/// peer have anything that looks like an API key masked (`sk-ab***`) before they are stored.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_llm_errors::{ApiError, ErrorKind};
///
/// let body = br#"{"error":{"message":"slow down","type":"rate_limit_error","code":"rate_limit_exceeded"}}"#;
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "3".parse().unwrap());
/// let err = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, &headers, body).unwrap();
/// assert_eq!(err.kind(), ErrorKind::RateLimited);
/// assert!(err.is_retryable());
/// assert_eq!(err.code(), Some("rate_limit_exceeded"));
/// assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(3)));
/// ```
#[derive(Clone)]
pub struct ApiError {
    inner: Arc<Inner>,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Inner {
    pub(crate) kind: Option<ErrorKind>,
    pub(crate) status: Option<StatusCode>,
    pub(crate) code: Option<Box<str>>,
    pub(crate) message: Box<str>,
    pub(crate) param: Option<Box<str>>,
    pub(crate) error_type: Option<Box<str>>,
    pub(crate) request_id: Option<Box<str>>,
    pub(crate) retry_after: Option<Duration>,
    pub(crate) retry_after_source: Option<HintSource>,
    pub(crate) should_retry: Option<bool>,
    pub(crate) detail_issue: Option<Box<str>>,
    pub(crate) timestamp: Option<Box<str>>,
    pub(crate) dialect: Option<Dialect>,
    pub(crate) provider_detail: Option<Box<str>>,
}

impl ApiError {
    /// A new error of `kind` with a message of our own. Peer-supplied text should go through
    /// [`ApiError::from_response`] instead, which masks secrets.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            inner: Arc::new(Inner {
                kind: Some(kind),
                message: message.into().into_boxed_str(),
                ..Inner::default()
            }),
        }
    }

    /// Classifies a response: `None` when it is a success (a status below 400 whose body carries
    /// no error object and whose `grpc-status`, if any, is 0), otherwise the normalized error.
    ///
    /// The body is parsed once; its shape picks the reader (OpenAI and the OpenAI-compatible
    /// vendors, Azure, the five seed dialects, Anthropic, Gemini/Vertex, OpenRouter, xAI, vLLM,
    /// TGI, Ollama, Bedrock, gRPC Trailers-Only headers, HTML or text pages). What the body
    /// says beats the status (a quota 429 is [`ErrorKind::QuotaExceeded`]); the headers give the
    /// request id and the retry hint (see [`hints`](crate::error::hints) for the precedence).
    ///
    /// Reads at most [`ParseOptions::DEFAULT_MAX_BODY_BYTES`] (64 KiB) of `body`; use
    /// [`ApiError::from_response_with`] to change that. A body cut by the limit is no longer
    /// valid JSON, so the status decides.
    pub fn from_response(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<ApiError> {
        ApiError::from_response_with(status, headers, body, &ParseOptions::new())
    }

    /// [`ApiError::from_response`] with explicit [`ParseOptions`].
    pub fn from_response_with(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        options: &ParseOptions,
    ) -> Option<ApiError> {
        super::parse::from_response(status, headers, body, options)
    }

    pub(crate) fn from_inner(inner: Inner) -> ApiError {
        ApiError {
            inner: Arc::new(inner),
        }
    }

    pub(crate) fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// The normalized kind.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind.unwrap_or(ErrorKind::Unknown)
    }

    /// Whether sending the same request again may succeed.
    ///
    /// The kind decides ([`ErrorKind::is_retryable`]) unless the server said otherwise: an
    /// `x-should-retry: true|false` header, or a negative `grpc-retry-pushback-ms`, wins.
    pub fn is_retryable(&self) -> bool {
        self.inner
            .should_retry
            .unwrap_or_else(|| self.kind().is_retryable())
    }

    /// The server's explicit verdict (`x-should-retry`, negative gRPC pushback), if it gave one.
    pub fn should_retry_override(&self) -> Option<bool> {
        self.inner.should_retry
    }

    /// The HTTP status of the response, when the error came from one.
    pub fn status(&self) -> Option<StatusCode> {
        self.inner.status
    }

    /// The vendor's machine-readable code (`"rate_limit_exceeded"`, `"QUOTA_EXCEEDED"`);
    /// numeric codes are given as decimal text (`"429"`).
    pub fn code(&self) -> Option<&str> {
        self.inner.code.as_deref()
    }

    /// The human-readable message (secrets masked, at most a short summary for non-JSON bodies).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The request field the error is about (`param`, seed 001's `details.field`).
    pub fn param(&self) -> Option<&str> {
        self.inner.param.as_deref()
    }

    /// The vendor's coarse error type (`"invalid_request_error"`, `"overloaded_error"`, a gRPC or
    /// Google `status` string).
    pub fn error_type(&self) -> Option<&str> {
        self.inner.error_type.as_deref()
    }

    /// The request id: from the response headers (`x-request-id`, `request-id`,
    /// `x-amzn-requestid`, ...), else from the body (seed 001's `meta.request_id`, Anthropic's
    /// `request_id`). The headers win when both carry one.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// How long the server asked us to wait before trying again, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Which hint [`ApiError::retry_after`] came from.
    pub fn retry_after_source(&self) -> Option<HintSource> {
        self.inner.retry_after_source
    }

    /// A longer description of what is wrong with the field (seed 001's `details.issue`).
    pub fn detail(&self) -> Option<&str> {
        self.inner.detail_issue.as_deref()
    }

    /// The server's timestamp for the error (seed 001's `meta.timestamp`), as sent.
    pub fn timestamp(&self) -> Option<&str> {
        self.inner.timestamp.as_deref()
    }

    /// The dialect the error was read from, when the body's shape identified one.
    pub fn dialect(&self) -> Option<Dialect> {
        self.inner.dialect
    }

    /// Extra detail from behind a gateway, such as OpenRouter's `metadata.raw` provider error
    /// (bounded, secrets masked).
    pub fn provider_detail(&self) -> Option<&str> {
        self.inner.provider_detail.as_deref()
    }

    /// Sets the HTTP status.
    pub fn with_status(mut self, status: StatusCode) -> ApiError {
        self.inner_mut().status = Some(status);
        self
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> ApiError {
        self.inner_mut().code = Some(code.into().into_boxed_str());
        self
    }

    /// Sets the field the error is about.
    pub fn with_param(mut self, param: impl Into<String>) -> ApiError {
        self.inner_mut().param = Some(param.into().into_boxed_str());
        self
    }

    /// Sets the vendor error type.
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> ApiError {
        self.inner_mut().error_type = Some(error_type.into().into_boxed_str());
        self
    }

    /// Sets the request id.
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> ApiError {
        self.inner_mut().request_id = Some(request_id.into().into_boxed_str());
        self
    }

    /// Sets the retry hint, with [`HintSource::Explicit`] as its source.
    pub fn with_retry_after(mut self, after: Duration) -> ApiError {
        let inner = self.inner_mut();
        inner.retry_after = Some(after);
        inner.retry_after_source = Some(HintSource::Explicit);
        self
    }

    /// Sets the longer description of the field problem.
    pub fn with_detail(mut self, detail: impl Into<String>) -> ApiError {
        self.inner_mut().detail_issue = Some(detail.into().into_boxed_str());
        self
    }

    /// Overrides retryability, as an `x-should-retry` header does.
    pub fn with_should_retry(mut self, retry: bool) -> ApiError {
        self.inner_mut().should_retry = Some(retry);
        self
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &*self.inner;
        let mut d = f.debug_struct("ApiError");
        d.field("kind", &self.kind());
        if let Some(s) = i.status {
            d.field("status", &s.as_u16());
        }
        if let Some(c) = &i.code {
            d.field("code", c);
        }
        // Masked here too: `ApiError::new` takes the application's text as it is.
        d.field("message", &super::secret::mask_secrets(&i.message));
        if let Some(p) = &i.param {
            d.field("param", p);
        }
        if let Some(t) = &i.error_type {
            d.field("error_type", t);
        }
        if let Some(r) = &i.request_id {
            d.field("request_id", r);
        }
        if let Some(r) = i.retry_after {
            d.field("retry_after", &r);
        }
        if let Some(r) = i.should_retry {
            d.field("should_retry", &r);
        }
        d.finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind())?;
        match (self.inner.status, self.inner.code.as_deref()) {
            (Some(s), Some(c)) => write!(f, " ({} {c})", s.as_u16())?,
            (Some(s), None) => write!(f, " ({})", s.as_u16())?,
            (None, Some(c)) => write!(f, " ({c})")?,
            (None, None) => {}
        }
        if !self.inner.message.is_empty() {
            write!(f, ": {}", super::secret::mask_secrets(&self.inner.message))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_traits<T: Clone + Send + Sync + 'static + std::error::Error>() {}

    #[test]
    fn debug_and_display_mask_a_key_the_application_put_in_the_message() {
        let e = ApiError::new(
            ErrorKind::Authentication,
            "key sk-live-abcdefgh12345678 refused",
        );
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains("abcdefgh12345678"), "{text}");
            assert!(text.contains("sk-li***"), "{text}");
        }
    }

    #[test]
    fn is_a_cheap_shareable_error() {
        assert_traits::<ApiError>();
        assert_eq!(
            std::mem::size_of::<ApiError>(),
            std::mem::size_of::<usize>()
        );
    }

    #[test]
    fn should_retry_override_wins_over_kind() {
        let e = ApiError::new(ErrorKind::RateLimited, "x");
        assert!(e.is_retryable());
        assert!(!e.clone().with_should_retry(false).is_retryable());
        let e = ApiError::new(ErrorKind::InvalidRequest, "x");
        assert!(e.with_should_retry(true).is_retryable());
    }

    #[test]
    fn display_names_kind_status_code_and_message() {
        let e = ApiError::new(ErrorKind::RateLimited, "slow down")
            .with_status(StatusCode::TOO_MANY_REQUESTS)
            .with_code("rate_limit_exceeded");
        assert_eq!(
            e.to_string(),
            "rate_limited (429 rate_limit_exceeded): slow down"
        );
    }
}
