//! The gateway example's parts, run for real on 127.0.0.1: the flaky upstream, the gateway and
//! the burst (with no pause between stream events, so it is fast).

#![allow(dead_code)] // the example's modules carry items only its `main` uses

#[path = "../examples/gateway/args.rs"]
mod args;
#[path = "../examples/gateway/burst.rs"]
mod burst;
#[path = "../examples/gateway/journal.rs"]
mod journal;
#[path = "../examples/gateway/proxy.rs"]
mod proxy;
#[path = "../examples/gateway/upstream.rs"]
mod upstream;

use axum::{Router, body::Body, routing::post};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{net::SocketAddr, str::FromStr, time::Duration};
use tower_llm_errors::{ApiError, Dialect, ErrorKind};

/// A bound on every test, so a hang fails instead of stalling CI. Not a timed assertion.
const HANG_GUARD: Duration = Duration::from_secs(20);

async fn start_demo() -> (SocketAddr, upstream::Upstream, journal::Journal) {
    let upstream = upstream::Upstream::new(Duration::ZERO);
    let (upstream_addr, _) = proxy::spawn_local(upstream.router()).await.unwrap();
    let journal = journal::Journal::default();
    let gateway = proxy::Gateway::new(&format!("http://{upstream_addr}"), Dialect::OpenAi)
        .unwrap()
        .journal(journal.clone());
    let (gateway_addr, _) = proxy::spawn_local(proxy::router(gateway)).await.unwrap();
    (gateway_addr, upstream, journal)
}

/// What each scenario gives through the gateway, with the retry and SSE layers around its
/// client and the server layers around its router.
struct Want {
    scenario: &'static str,
    /// Requests the upstream saw.
    attempts: u32,
    /// Why the gateway waited before each retry, in order.
    why: &'static [&'static str],
    /// The start of the outcome the client reports.
    outcome: &'static str,
    /// Error events the client saw inside a `200` stream.
    in_band: u32,
}

macro_rules! want {
    ($($scenario:literal: $attempts:literal, [$($why:literal),*], $outcome:literal, $in_band:literal;)*) => {
        &[$(Want {
            scenario: $scenario,
            attempts: $attempts,
            why: &[$($why),*],
            outcome: $outcome,
            in_band: $in_band,
        }),*]
    };
}

/// Retryable failures are retried after the server's hint (a floor) or after backoff; the rest
/// reach the client in the gateway's dialect (OpenAI here), with their kind and code intact. A
/// stream that fails after its first event is not retried: the client gets the events before
/// the upstream's error event, then one error event, the gateway's own, in the dialect.
#[rustfmt::skip]
const EXPECTED: &[Want] = want! {
    "ok-json":             1, [],                           "200 answer", 0;
    "ok-stream":           1, [],                           "200 stream, 6 deltas, [DONE]", 0;
    "429-retry-after-ms":  2, ["hint retry_after_ms"],      "200 answer", 0;
    "429-retry-after-1s":  2, ["hint retry_after_seconds"], "200 stream, 6 deltas, [DONE]", 0;
    "503-overloaded":      2, ["backoff"],                  "200 stream, 6 deltas, [DONE]", 0;
    "500-twice":           3, ["backoff", "backoff"],       "200 answer", 0;
    "500-always":          3, ["backoff", "backoff"],       "500 server_error (internal_server_error)", 0;
    "402-out-of-funds":    1, [],                           "402 insufficient_funds (not_enough_funds)", 0;
    "429-quota":           1, [],                           "429 quota_exceeded (insufficient_quota)", 0;
    // The first event is an error: the caller has seen nothing, so the attempt is retried.
    "sse-error-first":     2, ["backoff"],                  "200 stream, 6 deltas, [DONE]", 0;
    "sse-error-midway":    1, [],                           "200 stream, 3 deltas, then in-band server_error", 1;
    // Keep-alives only, then the end: no content was generated, so the attempt is retried.
    "sse-keep-alive-only": 2, ["backoff"],                  "200 stream, 6 deltas, [DONE]", 0;
};

/// The hints the upstream sends (see `upstream.rs`): the gateway never retries sooner.
fn hint_floor(why: &str) -> Duration {
    match why {
        "hint retry_after_ms" => Duration::from_millis(200),
        "hint retry_after_seconds" => Duration::from_secs(1),
        _ => Duration::ZERO,
    }
}

/// Backoff never waits longer than the demo's cap (400 ms); a hinted wait at most the cap above
/// its hint.
const DEMO_MAX_DELAY: Duration = Duration::from_millis(400);

/// A wall-clock bound on a test that runs on tokio's paused clock (where a tokio timeout would
/// fire as soon as the runtime waits on a socket): ends the process if the test hangs.
fn hang_guard() -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(HANG_GUARD) {
            eprintln!("a gateway test hung for {HANG_GUARD:?}");
            std::process::exit(101);
        }
    });
    done
}

/// On tokio's paused clock: the retry layer's sleeps cost no wall time, and the waits the
/// journal records are exactly the ones the layer chose.
#[tokio::test(start_paused = true)]
async fn every_scenario_through_the_gateway() {
    let _done = hang_guard();
    let (gateway, upstream, journal) = start_demo().await;
    let rows = burst::run(gateway, &upstream, &journal, false).await;
    assert_eq!(rows.len(), burst::plan().len(), "one row per request");

    for s in upstream::SCENARIOS {
        assert!(
            EXPECTED.iter().any(|w| w.scenario == s.name),
            "scenario {} has no expectation",
            s.name
        );
    }
    for row in &rows {
        let scenario = row.id.split('#').next().unwrap_or_default();
        let want = EXPECTED
            .iter()
            .find(|w| w.scenario == scenario)
            .unwrap_or_else(|| panic!("unexpected row {}", row.id));
        assert_eq!(row.attempts, want.attempts, "{}: attempts", row.id);
        let why: Vec<&str> = row.waits.iter().map(|w| w.why.as_str()).collect();
        assert_eq!(why, want.why, "{}: why it waited", row.id);
        for wait in &row.waits {
            let floor = hint_floor(&wait.why);
            assert!(
                wait.delay >= floor && wait.delay <= floor + DEMO_MAX_DELAY,
                "{}: waited {:?} for {}",
                row.id,
                wait.delay,
                wait.why
            );
        }
        assert!(
            row.outcome.starts_with(want.outcome),
            "{}: outcome {:?} should start with {:?}",
            row.id,
            row.outcome,
            want.outcome
        );
        assert_eq!(row.in_band, want.in_band, "{}: in-band errors", row.id);
    }
}

/// Every dialect: the errors the gateway gives up on reach the client rendered in it, and they
/// read back as the same kind; a stream that fails half-way ends with the dialect's event.
#[tokio::test(start_paused = true)]
async fn errors_leave_in_the_chosen_dialect() {
    let _done = hang_guard();
    let upstream = upstream::Upstream::new(Duration::ZERO);
    let (upstream_addr, _) = proxy::spawn_local(upstream.router()).await.unwrap();
    for dialect in Dialect::ALL {
        let gateway = proxy::Gateway::new(&format!("http://{upstream_addr}"), dialect).unwrap();
        let (gateway, _) = proxy::spawn_local(proxy::router(gateway)).await.unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let send = |scenario: &'static str, stream: bool| {
            let req = Request::post(format!("http://{gateway}/v1/chat/completions"))
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, "Bearer sk-dialect-test-key")
                .header(upstream::SCENARIO_HEADER, scenario)
                .header(upstream::ID_HEADER, format!("{scenario}#{dialect}"))
                .body(Full::new(Bytes::from(format!(
                    r#"{{"model":"m","stream":{stream},"messages":[]}}"#
                ))))
                .unwrap();
            let client = client.clone();
            async move {
                let res = client.request(req).await.unwrap();
                let (parts, body) = res.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                http::Response::from_parts(parts, body)
            }
        };

        for (scenario, kind) in [
            ("402-out-of-funds", ErrorKind::InsufficientFunds),
            ("429-quota", ErrorKind::QuotaExceeded),
            ("500-always", ErrorKind::ServerError),
        ] {
            let res = send(scenario, false).await;
            let expected = ApiError::new(kind, "x").render(dialect);
            assert!(res.status().as_u16() >= 400, "{dialect} {scenario}");
            let err = ApiError::from_response(res.status(), res.headers(), res.body())
                .unwrap_or_else(|| panic!("{dialect} {scenario}: not an error body"));
            assert_eq!(err.kind(), kind, "{dialect} {scenario}: {:?}", res.body());
            // The body has the dialect's shape: its top-level keys are those of our renderer.
            let keys = |b: &[u8]| -> Vec<String> {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
                k.sort();
                k
            };
            assert_eq!(
                keys(res.body()),
                keys(expected.body()),
                "{dialect} {scenario}"
            );
            assert!(!String::from_utf8_lossy(res.body()).contains("sk-dialect-test-key"));
        }

        let res = send("sse-error-midway", true).await;
        assert_eq!(res.status(), StatusCode::OK);
        let text = String::from_utf8(res.body().to_vec()).unwrap();
        let last = text.trim_end().rsplit("\n\n").next().unwrap();
        let event = tower_llm_errors::server::error_event(
            &ApiError::new(ErrorKind::ServerError, "x"),
            dialect,
        );
        let event = String::from_utf8(event.to_vec()).unwrap();
        // Same event kind line (Anthropic's `event: error`) or none, and a parsable error.
        assert_eq!(
            last.starts_with("event: error"),
            event.starts_with("event: error"),
            "{dialect}: {last}"
        );
        let data = last.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        let err = ApiError::from_response(StatusCode::OK, &http::HeaderMap::new(), data.as_bytes())
            .unwrap_or_else(|| panic!("{dialect}: the last event is not an error: {last}"));
        assert_eq!(err.kind(), ErrorKind::ServerError, "{dialect}: {last}");
    }
}

/// POSTs a chat request to the gateway, with or without an API key.
async fn post_chat(gateway: SocketAddr, key: Option<&str>) -> http::Response<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::post(format!("http://{gateway}/v1/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    // Counted by the demo upstream under this id.
    let id = if key.is_some() {
        "with-key"
    } else {
        "without-key"
    };
    req = req.header(upstream::ID_HEADER, id);
    let req = req
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[]}"#,
        )))
        .unwrap();
    let res = client.request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    http::Response::from_parts(parts, body)
}

#[tokio::test]
async fn the_api_key_and_upstream_headers_pass_through() {
    tokio::time::timeout(HANG_GUARD, async {
        let (gateway, upstream, _) = start_demo().await;

        let with_key = post_chat(gateway, Some("sk-test")).await;
        assert_eq!(with_key.status(), StatusCode::OK);
        assert!(with_key.headers().contains_key("x-request-id"));

        // No key: the gateway's guard answers `401 missing_api_key` itself, in its dialect,
        // without calling the upstream. (That the upstream got the key above is proven by its
        // 200: it answers 401 `invalid_api_key` to a request without one.)
        let without_key = post_chat(gateway, None).await;
        assert_eq!(without_key.status(), StatusCode::UNAUTHORIZED);
        let err = ApiError::from_response(
            without_key.status(),
            without_key.headers(),
            without_key.body(),
        )
        .unwrap();
        assert_eq!(err.code(), Some("missing_api_key"));
        assert_eq!(upstream.attempts("with-key"), 1);
        assert_eq!(upstream.attempts("without-key"), 0);
    })
    .await
    .expect("finished");
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_rendered_502() {
    tokio::time::timeout(HANG_GUARD, async {
        // A port that was just free: nothing listens there.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let gateway = proxy::Gateway::new(&format!("http://{addr}"), Dialect::OpenAi).unwrap();
        let (gateway, _) = proxy::spawn_local(proxy::router(gateway)).await.unwrap();

        let res = post_chat(gateway, Some("sk-test")).await;
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let err = ApiError::from_response(res.status(), res.headers(), res.body()).unwrap();
        assert_eq!(err.kind(), ErrorKind::BadGateway);
        assert!(!String::from_utf8_lossy(res.body()).contains("sk-test"));
    })
    .await
    .expect("finished");
}

/// The gateway streams: the client reads the first event while the upstream is still holding
/// the rest back (it waits for the test to say go, which the test only does after the client
/// got the first event through the gateway). A buffering proxy would never deliver it.
#[tokio::test]
async fn the_response_body_streams_through() {
    tokio::time::timeout(HANG_GUARD, async {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let go_rx = std::sync::Mutex::new(Some(go_rx));
        let first = Bytes::from_static(b"data: {\"n\":1}\n\n");
        let rest = Bytes::from_static(b"data: [DONE]\n\n");
        let gate = std::sync::Arc::new(go_rx);
        let held = Router::new().route(
            "/v1/chat/completions",
            post(move || {
                let gate = gate.clone();
                let (first, rest) = (first.clone(), rest.clone());
                async move {
                    let go = gate.lock().unwrap().take();
                    let stream =
                        futures_util::stream::once(async move { Ok::<_, std::io::Error>(first) })
                            .chain(futures_util::stream::once(async move {
                                if let Some(go) = go {
                                    let _ = go.await;
                                }
                                Ok(rest)
                            }));
                    http::Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .body(Body::from_stream(stream))
                        .unwrap()
                }
            }),
        );
        let (upstream, _) = proxy::spawn_local(held).await.unwrap();
        let gateway = proxy::Gateway::new(&format!("http://{upstream}"), Dialect::OpenAi).unwrap();
        let (gateway, _) = proxy::spawn_local(proxy::router(gateway)).await.unwrap();

        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let req = Request::post(format!("http://{gateway}/v1/chat/completions"))
            .header(header::AUTHORIZATION, "Bearer sk-test")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let mut body = client.request(req).await.unwrap().into_body();
        let mut seen = Vec::new();
        while !seen.ends_with(b"\n\n") {
            let frame = body.frame().await.expect("a frame").unwrap();
            seen.extend_from_slice(frame.data_ref().expect("data"));
        }
        assert_eq!(seen, b"data: {\"n\":1}\n\n");
        go_tx.send(()).unwrap();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(rest, Bytes::from_static(b"data: [DONE]\n\n"));
    })
    .await
    .expect("finished");
}

/// The gateway streams the request body too: the upstream gets the first chunk while the
/// client still holds the second back (it sends it only once the upstream reported the first).
#[tokio::test]
async fn the_request_body_streams_through() {
    tokio::time::timeout(HANG_GUARD, async {
        let (first_tx, first_rx) = tokio::sync::oneshot::channel::<Bytes>();
        let first_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(first_tx)));
        let echo = Router::new().route(
            "/v1/chat/completions",
            post(move |mut body: Body| async move {
                let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
                if let Some(tx) = first_tx.lock().unwrap().take() {
                    let _ = tx.send(first.clone());
                }
                let rest = body.collect().await.unwrap().to_bytes();
                format!(
                    "{}|{}",
                    String::from_utf8_lossy(&first),
                    String::from_utf8_lossy(&rest)
                )
            }),
        );
        let (upstream, _) = proxy::spawn_local(echo).await.unwrap();
        let gateway = proxy::Gateway::new(&format!("http://{upstream}"), Dialect::OpenAi).unwrap();
        let (gateway, _) = proxy::spawn_local(proxy::router(gateway)).await.unwrap();

        let (chunks, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let frames = futures_util::stream::unfold(rx, |mut rx| async move {
            let chunk = rx.recv().await?;
            Some((
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk)),
                rx,
            ))
        });
        let req = Request::post(format!("http://{gateway}/v1/chat/completions"))
            .header(header::AUTHORIZATION, "Bearer sk-test")
            .body(http_body_util::StreamBody::new(Box::pin(frames)))
            .unwrap();
        let client = Client::builder(TokioExecutor::new()).build_http();
        let call = tokio::spawn(async move { client.request(req).await });

        chunks.send(Bytes::from_static(b"hello ")).await.unwrap();
        assert_eq!(first_rx.await.unwrap(), Bytes::from_static(b"hello "));
        chunks.send(Bytes::from_static(b"world")).await.unwrap();
        drop(chunks);
        let res = call.await.unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let echoed = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echoed, Bytes::from_static(b"hello |world"));
    })
    .await
    .expect("finished");
}

#[test]
fn command_line() {
    use args::{Mode, parse_args};
    let parse = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));

    assert!(matches!(
        parse(&[]),
        Ok(Mode::Demo {
            dialect: Dialect::OpenAi
        })
    ));
    for d in Dialect::ALL {
        let name = d.to_string().to_uppercase();
        match parse(&["--dialect", &name]) {
            Ok(Mode::Demo { dialect }) => {
                assert_eq!(dialect, Dialect::from_str(d.as_str()).unwrap())
            }
            other => panic!("--dialect {name}: {other:?}"),
        }
    }
    assert!(matches!(parse(&["--help"]), Ok(Mode::Help)));
    assert!(matches!(parse(&["-h"]), Ok(Mode::Help)));
    for bad in [
        &["--dialect", "klingon"][..],
        &["--dialect"],
        &["--listen", "127.0.0.1:1"],
        &["--upstream", "http://x", "--listen", "not an address"],
        &["--bogus"],
        &["--load", "0"],
        &["--load", "many"],
        &["--load", "10", "--upstream", "http://x"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should be rejected");
    }
    match parse(&[
        "--upstream",
        "http://127.0.0.1:9",
        "--listen",
        "127.0.0.1:7000",
    ]) {
        Ok(Mode::Front {
            upstream, listen, ..
        }) => {
            assert_eq!(upstream, "http://127.0.0.1:9");
            assert_eq!(listen.port(), 7000);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn a_base_path_in_the_upstream_url_is_kept() {
    tokio::time::timeout(HANG_GUARD, async {
        let api = Router::new().route("/api/v1/chat/completions", post(|| async { "under /api" }));
        let (upstream, _) = proxy::spawn_local(api).await.unwrap();
        let gateway =
            proxy::Gateway::new(&format!("http://{upstream}/api/"), Dialect::OpenAi).unwrap();
        let (gateway, _) = proxy::spawn_local(proxy::router(gateway)).await.unwrap();
        let res = post_chat(gateway, Some("sk-test")).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.body(), &Bytes::from_static(b"under /api"));
    })
    .await
    .expect("finished");
}

#[test]
fn upstream_urls() {
    assert!(proxy::Gateway::new("http://127.0.0.1:11434", Dialect::OpenAi).is_ok());
    assert!(proxy::Gateway::new("http://localhost:8000/base/", Dialect::OpenAi).is_ok());
    for bad in [
        "https://api.example.com",
        "ftp://x",
        "not a url",
        "/just/a/path",
    ] {
        assert!(proxy::Gateway::new(bad, Dialect::OpenAi).is_err(), "{bad}");
    }
}
