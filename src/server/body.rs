use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    pin::Pin,
    task::{Context, Poll},
};

pin_project! {
    /// The body of every layer in this module: either the inner body, passed through untouched,
    /// or a buffer of bytes the layer produced (a rendered error, a request body a guard read).
    ///
    /// It converts `From<Bytes>`, so layers that build their own answers can be stacked in any
    /// order.
    pub struct ServerBody<B> {
        #[pin]
        inner: Inner<B>,
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Body { #[pin] body: B },
        Full { data: Option<Bytes> },
    }
}

impl<B> ServerBody<B> {
    /// Wraps an inner body, passed through unchanged.
    pub fn new(body: B) -> ServerBody<B> {
        ServerBody {
            inner: Inner::Body { body },
        }
    }

    /// A complete body made of `data`.
    pub fn full(data: Bytes) -> ServerBody<B> {
        ServerBody {
            inner: Inner::Full {
                data: (!data.is_empty()).then_some(data),
            },
        }
    }

    /// Whether this body was produced by the layer (a buffer) rather than passed through.
    pub fn is_buffered(&self) -> bool {
        matches!(self.inner, Inner::Full { .. })
    }
}

impl<B> From<Bytes> for ServerBody<B> {
    fn from(data: Bytes) -> ServerBody<B> {
        ServerBody::full(data)
    }
}

impl<B> Body for ServerBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        match self.project().inner.project() {
            InnerProj::Body { body } => body.poll_frame(cx),
            InnerProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Body { body } => body.is_end_stream(),
            Inner::Full { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Body { body } => body.size_hint(),
            Inner::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for ServerBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Inner::Body { .. } => f.write_str("ServerBody::Inner"),
            Inner::Full { data } => f
                .debug_struct("ServerBody::Full")
                .field("len", &data.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}
