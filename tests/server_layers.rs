//! The rendering layer and the guards driven in-process with `ServiceBuilder` + `oneshot`:
//! what each inner failure becomes.
#![cfg(feature = "server")]

use axum_core::response::IntoResponse;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use std::{
    convert::Infallible,
    task::{Context, Poll},
    time::Duration,
};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};
use tower_llm_errors::{
    ApiError, Dialect, ErrorKind,
    server::{ErrorSource, InDialect, JsonBodyLayer, RenderErrorLayer, ServerBody},
};

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

async fn body_of<B>(res: Response<B>) -> String
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn req() -> Request<Full<Bytes>> {
    Request::builder()
        .header("x-request-id", "req_L")
        .body(Full::default())
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn timeouts_are_504_or_408() {
    for (status, code) in [
        (None, "gateway_timeout"),
        (Some(StatusCode::REQUEST_TIMEOUT), "request_timeout"),
    ] {
        let mut layer = RenderErrorLayer::new(Dialect::OpenAi);
        if let Some(s) = status {
            layer = layer.timeout_status(s);
        }
        let svc = ServiceBuilder::new()
            .layer(layer)
            .timeout(Duration::from_secs(1))
            .service_fn(|_req: Request<Full<Bytes>>| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
            });
        let res = svc.oneshot(req()).await.unwrap();
        assert_eq!(res.status(), status.unwrap_or(StatusCode::GATEWAY_TIMEOUT));
        let body = body_of(res).await;
        assert!(body.contains(&format!(r#""code":"{code}""#)), "{body}");
    }
}

#[tokio::test]
async fn load_shedding_is_503_with_retry_after() {
    let svc = ServiceBuilder::new()
        .layer(
            RenderErrorLayer::new(Dialect::Envelope)
                .overloaded_retry_after(Duration::from_millis(2500)),
        )
        .load_shed()
        .concurrency_limit(0)
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let res = svc.oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "3");
    let body = body_of(res).await;
    assert!(body.contains(r#""code":"SERVICE_UNAVAILABLE""#), "{body}");
    assert!(body.contains(r#""request_id":"req_L""#), "{body}");
}

#[derive(Debug)]
struct Wrapper(ApiError);

impl std::fmt::Display for Wrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("retries exhausted")
    }
}

impl std::error::Error for Wrapper {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test]
async fn errors_become_responses() {
    // An ApiError deep in the source chain keeps its status and code.
    let svc = ServiceBuilder::new()
        .layer(RenderErrorLayer::new(Dialect::Infuzu))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            let inner =
                ApiError::new(ErrorKind::InsufficientFunds, "top up").with_code("not_enough_funds");
            Err::<Response<Full<Bytes>>, BoxError>(Box::new(Wrapper(inner)))
        });
    let res = svc.oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYMENT_REQUIRED);
    assert_eq!(
        body_of(res).await,
        r#"{"error":{"code":"not_enough_funds","message":"top up"}}"#
    );

    // Anything else is a generic 500; the real error is in the extensions only.
    let svc = ServiceBuilder::new()
        .layer(RenderErrorLayer::new(Dialect::Anthropic))
        .service_fn(|_req: Request<Full<Bytes>>| async {
            Err::<Response<Full<Bytes>>, _>(std::io::Error::other(
                "db at 10.1.2.3 refused user admin",
            ))
        });
    let res = svc.oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let source = res.extensions().get::<ErrorSource>().unwrap().clone();
    assert!(source.error().to_string().contains("10.1.2.3"));
    assert_eq!(
        body_of(res).await,
        r#"{"type":"error","error":{"type":"api_error","message":"The server failed to handle the request."},"request_id":"req_L"}"#
    );
}

#[tokio::test]
async fn body_limit_errors_are_413() {
    // tower-http's limit, with a chunked body (no Content-Length): the handler's read fails with
    // LengthLimitError, and the layer answers 413.
    let svc = ServiceBuilder::new()
        .layer(RenderErrorLayer::new(Dialect::OpenAi))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(8))
        .service_fn(
            |req: Request<tower_http::body::Limited<Chunks>>| async move {
                let _ = req.into_body().collect().await?;
                Ok::<_, BoxError>(Response::new(Full::<Bytes>::default()))
            },
        );
    let frames: Vec<Result<Frame<Bytes>, Infallible>> =
        vec![Ok(Frame::data(Bytes::from("0123456789abcdef")))];
    let res = svc
        .oneshot(Request::new(StreamBody::new(futures_util::stream::iter(
            frames,
        ))))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body_of(res).await.contains(r#""code":"payload_too_large""#));

    // The JSON guard's own bounded read, chunked as well.
    let svc = ServiceBuilder::new()
        .layer(JsonBodyLayer::new(Dialect::Infuzu).max_body_bytes(8))
        .service_fn(|_req: Request<_>| async {
            Ok::<_, Infallible>(Response::new(Full::<Bytes>::default()))
        });
    let frames: Vec<Result<Frame<Bytes>, Infallible>> = vec![
        Ok(Frame::data(Bytes::from("{\"a\":"))),
        Ok(Frame::data(Bytes::from("\"0123456789\"}"))),
    ];
    let r = Request::post("/")
        .header("content-type", "application/json; charset=utf-8")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap();
    let res = svc.oneshot(r).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A service whose `poll_ready` fails.
#[derive(Clone)]
struct NotReady;

impl Service<Request<Full<Bytes>>> for NotReady {
    type Response = Response<Full<Bytes>>;
    type Error = std::io::Error;
    type Future = std::future::Ready<Result<Response<Full<Bytes>>, std::io::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
        Poll::Ready(Err(std::io::Error::other("pool closed")))
    }

    fn call(&mut self, _req: Request<Full<Bytes>>) -> Self::Future {
        std::future::ready(Ok(Response::new(Full::default())))
    }
}

#[tokio::test]
async fn poll_ready_errors_are_answered_too() {
    let svc = RenderErrorLayer::new(Dialect::OpenAi);
    let svc = tower::Layer::layer(&svc, NotReady);
    let res = svc.oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.extensions().get::<ErrorSource>().is_some());
}

#[tokio::test]
async fn responses_are_normalized() {
    async fn respond(r: Request<Full<Bytes>>) -> Result<axum_core::response::Response, Infallible> {
        let path = r.uri().path().to_owned();
        Ok(match path.as_str() {
            // A bare error response from an inner layer: plain text, with a header to keep.
            "/plain" => Response::builder()
                .status(405)
                .header("allow", "POST")
                .header("content-type", "text/plain")
                .body(axum_core::body::Body::from("method not allowed"))
                .unwrap(),
            // An empty 404.
            "/empty" => Response::builder()
                .status(404)
                .body(axum_core::body::Body::empty())
                .unwrap(),
            // A handler's ApiError (rendered as OpenAI by default).
            "/api" => ApiError::new(ErrorKind::RateLimited, "slow")
                .with_retry_after(Duration::from_secs(4))
                .into_response(),
            // A handler's explicit choice of dialect.
            "/explicit" => InDialect(ApiError::new(ErrorKind::NotFound, "no"), Dialect::Anthropic)
                .into_response(),
            // The handler's own JSON error: not ours to change.
            "/json" => Response::builder()
                .status(400)
                .header("content-type", "application/json")
                .body(axum_core::body::Body::from(r#"{"mine":true}"#))
                .unwrap(),
            _ => Response::new(axum_core::body::Body::from("fine")),
        })
    }
    let svc = ServiceBuilder::new()
        .layer(RenderErrorLayer::new(Dialect::Infuzu))
        .service_fn(respond);
    let get = |p: &str| {
        Request::get(p)
            .header("x-request-id", "req_N")
            .body(Full::default())
            .unwrap()
    };

    let res = svc.clone().oneshot(get("/plain")).await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    assert_eq!(res.headers()["content-type"], "application/json");
    assert_eq!(
        body_of(res).await,
        r#"{"error":{"code":"invalid_request_body","message":"The request is invalid."}}"#
    );

    let res = svc.clone().oneshot(get("/empty")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        body_of(res).await,
        r#"{"error":{"code":"not_found","message":"The requested resource does not exist."}}"#
    );

    let res = svc.clone().oneshot(get("/api")).await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(res.headers()["retry-after"], "4");
    assert_eq!(res.headers()["x-request-id"], "req_N");
    assert_eq!(
        res.extensions().get::<ApiError>().unwrap().request_id(),
        Some("req_N")
    );
    assert_eq!(
        body_of(res).await,
        r#"{"error":{"code":"rate_limit_exceeded","message":"slow"}}"#
    );

    let res = svc.clone().oneshot(get("/explicit")).await.unwrap();
    assert_eq!(
        body_of(res).await,
        r#"{"type":"error","error":{"type":"not_found_error","message":"no"},"request_id":"req_N"}"#
    );

    let res = svc.clone().oneshot(get("/json")).await.unwrap();
    assert_eq!(body_of(res).await, r#"{"mine":true}"#);

    let res = svc.clone().oneshot(get("/ok")).await.unwrap();
    assert_eq!(
        (res.status(), body_of(res).await.as_str()),
        (StatusCode::OK, "fine")
    );

    // Normalization can be turned off.
    let svc = ServiceBuilder::new()
        .layer(RenderErrorLayer::new(Dialect::Infuzu).normalize_responses(false))
        .service_fn(respond);
    let res = svc.oneshot(get("/plain")).await.unwrap();
    assert_eq!(body_of(res).await, "method not allowed");
}

#[tokio::test]
async fn into_response_defaults_to_openai() {
    let res = ApiError::new(ErrorKind::Authentication, "who are you").into_response();
    assert_eq!(res.status(), 401);
    assert_eq!(
        body_of(res).await,
        r#"{"error":{"message":"who are you","type":"authentication_error","code":"invalid_api_key","param":null}}"#
    );
}

#[tokio::test]
async fn json_guard_lets_body_less_and_json_variants_through() {
    let svc = ServiceBuilder::new()
        .layer(JsonBodyLayer::new(Dialect::OpenAi).require("messages"))
        .service_fn(|req: Request<ServerBody<Full<Bytes>>>| async move {
            let b = req.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, Infallible>(Response::new(Full::new(b)))
        });
    // GET without a body: not checked.
    let res = svc
        .clone()
        .oneshot(
            Request::get("/v1/models")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for ct in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.api+json",
    ] {
        let r = Request::post("/")
            .header("content-type", ct)
            .body(Full::new(Bytes::from(r#"{"messages":["x"]}"#)))
            .unwrap();
        let res = svc.clone().oneshot(r).await.unwrap();
        assert_eq!(res.status(), 200, "{ct}");
        assert_eq!(body_of(res).await, r#"{"messages":["x"]}"#);
    }
    for ct in ["text/json", "application/jsonx", "multipart/form-data", ""] {
        let r = Request::post("/")
            .header("content-type", ct)
            .body(Full::new(Bytes::from("{}")))
            .unwrap();
        assert_eq!(svc.clone().oneshot(r).await.unwrap().status(), 415, "{ct}");
    }
    // No content type at all on a POST.
    let r = Request::post("/")
        .body(Full::new(Bytes::from("{}")))
        .unwrap();
    assert_eq!(svc.clone().oneshot(r).await.unwrap().status(), 415);
    // `null`, `""` and `{}` count as missing; a top-level array has no fields.
    for body in [
        r#"{"messages":null}"#,
        r#"{"messages":""}"#,
        r#"{"messages":{}}"#,
        "[1,2]",
    ] {
        let r = Request::post("/")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let res = svc.clone().oneshot(r).await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
        assert!(
            body_of(res)
                .await
                .contains(r#""code":"missing_required_field","param":"messages""#),
            "{body}"
        );
    }
}

type Frames = Vec<Result<Frame<Bytes>, BoxError>>;

async fn stream_through(
    dialect: Dialect,
    content_type: &'static str,
    frames: Frames,
) -> Vec<Result<Bytes, String>> {
    use tower_llm_errors::server::StreamErrorLayer;
    let svc = ServiceBuilder::new()
        .layer(StreamErrorLayer::new(dialect))
        .service_fn(move |_req: Request<Full<Bytes>>| {
            let frames = frames
                .iter()
                .map(|f| match f {
                    Ok(fr) => Ok(Frame::data(fr.data_ref().cloned().unwrap_or_default())),
                    Err(e) => Err(BoxError::from(e.to_string())),
                })
                .collect::<Vec<_>>();
            async move {
                let body = StreamBody::new(futures_util::stream::iter(frames));
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", content_type)
                        .body(body)
                        .unwrap(),
                )
            }
        });
    let res = svc.oneshot(req()).await.unwrap();
    let mut body = res.into_body();
    let mut out = Vec::new();
    while let Some(f) = body.frame().await {
        out.push(f.map(|f| f.into_data().unwrap()).map_err(|e| e.to_string()));
    }
    out
}

#[tokio::test]
async fn stream_errors_become_one_event_only_for_event_streams() {
    // Fails before any byte: still one event (the 200 is already sent), then a clean end.
    let out = stream_through(
        Dialect::Infron,
        "text/event-stream; charset=utf-8",
        vec![
            Err("connection reset".into()),
            Ok(Frame::data(Bytes::from("never"))),
        ],
    )
    .await;
    assert_eq!(
        out,
        vec![Ok(Bytes::from(
            "data: {\"error\":{\"code\":500,\"message\":\"The stream failed before it was complete.\",\"type\":\"server_error\",\"param\":\"\"}}\n\n"
        ))]
    );
    // A stream that ends normally is passed through byte for byte, with nothing added.
    let out = stream_through(
        Dialect::Anthropic,
        "text/event-stream",
        vec![Ok(Frame::data(Bytes::from(
            "event: message_stop\ndata: {}\n\n",
        )))],
    )
    .await;
    assert_eq!(
        out,
        vec![Ok(Bytes::from("event: message_stop\ndata: {}\n\n"))]
    );
    // Not an event stream: the body error is passed on unchanged.
    let out = stream_through(
        Dialect::OpenAi,
        "application/json",
        vec![Ok(Frame::data(Bytes::from("{\"a\":"))), Err("cut".into())],
    )
    .await;
    assert_eq!(out, vec![Ok(Bytes::from("{\"a\":")), Err("cut".to_owned())]);
}
