use super::RenderErrorLayer;
use crate::{
    ApiError, BoxError, ErrorKind,
    error::secret,
    server::{
        ServerBody,
        response::{ErrorSource, RenderedMark, error_response},
    },
};
use bytes::Bytes;
use http::{Response, header};
use pin_project_lite::pin_project;
use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

pin_project! {
    /// Response future of [`RenderError`](super::RenderError).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        request_id: Option<Box<str>>,
        config: RenderErrorLayer,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] fut: F },
        Failed { error: Option<BoxError> },
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        fut: F,
        request_id: Option<Box<str>>,
        config: RenderErrorLayer,
    ) -> ResponseFuture<F> {
        ResponseFuture {
            state: State::Called { fut },
            request_id,
            config,
        }
    }

    pub(crate) fn failed(
        error: BoxError,
        request_id: Option<Box<str>>,
        config: RenderErrorLayer,
    ) -> ResponseFuture<F> {
        ResponseFuture {
            state: State::Failed { error: Some(error) },
            request_id,
            config,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: http_body::Body<Data = Bytes>,
{
    type Output = Result<Response<ServerBody<B>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = match this.state.project() {
            StateProj::Called { fut } => ready!(fut.poll(cx)).map_err(Into::into),
            StateProj::Failed { error } => Err(error
                .take()
                .unwrap_or_else(|| "response future polled after completion".into())),
        };
        let id = this.request_id.as_deref();
        let res = match result {
            Ok(res) => normalize(res, this.config, id),
            Err(e) => render_error(e, this.config, id),
        };
        Poll::Ready(Ok(res))
    }
}

/// Finds an `ApiError` in `err` or its source chain.
pub(crate) fn find_api_error(err: &(dyn std::error::Error + 'static)) -> Option<ApiError> {
    let mut cur = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            return Some(api.clone());
        }
        depth += 1;
        if depth > 32 {
            break;
        }
        cur = e.source();
    }
    None
}

fn chain_has<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(err);
    let mut depth = 0;
    while let Some(e) = cur {
        if e.is::<T>() {
            return true;
        }
        depth += 1;
        if depth > 32 {
            break;
        }
        cur = e.source();
    }
    false
}

/// Turns a service error into the error a client may see, and keeps the real one aside when it
/// must not be shown.
pub(crate) fn classify_error(
    err: BoxError,
    config: &RenderErrorLayer,
) -> (ApiError, Option<ErrorSource>) {
    let e: &(dyn std::error::Error + 'static) = &*err;
    if let Some(api) = find_api_error(e) {
        return (api, None);
    }
    if chain_has::<tower::timeout::error::Elapsed>(e) {
        let kind =
            ErrorKind::from_status(config.timeout_status).unwrap_or(ErrorKind::GatewayTimeout);
        let api = ApiError::new(kind, "The request did not complete in time.")
            .with_status(config.timeout_status);
        return (api, None);
    }
    if chain_has::<tower::load_shed::error::Overloaded>(e) {
        let api = ApiError::new(
            ErrorKind::ServiceUnavailable,
            "The service is at capacity; try again shortly.",
        )
        .with_retry_after(config.overloaded_retry_after);
        return (api, None);
    }
    if chain_has::<http_body_util::LengthLimitError>(e) {
        let api = ApiError::new(ErrorKind::PayloadTooLarge, "The request body is too large.");
        return (api, None);
    }
    tracing::warn!(error = %secret::mask_secrets(&err.to_string()), "request failed");
    let api = ApiError::new(
        ErrorKind::ServerError,
        "The server failed to handle the request.",
    );
    (api, Some(ErrorSource::new(err)))
}

fn render_error<B>(
    err: BoxError,
    config: &RenderErrorLayer,
    request_id: Option<&str>,
) -> Response<ServerBody<B>> {
    let (api, source) = classify_error(err, config);
    let mut res = error_response(api, config.dialect, request_id, false);
    if let Some(source) = source {
        res.extensions_mut().insert(source);
    }
    res
}

/// Whether a content type is JSON (`application/json`, `application/problem+json`, ...).
pub(crate) fn is_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.len() > 17
                    && m[..12].eq_ignore_ascii_case("application/")
                    && m[m.len() - 5..].eq_ignore_ascii_case("+json"))
        })
        .unwrap_or(false)
}

fn normalize<B>(
    res: Response<B>,
    config: &RenderErrorLayer,
    request_id: Option<&str>,
) -> Response<ServerBody<B>> {
    // A response rendered from an ApiError: re-render in our dialect (unless the handler chose
    // one) and with the request id.
    let mark = res.extensions().get::<RenderedMark>().copied();
    let api = res.extensions().get::<ApiError>().cloned();
    if let (Some(mark), Some(api)) = (mark, api) {
        let dialect = if mark.explicit {
            mark.dialect
        } else {
            config.dialect
        };
        if dialect != mark.dialect || (api.request_id().is_none() && request_id.is_some()) {
            return replace_body(res, api, dialect, request_id, mark.explicit);
        }
        return res.map(ServerBody::new);
    }
    if !config.normalize || res.status().as_u16() < 400 || is_json(res.headers()) {
        return res.map(ServerBody::new);
    }
    let status = res.status();
    let kind = ErrorKind::from_status(status).unwrap_or(ErrorKind::ServerError);
    let mut api = ApiError::new(kind, "").with_status(status);
    if let Some(d) = res
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        api = api.with_retry_after(std::time::Duration::from_secs(d));
    }
    replace_body(res, api, config.dialect, request_id, false)
}

/// Replaces the body of `res` with `api` rendered in `dialect`, keeping the other headers.
fn replace_body<B>(
    res: Response<B>,
    api: ApiError,
    dialect: crate::Dialect,
    request_id: Option<&str>,
    explicit: bool,
) -> Response<ServerBody<B>> {
    let (mut parts, _body) = res.into_parts();
    let rendered: Response<Bytes> = error_response(api, dialect, request_id, explicit);
    let (rparts, bytes) = rendered.into_parts();
    parts.status = rparts.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    for (name, value) in &rparts.headers {
        parts.headers.insert(name.clone(), value.clone());
    }
    parts.extensions.extend(rparts.extensions);
    Response::from_parts(parts, ServerBody::full(bytes))
}
