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
///
/// Every response through the SSE and retry layers passes here, so this compares the header's
/// bytes in place: no UTF-8 or visible-ASCII pass over the whole value, no splitting. The media
/// type is the value's first token (RFC 9110 §8.3.1: `type "/" subtype *( OWS ";" OWS
/// parameter )`); leading and trailing whitespace is ignored, and any parameters after `;`.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    const MEDIA_TYPE: &[u8] = b"text/event-stream";
    let Some(value) = headers.get(&CONTENT_TYPE) else {
        return false;
    };
    let value = value.as_bytes().trim_ascii_start();
    match value.split_at_checked(MEDIA_TYPE.len()) {
        Some((media_type, rest)) if media_type.eq_ignore_ascii_case(MEDIA_TYPE) => {
            matches!(rest.trim_ascii_start().first(), None | Some(b';'))
        }
        _ => false,
    }
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

#[cfg(test)]
mod tests {
    use super::is_event_stream;
    use http::{HeaderMap, HeaderValue, header::CONTENT_TYPE};

    #[test]
    fn event_stream_media_type() {
        let cases: &[(&[u8], bool)] = &[
            (b"text/event-stream", true),
            (b"TEXT/Event-Stream", true),
            (b"text/event-stream; charset=utf-8", true),
            (b"text/event-stream;charset=utf-8", true),
            (b"  text/event-stream  ", true),
            (b"\ttext/event-stream \t; x=y", true),
            (b"text/event-stream; charset=\xff", true),
            (b"text/event-streams", false),
            (b"text/event-stream x", false),
            (b"text/event-strea", false),
            (b"text/event", false),
            (b"", false),
            (b"application/json", false),
            (b"application/json; x=text/event-stream", false),
            (b"x text/event-stream", false),
            (b"text/plain, text/event-stream", false),
        ];
        for &(value, expected) in cases {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_bytes(value).unwrap());
            assert_eq!(is_event_stream(&headers), expected, "{value:?}");
        }
        assert!(!is_event_stream(&HeaderMap::new()));
    }
}
