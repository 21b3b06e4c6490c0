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
    let lower = std::str::from_utf8(lower).ok()?;
    Some(match lower {
        // Credentials.
        "missing_api_key"
        | "invalid_api_key"
        | "expired_api_key"
        | "revoked_api_key"
        | "multiple_api_keys"
        | "authentication_error"
        | "invalid_authentication"
        | "api_key_invalid"
        | "api_key_expired"
        | "invalid_key"
        | "unauthorized"
        | "unrecognizedclientexception"
        | "expiredtokenexception"
        | "invalidsignatureexception"
        | "incorrect_api_key" => (K::Authentication, D),
        "unauthenticated" => (K::Authentication, G),
        // Permissions.
        "insufficient_permissions"
        | "account_suspended"
        | "permission_error"
        | "forbidden"
        | "accessdeniedexception"
        | "service_disabled"
        | "api_key_service_blocked"
        | "unsupported_country_region_territory"
        | "account_deactivated" => (K::PermissionDenied, D),
        "permission_denied" => (K::PermissionDenied, G),
        // Money.
        "not_enough_funds"
        | "payment_required"
        | "billing_error"
        | "insufficient_balance"
        | "insufficient_credits"
        | "billing_not_active"
        | "billing_disabled" => (K::InsufficientFunds, D),
        "insufficient_quota"
        | "quota_exceeded"
        | "servicequotaexceededexception"
        | "billing_hard_limit_reached"
        | "spend_limit_exceeded" => (K::QuotaExceeded, D),
        // Missing things.
        "resource_not_found"
        | "endpoint_not_found"
        | "model_not_found"
        | "not_found_error"
        | "deploymentnotfound"
        | "resourcenotfoundexception"
        | "unknown_url" => (K::NotFound, D),
        "not_found" | "unimplemented" => (K::NotFound, G),
        "already_exists" | "aborted" => (K::Conflict, G),
        // Sizes and formats.
        "file_too_large" | "request_too_large" | "payload_too_large" => (K::PayloadTooLarge, D),
        "unsupported_media_type" => (K::UnsupportedMediaType, D),
        "context_length_exceeded"
        | "prompt_too_long"
        | "context_window_exceeded"
        | "model_context_window_exceeded" => (K::ContextLengthExceeded, D),
        // Moderation.
        "content_filter"
        | "content_policy_violation"
        | "prompt_violation"
        | "responsibleaipolicyviolation"
        | "content_filtered"
        | "moderation_blocked" => (K::ContentFiltered, D),
        // Rate limits.
        "rate_limit_exceeded"
        | "rate_limit_error"
        | "concurrent_limit_exceeded"
        | "throttlingexception"
        | "too_many_requests"
        | "rate_limited" => (K::RateLimited, D),
        "resource_exhausted" | "requests" | "tokens" => (K::RateLimited, G),
        // Capacity.
        "overloaded" | "overloaded_error" | "engine_overloaded" => (K::Overloaded, D),
        "service_unavailable"
        | "model_unavailable"
        | "serviceunavailableexception"
        | "modelnotreadyexception" => (K::ServiceUnavailable, D),
        "unavailable" => (K::ServiceUnavailable, G),
        "timeout_error" => (K::GatewayTimeout, D),
        "deadline_exceeded" => (K::GatewayTimeout, G),
        "request_timeout" | "modeltimeoutexception" => (K::RequestTimeout, D),
        "modelerrorexception" | "modelstreamerrorexception" | "upstream_error" => {
            (K::BadGateway, D)
        }
        // Generic server failures: the status usually says more (a 502 `api_error`).
        "internal_server_error"
        | "internal_error"
        | "processing_error"
        | "api_error"
        | "server_error"
        | "internalserverexception"
        | "internal"
        | "unknown"
        | "data_loss"
        | "generation"
        | "incomplete_generation" => (K::ServerError, G),
        // Generic request problems.
        "invalid_request_body"
        | "missing_required_field"
        | "invalid_field"
        | "invalid_request"
        | "invalid_field_value"
        | "unsupported_model"
        | "invalid_file_format"
        | "invalid_temperature"
        | "invalid_max_tokens"
        | "invalid_image_size"
        | "invalid_image_quality"
        | "invalid_request_error"
        | "validationexception"
        | "invalid_argument"
        | "failed_precondition"
        | "out_of_range"
        | "validation"
        | "bad_request"
        | "invalid_value" => (K::InvalidRequest, G),
        "cancelled" => (K::Unknown, G),
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
    if ev.status.is_none_or(|s| s >= 500) && lower.has("overloaded") {
        return K::Overloaded;
    }
    status_kind.or(generic).unwrap_or(K::Unknown)
}

/// A text searched ASCII-case-insensitively for lowercase needles, without copying it: memchr
/// finds each place the needle's first letter (either case) occurs, and the rest is compared in
/// place. Messages are short and bounded, so this beats building a searcher per needle.
struct Lower<'a>(&'a [u8]);

impl<'a> Lower<'a> {
    fn new(s: &'a str) -> Lower<'a> {
        Lower(s.as_bytes())
    }

    /// `needle` must be lowercase ASCII.
    fn has(&self, needle: &str) -> bool {
        let n = needle.as_bytes();
        let Some(&first) = n.first() else {
            return true;
        };
        memchr::memchr2_iter(first, first.to_ascii_uppercase(), self.0).any(|i| {
            self.0
                .get(i..i + n.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(n))
        })
    }
}

fn any_ci(hay: &Lower<'_>, needles: &[&str]) -> bool {
    needles.iter().any(|n| hay.has(n))
}

/// Quota, billing, credits, spend limits: waiting a few seconds will not help.
fn speaks_of_quota(s: &Lower<'_>) -> bool {
    any_ci(
        s,
        &[
            "quota",
            "billing",
            "credit",
            "spend limit",
            "spending limit",
            "spend_limit",
            "insufficient funds",
            "insufficient balance",
        ],
    )
}

/// The prompt does not fit the model's window.
fn says_context_length(s: &Lower<'_>) -> bool {
    any_ci(
        s,
        &[
            "context length",
            "context_length",
            "context window",
            "prompt is too long",
            "prompt too long",
            "input is too long",
            "maximum input length",
            "too many input tokens",
            "exceeds the maximum number of tokens",
        ],
    )
}

/// A moderation system refused the content.
fn says_moderation(s: &Lower<'_>) -> bool {
    any_ci(
        s,
        &[
            "content management policy",
            "content policy",
            "content filter",
            "moderation",
            "flagged",
            "safety system",
        ],
    )
}

/// An API key complaint.
fn says_bad_key(s: &Lower<'_>) -> bool {
    any_ci(s, &["api key", "api_key", "apikey"])
        && any_ci(
            s,
            &[
                "invalid",
                "incorrect",
                "missing",
                "not valid",
                "expired",
                "revoked",
                "required",
            ],
        )
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
