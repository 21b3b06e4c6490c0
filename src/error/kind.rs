use http::StatusCode;
use std::fmt;

/// What went wrong, normalized across every vendor dialect.
///
/// The kind decides what the client stack does with a failure (see
/// [`ErrorKind::is_retryable`]) and which status and code a server renders for it. New kinds may
/// be added in minor releases, so matches need a wildcard arm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The request was malformed or had an invalid value (400, 422).
    InvalidRequest,
    /// No API key, or a key the server does not accept (401; also a key error sent as 400).
    Authentication,
    /// The key is valid but may not use this model, feature or account (403).
    PermissionDenied,
    /// The account has no credits or no active subscription (402).
    InsufficientFunds,
    /// The endpoint or model does not exist (404).
    NotFound,
    /// A concurrent change conflicted with this one (409). Worth retrying.
    Conflict,
    /// The request body or an uploaded file is too large (413).
    PayloadTooLarge,
    /// The `Content-Type` is not one the server accepts (415).
    UnsupportedMediaType,
    /// The prompt plus the requested output does not fit the model's context window.
    ContextLengthExceeded,
    /// A moderation or safety system refused the input or stopped the output.
    ContentFiltered,
    /// The request took too long on the server side (408).
    RequestTimeout,
    /// Too many requests or tokens in the current window (429). Worth retrying later.
    RateLimited,
    /// A quota, spend limit or billing limit is exhausted: waiting a few seconds will not help.
    QuotaExceeded,
    /// The server failed unexpectedly (500 and unknown 5xx).
    ServerError,
    /// An upstream behind a gateway failed or answered garbage (502).
    BadGateway,
    /// The service is temporarily unavailable (503).
    ServiceUnavailable,
    /// The service is overloaded (Anthropic's 529, `overloaded_error`, `OVERLOADED`).
    Overloaded,
    /// An upstream behind a gateway did not answer in time (504).
    GatewayTimeout,
    /// A failure that fits no other kind.
    Unknown,
}

impl ErrorKind {
    /// Every kind, in declaration order. Handy for table tests and exhaustive rendering.
    pub const ALL: [ErrorKind; 19] = [
        ErrorKind::InvalidRequest,
        ErrorKind::Authentication,
        ErrorKind::PermissionDenied,
        ErrorKind::InsufficientFunds,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::PayloadTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::ContextLengthExceeded,
        ErrorKind::ContentFiltered,
        ErrorKind::RequestTimeout,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExceeded,
        ErrorKind::ServerError,
        ErrorKind::BadGateway,
        ErrorKind::ServiceUnavailable,
        ErrorKind::Overloaded,
        ErrorKind::GatewayTimeout,
        ErrorKind::Unknown,
    ];

    /// Whether a failure of this kind may succeed when the same request is sent again.
    ///
    /// Retryable: `RequestTimeout`, `Conflict`, `RateLimited`, `ServerError`, `BadGateway`,
    /// `ServiceUnavailable`, `Overloaded`, `GatewayTimeout`. Everything else is not: the request,
    /// the key or the account has to change first. A server's `x-should-retry` header overrides
    /// this per response (see [`ApiError::is_retryable`](crate::ApiError::is_retryable)).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::RequestTimeout
                | ErrorKind::Conflict
                | ErrorKind::RateLimited
                | ErrorKind::ServerError
                | ErrorKind::BadGateway
                | ErrorKind::ServiceUnavailable
                | ErrorKind::Overloaded
                | ErrorKind::GatewayTimeout
        )
    }

    /// The kind an HTTP status means when the body says nothing more specific.
    ///
    /// Returns `None` for statuses below 400.
    pub fn from_status(status: StatusCode) -> Option<ErrorKind> {
        let kind = match status.as_u16() {
            0..=399 => return None,
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            402 => ErrorKind::InsufficientFunds,
            403 => ErrorKind::PermissionDenied,
            404 | 410 => ErrorKind::NotFound,
            408 => ErrorKind::RequestTimeout,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            429 => ErrorKind::RateLimited,
            500 => ErrorKind::ServerError,
            502 => ErrorKind::BadGateway,
            503 => ErrorKind::ServiceUnavailable,
            504 => ErrorKind::GatewayTimeout,
            529 => ErrorKind::Overloaded,
            405..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::ServerError,
        };
        Some(kind)
    }

    /// The status a server sends for this kind when nothing more specific is known.
    pub fn default_status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::ContextLengthExceeded => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied | ErrorKind::ContentFiltered => StatusCode::FORBIDDEN,
            ErrorKind::InsufficientFunds => StatusCode::PAYMENT_REQUIRED,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::ServerError | ErrorKind::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorKind::ServiceUnavailable | ErrorKind::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ErrorKind::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A stable snake_case name for logs and metrics (`"rate_limited"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::InsufficientFunds => "insufficient_funds",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::ContextLengthExceeded => "context_length_exceeded",
            ErrorKind::ContentFiltered => "content_filtered",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::ServerError => "server_error",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::ServiceUnavailable => "service_unavailable",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::GatewayTimeout => "gateway_timeout",
            ErrorKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_set_matches_the_design_rules() {
        let retryable: Vec<_> = ErrorKind::ALL
            .iter()
            .copied()
            .filter(|k| k.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorKind::Conflict,
                ErrorKind::RequestTimeout,
                ErrorKind::RateLimited,
                ErrorKind::ServerError,
                ErrorKind::BadGateway,
                ErrorKind::ServiceUnavailable,
                ErrorKind::Overloaded,
                ErrorKind::GatewayTimeout,
            ]
        );
    }

    #[test]
    fn status_mapping_round_trips_through_default_status() {
        for kind in ErrorKind::ALL {
            let status = kind.default_status();
            let back = ErrorKind::from_status(status).unwrap();
            // Kinds that share a status map back to the status's own kind.
            assert_eq!(back.default_status(), status, "{kind:?}");
        }
        assert_eq!(ErrorKind::from_status(StatusCode::OK), None);
        assert_eq!(
            ErrorKind::from_status(StatusCode::from_u16(529).unwrap()),
            Some(ErrorKind::Overloaded)
        );
    }
}
