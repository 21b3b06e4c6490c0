//! Bad input (issue 2, item 5): every case gets a sensible `ApiError` (or a clean `None` for a
//! success) and never panics.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::time::{Duration, SystemTime};
use tower_llm_errors::error::{ParseOptions, hints::MAX_HINT};
use tower_llm_errors::{ApiError, ErrorKind};

fn st(n: u16) -> StatusCode {
    StatusCode::from_u16(n).unwrap()
}

fn headers(pairs: &[(&str, &[u8])]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_bytes(v).unwrap(),
        );
    }
    h
}

fn parse(status: u16, body: &[u8]) -> Option<ApiError> {
    ApiError::from_response(st(status), &HeaderMap::new(), body)
}

macro_rules! bad_bodies {
    ($($name:ident: $status:literal, $body:expr => $kind:ident, $msg:expr;)*) => {$(
        #[test]
        fn $name() {
            let e = parse($status, $body).expect("an error status is always an error");
            assert_eq!(e.kind(), ErrorKind::$kind, "{e:?}");
            assert_eq!(e.status(), Some(st($status)));
            assert!(e.message().contains($msg), "{:?} lacks {:?}", e.message(), $msg);
            assert!(e.message().chars().count() <= 2049);
        }
    )*};
}

bad_bodies! {
    truncated_json: 429, br#"{"error":{"message":"slow do"# => RateLimited, "not valid JSON";
    code_is_an_object: 400, br#"{"error":{"message":"m","code":{"nested":1},"type":["x"]}}"# => InvalidRequest, "m";
    error_is_a_number: 500, br#"{"error":42}"# => ServerError, "HTTP 500";
    error_is_null: 503, br#"{"error":null}"# => ServiceUnavailable, "HTTP 503";
    error_is_an_array: 502, br#"{"error":[1,2]}"# => BadGateway, "HTTP 502";
    message_is_a_number: 404, br#"{"error":{"message":7,"code":"model_not_found"}}"# => NotFound, "HTTP 404";
    empty_body: 504, b"" => GatewayTimeout, "HTTP 504 Gateway Timeout";
    whitespace_body: 500, b"  \r\n\t " => ServerError, "HTTP 500";
    json_scalar: 500, b"42" => ServerError, "42";
    json_string: 401, br#""nope""# => Authentication, "nope";
    empty_object: 403, b"{}" => PermissionDenied, "HTTP 403";
    empty_array: 400, b"[]" => InvalidRequest, "HTTP 400";
    non_utf8_text: 502, b"\xff\xfe bad \xc3\x28 gateway" => BadGateway, "bad";
    non_utf8_inside_json: 429, b"{\"error\":{\"message\":\"\xff\xff\"}}" => RateLimited, "not valid JSON";
    bom_then_json: 429, b"\xEF\xBB\xBF{\"error\":{\"message\":\"x\"}}" => RateLimited, "HTTP 429";
    deeply_nested: 500, "[".repeat(100_000).as_bytes() => ServerError, "not valid JSON";
    huge_number_code: 500, br#"{"error":{"message":"m","code":1e400}}"# => ServerError, "HTTP 500";
    code_out_of_range: 500, br#"{"error":{"message":"m","code":99999999999999999999}}"# => ServerError, "m";
}

#[test]
fn success_statuses_with_odd_bodies_are_successes() {
    for body in [
        &b""[..],
        b"{",
        b"{\"error\":42}",
        b"{\"error\":null}",
        b"\xff\xfe",
        b"<html>fine</html>",
        b"{\"message\":\"ok\"}",
        b"[]",
    ] {
        assert!(parse(200, body).is_none(), "{body:?}");
    }
}

#[test]
fn ten_megabyte_body_reads_only_the_prefix() {
    let mut body = br#"{"error":{"message":""#.to_vec();
    body.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    body.extend(br#"","code":"insufficient_quota"}}"#);
    // Default: 64 KiB prefix, so the document is cut and the status decides.
    let e = parse(429, &body).unwrap();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert!(e.message().len() < 200, "{}", e.message().len());
    // With a limit that fits the whole body, the code is read and the message bounded.
    let opts = ParseOptions::new().max_body_bytes(11 * 1024 * 1024);
    let e = ApiError::from_response_with(st(429), &HeaderMap::new(), &body, &opts).unwrap();
    assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
    assert_eq!(e.message().chars().count(), 2049);
    // A 10 MB HTML page: a short summary, never the page.
    let mut html = b"<html><body><p>".to_vec();
    html.extend(std::iter::repeat_n(b'x', 10 * 1024 * 1024));
    let e = parse(502, &html).unwrap();
    assert_eq!(e.kind(), ErrorKind::BadGateway);
    assert!(e.message().chars().count() <= 161);
}

#[test]
fn retry_after_edge_values() {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let opts = ParseOptions::new().now(now);
    let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
    let cases: &[(&[u8], Option<Duration>)] = &[
        (b"-1", None),
        (b"99999999999", Some(MAX_HINT)),
        (b"184467440737095516150", Some(MAX_HINT)),
        (b"1.5", None),
        (b"soon", None),
        (past.as_bytes(), Some(Duration::ZERO)),
        (b"Mon, 32 Foo 2024 25:61:61 GMT", None),
        (b"Sun, 06 Nov 1994 08:49:37 GMT", Some(Duration::ZERO)),
        (b"\xff\xfe", None),
    ];
    for (value, want) in cases {
        let h = headers(&[("retry-after", value)]);
        let e = ApiError::from_response_with(st(503), &h, b"", &opts).unwrap();
        assert_eq!(
            e.retry_after(),
            *want,
            "{:?}",
            String::from_utf8_lossy(value)
        );
        assert!(e.is_retryable());
    }
}

#[test]
fn other_hint_edge_values_never_overflow() {
    let cases: &[(&str, &[u8], Option<Duration>)] = &[
        ("retry-after-ms", b"-5", None),
        ("retry-after-ms", b"1e308", Some(MAX_HINT)),
        ("retry-after-ms", b"NaN", None),
        (
            "grpc-retry-pushback-ms",
            b"18446744073709551615999",
            Some(MAX_HINT),
        ),
        ("grpc-retry-pushback-ms", b"--1", None),
    ];
    for (name, value, want) in cases {
        let h = headers(&[(name, value)]);
        let e = ApiError::from_response(st(503), &h, b"").unwrap();
        assert_eq!(e.retry_after(), *want, "{name}: {value:?}");
    }
    let h = headers(&[
        ("x-ratelimit-remaining-requests", b"0"),
        (
            "x-ratelimit-reset-requests",
            b"99999999999999999999999h99999999m",
        ),
    ]);
    let e = ApiError::from_response(st(429), &h, b"").unwrap();
    assert_eq!(e.retry_after(), Some(MAX_HINT));
    let h = headers(&[
        ("anthropic-ratelimit-tokens-remaining", b"0"),
        ("anthropic-ratelimit-tokens-reset", b"9999-12-31T23:59:59Z"),
    ]);
    let e = ApiError::from_response(st(429), &h, b"").unwrap();
    assert_eq!(e.retry_after(), Some(MAX_HINT));
}

#[test]
fn duplicate_headers_take_the_first_usable_value() {
    let h = headers(&[
        ("retry-after", b"junk"),
        ("retry-after", b"4"),
        ("retry-after", b"9"),
        ("x-request-id", b"first"),
        ("x-request-id", b"second"),
        ("x-should-retry", b"false"),
        ("x-should-retry", b"true"),
    ]);
    let e = ApiError::from_response(st(429), &h, b"").unwrap();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));
    assert_eq!(e.request_id(), Some("first"));
    assert!(!e.is_retryable());
    let h = headers(&[("grpc-status", b"14"), ("grpc-status", b"0")]);
    let e = ApiError::from_response(st(200), &h, b"").unwrap();
    assert_eq!(e.kind(), ErrorKind::ServiceUnavailable);
}

#[test]
fn non_ascii_header_values_are_ignored() {
    let h = headers(&[
        ("x-request-id", b"\xffid"),
        ("request-id", b"ok-id"),
        ("grpc-status", b"\xfe"),
    ]);
    let e = ApiError::from_response(st(500), &h, b"").unwrap();
    assert_eq!(e.request_id(), Some("ok-id"));
    assert_eq!(e.kind(), ErrorKind::ServerError);
}

#[test]
fn overlong_fields_are_bounded() {
    let long = "x".repeat(10_000);
    let body = format!(
        r#"{{"error":{{"message":"{long}","code":"{long}","type":"{long}","param":"{long}"}}}}"#
    );
    let h = headers(&[("x-request-id", long.as_bytes())]);
    let e = ApiError::from_response(st(400), &h, body.as_bytes()).unwrap();
    assert!(e.message().chars().count() <= 2049);
    for f in [e.code(), e.error_type(), e.param(), e.request_id()] {
        assert!(f.unwrap_or_else(|| panic!("{:?}", e)).chars().count() <= 257);
    }
}

#[test]
fn secrets_never_reach_debug_or_display() {
    let body = br#"{"error":{"message":"key sk-live-SECRETSECRETSECRET refused; Bearer SECRETSECRETTOKEN too","code":"invalid_api_key","param":"api_key=SECRETSECRETPARAM"}}"#;
    let e = parse(401, body).unwrap();
    let shown = format!("{e:?} {e} {}", e.param().unwrap_or_default());
    assert!(!shown.contains("SECRETSECRET"), "{shown}");
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    /// Pieces of real shapes, shuffled into (mostly broken) documents.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "\"error\"",
        "\"code\"",
        "\"message\"",
        "\"type\"",
        "\"status\"",
        "\"details\"",
        "\"@type\"",
        "\"retryDelay\"",
        "\"30s\"",
        "\"-1.5s\"",
        "\"type.googleapis.com/google.rpc.RetryInfo\"",
        "\"metadata\"",
        "\"raw\"",
        "429",
        "1e999",
        "null",
        "true",
        "\"success\"",
        "false",
        "\"meta\"",
        "\"innererror\"",
        "\"filtered\"",
        "\"content_filter_result\"",
        "\"object\"",
        "\"detail\"",
        "\"loc\"",
        "\"msg\"",
        "-7",
        "\"sk-abcdefghijklmnopqrstuvwxyz\"",
        "\"\\ud800\"",
        "<title>",
        "</title>",
    ];

    proptest! {
        #[test]
        fn on_random_bytes(status in 100u16..600, body in proptest::collection::vec(any::<u8>(), 0..512),
                           ra in proptest::collection::vec(any::<u8>(), 0..24)) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&ra) {
                for name in ["retry-after", "retry-after-ms", "grpc-retry-pushback-ms", "grpc-status",
                             "x-ratelimit-reset-tokens", "anthropic-ratelimit-tokens-reset", "date"] {
                    h.append(name, v.clone());
                }
                h.append("x-ratelimit-remaining-tokens", HeaderValue::from_static("0"));
                h.append("anthropic-ratelimit-tokens-remaining", HeaderValue::from_static("0"));
            }
            if let Some(e) = ApiError::from_response(st(status), &h, &body) {
                prop_assert!(e.retry_after().is_none_or(|d| d <= MAX_HINT));
                prop_assert!(e.message().chars().count() <= 2049);
            } else {
                prop_assert!(status < 400);
            }
        }

        #[test]
        fn on_shuffled_shape_pieces(status in 100u16..600,
                                    idx in proptest::collection::vec(0..PIECES.len(), 0..40)) {
            let body: String = idx.iter().map(|&i| PIECES[i]).collect();
            let got = ApiError::from_response(st(status), &HeaderMap::new(), body.as_bytes());
            if status >= 400 {
                prop_assert!(got.is_some());
            }
            if let Some(e) = got {
                let shown = format!("{:?}", e);
                prop_assert!(!shown.contains("ijklmnop"), "{}", shown);
            }
        }
    }
}
