use super::{
    RetryLayer,
    body::{ReplayBody, ResponseBody},
    future::{ResponseFuture, SavedRequest},
    layer::Config,
};
use crate::BoxError;
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};
use tower::Service;

/// Retries requests to the inner service as [`RetryLayer`] configures. See the
/// [module docs](super) for the rules.
///
/// The inner service receives the request with its body wrapped in a [`ReplayBody`] (same
/// `Data` type); the caller receives the response with its body wrapped in a [`ResponseBody`].
/// Every error is a [`RetryError`](super::RetryError) inside a [`BoxError`].
pub struct Retry<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with the configuration of `layer`.
    pub fn new(inner: S, layer: RetryLayer) -> Retry<S> {
        Retry {
            inner,
            config: layer.config,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone> Clone for Retry<S> {
    fn clone(&self) -> Retry<S> {
        Retry {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Retry<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

/// A random idempotency key: 32 lowercase hex digits (128 bits from `fastrand`).
fn idempotency_key() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut out = [0u8; 32];
    for b in out.iter_mut().rev() {
        *b = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Retry<S>
where
    S: Service<Request<ReplayBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    S::Error: Into<BoxError>,
    ReqBody: Body + Unpin,
    ReqBody::Data: Into<Bytes> + From<Bytes>,
    ReqBody::Error: Into<BoxError>,
    ResBody: Body,
    ResBody::Data: From<Bytes>,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = BoxError;
    type Future = ResponseFuture<S, S::Future, ReqBody, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(|e| {
            super::RetryError::new(0, super::error::Reason::Transport, None, Some(e.into())).into()
        })
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &*self.config;
        // The request is changed in place, not taken apart and rebuilt: on the success path
        // the cost of this layer is mostly moving these values around.
        if let Some(name) = &config.idempotency_header {
            if !req.headers().contains_key(name) {
                req.headers_mut().insert(name.clone(), idempotency_key());
            }
        }
        if let Some(name) = &config.attempt_header {
            req.headers_mut()
                .insert(name.clone(), HeaderValue::from_static("0"));
        }
        if let Some(budget) = &config.budget {
            budget.deposit();
        }
        // Never hold or copy a request that cannot be retried.
        if config.max_retries == 0 {
            let future = self.inner.call(req.map(ReplayBody::passthrough));
            return ResponseFuture::new(future, self.inner.clone(), self.config.clone(), None);
        }
        let mut source = None;
        let req = req.map(|body| {
            let (body, src) = ReplayBody::first(body, config.max_replay_bytes);
            source = src;
            body
        });
        let saved = source.map(|source| SavedRequest::new(&req, source));
        let future = self.inner.call(req);
        ResponseFuture::new(future, self.inner.clone(), self.config.clone(), saved)
    }
}
