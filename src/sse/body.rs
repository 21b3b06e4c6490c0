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
    /// Cut before the error event instead of after it (`SseErrorLayer::withhold_error_event`).
    withhold: bool,
    /// How the previous chunk ended (read only when `withhold`).
    prev_end: ChunkEnd,
    report: InBandReport,
    /// Chunks already inspected (held by the retry layer), served before `inner`.
    held: VecDeque<Bytes>,
    pending: Option<BoxError>,
    done: bool,
}

impl State {
    /// A data frame past the tiny-chunk case: inspects it, cuts it when the body must fail,
    /// and finishes when it was `inner`'s last frame (`ended`).
    #[inline(never)]
    fn data(&mut self, chunk: Bytes, ended: bool) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some((at, error)) = self.inspect(&chunk) {
            return Poll::Ready(Some(self.cut(chunk, at, error)));
        }
        if ended {
            self.end_after_frame();
        }
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    /// Inspects one chunk; returns how many bytes of it to pass on and the error that follows
    /// them, if the body must fail.
    fn inspect(&mut self, chunk: &[u8]) -> Option<(usize, BoxError)> {
        // `append_tiny` was tried already (or the frame is the last one).
        let stop = self.inspector.feed_chunk(chunk);
        if stop.is_none() {
            if self.withhold {
                self.prev_end = ChunkEnd::of(chunk);
            }
            if !self.inspector.has_content_filter() {
                return None;
            }
        }
        self.apply(stop, chunk)
    }

    /// Records what a `feed` found; returns the cut and the error when the body must fail.
    fn apply(&mut self, stop: Option<Stop>, chunk: &[u8]) -> Option<(usize, BoxError)> {
        if let Some(e) = self.inspector.take_content_filter() {
            self.report.set_content_filter(e);
        }
        match stop? {
            Stop::InBand { at, error } => {
                self.report.set_error(error.clone());
                let at = if self.withhold {
                    block_start(chunk.get(..at).unwrap_or(chunk), self.prev_end).unwrap_or(at)
                } else {
                    at
                };
                (self.mode == Mode::Fail).then(|| (at, Box::new(error) as BoxError))
            }
            Stop::Limit(e) => {
                self.report.set_limit(e.clone());
                (self.mode == Mode::Fail).then(|| (chunk.len(), Box::new(e) as BoxError))
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

    /// Serves what is queued before `inner` is polled again: a held chunk, then the pending
    /// error, then the end. `inner_ended`: `inner.is_end_stream()`.
    #[cold]
    #[inline(never)]
    fn serve_held(&mut self, inner_ended: bool) -> Option<Result<Frame<Bytes>, BoxError>> {
        if let Some(chunk) = self.held.pop_front() {
            if self.held.is_empty() && self.pending.is_none() && !self.done && inner_ended {
                self.pending = self.finish();
                self.done = self.pending.is_none();
            }
            return Some(Ok(Frame::data(chunk)));
        }
        self.done = true;
        self.pending.take().map(Err)
    }

    /// `inner` ended: the error found at the end of the stream, if the body must fail.
    #[cold]
    #[inline(never)]
    fn end(&mut self) -> Option<BoxError> {
        self.done = true;
        self.finish()
    }

    /// The frame just passed on was `inner`'s last one.
    #[cold]
    #[inline(never)]
    fn end_after_frame(&mut self) {
        self.pending = self.finish();
        if self.pending.is_none() {
            self.done = true;
        }
    }

    /// Cuts `chunk` after `at` bytes; the error follows it.
    #[cold]
    #[inline(never)]
    fn cut(
        &mut self,
        mut chunk: Bytes,
        at: usize,
        error: BoxError,
    ) -> Result<Frame<Bytes>, BoxError> {
        if at == 0 {
            self.done = true;
            return Err(error);
        }
        self.pending = Some(error);
        chunk.truncate(at);
        Ok(Frame::data(chunk))
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
            withhold: false,
            // The stream's start is a block boundary.
            prev_end: ChunkEnd::Boundary { cr: false },
            report,
            held: VecDeque::new(),
            pending: None,
            done: false,
        };
        let last = held.back().cloned().unwrap_or_default();
        if held.len() >= 2 {
            state.prev_end = ChunkEnd::of(&held[held.len() - 2]);
        }
        if let Some((at, error)) = state.apply(last_stop, &last) {
            if let Some(last) = held.back_mut() {
                last.truncate(at);
            }
            state.pending = Some(error);
        }
        // What follows the held chunks continues after the last of them (with none held, the
        // stream's start stays the boundary it is).
        if !held.is_empty() {
            state.prev_end = ChunkEnd::of(&last);
        }
        held.retain(|b| !b.is_empty());
        state.held = held;
        ResponseBody {
            kind: Kind::Inspected { inner, state },
        }
    }

    /// Cuts the body before the error event rather than after it (see
    /// [`SseErrorLayer::withhold_error_event`](super::SseErrorLayer::withhold_error_event)).
    pub(crate) fn withholding(mut self, withhold: bool) -> Self {
        if let Kind::Inspected { state, .. } = &mut self.kind {
            state.withhold = withhold;
        }
        self
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

    /// The common case with tiny chunks (nothing held, nothing pending, a data frame that only
    /// continues an open line: the inspector's `append_tiny`) is kept small and inline;
    /// everything else (re-serving held chunks, the pending error, the end of the stream, a
    /// chunk with a line end, a cut) is out of line, so that a frame costs little more than
    /// the inner body's own.
    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Plain { inner } => inner.poll_frame(cx).map_err(Into::into),
            KindProj::Inspected { mut inner, state } => {
                if !state.held.is_empty() || state.pending.is_some() || state.done {
                    return Poll::Ready(state.serve_held(inner.is_end_stream()));
                }
                let frame = match ready!(inner.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => frame,
                    None => return Poll::Ready(state.end().map(Err)),
                    Some(Err(e)) => {
                        state.done = true;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                };
                let chunk = match frame.into_data() {
                    Ok(chunk) => chunk,
                    Err(trailers) => {
                        if inner.is_end_stream() {
                            state.end_after_frame();
                        }
                        return Poll::Ready(Some(Ok(trailers)));
                    }
                };
                let ended = inner.is_end_stream();
                if ended || !state.inspector.append_tiny(&chunk) {
                    return state.data(chunk, ended);
                }
                // More of an open line, with no line end: nothing can be found, and the chunk
                // ends mid-line. The frame is rebuilt rather than moved: a data frame is the
                // chunk's four words, while a `Frame` is as large as a header map.
                state.prev_end = ChunkEnd::Unknown;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
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

/// How a chunk ended, for [`block_start`] on the next one. Conservative: `Unknown` whenever
/// one chunk alone cannot tell (a chunk of only line ends, for instance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkEnd {
    /// Mid-line, or not known.
    Unknown,
    /// After a line end that ended a non-empty line; `cr`: the line end was a CR (an LF first
    /// in the next chunk belongs to it).
    LineEnd { cr: bool },
    /// After an empty line: the next chunk starts a new block.
    Boundary { cr: bool },
}

impl ChunkEnd {
    fn of(chunk: &[u8]) -> ChunkEnd {
        let (rest, cr) = match chunk {
            [rest @ .., b'\r', b'\n'] => (rest, false),
            [rest @ .., b'\n'] => (rest, false),
            [rest @ .., b'\r'] => (rest, true),
            _ => return ChunkEnd::Unknown,
        };
        match rest.last() {
            Some(b'\n' | b'\r') => ChunkEnd::Boundary { cr },
            Some(_) => ChunkEnd::LineEnd { cr },
            None => ChunkEnd::Unknown,
        }
    }
}

/// Where the event block that ends `bytes` (with its final empty line) begins: just after the
/// empty line before it, or at the chunk's start when the previous chunk ended with an empty
/// line. `None` when the block began in an earlier chunk (its first bytes were passed on) or
/// that cannot be told. Only runs on the error path.
fn block_start(bytes: &[u8], prev: ChunkEnd) -> Option<usize> {
    let (mut pos, mut line_start) = (0, usize::MAX);
    let mut boundary = None;
    match prev {
        ChunkEnd::Unknown => {}
        ChunkEnd::LineEnd { cr } | ChunkEnd::Boundary { cr } => {
            if cr && bytes.first() == Some(&b'\n') {
                pos = 1;
            }
            line_start = pos;
            if matches!(prev, ChunkEnd::Boundary { .. }) {
                boundary = Some(pos);
            }
        }
    }
    let mut ends = (None, None); // the last two empty-line ends
    while let Some(i) = memchr::memchr2(b'\n', b'\r', &bytes[pos..]) {
        let at = pos + i;
        let end = if bytes[at] == b'\r' && bytes.get(at + 1) == Some(&b'\n') {
            at + 2
        } else {
            at + 1
        };
        if at == line_start {
            ends = (ends.1, Some(end));
        }
        line_start = end;
        pos = end;
    }
    if ends.1 != Some(bytes.len()) {
        return None;
    }
    ends.0.or(boundary)
}

#[cfg(test)]
mod tests {
    use super::{ChunkEnd, ResponseBody, block_start};
    use crate::sse::{InBandReport, Mode, inspect::Inspector};
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use std::collections::VecDeque;

    /// A body resumed after held chunks reads the next chunk as following the last held one:
    /// an error event that starts right after the held chunks' final empty line is withheld
    /// whole.
    #[tokio::test]
    async fn resumed_body_continues_after_the_last_held_chunk() {
        // The last held chunk ends the block the one before it left open: only the last one
        // tells that the next chunk starts a new block.
        let held = ["data: a", "\n\n"];
        let mut inspector = Inspector::new(usize::MAX, usize::MAX);
        for chunk in held {
            assert!(inspector.feed_chunk(chunk.as_bytes()).is_none());
        }
        let inner = Full::new(Bytes::from_static(
            b"data: {\"error\":{\"message\":\"down\",\"type\":\"server_error\"}}\n\n",
        ));
        let held = held.iter().map(|c| Bytes::from_static(c.as_bytes()));
        let mut body = ResponseBody::resume(
            inner,
            inspector,
            held.collect::<VecDeque<_>>(),
            None,
            Mode::Fail,
            InBandReport::new(),
        )
        .withholding(true);
        let mut out = Vec::new();
        let error = loop {
            match body.frame().await {
                Some(Ok(frame)) => out.extend_from_slice(&frame.into_data().unwrap_or_default()),
                Some(Err(e)) => break e,
                None => panic!("the body ended without its in-band error"),
            }
        };
        assert_eq!(out, b"data: a\n\n");
        assert!(error.is::<crate::ApiError>(), "{error}");
    }

    #[test]
    fn block_start_finds_the_last_event() {
        let b = ChunkEnd::Boundary { cr: false };
        let u = ChunkEnd::Unknown;
        let cases: &[(&[u8], ChunkEnd, Option<usize>)] = &[
            (b"data: a\n\ndata: {\"error\":1}\n\n", u, Some(9)),
            (b"data: {\"error\":1}\n\n", b, Some(0)),
            (b"data: {\"error\":1}\n\n", u, None),
            (b"data: a\r\n\r\n: ping\r\ndata: e\r\n\r\n", u, Some(11)),
            (b"data: a\r\rdata: e\r\r", u, Some(9)),
            (b"rror\":1}\n\n", u, None),
            (b"\n\ndata: e\n\n", ChunkEnd::LineEnd { cr: false }, Some(2)),
            (b"\ndata: e\n\n", u, None),
            // The LF of a CR LF split across chunks is not an empty line.
            (b"\ndata: e\n\n", ChunkEnd::LineEnd { cr: true }, None),
            (b"\ndata: e\n\n", ChunkEnd::Boundary { cr: true }, Some(1)),
            (b"\n", ChunkEnd::LineEnd { cr: false }, None),
        ];
        for (bytes, prev, start) in cases {
            assert_eq!(
                block_start(bytes, *prev),
                *start,
                "{} after {prev:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn chunk_ends() {
        assert_eq!(
            ChunkEnd::of(b"data: a\n\n"),
            ChunkEnd::Boundary { cr: false }
        );
        assert_eq!(
            ChunkEnd::of(b"data: a\r\n\r\n"),
            ChunkEnd::Boundary { cr: false }
        );
        assert_eq!(
            ChunkEnd::of(b"data: a\n\r"),
            ChunkEnd::Boundary { cr: true }
        );
        assert_eq!(ChunkEnd::of(b"data: a\r"), ChunkEnd::LineEnd { cr: true });
        assert_eq!(ChunkEnd::of(b"data: a\n"), ChunkEnd::LineEnd { cr: false });
        assert_eq!(ChunkEnd::of(b"data: a"), ChunkEnd::Unknown);
        assert_eq!(ChunkEnd::of(b"\n"), ChunkEnd::Unknown);
    }
}
