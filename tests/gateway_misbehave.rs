//! A hyper server on 127.0.0.1 that misbehaves the ways real LLM upstreams do, and a real
//! hyper-util legacy client calling it.
//!
//! Each path is one misbehavior with its own attempt counter, so "fails first, then works"
//! scripts are deterministic:
//!
//! | path          | attempts 1..=3                                   | after that       |
//! |---------------|--------------------------------------------------|------------------|
//! | `/storm`      | `429` with `retry-after-ms: 100`, `retry-after: 1` | `200` JSON       |
//! | `/reset`      | connection closed before any response (1st only) | `200` JSON       |
//! | `/truncated`  | `200`, `content-length: 100`, 10 bytes, then closed | same           |
//! | `/sse-first`  | `200` stream whose first event is an error (1st only) | normal stream |
//! | `/sse-midway` | `200` stream: two deltas, then an error event     | same             |
//!
//! | `/sse-empty`  | `200` stream of keep-alive comments only (1st only) | normal stream  |
//! | `/close`      | connection closed cleanly before any response (1st only) | `200` JSON |
//!
//! `/reset` is served by its own listener, which reads the first request and then resets the
//! connection (`SO_LINGER` 0), as a crashed upstream or a load balancer does.
//!
//! The client is the stack a gateway uses:
//! `ServiceBuilder::new().layer(RetryLayer::new()).layer(SseErrorLayer::new()).service(client)`.
//! The tests run on tokio's paused clock (the retry sleeps cost no wall time and the server
//! stamps each attempt with tokio's clock, so "waited at least the hint" is exact); a
//! wall-clock thread ends the process if a test hangs.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{io::AsyncReadExt, time::Instant};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_llm_errors::{
    ApiError, BoxError, ErrorKind,
    error::HintSource,
    retry::{ReplayBody, RetryError, RetryInfo, RetryLayer},
    sse::SseErrorLayer,
};

const HANG_GUARD: Duration = Duration::from_secs(30);
const STORM_LENGTH: u32 = 3;
/// The `retry-after-ms` the storm sends (its `retry-after: 1` is the less precise fallback).
const STORM_HINT: Duration = Duration::from_millis(100);

type Body = BoxBody<Bytes, BoxError>;

/// Attempts seen per path, and the switch that cuts `/truncated` bodies.
#[derive(Clone, Default)]
struct Fixture {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    /// When each attempt arrived, per path (tokio's clock).
    stamps: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    /// `/truncated` sends its 10 bytes, then waits for this before failing, so the headers
    /// are surely out first.
    cut: Arc<tokio::sync::Notify>,
}

impl Fixture {
    fn next(&self, path: &str) -> u32 {
        let mut stamps = self.stamps.lock().unwrap();
        stamps
            .entry(path.to_owned())
            .or_default()
            .push(Instant::now());
        let mut map = self.attempts.lock().unwrap();
        let n = map.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n
    }

    /// The pauses between consecutive attempts on `path`.
    fn gaps(&self, path: &str) -> Vec<Duration> {
        let stamps = self.stamps.lock().unwrap();
        let v = stamps.get(path).cloned().unwrap_or_default();
        v.windows(2).map(|w| w[1] - w[0]).collect()
    }

    fn get(&self, path: &str) -> u32 {
        self.attempts
            .lock()
            .unwrap()
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn full(
    status: u16,
    headers: &[(&'static str, &'static str)],
    body: &'static str,
) -> Response<Body> {
    let mut res = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(BoxError::from)
            .boxed(),
    );
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        res.headers_mut().insert(*k, v.parse().unwrap());
    }
    res
}

/// A body that yields `chunks`, then, if `fail` is set, an error (hyper then cuts the
/// connection).
fn chunks(chunks: &[&'static str], fail: bool) -> Body {
    let mut frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    if fail {
        frames.push(Err("the upstream went away".into()));
    }
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

fn sse(body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    res.headers_mut()
        .insert(header::CONTENT_TYPE, "text/event-stream".parse().unwrap());
    res
}

const OK_JSON: &str = r#"{"id":"x","object":"chat.completion","choices":[]}"#;
const DELTA: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";
const IN_BAND: &str = "data: {\"error\":{\"message\":\"generation failed\",\"type\":\"server_error\",\"code\":\"internal_server_error\"}}\n\n";
const DONE: &str = "data: [DONE]\n\n";

async fn misbehave(fixture: Fixture, req: Request<Incoming>) -> Result<Response<Body>, BoxError> {
    let path = req.uri().path().to_owned();
    // Read the whole request first, as a real upstream would.
    req.into_body().collect().await?;
    let n = fixture.next(&path);
    Ok(match (path.as_str(), n) {
        ("/storm", n) if n <= STORM_LENGTH => full(
            429,
            &[("retry-after-ms", "100"), ("retry-after", "1")],
            r#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded","param":null}}"#,
        ),
        // An error from the service makes hyper close the connection without a response.
        ("/close", 1) => return Err("closed before the response".into()),
        ("/truncated", _) => {
            let cut = fixture.cut.clone();
            let first = futures_util::stream::once(async {
                Ok(Frame::data(Bytes::from_static(b"0123456789")))
            });
            let then_fail = futures_util::stream::once(async move {
                cut.notified().await;
                Err::<Frame<Bytes>, BoxError>("the upstream went away".into())
            });
            let body = StreamBody::new(futures_util::StreamExt::chain(first, then_fail)).boxed();
            let mut res = Response::new(body);
            res.headers_mut()
                .insert(header::CONTENT_LENGTH, "100".parse().unwrap());
            res
        }
        ("/sse-first", 1) => sse(chunks(&[IN_BAND], false)),
        ("/sse-first", _) => sse(chunks(&[DELTA, DELTA, DONE], false)),
        ("/sse-empty", 1) => sse(chunks(&[": keep-alive\n\n", ": keep-alive\n\n"], false)),
        ("/sse-empty", _) => sse(chunks(&[DELTA, DONE], false)),
        ("/sse-midway", _) => sse(chunks(&[DELTA, DELTA, IN_BAND], false)),
        _ => full(200, &[("content-type", "application/json")], OK_JSON),
    })
}

/// The servers: the misbehaving one and the resetting one.
struct Servers {
    addr: SocketAddr,
    reset: SocketAddr,
    fixture: Fixture,
}

fn serve(stream: tokio::net::TcpStream, fixture: Fixture) {
    tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| misbehave(fixture.clone(), req));
        // Connection errors are the point of some paths: ignore them.
        let _ = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .await;
    });
}

/// Starts the servers; the fixture holds their attempt counters.
async fn start() -> Servers {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = Fixture::default();
    let counters = fixture.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            serve(stream, counters.clone());
        }
    });

    // The first connection is reset once its request has arrived; the others are served.
    let resetter = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset = resetter.local_addr().unwrap();
    let counters = fixture.clone();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut stream, _)) = resetter.accept().await {
            if !std::mem::take(&mut first) {
                serve(stream, counters.clone());
                continue;
            }
            counters.next("/reset");
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = stream.set_zero_linger();
            drop(stream); // RST, no response
        }
    });
    Servers {
        addr,
        reset,
        fixture,
    }
}

/// Waits recorded by the retry layer's `on_retry` hook: delay and hint source.
type Waits = Arc<Mutex<Vec<(Duration, Option<HintSource>)>>>;

type Stack = tower::util::BoxService<Request<Full<Bytes>>, Response<Body>, BoxError>;

/// The client stack: retry over SSE inspection over a real hyper-util client.
fn stack(retry: RetryLayer) -> (Stack, Waits) {
    let waits = Waits::default();
    let record = waits.clone();
    let retry = retry.on_retry(move |info: &RetryInfo<'_>| {
        record
            .lock()
            .unwrap()
            .push((info.delay(), info.hint_source()));
    });
    let client: Client<HttpConnector, ReplayBody<Full<Bytes>>> =
        Client::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(BodyExt::boxed))
        .layer(retry)
        .layer(SseErrorLayer::new())
        .service(client);
    (tower::util::BoxService::new(svc), waits)
}

/// The demo gateway's retry settings, with small delays.
fn fast() -> RetryLayer {
    RetryLayer::new()
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(400))
}

/// A wall-clock bound on a test that runs on tokio's paused clock (where a tokio timeout would
/// fire as soon as the runtime waits on a socket): ends the process if the test hangs.
fn hang_guard() -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(HANG_GUARD) {
            eprintln!("a misbehave test hung for {HANG_GUARD:?}");
            std::process::exit(101);
        }
    });
    done
}

fn post(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[]}"#,
        )))
        .unwrap()
}

async fn call(svc: &mut Stack, req: Request<Full<Bytes>>) -> Result<Response<Body>, BoxError> {
    svc.ready().await?.call(req).await
}

/// Reads a body to its end: the bytes that arrived, then the error that ended it, if any.
async fn drain(mut body: Body) -> (Vec<u8>, Option<BoxError>) {
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Some(data) = frame.data_ref() {
                    seen.extend_from_slice(data);
                }
            }
            Err(e) => return (seen, Some(e)),
        }
    }
    (seen, None)
}

/// A storm of `STORM_LENGTH` 429s with hints: with enough retries it clears; with fewer, the
/// caller gets the last 429 as it came. Every pause is at least the hint.
#[tokio::test(start_paused = true)]
async fn a_429_storm_is_retried_after_its_hints() {
    let _done = hang_guard();
    // (max retries, final status, attempts)
    for (retries, status, attempts) in [
        (STORM_LENGTH, StatusCode::OK, STORM_LENGTH + 1),
        (
            STORM_LENGTH - 1,
            StatusCode::TOO_MANY_REQUESTS,
            STORM_LENGTH,
        ),
    ] {
        let servers = start().await;
        let (mut svc, waits) = stack(fast().max_retries(retries));
        let res = call(&mut svc, post(servers.addr, "/storm")).await.unwrap();
        assert_eq!(res.status(), status, "max_retries({retries})");
        let (parts, body) = res.into_parts();
        let (body, err) = drain(body).await;
        assert!(err.is_none());
        if status == StatusCode::TOO_MANY_REQUESTS {
            // The caller gets the error response whole, and can read the hint itself.
            let api = ApiError::from_response(parts.status, &parts.headers, &body).unwrap();
            assert_eq!(api.kind(), ErrorKind::RateLimited);
            assert_eq!(api.retry_after(), Some(STORM_HINT));
        }
        assert_eq!(servers.fixture.get("/storm"), attempts);
        let waits = waits.lock().unwrap().clone();
        assert_eq!(waits.len() as u32, attempts - 1);
        for (delay, source) in &waits {
            assert_eq!(*source, Some(HintSource::RetryAfterMs));
            assert!(*delay >= STORM_HINT, "waited {delay:?}");
        }
        for gap in servers.fixture.gaps("/storm") {
            assert!(gap >= STORM_HINT, "the server saw a retry after {gap:?}");
        }
    }
}

/// A connection reset before any response is retried (by the built-in rule).
#[tokio::test(start_paused = true)]
async fn a_reset_before_the_response_is_retried() {
    let _done = hang_guard();
    let servers = start().await;
    let (mut svc, waits) = stack(fast());
    let res = call(&mut svc, post(servers.reset, "/reset")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(drain(res.into_body()).await.0, OK_JSON.as_bytes());
    // The reset attempt, then the one served.
    assert_eq!(servers.fixture.get("/reset"), 2);
    assert_eq!(waits.lock().unwrap().len(), 1);
    assert_eq!(waits.lock().unwrap()[0].1, None, "backoff, no hint");
}

/// A connection closed cleanly before any response is, in hyper, an "incomplete message" with
/// no `io::Error` inside: not retried by default (the crate does not depend on hyper), retried
/// once the caller opts in with `retry_if`, as the retry layer's docs describe.
#[tokio::test(start_paused = true)]
async fn a_clean_close_before_the_response_is_retried_on_opt_in() {
    let _done = hang_guard();
    let servers = start().await;
    let (mut svc, _) = stack(fast());
    let err = call(&mut svc, post(servers.addr, "/close"))
        .await
        .unwrap_err();
    let retry = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert_eq!(retry.attempts(), 1);
    assert!(retry.is_transport());
    assert_eq!(servers.fixture.get("/close"), 1);

    let servers = start().await;
    let opt_in = fast().retry_if(|outcome| {
        let mut cur = outcome.transport_error();
        while let Some(e) = cur {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_incomplete_message)
            {
                return Some(true);
            }
            cur = e.source();
        }
        None
    });
    let (mut svc, _) = stack(opt_in);
    let res = call(&mut svc, post(servers.addr, "/close")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(servers.fixture.get("/close"), 2);
}

/// A `200` whose body is cut after 10 of 100 bytes: the bytes reach the caller, then a typed
/// error (hyper's), and the request is not sent again: the caller has already seen data.
#[tokio::test(start_paused = true)]
async fn a_truncated_body_is_a_typed_error_and_not_retried() {
    let _done = hang_guard();
    let servers = start().await;
    let (mut svc, waits) = stack(fast());
    let res = call(&mut svc, post(servers.addr, "/truncated"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_LENGTH], "100");
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from_static(b"0123456789"));
    servers.fixture.cut.notify_one();
    let (rest, err) = drain(body).await;
    assert!(rest.is_empty());
    let err = err.expect("10 of 100 bytes, then closed");
    let hyper_err = err
        .downcast_ref::<hyper::Error>()
        .unwrap_or_else(|| panic!("a hyper error: {err:?}"));
    // hyper reports the short body as an unexpected end of file.
    let io = std::error::Error::source(hyper_err)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("an io::Error inside: {hyper_err:?}"));
    assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(servers.fixture.get("/truncated"), 1);
    assert!(waits.lock().unwrap().is_empty());
}

/// The data events of an SSE text.
fn data_events(text: &[u8]) -> Vec<String> {
    String::from_utf8(text.to_vec())
        .unwrap()
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// An error event after the stream started: every byte up to it reaches the caller, then the
/// body ends with an `Err` that downcasts to the in-band `ApiError`; nothing is retried.
#[tokio::test(start_paused = true)]
async fn an_sse_error_midway_is_a_typed_body_error() {
    let _done = hang_guard();
    let servers = start().await;
    let (mut svc, waits) = stack(fast());
    let res = call(&mut svc, post(servers.addr, "/sse-midway"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (seen, err) = drain(res.into_body()).await;
    assert_eq!(seen, [DELTA, DELTA, IN_BAND].concat().as_bytes());
    let err = err.expect("the in-band error ends the body");
    let api = err.downcast_ref::<ApiError>().expect("an ApiError");
    assert_eq!(api.kind(), ErrorKind::ServerError);
    assert_eq!(api.code(), Some("internal_server_error"));
    assert_eq!(servers.fixture.get("/sse-midway"), 1);
    assert!(waits.lock().unwrap().is_empty());
}

/// A stream whose first event is an error.
#[tokio::test(start_paused = true)]
async fn an_sse_error_first() {
    let _done = hang_guard();
    let servers = start().await;
    let (mut svc, _) = stack(fast());
    let res = call(&mut svc, post(servers.addr, "/sse-first"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (seen, err) = drain(res.into_body()).await;
    // The caller has seen nothing when the first event turns out to be an error, so the
    // attempt is retried and the caller reads only the clean stream of the second.
    assert!(err.is_none(), "{err:?}");
    assert_eq!(seen, [DELTA, DELTA, DONE].concat().as_bytes());
    assert_eq!(servers.fixture.get("/sse-first"), 2);
}

/// A stream of keep-alive comments that ends without an event.
#[tokio::test(start_paused = true)]
async fn an_sse_stream_with_no_event() {
    let _done = hang_guard();
    let servers = start().await;
    let (mut svc, _) = stack(fast());
    let res = call(&mut svc, post(servers.addr, "/sse-empty"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let (seen, err) = drain(res.into_body()).await;
    // No content was generated: the empty stream is retried and the caller reads the second
    // attempt's stream.
    assert!(err.is_none(), "{err:?}");
    assert_eq!(seen, [DELTA, DONE].concat().as_bytes());
    assert_eq!(servers.fixture.get("/sse-empty"), 2);
}

/// The in-band error object the fixture sends, as `ApiError::from_response` reads it (the
/// fixture's own sanity check: the tests above rely on it being an error).
#[test]
fn the_fixture_error_event_is_an_error() {
    let data = IN_BAND.trim_end().strip_prefix("data: ").unwrap();
    let api = ApiError::from_response(StatusCode::OK, &HeaderMap::new(), data.as_bytes()).unwrap();
    assert_eq!(api.kind(), ErrorKind::ServerError);
    assert!(data_events(DELTA.as_bytes()).iter().all(|d| {
        ApiError::from_response(StatusCode::OK, &HeaderMap::new(), d.as_bytes()).is_none()
    }));
}
