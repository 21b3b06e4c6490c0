//! Property: render → parse round trip for every dialect and every kind.
//!
//! The kind comes back exactly, except the documented degradations: `Unknown` reads back as
//! `ServerError` in every dialect, and Anthropic's closed type set turns `ContextLengthExceeded`
//! and `ContentFiltered` into `InvalidRequest` and `QuotaExceeded` into `RateLimited`.
//! Retryability, the message, the request id and the retry hint (rounded up to whole seconds)
//! always come back.

use proptest::prelude::*;
use std::time::Duration;
use tower_llm_errors::{ApiError, Dialect, ErrorKind, error::secret::mask_secrets};

fn expected_kind(kind: ErrorKind, dialect: Dialect) -> ErrorKind {
    match (kind, dialect) {
        (ErrorKind::Unknown, _) => ErrorKind::ServerError,
        (ErrorKind::ContextLengthExceeded | ErrorKind::ContentFiltered, Dialect::Anthropic) => {
            ErrorKind::InvalidRequest
        }
        (ErrorKind::QuotaExceeded, Dialect::Anthropic) => ErrorKind::RateLimited,
        (k, _) => k,
    }
}

/// Printable messages: ASCII words and punctuation plus some non-ASCII letters, no leading or
/// trailing space, nothing that looks like a credential (those are masked on purpose).
fn message() -> impl Strategy<Value = String> {
    "[A-Za-zé日ß0-9][A-Za-z0-9 é日ß.,;:!?'\"()/\\\\{}<>&%$#@*+=_~-]{0,120}[A-Za-z0-9.!?)]"
        .prop_filter("looks like a key", |m| mask_secrets(m) == m.as_str())
}

fn ceil_secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn render_then_parse(
        kind in proptest::sample::select(ErrorKind::ALL.to_vec()),
        dialect in proptest::sample::select(Dialect::ALL.to_vec()),
        msg in message(),
        rid in proptest::option::of("[A-Za-z0-9_-]{1,64}"),
        hint in proptest::option::of(0u64..86_400_000),
    ) {
        let mut err = ApiError::new(kind, msg.clone());
        if let Some(r) = &rid {
            err = err.with_request_id(r.clone());
        }
        if let Some(ms) = hint {
            err = err.with_retry_after(Duration::from_millis(ms));
        }
        let res = err.render(dialect);
        let back = ApiError::from_response(res.status(), res.headers(), res.body());
        prop_assert!(back.is_some(), "{dialect:?} {kind:?}: not read back as an error");
        let back = back.unwrap();
        prop_assert_eq!(back.kind(), expected_kind(kind, dialect), "{:?} {:?}", dialect, kind);
        prop_assert_eq!(back.is_retryable(), err.is_retryable(), "{:?} {:?}", dialect, kind);
        prop_assert_eq!(back.message(), msg.as_str());
        prop_assert_eq!(back.request_id(), rid.as_deref());
        prop_assert_eq!(back.retry_after(), hint.map(|ms| ceil_secs(Duration::from_millis(ms))));
    }
}
