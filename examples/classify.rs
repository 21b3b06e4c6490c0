//! Classifies a handful of real-world error responses and prints what the crate made of them.
//!
//! `cargo run --example classify`

use http::{HeaderMap, HeaderValue, StatusCode};
use tower_llm_errors::ApiError;

/// (name, status, headers, body)
type Case = (
    &'static str,
    u16,
    &'static [(&'static str, &'static str)],
    &'static str,
);

fn main() {
    let cases: &[Case] = &[
        (
            "OpenAI rate limit",
            429,
            &[("retry-after-ms", "1200"), ("x-request-id", "req_abc123")],
            r#"{"error":{"message":"Rate limit reached for requests","type":"requests","code":"rate_limit_exceeded","param":null}}"#,
        ),
        (
            "OpenAI quota",
            429,
            &[],
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota","param":null}}"#,
        ),
        (
            "Infuzu missing key",
            401,
            &[],
            r#"{"error":{"code":"missing_api_key","message":"No API key header was sent."}}"#,
        ),
        (
            "Envelope field error",
            400,
            &[],
            r#"{"success":false,"error":{"code":"INVALID_TEMPERATURE","message":"temperature out of range","details":{"field":"temperature","issue":"must be within [0, 2]"}},"meta":{"request_id":"req_42","timestamp":"2024-01-01T00:00:00Z"}}"#,
        ),
        (
            "Infron in-band error in a 200",
            200,
            &[],
            r#"{"error":{"code":502,"message":"provider returned an invalid response","type":"upstream_error","param":""}}"#,
        ),
        (
            "Anthropic overloaded",
            529,
            &[("request-id", "req_018abc")],
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
        (
            "proxy HTML page",
            502,
            &[("retry-after", "5")],
            "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>",
        ),
        (
            "Gemini with RetryInfo",
            429,
            &[],
            r#"{"error":{"code":429,"message":"Per-minute quota used up","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#,
        ),
        (
            "Azure content filter",
            400,
            &[],
            r#"{"error":{"code":"content_filter","message":"The prompt was filtered","param":"prompt","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#,
        ),
        (
            "Bedrock throttling",
            429,
            &[(
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
            )],
            r#"{"message":"Too many requests, wait a moment."}"#,
        ),
        (
            "gRPC Trailers-Only",
            200,
            &[
                ("grpc-status", "14"),
                ("grpc-message", "backend%20restarting"),
                ("grpc-retry-pushback-ms", "750"),
            ],
            "",
        ),
        (
            "Anthropic prompt too long",
            400,
            &[],
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#,
        ),
        ("a success", 200, &[], r#"{"id":"chatcmpl-1","choices":[]}"#),
    ];

    println!(
        "{:<30} {:>6}  {:<24} {:<9} {:<28} {:<10} message",
        "case", "status", "kind", "retryable", "code", "hint"
    );
    for (name, status, headers, body) in cases {
        let status = StatusCode::from_u16(*status).expect("valid status");
        let mut map = HeaderMap::new();
        for (k, v) in *headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        match ApiError::from_response(status, &map, body.as_bytes()) {
            None => println!("{name:<30} {:>6}  success", status.as_u16()),
            // An in-band error carries its own status (Infron's numeric code): show both.
            Some(e) => println!(
                "{name:<30} {:>6}  {:<24} {:<9} {:<28} {:<10} {}",
                match e.status() {
                    Some(s) if s != status => format!("{}>{}", status.as_u16(), s.as_u16()),
                    _ => status.as_u16().to_string(),
                },
                e.kind().to_string(),
                e.is_retryable(),
                e.code().unwrap_or("-"),
                e.retry_after()
                    .map(|d| format!("{d:?}"))
                    .unwrap_or_else(|| "-".into()),
                e.message()
            ),
        }
    }
}
