//! Rendering an error in each dialect, against a plain `serde_json::to_vec` of an equivalent
//! `Value` (the least a JSON error body costs).

use criterion::{Criterion, criterion_group, criterion_main};
use http::StatusCode;
use std::hint::black_box;
use std::time::Duration;
use tower_llm_errors::{ApiError, Dialect, ErrorKind};

fn render(c: &mut Criterion) {
    let err = ApiError::new(
        ErrorKind::InvalidRequest,
        "The field 'messages' is required.",
    )
    .with_status(StatusCode::BAD_REQUEST)
    .with_code("missing_required_field")
    .with_param("messages")
    .with_request_id("req_0123456789abcdef")
    .with_retry_after(Duration::from_secs(2));
    let mut group = c.benchmark_group("render");
    group.bench_function("serde_json_baseline", |b| {
        b.iter(|| {
            let v = serde_json::json!({"error": {
                "message": black_box(err.message()),
                "type": "invalid_request_error",
                "code": err.code(),
                "param": err.param(),
            }});
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    for d in Dialect::ALL {
        group.bench_function(d.as_str(), |b| {
            b.iter(|| black_box(black_box(&err).render(d)))
        });
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
