//! Statistical check of the full-jitter backoff: the first retry's delays of 2,000 requests that
//! fail together are uniform on `[0, base]` (Kolmogorov–Smirnov) and not in lockstep.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::retry::{ReplayBody, RetryLayer};

const N: usize = 2000;
const BASE: Duration = Duration::from_millis(500);
/// The two-sided KS critical value at alpha = 0.001 for large n: sqrt(-ln(alpha/2)/2)/sqrt(n)
/// = 1.9495/sqrt(2000) = 0.04359.
const D_CRIT: f64 = 0.04359;

#[tokio::test(start_paused = true)]
async fn first_retry_delays_are_uniform_and_independent() {
    let delays = Arc::new(Mutex::new(Vec::with_capacity(N)));
    let d2 = delays.clone();
    let layer = RetryLayer::new()
        .base_delay(BASE)
        .max_retries(1)
        .on_retry(move |info| d2.lock().unwrap().push(info.delay()));
    // Every request fails its first attempt with a 503 and succeeds on the second.
    let attempts: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let a2 = attempts.clone();
    let svc = ServiceBuilder::new().layer(layer).service_fn(
        move |req: Request<ReplayBody<Full<Bytes>>>| {
            let id = req.headers()["x-id"].to_str().unwrap().to_owned();
            let mut map = a2.lock().unwrap();
            let seen = map.entry(id).or_default();
            seen.push(Instant::now());
            let status = if seen.len() == 1 { 503 } else { 200 };
            async move {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::new()))
                        .unwrap(),
                )
            }
        },
    );
    let calls = (0..N).map(|i| {
        let req = Request::get("http://llm.test/")
            .header("x-id", i.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        svc.clone().oneshot(req)
    });
    for r in futures_util::future::join_all(calls).await {
        assert_eq!(r.unwrap().status(), 200);
    }

    let mut xs: Vec<f64> = delays
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_secs_f64() / BASE.as_secs_f64())
        .collect();
    assert_eq!(xs.len(), N);
    xs.sort_by(f64::total_cmp);
    assert!(xs[0] >= 0.0 && xs[N - 1] <= 1.0);
    let n = N as f64;
    let d = xs
        .iter()
        .enumerate()
        .map(|(i, &x)| ((i + 1) as f64 / n - x).max(x - i as f64 / n))
        .fold(0.0f64, f64::max);
    assert!(d < D_CRIT, "KS statistic {d} >= {D_CRIT}");

    // Not in lockstep: the delays are (nearly) all different, although every request failed at
    // the same instant.
    let distinct: HashSet<u128> = delays
        .lock()
        .unwrap()
        .iter()
        .map(|d| d.as_nanos())
        .collect();
    assert!(
        distinct.len() >= N - 10,
        "only {} distinct delays",
        distinct.len()
    );

    // And the layer actually slept them: each second attempt came no sooner than its first
    // attempt, and within the base delay (plus the timer's 1 ms granularity).
    for seen in attempts.lock().unwrap().values() {
        assert_eq!(seen.len(), 2);
        let gap = seen[1] - seen[0];
        assert!(gap <= BASE + Duration::from_millis(1), "{gap:?}");
    }
}
