//! Translation: a gateway re-renders an upstream's error, in whatever dialect it came, in its
//! own.
//!
//! [`translate`] reads an upstream response. A success (status below 400) passes through with
//! its body untouched. An error response has at most `max_body_bytes` of its body read (the rest
//! is dropped, never buffered), is classified with
//! [`ApiError::from_response_with`](crate::ApiError::from_response_with), and is rendered in the
//! gateway's dialect, keeping the kind, the message (secrets masked), the upstream's request id
//! and its retry hint (`Retry-After` is re-sent, rounded up to whole seconds).
//!
//! Errors a seed-004-style upstream sends inside a `200` body or an event stream are not
//! looked for here: wrap the upstream client with [`sse::SseErrorLayer`](crate::sse) and the
//! mid-stream ones reach the client through [`StreamErrorLayer`](super::StreamErrorLayer).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower_llm_errors::{Dialect, server::translate};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let upstream = Response::builder()
//!     .status(529)
//!     .header("request-id", "req_up_1")
//!     .body(Full::new(Bytes::from(
//!         r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
//!     )))
//!     .unwrap();
//! let res = translate(upstream, Dialect::Infuzu, 64 * 1024).await;
//! assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
//! assert_eq!(res.headers()["x-request-id"], "req_up_1");
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(&body[..], br#"{"error":{"code":"overloaded","message":"Overloaded"}}"#);
//! # }
//! ```

use super::ServerBody;
use crate::{ApiError, BoxError, Dialect, ErrorKind, error::ParseOptions};
use bytes::Bytes;
use http::Response;
use http_body::Body;
use std::{future::poll_fn, pin::pin};

/// Re-renders an upstream error response in `dialect`; successes pass through. Reads at most
/// `max_body_bytes` of an error body. See the [module docs](self).
pub async fn translate<B>(
    upstream: Response<B>,
    dialect: Dialect,
    max_body_bytes: usize,
) -> Response<ServerBody<B>>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    if upstream.status().as_u16() < 400 {
        return upstream.map(ServerBody::new);
    }
    let (parts, body) = upstream.into_parts();
    let mut body = pin!(body);
    let mut buf: Vec<u8> = Vec::new();
    let mut failed = false;
    while buf.len() < max_body_bytes {
        match poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => break,
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = max_body_bytes - buf.len();
                    buf.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) => {
                failed = true;
                break;
            }
        }
    }
    let options = ParseOptions::new().max_body_bytes(max_body_bytes);
    let err = ApiError::from_response_with(parts.status, &parts.headers, &buf, &options)
        .unwrap_or_else(|| {
            ApiError::new(
                ErrorKind::from_status(parts.status).unwrap_or(ErrorKind::Unknown),
                "",
            )
            .with_status(parts.status)
        });
    if failed {
        tracing::debug!("upstream error body failed while being read; classified what arrived");
    }
    translate_error(&err, dialect).map(ServerBody::full)
}

/// Renders an upstream's error in `dialect`, marking the response as rendered from `err`
/// (its extensions carry the [`ApiError`]).
pub fn translate_error(err: &ApiError, dialect: Dialect) -> Response<Bytes> {
    super::response::error_response(err.clone(), dialect, None, true)
}
