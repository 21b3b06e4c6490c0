//! The gateway's axum router under a `TraceLayer`, with the trace output captured, in front of
//! the demo's flaky upstream on 127.0.0.1.
//!
//! The gateway's router carries `TraceLayer::new(LlmClassifier::new())` itself, outside the
//! render and stream-error layers, and its client stack has `SseErrorLayer`, whose report rides
//! in the response extensions: so the trace sees a failure where a status-only classifier sees
//! a `200`, and records its kind.

#![allow(dead_code)] // the example's modules carry items only its `main` uses

#[path = "../examples/gateway/journal.rs"]
mod journal;
#[path = "../examples/gateway/proxy.rs"]
mod proxy;
#[path = "../examples/gateway/upstream.rs"]
mod upstream;

use axum::body::Body;
use http::{Request, header};
use http_body_util::BodyExt;
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::ServiceExt;
use tower_llm_errors::Dialect;

/// Everything the subscriber writes.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Sends one scenario through the traced gateway, reads the whole body, returns the trace.
async fn traced(scenario: &str, stream: bool) -> String {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The test runtime is single-threaded, so every task (server, client, connections) runs on
    // this thread and under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let upstream = upstream::Upstream::new(Duration::ZERO);
    let (upstream_addr, _) = proxy::spawn_local(upstream.router()).await.unwrap();
    let gateway = proxy::Gateway::new(&format!("http://{upstream_addr}"), Dialect::OpenAi).unwrap();
    let app = proxy::router(gateway);

    let body = format!(r#"{{"model":"m","stream":{stream},"messages":[]}}"#);
    let req = Request::post("/v1/chat/completions")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer sk-secret-in-trace-test")
        .header(upstream::SCENARIO_HEADER, scenario)
        .header(upstream::ID_HEADER, format!("{scenario}#1"))
        .body(Body::from(body))
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    let _ = res.into_body().collect().await;
    capture.text()
}

/// The failure line tower-http's default `on_failure` writes, with the classification.
fn failures(trace: &str) -> Vec<&str> {
    trace
        .lines()
        .filter(|l| l.contains("response failed"))
        .collect()
}

#[tokio::test]
async fn a_500_is_traced_as_a_failure() {
    let trace = tokio::time::timeout(Duration::from_secs(20), traced("500-always", false))
        .await
        .expect("finished");
    let failed = failures(&trace);
    assert_eq!(failed.len(), 1, "{trace}");
    assert!(failed[0].contains("server_error"), "{trace}");
    assert!(failed[0].contains("500"), "{trace}");
    assert!(
        !trace.contains("sk-secret-in-trace-test"),
        "the key never reaches the trace"
    );
}

#[tokio::test]
async fn a_clean_answer_is_not_a_failure() {
    let trace = tokio::time::timeout(Duration::from_secs(20), traced("ok-stream", true))
        .await
        .expect("finished");
    assert!(trace.contains("finished processing request"), "{trace}");
    assert!(failures(&trace).is_empty(), "{trace}");
}

/// The stream answers `200` and fails after three deltas: the trace reports it as failed, with
/// the kind of the in-band error.
#[tokio::test]
async fn an_in_band_error_is_traced_as_a_failure() {
    let trace = tokio::time::timeout(Duration::from_secs(20), traced("sse-error-midway", true))
        .await
        .expect("finished");
    assert!(trace.contains("status=200"), "{trace}");
    let failed = failures(&trace);
    assert_eq!(failed.len(), 1, "{trace}");
    assert!(failed[0].contains("server_error"), "{trace}");
    assert!(
        !trace.contains("sk-secret-in-trace-test"),
        "the key never reaches the trace"
    );
}
