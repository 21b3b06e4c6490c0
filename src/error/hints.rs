//! Retry hints and request ids read from response headers.
//!
//! # Precedence
//!
//! A response may carry several hints. We take the first one present, in this order, because the
//! earlier ones are the server's explicit answer for *this* response while the later ones are
//! derived from bucket state:
//!
//! 1. `retry-after-ms` (OpenAI, Azure): milliseconds, fractions allowed;
//! 2. `Retry-After` (RFC 9110): delta-seconds or an HTTP-date;
//! 3. `grpc-retry-pushback-ms` (gRPC A6): milliseconds; a **negative** value means "do not retry"
//!    and sets the verdict to `false`;
//! 4. the body's own delay (Gemini's `google.rpc.RetryInfo.retryDelay`);
//! 5. `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens`: Go-style durations (`1s`,
//!    `6m0s`, `20ms`, `1h2m3.5s`), counted only for a bucket whose `x-ratelimit-remaining-*` is
//!    `0`; when both buckets are empty the longer wait wins;
//! 6. `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset`: RFC 3339 times,
//!    counted only for a bucket whose `-remaining` is `0`, measured against the response `Date`
//!    (else [`ParseOptions::now`](super::ParseOptions::now), else the wall clock); the latest
//!    empty bucket wins.
//!
//! `x-should-retry: true|false` is applied last and overrides every other verdict, the negative
//! gRPC pushback included.
//!
//! Every hint is clamped to [`MAX_HINT`]; all arithmetic is saturating, so no header value can
//! panic or overflow. Duplicate headers: the first well-formed value wins.
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
//! HTTP-dates are parsed with the `httpdate` crate (all three RFC 9110 formats).
//!
//! Go durations (`time.ParseDuration`): one or more `number unit` pairs, where a number is
//! decimal digits with an optional fraction and a unit is `ns`, `us` (or `µs`), `ms`, `s`, `m`
//! or `h`; a lone `0` is zero. We accept no sign: a negative reset makes no sense.
//!
//! RFC 3339 `date-time` (section 5.6):
//!
//! ```text
//! date-time  = full-date "T" full-time          ; "t" and " " accepted too
//! full-date  = 4DIGIT "-" 2DIGIT "-" 2DIGIT
//! full-time  = 2DIGIT ":" 2DIGIT ":" 2DIGIT [ "." 1*DIGIT ] ( "Z" / ( "+" / "-" ) 2DIGIT ":" 2DIGIT )
//! ```
//!
//! We parse RFC 3339 by hand (about forty lines, with the civil-date-to-days formula) rather than
//! pull in `chrono` or `time`: it is the only non-HTTP date format we read, `httpdate` does not
//! cover it, and a whole calendar crate for one fixed format would be most of our build time.
//!
//! # Request ids
//!
//! The headers `x-request-id`, `request-id`, `x-amzn-requestid`, `x-amz-request-id`, `cf-ray`
//! are read, most specific first. The headers win over an id the body carries (seed 001's
//! `meta.request_id`, Anthropic's `request_id`): the body's id is used only when no header has
//! one, because a gateway's header id is the one its operators can trace.

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

/// Every visible-ASCII, non-blank value of `name`, trimmed, in order.
pub(crate) fn header_values<'a>(
    headers: &'a HeaderMap,
    name: &str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v: &HeaderValue| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Returns the first well-formed value of `name` (duplicates: the first one wins).
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    header_values(headers, name).next()
}

/// The first value of `name` that `parse` accepts (duplicates: the first usable one wins).
pub(crate) fn header_parse<T>(
    headers: &HeaderMap,
    name: &str,
    parse: impl FnMut(&str) -> Option<T>,
) -> Option<T> {
    header_values(headers, name).find_map(parse)
}

/// The request id from the response headers, bounded to 256 characters.
#[allow(dead_code)] // for the other layers; the parser uses `Present::request_id`
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    Present::scan(headers).request_id()
}

/// `x-should-retry: true|false`.
pub(crate) fn should_retry(headers: &HeaderMap, present: &Present<'_>) -> Option<bool> {
    present.parse(headers, Slot::ShouldRetry, |s| {
        if s.eq_ignore_ascii_case("true") {
            Some(true)
        } else if s.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    })
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
    // A decimal number too large for f64 (over 308 digits) is still "very long", as in
    // `parse_retry_after`; only the words `inf`/`infinity`/`nan` are rejected.
    if ms == f64::INFINITY && s.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return Some(MAX_HINT);
    }
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
pub(crate) fn response_now(
    headers: &HeaderMap,
    present: &Present<'_>,
    fallback: SystemTime,
) -> SystemTime {
    present
        .parse(headers, Slot::Date, |d| httpdate::parse_http_date(d).ok())
        .unwrap_or(fallback)
}

/// The retry hint from the headers alone, in precedence order (see the module docs).
#[allow(dead_code)] // kept for the retry layer
pub(crate) fn retry_after(
    headers: &HeaderMap,
    fallback_now: SystemTime,
) -> Option<(Duration, HintSource)> {
    read(headers, Present::scan(headers), None, &|| fallback_now).retry_after
}

/// The headers [`Present::scan`] keeps the first value of, one slot each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    RetryAfterMs,
    RetryAfter,
    Pushback,
    ShouldRetry,
    Date,
    RemainingRequests,
    ResetRequests,
    RemainingTokens,
    ResetTokens,
    AnthropicRequestsRemaining,
    AnthropicRequestsReset,
    AnthropicTokensRemaining,
    AnthropicTokensReset,
    AnthropicInputRemaining,
    AnthropicInputReset,
    AnthropicOutputRemaining,
    AnthropicOutputReset,
    GrpcStatus,
    GrpcMessage,
    AmznErrorType,
}

/// The header name of each [`Slot`], in slot order.
const SLOT_NAMES: [&str; 20] = [
    "retry-after-ms",
    "retry-after",
    "grpc-retry-pushback-ms",
    "x-should-retry",
    "date",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "anthropic-ratelimit-output-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "grpc-status",
    "grpc-message",
    "x-amzn-errortype",
];

impl Slot {
    /// The slot of a (lowercase) header name.
    fn of(name: &str) -> Option<Slot> {
        use Slot::*;
        Some(match name {
            "retry-after-ms" => RetryAfterMs,
            "retry-after" => RetryAfter,
            "grpc-retry-pushback-ms" => Pushback,
            "x-should-retry" => ShouldRetry,
            "date" => Date,
            "x-ratelimit-remaining-requests" => RemainingRequests,
            "x-ratelimit-reset-requests" => ResetRequests,
            "x-ratelimit-remaining-tokens" => RemainingTokens,
            "x-ratelimit-reset-tokens" => ResetTokens,
            "anthropic-ratelimit-requests-remaining" => AnthropicRequestsRemaining,
            "anthropic-ratelimit-requests-reset" => AnthropicRequestsReset,
            "anthropic-ratelimit-tokens-remaining" => AnthropicTokensRemaining,
            "anthropic-ratelimit-tokens-reset" => AnthropicTokensReset,
            "anthropic-ratelimit-input-tokens-remaining" => AnthropicInputRemaining,
            "anthropic-ratelimit-input-tokens-reset" => AnthropicInputReset,
            "anthropic-ratelimit-output-tokens-remaining" => AnthropicOutputRemaining,
            "anthropic-ratelimit-output-tokens-reset" => AnthropicOutputReset,
            "grpc-status" => GrpcStatus,
            "grpc-message" => GrpcMessage,
            "x-amzn-errortype" => AmznErrorType,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        SLOT_NAMES[self as usize]
    }

    /// The [`Present`] bit the header sets.
    fn bit(self) -> u16 {
        use Slot::*;
        match self {
            RetryAfterMs => Present::RETRY_AFTER_MS,
            RetryAfter => Present::RETRY_AFTER,
            Pushback => Present::PUSHBACK,
            ShouldRetry => Present::SHOULD_RETRY,
            RemainingRequests | RemainingTokens => Present::RATELIMIT,
            AnthropicRequestsRemaining
            | AnthropicRequestsReset
            | AnthropicTokensRemaining
            | AnthropicTokensReset
            | AnthropicInputRemaining
            | AnthropicInputReset
            | AnthropicOutputRemaining
            | AnthropicOutputReset => Present::ANTHROPIC,
            GrpcStatus => Present::GRPC_STATUS,
            AmznErrorType => Present::AMZN_ERROR_TYPE,
            Date | ResetRequests | ResetTokens | GrpcMessage => 0,
        }
    }
}

/// Which hint-bearing headers a response has, found in one pass over the headers, so that the
/// readers skip the lookups (each a hash of the name) for headers that are not there.
///
/// The same pass keeps the first value of every header the readers use ([`Slot`]): a header
/// sent once is then read from its slot with no lookup at all. A header sent more than once is
/// marked `repeated` and read through [`HeaderMap::get_all`] as before, so "the first usable
/// value wins" holds for duplicates exactly.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Present<'a> {
    bits: u16,
    /// The best request id seen: (rank in [`REQUEST_ID_HEADERS`], value).
    request_id: Option<(usize, &'a str)>,
    /// The first value of each [`Slot`]'s header.
    first: [Option<&'a HeaderValue>; SLOT_NAMES.len()],
    /// One bit per [`Slot`] whose header came more than once.
    repeated: u32,
}

impl<'a> Present<'a> {
    pub(crate) const RETRY_AFTER_MS: u16 = 1;
    pub(crate) const RETRY_AFTER: u16 = 1 << 1;
    pub(crate) const PUSHBACK: u16 = 1 << 2;
    pub(crate) const SHOULD_RETRY: u16 = 1 << 3;
    pub(crate) const RATELIMIT: u16 = 1 << 4;
    pub(crate) const ANTHROPIC: u16 = 1 << 5;
    pub(crate) const GRPC_STATUS: u16 = 1 << 7;
    pub(crate) const AMZN_ERROR_TYPE: u16 = 1 << 8;

    /// One pass over the headers.
    pub(crate) fn scan(headers: &'a HeaderMap) -> Present<'a> {
        let mut bits = 0;
        let mut request_id: Option<(usize, &'a str)> = None;
        let mut first = [None; SLOT_NAMES.len()];
        let mut repeated = 0;
        for (name, value) in headers {
            let n = name.as_str();
            if let Some(slot) = Slot::of(n) {
                let i = slot as usize;
                match first[i] {
                    None => first[i] = Some(value),
                    Some(_) => repeated |= 1 << i,
                }
                bits |= slot.bit();
            } else if let Some(rank) = REQUEST_ID_HEADERS.iter().position(|h| *h == n) {
                let v = value.to_str().map(str::trim).unwrap_or_default();
                if !v.is_empty() && request_id.is_none_or(|(best, _)| rank < best) {
                    request_id = Some((rank, v));
                }
            } else if n.starts_with("anthropic-ratelimit-") {
                // The limit headers (`-limit`) have no slot but still mark the family.
                bits |= Present::ANTHROPIC;
            }
        }
        Present {
            bits,
            request_id,
            first,
            repeated,
        }
    }

    /// The first value of `slot`'s header that `parse` accepts, as [`header_parse`] reads it.
    pub(crate) fn parse<T>(
        &self,
        headers: &HeaderMap,
        slot: Slot,
        mut parse: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        if self.repeated & (1 << slot as usize) != 0 {
            return header_parse(headers, slot.name(), parse);
        }
        let v = self.first[slot as usize]?.to_str().ok()?.trim();
        if v.is_empty() { None } else { parse(v) }
    }

    /// The first well-formed value of `slot`'s header, as [`header_str`] reads it.
    pub(crate) fn str(&self, headers: &'a HeaderMap, slot: Slot) -> Option<&'a str> {
        if self.repeated & (1 << slot as usize) != 0 {
            return header_str(headers, slot.name());
        }
        let v = self.first[slot as usize]?.to_str().ok()?.trim();
        (!v.is_empty()).then_some(v)
    }

    /// Whether any of `bits` is present.
    pub(crate) fn has(self, bits: u16) -> bool {
        self.bits & bits != 0
    }

    /// The request id from the most specific request-id header (first usable value), bounded
    /// to 256 characters.
    pub(crate) fn request_id(self) -> Option<String> {
        let (_, s) = self.request_id?;
        Some(match s.char_indices().nth(256) {
            Some((cut, _)) => s[..cut].to_owned(),
            None => s.to_owned(),
        })
    }
}

/// What the headers (and the body's own delay) say about retrying.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hints {
    pub(crate) retry_after: Option<(Duration, HintSource)>,
    pub(crate) should_retry: Option<bool>,
}

/// Reads every hint; `body_delay` is a delay found in the body (Gemini's `retryDelay`);
/// `clock` gives the reference time when the response has no `Date` (called only if needed).
pub(crate) fn read(
    headers: &HeaderMap,
    present: Present<'_>,
    body_delay: Option<Duration>,
    clock: &dyn Fn() -> SystemTime,
) -> Hints {
    let mut out = Hints::default();
    let pushback = if present.has(Present::PUSHBACK) {
        grpc_pushback(headers, &present)
    } else {
        None
    };
    if pushback == Some(None) {
        out.should_retry = Some(false);
    }
    let ms = present
        .has(Present::RETRY_AFTER_MS)
        .then(|| present.parse(headers, Slot::RetryAfterMs, parse_millis))
        .flatten();
    out.retry_after = ms
        .map(|d| (d, HintSource::RetryAfterMs))
        .or_else(|| {
            if !present.has(Present::RETRY_AFTER) {
                return None;
            }
            let now = response_now(headers, &present, clock());
            present.parse(headers, Slot::RetryAfter, |v| parse_retry_after(v, now))
        })
        .or_else(|| Some((pushback??, HintSource::GrpcPushback)))
        .or_else(|| Some((clamp(body_delay?), HintSource::BodyRetryDelay)))
        .or_else(|| {
            if !present.has(Present::RATELIMIT) {
                return None;
            }
            Some((
                ratelimit_reset(headers, &present)?,
                HintSource::RateLimitReset,
            ))
        })
        .or_else(|| {
            if !present.has(Present::ANTHROPIC) {
                return None;
            }
            let now = response_now(headers, &present, clock());
            Some((
                anthropic_reset(headers, &present, now)?,
                HintSource::AnthropicReset,
            ))
        });
    if present.has(Present::SHOULD_RETRY) {
        if let Some(b) = should_retry(headers, &present) {
            out.should_retry = Some(b);
        }
    }
    out
}

/// `grpc-retry-pushback-ms`: `Some(Some(d))` to wait, `Some(None)` for a negative value (never
/// retry), `None` when absent or malformed.
pub(crate) fn grpc_pushback(
    headers: &HeaderMap,
    present: &Present<'_>,
) -> Option<Option<Duration>> {
    present.parse(headers, Slot::Pushback, |v| {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if let Some(rest) = v.strip_prefix('-') {
            return digits(rest).then_some(None);
        }
        if !digits(v) {
            return None;
        }
        let ms = v.parse::<u64>().unwrap_or(u64::MAX);
        Some(Some(clamp(Duration::from_millis(ms))))
    })
}

/// Whether a `*-remaining` header says the bucket is empty.
fn is_empty_bucket(headers: &HeaderMap, present: &Present<'_>, remaining: Slot) -> bool {
    present.parse(headers, remaining, |v| v.parse::<u64>().ok()) == Some(0)
}

/// `x-ratelimit-reset-{requests,tokens}` for the buckets whose remaining count is 0.
pub(crate) fn ratelimit_reset(headers: &HeaderMap, present: &Present<'_>) -> Option<Duration> {
    [
        (Slot::RemainingRequests, Slot::ResetRequests),
        (Slot::RemainingTokens, Slot::ResetTokens),
    ]
    .into_iter()
    .filter(|&(rem, _)| is_empty_bucket(headers, present, rem))
    .filter_map(|(_, reset)| present.parse(headers, reset, parse_go_duration))
    .max()
}

/// `anthropic-ratelimit-*-reset` for the buckets whose remaining count is 0, measured from `now`.
pub(crate) fn anthropic_reset(
    headers: &HeaderMap,
    present: &Present<'_>,
    now: SystemTime,
) -> Option<Duration> {
    const BUCKETS: [(Slot, Slot); 4] = [
        (
            Slot::AnthropicRequestsRemaining,
            Slot::AnthropicRequestsReset,
        ),
        (Slot::AnthropicTokensRemaining, Slot::AnthropicTokensReset),
        (Slot::AnthropicInputRemaining, Slot::AnthropicInputReset),
        (Slot::AnthropicOutputRemaining, Slot::AnthropicOutputReset),
    ];
    BUCKETS
        .into_iter()
        .filter(|&(rem, _)| is_empty_bucket(headers, present, rem))
        .filter_map(|(_, reset)| present.parse(headers, reset, parse_rfc3339))
        .map(|at| clamp(at.duration_since(now).unwrap_or(Duration::ZERO)))
        .max()
}

/// Parses a Go `time.Duration` string (`"1s"`, `"6m0s"`, `"20ms"`, `"1h2m3.5s"`), clamped to
/// [`MAX_HINT`]. Signs, missing units and unknown units are rejected.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut i = 0;
    let mut total: u128 = 0; // nanoseconds
    while i < b.len() {
        let start = i;
        let mut whole: u128 = 0;
        while i < b.len() && b[i].is_ascii_digit() {
            whole = whole
                .saturating_mul(10)
                .saturating_add(u128::from(b[i] - b'0'));
            i += 1;
        }
        let had_whole = i > start;
        let (mut frac, mut scale) = (0u128, 1u128);
        if i < b.len() && b[i] == b'.' {
            i += 1;
            let fs = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if scale < 1_000_000_000_000_000_000 {
                    frac = frac * 10 + u128::from(b[i] - b'0');
                    scale *= 10;
                }
                i += 1;
            }
            if !had_whole && i == fs {
                return None;
            }
        } else if !had_whole {
            return None;
        }
        let us = i;
        while i < b.len() && !b[i].is_ascii_digit() && b[i] != b'.' {
            i += 1;
        }
        let unit: u128 = match &s[us..i] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        total = total
            .saturating_add(whole.saturating_mul(unit))
            .saturating_add(frac.saturating_mul(unit) / scale);
    }
    let max = MAX_HINT.as_nanos();
    if total >= max {
        return Some(MAX_HINT);
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    let nanos = u32::try_from(total % 1_000_000_000).ok()?;
    Some(Duration::new(secs, nanos))
}

/// Parses an RFC 3339 `date-time` (`"2024-01-01T00:00:30Z"`, `"2024-01-01T01:00:30.5+01:00"`).
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let d = b.get(r)?;
        if d.is_empty() || !d.iter().all(u8::is_ascii_digit) {
            return None;
        }
        d.iter().try_fold(0i64, |a, &c| {
            a.checked_mul(10)?.checked_add(i64::from(c - b'0'))
        })
    };
    let sep = |i: usize, ok: &[u8]| b.get(i).is_some_and(|c| ok.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos: u32 = 0;
    if sep(i, b".") {
        i += 1;
        let fs = i;
        let mut scale = 100_000_000u32;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            nanos += u32::from(b[i] - b'0') * scale;
            scale /= 10;
            i += 1;
        }
        if i == fs {
            return None;
        }
    }
    let offset: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && sep(i + 3, b":") => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return None,
    };
    // Days from 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec - offset;
    let t = if secs >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs.unsigned_abs()))?
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(secs.unsigned_abs()))?
    };
    t.checked_add(Duration::from_nanos(u64::from(nanos)))
}

/// Parses a protobuf JSON `Duration` (`"30s"`, `"1.5s"`, `"0.000001s"`), clamped to [`MAX_HINT`].
pub(crate) fn parse_proto_duration(s: &str) -> Option<Duration> {
    let num = s.trim().strip_suffix('s')?;
    if num.is_empty() || num.starts_with(['-', '+']) || num.contains(['e', 'E']) {
        return None;
    }
    let v: f64 = num.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    if v >= MAX_HINT.as_secs_f64() {
        return Some(MAX_HINT);
    }
    Some(Duration::from_secs_f64(v))
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
        let verdict = |pairs: &[(&str, &str)]| {
            let h = hm(pairs);
            should_retry(&h, &Present::scan(&h))
        };
        assert_eq!(verdict(&[("x-should-retry", "false")]), Some(false));
        assert_eq!(verdict(&[("x-should-retry", "TRUE")]), Some(true));
        assert_eq!(verdict(&[("x-should-retry", "maybe")]), None);
        // Duplicates: the first usable value wins.
        assert_eq!(
            verdict(&[("x-should-retry", "maybe"), ("x-should-retry", "false")]),
            Some(false)
        );
    }

    #[test]
    fn slots_cover_their_names_and_read_as_header_parse_does() {
        for (i, name) in SLOT_NAMES.iter().enumerate() {
            let slot = Slot::of(name).unwrap();
            assert_eq!(slot as usize, i, "{name}");
            assert_eq!(slot.name(), *name);
            let anthropic = name.starts_with("anthropic-ratelimit-");
            assert_eq!(slot.bit() == Present::ANTHROPIC, anthropic, "{name}");
            assert!(!REQUEST_ID_HEADERS.contains(name), "{name}");
        }
        let h = hm(&[("anthropic-ratelimit-requests-limit", "50")]);
        assert!(Present::scan(&h).has(Present::ANTHROPIC));
        let h = hm(&[
            ("retry-after", "  "),
            ("retry-after", "x"),
            ("retry-after", " 7 "),
            ("date", " Mon, 01 Jan 2024 00:00:00 GMT "),
            ("grpc-message", ""),
        ]);
        let p = Present::scan(&h);
        for slot in [
            Slot::RetryAfter,
            Slot::Date,
            Slot::GrpcMessage,
            Slot::Pushback,
        ] {
            assert_eq!(p.str(&h, slot), header_str(&h, slot.name()), "{slot:?}");
            let digits = |s: &str| s.parse::<u64>().ok();
            assert_eq!(
                p.parse(&h, slot, digits),
                header_parse(&h, slot.name(), digits),
                "{slot:?}"
            );
        }
        assert_eq!(
            p.parse(&h, Slot::RetryAfter, |s| s.parse::<u64>().ok()),
            Some(7)
        );
    }

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        for (s, want) in [
            ("1s", Some(ms(1000))),
            ("6m0s", Some(ms(360_000))),
            ("20ms", Some(ms(20))),
            ("1h2m3.5s", Some(ms(3_723_500))),
            ("0", Some(Duration::ZERO)),
            ("0.5s", Some(ms(500))),
            (".5s", Some(ms(500))),
            ("1500us", Some(ms(1) + Duration::from_micros(500))),
            ("1\u{b5}s", Some(Duration::from_micros(1))),
            ("7ns", Some(Duration::from_nanos(7))),
            ("99999999999h", Some(MAX_HINT)),
            (
                "999999999999999999999999999999999999999999h",
                Some(MAX_HINT),
            ),
            ("-1s", None),
            ("1", None),
            ("s", None),
            ("1x", None),
            ("", None),
            (".s", None),
        ] {
            assert_eq!(parse_go_duration(s), want, "{s:?}");
        }
    }

    #[test]
    fn rfc3339_times() {
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(at(0)));
        assert_eq!(
            parse_rfc3339("2024-01-01T00:00:00Z"),
            Some(at(1_704_067_200))
        );
        assert_eq!(
            parse_rfc3339("2024-01-01T01:00:00+01:00"),
            Some(at(1_704_067_200))
        );
        assert_eq!(
            parse_rfc3339("2023-12-31t19:00:00-05:00"),
            Some(at(1_704_067_200))
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T12:00:00.25Z"),
            Some(at(1_709_208_000) + Duration::from_millis(250))
        );
        for bad in [
            "",
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+0100",
            "2024-01-01T00:00:00Zjunk",
            "20x4-01-01T00:00:00Z",
            "2024-01-01T00:00:00+99:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
        assert_eq!(
            parse_rfc3339("1969-12-31T23:59:59Z"),
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(1))
        );
    }

    #[test]
    fn proto_durations() {
        assert_eq!(parse_proto_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_proto_duration("1.5s"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_proto_duration("1e9s"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("30"), None);
        assert_eq!(parse_proto_duration("99999999999999s"), Some(MAX_HINT));
    }

    #[test]
    fn precedence_and_buckets() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_704_067_200);
        let date = httpdate::fmt_http_date(now);
        let read_h = |pairs: &[(&str, &str)], body: Option<Duration>| {
            let h = hm(pairs);
            read(&h, Present::scan(&h), body, &|| now)
        };
        // grpc pushback
        assert_eq!(
            read_h(&[("grpc-retry-pushback-ms", "250")], None).retry_after,
            Some((Duration::from_millis(250), HintSource::GrpcPushback))
        );
        let never = read_h(&[("grpc-retry-pushback-ms", "-1")], None);
        assert_eq!((never.retry_after, never.should_retry), (None, Some(false)));
        let overridden = read_h(
            &[("grpc-retry-pushback-ms", "-1"), ("x-should-retry", "true")],
            None,
        );
        assert_eq!(overridden.should_retry, Some(true));
        assert_eq!(
            read_h(&[("grpc-retry-pushback-ms", "abc")], None),
            Hints::default()
        );
        // Retry-After beats pushback, pushback beats the body.
        assert_eq!(
            read_h(
                &[("grpc-retry-pushback-ms", "250"), ("retry-after", "2")],
                None
            )
            .retry_after,
            Some((Duration::from_secs(2), HintSource::RetryAfterSeconds))
        );
        assert_eq!(
            read_h(
                &[("grpc-retry-pushback-ms", "250")],
                Some(Duration::from_secs(9))
            )
            .retry_after,
            Some((Duration::from_millis(250), HintSource::GrpcPushback))
        );
        // The body beats bucket resets.
        let buckets = [
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-remaining-tokens", "10"),
            ("x-ratelimit-reset-tokens", "1h"),
        ];
        assert_eq!(
            read_h(&buckets, Some(Duration::from_secs(9))).retry_after,
            Some((Duration::from_secs(9), HintSource::BodyRetryDelay))
        );
        // Only the empty bucket counts.
        assert_eq!(
            read_h(&buckets, None).retry_after,
            Some((Duration::from_secs(360), HintSource::RateLimitReset))
        );
        assert_eq!(
            read_h(
                &[
                    ("x-ratelimit-remaining-requests", "1"),
                    ("x-ratelimit-reset-requests", "1s")
                ],
                None
            ),
            Hints::default()
        );
        // Two empty buckets: the longer wait.
        assert_eq!(
            read_h(
                &[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "20ms"),
                ],
                None
            )
            .retry_after,
            Some((Duration::from_secs(1), HintSource::RateLimitReset))
        );
        // Anthropic resets against the Date header.
        let anthropic = [
            ("date", date.as_str()),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2024-01-01T00:00:30Z"),
            ("anthropic-ratelimit-tokens-remaining", "5000"),
            ("anthropic-ratelimit-tokens-reset", "2024-01-01T00:05:00Z"),
            ("anthropic-ratelimit-output-tokens-remaining", "0"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2024-01-01T00:00:45Z",
            ),
        ];
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            read(
                &hm(&anthropic),
                Present::scan(&hm(&anthropic)),
                None,
                &|| later
            )
            .retry_after,
            Some((Duration::from_secs(45), HintSource::AnthropicReset))
        );
        // A reset in the past is zero.
        assert_eq!(
            read_h(
                &[
                    ("anthropic-ratelimit-requests-remaining", "0"),
                    ("anthropic-ratelimit-requests-reset", "2023-01-01T00:00:00Z"),
                ],
                None
            )
            .retry_after,
            Some((Duration::ZERO, HintSource::AnthropicReset))
        );
    }
}
