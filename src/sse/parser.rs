use super::{
    Error, Event,
    inspect::{TINY, small_has_line_end},
};
use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use std::{collections::VecDeque, ops::Range, time::Duration};

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
/// [`Error`]. Lines are measured in bytes as received; event data is measured as received and
/// once more as text, since each invalid UTF-8 byte becomes a three-byte U+FFFD. The parser never buffers more than the limit: the rest of a too-long line is
/// skipped as it arrives. It then **resynchronizes**: the whole event block that contained the
/// offending line is dropped (its remaining lines are skipped up to the next empty line,
/// `id` and `retry` fields included) and parsing continues normally after it.
///
/// # Cost
///
/// Each input byte is looked at a bounded number of times: line ends are found with `memchr`, a
/// line that spans chunks is copied once into a buffer that is reused, and an event made of
/// whole lines inside one chunk shares that chunk's memory (no copy). An event with several
/// `data` lines is joined into one buffer. The chunks themselves are never shifted or rescanned.
///
/// The common case takes a fast path: when a block (the lines up to an empty line) starts and
/// ends inside the chunk at hand, it is read in one pass over that chunk with its fields kept as
/// positions, and only the values the event keeps become `Bytes` slices (one reference count
/// each), checked as UTF-8 once. The fast path gives up, changing nothing, on anything less
/// plain (the block goes on in the next chunk, a second `data` line, a limit reached, a CR at the
/// very end of the chunk); the line-by-line path then reads the same block as usual, and the fast
/// path is not tried again before that block has ended, so no byte is read more than twice.
/// A chunk that falls wholly inside a line begun earlier (the usual case for small chunks) is
/// appended to that line's buffer as soon as it is pushed, without the line-by-line machinery.
///
/// The fastest path is for a chunk that is exactly one block of one `data` line, as when a
/// server flushes each event on its own (OpenAI's chat completion streams send nothing else):
/// a chunk that starts with `data:` and ends with LF LF or CR LF CR LF is checked in one pass
/// for a CR or LF in between and for non-ASCII bytes (32 bytes at a time in lanes the compiler
/// keeps in vector registers, see `one_line`) instead of searching for the line end, reading
/// the field name and testing the value for ASCII one after the other. This pass stops at the
/// first 256-byte piece holding a line end, and is tried once per pushed chunk, so it adds at
/// most one read of a chunk's first line (and 256 bytes) when the chunk is not such a block.
///
/// Reference counts are atomic operations, and on small events they cost as much as the rest
/// of the parsing, so the parser spends as few as it can: the event types of Anthropic's and
/// OpenAI's streams are served as static text (see `well_known_type`); a line that spans chunks
/// is read in place in the line buffer and only the value kept is split off it; and short ASCII
/// values that are already a `Bytes` of their own (the data of the block that ends a chunk, a
/// value split off the line buffer) are handed to `ByteString` whole instead of as a second,
/// counted slice (see `into_text`). With one event per chunk and a well-known type, an event
/// costs no reference count beyond the one of the chunk it came in.
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
    /// The chunk being read (empty when there is none).
    chunk: Bytes,
    /// Set when a pushed chunk becomes the one at hand, cleared when `read_current` keeps
    /// what is left of it: the lone-event path (see `read_lone_event`) is tried on a chunk as
    /// pushed, never again on its rest. Only a cost gate: that path checks all it relies on.
    fresh: bool,
    /// Chunks pushed after it and not read yet.
    input: VecDeque<Bytes>,
    /// A line that started in an earlier chunk.
    line: BytesMut,
    bom_matched: u8,
    bom_done: bool,
    skip_lf: bool,
    discard_line: bool,
    discard_event: bool,
    finished: bool,
    /// The block's event type, as text (empty when its `event` field was empty).
    event_type: Option<ByteString>,
    data_lines: usize,
    data_first: Bytes,
    data_join: BytesMut,
    data_len: usize,
    /// The last event id buffer (empty when unset), checked as UTF-8 when it was set.
    last_id: ByteString,
    block_retry: Option<Duration>,
    reconnect: Option<Duration>,
    max_line: usize,
    max_event: usize,
    /// Unit tests turn the fast path off to compare it with the line-by-line path.
    #[cfg(test)]
    fast_path: bool,
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
            chunk: Bytes::new(),
            fresh: false,
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
            last_id: ByteString::new(),
            block_retry: None,
            reconnect: None,
            max_line: DEFAULT_MAX_LINE_BYTES,
            max_event: DEFAULT_MAX_EVENT_BYTES,
            #[cfg(test)]
            fast_path: true,
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
        if self.finished || chunk.is_empty() {
            return;
        }
        if !(self.chunk.is_empty() && self.input.is_empty()) {
            self.input.push_back(chunk);
        } else if !self.continue_line(&chunk) {
            self.chunk = chunk;
            self.fresh = true;
        }
    }

    /// Takes a chunk that falls wholly inside the line being read (small chunks mostly do) by
    /// appending it to the line buffer, if there is room; returns whether it did.
    #[inline]
    fn continue_line(&mut self, chunk: &[u8]) -> bool {
        // (A partial line is only held once the BOM is settled and no LF is pending.)
        if !self.line.is_empty()
            && self.line.capacity() - self.line.len() >= chunk.len()
            && self.line.len() + chunk.len() <= self.max_line
            && !has_line_end(chunk)
        {
            self.line.extend_from_slice(chunk);
            return true;
        }
        false
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
        (!self.last_id.is_empty()).then_some(&*self.last_id)
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
            if self.chunk.is_empty() {
                let Some(next) = self.input.pop_front() else {
                    if self.finished {
                        self.reset_at_end();
                    }
                    return None;
                };
                if !self.continue_line(&next) {
                    self.chunk = next;
                    self.fresh = true;
                }
                continue;
            }
            if self.skip_lf || !self.bom_done {
                self.chunk_start();
                continue;
            }
            if let Some(out) = self.read_current() {
                return Some(out);
            }
        }
    }

    /// Handles the start of the chunk at hand: the LF of a CR LF split across chunks, or a
    /// byte of the BOM (matched byte by byte so that it may be split across chunks).
    #[cold]
    fn chunk_start(&mut self) {
        if self.skip_lf {
            self.skip_lf = false;
            if self.chunk[0] == b'\n' {
                self.chunk.advance(1);
            }
            return;
        }
        let b = self.chunk[0];
        if b == BOM[usize::from(self.bom_matched)] {
            self.chunk.advance(1);
            self.bom_matched += 1;
            if self.bom_matched == 3 {
                self.bom_done = true;
            }
        } else {
            self.bom_done = true;
            let matched = usize::from(self.bom_matched);
            self.line.extend_from_slice(&BOM[..matched]);
        }
    }

    /// Reads the chunk at hand as a plain slice up to the next event or error, then keeps what
    /// is left of it. Out of line, so that `next_event` stays small for the many calls that
    /// find nothing to read.
    #[inline(never)]
    fn read_current(&mut self) -> Option<Result<Event, Error>> {
        if self.fresh
            && self.fast_path_on()
            && self.at_block_start()
            && self.chunk.starts_with(b"data:")
        {
            if let Some(event) = self.read_lone_event() {
                return Some(Ok(event));
            }
        }
        let mut chunk = std::mem::take(&mut self.chunk);
        let (used, out) = self.read_chunk(&mut chunk);
        // (The chunk is empty if its last event took it over.)
        if used < chunk.len() {
            chunk.advance(used);
            self.chunk = chunk;
            self.fresh = false;
        }
        out
    }

    /// Reads lines of `chunk` (which has no BOM or pending LF left at its start) until an event
    /// or an error comes out or the chunk is used up; returns how many bytes were used.
    fn read_chunk(&mut self, chunk: &mut Bytes) -> (usize, Option<Result<Event, Error>>) {
        let mut pos = 0;
        let mut fast = self.fast_path_on();
        while pos < chunk.len() {
            if fast && self.at_block_start() {
                match self.read_block(chunk, pos) {
                    Some((next, event)) => {
                        pos = next;
                        if event.is_some() {
                            return (pos, event.map(Ok));
                        }
                        continue;
                    }
                    // Not before the end of this block: its lines were only looked at.
                    None => fast = false,
                }
            }
            let chunk = &*chunk;
            let bytes: &[u8] = chunk;
            let rest = &bytes[pos..];
            let Some(i) = find_line_end(rest) else {
                // The line goes on in the next chunk.
                let out = if self.discard_line {
                    None
                } else if self.line.len() + rest.len() > self.max_line {
                    Some(Err(self.fail_line()))
                } else if self.line.capacity() - self.line.len() >= rest.len() {
                    // Small chunks land here once each: keep it to a copy.
                    self.line.extend_from_slice(rest);
                    None
                } else {
                    append_bounded(&mut self.line, rest, self.max_line);
                    None
                };
                return (bytes.len(), out);
            };
            let (start, end) = (pos, pos + i);
            // Consume the line end: CR LF, LF, or CR (whose LF may be in the next chunk).
            pos = end + 1;
            if bytes[end] == b'\r' {
                match bytes.get(pos) {
                    Some(b'\n') => pos += 1,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.discard_line {
                self.discard_line = false;
                continue;
            }
            let empty = i == 0 && self.line.is_empty();
            let out = if self.line.is_empty() {
                if i > self.max_line {
                    self.drop_event();
                    Err(Error::line_too_long(self.max_line))
                } else {
                    self.process_line(Src::Chunk(chunk), start, end)
                }
            } else if self.line.len() + i > self.max_line {
                self.line.clear();
                self.drop_event();
                Err(Error::line_too_long(self.max_line))
            } else {
                append_bounded(&mut self.line, &bytes[start..end], self.max_line);
                let out = self.process_line(Src::Line, 0, self.line.len());
                self.line.clear();
                out
            };
            if empty {
                // The block the fast path gave up on is over.
                fast = self.fast_path_on();
            }
            match out {
                Ok(None) => {}
                Ok(Some(event)) => return (pos, Some(Ok(event))),
                Err(e) => return (pos, Some(Err(e))),
            }
        }
        (pos, None)
    }

    fn fast_path_on(&self) -> bool {
        #[cfg(test)]
        return self.fast_path;
        #[cfg(not(test))]
        true
    }

    /// Whether nothing of the current block is held: no partial line, no data, no event type,
    /// no `retry`, nothing being skipped. (Comments, unknown fields and `id` lines may have been
    /// read: they leave nothing in the block.)
    fn at_block_start(&self) -> bool {
        self.line.is_empty()
            && !self.discard_line
            && !self.discard_event
            && self.data_lines == 0
            && self.event_type.is_none()
            && self.block_retry.is_none()
    }

    /// The fastest path (see the type's docs): if the chunk at hand is exactly one block made
    /// of one `data` line, takes the whole chunk and returns its event; otherwise returns
    /// `None`, having changed nothing.
    ///
    /// The chunk must start with `data:` and end with LF LF or CR LF CR LF, and the value in
    /// between must hold no CR or LF: the chunk is then that one line and the empty line. The
    /// event is what the block path would build (no type, the last event id, no `retry`, the
    /// same limits); ASCII data takes the chunk over whole (see `into_text`), other data is
    /// decoded from a slice.
    ///
    /// Out of line, and only called for a fresh chunk that starts with `data:`: inlined into
    /// `read_current`, it cost the block and line paths 1 to 2 % more instructions.
    #[inline(never)]
    fn read_lone_event(&mut self) -> Option<Event> {
        let bytes: &[u8] = &self.chunk;
        let line = bytes
            .strip_suffix(b"\n\n")
            .or_else(|| bytes.strip_suffix(b"\r\n\r\n"))?;
        let value = line.strip_prefix(b"data:")?;
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let (start, end) = (line.len() - value.len(), line.len());
        if end > self.max_line || value.len() > self.max_event {
            return None;
        }
        let data = if one_line(value)? {
            let mut whole = std::mem::take(&mut self.chunk);
            whole.truncate(end);
            whole.advance(start);
            // Cannot fail: ASCII is UTF-8.
            ByteString::try_from(whole).unwrap_or_default()
        } else {
            let text = text_of(&self.chunk, start..end);
            if text.len() > self.max_event {
                return None;
            }
            self.chunk = Bytes::new();
            text
        };
        Some(Event {
            event: None,
            data,
            id: self.current_id(),
            retry: None,
        })
    }

    /// The fast path: reads the block that starts at `from`, up to and including its empty line,
    /// if it lies wholly in `chunk` and is plain (at most one `data` line, within the limits, no
    /// CR at the very end of the chunk). Returns where the block ended and its event, if it
    /// dispatches one; or `None`, having changed nothing, if the line-by-line path must read it.
    ///
    /// The fields are noted as positions in `chunk` and applied at the empty line, exactly as
    /// reading the lines one by one would have left them: the last `event`, `id` (unless it
    /// contains NUL) and valid `retry` win.
    fn read_block(&mut self, chunk: &mut Bytes, from: usize) -> Option<(usize, Option<Event>)> {
        let bytes: &[u8] = chunk;
        let mut pos = from;
        let mut data = None;
        let mut event_type = None;
        let mut id = None;
        let mut retry = None;
        loop {
            let i = find_line_end(&bytes[pos..])?;
            let (start, end) = (pos, pos + i);
            if i > self.max_line {
                return None;
            }
            pos = end + 1;
            if bytes[end] == b'\r' {
                match bytes.get(pos) {
                    Some(b'\n') => pos += 1,
                    Some(_) => {}
                    None => return None,
                }
            }
            if i == 0 {
                break;
            }
            let Some((field, value_at)) = split_field(&bytes[start..end]) else {
                continue;
            };
            let mut value = start + value_at;
            if value < end && bytes[value] == b' ' {
                value += 1;
            }
            match field {
                Field::Data => {
                    if data.is_some() || end - value > self.max_event {
                        return None;
                    }
                    data = Some(value..end);
                }
                Field::Event => event_type = Some(value..end),
                Field::Id => {
                    if memchr::memchr(0, &bytes[value..end]).is_none() {
                        id = Some(value..end);
                    }
                }
                Field::Retry => {
                    if let Some(d) = parse_retry(&bytes[value..end]) {
                        retry = Some(d);
                    }
                }
            }
        }
        // A block that ends the chunk takes the chunk over for its data when that is short
        // ASCII (see `into_text`): one reference count less per event when each chunk carries
        // one, as when a server flushes each event.
        let take_over = match &data {
            Some(data) => pos == bytes.len() && is_short_ascii(&bytes[data.clone()]),
            None => false,
        };
        // Decoded first: U+FFFD replacements can make the text longer than the bytes, and an
        // event over the limit is the general path's to report (nothing has changed yet).
        // ASCII text is as long as its bytes, which were checked above.
        let text = match &data {
            Some(data) if !take_over => {
                let text = text_of(chunk, data.clone());
                if text.len() > self.max_event {
                    return None;
                }
                Some(text)
            }
            _ => None,
        };
        if let Some(id) = id {
            self.last_id = text_of(chunk, id);
        }
        if retry.is_some() {
            self.reconnect = retry;
        }
        let Some(data) = data else {
            return Some((pos, None));
        };
        let event_type = event_type
            .filter(|t| !t.is_empty())
            .map(|t| event_type_of(chunk, t));
        let data = match text {
            Some(text) => text,
            None => {
                let mut whole = std::mem::take(chunk);
                whole.truncate(data.end);
                whole.advance(data.start);
                // Cannot fail: ASCII is UTF-8.
                ByteString::try_from(whole).unwrap_or_default()
            }
        };
        let event = Event {
            event: event_type,
            data,
            id: self.current_id(),
            retry,
        };
        Some((pos, Some(event)))
    }

    /// One complete line, `start..end` of `src`, without its line end.
    fn process_line(
        &mut self,
        src: Src<'_>,
        start: usize,
        end: usize,
    ) -> Result<Option<Event>, Error> {
        if start == end {
            if self.discard_event {
                self.discard_event = false;
                self.clear_event();
                return Ok(None);
            }
            return self.dispatch();
        }
        if self.discard_event {
            return Ok(None);
        }
        let bytes: &[u8] = match src {
            Src::Chunk(chunk) => chunk,
            Src::Line => &self.line,
        };
        let Some((field, value_at)) = split_field(&bytes[start..end]) else {
            return Ok(None);
        };
        let mut value = start + value_at;
        if value < end && bytes[value] == b' ' {
            value += 1;
        }
        let value = value..end;
        match field {
            Field::Data => self.push_data(src, value)?,
            Field::Event => {
                let name = match well_known_type(&bytes[value.clone()]) {
                    Some(name) => name,
                    None => self.take_text(src, value),
                };
                self.event_type = Some(name);
            }
            Field::Id => {
                if memchr::memchr(0, &bytes[value.clone()]).is_none() {
                    self.last_id = self.take_text(src, value);
                }
            }
            Field::Retry => {
                if let Some(d) = parse_retry(&bytes[value]) {
                    self.reconnect = Some(d);
                    self.block_retry = Some(d);
                }
            }
        }
        Ok(None)
    }

    /// `range` of `src` as shared bytes: a counted slice of the chunk, or the range split off
    /// the line buffer (whose memory the line buffer reclaims once the slice is dropped). An
    /// empty range holds no reference.
    fn take_bytes(&mut self, src: Src<'_>, range: Range<usize>) -> Bytes {
        match src {
            Src::Chunk(chunk) => chunk.slice(range),
            Src::Line if range.is_empty() => Bytes::new(),
            Src::Line => {
                let mut part = self.line.split_to(range.end);
                part.advance(range.start);
                part.freeze()
            }
        }
    }

    /// `range` of `src` as text (see [`text_of`]).
    fn take_text(&mut self, src: Src<'_>, range: Range<usize>) -> ByteString {
        match src {
            Src::Chunk(chunk) => text_of(chunk, range),
            Src::Line => into_text(self.take_bytes(src, range)),
        }
    }

    fn push_data(&mut self, src: Src<'_>, value: Range<usize>) -> Result<(), Error> {
        let added = value.len() + usize::from(self.data_lines > 0);
        if self.data_len + added > self.max_event {
            self.drop_event();
            return Err(Error::event_too_long(self.max_event));
        }
        self.data_len += added;
        if self.data_lines == 0 {
            self.data_first = self.take_bytes(src, value);
            self.data_lines = 1;
            return Ok(());
        }
        let bytes: &[u8] = match src {
            Src::Chunk(chunk) => chunk,
            Src::Line => &self.line,
        };
        if self.data_lines == 1 {
            self.data_join.clear();
            let first = std::mem::take(&mut self.data_first);
            append_bounded(&mut self.data_join, &first, self.max_event);
        }
        append_bounded(&mut self.data_join, b"\n", self.max_event);
        append_bounded(&mut self.data_join, &bytes[value], self.max_event);
        self.data_lines += 1;
        Ok(())
    }

    /// The event the block built, at its empty line. The limit is checked once more on the
    /// text: each invalid UTF-8 byte becomes U+FFFD (three bytes), so data within the limit
    /// as received can exceed it as text, and is then an [`Error`] like any other too-long
    /// event.
    fn dispatch(&mut self) -> Result<Option<Event>, Error> {
        let retry = self.block_retry.take();
        let event_type = self.event_type.take().filter(|t| !t.is_empty());
        let lines = std::mem::take(&mut self.data_lines);
        self.data_len = 0;
        let data = match lines {
            0 => return Ok(None),
            1 => std::mem::take(&mut self.data_first),
            _ => self.data_join.split().freeze(),
        };
        let data = into_text(data);
        if data.len() > self.max_event {
            return Err(Error::event_too_long(self.max_event));
        }
        Ok(Some(Event {
            event: event_type,
            data,
            id: self.current_id(),
            retry,
        }))
    }

    /// The last event id for an event being dispatched.
    fn current_id(&self) -> Option<ByteString> {
        (!self.last_id.is_empty()).then(|| self.last_id.clone())
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

/// Where a complete line is: in the chunk being read, or (when it began in an earlier chunk)
/// in the parser's line buffer.
#[derive(Clone, Copy)]
enum Src<'a> {
    Chunk(&'a Bytes),
    Line,
}

/// The fields the parser acts on.
enum Field {
    Data,
    Event,
    Id,
    Retry,
}

/// The field a non-empty line sets, and where its value starts (after the first `:`, or at the
/// end of a line with no `:`); `None` for a comment (empty field name) or a field we ignore.
#[inline(always)]
fn split_field(line: &[u8]) -> Option<(Field, usize)> {
    // `data:` and `event:` first: the first `:` of such a line is the one they end with.
    if line.starts_with(b"data:") {
        return Some((Field::Data, 5));
    }
    if line.starts_with(b"event:") {
        return Some((Field::Event, 6));
    }
    let (name, value_at) = match memchr::memchr(b':', line) {
        Some(c) => (&line[..c], c + 1),
        None => (line, line.len()),
    };
    let field = match name {
        b"data" => Field::Data,
        b"event" => Field::Event,
        b"id" => Field::Id,
        b"retry" => Field::Retry,
        _ => return None,
    };
    Some((field, value_at))
}

/// A `retry` value: ASCII digits only (at least one), in milliseconds, saturating.
fn parse_retry(value: &[u8]) -> Option<Duration> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ms = value.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some(Duration::from_millis(ms))
}

/// The first CR or LF in `hay`; byte by byte when `hay` is small (a SIMD search costs more to
/// set up than it saves on a few bytes), and at once for an empty line (the one that ends each
/// event).
#[inline]
fn find_line_end(hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        // Most bytes are above CR: one comparison rules them out.
        hay.iter()
            .position(|&b| b <= b'\r' && (b == b'\n' || b == b'\r'))
    } else if let b'\n' | b'\r' = hay[0] {
        Some(0)
    } else {
        memchr::memchr2(b'\n', b'\r', hay)
    }
}

/// The event types that Anthropic's Messages API and OpenAI's Responses API stream, and the
/// default `message`, as static text.
///
/// An event type held as a slice of the input costs a UTF-8 check and two atomic reference
/// count updates (one when the event is built, one when it is dropped); a static one costs
/// neither, and the comparison is cheaper than the check. Any other type is a slice as usual.
fn well_known_type(name: &[u8]) -> Option<ByteString> {
    let name: &'static str = match name {
        b"message" => "message",
        b"error" => "error",
        b"ping" => "ping",
        b"message_start" => "message_start",
        b"message_delta" => "message_delta",
        b"message_stop" => "message_stop",
        b"content_block_start" => "content_block_start",
        b"content_block_delta" => "content_block_delta",
        b"content_block_stop" => "content_block_stop",
        b"response.created" => "response.created",
        b"response.in_progress" => "response.in_progress",
        b"response.completed" => "response.completed",
        b"response.failed" => "response.failed",
        b"response.incomplete" => "response.incomplete",
        b"response.output_item.added" => "response.output_item.added",
        b"response.output_item.done" => "response.output_item.done",
        b"response.content_part.added" => "response.content_part.added",
        b"response.content_part.done" => "response.content_part.done",
        b"response.output_text.delta" => "response.output_text.delta",
        b"response.output_text.done" => "response.output_text.done",
        b"response.refusal.delta" => "response.refusal.delta",
        b"response.refusal.done" => "response.refusal.done",
        b"response.function_call_arguments.delta" => "response.function_call_arguments.delta",
        b"response.function_call_arguments.done" => "response.function_call_arguments.done",
        b"response.reasoning_summary_text.delta" => "response.reasoning_summary_text.delta",
        b"response.reasoning_summary_text.done" => "response.reasoning_summary_text.done",
        _ => return None,
    };
    Some(ByteString::from_static(name))
}

/// Whether `chunk` holds a CR or LF; a word at a time when it is small (the inspector's test).
#[inline]
fn has_line_end(chunk: &[u8]) -> bool {
    if chunk.len() < TINY {
        small_has_line_end(chunk)
    } else {
        find_line_end(chunk).is_some()
    }
}

/// `range` of `chunk` as an event type: static text for a well-known type, else a slice.
fn event_type_of(chunk: &Bytes, range: Range<usize>) -> ByteString {
    well_known_type(&chunk[range.clone()]).unwrap_or_else(|| text_of(chunk, range))
}

/// `src[range]` as text: the same memory when it is UTF-8 (checked once, here), otherwise a
/// copy with each invalid sequence replaced by U+FFFD.
///
/// Decoding after splitting lines gives the same text as decoding the whole stream first: line
/// ends, `:` and the LF used to join data lines are ASCII, and an invalid sequence always ends
/// before an ASCII byte.
fn text_of(src: &Bytes, range: Range<usize>) -> ByteString {
    match ByteString::try_from(src.slice(range.clone())) {
        Ok(text) => text,
        Err(_) => ByteString::from(String::from_utf8_lossy(&src[range]).into_owned()),
    }
}

/// `bytes` as text (see [`text_of`]), handing them over whole when they are short ASCII.
///
/// `ByteString` checks the text itself when it takes bytes, and drops them if they are not
/// UTF-8; the replacement text is then made from a second, counted, reference. ASCII cannot
/// fail that check, so it is handed over without one.
fn into_text(bytes: Bytes) -> ByteString {
    if is_short_ascii(&bytes) {
        // Cannot fail: ASCII is UTF-8.
        return ByteString::try_from(bytes).unwrap_or_default();
    }
    text_of(&bytes, 0..bytes.len())
}

/// Longest value worth testing for ASCII to save a reference count: the test reads every
/// byte, and at about this length it costs as much as the atomic increment and decrement it
/// saves (measured with the `sse` benchmark's 90- and 230-byte values).
const SHORT_TEXT: usize = 256;

/// Whether `bytes` are ASCII and at most [`SHORT_TEXT`] long.
fn is_short_ascii(bytes: &[u8]) -> bool {
    bytes.len() <= SHORT_TEXT && is_ascii(bytes)
}

/// Whether `bytes` are all ASCII, eight bytes at a time. (On the 200-byte values of our
/// benchmark this takes about half the time of `<[u8]>::is_ascii`, which looks for the first
/// non-ASCII byte instead of OR-ing the words together.) The bytes after the last whole word
/// are covered by reading the last eight bytes as one more word, overlapping the one before:
/// a loop over them would have a trip count that changes with the length, and so mispredict.
fn is_ascii(bytes: &[u8]) -> bool {
    let word = |w: &[u8]| <[u8; 8]>::try_from(w).map_or(u64::MAX, u64::from_ne_bytes);
    let Some(last) = bytes.len().checked_sub(8) else {
        return bytes.iter().fold(0, |acc, &b| acc | b) < 0x80;
    };
    let words = bytes
        .chunks_exact(8)
        .fold(word(&bytes[last..]), |acc, w| acc | word(w));
    words & 0x8080_8080_8080_8080 == 0
}

/// `Some(ascii)` if `bytes` hold no CR or LF, `None` if they do, in one pass: 32 bytes at a
/// time into 32 lanes that the compiler keeps in vector registers, stopping early on a line end
/// every 256 bytes. As in [`is_ascii`], the bytes after the last whole block are covered by
/// testing the last 32 bytes once more.
fn one_line(bytes: &[u8]) -> Option<bool> {
    const PIECE: usize = 8 * LANES;
    let Some(last) = bytes.len().checked_sub(LANES) else {
        let ends = bytes.iter().any(|&b| b == b'\n' || b == b'\r');
        return (!ends).then(|| bytes.is_ascii());
    };
    let mut ascii = true;
    let mut rest = bytes;
    while rest.len() > PIECE {
        let (piece, after) = rest.split_at(PIECE);
        let (ends, high) = scan_blocks(piece, &[]);
        if ends {
            return None;
        }
        ascii &= !high;
        rest = after;
    }
    let (ends, high) = scan_blocks(rest, &bytes[last..]);
    (!ends).then_some(ascii & !high)
}

const LANES: usize = 32;

/// For [`one_line`]: whether the whole blocks of [`LANES`] bytes in `blocks`, and `tail` (one
/// such block, or empty), hold a CR or LF, and whether they hold a byte that is not ASCII.
#[inline(always)]
fn scan_blocks(blocks: &[u8], tail: &[u8]) -> (bool, bool) {
    let (mut ends, mut high) = ([0u8; LANES], [0u8; LANES]);
    let mut add = |block: &[u8]| {
        for (i, &b) in block.iter().enumerate().take(LANES) {
            ends[i] |= u8::from(b == b'\n' || b == b'\r').wrapping_neg();
            high[i] |= b;
        }
    };
    add(tail);
    for block in blocks.chunks_exact(LANES) {
        add(block);
    }
    let any = |lanes: [u8; LANES]| lanes.iter().fold(false, |acc, &x| acc | (x >= 0x80));
    (any(ends), any(high))
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

#[cfg(test)]
mod tests {
    //! The fast path against the line-by-line path: same events, errors and parser state for
    //! any input, chunking and limits.

    use super::*;
    use proptest::prelude::*;

    /// Everything the parser reports, with its state after each event, as comparable values.
    fn run(input: &[u8], cuts: &[usize], limits: (usize, usize), fast: bool) -> Vec<String> {
        let mut p = Parser::new()
            .max_line_bytes(limits.0)
            .max_event_bytes(limits.1);
        p.fast_path = fast;
        let mut out = Vec::new();
        let mut at = 0;
        // `usize::MAX` stands for the end of the input.
        for cut in cuts.iter().copied().chain([input.len(), usize::MAX]) {
            if cut == usize::MAX {
                p.finish();
            } else {
                let end = cut.clamp(at, input.len());
                p.push(Bytes::copy_from_slice(&input[at..end]));
                at = end;
            }
            while let Some(r) = p.next_event() {
                let r = r.map_or_else(|e| format!("err {e}"), |ev| format!("{ev:?}"));
                let (retry, id) = (p.reconnection_time(), p.last_event_id());
                out.push(format!("{r}, then {retry:?} {id:?}"));
            }
        }
        out.push(format!(
            "end {:?} {:?}",
            p.reconnection_time(),
            p.last_event_id()
        ));
        out
    }

    /// Pieces that matter to the parser, glued at random (`x` stands for ordinary text).
    const PIECES: &[&[u8]] = &[
        b"data: ",
        b"data:",
        b"data",
        b"event: ",
        b"event:",
        b"id: ",
        b"id:",
        b"retry: ",
        b"12",
        b":",
        b" ",
        b"x",
        b"xyz",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"\xEF\xBB\xBF",
        b"\xE2\x82",
        b"\xFF",
        b"\0",
        "\u{e9}".as_bytes(),
    ];

    fn stream() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(prop::sample::select(PIECES), 0..64).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn fast_path_matches_line_by_line(
            input in stream(),
            cuts in prop::collection::btree_set(0usize..400, 0..12),
            line in prop_oneof![Just(DEFAULT_MAX_LINE_BYTES), 1usize..24],
            event in prop_oneof![Just(DEFAULT_MAX_EVENT_BYTES), 1usize..24],
        ) {
            let limits = (line, event);
            let cuts: Vec<usize> = cuts.into_iter().collect();
            prop_assert_eq!(run(&input, &cuts, limits, true), run(&input, &cuts, limits, false));
        }
    }

    #[test]
    fn is_ascii_finds_a_high_byte_anywhere() {
        for len in 0..40 {
            let ascii = vec![b'~'; len];
            assert!(is_ascii(&ascii));
            for at in 0..len {
                let mut bytes = ascii.clone();
                bytes[at] = 0x80;
                assert!(!is_ascii(&bytes), "len {len}, at {at}");
            }
        }
    }

    #[test]
    fn one_line_finds_a_line_end_or_high_byte_anywhere() {
        // Past 256 bytes the test stops early on a line end: cover a few such pieces.
        for len in 0..600 {
            let plain = vec![b'~'; len];
            assert_eq!(one_line(&plain), Some(true), "len {len}");
            for at in 0..len {
                for (byte, want) in [(b'\n', None), (b'\r', None), (0x80, Some(false))] {
                    let mut bytes = plain.clone();
                    bytes[at] = byte;
                    assert_eq!(one_line(&bytes), want, "len {len}, at {at}, byte {byte}");
                }
            }
        }
    }

    #[test]
    fn lone_events_match_line_by_line() {
        // Chunks that are one block of one `data` line, and chunks that only look like one.
        let long = "~".repeat(300);
        let values: &[&[u8]] = &[
            b"",
            b" ",
            b"x",
            long.as_bytes(),
            "caf\u{e9} \u{1F600} and some more text after it".as_bytes(),
            b"invalid \xFF\xE2\x82 UTF-8, long enough for a whole block",
            b"a\rb",
            b"a\nb",
            b"a\n\nb",
            b"x\r",
            b"x\n",
            b"\0 tab\t",
        ];
        let starts: &[&[u8]] = &[b"data:", b"data: ", b"data:  ", b"dat:", b"id: 1\ndata: "];
        let ends: &[&[u8]] = &[b"\n\n", b"\r\n\r\n", b"\r\r", b"\r\n\n", b"\n", b"\n\r\n"];
        for value in values {
            for start in starts {
                for end in ends {
                    let block = [*start, *value, *end].concat();
                    // An id first (the events carry it), then the block twice, as pushed chunks.
                    let input = [&b"id: 7\n\n"[..], &block, &block].concat();
                    let cuts = [7, 7 + block.len()];
                    for limits in [
                        (DEFAULT_MAX_LINE_BYTES, DEFAULT_MAX_EVENT_BYTES),
                        (8, 64),
                        (64, 8),
                    ] {
                        let fast = run(&input, &cuts, limits, true);
                        assert_eq!(
                            fast,
                            run(&input, &cuts, limits, false),
                            "{block:?} {limits:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_lone_event_shares_its_chunk() {
        static CHUNK: &[u8] = b"data: {\"a\":1}\n\n";
        let mut p = Parser::new();
        p.push(Bytes::from_static(CHUNK));
        let event = p.next_event().unwrap().unwrap();
        assert_eq!(event.data(), "{\"a\":1}");
        let at = event.data_bytes().as_ptr() as usize;
        assert_eq!(at, CHUNK.as_ptr() as usize + 6);
        assert!(p.next_event().is_none());
    }

    #[test]
    fn well_known_types_are_static_and_others_are_slices() {
        static INPUT: &[u8] = b"event: content_block_delta\ndata: x\n\nevent: custom\ndata: y\n\n";
        let in_input = |name: &Option<ByteString>| {
            let at = name.as_ref().map_or(0, |n| n.as_ptr() as usize);
            let start = INPUT.as_ptr() as usize;
            (start..start + INPUT.len()).contains(&at)
        };
        // Whole, and cut inside the first line (the line-by-line path).
        for cut in [INPUT.len(), 7] {
            let mut p = Parser::new();
            p.push(Bytes::from_static(&INPUT[..cut]));
            p.push(Bytes::from_static(&INPUT[cut..]));
            let a = p.next_event().unwrap().unwrap();
            let b = p.next_event().unwrap().unwrap();
            assert_eq!((a.event(), b.event()), ("content_block_delta", "custom"));
            assert!(!in_input(&a.event), "a well-known type is static text");
            assert!(in_input(&b.event), "another type is a slice of the input");
        }
    }

    #[test]
    fn fast_path_reads_whole_blocks_in_one_go() {
        let input =
            b"id: 7\nretry: 30\n: note\nevent: e\ndata: x\n\nevent: only\n\ndata: y\r\n\r\n";
        let mut p = Parser::new();
        p.push(Bytes::from_static(input));
        let a = p.next_event().unwrap().unwrap();
        let b = p.next_event().unwrap().unwrap();
        assert_eq!(
            (a.event(), a.data(), a.id(), a.retry()),
            ("e", "x", Some("7"), Some(Duration::from_millis(30)))
        );
        assert_eq!(
            (b.event(), b.data(), b.id(), b.retry()),
            ("message", "y", Some("7"), None)
        );
        // Both data values share the chunk's memory.
        let start = input.as_ptr() as usize;
        let range = start..start + input.len();
        assert!(range.contains(&(a.data_bytes().as_ptr() as usize)));
        assert!(range.contains(&(b.data_bytes().as_ptr() as usize)));
        assert!(p.next_event().is_none());
    }
}
