//! The retry layer on the success path, against a bare service and tower's `Retry` with a
//! never-retry policy that clones the request. Also counts heap allocations per call.
//!
//! `cargo bench --bench retry -- --warm-up-time 1 --measurement-time 3`

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    task::{Context, Poll, Waker},
};
use tower::{Service, ServiceBuilder, retry::Policy};
use tower_llm_errors::retry::{ReplayBody, RetryLayer};

#[path = "common/alloc.rs"]
mod alloc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

type Body = Full<Bytes>;

fn request() -> Request<Body> {
    Request::post("http://llm.test/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(
            br#"{"model":"m","messages":[]}"#,
        )))
        .unwrap()
}

fn ok<B>(_req: Request<B>) -> Ready<Result<Response<Body>, Infallible>> {
    ready(Ok(Response::new(Full::new(Bytes::from_static(b"{}")))))
}

/// Never retries; clones the request as a retrying policy must.
#[derive(Clone)]
struct NeverRetry;

impl<E> Policy<Request<Body>, Response<Body>, E> for NeverRetry {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Body>,
        _result: &mut Result<Response<Body>, E>,
    ) -> Option<Self::Future> {
        None
    }

    fn clone_request(&mut self, req: &Request<Body>) -> Option<Request<Body>> {
        let mut r = Request::new(req.body().clone());
        *r.method_mut() = req.method().clone();
        *r.uri_mut() = req.uri().clone();
        *r.version_mut() = req.version();
        *r.headers_mut() = req.headers().clone();
        *r.extensions_mut() = req.extensions().clone();
        Some(r)
    }
}

/// One call, driven to completion on the spot (every future here is ready at once).
fn once<S>(svc: &mut S) -> S::Response
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    match svc.poll_ready(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("not ready"),
    }
    let mut fut = pin!(svc.call(request()));
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("not ready"),
    }
}

fn allocs_per_call<S>(svc: &mut S) -> f64
where
    S: Service<Request<Body>>,
    S::Error: std::fmt::Debug,
{
    const CALLS: usize = 10_000;
    for _ in 0..100 {
        black_box(once(svc));
    }
    let before = alloc::allocations();
    for _ in 0..CALLS {
        black_box(once(svc));
    }
    (alloc::allocations() - before) as f64 / CALLS as f64
}

fn bench(c: &mut Criterion) {
    let mut bare = ServiceBuilder::new().service_fn(ok::<Body>);
    let mut tower_retry = ServiceBuilder::new()
        .layer(tower::retry::RetryLayer::new(NeverRetry))
        .service_fn(ok::<Body>);
    let mut ours = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .service_fn(ok::<ReplayBody<Body>>);

    println!(
        "heap allocations per call (request construction included): bare {:.2}, tower Retry {:.2}, RetryLayer {:.2}",
        allocs_per_call(&mut bare),
        allocs_per_call(&mut tower_retry),
        allocs_per_call(&mut ours),
    );

    let mut g = c.benchmark_group("retry_success_path");
    g.bench_function("bare", |b| b.iter(|| black_box(once(&mut bare))));
    g.bench_function("tower_retry_clone", |b| {
        b.iter(|| black_box(once(&mut tower_retry)))
    });
    g.bench_function("retry_layer", |b| b.iter(|| black_box(once(&mut ours))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
