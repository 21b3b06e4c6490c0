//! The API-key guard: finds the key in the request headers, rejects missing or ambiguous keys,
//! and asks the application's async validator about the rest.
//!
//! # Rules (seed 000, Infuzu, and the OpenAI-compatible seeds)
//!
//! - The key travels in `Authorization: Bearer <key>` and/or in configured headers (seed 000 uses
//!   the pair `Infuzu-API-Key` / `X-Infuzu-API-Key`; see [`ApiKeyLayer::infuzu`]).
//! - No key in any of them: `401 missing_api_key`.
//! - A key in more than one of them, or a header repeated: `400 multiple_api_keys` (seed 000
//!   forbids sending both of its headers).
//! - The validator answers with a [`KeyVerdict`]: rejected keys are `401 invalid_api_key`; an
//!   account without funds `402 not_enough_funds`; an exhausted quota `403`/`429` in the
//!   dialect's quota code; a key over its rate `429` with `Retry-After`.
//!
//! Answers are rendered in the layer's dialect, with the request's `x-request-id`. The key is
//! never echoed; messages that mention it show [`mask_key`]'s
//! `sk-ab***`. An accepted key is put in the request extensions as an [`ApiKey`], whose `Debug`
//! is masked too.
//!
//! tower-http's `AsyncRequireAuthorization` fixes the rejection body type inside the authorizer,
//! which would force a body type parameter on this layer and break stacking it over other
//! layers that wrap bodies (tower-http's own body limit among them); this guard therefore has its
//! own small service with the same shape, answering with [`ServerBody`].
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::{BodyExt, Full};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_llm_errors::{Dialect, server::{ApiKey, ApiKeyLayer, KeyVerdict}};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let check = |key: ApiKey| async move {
//!     if key.expose() == "sk-live-0123456789" { KeyVerdict::Accept } else { KeyVerdict::Reject }
//! };
//! let svc = ServiceBuilder::new()
//!     .layer(ApiKeyLayer::infuzu(Dialect::Infuzu, check))
//!     .service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("ok"))))
//!     });
//!
//! let res = svc.clone().oneshot(Request::new(Full::default())).await.unwrap();
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! let body = res.into_body().collect().await.unwrap().to_bytes();
//! assert!(body.starts_with(br#"{"error":{"code":"missing_api_key""#));
//!
//! let req = Request::builder()
//!     .header("Infuzu-API-Key", "sk-live-0123456789")
//!     .body(Full::default())
//!     .unwrap();
//! assert_eq!(svc.oneshot(req).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```

use super::{
    ServerBody,
    response::{error_response, request_id},
};
use crate::{ApiError, Dialect, ErrorKind, error::secret::mask_key};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tower::{Layer, Service};

/// An API key taken from a request. Its `Debug` shows only a masked prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(Arc<str>);

impl ApiKey {
    /// The key itself, for the validator. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The key masked for messages and logs (`sk-ab***`).
    pub fn masked(&self) -> String {
        mask_key(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ApiKey").field(&self.masked()).finish()
    }
}

/// The validator's answer about a key.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum KeyVerdict {
    /// The key is good; the request goes on with the [`ApiKey`] in its extensions.
    Accept,
    /// The key is not known or revoked: `401 invalid_api_key`.
    Reject,
    /// The account behind the key has no funds: `402 not_enough_funds`.
    NoFunds,
    /// The account's quota is exhausted: the dialect's quota answer (`403 QUOTA_EXCEEDED` in the
    /// envelope dialect, `429 insufficient_quota` in OpenAI's).
    QuotaExceeded,
    /// The key is over its rate: `429` with `Retry-After` when given.
    RateLimited(Option<Duration>),
    /// Any other answer, rendered as is.
    Error(ApiError),
}

/// An async key validator. Implemented for every `FnMut(ApiKey) -> impl Future<Output =
/// KeyVerdict> + Clone`.
pub trait ValidateKey {
    /// The validator's future.
    type Future: Future<Output = KeyVerdict>;

    /// Judges `key`.
    fn validate(&mut self, key: ApiKey) -> Self::Future;
}

impl<F, Fut> ValidateKey for F
where
    F: FnMut(ApiKey) -> Fut,
    Fut: Future<Output = KeyVerdict>,
{
    type Future = Fut;

    fn validate(&mut self, key: ApiKey) -> Fut {
        self(key)
    }
}

/// Applies [`RequireApiKey`]. See the [module docs](self).
#[derive(Clone)]
pub struct ApiKeyLayer<V> {
    dialect: Dialect,
    bearer: bool,
    headers: Arc<[HeaderName]>,
    validator: V,
}

impl<V> fmt::Debug for ApiKeyLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("dialect", &self.dialect)
            .field("bearer", &self.bearer)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl<V> ApiKeyLayer<V> {
    /// Reads `Authorization: Bearer <key>` and answers in `dialect`.
    pub fn new(dialect: Dialect, validator: V) -> ApiKeyLayer<V> {
        ApiKeyLayer {
            dialect,
            bearer: true,
            headers: Arc::from([]),
            validator,
        }
    }

    /// Seed 000's pair: `Infuzu-API-Key` or `X-Infuzu-API-Key` (not both), no bearer token.
    pub fn infuzu(dialect: Dialect, validator: V) -> ApiKeyLayer<V> {
        ApiKeyLayer::new(dialect, validator)
            .bearer(false)
            .header(HeaderName::from_static("infuzu-api-key"))
            .header(HeaderName::from_static("x-infuzu-api-key"))
    }

    /// Also reads the key from header `name` (`x-api-key`, `api-key`, ...).
    pub fn header(mut self, name: HeaderName) -> ApiKeyLayer<V> {
        let mut v = self.headers.to_vec();
        if !v.contains(&name) {
            v.push(name);
        }
        self.headers = Arc::from(v);
        self
    }

    /// Whether `Authorization: Bearer` is read (default `true`).
    pub fn bearer(mut self, bearer: bool) -> ApiKeyLayer<V> {
        self.bearer = bearer;
        self
    }
}

impl<S, V: Clone> Layer<S> for ApiKeyLayer<V> {
    type Service = RequireApiKey<S, V>;

    fn layer(&self, inner: S) -> RequireApiKey<S, V> {
        RequireApiKey {
            inner,
            layer: self.clone(),
        }
    }
}

/// The API-key guard service. See the [module docs](self).
#[derive(Clone)]
pub struct RequireApiKey<S, V> {
    inner: S,
    layer: ApiKeyLayer<V>,
}

impl<S: fmt::Debug, V> fmt::Debug for RequireApiKey<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireApiKey")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

/// What the headers say about the key.
enum Found {
    Missing,
    Multiple,
    Unreadable,
    Key(ApiKey),
}

/// The longest key we accept (longer values are unreadable, not buffered further).
const MAX_KEY_BYTES: usize = 1024;

fn find_key(headers: &HeaderMap, bearer: bool, names: &[HeaderName]) -> Found {
    let mut found: Vec<&http::HeaderValue> = Vec::new();
    if bearer {
        for v in headers.get_all(header::AUTHORIZATION) {
            let b = v.as_bytes();
            if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ") {
                found.push(v);
            }
        }
    }
    for name in names {
        found.extend(headers.get_all(name).iter());
    }
    let mut keys = found.into_iter().map(|v| {
        let b = v.as_bytes();
        let b = if b.len() > 7 && b[..7].eq_ignore_ascii_case(b"bearer ") {
            &b[7..]
        } else {
            b
        };
        b.trim_ascii()
    });
    let first = keys.by_ref().find(|k| !k.is_empty());
    let Some(first) = first else {
        return Found::Missing;
    };
    if keys.any(|k| !k.is_empty()) {
        return Found::Multiple;
    }
    if first.len() > MAX_KEY_BYTES {
        return Found::Unreadable;
    }
    match std::str::from_utf8(first) {
        Ok(s) if s.bytes().all(|b| b.is_ascii_graphic()) => Found::Key(ApiKey(Arc::from(s))),
        _ => Found::Unreadable,
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for RequireApiKey<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: ValidateKey,
{
    type Response = Response<ServerBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, V::Future, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let dialect = self.layer.dialect;
        let reject = |err: ApiError, req: &Request<ReqBody>| ResponseFuture {
            state: State::Done {
                res: Some(error_response(
                    err,
                    dialect,
                    request_id(req.headers()),
                    false,
                )),
            },
        };
        match find_key(req.headers(), self.layer.bearer, &self.layer.headers) {
            Found::Missing => reject(
                ApiError::new(
                    ErrorKind::Authentication,
                    "No API key was sent with the request.",
                )
                .with_code("missing_api_key")
                .with_status(StatusCode::UNAUTHORIZED),
                &req,
            ),
            Found::Multiple => reject(
                ApiError::new(
                    ErrorKind::InvalidRequest,
                    "More than one API key was sent; send exactly one.",
                )
                .with_code("multiple_api_keys")
                .with_status(StatusCode::BAD_REQUEST),
                &req,
            ),
            Found::Unreadable => reject(invalid_key(None), &req),
            Found::Key(key) => {
                // The ready service goes into the future; this one is a fresh clone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Validating {
                        fut: self.layer.validator.validate(key.clone()),
                        key: Some(key),
                        req: Some(req),
                        inner: Some(inner),
                        dialect,
                    },
                }
            }
        }
    }
}

fn invalid_key(key: Option<&ApiKey>) -> ApiError {
    let message = match key {
        Some(k) => format!("The API key {} is not valid.", k.masked()),
        None => "The API key is not valid.".to_owned(),
    };
    ApiError::new(ErrorKind::Authentication, message)
        .with_code("invalid_api_key")
        .with_status(StatusCode::UNAUTHORIZED)
}

fn verdict_error(verdict: KeyVerdict, key: &ApiKey) -> Option<ApiError> {
    Some(match verdict {
        KeyVerdict::Accept => return None,
        KeyVerdict::Reject => invalid_key(Some(key)),
        KeyVerdict::NoFunds => ApiError::new(
            ErrorKind::InsufficientFunds,
            "The account does not have enough funds for this request.",
        )
        .with_code("not_enough_funds")
        .with_status(StatusCode::PAYMENT_REQUIRED),
        KeyVerdict::QuotaExceeded => ApiError::new(
            ErrorKind::QuotaExceeded,
            "The account's usage quota is exhausted.",
        ),
        KeyVerdict::RateLimited(after) => {
            let e = ApiError::new(ErrorKind::RateLimited, "Too many requests for this key.")
                .with_code("rate_limit_exceeded")
                .with_status(StatusCode::TOO_MANY_REQUESTS);
            match after {
                Some(d) => e.with_retry_after(d),
                None => e,
            }
        }
        KeyVerdict::Error(e) => e,
    })
}

pin_project! {
    /// Response future of [`RequireApiKey`].
    pub struct ResponseFuture<S, Fut, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, Fut, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, Fut, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Validating {
            #[pin] fut: Fut,
            key: Option<ApiKey>,
            req: Option<Request<ReqBody>>,
            inner: Option<S>,
            dialect: Dialect,
        },
        Calling { #[pin] fut: S::Future },
        Done { res: Option<Response<Bytes>> },
    }
}

impl<S, Fut, ReqBody> fmt::Debug for ResponseFuture<S, Fut, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, Fut, ReqBody, ResBody> Future for ResponseFuture<S, Fut, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    Fut: Future<Output = KeyVerdict>,
{
    type Output = Result<Response<ServerBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Validating {
                    fut,
                    key,
                    req,
                    inner,
                    dialect,
                } => {
                    let verdict = ready!(fut.poll(cx));
                    let (Some(key), Some(mut req), Some(mut inner)) =
                        (key.take(), req.take(), inner.take())
                    else {
                        panic!("api key future polled after completion");
                    };
                    match verdict_error(verdict, &key) {
                        None => {
                            req.extensions_mut().insert(key);
                            let fut = inner.call(req);
                            this.state.set(State::Calling { fut });
                        }
                        Some(err) => {
                            let id = request_id(req.headers());
                            let res: Response<Bytes> = error_response(err, *dialect, id, false);
                            return Poll::Ready(Ok(res.map(ServerBody::full)));
                        }
                    }
                }
                StateProj::Calling { fut } => {
                    return Poll::Ready(ready!(fut.poll(cx)).map(|r| r.map(ServerBody::new)));
                }
                StateProj::Done { res } => {
                    let res = res.take().expect("api key future polled after completion");
                    return Poll::Ready(Ok(res.map(ServerBody::full)));
                }
            }
        }
    }
}
