//! Secrets never leak: with every `tracing` event captured at TRACE level, a request carrying a
//! unique API key in `Authorization`, `x-api-key` and `Infuzu-API-Key` goes through every path
//! (client-side retries on 429s with hints, in-band SSE errors, rendering, the key guard
//! rejecting it, translation of an upstream error, the mid-stream error event), and the key
//! appears nowhere: not in the logs, not in any `Debug`/`Display` of the errors produced, not in
//! any response our layers build. Upstreams here echo the key back in their error messages, as
//! real ones sometimes do, so the masking is exercised, not just the absence of logging.
//!
//! One test in this binary, because the capturing subscriber is the process-wide default.
#![cfg(feature = "server")]

use axum::{Router, body::Body, routing::post};
use bytes::Bytes;
use futures_util::stream;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_http::trace::TraceLayer;
use tower_llm_errors::{
    ApiError, Dialect, ErrorKind,
    classify::LlmClassifier,
    retry::{ReplayBody, RetryLayer},
    server::{
        ApiKey, ApiKeyLayer, KeyVerdict, RenderErrorLayer, StreamErrorLayer, error_event,
        translate::{translate, translate_error},
    },
    sse::SseErrorLayer,
};
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Collects every text our code produced, to be searched for the secret at the end.
#[derive(Default)]
struct Seen(Vec<(String, String)>);

impl Seen {
    fn add(&mut self, what: impl Into<String>, text: impl Into<String>) {
        self.0.push((what.into(), text.into()));
    }
    fn headers(&mut self, what: &str, h: &HeaderMap) {
        for (k, v) in h {
            self.add(
                format!("{what} header {k}"),
                String::from_utf8_lossy(v.as_bytes()),
            );
        }
    }
    fn error(&mut self, what: &str, e: &(dyn std::error::Error + 'static)) {
        self.add(format!("{what} Display"), e.to_string());
        self.add(format!("{what} Debug"), format!("{e:?}"));
        let mut src = e.source();
        while let Some(s) = src {
            self.add(format!("{what} source"), format!("{s} / {s:?}"));
            src = s.source();
        }
    }
}

/// An upstream on 127.0.0.1 that echoes the caller's key in its error messages.
async fn upstream() -> std::net::SocketAddr {
    let echo = |h: &HeaderMap| {
        h.get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_start_matches("Bearer ")
            .to_owned()
    };
    let app = Router::new()
        .route(
            "/v1/limited",
            post(move |h: HeaderMap| async move {
                let key = echo(&h);
                Response::builder()
                    .status(429)
                    .header("retry-after-ms", "3")
                    .header("x-request-id", "req_limited")
                    .body(Body::from(format!(
                        r#"{{"error":{{"message":"Rate limit reached for key {key}","type":"rate_limit_exceeded","code":"rate_limit_exceeded"}}}}"#
                    )))
                    .unwrap()
            }),
        )
        .route(
            "/v1/denied",
            post(move |h: HeaderMap| async move {
                let key = echo(&h);
                Response::builder()
                    .status(401)
                    .body(Body::from(format!(
                        r#"{{"error":{{"message":"Incorrect API key provided: {key}","type":"invalid_request_error","code":"invalid_api_key"}}}}"#
                    )))
                    .unwrap()
            }),
        )
        .route(
            "/v1/stream",
            post(move |h: HeaderMap| async move {
                let key = echo(&h);
                let events = [
                    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n".to_owned(),
                    format!("data: {{\"error\":{{\"message\":\"key {key} was revoked mid-stream\",\"type\":\"server_error\"}}}}\n\n"),
                ];
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(Body::from_stream(stream::iter(
                        events.map(|e| Ok::<_, std::io::Error>(Bytes::from(e))),
                    )))
                    .unwrap()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn with_keys(b: http::request::Builder, key: &str) -> http::request::Builder {
    b.header("authorization", format!("Bearer {key}"))
        .header("x-api-key", key)
        .header("infuzu-api-key", key)
        .header("content-type", "application/json")
}

#[tokio::test]
async fn no_secret_reaches_logs_errors_or_responses() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let unique = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let key = format!("sk-live-SECRET{unique}");
    let mut seen = Seen::default();
    let addr = upstream().await;

    // ── Client side: RetryLayer + SseErrorLayer + TraceLayer over a real hyper-util client.
    let client = Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>();
    let svc = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .max_retries(2)
                .base_delay(Duration::from_millis(1))
                .deadline(Duration::from_secs(5)),
        )
        .layer(TraceLayer::new(LlmClassifier::new()))
        .layer(SseErrorLayer::new())
        .service(client);
    let send = |path: &str| {
        with_keys(Request::post(format!("http://{addr}{path}")), &key)
            .body(Full::new(Bytes::from_static(b"{\"model\":\"m\"}")))
            .unwrap()
    };

    // 429 storm with hints: retried twice, the last 429 comes back.
    let res = svc.clone().oneshot(send("/v1/limited")).await.unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    // Classifying the upstream's answer masks the echoed key.
    let err = ApiError::from_response(parts.status, &parts.headers, &body).unwrap();
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(
        err.message().contains("sk-li***"),
        "the echo was masked: {}",
        err.message()
    );
    seen.error("429 ApiError", &err);
    seen.add("429 message", err.message());
    // Rendering it again, in every dialect.
    for d in Dialect::ALL {
        let r = err.render(d);
        seen.headers(&format!("render {d:?}"), r.headers());
        seen.add(
            format!("render {d:?} body"),
            String::from_utf8_lossy(r.body()),
        );
        let t = translate_error(&err, d);
        seen.add(
            format!("translate_error {d:?}"),
            String::from_utf8_lossy(t.body()),
        );
        seen.add(
            format!("error_event {d:?}"),
            String::from_utf8_lossy(&error_event(&err, d)),
        );
    }

    // 401 echoing the key: not retried; classified, rendered.
    let res = svc.clone().oneshot(send("/v1/denied")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let err = ApiError::from_response(parts.status, &parts.headers, &body).unwrap();
    assert_eq!(err.kind(), ErrorKind::Authentication);
    seen.error("401 ApiError", &err);
    // Translation of the upstream answer into the gateway's dialect.
    for d in Dialect::ALL {
        let upstream_res = Response::builder()
            .status(parts.status)
            .body(Full::new(body.clone()))
            .unwrap();
        let t = translate(upstream_res, d, 64 * 1024).await;
        seen.headers(&format!("translate {d:?}"), t.headers());
        let b = t.into_body().collect().await.unwrap().to_bytes();
        seen.add(format!("translate {d:?} body"), String::from_utf8_lossy(&b));
    }

    // In-band error after the first event: the body fails with an ApiError.
    let res = svc.clone().oneshot(send("/v1/stream")).await.unwrap();
    let mut body = res.into_body();
    let mut inband = None;
    while let Some(f) = body.frame().await {
        if let Err(e) = f {
            inband = Some(e);
            break;
        }
    }
    let inband = inband.expect("the in-band error fails the body");
    let api = inband.downcast_ref::<ApiError>().expect("an ApiError");
    assert!(api.message().contains("revoked"));
    seen.error("in-band", &*inband);

    // A retried transport failure: a port nobody listens on (connection refused).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let req = with_keys(Request::post(format!("http://{dead_addr}/v1/x")), &key)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.clone().oneshot(req).await.unwrap_err();
    seen.error("refused", &*err);

    // ── Server side: a gateway whose key guard rejects the key, render + stream layers.
    let check = |k: ApiKey| async move {
        let _ = format!("{k:?}"); // the Debug of the key is masked too (checked below)
        KeyVerdict::Reject
    };
    let gateway = |dialect: Dialect, infuzu: bool| {
        let guard = if infuzu {
            ApiKeyLayer::infuzu(dialect, check)
        } else {
            ApiKeyLayer::new(dialect, check)
        };
        Router::new()
            .route(
                "/v1/chat/completions",
                post(|| async { Ok::<String, ApiError>("{}".into()) }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(TraceLayer::new(LlmClassifier::new()))
                    .layer(RenderErrorLayer::new(dialect))
                    .layer(StreamErrorLayer::new(dialect))
                    .layer(guard),
            )
    };
    for d in Dialect::ALL {
        for infuzu in [false, true] {
            let req = with_keys(Request::post("/v1/chat/completions"), &key)
                .body(Body::from("{}"))
                .unwrap();
            let res = gateway(d, infuzu).oneshot(req).await.unwrap();
            assert!(res.status().is_client_error(), "{d:?}: {}", res.status());
            seen.headers(&format!("guard {d:?}"), res.headers());
            let b = res.into_body().collect().await.unwrap().to_bytes();
            seen.add(format!("guard {d:?} body"), String::from_utf8_lossy(&b));
        }
    }
    // A handler failing with an error that quotes the key; a stream failing mid-way with one.
    let quoting = ApiError::new(
        ErrorKind::Authentication,
        format!("key {key} is not allowed here (Bearer {key})"),
    );
    for d in Dialect::ALL {
        let e = quoting.clone();
        let app = Router::new()
            .route(
                "/v1/fail",
                post(move || {
                    let e = e.clone();
                    async move { Err::<String, ApiError>(e) }
                }),
            )
            .route(
                "/v1/stream",
                post({
                    let e = quoting.clone();
                    move || {
                        let e = e.clone();
                        async move {
                            let items: Vec<Result<Bytes, ApiError>> =
                                vec![Ok(Bytes::from_static(b"data: {}\n\n")), Err(e)];
                            Response::builder()
                                .header("content-type", "text/event-stream")
                                .body(Body::from_stream(stream::iter(items)))
                                .unwrap()
                        }
                    }
                }),
            )
            .layer(
                ServiceBuilder::new()
                    .layer(TraceLayer::new(LlmClassifier::new()))
                    .layer(RenderErrorLayer::new(d))
                    .layer(StreamErrorLayer::new(d)),
            );
        for path in ["/v1/fail", "/v1/stream"] {
            let req = with_keys(Request::post(path), &key)
                .body(Body::empty())
                .unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            seen.headers(&format!("{path} {d:?}"), res.headers());
            let b = res
                .into_body()
                .collect()
                .await
                .unwrap_or_default()
                .to_bytes();
            seen.add(format!("{path} {d:?} body"), String::from_utf8_lossy(&b));
        }
    }
    seen.error("quoting", &quoting);

    // ── The search. The logs must not be empty (the subscriber did capture), and the key, or
    // its unique part, appears nowhere.
    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "nothing was captured"
    );
    assert!(logs.len() > 1000, "too little was captured: {logs}");
    // The paths ran: two retries on the 429s, the render layer's warning for the failing
    // handler, the stream layer's in-band event.
    assert!(logs.matches("retrying request").count() >= 2, "{logs}");
    assert!(
        logs.contains("request failed") || logs.contains("failed"),
        "{logs}"
    );
    seen.add("logs", logs);
    let mut leaks = Vec::new();
    for (what, text) in &seen.0 {
        if text.contains(&unique) || text.contains("SECRET") {
            leaks.push(format!("{what}: {text}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "the key leaked:\n{}",
        leaks.join("\n---\n")
    );
}
