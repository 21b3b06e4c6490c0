//! `LlmClassifier` under a real axum Router with tower-http's `TraceLayer`, served on
//! 127.0.0.1 and called with a hyper-util client.

use axum::{Router, body::Body, routing::get};
use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use tower_llm_errors::classify::{LlmClassifier, LlmFailureClass};
use tower_llm_errors::sse::SseErrorLayer;
use tower_llm_errors::{ApiError, ErrorKind};

type Seen = Arc<Mutex<Vec<LlmFailureClass>>>;

fn sse(chunks: &'static [&'static str]) -> Response<Body> {
    let s = stream::iter(
        chunks
            .iter()
            .map(|c| Ok::<_, std::convert::Infallible>(Bytes::from_static(c.as_bytes()))),
    );
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(s))
        .unwrap()
}

async fn serve(seen: Seen) -> SocketAddr {
    let app = Router::new()
        .route(
            "/in-band",
            get(|| async {
                sse(&[
                    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
                    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy now\"}}\n\n",
                ])
            }),
        )
        .route(
            "/numeric",
            get(|| async { sse(&["data: {\"error\":{\"code\":503,\"message\":\"no capacity\"}}\n\n"]) }),
        )
        .route(
            "/ok",
            get(|| async { sse(&["data: {\"choices\":[]}\n\n", "data: [DONE]\n\n"]) }),
        )
        .route(
            "/limited",
            get(|| async {
                let mut res = Response::new(Body::from("{\"error\":{\"message\":\"slow down\"}}"));
                *res.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                res.extensions_mut().insert(
                    ApiError::new(ErrorKind::QuotaExceeded, "out of quota").with_code("insufficient_quota"),
                );
                res
            }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such model") }),
        )
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new(LlmClassifier::new()).on_failure(
                    move |class: LlmFailureClass, _latency: Duration, _span: &tracing::Span| {
                        seen.lock().unwrap().push(class);
                    },
                ))
                .layer(SseErrorLayer::new().record_only()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Fetches `path`, reads the whole body, and waits (by yielding, bounded) until the server
/// side has run its end-of-stream classification.
async fn call(addr: SocketAddr, path: &str, seen: &Seen, expect: usize) -> (StatusCode, Bytes) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let res = client
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    for _ in 0..10_000 {
        if seen.lock().unwrap().len() >= expect {
            break;
        }
        tokio::task::yield_now().await;
    }
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_band_error_in_a_200_stream_is_a_failure_at_end_of_stream() {
    let seen = Seen::default();
    let addr = serve(seen.clone()).await;

    let (status, body) = call(addr, "/in-band", &seen, 1).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.ends_with(b"\"message\":\"busy now\"}}\n\n"),
        "record mode passes all"
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let class = &seen[0];
        assert!(class.is_in_band());
        assert_eq!(class.status(), None);
        let api = class.api_error().unwrap();
        assert_eq!(api.error_type(), Some("overloaded_error"));
        assert_eq!(api.message(), "busy now");
        assert!(class.to_string().contains("busy now"));
    }

    call(addr, "/numeric", &seen, 2).await;
    assert_eq!(
        seen.lock().unwrap()[1].kind(),
        ErrorKind::ServiceUnavailable
    );

    // A clean stream is not a failure.
    call(addr, "/ok", &seen, 3).await;
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_are_classified_with_the_error_model() {
    let seen = Seen::default();
    let addr = serve(seen.clone()).await;

    let (status, _) = call(addr, "/missing", &seen, 1).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].kind(), ErrorKind::NotFound);
        assert_eq!(seen[0].status(), Some(StatusCode::NOT_FOUND));
        assert!(seen[0].api_error().is_none());
    }

    call(addr, "/limited", &seen, 2).await;
    let seen = seen.lock().unwrap();
    let class = &seen[1];
    assert_eq!(class.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(
        class.kind(),
        ErrorKind::QuotaExceeded,
        "the ApiError's kind wins"
    );
    assert_eq!(
        class.api_error().unwrap().code(),
        Some("insufficient_quota")
    );
    assert!(!class.is_in_band());
}
