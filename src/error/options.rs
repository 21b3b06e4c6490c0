use std::time::SystemTime;

/// Limits and context for [`ApiError::from_response_with`](crate::ApiError::from_response_with).
///
/// ```
/// use tower_llm_errors::error::ParseOptions;
/// let opts = ParseOptions::new().max_body_bytes(16 * 1024);
/// assert_eq!(opts.get_max_body_bytes(), 16 * 1024);
/// ```
#[derive(Clone, Debug)]
pub struct ParseOptions {
    max_body_bytes: usize,
    now: Option<SystemTime>,
}

impl ParseOptions {
    /// How much of an error body is read by default: 64 KiB. Error bodies are small; anything
    /// past this prefix is ignored for classification (a truncated JSON document then falls back
    /// to the status and headers).
    pub const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;

    /// The defaults: 64 KiB of body, the wall clock for HTTP-dates without a `Date` header.
    pub fn new() -> ParseOptions {
        ParseOptions {
            max_body_bytes: ParseOptions::DEFAULT_MAX_BODY_BYTES,
            now: None,
        }
    }

    /// Reads at most `n` bytes of the body.
    pub fn max_body_bytes(mut self, n: usize) -> ParseOptions {
        self.max_body_bytes = n;
        self
    }

    /// The configured body prefix limit.
    pub fn get_max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// The time HTTP-dates are measured against when the response has no valid `Date` header
    /// (default: the wall clock at parse time). Mainly for tests.
    pub fn now(mut self, now: SystemTime) -> ParseOptions {
        self.now = Some(now);
        self
    }

    /// The reference time: the configured one, else the wall clock. This is the one place the
    /// crate reads the wall clock; retry scheduling itself uses `tokio::time`.
    pub(crate) fn wall_clock(&self) -> SystemTime {
        self.now.unwrap_or_else(SystemTime::now)
    }
}

impl Default for ParseOptions {
    fn default() -> ParseOptions {
        ParseOptions::new()
    }
}
