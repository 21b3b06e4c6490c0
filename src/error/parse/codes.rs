//! The one place that knows what vendor codes and messages mean.
//!
//! Every shape reader only *collects* fields (code, type, reasons, message, status); this module
//! turns them into an [`ErrorKind`]. The order of the rules, first match wins:
//!
//! 1. a kind the shape itself decided (an Azure content-filter result that says `filtered`, a
//!    gRPC status, Gemini's `RESOURCE_EXHAUSTED` with a `RetryInfo`, Infron's numeric 403);
//! 2. a **decisive** code: the code, then any extra codes (Azure `innererror.code`, Google
//!    `ErrorInfo.reason`, AWS error type), then the type, looked up in [`lookup`]; decisive codes
//!    win over the HTTP status (`overloaded_error` on a 500 is `Overloaded`);
//! 3. a 429 (or a rate-limit/funds kind from step 2) whose code, type or message speaks of quota,
//!    billing, credits or a spend limit is `QuotaExceeded`;
//! 4. message phrases: the context window ("maximum context length", "prompt is too long", ...)
//!    is `ContextLengthExceeded`; a moderation phrase on a 400/403/422 is `ContentFiltered`; an API
//!    key complaint on a 400 is `Authentication`; "overloaded" on a 5xx is `Overloaded`;
//! 5. the HTTP status ([`ErrorKind::from_status`]), or the status the body carries;
//! 6. a **generic** code (`invalid_request_error`, `server_error`, `INVALID_ARGUMENT`), which only
//!    speaks when there is no status at all (an in-band error);
//! 7. `Unknown`.

use crate::error::ErrorKind;

/// How much a code says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Weight {
    /// The code names the failure precisely; it beats the status.
    Decisive,
    /// A coarse category; the status says as much or more.
    Generic,
}

use ErrorKind as K;
use Weight::{Decisive as D, Generic as G};

/// Looks a code up (case-insensitively). The table covers the five seed dialects, OpenAI and
/// Azure OpenAI, Anthropic, Google (gRPC status names and `ErrorInfo` reasons), AWS Bedrock
/// exception names, TGI error types and the common OpenAI-compatible vendors.
pub(crate) fn lookup(code: &str) -> Option<(ErrorKind, Weight)> {
    let mut buf = [0u8; 48];
    let code = code.trim();
    if code.is_empty() || code.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..code.len()];
    lower.copy_from_slice(code.as_bytes());
    lower.make_ascii_lowercase();
    let lower: &[u8] = lower;
    Some(match lower {
        // Credentials.
        b"missing_api_key"
        | b"invalid_api_key"
        | b"expired_api_key"
        | b"revoked_api_key"
        | b"multiple_api_keys"
        | b"authentication_error"
        | b"invalid_authentication"
        | b"api_key_invalid"
        | b"api_key_expired"
        | b"invalid_key"
        | b"unauthorized"
        | b"unrecognizedclientexception"
        | b"expiredtokenexception"
        | b"invalidsignatureexception"
        | b"incorrect_api_key" => (K::Authentication, D),
        b"unauthenticated" => (K::Authentication, G),
        // Permissions.
        b"insufficient_permissions"
        | b"account_suspended"
        | b"permission_error"
        | b"forbidden"
        | b"accessdeniedexception"
        | b"service_disabled"
        | b"api_key_service_blocked"
        | b"unsupported_country_region_territory"
        | b"account_deactivated" => (K::PermissionDenied, D),
        b"permission_denied" => (K::PermissionDenied, G),
        // Money.
        b"not_enough_funds"
        | b"payment_required"
        | b"billing_error"
        | b"insufficient_balance"
        | b"insufficient_credits"
        | b"billing_not_active"
        | b"billing_disabled" => (K::InsufficientFunds, D),
        b"insufficient_quota"
        | b"quota_exceeded"
        | b"servicequotaexceededexception"
        | b"billing_hard_limit_reached"
        | b"spend_limit_exceeded" => (K::QuotaExceeded, D),
        // Missing things.
        b"resource_not_found"
        | b"endpoint_not_found"
        | b"model_not_found"
        | b"not_found_error"
        | b"deploymentnotfound"
        | b"resourcenotfoundexception"
        | b"unknown_url" => (K::NotFound, D),
        b"not_found" | b"unimplemented" => (K::NotFound, G),
        b"already_exists" | b"aborted" => (K::Conflict, G),
        // Sizes and formats.
        b"file_too_large" | b"request_too_large" | b"payload_too_large" => (K::PayloadTooLarge, D),
        b"unsupported_media_type" => (K::UnsupportedMediaType, D),
        b"context_length_exceeded"
        | b"prompt_too_long"
        | b"context_window_exceeded"
        | b"model_context_window_exceeded" => (K::ContextLengthExceeded, D),
        // Moderation.
        b"content_filter"
        | b"content_policy_violation"
        | b"prompt_violation"
        | b"responsibleaipolicyviolation"
        | b"content_filtered"
        | b"moderation_blocked" => (K::ContentFiltered, D),
        // Rate limits.
        b"rate_limit_exceeded"
        | b"rate_limit_error"
        | b"concurrent_limit_exceeded"
        | b"throttlingexception"
        | b"too_many_requests"
        | b"rate_limited" => (K::RateLimited, D),
        b"resource_exhausted" | b"requests" | b"tokens" => (K::RateLimited, G),
        // Capacity.
        b"overloaded" | b"overloaded_error" | b"engine_overloaded" => (K::Overloaded, D),
        b"service_unavailable"
        | b"model_unavailable"
        | b"serviceunavailableexception"
        | b"modelnotreadyexception" => (K::ServiceUnavailable, D),
        b"unavailable" => (K::ServiceUnavailable, G),
        b"timeout_error" => (K::GatewayTimeout, D),
        b"deadline_exceeded" => (K::GatewayTimeout, G),
        b"request_timeout" | b"modeltimeoutexception" => (K::RequestTimeout, D),
        b"modelerrorexception" | b"modelstreamerrorexception" | b"upstream_error" => {
            (K::BadGateway, D)
        }
        // Generic server failures: the status usually says more (a 502 `api_error`).
        b"internal_server_error"
        | b"internal_error"
        | b"processing_error"
        | b"api_error"
        | b"server_error"
        | b"internalserverexception"
        | b"internal"
        | b"unknown"
        | b"data_loss"
        | b"generation"
        | b"incomplete_generation" => (K::ServerError, G),
        // Generic request problems.
        b"invalid_request_body"
        | b"missing_required_field"
        | b"invalid_field"
        | b"invalid_request"
        | b"invalid_field_value"
        | b"unsupported_model"
        | b"invalid_file_format"
        | b"invalid_temperature"
        | b"invalid_max_tokens"
        | b"invalid_image_size"
        | b"invalid_image_quality"
        | b"invalid_request_error"
        | b"validationexception"
        | b"invalid_argument"
        | b"failed_precondition"
        | b"out_of_range"
        | b"validation"
        | b"bad_request"
        | b"invalid_value" => (K::InvalidRequest, G),
        b"cancelled" => (K::Unknown, G),
        _ => return None,
    })
}

/// The gRPC status codes (0..=16) as kinds; `None` for `OK` and for numbers outside the range.
///
/// The mapping follows what each code means for a retrying client: `UNAVAILABLE` is
/// `ServiceUnavailable`, `RESOURCE_EXHAUSTED` is `RateLimited`, `DEADLINE_EXCEEDED` is
/// `GatewayTimeout`, `UNAUTHENTICATED` is `Authentication`, `ABORTED`/`ALREADY_EXISTS` are
/// `Conflict`, `UNIMPLEMENTED` is `NotFound`, `UNKNOWN`/`INTERNAL`/`DATA_LOSS` are `ServerError`,
/// the argument/precondition/range codes are `InvalidRequest`, and `CANCELLED` is `Unknown`.
pub(crate) fn grpc_kind(code: u32) -> Option<(ErrorKind, &'static str)> {
    Some(match code {
        1 => (K::Unknown, "CANCELLED"),
        2 => (K::ServerError, "UNKNOWN"),
        3 => (K::InvalidRequest, "INVALID_ARGUMENT"),
        4 => (K::GatewayTimeout, "DEADLINE_EXCEEDED"),
        5 => (K::NotFound, "NOT_FOUND"),
        6 => (K::Conflict, "ALREADY_EXISTS"),
        7 => (K::PermissionDenied, "PERMISSION_DENIED"),
        8 => (K::RateLimited, "RESOURCE_EXHAUSTED"),
        9 => (K::InvalidRequest, "FAILED_PRECONDITION"),
        10 => (K::Conflict, "ABORTED"),
        11 => (K::InvalidRequest, "OUT_OF_RANGE"),
        12 => (K::NotFound, "UNIMPLEMENTED"),
        13 => (K::ServerError, "INTERNAL"),
        14 => (K::ServiceUnavailable, "UNAVAILABLE"),
        15 => (K::ServerError, "DATA_LOSS"),
        16 => (K::Authentication, "UNAUTHENTICATED"),
        _ => return None,
    })
}

/// What the classifier looks at.
#[derive(Debug, Default)]
pub(crate) struct Evidence<'a> {
    /// A kind the shape decided on its own.
    pub(crate) decided: Option<ErrorKind>,
    /// The effective status (HTTP when it is an error, else the one in the body).
    pub(crate) status: Option<u16>,
    pub(crate) code: Option<&'a str>,
    pub(crate) extra_codes: &'a [String],
    pub(crate) error_type: Option<&'a str>,
    pub(crate) message: &'a str,
}

/// Decides the kind; see the module docs for the order.
pub(crate) fn classify(ev: &Evidence<'_>) -> ErrorKind {
    if let Some(k) = ev.decided {
        return k;
    }
    let candidates = ev
        .code
        .into_iter()
        .chain(ev.extra_codes.iter().map(String::as_str))
        .chain(ev.error_type);
    let mut decisive = None;
    let mut generic = None;
    for c in candidates {
        match lookup(c) {
            Some((k, Weight::Decisive)) => {
                decisive = Some(k);
                break;
            }
            Some((k, Weight::Generic)) if generic.is_none() => generic = Some(k),
            _ => {}
        }
    }
    let status_kind = ev
        .status
        .and_then(|s| http::StatusCode::from_u16(s).ok())
        .and_then(ErrorKind::from_status);
    let is_429 = ev.status == Some(429);

    let rate_or_funds = matches!(
        decisive,
        None | Some(K::RateLimited) | Some(K::InsufficientFunds)
    );
    if let (Some(k), false) = (decisive, rate_or_funds) {
        return k;
    }
    // The phrase rules search the message case-insensitively (bounded: it is cleaned first).
    let lower = Lower::new(ev.message);
    // Rule 3: quota words on a rate limit.
    if rate_or_funds
        && (is_429 || decisive == Some(K::RateLimited))
        && (speaks_of_quota(&lower)
            || ev.code.is_some_and(|c| speaks_of_quota(&Lower::new(c)))
            || ev
                .error_type
                .is_some_and(|t| speaks_of_quota(&Lower::new(t))))
    {
        return K::QuotaExceeded;
    }
    if let Some(k) = decisive {
        return k;
    }

    // Rule 4: message phrases.
    let client_side = matches!(
        ev.status,
        None | Some(400) | Some(403) | Some(413) | Some(422)
    );
    if client_side && says_context_length(&lower) {
        return K::ContextLengthExceeded;
    }
    if matches!(ev.status, None | Some(400) | Some(403) | Some(422)) && says_moderation(&lower) {
        return K::ContentFiltered;
    }
    if ev.status == Some(400) && says_bad_key(&lower) {
        return K::Authentication;
    }
    if ev.status.is_none_or(|s| s >= 500) && lower.has_any(&OVERLOADED) {
        return K::Overloaded;
    }
    status_kind.or(generic).unwrap_or(K::Unknown)
}

/// A text searched ASCII-case-insensitively for lowercase needles, without copying it. Messages
/// are short and bounded, so one plain pass that tries the needles starting with each byte beats
/// a SIMD searcher set up per needle (or an automaton built for so few, so short texts).
struct Lower<'a>(&'a [u8]);

impl Lower<'_> {
    fn new(s: &str) -> Lower<'_> {
        Lower(s.as_bytes())
    }

    /// Whether any needle of `set` occurs.
    fn has_any(&self, set: &Phrases) -> bool {
        let hay = self.0;
        // Every needle has at least two bytes, so a match starts before the last byte.
        for (i, pair) in hay.windows(2).enumerate() {
            let mut mask = set.firsts[usize::from(pair[0])] & set.seconds[usize::from(pair[1])];
            while mask != 0 {
                let k = mask.trailing_zeros() as usize;
                mask &= mask - 1;
                let n = set.needles[k].as_bytes();
                if hay
                    .get(i..i + n.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(n))
                {
                    return true;
                }
            }
        }
        false
    }
}

/// A set of lowercase ASCII phrases (at least two bytes each) with two tables built at compile
/// time: for each byte, the phrases whose first (`firsts`) or second (`seconds`) byte it is, in
/// either case, one bit per phrase. A position of the text then costs two look-ups and an AND,
/// and only the phrases whose first two bytes both fit are compared.
struct Phrases {
    needles: &'static [&'static str],
    firsts: [u32; 256],
    seconds: [u32; 256],
}

impl Phrases {
    const fn new(needles: &'static [&'static str]) -> Phrases {
        assert!(needles.len() <= 32, "one bit per needle");
        let mut firsts = [0u32; 256];
        let mut seconds = [0u32; 256];
        let mut k = 0;
        while k < needles.len() {
            let b = needles[k].as_bytes();
            assert!(b.len() >= 2);
            let (b0, b1) = (b[0], b[1]);
            assert!(b0.is_ascii() && !b0.is_ascii_uppercase());
            assert!(b1.is_ascii() && !b1.is_ascii_uppercase());
            firsts[b0 as usize] |= 1 << k;
            firsts[b0.to_ascii_uppercase() as usize] |= 1 << k;
            seconds[b1 as usize] |= 1 << k;
            seconds[b1.to_ascii_uppercase() as usize] |= 1 << k;
            k += 1;
        }
        Phrases {
            needles,
            firsts,
            seconds,
        }
    }
}

/// Quota, billing, credits, spend limits: waiting a few seconds will not help.
const QUOTA: Phrases = Phrases::new(&[
    "quota",
    "billing",
    "credit",
    "spend limit",
    "spending limit",
    "spend_limit",
    "insufficient funds",
    "insufficient balance",
]);

/// The prompt does not fit the model's window.
const CONTEXT_LENGTH: Phrases = Phrases::new(&[
    "context length",
    "context_length",
    "context window",
    "prompt is too long",
    "prompt too long",
    "input is too long",
    "maximum input length",
    "too many input tokens",
    "exceeds the maximum number of tokens",
]);

/// A moderation system refused the content.
const MODERATION: Phrases = Phrases::new(&[
    "content management policy",
    "content policy",
    "content filter",
    "moderation",
    "flagged",
    "safety system",
]);

/// An API key complaint: a key word ...
const API_KEY: Phrases = Phrases::new(&["api key", "api_key", "apikey"]);

/// ... and a word saying what is wrong with it.
const KEY_PROBLEM: Phrases = Phrases::new(&[
    "invalid",
    "incorrect",
    "missing",
    "not valid",
    "expired",
    "revoked",
    "required",
]);

const OVERLOADED: Phrases = Phrases::new(&["overloaded"]);

fn speaks_of_quota(s: &Lower<'_>) -> bool {
    s.has_any(&QUOTA)
}

fn says_context_length(s: &Lower<'_>) -> bool {
    s.has_any(&CONTEXT_LENGTH)
}

fn says_moderation(s: &Lower<'_>) -> bool {
    s.has_any(&MODERATION)
}

fn says_bad_key(s: &Lower<'_>) -> bool {
    s.has_any(&API_KEY) && s.has_any(&KEY_PROBLEM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev<'a>(status: Option<u16>, code: Option<&'a str>, message: &'a str) -> Evidence<'a> {
        Evidence {
            status,
            code,
            message,
            ..Evidence::default()
        }
    }

    #[test]
    fn decisive_codes_beat_the_status_and_generic_ones_do_not() {
        assert_eq!(
            classify(&ev(Some(500), Some("overloaded_error"), "")),
            K::Overloaded
        );
        assert_eq!(
            classify(&ev(Some(502), Some("api_error"), "")),
            K::BadGateway
        );
        assert_eq!(classify(&ev(None, Some("api_error"), "")), K::ServerError);
        assert_eq!(
            classify(&ev(Some(413), Some("invalid_request_error"), "")),
            K::PayloadTooLarge
        );
        assert_eq!(
            classify(&ev(Some(400), Some("INVALID_API_KEY"), "")),
            K::Authentication
        );
    }

    #[test]
    fn quota_words_on_a_429() {
        assert_eq!(
            classify(&ev(Some(429), None, "monthly quota used up")),
            K::QuotaExceeded
        );
        assert_eq!(
            classify(&ev(Some(429), Some("billing_error"), "")),
            K::QuotaExceeded
        );
        assert_eq!(
            classify(&ev(Some(402), Some("billing_error"), "")),
            K::InsufficientFunds
        );
        assert_eq!(classify(&ev(Some(429), None, "slow down")), K::RateLimited);
        assert_eq!(
            classify(&ev(Some(500), None, "quota service down")),
            K::ServerError
        );
    }

    #[test]
    fn message_phrases() {
        assert_eq!(
            classify(&ev(
                Some(400),
                None,
                "This exceeds the model's maximum context length"
            )),
            K::ContextLengthExceeded
        );
        assert_eq!(
            classify(&ev(Some(403), None, "input was flagged")),
            K::ContentFiltered
        );
        assert_eq!(
            classify(&ev(Some(400), None, "API key not valid.")),
            K::Authentication
        );
        assert_eq!(
            classify(&ev(Some(503), None, "engine is overloaded")),
            K::Overloaded
        );
        assert_eq!(classify(&ev(Some(500), None, "flagged")), K::ServerError);
    }

    #[test]
    fn phrases_match_in_any_case_and_anywhere() {
        for set in [
            &QUOTA,
            &CONTEXT_LENGTH,
            &MODERATION,
            &API_KEY,
            &KEY_PROBLEM,
            &OVERLOADED,
        ] {
            for n in set.needles {
                for text in [
                    n.to_string(),
                    n.to_ascii_uppercase(),
                    format!("ünï {} end", n.to_ascii_uppercase()),
                ] {
                    assert!(Lower::new(&text).has_any(set), "{text}");
                }
                // A needle cut short at the end of the text does not match.
                let cut = &n[..n.len() - 1];
                assert!(!Lower::new(&format!("xx {cut}")).has_any(set) || n.len() < 2);
            }
        }
        assert!(!Lower::new("nothing to see").has_any(&QUOTA));
    }

    #[test]
    fn lookup_is_bounded_and_case_insensitive() {
        assert_eq!(lookup("Overloaded_Error"), Some((K::Overloaded, D)));
        assert_eq!(lookup(&"x".repeat(1000)), None);
        assert_eq!(lookup(""), None);
        assert_eq!(lookup("ünïcode"), None);
    }

    #[test]
    fn all_sixteen_grpc_error_codes_map() {
        for c in 1..=16 {
            assert!(grpc_kind(c).is_some(), "{c}");
        }
        assert_eq!(grpc_kind(0), None);
        assert_eq!(grpc_kind(17), None);
        assert_eq!(grpc_kind(14).map(|k| k.0), Some(K::ServiceUnavailable));
    }
}
