//! A real tonic server (tonic-health's generated service) that first answers `UNAVAILABLE`,
//! then `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`, then OK, and a real
//! `tonic::transport::Channel` calling it on 127.0.0.1.
//!
//! The script sits in a layer in front of the health service; it counts the calls and keeps
//! every request body it received, so a test can check that a retried call was replayed byte
//! for byte.
//!
//! The channel is wrapped by the retry layer, the way a user does it:
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(RetryLayer::new().inspect_if(|_status, headers| headers.contains_key("grpc-status")))
//!     .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| r.map(tonic::body::Body::new))
//!     .service(channel)
//! ```
//!
//! - gRPC failures arrive as HTTP `200`. When the server fails before any message it answers
//!   "Trailers-Only": the `grpc-status` (and `grpc-message`, `grpc-retry-pushback-ms`) are in the
//!   response *headers*, which is what tonic's `Status::into_http` sends and what the error model
//!   reads. The retry layer only reads responses with status 400 and above by default, so
//!   `inspect_if` opts these `200`s in; a normal answer carries its `grpc-status` in the trailers
//!   and is passed through unread.
//! - The retry layer hands its inner service `Request<ReplayBody<B>>`, and `Channel` takes only
//!   `tonic::body::Body`, hence the `map_request` below the layer.
//! - A failure reported in the trailers (after messages were sent) is not retried: the caller
//!   has read data already.
//!
//! One call must come back OK after three attempts, with three identical request bodies, the
//! first retry after backoff and the second after at least the pushback. The test runs on tokio's
//! paused clock (the server stamps each attempt with tokio's clock) with a wall-clock hang guard.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::{BoxError, ServiceBuilder, ServiceExt};
use tower_llm_errors::{
    error::HintSource,
    retry::{ReplayBody, RetryInfo, RetryLayer},
};

const PUSHBACK_MS: &str = "250";
const PUSHBACK: Duration = Duration::from_millis(250);
const HANG_GUARD: Duration = Duration::from_secs(30);

/// What the server saw: one request body per call, and when it arrived (tokio's clock).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(Bytes, Instant)>>>);

impl Seen {
    fn bodies(&self) -> Vec<Bytes> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(b, _)| b.clone())
            .collect()
    }

    fn gaps(&self) -> Vec<Duration> {
        let seen = self.0.lock().unwrap();
        seen.windows(2).map(|w| w[1].1 - w[0].1).collect()
    }
}

/// A wall-clock bound on a test that runs on tokio's paused clock: ends the process if it hangs.
fn hang_guard() -> std::sync::mpsc::Sender<()> {
    let (done, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(HANG_GUARD) {
            eprintln!("a gRPC test hung for {HANG_GUARD:?}");
            std::process::exit(101);
        }
    });
    done
}

/// Starts tonic-health behind the failure script; returns its address and what it saw.
async fn scripted_health_server() -> (SocketAddr, Seen) {
    let seen = Seen::default();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();

    let record = seen.clone();
    let script = tower::layer::layer_fn(move |inner: tonic::service::Routes| {
        let record = record.clone();
        tower::service_fn(move |req: http::Request<tonic::body::Body>| {
            let (inner, record) = (inner.clone(), record.clone());
            async move {
                let (parts, body) = req.into_parts();
                let bytes = body
                    .collect()
                    .await
                    .map_err(Into::<BoxError>::into)?
                    .to_bytes();
                let attempt = {
                    let mut seen = record.0.lock().unwrap();
                    seen.push((bytes.clone(), Instant::now()));
                    seen.len()
                };
                match attempt {
                    1 => Ok(Status::unavailable("the server is warming up").into_http()),
                    2 => {
                        let mut status = Status::resource_exhausted("too many calls, back off");
                        status
                            .metadata_mut()
                            .insert("grpc-retry-pushback-ms", PUSHBACK_MS.parse().unwrap());
                        Ok(status.into_http())
                    }
                    _ => {
                        let req = http::Request::from_parts(
                            parts,
                            tonic::body::Body::new(Full::new(bytes)),
                        );
                        inner.oneshot(req).await.map_err(Into::<BoxError>::into)
                    }
                }
            }
        })
    });

    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(script)
            .add_service(health)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    (addr, seen)
}

#[tokio::test]
async fn the_script_fails_twice_then_answers_and_sees_identical_bodies() {
    tokio::time::timeout(HANG_GUARD, async {
        let (addr, seen) = scripted_health_server().await;
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = HealthClient::new(channel);
        let request = || HealthCheckRequest {
            service: String::new(),
        };

        let first = client.check(request()).await.unwrap_err();
        assert_eq!(first.code(), Code::Unavailable);

        let second = client.check(request()).await.unwrap_err();
        assert_eq!(second.code(), Code::ResourceExhausted);
        let pushback = second.metadata().get("grpc-retry-pushback-ms").unwrap();
        assert_eq!(pushback.to_str().unwrap(), PUSHBACK_MS);

        let third = client.check(request()).await.unwrap().into_inner();
        assert_eq!(third.status(), ServingStatus::Serving);

        let bodies = seen.bodies();
        assert_eq!(bodies.len(), 3);
        assert!(!bodies[0].is_empty());
        assert!(
            bodies.iter().all(|b| *b == bodies[0]),
            "same call, same bytes"
        );
    })
    .await
    .expect("finished");
}

/// Waits recorded by the retry layer's `on_retry` hook: delay and hint source.
type Waits = Arc<Mutex<Vec<(Duration, Option<HintSource>)>>>;

/// The retry layer, configured for gRPC: Trailers-Only failures are inspected.
fn grpc_retry(waits: Waits) -> RetryLayer {
    RetryLayer::new()
        .base_delay(Duration::from_millis(50))
        .max_delay(Duration::from_millis(400))
        .inspect_if(|_status, headers| headers.contains_key("grpc-status"))
        .on_retry(move |info: &RetryInfo<'_>| {
            waits
                .lock()
                .unwrap()
                .push((info.delay(), info.hint_source()));
        })
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_replays_the_call_and_honors_the_pushback() {
    let _done = hang_guard();
    let (addr, seen) = scripted_health_server().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let waits = Waits::default();
    let svc = ServiceBuilder::new()
        .layer(grpc_retry(Arc::clone(&waits)))
        .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        })
        .service(channel);
    let mut client = HealthClient::new(svc);

    let answer = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.status(), ServingStatus::Serving);

    let bodies = seen.bodies();
    assert_eq!(bodies.len(), 3, "UNAVAILABLE, RESOURCE_EXHAUSTED, OK");
    assert!(!bodies[0].is_empty());
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "replayed byte for byte"
    );

    let waits = waits.lock().unwrap().clone();
    assert_eq!(waits.len(), 2);
    assert_eq!(waits[0].1, None, "UNAVAILABLE carries no hint: backoff");
    assert_eq!(waits[1].1, Some(HintSource::GrpcPushback));
    assert!(waits[1].0 >= PUSHBACK, "waited {:?}", waits[1].0);
    let gaps = seen.gaps();
    assert!(
        gaps[1] >= PUSHBACK,
        "the server saw the retry after {:?}",
        gaps[1]
    );
}

/// Without `inspect_if`, a Trailers-Only failure is a `200` the layer does not read: the caller
/// gets the first `UNAVAILABLE` and the call is made once.
#[tokio::test(start_paused = true)]
async fn without_inspect_if_grpc_failures_pass_through() {
    let _done = hang_guard();
    let (addr, seen) = scripted_health_server().await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .map_request(|r: http::Request<ReplayBody<tonic::body::Body>>| {
            r.map(tonic::body::Body::new)
        })
        .service(channel);
    let err = HealthClient::new(svc)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(seen.bodies().len(), 1);
}
