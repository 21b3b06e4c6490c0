//! Mid-stream failures: an SSE response whose body fails after it started ends with one
//! in-band error event in the dialect, and then ends cleanly.
//!
//! Once a `200 text/event-stream` response has started, its status can no longer change; if the
//! upstream dies half-way, a transport error would cut the connection and the client would see
//! a truncated stream with no explanation. [`StreamErrorBody`] turns that body error into one
//! final event and a clean end of stream:
//!
//! | dialect | event |
//! |---|---|
//! | OpenAI-compatible, Infron (seed 004 sends errors "as an SSE data event"), Infuzu, envelope | `data: <the dialect's error JSON>\n\n` |
//! | Anthropic | `event: error\ndata: {"type":"error","error":{...},"request_id":...}\n\n` |
//!
//! The error inside is the [`ApiError`] found in the body error's source chain (an upstream's
//! in-band error surfaced by [`sse::SseErrorLayer`](crate::sse)), else a generic server error:
//! the real error is logged through `tracing` and never sent. The request's `x-request-id` is
//! carried where the dialect has a place for it. Responses that are not `text/event-stream`
//! pass through untouched, errors included.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, StreamBody};
//! use http_body::Frame;
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{ApiError, BoxError, Dialect, ErrorKind, server::StreamErrorLayer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(StreamErrorLayer::new(Dialect::Anthropic))
//!     .service_fn(|_req: Request<()>| async {
//!         let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
//!             Ok(Frame::data(Bytes::from("event: ping\ndata: {}\n\n"))),
//!             Err(ApiError::new(ErrorKind::Overloaded, "busy").into()),
//!         ];
//!         let body = StreamBody::new(futures_util::stream::iter(frames));
//!         Ok::<_, std::convert::Infallible>(
//!             Response::builder().header("content-type", "text/event-stream").body(body).unwrap(),
//!         )
//!     });
//! let res = svc.oneshot(Request::new(())).await.unwrap();
//! let text = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     &text[..],
//!     &b"event: ping\ndata: {}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy\"},\"request_id\":null}\n\n"[..]
//! );
//! # }
//! ```

use super::{render::future::find_api_error, response::request_id};
use crate::{ApiError, BoxError, Dialect, ErrorKind, error::secret};
use bytes::Bytes;
use http::{Request, Response, header};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::SystemTime,
};
use tower::{Layer, Service};

/// Applies [`StreamError`]. See the [module docs](self).
#[derive(Clone, Copy, Debug)]
pub struct StreamErrorLayer {
    dialect: Dialect,
}

impl StreamErrorLayer {
    /// Ends failing event streams with an error event in `dialect`.
    pub fn new(dialect: Dialect) -> StreamErrorLayer {
        StreamErrorLayer { dialect }
    }
}

impl<S> Layer<S> for StreamErrorLayer {
    type Service = StreamError<S>;

    fn layer(&self, inner: S) -> StreamError<S> {
        StreamError {
            inner,
            dialect: self.dialect,
        }
    }
}

/// Middleware that wraps event-stream bodies in [`StreamErrorBody`].
#[derive(Clone, Debug)]
pub struct StreamError<S> {
    inner: S,
    dialect: Dialect,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for StreamError<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<StreamErrorBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let request_id = request_id(req.headers()).map(Box::from);
        ResponseFuture {
            fut: self.inner.call(req),
            dialect: self.dialect,
            request_id,
        }
    }
}

pin_project! {
    /// Response future of [`StreamError`].
    pub struct ResponseFuture<F> {
        #[pin]
        fut: F,
        dialect: Dialect,
        request_id: Option<Box<str>>,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("dialect", &self.dialect)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<StreamErrorBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.fut.poll(cx))?;
        let is_sse = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"));
        let dialect = *this.dialect;
        let request_id = this.request_id.take();
        Poll::Ready(Ok(res.map(|body| {
            let mut body = StreamErrorBody::new(body, dialect);
            body.active = is_sse;
            body.request_id = request_id;
            body
        })))
    }
}

pin_project! {
    /// A body that ends with one in-band error event, instead of an error, when the inner
    /// event-stream body fails. See the [module docs](self).
    pub struct StreamErrorBody<B> {
        #[pin]
        inner: B,
        dialect: Dialect,
        active: bool,
        done: bool,
        request_id: Option<Box<str>>,
    }
}

impl<B> fmt::Debug for StreamErrorBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamErrorBody")
            .field("dialect", &self.dialect)
            .field("active", &self.active)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<B> StreamErrorBody<B> {
    /// Wraps an event-stream body: a failure of `inner` becomes a final error event in
    /// `dialect`.
    pub fn new(inner: B, dialect: Dialect) -> StreamErrorBody<B> {
        StreamErrorBody {
            inner,
            dialect,
            active: true,
            done: false,
            request_id: None,
        }
    }

    /// Sets the request id carried by the error event.
    pub fn request_id(mut self, id: impl Into<Box<str>>) -> StreamErrorBody<B> {
        self.request_id = Some(id.into());
        self
    }
}

/// The in-band event for `err` in `dialect`: `data: {...}\n\n`, or `event: error\ndata:
/// {...}\n\n` for Anthropic. The JSON is one line (`serde_json` escapes newlines).
pub fn error_event(err: &ApiError, dialect: Dialect) -> Bytes {
    let json = err.render_parts(dialect, SystemTime::now()).body;
    let mut out = Vec::with_capacity(json.len() + 24);
    if dialect == Dialect::Anthropic {
        out.extend_from_slice(b"event: error\n");
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(&json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl<B> Body for StreamErrorBody<B>
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
        let this = self.project();
        if *this.done {
            return Poll::Ready(None);
        }
        match ready!(this.inner.poll_frame(cx)) {
            Some(Ok(frame)) => Poll::Ready(Some(Ok(frame))),
            None => {
                *this.done = true;
                Poll::Ready(None)
            }
            Some(Err(e)) => {
                let e: BoxError = e.into();
                if !*this.active {
                    return Poll::Ready(Some(Err(e)));
                }
                *this.done = true;
                let api = match find_api_error(&*e) {
                    Some(api) => api,
                    None => {
                        tracing::warn!(
                            error = %secret::mask_secrets(&e.to_string()),
                            "event stream failed mid-way"
                        );
                        ApiError::new(
                            ErrorKind::ServerError,
                            "The stream failed before it was complete.",
                        )
                    }
                };
                let api = match (api.request_id(), this.request_id.as_deref()) {
                    (None, Some(id)) => api.with_request_id(id),
                    _ => api,
                };
                Poll::Ready(Some(Ok(Frame::data(error_event(&api, *this.dialect)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.done {
            return SizeHint::with_exact(0);
        }
        if !self.active {
            return self.inner.size_hint();
        }
        // An error event may be added: keep the lower bound, drop the upper one.
        let mut hint = SizeHint::new();
        hint.set_lower(self.inner.size_hint().lower());
        hint
    }
}
