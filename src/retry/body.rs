//! The request body that records itself for replay, and the response body that re-serves a
//! classified error body.

use crate::BoxError;
use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    fmt,
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker, ready},
};

pin_project! {
    /// The request body the inner service receives from [`Retry`](super::Retry).
    ///
    /// It yields exactly the bytes (and trailers) of the caller's body, on every attempt:
    ///
    /// - when retrying is impossible (`max_retries(0)`, or a body whose size hint already
    ///   exceeds [`max_replay_bytes`](super::RetryLayer::max_replay_bytes)), it is the caller's
    ///   body, untouched;
    /// - a body that is complete up front (an exact size hint within the limit whose frames are
    ///   ready at once, such as `Full<Bytes>`) is taken as it is: every attempt gets a
    ///   reference-counted clone of the same `Bytes`, nothing is copied;
    /// - any other body (hyper's `Incoming`, a channel stream, tonic's body) streams through on
    ///   the first attempt while each frame is recorded, up to the limit; a retry replays the
    ///   record and then continues with the rest of the original body. Once the record would
    ///   pass the limit it is dropped, the first attempt keeps streaming, and the request is
    ///   not retried.
    ///
    /// Only the latest attempt's body may read: a body left over from an earlier attempt fails
    /// with an error once a newer attempt has started.
    pub struct ReplayBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Passthrough { #[pin] body: B },
        Buffered { data: Option<Bytes>, trailers: Option<Box<HeaderMap>> },
        Shared { log: Arc<Mutex<Log<B>>>, id: u32, pos: usize, yielded: u64, hint: SizeHint, trailers_sent: bool },
    }
}

/// What has been read of the caller's body so far, shared by all attempts of one request.
pub(crate) struct Log<B> {
    body: Option<B>,
    frames: Vec<Bytes>,
    len: usize,
    limit: usize,
    trailers: Option<HeaderMap>,
    pending_error: Option<BoxError>,
    ended: bool,
    overflow: bool,
    failed: bool,
    current: u32,
}

fn lock<B>(log: &Mutex<Log<B>>) -> MutexGuard<'_, Log<B>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The part of a request body the response future keeps to make the next attempt's body.
pub(crate) enum ReplaySource<B> {
    Buffered {
        data: Option<Bytes>,
        // Boxed: trailers on a request are rare, and this keeps the response future small.
        trailers: Option<Box<HeaderMap>>,
    },
    Shared {
        log: Arc<Mutex<Log<B>>>,
        hint: SizeHint,
    },
}

impl<B> ReplayBody<B> {
    /// The caller's body, sent once with no recording.
    pub(crate) fn passthrough(body: B) -> ReplayBody<B> {
        ReplayBody {
            kind: Kind::Passthrough { body },
        }
    }
}

/// What polling a body for a frame gives.
type Polled<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

impl<B> ReplayBody<B>
where
    B: Body + Unpin,
    B::Data: Into<Bytes>,
    B::Error: Into<BoxError>,
{
    /// The first attempt's body and, when the body can be replayed, its source for later
    /// attempts.
    #[inline(always)]
    pub(crate) fn first(mut body: B, limit: usize) -> (ReplayBody<B>, Option<ReplaySource<B>>) {
        // The common case, kept inline: a body of known length within the limit whose one data
        // frame is ready at once (`Full`, a `String`, ...). Anything else, with what this
        // poll gave, goes on in `first_general`.
        let hint = body.size_hint();
        let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
        let mut polled = None;
        if hint.exact().is_some_and(|n| n <= limit64) && !body.is_end_stream() {
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(&mut body).poll_frame(&mut cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_data() && body.is_end_stream() => {
                    let data = frame.into_data().ok().map(Into::into);
                    let attempt = ReplayBody {
                        kind: Kind::Buffered {
                            data: data.clone(),
                            trailers: None,
                        },
                    };
                    return (
                        attempt,
                        Some(ReplaySource::Buffered {
                            data,
                            trailers: None,
                        }),
                    );
                }
                p => polled = Some(p),
            }
        }
        Self::first_general(body, limit, hint, polled)
    }

    /// [`ReplayBody::first`] past the common case. `polled`: what `first` already polled.
    #[inline(never)]
    fn first_general(
        mut body: B,
        limit: usize,
        hint: SizeHint,
        mut polled: Option<Polled<B>>,
    ) -> (ReplayBody<B>, Option<ReplaySource<B>>) {
        let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
        if polled.is_none() && hint.lower() > limit64 {
            return (ReplayBody::passthrough(body), None);
        }
        let mut frames: Vec<Bytes> = Vec::new();
        let mut first: Option<Bytes> = None;
        let mut trailers = None;
        // A frame `first` polled is taken below, even when the body has ended since.
        let mut ended = polled.is_none() && body.is_end_stream();
        let mut error = None;
        if !ended && hint.exact().is_some() {
            // A body whose length is known may already be complete in memory: read what is
            // ready without waiting (a no-op waker; whatever is not ready is polled again later
            // with the real one), so a single-frame body needs no shared record.
            let mut cx = Context::from_waker(Waker::noop());
            for _ in 0..3 {
                let p = polled
                    .take()
                    .unwrap_or_else(|| Pin::new(&mut body).poll_frame(&mut cx));
                match p {
                    Poll::Ready(None) => ended = true,
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(d) => {
                            let d: Bytes = d.into();
                            if first.is_none() && trailers.is_none() {
                                first = Some(d);
                            } else {
                                frames.push(d);
                            }
                        }
                        Err(frame) => {
                            if let Ok(t) = frame.into_trailers() {
                                trailers = Some(t);
                            }
                        }
                    },
                    Poll::Ready(Some(Err(e))) => error = Some(e.into()),
                    Poll::Pending => {}
                }
                ended = ended || (error.is_none() && body.is_end_stream());
                if ended || error.is_some() || !frames.is_empty() {
                    break;
                }
            }
            if ended && error.is_none() && frames.is_empty() {
                let trailers = trailers.map(Box::new);
                let attempt = ReplayBody {
                    kind: Kind::Buffered {
                        data: first.clone(),
                        trailers: trailers.clone(),
                    },
                };
                return (
                    attempt,
                    Some(ReplaySource::Buffered {
                        data: first,
                        trailers,
                    }),
                );
            }
        }
        if let Some(f) = first {
            frames.insert(0, f);
        }
        let len = frames.iter().map(Bytes::len).sum();
        let log = Log {
            body: if ended || error.is_some() {
                None
            } else {
                Some(body)
            },
            frames,
            len,
            limit,
            trailers,
            failed: error.is_some(),
            pending_error: error,
            ended,
            overflow: false,
            current: 0,
        };
        let log = Arc::new(Mutex::new(log));
        let attempt = ReplayBody {
            kind: Kind::Shared {
                log: log.clone(),
                id: 0,
                pos: 0,
                yielded: 0,
                hint,
                trailers_sent: false,
            },
        };
        (attempt, Some(ReplaySource::Shared { log, hint }))
    }
}

impl<B> ReplaySource<B> {
    /// Whether the whole body can still be produced again.
    pub(crate) fn is_replayable(&self) -> bool {
        match self {
            ReplaySource::Buffered { .. } => true,
            ReplaySource::Shared { log, .. } => {
                let log = lock(log);
                !log.overflow && !log.failed
            }
        }
    }

    /// The body for the next attempt; older attempts' bodies stop reading.
    pub(crate) fn next_attempt(&self) -> ReplayBody<B> {
        let kind = match self {
            ReplaySource::Buffered { data, trailers } => Kind::Buffered {
                data: data.clone(),
                trailers: trailers.clone(),
            },
            ReplaySource::Shared { log, hint } => {
                let id = {
                    let mut l = lock(log);
                    l.current = l.current.wrapping_add(1);
                    l.current
                };
                Kind::Shared {
                    log: log.clone(),
                    id,
                    pos: 0,
                    yielded: 0,
                    hint: *hint,
                    trailers_sent: false,
                }
            }
        };
        ReplayBody { kind }
    }
}

/// A replay body from an earlier attempt was polled after a newer attempt started, or the
/// caller's body failed on an earlier attempt.
#[derive(Debug)]
struct StaleBody;

impl fmt::Display for StaleBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("request body of a superseded retry attempt")
    }
}

impl std::error::Error for StaleBody {}

impl<B> Body for ReplayBody<B>
where
    B: Body + Unpin,
    B::Data: Into<Bytes> + From<Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Passthrough { body } => body.poll_frame(cx).map_err(Into::into),
            KindProj::Buffered { data, trailers } => {
                if let Some(d) = data.take() {
                    return Poll::Ready(Some(Ok(Frame::data(d.into()))));
                }
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(*t))))
            }
            KindProj::Shared {
                log,
                id,
                pos,
                yielded,
                trailers_sent,
                ..
            } => {
                let mut log = lock(log);
                if log.current != *id {
                    return Poll::Ready(Some(Err(StaleBody.into())));
                }
                if let Some(d) = log.frames.get(*pos) {
                    let d = d.clone();
                    *pos += 1;
                    *yielded = yielded.saturating_add(d.len() as u64);
                    return Poll::Ready(Some(Ok(Frame::data(d.into()))));
                }
                if let Some(e) = log.pending_error.take() {
                    return Poll::Ready(Some(Err(e)));
                }
                if log.failed {
                    return Poll::Ready(Some(Err(StaleBody.into())));
                }
                if log.ended || log.body.is_none() {
                    if !*trailers_sent {
                        *trailers_sent = true;
                        if let Some(t) = log.trailers.clone() {
                            return Poll::Ready(Some(Ok(Frame::trailers(t))));
                        }
                    }
                    return Poll::Ready(None);
                }
                let log = &mut *log;
                let Some(body) = log.body.as_mut() else {
                    return Poll::Ready(None);
                };
                let polled = ready!(Pin::new(&mut *body).poll_frame(cx));
                let end = body.is_end_stream();
                let out = match polled {
                    None => {
                        log.ended = true;
                        *trailers_sent = true;
                        None
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(d) => {
                            let d: Bytes = d.into();
                            *yielded = yielded.saturating_add(d.len() as u64);
                            if !log.overflow {
                                match log.len.checked_add(d.len()) {
                                    Some(n) if n <= log.limit => {
                                        log.len = n;
                                        log.frames.push(d.clone());
                                        *pos += 1;
                                    }
                                    _ => {
                                        // Over the limit: stop recording and free the record;
                                        // this attempt keeps streaming, no retry follows.
                                        log.overflow = true;
                                        log.frames = Vec::new();
                                    }
                                }
                            }
                            Some(Ok(Frame::data(d.into())))
                        }
                        Err(frame) => match frame.into_trailers() {
                            Ok(t) => {
                                log.trailers = Some(t.clone());
                                *trailers_sent = true;
                                Some(Ok(Frame::trailers(t)))
                            }
                            // A frame kind we do not know: pass nothing, poll again.
                            Err(_) => {
                                cx.waker().wake_by_ref();
                                return Poll::Pending;
                            }
                        },
                    },
                    Some(Err(e)) => {
                        log.failed = true;
                        log.body = None;
                        return Poll::Ready(Some(Err(e.into())));
                    }
                };
                if end || out.is_none() {
                    log.ended = true;
                    log.body = None;
                }
                Poll::Ready(out)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Passthrough { body } => body.is_end_stream(),
            Kind::Buffered { data, trailers } => data.is_none() && trailers.is_none(),
            Kind::Shared {
                log,
                id,
                pos,
                trailers_sent,
                ..
            } => {
                let log = lock(log);
                log.current == *id
                    && *pos >= log.frames.len()
                    && log.ended
                    && log.pending_error.is_none()
                    && (*trailers_sent || log.trailers.is_none())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Passthrough { body } => body.size_hint(),
            Kind::Buffered { data, .. } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            Kind::Shared { hint, yielded, .. } => {
                let mut h = SizeHint::new();
                h.set_lower(hint.lower().saturating_sub(*yielded));
                if let Some(u) = hint.upper() {
                    h.set_upper(u.saturating_sub(*yielded));
                }
                h
            }
        }
    }
}

impl<B> fmt::Debug for ReplayBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mode = match &self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Buffered { .. } => "buffered",
            Kind::Shared { .. } => "recorded",
        };
        f.debug_struct("ReplayBody")
            .field("mode", &mode)
            .finish_non_exhaustive()
    }
}

pin_project! {
    /// The response body [`Retry`](super::Retry) returns.
    ///
    /// A response that was not read is passed through as it came. A response whose error body
    /// was read to classify it yields that prefix first, then the rest of the same inner body,
    /// so the caller receives the complete body byte for byte (frame boundaries may differ).
    pub struct ResponseBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    // An unread body is the inner body and nothing more, so that passing a response through
    // costs one tag; everything a read body needs is behind one box.
    #[project = InnerProj]
    enum Inner<B> {
        Plain { #[pin] body: B },
        Read { read: Box<Replayed<B>> },
    }
}

/// A response body that was read for classification: what was read, to serve again, and the
/// rest of the inner body.
struct Replayed<B> {
    prefix: Option<Bytes>,
    error: Option<BoxError>,
    trailers: Option<HeaderMap>,
    /// The inner body ended (or failed) while it was read: nothing more comes from it.
    inner_done: bool,
    body: Pin<Box<B>>,
}

impl<B> ResponseBody<B> {
    pub(crate) fn plain(body: B) -> ResponseBody<B> {
        ResponseBody {
            inner: Inner::Plain { body },
        }
    }

    pub(crate) fn replayed(prefix: Prefix, body: Pin<Box<B>>) -> ResponseBody<B> {
        ResponseBody {
            inner: Inner::Read {
                read: Box::new(Replayed {
                    prefix: Some(prefix.buf.freeze()).filter(|b| !b.is_empty()),
                    error: prefix.error,
                    trailers: prefix.trailers,
                    inner_done: prefix.done,
                    body,
                }),
            },
        }
    }
}

impl<B: Body> Replayed<B> {
    fn has_pending(&self) -> bool {
        self.prefix.is_some() || self.error.is_some() || self.trailers.is_some()
    }

    fn pending_prefix(&self) -> u64 {
        self.prefix.as_ref().map_or(0, |p| p.len() as u64)
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = match self.project().inner.project() {
            InnerProj::Plain { body } => ready!(body.poll_frame(cx)),
            InnerProj::Read { read } => {
                if let Some(p) = read.prefix.take() {
                    return Poll::Ready(Some(Ok(Frame::data(p.into()))));
                }
                if let Some(e) = read.error.take() {
                    read.inner_done = true;
                    return Poll::Ready(Some(Err(e)));
                }
                if let Some(t) = read.trailers.take() {
                    return Poll::Ready(Some(Ok(Frame::trailers(t))));
                }
                if read.inner_done {
                    return Poll::Ready(None);
                }
                ready!(read.body.as_mut().poll_frame(cx))
            }
        };
        Poll::Ready(polled.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Plain { body } => body.is_end_stream(),
            Inner::Read { read } => {
                !read.has_pending() && (read.inner_done || read.body.is_end_stream())
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        let read = match &self.inner {
            Inner::Plain { body } => return body.size_hint(),
            Inner::Read { read } => read,
        };
        let prefix = read.pending_prefix();
        if read.inner_done {
            return SizeHint::with_exact(prefix);
        }
        let inner = read.body.size_hint();
        let mut h = SizeHint::new();
        h.set_lower(inner.lower().saturating_add(prefix));
        if let Some(u) = inner.upper() {
            h.set_upper(u.saturating_add(prefix));
        }
        h
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix_len = match &self.inner {
            Inner::Plain { .. } => None,
            Inner::Read { read } => Some(read.prefix.as_ref().map_or(0, Bytes::len)),
        };
        f.debug_struct("ResponseBody")
            .field("prefix_len", &prefix_len)
            .finish_non_exhaustive()
    }
}

/// The bounded prefix of a response body read for classification, plus how the read ended.
#[derive(Default)]
pub(crate) struct Prefix {
    pub(crate) buf: BytesMut,
    pub(crate) trailers: Option<HeaderMap>,
    pub(crate) error: Option<BoxError>,
    pub(crate) done: bool,
}

impl Prefix {
    /// Reads frames until `limit` bytes are buffered, the body ends, or it fails. A frame that
    /// crosses the limit is kept whole (it is already in memory), so the buffer holds at most
    /// `limit` plus one frame.
    pub(crate) fn poll_fill<B>(
        &mut self,
        body: &mut Pin<Box<B>>,
        limit: usize,
        cx: &mut Context<'_>,
    ) -> Poll<()>
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        while !self.done && self.buf.len() < limit {
            if body.is_end_stream() {
                self.done = true;
                break;
            }
            match ready!(body.as_mut().poll_frame(cx)) {
                None => self.done = true,
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(mut d) => {
                        while d.has_remaining() {
                            let c = d.chunk();
                            let n = c.len();
                            self.buf.extend_from_slice(c);
                            d.advance(n);
                        }
                    }
                    Err(frame) => {
                        if let Ok(t) = frame.into_trailers() {
                            self.trailers = Some(t);
                            self.done = true;
                        }
                    }
                },
                Some(Err(e)) => {
                    self.error = Some(e.into());
                    self.done = true;
                }
            }
        }
        Poll::Ready(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::future::poll_fn;

    type Item = Result<Frame<Bytes>, BoxError>;

    fn stream(
        items: Vec<Item>,
    ) -> StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Item>>> {
        StreamBody::new(futures_util::stream::iter(items))
    }

    fn data(s: &'static str) -> Item {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    fn trailers() -> HeaderMap {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", http::HeaderValue::from_static("0"));
        t
    }

    async fn fill<B>(body: B, limit: usize) -> (Prefix, Pin<Box<B>>)
    where
        B: Body,
        B::Error: Into<BoxError>,
    {
        let mut body = Box::pin(body);
        let mut prefix = Prefix::default();
        poll_fn(|cx| prefix.poll_fill(&mut body, limit, cx)).await;
        (prefix, body)
    }

    #[tokio::test]
    async fn prefix_is_re_served_then_the_rest_then_trailers() {
        let body = stream(vec![
            data("abc"),
            data("def"),
            data("ghi"),
            Ok(Frame::trailers(trailers())),
        ]);
        let (prefix, body) = fill(body, 4).await;
        assert_eq!(&prefix.buf[..], b"abcdef");
        assert!(!prefix.done);
        let out = ResponseBody::replayed(prefix, body)
            .collect()
            .await
            .unwrap();
        assert_eq!(out.trailers(), Some(&trailers()));
        assert_eq!(out.to_bytes(), "abcdefghi");
    }

    #[tokio::test]
    async fn a_body_that_ends_or_fails_inside_the_prefix_is_re_served_as_it_was() {
        let (prefix, body) = fill(
            stream(vec![data("x"), Ok(Frame::trailers(trailers()))]),
            100,
        )
        .await;
        assert!(prefix.done);
        let out = ResponseBody::replayed(prefix, body)
            .collect()
            .await
            .unwrap();
        assert_eq!(
            (out.trailers().cloned(), out.to_bytes()),
            (Some(trailers()), Bytes::from("x"))
        );

        let failing = stream(vec![data("part"), Err("boom".into()), data("never")]);
        let (prefix, body) = fill(failing, 100).await;
        let mut rb = Box::pin(ResponseBody::replayed(prefix, body));
        let first = rb.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "part");
        assert_eq!(rb.frame().await.unwrap().unwrap_err().to_string(), "boom");
        assert!(rb.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_newer_attempt_replays_and_continues_while_an_older_one_stops() {
        let (mut first, source) = ReplayBody::first(
            stream(vec![data("one "), data("two "), data("three")]),
            1024,
        );
        let source = source.unwrap();
        // The first attempt reads one frame and is then abandoned.
        let f = first.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(f, "one ");
        let second = source.next_attempt();
        assert!(first.frame().await.unwrap().is_err());
        assert_eq!(second.collect().await.unwrap().to_bytes(), "one two three");
        assert!(source.is_replayable());
        assert_eq!(
            source.next_attempt().collect().await.unwrap().to_bytes(),
            "one two three"
        );
    }

    #[tokio::test]
    async fn overflow_keeps_streaming_but_ends_replay() {
        let (first, source) = ReplayBody::first(stream(vec![data("12345"), data("67890")]), 6);
        assert_eq!(first.collect().await.unwrap().to_bytes(), "1234567890");
        assert!(!source.unwrap().is_replayable());
    }

    #[tokio::test]
    async fn a_failed_body_is_not_replayable() {
        let (first, source) = ReplayBody::first(stream(vec![data("a"), Err("gone".into())]), 100);
        assert!(first.collect().await.is_err());
        assert!(!source.unwrap().is_replayable());
    }

    /// Frames that are all ready at once, with an exact size hint (as `Full` has, but several).
    struct Ready(std::collections::VecDeque<Frame<Bytes>>, u64);

    impl Body for Ready {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }

        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }

        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.1)
        }
    }

    #[tokio::test]
    async fn ready_bodies_of_known_length_replay_whole() {
        let cases: Vec<(Vec<Frame<Bytes>>, &str, bool)> = vec![
            (vec![Frame::data(Bytes::from("ab"))], "ab", false),
            (
                vec![
                    Frame::data(Bytes::from("ab")),
                    Frame::data(Bytes::from("cd")),
                ],
                "abcd",
                false,
            ),
            (
                vec![Frame::data(Bytes::from("ab")), Frame::trailers(trailers())],
                "ab",
                true,
            ),
            (vec![Frame::trailers(trailers())], "", true),
            (
                vec![
                    Frame::data(Bytes::from("a")),
                    Frame::data(Bytes::from("b")),
                    Frame::data(Bytes::from("c")),
                    Frame::data(Bytes::from("d")),
                    Frame::trailers(trailers()),
                ],
                "abcd",
                true,
            ),
        ];
        for (frames, text, with_trailers) in cases {
            let body = Ready(frames.into(), text.len() as u64);
            let (first, source) = ReplayBody::first(body, 100);
            let source = source.expect("replayable");
            let mut attempt = first;
            for n in 0..3 {
                if n > 0 {
                    // A new attempt stops the older ones: each is read to its end first.
                    attempt = source.next_attempt();
                }
                assert_eq!(attempt.size_hint().exact(), Some(text.len() as u64));
                let out = (&mut attempt).collect().await.unwrap();
                let t = out.trailers().cloned();
                assert_eq!(out.to_bytes(), text);
                assert_eq!(t, with_trailers.then(trailers), "{text}");
            }
        }
    }

    #[test]
    fn full_bodies_are_shared_not_copied() {
        let bytes = Bytes::from_static(b"payload");
        let (first, source) = ReplayBody::first(http_body_util::Full::new(bytes.clone()), 100);
        assert!(matches!(first.kind, Kind::Buffered { .. }));
        match source {
            Some(ReplaySource::Buffered { data: Some(d), .. }) => {
                assert_eq!(d.as_ptr(), bytes.as_ptr())
            }
            _ => panic!("expected a buffered source"),
        }
        let (_, none) = ReplayBody::first(http_body_util::Full::new(bytes), 3);
        assert!(none.is_none());
    }
}
