//! `ApiError::from_response` on an arbitrary status, header block and body, then every accessor,
//! Display/Debug and a render into every dialect. Checks that nothing panics and that the
//! retry hint stays within `hints::MAX_HINT`.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};
use tower_llm_errors::{
    ApiError, Dialect,
    error::{ParseOptions, hints::MAX_HINT},
};

/// Header names the parsers look at, so the fuzzer reaches them without guessing the spelling.
const NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "cf-ray",
    "date",
    "content-type",
    "grpc-status",
    "grpc-message",
    "grpc-retry-pushback-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "x-amzn-errortype",
    "x-error-code",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let status = u16::from_be_bytes([data[0], data[1]]) % 1000;
    let Ok(status) = StatusCode::from_u16(status.max(100)) else {
        return;
    };
    // Header block: `n` headers, each `name-index, len, value bytes`; the rest is the body.
    let n = usize::from(data[2] % 8);
    let mut rest = &data[3..];
    let mut headers = HeaderMap::new();
    for _ in 0..n {
        let [idx, len, tail @ ..] = rest else { break };
        let len = usize::from(*len % 48).min(tail.len());
        let (value, tail) = tail.split_at(len);
        rest = tail;
        let name = HeaderName::from_static(NAMES[usize::from(*idx) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name, v);
        }
    }
    let body = rest;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for opts in [
        ParseOptions::new().now(now),
        ParseOptions::new().now(now).max_body_bytes(17),
    ] {
        let Some(err) = ApiError::from_response_with(status, &headers, body, &opts) else {
            continue;
        };
        if let Some(d) = err.retry_after() {
            assert!(d <= MAX_HINT, "hint {d:?} over MAX_HINT");
        }
        let _ = (
            err.kind(),
            err.is_retryable(),
            err.status(),
            err.code(),
            err.message(),
        );
        let _ = (
            err.param(),
            err.error_type(),
            err.request_id(),
            err.detail(),
        );
        let _ = (err.timestamp(), err.dialect(), err.provider_detail());
        let _ = format!("{err} {err:?}");
        for d in Dialect::ALL {
            let r = err.render_at(d, now);
            // What we render, we read back as an error.
            let back = ApiError::from_response(r.status(), r.headers(), r.body());
            assert!(back.is_some(), "rendered {d:?} not read back as an error");
        }
    }
});
