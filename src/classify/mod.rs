//! tower-http classifiers that see LLM failures, in-band SSE errors included.
//!
//! [`LlmClassifier`] is a [`MakeClassifier`] for `tower_http::trace::TraceLayer` (or any
//! tower-http-style metrics layer):
//!
//! - a response with status 400 or above is a failure right away, of kind
//!   [`ErrorKind::from_status`], carrying the [`ApiError`] found in the response extensions
//!   when a handler or error-rendering layer put one there;
//! - a `text/event-stream` response wrapped by [`SseErrorLayer`](crate::sse::SseErrorLayer)
//!   (either mode) is classified at end of stream: the body records an in-band error in the
//!   [`InBandReport`] of the response extensions, and the end-of-stream classifier reads it;
//! - any other response is a success; a transport or body error is a failure, of the kind of
//!   the [`ApiError`] inside it when there is one.
//!
//! Put the `SseErrorLayer` *inside* the `TraceLayer`, so that the trace sees the report:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Empty, Full};
//! use std::sync::{Arc, Mutex};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_http::trace::TraceLayer;
//! use tower_llm_errors::{ErrorKind, classify::{LlmClassifier, LlmFailureClass}, sse::SseErrorLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let seen: Arc<Mutex<Vec<LlmFailureClass>>> = Arc::default();
//! let sink = seen.clone();
//! let svc = ServiceBuilder::new()
//!     .layer(TraceLayer::new(LlmClassifier::new()).on_failure(
//!         move |class: LlmFailureClass, _latency, _span: &tracing::Span| {
//!             sink.lock().unwrap().push(class);
//!         },
//!     ))
//!     .layer(SseErrorLayer::new().record_only())
//!     .service_fn(|_req: Request<Empty<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(
//!             Response::builder()
//!                 .header("content-type", "text/event-stream")
//!                 .body(Full::new(Bytes::from_static(b"data: {\"error\":{\"code\":503,\"message\":\"busy\"}}\n\n")))
//!                 .unwrap(),
//!         )
//!     });
//! let res = svc.oneshot(Request::new(Empty::<Bytes>::new())).await.unwrap();
//! assert_eq!(res.status(), 200);
//! res.into_body().collect().await.unwrap();
//! let seen = seen.lock().unwrap();
//! assert_eq!(seen.len(), 1);
//! assert_eq!(seen[0].kind(), ErrorKind::ServiceUnavailable);
//! # }
//! ```

use crate::sse::InBandReport;
use crate::{ApiError, BoxError, ErrorKind};
use http::{HeaderMap, Request, Response, StatusCode};
use std::{any::Any, fmt};
use tower_http::classify::{ClassifiedResponse, ClassifyEos, ClassifyResponse, MakeClassifier};

/// A [`MakeClassifier`] for LLM APIs: statuses, error bodies and in-band SSE errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct LlmClassifier {
    _priv: (),
}

impl LlmClassifier {
    /// The classifier.
    pub fn new() -> LlmClassifier {
        LlmClassifier { _priv: () }
    }
}

impl MakeClassifier for LlmClassifier {
    type Classifier = LlmClassifyResponse;
    type FailureClass = LlmFailureClass;
    type ClassifyEos = LlmClassifyEos;

    fn make_classifier<B>(&self, _req: &Request<B>) -> LlmClassifyResponse {
        LlmClassifyResponse { _priv: () }
    }
}

/// The per-response classifier made by [`LlmClassifier`].
#[derive(Clone, Copy, Debug)]
pub struct LlmClassifyResponse {
    _priv: (),
}

impl ClassifyResponse for LlmClassifyResponse {
    type FailureClass = LlmFailureClass;
    type ClassifyEos = LlmClassifyEos;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> ClassifiedResponse<LlmFailureClass, LlmClassifyEos> {
        let status = res.status();
        if let Some(kind) = ErrorKind::from_status(status) {
            let error = res.extensions().get::<ApiError>().cloned();
            return ClassifiedResponse::Ready(Err(LlmFailureClass {
                kind: error.as_ref().map_or(kind, ApiError::kind),
                status: Some(status),
                error,
                message: None,
            }));
        }
        match res.extensions().get::<InBandReport>() {
            Some(report) => ClassifiedResponse::RequiresEos(LlmClassifyEos {
                report: report.clone(),
            }),
            None => ClassifiedResponse::Ready(Ok(())),
        }
    }

    fn classify_error<E>(self, error: &E) -> LlmFailureClass
    where
        E: fmt::Display + 'static,
    {
        from_error(error)
    }
}

/// Classifies the end of an inspected stream from its [`InBandReport`].
#[derive(Clone, Debug)]
pub struct LlmClassifyEos {
    report: InBandReport,
}

impl ClassifyEos for LlmClassifyEos {
    type FailureClass = LlmFailureClass;

    fn classify_eos(self, _trailers: Option<&HeaderMap>) -> Result<(), LlmFailureClass> {
        if let Some(error) = self.report.error() {
            return Err(LlmFailureClass {
                kind: error.kind(),
                status: None,
                error: Some(error.clone()),
                message: None,
            });
        }
        if let Some(limit) = self.report.limit_exceeded() {
            return Err(LlmFailureClass {
                kind: ErrorKind::Unknown,
                status: None,
                error: None,
                message: Some(limit.to_string()),
            });
        }
        Ok(())
    }

    fn classify_error<E>(self, error: &E) -> LlmFailureClass
    where
        E: fmt::Display + 'static,
    {
        match self.report.error() {
            Some(api) => LlmFailureClass {
                kind: api.kind(),
                status: None,
                error: Some(api.clone()),
                message: None,
            },
            None => from_error(error),
        }
    }
}

/// An `ApiError` inside the error, if it is one or a boxed one.
fn from_error<E: fmt::Display + 'static>(error: &E) -> LlmFailureClass {
    let any = error as &dyn Any;
    let api = any.downcast_ref::<ApiError>().cloned().or_else(|| {
        any.downcast_ref::<BoxError>()
            .and_then(|b| b.downcast_ref::<ApiError>())
            .cloned()
    });
    match api {
        Some(api) => LlmFailureClass {
            kind: api.kind(),
            status: api.status(),
            error: Some(api),
            message: None,
        },
        None => LlmFailureClass {
            kind: ErrorKind::Unknown,
            status: None,
            error: None,
            message: Some(error.to_string()),
        },
    }
}

/// Why [`LlmClassifier`] called a response a failure.
#[derive(Clone, Debug)]
pub struct LlmFailureClass {
    kind: ErrorKind,
    status: Option<StatusCode>,
    error: Option<ApiError>,
    message: Option<String>,
}

impl LlmFailureClass {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status, when the response itself had an error status.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    /// The error, when one is known (from the response extensions, the in-band report, or the
    /// body or transport error).
    pub fn api_error(&self) -> Option<&ApiError> {
        self.error.as_ref()
    }

    /// Whether the failure came from inside a stream whose status was a success.
    pub fn is_in_band(&self) -> bool {
        self.status.is_none() && self.error.is_some()
    }
}

impl fmt::Display for LlmFailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.error, self.status, &self.message) {
            (Some(e), Some(s), _) => write!(f, "status {}: {e}", s.as_u16()),
            (Some(e), None, _) => write!(f, "in-band error: {e}"),
            (None, Some(s), _) => write!(f, "status {}: {}", s.as_u16(), self.kind),
            (None, None, Some(m)) => write!(f, "{}: {m}", self.kind),
            (None, None, None) => write!(f, "{}", self.kind),
        }
    }
}
