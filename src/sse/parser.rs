use super::{Error, Event};
use bytes::{Buf, Bytes, BytesMut};
use std::{collections::VecDeque, time::Duration};

/// Default limit for one line, in bytes (1 MiB).
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// Default limit for the data of one event, in bytes (1 MiB).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A sans-IO, incremental parser for `text/event-stream`.
///
/// Push chunks as they arrive with [`Parser::push`], drain events with [`Parser::next_event`]
/// until it returns `None`, and call [`Parser::finish`] when the input has ended. The parser does
/// no IO and never blocks; it holds the chunks you pushed until `next_event` has consumed them.
///
/// # The rules it follows
///
/// This is the algorithm of the WHATWG HTML standard, section "Interpreting an event stream"
/// (9.2.6), summarized in our own words:
///
/// - The stream is UTF-8. One byte order mark at the very start of the stream is dropped (also
///   when its three bytes arrive in different chunks); a BOM anywhere later is ordinary text.
///   Bytes that are not valid UTF-8 become U+FFFD and parsing goes on.
/// - A line ends at CR LF, at a lone LF or at a lone CR. A CR that ends a chunk ends the line
///   right away; if the next chunk starts with LF, that LF belongs to the same line end and is
///   skipped (it never produces a second, empty line).
/// - An empty line dispatches the event being built. A line that starts with `:` is a comment and
///   is ignored.
/// - Otherwise the field name is everything before the first `:` and the value everything after
///   it, minus exactly one leading space if there is one. A line with no `:` is a field whose
///   name is the whole line and whose value is empty.
/// - `event`: sets the event type. `data`: appends the value and a LF to the data buffer.
///   `id`: unless the value contains NUL, sets the last event id (an empty value resets it; it
///   persists across events). `retry`: if the value is ASCII digits only, it is the new
///   reconnection time in milliseconds, applied immediately (also in a block that dispatches
///   nothing); otherwise the field is ignored. Any other field name is ignored.
/// - Dispatch: if the data buffer is empty, nothing is dispatched (the event type is reset all
///   the same). Otherwise the final LF is removed, the event gets type `message` unless an event
///   type was set, and the last event id; then the data buffer and the event type are reset.
/// - At the end of the input, an event whose final empty line has not arrived is dropped, and so
///   is an unterminated last line.
///
/// # Limits and recovery
///
/// A line longer than [`max_line_bytes`](Parser::max_line_bytes) or an event whose data is longer
/// than [`max_event_bytes`](Parser::max_event_bytes) (1 MiB each by default) yields one
/// [`Error`]. The parser never buffers more than the limit: the rest of a too-long line is
/// skipped as it arrives. It then **resynchronizes**: the whole event block that contained the
/// offending line is dropped (its remaining lines are skipped up to the next empty line,
/// `id` and `retry` fields included) and parsing continues normally after it.
///
/// # Cost
///
/// Each input byte is looked at once: line ends are found with `memchr`, a line that spans
/// chunks is copied once into a buffer that is reused, and an event made of whole lines inside
/// one chunk shares that chunk's memory (no copy). An event with several `data` lines is joined
/// into one buffer. The chunks themselves are never shifted or rescanned.
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use tower_llm_errors::sse::Parser;
///
/// let mut parser = Parser::new();
/// parser.push(Bytes::from_static(b"event: greeting\ndata: hel"));
/// assert!(parser.next_event().is_none()); // the event is not complete yet
/// parser.push(Bytes::from_static(b"lo\r\n\r\n"));
/// let event = parser.next_event().unwrap().unwrap();
/// assert_eq!(event.event(), "greeting");
/// assert_eq!(event.data(), "hello");
/// parser.finish();
/// assert!(parser.next_event().is_none());
/// ```
#[derive(Debug)]
pub struct Parser {
    input: VecDeque<Bytes>,
    /// A line that started in an earlier chunk.
    line: BytesMut,
    bom_matched: u8,
    bom_done: bool,
    skip_lf: bool,
    discard_line: bool,
    discard_event: bool,
    finished: bool,
    event_type: Option<Bytes>,
    data_lines: usize,
    data_first: Bytes,
    data_join: BytesMut,
    data_len: usize,
    last_id: Bytes,
    block_retry: Option<Duration>,
    reconnect: Option<Duration>,
    max_line: usize,
    max_event: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    /// A parser with the default limits (1 MiB per line, 1 MiB of data per event).
    pub fn new() -> Parser {
        Parser {
            input: VecDeque::new(),
            line: BytesMut::new(),
            bom_matched: 0,
            bom_done: false,
            skip_lf: false,
            discard_line: false,
            discard_event: false,
            finished: false,
            event_type: None,
            data_lines: 0,
            data_first: Bytes::new(),
            data_join: BytesMut::new(),
            data_len: 0,
            last_id: Bytes::new(),
            block_retry: None,
            reconnect: None,
            max_line: DEFAULT_MAX_LINE_BYTES,
            max_event: DEFAULT_MAX_EVENT_BYTES,
        }
    }

    /// Sets the longest line accepted, in bytes, line end excluded (at least 1).
    pub fn max_line_bytes(mut self, limit: usize) -> Parser {
        self.max_line = limit.max(1);
        self
    }

    /// Sets the most data one event may carry, in bytes (at least 1).
    pub fn max_event_bytes(mut self, limit: usize) -> Parser {
        self.max_event = limit.max(1);
        self
    }

    /// Adds a chunk of input. Ignored after [`Parser::finish`].
    pub fn push(&mut self, chunk: Bytes) {
        if !self.finished && !chunk.is_empty() {
            self.input.push_back(chunk);
        }
    }

    /// Signals the end of input. Events still buffered can be drained with
    /// [`Parser::next_event`]; whatever is left after them (an unterminated line, an event with
    /// no final empty line) is discarded.
    pub fn finish(&mut self) {
        self.finished = true;
    }

    /// Whether [`Parser::finish`] was called.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The reconnection time set by the most recent valid `retry` field, if any.
    pub fn reconnection_time(&self) -> Option<Duration> {
        self.reconnect
    }

    /// The current last event id (`None` when unset or reset).
    pub fn last_event_id(&self) -> Option<&str> {
        (!self.last_id.is_empty()).then(|| std::str::from_utf8(&self.last_id).unwrap_or_default())
    }

    /// Bytes held by the parser itself: a partial line and a partly joined event (pushed chunks
    /// not yet consumed are not counted).
    pub fn buffered_len(&self) -> usize {
        self.line.len() + self.data_join.len()
    }

    /// Capacity of the parser's own buffers (bounded by the line limit plus the event limit).
    pub fn buffered_capacity(&self) -> usize {
        self.line.capacity() + self.data_join.capacity()
    }

    /// The next complete event, an error if a limit was exceeded, or `None` when more input is
    /// needed (or, after [`Parser::finish`], when the stream is over).
    pub fn next_event(&mut self) -> Option<Result<Event, Error>> {
        loop {
            let Some(chunk) = self.input.front_mut() else {
                if self.finished {
                    self.reset_at_end();
                }
                return None;
            };
            if chunk.is_empty() {
                self.input.pop_front();
                continue;
            }
            if self.skip_lf {
                self.skip_lf = false;
                if chunk[0] == b'\n' {
                    chunk.advance(1);
                    continue;
                }
            }
            if !self.bom_done {
                // Match the BOM byte by byte so that it may be split across chunks.
                let b = chunk[0];
                if b == BOM[usize::from(self.bom_matched)] {
                    chunk.advance(1);
                    self.bom_matched += 1;
                    if self.bom_matched == 3 {
                        self.bom_done = true;
                    }
                } else {
                    self.bom_done = true;
                    let matched = usize::from(self.bom_matched);
                    self.line.extend_from_slice(&BOM[..matched]);
                }
                continue;
            }
            match find_line_end(chunk) {
                None => {
                    let Some(rest) = self.input.pop_front() else {
                        continue;
                    };
                    if self.discard_line {
                        continue;
                    }
                    if self.line.len() + rest.len() > self.max_line {
                        return Some(Err(self.fail_line()));
                    }
                    append_bounded(&mut self.line, &rest, self.max_line);
                }
                Some(i) => {
                    let term = chunk[i];
                    let mut too_long = false;
                    let line = if self.discard_line {
                        chunk.advance(i);
                        None
                    } else if self.line.is_empty() {
                        if i > self.max_line {
                            chunk.advance(i);
                            too_long = true;
                            None
                        } else {
                            Some(chunk.split_to(i))
                        }
                    } else if self.line.len() + i > self.max_line {
                        chunk.advance(i);
                        self.line.clear();
                        too_long = true;
                        None
                    } else {
                        append_bounded(&mut self.line, &chunk[..i], self.max_line);
                        chunk.advance(i);
                        Some(self.line.split().freeze())
                    };
                    // Consume the line end: CR LF, LF, or CR (whose LF may be in the next chunk).
                    chunk.advance(1);
                    if term == b'\r' {
                        if chunk.is_empty() {
                            self.skip_lf = true;
                        } else if chunk[0] == b'\n' {
                            chunk.advance(1);
                        }
                    }
                    self.discard_line = false;
                    if too_long {
                        self.drop_event();
                        return Some(Err(Error::line_too_long(self.max_line)));
                    }
                    if let Some(line) = line {
                        match self.process_line(line) {
                            Ok(None) => {}
                            Ok(Some(event)) => return Some(Ok(event)),
                            Err(e) => return Some(Err(e)),
                        }
                    }
                }
            }
        }
    }

    /// One complete line, without its line end.
    fn process_line(&mut self, line: Bytes) -> Result<Option<Event>, Error> {
        if line.is_empty() {
            if self.discard_event {
                self.discard_event = false;
                self.clear_event();
                return Ok(None);
            }
            return Ok(self.dispatch());
        }
        if self.discard_event || line[0] == b':' {
            return Ok(None);
        }
        let colon = memchr::memchr(b':', &line);
        let name_end = colon.unwrap_or(line.len());
        let name = match &line[..name_end] {
            b"data" => Field::Data,
            b"event" => Field::Event,
            b"id" => Field::Id,
            b"retry" => Field::Retry,
            _ => return Ok(None),
        };
        // The value shares the line's memory: advancing the line itself avoids taking a
        // second reference to the chunk.
        let value = match colon {
            Some(c) => {
                let mut value = line;
                value.advance(c + 1);
                if value.first() == Some(&b' ') {
                    value.advance(1);
                }
                // An empty value holds no reference to the chunk (as `Bytes::slice` gives).
                if value.is_empty() {
                    Bytes::new()
                } else {
                    value
                }
            }
            None => Bytes::new(),
        };
        match name {
            Field::Data => self.push_data(value)?,
            Field::Event => self.event_type = Some(value),
            Field::Id if memchr::memchr(0, &value).is_none() => self.last_id = utf8(value),
            Field::Retry if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                let ms = value.iter().fold(0u64, |acc, d| {
                    acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                let d = Duration::from_millis(ms);
                self.reconnect = Some(d);
                self.block_retry = Some(d);
            }
            _ => {}
        }
        Ok(None)
    }

    fn push_data(&mut self, value: Bytes) -> Result<(), Error> {
        let added = value.len() + usize::from(self.data_lines > 0);
        if self.data_len + added > self.max_event {
            self.drop_event();
            return Err(Error::event_too_long(self.max_event));
        }
        self.data_len += added;
        match self.data_lines {
            0 => self.data_first = value,
            1 => {
                self.data_join.clear();
                let first = std::mem::take(&mut self.data_first);
                append_bounded(&mut self.data_join, &first, self.max_event);
                append_bounded(&mut self.data_join, b"\n", self.max_event);
                append_bounded(&mut self.data_join, &value, self.max_event);
            }
            _ => {
                append_bounded(&mut self.data_join, b"\n", self.max_event);
                append_bounded(&mut self.data_join, &value, self.max_event);
            }
        }
        self.data_lines += 1;
        Ok(())
    }

    fn dispatch(&mut self) -> Option<Event> {
        let retry = self.block_retry.take();
        let event_type = self.event_type.take().filter(|t| !t.is_empty());
        let lines = std::mem::take(&mut self.data_lines);
        self.data_len = 0;
        let data = match lines {
            0 => return None,
            1 => std::mem::take(&mut self.data_first),
            _ => self.data_join.split().freeze(),
        };
        let id = (!self.last_id.is_empty()).then(|| self.last_id.clone());
        Some(Event {
            event: event_type.map(utf8),
            data: utf8(data),
            id,
            retry,
        })
    }

    fn fail_line(&mut self) -> Error {
        self.line.clear();
        self.discard_line = true;
        self.drop_event();
        Error::line_too_long(self.max_line)
    }

    fn drop_event(&mut self) {
        self.discard_event = true;
        self.clear_event();
    }

    fn clear_event(&mut self) {
        self.event_type = None;
        self.data_lines = 0;
        self.data_first = Bytes::new();
        self.data_join.clear();
        self.data_len = 0;
        self.block_retry = None;
    }

    fn reset_at_end(&mut self) {
        self.line.clear();
        self.discard_line = false;
        self.discard_event = false;
        self.clear_event();
    }
}

/// The fields the parser acts on.
enum Field {
    Data,
    Event,
    Id,
    Retry,
}

/// The first CR or LF in `hay`; byte by byte when `hay` is small (a SIMD search costs more to
/// set up than it saves on a few bytes).
#[inline]
fn find_line_end(hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        hay.iter().position(|&b| b == b'\n' || b == b'\r')
    } else {
        memchr::memchr2(b'\n', b'\r', hay)
    }
}

/// `b` itself when it is UTF-8, otherwise a copy with each invalid sequence replaced by U+FFFD.
///
/// Decoding after splitting lines gives the same text as decoding the whole stream first: line
/// ends, `:` and the LF used to join data lines are ASCII, and an invalid sequence always ends
/// before an ASCII byte.
fn utf8(b: Bytes) -> Bytes {
    match std::str::from_utf8(&b) {
        Ok(_) => b,
        Err(_) => Bytes::from(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// Appends `src` to `buf` without letting its capacity grow past `limit` (the caller has
/// checked that the contents fit). Reclaims the buffer's space when the slices split off it
/// earlier have been dropped, so steady-state parsing does not allocate.
fn append_bounded(buf: &mut BytesMut, src: &[u8], limit: usize) {
    let need = buf.len() + src.len();
    if buf.capacity() < need && !buf.try_reclaim(src.len()) {
        let target = buf
            .capacity()
            .saturating_mul(2)
            .max(256)
            .min(limit)
            .max(need);
        let mut grown = BytesMut::with_capacity(target);
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(src);
}
