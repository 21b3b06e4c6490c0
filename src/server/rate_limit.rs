//! The rate-limit guard: the application decides, the layer answers in the dialect.
//!
//! The decision (how many requests a key may make, how many remain, when the window resets) is
//! the application's: a [`Decide`] function looks at the request and returns a [`RateDecision`].
//! The layer then:
//!
//! - on a denial, answers `429` in the dialect (`rate_limit_exceeded`, `RATE_LIMIT_EXCEEDED`,
//!   `rate_limit_error`) with `Retry-After` in whole seconds, rounded up, or the dialect's quota
//!   answer for [`RateDecision::quota_exceeded`], which has no `Retry-After` (waiting does not
//!   help);
//! - on every answer, allowed or not, sets the OpenAI-style headers the OpenAI-compatible seeds
//!   describe when the decision carries the numbers: `x-ratelimit-limit-requests`,
//!   `x-ratelimit-remaining-requests` and `x-ratelimit-reset-requests` (a duration such as
//!   `1s`, `6m0s` or `20ms`).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{Dialect, server::{RateDecision, RateLimitLayer}};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(RateLimitLayer::new(Dialect::OpenAi, |_req: &Request<Full<Bytes>>| {
//!         RateDecision::deny(Duration::from_millis(1500)).limit(60).remaining(0)
//!     }))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
//!     });
//! let res = svc.oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
//! assert_eq!(res.headers()["retry-after"], "2");
//! assert_eq!(res.headers()["x-ratelimit-remaining-requests"], "0");
//! assert_eq!(res.headers()["x-ratelimit-reset-requests"], "1.5s");
//! # }
//! ```

use super::{
    ServerBody,
    response::{error_response, request_id},
};
use crate::{ApiError, Dialect, ErrorKind};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use tower::{Layer, Service};

/// What the application decided about one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateDecision {
    allowed: bool,
    quota: bool,
    retry_after: Option<Duration>,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<Duration>,
}

impl RateDecision {
    /// Let the request through.
    pub fn allow() -> RateDecision {
        RateDecision {
            allowed: true,
            quota: false,
            retry_after: None,
            limit: None,
            remaining: None,
            reset: None,
        }
    }

    /// Refuse with `429`; the client may try again after `retry_after` (also used as the reset
    /// time unless [`RateDecision::reset`] says otherwise).
    pub fn deny(retry_after: Duration) -> RateDecision {
        RateDecision {
            allowed: false,
            retry_after: Some(retry_after),
            ..RateDecision::allow()
        }
    }

    /// Refuse because a quota is exhausted (no `Retry-After`: waiting will not help).
    pub fn quota_exceeded() -> RateDecision {
        RateDecision {
            allowed: false,
            quota: true,
            ..RateDecision::allow()
        }
    }

    /// The window's request limit (`x-ratelimit-limit-requests`).
    pub fn limit(mut self, n: u64) -> RateDecision {
        self.limit = Some(n);
        self
    }

    /// Requests left in the window (`x-ratelimit-remaining-requests`).
    pub fn remaining(mut self, n: u64) -> RateDecision {
        self.remaining = Some(n);
        self
    }

    /// Time until the window resets (`x-ratelimit-reset-requests`).
    pub fn reset(mut self, after: Duration) -> RateDecision {
        self.reset = Some(after);
        self
    }

    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        self.allowed
    }

    fn headers(&self, headers: &mut HeaderMap) {
        const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
        const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining-requests");
        const RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
        if let Some(n) = self.limit {
            headers.insert(LIMIT, HeaderValue::from(n));
        }
        if let Some(n) = self.remaining {
            headers.insert(REMAINING, HeaderValue::from(n));
        }
        if let Some(d) = self.reset.or(self.retry_after) {
            if let Ok(v) = HeaderValue::from_str(&format_reset(d)) {
                headers.insert(RESET, v);
            }
        }
    }
}

/// Formats a reset duration the way OpenAI's `x-ratelimit-reset-*` headers do: `20ms`, `1.5s`,
/// `6m0s`, `1h2m3s`.
pub(crate) fn format_reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let frac = d.subsec_millis();
    let s = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s,
        (0, m) => format!("{m}m{s}"),
        (h, m) => format!("{h}h{m}m{s}"),
    }
}

/// The application's rate decision. Implemented for every `FnMut(&Request<B>) -> RateDecision`.
pub trait Decide<B> {
    /// Decides about `req`.
    fn decide(&mut self, req: &Request<B>) -> RateDecision;
}

impl<B, F> Decide<B> for F
where
    F: FnMut(&Request<B>) -> RateDecision,
{
    fn decide(&mut self, req: &Request<B>) -> RateDecision {
        self(req)
    }
}

/// Applies [`RateLimit`]. See the [module docs](self).
#[derive(Clone)]
pub struct RateLimitLayer<F> {
    dialect: Dialect,
    decide: F,
}

impl<F> fmt::Debug for RateLimitLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitLayer")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl<F> RateLimitLayer<F> {
    /// Asks `decide` about every request and answers denials in `dialect`.
    pub fn new(dialect: Dialect, decide: F) -> RateLimitLayer<F> {
        RateLimitLayer { dialect, decide }
    }
}

impl<S, F: Clone> Layer<S> for RateLimitLayer<F> {
    type Service = RateLimit<S, F>;

    fn layer(&self, inner: S) -> RateLimit<S, F> {
        RateLimit {
            inner,
            dialect: self.dialect,
            decide: self.decide.clone(),
        }
    }
}

/// The rate-limit guard service. See the [module docs](self).
#[derive(Clone)]
pub struct RateLimit<S, F> {
    inner: S,
    dialect: Dialect,
    decide: F,
}

impl<S: fmt::Debug, F> fmt::Debug for RateLimit<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl<S, F, ReqBody, ResBody> Service<Request<ReqBody>> for RateLimit<S, F>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    F: Decide<ReqBody>,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let decision = self.decide.decide(&req);
        if decision.allowed {
            return ResponseFuture {
                state: State::Called {
                    fut: self.inner.call(req),
                },
                decision,
            };
        }
        let err = if decision.quota {
            ApiError::new(ErrorKind::QuotaExceeded, "The usage quota is exhausted.")
        } else {
            let e = ApiError::new(ErrorKind::RateLimited, "Too many requests; slow down.")
                .with_code("rate_limit_exceeded")
                .with_status(StatusCode::TOO_MANY_REQUESTS);
            match decision.retry_after {
                Some(d) => e.with_retry_after(d),
                None => e,
            }
        };
        let res = error_response(err, self.dialect, request_id(req.headers()), false);
        ResponseFuture {
            state: State::Done { res: Some(res) },
            decision,
        }
    }
}

pin_project! {
    /// Response future of [`RateLimit`].
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        decision: RateDecision,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Done { res: Option<Response<Bytes>> },
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("decision", &self.decision)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ServerBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = match this.state.project() {
            StateProj::Called { fut } => ready!(fut.poll(cx))?.map(ServerBody::new),
            StateProj::Done { res } => res
                .take()
                .expect("rate limit future polled after completion")
                .map(ServerBody::full),
        };
        this.decision.headers(res.headers_mut());
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_durations_look_like_openai_s() {
        for (ms, want) in [
            (20, "20ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (360_000, "6m0s"),
            (3_723_000, "1h2m3s"),
            (61_250, "1m1.25s"),
        ] {
            assert_eq!(format_reset(Duration::from_millis(ms)), want);
        }
    }
}
