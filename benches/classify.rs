//! Classifying error responses vs. a plain `serde_json::Value` parse of the same bodies.
//!
//! The inputs are the provider fixtures in `tests/fixtures/` (read once at start-up, so the
//! benchmark always covers exactly what the tests check). Run:
//!
//! ```text
//! cargo bench --bench classify -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! `all_fixtures/*` classifies every fixture in one iteration, `json_fixtures/*` only those
//! whose body is JSON; `per_shape/*` shows a few shapes one by one. Each pair runs in the same
//! process, same run.

#[path = "../tests/common/fixture.rs"]
#[allow(unreachable_pub)]
mod fixture;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use tower_llm_errors::ApiError;

fn fixtures() -> Vec<fixture::Fixture> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    fixture::all(&root)
}

fn bench(c: &mut Criterion) {
    let all = fixtures();
    let mut g = c.benchmark_group("all_fixtures");
    g.bench_function("from_response", |b| {
        b.iter(|| {
            for fx in &all {
                black_box(ApiError::from_response(
                    black_box(fx.status),
                    black_box(&fx.headers),
                    black_box(&fx.body),
                ));
            }
        })
    });
    g.bench_function("serde_json_value", |b| {
        b.iter(|| {
            for fx in &all {
                let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    &fx.body,
                )));
            }
        })
    });
    g.finish();

    // The same over the fixtures whose body is a JSON document (the plain parse of an HTML page
    // or an empty gRPC body fails at its first byte, which makes the pair above lopsided).
    let json: Vec<_> = all
        .iter()
        .filter(|f| serde_json::from_slice::<serde_json::Value>(&f.body).is_ok())
        .collect();
    let mut g = c.benchmark_group("json_fixtures");
    g.bench_function("from_response", |b| {
        b.iter(|| {
            for fx in &json {
                black_box(ApiError::from_response(
                    black_box(fx.status),
                    black_box(&fx.headers),
                    black_box(&fx.body),
                ));
            }
        })
    });
    g.bench_function("serde_json_value", |b| {
        b.iter(|| {
            for fx in &json {
                let _ = black_box(serde_json::from_slice::<serde_json::Value>(black_box(
                    &fx.body,
                )));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("per_shape");
    for name in [
        "openai/rate_limit_bucket_empty.http",
        "azure/content_filter.http",
        "anthropic/overloaded_529.http",
        "gemini/resource_exhausted_retry_info.http",
        "openrouter/provider_error_raw.http",
        "html/cloudflare_502.http",
    ] {
        let Some(fx) = all.iter().find(|f| f.name == name) else {
            panic!("fixture {name} is missing");
        };
        g.bench_with_input(BenchmarkId::new("from_response", name), fx, |b, fx| {
            b.iter(|| ApiError::from_response(fx.status, &fx.headers, black_box(&fx.body)))
        });
        g.bench_with_input(BenchmarkId::new("serde_json_value", name), fx, |b, fx| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&fx.body)).is_ok())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
