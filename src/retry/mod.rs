//! Retrying LLM API calls: full-jitter exponential backoff that honors every server hint.
//!
//! [`RetryLayer`] wraps any client `Service<http::Request<B>>` that returns
//! `http::Response<ResB>` (a hyper-util `Client`, a tonic `Channel`, your own service). Each
//! attempt's outcome is classified with [`ApiError::from_response`](crate::ApiError::from_response);
//! retryable failures are sent again, byte for byte, after a random delay; the last response is
//! returned to the caller as it came.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::retry::RetryLayer;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_llm_errors::BoxError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new().base_delay(Duration::from_millis(100)))
//!     .service_fn(move |_req: Request<_>| {
//!         // The first attempt meets an overloaded server; the second succeeds.
//!         let n = seen.fetch_add(1, Ordering::SeqCst);
//!         async move {
//!             let resp = if n == 0 {
//!                 Response::builder()
//!                     .status(StatusCode::SERVICE_UNAVAILABLE)
//!                     .header("retry-after-ms", "20")
//!                     .body(Full::new(Bytes::from_static(b"{\"error\":{\"message\":\"busy\"}}")))
//!             } else {
//!                 Response::builder().body(Full::new(Bytes::from_static(b"{\"ok\":true}")))
//!             };
//!             Ok::<_, Infallible>(resp.unwrap())
//!         }
//!     });
//!
//! let req = Request::post("http://api.test/v1/chat").body(Full::new(Bytes::from_static(b"{}")))?;
//! let resp = svc.oneshot(req).await?;
//! assert_eq!(resp.status(), StatusCode::OK);
//! assert_eq!(resp.into_body().collect().await?.to_bytes(), "{\"ok\":true}");
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # When it retries
//!
//! After each attempt, in this order:
//!
//! 1. **Is the outcome retryable?**
//!    - A response with status 400 or above (or one chosen by
//!      [`inspect_if`](RetryLayer::inspect_if)) is held, its body is read up to
//!      [`max_error_body_bytes`](RetryLayer::max_error_body_bytes) (64 KiB), and it is classified
//!      into an [`ApiError`](crate::ApiError). It is retryable when
//!      [`ApiError::is_retryable`](crate::ApiError::is_retryable) says so: the kinds
//!      `RequestTimeout`, `Conflict`, `RateLimited`, `ServerError`, `BadGateway`,
//!      `ServiceUnavailable`, `Overloaded` and `GatewayTimeout`, unless the server sent
//!      `x-should-retry: true|false`, which wins. Never: `InvalidRequest`, `Authentication`,
//!      `PermissionDenied`, `InsufficientFunds`, `NotFound`, `PayloadTooLarge`,
//!      `UnsupportedMediaType`, `ContextLengthExceeded`, `ContentFiltered`, `QuotaExceeded`.
//!      Other responses are passed through at once, unread.
//!    - A `200` response whose `Content-Type` is `text/event-stream` is held until its first
//!      event (see [Streams](#streams)). It is retryable when that event is an in-band error
//!      that [`ApiError::is_retryable`](crate::ApiError::is_retryable) accepts (same kinds as
//!      above; a quota error such as `insufficient_quota` is not), when the stream ends with no
//!      event at all ("no content generated", classified as `ServiceUnavailable`), when its
//!      body fails before the first event with an error that is retryable by the next rule (an
//!      `ApiError` in its source chain, as [`SseErrorLayer`](crate::sse::SseErrorLayer) below
//!      produces, or a connection failure), and when no event came within
//!      [`first_event_timeout`](RetryLayer::first_event_timeout). Otherwise the caller gets it.
//!    - An error from the inner service is retryable when it is a connection failure before
//!      any response: a [`std::io::Error`] of kind `ConnectionRefused`, `ConnectionReset`,
//!      `ConnectionAborted` or `BrokenPipe` anywhere in its source chain (where hyper and
//!      hyper-util put it), or when the chain holds a retryable `ApiError`. Nothing else is.
//!    - An attempt cut off by [`attempt_timeout`](RetryLayer::attempt_timeout) is retryable.
//!    - [`retry_if`](RetryLayer::retry_if) may override any of these verdicts.
//! 2. **Is a retry left?** At most [`max_retries`](RetryLayer::max_retries) (default 2) retries.
//! 3. **Can the body be replayed?** A body over [`max_replay_bytes`](RetryLayer::max_replay_bytes)
//!    (8 MiB) is sent once and never retried (see [`ReplayBody`]).
//! 4. **How long to wait.** Retry `n` (counting from 0) draws a fresh uniformly random delay in
//!    `[0, min(max_delay, base_delay·2ⁿ)]` (defaults 500 ms and 8 s: "full jitter"). Every
//!    request has its own random generator, seeded from the thread's generator when it first
//!    needs one, so requests that fail together spread out instead of retrying in lockstep.
//!    A server hint ([`ApiError::retry_after`](crate::ApiError::retry_after): `retry-after-ms`,
//!    `Retry-After` seconds or HTTP-date, and the other hints the error model reads) is a floor:
//!    the wait is `hint + U(0, min(max_delay, base_delay·2ⁿ))`. The hint parsers clamp absurd
//!    values and ignore malformed ones (see [`hints`](crate::error::hints)). For an in-band
//!    error the hint is the event's own (a Gemini `retryDelay`), else the response head's.
//! 5. **Is the hint acceptable?** A hint longer than
//!    [`max_retry_after`](RetryLayer::max_retry_after) (60 s) ends retrying.
//! 6. **Does it fit the deadline?** With a [`deadline`](RetryLayer::deadline), a wait that does
//!    not end before it ends retrying (so does a hint longer than the time left), and an attempt
//!    still running at the deadline is cut off.
//! 7. **Does the budget allow it?** With a [`budget`](RetryLayer::budget), every first attempt
//!    deposits and every retry withdraws; an empty budget ends retrying.
//!
//! When retrying ends on a response, the caller gets that response as it came: status, headers
//! and the complete body (the prefix read for classification, or the bytes held while waiting
//! for a stream's first event, are served again, then the rest streams from the same
//! connection). When it ends on an error, the caller gets a
//! [`RetryError`] (inside a [`BoxError`](crate::BoxError)) carrying the number of attempts and
//! the [`ApiError`](crate::ApiError), if any.
//!
//! A request that cannot be retried (`max_retries(0)`, a body over the limit) is never copied
//! or held, and its response is never read. On the last allowed attempt responses are not
//! read either: there is nothing left to decide.
//!
//! Each retry emits a `tracing` debug event (retry number, kind, status, delay, hint and its
//! source, never headers) and calls [`on_retry`](RetryLayer::on_retry).
//!
//! # Streams
//!
//! An LLM stream that fails before producing anything arrives as `200 OK` with
//! `Content-Type: text/event-stream` and an error as its first event, or with no event at all.
//! The caller has seen nothing yet, so such a stream is retried like an error response:
//!
//! - The response is held and its body read until its first event is complete. An event is
//!   what an SSE parser dispatches: a block with at least one `data` line, ended by an empty
//!   line (`data: [DONE]` counts); comments, keep-alives such as `: OPENROUTER PROCESSING` and
//!   blocks with only `id`, `retry` or `event` lines do not. Gemini's bare JSON error document
//!   counts as an error event.
//! - If that event is an in-band error, or the stream ends with no event, the attempt is
//!   decided by the rules above, with the in-band [`ApiError`](crate::ApiError) as the outcome
//!   ([`Outcome::status`] is `200`, [`Outcome::api_error`] the in-band error). Its
//!   `retry_after()` is a floor like a header hint; hints, `max_retry_after`, the budget, the
//!   deadline and `max_retries` apply unchanged.
//! - Otherwise the caller gets the response; the held bytes are served again first, then the
//!   rest, byte for byte. Once any byte has reached the caller, nothing is retried.
//! - Holding is bounded by [`max_first_event_bytes`](RetryLayer::max_first_event_bytes)
//!   (1 MiB) and by the SSE line and event limits (1 MiB each). A stream that passes one before
//!   its first event is complete is handed to the caller as it is.
//! - [`first_event_timeout`](RetryLayer::first_event_timeout) bounds the wait for the first
//!   event, from the response head; it is a retryable failure
//!   ([`Outcome::is_first_event_timeout`]), and when no retry follows the caller gets the
//!   response, still streaming. [`attempt_timeout`](RetryLayer::attempt_timeout) and the
//!   deadline bound the hold too, as they bound any attempt.
//! - When retrying ends (not retryable, retries, budget or deadline exhausted), the caller
//!   gets the last response as it came: its held bytes are served again, so the error event is
//!   readable. On the last allowed attempt a stream is not held at all.
//! - [`hold_first_event(false)`](RetryLayer::hold_first_event) turns all this off: streams are
//!   then passed through at once.
//!
//! The layer only holds and decides; it does not inspect the stream after its first event.
//! Put [`SseErrorLayer`](crate::sse::SseErrorLayer) **below** it for that:
//!
//! ```text
//! RetryLayer ──► SseErrorLayer ──► client
//! ```
//!
//! Then a later in-band error ends the caller's body with an `Err` that downcasts to
//! `ApiError`, after every byte up to and including the error event; a first-event error, on
//! which `SseErrorLayer` fails the body while the retry layer holds it, is retried (the retry
//! layer sees the error event, and the typed body error after it is retryable too); a response
//! handed on after retrying ended also ends with that typed error; and the
//! [`InBandReport`](crate::sse::InBandReport) in the response extensions belongs to the attempt
//! the caller got. (The other order works too, but then the outer layer inspects the held
//! bytes again.) Without `SseErrorLayer`, a later error event reaches the caller as ordinary
//! bytes.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::{convert::Infallible, sync::Arc, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{retry::RetryLayer, sse::SseErrorLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), tower_llm_errors::BoxError> {
//! let calls = Arc::new(AtomicU32::new(0));
//! let seen = calls.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(RetryLayer::new().first_event_timeout(Duration::from_secs(20)))
//!     .layer(SseErrorLayer::new())
//!     .service_fn(move |_req: Request<_>| {
//!         // The first stream fails before its first event; the second one works.
//!         let stream: &'static [u8] = if seen.fetch_add(1, Ordering::SeqCst) == 0 {
//!             b": ping\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"}}\n\n"
//!         } else {
//!             b": ping\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n"
//!         };
//!         async move {
//!             let resp = Response::builder()
//!                 .header("content-type", "text/event-stream")
//!                 .body(Full::new(Bytes::from_static(stream)))
//!                 .unwrap();
//!             Ok::<_, Infallible>(resp)
//!         }
//!     });
//!
//! let req = Request::post("http://api.test/v1/chat").body(Full::new(Bytes::from_static(b"{}")))?;
//! let body = svc.oneshot(req).await?.into_body().collect().await?.to_bytes();
//! assert!(body.starts_with(b": ping\n\ndata: {\"choices\""));
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Why not `tower::retry::Retry`
//!
//! [`tower::retry::Policy::retry`] decides synchronously from `&mut Result<Res, E>`, but an LLM
//! error is only known after reading (a bounded prefix of) the response body, which is
//! asynchronous, and the body must then be handed back to the caller intact.
//! [`Policy::clone_request`](tower::retry::Policy::clone_request) needs a request that can be
//! cloned before it is sent, and `http::Request` with a streaming body cannot: the body is
//! recorded *while* it is sent instead. So this module has its own response future, shaped like
//! tower's (a small state machine: called, checking, waiting, retrying, calling `poll_ready`
//! again before every re-call), and uses tower's [`Budget`](tower::retry::budget::Budget)
//! trait and [`TpsBudget`](tower::retry::budget::TpsBudget) as they are. Tower's
//! `ExponentialBackoff` is not used because clones of its maker share one seed, which makes
//! requests that fail together retry together; the backoff here is a few lines of checked
//! arithmetic over `fastrand`.
//!
//! # Limits
//!
//! - A server that closes the connection cleanly (no reset) before answering surfaces in hyper
//!   as an "incomplete message" error with no `io::Error` inside; this crate does not depend on
//!   hyper, so it cannot recognize that error and does not retry it by default. Opt in with
//!   [`retry_if`](RetryLayer::retry_if), for example by downcasting to `hyper::Error` and
//!   checking `is_incomplete_message()`.
//! - The inner service receives `Request<ReplayBody<B>>`. A client that only takes one concrete
//!   body type (tonic's `Channel` takes `tonic::body::Body`) needs a `map_request` below this
//!   layer that wraps the body into that type.
//!
//! # Bodies
//!
//! The request body must be `Unpin` with `Data` convertible to and from [`bytes::Bytes`]
//! (`Bytes` itself, as for hyper's `Incoming`, `http_body_util::Full<Bytes>`, tonic's body,
//! axum's body). `Unpin` lets the layer look at a body that is already complete without
//! boxing it. The response body's `Data` must be constructible from `Bytes`, to serve the
//! classified prefix again.

mod body;
mod error;
mod future;
mod layer;
mod policy;
mod service;
mod stream;

pub use body::{ReplayBody, ResponseBody};
pub use error::RetryError;
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{Outcome, RetryInfo};
pub use service::Retry;
