//! What the gateway did for each demo request: the waits between attempts and why.
//!
//! The gateway runs each demo request inside [`Journal::scope`], which makes that request's
//! [`Record`] the task-local "current" one. Anything that runs while the request is in flight
//! (the retry layer's `on_retry` hook, for one) calls [`record_wait`] without needing to know
//! which request it belongs to. The burst reads the records back to fill its table.
//!
//! Only the demo uses a journal; a gateway fronting a real API runs without one, so nothing
//! here grows with real traffic.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower_llm_errors::error::HintSource;

/// One pause before a retry.
#[derive(Clone, Debug)]
pub struct Wait {
    /// How long the gateway waited.
    pub delay: Duration,
    /// Why: a server hint (`retry-after-ms`, `Retry-After`) or backoff.
    pub why: String,
}

/// The waits recorded for one request.
#[derive(Clone, Debug, Default)]
pub struct Record(Arc<Mutex<Vec<Wait>>>);

impl Record {
    fn push(&self, wait: Wait) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(wait);
    }

    /// A copy of the waits so far.
    pub fn waits(&self) -> Vec<Wait> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

tokio::task_local! {
    static CURRENT: Record;
}

/// Records a wait for the request in flight on this task; does nothing outside
/// [`Journal::scope`].
pub fn record_wait(delay: Duration, why: impl Into<String>) {
    let _ = CURRENT.try_with(|r| {
        r.push(Wait {
            delay,
            why: why.into(),
        })
    });
}

/// Records a retry of the request in flight, with why it waited that long: the server hint
/// that set the floor of the wait (`retry-after-ms`, `Retry-After`, ...), else backoff. This is
/// the retry layer's `on_retry` hook.
pub fn record_retry(delay: Duration, hint: Option<HintSource>) {
    let why = match hint {
        Some(source) => format!("hint {}", source.as_str()),
        None => "backoff".to_owned(),
    };
    record_wait(delay, why);
}

/// Records per demo request id.
#[derive(Clone, Debug, Default)]
pub struct Journal(Arc<Mutex<HashMap<String, Record>>>);

impl Journal {
    /// Runs `fut` with the record of request `id` as the current one.
    pub async fn scope<F: Future>(&self, id: &str, fut: F) -> F::Output {
        let record = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(id.to_owned()).or_default().clone()
        };
        CURRENT.scope(record, fut).await
    }

    /// The waits recorded for request `id`.
    pub fn waits(&self, id: &str) -> Vec<Wait> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(id).map(Record::waits).unwrap_or_default()
    }
}
