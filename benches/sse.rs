//! SSE throughput: our passthrough inspector body and our event parser against
//! `eventsource-stream`, `sse-stream` and a plain `memchr` line count over the same bytes.
//!
//! `cargo bench --bench sse -- --warm-up-time 1 --measurement-time 3`
//!
//! Workloads: an OpenAI-style and an Anthropic-style stream of 20,000 events, fed in 16 KiB
//! chunks, one event per chunk, and 7-byte chunks. Before measuring, each contender runs once
//! under a counting global allocator and the allocations per event are printed.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use eventsource_stream::Eventsource;
use futures_util::{StreamExt, stream};
use http::{Request, Response};
use http_body::{Body, Frame};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::hint::black_box;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::{Layer, ServiceExt, service_fn};
use tower_llm_errors::sse::{Parser, SseErrorLayer};

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

const EVENTS: usize = 20_000;

fn openai_events() -> Vec<String> {
    (0..EVENTS)
        .map(|i| {
            format!(
                "data: {{\"id\":\"chatcmpl-bench0000000000000000001\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-bench\",\"system_fingerprint\":\"fp_bench\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"token{i} \"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
            )
        })
        .collect()
}

fn anthropic_events() -> Vec<String> {
    (0..EVENTS)
        .map(|i| {
            format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"token{i} \"}}}}\n\n"
            )
        })
        .collect()
}

struct Workload {
    name: &'static str,
    bytes: Bytes,
    /// Event boundaries, for the one-event-per-chunk split.
    events: Vec<usize>,
}

impl Workload {
    fn new(name: &'static str, events: Vec<String>) -> Workload {
        let mut all = String::new();
        let mut ends = Vec::new();
        for e in &events {
            all.push_str(e);
            ends.push(all.len());
        }
        Workload {
            name,
            bytes: Bytes::from(all),
            events: ends,
        }
    }

    fn chunks(&self, how: &str) -> Vec<Bytes> {
        match how {
            "16KiB" => (0..self.bytes.len())
                .step_by(16 * 1024)
                .map(|s| self.bytes.slice(s..(s + 16 * 1024).min(self.bytes.len())))
                .collect(),
            "7B" => (0..self.bytes.len())
                .step_by(7)
                .map(|s| self.bytes.slice(s..(s + 7).min(self.bytes.len())))
                .collect(),
            _ => {
                let mut start = 0;
                self.events
                    .iter()
                    .map(|&end| {
                        let c = self.bytes.slice(start..end);
                        start = end;
                        c
                    })
                    .collect()
            }
        }
    }
}

/// Runs a future whose every step is ready (all inputs here are in memory).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(std::task::Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// A body that yields the given chunks (a `Bytes` clone per frame, as every contender gets).
struct Chunks<'a>(std::slice::Iter<'a, Bytes>);

impl Body for Chunks<'_> {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.next().map(|c| Ok(Frame::data(c.clone()))))
    }
}

fn inspector(chunks: &[Bytes]) -> usize {
    let svc = SseErrorLayer::new().layer(service_fn(move |_req: Request<()>| {
        let body = Chunks(chunks.iter());
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "text/event-stream")
                    .body(body)
                    .unwrap(),
            )
        }
    }));
    block_on(async {
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let mut body = res.into_body();
        let mut n = 0;
        while let Some(f) = body.frame().await {
            n += f.unwrap().into_data().map_or(0, |d| d.len());
        }
        n
    })
}

fn parser(chunks: &[Bytes]) -> usize {
    let mut p = Parser::new();
    let mut n = 0;
    for c in chunks {
        p.push(c.clone());
        while let Some(e) = p.next_event() {
            n += e.unwrap().data().len();
        }
    }
    p.finish();
    while let Some(e) = p.next_event() {
        n += e.unwrap().data().len();
    }
    n
}

fn sse_stream(chunks: &[Bytes]) -> usize {
    let s = stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
    let mut s = sse_stream::SseByteStream::new(s);
    block_on(async {
        let mut n = 0;
        while let Some(e) = s.next().await {
            n += e.unwrap().data.map_or(0, |d| d.len());
        }
        n
    })
}

fn eventsource(chunks: &[Bytes]) -> usize {
    let mut s = stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>)).eventsource();
    block_on(async {
        let mut n = 0;
        while let Some(e) = s.next().await {
            n += e.unwrap().data.len();
        }
        n
    })
}

fn memchr_lines(chunks: &[Bytes]) -> usize {
    chunks
        .iter()
        .map(|c| memchr::memchr_iter(b'\n', c).count())
        .sum()
}

type Contender = (&'static str, fn(&[Bytes]) -> usize);

const CONTENDERS: &[Contender] = &[
    ("inspector", inspector),
    ("parser", parser),
    ("sse-stream", sse_stream),
    ("eventsource-stream", eventsource),
    ("memchr-lines", memchr_lines),
];

fn bench(c: &mut Criterion) {
    let workloads = [
        Workload::new("openai", openai_events()),
        Workload::new("anthropic", anthropic_events()),
    ];
    for w in &workloads {
        for how in ["16KiB", "event", "7B"] {
            let chunks = w.chunks(how);
            let mut group = c.benchmark_group(format!("{}/{how}", w.name));
            group.throughput(Throughput::Bytes(w.bytes.len() as u64));
            for (name, f) in CONTENDERS {
                let before = alloc::allocations();
                black_box(f(&chunks));
                let allocs = alloc::allocations() - before;
                println!(
                    "allocs/event {}/{how}/{name}: {:.3} ({} bytes, {} events)",
                    w.name,
                    allocs as f64 / EVENTS as f64,
                    w.bytes.len(),
                    EVENTS
                );
                group.bench_with_input(BenchmarkId::from_parameter(name), &chunks, |b, ch| {
                    b.iter(|| black_box(f(ch)))
                });
            }
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
