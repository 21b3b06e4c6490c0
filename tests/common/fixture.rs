//! The `.http` fixture format shared by `tests/fixtures.rs` and `benches/classify.rs`.
//!
//! ```text
//! # source: <URL of the public documentation page the shape comes from>
//! # expect: kind=RateLimited retryable=true code=rate_limit_exceeded retry_after_ms=2000
//! # expect-message~: words the message must contain
//! # now: Mon, 01 Jan 2024 00:00:00 GMT        (optional: ParseOptions::now)
//! HTTP/1.1 429
//! header-name: value
//!
//! body bytes to the end of the file
//! ```
//!
//! `expect` pairs: `kind` (an `ErrorKind` variant name, or `none` for a success), `retryable`,
//! `status`, `code`, `type`, `param`, `request_id`, `retry_after_ms`, `hint` (a `HintSource`
//! name), `dialect`, `detail`, `timestamp`; the value `-` means "absent". Values with spaces go
//! on their own line: `# expect-<key>: <value>` where key is `message`, `message~` (contains),
//! `message!~` (does not contain), `provider~`, `provider!~`, `detail`.
#![allow(dead_code)]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::path::{Path, PathBuf};

/// One parsed fixture.
#[derive(Debug)]
pub struct Fixture {
    pub path: PathBuf,
    pub name: String,
    pub source: Option<String>,
    pub expect: Vec<(String, String)>,
    pub now: Option<std::time::SystemTime>,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Every `*.http` file under `dir`, sorted by path.
pub fn all(dir: &Path) -> Vec<Fixture> {
    let mut paths = Vec::new();
    walk(dir, &mut paths);
    paths.sort();
    paths.iter().map(|p| load(dir, p)).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "http") {
            out.push(path);
        }
    }
}

/// Parses one fixture file.
pub fn load(root: &Path, path: &Path) -> Fixture {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path
        .strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string();
    let mut fx = Fixture {
        path: path.to_owned(),
        name: name.clone(),
        source: None,
        expect: Vec::new(),
        now: None,
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Vec::new(),
    };
    let mut rest: &[u8] = &raw;
    let mut seen_status = false;
    loop {
        let end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
        let line = std::str::from_utf8(&rest[..end])
            .unwrap_or_else(|_| panic!("{name}: head is not UTF-8"))
            .trim_end_matches('\r');
        rest = rest.get(end + 1..).unwrap_or_default();
        if !seen_status {
            if let Some(c) = line.strip_prefix("# source:") {
                fx.source = Some(c.trim().to_owned());
            } else if let Some(c) = line.strip_prefix("# expect:") {
                for pair in c.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("{name}: bad expect pair {pair}"));
                    fx.expect.push((k.to_owned(), v.to_owned()));
                }
            } else if let Some(c) = line.strip_prefix("# expect-") {
                let (k, v) = c
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("{name}: bad expect line {line}"));
                fx.expect.push((k.to_owned(), v.to_owned()));
            } else if let Some(c) = line.strip_prefix("# now:") {
                fx.now = Some(httpdate::parse_http_date(c.trim()).expect("now"));
            } else if let Some(s) = line.strip_prefix("HTTP/1.1 ") {
                let code = s.split_whitespace().next().unwrap_or_default();
                fx.status = code
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: status {s}"));
                seen_status = true;
            } else if !(line.starts_with('#') || line.is_empty()) {
                panic!("{name}: unexpected line before the status: {line}");
            }
            continue;
        }
        if line.is_empty() {
            break;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{name}: bad header {line}"));
        fx.headers.append(
            HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim()).unwrap(),
        );
        if rest.is_empty() {
            break;
        }
    }
    assert!(seen_status, "{name}: no status line");
    fx.body = rest.to_vec();
    fx
}
