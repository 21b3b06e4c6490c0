//! Walks `tests/fixtures/` and checks every provider fixture against its `# expect` lines.

mod common;

use common::fixture::{self, Fixture};
use std::path::Path;
use tower_llm_errors::{ApiError, error::ParseOptions};

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn check(fx: &Fixture) -> Result<(), String> {
    let mut opts = ParseOptions::new();
    if let Some(now) = fx.now {
        opts = opts.now(now);
    }
    let got = ApiError::from_response_with(fx.status, &fx.headers, &fx.body, &opts);
    let Some(e) = got else {
        return match fx.expect.iter().find(|(k, _)| k == "kind") {
            Some((_, v)) if v == "none" => Ok(()),
            _ => Err("read as a success".into()),
        };
    };
    let mut problems = Vec::new();
    for (k, want) in &fx.expect {
        let (ok, got) = match k.as_str() {
            "kind" => {
                let g = format!("{:?}", e.kind());
                (&g == want, g)
            }
            "retryable" => (
                e.is_retryable().to_string() == *want,
                e.is_retryable().to_string(),
            ),
            "message" => (e.message() == want, e.message().into()),
            "message~" => (e.message().contains(want.as_str()), e.message().into()),
            "message!~" => (!e.message().contains(want.as_str()), e.message().into()),
            "provider~" => {
                let p = opt(e.provider_detail());
                (p.contains(want.as_str()), p)
            }
            "provider!~" => {
                let p = opt(e.provider_detail());
                (!p.contains(want.as_str()), p)
            }
            other => {
                let g = match other {
                    "status" => opt(e.status().map(|s| s.as_u16())),
                    "code" => opt(e.code()),
                    "type" => opt(e.error_type()),
                    "param" => opt(e.param()),
                    "request_id" => opt(e.request_id()),
                    "retry_after_ms" => opt(e.retry_after().map(|d| d.as_millis())),
                    "hint" => opt(e.retry_after_source().map(|s| s.as_str())),
                    "dialect" => opt(e.dialect()),
                    "detail" => opt(e.detail()),
                    "timestamp" => opt(e.timestamp()),
                    _ => return Err(format!("unknown expectation {other}")),
                };
                (g == *want, g)
            }
        };
        if !ok {
            problems.push(format!("{k}: want {want:?}, got {got:?}"));
        }
    }
    // Nothing we store may carry a secret from the fixture.
    let shown = format!("{e:?} {e} {}", opt(e.provider_detail()));
    if shown.contains("SECRETSECRET") {
        problems.push(format!("secret leaked: {shown}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[test]
fn every_fixture_matches_its_expectations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let all = fixture::all(&root);
    assert!(all.len() >= 30, "only {} fixtures found", all.len());
    let mut failures = Vec::new();
    for fx in &all {
        assert!(
            fx.source
                .as_deref()
                .is_some_and(|s| s.starts_with("https://")),
            "{}: every fixture cites its public source",
            fx.name
        );
        assert!(
            fx.expect.iter().any(|(k, _)| k == "kind"),
            "{}: every fixture states its kind",
            fx.name
        );
        if let Err(e) = check(fx) {
            failures.push(format!("{}: {e}", fx.name));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
