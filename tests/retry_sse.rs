//! Retry before the first event: the retry layer holding `200 text/event-stream` responses.
//!
//! The rules are driven with `service_fn` upstreams on tokio's paused clock; the end-to-end
//! cases use a real hyper server on 127.0.0.1 and a hyper-util client, with and without
//! `SseErrorLayer` below the retry layer.

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::{body::Incoming, server::conn::http1, service::service_fn as hyper_service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use std::{
    collections::VecDeque,
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt, retry::budget::TpsBudget};
use tower_llm_errors::{
    ApiError, BoxError, ErrorKind,
    error::HintSource,
    retry::{ReplayBody, RetryError, RetryLayer},
    sse::{InBandReport, SseErrorLayer},
};

// Streams, in our own words, in the shapes the vendors document.
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
const OVERLOADED_FIRST: &[u8] = b": ping\n\nevent: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"busy right now\"}}\n\n";
const QUOTA_FIRST: &[u8] = b"data: {\"error\":{\"message\":\"out of credit\",\"type\":\"insufficient_quota\",\"code\":\"insufficient_quota\"}}\n\ndata: [DONE]\n\n";
const GOOD: &[u8] = b": ping\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n";
const LATE_ERROR_OK_PART: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"upstream broke\",\"code\":502}}\n\n";
const LATE_ERROR_TAIL: &[u8] = b"data: [DONE]\n\n";
const GEMINI_HINT_FIRST: &[u8] = b"data: {\"error\":{\"code\":503,\"message\":\"try later\",\"status\":\"UNAVAILABLE\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"3s\"}]}}\n\n";

type Chunk = Result<Frame<Bytes>, BoxError>;
type TestBody = StreamBody<Pin<Box<dyn futures_util::Stream<Item = Chunk> + Send>>>;

/// One piece of a scripted response body.
#[derive(Clone)]
enum Piece {
    Data(&'static [u8]),
    /// Sleeps (on the paused clock) before the next piece.
    Wait(Duration),
    /// The body fails with this error.
    Fail(fn() -> BoxError),
}

/// A scripted body: the pieces in order, then the end.
fn scripted(pieces: Vec<Piece>) -> TestBody {
    let stream = futures_util::stream::unfold(pieces.into_iter(), |mut it| async move {
        loop {
            match it.next()? {
                Piece::Data(d) => return Some((Ok(Frame::data(Bytes::from_static(d))), it)),
                Piece::Wait(d) => tokio::time::sleep(d).await,
                Piece::Fail(f) => return Some((Err(f()), it)),
            }
        }
    });
    StreamBody::new(Box::pin(stream))
}

/// `bytes` cut into the given chunk sizes (the last chunk takes the rest).
fn chunked(bytes: &'static [u8], sizes: &[usize]) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut rest = bytes;
    for &n in sizes {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(Piece::Data(a));
        rest = b;
    }
    if !rest.is_empty() {
        out.push(Piece::Data(rest));
    }
    out
}

fn one_byte_chunks(bytes: &'static [u8]) -> Vec<Piece> {
    bytes.chunks(1).map(Piece::Data).collect()
}

/// An upstream that answers each call with the next script (a `200 text/event-stream`), and
/// counts calls.
#[derive(Clone)]
struct Upstream {
    scripts: Arc<Mutex<VecDeque<Vec<Piece>>>>,
    calls: Arc<Mutex<u32>>,
}

impl Upstream {
    fn new(scripts: Vec<Vec<Piece>>) -> Upstream {
        Upstream {
            scripts: Arc::new(Mutex::new(scripts.into())),
            calls: Arc::new(Mutex::new(0)),
        }
    }

    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<ReplayBody<Full<Bytes>>>,
        Response = Response<TestBody>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        let this = self.clone();
        tower::service_fn(move |_req: Request<ReplayBody<Full<Bytes>>>| {
            let this = this.clone();
            async move {
                *this.calls.lock().unwrap() += 1;
                let pieces = this.scripts.lock().unwrap().pop_front().unwrap_or_default();
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream; charset=utf-8")
                        .body(scripted(pieces))
                        .unwrap(),
                )
            }
        })
    }
}

fn request() -> Request<Full<Bytes>> {
    Request::post("http://llm.test/v1/chat/completions")
        .body(Full::new(Bytes::from_static(b"{\"stream\":true}")))
        .unwrap()
}

fn fast() -> RetryLayer {
    RetryLayer::new().base_delay(Duration::from_millis(10))
}

/// Reads a body to its end: every byte, and the error that ended it, if any.
async fn read_all<B>(body: B) -> (Bytes, Option<BoxError>)
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut out = BytesMut::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Err(e) => return (out.freeze(), Some(e.into())),
        }
    }
    (out.freeze(), None)
}

/// The late-error stream whole.
fn late_full() -> &'static [u8] {
    concat(&[LATE_ERROR_OK_PART, LATE_ERROR_TAIL]).leak()
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// The retry decisions as `on_retry` saw them: (kind, delay, hint).
type Log = Arc<Mutex<Vec<(Option<ErrorKind>, Duration, Option<Duration>)>>>;

fn logged(layer: RetryLayer) -> (RetryLayer, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let layer = layer.on_retry(move |info| {
        l.lock()
            .unwrap()
            .push((info.kind(), info.delay(), info.hint()))
    });
    (layer, log)
}

/// Each case: the first attempt's script, whether it is retried, and the kind `on_retry` sees.
macro_rules! first_attempt_cases {
    ($($name:ident: $first:expr => $retried:expr, $kind:expr;)*) => {$(
        #[tokio::test(start_paused = true)]
        async fn $name() {
            let first: Vec<Piece> = $first;
            let upstream = Upstream::new(vec![first.clone(), vec![Piece::Data(GOOD)]]);
            let (layer, log) = logged(fast());
            let svc = ServiceBuilder::new().layer(layer).service(upstream.service());
            let resp = svc.oneshot(request()).await.unwrap();
            let (bytes, err) = read_all(resp.into_body()).await;
            let retried: bool = $retried;
            assert_eq!(upstream.calls(), if retried { 2 } else { 1 });
            if retried {
                assert!(err.is_none());
                assert_eq!(&bytes[..], GOOD, "the caller sees only the second attempt");
                let kinds: Vec<_> = log.lock().unwrap().iter().map(|e| e.0).collect();
                assert_eq!(kinds, [Some($kind)]);
            } else {
                // The first response as it came: its bytes, then its error if it failed.
                assert!(log.lock().unwrap().is_empty());
                let sent: Vec<u8> = first
                    .iter()
                    .filter_map(|p| match p {
                        Piece::Data(d) => Some(*d),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .concat();
                assert_eq!(&bytes[..], &sent[..]);
                let failed = first.iter().any(|p| matches!(p, Piece::Fail(_)));
                assert_eq!(err.is_some(), failed, "{err:?}");
            }
        }
    )*};
}

first_attempt_cases! {
    in_band_error_first_is_retried:
        vec![Piece::Data(OVERLOADED_FIRST)] => true, ErrorKind::Overloaded;
    in_band_error_first_in_one_byte_chunks_is_retried:
        one_byte_chunks(OVERLOADED_FIRST) => true, ErrorKind::Overloaded;
    keepalives_then_end_is_retried_as_no_content:
        vec![Piece::Data(KEEPALIVE), Piece::Data(KEEPALIVE)] => true, ErrorKind::ServiceUnavailable;
    empty_stream_is_retried_as_no_content:
        vec![] => true, ErrorKind::ServiceUnavailable;
    id_and_retry_only_blocks_are_no_event:
        vec![Piece::Data(b"id: 7\nretry: 100\n\nevent: ping\n\n")] => true, ErrorKind::ServiceUnavailable;
    an_incomplete_error_event_at_the_end_still_counts:
        vec![Piece::Data(b"data: {\"error\":{\"message\":\"gone\",\"code\":500}}\n")] => true, ErrorKind::ServerError;
    done_alone_is_an_event_and_is_not_retried:
        vec![Piece::Data(b"data: [DONE]\n\n")] => false, ErrorKind::Unknown;
    a_good_first_event_is_not_retried:
        vec![Piece::Data(GOOD)] => false, ErrorKind::Unknown;
    a_body_failing_with_an_api_error_before_any_event_is_retried:
        vec![Piece::Data(KEEPALIVE), Piece::Fail(|| Box::new(ApiError::new(ErrorKind::Overloaded, "typed")))]
            => true, ErrorKind::Overloaded;
    a_body_failing_otherwise_before_any_event_is_not_retried:
        vec![Piece::Data(KEEPALIVE), Piece::Fail(|| "socket went away".into())] => false, ErrorKind::Unknown;
}

#[tokio::test(start_paused = true)]
async fn first_event_normal_then_a_later_error_is_not_retried() {
    let upstream = Upstream::new(vec![
        one_byte_chunks(LATE_ERROR_OK_PART)
            .into_iter()
            .chain([Piece::Data(LATE_ERROR_TAIL)])
            .collect(),
        vec![Piece::Data(GOOD)],
    ]);
    let svc = ServiceBuilder::new()
        .layer(fast())
        .layer(SseErrorLayer::new())
        .service(upstream.service());
    let resp = svc.oneshot(request()).await.unwrap();
    assert!(resp.extensions().get::<InBandReport>().is_some());
    let (bytes, err) = read_all(resp.into_body()).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(
        &bytes[..],
        LATE_ERROR_OK_PART,
        "each byte once, up to the error event"
    );
    let err = err.expect("the body ends with the in-band error");
    let api = err.downcast_ref::<ApiError>().expect("an ApiError");
    assert_eq!(api.message(), "upstream broke");
}

#[tokio::test(start_paused = true)]
async fn the_sse_layer_below_failing_on_the_first_event_is_retried() {
    let upstream = Upstream::new(vec![
        one_byte_chunks(OVERLOADED_FIRST),
        vec![Piece::Data(GOOD)],
    ]);
    let svc = ServiceBuilder::new()
        .layer(fast())
        .layer(SseErrorLayer::new())
        .service(upstream.service());
    let resp = svc.oneshot(request()).await.unwrap();
    let (bytes, err) = read_all(resp.into_body()).await;
    assert!(err.is_none());
    assert_eq!(upstream.calls(), 2);
    assert_eq!(&bytes[..], GOOD);
}

/// A quota error is not retryable: the caller gets the stream and can read the event (and,
/// with `SseErrorLayer` below, the typed error after it).
#[tokio::test(start_paused = true)]
async fn non_retryable_in_band_first_error_reaches_the_caller() {
    for with_sse in [false, true] {
        let upstream = Upstream::new(vec![one_byte_chunks(QUOTA_FIRST), vec![Piece::Data(GOOD)]]);
        let (layer, log) = logged(fast());
        let (bytes, err) = if with_sse {
            let svc = ServiceBuilder::new()
                .layer(layer)
                .layer(SseErrorLayer::new())
                .service(upstream.service());
            read_all(svc.oneshot(request()).await.unwrap().into_body()).await
        } else {
            let svc = ServiceBuilder::new()
                .layer(layer)
                .service(upstream.service());
            read_all(svc.oneshot(request()).await.unwrap().into_body()).await
        };
        assert_eq!(upstream.calls(), 1);
        assert!(log.lock().unwrap().is_empty());
        let event_end = QUOTA_FIRST.len() - b"data: [DONE]\n\n".len();
        if with_sse {
            assert_eq!(&bytes[..], &QUOTA_FIRST[..event_end]);
            let err = err.unwrap();
            let api = err.downcast_ref::<ApiError>().unwrap();
            assert_eq!(api.kind(), ErrorKind::QuotaExceeded);
        } else {
            assert_eq!(&bytes[..], QUOTA_FIRST);
            assert!(err.is_none());
        }
    }
}

/// Retries exhausted: the last response comes as it came, its error event readable.
#[tokio::test(start_paused = true)]
async fn exhausted_retries_hand_on_the_last_stream() {
    let upstream = Upstream::new(vec![
        vec![Piece::Data(OVERLOADED_FIRST)],
        one_byte_chunks(OVERLOADED_FIRST),
    ]);
    let svc = ServiceBuilder::new()
        .layer(fast().max_retries(1))
        .layer(SseErrorLayer::new())
        .service(upstream.service());
    let (bytes, err) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 2);
    assert_eq!(&bytes[..], OVERLOADED_FIRST);
    let err = err.unwrap();
    assert_eq!(
        err.downcast_ref::<ApiError>().unwrap().kind(),
        ErrorKind::Overloaded
    );
}

#[tokio::test(start_paused = true)]
async fn hold_first_event_false_passes_streams_through() {
    let upstream = Upstream::new(vec![vec![Piece::Data(OVERLOADED_FIRST)]]);
    let svc = ServiceBuilder::new()
        .layer(fast().hold_first_event(false))
        .service(upstream.service());
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(&bytes[..], OVERLOADED_FIRST);
}

#[tokio::test(start_paused = true)]
async fn first_event_timeout_is_a_retryable_failure() {
    let slow = vec![
        Piece::Data(KEEPALIVE),
        Piece::Wait(Duration::from_secs(3)),
        Piece::Data(GOOD),
    ];
    let upstream = Upstream::new(vec![slow.clone(), vec![Piece::Data(GOOD)]]);
    let timeouts = Arc::new(Mutex::new(Vec::new()));
    let t = timeouts.clone();
    let layer = fast()
        .first_event_timeout(Duration::from_secs(1))
        .on_retry(move |info| {
            t.lock().unwrap().push((
                info.outcome().is_first_event_timeout(),
                info.outcome().is_timeout(),
                info.kind(),
            ))
        });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service());
    let (bytes, err) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert!(err.is_none());
    assert_eq!(upstream.calls(), 2);
    assert_eq!(&bytes[..], GOOD);
    assert_eq!(
        *timeouts.lock().unwrap(),
        [(true, true, Some(ErrorKind::RequestTimeout))]
    );

    // A first event within the timeout is not a failure.
    let upstream = Upstream::new(vec![slow.clone()]);
    let svc = ServiceBuilder::new()
        .layer(fast().first_event_timeout(Duration::from_secs(5)))
        .service(upstream.service());
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(&bytes[..], concat(&[KEEPALIVE, GOOD]));

    // No retry follows (retry_if says no): the stream is handed on as it is, still streaming.
    let upstream = Upstream::new(vec![slow]);
    let svc = ServiceBuilder::new()
        .layer(
            fast()
                .first_event_timeout(Duration::from_secs(1))
                .retry_if(|o| o.is_first_event_timeout().then_some(false)),
        )
        .service(upstream.service());
    let (bytes, err) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert!(err.is_none());
    assert_eq!(upstream.calls(), 1);
    assert_eq!(&bytes[..], concat(&[KEEPALIVE, GOOD]));
}

#[tokio::test(start_paused = true)]
async fn attempt_timeout_still_bounds_a_held_stream() {
    let upstream = Upstream::new(vec![
        vec![Piece::Wait(Duration::from_secs(10)), Piece::Data(GOOD)],
        vec![Piece::Data(GOOD)],
    ]);
    let (layer, log) = logged(
        fast()
            .attempt_timeout(Duration::from_secs(2))
            .first_event_timeout(Duration::from_secs(5)),
    );
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service());
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 2);
    assert_eq!(&bytes[..], GOOD);
    assert_eq!(log.lock().unwrap()[0].0, Some(ErrorKind::RequestTimeout));
}

#[tokio::test(start_paused = true)]
async fn over_the_hold_limit_the_stream_is_handed_on_as_is() {
    // 3 × 14 bytes of keep-alives pass the 32-byte limit before the error event.
    let stream: Vec<Piece> = [KEEPALIVE, KEEPALIVE, KEEPALIVE, OVERLOADED_FIRST]
        .into_iter()
        .map(Piece::Data)
        .collect();
    let upstream = Upstream::new(vec![stream, vec![Piece::Data(GOOD)]]);
    let svc = ServiceBuilder::new()
        .layer(fast().max_first_event_bytes(32))
        .service(upstream.service());
    let (bytes, err) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert!(err.is_none());
    assert_eq!(upstream.calls(), 1);
    assert_eq!(
        &bytes[..],
        concat(&[KEEPALIVE, KEEPALIVE, KEEPALIVE, OVERLOADED_FIRST])
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_applies_to_stream_retries() {
    let upstream = Upstream::new(vec![
        vec![Piece::Data(OVERLOADED_FIRST)],
        vec![Piece::Data(GOOD)],
    ]);
    let svc = ServiceBuilder::new()
        .layer(fast().budget(TpsBudget::new(Duration::from_secs(10), 0, 0.0)))
        .service(upstream.service());
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(&bytes[..], OVERLOADED_FIRST);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_applies_to_stream_retries() {
    // The in-band hint (3 s) does not fit in a 2 s deadline: not retried, handed on.
    let upstream = Upstream::new(vec![
        vec![Piece::Data(GEMINI_HINT_FIRST)],
        vec![Piece::Data(GOOD)],
    ]);
    let svc = ServiceBuilder::new()
        .layer(fast().deadline(Duration::from_secs(2)))
        .service(upstream.service());
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 1);
    assert_eq!(&bytes[..], GEMINI_HINT_FIRST);

    // A stream that holds past the deadline is cut off like any attempt.
    let upstream = Upstream::new(vec![vec![
        Piece::Data(KEEPALIVE),
        Piece::Wait(Duration::from_secs(60)),
        Piece::Data(GOOD),
    ]]);
    let svc = ServiceBuilder::new()
        .layer(fast().deadline(Duration::from_secs(2)))
        .service(upstream.service());
    let err = svc.oneshot(request()).await.unwrap_err();
    let err = err.downcast_ref::<RetryError>().unwrap();
    assert!(err.is_deadline());
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_in_band_hint_is_a_floor() {
    let upstream = Upstream::new(vec![
        vec![Piece::Data(GEMINI_HINT_FIRST)],
        vec![Piece::Data(GOOD)],
    ]);
    let hints = Arc::new(Mutex::new(Vec::new()));
    let h = hints.clone();
    let layer = fast().on_retry(move |info| {
        h.lock()
            .unwrap()
            .push((info.hint(), info.hint_source(), info.delay()))
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .service(upstream.service());
    let start = tokio::time::Instant::now();
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(upstream.calls(), 2);
    assert_eq!(&bytes[..], GOOD);
    let hints = hints.lock().unwrap().clone();
    assert_eq!(hints.len(), 1);
    let (hint, source, delay) = hints[0];
    assert_eq!(hint, Some(Duration::from_secs(3)));
    assert_eq!(source, Some(HintSource::BodyRetryDelay));
    assert!(delay >= Duration::from_secs(3) && delay <= Duration::from_millis(3010));
    assert!(start.elapsed() >= Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_header_hint_on_the_stream_applies_to_an_in_band_error_without_one() {
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let hints = Arc::new(Mutex::new(Vec::new()));
    let h = hints.clone();
    let svc = ServiceBuilder::new()
        .layer(fast().on_retry(move |info| h.lock().unwrap().push(info.hint())))
        .service_fn(move |_req: Request<ReplayBody<Full<Bytes>>>| {
            let n = {
                let mut c = c.lock().unwrap();
                *c += 1;
                *c
            };
            async move {
                let body = if n == 1 { OVERLOADED_FIRST } else { GOOD };
                Ok::<_, Infallible>(
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .header("retry-after-ms", "1500")
                        .body(Full::new(Bytes::from_static(body)))
                        .unwrap(),
                )
            }
        });
    let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
    assert_eq!(&bytes[..], GOOD);
    assert_eq!(*hints.lock().unwrap(), [Some(Duration::from_millis(1500))]);
}

/// Every 2-way split and 1-byte chunks: the caller gets exactly the upstream's bytes, the
/// verdict does not depend on the chunking.
#[tokio::test(start_paused = true)]
async fn byte_exact_under_every_chunking() {
    for input in [GOOD, LATE_ERROR_OK_PART] {
        let mut chunkings: Vec<Vec<Piece>> = vec![one_byte_chunks(input)];
        for i in 1..input.len() {
            chunkings.push(chunked(input, &[i]));
        }
        for pieces in chunkings {
            let upstream = Upstream::new(vec![pieces]);
            let svc = ServiceBuilder::new()
                .layer(fast())
                .service(upstream.service());
            let (bytes, err) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
            assert!(err.is_none());
            assert_eq!(upstream.calls(), 1);
            assert_eq!(&bytes[..], input);
        }
    }
    for i in 1..OVERLOADED_FIRST.len() {
        let upstream = Upstream::new(vec![
            chunked(OVERLOADED_FIRST, &[i]),
            vec![Piece::Data(GOOD)],
        ]);
        let svc = ServiceBuilder::new()
            .layer(fast())
            .service(upstream.service());
        let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
        assert_eq!(upstream.calls(), 2, "split at {i}");
        assert_eq!(&bytes[..], GOOD);
    }
}

// ---- End to end: a real hyper server on 127.0.0.1, a hyper-util client. ----

/// A hyper server answering each request with the next stream of `streams` (then `GOOD`),
/// as `200 text/event-stream`, in frames of `chunk` bytes.
async fn sse_server(streams: Vec<&'static [u8]>, chunk: usize) -> (SocketAddr, Arc<Mutex<u32>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let streams = Arc::new(Mutex::new(VecDeque::from(streams)));
    let requests = Arc::new(Mutex::new(0u32));
    let r2 = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (streams, requests) = (streams.clone(), r2.clone());
            let svc = hyper_service_fn(move |req: Request<Incoming>| {
                let (streams, requests) = (streams.clone(), requests.clone());
                async move {
                    let _ = req.into_body().collect().await?;
                    *requests.lock().unwrap() += 1;
                    let body = streams.lock().unwrap().pop_front().unwrap_or(GOOD);
                    let frames: Vec<Result<Frame<Bytes>, Infallible>> = body
                        .chunks(chunk)
                        .map(|c| Ok(Frame::data(Bytes::from_static(c))))
                        .collect();
                    Ok::<_, hyper::Error>(
                        Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(StreamBody::new(futures_util::stream::iter(frames)))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
        }
    });
    (addr, requests)
}

fn client() -> Client<HttpConnector, ReplayBody<Full<Bytes>>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn e2e_request(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::post(format!("http://{addr}/v1/chat/completions"))
        .body(Full::new(Bytes::from_static(b"{\"stream\":true}")))
        .unwrap()
}

/// (streams the server sends in turn, chunk size, with SseErrorLayer below, requests expected,
/// bytes the caller reads, whether the body ends with an ApiError)
macro_rules! e2e_cases {
    ($($name:ident: $streams:expr, $chunk:expr, $sse:expr => $requests:expr, $bytes:expr, $api_err:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            let (addr, requests) = sse_server($streams, $chunk).await;
            let layer = RetryLayer::new().base_delay(Duration::from_millis(1));
            let (bytes, err) = if $sse {
                let svc = ServiceBuilder::new()
                    .layer(layer)
                    .layer(SseErrorLayer::new())
                    .service(client());
                let resp = svc.oneshot(e2e_request(addr)).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                read_all(resp.into_body()).await
            } else {
                let svc = ServiceBuilder::new().layer(layer).service(client());
                let resp = svc.oneshot(e2e_request(addr)).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                read_all(resp.into_body()).await
            };
            assert_eq!(*requests.lock().unwrap(), $requests);
            let expected: Vec<u8> = $bytes;
            assert_eq!(&bytes[..], &expected[..]);
            let api_err: bool = $api_err;
            assert_eq!(
                err.as_ref().and_then(|e| e.downcast_ref::<ApiError>()).is_some(),
                api_err,
                "{err:?}"
            );
            if !api_err {
                assert!(err.is_none(), "{err:?}");
            }
        }
    )*};
}

e2e_cases! {
    e2e_error_first_is_retried: vec![OVERLOADED_FIRST], 1024, false => 2, GOOD.to_vec(), false;
    e2e_error_first_one_byte_frames_is_retried: vec![OVERLOADED_FIRST], 1, false => 2, GOOD.to_vec(), false;
    e2e_error_first_with_sse_layer_is_retried: vec![OVERLOADED_FIRST], 1, true => 2, GOOD.to_vec(), false;
    e2e_keepalives_only_is_retried: vec![b": keep-alive\n\n: keep-alive\n\n"], 1, true => 2, GOOD.to_vec(), false;
    e2e_good_stream_byte_exact: vec![GOOD], 1, false => 1, GOOD.to_vec(), false;
    e2e_late_error_fails_the_body_once: vec![late_full()], 1, true
        => 1, LATE_ERROR_OK_PART.to_vec(), true;
    e2e_late_error_without_sse_layer_passes_through: vec![late_full()], 7, false
        => 1, concat(&[LATE_ERROR_OK_PART, LATE_ERROR_TAIL]), false;
    e2e_quota_first_is_not_retried: vec![QUOTA_FIRST], 1, true
        => 1, QUOTA_FIRST[..QUOTA_FIRST.len() - 14].to_vec(), true;
    e2e_exhausted_retries_give_the_last_stream: vec![OVERLOADED_FIRST, OVERLOADED_FIRST, OVERLOADED_FIRST], 3, true
        => 3, OVERLOADED_FIRST.to_vec(), true;
}

/// `x-should-retry` on the stream's head overrides the in-band error's kind, as it does for
/// an error response.
#[tokio::test(start_paused = true)]
async fn x_should_retry_on_the_head_overrides_the_in_band_kind() {
    for (should_retry, calls_expected) in [("false", 1u32), ("true", 2)] {
        let calls = Arc::new(Mutex::new(0u32));
        let c = calls.clone();
        let first: &'static [u8] = if should_retry == "false" {
            OVERLOADED_FIRST
        } else {
            QUOTA_FIRST
        };
        let svc = ServiceBuilder::new().layer(fast()).service_fn(
            move |_req: Request<ReplayBody<Full<Bytes>>>| {
                let n = {
                    let mut c = c.lock().unwrap();
                    *c += 1;
                    *c
                };
                async move {
                    let body = if n == 1 { first } else { GOOD };
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/event-stream")
                            .header("x-should-retry", should_retry)
                            .body(Full::new(Bytes::from_static(body)))
                            .unwrap(),
                    )
                }
            },
        );
        let (bytes, _) = read_all(svc.oneshot(request()).await.unwrap().into_body()).await;
        assert_eq!(
            *calls.lock().unwrap(),
            calls_expected,
            "x-should-retry: {should_retry}"
        );
        let expected = if calls_expected == 1 { first } else { GOOD };
        assert_eq!(&bytes[..], expected);
    }
}
