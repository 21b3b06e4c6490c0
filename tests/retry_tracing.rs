//! `tracing` events of the retry layer. In its own test binary: `set_default` subscribers and
//! tracing's global callsite cache do not mix with tests running on other threads.

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::Full;
use std::{
    io,
    sync::{Arc, Mutex},
};
use tower::{ServiceBuilder, ServiceExt};
use tower_llm_errors::{
    BoxError,
    retry::{ReplayBody, RetryLayer},
};

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);
impl io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn each_retry_is_traced_without_headers() {
    let out = Captured::default();
    let w = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let calls = Arc::new(Mutex::new(0u32));
    let svc = ServiceBuilder::new().layer(RetryLayer::new()).service_fn(
        move |_req: Request<ReplayBody<Full<Bytes>>>| {
            let first = {
                let mut n = calls.lock().unwrap();
                *n += 1;
                *n == 1
            };
            async move {
                let resp = if first {
                    Response::builder()
                        .status(429)
                        .header("retry-after-ms", "100")
                        .header("set-cookie", "session-secret")
                        .body(Full::new(Bytes::from_static(b"{}")))?
                } else {
                    Response::new(Full::new(Bytes::from_static(b"ok")))
                };
                Ok::<_, BoxError>(resp)
            }
        },
    );
    let mut req = Request::post("http://llm.test/v1/chat")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Bearer sk-live-secret-key"),
    );
    assert_eq!(svc.oneshot(req).await.unwrap().status(), 200);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("retrying request"), "{text}");
    assert!(text.contains("retry=1"), "{text}");
    assert!(text.contains("kind=\"rate_limited\""), "{text}");
    assert!(text.contains("hint_source=\"retry_after_ms\""), "{text}");
    assert!(text.contains("hint_ms=100"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}
