//! Chaos tests: a real hyper-util client behind `RetryLayer` and `SseErrorLayer`, talking to a
//! server on 127.0.0.1 that resets connections, truncates bodies, stalls, storms 429s and streams
//! without end. Every call is guarded by `tokio::time::timeout`: a call that outlives its guard
//! fails the test (nothing hangs). Assertions: every call ends in a response or a typed error, the
//! caller never sees a byte twice, nothing is retried once a byte reached the caller, and buffers
//! stay under their limits.

mod chaos;

use chaos::{Act, open_head, request, response, serve};
use http::StatusCode;
use http_body_util::BodyExt;
use std::{sync::atomic::Ordering, time::Duration};
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::{
    ApiError, BoxError,
    retry::{RetryError, RetryLayer},
    sse::{self, SseErrorLayer},
};

/// The guard for one call: far above every deadline configured here.
const GUARD: Duration = Duration::from_secs(10);

fn retry() -> RetryLayer {
    RetryLayer::new()
        .max_retries(3)
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(20))
        .deadline(Duration::from_secs(3))
}

/// The outcome of one call, body read to its end (or to its error).
#[derive(Debug)]
struct Outcome {
    status: StatusCode,
    body: Vec<u8>,
    body_err: Option<BoxError>,
}

/// Sends one request through `layer` + `SseErrorLayer` + the client; reads the body up to
/// `read_limit` bytes (then drops it).
async fn call(
    layer: RetryLayer,
    sse: SseErrorLayer,
    addr: std::net::SocketAddr,
    read_limit: usize,
) -> Result<Outcome, BoxError> {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(sse)
        .service(chaos::client());
    let fut = async move {
        let res = svc.oneshot(request(addr)).await?;
        let status = res.status();
        let mut body = res.into_body();
        let mut out = Vec::new();
        let mut body_err = None;
        while out.len() < read_limit {
            match body.frame().await {
                None => break,
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        out.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => {
                    body_err = Some(e);
                    break;
                }
            }
        }
        Ok(Outcome {
            status,
            body: out,
            body_err,
        })
    };
    timeout(GUARD, fut)
        .await
        .expect("the call hung past its guard")
}

fn retry_error(e: &BoxError) -> &RetryError {
    e.downcast_ref::<RetryError>()
        .unwrap_or_else(|| panic!("not a RetryError: {e:?}"))
}

const OK_BODY: &str = r#"{"id":"x","choices":[]}"#;

#[tokio::test]
async fn resets_are_retried_then_succeed() {
    let (addr, stats) = serve(vec![Act::Reset, Act::Reset], response(200, &[], OK_BODY)).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, OK_BODY.as_bytes());
    assert_eq!(stats.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn endless_resets_end_in_a_typed_transport_error() {
    let (addr, stats) = serve(vec![], Act::Reset).await;
    let err = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap_err();
    let re = retry_error(&err);
    assert!(re.is_transport(), "{re:?}");
    assert_eq!(re.attempts(), 4);
    assert_eq!(stats.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn truncated_success_body_is_passed_once_and_not_retried() {
    // A 200 that promises 100 bytes and sends 10: the caller gets exactly those 10, then an error.
    let mut raw = b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 100\r\n\r\n".to_vec();
    raw.extend_from_slice(b"0123456789");
    let (addr, stats) = serve(vec![Act::Raw(raw)], response(200, &[], OK_BODY)).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, b"0123456789");
    assert!(
        out.body_err.is_some(),
        "a truncated body must end in an error"
    );
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn truncated_error_bodies_end_in_a_response_or_typed_error() {
    // 503s whose bodies are cut short: the classifier reads what arrived; the call ends either
    // with the final 503 or with a typed error, after at most 1 + max_retries attempts.
    let mut raw = b"HTTP/1.1 503 X\r\nconnection: close\r\ncontent-length: 400\r\n\r\n".to_vec();
    raw.extend_from_slice(br#"{"error":{"message":"overlo"#);
    let (addr, stats) = serve(vec![], Act::Raw(raw)).await;
    match call(retry(), SseErrorLayer::new(), addr, usize::MAX).await {
        Ok(out) => {
            assert_eq!(out.status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(out.body, br#"{"error":{"message":"overlo"#);
            assert!(out.body_err.is_some());
        }
        Err(e) => {
            let re = retry_error(&e);
            assert!(re.attempts() >= 1 && re.attempts() <= 4, "{re:?}");
        }
    }
    assert!(stats.requests.load(Ordering::SeqCst) <= 4);
}

#[tokio::test]
async fn a_stall_inside_an_error_body_is_cut_by_the_deadline() {
    let head =
        b"HTTP/1.1 503 X\r\nconnection: close\r\ncontent-length: 500\r\n\r\n{\"error\":".to_vec();
    let (addr, stats) = serve(vec![], Act::Stall(head)).await;
    let layer = retry().deadline(Duration::from_millis(300));
    let err = call(layer, SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap_err();
    let re = retry_error(&err);
    assert!(re.is_deadline(), "{re:?}");
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stall_inside_an_error_body_is_cut_by_the_attempt_timeout_and_retried() {
    let head =
        b"HTTP/1.1 503 X\r\nconnection: close\r\ncontent-length: 500\r\n\r\n{\"error\":".to_vec();
    let (addr, stats) = serve(vec![Act::Stall(head)], response(200, &[], OK_BODY)).await;
    let layer = retry().attempt_timeout(Duration::from_millis(200));
    let out = call(layer, SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, OK_BODY.as_bytes());
    assert_eq!(stats.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_stall_mid_stream_after_an_event_is_never_retried() {
    // One event reaches the caller, then the server stalls. The caller's own timeout ends the
    // read; the event came exactly once and there was exactly one request.
    let mut raw = open_head(200, "text/event-stream");
    raw.extend_from_slice(b"data: {\"delta\":\"Hi\"}\n\n");
    let (addr, stats) = serve(vec![Act::Stall(raw)], response(200, &[], OK_BODY)).await;
    let svc = ServiceBuilder::new()
        .layer(retry())
        .layer(SseErrorLayer::new())
        .service(chaos::client());
    let res = timeout(GUARD, svc.oneshot(request(addr)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let mut got = Vec::new();
    let read = timeout(Duration::from_millis(300), async {
        while let Some(Ok(f)) = body.frame().await {
            if let Ok(d) = f.into_data() {
                got.extend_from_slice(&d);
            }
        }
    })
    .await;
    assert!(read.is_err(), "the stalled stream cannot end by itself");
    assert_eq!(got, b"data: {\"delta\":\"Hi\"}\n\n");
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stream_that_closes_after_two_events_is_passed_once() {
    let mut raw = open_head(200, "text/event-stream");
    raw.extend_from_slice(b"data: one\n\ndata: two\n\n");
    let (addr, stats) = serve(vec![Act::Raw(raw)], response(200, &[], OK_BODY)).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    assert_eq!(out.body, b"data: one\n\ndata: two\n\n");
    assert!(out.body_err.is_none());
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_reset_mid_stream_after_an_event_is_an_error_not_a_retry() {
    let mut raw = open_head(200, "text/event-stream");
    raw.extend_from_slice(b"data: one\n\ndata: tw");
    let (addr, stats) = serve(vec![Act::RawThenReset(raw)], response(200, &[], OK_BODY)).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.body, b"data: one\n\ndata: tw");
    assert!(out.body_err.is_some(), "a reset mid-body is a body error");
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_in_band_error_after_the_first_event_fails_the_body_and_is_not_retried() {
    let mut raw = open_head(200, "text/event-stream");
    let stream: &[u8] = b"data: {\"delta\":\"Hi\"}\n\ndata: {\"error\":{\"message\":\"upstream broke\",\"type\":\"server_error\"}}\n\ndata: never\n\n";
    raw.extend_from_slice(stream);
    let (addr, stats) = serve(vec![Act::Raw(raw)], response(200, &[], OK_BODY)).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    let cut = stream.len() - b"data: never\n\n".len();
    assert_eq!(
        out.body,
        &stream[..cut],
        "bytes up to and including the error event, once"
    );
    let err = out.body_err.expect("the in-band error fails the body");
    let api = err.downcast_ref::<ApiError>().expect("an ApiError");
    assert_eq!(api.message(), "upstream broke");
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_429_storm_with_hints_is_retried_up_to_the_limit() {
    let storm = response(
        429,
        &[
            ("retry-after-ms", "5"),
            ("content-type", "application/json"),
        ],
        r#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#,
    );
    let (addr, stats) = serve(vec![], storm).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    // The last 429 comes back to the caller as it was sent, body intact.
    assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        out.body,
        br#"{"error":{"message":"slow down","type":"rate_limit_exceeded"}}"#
    );
    assert_eq!(stats.requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_hint_beyond_the_deadline_is_not_waited_for() {
    let storm = response(
        429,
        &[("retry-after", "3600")],
        r#"{"error":{"message":"later"}}"#,
    );
    let (addr, stats) = serve(vec![], storm).await;
    let out = call(retry(), SseErrorLayer::new(), addr, usize::MAX)
        .await
        .unwrap();
    assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_callers_in_a_429_storm_all_finish() {
    let mut script = Vec::new();
    for _ in 0..24 {
        script.push(response(
            429,
            &[("retry-after-ms", "3")],
            r#"{"error":{"message":"busy"}}"#,
        ));
    }
    let (addr, stats) = serve(script, response(200, &[], OK_BODY)).await;
    let calls: Vec<_> = (0..16)
        .map(|_| tokio::spawn(call(retry(), SseErrorLayer::new(), addr, usize::MAX)))
        .collect();
    let mut ok = 0;
    for c in calls {
        match c.await.unwrap() {
            Ok(out) if out.status == StatusCode::OK => {
                assert_eq!(out.body, OK_BODY.as_bytes());
                ok += 1;
            }
            Ok(out) => assert_eq!(out.status, StatusCode::TOO_MANY_REQUESTS),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    // 24 429s spread over 16 callers that try 4 times each: at worst 6 callers meet four 429s
    // each, so at least 10 succeed; no call sends more than 4 requests.
    let requests = stats.requests.load(Ordering::SeqCst);
    assert!(requests <= 16 * 4, "{requests}");
    assert!(ok >= 10, "{ok} of 16 succeeded");
}

#[tokio::test]
async fn an_endless_sse_line_fails_at_the_line_limit() {
    const LIMIT: usize = 64 * 1024;
    let (addr, stats) = serve(
        vec![],
        Act::Endless {
            head: [open_head(200, "text/event-stream"), b"data: ".to_vec()].concat(),
            chunk: vec![b'x'; 8192],
            total: 64 << 20,
        },
    )
    .await;
    let sse = SseErrorLayer::new().max_line_bytes(LIMIT);
    let out = call(retry(), sse, addr, usize::MAX).await.unwrap();
    let err = out.body_err.expect("the endless line must fail the body");
    let e = err.downcast_ref::<sse::Error>().expect("an sse::Error");
    assert!(e.is_line_too_long());
    assert_eq!(e.limit(), LIMIT);
    // The caller saw at most the limit plus the frame that crossed it.
    assert!(out.body.len() <= LIMIT + 64 * 1024, "{}", out.body.len());
    assert_eq!(stats.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn endless_data_lines_fail_at_the_event_limit() {
    const LIMIT: usize = 32 * 1024;
    let (addr, _) = serve(
        vec![],
        Act::Endless {
            head: open_head(200, "text/event-stream"),
            chunk: b"data: 0123456789abcdef0123456789abcdef\n".repeat(64),
            total: 64 << 20,
        },
    )
    .await;
    let sse = SseErrorLayer::new().max_event_bytes(LIMIT);
    let out = call(retry(), sse, addr, usize::MAX).await.unwrap();
    let err = out.body_err.expect("the endless event must fail the body");
    let e = err.downcast_ref::<sse::Error>().expect("an sse::Error");
    assert!(e.is_event_too_long());
    assert!(
        out.body.len() <= 2 * LIMIT + 64 * 1024,
        "{}",
        out.body.len()
    );
}
