//! The passthrough inspector: finds event boundaries and in-band errors in raw chunks without
//! building events, copying only what spans chunks.
//!
//! # The exact line loop and the fast path
//!
//! [`Inspector::feed_inner`] is the exact loop: it follows every line (CR, LF, CR LF, the
//! BOM, the limits), decides per block whether the cheap scan makes it suspect, and parses
//! only suspect blocks. Every result the inspector gives comes from it.
//!
//! Long chunks (at least [`FAST_MIN`] bytes) usually hold many whole blocks, and once the
//! first event has been decided (the retry layer's verdict), nothing about a normal block is
//! kept. So [`Inspector::feed_fast`] cuts such a chunk at its first and last blank line (a
//! `\n\n`, which ends a line and then an empty line whatever came before it, CR included):
//! the exact loop runs on the head (which finishes the block carried from the last chunk) and
//! on the tail (which starts the block carried to the next one), and the run of whole blocks
//! between them is skipped when
//!
//! - the first event is no longer pending,
//! - the run is no longer than the line limit and the event limit (so no line and no block
//!   in it can exceed one), and
//! - one pass of a multi-pattern SIMD search ([`inband::RunScan`]) finds nothing that could
//!   make a block suspect or start a bare JSON document: its patterns are substrings of every
//!   trigger of the exact scan, so a run it passes holds only blocks the exact loop would pass
//!   without a look.
//!
//! Otherwise the exact loop runs on the run as well. Either way the state after the run is
//! the same (a blank line leaves no block, no partial line and no bare document open), and a
//! stop inside it is reported at the same offset. Skipped blocks are not counted one by one:
//! nothing reads a count of events past the first.
//!
//! # Tiny chunks
//!
//! Some upstreams send a few bytes per frame, so most frames only continue a line that
//! started earlier. [`Inspector::append_tiny`] takes such a frame (shorter than [`TINY`], no
//! CR or LF in it, within the line limit) without entering the line loop: it copies it with
//! two word stores into a small buffer that is moved to `carry` when it fills up and before
//! the line loop next runs, so the line loop sees exactly the bytes it would have seen. What
//! it may take is worked out once, at the end of each [`Inspector::feed_chunk`]
//! ([`Inspector::tiny_room`]), so the per-frame check is a compare and a line-end test. The
//! response body calls it inline and leaves everything else out of line.

use super::inband::{self, NEEDLES};
use super::{Error, Parser};
use crate::ApiError;
use crate::ErrorKind;
use bytes::Bytes;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// What the first event of a stream turned out to be. For the retry layer: hold the response
/// while this is [`FirstEvent::Pending`].
#[derive(Clone, Debug)]
#[allow(dead_code)] // read by the retry integration
pub(crate) enum FirstEvent {
    /// No event has been dispatched yet (comments, `id`/`retry`-only blocks and keep-alives do
    /// not count).
    Pending,
    /// The first event was an ordinary event (a content-filtered end counts as ordinary: it
    /// is not retryable and the caller should see it).
    Normal,
    /// The first event was an in-band error (an SSE event or Gemini's bare JSON document).
    Error(ApiError),
    /// The stream ended before any event (the "no content generated" case).
    NoEvent,
}

/// Why the inspector stopped the stream.
#[derive(Debug)]
pub(crate) enum Stop {
    /// An in-band error; the chunk should be cut after `at` bytes (the end of the error event).
    InBand { at: usize, error: ApiError },
    /// A line or event limit was exceeded; the whole chunk may be passed on.
    Limit(Error),
}

impl Stop {
    /// The same stop for a chunk that starts `offset` bytes later.
    fn shifted(self, offset: usize) -> Stop {
        match self {
            Stop::InBand { at, error } => Stop::InBand {
                at: at + offset,
                error,
            },
            limit @ Stop::Limit(_) => limit,
        }
    }
}

/// Chunks shorter than this may take [`Inspector::append_tiny`] (see [`copy_small`]).
pub(crate) const TINY: usize = 16;

/// The size of [`Inspector::append_tiny`]'s buffer: it is moved to `carry` once more than
/// `TINY_BUF - TINY` bytes are in it, so there is always room for one more tiny chunk.
const TINY_BUF: usize = 256;

/// Chunks at least this long take the fast path ([`Inspector::feed_fast`]); shorter ones
/// rarely hold a whole block beyond the first, and the two extra searches would not pay.
const FAST_MIN: usize = 512;

/// A blank line (without CR), searched forward and backward.
static BLANK: std::sync::LazyLock<(
    memchr::memmem::Finder<'static>,
    memchr::memmem::FinderRev<'static>,
)> = std::sync::LazyLock::new(|| {
    (
        memchr::memmem::Finder::new(b"\n\n"),
        memchr::memmem::FinderRev::new(b"\n\n"),
    )
});

/// Per-chunk cache of the next needle match, so each needle scans a chunk once.
struct Cache {
    searched: bool,
    next: usize,
}

impl Cache {
    const fn new() -> Cache {
        Cache {
            searched: false,
            next: usize::MAX,
        }
    }

    fn next_from(&mut self, finder: &memchr::memmem::Finder<'_>, hay: &[u8], from: usize) -> usize {
        if !self.searched || (self.next != usize::MAX && self.next < from) {
            self.searched = true;
            self.next = finder
                .find(hay.get(from..).unwrap_or_default())
                .map_or(usize::MAX, |p| p + from);
        }
        self.next
    }
}

/// Incremental, allocation-free (in steady state) scan of a `text/event-stream`.
///
/// It follows the same line rules as [`Parser`] (CR, LF, CRLF, a CR at a chunk end, one
/// leading BOM) but does not build events: it tracks, per block, whether the block carries
/// `data` (so it will dispatch) and whether a cheap scan says it could be an error. Only a
/// suspect block is parsed (with [`Parser`]) and read with [`ApiError::from_sse_event`].
///
/// Memory: it keeps the bytes of the current block only when the block spans chunks, from its
/// first `data`/`event` line (comments before it are not kept), bounded by the event limit,
/// and one partial line bounded by the line limit.
pub(crate) struct Inspector {
    max_line: usize,
    max_event: usize,
    carry: Vec<u8>,
    /// Where the partial line starts in `carry`, when a line is open.
    line_open: Option<usize>,
    /// How many more bytes [`Inspector::append_tiny`] may append to the open line: the room
    /// left under the line limit when a line is open, the BOM is decided, no LF is to be
    /// skipped and the inspector has not stopped; 0 otherwise.
    tiny_room: usize,
    /// The open line's latest bytes, appended by [`Inspector::append_tiny`] and not yet moved
    /// to `carry` (the first `tiny_len`).
    tiny: [u8; TINY_BUF],
    tiny_len: usize,
    skip_lf: bool,
    bom_matched: u8,
    bom_done: bool,
    // The current block.
    relevant: bool,
    has_data: bool,
    suspect: bool,
    block_len: usize,
    // Gemini's bare JSON.
    bare: Vec<u8>,
    bare_active: bool,
    first: FirstEvent,
    content_filter: Option<ApiError>,
    done: bool,
}

impl std::fmt::Debug for Inspector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inspector")
            .field("first", &self.first)
            .field("buffered", &self.buffered_len())
            .finish_non_exhaustive()
    }
}

/// What one complete line did.
enum Line {
    Nothing,
    /// An empty line ended the block.
    BlockEnd,
    /// A bare JSON document completed with an error.
    Bare(ApiError),
}

impl Inspector {
    pub(crate) fn new(max_line: usize, max_event: usize) -> Inspector {
        Inspector {
            max_line: max_line.max(1),
            max_event: max_event.max(1),
            carry: Vec::new(),
            line_open: None,
            tiny_room: 0,
            tiny: [0; TINY_BUF],
            tiny_len: 0,
            skip_lf: false,
            bom_matched: 0,
            bom_done: false,
            relevant: false,
            has_data: false,
            suspect: false,
            block_len: 0,
            bare: Vec::new(),
            bare_active: false,
            first: FirstEvent::Pending,
            content_filter: None,
            done: false,
        }
    }

    /// The verdict on the first event so far.
    #[allow(dead_code)] // used by the retry integration
    pub(crate) fn first_event(&self) -> &FirstEvent {
        &self.first
    }

    /// The first content-filtered end seen, taken once.
    pub(crate) fn take_content_filter(&mut self) -> Option<ApiError> {
        self.content_filter.take()
    }

    /// Whether a content-filtered end waits to be taken.
    pub(crate) fn has_content_filter(&self) -> bool {
        self.content_filter.is_some()
    }

    /// Bytes held (a block spanning chunks, a partial line, a bare JSON document).
    pub(crate) fn buffered_len(&self) -> usize {
        self.carry.len() + self.tiny_len + self.bare.len()
    }

    /// Whether the inspector stopped (after an error it looks at nothing more).
    #[allow(dead_code)] // used by the retry integration
    pub(crate) fn is_done(&self) -> bool {
        self.done
    }

    /// Scans one chunk. Returns where and why to stop, if the stream must stop.
    #[inline]
    pub(crate) fn feed(&mut self, chunk: &[u8]) -> Option<Stop> {
        if self.append_tiny(chunk) {
            return None;
        }
        self.feed_chunk(chunk)
    }

    /// The common case for tiny chunks (a few bytes, as some upstreams send): more of a line
    /// that started earlier, with no line end in it. Such a chunk is only appended to the open
    /// line, in the small `tiny` buffer (moved to `carry` when it fills up and before anything
    /// else reads the line); whether it may be ([`Inspector::tiny_room`]) is worked out once
    /// per call to [`Inspector::feed_chunk`]. So this costs a compare, a line-end test and two
    /// word stores, with no call. Returns whether the chunk was taken; when not, nothing
    /// changed.
    #[inline]
    pub(crate) fn append_tiny(&mut self, chunk: &[u8]) -> bool {
        let n = chunk.len();
        if n >= TINY || n > self.tiny_room {
            return false;
        }
        let at = self.tiny_len;
        let Some(window) = self.tiny.get_mut(at..at + TINY) else {
            return false;
        };
        if !copy_small(chunk, window) {
            return false;
        }
        self.tiny_room -= n;
        self.tiny_len = at + n;
        if self.tiny_len > TINY_BUF - TINY {
            self.flush_tiny();
        }
        true
    }

    /// Moves the bytes appended by [`Inspector::append_tiny`] to `carry`.
    #[cold]
    #[inline(never)]
    fn flush_tiny(&mut self) {
        self.carry.extend_from_slice(&self.tiny[..self.tiny_len]);
        self.tiny_len = 0;
    }

    /// [`Inspector::feed`] past the tiny-chunk case (any chunk may be given to it).
    #[inline(never)]
    pub(crate) fn feed_chunk(&mut self, chunk: &[u8]) -> Option<Stop> {
        if self.tiny_len > 0 {
            self.flush_tiny();
        }
        if self.done {
            return None;
        }
        let stop = if chunk.len() >= FAST_MIN {
            self.feed_fast(chunk)
        } else {
            self.feed_inner(chunk)
        };
        if stop.is_some() {
            self.done = true;
            self.carry = Vec::new();
            self.bare = Vec::new();
        }
        self.tiny_room = match self.line_open {
            Some(start) if self.bom_done && !self.skip_lf && !self.done => {
                self.max_line.saturating_sub(self.carry.len() - start)
            }
            _ => 0,
        };
        stop
    }

    /// The input ended. An error in an event whose final empty line never came, or in an
    /// unterminated bare JSON document, is still reported (leniently: the parser would drop
    /// that event, but the upstream clearly meant to send an error).
    pub(crate) fn finish(&mut self) -> Option<ApiError> {
        if self.tiny_len > 0 {
            self.flush_tiny();
        }
        if self.done {
            return None;
        }
        self.done = true;
        self.tiny_room = 0;
        let mut found = None;
        if self.relevant && self.has_data && self.suspect {
            let carry = std::mem::take(&mut self.carry);
            found = self.evaluate(&carry, true);
        }
        if found.is_none() && self.bare_active {
            found = self.bare_error(true);
        }
        if matches!(self.first, FirstEvent::Pending) {
            self.first = match &found {
                Some(e) => FirstEvent::Error(e.clone()),
                None => FirstEvent::NoEvent,
            };
        }
        self.carry = Vec::new();
        self.bare = Vec::new();
        found
    }

    /// The fast path for a chunk that holds whole blocks: the exact line loop runs on the
    /// head (up to the first blank line) and on the tail (after the last one); the run of
    /// complete blocks between them is skipped when [`RunScan`](inband::RunScan) finds
    /// nothing in it, the first event has been decided, and the run is no longer than the
    /// line and event limits (so neither limit can be exceeded inside it). Otherwise the
    /// exact loop runs on the run too.
    fn feed_fast(&mut self, chunk: &[u8]) -> Option<Stop> {
        let blank = &*BLANK;
        let Some(first) = blank.0.find(chunk) else {
            return self.feed_inner(chunk);
        };
        let head = first + 2;
        let tail = blank.1.rfind(chunk).map_or(head, |p| p + 2);
        if let Some(stop) = self.feed_inner(&chunk[..head]) {
            return Some(stop);
        }
        // A blank line ends any block and any bare JSON document: the run starts afresh.
        debug_assert!(!self.relevant && !self.bare_active && self.carry.is_empty());
        if tail > head {
            let run = &chunk[head..tail];
            let skip = !matches!(self.first, FirstEvent::Pending)
                && run.len() <= self.max_line.min(self.max_event)
                && !inband::RUN_SCAN.is_suspect(run);
            if !skip {
                if let Some(stop) = self.feed_inner(run) {
                    return Some(stop.shifted(head));
                }
            }
        }
        if tail < chunk.len() {
            return self.feed_inner(&chunk[tail..]).map(|s| s.shifted(tail));
        }
        None
    }

    fn feed_inner(&mut self, chunk: &[u8]) -> Option<Stop> {
        let mut pos = 0;
        while !self.bom_done && pos < chunk.len() {
            if chunk[pos] == BOM[usize::from(self.bom_matched)] {
                self.bom_matched += 1;
                pos += 1;
                if self.bom_matched == 3 {
                    self.bom_done = true;
                }
            } else {
                self.bom_done = true;
                // A broken BOM is the start of an (unknown) field: keep it as line text.
                let n = usize::from(self.bom_matched);
                if n > 0 {
                    self.line_open = Some(self.carry.len());
                    self.carry.extend_from_slice(&BOM[..n]);
                }
            }
        }
        if self.skip_lf && pos < chunk.len() {
            self.skip_lf = false;
            if chunk[pos] == b'\n' {
                pos += 1;
            }
        }
        // `seg`: where the part of the current relevant block not yet in `carry` starts.
        let mut seg = pos;
        if let Some(start) = self.line_open {
            let Some(i) = find_line_end(&chunk[pos..]) else {
                if self.carry.len() - start + chunk.len() - pos > self.max_line {
                    return Some(Stop::Limit(Error::line_too_long(self.max_line)));
                }
                self.carry.extend_from_slice(&chunk[pos..]);
                return None;
            };
            if self.carry.len() - start + i > self.max_line {
                return Some(Stop::Limit(Error::line_too_long(self.max_line)));
            }
            self.carry.extend_from_slice(&chunk[pos..pos + i]);
            self.line_open = None;
            pos = self.after_line_end(chunk, pos + i);
            self.carry.push(b'\n');
            seg = pos;
            let mut carry = std::mem::take(&mut self.carry);
            let line_end = carry.len() - 1;
            let was_relevant = self.relevant;
            let outcome = self.line(&carry[start..line_end], None);
            match outcome {
                Err(e) => return Some(Stop::Limit(e)),
                Ok(Line::Bare(error)) => return Some(self.stop_in_band(pos, error)),
                Ok(Line::BlockEnd) => {
                    if let Some(error) = self.end_block(&carry) {
                        return Some(self.stop_in_band(pos, error));
                    }
                    carry.clear();
                }
                Ok(Line::Nothing) => {
                    if !was_relevant && !self.relevant {
                        carry.clear();
                    } else if !was_relevant {
                        // The block starts with this line: drop what came before it.
                        carry.drain(..start);
                    }
                }
            }
            self.carry = carry;
        }

        let needles = &*NEEDLES;
        let mut err_cache = Cache::new();
        let mut reason_cache = Cache::new();
        // The next CR at or after `pos` (the chunk's length when there is none): before it, a
        // LF is the only line end.
        let mut next_cr = usize::MAX;
        loop {
            if next_cr == usize::MAX || (next_cr < pos && next_cr < chunk.len()) {
                next_cr = find_byte(b'\r', &chunk[pos..]).map_or(chunk.len(), |i| pos + i);
            }
            if seg == pos && !self.relevant && !self.bare_active && self.carry.is_empty() {
                if let Some((end, found)) =
                    self.whole_block(chunk, pos, next_cr, &mut err_cache, &mut reason_cache)
                {
                    pos = end;
                    seg = pos;
                    if let Some(error) = found {
                        return Some(self.stop_in_band(pos, error));
                    }
                    if pos >= chunk.len() {
                        return None;
                    }
                    continue;
                }
            }
            let line_start = pos;
            let found_end = match find_byte(b'\n', &chunk[pos..next_cr]) {
                Some(i) => Some(i),
                None if next_cr < chunk.len() => Some(next_cr - pos),
                None => None,
            };
            let Some(i) = found_end else {
                // A partial line: keep it (and the block, if it matters) for the next chunk.
                if chunk.len() - line_start > self.max_line {
                    return Some(Stop::Limit(Error::line_too_long(self.max_line)));
                }
                if self.relevant {
                    if self.carry.len() + (chunk.len() - seg) > self.carry_limit() {
                        return Some(Stop::Limit(Error::event_too_long(self.max_event)));
                    }
                    self.line_open = Some(self.carry.len() + (line_start - seg));
                    self.carry.extend_from_slice(&chunk[seg..]);
                } else if line_start < chunk.len() {
                    self.line_open = Some(self.carry.len());
                    self.carry.extend_from_slice(&chunk[line_start..]);
                }
                return None;
            };
            let line_end = pos + i;
            if i > self.max_line {
                return Some(Stop::Limit(Error::line_too_long(self.max_line)));
            }
            pos = self.after_line_end(chunk, line_end);
            let line = &chunk[line_start..line_end];
            // The cheap scan, with matches cached across lines of this chunk, behind the
            // multi-pattern prefilter (none of its patterns: nothing to find).
            let mut hint = None;
            if line.len() >= 4 && &line[..4] == b"data" {
                let mut suspect = false;
                let mut from = line_start;
                if inband::RUN_SCAN.finds(line) {
                    suspect = err_cache.next_from(&needles.error, chunk, line_start) < line_end;
                } else {
                    from = line_end;
                }
                while !suspect && from < line_end {
                    let p = reason_cache.next_from(&needles.reason, chunk, from);
                    if p >= line_end {
                        break;
                    }
                    suspect = inband::reason_is_suspect(&chunk[..line_end], p + 6);
                    from = p + 1;
                }
                hint = Some(suspect);
            }
            let was_relevant = self.relevant;
            match self.line(line, hint) {
                Err(e) => return Some(Stop::Limit(e)),
                Ok(Line::Bare(error)) => return Some(self.stop_in_band(pos, error)),
                Ok(Line::BlockEnd) => {
                    let found = if self.carry.is_empty() {
                        self.end_block(&chunk[seg..pos])
                    } else {
                        let mut carry = std::mem::take(&mut self.carry);
                        carry.extend_from_slice(&chunk[seg..pos]);
                        let found = self.end_block(&carry);
                        carry.clear();
                        self.carry = carry;
                        found
                    };
                    if let Some(error) = found {
                        return Some(self.stop_in_band(pos, error));
                    }
                    seg = pos;
                }
                Ok(Line::Nothing) => {
                    if !was_relevant {
                        // Nothing kept so far: the block (if any) starts at this line.
                        seg = if self.relevant { line_start } else { pos };
                    }
                }
            }
            if pos >= chunk.len() {
                if self.relevant && seg < chunk.len() {
                    if self.carry.len() + (chunk.len() - seg) > self.carry_limit() {
                        return Some(Stop::Limit(Error::event_too_long(self.max_event)));
                    }
                    self.carry.extend_from_slice(&chunk[seg..]);
                }
                return None;
            }
        }
    }

    /// The fast path for a block that starts at `pos` with nothing carried and ends (with an
    /// empty line) before the next CR: its lines are found with one `memchr` each and looked
    /// at in place. Returns the position after the block and the error in it, or `None` (with
    /// nothing changed) when the block needs the general line loop: it is not complete in this
    /// chunk before a CR, it is longer than a limit, or one of its lines starts a bare JSON
    /// document.
    fn whole_block(
        &mut self,
        chunk: &[u8],
        pos: usize,
        next_cr: usize,
        err_cache: &mut Cache,
        reason_cache: &mut Cache,
    ) -> Option<(usize, Option<ApiError>)> {
        let hay = &chunk[pos..next_cr];
        let limit = self.max_line.min(self.max_event);
        let needles = &*NEEDLES;
        let mut ls = 0;
        let mut first_relevant = None;
        let mut has_data = false;
        let mut suspect = false;
        loop {
            let le = ls + memchr::memchr(b'\n', &hay[ls..])?;
            if le == ls {
                break;
            }
            if le >= limit {
                return None;
            }
            let line = &hay[ls..le];
            match line[0] {
                b'd' if field_value(line, b"data").is_some() => {
                    first_relevant.get_or_insert(ls);
                    has_data = true;
                    if !suspect && inband::RUN_SCAN.finds(line) {
                        let (s, e) = (pos + ls, pos + le);
                        suspect = err_cache.next_from(&needles.error, chunk, s) < e;
                        let mut from = s;
                        while !suspect {
                            let p = reason_cache.next_from(&needles.reason, chunk, from);
                            if p >= e {
                                break;
                            }
                            suspect = inband::reason_is_suspect(&chunk[..e], p + 6);
                            from = p + 1;
                        }
                    }
                }
                b'e' => {
                    if let Some(value) = field_value(line, b"event") {
                        first_relevant.get_or_insert(ls);
                        if inband::is_error_event_name(value) {
                            suspect = true;
                        }
                    }
                }
                b'{' | b'[' => return None,
                _ => {}
            }
            ls = le + 1;
        }
        let end = ls + 1;
        let mut found = None;
        if has_data {
            if suspect {
                let start = first_relevant.unwrap_or(0);
                found = self.evaluate(&hay[start..end], false);
            }
            if matches!(self.first, FirstEvent::Pending) {
                self.first = match &found {
                    Some(e) => FirstEvent::Error(e.clone()),
                    None => FirstEvent::Normal,
                };
            }
        }
        Some((pos + end, found))
    }

    /// Consumes the line end at `at` (CR, LF or CR LF) and returns the position after it.
    fn after_line_end(&mut self, chunk: &[u8], at: usize) -> usize {
        let mut pos = at + 1;
        if chunk[at] == b'\r' {
            if pos == chunk.len() {
                self.skip_lf = true;
            } else if chunk[pos] == b'\n' {
                pos += 1;
            }
        }
        pos
    }

    /// A safety net on `carry`: a block within the event limit (counted with one byte per line
    /// end) plus CR LF line ends plus one partial line always fits.
    fn carry_limit(&self) -> usize {
        self.max_event
            .saturating_mul(2)
            .saturating_add(self.max_line)
    }

    fn stop_in_band(&mut self, at: usize, error: ApiError) -> Stop {
        Stop::InBand { at, error }
    }

    /// One complete line. `hint` is the cheap scan's verdict for a `data` line scanned in
    /// place (computed here otherwise).
    fn line(&mut self, line: &[u8], hint: Option<bool>) -> Result<Line, Error> {
        if self.bare_active {
            let sse_line = line.is_empty()
                || line[0] == b':'
                || line.starts_with(b"data")
                || line.starts_with(b"event");
            if !sse_line {
                if self.bare.len() + line.len() + 1 > self.max_event {
                    self.bare_active = false;
                    self.bare.clear();
                    return Ok(Line::Nothing);
                }
                self.bare.extend_from_slice(line);
                self.bare.push(b'\n');
                return Ok(match self.bare_error(false) {
                    Some(e) => Line::Bare(e),
                    None => Line::Nothing,
                });
            }
            self.bare_active = false;
            self.bare.clear();
        }
        let Some(&first) = line.first() else {
            return Ok(Line::BlockEnd);
        };
        if self.relevant {
            self.block_len += line.len() + 1;
            if self.block_len > self.max_event {
                return Err(Error::event_too_long(self.max_event));
            }
        }
        match first {
            b'd' => {
                let Some(value) = field_value(line, b"data") else {
                    return Ok(Line::Nothing);
                };
                self.start_block(line.len());
                self.has_data = true;
                if !self.suspect {
                    self.suspect = hint.unwrap_or_else(|| inband::data_is_suspect(value));
                }
            }
            b'e' => {
                let Some(value) = field_value(line, b"event") else {
                    return Ok(Line::Nothing);
                };
                self.start_block(line.len());
                if inband::is_error_event_name(value) {
                    self.suspect = true;
                }
            }
            b'{' | b'[' => {
                // Not SSE at all: Gemini sends its mid-stream error as a bare JSON document,
                // possibly over several lines.
                self.bare_active = true;
                self.bare.clear();
                if line.len() < self.max_event {
                    self.bare.extend_from_slice(line);
                    self.bare.push(b'\n');
                    if let Some(e) = self.bare_error(false) {
                        return Ok(Line::Bare(e));
                    }
                } else {
                    self.bare_active = false;
                }
            }
            _ => {}
        }
        Ok(Line::Nothing)
    }

    fn start_block(&mut self, line_len: usize) {
        if !self.relevant {
            self.relevant = true;
            self.block_len = line_len + 1;
        }
    }

    /// The block ended with an empty line; `bytes` are its raw bytes from its first relevant
    /// line. Returns an error that stops the stream.
    fn end_block(&mut self, bytes: &[u8]) -> Option<ApiError> {
        let found = if self.relevant && self.has_data && self.suspect {
            self.evaluate(bytes, false)
        } else {
            None
        };
        if self.has_data && matches!(self.first, FirstEvent::Pending) {
            self.first = match &found {
                Some(e) => FirstEvent::Error(e.clone()),
                None => FirstEvent::Normal,
            };
        }
        self.relevant = false;
        self.has_data = false;
        self.suspect = false;
        self.block_len = 0;
        found
    }

    /// Parses a suspect block and reads the error in it. A content-filtered end is recorded
    /// and does not stop the stream.
    fn evaluate(&mut self, bytes: &[u8], at_end: bool) -> Option<ApiError> {
        let mut parser = Parser::new()
            .max_line_bytes(self.max_line)
            .max_event_bytes(self.max_event);
        parser.push(Bytes::copy_from_slice(bytes));
        if at_end {
            parser.push(Bytes::from_static(b"\n\n"));
        }
        parser.finish();
        while let Some(next) = parser.next_event() {
            let Ok(event) = next else { continue };
            if let Some(e) = ApiError::from_sse_event(&event) {
                if e.kind() == ErrorKind::ContentFiltered {
                    if self.content_filter.is_none() {
                        self.content_filter = Some(e);
                    }
                    continue;
                }
                return Some(e);
            }
        }
        None
    }

    /// Tries to read the bare JSON document collected so far.
    fn bare_error(&mut self, at_end: bool) -> Option<ApiError> {
        let last = self.bare.trim_ascii_end().last().copied();
        if !at_end && !matches!(last, Some(b'}' | b']')) {
            return None;
        }
        match serde_json::from_slice::<serde_json::Value>(&self.bare) {
            Ok(v) => {
                self.bare_active = false;
                self.bare.clear();
                let e = inband::from_value(false, &v)?;
                if e.kind() == ErrorKind::ContentFiltered {
                    self.content_filter.get_or_insert(e);
                    return None;
                }
                if matches!(self.first, FirstEvent::Pending) {
                    self.first = FirstEvent::Error(e.clone());
                }
                Some(e)
            }
            Err(e) if e.is_eof() && !at_end => None,
            Err(_) => {
                self.bare_active = false;
                self.bare.clear();
                None
            }
        }
    }
}

/// The first CR or LF in `hay`. Small chunks (a few bytes, as some upstreams send) are looked
/// at byte by byte: a SIMD search costs more to set up than it saves there.
#[inline]
fn find_line_end(hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        hay.iter().position(|&b| b == b'\n' || b == b'\r')
    } else {
        memchr::memchr2(b'\n', b'\r', hay)
    }
}

/// Copies `src` (shorter than [`TINY`] bytes) to the start of `dst` unless it holds a CR or
/// LF; returns whether it copied. A word at a time, with two overlapping loads and stores
/// (this runs once per tiny chunk, where a byte loop's compares and branches, or a call to
/// `memcpy`, would show). One test for any byte below 0x0E (CR, LF and the control bytes
/// below them, which text and JSON rarely carry raw) rules most words out; the exact check
/// runs only on a word it does not.
#[inline]
fn copy_small(src: &[u8], dst: &mut [u8]) -> bool {
    let n = src.len();
    if n >= 8 {
        let mut a = [0; 8];
        let mut b = [0; 8];
        a.copy_from_slice(&src[..8]);
        b.copy_from_slice(&src[n - 8..]);
        let (wa, wb) = (u64::from_le_bytes(a), u64::from_le_bytes(b));
        if (word_has_low_byte(wa) || word_has_low_byte(wb))
            && (word_has_line_end(wa) || word_has_line_end(wb))
        {
            return false;
        }
        dst[..8].copy_from_slice(&a);
        dst[n - 8..n].copy_from_slice(&b);
    } else if n >= 4 {
        let mut a = [0; 4];
        let mut b = [0; 4];
        a.copy_from_slice(&src[..4]);
        b.copy_from_slice(&src[n - 4..]);
        let word = u64::from(u32::from_le_bytes(a)) | (u64::from(u32::from_le_bytes(b)) << 32);
        if word_has_low_byte(word) && word_has_line_end(word) {
            return false;
        }
        dst[..4].copy_from_slice(&a);
        dst[n - 4..n].copy_from_slice(&b);
    } else {
        if src.iter().any(|&b| b == b'\n' || b == b'\r') {
            return false;
        }
        dst[..n].copy_from_slice(src);
    }
    true
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` is below 0x0E (the "has a byte less than n" test, exact for
/// n <= 128), which CR (0x0D) and LF (0x0A) are.
#[inline]
fn word_has_low_byte(word: u64) -> bool {
    word.wrapping_sub(ONES * 0x0E) & !word & HIGHS != 0
}

/// Whether `hay` (shorter than [`TINY`] bytes, as upstreams that send a few bytes at a time
/// produce) holds a CR or LF: [`copy_small`]'s word-wide test, for the parser's tiny-chunk path
/// (the copy goes to a scratch buffer the compiler drops). Longer input answers `true`, which
/// sends the caller to its general path.
#[inline]
pub(crate) fn small_has_line_end(hay: &[u8]) -> bool {
    debug_assert!(hay.len() < TINY);
    hay.len() >= TINY || !copy_small(hay, &mut [0; TINY])
}

/// Whether any byte of `word` is CR or LF (the "has a zero byte" test on `word` XOR each).
#[inline]
fn word_has_line_end(word: u64) -> bool {
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    has_zero(word ^ (ONES * u64::from(b'\n'))) | has_zero(word ^ (ONES * u64::from(b'\r'))) != 0
}

/// The first `byte` in `hay`, byte by byte when `hay` is small (see [`find_line_end`]).
#[inline]
fn find_byte(byte: u8, hay: &[u8]) -> Option<usize> {
    if hay.len() < 16 {
        hay.iter().position(|&b| b == byte)
    } else {
        memchr::memchr(byte, hay)
    }
}

/// The value of field `name` on `line` (`name`, optionally `:` and one space), or `None` when
/// the line is another field.
fn field_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?;
    match rest.split_first() {
        None => Some(rest),
        Some((b':', v)) => Some(v.strip_prefix(b" ").unwrap_or(v)),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Verdict {
        Pending,
        Normal,
        Error(String),
        NoEvent,
    }

    fn verdict(i: &Inspector) -> Verdict {
        match i.first_event() {
            FirstEvent::Pending => Verdict::Pending,
            FirstEvent::Normal => Verdict::Normal,
            FirstEvent::Error(e) => Verdict::Error(e.message().to_owned()),
            FirstEvent::NoEvent => Verdict::NoEvent,
        }
    }

    /// Feeds `input` under every chunking (whole, 1-byte, every 2-way split) and checks the
    /// first-event verdict before and after `finish`.
    fn check(input: &[u8], before_finish: Verdict, after_finish: Verdict) {
        let mut chunkings: Vec<Vec<&[u8]>> = vec![vec![input], input.chunks(1).collect()];
        for i in 1..input.len() {
            let (a, b) = input.split_at(i);
            chunkings.push(vec![a, b]);
        }
        for chunks in chunkings {
            let mut insp = Inspector::new(1 << 20, 1 << 20);
            for c in &chunks {
                let _ = insp.feed(c);
            }
            assert_eq!(verdict(&insp), before_finish, "{} chunks", chunks.len());
            let _ = insp.finish();
            assert_eq!(verdict(&insp), after_finish, "{} chunks", chunks.len());
        }
    }

    #[test]
    fn first_event_error_after_keepalives() {
        check(
            b": ping\n\n: ping\n\ndata: {\"error\":{\"code\":503,\"message\":\"busy\"}}\n\n",
            Verdict::Error("busy".into()),
            Verdict::Error("busy".into()),
        );
    }

    #[test]
    fn first_event_normal() {
        check(
            b": ping\n\ndata: hello\n\ndata: {\"error\":{\"message\":\"late\"}}\n\n",
            Verdict::Normal,
            Verdict::Normal,
        );
    }

    #[test]
    fn first_event_none_when_only_comments_id_retry() {
        check(
            b": ping\n\nid: 1\nretry: 10\n\nevent: x\n\n",
            Verdict::Pending,
            Verdict::NoEvent,
        );
        check(b"", Verdict::Pending, Verdict::NoEvent);
    }

    #[test]
    fn incomplete_event_is_no_event() {
        check(b"data: hello\n", Verdict::Pending, Verdict::NoEvent);
    }

    #[test]
    fn bare_json_error_first() {
        check(
            b"{\n \"error\": {\"code\": 500, \"message\": \"down\"}\n}\n",
            Verdict::Error("down".into()),
            Verdict::Error("down".into()),
        );
    }

    #[test]
    fn content_filter_first_is_normal() {
        check(
            b"data: {\"choices\":[{\"finish_reason\":\"content_filter\"}]}\n\n",
            Verdict::Normal,
            Verdict::Normal,
        );
    }

    #[test]
    fn stop_offset_is_the_end_of_the_error_event() {
        let input = b"data: a\n\ndata: {\"error\":\"x\"}\n\ndata: [DONE]\n\n";
        let mut insp = Inspector::new(1 << 20, 1 << 20);
        match insp.feed(input) {
            Some(Stop::InBand { at, error }) => {
                assert_eq!(&input[..at], b"data: a\n\ndata: {\"error\":\"x\"}\n\n");
                assert_eq!(error.message(), "x");
            }
            other => panic!("{other:?}"),
        }
        assert!(insp.is_done());
    }

    #[test]
    fn normal_events_keep_nothing_buffered() {
        let mut insp = Inspector::new(1 << 20, 1 << 20);
        for _ in 0..100 {
            assert!(
                insp.feed(b"event: delta\ndata: {\"x\":1}\n\n: keepalive\n")
                    .is_none()
            );
            assert_eq!(insp.buffered_len(), 0);
        }
    }

    #[test]
    fn small_copy_agrees_with_a_byte_loop() {
        let mut buf = [b'a'; 15];
        let mut dst = [0; TINY];
        for n in 0..TINY {
            dst.fill(0);
            assert!(copy_small(&buf[..n], &mut dst));
            assert_eq!(&dst[..n], &buf[..n]);
            for at in 0..n {
                for (end, other) in [(b'\n', 0x8a), (b'\r', 0x0e), (b'\n', 0x0c), (b'\r', 0x00)] {
                    buf[at] = end;
                    assert!(!copy_small(&buf[..n], &mut dst), "{n} {at}");
                    buf[at] = other;
                    dst.fill(0);
                    assert!(copy_small(&buf[..n], &mut dst), "{n} {at} {other}");
                    assert_eq!(&dst[..n], &buf[..n], "{n} {at} {other}");
                    buf[at] = b'a';
                }
            }
        }
    }

    #[test]
    fn small_line_end_check_agrees_with_a_byte_loop() {
        let mut buf = [b'a'; TINY - 1];
        for n in 0..TINY {
            assert!(!small_has_line_end(&buf[..n]));
            for at in 0..n {
                for (end, other) in [(b'\n', 0x8a), (b'\r', 0x0e), (b'\n', 0x0c), (b'\r', 0)] {
                    buf[at] = end;
                    assert!(small_has_line_end(&buf[..n]), "{n} {at}");
                    buf[at] = other;
                    assert!(!small_has_line_end(&buf[..n]), "{n} {at} {other}");
                    buf[at] = b'a';
                }
            }
        }
    }

    #[test]
    fn line_limit_is_exact_under_tiny_chunks() {
        const MAX: usize = 40;
        for size in 1..TINY + 2 {
            for len in [MAX - 1, MAX, MAX + 1, MAX + 9] {
                let mut input = vec![b'x'; len];
                input[..5].copy_from_slice(b"data:");
                input.extend_from_slice(b"\n\n");
                let mut insp = Inspector::new(MAX, 1 << 20);
                let mut fed = 0;
                let mut stopped_at = None;
                for c in input.chunks(size) {
                    fed += c.len();
                    if let Some(stop) = insp.feed(c) {
                        assert!(matches!(stop, Stop::Limit(_)), "{size} {len}");
                        stopped_at = Some(fed);
                        break;
                    }
                }
                // The line's bytes (without its end) exceed the limit in the chunk that holds
                // byte MAX + 1; nothing is reported when they do not.
                let want = (len > MAX).then(|| ((MAX + 1).div_ceil(size) * size).min(input.len()));
                assert_eq!(stopped_at, want, "chunks of {size}, line of {len}");
                if want.is_none() {
                    assert_eq!(insp.buffered_len(), 0, "{size} {len}");
                }
            }
        }
    }

    #[test]
    fn endless_comment_lines_without_blank_line_are_not_an_event_limit() {
        let mut insp = Inspector::new(64, 128);
        for _ in 0..1000 {
            assert!(insp.feed(b": ping\n").is_none());
        }
        assert!(insp.buffered_len() < 64);
    }
}
