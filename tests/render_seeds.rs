//! Every code in every seed table, rendered in its dialect and byte-checked against the shape the
//! vendor documents (field names, order and nesting), plus the OpenAI and Anthropic shapes.

use http::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower_llm_errors::{ApiError, Dialect, ErrorKind};

/// 2024-01-01T00:00:00Z
fn clock() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_704_067_200)
}

fn render(err: &ApiError, d: Dialect) -> (u16, String) {
    let res = err.render_at(d, clock());
    assert_eq!(res.headers()["content-type"], "application/json");
    (
        res.status().as_u16(),
        String::from_utf8(res.body().to_vec()).unwrap(),
    )
}

fn err(kind: ErrorKind, status: u16, code: &str) -> ApiError {
    ApiError::new(kind, "m")
        .with_status(StatusCode::from_u16(status).unwrap())
        .with_code(code)
}

/// Seed 000 (Infuzu): `{"error":{"code","message"}}`.
macro_rules! infuzu_table {
    ($($status:literal $code:literal $kind:ident;)*) => {
        #[test]
        fn infuzu_every_code() {
            $(
                let e = err(ErrorKind::$kind, $status, $code);
                let want = format!(r#"{{"error":{{"code":"{}","message":"m"}}}}"#, $code);
                assert_eq!(render(&e, Dialect::Infuzu), ($status, want));
            )*
        }
    };
}

infuzu_table! {
    400 "invalid_request_body" InvalidRequest;
    400 "multiple_api_keys" InvalidRequest;
    400 "missing_required_field" InvalidRequest;
    400 "invalid_field" InvalidRequest;
    401 "missing_api_key" Authentication;
    401 "invalid_api_key" Authentication;
    402 "not_enough_funds" InsufficientFunds;
    415 "unsupported_media_type" UnsupportedMediaType;
    429 "rate_limit_exceeded" RateLimited;
    500 "internal_server_error" ServerError;
}

/// Seed 001 (envelope): `success:false`, `error.details` only with a field, `meta` always.
macro_rules! envelope_table {
    ($($status:literal $code:literal $kind:ident $(field $field:literal)?;)*) => {
        #[test]
        fn envelope_every_code() {
            $(
                #[allow(unused_mut)]
                let mut e = err(ErrorKind::$kind, $status, $code).with_request_id("req_1234567890");
                #[allow(unused_mut, unused_assignments)]
                let mut details = String::new();
                $(
                    e = e.with_param($field).with_detail("out of range");
                    details = format!(r#","details":{{"field":"{}","issue":"out of range"}}"#, $field);
                )?
                let want = format!(
                    concat!(
                        r#"{{"success":false,"error":{{"code":"{}","message":"m"{}}},"#,
                        r#""meta":{{"request_id":"req_1234567890","timestamp":"2024-01-01T00:00:00Z"}}}}"#,
                    ),
                    $code, details,
                );
                assert_eq!(render(&e, Dialect::Envelope), ($status, want), "{}", $code);
            )*
        }
    };
}

envelope_table! {
    401 "MISSING_API_KEY" Authentication;
    401 "INVALID_API_KEY" Authentication;
    401 "EXPIRED_API_KEY" Authentication;
    401 "REVOKED_API_KEY" Authentication;
    403 "INSUFFICIENT_PERMISSIONS" PermissionDenied;
    403 "ACCOUNT_SUSPENDED" PermissionDenied;
    403 "QUOTA_EXCEEDED" QuotaExceeded;
    400 "INVALID_REQUEST" InvalidRequest;
    400 "MISSING_REQUIRED_FIELD" InvalidRequest field "messages";
    400 "INVALID_FIELD_VALUE" InvalidRequest field "top_p";
    400 "UNSUPPORTED_MODEL" InvalidRequest;
    400 "INVALID_FILE_FORMAT" InvalidRequest;
    400 "FILE_TOO_LARGE" PayloadTooLarge;
    404 "RESOURCE_NOT_FOUND" NotFound;
    404 "ENDPOINT_NOT_FOUND" NotFound;
    404 "MODEL_NOT_FOUND" NotFound;
    429 "RATE_LIMIT_EXCEEDED" RateLimited;
    429 "CONCURRENT_LIMIT_EXCEEDED" RateLimited;
    500 "INTERNAL_ERROR" ServerError;
    500 "MODEL_UNAVAILABLE" ServerError;
    500 "PROCESSING_ERROR" ServerError;
    502 "SERVICE_UNAVAILABLE" BadGateway;
    503 "SERVICE_UNAVAILABLE" ServiceUnavailable;
    502 "OVERLOADED" Overloaded;
    503 "OVERLOADED" Overloaded;
    400 "PROMPT_TOO_LONG" ContextLengthExceeded field "prompt";
    400 "INVALID_TEMPERATURE" InvalidRequest field "temperature";
    400 "INVALID_MAX_TOKENS" InvalidRequest field "max_tokens";
    400 "INVALID_IMAGE_SIZE" InvalidRequest field "size";
    400 "INVALID_IMAGE_QUALITY" InvalidRequest field "quality";
    400 "PROMPT_VIOLATION" ContentFiltered field "prompt";
}

/// Seeds 002 and 003 (OpenAI-compatible): `{"error":{"message","type","code","param"}}`.
macro_rules! openai_table {
    ($($status:literal $kind:ident $code:literal $ty:literal;)*) => {
        #[test]
        fn openai_every_code() {
            $(
                let e = err(ErrorKind::$kind, $status, $code);
                let want = format!(
                    r#"{{"error":{{"message":"m","type":"{}","code":"{}","param":null}}}}"#,
                    $ty, $code,
                );
                assert_eq!(render(&e, Dialect::OpenAi), ($status, want), "{}", $code);
                // Without a code, the kind picks the seed's type at the same status.
                let bare = ApiError::new(ErrorKind::$kind, "m")
                    .with_status(StatusCode::from_u16($status).unwrap())
                    .with_param("messages");
                let (st, body) = render(&bare, Dialect::OpenAi);
                assert_eq!(st, $status);
                let ty = format!(r#""type":"{}""#, $ty);
                assert!(body.contains(&ty) && body.ends_with(r#""param":"messages"}}"#), "{body}");
            )*
        }
    };
}

openai_table! {
    // seed 002's table (status, code)
    400 InvalidRequest "invalid_request_error" "invalid_request_error";
    401 Authentication "invalid_api_key" "authentication_error";
    402 InsufficientFunds "payment_required" "payment_required";
    403 PermissionDenied "forbidden" "permission_error";
    404 NotFound "model_not_found" "not_found_error";
    429 RateLimited "rate_limit_exceeded" "rate_limit_error";
    500 ServerError "api_error" "server_error";
    502 BadGateway "api_error" "server_error";
    // seed 003's table (status, type)
    413 PayloadTooLarge "payload_too_large" "invalid_request_error";
    503 ServiceUnavailable "service_unavailable" "server_error";
    504 GatewayTimeout "gateway_timeout" "server_error";
    429 QuotaExceeded "insufficient_quota" "insufficient_quota";
}

#[test]
fn openai_seed_example_masks_the_key() {
    let e = ApiError::new(
        ErrorKind::Authentication,
        "Wrong key sk-proj-0123456789abcdef sent.",
    )
    .with_status(StatusCode::UNAUTHORIZED)
    .with_code("invalid_api_key")
    .with_error_type("invalid_request_error");
    assert_eq!(
        render(&e, Dialect::OpenAi),
        (
            401,
            r#"{"error":{"message":"Wrong key sk-pr*** sent.","type":"invalid_request_error","code":"invalid_api_key","param":null}}"#.to_owned()
        )
    );
}

/// Seed 004 (Infron): numeric `code` equal to the status; `param` a string.
macro_rules! infron_table {
    ($($status:literal $kind:ident $ty:literal;)*) => {
        #[test]
        fn infron_every_code() {
            $(
                let e = ApiError::new(ErrorKind::$kind, "m")
                    .with_status(StatusCode::from_u16($status).unwrap());
                let want = format!(
                    r#"{{"error":{{"code":{},"message":"m","type":"{}","param":""}}}}"#,
                    $status, $ty,
                );
                assert_eq!(render(&e, Dialect::Infron), ($status, want));
                // The kind alone gives the same status.
                let bare = ApiError::new(ErrorKind::$kind, "m");
                assert_eq!(render(&bare, Dialect::Infron).0, $status);
            )*
        }
    };
}

infron_table! {
    400 InvalidRequest "invalid_request_error";
    401 Authentication "authentication_error";
    402 InsufficientFunds "payment_required";
    403 ContentFiltered "content_filter";
    408 RequestTimeout "invalid_request_error";
    429 RateLimited "rate_limit_error";
    502 BadGateway "server_error";
    503 ServiceUnavailable "server_error";
}

#[test]
fn infron_param_and_unprocessable_status() {
    let e = ApiError::new(ErrorKind::InvalidRequest, "m")
        .with_status(StatusCode::UNPROCESSABLE_ENTITY)
        .with_param("temperature");
    assert_eq!(
        render(&e, Dialect::Infron),
        (
            422,
            r#"{"error":{"code":422,"message":"m","type":"invalid_request_error","param":"temperature"}}"#.to_owned()
        )
    );
}

/// Anthropic: `{"type":"error","error":{"type","message"},"request_id"}`.
macro_rules! anthropic_table {
    ($($status:literal $kind:ident $ty:literal;)*) => {
        #[test]
        fn anthropic_every_type() {
            $(
                let e = ApiError::new(ErrorKind::$kind, "m").with_request_id("req_011");
                let want = format!(
                    r#"{{"type":"error","error":{{"type":"{}","message":"m"}},"request_id":"req_011"}}"#,
                    $ty,
                );
                assert_eq!(render(&e, Dialect::Anthropic), ($status, want));
            )*
        }
    };
}

anthropic_table! {
    400 InvalidRequest "invalid_request_error";
    401 Authentication "authentication_error";
    402 InsufficientFunds "billing_error";
    403 PermissionDenied "permission_error";
    404 NotFound "not_found_error";
    413 PayloadTooLarge "request_too_large";
    429 RateLimited "rate_limit_error";
    500 ServerError "api_error";
    504 GatewayTimeout "timeout_error";
    529 Overloaded "overloaded_error";
}

/// Every kind in every dialect without a code or status: the dialect's canonical answer. This is
/// the dialect × status table of the server module.
macro_rules! kind_table {
    ($($kind:ident => $iz:literal $izc:literal, $en:literal $enc:literal, $oa:literal $oat:literal $oac:literal, $ifr:literal, $an:literal $ant:literal;)*) => {
        #[test]
        fn every_kind_in_every_dialect() {
            let mut seen = Vec::new();
            $(
                seen.push(ErrorKind::$kind);
                let e = ApiError::new(ErrorKind::$kind, "");
                let (st, body) = render(&e, Dialect::Infuzu);
                assert_eq!((st, body.contains(&format!(r#""code":"{}""#, $izc))), ($iz, true), "{body}");
                let (st, body) = render(&e, Dialect::Envelope);
                assert_eq!((st, body.contains(&format!(r#""code":"{}""#, $enc))), ($en, true), "{body}");
                let (st, body) = render(&e, Dialect::OpenAi);
                assert!(body.contains(&format!(r#""type":"{}","code":"{}""#, $oat, $oac)), "{body}");
                assert_eq!(st, $oa);
                let (st, body) = render(&e, Dialect::Infron);
                assert!(body.starts_with(&format!(r#"{{"error":{{"code":{},"message":""#, $ifr)), "{body}");
                assert_eq!(st, $ifr);
                let (st, body) = render(&e, Dialect::Anthropic);
                assert!(body.contains(&format!(r#""type":"{}""#, $ant)), "{body}");
                assert_eq!(st, $an);
                // An empty message is replaced by one of ours, never sent empty.
                assert!(!body.contains(r#""message":"""#), "{body}");
            )*
            assert_eq!(seen, ErrorKind::ALL);
        }
    };
}

kind_table! {
    InvalidRequest => 400 "invalid_request_body", 400 "INVALID_REQUEST", 400 "invalid_request_error" "invalid_request_error", 400, 400 "invalid_request_error";
    Authentication => 401 "invalid_api_key", 401 "INVALID_API_KEY", 401 "authentication_error" "invalid_api_key", 401, 401 "authentication_error";
    PermissionDenied => 403 "permission_denied", 403 "INSUFFICIENT_PERMISSIONS", 403 "permission_error" "forbidden", 403, 403 "permission_error";
    InsufficientFunds => 402 "not_enough_funds", 402 "INSUFFICIENT_FUNDS", 402 "payment_required" "payment_required", 402, 402 "billing_error";
    NotFound => 404 "not_found", 404 "RESOURCE_NOT_FOUND", 404 "not_found_error" "not_found", 404, 404 "not_found_error";
    Conflict => 409 "conflict", 409 "CONFLICT", 409 "invalid_request_error" "conflict", 409, 409 "invalid_request_error";
    PayloadTooLarge => 413 "payload_too_large", 413 "PAYLOAD_TOO_LARGE", 413 "invalid_request_error" "payload_too_large", 413, 413 "request_too_large";
    UnsupportedMediaType => 415 "unsupported_media_type", 415 "UNSUPPORTED_MEDIA_TYPE", 415 "invalid_request_error" "unsupported_media_type", 415, 415 "invalid_request_error";
    ContextLengthExceeded => 400 "context_length_exceeded", 400 "PROMPT_TOO_LONG", 400 "invalid_request_error" "context_length_exceeded", 400, 400 "invalid_request_error";
    ContentFiltered => 403 "content_filtered", 400 "PROMPT_VIOLATION", 400 "invalid_request_error" "content_filter", 403, 400 "invalid_request_error";
    RequestTimeout => 408 "request_timeout", 408 "REQUEST_TIMEOUT", 408 "invalid_request_error" "request_timeout", 408, 408 "invalid_request_error";
    RateLimited => 429 "rate_limit_exceeded", 429 "RATE_LIMIT_EXCEEDED", 429 "rate_limit_error" "rate_limit_exceeded", 429, 429 "rate_limit_error";
    QuotaExceeded => 429 "quota_exceeded", 403 "QUOTA_EXCEEDED", 429 "insufficient_quota" "insufficient_quota", 429, 429 "rate_limit_error";
    ServerError => 500 "internal_server_error", 500 "INTERNAL_ERROR", 500 "server_error" "api_error", 500, 500 "api_error";
    BadGateway => 502 "bad_gateway", 502 "BAD_GATEWAY", 502 "server_error" "bad_gateway", 502, 502 "api_error";
    ServiceUnavailable => 503 "service_unavailable", 503 "SERVICE_UNAVAILABLE", 503 "server_error" "service_unavailable", 503, 503 "api_error";
    Overloaded => 503 "overloaded", 503 "OVERLOADED", 503 "server_error" "overloaded", 503, 529 "overloaded_error";
    GatewayTimeout => 504 "gateway_timeout", 504 "GATEWAY_TIMEOUT", 504 "server_error" "gateway_timeout", 504, 504 "timeout_error";
    Unknown => 500 "internal_server_error", 500 "INTERNAL_ERROR", 500 "server_error" "api_error", 500, 500 "api_error";
}

#[test]
fn codes_translate_between_vocabularies() {
    // An Infuzu code rendered as an envelope, and back.
    let e = err(ErrorKind::Authentication, 401, "missing_api_key");
    assert!(
        render(&e, Dialect::Envelope)
            .1
            .contains(r#""code":"MISSING_API_KEY""#)
    );
    assert!(
        render(&e, Dialect::OpenAi)
            .1
            .contains(r#""code":"missing_api_key""#)
    );
    let e = err(ErrorKind::InvalidRequest, 400, "INVALID_FIELD_VALUE");
    assert!(
        render(&e, Dialect::Infuzu)
            .1
            .contains(r#""code":"invalid_field""#)
    );
    // A code foreign to the target vocabulary falls back to the kind's code.
    let e = err(ErrorKind::InvalidRequest, 400, "multiple_api_keys");
    assert!(
        render(&e, Dialect::Envelope)
            .1
            .contains(r#""code":"INVALID_REQUEST""#)
    );
    // 529 exists only for Anthropic; the others answer 503.
    let e = ApiError::new(ErrorKind::Overloaded, "busy")
        .with_status(StatusCode::from_u16(529).unwrap());
    assert_eq!(render(&e, Dialect::Anthropic).0, 529);
    for d in [
        Dialect::OpenAi,
        Dialect::Infuzu,
        Dialect::Envelope,
        Dialect::Infron,
    ] {
        assert_eq!(render(&e, d).0, 503, "{d}");
    }
    // A status that contradicts the kind is not kept.
    let e = ApiError::new(ErrorKind::RateLimited, "m").with_status(StatusCode::BAD_REQUEST);
    for d in Dialect::ALL {
        assert_eq!(render(&e, d).0, 429, "{d}");
    }
}

#[test]
fn headers_and_meta() {
    let e = ApiError::new(ErrorKind::RateLimited, "slow down")
        .with_retry_after(Duration::from_millis(1500))
        .with_request_id("req_abc")
        .with_timestamp("2025-05-05T10:11:12Z");
    for d in Dialect::ALL {
        let res = e.render(d);
        assert_eq!(res.headers()["retry-after"], "2", "{d}");
        assert_eq!(res.headers()["x-request-id"], "req_abc", "{d}");
    }
    let body = render(&e, Dialect::Envelope).1;
    assert!(
        body.ends_with(r#""meta":{"request_id":"req_abc","timestamp":"2025-05-05T10:11:12Z"}}"#),
        "{body}"
    );
    // A malformed carried time stamp is replaced by the clock; no request id is `null`.
    let e = ApiError::new(ErrorKind::RateLimited, "m").with_timestamp("yesterday\"}");
    let res = e.render_at(Dialect::Envelope, clock());
    assert!(res.headers().get("retry-after").is_none());
    assert!(res.headers().get("x-request-id").is_none());
    assert!(
        res.body()
            .ends_with(br#""meta":{"request_id":null,"timestamp":"2024-01-01T00:00:00Z"}}"#)
    );
    let body = render(&e, Dialect::Anthropic).1;
    assert!(body.ends_with(r#""request_id":null}"#), "{body}");
}

#[test]
fn render_then_parse_keeps_message_status_request_id_and_hint() {
    for d in Dialect::ALL {
        for kind in ErrorKind::ALL {
            let e = ApiError::new(kind, "the \"thing\"\nfailed")
                .with_request_id("req_42")
                .with_retry_after(Duration::from_secs(7));
            let res = e.render(d);
            let back = ApiError::from_response(res.status(), res.headers(), res.body())
                .unwrap_or_else(|| panic!("{d} {kind:?} did not parse"));
            assert_eq!(back.message(), e.message(), "{d} {kind:?}");
            assert_eq!(back.status(), Some(res.status()), "{d} {kind:?}");
            assert_eq!(back.request_id(), Some("req_42"), "{d} {kind:?}");
            assert_eq!(
                back.retry_after(),
                Some(Duration::from_secs(7)),
                "{d} {kind:?}"
            );
            let expected = match (d, kind) {
                // Nothing on the wire distinguishes an unknown failure from a plain 500.
                (_, ErrorKind::Unknown) => ErrorKind::ServerError,
                // Anthropic's error types are a closed set with no slot for these kinds: they
                // degrade to the nearest type (documented in `render`).
                (
                    Dialect::Anthropic,
                    ErrorKind::ContextLengthExceeded | ErrorKind::ContentFiltered,
                ) => ErrorKind::InvalidRequest,
                (Dialect::Anthropic, ErrorKind::QuotaExceeded) => ErrorKind::RateLimited,
                (_, k) => k,
            };
            assert_eq!(back.kind(), expected, "{d} {kind:?}: {:?}", res.body());
            // Whatever the dialect can say, the retry verdict survives (`x-should-retry`).
            assert_eq!(back.is_retryable(), kind.is_retryable(), "{d} {kind:?}");
        }
    }
}
