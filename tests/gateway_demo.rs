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

/// What each scenario gives through the gateway: (scenario, upstream attempts, start of the
/// outcome, in-band errors the client saw).
///
/// The gateway is a plain pass-through for now, so every request reaches the upstream once
/// and the client sees each failure as the upstream sent it. When the retry and SSE layers are
/// wired in, the retryable rows change to several attempts and a clean answer.
const EXPECTED: &[(&str, u32, &str, u32)] = &[
    ("ok-json", 1, "200 answer", 0),
    ("ok-stream", 1, "200 stream, 6 deltas, [DONE]", 0),
    ("429-retry-after-ms", 1, "429 ", 0),
    ("429-retry-after-1s", 1, "429 ", 0),
    ("503-overloaded", 1, "503 ", 0),
    ("500-twice", 1, "500 ", 0),
    ("500-always", 1, "500 ", 0),
    (
        "402-out-of-funds",
        1,
        "402 insufficient_funds (not_enough_funds)",
        0,
    ),
    ("429-quota", 1, "429 ", 0),
    ("sse-error-first", 1, "200 stream, in-band ", 1),
    (
        "sse-error-midway",
        1,
        "200 stream, 3 deltas, then in-band ",
        1,
    ),
    ("sse-keep-alive-only", 1, "200 stream, no events", 0),
];

#[tokio::test]
async fn every_scenario_through_the_gateway() {
    tokio::time::timeout(HANG_GUARD, async {
        let (gateway, upstream, journal) = start_demo().await;
        let rows = burst::run(gateway, &upstream, &journal, false).await;
        assert_eq!(rows.len(), burst::plan().len(), "one row per request");

        for s in upstream::SCENARIOS {
            assert!(
                EXPECTED.iter().any(|(name, ..)| *name == s.name),
                "scenario {} has no expectation",
                s.name
            );
        }
        for row in &rows {
            let scenario = row.id.split('#').next().unwrap_or_default();
            let (_, attempts, outcome, in_band) = EXPECTED
                .iter()
                .find(|(name, ..)| *name == scenario)
                .unwrap_or_else(|| panic!("unexpected row {}", row.id));
            assert_eq!(row.attempts, *attempts, "{}: attempts", row.id);
            assert!(
                row.outcome.starts_with(outcome),
                "{}: outcome {:?} should start with {outcome:?}",
                row.id,
                row.outcome
            );
            assert_eq!(row.in_band, *in_band, "{}: in-band errors", row.id);
        }
    })
    .await
    .expect("the burst finished");
}

/// POSTs a chat request to the gateway, with or without an API key.
async fn post_chat(gateway: SocketAddr, key: Option<&str>) -> http::Response<Bytes> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::post(format!("http://{gateway}/v1/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(key) = key {
        req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
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
        let (gateway, ..) = start_demo().await;

        let with_key = post_chat(gateway, Some("sk-test")).await;
        assert_eq!(with_key.status(), StatusCode::OK);
        assert!(with_key.headers().contains_key("x-request-id"));

        // The upstream answers 401 when no key arrives: proof that the gateway forwards the key
        // rather than the upstream ignoring it.
        let without_key = post_chat(gateway, None).await;
        assert_eq!(without_key.status(), StatusCode::UNAUTHORIZED);
        let err = ApiError::from_response(
            without_key.status(),
            without_key.headers(),
            without_key.body(),
        )
        .unwrap();
        assert_eq!(err.code(), Some("invalid_api_key"));
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
