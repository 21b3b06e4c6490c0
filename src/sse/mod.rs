//! Server-sent events: a spec-exact incremental [`Parser`], and [`SseErrorLayer`], which passes
//! `text/event-stream` bodies through unchanged while finding LLM errors sent inside them.
//!
//! LLM APIs start a stream with `200 OK` and, when something breaks half way, send the error as
//! an event (or, for Gemini, as a bare JSON document in the middle of the stream). An HTTP
//! client sees a successful response whose body simply ends. [`SseErrorLayer`] makes that
//! error visible: the body yields every byte up to and including the error event, then one
//! `Err` that downcasts to [`ApiError`](crate::ApiError).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{ApiError, sse::SseErrorLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let stream = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n\
//!               data: {\"error\":{\"message\":\"upstream failed\",\"code\":502}}\n\n\
//!               data: [DONE]\n\n";
//! let svc = ServiceBuilder::new()
//!     .layer(SseErrorLayer::new())
//!     .service_fn(move |_req: Request<()>| async move {
//!         Ok::<_, std::convert::Infallible>(
//!             Response::builder()
//!                 .header("content-type", "text/event-stream")
//!                 .body(Full::new(Bytes::from_static(stream.as_bytes())))
//!                 .unwrap(),
//!         )
//!     });
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! let mut body = res.into_body();
//! let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
//! assert!(first.ends_with(b"\"code\":502}}\n\n")); // up to and including the error event
//! let err = body.frame().await.unwrap().unwrap_err();
//! let api = err.downcast_ref::<ApiError>().unwrap();
//! assert_eq!(api.code(), Some("502"));
//! assert_eq!(api.message(), "upstream failed");
//! # }
//! ```
//!
//! # What the layer does
//!
//! - Only responses whose `Content-Type` is `text/event-stream` (any status) are inspected;
//!   others keep their body, behind one enum variant.
//! - Every byte is passed on unchanged and frames are not merged or delayed. When an event is
//!   an error, the frame that carries it is cut right after the event's final empty line, the
//!   rest of the stream is dropped and the body ends with the `Err`. (An event is complete at
//!   its last line end; when that is a CR LF split across two frames, the event ends at the CR
//!   and the LF, in the next frame, is not passed on.)
//! - Errors are recognized in every shape [`ApiError::from_sse_event`](crate::ApiError::from_sse_event)
//!   reads, plus Gemini's bare JSON. Content-filtered ends are recorded, not failed.
//! - An [`InBandReport`] is put in the response extensions; the body fills it in. With
//!   [`SseErrorLayer::record_only`] the body never fails and the report is the only outcome
//!   (this is what [`LlmClassifier`](crate::classify::LlmClassifier) reads at end of stream).
//! - Bounded: the body keeps at most the bytes of the current event when it spans frames
//!   (limit 1 MiB by default) and never the stream; a longer line or event fails the body with
//!   an [`Error`] (recorded only in record mode, where inspection then stops).
//! - Cheap: normal events are not parsed. One `memchr` pass finds line ends and two `memmem`
//!   passes per frame look for `"error"` as a JSON token and for a `…reason"` key whose value
//!   could mean an error or a filter (`finish_reason: null` is skipped in place). Only a
//!   suspect event is parsed. No allocation per normal event. In long frames, after the first
//!   event, the whole blocks between the first and last blank line are not even split into
//!   lines when one multi-pattern SIMD pass finds nothing suspect in them (see `inspect`).
//!
//! # Why hand-written
//!
//! `eventsource-stream` and `sse-stream` are async stream adapters that allocate a `String` per
//! field and own the bytes; we need a sans-IO parser (usable inside a body's `poll_frame`,
//! with limits and zero-copy slices) and a passthrough scan that never builds events.
//!
//! # For the retry layer (crate-internal API)
//!
//! Holding a response until its first event is done with `inspect::Inspector`:
//!
//! ```text
//! let mut insp = Inspector::new(max_line, max_event);      // crate::sse::inspect::Inspector
//! // for each data frame of the held response, in order, keeping the frames (bounded):
//! let stop: Option<Stop> = insp.feed(&chunk);              // Stop::InBand { at, error } | Stop::Limit(e)
//! match insp.first_event() {                               // &FirstEvent
//!     FirstEvent::Pending => keep reading,                 // comments / keep-alives only so far
//!     FirstEvent::Error(api_error) => retry (the error is also in `stop`),
//!     FirstEvent::Normal => hand the response on,
//!     FirstEvent::NoEvent => unreachable before finish(),
//! }
//! // when the inner body ends while still Pending:
//! let err: Option<ApiError> = insp.finish();               // then first_event() is NoEvent or Error
//! // hand the response on without losing a byte or the inspection state:
//! let body = ResponseBody::resume(inner, insp, held_chunks, last_stop, mode, report);
//! // held_chunks: VecDeque<Bytes>, every chunk fed so far, in order;
//! // last_stop: what feed() returned for the last of them (Some only on that last one,
//! //   since the caller stops reading at a verdict);
//! // mode: sse::Mode::{Fail, Record}; report: InBandReport (also insert it in the extensions)
//! ```
//!
//! An event is a block with at least one `data` line, as the parser dispatches it; so
//! `data: [DONE]` counts as an ordinary event (a stream that sends only `[DONE]` is `Normal`,
//! not `NoEvent`), while comments, `: OPENROUTER PROCESSING` keep-alives and blocks with only
//! `id`/`retry`/`event` lines do not count.
//!
//! A stop together with `FirstEvent::Normal` means the error is a later event of the same
//! frame: the caller has not seen anything yet, but the first event was good, so it is not
//! retried; `resume` with that `last_stop` cuts the chunk after the error event and fails the
//! body there, exactly as the layer would have.

mod body;
mod error;
mod event;
mod future;
mod inband;
pub(crate) mod inspect;
mod layer;
mod parser;
mod report;
mod service;

pub use body::ResponseBody;
pub use error::Error;
pub use event::Event;
pub use future::ResponseFuture;
pub(crate) use future::is_event_stream;
pub(crate) use layer::Mode;
pub use layer::SseErrorLayer;
pub use parser::{DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, Parser};
pub use report::InBandReport;
pub use service::SseError;
