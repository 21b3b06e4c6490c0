use super::inspect::{Inspector, Stop};
use super::{InBandReport, Mode};
use crate::BoxError;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    collections::VecDeque,
    pin::Pin,
    task::{Context, Poll, ready},
};

pin_project! {
    /// The response body of [`SseError`](super::SseError).
    ///
    /// A `text/event-stream` body is inspected: its frames pass through unchanged until an
    /// in-band error, which ends the body (see [`SseErrorLayer`](super::SseErrorLayer)). Any
    /// other body is passed through as is.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Plain { #[pin] inner: B },
        Inspected { #[pin] inner: B, state: State },
    }
}

struct State {
    inspector: Inspector,
    mode: Mode,
    report: InBandReport,
    /// Chunks already inspected (held by the retry layer), served before `inner`.
    held: VecDeque<Bytes>,
    pending: Option<BoxError>,
    done: bool,
}

impl State {
    /// Inspects one chunk; returns how many bytes of it to pass on and the error that follows
    /// them, if the body must fail.
    #[inline]
    fn inspect(&mut self, chunk: &[u8]) -> Option<(usize, BoxError)> {
        let stop = self.inspector.feed(chunk);
        if stop.is_none() && !self.inspector.has_content_filter() {
            return None;
        }
        self.apply(stop, chunk.len())
    }

    /// Records what a `feed` found; returns the cut and the error when the body must fail.
    fn apply(&mut self, stop: Option<Stop>, chunk_len: usize) -> Option<(usize, BoxError)> {
        if let Some(e) = self.inspector.take_content_filter() {
            self.report.set_content_filter(e);
        }
        match stop? {
            Stop::InBand { at, error } => {
                self.report.set_error(error.clone());
                (self.mode == Mode::Fail).then(|| (at, Box::new(error) as BoxError))
            }
            Stop::Limit(e) => {
                self.report.set_limit(e.clone());
                (self.mode == Mode::Fail).then(|| (chunk_len, Box::new(e) as BoxError))
            }
        }
    }

    fn finish(&mut self) -> Option<BoxError> {
        let found = self.inspector.finish();
        if let Some(e) = self.inspector.take_content_filter() {
            self.report.set_content_filter(e);
        }
        let error = found?;
        self.report.set_error(error.clone());
        (self.mode == Mode::Fail).then(|| Box::new(error) as BoxError)
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn plain(inner: B) -> Self {
        ResponseBody {
            kind: Kind::Plain { inner },
        }
    }

    pub(crate) fn inspected(
        inner: B,
        inspector: Inspector,
        mode: Mode,
        report: InBandReport,
    ) -> Self {
        ResponseBody::resume(inner, inspector, VecDeque::new(), None, mode, report)
    }

    /// For the retry layer: a body that first re-serves `held` (chunks already fed to
    /// `inspector`, in order) and then goes on with `inner`, inspecting with the same state.
    ///
    /// `last_stop` is what `feed` returned for the last held chunk: an in-band error found
    /// after the first event in that same chunk cuts the chunk and fails the body after it, as
    /// if the chunk had come through this body.
    pub(crate) fn resume(
        inner: B,
        inspector: Inspector,
        mut held: VecDeque<Bytes>,
        last_stop: Option<Stop>,
        mode: Mode,
        report: InBandReport,
    ) -> Self {
        let mut state = State {
            inspector,
            mode,
            report,
            held: VecDeque::new(),
            pending: None,
            done: false,
        };
        let last_len = held.back().map_or(0, Bytes::len);
        if let Some((at, error)) = state.apply(last_stop, last_len) {
            if let Some(last) = held.back_mut() {
                last.truncate(at);
            }
            state.pending = Some(error);
        }
        held.retain(|b| !b.is_empty());
        state.held = held;
        ResponseBody {
            kind: Kind::Inspected { inner, state },
        }
    }

    /// Whether this body is inspected (the response was `text/event-stream`).
    pub fn is_inspected(&self) -> bool {
        matches!(self.kind, Kind::Inspected { .. })
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Plain { inner } => inner.poll_frame(cx).map_err(Into::into),
            KindProj::Inspected { mut inner, state } => {
                if let Some(chunk) = state.held.pop_front() {
                    if state.held.is_empty()
                        && state.pending.is_none()
                        && !state.done
                        && inner.is_end_stream()
                    {
                        state.pending = state.finish();
                        state.done = state.pending.is_none();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if let Some(e) = state.pending.take() {
                    state.done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                if state.done {
                    return Poll::Ready(None);
                }
                let frame = match ready!(inner.as_mut().poll_frame(cx)) {
                    None => {
                        state.done = true;
                        return Poll::Ready(state.finish().map(Err));
                    }
                    Some(Err(e)) => {
                        state.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                    Some(Ok(frame)) => frame,
                };
                // Looked at in place: a normal frame is passed on as it came, not rebuilt.
                let cut = frame.data_ref().and_then(|chunk| state.inspect(chunk));
                if let Some((at, error)) = cut {
                    if at == 0 {
                        state.done = true;
                        return Poll::Ready(Some(Err(error)));
                    }
                    state.pending = Some(error);
                    let mut chunk = frame.into_data().unwrap_or_default();
                    chunk.truncate(at);
                    return Poll::Ready(Some(Ok(Frame::data(chunk))));
                }
                if inner.is_end_stream() {
                    state.pending = state.finish();
                    if state.pending.is_none() {
                        state.done = true;
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Plain { inner } => inner.is_end_stream(),
            Kind::Inspected { inner, state } => {
                if state.pending.is_some() || !state.held.is_empty() {
                    false
                } else {
                    state.done || inner.is_end_stream()
                }
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Plain { inner } => inner.size_hint(),
            Kind::Inspected { inner, state } => {
                if state.done && state.pending.is_none() {
                    return SizeHint::with_exact(0);
                }
                if state.pending.is_some() {
                    return SizeHint::default();
                }
                let held: u64 = state.held.iter().map(|b| b.len() as u64).sum();
                let inner = inner.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(held));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(held));
                }
                hint
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Plain { .. } => f.debug_struct("ResponseBody").finish_non_exhaustive(),
            Kind::Inspected { state, .. } => f
                .debug_struct("ResponseBody")
                .field("inspector", &state.inspector)
                .field("mode", &state.mode)
                .finish_non_exhaustive(),
        }
    }
}
