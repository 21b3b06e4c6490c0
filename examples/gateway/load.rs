//! `--load N`: N concurrent SSE streams through the gateway, once with our layers and once as a
//! plain streaming proxy with none of them, in the same run.
//!
//! Each measurement runs in a child process (this same binary, with the hidden `--load-child`
//! option) so that one variant's memory high-water mark does not hide the other's. The rounds
//! alternate between the variants and the table shows the median of each figure.
//!
//! Memory is the process's resident set (upstream, gateway and client all live in it) sampled
//! every 5 ms, minus what it was once the servers were up, divided by N. It is read from
//! `/proc/self/status`, so it is only shown on Linux.

use crate::{proxy, upstream::Upstream};
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    io::IsTerminal,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use tokio::task::JoinSet;
use tower_llm_errors::Dialect;

/// Content deltas per stream.
const DELTAS: usize = 64;
/// Rounds per variant; the table shows medians.
const ROUNDS: usize = 5;

/// The two gateways measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The gateway as the demo runs it.
    Layers,
    /// The same proxy with none of our layers.
    Bare,
}

impl Variant {
    /// The name used on the child's command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Layers => "layers",
            Variant::Bare => "bare",
        }
    }

    /// Parses [`Variant::as_str`].
    pub fn parse(s: &str) -> Option<Variant> {
        [Variant::Layers, Variant::Bare]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// One child's figures.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    streams_per_sec: f64,
    mib_per_sec: f64,
    ttfb_p50_ms: f64,
    ttfb_p99_ms: f64,
    /// `None` where `/proc/self/status` is not available.
    kib_per_stream: Option<f64>,
    failed: u64,
}

/// The parent: runs the children, prints the table.
pub fn run(n: usize) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    println!(
        "load: {n} concurrent SSE streams of {DELTAS} deltas through the gateway, \
         {ROUNDS} rounds per variant, medians"
    );
    let tty = std::io::stderr().is_terminal();
    let mut results: Vec<(Variant, Figures)> = Vec::new();
    for round in 0..ROUNDS {
        for variant in [Variant::Bare, Variant::Layers] {
            if tty {
                eprint!(
                    "\r\x1b[2Kround {}/{ROUNDS}: {}",
                    round + 1,
                    variant.as_str()
                );
            }
            let out = Command::new(&exe)
                .args(["--load-child", variant.as_str(), &n.to_string()])
                .output()
                .map_err(|e| format!("starting a load child: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout);
            if !out.status.success() {
                return Err(format!(
                    "the {} load child failed: {}{}",
                    variant.as_str(),
                    text,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let figures = parse_figures(&text)
                .ok_or_else(|| format!("unreadable load child output: {text:?}"))?;
            results.push((variant, figures));
        }
    }
    if tty {
        eprint!("\r\x1b[2K");
    }

    let median = |variant: Variant, f: &dyn Fn(&Figures) -> f64| {
        let mut v: Vec<f64> = results
            .iter()
            .filter(|(var, _)| *var == variant)
            .map(|(_, fig)| f(fig))
            .collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    println!(
        "{:<12} {:>10} {:>8} {:>10} {:>10} {:>14} {:>7}",
        "gateway", "streams/s", "MiB/s", "TTFB p50", "TTFB p99", "KiB per stream", "failed"
    );
    for variant in [Variant::Bare, Variant::Layers] {
        let kib = median(variant, &|f| f.kib_per_stream.unwrap_or(f64::NAN));
        let name = match variant {
            Variant::Bare => "no layers",
            Variant::Layers => "our layers",
        };
        println!(
            "{name:<12} {:>10.0} {:>8.1} {:>8.1}ms {:>8.1}ms {:>14} {:>7}",
            median(variant, &|f| f.streams_per_sec),
            median(variant, &|f| f.mib_per_sec),
            median(variant, &|f| f.ttfb_p50_ms),
            median(variant, &|f| f.ttfb_p99_ms),
            if kib.is_nan() {
                "n/a".to_owned()
            } else {
                format!("{kib:.1}")
            },
            median(variant, &|f| f.failed as f64),
        );
    }
    let ratio = median(Variant::Layers, &|f| f.streams_per_sec)
        / median(Variant::Bare, &|f| f.streams_per_sec);
    println!("throughput ratio (our layers / no layers): {ratio:.2} (target: at least 0.90)");
    Ok(())
}

fn parse_figures(text: &str) -> Option<Figures> {
    let line = text.lines().find(|l| l.starts_with("load-result "))?;
    let field = |name: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    Some(Figures {
        streams_per_sec: field("streams_per_sec")?,
        mib_per_sec: field("mib_per_sec")?,
        ttfb_p50_ms: field("ttfb_p50_ms")?,
        ttfb_p99_ms: field("ttfb_p99_ms")?,
        kib_per_stream: field("kib_per_stream"),
        failed: field("failed")? as u64,
    })
}

/// The resident set size in KiB, on Linux.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The child: one measurement, printed as one `load-result` line.
pub async fn child(variant: Variant, n: usize) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let upstream = Upstream::new(Duration::ZERO).stream_len(DELTAS);
    let (upstream_addr, _) = proxy::spawn_local(upstream.router()).await.map_err(io)?;
    let mut gateway = proxy::Gateway::new(&format!("http://{upstream_addr}"), Dialect::OpenAi)?;
    if variant == Variant::Bare {
        gateway = gateway.without_layers();
    }
    let (gateway_addr, _) = proxy::spawn_local(proxy::router(gateway))
        .await
        .map_err(io)?;

    // Memory: sample the resident set until the streams are done.
    let base = rss_kib();
    let peak = Arc::new(AtomicU64::new(base.unwrap_or(0)));
    let sampler = {
        let peak = peak.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tick.tick().await;
                if let Some(now) = rss_kib() {
                    peak.fetch_max(now, Ordering::Relaxed);
                }
            }
        })
    };

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://{gateway_addr}/v1/chat/completions");
    let body = Bytes::from_static(br#"{"model":"demo-model","stream":true,"messages":[]}"#);
    let started = Instant::now();
    let mut streams = JoinSet::new();
    for _ in 0..n {
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        streams.spawn(async move {
            let t0 = Instant::now();
            let req = Request::post(url)
                .header(header::CONTENT_TYPE, "application/json")
                .header(header::AUTHORIZATION, "Bearer sk-load-test")
                .body(Full::new(body))
                .map_err(|_| ())?;
            let mut body = client.request(req).await.map_err(|_| ())?.into_body();
            let (mut ttfb, mut bytes) = (None, 0usize);
            while let Some(frame) = body.frame().await {
                if let Some(data) = frame.map_err(|_| ())?.data_ref() {
                    ttfb.get_or_insert_with(|| t0.elapsed());
                    bytes += data.len();
                }
            }
            ttfb.map(|t| (t, bytes)).ok_or(())
        });
    }
    let (mut ttfbs, mut bytes, mut failed) = (Vec::with_capacity(n), 0usize, 0u64);
    while let Some(joined) = streams.join_next().await {
        match joined {
            Ok(Ok((ttfb, b))) => {
                ttfbs.push(ttfb);
                bytes += b;
            }
            _ => failed += 1,
        }
    }
    let wall = started.elapsed().as_secs_f64();
    sampler.abort();

    ttfbs.sort();
    let pct = |p: usize| {
        let i = (ttfbs.len() * p / 100).min(ttfbs.len().saturating_sub(1));
        ttfbs.get(i).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    let kib = base.map(|base| {
        let grown = peak.load(Ordering::Relaxed).saturating_sub(base);
        grown as f64 / n.max(1) as f64
    });
    println!(
        "load-result streams_per_sec={:.1} mib_per_sec={:.3} ttfb_p50_ms={:.3} ttfb_p99_ms={:.3} {}failed={failed}",
        ttfbs.len() as f64 / wall,
        bytes as f64 / wall / (1024.0 * 1024.0),
        pct(50),
        pct(99),
        kib.map(|k| format!("kib_per_stream={k:.2} "))
            .unwrap_or_default(),
    );
    Ok(())
}
