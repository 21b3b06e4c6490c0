//! A real tonic server (tonic-health's generated service) that first answers `UNAVAILABLE`,
//! then `RESOURCE_EXHAUSTED` with `grpc-retry-pushback-ms`, then OK, and a real
//! `tonic::transport::Channel` calling it on 127.0.0.1.
//!
//! The script sits in a layer in front of the health service; it counts the calls and keeps
//! every request body it received, so a test can check that a retried call was replayed byte
//! for byte.
//!
//! LAYERS: today the channel is used bare and the test checks the script itself, call by call.
//! Once the retry layer lands, the same fixture takes
//! `ServiceBuilder::new().layer(RetryLayer::new()).service(channel)` and one call must come back
//! OK after three attempts, with three identical bodies and at least the pushback waited.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::{BoxError, ServiceExt};

const PUSHBACK_MS: &str = "250";
const HANG_GUARD: Duration = Duration::from_secs(20);

/// What the server saw: one request body per call.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Bytes>>>);

impl Seen {
    fn bodies(&self) -> Vec<Bytes> {
        self.0.lock().unwrap().clone()
    }
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
                    seen.push(bytes.clone());
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
