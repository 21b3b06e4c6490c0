//! `SseErrorLayer` over a real hyper-util client talking to a real hyper server on 127.0.0.1.

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::sse::{InBandReport, SseErrorLayer};
use tower_llm_errors::{ApiError, BoxError};

const NORMAL: &[&str] = &[
    ": keep-alive\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"choices\":[{\"delta\":{\"content\":\"lo, an error\"},\"finish_reason\":null}]}\r\n\r\n",
    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
];

const FAILING: &[&str] = &[
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"error\":{\"message\":\"upstream went away\",\"type\":\"server_error\",\"code\":\"upstream_error\"}}\n",
    "\ndata: [DONE]\n\n",
];

/// The error event whole in one chunk, after a normal one.
const FAILING_WHOLE: &[&str] = &[
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"error\":{\"message\":\"upstream went away\",\"type\":\"server_error\",\"code\":\"upstream_error\"}}\n\ndata: [DONE]\n\n",
];

/// The same, in a single chunk.
const FAILING_ONE_CHUNK: &[&str] = &[
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n: ping\ndata: {\"error\":{\"message\":\"upstream went away\",\"type\":\"server_error\",\"code\":\"upstream_error\"}}\n\ndata: [DONE]\n\n",
];

async fn handler(
    req: Request<Incoming>,
) -> Result<
    Response<StreamBody<stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>>,
    Infallible,
> {
    let (ct, chunks) = match req.uri().path() {
        "/normal" => ("text/event-stream", NORMAL),
        "/failing" => ("text/event-stream", FAILING),
        "/failing-whole" => ("text/event-stream", FAILING_WHOLE),
        "/failing-one-chunk" => ("text/event-stream", FAILING_ONE_CHUNK),
        _ => ("application/json", FAILING),
    };
    let frames: Vec<_> = chunks
        .iter()
        .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
        .collect();
    Ok(Response::builder()
        .header("content-type", ct)
        .body(StreamBody::new(stream::iter(frames)))
        .unwrap())
}

async fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), hyper::service::service_fn(handler))
                    .await;
            });
        }
    });
    addr
}

async fn fetch(
    addr: SocketAddr,
    path: &str,
    layer: SseErrorLayer,
) -> (Vec<u8>, Option<BoxError>, Option<InBandReport>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let svc = ServiceBuilder::new().layer(layer).service(client);
    let req = Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    let report = res.extensions().get::<InBandReport>().cloned();
    let mut body = res.into_body();
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    bytes.extend_from_slice(&d);
                }
            }
            Err(e) => return (bytes, Some(e), report),
        }
    }
    (bytes, None, report)
}

#[tokio::test]
async fn normal_stream_passes_byte_for_byte() {
    let addr = server().await;
    let (bytes, err, report) = fetch(addr, "/normal", SseErrorLayer::new()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(bytes, NORMAL.concat().as_bytes());
    assert!(report.unwrap().error().is_none());
}

#[tokio::test]
async fn in_band_error_ends_the_body_after_the_error_event() {
    let addr = server().await;
    let (bytes, err, report) = fetch(addr, "/failing", SseErrorLayer::new()).await;
    let all = FAILING.concat();
    let cut = all.find("[DONE]").unwrap() - "data: ".len();
    assert_eq!(String::from_utf8(bytes).unwrap(), &all[..cut]);
    let err = err.expect("the body fails");
    let api = err.downcast_ref::<ApiError>().expect("an ApiError");
    assert_eq!(api.code(), Some("upstream_error"));
    assert_eq!(api.message(), "upstream went away");
    assert_eq!(
        report.unwrap().error().unwrap().code(),
        Some("upstream_error")
    );
}

#[tokio::test]
async fn withheld_error_event_ends_the_body_before_the_error_event() {
    let addr = server().await;
    for path in ["/failing-whole", "/failing-one-chunk"] {
        let layer = SseErrorLayer::new().withhold_error_event();
        let (bytes, err, report) = fetch(addr, path, layer).await;
        let bytes = String::from_utf8(bytes).unwrap();
        assert_eq!(
            bytes,
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
            "{path}"
        );
        let err = err.expect("the body fails");
        let api = err.downcast_ref::<ApiError>().expect("an ApiError");
        assert_eq!(api.message(), "upstream went away", "{path}");
        assert!(report.unwrap().error().is_some(), "{path}");
    }
}

#[tokio::test]
async fn withheld_error_event_that_began_in_an_earlier_chunk_is_passed_whole() {
    // Its first bytes were already passed on: cutting now would leave half an event, so the
    // body ends after it, as without withholding.
    let addr = server().await;
    let layer = SseErrorLayer::new().withhold_error_event();
    let (bytes, err, _) = fetch(addr, "/failing", layer).await;
    let all = FAILING.concat();
    let cut = all.find("[DONE]").unwrap() - "data: ".len();
    assert_eq!(String::from_utf8(bytes).unwrap(), &all[..cut]);
    assert!(err.unwrap().downcast_ref::<ApiError>().is_some());
}

#[tokio::test]
async fn record_only_passes_everything() {
    let addr = server().await;
    let (bytes, err, report) = fetch(addr, "/failing", SseErrorLayer::new().record_only()).await;
    assert!(err.is_none());
    assert_eq!(bytes, FAILING.concat().as_bytes());
    assert_eq!(
        report.unwrap().error().unwrap().message(),
        "upstream went away"
    );
}

#[tokio::test]
async fn json_responses_are_not_inspected() {
    let addr = server().await;
    let (bytes, err, report) = fetch(addr, "/json", SseErrorLayer::new()).await;
    assert!(err.is_none());
    assert!(report.is_none());
    assert_eq!(bytes, FAILING.concat().as_bytes());
}
