//! The command line, parsed by hand from `std::env::args` (four options need no crate).

use std::{net::SocketAddr, str::FromStr};
use tower_llm_errors::Dialect;

/// The `--help` text.
pub const USAGE: &str = "\
Usage: cargo run --example gateway -- [OPTIONS]

Without --upstream: runs the demo (a flaky upstream, the gateway, a burst of requests, a table).

Options:
  --dialect NAME    how the gateway renders errors: openai (default), infuzu, envelope,
                    infron, anthropic
  --upstream URL    front this OpenAI-compatible API instead of running the demo; the origin
                    only (e.g. http://127.0.0.1:11434), request paths such as
                    /v1/chat/completions are appended; http:// only for now
  --listen ADDR     where the gateway listens with --upstream (default 127.0.0.1:8080)
  --load N          instead of the demo: N concurrent SSE streams through the gateway with
                    our layers and without them, then throughput, time to first byte and
                    memory per stream (run it with --release)
  -h, --help        print this help
";

/// What the command line asked for.
#[derive(Debug)]
pub enum Mode {
    /// `--help`: print [`USAGE`].
    Help,
    /// No `--upstream`: run the demo.
    Demo { dialect: Dialect },
    /// `--upstream URL [--listen ADDR]`: front a real API until Ctrl-C.
    Front {
        dialect: Dialect,
        upstream: String,
        listen: SocketAddr,
    },
    /// `--load N`: the load comparison.
    Load { n: usize },
    /// `--load-child VARIANT N` (internal): one measurement, run by `--load`.
    LoadChild { variant: String, n: usize },
}

/// Parses the arguments after the program name.
pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut dialect = Dialect::OpenAi;
    let (mut upstream, mut listen, mut load) = (None, None, None);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(Mode::Help),
            "--dialect" => {
                dialect = Dialect::from_str(&value("--dialect")?).map_err(|e| e.to_string())?;
            }
            "--upstream" => upstream = Some(value("--upstream")?),
            "--listen" => {
                let v = value("--listen")?;
                listen = Some(v.parse().map_err(|e| format!("--listen {v:?}: {e}"))?);
            }
            "--load" => load = Some(count(&value("--load")?)?),
            "--load-child" => {
                let variant = value("--load-child")?;
                let n = count(&value("--load-child")?)?;
                return Ok(Mode::LoadChild { variant, n });
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if let Some(n) = load {
        if upstream.is_some() || listen.is_some() {
            return Err("--load runs its own upstream; drop --upstream and --listen".into());
        }
        return Ok(Mode::Load { n });
    }
    match (upstream, listen) {
        (Some(upstream), listen) => Ok(Mode::Front {
            dialect,
            upstream,
            listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
        }),
        (None, Some(_)) => Err("--listen only applies with --upstream".into()),
        (None, None) => Ok(Mode::Demo { dialect }),
    }
}

/// A stream count: 1 to 100,000.
fn count(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n @ 1..=100_000) => Ok(n),
        _ => Err(format!("expected a count from 1 to 100000, got {v:?}")),
    }
}
