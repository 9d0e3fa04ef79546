//! Incremental Server-Sent Events parser following the WHATWG event-stream rules.
//!
//! Bytes arrive in arbitrary chunks; [`SseParser::feed`] scans each byte once (no re-scan of
//! earlier input), accepts LF, CRLF and CR line ends (including a CRLF split across chunks), joins
//! multi-line `data:` fields, reports `:` comments (keep-alives) separately and strips a leading
//! byte-order mark. Invalid UTF-8 is replaced (and the event flagged), never a panic. An event or
//! line larger than the parser's limit is reported once as [`SseItem::Oversized`]; the parser
//! then ignores the rest of the stream, so a hostile server cannot make it buffer without end.

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
    /// An event or line passed the size limit (bytes buffered when it did); parsing stopped.
    Oversized(usize),
}

/// Default limit on one event's data (and one line): 1 MiB.
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
    data: String,
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

    /// A parser that reports events (or lines) larger than `max_event_bytes`.
    pub fn with_limit(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            stopped: false,
            invalid_utf8: false,
            partial_line: Vec::new(),
            pending_cr: false,
            started: false,
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
        }
    }

    /// Parses `chunk`, appending complete events and comments to `out`.
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseItem>) {
        if self.stopped {
            return;
        }
        // A CR ended the last chunk: an LF starting this one belongs to it (one CRLF), and only
        // that one LF; an empty chunk says nothing yet.
        if self.pending_cr && !chunk.is_empty() {
            self.pending_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        if !self.started {
            // A BOM may itself be split across chunks: wait until three bytes are known.
            self.partial_line.extend_from_slice(chunk);
            if self.partial_line.len() < 3 && b"\xEF\xBB\xBF".starts_with(&self.partial_line) {
                return;
            }
            self.started = true;
            let mut buffered = std::mem::take(&mut self.partial_line);
            if buffered.starts_with(b"\xEF\xBB\xBF") {
                buffered.drain(..3);
            }
            self.scan(&buffered, out);
            return;
        }
        self.scan(chunk, out);
    }

    fn scan(&mut self, chunk: &[u8], out: &mut Vec<SseItem>) {
        let mut start = 0;
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &chunk[start..]) {
            if self.stopped {
                return;
            }
            let end = start + offset;
            let line = &chunk[start..end];
            if self.partial_line.is_empty() {
                self.process_line(line, out);
            } else {
                let mut whole = std::mem::take(&mut self.partial_line);
                whole.extend_from_slice(line);
                self.process_line(&whole, out);
                whole.clear();
                self.partial_line = whole;
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
            return;
        }
        self.partial_line.extend_from_slice(&chunk[start..]);
        self.check_limit(out);
    }

    fn check_limit(&mut self, out: &mut Vec<SseItem>) {
        let buffered = self.partial_line.len() + self.data.len();
        if !self.stopped && buffered > self.max_event_bytes {
            self.stopped = true;
            self.partial_line = Vec::new();
            self.data = String::new();
            self.has_data = false;
            out.push(SseItem::Oversized(buffered));
        }
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseItem>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if let Some(comment) = line.strip_prefix(b":") {
            out.push(SseItem::Comment(
                String::from_utf8_lossy(comment).trim_start().to_string(),
            ));
            return;
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
                if self.has_data {
                    self.data.push('\n');
                }
                match std::str::from_utf8(value) {
                    Ok(text) => self.data.push_str(text),
                    Err(_) => {
                        self.invalid_utf8 = true;
                        self.data.push_str(&String::from_utf8_lossy(value));
                    }
                }
                self.has_data = true;
                self.check_limit(out);
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.id = Some(String::from_utf8_lossy(value).into_owned())
            }
            _ => {} // `retry` and unknown fields are ignored, as the standard says.
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseItem>) {
        let event = self.event.take();
        let id = self.id.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseItem::Event(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
            id,
            invalid_utf8: std::mem::take(&mut self.invalid_utf8),
        }));
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
        let mut parser = SseParser::new();
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
        assert!(matches!(out[1], SseItem::Oversized(n) if n > 64));
        // Many complete lines that add up past the limit count too.
        let mut parser = SseParser::with_limit(64);
        let mut out = Vec::new();
        parser.feed("data: 0123456789\n".repeat(10).as_bytes(), &mut out);
        assert!(matches!(out.as_slice(), [SseItem::Oversized(_)]), "{out:?}");
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
