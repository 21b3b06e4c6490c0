use bytes::Bytes;
use bytestring::ByteString;
use std::{fmt, time::Duration};

/// One dispatched server-sent event.
///
/// The fields are [`Bytes`] slices of the input whenever the event's lines arrived whole in one
/// chunk (no copy), except well-known event types, which are static text; they are always
/// valid UTF-8 (invalid sequences were replaced with U+FFFD when the event was dispatched).
///
/// They are held as [`ByteString`]s (`Bytes` known to be UTF-8): the text is checked once, when
/// the event is built, and the accessors hand out `&str` without checking it again. Our crate
/// forbids `unsafe`, so a wrapper of our own could not skip that second check; `bytestring`
/// keeps the proof in its type.
#[derive(Clone, PartialEq, Eq)]
pub struct Event {
    pub(crate) event: Option<ByteString>,
    pub(crate) data: ByteString,
    pub(crate) id: Option<ByteString>,
    pub(crate) retry: Option<Duration>,
}

impl Event {
    /// A new event with type `message`, the given data, no id and no retry. Handy in tests and
    /// for [`ApiError::from_sse_event`](crate::ApiError::from_sse_event).
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            event: None,
            data: ByteString::from(data.into()),
            id: None,
            retry: None,
        }
    }

    /// Sets the event type (an empty type means `message`).
    pub fn with_event(mut self, event: impl Into<String>) -> Event {
        let e: String = event.into();
        self.event = (!e.is_empty()).then(|| ByteString::from(e));
        self
    }

    /// Sets the last event id carried by the event.
    pub fn with_id(mut self, id: impl Into<String>) -> Event {
        let id: String = id.into();
        self.id = (!id.is_empty()).then(|| ByteString::from(id));
        self
    }

    /// The event type: the last `event` field of the block, or `"message"` when it had none (or
    /// an empty one).
    pub fn event(&self) -> &str {
        match &self.event {
            Some(e) => e,
            None => "message",
        }
    }

    /// The data: the values of the block's `data` lines joined with `\n`.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The data as bytes (valid UTF-8), sharing the input buffer when possible.
    pub fn data_bytes(&self) -> &Bytes {
        self.data.as_bytes()
    }

    /// The last event id in effect when this event was dispatched (`None` when unset or reset
    /// with an empty `id` field). It persists across events, as the spec's "last event ID
    /// buffer" does.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The reconnection time from a valid `retry` field in this event's own block, if any. The
    /// parser's current value, which also counts `retry` fields in blocks that dispatched
    /// nothing, is [`Parser::reconnection_time`](super::Parser::reconnection_time).
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("event", &self.event())
            .field("data", &self.data())
            .field("id", &self.id())
            .field("retry", &self.retry)
            .finish()
    }
}
