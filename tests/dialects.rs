//! One test row per row of every error table in the five seed documents.
//!
//! Bodies are built in each seed's documented shape; messages are our own words.

use http::{HeaderMap, StatusCode};
use serde_json::json;
use tower_llm_errors::{ApiError, Dialect, ErrorKind};

fn parse(status: u16, body: &serde_json::Value) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap();
    ApiError::from_response(status, &HeaderMap::new(), body.to_string().as_bytes())
        .unwrap_or_else(|| panic!("{status} {body} was read as a success"))
}

/// Checks one row: kind, retryability (the design's rule for the kind), code, status, dialect.
fn check(e: &ApiError, status: u16, code: &str, kind: ErrorKind, dialect: Option<Dialect>) {
    assert_eq!(e.kind(), kind, "{status} {code}: {e:?}");
    assert_eq!(e.is_retryable(), kind.is_retryable(), "{status} {code}");
    assert_eq!(e.code(), Some(code), "{status} {code}");
    assert_eq!(
        e.status().map(|s| s.as_u16()),
        Some(status),
        "{status} {code}"
    );
    assert_eq!(e.dialect(), dialect, "{status} {code}");
    assert!(!e.message().is_empty());
}

macro_rules! rows {
    ($($status:literal $code:literal => $kind:ident),* $(,)?) => {
        &[$(($status, $code, ErrorKind::$kind)),*]
    };
}

type Rows = &'static [(u16, &'static str, ErrorKind)];

/// Seed 000 (Infuzu IMS): `{"error":{"code","message"}}`, every row of "Common Error Codes".
#[test]
fn seed_000_infuzu() {
    let table: Rows = rows![
        400 "invalid_request_body" => InvalidRequest,
        // Two key headers at once: the credentials must change, so it is an auth problem.
        400 "multiple_api_keys" => Authentication,
        400 "missing_required_field" => InvalidRequest,
        400 "invalid_field" => InvalidRequest,
        401 "missing_api_key" => Authentication,
        401 "invalid_api_key" => Authentication,
        402 "not_enough_funds" => InsufficientFunds,
        415 "unsupported_media_type" => UnsupportedMediaType,
        429 "rate_limit_exceeded" => RateLimited,
        500 "internal_server_error" => ServerError,
    ];
    assert_eq!(table.len(), 10);
    for &(status, code, kind) in table {
        let body = json!({"error": {"code": code, "message": format!("infuzu says {code}")}});
        check(
            &parse(status, &body),
            status,
            code,
            kind,
            Some(Dialect::Infuzu),
        );
    }
}

/// Seed 001 (the `success:false` envelope): every row of every code table.
#[test]
fn seed_001_envelope() {
    let table: Rows = rows![
        401 "MISSING_API_KEY" => Authentication,
        401 "INVALID_API_KEY" => Authentication,
        401 "EXPIRED_API_KEY" => Authentication,
        401 "REVOKED_API_KEY" => Authentication,
        403 "INSUFFICIENT_PERMISSIONS" => PermissionDenied,
        403 "ACCOUNT_SUSPENDED" => PermissionDenied,
        403 "QUOTA_EXCEEDED" => QuotaExceeded,
        400 "INVALID_REQUEST" => InvalidRequest,
        400 "MISSING_REQUIRED_FIELD" => InvalidRequest,
        400 "INVALID_FIELD_VALUE" => InvalidRequest,
        400 "UNSUPPORTED_MODEL" => InvalidRequest,
        400 "INVALID_FILE_FORMAT" => InvalidRequest,
        400 "FILE_TOO_LARGE" => PayloadTooLarge,
        404 "RESOURCE_NOT_FOUND" => NotFound,
        404 "ENDPOINT_NOT_FOUND" => NotFound,
        404 "MODEL_NOT_FOUND" => NotFound,
        429 "RATE_LIMIT_EXCEEDED" => RateLimited,
        429 "CONCURRENT_LIMIT_EXCEEDED" => RateLimited,
        500 "INTERNAL_ERROR" => ServerError,
        500 "MODEL_UNAVAILABLE" => ServiceUnavailable,
        500 "PROCESSING_ERROR" => ServerError,
        // "502/503" rows: both statuses.
        502 "SERVICE_UNAVAILABLE" => ServiceUnavailable,
        503 "SERVICE_UNAVAILABLE" => ServiceUnavailable,
        502 "OVERLOADED" => Overloaded,
        503 "OVERLOADED" => Overloaded,
    ];
    for (i, &(status, code, kind)) in table.iter().enumerate() {
        let rid = format!("req_{i:04}");
        let body = json!({
            "success": false,
            "error": {"code": code, "message": format!("envelope says {code}")},
            "meta": {"request_id": rid, "timestamp": "2024-01-01T00:00:00Z"}
        });
        let e = parse(status, &body);
        check(&e, status, code, kind, Some(Dialect::Envelope));
        assert_eq!(e.request_id(), Some(rid.as_str()));
        assert_eq!(e.timestamp(), Some("2024-01-01T00:00:00Z"));
    }
}

/// Seed 001's field-specific tables (text and image generation): the code, the field and the
/// issue are kept. The seed gives no status for these; a field error is a 400.
#[test]
fn seed_001_field_errors_keep_field_and_issue() {
    let table: &[(&str, &str, ErrorKind)] = &[
        (
            "PROMPT_TOO_LONG",
            "prompt",
            ErrorKind::ContextLengthExceeded,
        ),
        (
            "INVALID_TEMPERATURE",
            "temperature",
            ErrorKind::InvalidRequest,
        ),
        (
            "INVALID_MAX_TOKENS",
            "max_tokens",
            ErrorKind::InvalidRequest,
        ),
        ("INVALID_IMAGE_SIZE", "size", ErrorKind::InvalidRequest),
        (
            "INVALID_IMAGE_QUALITY",
            "quality",
            ErrorKind::InvalidRequest,
        ),
        ("PROMPT_VIOLATION", "prompt", ErrorKind::ContentFiltered),
    ];
    for &(code, field, kind) in table {
        let issue = format!("{field} is not acceptable here");
        let body = json!({
            "success": false,
            "error": {"code": code, "message": "field problem",
                      "details": {"field": field, "issue": issue}},
            "meta": {"request_id": "req_1234567890", "timestamp": "2024-01-01T00:00:00Z"}
        });
        let e = parse(400, &body);
        check(&e, 400, code, kind, Some(Dialect::Envelope));
        assert_eq!(e.param(), Some(field));
        assert_eq!(e.detail(), Some(issue.as_str()));
    }
}

/// Seed 001's "Request ID" example omits `success`: `error` + `meta` still identify it.
#[test]
fn seed_001_without_success_flag() {
    let body = json!({"error": {"code": "INVALID_REQUEST", "message": "no good"},
                      "meta": {"request_id": "req_77"}});
    let e = parse(400, &body);
    check(
        &e,
        400,
        "INVALID_REQUEST",
        ErrorKind::InvalidRequest,
        Some(Dialect::Envelope),
    );
    assert_eq!(e.request_id(), Some("req_77"));
    assert_eq!(e.timestamp(), None);
}

/// Seed 002 (Infe, OpenAI-compatible): every row of "Error Codes" and of the retry table. The
/// identifier is tried both as `code` and as `type`.
#[test]
fn seed_002_infe() {
    let table: Rows = rows![
        400 "invalid_request_error" => InvalidRequest,
        401 "invalid_api_key" => Authentication,
        402 "payment_required" => InsufficientFunds,
        403 "forbidden" => PermissionDenied,
        404 "model_not_found" => NotFound,
        429 "rate_limit_exceeded" => RateLimited,
        500 "api_error" => ServerError,
        502 "api_error" => BadGateway,
    ];
    // The seed's "Should Retry?" column.
    let retry = |s: u16| matches!(s, 429 | 500 | 502);
    for &(status, code, kind) in table {
        let as_code = json!({"error": {"message": "infe says no", "type": "error", "code": code}});
        let e = parse(status, &as_code);
        check(&e, status, code, kind, Some(Dialect::OpenAi));
        assert_eq!(e.is_retryable(), retry(status), "{status}");
        let as_type = json!({"error": {"message": "infe says no", "type": code, "code": null}});
        let e = parse(status, &as_type);
        assert_eq!(e.kind(), kind, "{status} type={code}");
        assert_eq!(e.error_type(), Some(code));
        assert_eq!(e.is_retryable(), retry(status), "{status}");
    }
}

/// Seed 003 (InfinityBlue, OpenAI-compatible): every row of "Common status codes" (by `type`).
#[test]
fn seed_003_infinityblue() {
    let table: Rows = rows![
        400 "invalid_request_error" => InvalidRequest,
        401 "authentication_error" => Authentication,
        403 "permission_error" => PermissionDenied,
        404 "not_found_error" => NotFound,
        413 "invalid_request_error" => PayloadTooLarge,
        429 "rate_limit_error" => RateLimited,
        500 "server_error" => ServerError,
        502 "server_error" => BadGateway,
        503 "server_error" => ServiceUnavailable,
        504 "server_error" => GatewayTimeout,
    ];
    for &(status, ty, kind) in table {
        let body =
            json!({"error": {"message": "blue says no", "type": ty, "code": ty, "param": null}});
        let e = parse(status, &body);
        check(&e, status, ty, kind, Some(Dialect::OpenAi));
        assert_eq!(e.error_type(), Some(ty));
        assert_eq!(e.param(), None);
    }
}

/// Seed 003's example: an invalid key with a coarse `invalid_request_error` type, and a `param`.
#[test]
fn seed_003_example_shape() {
    for status in [400, 401] {
        let body = json!({"error": {"message": "Wrong key: sk-abcdefghijklmnop was refused.",
                                    "type": "invalid_request_error", "code": "invalid_api_key",
                                    "param": null}});
        let e = parse(status, &body);
        assert_eq!(e.kind(), ErrorKind::Authentication, "{status}");
        assert!(
            !e.message().contains("sk-abcdefghijklmnop"),
            "{}",
            e.message()
        );
        assert!(!format!("{e:?}{e}").contains("ghijklmnop"));
    }
    let body = json!({"error": {"message": "temperature out of range", "type": "invalid_request_error",
                                "code": "invalid_value", "param": "temperature"}});
    assert_eq!(parse(400, &body).param(), Some("temperature"));
}

/// Seed 004 (Infron): every row of "Error Codes", as an HTTP error and in-band in a 200.
#[test]
fn seed_004_infron() {
    let table: &[(u16, ErrorKind)] = &[
        (400, ErrorKind::InvalidRequest),
        (401, ErrorKind::Authentication),
        (402, ErrorKind::InsufficientFunds),
        (403, ErrorKind::ContentFiltered),
        (408, ErrorKind::RequestTimeout),
        (429, ErrorKind::RateLimited),
        (502, ErrorKind::BadGateway),
        (503, ErrorKind::ServiceUnavailable),
    ];
    for &(code, kind) in table {
        let body = json!({"error": {"code": code, "message": format!("infron {code}"), "type": "", "param": ""}});
        let e = parse(code, &body);
        check(&e, code, &code.to_string(), kind, Some(Dialect::Infron));
        // In-band: the HTTP status is 200 and the body's number gives the status.
        let e = parse(200, &body);
        check(&e, code, &code.to_string(), kind, Some(Dialect::Infron));
    }
    // The seed's own sample: a 422.
    let body = json!({"error": {"message": "bad", "type": "", "param": "", "code": 422}});
    check(
        &parse(422, &body),
        422,
        "422",
        ErrorKind::InvalidRequest,
        Some(Dialect::Infron),
    );
}

/// A 200 whose body has no error object is a success for every seed shape.
#[test]
fn successes_are_none() {
    for body in [
        json!({"id": "chatcmpl-1", "object": "chat.completion", "choices": []}),
        json!({"success": true, "data": {"text": "hi"}, "meta": {"request_id": "r"}}),
        json!({"error": null, "choices": []}),
    ] {
        assert!(
            ApiError::from_response(
                StatusCode::OK,
                &HeaderMap::new(),
                body.to_string().as_bytes()
            )
            .is_none(),
            "{body}"
        );
    }
}
