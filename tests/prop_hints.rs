//! Property: the header-hint parsers are total. Whatever text they get, they return (no panic,
//! no overflow) and every duration is at most `hints::MAX_HINT`.

use proptest::prelude::*;
use std::time::{Duration, SystemTime};
use tower_llm_errors::error::hints::{
    MAX_HINT, parse_go_duration, parse_millis, parse_retry_after, parse_rfc3339,
};

/// Text that looks like hint values often enough to reach the deep branches.
fn hintish() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,24}",
        "[0-9]{1,40}",
        "[0-9]{0,30}\\.[0-9]{0,30}",
        "[0-9.]{0,12}(ns|us|µs|μs|ms|s|m|h|x|){0,1}([0-9.]{0,12}(ns|ms|s|m|h)){0,4}",
        "[-+ ]?[0-9]{0,25}(\\.[0-9]{0,25})?([eE][-+]?[0-9]{1,5})?",
        "(inf|nan|infinity|NaN|-0|1e308|1e-400)",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,30})?(Z|z|[-+][0-9]{2}:[0-9]{2}|)",
        "(Mon|Sun|Fri), [0-9]{2} (Jan|Feb|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
    ]
}

fn now() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        Just(SystemTime::UNIX_EPOCH),
        (0u64..400_000_000_000).prop_map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn hint_parsers_are_total_and_bounded(s in hintish(), now in now()) {
        if let Some(d) = parse_millis(&s) {
            prop_assert!(d <= MAX_HINT, "parse_millis({s:?}) = {d:?}");
        }
        if let Some((d, _)) = parse_retry_after(&s, now) {
            prop_assert!(d <= MAX_HINT, "parse_retry_after({s:?}) = {d:?}");
        }
        if let Some(d) = parse_go_duration(&s) {
            prop_assert!(d <= MAX_HINT, "parse_go_duration({s:?}) = {d:?}");
        }
        let _ = parse_rfc3339(&s);
    }

    /// Exact values where the answer is known: whole seconds and whole milliseconds.
    #[test]
    fn exact_integers(n in 0u64..2_000_000_000) {
        let (d, _) = parse_retry_after(&n.to_string(), SystemTime::UNIX_EPOCH).unwrap();
        prop_assert_eq!(d, Duration::from_secs(n).min(MAX_HINT));
        prop_assert_eq!(parse_millis(&n.to_string()), Some(Duration::from_millis(n).min(MAX_HINT)));
        prop_assert_eq!(
            parse_go_duration(&format!("{n}ms")),
            Some(Duration::from_millis(n).min(MAX_HINT))
        );
    }

    /// An HTTP-date or RFC 3339 time before `now` is a zero wait, never a negative one.
    #[test]
    fn past_dates_are_zero(secs in 0u64..4_000_000_000, back in 1u64..1_000_000) {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let now = at + Duration::from_secs(back);
        let text = httpdate::fmt_http_date(at);
        let (d, _) = parse_retry_after(&text, now).unwrap();
        prop_assert_eq!(d, Duration::ZERO);
    }
}

/// Values at and around the representable edges.
#[test]
fn edges() {
    let huge = "9".repeat(5000);
    for s in [
        huge.as_str(),
        "18446744073709551616",
        "340282366920938463463374607431768211456",
        "1e308",
        "1.7976931348623157e308",
    ] {
        assert_eq!(parse_millis(s), Some(MAX_HINT), "{s}");
    }
    assert_eq!(parse_go_duration(&format!("{huge}h")), Some(MAX_HINT));
    assert_eq!(
        parse_go_duration(&format!("{huge}.{huge}ns")),
        Some(MAX_HINT)
    );
    assert_eq!(
        parse_retry_after(&huge, SystemTime::UNIX_EPOCH).map(|x| x.0),
        Some(MAX_HINT)
    );
    assert!(parse_rfc3339("9999-12-31T23:59:60.999999999999-23:59").is_some());
    assert!(parse_rfc3339("0000-01-01T00:00:00+23:59").is_some());
}
