//! `IntoResponse` for [`ApiError`], the dialect wrapper, and what error responses carry in their
//! extensions.

use crate::{ApiError, BoxError, Dialect};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderName};
use std::{fmt, sync::Arc};

/// The header request ids travel in, on requests and responses.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// An [`ApiError`] to be rendered in a chosen [`Dialect`] by axum.
///
/// A bare `ApiError` returned from a handler renders as OpenAI; behind a
/// [`RenderErrorLayer`](super::RenderErrorLayer) it is re-rendered in the layer's dialect. An
/// `InDialect` keeps the dialect it names.
///
/// ```
/// use axum_core::response::IntoResponse;
/// use tower_llm_errors::{ApiError, Dialect, ErrorKind, server::InDialect};
///
/// let res = InDialect(ApiError::new(ErrorKind::NotFound, "no such model"), Dialect::Anthropic)
///     .into_response();
/// assert_eq!(res.status(), 404);
/// ```
#[derive(Clone, Debug)]
pub struct InDialect(pub ApiError, pub Dialect);

/// Marks a response rendered from an [`ApiError`]: which dialect, and whether the code that
/// produced it chose the dialect (an [`InDialect`]) or took the default.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RenderedMark {
    pub(crate) dialect: Dialect,
    pub(crate) explicit: bool,
}

/// The error behind a generic `500` response, kept in the response extensions for logging.
///
/// The client only ever sees a generic message; a logging or tracing layer outside the
/// [`RenderErrorLayer`](super::RenderErrorLayer) can read the real error here.
#[derive(Clone)]
pub struct ErrorSource(Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    pub(crate) fn new(err: BoxError) -> ErrorSource {
        ErrorSource(Arc::from(err))
    }

    /// The original error.
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for ErrorSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ErrorSource").field(&self.0).finish()
    }
}

/// The request id of a request, if it has a usable one (visible ASCII, at most 256 bytes).
pub(crate) fn request_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 256)
}

/// Renders `err` in `dialect` as a response with any body type, filling in the request id from
/// the request when the error has none, and recording the error in the extensions.
pub(crate) fn error_response<B: From<Bytes>>(
    err: ApiError,
    dialect: Dialect,
    request_id: Option<&str>,
    explicit: bool,
) -> http::Response<B> {
    let err = with_request_id(err, request_id);
    let mut res = err.render(dialect).map(B::from);
    res.extensions_mut()
        .insert(RenderedMark { dialect, explicit });
    res.extensions_mut().insert(err);
    res
}

pub(crate) fn with_request_id(err: ApiError, request_id: Option<&str>) -> ApiError {
    match (err.request_id(), request_id) {
        (None, Some(id)) => err.with_request_id(id),
        _ => err,
    }
}

/// Renders in [`Dialect::OpenAi`]; a [`RenderErrorLayer`](super::RenderErrorLayer) around the
/// handler re-renders it in the layer's dialect with the request's id.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self, Dialect::OpenAi, None, false)
    }
}

impl IntoResponse for InDialect {
    fn into_response(self) -> Response {
        error_response(self.0, self.1, None, true)
    }
}
