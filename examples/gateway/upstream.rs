//! The embedded flaky upstream: an OpenAI-compatible `POST /v1/chat/completions` that fails on
//! a script.
//!
//! Each request names a [`Scenario`] in the `x-demo-scenario` header and carries a unique id in
//! `x-demo-id`. The upstream counts the attempts it has seen for each id, and attempt `n` plays
//! step `n` of the scenario's script (the last step repeats), so "fails first, then succeeds"
//! is deterministic however many requests run at once. A request without those headers gets a
//! normal answer.
//!
//! The failures reproduce the shapes real providers send (status, headers, JSON body); the
//! messages are our own.
//!
//! It is a demo fixture on 127.0.0.1: the attempt counters live as long as the process, one per
//! request id seen.

use axum::{
    Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, Response, StatusCode, header},
    routing::post,
};
use futures_util::StreamExt;
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The request header that names the scenario.
pub const SCENARIO_HEADER: &str = "x-demo-scenario";
/// The request header that identifies one logical request across its retries.
pub const ID_HEADER: &str = "x-demo-id";

/// What the upstream does on one attempt.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// A normal answer: JSON, or an SSE stream when the request asked for `"stream": true`.
    Answer,
    /// An error response: status, extra headers, JSON body.
    Fail {
        status: u16,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
    },
    /// `200 text/event-stream` whose first event is an error object.
    StreamErrorFirst,
    /// `200 text/event-stream`: a few deltas, then an error object, then the end.
    StreamErrorMidway,
    /// `200 text/event-stream` with `: keep-alive` comments only, then the end.
    KeepAliveOnly,
}

/// A named fault script.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Sent in [`SCENARIO_HEADER`].
    pub name: &'static str,
    /// Whether the client asks for `"stream": true`.
    pub stream: bool,
    /// Attempt `n` plays `script[n - 1]`; the last step repeats.
    pub script: &'static [Step],
}

// Error bodies, one per provider shape. The Retry-After values stay at 1 s or less so the demo
// is fast.
const RATE_LIMIT_OPENAI: Step = Step::Fail {
    status: 429,
    headers: &[("retry-after-ms", "200"), ("retry-after", "1")],
    body: r#"{"error":{"message":"Too many requests for this model, slow down.","type":"requests","code":"rate_limit_exceeded","param":null}}"#,
};
const RATE_LIMIT_SECONDS: Step = Step::Fail {
    status: 429,
    headers: &[("retry-after", "1")],
    body: r#"{"error":{"code":"rate_limit_exceeded","message":"Request rate above the plan's limit."}}"#,
};
const OVERLOADED: Step = Step::Fail {
    status: 503,
    headers: &[],
    body: r#"{"error":{"message":"The model has too much traffic right now.","type":"server_error","code":"overloaded","param":null}}"#,
};
const SERVER_ERROR: Step = Step::Fail {
    status: 500,
    headers: &[],
    body: r#"{"error":{"message":"Something broke on our side.","type":"server_error","code":"internal_server_error","param":null}}"#,
};
const OUT_OF_FUNDS: Step = Step::Fail {
    status: 402,
    headers: &[],
    body: r#"{"error":{"code":"not_enough_funds","message":"The account balance cannot cover this request."}}"#,
};
const QUOTA: Step = Step::Fail {
    status: 429,
    headers: &[],
    body: r#"{"error":{"message":"This key has used its whole monthly quota.","type":"insufficient_quota","code":"insufficient_quota","param":null}}"#,
};

/// Every scenario, in the order the burst plays them.
#[rustfmt::skip]
pub const SCENARIOS: &[Scenario] = &[
    scenario("ok-json",             JSON,   &[Step::Answer]),
    scenario("ok-stream",           STREAM, &[Step::Answer]),
    scenario("429-retry-after-ms",  JSON,   &[RATE_LIMIT_OPENAI, Step::Answer]),
    scenario("429-retry-after-1s",  STREAM, &[RATE_LIMIT_SECONDS, Step::Answer]),
    scenario("503-overloaded",      STREAM, &[OVERLOADED, Step::Answer]),
    scenario("500-twice",           JSON,   &[SERVER_ERROR, SERVER_ERROR, Step::Answer]),
    scenario("500-always",          JSON,   &[SERVER_ERROR]),
    scenario("402-out-of-funds",    JSON,   &[OUT_OF_FUNDS]),
    scenario("429-quota",           JSON,   &[QUOTA]),
    scenario("sse-error-first",     STREAM, &[Step::StreamErrorFirst, Step::Answer]),
    scenario("sse-error-midway",    STREAM, &[Step::StreamErrorMidway]),
    scenario("sse-keep-alive-only", STREAM, &[Step::KeepAliveOnly, Step::Answer]),
];

const JSON: bool = false;
const STREAM: bool = true;

const fn scenario(name: &'static str, stream: bool, script: &'static [Step]) -> Scenario {
    Scenario {
        name,
        stream,
        script,
    }
}

/// The upstream's shared state: attempts seen per request id.
#[derive(Clone, Debug)]
pub struct Upstream {
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    /// Pause between two stream events (zero in tests).
    gap: Duration,
    /// Content deltas in a normal stream.
    deltas: usize,
}

impl Upstream {
    /// An upstream that pauses `gap` between stream events.
    pub fn new(gap: Duration) -> Upstream {
        Upstream {
            attempts: Arc::default(),
            gap,
            deltas: ANSWER.len(),
        }
    }

    /// Normal streams carry `n` content deltas (the load test uses long streams).
    pub fn stream_len(mut self, n: usize) -> Upstream {
        self.deltas = n;
        self
    }

    /// How many attempts the upstream has seen for request `id`.
    pub fn attempts(&self, id: &str) -> u32 {
        let map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).copied().unwrap_or(0)
    }

    /// The axum router serving `/v1/chat/completions`.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(self.clone())
    }

    /// Counts one more attempt for `id` and returns its number (from 1).
    fn next_attempt(&self, id: &str) -> u32 {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(id.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }
}

async fn chat_completions(
    State(up): State<Upstream>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (scenario, id) = (text(SCENARIO_HEADER), text(ID_HEADER));
    let attempt = if id.is_empty() {
        1
    } else {
        up.next_attempt(id)
    };

    // The key itself is never looked at, let alone logged: only its presence, to show that the
    // gateway passes it through.
    if !headers.contains_key(header::AUTHORIZATION) {
        let body = r#"{"error":{"message":"No API key was sent.","type":"invalid_request_error","code":"invalid_api_key","param":null}}"#;
        return json(StatusCode::UNAUTHORIZED, &[], body.to_owned());
    }
    let stream = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("stream").and_then(|s| s.as_bool()))
        .unwrap_or(false);

    let step = SCENARIOS
        .iter()
        .find(|s| s.name == scenario)
        .and_then(|s| {
            let i = usize::try_from(attempt)
                .unwrap_or(usize::MAX)
                .saturating_sub(1);
            s.script.get(i).or(s.script.last())
        })
        .copied()
        .unwrap_or(Step::Answer);

    let mut res = match step {
        Step::Answer if stream => sse(up.gap, answer_events(up.deltas)),
        Step::Answer => json(StatusCode::OK, &[], answer_json()),
        Step::Fail {
            status,
            headers,
            body,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            json(status, headers, body.to_owned())
        }
        Step::StreamErrorFirst => sse(
            up.gap,
            vec![data(
                r#"{"error":{"code":502,"message":"The provider sent back an unusable reply.","type":"upstream_error","param":""}}"#,
            )],
        ),
        Step::StreamErrorMidway => {
            let mut events = answer_events(up.deltas);
            events.truncate(3);
            events.push(data(r#"{"error":{"message":"The model stopped while generating.","type":"server_error","code":"internal_server_error","param":null}}"#));
            sse(up.gap, events)
        }
        Step::KeepAliveOnly => sse(up.gap, vec![": keep-alive\n\n".to_owned(); 3]),
    };
    let request_id: String = format!("req-{id}-{attempt}").chars().take(64).collect();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}

fn json(
    status: StatusCode,
    extra: &[(&'static str, &'static str)],
    body: String,
) -> Response<Body> {
    let mut res = Response::new(Body::from(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (k, v) in extra {
        h.insert(*k, HeaderValue::from_static(v));
    }
    res
}

/// A `text/event-stream` response that sends `events` one by one, `gap` apart.
fn sse(gap: Duration, events: Vec<String>) -> Response<Body> {
    let stream = futures_util::stream::iter(events).then(move |event| async move {
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        Ok::<_, Infallible>(Bytes::from(event))
    });
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

fn data(json: &str) -> String {
    format!("data: {json}\n\n")
}

const ANSWER: [&str; 5] = ["Hello", " from", " the", " flaky", " upstream."];

fn answer_json() -> String {
    serde_json::json!({
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "created": 0,
        "model": "demo-model",
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": ANSWER.concat() },
            "finish_reason": "stop",
        }],
        "usage": { "prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8 },
    })
    .to_string()
}

/// The events of a normal stream: `deltas` word deltas, a final chunk, then `[DONE]`.
fn answer_events(deltas: usize) -> Vec<String> {
    let chunk = |delta: serde_json::Value, finish: Option<&str>| {
        let v = serde_json::json!({
            "id": "chatcmpl-demo",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "demo-model",
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        });
        data(&v.to_string())
    };
    let mut events: Vec<String> = ANSWER
        .iter()
        .cycle()
        .take(deltas)
        .map(|w| chunk(serde_json::json!({ "content": w }), None))
        .collect();
    events.push(chunk(serde_json::json!({}), Some("stop")));
    events.push("data: [DONE]\n\n".to_owned());
    events
}
