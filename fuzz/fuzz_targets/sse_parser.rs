//! The SSE parser on arbitrary bytes under an arbitrary chunking, with small limits so that the
//! too-long paths run too. Checks that it never panics, stays within its limits, terminates, and
//! that the result does not depend on the chunking when no limit is hit.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tower_llm_errors::sse::Parser;

fn run(chunks: &[&[u8]], limits: Option<(usize, usize)>) -> Vec<Result<String, (bool, bool)>> {
    let mut p = match limits {
        Some((line, event)) => Parser::new().max_line_bytes(line).max_event_bytes(event),
        None => Parser::new(),
    };
    let (max_line, max_event) = limits.unwrap_or((usize::MAX, usize::MAX));
    let mut out = Vec::new();
    let drain = |p: &mut Parser, out: &mut Vec<_>| {
        while let Some(r) = p.next_event() {
            match r {
                Ok(ev) => {
                    assert!(ev.data().len() <= max_event);
                    out.push(Ok(format!("{ev:?}")));
                }
                Err(e) => out.push(Err((e.is_line_too_long(), e.is_event_too_long()))),
            }
            // Bounded: the parser's own buffers never exceed line + event limits (plus slack
            // for one allocation rounding).
            if limits.is_some() {
                assert!(p.buffered_len() <= max_line.saturating_add(max_event));
            }
        }
    };
    for c in chunks {
        p.push(Bytes::copy_from_slice(c));
        drain(&mut p, &mut out);
    }
    p.finish();
    drain(&mut p, &mut out);
    assert!(p.next_event().is_none());
    out
}

fuzz_target!(|data: &[u8]| {
    let (chunks, payload) = tower_llm_errors_fuzz::chunked(data);
    // Default limits: must equal the one-chunk run.
    let a = run(&chunks, None);
    let b = run(&[payload], None);
    assert_eq!(a, b, "result depends on chunking");
    // Tiny limits: exercise the too-long and resynchronization paths; also chunking-independent.
    let lim = Some((usize::from(data.first().copied().unwrap_or(0) % 32) + 1, 24));
    let c = run(&chunks, lim);
    let d = run(&[payload], lim);
    assert_eq!(c, d, "limited result depends on chunking");
});
