//! Server side: an LLM gateway that answers every failure in one dialect (feature `server`).
//!
//! A gateway fronts OpenAI-compatible or vendor APIs and must answer its own clients in one
//! consistent error dialect, whatever failed: its own guards, a timeout, a panicking body limit,
//! an upstream speaking another dialect, or a stream that dies half-way. The pieces:
//!
//! - [`RenderErrorLayer`]: makes the inner service `Error = Infallible` (as axum requires) by
//!   rendering every error, and re-renders bare error responses (tower-http's plain-text `413`,
//!   axum's empty `404`) in the dialect. [`ApiError`](crate::ApiError) implements axum-core's
//!   `IntoResponse`; [`InDialect`] picks a dialect explicitly.
//! - Guards, each a layer answering with the seeds' codes: [`ApiKeyLayer`] (`401
//!   missing_api_key`, `400 multiple_api_keys`, `401 invalid_api_key`, `402 not_enough_funds`,
//!   quota), [`JsonBodyLayer`] (`415 unsupported_media_type`, `400 invalid_request_body`, `400
//!   missing_required_field`, `413`), [`RateLimitLayer`] (`429` with `Retry-After` and
//!   `x-ratelimit-*`). Body size limits use tower-http's `RequestBodyLimitLayer`; its answers
//!   are normalized by the render layer.
//! - Request ids come from tower-http's `SetRequestIdLayer` / `PropagateRequestIdLayer`: every
//!   response carries `x-request-id`, and every error body carries it where the dialect has a
//!   place for it (the envelope's `meta.request_id`, Anthropic's `request_id`).
//! - [`StreamErrorLayer`]: an event stream that fails after it started ends with one in-band
//!   error event in the dialect, not a cut connection.
//! - [`translate()`]: re-renders an upstream's error response in the gateway's dialect.
//!
//! Every layer answers with [`ServerBody`], so they stack in any order; API keys are never
//! echoed (messages show `sk-ab***`).
//!
//! # A complete gateway
//!
//! ```
//! use axum::{Router, body::Body, routing::post};
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_http::{
//!     limit::RequestBodyLimitLayer,
//!     request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
//! };
//! use tower_llm_errors::{
//!     ApiError, Dialect, ErrorKind,
//!     server::{
//!         ApiKey, ApiKeyLayer, JsonBodyLayer, KeyVerdict, RateDecision, RateLimitLayer,
//!         RenderErrorLayer, StreamErrorLayer,
//!     },
//! };
//!
//! async fn chat(body: Bytes) -> Result<String, ApiError> {
//!     if body.len() > 10_000 {
//!         return Err(ApiError::new(ErrorKind::ContextLengthExceeded, "The prompt is too long."));
//!     }
//!     Ok(r#"{"choices":[]}"#.to_owned())
//! }
//!
//! async fn check_key(key: ApiKey) -> KeyVerdict {
//!     match key.expose() {
//!         "sk-live-0123456789" => KeyVerdict::Accept,
//!         "sk-broke-0123456789" => KeyVerdict::NoFunds,
//!         _ => KeyVerdict::Reject,
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let dialect = Dialect::Envelope;
//! let app = Router::new().route("/v1/chat/completions", post(chat)).layer(
//!     ServiceBuilder::new()
//!         .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
//!         .layer(PropagateRequestIdLayer::x_request_id())
//!         .layer(RenderErrorLayer::new(dialect))
//!         .layer(StreamErrorLayer::new(dialect))
//!         .layer(ApiKeyLayer::new(dialect, check_key))
//!         .layer(RateLimitLayer::new(dialect, |_req: &Request<Body>| RateDecision::allow()))
//!         .layer(RequestBodyLimitLayer::new(1024 * 1024))
//!         .layer(JsonBodyLayer::new(dialect).require("messages"))
//!         .layer(tower::timeout::TimeoutLayer::new(Duration::from_secs(120))),
//! );
//!
//! let request = |key: &str, body: &'static str| {
//!     Request::post("/v1/chat/completions")
//!         .header("authorization", format!("Bearer {key}"))
//!         .header("content-type", "application/json")
//!         .header("x-request-id", "req_doc_1")
//!         .body(Body::from(body))
//!         .unwrap()
//! };
//!
//! // A good request reaches the handler.
//! let res = app.clone().oneshot(request("sk-live-0123456789", r#"{"messages":[{"role":"user","content":"hi"}]}"#)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(res.headers()["x-request-id"], "req_doc_1");
//!
//! // A missing field is answered in the envelope dialect, with the request id.
//! let res = app.clone().oneshot(request("sk-live-0123456789", r#"{"model":"m"}"#)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! let body = std::str::from_utf8(&body).unwrap();
//! assert!(body.starts_with(concat!(
//!     r#"{"success":false,"error":{"code":"MISSING_REQUIRED_FIELD","#,
//!     r#""message":"The field 'messages' is required.","#,
//!     r#""details":{"field":"messages","issue":"missing or empty"}},"#,
//!     r#""meta":{"request_id":"req_doc_1","timestamp":""#,
//! )), "{body}");
//!
//! // An unknown key is refused without echoing it.
//! let res = app.clone().oneshot(request("sk-stolen-0123456789", "{}")).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! let body = std::str::from_utf8(&body).unwrap();
//! assert!(body.contains(r#""code":"INVALID_API_KEY","message":"The API key sk-st*** is not valid.""#), "{body}");
//!
//! // An unknown route is a JSON 404 in the dialect, not an empty body. (The guards run before
//! // routing, so it takes a valid key to learn that a route does not exist.)
//! let get = Request::get("/nope")
//!     .header("authorization", "Bearer sk-live-0123456789")
//!     .body(Body::empty())
//!     .unwrap();
//! let res = app.oneshot(get).await.unwrap();
//! assert_eq!(res.status(), StatusCode::NOT_FOUND);
//! assert_eq!(res.headers()["content-type"], "application/json");
//! assert!(res.headers().contains_key("x-request-id"));
//! # }
//! ```

pub(crate) mod body;
pub mod render;
pub(crate) mod response;

pub mod api_key;
pub mod json_body;
pub mod rate_limit;
pub mod stream;
pub mod translate;

pub use api_key::{ApiKey, ApiKeyLayer, KeyVerdict};
pub use body::ServerBody;
pub use json_body::JsonBodyLayer;
pub use rate_limit::{RateDecision, RateLimitLayer};
pub use render::RenderErrorLayer;
pub use response::{ErrorSource, InDialect, X_REQUEST_ID};
pub use stream::{StreamErrorBody, StreamErrorLayer, error_event};
pub use translate::{translate, translate_error};
