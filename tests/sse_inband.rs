//! In-band errors in every provider shape: `ApiError::from_sse_event` on single events, and
//! the `SseErrorLayer` body on whole streams under every chunking.

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::convert::Infallible;
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::sse::{Event, InBandReport, SseErrorLayer};
use tower_llm_errors::{ApiError, BoxError, ErrorKind};

/// What a stream run produced: the bytes passed on, the body error, the report.
struct Outcome {
    bytes: Vec<u8>,
    error: Option<BoxError>,
    report: InBandReport,
}

async fn drive(chunks: Vec<Bytes>, layer: SseErrorLayer) -> Outcome {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |_req: Request<()>| {
            let frames: Vec<Result<Frame<Bytes>, Infallible>> =
                chunks.iter().cloned().map(|c| Ok(Frame::data(c))).collect();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream; charset=utf-8")
                        .body(StreamBody::new(stream::iter(frames)))
                        .unwrap(),
                )
            }
        });
    let res = svc.oneshot(Request::new(())).await.unwrap();
    let report = res
        .extensions()
        .get::<InBandReport>()
        .cloned()
        .expect("event streams carry a report");
    let mut body = res.into_body();
    let mut bytes = Vec::new();
    let mut error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => bytes.extend_from_slice(&f.into_data().unwrap()),
            Err(e) => {
                error = Some(e);
                assert!(body.frame().await.is_none(), "nothing after the error");
                break;
            }
        }
    }
    Outcome {
        bytes,
        error,
        report,
    }
}

/// Every chunking of `input`: whole, 1-byte chunks, and every 2-way split.
fn chunkings(input: &[u8]) -> Vec<Vec<Bytes>> {
    let mut all = vec![vec![Bytes::copy_from_slice(input)]];
    all.push(input.chunks(1).map(Bytes::copy_from_slice).collect());
    for i in 1..input.len() {
        let (a, b) = input.split_at(i);
        all.push(vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)]);
    }
    all
}

/// Runs a stream with an in-band error under every chunking; checks that the body passes
/// exactly the bytes up to the end of `cut_after` and then fails with an `ApiError`, which is
/// returned (from the whole-input run) for shape checks.
async fn failing(stream: &str, cut_after: &str) -> ApiError {
    let cut = stream.find(cut_after).expect("marker in stream") + cut_after.len();
    let mut first: Option<ApiError> = None;
    for chunks in chunkings(stream.as_bytes()) {
        let n = chunks.len();
        let out = drive(chunks, SseErrorLayer::new()).await;
        // The event ends at its final line end. When that is a CR LF split between two
        // frames, the event is complete at the CR and the LF (next frame) is not passed.
        let passed = String::from_utf8_lossy(&out.bytes);
        let cr_split = stream[..cut].ends_with("\r\n") && passed == stream[..cut - 1];
        assert!(
            passed == stream[..cut] || cr_split,
            "bytes passed ({n} chunks): {passed:?}"
        );
        let err = out.error.expect("the body fails");
        let api = err
            .downcast_ref::<ApiError>()
            .expect("downcasts to ApiError")
            .clone();
        assert_eq!(
            out.report.error().map(ToString::to_string),
            Some(api.to_string())
        );
        match &first {
            None => first = Some(api),
            Some(f) => assert_eq!(f.to_string(), api.to_string(), "{n} chunks"),
        }
        // Record-only mode passes everything and records the same error.
    }
    let rec = drive(
        vec![Bytes::copy_from_slice(stream.as_bytes())],
        SseErrorLayer::new().record_only(),
    )
    .await;
    assert!(rec.error.is_none());
    assert_eq!(rec.bytes, stream.as_bytes());
    let first = first.unwrap();
    assert_eq!(rec.report.error().unwrap().to_string(), first.to_string());
    first
}

/// Runs a stream with no error under every chunking: everything passes, nothing fails.
async fn passing(stream: &str) -> InBandReport {
    let mut last = None;
    for chunks in chunkings(stream.as_bytes()) {
        let out = drive(chunks, SseErrorLayer::new()).await;
        assert!(out.error.is_none(), "{:?}", out.error);
        assert_eq!(out.bytes, stream.as_bytes());
        assert!(out.report.error().is_none());
        if let Some(prev) = &last {
            let prev: &InBandReport = prev;
            assert_eq!(
                prev.content_filtered().map(ToString::to_string),
                out.report.content_filtered().map(ToString::to_string)
            );
        }
        last = Some(out.report);
    }
    last.unwrap()
}

const OPENAI_CHAT: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
    "data: {\"error\":{\"message\":\"the model server failed\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn openai_chat_error_then_done() {
    let e = failing(OPENAI_CHAT, "\"code\":null}}\n\n").await;
    assert_eq!(e.error_type(), Some("server_error"));
    assert_eq!(e.message(), "the model server failed");
}

#[tokio::test]
async fn openai_responses_flat_error() {
    let s = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"too many tokens per minute\",\"param\":null,\"sequence_number\":1}\n\n",
    );
    let e = failing(s, "\"sequence_number\":1}\n\n").await;
    assert_eq!(e.code(), Some("rate_limit_exceeded"));
    assert_eq!(e.message(), "too many tokens per minute");
}

#[tokio::test]
async fn openai_responses_nested_error() {
    let s = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"code\":\"context_length_exceeded\",\"message\":\"input too long\",\"param\":\"input\"},\"sequence_number\":2}\n\n";
    let e = failing(s, "\"sequence_number\":2}\n\n").await;
    assert_eq!(e.code(), Some("context_length_exceeded"));
    assert_eq!(e.param(), Some("input"));
    assert_eq!(e.error_type(), Some("invalid_request_error"));
}

#[tokio::test]
async fn openai_responses_failed() {
    let s = concat!(
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n",
        "event: response.failed\ndata: {\"type\":\"response.failed\",\"sequence_number\":9,\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"the run failed\"}}}\n\n",
    );
    let e = failing(s, "\"message\":\"the run failed\"}}}\n\n").await;
    assert_eq!(e.code(), Some("server_error"));
    assert_eq!(e.message(), "the run failed");
}

#[tokio::test]
async fn anthropic_error_event_padded_json() {
    let s = concat!(
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"stop_reason\":null}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"error handling in Rust\"}}\n\n",
        "event: error\r\ndata:   {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}  \r\n\r\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    );
    let e = failing(s, "}}  \r\n\r\n").await;
    assert_eq!(e.error_type(), Some("overloaded_error"));
    assert_eq!(e.message(), "Overloaded");
}

#[tokio::test]
async fn openrouter_string_code_with_keepalives() {
    let s = concat!(
        ": OPENROUTER PROCESSING\n\n",
        ": OPENROUTER PROCESSING\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\"},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"provider\":\"p\",\"error\":{\"code\":\"server_error\",\"message\":\"provider disconnected\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let e = failing(s, "\"finish_reason\":\"error\"}]}\n\n").await;
    assert_eq!(e.code(), Some("server_error"));
    assert_eq!(e.message(), "provider disconnected");
}

#[tokio::test]
async fn infron_numeric_code_is_the_status() {
    let s = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":{\"code\":502,\"message\":\"provider returned an invalid response\",\"type\":\"upstream_error\",\"param\":\"\"},\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}]}\n\n",
    );
    let e = failing(s, "\"finish_reason\":\"error\"}]}\n\n").await;
    assert_eq!(e.code(), Some("502"));
    assert_eq!(e.status(), Some(StatusCode::BAD_GATEWAY));
    assert_eq!(e.kind(), ErrorKind::BadGateway);
}

#[tokio::test]
async fn finish_reason_error_without_error_object() {
    let s = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}]}\n\n";
    let e = failing(s, "}]}\n\n").await;
    assert_eq!(e.kind(), ErrorKind::ServerError);
}

#[tokio::test]
async fn gemini_bare_pretty_printed_json() {
    let s = concat!(
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Hi\"}],\"role\":\"model\"},\"index\":0}]}\r\n\r\n",
        "{\n  \"error\": {\n    \"code\": 503,\n    \"message\": \"the model is overloaded\",\n    \"status\": \"UNAVAILABLE\"\n  }\n}\n",
    );
    let e = failing(s, "  }\n}\n").await;
    assert_eq!(e.code(), Some("503"));
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert_eq!(e.error_type(), Some("UNAVAILABLE"));
}

#[tokio::test]
async fn gemini_bare_array_json() {
    let s = "[{\n  \"error\": {\n    \"code\": 429,\n    \"message\": \"quota\",\n    \"status\": \"RESOURCE_EXHAUSTED\"\n  }\n}\n]\n";
    let e = failing(s, "}\n]\n").await;
    assert_eq!(e.code(), Some("429"));
    assert_eq!(e.error_type(), Some("RESOURCE_EXHAUSTED"));
}

#[tokio::test]
async fn vllm_error_object() {
    let s = "data: {\"error\":{\"object\":\"error\",\"message\":\"engine stopped\",\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}\n\n";
    let e = failing(s, "\"code\":500}}\n\n").await;
    assert_eq!(e.kind(), ErrorKind::ServerError);
    assert_eq!(e.message(), "engine stopped");
}

#[tokio::test]
async fn tgi_string_error_no_space_after_colon() {
    let s = concat!(
        "data:{\"token\":{\"id\":1,\"text\":\"a\",\"special\":false}}\n\n",
        "data:{\"error\":\"Input validation error: too many tokens\",\"error_type\":\"validation\"}\n\n",
    );
    let e = failing(s, "\"validation\"}\n\n").await;
    assert_eq!(e.message(), "Input validation error: too many tokens");
    assert_eq!(e.error_type(), Some("validation"));
}

#[tokio::test]
async fn groq_x_groq_error() {
    let s = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[],\"x_groq\":{\"id\":\"req_1\",\"error\":{\"message\":\"tool call failed\",\"type\":\"invalid_request_error\",\"code\":\"tool_use_failed\"}}}\n\n";
    let e = failing(s, "}}}\n\n").await;
    assert_eq!(e.code(), Some("tool_use_failed"));
    assert_eq!(e.message(), "tool call failed");
}

#[tokio::test]
async fn error_event_without_final_empty_line_at_end_of_stream() {
    let s = "data: {\"x\":1}\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}\n";
    let e = failing(s, "boom\"}}\n").await;
    assert_eq!(e.error_type(), Some("api_error"));
}

#[tokio::test]
async fn content_filter_ends_are_recorded_not_failed() {
    let cases = [
        (
            "content_filter",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\ndata: [DONE]\n\n",
        ),
        (
            "SAFETY",
            "data: {\"candidates\":[{\"finishReason\": \"SAFETY\",\"index\":0}]}\r\n\r\n",
        ),
        (
            "refusal",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\",\"stop_sequence\":null}}\n\n",
        ),
    ];
    for (code, s) in cases {
        let report = passing(s).await;
        let f = report.content_filtered().expect(code);
        assert_eq!(f.kind(), ErrorKind::ContentFiltered);
        assert_eq!(f.code(), Some(code));
    }
}

#[tokio::test]
async fn no_false_positives_on_text_about_errors() {
    let s = concat!(
        ": error\n\n",
        "event: message\ndata: {\"choices\":[{\"delta\":{\"content\":\"an error occurred: \\\"error\\\": {code}\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":null,\"choices\":[{\"delta\":{\"content\":\"error\"},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"logprobs\":{\"content\":[{\"token\":\"error\",\"logprob\":-0.1}]}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Error: the error type is {\\\"error\\\":1}\"}}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"}}\n\n",
        "data: {\"candidates\":[{\"finishReason\":\"STOP\"}]}\n\n",
        "data: error\n\n",
        "data: [DONE]\n\n",
    );
    let report = passing(s).await;
    assert!(report.content_filtered().is_none());
}

#[tokio::test]
async fn other_content_types_are_not_wrapped() {
    let svc = ServiceBuilder::new()
        .layer(SseErrorLayer::new())
        .service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from_static(
                        b"data: {\"error\":{\"message\":\"x\"}}\n\n",
                    )))
                    .unwrap(),
            )
        });
    let res = svc.oneshot(Request::new(())).await.unwrap();
    assert!(res.extensions().get::<InBandReport>().is_none());
    assert!(!res.body().is_inspected());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"data: {\"error\":{\"message\":\"x\"}}\n\n");
}

#[tokio::test]
async fn limits_fail_the_body_with_a_typed_error() {
    let line = format!("data: {}\n\n", "a".repeat(100));
    let out = drive(
        vec![Bytes::from(line.clone())],
        SseErrorLayer::new().max_line_bytes(64),
    )
    .await;
    let err = out.error.expect("fails");
    let e = err
        .downcast_ref::<tower_llm_errors::sse::Error>()
        .expect("sse::Error");
    assert!(e.is_line_too_long());
    assert_eq!(out.bytes, line.as_bytes());
    let rec = drive(
        vec![Bytes::from(line.clone())],
        SseErrorLayer::new().max_line_bytes(64).record_only(),
    )
    .await;
    assert!(rec.error.is_none());
    assert!(rec.report.limit_exceeded().unwrap().is_line_too_long());
}

// ApiError::from_sse_event on single events.
macro_rules! event_cases {
    ($($name:ident: ($event:expr, $data:expr) => $check:expr;)*) => {$(
        #[test]
        fn $name() {
            let ev = Event::new($data).with_event($event);
            let got = ApiError::from_sse_event(&ev);
            let check: fn(Option<ApiError>) = $check;
            check(got);
        }
    )*};
}

event_cases! {
    event_done_is_not_an_error: ("message", "[DONE]") => |e| assert!(e.is_none());
    event_plain_chunk: ("message", r#"{"choices":[{"delta":{"content":"error"}}]}"#) => |e| assert!(e.is_none());
    event_named_error_not_json: ("error", "upstream exploded") => |e| assert_eq!(e.unwrap().message(), "upstream exploded");
    event_named_error_empty: ("error", "") => |e| assert!(e.is_some());
    event_error_string: ("message", r#"{"error":"bad things"}"#) => |e| assert_eq!(e.unwrap().message(), "bad things");
    event_error_null_is_normal: ("message", r#"{"error":null,"choices":[]}"#) => |e| assert!(e.is_none());
    event_numeric_code_status: ("message", r#"{"error":{"code":429,"message":"slow"}}"#) => |e| {
        let e = e.unwrap();
        assert_eq!(e.kind(), ErrorKind::RateLimited);
        assert_eq!(e.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    };
    event_response_incomplete_filter: ("response.incomplete", r#"{"type":"response.incomplete","response":{"incomplete_details":{"reason":"content_filter"}}}"#) => |e| assert_eq!(e.unwrap().kind(), ErrorKind::ContentFiltered);
    event_response_incomplete_length: ("response.incomplete", r#"{"type":"response.incomplete","response":{"incomplete_details":{"reason":"max_output_tokens"}}}"#) => |e| assert!(e.is_none());
    event_gemini_prompt_blocked: ("message", r#"{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"}}"#) => |e| assert_eq!(e.unwrap().code(), Some("PROHIBITED_CONTENT"));
    event_secret_masked: ("error", "bad key sk-abcdefghijklmnopqrstuvwxyz0123456789") => |e| assert!(!e.unwrap().message().contains("qrstuvwxyz0123456789"));
}
