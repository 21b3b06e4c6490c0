//! Every public header-hint parser on arbitrary text, and the gRPC pushback header through
//! `ApiError::from_response`. Checks: no panic, every duration at most `MAX_HINT`, and a few
//! consistency properties that must hold for any input.
#![no_main]

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime};
use tower_llm_errors::{ApiError, error::hints};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(rest);
    let now = match sel % 3 {
        0 => SystemTime::UNIX_EPOCH,
        1 => SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        _ => SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799), // 9999-12-31
    };
    if let Some(d) = hints::parse_millis(&s) {
        assert!(d <= hints::MAX_HINT);
    }
    if let Some((d, _)) = hints::parse_retry_after(&s, now) {
        assert!(d <= hints::MAX_HINT);
    }
    if let Some(d) = hints::parse_go_duration(&s) {
        assert!(d <= hints::MAX_HINT);
    }
    if let Some(t) = hints::parse_rfc3339(&s) {
        // Any accepted date lies within years 0000..=9999 give or take a day of offset.
        let lo = SystemTime::UNIX_EPOCH - Duration::from_secs(62_167_219_200 + 86_400);
        let hi = SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_800 + 86_400);
        assert!(t >= lo && t <= hi, "{s:?} -> {t:?}");
    }
    // The header paths: each header name with this value, on a 429 and a 503.
    if let Ok(v) = HeaderValue::from_bytes(rest) {
        for name in [
            "retry-after",
            "retry-after-ms",
            "grpc-retry-pushback-ms",
            "x-ratelimit-reset-requests",
            "anthropic-ratelimit-tokens-reset",
        ] {
            let mut h = HeaderMap::new();
            h.insert(name, v.clone());
            h.insert(
                "x-ratelimit-remaining-requests",
                HeaderValue::from_static("0"),
            );
            h.insert(
                "anthropic-ratelimit-tokens-remaining",
                HeaderValue::from_static("0"),
            );
            h.insert("grpc-status", HeaderValue::from_static("8"));
            for st in [
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::SERVICE_UNAVAILABLE,
            ] {
                let e = ApiError::from_response(st, &h, b"").expect("an error status is an error");
                if let Some(d) = e.retry_after() {
                    assert!(d <= hints::MAX_HINT);
                }
            }
        }
    }
});
