//! The event-stream parser: every rule of the WHATWG algorithm, the web-platform-tests
//! `eventsource/format-*` cases, limits, and identical results under every chunking.

use bytes::Bytes;
use std::time::Duration;
use tower_llm_errors::sse::{Event, Parser};

/// What the parser produced, in a comparable form.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    /// (type, data, id, retry in ms)
    Ev(String, String, Option<String>, Option<u64>),
    LineTooLong,
    EventTooLong,
}

fn out(e: &Event) -> Out {
    Out::Ev(
        e.event().to_owned(),
        e.data().to_owned(),
        e.id().map(str::to_owned),
        e.retry().map(|d| d.as_millis() as u64),
    )
}

/// The outcome of a whole run: the items, then the final reconnection time and last event id.
type Run = (Vec<Out>, Option<Duration>, Option<String>);

fn run_with(make: &dyn Fn() -> Parser, chunks: &[&[u8]]) -> Run {
    let mut p = make();
    let mut v = Vec::new();
    let drain = |p: &mut Parser, v: &mut Vec<Out>| {
        while let Some(r) = p.next_event() {
            v.push(match r {
                Ok(e) => out(&e),
                Err(e) if e.is_line_too_long() => Out::LineTooLong,
                Err(e) if e.is_event_too_long() => Out::EventTooLong,
                Err(e) => panic!("unexpected error {e}"),
            });
        }
    };
    for c in chunks {
        p.push(Bytes::copy_from_slice(c));
        drain(&mut p, &mut v);
    }
    p.finish();
    drain(&mut p, &mut v);
    assert_eq!(p.buffered_len(), 0, "state left after finish");
    (
        v,
        p.reconnection_time(),
        p.last_event_id().map(str::to_owned),
    )
}

/// Runs `input` whole, in 1-byte chunks and under every 2-way split, and checks that every run
/// gives `expected`. Returns the run for further checks.
fn check_with(make: &dyn Fn() -> Parser, input: &[u8], expected: &[Out]) -> Run {
    let whole = run_with(make, &[input]);
    assert_eq!(
        whole.0,
        expected,
        "whole input {:?}",
        String::from_utf8_lossy(input)
    );
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_with(make, &bytes), whole, "1-byte chunks");
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(run_with(make, &[a, b]), whole, "split at {i}");
    }
    whole
}

fn check(input: &[u8], expected: &[Out]) -> Run {
    check_with(&Parser::new, input, expected)
}

fn ev(data: &str) -> Out {
    Out::Ev("message".into(), data.into(), None, None)
}
fn typed(t: &str, data: &str) -> Out {
    Out::Ev(t.into(), data.into(), None, None)
}
fn with_id(data: &str, id: &str) -> Out {
    Out::Ev("message".into(), data.into(), Some(id.into()), None)
}
fn with_retry(data: &str, ms: u64) -> Out {
    Out::Ev("message".into(), data.into(), None, Some(ms))
}

/// Table of spec rules: name, input, expected events.
macro_rules! rules {
    ($($name:ident: $input:expr => [$($e:expr),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            check($input, &[$($e),*]);
        }
    )*};
}

rules! {
    lf_line_ends: b"data: a\n\ndata: b\n\n" => [ev("a"), ev("b")];
    crlf_line_ends: b"data: a\r\n\r\ndata: b\r\n\r\n" => [ev("a"), ev("b")];
    cr_line_ends: b"data: a\r\rdata: b\r\r" => [ev("a"), ev("b")];
    mixed_line_ends: b"data: a\rdata: b\ndata: c\r\n\n" => [ev("a\nb\nc")];
    cr_then_lf_is_one_line_end: b"data: a\r\n\r\n" => [ev("a")];
    lf_cr_is_two_line_ends: b"data: a\n\rdata: b\n\n" => [ev("a"), ev("b")];
    leading_bom_is_stripped: b"\xEF\xBB\xBFdata: a\n\n" => [ev("a")];
    second_bom_is_kept: b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\ndata: b\n\n" => [ev("b")];
    partial_bom_is_text: b"\xEF\xBBdata: a\n\ndata: b\n\n" => [ev("b")];
    bom_later_in_stream_is_text: b"data: a\xEF\xBB\xBF\n\n" => [ev("a\u{FEFF}")];
    invalid_utf8_becomes_replacement: b"data: a\xFFb\xE2\x82\n\n" => [ev("a\u{FFFD}b\u{FFFD}")];
    invalid_utf8_in_event_type: b"event: x\xC3\ndata: a\n\n" => [typed("x\u{FFFD}", "a")];
    comment_is_ignored: b": hello\ndata: a\n: bye\n\n" => [ev("a")];
    comment_only_block_dispatches_nothing: b": ping\n\n: OPENROUTER PROCESSING\n\ndata: a\n\n" => [ev("a")];
    field_without_colon_has_empty_value: b"data\n\n" => [ev("")];
    two_empty_data_lines: b"data\ndata\n\n" => [ev("\n")];
    one_space_removed: b"data: a\n\n" => [ev("a")];
    no_space_after_colon: b"data:a\n\n" => [ev("a")];
    only_one_space_removed: b"data:  a\n\n" => [ev(" a")];
    tab_is_not_removed: b"data:\ta\n\n" => [ev("\ta")];
    colon_in_value_is_kept: b"data: a: b\n\n" => [ev("a: b")];
    data_lines_joined_with_lf: b"data: a\ndata: b\ndata: c\n\n" => [ev("a\nb\nc")];
    trailing_empty_data_line: b"data: a\ndata:\n\n" => [ev("a\n")];
    event_type_set: b"event: add\ndata: a\n\n" => [typed("add", "a")];
    event_type_reset_after_dispatch: b"event: add\ndata: a\n\ndata: b\n\n" => [typed("add", "a"), ev("b")];
    event_type_reset_even_without_dispatch: b"event: add\n\ndata: b\n\n" => [ev("b")];
    empty_event_type_is_message: b"event:\ndata: a\n\n" => [ev("a")];
    last_event_type_wins: b"event: a\nevent: b\ndata: x\n\n" => [typed("b", "x")];
    id_persists: b"id: 7\ndata: a\n\ndata: b\n\n" => [with_id("a", "7"), with_id("b", "7")];
    empty_id_resets: b"id: 7\ndata: a\n\nid\ndata: b\n\n" => [with_id("a", "7"), ev("b")];
    id_with_nul_is_ignored: b"id: 7\ndata: a\n\nid: 8\x009\ndata: b\n\n" => [with_id("a", "7"), with_id("b", "7")];
    id_in_non_dispatching_block_persists: b"id: 3\n\ndata: a\n\n" => [with_id("a", "3")];
    retry_digits_applied: b"retry: 1500\ndata: a\n\n" => [with_retry("a", 1500)];
    retry_with_leading_zeros: b"retry:03000\ndata: a\n\n" => [with_retry("a", 3000)];
    retry_not_digits_ignored: b"retry: 15x\ndata: a\n\n" => [ev("a")];
    retry_negative_ignored: b"retry: -1\ndata: a\n\n" => [ev("a")];
    retry_empty_ignored: b"retry\ndata: a\n\n" => [ev("a")];
    retry_with_space_ignored: b"retry: 1 0\ndata: a\n\n" => [ev("a")];
    empty_data_buffer_no_dispatch: b"event: x\nid: 1\n\n\n\n" => [];
    unknown_field_ignored: b"foo: bar\ndata: a\n\n" => [ev("a")];
    field_names_are_case_sensitive: b"Data: a\nDATA: b\ndata: c\n\n" => [ev("c")];
    field_name_with_space_ignored: b" data: a\ndata : b\ndata: c\n\n" => [ev("c")];
    incomplete_event_discarded: b"data: a\n\ndata: b\n" => [ev("a")];
    unterminated_line_discarded: b"data: a\n\ndata: b" => [ev("a")];
    nul_in_data_kept: b"data: a\x00b\n\n" => [ev("a\0b")];
    empty_input: b"" => [];
}

#[test]
fn retry_applies_even_when_nothing_is_dispatched() {
    let run = check(b"retry: 250\n\n: nothing else\n", &[]);
    assert_eq!(run.1, Some(Duration::from_millis(250)));
}

#[test]
fn retry_huge_value_saturates() {
    let run = check(b"retry: 99999999999999999999999\n\n", &[]);
    assert_eq!(run.1, Some(Duration::from_millis(u64::MAX)));
}

#[test]
fn last_event_id_is_tracked() {
    let run = check(b"id: abc\n\n", &[]);
    assert_eq!(run.2.as_deref(), Some("abc"));
}

#[test]
fn cr_at_chunk_end_ends_the_line_at_once() {
    let mut p = Parser::new();
    p.push(Bytes::from_static(b"data: a\r\r"));
    assert_eq!(p.next_event().unwrap().unwrap().data(), "a");
    // The LF that follows belongs to the previous CR: it is not a second empty line.
    p.push(Bytes::from_static(b"\ndata: b\r"));
    assert!(p.next_event().is_none());
    p.push(Bytes::from_static(b"\n\r\n"));
    assert_eq!(p.next_event().unwrap().unwrap().data(), "b");
}

#[test]
fn whole_lines_share_the_input_buffer() {
    let input = Bytes::from_static(b"data: hello\n\n");
    let mut p = Parser::new();
    p.push(input.clone());
    let e = p.next_event().unwrap().unwrap();
    let data = e.data_bytes();
    let start = data.as_ptr() as usize - input.as_ptr() as usize;
    assert_eq!(start, 6, "data is a slice of the input, not a copy");
}

// web-platform-tests eventsource/format-*: the inputs and expected outcomes of those tests,
// written out as our own cases.
rules! {
    wpt_format_bom: "\u{FEFF}data: 1\n\n\u{FEFF}data: 2\n\ndata: 3\n\n".as_bytes() => [ev("1"), ev("3")];
    wpt_format_bom_2: "\u{FEFF}\u{FEFF}data: 1\n\ndata: 2\n\ndata: 3\n\n".as_bytes() => [ev("2"), ev("3")];
    wpt_format_field_data: b"data:\n\ndata\ndata\n\ndata:test\n\n" => [ev(""), ev("\n"), ev("test")];
    wpt_format_field_event: b"event:test\ndata:x\n\ndata:x\n\n" => [typed("test", "x"), ev("x")];
    wpt_format_field_event_empty: b"event: \ndata:data\n\n" => [ev("data")];
    wpt_format_field_id: b"id: 1\ndata: x\n\nid\ndata: x\n\n" => [with_id("x", "1"), ev("x")];
    wpt_format_field_id_2: b"id: 1\n\ndata: x\n\nid\n\ndata: x\n\n" => [with_id("x", "1"), ev("x")];
    wpt_format_field_id_null: b"id: 1\ndata: a\n\nid: 2\x00x\ndata: b\n\n" => [with_id("a", "1"), with_id("b", "1")];
    wpt_format_field_parsing: b"data:\x00\ndata:  2\rData:1\ndata\x00:2\ndata:1\r\x00data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n"
        => [ev("\0\n 2\n1\n3\n\n4")];
    wpt_format_field_retry_bogus: b"retry:3000\nretry:1000x\ndata:x\n\n" => [with_retry("x", 3000)];
    wpt_format_field_retry_empty: b"retry\ndata:test\n\n" => [ev("test")];
    wpt_format_field_retry: b"retry:03000\ndata:x\n\n" => [with_retry("x", 3000)];
    wpt_format_field_unknown: b"data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n" => [ev("test\n\ntest")];
    wpt_format_leading_space: b"data:\x20\x20test\n\n" => [ev(" test")];
    wpt_format_newlines: b"data:test\r\ndata\ndata:test\r\n\r\n" => [ev("test\n\ntest")];
    wpt_format_null_character: b"data:\x00\n\n\n\n" => [ev("\0")];
    wpt_format_utf_8: "data:ok\u{20AC}\n\n".as_bytes() => [ev("ok\u{20AC}")];
    wpt_format_data_before_final_empty_line: b"retry:1000\ndata:test1\n\nid:test\ndata:test2" => [with_retry("test1", 1000)];
}

#[test]
fn wpt_format_comments() {
    let long = "x".repeat(2049);
    let input =
        format!("data:1\r:\0\n:\r\ndata:2\n:{long}\rdata:3\n:data:fail\r:{long}\ndata:4\n\n");
    check(input.as_bytes(), &[ev("1\n2\n3\n4")]);
}

fn small() -> Parser {
    Parser::new().max_line_bytes(8).max_event_bytes(12)
}

#[test]
fn line_limit_is_inclusive() {
    // "data: 12" is exactly 8 bytes.
    check_with(&small, b"data: 12\n\n", &[ev("12")]);
}

#[test]
fn too_long_line_errors_then_resynchronizes_after_the_block() {
    check_with(
        &small,
        b"data: 123456789\ndata: b\n\ndata: c\n\n",
        &[Out::LineTooLong, ev("c")],
    );
    check_with(
        &small,
        b"id: 1\n: 1234567890\ndata: x\n\ndata: c\n\n",
        &[Out::LineTooLong, with_id("c", "1")],
    );
}

fn small_event() -> Parser {
    Parser::new().max_line_bytes(100).max_event_bytes(12)
}

#[test]
fn too_long_event_errors_then_resynchronizes() {
    check_with(
        &small_event,
        b"data: 1234\ndata: 5678\ndata: 901\n\ndata: ok\n\n",
        &[Out::EventTooLong, ev("ok")],
    );
    // Exactly 12 bytes of data is accepted: "1234\n5678\n12".
    check_with(
        &small_event,
        b"data: 1234\ndata: 5678\ndata: 12\n\n",
        &[ev("1234\n5678\n12")],
    );
}

#[test]
fn endless_line_keeps_memory_bounded() {
    let limit = 1024 * 1024;
    let mut p = Parser::new();
    let chunk = Bytes::from(vec![b'a'; 64 * 1024]);
    p.push(Bytes::from_static(b"data: "));
    let mut errors = 0;
    // 20 MiB without a line end.
    for _ in 0..320 {
        p.push(chunk.clone());
        while let Some(r) = p.next_event() {
            let e = r.expect_err("no event can come out of one endless line");
            assert!(e.is_line_too_long());
            assert_eq!(e.limit(), limit);
            errors += 1;
        }
        assert!(p.buffered_len() <= limit);
        assert!(p.buffered_capacity() <= limit, "{}", p.buffered_capacity());
    }
    assert_eq!(errors, 1, "one error, then the rest of the line is skipped");
    assert_eq!(p.buffered_len(), 0);
    p.push(Bytes::from_static(b"\n\ndata: next\n\n"));
    assert_eq!(p.next_event().unwrap().unwrap().data(), "next");
}

#[test]
fn many_small_events_reuse_buffers() {
    // Lines always spanning chunks: the line buffer stays small.
    let one = b"event: delta\ndata: {\"text\":\"hi\"}\n\n";
    let mut p = Parser::new();
    for _ in 0..1000 {
        for c in one.chunks(3) {
            p.push(Bytes::copy_from_slice(c));
            while let Some(e) = p.next_event() {
                let e = e.unwrap();
                assert_eq!(e.event(), "delta");
            }
        }
    }
    assert!(p.buffered_capacity() < 4096);
}

#[test]
fn push_after_finish_is_ignored() {
    let mut p = Parser::new();
    p.finish();
    p.push(Bytes::from_static(b"data: a\n\n"));
    assert!(p.next_event().is_none());
    assert!(p.is_finished());
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any input under any 3-way chunking gives what the whole input gives.
        #[test]
        fn chunking_never_changes_the_result(
            input in proptest::collection::vec(
                prop_oneof![
                    Just(b'\n'), Just(b'\r'), Just(b':'), Just(b' '), Just(0xEF), Just(0xBB),
                    Just(0xBF), Just(0xFF), Just(b'd'), Just(b'a'), Just(b't'), Just(b'i'),
                    Just(b'e'), Just(b'v'), Just(b'n'), Just(b'r'), Just(b'y'), Just(b'1'),
                ],
                0..64,
            ),
            a in 0usize..64,
            b in 0usize..64,
        ) {
            let mut cuts = [a.min(input.len()), b.min(input.len())];
            cuts.sort();
            let parts = [&input[..cuts[0]], &input[cuts[0]..cuts[1]], &input[cuts[1]..]];
            prop_assert_eq!(run_with(&Parser::new, &parts), run_with(&Parser::new, &[&input]));
            let small = || Parser::new().max_line_bytes(5).max_event_bytes(7);
            prop_assert_eq!(run_with(&small, &parts), run_with(&small, &[&input]));
        }
    }
}

/// Found by the `sse_parser` fuzz target: data within the event limit as received but over it
/// as text (each invalid byte becomes a three-byte U+FFFD) is a too-long event, under every
/// chunking, and the next event is read as usual.
#[test]
fn event_limit_counts_the_text_after_replacement() {
    let make = || Parser::new().max_line_bytes(26).max_event_bytes(24);
    let mut input = b"data:".to_vec();
    input.extend_from_slice(&[0xFF; 8]);
    input.extend_from_slice(b"\x1f\r\rdata: ok\n\n");
    check_with(&make, &input, &[Out::EventTooLong, ev("ok")]);
    // Seven invalid bytes: 21 bytes of text plus one, within the limit.
    let mut input = b"data:".to_vec();
    input.extend_from_slice(&[0xFF; 7]);
    input.extend_from_slice(b"\x1f\r\r");
    let text = format!("{}\u{1f}", "\u{FFFD}".repeat(7));
    check_with(&make, &input, &[ev(&text)]);
}
