//! The retry layer's rules, driven with `ServiceBuilder` + `service_fn` + `oneshot` on tokio's
//! paused clock.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use std::{
    collections::VecDeque,
    convert::Infallible,
    io,
    sync::{
        Arc, Mutex,
        atomic::{AtomicIsize, AtomicU32, Ordering},
    },
    time::{Duration, SystemTime},
};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, retry::budget::Budget};
use tower_llm_errors::{
    ApiError, BoxError, ErrorKind,
    error::HintSource,
    retry::{ReplayBody, RetryError, RetryLayer},
};

/// What the fake upstream does on one attempt.
#[derive(Clone)]
enum Step {
    Resp(u16, Vec<(&'static str, String)>, &'static str),
    Io(io::ErrorKind),
    Api(ApiError),
    Hang,
}

fn resp(status: u16, body: &'static str) -> Step {
    Step::Resp(status, vec![], body)
}

fn resp_h(status: u16, headers: &[(&'static str, &str)], body: &'static str) -> Step {
    Step::Resp(
        status,
        headers.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        body,
    )
}

/// One request as the upstream saw it.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    body: Bytes,
    trailers: Option<HeaderMap>,
    headers: HeaderMap,
    mode: String,
}

#[derive(Clone, Default)]
struct Upstream {
    steps: Arc<Mutex<VecDeque<Step>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    fn new(steps: impl IntoIterator<Item = Step>) -> Upstream {
        Upstream {
            steps: Arc::new(Mutex::new(steps.into_iter().collect())),
            seen: Arc::default(),
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn calls(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Gaps between consecutive attempts.
    fn gaps(&self) -> Vec<Duration> {
        let s = self.seen();
        s.windows(2).map(|w| w[1].at - w[0].at).collect()
    }

    async fn handle<B>(self, req: Request<ReplayBody<B>>) -> Result<Response<Full<Bytes>>, BoxError>
    where
        ReplayBody<B>: Body<Data = Bytes, Error = BoxError>,
    {
        let at = Instant::now();
        let (parts, body) = req.into_parts();
        let mode = format!("{body:?}");
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        self.seen.lock().unwrap().push(Seen {
            at,
            body: collected.to_bytes(),
            trailers,
            headers: parts.headers,
            mode,
        });
        let step = self
            .steps
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(resp(200, "ok"));
        match step {
            Step::Resp(status, headers, body) => {
                let mut r = Response::builder().status(status);
                for (k, v) in headers {
                    r = r.header(k, v);
                }
                Ok(r.body(Full::new(Bytes::from_static(body.as_bytes())))?)
            }
            Step::Io(kind) => Err(Box::new(Wrapped(io::Error::new(kind, "socket said no")))),
            Step::Api(e) => Err(Box::new(e)),
            Step::Hang => std::future::pending().await,
        }
    }
}

/// An error whose source is the io::Error, as hyper's is.
#[derive(Debug)]
struct Wrapped(io::Error);
impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("client error")
    }
}
impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn svc<B>(
    layer: RetryLayer,
    up: &Upstream,
) -> impl Service<
    Request<B>,
    Response = Response<tower_llm_errors::retry::ResponseBody<Full<Bytes>>>,
    Error = BoxError,
> + Clone
where
    B: Body<Data = Bytes> + Unpin + Send + 'static,
    B::Error: Into<BoxError>,
{
    let up = up.clone();
    ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |req: Request<ReplayBody<B>>| up.clone().handle(req))
}

fn post(body: &'static str) -> Request<Full<Bytes>> {
    Request::post("http://llm.test/v1/chat/completions")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

async fn body_of(resp: Response<tower_llm_errors::retry::ResponseBody<Full<Bytes>>>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

const BASE: Duration = Duration::from_millis(500);
const OVERLOADED: &str = r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#;

#[tokio::test(start_paused = true)]
async fn success_passes_through_once() {
    let up = Upstream::new([resp(200, "hello")]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("{}"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(body_of(r).await, "hello");
    assert_eq!(up.calls(), 1);
    assert_eq!(up.seen()[0].mode, "ReplayBody { mode: \"buffered\", .. }");
}

#[tokio::test(start_paused = true)]
async fn retryable_status_is_retried_with_identical_body_and_jittered_delay() {
    let up = Upstream::new([resp(503, OVERLOADED), resp(200, "ok")]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post(r#"{"model":"m","messages":[]}"#))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(seen[1].body, r#"{"model":"m","messages":[]}"#);
    assert!(up.gaps()[0] <= BASE, "{:?}", up.gaps());
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_return_last_response_complete() {
    let up = Upstream::new([
        resp(500, "a"),
        resp(502, "b"),
        resp(503, OVERLOADED),
        resp(200, "never"),
    ]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(body_of(r).await, OVERLOADED);
    assert_eq!(up.calls(), 3);
    let gaps = up.gaps();
    assert!(gaps[0] <= BASE && gaps[1] <= 2 * BASE, "{gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn error_body_longer_than_prefix_reaches_caller_byte_for_byte() {
    let long: &'static str = Box::leak(
        format!(
            r#"{{"error":{{"message":"{}","type":"invalid_request_error"}}}}"#,
            "z".repeat(5000)
        )
        .into_boxed_str(),
    );
    let up = Upstream::new([resp(400, long)]);
    let layer = RetryLayer::new().max_error_body_bytes(64);
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(body_of(r).await, long.as_bytes());
    assert_eq!(up.calls(), 1);
}

/// Statuses whose kind is never retried.
#[tokio::test(start_paused = true)]
async fn never_retry_statuses() {
    for status in [400u16, 401, 402, 403, 404, 413, 415, 422] {
        let up = Upstream::new([
            resp(status, r#"{"error":{"message":"no"}}"#),
            resp(200, "ok"),
        ]);
        let r = svc(RetryLayer::new(), &up)
            .oneshot(post("x"))
            .await
            .unwrap();
        assert_eq!(r.status(), status);
        assert_eq!(up.calls(), 1, "status {status}");
    }
}

/// Every kind, carried by an `ApiError` in the inner service's error: retried exactly when
/// the design's rules say so.
#[tokio::test(start_paused = true)]
async fn every_kind_follows_the_retryable_rule() {
    for kind in ErrorKind::ALL {
        let up = Upstream::new([Step::Api(ApiError::new(kind, "x")), resp(200, "ok")]);
        let out = svc(RetryLayer::new(), &up).oneshot(post("x")).await;
        let retryable = matches!(
            kind,
            ErrorKind::RequestTimeout
                | ErrorKind::Conflict
                | ErrorKind::RateLimited
                | ErrorKind::ServerError
                | ErrorKind::BadGateway
                | ErrorKind::ServiceUnavailable
                | ErrorKind::Overloaded
                | ErrorKind::GatewayTimeout
        );
        if retryable {
            assert_eq!(out.unwrap().status(), 200, "{kind:?}");
            assert_eq!(up.calls(), 2, "{kind:?}");
        } else {
            let err = out.unwrap_err();
            let err = err.downcast_ref::<RetryError>().unwrap();
            assert_eq!(err.attempts(), 1, "{kind:?}");
            assert_eq!(err.api_error().unwrap().kind(), kind);
            assert_eq!(up.calls(), 1, "{kind:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn quota_429_with_should_retry_false_is_not_retried() {
    let body =
        r#"{"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
    let up = Upstream::new([
        resp_h(429, &[("x-should-retry", "false")], body),
        resp(200, "ok"),
    ]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(body_of(r).await, body);
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]

async fn quota_429_by_body_code_is_not_retried() {
    let body = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
    let up = Upstream::new([resp(429, body), resp(200, "ok")]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn should_retry_header_overrides_kind() {
    // true on a 400: retried.
    let up = Upstream::new([
        resp_h(400, &[("x-should-retry", "true")], "{}"),
        resp(200, "ok"),
    ]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), up.calls()), (200, 2));
    // false on a 503: not retried.
    let up = Upstream::new([
        resp_h(503, &[("x-should-retry", "false")], "{}"),
        resp(200, "ok"),
    ]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!((r.status().as_u16(), up.calls()), (503, 1));
}

/// Each hint kind is a floor, spread above by at most the full-jitter delay.
macro_rules! hint_cases {
    ($($name:ident: $headers:expr => $floor:expr, $source:expr;)*) => {$(
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let sources = Arc::new(Mutex::new(Vec::new()));
            let s2 = sources.clone();
            let layer = RetryLayer::new().on_retry(move |info| {
                s2.lock().unwrap().push((info.hint(), info.hint_source()));
            });
            let headers: Vec<(&'static str, String)> = $headers;
            let up = Upstream::new([Step::Resp(429, headers, "{}"), resp(200, "ok")]);
            let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
            assert_eq!(r.status(), 200);
            let gap = up.gaps()[0];
            let floor: Duration = $floor;
            assert!(gap >= floor && gap <= floor + BASE, "gap {gap:?} floor {floor:?}");
            assert_eq!(sources.lock().unwrap()[0], (Some(floor), Some($source)));
        }
    )*};
}

fn date_pair(ahead: u64) -> Vec<(&'static str, String)> {
    // A server clock far from ours: the hint is measured against its Date header.
    let server_now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    vec![
        ("date", httpdate::fmt_http_date(server_now)),
        (
            "retry-after",
            httpdate::fmt_http_date(server_now + Duration::from_secs(ahead)),
        ),
    ]
}

hint_cases! {
    hint_retry_after_ms: vec![("retry-after-ms", "1500".into())] => Duration::from_millis(1500), HintSource::RetryAfterMs;
    hint_retry_after_seconds: vec![("retry-after", "3".into())] => Duration::from_secs(3), HintSource::RetryAfterSeconds;
    hint_retry_after_date: date_pair(5) => Duration::from_secs(5), HintSource::RetryAfterDate;
    hint_past_date_is_zero: date_pair(0) => Duration::ZERO, HintSource::RetryAfterDate;
    hint_ms_wins_over_seconds: vec![("retry-after", "9".into()), ("retry-after-ms", "250".into())] => Duration::from_millis(250), HintSource::RetryAfterMs;
    hint_duplicate_headers_first_wins: vec![("retry-after", "4".into()), ("retry-after", "8".into())] => Duration::from_secs(4), HintSource::RetryAfterSeconds;
}

#[tokio::test(start_paused = true)]
async fn malformed_hints_are_ignored_and_plain_backoff_applies() {
    for bad in ["-3", "soon", "1.5", ""] {
        let up = Upstream::new([resp_h(503, &[("retry-after", bad)], "{}"), resp(200, "ok")]);
        let r = svc(RetryLayer::new(), &up)
            .oneshot(post("x"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(up.gaps()[0] <= BASE, "{bad}: {:?}", up.gaps());
    }
}

#[tokio::test(start_paused = true)]
async fn hint_over_max_retry_after_returns_the_response() {
    for h in ["61", "1000000000000", "99999999999999999999999"] {
        let up = Upstream::new([resp_h(429, &[("retry-after", h)], "slow"), resp(200, "ok")]);
        let r = svc(RetryLayer::new(), &up)
            .oneshot(post("x"))
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        let api = ApiError::from_response(r.status(), r.headers(), b"").unwrap();
        assert!(api.retry_after().unwrap() > Duration::from_secs(60));
        assert_eq!(body_of(r).await, "slow");
        assert_eq!(up.calls(), 1);
    }
    // Within the limit it waits.
    let up = Upstream::new([
        resp_h(429, &[("retry-after", "60")], "slow"),
        resp(200, "ok"),
    ]);
    let r = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(up.gaps()[0] >= Duration::from_secs(60));
}

#[tokio::test(start_paused = true)]
async fn delays_are_capped_by_max_delay() {
    let steps: Vec<Step> = (0..6).map(|_| resp(503, "{}")).collect();
    let up = Upstream::new(steps);
    let layer = RetryLayer::new()
        .max_retries(6)
        .base_delay(Duration::from_millis(400))
        .max_delay(Duration::from_secs(1));
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(r.status(), 200);
    let gaps = up.gaps();
    assert_eq!(gaps.len(), 6);
    let caps = [400u64, 800, 1000, 1000, 1000, 1000];
    for (g, c) in gaps.iter().zip(caps) {
        assert!(*g <= Duration::from_millis(c), "{gaps:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn absurd_configuration_does_not_panic() {
    let up = Upstream::new([resp(503, "{}"), resp(200, "ok")]);
    let layer = RetryLayer::new()
        .max_retries(u32::MAX)
        .base_delay(Duration::MAX)
        .max_delay(Duration::MAX);
    // A wait that cannot be represented as an instant is not scheduled.
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert!(r.status() == 503 || r.status() == 200);
}

#[tokio::test(start_paused = true)]
async fn hint_past_deadline_is_not_waited_for() {
    let up = Upstream::new([
        resp_h(429, &[("retry-after", "5")], "later"),
        resp(200, "ok"),
    ]);
    let layer = RetryLayer::new().deadline(Duration::from_secs(4));
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(body_of(r).await, "later");
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn deadline_cuts_a_hanging_attempt() {
    let up = Upstream::new([Step::Hang]);
    let start = Instant::now();
    let layer = RetryLayer::new().deadline(Duration::from_secs(2));
    let err = svc(layer, &up).oneshot(post("x")).await.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert!(err.is_deadline());
    assert_eq!(err.attempts(), 1);
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn deadline_bounds_all_attempts_and_sleeps() {
    let steps: Vec<Step> = (0..50).map(|_| resp(503, "{}")).collect();
    let up = Upstream::new(steps);
    let start = Instant::now();
    let layer = RetryLayer::new()
        .max_retries(50)
        .base_delay(Duration::from_secs(1))
        .deadline(Duration::from_secs(10));
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(Instant::now() - start < Duration::from_secs(10));
    assert!(up.calls() >= 2);
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_is_retried() {
    let up = Upstream::new([Step::Hang, resp(200, "ok")]);
    let layer = RetryLayer::new().attempt_timeout(Duration::from_secs(3));
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(r.status(), 200);
    let gap = up.gaps()[0];
    assert!(gap >= Duration::from_secs(3) && gap <= Duration::from_secs(3) + BASE);

    let up = Upstream::new([Step::Hang, Step::Hang, Step::Hang]);
    let layer = RetryLayer::new().attempt_timeout(Duration::from_secs(1));
    let err = svc(layer, &up).oneshot(post("x")).await.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert!(err.is_attempt_timeout());
    assert_eq!(err.attempts(), 3);
}

#[tokio::test(start_paused = true)]
async fn connection_failures_are_retried_other_errors_are_not() {
    for kind in [
        io::ErrorKind::ConnectionRefused,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::ConnectionAborted,
        io::ErrorKind::BrokenPipe,
    ] {
        let up = Upstream::new([Step::Io(kind), resp(200, "ok")]);
        let r = svc(RetryLayer::new(), &up)
            .oneshot(post("x"))
            .await
            .unwrap();
        assert_eq!((r.status().as_u16(), up.calls()), (200, 2), "{kind:?}");
    }
    let up = Upstream::new([Step::Io(io::ErrorKind::InvalidData), resp(200, "ok")]);
    let err = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap_err();
    let e = err.downcast_ref::<RetryError>().unwrap();
    assert!(e.is_transport());
    assert_eq!(e.attempts(), 1);
    assert!(e.api_error().is_none());
    assert!(
        std::error::Error::source(e)
            .unwrap()
            .downcast_ref::<Wrapped>()
            .is_some()
    );
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn transport_error_after_error_response_carries_attempts_and_api_error() {
    let up = Upstream::new([
        resp(503, OVERLOADED),
        Step::Io(io::ErrorKind::ConnectionRefused),
        Step::Io(io::ErrorKind::ConnectionRefused),
    ]);
    let err = svc(RetryLayer::new(), &up)
        .oneshot(post("x"))
        .await
        .unwrap_err();
    let e = err.downcast_ref::<RetryError>().unwrap();
    assert_eq!(e.attempts(), 3);
    assert_eq!(
        e.api_error().unwrap().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
}

#[tokio::test(start_paused = true)]
async fn retry_if_overrides_both_ways() {
    let layer = RetryLayer::new().retry_if(|o| match o.status().map(|s| s.as_u16()) {
        Some(404) => Some(true),
        Some(503) => Some(false),
        _ => None,
    });
    let up = Upstream::new([resp(404, "{}"), resp(200, "ok")]);
    assert_eq!(
        svc(layer.clone(), &up)
            .oneshot(post("x"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(up.calls(), 2);
    let up = Upstream::new([resp(503, "{}"), resp(200, "ok")]);
    assert_eq!(
        svc(layer, &up).oneshot(post("x")).await.unwrap().status(),
        503
    );
    assert_eq!(up.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn inspect_if_classifies_success_statuses() {
    let in_band = r#"{"error":{"message":"upstream overloaded","code":503}}"#;
    let layer = RetryLayer::new()
        .inspect_if(|status, _| status == StatusCode::OK)
        .retry_if(|o| o.api_error().map(|e| e.is_retryable()));
    let up = Upstream::new([resp(200, in_band), resp(200, "fine")]);
    let r = svc(layer.clone(), &up).oneshot(post("x")).await.unwrap();
    assert_eq!(body_of(r).await, "fine");
    assert_eq!(up.calls(), 2);
    // Without an error object a 200 is returned, body intact.
    let up = Upstream::new([resp(200, "plain")]);
    let r = svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(body_of(r).await, "plain");
}

/// A budget that allows `n` retries in total.
struct Allow(AtomicIsize);
impl Budget for Allow {
    fn deposit(&self) {}
    fn withdraw(&self) -> bool {
        self.0.fetch_sub(1, Ordering::SeqCst) > 0
    }
}

#[tokio::test(start_paused = true)]
async fn budget_is_shared_by_clones_and_exhausts() {
    let steps: Vec<Step> = (0..20).map(|_| resp(503, "{}")).collect();
    let up = Upstream::new(steps);
    let s = svc(RetryLayer::new().budget(Allow(AtomicIsize::new(3))), &up);
    for _ in 0..4 {
        let r = s.clone().oneshot(post("x")).await.unwrap();
        assert_eq!(r.status(), 503);
    }
    // 4 first attempts + 3 retries from the shared budget.
    assert_eq!(up.calls(), 7);
}

#[tokio::test(start_paused = true)]
async fn tower_tps_budget_limits_retries() {
    let steps: Vec<Step> = (0..20).map(|_| resp(503, "{}")).collect();
    let up = Upstream::new(steps);
    let budget = tower::retry::budget::TpsBudget::new(Duration::from_secs(10), 0, 0.5);
    let s = svc(RetryLayer::new().budget(budget), &up);
    for _ in 0..4 {
        s.clone().oneshot(post("x")).await.unwrap();
    }
    // Each first attempt deposits half a retry: 4 requests earn 2 retries.
    assert_eq!(up.calls(), 6);
}

#[tokio::test(start_paused = true)]
async fn idempotency_key_and_attempt_header() {
    let key = HeaderName::from_static("idempotency-key");
    let count = HeaderName::from_static("x-retry-count");
    let layer = RetryLayer::new()
        .idempotency_key_header(key.clone())
        .attempt_header(count.clone());
    let up = Upstream::new([resp(500, "{}"), resp(500, "{}"), resp(200, "ok")]);
    svc(layer.clone(), &up).oneshot(post("x")).await.unwrap();
    let seen = up.seen();
    let keys: Vec<_> = seen
        .iter()
        .map(|s| s.headers.get(&key).unwrap().clone())
        .collect();
    assert_eq!(keys[0].len(), 32);
    assert!(keys.iter().all(|k| k == keys[0]));
    let counts: Vec<_> = seen
        .iter()
        .map(|s| s.headers[&count].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(counts, ["0", "1", "2"]);

    // A fresh key per request; a caller's key is kept.
    let up2 = Upstream::new([]);
    svc(layer.clone(), &up2).oneshot(post("x")).await.unwrap();
    assert_ne!(up2.seen()[0].headers[&key], keys[0]);
    let up3 = Upstream::new([resp(500, "{}")]);
    let mut req = post("x");
    req.headers_mut()
        .insert(key.clone(), HeaderValue::from_static("mine"));
    svc(layer, &up3).oneshot(req).await.unwrap();
    assert!(up3.seen().iter().all(|s| s.headers[&key] == "mine"));
}

#[tokio::test(start_paused = true)]
async fn on_retry_hook_sees_each_retry() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = log.clone();
    let layer = RetryLayer::new().on_retry(move |info| {
        l2.lock().unwrap().push((
            info.retry(),
            info.kind(),
            info.outcome().status().map(|s| s.as_u16()),
        ));
    });
    let up = Upstream::new([
        resp(502, "{}"),
        Step::Io(io::ErrorKind::ConnectionReset),
        resp(200, "ok"),
    ]);
    svc(layer, &up).oneshot(post("x")).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [(1, Some(ErrorKind::BadGateway), Some(502)), (2, None, None)]
    );
}

#[tokio::test(start_paused = true)]
async fn max_retries_zero_neither_holds_nor_reads() {
    let up = Upstream::new([resp(503, OVERLOADED)]);
    let r = svc(RetryLayer::new().max_retries(0), &up)
        .oneshot(post("x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        format!("{:?}", r.body()),
        "ResponseBody { prefix_len: None, .. }"
    );
    assert_eq!(body_of(r).await, OVERLOADED);
    assert_eq!(
        up.seen()[0].mode,
        "ReplayBody { mode: \"passthrough\", .. }"
    );
}

#[tokio::test(start_paused = true)]
async fn body_over_replay_limit_is_sent_once() {
    let up = Upstream::new([resp(503, "{}"), resp(200, "ok")]);
    let layer = RetryLayer::new().max_replay_bytes(4);
    let r = svc(layer, &up).oneshot(post("0123456789")).await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(up.calls(), 1);
    assert_eq!(up.seen()[0].body, "0123456789");
    assert_eq!(
        up.seen()[0].mode,
        "ReplayBody { mode: \"passthrough\", .. }"
    );
}

type Chunk = Result<Frame<Bytes>, Infallible>;

fn streamed(
    frames: Vec<Frame<Bytes>>,
) -> Request<StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Chunk>>>> {
    let chunks: Vec<Chunk> = frames.into_iter().map(Ok).collect();
    Request::post("http://llm.test/v1/x")
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn streamed_body_and_trailers_replay_identically() {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", HeaderValue::from_static("abc"));
    let req = streamed(vec![
        Frame::data(Bytes::from_static(b"part one, ")),
        Frame::data(Bytes::from_static(b"part two")),
        Frame::trailers(trailers.clone()),
    ]);
    let up = Upstream::new([resp(500, "{}"), resp(500, "{}"), resp(200, "ok")]);
    let r = svc(RetryLayer::new(), &up).oneshot(req).await.unwrap();
    assert_eq!(r.status(), 200);
    let seen = up.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.body, "part one, part two");
        assert_eq!(s.trailers.as_ref(), Some(&trailers));
        assert_eq!(s.mode, "ReplayBody { mode: \"recorded\", .. }");
    }
}

#[tokio::test(start_paused = true)]
async fn streamed_body_over_limit_is_sent_once() {
    let req = streamed(vec![
        Frame::data(Bytes::from_static(b"0123456789")),
        Frame::data(Bytes::from_static(b"abcdefghij")),
    ]);
    let up = Upstream::new([resp(503, "{}"), resp(200, "ok")]);
    let r = svc(RetryLayer::new().max_replay_bytes(15), &up)
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    // Not replayable any more, so the error body was not even read.
    assert_eq!(
        format!("{:?}", r.body()),
        "ResponseBody { prefix_len: None, .. }"
    );
    assert_eq!(up.calls(), 1);
    assert_eq!(up.seen()[0].body, "0123456789abcdefghij");
}

#[tokio::test(start_paused = true)]
async fn concurrent_failures_do_not_retry_in_lockstep() {
    let up = Upstream::new([]);
    let calls = Arc::new(AtomicU32::new(0));
    let times = Arc::new(Mutex::new(Vec::new()));
    let (c2, t2) = (calls.clone(), times.clone());
    let s = ServiceBuilder::new()
        .layer(RetryLayer::new().max_retries(1))
        .service_fn(move |_req: Request<ReplayBody<Full<Bytes>>>| {
            let n = c2.fetch_add(1, Ordering::SeqCst);
            t2.lock().unwrap().push((n, Instant::now()));
            async move {
                let status = if n < 2 { 503 } else { 200 };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
            }
        });
    let start = Instant::now();
    let (a, b) = tokio::join!(s.clone().oneshot(post("a")), s.clone().oneshot(post("b")));
    assert_eq!(
        (a.unwrap().status().as_u16(), b.unwrap().status().as_u16()),
        (200, 200)
    );
    let t = times.lock().unwrap();
    assert_eq!(t.len(), 4);
    // The two retries happen at different instants (ties have probability ~0 at ns resolution).
    assert_ne!(t[2].1 - start, t[3].1 - start);
    drop(up);
}

/// Ready for the first call only; after that never ready again.
#[derive(Clone)]
struct ReadyOnce(Arc<AtomicU32>);

impl Service<Request<ReplayBody<Full<Bytes>>>> for ReadyOnce {
    type Response = Response<Full<Bytes>>;
    type Error = BoxError;
    type Future = std::future::Ready<Result<Self::Response, BoxError>>;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), BoxError>> {
        if self.0.load(Ordering::SeqCst) == 0 {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    }

    fn call(&mut self, _req: Request<ReplayBody<Full<Bytes>>>) -> Self::Future {
        self.0.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(Response::builder()
            .status(503)
            .body(Full::new(Bytes::new()))
            .unwrap()))
    }
}

#[tokio::test(start_paused = true)]
async fn deadline_covers_waiting_for_readiness() {
    let calls = Arc::new(AtomicU32::new(0));
    let start = Instant::now();
    let s = ServiceBuilder::new()
        .layer(RetryLayer::new().deadline(Duration::from_secs(5)))
        .service(ReadyOnce(calls.clone()));
    let err = s.oneshot(post("x")).await.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert!(err.is_deadline());
    assert_eq!(err.attempts(), 1);
    assert_eq!(
        err.api_error().unwrap().status(),
        Some(StatusCode::SERVICE_UNAVAILABLE)
    );
    assert_eq!(Instant::now() - start, Duration::from_secs(5));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
