//! A real axum gateway on 127.0.0.1, driven by a real hyper-util client: every guard answer and
//! every seed code, in every dialect, byte-checked against the documented shapes; the streaming
//! error event; translation from each upstream dialect; hostile headers.
#![cfg(feature = "server")]

use ErrorKind::*;
use axum::{
    Router,
    body::Body,
    extract::Path,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::{net::SocketAddr, time::Duration};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
};
use tower_llm_errors::{
    ApiError, Dialect, ErrorKind,
    server::{
        ApiKey, ApiKeyLayer, JsonBodyLayer, KeyVerdict, RateDecision, RateLimitLayer,
        RenderErrorLayer, StreamErrorLayer, translate,
    },
};

// ---------------------------------------------------------------------------------------------
// A served app and a client.

struct Served {
    addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Served {
    async fn start(app: Router) -> Served {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        let client = Client::builder(TokioExecutor::new()).build_http();
        Served {
            addr,
            client,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn send(&self, req: Request<Full<Bytes>>) -> (StatusCode, HeaderMap, String) {
        let res = self.client.request(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).unwrap(),
        )
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The gateway under test.

const GOOD: &str = "sk-live-0123456789";
const BROKE: &str = "sk-broke-0123456789";
const QUOTA: &str = "sk-quota-0123456789";
const FAST: &str = "sk-fast-0123456789";
const WRONG: &str = "sk-wrong-0123456789";

async fn check_key(key: ApiKey) -> KeyVerdict {
    match key.expose() {
        GOOD | FAST => KeyVerdict::Accept,
        BROKE => KeyVerdict::NoFunds,
        QUOTA => KeyVerdict::QuotaExceeded,
        _ => KeyVerdict::Reject,
    }
}

fn decide(req: &Request<Body>) -> RateDecision {
    let fast = req
        .headers()
        .get_all("authorization")
        .iter()
        .any(|v| v.as_bytes().ends_with(FAST.as_bytes()));
    if fast {
        RateDecision::deny(Duration::from_millis(1500))
            .limit(60)
            .remaining(0)
    } else {
        RateDecision::allow().limit(60).remaining(59)
    }
}

/// Every code of every seed table (and the few of our own the dialects need), with its kind and
/// the field it names, if any.
const SEED_CODES: &[(&str, ErrorKind, Option<&str>)] = &[
    // seed 000
    ("invalid_request_body", InvalidRequest, None),
    ("multiple_api_keys", InvalidRequest, None),
    ("missing_required_field", InvalidRequest, None),
    ("invalid_field", InvalidRequest, None),
    ("missing_api_key", Authentication, None),
    ("invalid_api_key", Authentication, None),
    ("not_enough_funds", InsufficientFunds, None),
    ("unsupported_media_type", UnsupportedMediaType, None),
    ("rate_limit_exceeded", RateLimited, None),
    ("internal_server_error", ServerError, None),
    // seed 001
    ("MISSING_API_KEY", Authentication, None),
    ("INVALID_API_KEY", Authentication, None),
    ("EXPIRED_API_KEY", Authentication, None),
    ("REVOKED_API_KEY", Authentication, None),
    ("INSUFFICIENT_PERMISSIONS", PermissionDenied, None),
    ("ACCOUNT_SUSPENDED", PermissionDenied, None),
    ("QUOTA_EXCEEDED", QuotaExceeded, None),
    ("INVALID_REQUEST", InvalidRequest, None),
    ("MISSING_REQUIRED_FIELD", InvalidRequest, Some("messages")),
    ("INVALID_FIELD_VALUE", InvalidRequest, Some("top_p")),
    ("UNSUPPORTED_MODEL", InvalidRequest, None),
    ("INVALID_FILE_FORMAT", InvalidRequest, None),
    ("FILE_TOO_LARGE", PayloadTooLarge, None),
    ("RESOURCE_NOT_FOUND", NotFound, None),
    ("ENDPOINT_NOT_FOUND", NotFound, None),
    ("MODEL_NOT_FOUND", NotFound, None),
    ("RATE_LIMIT_EXCEEDED", RateLimited, None),
    ("CONCURRENT_LIMIT_EXCEEDED", RateLimited, None),
    ("INTERNAL_ERROR", ServerError, None),
    ("MODEL_UNAVAILABLE", ServerError, None),
    ("PROCESSING_ERROR", ServerError, None),
    ("SERVICE_UNAVAILABLE", ServiceUnavailable, None),
    ("OVERLOADED", Overloaded, None),
    ("PROMPT_TOO_LONG", ContextLengthExceeded, Some("prompt")),
    ("INVALID_TEMPERATURE", InvalidRequest, Some("temperature")),
    ("INVALID_MAX_TOKENS", InvalidRequest, Some("max_tokens")),
    ("INVALID_IMAGE_SIZE", InvalidRequest, Some("size")),
    ("INVALID_IMAGE_QUALITY", InvalidRequest, Some("quality")),
    ("PROMPT_VIOLATION", ContentFiltered, Some("prompt")),
    // seeds 002 / 003 (OpenAI-compatible)
    ("invalid_request_error", InvalidRequest, None),
    ("payment_required", InsufficientFunds, None),
    ("forbidden", PermissionDenied, None),
    ("model_not_found", NotFound, None),
    ("api_error", ServerError, None),
    // our own, for statuses the tables name without a code
    ("content_filter", ContentFiltered, None),
    ("request_timeout", RequestTimeout, None),
    ("bad_gateway", BadGateway, None),
    ("service_unavailable", ServiceUnavailable, None),
    ("payload_too_large", PayloadTooLarge, None),
    ("overloaded", Overloaded, None),
];

/// Returns the seed code named in the path as an `ApiError`, the way a handler would.
async fn raise(Path((code, status)): Path<(String, u16)>) -> Response {
    let Some(&(_, kind, field)) = SEED_CODES.iter().find(|r| r.0 == code) else {
        return StatusCode::IM_A_TEAPOT.into_response();
    };
    let mut e = ApiError::new(kind, "m")
        .with_code(code)
        .with_status(StatusCode::from_u16(status).unwrap());
    if let Some(f) = field {
        e = e.with_param(f).with_detail("out of range");
    }
    e.into_response()
}

/// An event stream whose upstream dies after the first event.
async fn stream_fails(Path(how): Path<String>) -> Response {
    let first: Result<Bytes, tower_llm_errors::BoxError> = Ok(Bytes::from(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n",
    ));
    let second: Result<Bytes, tower_llm_errors::BoxError> = if how == "api" {
        Err(ApiError::new(ErrorKind::Overloaded, "The model is overloaded.").into())
    } else {
        Err(
            std::io::Error::other("upstream reset by peer 10.0.0.7, key sk-secret-0123456789")
                .into(),
        )
    };
    let body = Body::from_stream(futures_util::stream::iter([first, second]));
    ([("content-type", "text/event-stream")], body).into_response()
}

fn gateway(dialect: Dialect, upstream: Option<SocketAddr>) -> Router {
    let proxy = move |Path(up): Path<String>| async move {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let uri = format!("http://{}/up/{up}", upstream.unwrap());
        let res = client
            .request(Request::get(uri).body(Full::default()).unwrap())
            .await
            .unwrap();
        translate(res, dialect, 64 * 1024).await.into_response()
    };
    Router::new()
        .route(
            "/v1/chat/completions",
            post(|| async { r#"{"choices":[]}"# }),
        )
        .route("/raise/{code}/{status}", get(raise))
        .route("/stream/{how}", get(stream_fails))
        .route("/proxy/{up}", get(proxy))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(RenderErrorLayer::new(dialect))
                .layer(StreamErrorLayer::new(dialect))
                .layer(
                    ApiKeyLayer::new(dialect, check_key)
                        .header(http::HeaderName::from_static("infuzu-api-key"))
                        .header(http::HeaderName::from_static("x-infuzu-api-key")),
                )
                .layer(RateLimitLayer::new(dialect, decide))
                .layer(RequestBodyLimitLayer::new(4096))
                .layer(JsonBodyLayer::new(dialect).require("messages")),
        )
}

// ---------------------------------------------------------------------------------------------
// The documented shapes, one template per dialect.

const RID: &str = "req_test_1";

/// The envelope's timestamp is "now": check it is RFC 3339 UTC and replace it with a marker.
fn pin_timestamp(body: &str) -> String {
    let key = r#""timestamp":""#;
    let Some(i) = body.find(key) else {
        return body.to_owned();
    };
    let start = i + key.len();
    let ts = &body[start..start + 20];
    let b = ts.as_bytes();
    assert!(
        b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'Z',
        "{ts}"
    );
    format!("{}TS{}", &body[..start], &body[start + 20..])
}

fn json_str(s: Option<&str>) -> String {
    match s {
        Some(s) => serde_json::Value::String(s.to_owned()).to_string(),
        None => "null".to_owned(),
    }
}

/// The values one answer carries; each dialect picks its fields.
struct Want<'a> {
    message: &'a str,
    param: Option<&'a str>,
    issue: Option<&'a str>,
    infuzu: &'a str,
    envelope: &'a str,
    openai: (&'a str, &'a str),
    infron_type: &'a str,
    anthropic: &'a str,
}

fn shape(d: Dialect, status: u16, w: &Want<'_>) -> String {
    let m = json_str(Some(w.message));
    match d {
        Dialect::Infuzu => format!(r#"{{"error":{{"code":"{}","message":{m}}}}}"#, w.infuzu),
        Dialect::Envelope => {
            let details = if w.param.is_some() || w.issue.is_some() {
                format!(
                    r#","details":{{"field":{},"issue":{}}}"#,
                    json_str(w.param),
                    json_str(w.issue)
                )
            } else {
                String::new()
            };
            format!(
                r#"{{"success":false,"error":{{"code":"{}","message":{m}{details}}},"meta":{{"request_id":"{RID}","timestamp":"TS"}}}}"#,
                w.envelope
            )
        }
        Dialect::OpenAi => format!(
            r#"{{"error":{{"message":{m},"type":"{}","code":"{}","param":{}}}}}"#,
            w.openai.0,
            w.openai.1,
            json_str(w.param)
        ),
        Dialect::Infron => format!(
            r#"{{"error":{{"code":{status},"message":{m},"type":"{}","param":{}}}}}"#,
            w.infron_type,
            json_str(Some(w.param.unwrap_or("")))
        ),
        Dialect::Anthropic => format!(
            r#"{{"type":"error","error":{{"type":"{}","message":{m}}},"request_id":"{RID}"}}"#,
            w.anthropic
        ),
        _ => unreachable!(),
    }
}

fn request(method: &str, url: &str) -> http::request::Builder {
    Request::builder()
        .method(method)
        .uri(url)
        .header("x-request-id", RID)
}

fn chat(url: &str, key: Option<&str>, body: &'static str) -> Request<Full<Bytes>> {
    let mut b = request("POST", url).header("content-type", "application/json");
    if let Some(k) = key {
        b = b.header("authorization", format!("Bearer {k}"));
    }
    b.body(Full::new(Bytes::from(body))).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Every guard answer, in every dialect.

/// `status` per dialect in `Dialect::ALL` order: OpenAi, Infuzu, Envelope, Infron, Anthropic.
macro_rules! guard_cases {
    ($($name:ident: $req:expr => [$($st:literal),*] $want:expr;)*) => {
        #[tokio::test]
        async fn every_guard_answer_in_every_dialect() {
            for (i, d) in Dialect::ALL.into_iter().enumerate() {
                let served = Served::start(gateway(d, None)).await;
                $(
                    let statuses: [u16; 5] = [$($st),*];
                    let build: fn(&Served) -> Request<Full<Bytes>> = $req;
                    let (status, headers, body) = served.send(build(&served)).await;
                    let want: Want<'static> = $want;
                    assert_eq!(status.as_u16(), statuses[i], "{} {d}: {body}", stringify!($name));
                    assert_eq!(headers["content-type"], "application/json", "{} {d}", stringify!($name));
                    assert_eq!(headers["x-request-id"], RID, "{} {d}", stringify!($name));
                    assert_eq!(pin_timestamp(&body), shape(d, statuses[i], &want), "{} {d}", stringify!($name));
                    if stringify!($name) == "rate_limited" {
                        assert_eq!(headers["retry-after"], "2");
                        assert_eq!(headers["x-ratelimit-limit-requests"], "60");
                        assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
                        assert_eq!(headers["x-ratelimit-reset-requests"], "1.5s");
                    }
                    assert!(!body.contains("0123456789"), "a key was echoed: {body}");
                )*
                // A good request goes through, with the allowed rate headers.
                let (status, headers, body) = served.send(chat(&served.url("/v1/chat/completions"), Some(GOOD), r#"{"messages":[1]}"#)).await;
                assert_eq!((status.as_u16(), body.as_str()), (200, r#"{"choices":[]}"#));
                assert_eq!(headers["x-ratelimit-remaining-requests"], "59");
                assert_eq!(headers["x-request-id"], RID);
                served.stop().await;
            }
        }
    };
}

guard_cases! {
    missing_key: |s| chat(&s.url("/v1/chat/completions"), None, "{}") => [401, 401, 401, 401, 401] Want {
        message: "No API key was sent with the request.", param: None, issue: None,
        infuzu: "missing_api_key", envelope: "MISSING_API_KEY",
        openai: ("authentication_error", "missing_api_key"),
        infron_type: "authentication_error", anthropic: "authentication_error",
    };
    multiple_keys: |s| request("POST", &s.url("/v1/chat/completions"))
        .header("infuzu-api-key", GOOD)
        .header("x-infuzu-api-key", GOOD)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from("{}"))).unwrap() => [400, 400, 400, 400, 400] Want {
        message: "More than one API key was sent; send exactly one.", param: None, issue: None,
        infuzu: "multiple_api_keys", envelope: "INVALID_REQUEST",
        openai: ("invalid_request_error", "multiple_api_keys"),
        infron_type: "invalid_request_error", anthropic: "invalid_request_error",
    };
    invalid_key: |s| chat(&s.url("/v1/chat/completions"), Some(WRONG), "{}") => [401, 401, 401, 401, 401] Want {
        message: "The API key sk-wr*** is not valid.", param: None, issue: None,
        infuzu: "invalid_api_key", envelope: "INVALID_API_KEY",
        openai: ("authentication_error", "invalid_api_key"),
        infron_type: "authentication_error", anthropic: "authentication_error",
    };
    no_funds: |s| chat(&s.url("/v1/chat/completions"), Some(BROKE), "{}") => [402, 402, 402, 402, 402] Want {
        message: "The account does not have enough funds for this request.", param: None, issue: None,
        infuzu: "not_enough_funds", envelope: "INSUFFICIENT_FUNDS",
        openai: ("payment_required", "not_enough_funds"),
        infron_type: "payment_required", anthropic: "billing_error",
    };
    quota: |s| chat(&s.url("/v1/chat/completions"), Some(QUOTA), "{}") => [429, 429, 403, 429, 429] Want {
        message: "The account's usage quota is exhausted.", param: None, issue: None,
        infuzu: "quota_exceeded", envelope: "QUOTA_EXCEEDED",
        openai: ("insufficient_quota", "insufficient_quota"),
        infron_type: "insufficient_quota", anthropic: "rate_limit_error",
    };
    rate_limited: |s| chat(&s.url("/v1/chat/completions"), Some(FAST), "{}") => [429, 429, 429, 429, 429] Want {
        message: "Too many requests; slow down.", param: None, issue: None,
        infuzu: "rate_limit_exceeded", envelope: "RATE_LIMIT_EXCEEDED",
        openai: ("rate_limit_error", "rate_limit_exceeded"),
        infron_type: "rate_limit_error", anthropic: "rate_limit_error",
    };
    wrong_content_type: |s| request("POST", &s.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {GOOD}"))
        .header("content-type", "text/plain")
        .body(Full::new(Bytes::from("hello"))).unwrap() => [415, 415, 415, 415, 415] Want {
        message: "The Content-Type must be application/json.", param: None, issue: None,
        infuzu: "unsupported_media_type", envelope: "UNSUPPORTED_MEDIA_TYPE",
        openai: ("invalid_request_error", "unsupported_media_type"),
        infron_type: "invalid_request_error", anthropic: "invalid_request_error",
    };
    malformed_json: |s| chat(&s.url("/v1/chat/completions"), Some(GOOD), r#"{"messages":["#) => [400, 400, 400, 400, 400] Want {
        message: "The request body is not valid JSON.", param: None, issue: None,
        infuzu: "invalid_request_body", envelope: "INVALID_REQUEST",
        openai: ("invalid_request_error", "invalid_request_body"),
        infron_type: "invalid_request_error", anthropic: "invalid_request_error",
    };
    missing_field: |s| chat(&s.url("/v1/chat/completions"), Some(GOOD), r#"{"messages":[]}"#) => [400, 400, 400, 400, 400] Want {
        message: "The field 'messages' is required.", param: Some("messages"), issue: Some("missing or empty"),
        infuzu: "missing_required_field", envelope: "MISSING_REQUIRED_FIELD",
        openai: ("invalid_request_error", "missing_required_field"),
        infron_type: "invalid_request_error", anthropic: "invalid_request_error",
    };
    too_large_declared: |s| {
        let big: &'static str = Box::leak("x".repeat(5000).into_boxed_str());
        chat(&s.url("/v1/chat/completions"), Some(GOOD), big)
    } => [413, 413, 413, 413, 413] Want {
        message: "The request body is too large.", param: None, issue: None,
        infuzu: "payload_too_large", envelope: "PAYLOAD_TOO_LARGE",
        openai: ("invalid_request_error", "payload_too_large"),
        infron_type: "invalid_request_error", anthropic: "request_too_large",
    };
    unknown_route: |s| request("GET", &s.url("/v2/nothing"))
        .header("authorization", format!("Bearer {GOOD}"))
        .body(Full::default()).unwrap() => [404, 404, 404, 404, 404] Want {
        message: "The requested resource does not exist.", param: None, issue: None,
        infuzu: "not_found", envelope: "RESOURCE_NOT_FOUND",
        openai: ("not_found_error", "not_found"),
        infron_type: "not_found_error", anthropic: "not_found_error",
    };
    wrong_method: |s| request("GET", &s.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {GOOD}"))
        .body(Full::default()).unwrap() => [405, 405, 405, 405, 405] Want {
        message: "The request is invalid.", param: None, issue: None,
        infuzu: "invalid_request_body", envelope: "INVALID_REQUEST",
        openai: ("invalid_request_error", "invalid_request_error"),
        infron_type: "invalid_request_error", anthropic: "invalid_request_error",
    };
}

// ---------------------------------------------------------------------------------------------
// Every seed code, raised by a handler, through the server, in its dialect.

/// (dialect, code, status, OpenAI-style type for the dialects that have one)
const SEED_ROWS: &[(Dialect, &str, u16, &str)] = &[
    (Dialect::Infuzu, "invalid_request_body", 400, ""),
    (Dialect::Infuzu, "multiple_api_keys", 400, ""),
    (Dialect::Infuzu, "missing_required_field", 400, ""),
    (Dialect::Infuzu, "invalid_field", 400, ""),
    (Dialect::Infuzu, "missing_api_key", 401, ""),
    (Dialect::Infuzu, "invalid_api_key", 401, ""),
    (Dialect::Infuzu, "not_enough_funds", 402, ""),
    (Dialect::Infuzu, "unsupported_media_type", 415, ""),
    (Dialect::Infuzu, "rate_limit_exceeded", 429, ""),
    (Dialect::Infuzu, "internal_server_error", 500, ""),
    (Dialect::Envelope, "MISSING_API_KEY", 401, ""),
    (Dialect::Envelope, "INVALID_API_KEY", 401, ""),
    (Dialect::Envelope, "EXPIRED_API_KEY", 401, ""),
    (Dialect::Envelope, "REVOKED_API_KEY", 401, ""),
    (Dialect::Envelope, "INSUFFICIENT_PERMISSIONS", 403, ""),
    (Dialect::Envelope, "ACCOUNT_SUSPENDED", 403, ""),
    (Dialect::Envelope, "QUOTA_EXCEEDED", 403, ""),
    (Dialect::Envelope, "INVALID_REQUEST", 400, ""),
    (Dialect::Envelope, "MISSING_REQUIRED_FIELD", 400, ""),
    (Dialect::Envelope, "INVALID_FIELD_VALUE", 400, ""),
    (Dialect::Envelope, "UNSUPPORTED_MODEL", 400, ""),
    (Dialect::Envelope, "INVALID_FILE_FORMAT", 400, ""),
    (Dialect::Envelope, "FILE_TOO_LARGE", 400, ""),
    (Dialect::Envelope, "RESOURCE_NOT_FOUND", 404, ""),
    (Dialect::Envelope, "ENDPOINT_NOT_FOUND", 404, ""),
    (Dialect::Envelope, "MODEL_NOT_FOUND", 404, ""),
    (Dialect::Envelope, "RATE_LIMIT_EXCEEDED", 429, ""),
    (Dialect::Envelope, "CONCURRENT_LIMIT_EXCEEDED", 429, ""),
    (Dialect::Envelope, "INTERNAL_ERROR", 500, ""),
    (Dialect::Envelope, "MODEL_UNAVAILABLE", 500, ""),
    (Dialect::Envelope, "PROCESSING_ERROR", 500, ""),
    (Dialect::Envelope, "SERVICE_UNAVAILABLE", 502, ""),
    (Dialect::Envelope, "SERVICE_UNAVAILABLE", 503, ""),
    (Dialect::Envelope, "OVERLOADED", 502, ""),
    (Dialect::Envelope, "OVERLOADED", 503, ""),
    (Dialect::Envelope, "PROMPT_TOO_LONG", 400, ""),
    (Dialect::Envelope, "INVALID_TEMPERATURE", 400, ""),
    (Dialect::Envelope, "INVALID_MAX_TOKENS", 400, ""),
    (Dialect::Envelope, "INVALID_IMAGE_SIZE", 400, ""),
    (Dialect::Envelope, "INVALID_IMAGE_QUALITY", 400, ""),
    (Dialect::Envelope, "PROMPT_VIOLATION", 400, ""),
    // seed 002's codes and seed 003's types
    (
        Dialect::OpenAi,
        "invalid_request_error",
        400,
        "invalid_request_error",
    ),
    (
        Dialect::OpenAi,
        "invalid_api_key",
        401,
        "authentication_error",
    ),
    (Dialect::OpenAi, "payment_required", 402, "payment_required"),
    (Dialect::OpenAi, "forbidden", 403, "permission_error"),
    (Dialect::OpenAi, "model_not_found", 404, "not_found_error"),
    (
        Dialect::OpenAi,
        "payload_too_large",
        413,
        "invalid_request_error",
    ),
    (
        Dialect::OpenAi,
        "rate_limit_exceeded",
        429,
        "rate_limit_error",
    ),
    (Dialect::OpenAi, "api_error", 500, "server_error"),
    (Dialect::OpenAi, "bad_gateway", 502, "server_error"),
    (Dialect::OpenAi, "service_unavailable", 503, "server_error"),
    // seed 004's statuses
    (
        Dialect::Infron,
        "invalid_request_error",
        400,
        "invalid_request_error",
    ),
    (
        Dialect::Infron,
        "invalid_api_key",
        401,
        "authentication_error",
    ),
    (Dialect::Infron, "payment_required", 402, "payment_required"),
    (Dialect::Infron, "content_filter", 403, "content_filter"),
    (
        Dialect::Infron,
        "request_timeout",
        408,
        "invalid_request_error",
    ),
    (
        Dialect::Infron,
        "rate_limit_exceeded",
        429,
        "rate_limit_error",
    ),
    (Dialect::Infron, "bad_gateway", 502, "server_error"),
    (Dialect::Infron, "service_unavailable", 503, "server_error"),
    // Anthropic's types
    (
        Dialect::Anthropic,
        "invalid_request_error",
        400,
        "invalid_request_error",
    ),
    (
        Dialect::Anthropic,
        "invalid_api_key",
        401,
        "authentication_error",
    ),
    (Dialect::Anthropic, "payment_required", 402, "billing_error"),
    (Dialect::Anthropic, "forbidden", 403, "permission_error"),
    (
        Dialect::Anthropic,
        "model_not_found",
        404,
        "not_found_error",
    ),
    (
        Dialect::Anthropic,
        "payload_too_large",
        413,
        "request_too_large",
    ),
    (
        Dialect::Anthropic,
        "rate_limit_exceeded",
        429,
        "rate_limit_error",
    ),
    (Dialect::Anthropic, "api_error", 500, "api_error"),
    (Dialect::Anthropic, "overloaded", 529, "overloaded_error"),
];

#[tokio::test]
async fn every_seed_code_through_the_server() {
    for d in Dialect::ALL {
        let served = Served::start(gateway(d, None)).await;
        let rows: Vec<_> = SEED_ROWS.iter().filter(|r| r.0 == d).collect();
        assert!(!rows.is_empty(), "{d}");
        for &&(_, code, status, ty) in &rows {
            let req = request("GET", &served.url(&format!("/raise/{code}/{status}")))
                .header("authorization", format!("Bearer {GOOD}"))
                .body(Full::default())
                .unwrap();
            let (st, headers, body) = served.send(req).await;
            let field = SEED_CODES.iter().find(|r| r.0 == code).unwrap().2;
            let want = Want {
                message: "m",
                param: field,
                issue: field.map(|_| "out of range"),
                infuzu: code,
                envelope: code,
                openai: (ty, code),
                infron_type: ty,
                anthropic: ty,
            };
            assert_eq!(st.as_u16(), status, "{d} {code}: {body}");
            assert_eq!(headers["x-request-id"], RID);
            assert_eq!(pin_timestamp(&body), shape(d, status, &want), "{d} {code}");
        }
        served.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// The mid-stream error event, over the wire.

#[tokio::test]
async fn a_stream_that_dies_ends_with_one_error_event() {
    const FIRST: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n";
    let cases: [(Dialect, &str, &str); 6] = [
        (
            Dialect::OpenAi,
            "api",
            "data: {\"error\":{\"message\":\"The model is overloaded.\",\"type\":\"server_error\",\"code\":\"overloaded\",\"param\":null}}\n\n",
        ),
        (
            Dialect::Infron,
            "api",
            "data: {\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"type\":\"overloaded\",\"param\":\"\"}}\n\n",
        ),
        (
            Dialect::Anthropic,
            "api",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"The model is overloaded.\"},\"request_id\":\"req_test_1\"}\n\n",
        ),
        (
            Dialect::Infuzu,
            "api",
            "data: {\"error\":{\"code\":\"overloaded\",\"message\":\"The model is overloaded.\"}}\n\n",
        ),
        (
            Dialect::OpenAi,
            "io",
            "data: {\"error\":{\"message\":\"The stream failed before it was complete.\",\"type\":\"server_error\",\"code\":\"api_error\",\"param\":null}}\n\n",
        ),
        (
            Dialect::Anthropic,
            "io",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"The stream failed before it was complete.\"},\"request_id\":\"req_test_1\"}\n\n",
        ),
    ];
    for (d, how, event) in cases {
        let served = Served::start(gateway(d, None)).await;
        let req = request("GET", &served.url(&format!("/stream/{how}")))
            .header("authorization", format!("Bearer {GOOD}"))
            .body(Full::default())
            .unwrap();
        // The body completes without a transport error: `send` unwraps the collected body.
        let (status, headers, body) = served.send(req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "text/event-stream");
        assert_eq!(body, format!("{FIRST}{event}"), "{d} {how}");
        assert!(
            !body.contains("10.0.0.7") && !body.contains("sk-secret"),
            "{body}"
        );
        // A real SSE parser sees the final event as an error event.
        let events = parse_sse(&body).await;
        assert_eq!(events.len(), 2);
        let last = &events[1];
        let expected_name = if d == Dialect::Anthropic {
            "error"
        } else {
            "message"
        };
        assert_eq!(last.0, expected_name);
        let back = serde_json::from_str::<serde_json::Value>(&last.1).unwrap();
        assert!(back.get("error").is_some(), "{back}");
        served.stop().await;
    }
}

async fn parse_sse(text: &str) -> Vec<(String, String)> {
    use eventsource_stream::Eventsource;
    use futures_util::StreamExt;
    let chunks = vec![Ok::<_, std::io::Error>(Bytes::from(text.to_owned()))];
    futures_util::stream::iter(chunks)
        .eventsource()
        .map(|e| {
            let e = e.unwrap();
            (e.event, e.data)
        })
        .collect()
        .await
}

// ---------------------------------------------------------------------------------------------
// Translation: an upstream in any dialect, re-rendered in the gateway's.

/// (name, status, extra header, request id, body), written from each dialect's documented shape.
/// (name, status, (header, value), request id, body)
type Upstream = (
    &'static str,
    u16,
    (&'static str, &'static str),
    &'static str,
    &'static str,
);

const UPSTREAMS: &[Upstream] = &[
    (
        "infuzu",
        429,
        ("x-request-id", "up_infuzu"),
        "up_infuzu",
        r#"{"error":{"code":"rate_limit_exceeded","message":"Daily limit reached."}}"#,
    ),
    (
        "envelope",
        429,
        ("x-request-id", "up_envelope"),
        "up_envelope",
        r#"{"success":false,"error":{"code":"RATE_LIMIT_EXCEEDED","message":"Daily limit reached."},"meta":{"request_id":"up_envelope","timestamp":"2024-01-01T00:00:00Z"}}"#,
    ),
    (
        "openai",
        429,
        ("x-request-id", "up_openai"),
        "up_openai",
        r#"{"error":{"message":"Daily limit reached.","type":"rate_limit_error","code":"rate_limit_exceeded","param":null}}"#,
    ),
    (
        "infron",
        429,
        ("x-request-id", "up_infron"),
        "up_infron",
        r#"{"error":{"code":429,"message":"Daily limit reached.","type":"","param":""}}"#,
    ),
    (
        "anthropic",
        429,
        ("request-id", "up_anthropic"),
        "up_anthropic",
        r#"{"type":"error","error":{"type":"rate_limit_error","message":"Daily limit reached."},"request_id":"up_anthropic"}"#,
    ),
];

fn upstream() -> Router {
    Router::new()
        .route(
            "/up/{name}",
            get(|Path(name): Path<String>| async move {
                if name == "html" {
                    return (
                        StatusCode::BAD_GATEWAY,
                        [("content-type", "text/html")],
                        "<html><body><h1>502 Bad Gateway</h1></body></html>",
                    )
                        .into_response();
                }
                if name == "overloaded" {
                    return (
                        StatusCode::from_u16(529).unwrap(),
                        [("content-type", "application/json"), ("request-id", "up_529")],
                        r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"up_529"}"#,
                    )
                        .into_response();
                }
                if name == "ok" {
                    return r#"{"choices":[]}"#.into_response();
                }
                let &(_, status, header, _, body) =
                    UPSTREAMS.iter().find(|u| u.0 == name).unwrap();
                (
                    StatusCode::from_u16(status).unwrap(),
                    [
                        ("content-type", "application/json"),
                        header,
                        ("retry-after", "3"),
                    ],
                    body,
                )
                    .into_response()
            }),
        )
}

#[tokio::test]
async fn upstream_errors_are_re_rendered_in_the_gateway_dialect() {
    let up = Served::start(upstream()).await;
    for d in Dialect::ALL {
        let gw = Served::start(gateway(d, Some(up.addr))).await;
        let get = |path: String| {
            request("GET", &gw.url(&path))
                .header("authorization", format!("Bearer {GOOD}"))
                .body(Full::default())
                .unwrap()
        };
        for &(name, status, _, up_id, _) in UPSTREAMS {
            let (st, headers, body) = gw.send(get(format!("/proxy/{name}"))).await;
            assert_eq!(st.as_u16(), status, "{name} -> {d}: {body}");
            assert_eq!(headers["retry-after"], "3", "{name} -> {d}");
            assert_eq!(headers["x-request-id"], up_id, "{name} -> {d}");
            let want = Want {
                message: "Daily limit reached.",
                param: None,
                issue: None,
                infuzu: "rate_limit_exceeded",
                envelope: "RATE_LIMIT_EXCEEDED",
                openai: ("rate_limit_error", "rate_limit_exceeded"),
                infron_type: "rate_limit_error",
                anthropic: "rate_limit_error",
            };
            // The upstream's request id is kept where the dialect has a place for it.
            let body = pin_timestamp(&body).replace(up_id, RID);
            assert_eq!(body, shape(d, status, &want), "{name} -> {d}");
        }
        // Anthropic's 529 is an overload everywhere; only Anthropic keeps the status.
        let (st, headers, body) = gw.send(get("/proxy/overloaded".into())).await;
        let want = if d == Dialect::Anthropic { 529 } else { 503 };
        assert_eq!(st.as_u16(), want, "{d}: {body}");
        assert_eq!(headers["x-request-id"], "up_529");
        assert!(body.contains("Overloaded"), "{body}");
        // An HTML proxy page: the status decides, the page is not echoed.
        let (st, _, body) = gw.send(get("/proxy/html".into())).await;
        assert_eq!(st, StatusCode::BAD_GATEWAY, "{d}");
        assert!(
            !body.contains("<html") && serde_json::from_str::<serde_json::Value>(&body).is_ok(),
            "{body}"
        );
        // Successes pass through untouched.
        let (st, _, body) = gw.send(get("/proxy/ok".into())).await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, r#"{"choices":[]}"#));
        gw.stop().await;
    }
    up.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Hostile headers never panic and never take the server down.

#[tokio::test]
async fn hostile_headers_get_answers() {
    let served = Served::start(gateway(Dialect::Envelope, None)).await;
    let url = served.url("/v1/chat/completions");
    let big = "k".repeat(64 * 1024);
    let non_ascii =
        HeaderValue::from_bytes(b"Bearer \xd0\xba\xd0\xbb\xd1\x8e\xd1\x87-0123456789").unwrap();
    let cases: Vec<(&str, Request<Full<Bytes>>, u16)> = vec![
        (
            "non-ascii key",
            {
                let mut r = chat(&url, None, "{}");
                r.headers_mut().insert("authorization", non_ascii.clone());
                r
            },
            401,
        ),
        ("64 KiB key", chat(&url, Some(&big), "{}"), 401),
        (
            "non-ascii request id",
            {
                let mut r = chat(&url, None, "{}");
                r.headers_mut().insert(
                    "x-request-id",
                    HeaderValue::from_bytes(b"\xff\xfe id").unwrap(),
                );
                r
            },
            401,
        ),
        (
            "64 KiB request id",
            {
                let mut r = chat(&url, None, "{}");
                r.headers_mut()
                    .insert("x-request-id", HeaderValue::from_str(&big).unwrap());
                r
            },
            401,
        ),
        (
            "repeated keys",
            {
                let mut r = chat(&url, Some(GOOD), "{}");
                for _ in 0..50 {
                    r.headers_mut().append(
                        "authorization",
                        HeaderValue::from_static("Bearer sk-live-0123456789"),
                    );
                }
                r
            },
            400,
        ),
        (
            "repeated request ids",
            {
                let mut r = chat(&url, None, "{}");
                for i in 0..50 {
                    r.headers_mut().append(
                        "x-request-id",
                        HeaderValue::from_str(&format!("dup{i}")).unwrap(),
                    );
                }
                r
            },
            401,
        ),
        (
            "repeated and odd content types",
            {
                let mut r = chat(&url, Some(GOOD), r#"{"messages":[1]}"#);
                r.headers_mut().insert(
                    "content-type",
                    HeaderValue::from_bytes(b"application/\xe9json").unwrap(),
                );
                r.headers_mut()
                    .append("content-type", HeaderValue::from_static("application/json"));
                r
            },
            415,
        ),
        (
            "request id that tries to break out of JSON",
            {
                let mut r = chat(&url, None, "{}");
                r.headers_mut().insert(
                    "x-request-id",
                    HeaderValue::from_static(r#"a"},"success":true,"x":{"#),
                );
                r
            },
            401,
        ),
    ];
    for (name, req, want) in cases {
        let (status, headers, body) = served.send(req).await;
        assert_eq!(status.as_u16(), want, "{name}: {body}");
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
        assert_eq!(v["success"], false, "{name}");
        assert!(headers.contains_key("x-request-id"), "{name}");
        assert!(body.len() < 4096, "{name}: {} bytes", body.len());
        assert!(
            !body.contains("0123456789") && !body.contains(&big[..300]),
            "{name}: {body}"
        );
    }
    // Still serving.
    let (status, _, _) = served
        .send(chat(&url, Some(GOOD), r#"{"messages":[1]}"#))
        .await;
    assert_eq!(status, StatusCode::OK);
    served.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Request ids: generated when the request has none, and the same id in header and body.

#[tokio::test]
async fn generated_request_ids_reach_header_and_body() {
    for d in [Dialect::Envelope, Dialect::Anthropic, Dialect::OpenAi] {
        let served = Served::start(gateway(d, None)).await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let req = Request::post(served.url("/v1/chat/completions"))
                .body(Full::new(Bytes::from("{}")))
                .unwrap();
            let (status, headers, body) = served.send(req).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            let id = headers["x-request-id"].to_str().unwrap().to_owned();
            assert_eq!(id.len(), 36, "a UUID: {id}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let in_body = match d {
                Dialect::Envelope => v["meta"]["request_id"].as_str(),
                Dialect::Anthropic => v["request_id"].as_str(),
                _ => None,
            };
            if d != Dialect::OpenAi {
                assert_eq!(in_body, Some(id.as_str()), "{d}: {body}");
            } else {
                // The OpenAI shape has no place for it: the header carries it.
                assert!(!body.contains(&id), "{body}");
            }
            seen.push(id);
        }
        assert_ne!(seen[0], seen[1]);
        // Successes carry one too.
        let (_, headers, _) = served
            .send(chat(
                &served.url("/v1/chat/completions"),
                Some(GOOD),
                r#"{"messages":[1]}"#,
            ))
            .await;
        assert_eq!(headers["x-request-id"], RID);
        let req = Request::post(served.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {GOOD}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(r#"{"messages":[1]}"#)))
            .unwrap();
        let (status, headers, _) = served.send(req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["x-request-id"].len(), 36);
        served.stop().await;
    }
}
