//! The client burst: one request per scenario (a few of them several times), all at once,
//! through the gateway; a progress bar on stderr while they run; then one table row each.
//!
//! The client reads error bodies up to 64 KiB and parses streams with `eventsource-stream`
//! (which does not bound its line buffer: fine here, where the peer is our own gateway in front
//! of our own upstream; the crate's `sse::Parser` has limits and can replace it).

use crate::journal::{Journal, Wait};
use crate::upstream::{ID_HEADER, SCENARIO_HEADER, SCENARIOS, Scenario, Upstream};
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyDataStream, BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::{
    io::Write,
    net::SocketAddr,
    time::{Duration, Instant},
};
use tokio::task::JoinSet;
use tower_llm_errors::ApiError;

/// How many copies of a scenario run beside the first one, to show concurrency.
const EXTRA_COPIES: &[(&str, usize)] = &[("ok-stream", 3), ("429-retry-after-ms", 1)];

/// Error bodies are read up to this many bytes.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// What happened to one request.
#[derive(Clone, Debug)]
pub struct Row {
    /// `scenario#n`, also the `x-demo-id` sent.
    pub id: String,
    /// Attempts the upstream saw for this request.
    pub attempts: u32,
    /// Waits the gateway recorded between attempts.
    pub waits: Vec<Wait>,
    /// What the client got, in a few words.
    pub outcome: String,
    /// In-band error events the client saw in a `200` stream.
    pub in_band: u32,
    /// The body of an error response, as the client received it (cut at 300 characters).
    pub error_body: Option<String>,
    /// Wall time, from sending to the end of the body.
    pub took: Duration,
}

/// The requests of one burst: every scenario, some several times.
pub fn plan() -> Vec<(Scenario, String)> {
    let mut plan = Vec::new();
    for s in SCENARIOS {
        let extra = EXTRA_COPIES
            .iter()
            .find(|(name, _)| *name == s.name)
            .map_or(0, |(_, n)| *n);
        for k in 0..=extra {
            plan.push((*s, format!("{}#{}", s.name, k + 1)));
        }
    }
    plan
}

/// Sends every request of [`plan`] to the gateway at once and collects the rows, in plan order.
pub async fn run(
    gateway: SocketAddr,
    upstream: &Upstream,
    journal: &Journal,
    progress: bool,
) -> Vec<Row> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let plan = plan();
    let total = plan.len();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (i, (scenario, id)) in plan.iter().cloned().enumerate() {
        let client = client.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let answer = call(&client, gateway, &scenario, &id).await;
            (i, id, answer, t0.elapsed())
        });
    }

    let mut rows: Vec<Option<Row>> = vec![None; total];
    let mut done = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((i, id, answer, took))) => {
                    let row = Row {
                        attempts: upstream.attempts(&id),
                        waits: journal.waits(&id),
                        id,
                        outcome: answer.outcome,
                        in_band: answer.in_band,
                        error_body: answer.error_body,
                        took,
                    };
                    rows[i] = Some(row);
                    done += 1;
                }
                Some(Err(e)) => {
                    eprintln!("burst: a request task failed: {e}");
                    done += 1;
                }
                None => break,
            },
            _ = tick.tick() => {}
        }
        if progress {
            draw(done, total, started.elapsed());
        }
    }
    if progress {
        eprint!("\r\x1b[2K"); // clear the bar
    }
    eprintln!(
        "burst: {total} requests in {} ms",
        started.elapsed().as_millis()
    );
    rows.into_iter().flatten().collect()
}

fn draw(done: usize, total: usize, elapsed: Duration) {
    const WIDTH: usize = 30;
    let filled = WIDTH * done / total.max(1);
    let bar = format!("{}{}", "#".repeat(filled), ".".repeat(WIDTH - filled));
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r[{bar}] {done}/{total}  {:.1}s",
        elapsed.as_secs_f64()
    );
    let _ = err.flush();
}

/// What the client made of one answer.
struct Answer {
    outcome: String,
    in_band: u32,
    error_body: Option<String>,
}

impl Answer {
    fn plain(outcome: String) -> Answer {
        Answer {
            outcome,
            in_band: 0,
            error_body: None,
        }
    }
}

/// Sends one request and reads the whole answer.
async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    gateway: SocketAddr,
    scenario: &Scenario,
    id: &str,
) -> Answer {
    let body = serde_json::json!({
        "model": "demo-model",
        "stream": scenario.stream,
        "messages": [{ "role": "user", "content": "Say hello." }],
    });
    let req = Request::post(format!("http://{gateway}/v1/chat/completions"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, "Bearer sk-demo-not-a-real-key")
        .header(SCENARIO_HEADER, scenario.name)
        .header(ID_HEADER, id)
        .body(Full::new(Bytes::from(body.to_string())));
    let req = match req {
        Ok(req) => req,
        Err(e) => return Answer::plain(format!("bad request: {e}")),
    };
    let res = match client.request(req).await {
        Ok(res) => res,
        Err(e) => return Answer::plain(format!("transport error: {e}")),
    };
    let (parts, body) = res.into_parts();
    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_sse {
        read_stream(parts.status, body).await
    } else {
        read_json(parts.status, &parts.headers, body).await
    }
}

async fn read_json(status: StatusCode, headers: &HeaderMap, body: Incoming) -> Answer {
    let bytes = match Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Answer::plain(format!("{} then body error: {e}", status.as_u16())),
    };
    match ApiError::from_response(status, headers, &bytes) {
        None => Answer::plain(format!("{} answer", status.as_u16())),
        Some(err) => Answer {
            outcome: describe(status, &err),
            in_band: 0,
            error_body: Some(String::from_utf8_lossy(&bytes).chars().take(300).collect()),
        },
    }
}

async fn read_stream(status: StatusCode, body: Incoming) -> Answer {
    let mut events = BodyDataStream::new(body).eventsource();
    let (mut deltas, mut in_band, mut done) = (0u32, 0u32, false);
    let mut first_error: Option<ApiError> = None;
    let mut cut = false;
    while let Some(event) = events.next().await {
        match event {
            Ok(event) if event.data == "[DONE]" => done = true,
            Ok(event) => {
                match ApiError::from_response(
                    StatusCode::OK,
                    &HeaderMap::new(),
                    event.data.as_bytes(),
                ) {
                    Some(err) => {
                        in_band += 1;
                        first_error.get_or_insert(err);
                    }
                    None => deltas += 1,
                }
            }
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    let s = status.as_u16();
    let outcome = match (first_error, cut) {
        (Some(err), _) if deltas == 0 => format!("{s} stream, in-band {} first", err.kind()),
        (Some(err), _) => format!("{s} stream, {deltas} deltas, then in-band {}", err.kind()),
        (None, true) => format!("{s} stream, {deltas} deltas, then cut"),
        (None, false) if done => format!("{s} stream, {deltas} deltas, [DONE]"),
        (None, false) if deltas == 0 => format!("{s} stream, no events"),
        (None, false) => format!("{s} stream, {deltas} deltas, no [DONE]"),
    };
    Answer {
        outcome,
        in_band,
        error_body: None,
    }
}

fn describe(status: StatusCode, err: &ApiError) -> String {
    match err.code() {
        Some(code) => format!("{} {} ({code})", status.as_u16(), err.kind()),
        None => format!("{} {}", status.as_u16(), err.kind()),
    }
}

/// Prints the rows as an aligned table on stdout.
pub fn print_table(rows: &[Row]) {
    let header = [
        "request", "attempts", "waited", "why", "outcome", "in-band", "took",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            let waited: Duration = r.waits.iter().map(|w| w.delay).sum();
            let (waited, why) = if !r.waits.is_empty() {
                let why: Vec<&str> = r.waits.iter().map(|w| w.why.as_str()).collect();
                (format!("{} ms", waited.as_millis()), why.join(", "))
            } else if r.attempts > 1 {
                ("?".to_owned(), "unknown".to_owned())
            } else {
                ("-".to_owned(), "-".to_owned())
            };
            [
                r.id.clone(),
                r.attempts.to_string(),
                waited,
                why,
                r.outcome.clone(),
                r.in_band.to_string(),
                format!("{} ms", r.took.as_millis()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut out = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            // Numbers right-aligned, text left-aligned.
            if matches!(i, 1 | 5 | 6) {
                out.push_str(&format!("{c:>w$}  "));
            } else {
                out.push_str(&format!("{c:<w$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&header.map(str::to_owned));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &cells {
        line(row);
    }
}

/// What the columns mean, printed under the table.
pub const LEGEND: &str = "\
attempts: requests the upstream saw for this one; waited/why: pauses before retries (server
hint or backoff); in-band: error events the client found inside a 200 stream (one: the
gateway's, in the chosen dialect; the upstream's own error event is withheld).";

/// The first error body in `rows` whose request id starts with `scenario`, as the client got it.
pub fn sample_error<'a>(rows: &'a [Row], scenario: &str) -> Option<(&'a str, &'a str)> {
    rows.iter()
        .filter(|r| r.id.starts_with(scenario))
        .find_map(|r| Some((r.id.as_str(), r.error_body.as_deref()?)))
}
