//! A misbehaving HTTP/1.1 server on 127.0.0.1 for the chaos tests, written on raw TCP so that it
//! can do what a well-behaved server library never does: reset connections, lie about lengths,
//! stall, and stream forever.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower_llm_errors::retry::ReplayBody;

/// What the server does with one connection (one request each; every response closes).
#[derive(Clone, Debug)]
pub enum Act {
    /// Read the request, then reset the connection (RST, no response).
    Reset,
    /// Send these bytes as they are, then close.
    Raw(Vec<u8>),
    /// Send these bytes, then reset the connection.
    RawThenReset(Vec<u8>),
    /// Send a head and part of a body, then hold the connection open without sending more.
    Stall(Vec<u8>),
    /// Send the head, then `chunk` again and again until `total` bytes of body were written or
    /// the peer goes away.
    Endless {
        head: Vec<u8>,
        chunk: Vec<u8>,
        total: u64,
    },
}

/// A full response with `connection: close` and a correct content-length.
pub fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Act {
    let mut s = format!(
        "HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s.push_str(body);
    Act::Raw(s.into_bytes())
}

/// A head with no length: the body runs until the connection closes.
pub fn open_head(status: u16, content_type: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status} X\r\nconnection: close\r\ncontent-type: {content_type}\r\n\r\n")
        .into_bytes()
}

/// Counters the tests assert on.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests (connections whose request was read).
    pub requests: AtomicUsize,
    /// Body bytes written by `Endless` acts, all connections together.
    pub endless_written: AtomicU64,
}

/// Starts the server; connection `n` gets `script[n]`, and connections past the script get
/// `fallback`.
pub async fn serve(script: Vec<Act>, fallback: Act) -> (SocketAddr, Arc<Stats>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stats = Arc::new(Stats::default());
    let script = Arc::new(Mutex::new(VecDeque::from(script)));
    let st = stats.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let act = script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| fallback.clone());
            tokio::spawn(handle(stream, act, st.clone()));
        }
    });
    (addr, stats)
}

/// Reads one request: the head, then `content-length` bytes of body.
async fn read_request(s: &mut TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Ok(())
}

async fn handle(mut s: TcpStream, act: Act, stats: Arc<Stats>) {
    if read_request(&mut s).await.is_err() {
        return;
    }
    stats.requests.fetch_add(1, Ordering::SeqCst);
    match act {
        Act::Reset => {
            #[allow(deprecated)] // a zero linger never blocks: it is what sends the RST
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
        Act::Raw(bytes) => {
            let _ = s.write_all(&bytes).await;
            let _ = s.shutdown().await;
        }
        Act::RawThenReset(bytes) => {
            let _ = s.write_all(&bytes).await;
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await; // let the bytes leave first
            #[allow(deprecated)]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        }
        Act::Stall(bytes) => {
            let _ = s.write_all(&bytes).await;
            let _ = s.flush().await;
            // Hold the connection until the client gives up (read returns 0 or an error).
            let mut tmp = [0u8; 64];
            while let Ok(n) = s.read(&mut tmp).await {
                if n == 0 {
                    break;
                }
            }
        }
        Act::Endless { head, chunk, total } => {
            if s.write_all(&head).await.is_err() {
                return;
            }
            let mut written = 0u64;
            while written < total {
                if s.write_all(&chunk).await.is_err() {
                    break;
                }
                written += chunk.len() as u64;
                stats
                    .endless_written
                    .fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            let _ = s.shutdown().await;
        }
    }
}

/// The client every chaos test uses: a real hyper-util legacy client.
pub fn client() -> Client<HttpConnector, ReplayBody<Full<Bytes>>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A small JSON request.
pub fn request(addr: SocketAddr) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("http://{addr}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            b"{\"model\":\"m\",\"stream\":true}",
        )))
        .unwrap()
}

/// Resident set size of this process, in bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}
