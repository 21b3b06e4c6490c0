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
//! # Reading an error
//!
//! ```
//! use http::{HeaderMap, StatusCode};
//! use tower_llm_errors::{ApiError, ErrorKind};
//!
//! let body = br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
//! let err = ApiError::from_response(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), body).unwrap();
//! assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
//! assert_eq!(err.code(), Some("insufficient_quota"));
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
