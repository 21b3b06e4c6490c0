//! The error-rendering layer: any inner service becomes `Error = Infallible`, as axum requires,
//! and every error response leaves in one dialect.
//!
//! # What becomes what
//!
//! | inner outcome | response |
//! |---|---|
//! | `Err` whose source chain holds an [`ApiError`](crate::ApiError) (a handler's, the retry layer's) | that error's status and code, in the dialect |
//! | `Err(tower::timeout::error::Elapsed)` | `504` (or `408`, see [`RenderErrorLayer::timeout_status`]) |
//! | `Err(tower::load_shed::error::Overloaded)` | `503` with `Retry-After` ([`RenderErrorLayer::overloaded_retry_after`]) |
//! | `Err` whose chain holds `http_body_util::LengthLimitError` (tower-http's body limit) | `413` |
//! | any other `Err` | `500` with a generic message; the real error goes into the response extensions as [`ErrorSource`](super::ErrorSource), never to the client |
//! | `Ok` response with status ≥ 400 that is not JSON (tower-http's plain-text `413`/`408`, an empty `404`, a `405`) | re-rendered in the dialect, same status, headers kept |
//! | `Ok` response rendered from an [`ApiError`](crate::ApiError) by `IntoResponse` | re-rendered in the layer's dialect (unless an [`InDialect`](super::InDialect) chose one), with the request id |
//! | anything else | passed through untouched |
//!
//! Errors from the inner service's `poll_ready` are held and answered on the next call, so the
//! layer's own `poll_ready` never fails either.
//!
//! The request's `x-request-id` (set by tower-http's `SetRequestIdLayer` in front) is copied into
//! every error this layer renders.
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{Dialect, server::RenderErrorLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(RenderErrorLayer::new(Dialect::Infuzu))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Err::<http::Response<Full<Bytes>>, _>(std::io::Error::other("database password wrong"))
//!     });
//! let res = svc
//!     .oneshot(Request::new(Full::new(Bytes::new())))
//!     .await
//!     .unwrap(); // Infallible
//! assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
//! let body = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
//! assert!(body.starts_with(br#"{"error":{"code":"internal_server_error""#));
//! assert!(!body.windows(8).any(|w| w == b"password"));
//! # }
//! ```

pub(crate) mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::RenderErrorLayer;
pub use service::RenderError;
