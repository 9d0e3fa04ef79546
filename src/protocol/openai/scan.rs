//! A direct reader for the streamed chunk as servers nearly always send it: strings without
//! escapes, no usage, error or tool calls. It walks the JSON bytes once and folds each choice
//! with the same [`ChunkFold::add_choice`] the full reader uses, in a fraction of serde's time
//! (this runs for every event of every stream).
//!
//! It is strict JSON (RFC 8259) and gives up, returning `None`, on anything it does not read
//! itself: an escape or a control character in a string, a non-null `usage`, `error` or
//! `tool_calls`, a delta field named twice, nesting deeper than [`MAX_DEPTH`], or any syntax
//! error. The caller then reads the chunk with serde, whose answer (or error) stands. Whatever it
//! returns equals what the full reader returns for the same text: a property test and the
//! `sse_stream` fuzz target check it.

use std::borrow::Cow;

use super::chunk_fold::ChunkFold;
use super::{ChunkInfo, WireDelta, WireText};

/// Deepest nesting of arrays and objects read here (the chunk is 4 deep); deeper chunks go to
/// serde, which has its own limit.
const MAX_DEPTH: usize = 16;

/// The chunk's measured parts, or `None` when the chunk is not in the common shape (or is not
/// valid JSON) and must be read in full.
pub(super) fn common_chunk(data: &str) -> Option<ChunkInfo<'_>> {
    let mut json = Cursor { text: data, at: 0 };
    let mut fold = ChunkFold::default();
    json.object(1, |json, key| match key {
        "model" => {
            fold.info.model = json.null_or_string()?.map(Cow::Borrowed);
            Some(())
        }
        "choices" => json.null_or_array(2, |json| choice(json, &mut fold)),
        // Present and null is the same as absent; anything else is read in full.
        "usage" | "error" => json.literal(b"null"),
        _ => json.skip_value(2),
    })?;
    json.skip_whitespace();
    (json.at == data.len()).then_some(fold.info)
}

/// One choice: its delta (chat), its text (legacy completions) and its finish reason, the
/// last of each when a key repeats (as the full reader takes them).
fn choice<'a>(json: &mut Cursor<'a>, fold: &mut ChunkFold<'a>) -> Option<()> {
    let (mut delta, mut text, mut finish_reason) = (None, None, None);
    json.object(3, |json, key| {
        match key {
            "delta" => json.null_or_delta(&mut delta)?,
            "text" => text = json.null_or_string()?.map(wire_text),
            "finish_reason" => finish_reason = json.null_or_string()?.map(wire_text),
            _ => json.skip_value(4)?,
        }
        Some(())
    })?;
    fold.add_choice(delta.as_mut(), text, finish_reason);
    Some(())
}

/// Where a string of a learned chunk lies: counted from the start when it comes before the
/// chunk's text, from the end when after.
#[derive(Debug, Clone, Copy)]
enum Span {
    FromStart(usize, usize),
    FromEnd(usize, usize),
}

impl Span {
    fn of(field: &str, chunk: &str, text_start: usize) -> Option<Self> {
        let start = offset_in(field, chunk)?;
        let end = start + field.len();
        Some(if end <= text_start {
            Span::FromStart(start, end)
        } else {
            Span::FromEnd(chunk.len() - start, chunk.len() - end)
        })
    }

    fn in_chunk(self, chunk: &str) -> Option<&str> {
        match self {
            Span::FromStart(start, end) => chunk.get(start..end),
            Span::FromEnd(start, end) => {
                chunk.get(chunk.len().checked_sub(start)?..chunk.len().checked_sub(end)?)
            }
        }
    }
}

/// Where `part` starts within `whole`, if it is a slice of it.
fn offset_in(part: &str, whole: &str) -> Option<usize> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    (start + part.len() <= whole.len()).then_some(start)
}

/// A chunk read directly whose output text is one plain string, kept as a template for the
/// next chunks of its stream. Servers send every content chunk of a stream in the same bytes but
/// for that string (same id, model, created time, keys and order), so a chunk that is the
/// template's bytes before the text, a non-empty plain string, and the template's bytes after
/// it is read by comparing bytes: it is the same JSON with another string in the same place,
/// and reading it through gives the template's result with the new text. Anything else (a
/// per-chunk random field, another shape) is read directly and, if it qualifies, becomes the
/// new template.
#[derive(Debug, Default)]
pub(super) struct Template {
    chunk: String,
    text_start: usize,
    text_end: usize,
    model: Option<Span>,
    finish_reason: Option<Span>,
    has_output: bool,
    has_answer: bool,
    has_reasoning: bool,
    refusal: bool,
}

impl Template {
    /// Keeps `chunk`, read into `info` by [`common_chunk`], as the template in `slot` if its
    /// text is one non-empty string in place (the slot's allocation is reused).
    pub(super) fn learn(slot: &mut Option<Box<Template>>, chunk: &str, info: &ChunkInfo<'_>) {
        let Cow::Borrowed(text) = &info.text else {
            return;
        };
        let Some(text_start) = offset_in(text, chunk).filter(|_| !text.is_empty()) else {
            return;
        };
        let span = |field: &Option<Cow<'_, str>>| match field {
            None => Some(None),
            Some(Cow::Borrowed(field)) => Span::of(field, chunk, text_start).map(Some),
            Some(Cow::Owned(_)) => None,
        };
        let (Some(model), Some(finish_reason)) = (span(&info.model), span(&info.finish_reason))
        else {
            return;
        };
        let kept = slot.get_or_insert_with(Box::default);
        kept.chunk.clear();
        kept.chunk.push_str(chunk);
        kept.text_start = text_start;
        kept.text_end = text_start + text.len();
        kept.model = model;
        kept.finish_reason = finish_reason;
        kept.has_output = info.has_output;
        kept.has_answer = info.has_answer;
        kept.has_reasoning = info.has_reasoning;
        kept.refusal = info.refusal;
    }

    /// `chunk` read through the template, if it is the template's bytes with another
    /// non-empty plain string as its text.
    pub(super) fn read<'a>(&self, chunk: &'a str) -> Option<ChunkInfo<'a>> {
        let before = &self.chunk.as_bytes()[..self.text_start];
        let after = &self.chunk.as_bytes()[self.text_end..];
        let bytes = chunk.as_bytes();
        if bytes.len() <= before.len() + after.len()
            || !bytes.starts_with(before)
            || !bytes.ends_with(after)
        {
            return None;
        }
        let text = chunk.get(before.len()..chunk.len() - after.len())?;
        if !is_plain(text) {
            return None;
        }
        let field = |span: Option<Span>| match span {
            None => Some(None),
            Some(span) => span.in_chunk(chunk).map(|field| Some(Cow::Borrowed(field))),
        };
        Some(ChunkInfo {
            has_output: self.has_output,
            has_answer: self.has_answer,
            has_reasoning: self.has_reasoning,
            refusal: self.refusal,
            finish_reason: field(self.finish_reason)?,
            model: field(self.model)?,
            usage: None,
            text: Cow::Borrowed(text),
            tool: None,
        })
    }
}

/// Whether `text` could be a string's contents as it stands: no quote, backslash or control
/// character.
fn is_plain(text: &str) -> bool {
    first_stop(text.as_bytes()).is_none()
}

/// Where the first byte that ends a plain string (`"`, `\`, below 0x20) lies in `bytes`, read
/// eight bytes at a time.
#[inline]
fn first_stop(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(word) = bytes
        .get(at..at + 8)
        .and_then(|w| <[u8; 8]>::try_from(w).ok())
    {
        let found = string_stops(u64::from_le_bytes(word));
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let offset = bytes[at..]
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
    Some(at + offset)
}

fn wire_text(text: &str) -> WireText<'_> {
    WireText(Cow::Borrowed(text))
}

/// A position in the chunk's text.
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// Skips JSON whitespace (space, tab, line feed, carriage return).
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    /// Consumes `byte` after any whitespace.
    fn expect(&mut self, byte: u8) -> Option<()> {
        self.skip_whitespace();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    /// Consumes `word` (`null`, `true`, `false`) after any whitespace.
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.skip_whitespace();
        let rest = &self.text.as_bytes()[self.at..];
        rest.starts_with(word).then(|| self.at += word.len())
    }

    /// A string with no escapes or control characters, in place (after any whitespace): its end
    /// is the first byte that is a quote, a backslash or a control character, and it must be
    /// the quote.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let end = start + first_stop(&self.text.as_bytes()[start..])?;
        (self.text.as_bytes()[end] == b'"').then_some(())?;
        self.at = end + 1;
        // Both ends are at ASCII quotes, so on character boundaries.
        self.text.get(start..end)
    }

    /// `null` (None) or a plain string.
    fn null_or_string(&mut self) -> Option<Option<&'a str>> {
        self.skip_whitespace();
        if self.peek()? == b'n' {
            self.literal(b"null").map(|()| None)
        } else {
            self.string().map(Some)
        }
    }

    /// `null`, or an array whose every element `each` reads.
    fn null_or_array(
        &mut self,
        depth: usize,
        each: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.skip_whitespace();
        if self.peek()? == b'n' {
            return self.literal(b"null");
        }
        self.array(depth, each)
    }

    /// An array, each element read by `each`.
    fn array(&mut self, depth: usize, each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.items(depth, b'[', b']', each)
    }

    /// An object, each member's value read by `each` given its key.
    fn object(
        &mut self,
        depth: usize,
        mut each: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        self.items(depth, b'{', b'}', |json| {
            let key = json.string()?;
            json.expect(b':')?;
            each(json, key)
        })
    }

    /// `open`, items separated by commas, each read by `item`, then `close`.
    fn items(
        &mut self,
        depth: usize,
        open: u8,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.expect(open)?;
        self.skip_whitespace();
        if self.peek()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.skip_whitespace();
            match self.peek()? {
                b',' => self.at += 1,
                byte if byte == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `null` (None) or a delta object, read into `slot` (in place: a delta is large). A field
    /// named twice is an error to the full reader, so it goes there.
    fn null_or_delta(&mut self, slot: &mut Option<WireDelta<'a>>) -> Option<()> {
        self.skip_whitespace();
        if self.peek()? == b'n' {
            *slot = None;
            return self.literal(b"null");
        }
        let delta = slot.insert(WireDelta::default());
        let mut seen = 0u8;
        self.object(4, |json, key| {
            let (field, bit) = match key {
                "content" => (&mut delta.content, 1),
                "reasoning_content" => (&mut delta.reasoning_content, 2),
                "reasoning" => (&mut delta.reasoning, 4),
                "refusal" => (&mut delta.refusal, 8),
                "text" => (&mut delta.text, 16),
                "tool_calls" => {
                    // Only an explicit null: tool calls are read in full.
                    if seen & 32 != 0 {
                        return None;
                    }
                    seen |= 32;
                    return json.literal(b"null");
                }
                _ => return json.skip_value(5),
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            *field = json.null_or_string()?.map(wire_text);
            Some(())
        })
    }

    /// Any JSON value, read and dropped.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        self.skip_whitespace();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth, |json, _| json.skip_value(depth + 1)),
            b'[' => self.array(depth, |json| json.skip_value(depth + 1)),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => self.number(),
        }
    }

    /// A number: `-`? (`0` | `[1-9][0-9]*`) (`.` digits)? (`e`|`E` sign? digits)?
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek()? {
            b'0' => self.at += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            self.at_least_one_digit()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            self.at_least_one_digit()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
    }

    fn at_least_one_digit(&mut self) -> Option<()> {
        let start = self.at;
        self.digits();
        (self.at > start).then_some(())
    }
}

/// The bytes of `word` (eight string bytes, the first in the low byte) that end a plain
/// string: `"`, `\` or below 0x20, each marked by its high bit. Above the first marked byte
/// others may be marked wrongly (a borrow carries); the lowest mark is always right.
fn string_stops(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // A byte is zero after the xor where it equals the byte looked for.
    let zero_bytes = |v: u64| v.wrapping_sub(ONES) & !v;
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    // Below 0x20: subtracting 0x20 borrows, and the byte's own high bit is clear.
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    (quote | backslash | control) & HIGH_BITS
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{parse_chunk_in_full, ChunkReader};
    use super::{common_chunk, Template};

    /// A content chunk of the recorded stream with `text` as its content.
    fn content_chunk(text: &str) -> String {
        format!(
            r#"{{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":null}}]}}"#
        )
    }

    /// `chunk` read through the template learned from `learned`.
    fn through_template(learned: &str, chunk: &str) -> Option<String> {
        let mut template = None;
        Template::learn(&mut template, learned, &common_chunk(learned).unwrap());
        let info = template.expect("a template is learned").read(chunk)?;
        assert_eq!(Ok(info.clone()), parse_chunk_in_full(chunk), "{chunk}");
        Some(info.text.into_owned())
    }

    #[test]
    fn a_chunk_in_the_last_ones_bytes_but_its_text_is_read_through_the_template() {
        let first = content_chunk(" tok1");
        for text in [" tok2", "x", "a longer piece of text, é ✓", "}]}"] {
            assert_eq!(
                through_template(&first, &content_chunk(text)).as_deref(),
                Some(text)
            );
        }
        // Strings before and after the text are taken from the new chunk's bytes.
        let learned =
            r#"{"model":"a","choices":[{"delta":{"reasoning":"x"},"finish_reason":"b"}]}"#;
        let next = r#"{"model":"a","choices":[{"delta":{"reasoning":"yz"},"finish_reason":"b"}]}"#;
        assert_eq!(through_template(learned, next).as_deref(), Some("yz"));
    }

    #[test]
    fn a_text_that_would_change_the_json_is_not_read_through_the_template() {
        let first = content_chunk(" tok1");
        for text in ["", r#"a","role":"b"#, r#"a\"b"#, "a\u{1}b", "a\nb"] {
            assert_eq!(
                through_template(&first, &content_chunk(text)),
                None,
                "{text}"
            );
        }
        let mut reader = ChunkReader::default();
        for text in [" tok1", r#"a","role":"b"#, "", r#"a\"b"#, " tok2"] {
            let chunk = content_chunk(text);
            assert_eq!(reader.read(&chunk), parse_chunk_in_full(&chunk), "{chunk}");
        }
        // Other bytes around the text, a shorter chunk, or a text owned (escaped) or split
        // over two parts: no template, or no match.
        assert_eq!(
            through_template(&first, &content_chunk(" tok2").replace("\"c\"", "\"d\"")),
            None
        );
        assert_eq!(through_template(&first, "{}"), None);
        for learned in [
            r#"{"choices":[{"delta":{"content":"a\"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":"a","reasoning":"b"}}]}"#,
            r#"{"choices":[{"delta":{"content":""}}]}"#,
        ] {
            let mut template = None;
            if let Some(info) = common_chunk(learned) {
                Template::learn(&mut template, learned, &info);
            }
            assert!(template.is_none(), "{learned}");
        }
    }

    /// Chunks as servers send them: each must be read here, not handed to serde.
    const COMMON: &[&str] = &[
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" tok7"},"finish_reason":null}]}"#,
        r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        r#"{"id":"chatcmpl-9x","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"choices":[{"delta":{"reasoning_content":"hm","content":null},"finish_reason":null}]}"#,
        r#"{"choices":[{"index":0,"text":" there","finish_reason":"length","logprobs":{"tokens":[" there"],"token_logprobs":[-0.5e-3]}}]}"#,
        " { \"choices\" : [ { \"delta\" : { \"content\" : \"a\" } } ] , \"model\" : null } ",
        r#"{"choices":[{"delta":{"content":"é ✓ 🎉"}},{"delta":{"refusal":"no"}}],"error":null}"#,
        r#"{"choices":null,"model":"m","created":-1.5E+2,"x":[true,false,null,{},[]]}"#,
        // Keys named twice: the last value stands, a null one too, and every `choices` counts.
        r#"{"model":"a","model":null,"choices":[{"finish_reason":"stop","finish_reason":null}]}"#,
        r#"{"choices":[{"delta":{"content":"a"},"delta":null,"text":"b","text":"c"}],"choices":[{"delta":{"content":"d"}}]}"#,
    ];

    #[test]
    fn the_common_shapes_are_read_here_and_as_serde_reads_them() {
        for chunk in COMMON {
            let fast = common_chunk(chunk).unwrap_or_else(|| panic!("not read here: {chunk}"));
            assert_eq!(Ok(fast), parse_chunk_in_full(chunk), "{chunk}");
        }
    }

    #[test]
    fn what_it_does_not_read_itself_is_left_to_serde() {
        for chunk in [
            // Escapes and control characters: serde unescapes or rejects them.
            r#"{"choices":[{"delta":{"content":"a\"b"}}]}"#,
            "{\"choices\":[{\"delta\":{\"content\":\"a\u{1}b\"}}]}",
            // Fields that carry more than the fast path reads.
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            r#"{"error":{"message":"overloaded"}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f"}}]}}]}"#,
            // A delta field twice is an error to serde's derive.
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"choices":[{"delta":{"tool_calls":null,"tool_calls":null}}]}"#,
            // Not JSON, not an object, or not the chunk's shape.
            r#"{"choices":[{"delta":{"content":"a"}}],}"#,
            r#"{"choices":[{"delta":{"content":"a"}}]} x"#,
            r#"{"created":01}"#,
            r#"{"created":1.}"#,
            r#"{"created":-}"#,
            r#"{"created":1e}"#,
            r#"{"model":nul}"#,
            r#"{"model":1}"#,
            r#"{"choices":[1]}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":{}}"#,
            r#"{"choices":[{"delta":[]}]}"#,
            "[]",
            "",
            "{",
            &format!("{{\"x\":{}1{}}}", "[".repeat(20), "]".repeat(20)),
        ] {
            assert_eq!(common_chunk(chunk), None, "{chunk}");
        }
    }

    /// JSON text built from the pieces a chunk is made of, with the mistakes and oddities a
    /// server could send mixed in.
    fn json_text() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("model"),
            Just("choices"),
            Just("usage"),
            Just("error"),
            Just("delta"),
            Just("content"),
            Just("reasoning_content"),
            Just("reasoning"),
            Just("refusal"),
            Just("text"),
            Just("finish_reason"),
            Just("tool_calls"),
            Just("index"),
            Just("id"),
        ]
        .prop_map(|key| format!("\"{key}\""));
        // Mostly what a valid chunk holds, so that whole chunks often come out valid.
        let leaf = prop_oneof![
            4 => Just("null".to_string()),
            // A hole where a stream's chunks put different strings.
            2 => Just("\"@@\"".to_string()),
            6 => "[a-z é✓]{0,6}".prop_map(|text| format!("\"{text}\"")),
            1 => Just("\"\"".to_string()),
            1 => Just("true".to_string()),
            1 => Just("false".to_string()),
            1 => Just("0".to_string()),
            1 => Just("-2.5e+3".to_string()),
            1 => Just("nul".to_string()),
            1 => Just("01".to_string()),
            1 => Just("1.".to_string()),
            1 => Just("\"a\\\"b\"".to_string()),
            1 => Just("\"a\\u00e9\"".to_string()),
            1 => Just("\"tab\there\"".to_string()),
        ];
        leaf.prop_recursive(5, 48, 6, move |inner| {
            let member = (key.clone(), inner.clone()).prop_map(|(k, v)| format!("{k}:{v}"));
            prop_oneof![
                prop::collection::vec(member, 0..5).prop_map(|m| format!("{{{}}}", m.join(","))),
                prop::collection::vec(inner, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            ]
        })
    }

    /// An object of `members`, each a key and a value.
    fn object_of(
        member: impl Strategy<Value = (&'static str, String)>,
        most: usize,
    ) -> impl Strategy<Value = String> {
        prop::collection::vec(member, 0..most).prop_map(|members| {
            let members: Vec<String> = members
                .into_iter()
                .map(|(key, value)| format!("\"{key}\":{value}"))
                .collect();
            format!("{{{}}}", members.join(","))
        })
    }

    /// Text in the chunk's own shape (chunk, choices, choice, delta), each level's keys drawn
    /// from the ones read at that level, its values sometimes in the shape and sometimes not.
    fn chunk_text() -> impl Strategy<Value = String> {
        let any_value = || json_text().boxed();
        let delta_key = prop::sample::select(vec![
            "content",
            "reasoning_content",
            "reasoning",
            "refusal",
            "text",
            "tool_calls",
            "role",
        ]);
        let delta = object_of((delta_key, any_value()), 4);
        let choice_member = prop_oneof![
            (Just("delta"), prop_oneof![3 => delta, 1 => any_value()]),
            (
                prop::sample::select(vec!["text", "finish_reason", "index", "logprobs"]),
                any_value()
            ),
        ];
        let choice = object_of(choice_member, 4);
        let choices = prop_oneof![
            3 => prop::collection::vec(prop_oneof![3 => choice, 1 => any_value()], 0..3)
                .prop_map(|choices| format!("[{}]", choices.join(","))),
            1 => any_value(),
        ];
        let chunk_member = prop_oneof![
            (Just("choices"), choices),
            (
                prop::sample::select(vec!["model", "usage", "error", "id", "created"]),
                any_value()
            ),
        ];
        object_of(chunk_member, 5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// Whatever this reader returns, serde's full reader returns the same.
        #[test]
        fn what_it_reads_serde_reads_the_same(
            text in prop_oneof![1 => json_text(), 3 => chunk_text()],
            text_with_hole in chunk_text(),
            space in prop::sample::select(vec!["", " ", "\n", "\t ", "\r\n"]),
            cut in any::<prop::sample::Index>(),
            mutate in any::<Option<(prop::sample::Index, u8)>>(),
        ) {
            let mut candidates = vec![
                text.clone(),
                format!("{space}{text}{space}"),
                text.replace(',', &format!("{space},{space}")).replace(':', &format!("{space}:")),
            ];
            let boundary = |s: &str, at: usize| (0..=at).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            candidates.push(text[..boundary(&text, cut.index(text.len() + 1))].to_string());
            if let Some((at, byte)) = mutate {
                let mut bytes = text.clone().into_bytes();
                if !bytes.is_empty() {
                    let at = at.index(bytes.len());
                    bytes[at] = b"{}[],:\"\\ 0-.en"[usize::from(byte) % 14];
                    if let Ok(mutated) = String::from_utf8(bytes) {
                        candidates.push(mutated);
                    }
                }
            }
            // A stream of chunks that differ in one string, read one after another.
            let mut reader = ChunkReader::default();
            for text in ["a", "a\\\"b", "", "bc", "x\",\"y", "d"] {
                let chunk = text_with_hole.replace("@@", text);
                prop_assert_eq!(reader.read(&chunk), parse_chunk_in_full(&chunk), "{}", chunk);
            }
            for candidate in candidates {
                if let Some(fast) = common_chunk(&candidate) {
                    prop_assert_eq!(Ok(fast), parse_chunk_in_full(&candidate), "{}", candidate);
                }
            }
        }
    }
}
