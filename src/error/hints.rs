//! Retry hints and request ids read from response headers.
//!
//! # Grammars implemented
//!
//! `Retry-After` (RFC 9110, section 10.2.3):
//!
//! ```text
//! Retry-After   = HTTP-date / delay-seconds
//! delay-seconds = 1*DIGIT
//! ```
//!
//! An HTTP-date is measured against the response's own `Date` header when it has a valid one
//! (so a skewed local clock does not matter), otherwise against the local wall clock; a date in
//! the past means "now" (zero). Anything else (negative numbers, fractions, garbage) is ignored.
//! Values beyond [`MAX_HINT`] are clamped to it, so arithmetic on them can never overflow; the
//! retry layer then refuses to wait that long.
//!
//! `retry-after-ms` (OpenAI, Azure): a non-negative decimal number of milliseconds, fractions
//! allowed. It wins over `Retry-After` when both are present, as in the official SDKs.
//!
//! `x-should-retry: true|false`: the server's explicit verdict, which overrides the kind.
//!
//! HTTP-dates are parsed with the `httpdate` crate (all three RFC 9110 formats).

use super::HintSource;
use http::{HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime};

/// The longest retry hint we represent: larger values are clamped to this (about 31.7 years).
pub const MAX_HINT: Duration = Duration::from_secs(1_000_000_000);

/// The request-id headers we read, most specific first.
pub(crate) const REQUEST_ID_HEADERS: &[&str] = &[
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "x-amz-request-id",
    "cf-ray",
];

/// Returns the first well-formed value of `name` (duplicates: the first one wins).
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .find_map(|v: &HeaderValue| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The request id from the response headers, bounded to 256 characters.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS
        .iter()
        .find_map(|h| header_str(headers, h))
        .map(|s| s.chars().take(256).collect())
}

/// `x-should-retry: true|false`.
pub(crate) fn should_retry(headers: &HeaderMap) -> Option<bool> {
    match header_str(headers, "x-should-retry")? {
        s if s.eq_ignore_ascii_case("true") => Some(true),
        s if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// Clamps a hint to [`MAX_HINT`].
pub(crate) fn clamp(d: Duration) -> Duration {
    d.min(MAX_HINT)
}

/// Parses a non-negative decimal number of milliseconds (`"1500"`, `"20.5"`).
pub fn parse_millis(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() || s.starts_with(['-', '+']) {
        return None;
    }
    let ms: f64 = s.parse().ok()?;
    if !ms.is_finite() || ms < 0.0 {
        return None;
    }
    let secs = ms / 1000.0;
    if secs >= MAX_HINT.as_secs_f64() {
        return Some(MAX_HINT);
    }
    Some(Duration::from_secs_f64(secs))
}

/// Parses a `Retry-After` value: delta-seconds, or an HTTP-date measured against `now`.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<(Duration, HintSource)> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // 1*DIGIT; a value too long for u64 is still "very long".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        let d = Duration::from_secs(secs.min(MAX_HINT.as_secs()));
        return Some((d, HintSource::RetryAfterSeconds));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    let d = at.duration_since(now).unwrap_or(Duration::ZERO);
    Some((clamp(d), HintSource::RetryAfterDate))
}

/// The reference time for HTTP-dates: the response's `Date` header, else `fallback`.
pub(crate) fn response_now(headers: &HeaderMap, fallback: SystemTime) -> SystemTime {
    header_str(headers, "date")
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or(fallback)
}

/// The retry hint from the headers, in precedence order.
pub(crate) fn retry_after(
    headers: &HeaderMap,
    fallback_now: SystemTime,
) -> Option<(Duration, HintSource)> {
    if let Some(d) = header_str(headers, "retry-after-ms").and_then(parse_millis) {
        return Some((d, HintSource::RetryAfterMs));
    }
    if let Some(v) = header_str(headers, "retry-after") {
        let now = response_now(headers, fallback_now);
        if let Some(hit) = parse_retry_after(v, now) {
            return Some(hit);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after("7", now),
            Some((Duration::from_secs(7), HintSource::RetryAfterSeconds))
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("1.5", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("99999999999", now).unwrap().0, MAX_HINT);
        assert_eq!(
            parse_retry_after("999999999999999999999999999", now)
                .unwrap()
                .0,
            MAX_HINT
        );
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some((Duration::from_secs(30), HintSource::RetryAfterDate))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now).unwrap().0, Duration::ZERO);
        assert_eq!(
            parse_retry_after("Tue, 99 Foo 2024 99:99:99 GMT", now),
            None
        );
    }

    #[test]
    fn http_date_is_measured_against_the_date_header() {
        let server_now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let local_now = server_now + Duration::from_secs(3600); // local clock an hour ahead
        let h = hm(&[
            ("date", &httpdate::fmt_http_date(server_now)),
            (
                "retry-after",
                &httpdate::fmt_http_date(server_now + Duration::from_secs(12)),
            ),
        ]);
        assert_eq!(
            retry_after(&h, local_now),
            Some((Duration::from_secs(12), HintSource::RetryAfterDate))
        );
    }

    #[test]
    fn retry_after_ms_wins_and_duplicates_take_the_first_valid() {
        let now = SystemTime::UNIX_EPOCH;
        let h = hm(&[("retry-after", "9"), ("retry-after-ms", "250")]);
        assert_eq!(
            retry_after(&h, now),
            Some((Duration::from_millis(250), HintSource::RetryAfterMs))
        );
        let h = hm(&[
            ("retry-after-ms", "-5"),
            ("retry-after", "4"),
            ("retry-after", "8"),
        ]);
        assert_eq!(retry_after(&h, now).unwrap().0, Duration::from_secs(4));
        assert_eq!(parse_millis("NaN"), None);
        assert_eq!(parse_millis("inf"), None);
        assert_eq!(parse_millis("1e300"), Some(MAX_HINT));
    }

    #[test]
    fn should_retry_header() {
        assert_eq!(
            should_retry(&hm(&[("x-should-retry", "false")])),
            Some(false)
        );
        assert_eq!(should_retry(&hm(&[("x-should-retry", "TRUE")])), Some(true));
        assert_eq!(should_retry(&hm(&[("x-should-retry", "maybe")])), None);
    }
}
