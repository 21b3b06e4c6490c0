//! Property: the SSE parser's output does not depend on how the input is cut into chunks, with
//! the default limits and with tiny ones (the too-long and resynchronization paths).

use bytes::Bytes;
use proptest::prelude::*;
use tower_llm_errors::sse::Parser;

/// Everything the parser reports, as comparable values.
fn run(input: &[u8], cuts: &[usize], limits: Option<(usize, usize)>) -> Vec<String> {
    let mut p = match limits {
        Some((l, e)) => Parser::new().max_line_bytes(l).max_event_bytes(e),
        None => Parser::new(),
    };
    let mut out = Vec::new();
    let mut at = 0;
    let mut drain = |p: &mut Parser| {
        while let Some(r) = p.next_event() {
            out.push(match r {
                Ok(ev) => format!("{ev:?}"),
                Err(e) => format!(
                    "err line={} event={} limit={}",
                    e.is_line_too_long(),
                    e.is_event_too_long(),
                    e.limit()
                ),
            });
        }
    };
    for &cut in cuts {
        let end = cut.clamp(at, input.len());
        p.push(Bytes::copy_from_slice(&input[at..end]));
        drain(&mut p);
        at = end;
    }
    p.push(Bytes::copy_from_slice(&input[at..]));
    drain(&mut p);
    p.finish();
    drain(&mut p);
    out.push(format!(
        "end retry={:?} id={:?}",
        p.reconnection_time(),
        p.last_event_id()
    ));
    out
}

/// Streams made of SSE-significant pieces, so that most inputs have events in them.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"data: ".to_vec()),
        Just(b"data".to_vec()),
        Just(b"event: ".to_vec()),
        Just(b"id: ".to_vec()),
        Just(b"retry: ".to_vec()),
        Just(b":".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(vec![0xEF, 0xBB, 0xBF]),
        Just(vec![0xE2, 0x82]),
        Just(b"\0".to_vec()),
        "[a-z0-9 ]{0,12}".prop_map(String::into_bytes),
        "\\PC{0,4}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..6),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0usize..400, 0..20).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn chunking_does_not_matter(input in stream(), cuts in cuts()) {
        let whole = run(&input, &[], None);
        prop_assert_eq!(&run(&input, &cuts, None), &whole);
        // One byte at a time is the most extreme chunking.
        let every: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(&run(&input, &every, None), &whole);
    }

    #[test]
    fn chunking_does_not_matter_with_small_limits(
        input in stream(),
        cuts in cuts(),
        line in 1usize..24,
        event in 1usize..24,
    ) {
        let lim = Some((line, event));
        let whole = run(&input, &[], lim);
        prop_assert_eq!(&run(&input, &cuts, lim), &whole);
        let every: Vec<usize> = (1..input.len()).collect();
        prop_assert_eq!(&run(&input, &every, lim), &whole);
    }
}
