//! The retry layer over a real hyper-util client talking to real hyper servers on 127.0.0.1.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::{body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::{io::AsyncReadExt, net::TcpListener, sync::mpsc};
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::{
    BoxError,
    retry::{ReplayBody, RetryError, RetryLayer},
};

type Chunk = Result<Frame<Bytes>, BoxError>;
type Streamed = StreamBody<Pin<Box<dyn futures_util::Stream<Item = Chunk> + Send>>>;

/// A request body fed chunk by chunk over a channel by another task.
fn channel_body(chunks: Vec<&'static [u8]>) -> Streamed {
    let (tx, mut rx) = mpsc::channel::<Chunk>(1);
    tokio::spawn(async move {
        for c in chunks {
            if tx
                .send(Ok(Frame::data(Bytes::from_static(c))))
                .await
                .is_err()
            {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    StreamBody::new(Box::pin(stream))
}

/// A hyper server that records every request body and answers with `statuses` in turn (then 200).
async fn server(statuses: Vec<u16>) -> (SocketAddr, Arc<Mutex<Vec<Bytes>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let statuses = Arc::new(Mutex::new(statuses.into_iter()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (seen, statuses) = (seen2.clone(), statuses.clone());
            let svc = service_fn(move |req: Request<Incoming>| {
                let (seen, statuses) = (seen.clone(), statuses.clone());
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    seen.lock().unwrap().push(body);
                    let status = statuses.lock().unwrap().next().unwrap_or(200);
                    Ok::<_, hyper::Error>(
                        Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(format!(
                                r#"{{"error":{{"message":"status {status}"}}}}"#
                            ))))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
        }
    });
    (addr, seen)
}

fn client<B>() -> Client<HttpConnector, ReplayBody<B>>
where
    ReplayBody<B>: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    <ReplayBody<B> as http_body::Body>::Error: Into<BoxError>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

fn fast() -> RetryLayer {
    RetryLayer::new().base_delay(Duration::from_millis(2))
}

#[tokio::test]
async fn streamed_body_is_replayed_byte_for_byte_after_a_failed_attempt() {
    let (addr, seen) = server(vec![503]).await;
    let svc = ServiceBuilder::new()
        .layer(fast())
        .service(client::<Streamed>());
    let req = Request::post(format!("http://{addr}/v1/chat"))
        .body(channel_body(vec![
            b"{\"model\":",
            b"\"m\",\"input\":",
            b"\"hello\"}",
        ]))
        .unwrap();
    // Spawned: the whole stack is `Send`, as a real client needs.
    let resp = tokio::spawn(svc.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], "{\"model\":\"m\",\"input\":\"hello\"}");
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_sent_once() {
    let (addr, seen) = server(vec![503, 503]).await;
    let svc = ServiceBuilder::new()
        .layer(fast().max_replay_bytes(16))
        .service(client::<Streamed>());
    let req = Request::post(format!("http://{addr}/v1/chat"))
        .body(channel_body(vec![
            b"0123456789",
            b"abcdefghij",
            b"KLMNOPQRST",
        ]))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"error":{"message":"status 503"}}"#);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["0123456789abcdefghijKLMNOPQRST"]);
}

#[tokio::test]
async fn error_response_reaches_the_caller_complete() {
    let (addr, seen) = server(vec![400]).await;
    let svc = ServiceBuilder::new()
        .layer(fast())
        .service(client::<Full<Bytes>>());
    let req = Request::post(format!("http://{addr}/v1/chat"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, r#"{"error":{"message":"status 400"}}"#);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

/// The first connection is reset (RST) after the request arrives, before any response; the
/// retry goes to a healthy connection.
#[tokio::test]
async fn connection_reset_before_response_is_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(Mutex::new(0u32));
    let c2 = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let n = {
                let mut c = c2.lock().unwrap();
                *c += 1;
                *c
            };
            if n == 1 {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream.set_zero_linger();
                drop(stream);
                continue;
            }
            let svc = service_fn(|req: Request<Incoming>| async move {
                let body = req.into_body().collect().await?.to_bytes();
                Ok::<_, hyper::Error>(Response::new(Full::new(body)))
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
        }
    });
    let failures = Arc::new(Mutex::new(Vec::new()));
    let f2 = failures.clone();
    let layer = fast().on_retry(move |info| {
        f2.lock()
            .unwrap()
            .push(info.outcome().is_connection_failure());
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(client::<Full<Bytes>>());
    let req = Request::post(format!("http://{addr}/echo"))
        .body(Full::new(Bytes::from_static(b"same bytes")))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.into_body().collect().await.unwrap().to_bytes(),
        "same bytes"
    );
    assert_eq!(*connections.lock().unwrap(), 2);
    assert_eq!(*failures.lock().unwrap(), [true]);
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported_with_attempts() {
    // Bind then drop to get a port with nobody listening.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(fast().max_retries(2))
        .service(client::<Full<Bytes>>());
    let req = Request::get(format!("http://{addr}/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    let err = err.downcast_ref::<RetryError>().expect("a RetryError");
    assert!(err.is_transport());
    assert_eq!(err.attempts(), 3);
}

/// Reads one HTTP/1.1 request (head and `content-length` body) from `stream`, byte for byte.
async fn read_raw_request(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert!(raw.len() < 64 * 1024, "request head too long");
        if stream.read(&mut byte).await.unwrap() == 0 {
            return raw;
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.unwrap();
    raw.extend_from_slice(&body);
    raw
}

/// The retried request is the same on the wire: request line, every header field in the same
/// order (a name repeated, interleaved with others), and body. Read from the socket, not from a
/// server's parsed header map.
#[tokio::test]
async fn retried_request_is_identical_on_the_wire() {
    use tokio::io::AsyncWriteExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        for status in ["503 Service Unavailable", "200 OK"] {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let raw = read_raw_request(&mut stream).await;
            seen2.lock().unwrap().push(raw);
            let reply =
                format!("HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
            stream.write_all(reply.as_bytes()).await.unwrap();
        }
    });
    let svc = ServiceBuilder::new()
        .layer(fast())
        .service(client::<Full<Bytes>>());
    let req = Request::post(format!("http://{addr}/v1/chat?stream=false"))
        .header("content-type", "application/json")
        .header("x-trace", "one")
        .header("authorization", "Bearer sk-test-not-a-secret")
        .header("x-trace", "two")
        .header("accept", "application/json")
        .header("x-trace", "three")
        .header("x-custom-Name", "v")
        .body(Full::new(Bytes::from_static(br#"{"model":"m"}"#)))
        .unwrap();
    let resp = svc.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let first = String::from_utf8(seen[0].clone()).unwrap();
    assert!(
        first.starts_with("POST /v1/chat?stream=false HTTP/1.1\r\n"),
        "{first}"
    );
    assert!(first.ends_with("\r\n\r\n{\"model\":\"m\"}"), "{first}");
    let traces: Vec<&str> = first
        .lines()
        .filter(|l| l.starts_with("x-trace:"))
        .collect();
    assert_eq!(traces, ["x-trace: one", "x-trace: two", "x-trace: three"]);
    assert_eq!(String::from_utf8(seen[1].clone()).unwrap(), first);
}
