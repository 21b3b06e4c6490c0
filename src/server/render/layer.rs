use super::RenderError;
use crate::Dialect;
use http::StatusCode;
use std::time::Duration;
use tower::Layer;

/// Applies [`RenderError`]: turns every error, and every bare error response, into a response
/// in one [`Dialect`]. See the [module docs](super) for the table.
#[derive(Clone, Debug)]
pub struct RenderErrorLayer {
    pub(crate) dialect: Dialect,
    pub(crate) timeout_status: StatusCode,
    pub(crate) overloaded_retry_after: Duration,
    pub(crate) normalize: bool,
}

impl RenderErrorLayer {
    /// Renders in `dialect`; timeouts answer `504`, load shedding `503` with `Retry-After: 1`.
    pub fn new(dialect: Dialect) -> RenderErrorLayer {
        RenderErrorLayer {
            dialect,
            timeout_status: StatusCode::GATEWAY_TIMEOUT,
            overloaded_retry_after: Duration::from_secs(1),
            normalize: true,
        }
    }

    /// The status for tower's timeout `Elapsed`: `408 Request Timeout` or `504 Gateway Timeout`
    /// (the default). Any other status is ignored and the current one kept.
    pub fn timeout_status(mut self, status: StatusCode) -> RenderErrorLayer {
        if status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::GATEWAY_TIMEOUT {
            self.timeout_status = status;
        }
        self
    }

    /// The `Retry-After` sent with a load-shed `503` (default one second).
    pub fn overloaded_retry_after(mut self, after: Duration) -> RenderErrorLayer {
        self.overloaded_retry_after = after;
        self
    }

    /// Whether bare (non-JSON) error responses from inner layers are re-rendered in the dialect
    /// (default `true`).
    pub fn normalize_responses(mut self, normalize: bool) -> RenderErrorLayer {
        self.normalize = normalize;
        self
    }

    /// The configured dialect.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

impl<S> Layer<S> for RenderErrorLayer {
    type Service = RenderError<S>;

    fn layer(&self, inner: S) -> RenderError<S> {
        RenderError {
            inner,
            config: self.clone(),
            ready_error: None,
        }
    }
}
