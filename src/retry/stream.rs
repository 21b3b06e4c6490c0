//! Holding a `200 text/event-stream` response until its first event (see "Streams" in the
//! [module docs](super)).
//!
//! The bytes are read into the same [`Prefix`] an error body is read into, and fed, as they
//! arrive, to the SSE inspector (`sse::inspect::Inspector`, the scanner
//! [`SseErrorLayer`](crate::sse::SseErrorLayer) uses), which says when the first event is
//! complete and whether it is an error. Nothing here builds events or copies a byte twice.

use super::body::Prefix;
use crate::{
    ApiError, BoxError, ErrorKind,
    error::{
        ParseOptions,
        hints::{self, Present},
    },
    sse::{
        DEFAULT_MAX_EVENT_BYTES, DEFAULT_MAX_LINE_BYTES,
        inspect::{FirstEvent, Inspector, Stop},
    },
};
use bytes::Buf;
use http::HeaderMap;
use http_body::Body;
use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};
use tokio::time::Instant;

/// What holding a stream decided.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The caller gets the response: its first event was an ordinary one, or the stream passed
    /// [`max_first_event_bytes`](super::RetryLayer::max_first_event_bytes) or an SSE line/event
    /// limit before its first event was complete.
    HandOn,
    /// The first event is an in-band error, or the stream ended with no event (an error of
    /// kind `ServiceUnavailable` stands for it). Decided like an error response.
    Failed(ApiError),
    /// The body failed before its first event; the error is in `Prefix::error` and is decided
    /// like an error from the inner service (an [`ApiError`] in its source chain, as
    /// [`SseErrorLayer`](crate::sse::SseErrorLayer) below this layer produces, is found).
    BodyFailed,
}

/// The state of one held stream.
pub(crate) struct FirstEventHold {
    inspector: Inspector,
    /// When the attempt timer (attempt timeout or deadline) ends, if one runs: a timer that
    /// fires before this is the first-event timeout.
    pub(crate) attempt_end: Option<Instant>,
}

impl FirstEventHold {
    pub(crate) fn new(attempt_end: Option<Instant>) -> FirstEventHold {
        FirstEventHold {
            // The inspector's own buffer only ever holds bytes that are also held in the
            // prefix, so the prefix cap bounds it too.
            inspector: Inspector::new(DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_EVENT_BYTES),
            attempt_end,
        }
    }

    /// Reads frames into `prefix` until the first event is complete, the body ends or fails,
    /// or `cap` bytes are held (a frame that crosses the cap is kept whole: it is already in
    /// memory).
    pub(crate) fn poll<B>(
        &mut self,
        prefix: &mut Prefix,
        body: &mut Pin<Box<B>>,
        cap: usize,
        cx: &mut Context<'_>,
    ) -> Poll<Verdict>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        while !prefix.done {
            if prefix.buf.len() >= cap {
                tracing::debug!(held = prefix.buf.len(), "stream over the hold limit");
                return Poll::Ready(Verdict::HandOn);
            }
            if body.is_end_stream() {
                prefix.done = true;
                break;
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                None => prefix.done = true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut d) => {
                        let mut over_limit = false;
                        while d.has_remaining() {
                            let c = d.chunk();
                            let n = c.len();
                            if let Some(Stop::Limit(_)) = self.inspector.feed(c) {
                                over_limit = true;
                            }
                            prefix.buf.extend_from_slice(c);
                            d.advance(n);
                        }
                        if over_limit {
                            return Poll::Ready(Verdict::HandOn);
                        }
                        match self.inspector.first_event() {
                            FirstEvent::Pending => {}
                            FirstEvent::Error(e) => return Poll::Ready(Verdict::Failed(e.clone())),
                            FirstEvent::Normal | FirstEvent::NoEvent => {
                                return Poll::Ready(Verdict::HandOn);
                            }
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            prefix.trailers = Some(t);
                            prefix.done = true;
                        }
                    }
                },
                Some(Err(e)) => {
                    prefix.error = Some(e.into());
                    prefix.done = true;
                }
            }
        }
        if prefix.error.is_some() {
            return Poll::Ready(Verdict::BodyFailed);
        }
        // The stream ended while no event had come: an error left in an unterminated block
        // still counts, otherwise this is the "no content generated" case.
        let _ = self.inspector.finish();
        Poll::Ready(match self.inspector.first_event() {
            FirstEvent::Error(e) => Verdict::Failed(e.clone()),
            FirstEvent::Normal => Verdict::HandOn,
            FirstEvent::Pending | FirstEvent::NoEvent => Verdict::Failed(ApiError::new(
                ErrorKind::ServiceUnavailable,
                "the stream ended before its first event (no content generated)",
            )),
        })
    }
}

/// Adds what the response head says to an in-band error: the retry hint (only when the event
/// carried none: the event's own hint wins), `x-should-retry`, and the request id.
pub(crate) fn with_head_hints(mut api: ApiError, headers: &HeaderMap) -> ApiError {
    let present = Present::scan(headers);
    let found = hints::read(headers, present, None, &|| ParseOptions::new().wall_clock());
    let request_id = present.request_id();
    if found.retry_after.is_none() && found.should_retry.is_none() && request_id.is_none() {
        return api;
    }
    let inner = api.inner_mut();
    if inner.retry_after.is_none() {
        if let Some((d, source)) = found.retry_after {
            inner.retry_after = Some(d);
            inner.retry_after_source = Some(source);
        }
    }
    if let Some(b) = found.should_retry {
        inner.should_retry = Some(b);
    }
    if inner.request_id.is_none() {
        inner.request_id = request_id.map(String::into_boxed_str);
    }
    api
}
