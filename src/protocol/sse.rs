//! Incremental Server-Sent Events parser following the WHATWG event-stream rules.
//!
//! Bytes arrive in arbitrary chunks; [`SseParser::feed`] scans each byte once (no re-scan of
//! earlier input), accepts LF, CRLF and CR line ends (including a CRLF split across chunks), joins
//! multi-line `data:` fields, reports `:` comments (keep-alives) separately and strips a leading
//! byte-order mark. Invalid UTF-8 is replaced (and the event flagged), never a panic. A line, or
//! an event's data, longer than the parser's limit is reported once as [`SseItem::Oversized`];
//! the parser then ignores the rest of the stream, so a hostile server cannot make it buffer
//! without end. Both limits count the bytes as sent, so whether a stream passes does not depend
//! on how its bytes were cut into reads.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, if any (`None` means the default type, "message").
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The last `id:` field seen in this event, if any.
    pub id: Option<String>,
    /// Some `data:` bytes were not valid UTF-8 (they were replaced with U+FFFD).
    pub invalid_utf8: bool,
}

/// What the parser produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    Event(SseEvent),
    /// A `:` comment line (servers send these as keep-alives); text after the colon.
    Comment(String),
    /// A line or an event's data passed the size limit; parsing stopped.
    Oversized(TooLarge),
}

/// What passed an [`SseParser`]'s size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TooLarge {
    /// One line: field name, value and all, without its line end.
    Line,
    /// One event's data: its `data:` values joined with `\n`, counted as sent (before invalid
    /// UTF-8 is replaced).
    EventData,
}

impl TooLarge {
    /// What passed the limit, in words: "line" or "event's data".
    pub fn describe(self) -> &'static str {
        match self {
            TooLarge::Line => "line",
            TooLarge::EventData => "event's data",
        }
    }
}

/// One dispatched event, borrowed from the bytes fed or from the parser's buffer: valid only
/// during the visit that receives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseEventRef<'a> {
    /// The `event:` field, if any (`None` means the default type, "message").
    pub event: Option<&'a str>,
    /// The `data:` lines joined with `\n`.
    pub data: &'a str,
    /// The last `id:` field seen in this event, if any.
    pub id: Option<&'a str>,
    /// Some `data:` bytes were not valid UTF-8 (they were replaced with U+FFFD).
    pub invalid_utf8: bool,
}

/// What the parser hands a visitor: [`SseItem`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseItemRef<'a> {
    Event(SseEventRef<'a>),
    /// A `:` comment line; text after the colon (and its leading white space).
    Comment(&'a str),
    /// A line or an event's data passed the size limit; parsing stopped.
    Oversized(TooLarge),
}

impl SseItemRef<'_> {
    /// The item, owned.
    pub fn to_owned_item(&self) -> SseItem {
        match *self {
            SseItemRef::Event(event) => SseItem::Event(SseEvent {
                event: event.event.map(str::to_string),
                data: event.data.to_string(),
                id: event.id.map(str::to_string),
                invalid_utf8: event.invalid_utf8,
            }),
            SseItemRef::Comment(text) => SseItem::Comment(text.to_string()),
            SseItemRef::Oversized(what) => SseItem::Oversized(what),
        }
    }
}

/// What [`SseParser::whole_data_event`] found at a line start.
enum DataLine {
    /// A whole `data: …` event, marked for dispatch; the scan goes on at `after`.
    WholeEvent { after: usize },
    /// A data line that is not a whole event alone: it ends at `end` (a CR or LF in the chunk),
    /// or (`None`) not within the chunk.
    Line { end: Option<usize> },
    /// Not a data line that could start an event: the line end is still to be found.
    NotChecked,
}

/// Default limit on one line, and on one event's data: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Streaming parser state.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Set once the limit was passed: everything after is ignored.
    stopped: bool,
    invalid_utf8: bool,
    /// Bytes of an unfinished line carried over from earlier chunks.
    partial_line: Vec<u8>,
    /// The previous chunk ended in CR: a leading LF in the next chunk belongs to that line end.
    pending_cr: bool,
    /// Whether the start of the stream (and a possible BOM) is behind us.
    started: bool,
    /// The event's data so far, when it is not (only) in the bytes being scanned.
    data: String,
    /// The event's only data line so far, as a range of the bytes being scanned (not yet
    /// copied: most events start and end within one read). Moved into `data` before a scan
    /// returns or when a second data line comes.
    data_in_chunk: Option<(usize, usize)>,
    /// Bytes of the event's data as sent (values and the `\n` between them), for the limit.
    data_bytes: usize,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A parser that reports a line, or an event's data, longer than `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            stopped: false,
            invalid_utf8: false,
            partial_line: Vec::new(),
            pending_cr: false,
            started: false,
            data: String::new(),
            data_in_chunk: None,
            data_bytes: 0,
            has_data: false,
            event: None,
            id: None,
        }
    }

    /// Parses `chunk`, appending complete events and comments to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) {
        let visited: Result<(), std::convert::Infallible> = self.feed_each(chunk, |item| {
            out.push(item.to_owned_item());
            Ok(())
        });
        let Ok(()) = visited;
    }

    /// Parses `chunk`, handing each complete event and comment to `visit` as it is found,
    /// without copying an event's data when it lies whole within `chunk`. An error from
    /// `visit` stops the scan and is returned; the rest of `chunk` is then not parsed.
    pub fn feed_each<E>(
        &mut self,
        mut chunk: &[u8],
        mut visit: impl FnMut(SseItemRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.stopped {
            return Ok(());
        }
        // A CR ended the last chunk: an LF starting this one belongs to it (one CRLF), and only
        // that one LF; an empty chunk says nothing yet.
        if self.pending_cr && !chunk.is_empty() {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        if !self.started && self.partial_line.is_empty() && chunk.len() >= 3 {
            // The first chunk shows whether the stream starts with a BOM.
            self.started = true;
            chunk = chunk.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(chunk);
        }
        if !self.started {
            // A BOM may itself be split across chunks: wait until three bytes are known.
            self.partial_line.extend_from_slice(chunk);
            if self.partial_line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.partial_line) {
                return Ok(());
            }
            self.started = true;
            let mut buffered = std::mem::take(&mut self.partial_line);
            if buffered.starts_with(b"\xEF\xBB\xBF") {
                buffered.drain(..3);
            }
            return self.scan(&buffered, &mut visit);
        }
        self.scan(chunk, &mut visit)
    }

    fn scan<E>(
        &mut self,
        chunk: &[u8],
        visit: &mut impl FnMut(SseItemRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let scanned = self.scan_lines(chunk, visit);
        // What the event holds of this chunk must outlive it.
        self.keep_data_in_chunk(chunk);
        scanned
    }

    fn scan_lines<E>(
        &mut self,
        chunk: &[u8],
        visit: &mut impl FnMut(SseItemRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut start = 0;
        loop {
            if self.stopped {
                return Ok(());
            }
            let line_end = match self.whole_data_event(chunk, start) {
                DataLine::WholeEvent { after } => {
                    self.dispatch(chunk, visit)?;
                    start = after;
                    continue;
                }
                DataLine::Line { end } => end,
                DataLine::NotChecked => {
                    memchr::memchr2(b'\n', b'\r', &chunk[start..]).map(|offset| start + offset)
                }
            };
            let Some(end) = line_end else {
                break;
            };
            if self.partial_line.is_empty() {
                self.process_line(chunk, &chunk[start..end], Some(start), visit)?;
            } else {
                let mut whole = std::mem::take(&mut self.partial_line);
                whole.extend_from_slice(&chunk[start..end]);
                let processed = self.process_line(chunk, &whole, None, visit);
                whole.clear();
                self.partial_line = whole;
                processed?;
            }
            start = end + 1;
            if chunk[end] == b'\r' {
                if start < chunk.len() {
                    if chunk[start] == b'\n' {
                        start += 1;
                    }
                } else {
                    self.pending_cr = true;
                }
            }
        }
        if self.stopped {
            return Ok(());
        }
        self.partial_line.extend_from_slice(&chunk[start..]);
        if self.partial_line.len() > self.max_event_bytes {
            // Already longer than the limit, so the whole line will be too.
            return self.stop(TooLarge::Line, visit);
        }
        Ok(())
    }

    /// The common event, `data: …` then a blank line, both ended by LF, starting at `start` and
    /// whole in `chunk`, with nothing of another event pending: its data is marked for
    /// [`Self::dispatch`] in one step. Anything else (another field, CR line ends, a second data
    /// line, a line past the limit) is read line by line, as the standard describes, from the
    /// line end found here if one was (no byte is searched twice).
    #[inline]
    fn whole_data_event(&mut self, chunk: &[u8], start: usize) -> DataLine {
        let Some(value) = chunk[start..].strip_prefix(b"data:") else {
            return DataLine::NotChecked;
        };
        if self.has_data || !self.partial_line.is_empty() {
            return DataLine::NotChecked;
        }
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let value_start = chunk.len() - value.len();
        let Some(line_end) = memchr::memchr2(b'\n', b'\r', value).map(|at| value_start + at) else {
            return DataLine::Line { end: None };
        };
        if chunk.get(line_end..line_end + 2) != Some(b"\n\n")
            || line_end - start > self.max_event_bytes
        {
            return DataLine::Line {
                end: Some(line_end),
            };
        }
        self.data_in_chunk = Some((value_start, line_end));
        self.data_bytes = line_end - value_start;
        self.has_data = true;
        DataLine::WholeEvent {
            after: line_end + 2,
        }
    }

    /// Copies the event's data still in `chunk` into the parser's own buffer.
    fn keep_data_in_chunk(&mut self, chunk: &[u8]) {
        if let Some((start, end)) = self.data_in_chunk.take() {
            debug_assert!(self.data.is_empty());
            self.push_data(&chunk[start..end]);
        }
    }

    fn push_data(&mut self, value: &[u8]) {
        match std::str::from_utf8(value) {
            Ok(text) => self.data.push_str(text),
            Err(_) => {
                self.invalid_utf8 = true;
                self.data.push_str(&String::from_utf8_lossy(value));
            }
        }
    }

    /// Reports what passed the limit and stops parsing; everything buffered is dropped.
    fn stop<E>(
        &mut self,
        what: TooLarge,
        visit: &mut impl FnMut(SseItemRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.stopped = true;
        self.partial_line = Vec::new();
        self.data = String::new();
        self.data_in_chunk = None;
        self.data_bytes = 0;
        self.has_data = false;
        visit(SseItemRef::Oversized(what))
    }

    /// Processes one line: `line` lies in `chunk` at `at_in_chunk`, or (`None`) was joined from
    /// pieces carried over from earlier chunks.
    fn process_line<E>(
        &mut self,
        chunk: &[u8],
        line: &[u8],
        at_in_chunk: Option<usize>,
        visit: &mut impl FnMut(SseItemRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if line.is_empty() {
            return self.dispatch(chunk, visit);
        }
        if line.len() > self.max_event_bytes {
            return self.stop(TooLarge::Line, visit);
        }
        if let Some(comment) = line.strip_prefix(b":") {
            let text = String::from_utf8_lossy(comment);
            return visit(SseItemRef::Comment(text.trim_start()));
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                let data_bytes = if self.has_data {
                    self.data_bytes + 1 + value.len()
                } else {
                    value.len()
                };
                if data_bytes > self.max_event_bytes {
                    return self.stop(TooLarge::EventData, visit);
                }
                self.data_bytes = data_bytes;
                match at_in_chunk {
                    // The first data line, whole in this chunk: read in place at dispatch.
                    Some(line_start) if !self.has_data => {
                        let start = line_start + (line.len() - value.len());
                        self.data_in_chunk = Some((start, line_start + line.len()));
                    }
                    _ => {
                        self.keep_data_in_chunk(chunk);
                        if self.has_data {
                            self.data.push('\n');
                        }
                        self.push_data(value);
                    }
                }
                self.has_data = true;
                Ok(())
            }
            b"event" => {
                self.event = Some(String::from_utf8_lossy(value).into_owned());
                Ok(())
            }
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned());
                Ok(())
            }
            _ => Ok(()), // `retry` and unknown fields are ignored, as the standard says.
        }
    }

    fn dispatch<E>(
        &mut self,
        chunk: &[u8],
        visit: &mut impl FnMut(SseItemRef<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.has_data {
            self.event = None;
            self.id = None;
            return Ok(());
        }
        self.has_data = false;
        self.data_bytes = 0;
        let mut invalid_utf8 = std::mem::take(&mut self.invalid_utf8);
        let lossy;
        let data = match self.data_in_chunk.take() {
            Some((start, end)) => match std::str::from_utf8(&chunk[start..end]) {
                Ok(text) => text,
                Err(_) => {
                    invalid_utf8 = true;
                    lossy = String::from_utf8_lossy(&chunk[start..end]);
                    &lossy
                }
            },
            None => &self.data,
        };
        let visited = visit(SseItemRef::Event(SseEventRef {
            event: self.event.as_deref(),
            data,
            id: self.id.as_deref(),
            invalid_utf8,
        }));
        self.data.clear();
        self.event = None;
        self.id = None;
        visited
    }

    /// True when bytes of an unfinished event are buffered (a stream that ends here was cut).
    pub fn has_partial_event(&self) -> bool {
        self.has_data || !self.partial_line.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream recorded in the shape real OpenAI-compatible servers send, with every line-end
    /// style, a keep-alive comment, a multi-line data field and a non-ASCII character.
    const RECORDED: &[u8] = b"\xEF\xBB\xBF: keep-alive\n\n\
data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n\
data: {\"choices\":[{\"delta\":{\"content\":\"H\xC3\xA9\"}}]}\r\n\r\n\
event: message\rid: 7\rdata: line one\rdata: line two\r\r\
: ping\r\n\
data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n\
data: [DONE]\n\n";

    fn parse_in_pieces(pieces: &[&[u8]]) -> Vec<SseItem> {
        parse_with_limit(DEFAULT_MAX_EVENT_BYTES, pieces)
    }

    fn parse_with_limit(limit: usize, pieces: &[&[u8]]) -> Vec<SseItem> {
        let mut parser = SseParser::with_limit(limit);
        let mut out = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut out);
        }
        out
    }

    fn expected() -> Vec<SseItem> {
        let event = |data: &str| {
            SseItem::Event(SseEvent {
                event: None,
                data: data.to_string(),
                id: None,
                invalid_utf8: false,
            })
        };
        vec![
            SseItem::Comment("keep-alive".into()),
            event("{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}"),
            event("{\"choices\":[{\"delta\":{\"content\":\"Hé\"}}]}"),
            SseItem::Event(SseEvent {
                event: Some("message".into()),
                data: "line one\nline two".into(),
                id: Some("7".into()),
                invalid_utf8: false,
            }),
            SseItem::Comment("ping".into()),
            event("{\"choices\":[],\"usage\":{\"completion_tokens\":2}}"),
            event("[DONE]"),
        ]
    }

    #[test]
    fn whole_stream_parses() {
        assert_eq!(parse_in_pieces(&[RECORDED]), expected());
    }

    #[test]
    fn every_split_point_gives_identical_events() {
        for split in 0..=RECORDED.len() {
            let (a, b) = RECORDED.split_at(split);
            assert_eq!(
                parse_in_pieces(&[a, b]),
                expected(),
                "split at byte {split}"
            );
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_identical_events() {
        for first in 0..=RECORDED.len() {
            for second in first..=RECORDED.len() {
                let pieces = [
                    &RECORDED[..first],
                    &RECORDED[first..second],
                    &RECORDED[second..],
                ];
                assert_eq!(
                    parse_in_pieces(&pieces),
                    expected(),
                    "splits {first},{second}"
                );
            }
        }
    }

    #[test]
    fn a_crlf_split_after_the_cr_swallows_only_its_own_lf() {
        // Found by proptest: "\r" | "\n" | "\n" lost the blank line that ends the event.
        let items = parse_in_pieces(&[b"data: x\r", b"\n", b"", b"\n"]);
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(parse_in_pieces(&[b"data: x\r\n\n"]), items);
    }

    #[test]
    fn byte_at_a_time_parses() {
        let pieces: Vec<&[u8]> = RECORDED.chunks(1).collect();
        assert_eq!(parse_in_pieces(&pieces), expected());
    }

    #[test]
    fn data_without_space_and_empty_data_lines() {
        let items = parse_in_pieces(&[b"data:x\ndata\ndata: y\n\nevent: only\n\n"]);
        assert_eq!(
            items,
            vec![SseItem::Event(SseEvent {
                event: None,
                data: "x\n\ny".into(),
                id: None,
                invalid_utf8: false,
            })]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let items = parse_in_pieces(&[b"data: \xFF\xFEok\n\n"]);
        assert_eq!(
            items,
            vec![SseItem::Event(SseEvent {
                event: None,
                data: "\u{FFFD}\u{FFFD}ok".into(),
                id: None,
                invalid_utf8: true,
            })]
        );
    }

    #[test]
    fn an_oversized_event_is_reported_once_and_parsing_stops() {
        let mut parser = SseParser::with_limit(64);
        let mut out = Vec::new();
        parser.feed(b"data: ok\n\n", &mut out);
        let big = format!("data: {}", "x".repeat(40));
        for _ in 0..3 {
            parser.feed(big.as_bytes(), &mut out);
        }
        parser.feed(b"\n\ndata: after\n\n", &mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1], SseItem::Oversized(TooLarge::Line));
        // Many short data lines whose joined data passes the limit count too.
        let lines = "data: 0123456789\n".repeat(10);
        assert_eq!(
            parse_with_limit(64, &[lines.as_bytes()]),
            vec![SseItem::Oversized(TooLarge::EventData)]
        );
        // So does one whole event in one read, however it is read.
        for event in ["data: x\n\n", "data: x\r\n\r\n"] {
            let event = event.replace('x', &"x".repeat(80));
            assert_eq!(
                parse_with_limit(64, &[event.as_bytes()]),
                vec![SseItem::Oversized(TooLarge::Line)],
                "{event:?}"
            );
        }
    }

    /// Whether a long line or event fails must not depend on how the server's bytes were cut:
    /// every line counts, comments and other fields included, whole in one read or not.
    #[test]
    fn the_limits_hold_however_the_stream_is_cut() {
        let limit = 16;
        let cases: [(&[u8], Vec<SseItem>); 6] = [
            // A comment, `event:` or `id:` line one byte over the limit.
            (
                b": 123456789012345\n\n",
                vec![SseItem::Oversized(TooLarge::Line)],
            ),
            (
                b"event: 1234567890\n\n",
                vec![SseItem::Oversized(TooLarge::Line)],
            ),
            (
                b"id: 1234567890123\n\n",
                vec![SseItem::Oversized(TooLarge::Line)],
            ),
            // A data line at the limit passes; its field name counts towards it.
            (
                b"data: 1234567890\n\n",
                vec![SseItem::Event(SseEvent {
                    event: None,
                    data: "1234567890".into(),
                    id: None,
                    invalid_utf8: false,
                })],
            ),
            (
                b"data: 12345678901\n\n",
                vec![SseItem::Oversized(TooLarge::Line)],
            ),
            // Invalid UTF-8 counts as sent (5 + 1 + 5 bytes), not as its replacement (31).
            (
                b"data:\xff\xff\xff\xff\xff\ndata:\xff\xff\xff\xff\xff\n\n",
                vec![SseItem::Event(SseEvent {
                    event: None,
                    data: format!("{0}\n{0}", "\u{fffd}".repeat(5)),
                    id: None,
                    invalid_utf8: true,
                })],
            ),
        ];
        for (stream, expected) in cases {
            assert_eq!(
                parse_with_limit(limit, &[stream]),
                expected,
                "{stream:?} whole"
            );
            let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
            assert_eq!(
                parse_with_limit(limit, &bytewise),
                expected,
                "{stream:?} bytewise"
            );
        }
        // Joined data lines: 7 + 1 + 7 bytes pass, one more does not.
        let joined = b"data: 1234567\ndata: 1234567\n\n";
        assert!(matches!(
            parse_with_limit(15, &[joined]).as_slice(),
            [SseItem::Event(_)]
        ));
        assert_eq!(
            parse_with_limit(14, &[joined]),
            vec![SseItem::Oversized(TooLarge::EventData)]
        );
    }

    #[test]
    fn an_event_whole_in_one_chunk_is_read_in_place_and_others_are_copied() {
        let chunk = b"data: in place\n\ndata: split";
        let mut parser = SseParser::new();
        let mut seen = Vec::new();
        let visited: Result<(), ()> = parser.feed_each(chunk, |item| {
            if let SseItemRef::Event(event) = item {
                let range = chunk.as_ptr_range();
                seen.push((event.data.to_string(), range.contains(&event.data.as_ptr())));
            }
            Ok(())
        });
        visited.unwrap();
        let rest = b" across\n\n";
        let visited: Result<(), ()> = parser.feed_each(rest, |item| {
            if let SseItemRef::Event(event) = item {
                let range = rest.as_ptr_range();
                seen.push((event.data.to_string(), range.contains(&event.data.as_ptr())));
            }
            Ok(())
        });
        visited.unwrap();
        assert_eq!(
            seen,
            vec![("in place".into(), true), ("split across".into(), false)]
        );
    }

    #[test]
    fn a_visitor_error_stops_the_scan() {
        let mut parser = SseParser::new();
        let mut visits = 0;
        let visited = parser.feed_each(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", |_| {
            visits += 1;
            if visits == 2 {
                Err("stop")
            } else {
                Ok(())
            }
        });
        assert_eq!((visited, visits), (Err("stop"), 2));
    }

    #[test]
    fn an_unterminated_event_is_reported_as_partial() {
        let mut parser = SseParser::new();
        let mut out = Vec::new();
        parser.feed(b"data: {\"choices\":", &mut out);
        assert!(out.is_empty());
        assert!(parser.has_partial_event());
        parser.feed(b"[]}\n\n", &mut out);
        assert_eq!(out.len(), 1);
        assert!(!parser.has_partial_event());
    }
}
