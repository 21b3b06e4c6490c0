//! In-band detection and shape details that need crate-private access.

use super::*;

fn in_band(body: &str) -> Option<ApiError> {
    from_json_in_band(body.as_bytes())
}

/// (body, kind, status, code, dialect)
type Case = (
    &'static str,
    ErrorKind,
    Option<u16>,
    Option<&'static str>,
    Option<Dialect>,
);

#[test]
fn in_band_error_documents_are_recognized() {
    let cases: &[Case] = &[
        (
            r#"{"error":{"message":"boom","type":"server_error","code":null}}"#,
            ErrorKind::ServerError,
            None,
            None,
            Some(Dialect::OpenAi),
        ),
        (
            r#"{"id":"gen-1","object":"chat.completion.chunk","error":{"code":502,"message":"upstream died"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
            ErrorKind::BadGateway,
            Some(502),
            Some("502"),
            Some(Dialect::Infron),
        ),
        (
            r#"{"error":{"code":"server_error","message":"provider stopped"},"choices":[{"finish_reason":"error"}]}"#,
            ErrorKind::ServerError,
            None,
            Some("server_error"),
            Some(Dialect::Infuzu),
        ),
        (
            r#"{"type":"error","error":{"type":"overloaded_error","message":"busy"}}"#,
            ErrorKind::Overloaded,
            None,
            Some("overloaded_error"),
            Some(Dialect::Anthropic),
        ),
        (
            r#"{"error":{"code":429,"message":"later","status":"RESOURCE_EXHAUSTED"}}"#,
            ErrorKind::RateLimited,
            Some(429),
            Some("429"),
            None,
        ),
        (
            r#"[{"error":{"code":503,"message":"later","status":"UNAVAILABLE"}}]"#,
            ErrorKind::ServiceUnavailable,
            Some(503),
            Some("503"),
            None,
        ),
        (
            r#"{"error":"model crashed","error_type":"generation"}"#,
            ErrorKind::ServerError,
            None,
            Some("generation"),
            None,
        ),
        (
            r#"{"object":"error","message":"bad","type":"BadRequestError","param":null,"code":400}"#,
            ErrorKind::InvalidRequest,
            Some(400),
            Some("400"),
            None,
        ),
        (
            r#"{"type":"error","code":"rate_limit_exceeded","message":"slow","param":null,"sequence_number":3}"#,
            ErrorKind::RateLimited,
            None,
            Some("rate_limit_exceeded"),
            None,
        ),
    ];
    for (body, kind, status, code, dialect) in cases {
        let e = in_band(body).unwrap_or_else(|| panic!("not recognized: {body}"));
        assert_eq!(e.kind(), *kind, "{body}");
        assert_eq!(e.status().map(|s| s.as_u16()), *status, "{body}");
        assert_eq!(e.code(), *code, "{body}");
        assert_eq!(e.dialect(), *dialect, "{body}");
    }
}

#[test]
fn normal_chunks_are_not_errors() {
    for body in [
        r#"{"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}"#,
        r#"{"type":"message_start","message":{"id":"m1"}}"#,
        r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}"#,
        r#"[{"candidates":[]}]"#,
        r#"{"error":null,"choices":[]}"#,
        r#"{"message":"a normal field"}"#,
        r#"{"error":""}"#,
        "[DONE]",
        "",
        "not json",
        "42",
    ] {
        assert!(in_band(body).is_none(), "{body}");
    }
}

#[test]
fn in_band_retry_delay_is_a_body_hint() {
    let e = in_band(
        r#"{"error":{"code":429,"message":"q","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#,
    )
    .unwrap();
    assert_eq!(e.retry_after(), Some(Duration::from_millis(1500)));
    assert_eq!(
        e.retry_after_source(),
        Some(crate::error::HintSource::BodyRetryDelay)
    );
}

#[test]
fn clean_bounds_and_masks() {
    assert_eq!(clean("  hi  ", 10), "hi");
    assert_eq!(clean("abcdef", 3), "abc…");
    assert_eq!(clean("key sk-0123456789abcdef", 100), "key sk-01***");
    assert_eq!(clean("ééééé", 2), "éé…");
}

#[path = "../../../tests/common/fixture.rs"]
#[allow(unreachable_pub)]
mod fixture;

/// The borrowed tree (`json::Node`) and a `serde_json::Value` read every provider fixture into
/// the same fields, as an error status and as a success.
#[test]
fn borrowed_tree_reads_every_fixture_as_value_does() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut compared = 0;
    for fx in fixture::all(&root) {
        let value = serde_json::from_slice::<Value>(&fx.body);
        let node = match (json::parse(&fx.body), &value) {
            (Parsed::Tree(node), Ok(_)) => node,
            (Parsed::Invalid, Err(_)) => continue,
            (_, value) => panic!("{}: the two parsers disagree: {value:?}", fx.name),
        };
        let value = value.unwrap_or_default();
        for http_error in [false, true] {
            let (mut fast, mut slow) = (Fields::default(), Fields::default());
            let found_fast = read_json(&node, &mut fast, http_error);
            let found_slow = read_json(&Node::from_value(&value), &mut slow, http_error);
            assert_eq!(
                (found_fast, format!("{fast:?}")),
                (found_slow, format!("{slow:?}")),
                "{}",
                fx.name
            );
        }
        compared += 1;
    }
    assert!(compared >= 40, "only {compared} JSON fixtures");
}

mod differential {
    //! Random documents built from the keys and values the readers look at (repeated keys,
    //! escapes, numbers of every kind, nesting) read the same through the borrowed tree and
    //! through a `serde_json::Value`.

    use super::*;
    use proptest::prelude::*;

    const KEYS: &[&str] = &[
        "error",
        "message",
        "Message",
        "code",
        "type",
        "param",
        "status",
        "details",
        "meta",
        "success",
        "object",
        "detail",
        "metadata",
        "raw",
        "provider_name",
        "reasons",
        "innererror",
        "content_filter_results",
        "content_filter_result",
        "filtered",
        "severity",
        "@type",
        "retryDelay",
        "reason",
        "violations",
        "quotaId",
        "request_id",
        "timestamp",
        "field",
        "issue",
        "error_type",
        "statusCode",
        "__type",
        "msg",
        "loc",
        "fieldViolations",
        "hate",
        "m\\u0065ssage",
    ];

    const STRINGS: &[&str] = &[
        "error",
        "quota exceeded",
        "overloaded_error",
        "RESOURCE_EXHAUSTED",
        "30s",
        "1.5s",
        "type.googleapis.com/google.rpc.RetryInfo",
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.QuotaFailure",
        "type.googleapis.com/google.rpc.BadRequest",
        "API_KEY_INVALID",
        "content_filter",
        "high",
        "rate_limit_exceeded",
        "a \\\"quoted\\\" word",
        "line\\nbreak",
        "\\u00e9t\\u00e9",
        "key sk-abcdefgh12345678 refused",
        "429",
        " ",
        "maximum context length",
        "{\\\"error\\\":{\\\"message\\\":\\\"inner\\\"}}",
    ];

    fn leaf() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            any::<bool>().prop_map(|b| b.to_string()),
            prop::sample::select(vec![
                "0",
                "403",
                "429",
                "503",
                "-1",
                "1.5",
                "18446744073709551615",
                "18446744073709551616",
                "1e3",
                "-0",
            ])
            .prop_map(str::to_owned),
            prop::sample::select(STRINGS).prop_map(|s| format!("\"{s}\"")),
        ]
    }

    fn doc() -> impl Strategy<Value = String> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(
                    |entries| {
                        let body: Vec<String> = entries
                            .iter()
                            .map(|(k, v)| format!("\"{k}\":{v}"))
                            .collect();
                        format!("{{{}}}", body.join(","))
                    }
                ),
            ]
        })
    }

    /// Azure's filter results are listed in `serde_json::Map` order, whatever the body's order.
    #[test]
    fn filter_results_are_listed_in_map_order() {
        let body = br#"{"error":{"code":"content_filter","message":"m","innererror":{"content_filter_result":{"violence":{"filtered":true,"severity":"high"},"hate":{"filtered":true,"severity":"low"},"self_harm":{"filtered":false}}}}}"#;
        let Parsed::Tree(node) = json::parse(body) else {
            panic!("not parsed");
        };
        let value: Value = serde_json::from_slice(body).unwrap();
        let (mut fast, mut slow) = (Fields::default(), Fields::default());
        assert!(read_json(&node, &mut fast, true));
        assert!(read_json(&Node::from_value(&value), &mut slow, true));
        assert_eq!(fast.provider_detail, slow.provider_detail);
        let order: Vec<&str> = value["error"]["innererror"]["content_filter_result"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .filter(|k| *k != "self_harm")
            .collect();
        let want = order
            .iter()
            .map(|k| {
                if *k == "hate" {
                    "hate(low)"
                } else {
                    "violence(high)"
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            fast.provider_detail,
            Some(format!("content filter: {want}"))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn borrowed_tree_reads_as_value_does(body in doc(), http_error in any::<bool>()) {
            let value = serde_json::from_slice::<Value>(body.as_bytes());
            let node = match (json::parse(body.as_bytes()), &value) {
                (Parsed::Tree(node), Ok(_)) => node,
                (Parsed::Invalid, Err(_)) => return Ok(()),
                (_, value) => panic!("{body}: the two parsers disagree: {value:?}"),
            };
            let value = value.unwrap_or_default();
            prop_assert_eq!(node.to_value(), value.clone());
            let (mut fast, mut slow) = (Fields::default(), Fields::default());
            let found_fast = read_json(&node, &mut fast, http_error);
            let found_slow = read_json(&Node::from_value(&value), &mut slow, http_error);
            prop_assert_eq!(
                (found_fast, format!("{fast:?}")),
                (found_slow, format!("{slow:?}"))
            );
        }
    }
}
