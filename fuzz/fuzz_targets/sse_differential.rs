//! The SSE parser against a plain transliteration of the WHATWG algorithm
//! (`tower_llm_errors_fuzz::interpret`), under an arbitrary chunking. Inputs stay far below the
//! parser's 1 MiB limits, so no limit error may appear.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tower_llm_errors::sse::Parser;
use tower_llm_errors_fuzz::{RefEvent, chunked, interpret};

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    let (chunks, payload) = chunked(data);
    let mut p = Parser::new();
    let mut got = Vec::new();
    let drain = |p: &mut Parser, got: &mut Vec<RefEvent>| {
        while let Some(r) = p.next_event() {
            let ev = r.expect("no limit can be hit below 64 KiB");
            got.push(RefEvent {
                event: ev.event().to_owned(),
                data: ev.data().to_owned(),
                id: ev.id().map(str::to_owned),
                retry: ev.retry(),
            });
        }
    };
    for c in &chunks {
        p.push(Bytes::copy_from_slice(c));
        drain(&mut p, &mut got);
    }
    p.finish();
    drain(&mut p, &mut got);
    let want = interpret(payload);
    assert_eq!(got, want.events, "events differ from the reference");
    assert_eq!(
        p.reconnection_time(),
        want.reconnect,
        "reconnection time differs"
    );
});
