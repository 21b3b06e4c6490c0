use super::{
    RetryError,
    body::{Prefix, ReplayBody, ReplaySource, ResponseBody},
    error::{Elapsed, Reason},
    layer::Config,
    policy::{self, Outcome, RetryInfo, Stop},
    stream::{FirstEventHold, Verdict, with_head_hints},
};
use crate::sse::is_event_stream;
use crate::{ApiError, BoxError, error::ParseOptions};
use bytes::Bytes;
use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version,
};
use http_body::Body;
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::{Instant, Sleep, sleep_until};
use tower::Service;

/// What the response future keeps of a request to send it again.
pub(crate) struct SavedRequest<B> {
    method: Method,
    uri: Uri,
    version: Version,
    headers: SavedHeaders,
    extensions: Extensions,
    body: ReplaySource<B>,
}

/// The request's header fields, kept as a list in the map's iteration order.
///
/// Not a `HeaderMap` clone: a map is two allocations (its index table and its entries), this
/// list is one, and it is read only when a retry actually happens. Rebuilding the map by
/// appending the fields in iteration order gives a map that iterates (and so is written to the
/// wire) exactly as the original: names in the order they first appeared, each name's values
/// in order.
struct SavedHeaders(Vec<(HeaderName, HeaderValue)>);

impl SavedHeaders {
    #[inline(always)]
    fn new(headers: &HeaderMap) -> SavedHeaders {
        let mut fields = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            fields.push((name.clone(), value.clone()));
        }
        SavedHeaders(fields)
    }

    fn to_map(&self) -> HeaderMap {
        let mut map = HeaderMap::try_with_capacity(self.0.len()).unwrap_or_default();
        for (name, value) in &self.0 {
            // Cannot fail: the original map held these fields.
            let _ = map.try_append(name.clone(), value.clone());
        }
        map
    }
}

impl<B> SavedRequest<B> {
    #[inline(always)]
    pub(crate) fn new<T>(req: &Request<T>, body: ReplaySource<B>) -> SavedRequest<B> {
        SavedRequest {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: SavedHeaders::new(req.headers()),
            extensions: req.extensions().clone(),
            body,
        }
    }

    fn request(
        &self,
        retry: u32,
        attempt_header: Option<&http::HeaderName>,
    ) -> Request<ReplayBody<B>> {
        let mut req = Request::new(self.body.next_attempt());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.to_map();
        *req.extensions_mut() = self.extensions.clone();
        if let Some(name) = attempt_header {
            req.headers_mut()
                .insert(name.clone(), HeaderValue::from(retry));
        }
        req
    }
}

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    #[project = FutureProj]
    pub struct ResponseFuture<S, F, ReqBody, ResBody> {
        #[pin]
        state: State<F, ResBody>,
        // One timer per request, created when first needed: the attempt timeout / deadline
        // while an attempt runs, the backoff while waiting. Boxed: a timer is rare on the
        // success path and an inline `Sleep` would double the size of this future.
        sleep: Option<Pin<Box<Sleep>>>,
        timer_armed: bool,
        service: S,
        config: Arc<Config>,
        saved: Option<SavedRequest<ReqBody>>,
        retries: u32,
        deadline: Option<Instant>,
        rng: Option<fastrand::Rng>,
        last_api_error: Option<ApiError>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, ResBody> {
        // Polling the inner service's future.
        Called { #[pin] future: F },
        // Holding a response and reading the start of its body to classify it (see `Check`).
        // Boxed: only error responses and held streams get here; it keeps the future small.
        Checking { held: Box<Held<ResBody>> },
        // Sleeping before the next attempt.
        Waiting,
        // Waiting for the inner service to be ready for the next attempt.
        Retrying,
    }
}

impl<S, F, ReqBody, ResBody> ResponseFuture<S, F, ReqBody, ResBody> {
    #[inline(always)]
    pub(crate) fn new(
        future: F,
        service: S,
        config: Arc<Config>,
        saved: Option<SavedRequest<ReqBody>>,
    ) -> Self {
        let (deadline, sleep) = if config.deadline.is_some() || config.attempt_timeout.is_some() {
            let now = Instant::now();
            let deadline = config.deadline.and_then(|d| now.checked_add(d));
            (
                deadline,
                attempt_end(&config, deadline, now).map(|at| Box::pin(sleep_until(at))),
            )
        } else {
            (None, None)
        };
        ResponseFuture {
            state: State::Called { future },
            timer_armed: sleep.is_some(),
            sleep,
            service,
            deadline,
            rng: None,
            last_api_error: None,
            retries: 0,
            saved,
            config,
        }
    }
}

/// When the current attempt must end: the sooner of the attempt timeout and the deadline.
fn attempt_end(config: &Config, deadline: Option<Instant>, now: Instant) -> Option<Instant> {
    let timeout = config.attempt_timeout.and_then(|t| now.checked_add(t));
    match (timeout, deadline) {
        (Some(a), Some(d)) => Some(a.min(d)),
        (a, d) => a.or(d),
    }
}

/// A response being read before the retry decision.
struct Held<B> {
    parts: Option<http::response::Parts>,
    body: Option<Pin<Box<B>>>,
    prefix: Prefix,
    /// Set for `Check::FirstEvent`.
    stream: Option<FirstEventHold>,
}

/// How a held response is read before the retry decision.
#[derive(Clone, Copy, Debug)]
enum Check {
    /// Read up to `max_error_body_bytes` and classify with `ApiError::from_response`.
    ErrorBody,
    /// A `200 text/event-stream`: read until its first event (see `stream.rs`), up to
    /// `max_first_event_bytes`.
    FirstEvent,
}

/// Which responses are held and read before they reach the caller: a `200 text/event-stream`
/// (unless `hold_first_event(false)`), error statuses, or what `inspect_if` selects. `None`:
/// pass the response through unread.
#[inline]
fn check_for(config: &Config, status: http::StatusCode, headers: &HeaderMap) -> Option<Check> {
    if status == http::StatusCode::OK && config.hold_first_event && is_event_stream(headers) {
        return Some(Check::FirstEvent);
    }
    let inspect = match &config.inspect_if {
        Some(f) => f(status, headers),
        None => status.as_u16() >= 400,
    };
    inspect.then_some(Check::ErrorBody)
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, S::Future, ReqBody, ResBody>
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Body + Unpin,
    ReqBody::Data: Into<Bytes> + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The success path, kept apart so that it stays small: a response that needs no
        // reading goes out at once. Everything else continues in `poll_slow`.
        let mut polled = None;
        if let StateProj::Called { future } = this.state.as_mut().project() {
            match future.poll(cx) {
                Poll::Ready(Ok(resp)) if check(&this, &resp).is_none() => {
                    return Poll::Ready(Ok(resp.map(ResponseBody::plain)));
                }
                p => polled = Some(p),
            }
        }
        poll_slow(this, cx, polled)
    }
}

/// Which check a response of the current attempt needs before the caller may have it: none
/// when no retry can follow, or `check_for` says it needs no reading.
#[inline]
fn check<S, F, ReqBody, ResBody, B>(
    this: &FutureProj<'_, S, F, ReqBody, ResBody>,
    resp: &Response<B>,
) -> Option<Check> {
    let saved = this.saved.as_ref()?;
    if *this.retries >= this.config.max_retries {
        return None;
    }
    check_for(this.config, resp.status(), resp.headers()).filter(|_| saved.body.is_replayable())
}

/// An attempt ran out of time (`reason`): starts the wait before the next attempt, or
/// returns the error to give up with.
fn retry_after_timeout<S, F, ReqBody, ResBody>(
    this: &mut FutureProj<'_, S, F, ReqBody, ResBody>,
    reason: Reason,
) -> Result<(), BoxError> {
    if reason != Reason::Deadline {
        let decision = decide(
            &Outcome::timeout(),
            this.config,
            *this.retries,
            this.saved,
            *this.deadline,
            this.rng,
        );
        if let Ok(at) = decision {
            start_wait(this.sleep, at);
            return Ok(());
        }
    }
    Err(give_up(this.retries, reason, this.last_api_error))
}

/// Everything but the success path of [`ResponseFuture::poll`]. `polled`: what polling the
/// current attempt's future gave, when `poll` already did.
#[inline(never)]
fn poll_slow<S, ReqBody, ResBody>(
    mut this: FutureProj<'_, S, S::Future, ReqBody, ResBody>,
    cx: &mut Context<'_>,
    mut polled: Option<Poll<Result<Response<ResBody>, S::Error>>>,
) -> Poll<Result<Response<ResponseBody<ResBody>>, BoxError>>
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ReqBody: Body + Unpin,
    ReqBody::Data: Into<Bytes> + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
    ResBody::Error: Into<BoxError>,
{
    loop {
        match this.state.as_mut().project() {
            StateProj::Called { future } => {
                let result = match polled.take().unwrap_or_else(|| future.poll(cx)) {
                    Poll::Ready(result) => result,
                    Poll::Pending => {
                        ready!(poll_timer(this.sleep, *this.timer_armed, cx));
                        *this.timer_armed = false;
                        this.state.set(State::Waiting);
                        let reason = timed_out(this.deadline);
                        if let Err(e) = retry_after_timeout(&mut this, reason) {
                            return Poll::Ready(Err(e));
                        }
                        continue;
                    }
                };
                match result {
                    Ok(resp) => {
                        let Some(check) = check(&this, &resp) else {
                            // Nothing left to decide: the response goes out unread.
                            return Poll::Ready(Ok(resp.map(ResponseBody::plain)));
                        };
                        let stream = match check {
                            Check::ErrorBody => None,
                            Check::FirstEvent => {
                                let attempt_end = this
                                    .sleep
                                    .as_ref()
                                    .filter(|_| *this.timer_armed)
                                    .map(|s| s.deadline());
                                let first_event_end = this
                                    .config
                                    .first_event_timeout
                                    .and_then(|t| Instant::now().checked_add(t));
                                if let Some(at) = first_event_end {
                                    let at = attempt_end.map_or(at, |a| a.min(at));
                                    start_wait(this.sleep, at);
                                    *this.timer_armed = true;
                                }
                                Some(FirstEventHold::new(attempt_end))
                            }
                        };
                        let (parts, body) = resp.into_parts();
                        this.state.set(State::Checking {
                            held: Box::new(Held {
                                parts: Some(parts),
                                body: Some(Box::pin(body)),
                                prefix: Prefix::default(),
                                stream,
                            }),
                        });
                        continue;
                    }
                    Err(err) => {
                        let err: BoxError = err.into();
                        let outcome = Outcome::error(&*err);
                        let decision = decide(
                            &outcome,
                            this.config,
                            *this.retries,
                            this.saved,
                            *this.deadline,
                            this.rng,
                        );
                        if decision.is_ok() {
                            if let Some(api) = outcome.api_error() {
                                *this.last_api_error = Some(api.clone());
                            }
                        }
                        match decision {
                            Ok(at) => {
                                *this.timer_armed = false;
                                start_wait(this.sleep, at);
                                this.state.set(State::Waiting);
                                continue;
                            }
                            Err(_) => {
                                *this.retries += 1;
                                return Poll::Ready(Err(RetryError::new(
                                    *this.retries,
                                    Reason::Transport,
                                    this.last_api_error.take(),
                                    Some(err),
                                )
                                .into()));
                            }
                        }
                    }
                }
            }
            StateProj::Checking { held } => {
                let Held {
                    parts,
                    body,
                    prefix,
                    stream,
                } = &mut **held;
                let limit = this.config.max_error_body_bytes;
                let filled = match (body.as_mut(), stream.as_mut()) {
                    (None, _) => Poll::Ready(None),
                    (Some(b), None) => prefix.poll_fill(b, limit, cx).map(|()| None),
                    (Some(b), Some(hold)) => hold
                        .poll(prefix, b, this.config.max_first_event_bytes, cx)
                        .map(Some),
                };
                let verdict = match filled {
                    Poll::Ready(v) => v,
                    Poll::Pending => {
                        ready!(poll_timer(this.sleep, *this.timer_armed, cx));
                        *this.timer_armed = false;
                        let reason = timed_out(this.deadline);
                        let now = Instant::now();
                        let first_event_timer = reason != Reason::Deadline
                            && stream
                                .as_ref()
                                .is_some_and(|h| h.attempt_end.is_none_or(|a| now < a));
                        if first_event_timer {
                            // A stream that sent no event in time: retryable; when no
                            // retry follows, the caller gets it as it is, still streaming.
                            match decide(
                                &Outcome::first_event_timeout(),
                                this.config,
                                *this.retries,
                                this.saved,
                                *this.deadline,
                                this.rng,
                            ) {
                                Ok(at) => {
                                    start_wait(this.sleep, at);
                                    this.state.set(State::Waiting);
                                    continue;
                                }
                                Err(_) => match (parts.take(), body.take()) {
                                    (Some(p), Some(b)) => {
                                        let prefix = std::mem::take(prefix);
                                        return Poll::Ready(Ok(Response::from_parts(
                                            p,
                                            ResponseBody::replayed(prefix, b),
                                        )));
                                    }
                                    _ => {
                                        return Poll::Ready(Err(give_up(
                                            this.retries,
                                            Reason::Transport,
                                            this.last_api_error,
                                        )));
                                    }
                                },
                            }
                        }
                        this.state.set(State::Waiting);
                        if let Err(e) = retry_after_timeout(&mut this, reason) {
                            return Poll::Ready(Err(e));
                        }
                        continue;
                    }
                };
                let (Some(p), Some(b)) = (parts.take(), body.take()) else {
                    // Unreachable: both are set together and taken together below.
                    return Poll::Ready(Err(RetryError::new(
                        *this.retries + 1,
                        Reason::Transport,
                        None,
                        None,
                    )
                    .into()));
                };
                let (decision, api) = {
                    let api = match &verdict {
                        None => {
                            let options = ParseOptions::new().max_body_bytes(limit);
                            ApiError::from_response_with(
                                p.status,
                                &p.headers,
                                &prefix.buf,
                                &options,
                            )
                        }
                        Some(Verdict::Failed(e)) => Some(with_head_hints(e.clone(), &p.headers)),
                        Some(Verdict::HandOn | Verdict::BodyFailed) => None,
                    };
                    let outcome = match (&verdict, prefix.error.as_deref()) {
                        (Some(Verdict::HandOn), _) => None,
                        (Some(Verdict::BodyFailed), Some(err)) => Some(Outcome::error(err)),
                        _ => Some(Outcome::response(p.status, &p.headers, api.as_ref())),
                    };
                    match outcome {
                        None => (Err(Stop::NotRetryable), None),
                        Some(outcome) => {
                            let decision = decide(
                                &outcome,
                                this.config,
                                *this.retries,
                                this.saved,
                                *this.deadline,
                                this.rng,
                            );
                            let last = outcome.api_error().cloned();
                            (decision, last)
                        }
                    }
                };
                match decision {
                    Ok(at) => {
                        *this.last_api_error = api;
                        *this.timer_armed = false;
                        start_wait(this.sleep, at);
                        this.state.set(State::Waiting);
                    }
                    Err(_) => {
                        let prefix = std::mem::take(prefix);
                        return Poll::Ready(Ok(Response::from_parts(
                            p,
                            ResponseBody::replayed(prefix, b),
                        )));
                    }
                }
            }
            StateProj::Waiting => {
                if let Some(sleep) = this.sleep.as_mut() {
                    ready!(sleep.as_mut().poll(cx));
                }
                // The next attempt's clock starts now: waiting for the service to be ready
                // counts towards its timeout and the deadline.
                if let Some(at) = attempt_end(this.config, *this.deadline, Instant::now()) {
                    start_wait(this.sleep, at);
                    *this.timer_armed = true;
                }
                this.state.set(State::Retrying);
            }
            StateProj::Retrying => {
                let ready = match this.service.poll_ready(cx) {
                    Poll::Ready(r) => r,
                    Poll::Pending => {
                        ready!(poll_timer(this.sleep, *this.timer_armed, cx));
                        // Not ready in time: the retry is abandoned, not counted.
                        let reason = timed_out(this.deadline);
                        return Poll::Ready(Err(give_up(
                            this.retries,
                            reason,
                            this.last_api_error,
                        )));
                    }
                };
                if let Err(e) = ready {
                    return Poll::Ready(Err(RetryError::new(
                        *this.retries + 1,
                        Reason::Transport,
                        this.last_api_error.take(),
                        Some(e.into()),
                    )
                    .into()));
                }
                let Some(saved) = this.saved.as_ref() else {
                    return Poll::Ready(Err(give_up(
                        this.retries,
                        Reason::Transport,
                        this.last_api_error,
                    )));
                };
                *this.retries += 1;
                let req = saved.request(*this.retries, this.config.attempt_header.as_ref());
                let future = this.service.call(req);
                this.state.set(State::Called { future });
            }
        }
    }
}

/// Polls the attempt timer, if one is armed; `Pending` forever otherwise.
fn poll_timer(sleep: &mut Option<Pin<Box<Sleep>>>, armed: bool, cx: &mut Context<'_>) -> Poll<()> {
    match sleep {
        Some(s) if armed => s.as_mut().poll(cx),
        _ => Poll::Pending,
    }
}

/// Which timer fired: the deadline if it has passed, else the attempt timeout.
fn timed_out(deadline: &Option<Instant>) -> Reason {
    match deadline {
        Some(d) if Instant::now() >= *d => Reason::Deadline,
        _ => Reason::AttemptTimeout,
    }
}

fn give_up(retries: &u32, reason: Reason, last: &mut Option<ApiError>) -> BoxError {
    let source: BoxError = Box::new(Elapsed(reason));
    let source = if reason == Reason::Transport {
        None
    } else {
        Some(source)
    };
    RetryError::new(retries.saturating_add(1), reason, last.take(), source).into()
}

fn start_wait(sleep: &mut Option<Pin<Box<Sleep>>>, at: Instant) {
    match sleep {
        Some(s) => s.as_mut().reset(at),
        None => *sleep = Some(Box::pin(sleep_until(at))),
    }
}

/// Runs the policy, reports the retry (tracing and `on_retry`), and returns when to wake.
fn decide<B>(
    outcome: &Outcome<'_>,
    config: &Config,
    retries: u32,
    saved: &Option<SavedRequest<B>>,
    deadline: Option<Instant>,
    rng: &mut Option<fastrand::Rng>,
) -> Result<Instant, Stop> {
    let now = Instant::now();
    let replayable = saved.as_ref().is_some_and(|s| s.body.is_replayable());
    let remaining = deadline.map(|d| d.saturating_duration_since(now));
    let result =
        policy::decide(config, retries, outcome, replayable, remaining, rng).and_then(|delay| {
            now.checked_add(delay)
                .map(|at| (delay, at))
                .ok_or(Stop::Deadline)
        });
    match result {
        Ok((delay, at)) => {
            let info = RetryInfo {
                retry: retries.saturating_add(1),
                delay,
                outcome,
            };
            trace_retry(&info);
            if let Some(hook) = &config.on_retry {
                hook(&info);
            }
            Ok(at)
        }
        Err(stop) => {
            tracing::debug!(
                attempts = retries.saturating_add(1),
                reason = stop.as_str(),
                "not retrying"
            );
            Err(stop)
        }
    }
}

fn trace_retry(info: &RetryInfo<'_>) {
    // Never headers: they may carry secrets. Only numbers and fixed names.
    tracing::debug!(
        retry = info.retry(),
        kind = info.kind().map(|k| k.as_str()),
        status = info.outcome().status().map(|s| s.as_u16()),
        delay_ms = duration_ms(info.delay()),
        hint_ms = info.hint().map(duration_ms),
        hint_source = info.hint_source().map(|s| s.as_str()),
        timeout = info.outcome().is_timeout(),
        "retrying request"
    );
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl<S, F, ReqBody, ResBody> fmt::Debug for ResponseFuture<S, F, ReqBody, ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Called { .. } => "called",
            State::Checking { .. } => "checking",
            State::Waiting => "waiting",
            State::Retrying => "retrying",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(map: &HeaderMap) -> Vec<(String, Vec<u8>)> {
        map.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn saved_headers_rebuild_the_same_map() {
        let mut many = HeaderMap::new();
        for i in 0..40u32 {
            let name = HeaderName::from_bytes(format!("x-h{}", i % 7).as_bytes()).unwrap();
            many.append(name, HeaderValue::from(i));
        }
        let mut mixed = HeaderMap::new();
        for (n, v) in [
            ("x-b", "1"),
            ("accept", "a"),
            ("x-b", "2"),
            ("authorization", "Bearer k"),
            ("x-b", "3"),
        ] {
            mixed.append(n, HeaderValue::from_static(v));
        }
        for map in [HeaderMap::new(), mixed, many] {
            let rebuilt = SavedHeaders::new(&map).to_map();
            assert_eq!(fields(&rebuilt), fields(&map));
            assert_eq!(rebuilt, map);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any sequence of appends and inserts over a few names: the rebuilt map iterates
        /// exactly as the original.
        #[test]
        fn saved_headers_round_trip(
            ops in proptest::collection::vec((0usize..5, 0u32..1000, proptest::bool::ANY), 0..60),
        ) {
            const NAMES: [&str; 5] = ["x-a", "accept", "x-b", "authorization", "x-c"];
            let mut map = HeaderMap::new();
            for (name, value, append) in ops {
                let name = HeaderName::from_static(NAMES[name]);
                if append {
                    map.append(name, HeaderValue::from(value));
                } else {
                    map.insert(name, HeaderValue::from(value));
                }
            }
            let rebuilt = SavedHeaders::new(&map).to_map();
            proptest::prop_assert_eq!(fields(&rebuilt), fields(&map));
        }
    }
}
