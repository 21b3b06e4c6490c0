//! An LLM gateway in one command.
//!
//! ```text
//! cargo run --example gateway                       # the demo: flaky upstream, gateway, burst
//! cargo run --example gateway -- --dialect infuzu   # the same, errors rendered as Infuzu's
//! cargo run --example gateway -- --upstream http://127.0.0.1:11434 --listen 127.0.0.1:8080
//! cargo run --release --example gateway -- --load 1000   # with our layers vs without
//! ```
//!
//! The demo starts three things on 127.0.0.1: a flaky OpenAI-compatible upstream
//! ([`upstream`]), the gateway in front of it ([`proxy`]: the retry and SSE layers around its
//! client, the trace, render, stream-error and API-key layers around its router) and a burst of
//! client requests ([`burst`]), one per failure scenario, then prints what happened to each.
//!
//! With `--upstream` the same gateway fronts a real OpenAI-compatible API until Ctrl-C. API keys
//! are passed through as they came and never logged. `RUST_LOG` (for example
//! `RUST_LOG=info,tower_http=debug`) turns on logs to stderr.

mod args;
mod burst;
mod journal;
mod load;
mod proxy;
mod upstream;

use args::{Mode, USAGE, parse_args};
use std::{io::IsTerminal, net::SocketAddr, process::ExitCode, time::Duration};
use tokio::net::TcpListener;
use tower_llm_errors::Dialect;

#[tokio::main]
async fn main() -> ExitCode {
    init_tracing();
    let result = match parse_args(std::env::args().skip(1)) {
        Ok(Mode::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
        Ok(Mode::Demo { dialect }) => demo(dialect).await,
        Ok(Mode::Front {
            dialect,
            upstream,
            listen,
        }) => front(dialect, &upstream, listen).await,
        Ok(Mode::Load { n }) => tokio::task::spawn_blocking(move || load::run(n))
            .await
            .unwrap_or_else(|e| Err(e.to_string())),
        Ok(Mode::LoadChild { variant, n }) => match load::Variant::parse(&variant) {
            Some(variant) => load::child(variant, n).await,
            None => Err(format!("unknown load variant {variant:?}")),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// With `RUST_LOG` set (for example `RUST_LOG=info,tower_http=debug`), logs go to stderr.
/// Otherwise a subscriber that records nothing is installed, as a server that does not log
/// would run. With no subscriber at all, `tracing`'s `log` fallback (switched on by axum's
/// default `tower-log` feature) would still look at every span entry and exit, a cost per
/// body frame that no configured server pays.
fn init_tracing() {
    match std::env::var("RUST_LOG") {
        Ok(filter) if !filter.trim().is_empty() => {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_writer(std::io::stderr)
                .try_init();
        }
        _ => {
            let _ = tracing::subscriber::set_global_default(
                tracing::subscriber::NoSubscriber::default(),
            );
        }
    }
}

/// The demo: upstream, gateway, burst, table.
async fn demo(dialect: Dialect) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let upstream = upstream::Upstream::new(Duration::from_millis(20));
    let (upstream_addr, upstream_server) =
        proxy::spawn_local(upstream.router()).await.map_err(io)?;

    let journal = journal::Journal::default();
    let gateway =
        proxy::Gateway::new(&format!("http://{upstream_addr}"), dialect)?.journal(journal.clone());
    let (gateway_addr, gateway_server) = proxy::spawn_local(proxy::router(gateway))
        .await
        .map_err(io)?;

    println!("flaky upstream  http://{upstream_addr}/v1/chat/completions");
    println!("gateway         http://{gateway_addr}/v1/chat/completions  (dialect: {dialect})");
    println!();

    let rows = burst::run(
        gateway_addr,
        &upstream,
        &journal,
        std::io::stderr().is_terminal(),
    )
    .await;
    burst::print_table(&rows);
    println!("\n{}", burst::LEGEND);
    if let Some((id, body)) = burst::sample_error(&rows, "402-out-of-funds") {
        println!(
            "\nthe client got this body for {id} (the upstream's error, rendered by the gateway"
        );
        println!("in the {dialect} dialect):");
        println!("  {body}");
    }

    gateway_server.abort();
    upstream_server.abort();
    Ok(())
}

/// The gateway in front of a real API, until Ctrl-C.
async fn front(dialect: Dialect, upstream: &str, listen: SocketAddr) -> Result<(), String> {
    let gateway = proxy::Gateway::new(upstream, dialect)?.log(true);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("--listen {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!("gateway: http://{addr}/v1/... -> {upstream} (dialect: {dialect}); Ctrl-C stops");
    axum::serve(listener, proxy::router(gateway))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("gateway: stopping");
        })
        .await
        .map_err(|e| e.to_string())
}
