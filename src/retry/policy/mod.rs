//! What is retried and how long to wait: the decision taken after every attempt.

pub(crate) mod backoff;

use super::layer::Config;
use crate::{ApiError, ErrorKind, error::HintSource};
use http::{HeaderMap, StatusCode};
use std::{error::Error as StdError, fmt, io, time::Duration};

/// What one attempt produced, as seen by [`RetryLayer::retry_if`](super::RetryLayer::retry_if)
/// and [`RetryLayer::on_retry`](super::RetryLayer::on_retry).
pub struct Outcome<'a> {
    kind: OutcomeKind<'a>,
}

enum OutcomeKind<'a> {
    Response {
        status: StatusCode,
        headers: &'a HeaderMap,
        error: Option<&'a ApiError>,
    },
    Error(&'a (dyn StdError + 'static)),
    Timeout,
    FirstEventTimeout,
}

impl<'a> Outcome<'a> {
    pub(crate) fn response(
        status: StatusCode,
        headers: &'a HeaderMap,
        error: Option<&'a ApiError>,
    ) -> Outcome<'a> {
        Outcome {
            kind: OutcomeKind::Response {
                status,
                headers,
                error,
            },
        }
    }

    pub(crate) fn error(err: &'a (dyn StdError + 'static)) -> Outcome<'a> {
        Outcome {
            kind: OutcomeKind::Error(err),
        }
    }

    pub(crate) fn timeout() -> Outcome<'static> {
        Outcome {
            kind: OutcomeKind::Timeout,
        }
    }

    pub(crate) fn first_event_timeout() -> Outcome<'static> {
        Outcome {
            kind: OutcomeKind::FirstEventTimeout,
        }
    }

    /// The response status, when the attempt produced a response.
    pub fn status(&self) -> Option<StatusCode> {
        match self.kind {
            OutcomeKind::Response { status, .. } => Some(status),
            _ => None,
        }
    }

    /// The response headers, when the attempt produced a response.
    pub fn headers(&self) -> Option<&'a HeaderMap> {
        match self.kind {
            OutcomeKind::Response { headers, .. } => Some(headers),
            _ => None,
        }
    }

    /// The classified error: from the response, or found in the transport error's source chain.
    pub fn api_error(&self) -> Option<&'a ApiError> {
        match self.kind {
            OutcomeKind::Response { error, .. } => error,
            OutcomeKind::Error(e) => super::error::find_api_error(e),
            OutcomeKind::Timeout | OutcomeKind::FirstEventTimeout => None,
        }
    }

    /// The inner service's error, when the attempt failed without a response.
    pub fn transport_error(&self) -> Option<&'a (dyn StdError + 'static)> {
        match self.kind {
            OutcomeKind::Error(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the attempt was cut off by a timer: the per-attempt timeout, or the
    /// [first-event timeout](super::RetryLayer::first_event_timeout) of a held stream.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            OutcomeKind::Timeout | OutcomeKind::FirstEventTimeout
        )
    }

    /// Whether a held stream sent no event within the
    /// [first-event timeout](super::RetryLayer::first_event_timeout).
    pub fn is_first_event_timeout(&self) -> bool {
        matches!(self.kind, OutcomeKind::FirstEventTimeout)
    }

    /// Whether the connection failed before any response (refused, reset, aborted, broken pipe),
    /// as found by walking the error's source chain for a [`std::io::Error`].
    pub fn is_connection_failure(&self) -> bool {
        match self.kind {
            OutcomeKind::Error(e) => is_connection_failure(e),
            _ => false,
        }
    }

    /// The built-in verdict, before [`retry_if`](super::RetryLayer::retry_if) is consulted.
    pub fn is_retryable_by_default(&self) -> bool {
        match self.kind {
            OutcomeKind::Response { error, .. } => error.is_some_and(ApiError::is_retryable),
            OutcomeKind::Error(e) => match super::error::find_api_error(e) {
                Some(api) => api.is_retryable(),
                None => is_connection_failure(e),
            },
            OutcomeKind::Timeout | OutcomeKind::FirstEventTimeout => true,
        }
    }

    /// The server's retry hint, if any.
    pub(crate) fn hint(&self) -> Option<(Duration, Option<HintSource>)> {
        let api = self.api_error()?;
        Some((api.retry_after()?, api.retry_after_source()))
    }
}

impl fmt::Debug for Outcome<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Headers are never printed: they may carry secrets.
        match &self.kind {
            OutcomeKind::Response { status, error, .. } => f
                .debug_struct("Response")
                .field("status", &status.as_u16())
                .field("error", error)
                .finish_non_exhaustive(),
            OutcomeKind::Error(e) => f.debug_tuple("Error").field(&e.to_string()).finish(),
            OutcomeKind::Timeout => f.write_str("Timeout"),
            OutcomeKind::FirstEventTimeout => f.write_str("FirstEventTimeout"),
        }
    }
}

/// Connection failures before a response: an [`io::Error`] of kind `ConnectionRefused`,
/// `ConnectionReset`, `ConnectionAborted` or `BrokenPipe` anywhere in the source chain (hyper
/// and hyper-util put the socket's `io::Error` there, including under hyper-util's
/// `is_connect()` errors).
pub(crate) fn is_connection_failure(err: &(dyn StdError + 'static)) -> bool {
    fn io_kind_retryable(e: &io::Error) -> bool {
        matches!(
            e.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        )
    }
    let mut cur = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            if io_kind_retryable(io) {
                return true;
            }
            // `io::Error::source` skips a custom payload; look inside it too.
            if let Some(inner) = io.get_ref() {
                if is_connection_failure(inner) {
                    return true;
                }
            }
        }
        depth += 1;
        if depth > 32 {
            return false;
        }
        cur = e.source();
    }
    false
}

/// What the layer tells [`RetryLayer::on_retry`](super::RetryLayer::on_retry) before it sleeps.
pub struct RetryInfo<'a> {
    pub(crate) retry: u32,
    pub(crate) delay: Duration,
    pub(crate) outcome: &'a Outcome<'a>,
}

impl<'a> RetryInfo<'a> {
    /// Which retry this is: 1 for the first retry (the second attempt).
    pub fn retry(&self) -> u32 {
        self.retry
    }

    /// How long the layer sleeps before sending the request again.
    pub fn delay(&self) -> Duration {
        self.delay
    }

    /// What the failed attempt produced.
    pub fn outcome(&self) -> &Outcome<'a> {
        self.outcome
    }

    /// The error kind: the classified [`ApiError`]'s (for a stream: the in-band error's, or
    /// `ServiceUnavailable` for a stream that ended with no event), `RequestTimeout` for a timed
    /// out attempt (first-event timeouts included),
    /// `None` for a transport error without one.
    pub fn kind(&self) -> Option<ErrorKind> {
        if self.outcome.is_timeout() {
            return Some(ErrorKind::RequestTimeout);
        }
        self.outcome.api_error().map(ApiError::kind)
    }

    /// The server's hint that set the floor of [`delay`](Self::delay), if there was one.
    pub fn hint(&self) -> Option<Duration> {
        self.outcome.hint().map(|h| h.0)
    }

    /// Where that hint came from.
    pub fn hint_source(&self) -> Option<HintSource> {
        self.outcome.hint().and_then(|h| h.1)
    }
}

impl fmt::Debug for RetryInfo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryInfo")
            .field("retry", &self.retry)
            .field("delay", &self.delay)
            .field("outcome", self.outcome)
            .finish()
    }
}

/// Why no retry happens (for tracing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    NotRetryable,
    Exhausted,
    NotReplayable,
    HintTooLong,
    Deadline,
    Budget,
}

impl Stop {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stop::NotRetryable => "not_retryable",
            Stop::Exhausted => "retries_exhausted",
            Stop::NotReplayable => "body_not_replayable",
            Stop::HintTooLong => "hint_over_max_retry_after",
            Stop::Deadline => "deadline",
            Stop::Budget => "budget_exhausted",
        }
    }
}

/// The decision after an attempt, in order:
///
/// 1. retryable? the built-in rule ([`Outcome::is_retryable_by_default`]), overridden by
///    `retry_if`;
/// 2. retries left? (`retries_done < max_retries`);
/// 3. can the body be replayed?
/// 4. a server hint longer than `max_retry_after` stops;
/// 5. wait = `hint + U(0, cap(n))`, or `U(0, cap(n))` without a hint;
/// 6. a wait that does not end before the deadline stops;
/// 7. the budget must allow one more retry (withdrawn last, so a refusal above costs nothing).
pub(crate) fn decide(
    config: &Config,
    retries_done: u32,
    outcome: &Outcome<'_>,
    replayable: bool,
    remaining: Option<Duration>,
    rng: &mut Option<fastrand::Rng>,
) -> Result<Duration, Stop> {
    let retryable = config
        .predicate
        .as_ref()
        .and_then(|p| p(outcome))
        .unwrap_or_else(|| outcome.is_retryable_by_default());
    if !retryable {
        return Err(Stop::NotRetryable);
    }
    if retries_done >= config.max_retries {
        return Err(Stop::Exhausted);
    }
    if !replayable {
        return Err(Stop::NotReplayable);
    }
    let hint = outcome.hint().map(|h| h.0);
    if hint.is_some_and(|h| h > config.max_retry_after) {
        return Err(Stop::HintTooLong);
    }
    let cap = backoff::cap(config.base_delay, config.max_delay, retries_done);
    let rng = rng.get_or_insert_with(fastrand::Rng::new);
    let jitter = backoff::full_jitter(rng, cap);
    let wait = hint.map_or(jitter, |h| h.saturating_add(jitter));
    if remaining.is_some_and(|r| wait >= r) {
        return Err(Stop::Deadline);
    }
    if let Some(budget) = &config.budget {
        if !budget.withdraw() {
            return Err(Stop::Budget);
        }
    }
    Ok(wait)
}
