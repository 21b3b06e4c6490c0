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
//! LAYERS: today the client is bare and the tests pin down what each misbehavior looks like
//! from a plain client (the raw material the layers must handle). Once the retry and SSE layers
//! land, the same fixture takes
//! `ServiceBuilder::new().layer(RetryLayer::new()).layer(SseErrorLayer::new()).service(client)`
//! with the expectations of DESIGN.md: the storm is retried after the hints, the reset is
//! retried, the truncated body and the mid-stream error end the body with an `Err`, and the
//! first-event error is retried.

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::{
    client::legacy::Client,
    rt::{TokioExecutor, TokioIo},
};
use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower_llm_errors::{ApiError, BoxError, ErrorKind};

const HANG_GUARD: Duration = Duration::from_secs(20);
const STORM_LENGTH: u32 = 3;

type Body = BoxBody<Bytes, BoxError>;

/// Attempts seen per path, and the switch that cuts `/truncated` bodies.
#[derive(Clone, Default)]
struct Fixture {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    /// `/truncated` sends its 10 bytes, then waits for this before failing, so the headers
    /// are surely out first.
    cut: Arc<tokio::sync::Notify>,
}

impl Fixture {
    fn next(&self, path: &str) -> u32 {
        let mut map = self.attempts.lock().unwrap();
        let n = map.entry(path.to_owned()).or_insert(0);
        *n += 1;
        *n
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
        ("/reset", 1) => return Err("reset before the response".into()),
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
        ("/sse-midway", _) => sse(chunks(&[DELTA, DELTA, IN_BAND], false)),
        _ => full(200, &[("content-type", "application/json")], OK_JSON),
    })
}

/// Starts the misbehaving server; returns its address and its attempt counters.
async fn start() -> (SocketAddr, Fixture) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fixture = Fixture::default();
    let counters = fixture.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let counters = counters.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| misbehave(counters.clone(), req));
                // Connection errors are the point of some paths: ignore them.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, fixture)
}

fn client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn post(addr: SocketAddr, path: &str) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}{path}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[]}"#,
        )))
        .unwrap()
}

/// The data events of an SSE body, and whether it ended cleanly.
async fn events(body: Incoming) -> (Vec<String>, bool) {
    match body.collect().await {
        Ok(all) => {
            let text = String::from_utf8(all.to_bytes().to_vec()).unwrap();
            let data = text
                .split("\n\n")
                .filter_map(|e| e.strip_prefix("data: "))
                .map(str::to_owned)
                .collect();
            (data, true)
        }
        Err(_) => (Vec::new(), false),
    }
}

async fn guarded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(HANG_GUARD, f).await.expect("finished");
}

#[tokio::test]
async fn a_429_storm_carries_hints_then_clears() {
    guarded(async {
        let (addr, fixture) = start().await;
        let client = client();
        for _ in 0..STORM_LENGTH {
            let res = client.request(post(addr, "/storm")).await.unwrap();
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            let err = ApiError::from_response(parts.status, &parts.headers, &body).unwrap();
            assert_eq!(err.kind(), ErrorKind::RateLimited);
            assert!(err.is_retryable());
            assert_eq!(err.retry_after(), Some(Duration::from_millis(100)));
        }
        let res = client.request(post(addr, "/storm")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(fixture.get("/storm"), STORM_LENGTH + 1);
    })
    .await;
}

#[tokio::test]
async fn a_reset_before_the_response_is_a_client_error_then_clears() {
    guarded(async {
        let (addr, fixture) = start().await;
        let client = client();
        let err = client.request(post(addr, "/reset")).await.unwrap_err();
        assert!(
            !err.is_connect(),
            "the connection was made, then closed: {err:?}"
        );
        let res = client.request(post(addr, "/reset")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(fixture.get("/reset"), 2);
    })
    .await;
}

#[tokio::test]
async fn a_truncated_body_fails_after_the_headers() {
    guarded(async {
        let (addr, fixture) = start().await;
        let res = client().request(post(addr, "/truncated")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "100");
        fixture.cut.notify_one();
        assert!(
            res.into_body().collect().await.is_err(),
            "10 of 100 bytes, then closed"
        );
    })
    .await;
}

#[tokio::test]
async fn sse_errors_arrive_inside_a_200() {
    guarded(async {
        let (addr, fixture) = start().await;
        let client = client();
        let in_band = |data: &str| {
            ApiError::from_response(StatusCode::OK, &HeaderMap::new(), data.as_bytes())
        };

        // First event an error, then a clean stream on the next attempt.
        let res = client.request(post(addr, "/sse-first")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let (data, clean) = events(res.into_body()).await;
        assert!(clean);
        assert_eq!(data.len(), 1);
        assert!(
            in_band(&data[0]).is_some(),
            "the first event is an error: {data:?}"
        );
        let res = client.request(post(addr, "/sse-first")).await.unwrap();
        let (data, _) = events(res.into_body()).await;
        assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
        assert!(data.iter().all(|d| in_band(d).is_none()));
        assert_eq!(fixture.get("/sse-first"), 2);

        // Two deltas, then an error, every time.
        let res = client.request(post(addr, "/sse-midway")).await.unwrap();
        let (data, _) = events(res.into_body()).await;
        let errors: Vec<bool> = data.iter().map(|d| in_band(d).is_some()).collect();
        assert_eq!(errors, [false, false, true]);
    })
    .await;
}
