use super::{DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES, SseError};
use tower::Layer;

/// What the body does when it finds an in-band error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// End the body with the error.
    Fail,
    /// Only record it in the [`InBandReport`](super::InBandReport).
    Record,
}

/// Wraps `text/event-stream` response bodies so that in-band LLM errors surface.
///
/// See the [module docs](super) for what counts as an error and an example.
#[derive(Clone, Copy, Debug)]
pub struct SseErrorLayer {
    pub(crate) mode: Mode,
    pub(crate) withhold: bool,
    pub(crate) max_line: usize,
    pub(crate) max_event: usize,
}

impl Default for SseErrorLayer {
    fn default() -> Self {
        SseErrorLayer::new()
    }
}

impl SseErrorLayer {
    /// A layer that ends the body with an `Err` (downcasting to [`ApiError`](crate::ApiError))
    /// after the event that carried an in-band error; limits 1 MiB per line and per event.
    pub fn new() -> SseErrorLayer {
        SseErrorLayer {
            mode: Mode::Fail,
            withhold: false,
            max_line: DEFAULT_MAX_LINE_BYTES,
            max_event: DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// Only record what is found (in the [`InBandReport`](super::InBandReport) of the response
    /// extensions); the body is passed through whole and never fails because of it.
    pub fn record_only(mut self) -> SseErrorLayer {
        self.mode = Mode::Record;
        self
    }

    /// Fail the body *before* the event that carried the in-band error instead of after it:
    /// the caller gets the bytes of every earlier event, then the `Err`, and never the error
    /// event's own bytes. For a gateway that answers in another dialect (it renders its own
    /// error event from the `ApiError`, so its client should not see the upstream's too).
    ///
    /// The cut is exact when the error event's block arrived within one frame, as upstreams
    /// send it. When its first bytes came in an earlier frame they were already passed on, and
    /// cutting would leave half an event: the body then ends after the event, as without this
    /// option. Record-only mode is unaffected.
    pub fn withhold_error_event(mut self) -> SseErrorLayer {
        self.withhold = true;
        self
    }

    /// The longest line inspected, in bytes (at least 1). A longer line fails the body with an
    /// [`sse::Error`](super::Error) (or is recorded, in record-only mode).
    pub fn max_line_bytes(mut self, limit: usize) -> SseErrorLayer {
        self.max_line = limit.max(1);
        self
    }

    /// The largest event block inspected, in bytes from its first `data`/`event` line to its
    /// final empty line (at least 1).
    pub fn max_event_bytes(mut self, limit: usize) -> SseErrorLayer {
        self.max_event = limit.max(1);
        self
    }
}

impl<S> Layer<S> for SseErrorLayer {
    type Service = SseError<S>;

    fn layer(&self, inner: S) -> SseError<S> {
        SseError {
            inner,
            layer: *self,
        }
    }
}
