//! Chaos, measured: endless streams and endless error bodies through a real hyper-util client
//! behind `RetryLayer` and `SseErrorLayer` do not grow the process's memory with the bytes sent.
//!
//! One test in this binary, so that the resident set size read from `/proc/self/statm` belongs
//! to it alone; the scenarios run one after another.

mod chaos;

use chaos::{Act, open_head, request, rss_bytes, serve};
use http::StatusCode;
use http_body_util::BodyExt;
use std::{sync::atomic::Ordering, time::Duration};
use tokio::time::timeout;
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::{retry::RetryLayer, sse::SseErrorLayer};

const STREAM_BYTES: u64 = 48 << 20;
const GROWTH_BOUND: u64 = 16 << 20;

fn retry() -> RetryLayer {
    RetryLayer::new()
        .max_retries(1)
        .base_delay(Duration::from_millis(2))
        .deadline(Duration::from_secs(5))
        .max_error_body_bytes(4096)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_under_endless_input() {
    let guard = Duration::from_secs(60);

    // 1. An endless stream of normal events: every byte reaches the caller, none is kept.
    let (addr, stats) = serve(
        vec![],
        Act::Endless {
            head: open_head(200, "text/event-stream"),
            chunk: b"data: {\"choices\":[{\"delta\":{\"content\":\"token\"}}]}\n\n".repeat(256),
            total: STREAM_BYTES,
        },
    )
    .await;
    let svc = ServiceBuilder::new()
        .layer(retry())
        .layer(SseErrorLayer::new())
        .service(chaos::client());
    let before = rss_bytes();
    let mut peak = before;
    let received = timeout(guard, async {
        let res = svc.oneshot(request(addr)).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let mut body = res.into_body();
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            let f = f.expect("normal events never fail the body");
            n += f.into_data().map(|d| d.len() as u64).unwrap_or(0);
            if n % (4 << 20) < 8192 {
                peak = peak.max(rss_bytes());
            }
        }
        n
    })
    .await
    .expect("the stream hung");
    peak = peak.max(rss_bytes());
    assert_eq!(received, stats.endless_written.load(Ordering::SeqCst));
    assert!(received >= STREAM_BYTES, "{received}");
    let growth = peak.saturating_sub(before);
    eprintln!("endless events: {received} bytes through, RSS growth {growth} bytes");
    assert!(
        growth < GROWTH_BOUND,
        "RSS grew by {growth} bytes for {received} bytes streamed"
    );

    // 2. An endless error body: the classifier reads only its 4 KiB prefix, then retries; the
    //    last attempt's response goes to the caller unread, who reads 64 KiB and drops it.
    let endless_error = Act::Endless {
        head: open_head(500, "application/json"),
        chunk: b"{\"error\":{\"message\":\""
            .iter()
            .chain([b'a'; 8192].iter())
            .copied()
            .collect(),
        total: STREAM_BYTES,
    };
    let (addr, stats) = serve(vec![], endless_error).await;
    let svc = ServiceBuilder::new()
        .layer(retry())
        .layer(SseErrorLayer::new())
        .service(chaos::client());
    let before = rss_bytes();
    let got = timeout(guard, async {
        let res = svc.oneshot(request(addr)).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let mut body = res.into_body();
        let mut n = 0usize;
        while n < 64 * 1024 {
            match body.frame().await {
                Some(Ok(f)) => n += f.into_data().map(|d| d.len()).unwrap_or(0),
                _ => break,
            }
        }
        n
    })
    .await
    .expect("the endless error body hung");
    assert!(got >= 64 * 1024);
    assert_eq!(
        stats.requests.load(Ordering::SeqCst),
        2,
        "one retry, as configured"
    );
    let written = stats.endless_written.load(Ordering::SeqCst);
    let growth = rss_bytes().saturating_sub(before);
    eprintln!("endless error body: server wrote {written} bytes, RSS growth {growth} bytes");
    // Far below the 2 × 48 MiB the server would have sent to a reader that read everything:
    // 4 KiB classified + 64 KiB read by the caller + socket buffers.
    assert!(
        written < 16 << 20,
        "the client read {written} bytes of endless error bodies"
    );
    assert!(growth < GROWTH_BOUND, "RSS grew by {growth} bytes");
}
