use std::fmt;

/// A limit of the SSE parser or inspector was exceeded.
///
/// Opaque, in the style of `hyper::Error`: ask it what happened with the `is_*` predicates.
/// After this error the parser has dropped the offending event and resynchronizes by itself
/// (see [`Parser`](super::Parser)); the inspecting body ends with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    limit: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    LineTooLong,
    EventTooLong,
}

impl Error {
    pub(crate) fn line_too_long(limit: usize) -> Error {
        Error {
            kind: Kind::LineTooLong,
            limit,
        }
    }

    pub(crate) fn event_too_long(limit: usize) -> Error {
        Error {
            kind: Kind::EventTooLong,
            limit,
        }
    }

    /// A single line (without its line end) was longer than the line limit.
    pub fn is_line_too_long(&self) -> bool {
        self.kind == Kind::LineTooLong
    }

    /// The data of one event was longer than the event limit.
    pub fn is_event_too_long(&self) -> bool {
        self.kind == Kind::EventTooLong
    }

    /// The limit, in bytes, that was exceeded.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            Kind::LineTooLong => write!(f, "SSE line longer than {} bytes", self.limit),
            Kind::EventTooLong => write!(f, "SSE event data longer than {} bytes", self.limit),
        }
    }
}

impl std::error::Error for Error {}
