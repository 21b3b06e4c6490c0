use super::inspect::Inspector;
use super::{InBandReport, ResponseBody, SseErrorLayer};
use http::{HeaderMap, Response, header::CONTENT_TYPE};
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

pin_project! {
    /// The response future of [`SseError`](super::SseError).
    pub struct ResponseFuture<F> {
        #[pin]
        pub(crate) inner: F,
        pub(crate) layer: SseErrorLayer,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

/// Whether the response is a `text/event-stream` (parameters and case ignored).
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("text/event-stream"))
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let layer = *this.layer;
        Poll::Ready(Ok(wrap(res, &layer)))
    }
}

pub(crate) fn wrap<B>(res: Response<B>, layer: &SseErrorLayer) -> Response<ResponseBody<B>> {
    if !is_event_stream(res.headers()) {
        return res.map(ResponseBody::plain);
    }
    let (mut parts, body) = res.into_parts();
    let report = InBandReport::new();
    parts.extensions.insert(report.clone());
    let inspector = Inspector::new(layer.max_line, layer.max_event);
    Response::from_parts(
        parts,
        ResponseBody::inspected(body, inspector, layer.mode, report).withholding(layer.withhold),
    )
}
