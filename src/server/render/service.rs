use super::{RenderErrorLayer, ResponseFuture};
use crate::{
    BoxError,
    server::{ServerBody, response::request_id},
};
use bytes::Bytes;
use http::{Request, Response};
use std::{
    convert::Infallible,
    fmt,
    task::{Context, Poll},
};
use tower::Service;

/// Middleware that answers every error in one dialect, so its `Error` is [`Infallible`].
///
/// Built by [`RenderErrorLayer`]; see the [module docs](super).
pub struct RenderError<S> {
    pub(crate) inner: S,
    pub(crate) config: RenderErrorLayer,
    pub(crate) ready_error: Option<BoxError>,
}

impl<S: Clone> Clone for RenderError<S> {
    fn clone(&self) -> Self {
        RenderError {
            inner: self.inner.clone(),
            config: self.config.clone(),
            ready_error: None,
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for RenderError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderError")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S> RenderError<S> {
    /// Wraps `inner`, rendering in the layer's configuration.
    pub fn new(inner: S, layer: RenderErrorLayer) -> RenderError<S> {
        tower::Layer::layer(&layer, inner)
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RenderError<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes>,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        if self.ready_error.is_some() {
            return Poll::Ready(Ok(()));
        }
        match std::task::ready!(self.inner.poll_ready(cx)) {
            Ok(()) => {}
            // Held and answered by the next call: an axum route may not fail.
            Err(e) => self.ready_error = Some(e.into()),
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let request_id = request_id(req.headers()).map(Box::from);
        match self.ready_error.take() {
            Some(e) => ResponseFuture::failed(e, request_id, self.config.clone()),
            None => ResponseFuture::new(self.inner.call(req), request_id, self.config.clone()),
        }
    }
}
