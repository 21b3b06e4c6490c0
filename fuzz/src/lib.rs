//! Helpers shared by the fuzz targets: input chunking and a reference SSE interpreter.

use std::time::Duration;

/// Splits `data` into a chunking plan and a payload.
///
/// The first byte says how many size bytes follow (0 to 7); each size byte gives one chunk length
/// (1 to 64), and the lengths are used in a cycle over the payload. With no size bytes the payload
/// is one chunk.
pub fn chunked(data: &[u8]) -> (Vec<&[u8]>, &[u8]) {
    let Some((&head, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let k = usize::from(head % 8).min(rest.len());
    let (sizes, payload) = rest.split_at(k);
    let mut chunks = Vec::new();
    if sizes.is_empty() {
        if !payload.is_empty() {
            chunks.push(payload);
        }
        return (chunks, payload);
    }
    let mut at = 0;
    let mut i = 0;
    while at < payload.len() {
        let n = usize::from(sizes[i % sizes.len()] % 64) + 1;
        let end = (at + n).min(payload.len());
        chunks.push(&payload[at..end]);
        at = end;
        i += 1;
    }
    (chunks, payload)
}

/// One dispatched event, as the reference interpreter reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEvent {
    /// The event type (`"message"` when the block set none or an empty one).
    pub event: String,
    /// The data buffer with its final LF removed.
    pub data: String,
    /// The last event id buffer, `None` when empty.
    pub id: Option<String>,
    /// The last valid `retry` value seen in this event's own block.
    pub retry: Option<Duration>,
}

/// What the reference interpreter produced for a whole stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefOutcome {
    /// The dispatched events, in order.
    pub events: Vec<RefEvent>,
    /// The reconnection time after the whole stream (the most recent valid `retry`).
    pub reconnect: Option<Duration>,
}

/// The WHATWG HTML "Interpreting an event stream" algorithm (section 9.2.6), transliterated as
/// plainly as we can, on a complete input.
///
/// Decode the whole byte stream as UTF-8 (one leading BOM is dropped, invalid sequences become
/// U+FFFD), cut it into lines at CR LF, LF or CR, and process each line: an empty line
/// dispatches, a line starting with `:` is a comment, otherwise split at the first `:` into field
/// name and value (one leading space of the value dropped; no `:` means the whole line is the name
/// and the value is empty). The last line, if it has no line end, is incomplete and ignored; an
/// event whose dispatching empty line never came is dropped at the end of the stream.
///
/// Two readings where the spec is loose: an empty `retry` value is not "only ASCII digits" (it is
/// ignored), and a `retry` value too large for `u64` milliseconds saturates (the spec says
/// "interpret as an integer in base ten" with no bound).
pub fn interpret(bytes: &[u8]) -> RefOutcome {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF][..]).unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);

    // Cut into complete lines; whatever follows the last line end is incomplete.
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                lines.push(std::mem::take(&mut current));
            }
            '\n' => lines.push(std::mem::take(&mut current)),
            other => current.push(other),
        }
    }

    let mut events = Vec::new();
    let mut data = String::new();
    let mut event_type = String::new();
    let mut last_id = String::new();
    let mut reconnect: Option<Duration> = None;
    let mut block_retry: Option<Duration> = None;

    for line in lines {
        if line.is_empty() {
            // Dispatch the event.
            let retry = block_retry.take();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let ev = RefEvent {
                event: if event_type.is_empty() {
                    "message".to_owned()
                } else {
                    event_type.clone()
                },
                data: std::mem::take(&mut data),
                id: if last_id.is_empty() {
                    None
                } else {
                    Some(last_id.clone())
                },
                retry,
            };
            event_type.clear();
            events.push(ev);
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (line.as_str(), ""),
        };
        match field {
            "event" => event_type = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" => {
                if !value.contains('\0') {
                    last_id = value.to_owned();
                }
            }
            "retry" => {
                if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
                    let ms = value.bytes().fold(0u64, |a, d| {
                        a.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
                    reconnect = Some(Duration::from_millis(ms));
                    block_retry = reconnect;
                }
            }
            _ => {}
        }
    }
    // End of stream: the pending event (if any) is discarded.
    RefOutcome { events, reconnect }
}
