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
}

/// Parses the arguments after the program name.
pub fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut dialect = Dialect::OpenAi;
    let (mut upstream, mut listen) = (None, None);
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
            other => return Err(format!("unknown argument {other:?}")),
        }
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
