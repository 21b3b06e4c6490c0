//! The JSON body guard: `Content-Type`, a bounded read, well-formed JSON and required fields.
//!
//! # Rules (seed 000, Infuzu; seed 001's field errors)
//!
//! For a request that carries a body (`POST`, `PUT`, `PATCH`, or any request with a non-zero
//! `Content-Length` or a `Transfer-Encoding`):
//!
//! - its `Content-Type` must be `application/json` (parameters such as `charset` allowed) or an
//!   `application/*+json` type, else `415 unsupported_media_type`;
//! - the body is read up to [`JsonBodyLayer::max_body_bytes`] (default
//!   [`JsonBodyLayer::DEFAULT_MAX_BODY_BYTES`], 2 MiB); a larger body is `413`, and nothing past
//!   the limit is buffered;
//! - it must parse as JSON, else `400 invalid_request_body`;
//! - every field named with [`JsonBodyLayer::require`] must be present in the top-level object
//!   and not `null`, `""`, `[]` or `{}`, else `400 missing_required_field`, with the field in
//!   `param` (OpenAI, Infron) or `details.field` (envelope).
//!
//! The bytes read are handed on to the inner service unchanged, as a [`ServerBody`]. Requests
//! without a body pass through untouched.
//!
//! tower-http's `ValidateRequestHeader` could check the content type, but its rejection body
//! type is fixed by the validator (the same problem as its authorization layer) and the body
//! checks need a read anyway, so one guard does both.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{Dialect, server::{JsonBodyLayer, ServerBody}};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(JsonBodyLayer::new(Dialect::OpenAi).require("messages"))
//!     .service_fn(|req: Request<ServerBody<Full<Bytes>>>| async move {
//!         // The handler gets the very bytes the client sent.
//!         let body = req.into_body().collect().await?.to_bytes();
//!         assert_eq!(&body[..], br#"{"messages":[1]}"#);
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
//!     });
//! let post = |body: &'static str| {
//!     Request::post("/v1/chat/completions")
//!         .header("content-type", "application/json")
//!         .body(Full::new(Bytes::from(body)))
//!         .unwrap()
//! };
//! let res = svc.clone().oneshot(post(r#"{"model":"m"}"#)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::BAD_REQUEST);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert_eq!(
//!     &body[..],
//!     br#"{"error":{"message":"The field 'messages' is required.","type":"invalid_request_error","code":"missing_required_field","param":"messages"}}"#
//! );
//! let res = svc.oneshot(post(r#"{"messages":[1]}"#)).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```

use super::{
    ServerBody,
    response::{error_response, request_id},
};
use crate::{ApiError, BoxError, Dialect, ErrorKind};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header, request::Parts};
use pin_project_lite::pin_project;
use serde_json::Value;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};
use tower::{Layer, Service};

/// Applies [`JsonBody`]. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct JsonBodyLayer {
    dialect: Dialect,
    required: Arc<[Box<str>]>,
    max_body_bytes: usize,
}

impl JsonBodyLayer {
    /// The default body limit: 2 MiB.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

    /// Checks bodies and answers in `dialect`.
    pub fn new(dialect: Dialect) -> JsonBodyLayer {
        JsonBodyLayer {
            dialect,
            required: Arc::from([]),
            max_body_bytes: JsonBodyLayer::DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Requires top-level field `name` (for example `messages` or `model`).
    pub fn require(mut self, name: &str) -> JsonBodyLayer {
        let mut v = self.required.to_vec();
        v.push(name.into());
        self.required = Arc::from(v);
        self
    }

    /// The largest body read, in bytes; larger bodies are answered `413`.
    pub fn max_body_bytes(mut self, n: usize) -> JsonBodyLayer {
        self.max_body_bytes = n;
        self
    }
}

impl<S> Layer<S> for JsonBodyLayer {
    type Service = JsonBody<S>;

    fn layer(&self, inner: S) -> JsonBody<S> {
        JsonBody {
            inner,
            layer: self.clone(),
        }
    }
}

/// The JSON body guard service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct JsonBody<S> {
    inner: S,
    layer: JsonBodyLayer,
}

fn carries_body(parts: &http::HeaderMap, method: &Method) -> bool {
    let length = parts
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match length {
        Some(0) => false,
        Some(_) => true,
        None => {
            parts.contains_key(header::TRANSFER_ENCODING)
                || matches!(*method, Method::POST | Method::PUT | Method::PATCH)
        }
    }
}

fn is_json_type(headers: &http::HeaderMap) -> bool {
    super::render::future::is_json(headers)
}

fn unsupported() -> ApiError {
    ApiError::new(
        ErrorKind::UnsupportedMediaType,
        "The Content-Type must be application/json.",
    )
    .with_code("unsupported_media_type")
    .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
}

fn malformed() -> ApiError {
    ApiError::new(
        ErrorKind::InvalidRequest,
        "The request body is not valid JSON.",
    )
    .with_code("invalid_request_body")
    .with_status(StatusCode::BAD_REQUEST)
}

fn too_large() -> ApiError {
    ApiError::new(ErrorKind::PayloadTooLarge, "The request body is too large.")
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Checks a complete body against the rules; `Err` is the answer.
fn check(body: &[u8], required: &[Box<str>]) -> Result<(), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed())?;
    for field in required {
        let present = value.get(&**field).is_some_and(|v| !is_empty(v));
        if !present {
            return Err(ApiError::new(
                ErrorKind::InvalidRequest,
                format!("The field '{field}' is required."),
            )
            .with_code("missing_required_field")
            .with_status(StatusCode::BAD_REQUEST)
            .with_param(&**field)
            .with_detail("missing or empty"));
        }
    }
    Ok(())
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for JsonBody<S>
where
    S: Service<Request<ServerBody<ReqBody>>, Response = Response<ResBody>> + Clone,
    ReqBody: http_body::Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let dialect = self.layer.dialect;
        if !carries_body(req.headers(), req.method()) {
            let fut = self.inner.call(req.map(ServerBody::new));
            return ResponseFuture {
                state: State::Calling { fut },
            };
        }
        if !is_json_type(req.headers()) {
            let res = error_response(unsupported(), dialect, request_id(req.headers()), false);
            return ResponseFuture {
                state: State::Done { res: Some(res) },
            };
        }
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let (parts, body) = req.into_parts();
        ResponseFuture {
            state: State::Reading {
                body,
                buf: Vec::new(),
                max: self.layer.max_body_bytes,
                parts: Some(parts),
                inner: Some(inner),
                dialect,
                required: self.layer.required.clone(),
            },
        }
    }
}

pin_project! {
    /// Response future of [`JsonBody`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ServerBody<ReqBody>>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ServerBody<ReqBody>>>,
    {
        Reading {
            #[pin] body: ReqBody,
            buf: Vec<u8>,
            max: usize,
            parts: Option<Parts>,
            inner: Option<S>,
            dialect: Dialect,
            required: Arc<[Box<str>]>,
        },
        Calling { #[pin] fut: S::Future },
        Done { res: Option<Response<Bytes>> },
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ServerBody<ReqBody>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ServerBody<ReqBody>>, Response = Response<ResBody>>,
    ReqBody: http_body::Body<Data = Bytes>,
    ReqBody::Error: Into<BoxError>,
{
    type Output = Result<Response<ServerBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Reading {
                    mut body,
                    buf,
                    max,
                    parts,
                    inner,
                    dialect,
                    required,
                } => {
                    // Bounded read: never more than `max` bytes are kept.
                    let read: Result<(), ApiError> = loop {
                        match ready!(body.as_mut().poll_frame(cx)) {
                            None => break Ok(()),
                            Some(Ok(frame)) => {
                                if let Some(data) = frame.data_ref() {
                                    if data.len() > max.saturating_sub(buf.len()) {
                                        break Err(too_large());
                                    }
                                    buf.extend_from_slice(data);
                                }
                            }
                            Some(Err(e)) => {
                                let e: BoxError = e.into();
                                break Err(if e.is::<http_body_util::LengthLimitError>() {
                                    too_large()
                                } else {
                                    malformed()
                                });
                            }
                        }
                    };
                    let (Some(parts), Some(mut inner)) = (parts.take(), inner.take()) else {
                        panic!("json body future polled after completion");
                    };
                    let id = request_id(&parts.headers);
                    let verdict = read.and_then(|()| {
                        let bytes = Bytes::from(std::mem::take(buf));
                        check(&bytes, required).map(|()| bytes)
                    });
                    match verdict {
                        Ok(bytes) => {
                            let req = Request::from_parts(parts, ServerBody::full(bytes));
                            let fut = inner.call(req);
                            this.state.set(State::Calling { fut });
                        }
                        Err(err) => {
                            let res: Response<Bytes> = error_response(err, *dialect, id, false);
                            return Poll::Ready(Ok(res.map(ServerBody::full)));
                        }
                    }
                }
                StateProj::Calling { fut } => {
                    return Poll::Ready(ready!(fut.poll(cx)).map(|r| r.map(ServerBody::new)));
                }
                StateProj::Done { res } => {
                    let res = res
                        .take()
                        .expect("json body future polled after completion");
                    return Poll::Ready(Ok(res.map(ServerBody::full)));
                }
            }
        }
    }
}
