//! Tower layers that read, retry, stream-inspect and render LLM API errors in every dialect.
//!
//! LLM APIs and gateways fail in many dialects: a status code, a JSON error body whose shape
//! differs per vendor, a `Retry-After` header, and errors that arrive *inside* a `200 OK`
//! `text/event-stream` after the stream has started. This crate reads all of them into one
//! [`ApiError`] with an [`ErrorKind`], decides from it whether and when to retry, and renders it
//! again in the dialect a server chooses.
//!
//! ```text
//! client side (hyper-util Client, tonic Channel, any Service<Request<B>>)
//!   RetryLayer ──► classify step ──► SSE inspection ──► inner client
//!
//! server side (axum Router, hyper server)
//!   TraceLayer(LlmClassifier) ─► guard layers ─► error rendering ─► handler
//! ```
//!
//! # The client stack
//!
//! [`retry::RetryLayer`] retries what is worth retrying (full-jitter backoff, server hints as a
//! floor, budget, deadline, byte-identical replay); [`sse::SseErrorLayer`] passes every byte of a
//! `text/event-stream` through unchanged and ends the body with a typed error when an in-band
//! error event arrives. Any `Service<http::Request<B>>` fits underneath: a hyper-util `Client`,
//! a tonic `Channel`, or, as here, a `service_fn` standing in for an upstream whose stream
//! fails after its first event.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use std::convert::Infallible;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{ApiError, ErrorKind, retry::RetryLayer, sse::SseErrorLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_llm_errors::BoxError> {
//! const STREAM: &str = concat!(
//!     "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
//!     "data: {\"error\":{\"message\":\"upstream died\",\"type\":\"server_error\",\"code\":502}}\n\n",
//! );
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new())
//!     .layer(SseErrorLayer::new())
//!     .service_fn(|_req: Request<_>| async {
//!         let res = Response::builder()
//!             .header("content-type", "text/event-stream")
//!             .body(Full::new(Bytes::from_static(STREAM.as_bytes())));
//!         Ok::<_, Infallible>(res.expect("a valid response"))
//!     });
//!
//! let req = Request::post("http://llm.test/v1/chat/completions").body(Full::new(Bytes::from("{}")))?;
//! let mut body = client.oneshot(req).await?.into_body();
//! let mut seen = Vec::new();
//! let err = loop {
//!     match body.frame().await {
//!         Some(Ok(frame)) => seen.extend_from_slice(frame.data_ref().expect("data")),
//!         Some(Err(err)) => break err,
//!         None => unreachable!("the stream carries an in-band error"),
//!     }
//! };
//! // Every byte up to and including the error event reached the caller, once.
//! assert_eq!(seen, STREAM.as_bytes());
//! let api = err.downcast_ref::<ApiError>().expect("an in-band ApiError");
//! assert_eq!(api.kind(), ErrorKind::BadGateway);
//! # Ok(())
//! # }
//! ```
//!
//! # The server side (feature `server`)
//!
//! A gateway answers its own clients in one dialect, whatever failed behind it:
//! `RenderErrorLayer` turns every error (ours, tower's timeouts and load shedding, body limits,
//! anything else) and every bare error response into a body of the chosen [`Dialect`].
//!
//! ```
//! # #[cfg(feature = "server")]
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower_llm_errors::BoxError> {
//! use axum::{Router, body::Body, routing::post};
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use tower::ServiceExt;
//! use tower_llm_errors::{ApiError, Dialect, ErrorKind, server::RenderErrorLayer};
//!
//! async fn chat() -> Result<String, ApiError> {
//!     Err(ApiError::new(ErrorKind::InsufficientFunds, "Add credits to continue."))
//! }
//!
//! let app = Router::new()
//!     .route("/v1/chat/completions", post(chat))
//!     .layer(RenderErrorLayer::new(Dialect::Infuzu));
//! let res = app
//!     .oneshot(Request::post("/v1/chat/completions").body(Body::empty())?)
//!     .await?;
//! assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
//! let body = res.into_body().collect().await?.to_bytes();
//! assert_eq!(
//!     body,
//!     r#"{"error":{"code":"not_enough_funds","message":"Add credits to continue."}}"#
//! );
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "server"))]
//! # fn main() {}
//! ```
//!
//! # Reading an error
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use tower_llm_errors::{ApiError, ErrorKind};
//!
//! let body = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
//! let err = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), body).unwrap();
//! // The body's meaning beats the status: a quota 429 is not worth retrying.
//! assert_eq!(err.kind(), ErrorKind::QuotaExceeded);
//! assert!(!err.is_retryable());
//! ```
#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod classify;
pub mod error;
pub mod retry;
#[cfg(feature = "server")]
pub mod server;
pub mod sse;

pub use error::{ApiError, Dialect, ErrorKind};

/// The boxed error type used by every layer: `Box<dyn Error + Send + Sync>`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
