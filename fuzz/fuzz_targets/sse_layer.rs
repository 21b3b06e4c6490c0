//! `SseErrorLayer`'s body (the in-band inspector) on arbitrary bytes under an arbitrary chunking,
//! in failing and record-only modes, with default and tiny limits. Checks: no panic; the bytes
//! passed on are a prefix of the input (never reordered, never repeated); a body that ends
//! without an error passed on everything; an error is an `ApiError` or an `sse::Error`; the
//! record-only body always passes on everything.
#![no_main]

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use std::{
    collections::VecDeque,
    convert::Infallible,
    future::Future,
    pin::{Pin, pin},
    task::{Context, Poll, Waker},
};
use tower::{Layer, Service, service_fn};
use tower_llm_errors::{ApiError, sse};

/// A body that yields the given chunks, all ready at once.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(Frame::data(c))))
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

fn ready<F: Future>(f: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut f = pin!(f);
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("nothing here can be pending"),
    }
}

fn run(chunks: &[&[u8]], payload: &[u8], layer: sse::SseErrorLayer, record_only: bool) {
    let body: VecDeque<Bytes> = chunks.iter().map(|c| Bytes::copy_from_slice(c)).collect();
    let mut svc = layer.layer(service_fn(move |_req: Request<()>| {
        let body = Chunks(body.clone());
        std::future::ready(Ok::<_, Infallible>(
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(body)
                .unwrap(),
        ))
    }));
    let res = ready(svc.call(Request::new(()))).unwrap();
    let mut body = pin!(res.into_body());
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut failed = false;
    loop {
        match body.as_mut().poll_frame(&mut cx) {
            Poll::Pending => panic!("nothing here can be pending"),
            Poll::Ready(None) => break,
            Poll::Ready(Some(Ok(f))) => {
                if let Ok(d) = f.into_data() {
                    out.extend_from_slice(&d);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                assert!(
                    e.downcast_ref::<ApiError>().is_some()
                        || e.downcast_ref::<sse::Error>().is_some(),
                    "untyped body error: {e:?}"
                );
                failed = true;
                break;
            }
        }
    }
    assert!(
        payload.starts_with(&out),
        "passed-on bytes are not a prefix of the input"
    );
    if !failed || record_only {
        assert!(!record_only || !failed, "record-only body failed");
        assert_eq!(
            out.len(),
            payload.len(),
            "bytes lost on a body that did not fail"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let (chunks, payload) = tower_llm_errors_fuzz::chunked(data);
    run(&chunks, payload, sse::SseErrorLayer::new(), false);
    run(
        &chunks,
        payload,
        sse::SseErrorLayer::new().record_only(),
        true,
    );
    let small = || {
        sse::SseErrorLayer::new()
            .max_line_bytes(48)
            .max_event_bytes(96)
    };
    run(&chunks, payload, small(), false);
    run(&chunks, payload, small().record_only(), true);
});
