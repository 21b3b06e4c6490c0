//! The error the retry layer returns when an attempt ends without a response.

use crate::{ApiError, BoxError};
use std::fmt;

/// Why the last attempt produced no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reason {
    /// The inner service returned an error.
    Transport,
    /// The attempt ran longer than [`RetryLayer::attempt_timeout`](super::RetryLayer::attempt_timeout).
    AttemptTimeout,
    /// The overall [`RetryLayer::deadline`](super::RetryLayer::deadline) passed.
    Deadline,
}

/// The error returned by [`Retry`](super::Retry) when the last attempt ended without a response.
///
/// Every error of the service is a `RetryError` inside a [`BoxError`]; get it back with
/// `err.downcast_ref::<RetryError>()`. It says how many attempts were made, whether a timeout
/// ended the last one, and carries the [`ApiError`] involved, if any: one found in the inner
/// error's source chain, otherwise the one classified from the last error *response* of an earlier
/// attempt. The inner service's error is its [`source`](std::error::Error::source).
///
/// ```
/// use tower_llm_errors::retry::RetryError;
/// fn attempts(err: &tower_llm_errors::BoxError) -> Option<u32> {
///     err.downcast_ref::<RetryError>().map(RetryError::attempts)
/// }
/// ```
pub struct RetryError {
    attempts: u32,
    reason: Reason,
    api_error: Option<ApiError>,
    source: Option<BoxError>,
}

impl RetryError {
    pub(crate) fn new(
        attempts: u32,
        reason: Reason,
        api_error: Option<ApiError>,
        source: Option<BoxError>,
    ) -> RetryError {
        let api_error = source
            .as_deref()
            .and_then(|s| find_api_error(s).cloned())
            .or(api_error);
        RetryError {
            attempts,
            reason,
            api_error,
            source,
        }
    }

    /// How many times the request was sent (1 when it was not retried).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The [`ApiError`] behind this failure, when there is one (see the type docs).
    pub fn api_error(&self) -> Option<&ApiError> {
        self.api_error.as_ref()
    }

    /// Whether the last attempt was cut off by the per-attempt timeout.
    pub fn is_attempt_timeout(&self) -> bool {
        self.reason == Reason::AttemptTimeout
    }

    /// Whether the overall deadline passed.
    pub fn is_deadline(&self) -> bool {
        self.reason == Reason::Deadline
    }

    /// Whether the inner service failed (connection refused, reset, and so on).
    pub fn is_transport(&self) -> bool {
        self.reason == Reason::Transport
    }

    /// Takes the inner service's error out, if there was one.
    pub fn into_source(self) -> Option<BoxError> {
        self.source
    }
}

/// Walks an error's source chain for an [`ApiError`].
pub(crate) fn find_api_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ApiError> {
    let mut cur = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            return Some(api);
        }
        depth += 1;
        if depth > 32 {
            break;
        }
        cur = e.source();
    }
    None
}

impl fmt::Debug for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryError")
            .field("attempts", &self.attempts)
            .field("reason", &self.reason)
            .field("api_error", &self.api_error)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.reason {
            Reason::Transport => "request failed",
            Reason::AttemptTimeout => "attempt timed out",
            Reason::Deadline => "retry deadline passed",
        };
        let s = if self.attempts == 1 { "" } else { "s" };
        write!(f, "{what} after {} attempt{s}", self.attempts)
    }
}

impl std::error::Error for RetryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}

/// The source of a [`RetryError`] whose attempt was cut off by a timer.
#[derive(Debug)]
pub(crate) struct Elapsed(pub(crate) Reason);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Reason::Deadline => f.write_str("retry deadline elapsed"),
            _ => f.write_str("attempt timeout elapsed"),
        }
    }
}

impl std::error::Error for Elapsed {}
