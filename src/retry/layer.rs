use super::{
    Retry,
    policy::{Outcome, RetryInfo},
};
use http::{HeaderMap, HeaderName, StatusCode};
use std::{fmt, sync::Arc, time::Duration};
use tower::{Layer, retry::budget::Budget};

pub(crate) type Predicate = dyn Fn(&Outcome<'_>) -> Option<bool> + Send + Sync;
pub(crate) type InspectIf = dyn Fn(StatusCode, &HeaderMap) -> bool + Send + Sync;
pub(crate) type OnRetry = dyn Fn(&RetryInfo<'_>) + Send + Sync;

/// Applies [`Retry`] to a service: full-jitter exponential backoff that honors server hints.
///
/// The layer *is* the configuration; every setter takes and returns it by value. Clones of the
/// layer, and every service it makes, share one configuration and one retry budget.
/// See the [module docs](super) for when it retries.
///
/// ```
/// use std::time::Duration;
/// use tower_llm_errors::retry::RetryLayer;
///
/// fn layer() -> RetryLayer {
///     RetryLayer::new()
///         .max_retries(4)
///         .base_delay(Duration::from_millis(250))
///         .max_delay(Duration::from_secs(4))
///         .deadline(Duration::from_secs(30))
/// }
/// # let _ = layer();
/// ```
#[derive(Clone)]
pub struct RetryLayer {
    pub(crate) config: Arc<Config>,
}

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) max_retries: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) budget: Option<Arc<dyn Budget + Send + Sync>>,
    pub(crate) predicate: Option<Arc<Predicate>>,
    pub(crate) inspect_if: Option<Arc<InspectIf>>,
    pub(crate) on_retry: Option<Arc<OnRetry>>,
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_error_body_bytes: usize,
    pub(crate) idempotency_header: Option<HeaderName>,
    pub(crate) attempt_header: Option<HeaderName>,
    pub(crate) hold_first_event: bool,
    pub(crate) first_event_timeout: Option<Duration>,
    pub(crate) max_first_event_bytes: usize,
}

impl RetryLayer {
    /// Default number of retries after the first attempt: 2.
    pub const DEFAULT_MAX_RETRIES: u32 = 2;
    /// Default base delay: 500 ms.
    pub const DEFAULT_BASE_DELAY: Duration = Duration::from_millis(500);
    /// Default cap on one backoff delay: 8 s.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(8);
    /// Default longest server hint we agree to wait for: 60 s.
    pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
    /// Default limit on the request body kept for replay: 8 MiB.
    pub const DEFAULT_MAX_REPLAY_BYTES: usize = 8 * 1024 * 1024;
    /// Default prefix of an error body read to classify it: 64 KiB.
    pub const DEFAULT_MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
    /// Default limit on the bytes of a stream held while waiting for its first event: 1 MiB
    /// (the SSE event limit, [`sse::DEFAULT_MAX_EVENT_BYTES`](crate::sse::DEFAULT_MAX_EVENT_BYTES)).
    pub const DEFAULT_MAX_FIRST_EVENT_BYTES: usize = crate::sse::DEFAULT_MAX_EVENT_BYTES;

    /// The defaults: 2 retries, 500 ms base delay, 8 s cap, hints up to 60 s, no deadline, no
    /// budget, no per-attempt timeout, 8 MiB replay buffer, 64 KiB error body prefix; `200
    /// text/event-stream` responses held until their first event (up to 1 MiB), with no
    /// first-event timeout.
    pub fn new() -> RetryLayer {
        RetryLayer {
            config: Arc::new(Config {
                max_retries: Self::DEFAULT_MAX_RETRIES,
                base_delay: Self::DEFAULT_BASE_DELAY,
                max_delay: Self::DEFAULT_MAX_DELAY,
                max_retry_after: Self::DEFAULT_MAX_RETRY_AFTER,
                deadline: None,
                attempt_timeout: None,
                budget: None,
                predicate: None,
                inspect_if: None,
                on_retry: None,
                max_replay_bytes: Self::DEFAULT_MAX_REPLAY_BYTES,
                max_error_body_bytes: Self::DEFAULT_MAX_ERROR_BODY_BYTES,
                idempotency_header: None,
                attempt_header: None,
                hold_first_event: true,
                first_event_timeout: None,
                max_first_event_bytes: Self::DEFAULT_MAX_FIRST_EVENT_BYTES,
            }),
        }
    }

    fn with(mut self, f: impl FnOnce(&mut Config)) -> RetryLayer {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// How many times a request may be sent again after the first attempt (default 2).
    /// `0` turns retrying off: requests then pass through without being copied or held.
    pub fn max_retries(self, n: u32) -> RetryLayer {
        self.with(|c| c.max_retries = n)
    }

    /// The base of the exponential backoff (default 500 ms): retry `n` (from 0) waits a uniformly
    /// random time in `[0, min(max_delay, base_delay·2ⁿ)]`. Zero means retry at once.
    pub fn base_delay(self, d: Duration) -> RetryLayer {
        self.with(|c| c.base_delay = d)
    }

    /// The cap on one backoff delay (default 8 s). A cap below the base delay caps every delay.
    pub fn max_delay(self, d: Duration) -> RetryLayer {
        self.with(|c| c.max_delay = d)
    }

    /// The longest server hint (`Retry-After` and friends) the layer agrees to wait for
    /// (default 60 s). A longer hint ends retrying: the response is returned as it came and its
    /// [`ApiError::retry_after`](crate::ApiError::retry_after) says how long the server asked for.
    pub fn max_retry_after(self, d: Duration) -> RetryLayer {
        self.with(|c| c.max_retry_after = d)
    }

    /// A deadline over all attempts and the sleeps between them, counted from the call. An
    /// attempt still running when it passes is cut off (a [`RetryError`](super::RetryError) with
    /// [`is_deadline`](super::RetryError::is_deadline)), and a retry is only scheduled when its
    /// wait ends before it. Default: none.
    pub fn deadline(self, d: Duration) -> RetryLayer {
        self.with(|c| c.deadline = Some(d))
    }

    /// A timeout for each attempt, up to the moment its response is classified (for a held
    /// stream: until its first event). An attempt that times out is retryable. Default: none.
    pub fn attempt_timeout(self, d: Duration) -> RetryLayer {
        self.with(|c| c.attempt_timeout = Some(d))
    }

    /// A retry budget shared by every request through this layer (and its clones): each first
    /// attempt deposits, each retry withdraws, and no retry happens when the budget is empty, so
    /// a failing upstream cannot multiply traffic. Takes tower's
    /// [`TpsBudget`](tower::retry::budget::TpsBudget) or any [`Budget`].
    pub fn budget<B>(self, budget: B) -> RetryLayer
    where
        B: Budget + Send + Sync + 'static,
    {
        let budget: Arc<dyn Budget + Send + Sync> = Arc::new(budget);
        self.with(|c| c.budget = Some(budget))
    }

    /// Overrides what is retryable. The closure sees each attempt's [`Outcome`] and returns
    /// `Some(true)` to retry, `Some(false)` not to, or `None` to keep the built-in rule. The
    /// other limits (retries, hints, deadline, budget, replay) still apply.
    pub fn retry_if<F>(self, f: F) -> RetryLayer
    where
        F: Fn(&Outcome<'_>) -> Option<bool> + Send + Sync + 'static,
    {
        let f: Arc<Predicate> = Arc::new(f);
        self.with(|c| c.predicate = Some(f))
    }

    /// Which responses are read and classified (default: status 400 and above). Responses below
    /// 400 chosen here are classified too ([`ApiError::from_response`](crate::ApiError::from_response)
    /// finds an error object in a 200 body) and passed to [`retry_if`](Self::retry_if). A `200
    /// text/event-stream` is held for its first event instead, unless
    /// [`hold_first_event(false)`](Self::hold_first_event).
    pub fn inspect_if<F>(self, f: F) -> RetryLayer
    where
        F: Fn(StatusCode, &HeaderMap) -> bool + Send + Sync + 'static,
    {
        let f: Arc<InspectIf> = Arc::new(f);
        self.with(|c| c.inspect_if = Some(f))
    }

    /// Called before each retry's sleep with a [`RetryInfo`].
    pub fn on_retry<F>(self, f: F) -> RetryLayer
    where
        F: Fn(&RetryInfo<'_>) + Send + Sync + 'static,
    {
        let f: Arc<OnRetry> = Arc::new(f);
        self.with(|c| c.on_retry = Some(f))
    }

    /// The most request body bytes kept for replay (default 8 MiB). A body larger than this is
    /// streamed once and not retried; `0` means only empty bodies can be retried.
    pub fn max_replay_bytes(self, n: usize) -> RetryLayer {
        self.with(|c| c.max_replay_bytes = n)
    }

    /// The most error body bytes read to classify a response (default 64 KiB). The caller still
    /// receives the whole body.
    pub fn max_error_body_bytes(self, n: usize) -> RetryLayer {
        self.with(|c| c.max_error_body_bytes = n)
    }

    /// Sends a random idempotency key in header `name`, generated once per request and identical
    /// on every attempt. A key the caller set is kept. Default: off.
    pub fn idempotency_key_header(self, name: HeaderName) -> RetryLayer {
        self.with(|c| c.idempotency_header = Some(name))
    }

    /// Whether a `200 text/event-stream` response is held until its first event, so that a
    /// stream whose first event is an error, or which ends with no event, can be retried
    /// (default: on). See "Streams" in the [module docs](super). Off: streams are passed
    /// through at once, like any other success.
    pub fn hold_first_event(self, on: bool) -> RetryLayer {
        self.with(|c| c.hold_first_event = on)
    }

    /// How long a held stream may take, from its response head, to send its first event
    /// (comments and keep-alives do not count). When it passes, the attempt is a retryable
    /// failure ([`Outcome::is_first_event_timeout`]); when no retry follows, the response is
    /// handed to the caller as it is, still streaming. Default: none (the
    /// [`attempt_timeout`](Self::attempt_timeout) and [`deadline`](Self::deadline), when set,
    /// still bound the wait).
    pub fn first_event_timeout(self, d: Duration) -> RetryLayer {
        self.with(|c| c.first_event_timeout = Some(d))
    }

    /// The most bytes of a stream held while waiting for its first event (default 1 MiB). A
    /// stream that sends more than this before its first event is complete (a frame that
    /// crosses the limit is kept whole) is handed to the caller as it is and not retried.
    pub fn max_first_event_bytes(self, n: usize) -> RetryLayer {
        self.with(|c| c.max_first_event_bytes = n)
    }

    /// Sends the retry number (`0` on the first attempt, `1` on the first retry, ...) in header
    /// `name` (for example `x-stainless-retry-count`). Default: off.
    pub fn attempt_header(self, name: HeaderName) -> RetryLayer {
        self.with(|c| c.attempt_header = Some(name))
    }
}

impl Default for RetryLayer {
    fn default() -> RetryLayer {
        RetryLayer::new()
    }
}

impl fmt::Debug for RetryLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.config.fmt(f)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryLayer")
            .field("max_retries", &self.max_retries)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("max_retry_after", &self.max_retry_after)
            .field("deadline", &self.deadline)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("budget", &self.budget.is_some())
            .field("retry_if", &self.predicate.is_some())
            .field("inspect_if", &self.inspect_if.is_some())
            .field("on_retry", &self.on_retry.is_some())
            .field("max_replay_bytes", &self.max_replay_bytes)
            .field("max_error_body_bytes", &self.max_error_body_bytes)
            .field("idempotency_key_header", &self.idempotency_header)
            .field("attempt_header", &self.attempt_header)
            .field("hold_first_event", &self.hold_first_event)
            .field("first_event_timeout", &self.first_event_timeout)
            .field("max_first_event_bytes", &self.max_first_event_bytes)
            .finish()
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;

    fn layer(&self, inner: S) -> Retry<S> {
        Retry::new(inner, self.clone())
    }
}
