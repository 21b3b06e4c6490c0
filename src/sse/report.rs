use super::Error;
use crate::ApiError;
use std::sync::{Arc, OnceLock};

/// What an inspected stream found, shared between the body and whoever reads it later.
///
/// [`SseErrorLayer`](super::SseErrorLayer) puts one in the extensions of every
/// `text/event-stream` response it wraps; the body fills it as it runs. The end-of-stream
/// classifier of [`LlmClassifier`](crate::classify::LlmClassifier) reads it, and so can your
/// own code (`response.extensions().get::<InBandReport>()` before the body is consumed, then
/// the clone after). Each slot is written at most once (the first finding wins). Cloning is one
/// `Arc` increment.
#[derive(Clone, Default)]
pub struct InBandReport {
    inner: Arc<Slots>,
}

#[derive(Default)]
struct Slots {
    error: OnceLock<ApiError>,
    content_filter: OnceLock<ApiError>,
    limit: OnceLock<Error>,
}

impl InBandReport {
    /// An empty report.
    pub fn new() -> InBandReport {
        InBandReport::default()
    }

    /// The in-band error the stream carried, if any.
    pub fn error(&self) -> Option<&ApiError> {
        self.inner.error.get()
    }

    /// A content-filtered end (`finish_reason: "content_filter"`, `SAFETY`, `refusal`), which
    /// does not fail the body.
    pub fn content_filtered(&self) -> Option<&ApiError> {
        self.inner.content_filter.get()
    }

    /// A line or event limit the stream exceeded, if any.
    pub fn limit_exceeded(&self) -> Option<&Error> {
        self.inner.limit.get()
    }

    pub(crate) fn set_error(&self, e: ApiError) {
        let _ = self.inner.error.set(e);
    }

    pub(crate) fn set_content_filter(&self, e: ApiError) {
        let _ = self.inner.content_filter.set(e);
    }

    pub(crate) fn set_limit(&self, e: Error) {
        let _ = self.inner.limit.set(e);
    }
}

impl std::fmt::Debug for InBandReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InBandReport")
            .field("error", &self.error())
            .field("content_filtered", &self.content_filtered())
            .field("limit_exceeded", &self.limit_exceeded())
            .finish()
    }
}
