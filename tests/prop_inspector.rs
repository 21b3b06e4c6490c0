//! Property: the `SseErrorLayer` body (the passthrough inspector, with its fast path for long
//! chunks and its tiny-chunk path) finds exactly what a plain reference finds, under any
//! chunking.
//!
//! Streams are made of whole items (normal OpenAI and Anthropic events, comments and
//! keep-alives, `id`/`retry` blocks, content-filtered ends, in-band error events in several
//! dialects, Gemini's bare JSON documents, events whose text talks about errors), with LF, CR
//! or CR LF line ends and an optional leading BOM. The reference reads each item on its own:
//! an SSE item with [`Parser`] and [`ApiError::from_sse_event`], a bare JSON document with
//! `from_sse_event` on its text; the first error stops the stream at the end of its item, and
//! the first content-filtered end before that is recorded.

use bytes::Bytes;
use futures_util::stream;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use proptest::prelude::*;
use std::convert::Infallible;
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::sse::{Event, InBandReport, Parser, SseErrorLayer};
use tower_llm_errors::{ApiError, ErrorKind};

/// One item of a generated stream, before its line ends are chosen.
#[derive(Clone, Debug)]
enum Item {
    /// SSE lines; the item ends with a blank line.
    Block(Vec<String>),
    /// A comment line alone (a keep-alive), no blank line after it.
    Comment(String),
    /// A bare JSON document over one or more lines (not SSE at all).
    Bare(Vec<String>),
}

/// Texts for content deltas: plain words, and prose that mentions errors, refusals and
/// filters (escaped as JSON would have them) without being one.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-z ]{0,24}",
        1 => Just("an error occurred in the story".to_owned()),
        1 => Just(r#"the word \"error\" is just a word"#.to_owned()),
        1 => Just("SAFETY first, OTHER things later".to_owned()),
        1 => Just("a content filter and a refusal".to_owned()),
        1 => Just("response.failed is an event name".to_owned()),
    ]
}

/// Any item: mostly normal events, some framing, filters and errors.
fn item() -> impl Strategy<Value = Item> {
    prop_oneof![16 => normal(), 3 => special()]
}

/// A normal OpenAI or Anthropic delta event.
fn normal() -> impl Strategy<Value = Item> {
    let openai = text().prop_map(|t| {
        Item::Block(vec![format!(
            r#"data: {{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{{"index":0,"delta":{{"content":"{t}"}},"logprobs":null,"finish_reason":null}}]}}"#
        )])
    });
    let anthropic = text().prop_map(|t| {
        Item::Block(vec![
            "event: content_block_delta".to_owned(),
            format!(
                r#"data: {{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"{t}"}}}}"#
            ),
        ])
    });
    prop_oneof![openai, anthropic]
}

/// Framing, filtered ends and errors.
fn special() -> impl Strategy<Value = Item> {
    let lines = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    let fixed = prop_oneof![
        // Ordinary events and framing.
        Just(Item::Block(lines(&["data: [DONE]"]))),
        Just(Item::Block(lines(&["data:{\"x\":1}", "id: 7"]))),
        Just(Item::Block(lines(&["id: 8", "retry: 100"]))),
        Just(Item::Block(lines(&[
            ": comment in a block",
            "data: two",
            "data: lines"
        ]))),
        Just(Item::Block(lines(&[
            "data: the \"error\" word, as plain text"
        ]))),
        Just(Item::Block(lines(&["data: {\"note\":\"error\"}"]))),
        Just(Item::Block(lines(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}"
        ]))),
        Just(Item::Comment(": keep-alive".to_owned())),
        Just(Item::Comment(": OPENROUTER PROCESSING".to_owned())),
        Just(Item::Bare(lines(&[
            "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"hi\"}]}}]}"
        ]))),
    ];
    // Content-filtered ends: recorded, not failing.
    let filters = prop_oneof![
        Just(Item::Block(lines(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}"
        ]))),
        Just(Item::Block(lines(&[
            "event: message_delta",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"}}"
        ]))),
        prop::sample::select(vec![
            "SAFETY",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY"
        ])
        .prop_map(|r| Item::Block(vec![format!(
            "data: {{\"candidates\":[{{\"finishReason\":\"{r}\"}}]}}"
        )])),
        Just(Item::Block(lines(&[
            "data: {\"promptFeedback\":{\"blockReason\":\"OTHER\"}}"
        ]))),
        // Suspect for its event name only; the reason is read in full.
        Just(Item::Block(lines(&[
            "event: response.incomplete",
            "data: {\"promptFeedback\":{\"blockReason\":\"BLOCK_REASON_UNSPECIFIED\"}}"
        ]))),
    ];
    // Bare documents that only a full read finds (a block reason that none of the scan's
    // patterns names, an escaped key): only the line start tells that they are there.
    let bare = prop_oneof![
        Just(Item::Bare(lines(&[
            "{\"promptFeedback\":{\"blockReason\":\"BLOCK_REASON_UNSPECIFIED\"}}"
        ]))),
        Just(Item::Bare(lines(&[
            "[{\"promptFeedback\":{\"blockReason\":\"BLOCK_REASON_UNSPECIFIED\"}}]"
        ]))),
        Just(Item::Bare(lines(&[
            "{\"\\u0065\\u0072ror\":{\"code\":500,\"message\":\"escaped key\"}}"
        ]))),
    ];
    // In-band errors: rarer, so that many streams run to their end.
    let errors = prop_oneof![
        Just(Item::Block(lines(&[
            "data: {\"error\":{\"message\":\"the server broke\",\"type\":\"server_error\",\"code\":null}}"
        ]))),
        Just(Item::Block(lines(&[
            "event: error",
            "data: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"
        ]))),
        Just(Item::Block(lines(&[
            "event: error",
            "data: not json at all"
        ]))),
        Just(Item::Block(lines(&[
            "event: response.failed",
            "data: {\"type\":\"response.failed\",\"response\":{}}"
        ]))),
        Just(Item::Block(lines(&[
            "data: {\"error\":{\"code\":502,\"message\":\"upstream gone\"},\"choices\":[{\"finish_reason\":\"error\"}]}"
        ]))),
        Just(Item::Block(lines(&[
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"error\"}]}"
        ]))),
        Just(Item::Block(lines(&[
            "event: response.failed",
            "data: {\"type\":\"response.failed\",\"response\":{\"error\":{\"code\":\"server_error\",\"message\":\"failed\"}}}"
        ]))),
        Just(Item::Bare(lines(&[
            "{\"error\":{\"code\":503,\"message\":\"busy\",\"status\":\"UNAVAILABLE\"}}"
        ]))),
        Just(Item::Bare(lines(&[
            "{",
            "  \"error\": {",
            "    \"code\": 500,",
            "    \"message\": \"down\"",
            "  }",
            "}"
        ]))),
        Just(Item::Bare(lines(&[
            "[{\"error\":{\"code\":429,\"message\":\"slow down\"}}]"
        ]))),
    ];
    prop_oneof![6 => fixed, 3 => filters, 2 => bare, 1 => errors]
}

/// Line-end styles: mostly LF (so that long runs take the fast path), or any mix.
#[derive(Clone, Copy, Debug)]
enum Ends {
    Lf,
    Mixed,
}

/// Renders items; returns the bytes and where each item ends.
fn render(bom: bool, items: &[Item], ends: Ends, picks: &[u8]) -> (Vec<u8>, Vec<usize>) {
    let mut out = Vec::new();
    if bom {
        out.extend_from_slice(&[0xEF, 0xBB, 0xBF]);
    }
    let mut k = 0;
    let mut end_line = |out: &mut Vec<u8>, blank: bool| {
        let pick = picks[k % picks.len()];
        k += 1;
        let mut end: &[u8] = match (ends, pick % 3) {
            (Ends::Lf, _) | (Ends::Mixed, 0) => b"\n",
            (Ends::Mixed, 1) => b"\r",
            _ => b"\r\n",
        };
        // An empty line right after a lone CR must not start with LF: that LF would belong
        // to the CR.
        if blank && end == b"\n" && out.last() == Some(&b'\r') {
            end = b"\r";
        }
        out.extend_from_slice(end);
    };
    let mut item_ends = Vec::new();
    for item in items {
        match item {
            Item::Block(lines) => {
                for l in lines {
                    out.extend_from_slice(l.as_bytes());
                    end_line(&mut out, false);
                }
                end_line(&mut out, true);
            }
            Item::Comment(l) => {
                out.extend_from_slice(l.as_bytes());
                end_line(&mut out, false);
            }
            Item::Bare(lines) => {
                for l in lines {
                    out.extend_from_slice(l.as_bytes());
                    end_line(&mut out, false);
                }
            }
        }
        item_ends.push(out.len());
    }
    (out, item_ends)
}

/// What the reference expects: where the stream stops (with the error), and the first
/// content-filtered end before that.
struct Expected {
    stop: Option<(usize, ApiError)>,
    content_filter: Option<ApiError>,
}

fn reference(items: &[Item], bytes: &[u8], item_ends: &[usize]) -> Expected {
    let mut content_filter = None;
    let mut start = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        3
    } else {
        0
    };
    for (item, &end) in items.iter().zip(item_ends) {
        let found: Vec<ApiError> = match item {
            Item::Comment(_) => Vec::new(),
            Item::Block(_) => {
                let mut p = Parser::new();
                p.push(Bytes::copy_from_slice(&bytes[start..end]));
                p.finish();
                let mut found = Vec::new();
                while let Some(ev) = p.next_event() {
                    let ev = ev.expect("items are within the limits");
                    found.extend(ApiError::from_sse_event(&ev));
                }
                found
            }
            Item::Bare(lines) => ApiError::from_sse_event(&Event::new(lines.join("\n")))
                .into_iter()
                .collect(),
        };
        for e in found {
            if e.kind() == ErrorKind::ContentFiltered {
                content_filter.get_or_insert(e);
            } else {
                return Expected {
                    stop: Some((end, e)),
                    content_filter,
                };
            }
        }
        start = end;
    }
    Expected {
        stop: None,
        content_filter,
    }
}

/// Runs the chunks through the layer: the bytes passed on, the body error, the report.
fn drive(chunks: Vec<Bytes>) -> (Vec<u8>, Option<ApiError>, InBandReport) {
    drive_with(SseErrorLayer::new(), chunks)
}

fn drive_with(
    layer: SseErrorLayer,
    chunks: Vec<Bytes>,
) -> (Vec<u8>, Option<ApiError>, InBandReport) {
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service_fn(move |_req: Request<()>| {
            let frames: Vec<Result<Frame<Bytes>, Infallible>> =
                chunks.iter().cloned().map(|c| Ok(Frame::data(c))).collect();
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(StreamBody::new(stream::iter(frames)))
                        .unwrap(),
                )
            }
        });
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let res = svc.oneshot(Request::new(())).await.unwrap();
        let report = res.extensions().get::<InBandReport>().cloned().unwrap();
        let mut body = res.into_body();
        let mut bytes = Vec::new();
        let mut error = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => bytes.extend_from_slice(&f.into_data().unwrap()),
                Err(e) => {
                    error = Some(
                        e.downcast_ref::<ApiError>()
                            .expect("an in-band error downcasts to ApiError")
                            .clone(),
                    );
                    assert!(body.frame().await.is_none(), "nothing after the error");
                    break;
                }
            }
        }
        (bytes, error, report)
    })
}

/// Cuts `bytes` into chunks of the given sizes, cycling through them.
fn chunked(bytes: &[u8], sizes: &[usize]) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    while at < bytes.len() {
        let n = sizes[i % sizes.len()].max(1).min(bytes.len() - at);
        out.push(Bytes::copy_from_slice(&bytes[at..at + n]));
        at += n;
        i += 1;
    }
    out
}

fn same(a: &ApiError, b: &ApiError) -> bool {
    a.kind() == b.kind() && a.message() == b.message() && a.to_string() == b.to_string()
}

fn check(bytes: &[u8], chunks: Vec<Bytes>, want: &Expected) -> Result<(), TestCaseError> {
    let n = chunks.len();
    let (passed, error, report) = drive(chunks);
    match &want.stop {
        None => {
            prop_assert!(error.is_none(), "{n} chunks: unexpected {error:?}");
            prop_assert!(report.error().is_none());
            prop_assert_eq!(&passed[..], bytes, "{} chunks", n);
        }
        Some((cut, want_err)) => {
            let got = error.ok_or_else(|| TestCaseError::fail(format!("{n} chunks: no error")))?;
            prop_assert!(same(&got, want_err), "{n} chunks: {got:?} != {want_err:?}");
            prop_assert!(report.error().is_some_and(|r| same(r, want_err)));
            // An item that ends with CR LF, split between frames, is complete at the CR;
            // the LF (in the next frame) is not passed on.
            let cr_split = bytes[..*cut].ends_with(b"\r\n") && passed.len() + 1 == *cut;
            prop_assert!(
                passed == bytes[..*cut] || (cr_split && passed == bytes[..*cut - 1]),
                "{n} chunks: passed {} bytes, cut at {cut}",
                passed.len()
            );
        }
    }
    match (&want.content_filter, report.content_filtered()) {
        (None, None) => {}
        (Some(w), Some(g)) => prop_assert!(same(w, g), "{n} chunks: {g:?} != {w:?}"),
        (w, g) => prop_assert!(false, "{n} chunks: content filter {g:?}, want {w:?}"),
    }
    prop_assert!(report.limit_exceeded().is_none());
    Ok(())
}

/// Normal events with one special item among them: each pattern of the fast path's scan
/// is needed by some item here.
fn one_special_case() -> impl Strategy<Value = (bool, Vec<Item>, Ends, Vec<u8>)> {
    (
        any::<bool>(),
        prop::collection::vec(normal(), 2..40),
        special(),
        any::<prop::sample::Index>(),
        prop_oneof![3 => Just(Ends::Lf), 1 => Just(Ends::Mixed)],
        prop::collection::vec(any::<u8>(), 1..16),
    )
        .prop_map(|(bom, mut items, one, at, ends, picks)| {
            let at = at.index(items.len() + 1);
            items.insert(at, one);
            (bom, items, ends, picks)
        })
}

fn stream_case() -> impl Strategy<Value = (bool, Vec<Item>, Ends, Vec<u8>)> {
    (
        any::<bool>(),
        prop::collection::vec(item(), 0..48),
        prop_oneof![3 => Just(Ends::Lf), 1 => Just(Ends::Mixed)],
        prop::collection::vec(any::<u8>(), 1..16),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inspector_matches_the_reference_under_any_chunking(
        (bom, items, ends, picks) in stream_case(),
        tiny in prop::collection::vec(1usize..=8, 1..8),
        large in prop::collection::vec(1usize..=3000, 1..6),
    ) {
        let (bytes, item_ends) = render(bom, &items, ends, &picks);
        let want = reference(&items, &bytes, &item_ends);
        check(&bytes, vec![Bytes::copy_from_slice(&bytes)], &want)?;
        check(&bytes, chunked(&bytes, &tiny), &want)?;
        check(&bytes, chunked(&bytes, &large), &want)?;
        check(&bytes, chunked(&bytes, &[1]), &want)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn one_special_item_among_normal_events(
        (bom, items, ends, picks) in one_special_case(),
        large in prop::collection::vec(1usize..=3000, 1..6),
    ) {
        let (bytes, item_ends) = render(bom, &items, ends, &picks);
        let want = reference(&items, &bytes, &item_ends);
        check(&bytes, vec![Bytes::copy_from_slice(&bytes)], &want)?;
        check(&bytes, chunked(&bytes, &large), &want)?;
    }
}

/// Whether `passed` ends where a block may start: nothing, or an empty line.
fn at_block_boundary(passed: &[u8]) -> bool {
    let strip = |b: &[u8]| -> Option<usize> {
        match b {
            [.., b'\r', b'\n'] => Some(b.len() - 2),
            [.., b'\n' | b'\r'] => Some(b.len() - 1),
            _ => None,
        }
    };
    passed.is_empty()
        || passed == [0xEF, 0xBB, 0xBF]
        || strip(passed).is_some_and(|n| strip(&passed[..n]).is_some())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `withhold_error_event`: the same error, and the bytes passed on stop where the error's
    /// block starts (exactly so when the stream comes in one frame), or, when the block began
    /// in an earlier frame, where they stop without withholding. Never more.
    #[test]
    fn withheld_error_events_are_cut_at_their_block_start(
        (bom, items, ends, picks) in one_special_case(),
        large in prop::collection::vec(1usize..=3000, 1..6),
        tiny in prop::collection::vec(1usize..=8, 1..8),
    ) {
        let (bytes, item_ends) = render(bom, &items, ends, &picks);
        let want = reference(&items, &bytes, &item_ends);
        let Some((cut, want_err)) = &want.stop else {
            return Ok(());
        };
        let k = item_ends.iter().position(|e| e == cut).expect("the stop ends an item");
        // Comments and bare documents join the block after them: the block starts after the
        // last `Block` item before the error's.
        let block_start = (0..k)
            .rev()
            .find(|&j| matches!(items[j], Item::Block(_)))
            .map_or(0, |j| item_ends[j]);
        let chunkings = [
            vec![Bytes::copy_from_slice(&bytes)],
            chunked(&bytes, &large),
            chunked(&bytes, &tiny),
        ];
        for (i, chunks) in chunkings.into_iter().enumerate() {
            let layer = SseErrorLayer::new().withhold_error_event();
            let (passed, error, report) = drive_with(layer, chunks);
            let got = error.ok_or_else(|| TestCaseError::fail("no error"))?;
            prop_assert!(same(&got, want_err), "{got:?} != {want_err:?}");
            prop_assert!(report.error().is_some_and(|r| same(r, want_err)));
            prop_assert!(passed.len() <= *cut && passed[..] == bytes[..passed.len()]);
            let cr_split = bytes[..*cut].ends_with(b"\r\n") && passed.len() + 1 == *cut;
            let unwithheld = passed.len() == *cut || cr_split;
            if i == 0 && matches!(items[k], Item::Block(_)) {
                prop_assert_eq!(passed.len(), block_start, "one frame: cut at the block start");
            } else {
                prop_assert!(
                    unwithheld || (passed.len() <= block_start.max(3) && at_block_boundary(&passed)),
                    "chunking {i}: passed {} bytes, block starts at {block_start}, cut at {cut}",
                    passed.len()
                );
            }
        }
    }
}
