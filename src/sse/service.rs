use super::{ResponseFuture, SseErrorLayer};
use http::{Request, Response};
use std::task::{Context, Poll};
use tower::Service;

/// The service built by [`SseErrorLayer`].
#[derive(Clone, Debug)]
pub struct SseError<S> {
    pub(crate) inner: S,
    pub(crate) layer: SseErrorLayer,
}

impl<S> SseError<S> {
    /// Wraps `inner` with the default settings of [`SseErrorLayer::new`].
    pub fn new(inner: S) -> SseError<S> {
        SseError {
            inner,
            layer: SseErrorLayer::new(),
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for SseError<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<super::ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture {
            inner: self.inner.call(req),
            layer: self.layer,
        }
    }
}
