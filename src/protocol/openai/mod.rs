//! OpenAI-compatible `/v1/chat/completions`: request bodies, streamed chunk parsing and
//! non-streaming response parsing. Only the fields drover measures are read.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::record::Usage;

/// The messages of a request body: JSON message objects, or a prompt kept as its text (a
/// user message after an optional system message), written without building JSON values.
#[derive(Debug, Clone, Copy)]
pub enum Messages<'a> {
    Values(&'a [Value]),
    Prompt {
        system: Option<&'a str>,
        user: &'a str,
    },
}

impl Messages<'_> {
    /// Bytes of message text (before escaping), for sizing a body.
    fn text_len(&self) -> usize {
        match self {
            Messages::Values(values) => values
                .iter()
                .filter_map(|m| m.get("content").and_then(Value::as_str))
                .map(str::len)
                .sum(),
            Messages::Prompt { system, user } => system.map_or(0, str::len) + user.len(),
        }
    }

    /// The messages as JSON message objects.
    pub fn to_values(&self) -> Vec<Value> {
        match self {
            Messages::Values(values) => values.to_vec(),
            Messages::Prompt { system, user } => system
                .map(|text| serde_json::json!({ "role": "system", "content": text }))
                .into_iter()
                .chain([serde_json::json!({ "role": "user", "content": user })])
                .collect(),
        }
    }
}

impl serde::Serialize for Messages<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Message<'a> {
            role: &'static str,
            content: &'a str,
        }
        match self {
            Messages::Values(values) => values.serialize(serializer),
            Messages::Prompt { system, user } => {
                use serde::ser::SerializeSeq;
                let mut list = serializer.serialize_seq(Some(1 + usize::from(system.is_some())))?;
                if let Some(system) = system {
                    list.serialize_element(&Message {
                        role: "system",
                        content: system,
                    })?;
                }
                list.serialize_element(&Message {
                    role: "user",
                    content: user,
                })?;
                list.end()
            }
        }
    }
}

/// Inputs for one chat-completion request body.
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: Messages<'a>,
    pub max_tokens: Option<u32>,
    /// The field that carries `max_tokens`.
    pub output_limit: super::OutputLimit,
    pub stream: bool,
    pub include_usage: bool,
    pub extra_body: &'a Map<String, Value>,
    /// Sent for servers that honour them (vLLM, SGLang, TGI).
    pub min_tokens: Option<u32>,
    pub ignore_eos: Option<bool>,
}

impl ChatRequest<'_> {
    /// The JSON body as bytes, written straight from the borrowed parts (no copy of the
    /// messages): drover's fields, then `extra_body` (which may replace `stream_options` or add
    /// provider keys such as `"mode": "batch"`), then `min_tokens` and `ignore_eos`, which win
    /// over the same keys in `extra_body`.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Room for the prompt text up front, so a long prompt is not copied as the buffer grows.
        let text = self.messages.text_len();
        let mut body = Vec::with_capacity(text + 256);
        // Serializing borrowed strings and JSON values to memory cannot fail.
        serde_json::to_writer(&mut body, self).expect("a request body serializes");
        body
    }

    /// The JSON body as a value.
    pub fn to_json(&self) -> Value {
        serde_json::from_slice(&self.to_bytes()).expect("a request body is JSON")
    }
}

impl serde::Serialize for ChatRequest<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model", self.model)?;
        map.serialize_entry("messages", &self.messages)?;
        if let (Some(max_tokens), Some(field)) = (self.max_tokens, self.output_limit.field()) {
            map.serialize_entry(field, &max_tokens)?;
        }
        map.serialize_entry("stream", &self.stream)?;
        if self.stream && self.include_usage && !self.extra_body.contains_key("stream_options") {
            map.serialize_entry(
                "stream_options",
                &serde_json::json!({ "include_usage": true }),
            )?;
        }
        for (key, value) in self.extra_body {
            let replaced = (key == "min_tokens" && self.min_tokens.is_some())
                || (key == "ignore_eos" && self.ignore_eos.is_some());
            if !replaced {
                map.serialize_entry(key, value)?;
            }
        }
        if let Some(min_tokens) = self.min_tokens {
            map.serialize_entry("min_tokens", &min_tokens)?;
        }
        if let Some(ignore_eos) = self.ignore_eos {
            map.serialize_entry("ignore_eos", &ignore_eos)?;
        }
        map.end()
    }
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<WirePromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<WireCompletionDetails>,
}

#[derive(Debug, Deserialize)]
struct WireCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WirePromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl WireUsage {
    fn into_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_tokens.unwrap_or(0),
            completion_tokens: self.completion_tokens.unwrap_or(0),
            cached_tokens: self
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// A string field read in place from the response when it has no escapes (most do), copied
/// only when it has.
#[derive(Debug, Deserialize)]
struct WireText<'a>(#[serde(borrow)] Cow<'a, str>);

fn text_of(field: Option<WireText<'_>>) -> Option<Cow<'_, str>> {
    field.map(|WireText(text)| text)
}

#[derive(Debug, Deserialize, Default)]
struct WireDelta<'a> {
    #[serde(default, borrow)]
    content: Option<WireText<'a>>,
    #[serde(default, borrow)]
    reasoning_content: Option<WireText<'a>>,
    #[serde(default, borrow)]
    reasoning: Option<WireText<'a>>,
    #[serde(default, borrow)]
    refusal: Option<WireText<'a>>,
    /// Legacy completions put the text here.
    #[serde(default, borrow)]
    text: Option<WireText<'a>>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

impl<'a> WireDelta<'a> {
    /// The first tool call piece of the delta (`tool_calls[].index`, `.function.name`,
    /// `.function.arguments`).
    fn tool_delta(&self) -> Option<super::tools::ToolDelta<'static>> {
        let call = self.tool_calls.as_ref()?.first()?;
        let text = |pointer: &str| call.pointer(pointer).and_then(Value::as_str);
        Some(super::tools::ToolDelta {
            index: call
                .get("index")
                .and_then(Value::as_u64)
                .map_or(0, |i| i.min(u64::from(u32::MAX)) as u32),
            id: text("/id")
                .filter(|id| !id.is_empty())
                .map(|id| Cow::Owned(id.to_string())),
            name: text("/function/name")
                .filter(|name| !name.is_empty())
                .map(|name| Cow::Owned(name.to_string())),
            arguments: Cow::Owned(text("/function/arguments").unwrap_or_default().to_string()),
        })
    }

    /// Whether the delta carries tool-call text (a name or arguments).
    fn has_tool_text(&self) -> bool {
        self.tool_calls.as_ref().is_some_and(|calls| {
            calls.iter().any(|call| {
                ["/function/arguments", "/function/name"]
                    .iter()
                    .any(|field| {
                        call.pointer(field)
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                    })
            })
        })
    }

    /// Its output text, answer then reasoning, in order, and what kinds of output it carried
    /// (the text parts are taken out of the delta, not copied).
    fn take_text(&mut self) -> (Cow<'a, str>, DeltaKinds) {
        let tool_text = self.has_tool_text();
        let mut text = Cow::Borrowed("");
        let mut kinds = DeltaKinds::default();
        for (part, kind) in [
            (&mut self.content, PartKind::Answer),
            (&mut self.text, PartKind::Answer),
            (&mut self.refusal, PartKind::Refusal),
            (&mut self.reasoning_content, PartKind::Reasoning),
            (&mut self.reasoning, PartKind::Reasoning),
        ] {
            let Some(WireText(part)) = part.take() else {
                continue;
            };
            if !part.is_empty() {
                match kind {
                    PartKind::Answer => kinds.answer = true,
                    PartKind::Refusal => {
                        kinds.answer = true;
                        kinds.refusal = true;
                    }
                    PartKind::Reasoning => kinds.reasoning = true,
                }
            }
            append(&mut text, part);
        }
        kinds.output = !text.is_empty() || tool_text;
        (text, kinds)
    }
}

#[derive(Debug, Clone, Copy)]
enum PartKind {
    Answer,
    Refusal,
    Reasoning,
}

/// The kinds of output a delta (or a whole message) carried.
#[derive(Debug, Clone, Copy, Default)]
struct DeltaKinds {
    output: bool,
    answer: bool,
    reasoning: bool,
    refusal: bool,
}

/// Appends `part` to `text`, keeping a lone part borrowed.
fn append<'a>(text: &mut Cow<'a, str>, part: Cow<'a, str>) {
    if text.is_empty() {
        *text = part;
    } else {
        text.to_mut().push_str(&part);
    }
}

/// What one streamed chunk carried. Its strings borrow from the event's data where they can.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkInfo<'a> {
    /// Non-empty output of any kind: content, reasoning or tool-call text.
    pub has_output: bool,
    /// Non-empty `content` (the answer, as opposed to reasoning).
    pub has_answer: bool,
    /// Non-empty reasoning (`reasoning_content`, `reasoning`, thinking, a reasoning summary).
    pub has_reasoning: bool,
    /// The answer is a refusal (a `refusal` delta or part).
    pub refusal: bool,
    pub finish_reason: Option<Cow<'a, str>>,
    /// The `model` the chunk names (what answered).
    pub model: Option<Cow<'a, str>>,
    pub usage: Option<Usage>,
    /// The chunk's output text (content, then reasoning), for counting tokens without usage.
    pub text: Cow<'a, str>,
    /// A piece of a tool call (its first, when a chunk carries several). Boxed: most chunks
    /// carry none, and a chunk is moved from reader to decoder to the driver for every event.
    pub tool: Option<Box<super::tools::ToolDelta<'a>>>,
}

/// Why a response could not be read as OpenAI-compatible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON in response: {0}")]
    Json(String),
    #[error("server sent an error: {0}")]
    ServerError(String),
}

mod scan;

/// Parses the `data` of one SSE event (not `[DONE]`): the common shape directly
/// ([`scan::common_chunk`]), anything else with serde.
pub fn parse_chunk(data: &str) -> Result<ChunkInfo<'_>, ParseError> {
    match scan::common_chunk(data) {
        Some(info) => Ok(info),
        None => parse_chunk_in_full(data),
    }
}

/// Reads the chunks of one stream: like [`parse_chunk`], and a chunk in the same bytes as the
/// last one read directly but for its text is read by comparing bytes
/// ([`scan::Template`]).
#[derive(Debug, Default)]
pub struct ChunkReader {
    template: Option<Box<scan::Template>>,
}

impl ChunkReader {
    /// Parses the `data` of the stream's next SSE event (not `[DONE]`).
    pub fn read<'a>(&mut self, data: &'a str) -> Result<ChunkInfo<'a>, ParseError> {
        if let Some(info) = self.template.as_ref().and_then(|t| t.read(data)) {
            return Ok(info);
        }
        match scan::common_chunk(data) {
            Some(info) => {
                scan::Template::learn(&mut self.template, data, &info);
                Ok(info)
            }
            None => parse_chunk_in_full(data),
        }
    }
}

/// Parses the `data` of one SSE event with serde, whatever its shape (and says what is wrong
/// with it when it cannot be read). `pub` for the fuzz target, which checks the two readers
/// agree.
pub fn parse_chunk_in_full(data: &str) -> Result<ChunkInfo<'_>, ParseError> {
    let json_error = |e: serde_json::Error| ParseError::Json(e.to_string());
    let mut reader = serde_json::Deserializer::from_str(data);
    let mut fold = chunk_fold::ChunkFold::default();
    serde::Deserializer::deserialize_map(&mut reader, chunk_fold::ChunkVisitor(&mut fold))
        .map_err(json_error)?;
    reader.end().map_err(json_error)?;
    if let Some(error) = fold.error {
        return Err(ParseError::ServerError(error_message(&error)));
    }
    Ok(fold.info)
}

/// A streamed chunk read field by field straight into a [`ChunkInfo`], each choice folded in
/// as it is read: no chunk, choice list or choice is built and moved (this runs for every
/// event of every stream).
mod chunk_fold {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess};
    use serde::Deserialize;
    use serde_json::Value;

    use super::{append, text_of, ChunkInfo, WireDelta, WireText, WireUsage};

    /// What a chunk said: its measured parts, or the error object it carried.
    #[derive(Default)]
    pub(super) struct ChunkFold<'a> {
        pub(super) info: ChunkInfo<'a>,
        pub(super) error: Option<Value>,
    }

    impl<'a> ChunkFold<'a> {
        /// Adds one choice: chat chunks carry a delta, legacy completion chunks their text on
        /// the choice.
        /// The delta is borrowed, its text taken out of it: a delta is large, and moving it
        /// in and out of calls cost more than reading it (`benches/hot_paths.rs`).
        pub(super) fn add_choice(
            &mut self,
            delta: Option<&mut WireDelta<'a>>,
            text: Option<WireText<'a>>,
            finish_reason: Option<WireText<'a>>,
        ) {
            let mut from_text = text.map(|text| WireDelta {
                text: Some(text),
                ..WireDelta::default()
            });
            let info = &mut self.info;
            if let Some(delta) = delta.or(from_text.as_mut()) {
                let tool = delta.tool_delta();
                let (text, kinds) = delta.take_text();
                info.has_answer |= kinds.answer;
                info.has_output |= kinds.output;
                info.has_reasoning |= kinds.reasoning;
                info.refusal |= kinds.refusal;
                append(&mut info.text, text);
                // A tool call's arguments are output text too (counted without usage, as the
                // other APIs' tool input is).
                if let Some(tool) = tool {
                    append(&mut info.text, tool.arguments.clone());
                    info.tool.get_or_insert(Box::new(tool));
                }
            }
            if let Some(reason) = text_of(finish_reason) {
                info.finish_reason = Some(reason);
            }
        }
    }

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum ChunkKey {
        Model,
        Choices,
        Usage,
        Error,
        #[serde(other)]
        Other,
    }

    #[derive(Deserialize)]
    #[serde(field_identifier, rename_all = "snake_case")]
    enum ChoiceKey {
        Delta,
        Text,
        FinishReason,
        #[serde(other)]
        Other,
    }

    /// The chunk object (a visitor of its map).
    pub(super) struct ChunkVisitor<'f, 'a>(pub(super) &'f mut ChunkFold<'a>);

    impl<'de, 'a> de::Visitor<'de> for ChunkVisitor<'_, 'a>
    where
        'de: 'a,
    {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a chat.completion.chunk object")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
            while let Some(key) = map.next_key::<ChunkKey>()? {
                match key {
                    ChunkKey::Model => {
                        self.0.info.model = text_of(map.next_value::<Option<WireText<'a>>>()?)
                    }
                    ChunkKey::Choices => map.next_value_seed(ChoicesSeed(&mut *self.0))?,
                    ChunkKey::Usage => {
                        self.0.info.usage = map
                            .next_value::<Option<WireUsage>>()?
                            .map(WireUsage::into_usage)
                    }
                    ChunkKey::Error => self.0.error = map.next_value()?,
                    ChunkKey::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(())
        }
    }

    /// The `choices` list (absent or null: no choices).
    struct ChoicesSeed<'f, 'a>(&'f mut ChunkFold<'a>);

    impl<'de, 'a> DeserializeSeed<'de> for ChoicesSeed<'_, 'a>
    where
        'de: 'a,
    {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_option(self)
        }
    }

    impl<'de, 'a> de::Visitor<'de> for ChoicesSeed<'_, 'a>
    where
        'de: 'a,
    {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a list of choices")
        }

        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_seq(self)
        }

        fn visit_seq<S: SeqAccess<'de>>(self, mut list: S) -> Result<(), S::Error> {
            while list.next_element_seed(ChoiceSeed(&mut *self.0))?.is_some() {}
            Ok(())
        }
    }

    /// One choice, folded into the chunk's measured parts once it is read whole.
    struct ChoiceSeed<'f, 'a>(&'f mut ChunkFold<'a>);

    impl<'de, 'a> DeserializeSeed<'de> for ChoiceSeed<'_, 'a>
    where
        'de: 'a,
    {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
            deserializer.deserialize_map(self)
        }
    }

    impl<'de, 'a> de::Visitor<'de> for ChoiceSeed<'_, 'a>
    where
        'de: 'a,
    {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a choice object")
        }

        fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<(), M::Error> {
            let (mut delta, mut text, mut finish_reason) = (None, None, None);
            while let Some(key) = map.next_key::<ChoiceKey>()? {
                match key {
                    ChoiceKey::Delta => delta = map.next_value::<Option<WireDelta<'a>>>()?,
                    ChoiceKey::Text => text = map.next_value::<Option<WireText<'a>>>()?,
                    ChoiceKey::FinishReason => {
                        finish_reason = map.next_value::<Option<WireText<'a>>>()?
                    }
                    ChoiceKey::Other => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            self.0.add_choice(delta.as_mut(), text, finish_reason);
            Ok(())
        }
    }
}

/// The measured parts of a non-streaming completion. Its strings borrow from the body where
/// they can.
#[derive(Debug, PartialEq, Eq)]
pub struct CompletionInfo<'a> {
    pub has_output: bool,
    pub finish_reason: Option<Cow<'a, str>>,
    /// The `model` the response names (what answered).
    pub model: Option<Cow<'a, str>>,
    pub usage: Option<Usage>,
    /// The output text (content, reasoning), for counting tokens without usage.
    pub text: Cow<'a, str>,
    /// The answer is a refusal.
    pub refusal: bool,
}

#[derive(Debug, Deserialize)]
struct WireCompletion<'a> {
    #[serde(default, borrow)]
    model: Option<WireText<'a>>,
    #[serde(default, borrow)]
    choices: Vec<WireCompletionChoice<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireCompletionChoice<'a> {
    #[serde(default, borrow)]
    message: Option<WireDelta<'a>>,
    #[serde(default, borrow)]
    text: Option<WireText<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<WireText<'a>>,
}

/// Parses a whole non-streaming response body.
pub fn parse_completion(body: &[u8]) -> Result<CompletionInfo<'_>, ParseError> {
    let completion: WireCompletion =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(error) = completion.error {
        return Err(ParseError::ServerError(error_message(&error)));
    }
    let first = completion.choices.into_iter().next();
    let (finish_reason, message) = match first {
        Some(choice) => {
            let text = choice.text.map(|text| WireDelta {
                text: Some(text),
                ..WireDelta::default()
            });
            (text_of(choice.finish_reason), choice.message.or(text))
        }
        None => (None, None),
    };
    let (text, kinds) = match message {
        Some(mut message) => message.take_text(),
        None => (Cow::Borrowed(""), DeltaKinds::default()),
    };
    Ok(CompletionInfo {
        has_output: kinds.output,
        refusal: kinds.refusal,
        finish_reason,
        model: text_of(completion.model),
        usage: completion.usage.map(WireUsage::into_usage),
        text,
    })
}

/// A readable message from an OpenAI-style error object (`{"message": ..., "type": ...}`) or
/// whatever the server put there.
pub fn error_message(error: &Value) -> String {
    match error {
        Value::String(text) => text.clone(),
        Value::Object(fields) => {
            let message = fields.get("message").and_then(Value::as_str);
            let kind = fields
                .get("type")
                .or_else(|| fields.get("code"))
                .and_then(Value::as_str);
            match (message, kind) {
                (Some(m), Some(k)) => format!("{k}: {m}"),
                (Some(m), None) => m.to_string(),
                _ => error.to_string(),
            }
        }
        other => other.to_string(),
    }
}

/// The error message of a non-2xx response body, or the body as text. Not cut: the caller
/// scrubs secrets out of it first and cuts it after (see `redact::Redactor::scrub_and_cut`).
pub fn describe_error_body(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(error) = value.get("error") {
            return error_message(error);
        }
    }
    String::from_utf8_lossy(body).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_only_and_empty_chunks_carry_no_output() {
        let role = parse_chunk(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#);
        assert_eq!(role.unwrap(), ChunkInfo::default());
        let empty = parse_chunk(r#"{"choices":[{"delta":{}}]}"#).unwrap();
        assert!(!empty.has_output);
    }

    #[test]
    fn content_reasoning_and_usage_are_seen() {
        let content = parse_chunk(r#"{"choices":[{"delta":{"content":"hi"}}]}"#).unwrap();
        assert!(content.has_output && content.has_answer);
        let reasoning =
            parse_chunk(r#"{"choices":[{"delta":{"reasoning_content":"hm"}}]}"#).unwrap();
        assert!(reasoning.has_output && !reasoning.has_answer);
        let usage = parse_chunk(
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":9,"total_tokens":14,
                "prompt_tokens_details":{"cached_tokens":3}}}"#,
        )
        .unwrap();
        assert_eq!(
            usage.usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 9,
                cached_tokens: 3,
                ..Default::default()
            })
        );
    }

    #[test]
    fn plain_strings_are_read_in_place_and_escaped_ones_are_unescaped() {
        let body = br#"{"model":"m-1","choices":[{"message":{"content":"plain text"},"finish_reason":"stop"}]}"#;
        let info = parse_completion(body).unwrap();
        assert!(matches!(info.text, Cow::Borrowed("plain text")));
        assert!(matches!(info.model, Some(Cow::Borrowed("m-1"))));
        assert!(matches!(info.finish_reason, Some(Cow::Borrowed("stop"))));
        let escaped =
            parse_completion(br#"{"choices":[{"message":{"content":"say \"hi\"\n"}}]}"#).unwrap();
        assert_eq!(escaped.text, "say \"hi\"\n");
        assert!(escaped.has_output);
        // Content and reasoning are joined, content first.
        let both = parse_chunk(
            r#"{"choices":[{"delta":{"content":"a","reasoning_content":"b","reasoning":"c"}}]}"#,
        )
        .unwrap();
        assert_eq!(both.text, "abc");
        assert!(both.has_answer && both.has_output);
        // A tool call's name or arguments is output without any text.
        let tool = parse_completion(
            br#"{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"f","arguments":""}}]}}]}"#,
        )
        .unwrap();
        assert!(tool.has_output);
        assert_eq!(tool.text, "");
    }

    #[test]
    fn a_chunk_is_folded_choice_by_choice_whatever_else_it_carries() {
        // Choices in order (text joined, the last finish reason), unknown keys of any shape
        // skipped, an escaped key and text read as themselves.
        let chunk = parse_chunk(
            r#"{"id":"c","x":{"nested":[1,{"a":null}]},"choices":[{"index":0,"logprobs":{"t":[1]},"delta":{"content":"a"}},{"text":"b","finish_reason":"length"}],"mod\u0065l":"m\u00e9"}"#,
        )
        .unwrap();
        assert_eq!(chunk.text, "ab");
        assert_eq!(chunk.finish_reason.as_deref(), Some("length"));
        assert_eq!(chunk.model.as_deref(), Some("mé"));
        assert!(chunk.has_answer && chunk.has_output);
        // No choices, null choices and null fields are chunks without output.
        for data in [
            r#"{"choices":null,"usage":{"completion_tokens":3}}"#,
            r#"{"choices":[{"delta":null,"finish_reason":null}],"model":null,"usage":{"completion_tokens":3}}"#,
        ] {
            let chunk = parse_chunk(data).unwrap();
            assert!(!chunk.has_output, "{data}");
            assert_eq!(chunk.usage.map(|u| u.completion_tokens), Some(3), "{data}");
        }
        // A chunk that is not an object, or has a list that is not one, is malformed; so is
        // trailing text after the object.
        for data in [
            r#"[1]"#,
            r#"{"choices":{"a":1}}"#,
            r#"{"choices":[]} x"#,
            "7",
        ] {
            assert!(
                matches!(parse_chunk(data), Err(ParseError::Json(_))),
                "{data}"
            );
        }
    }

    #[test]
    fn malformed_json_and_error_events_are_errors() {
        assert!(matches!(
            parse_chunk("{\"choices\": ["),
            Err(ParseError::Json(_))
        ));
        let error = parse_chunk(r#"{"error":{"message":"overloaded","type":"server_error"}}"#);
        assert_eq!(
            error,
            Err(ParseError::ServerError("server_error: overloaded".into()))
        );
    }

    #[test]
    fn a_prompt_written_from_text_is_the_same_json_as_its_message_values() {
        let extra = Map::new();
        for system in [None, Some("be \"brief\"\n")] {
            let prompt = Messages::Prompt {
                system,
                user: "tab\there, quote \" and ünïcode",
            };
            let request = |messages| ChatRequest {
                model: "m",
                messages,
                max_tokens: Some(8),
                output_limit: crate::protocol::OutputLimit::MaxTokens,
                stream: false,
                include_usage: false,
                extra_body: &extra,
                min_tokens: None,
                ignore_eos: None,
            };
            let values = prompt.to_values();
            assert_eq!(values.len(), 1 + usize::from(system.is_some()));
            assert_eq!(
                request(prompt).to_json(),
                request(Messages::Values(&values)).to_json()
            );
        }
    }

    #[test]
    fn request_body_passes_extra_fields_through() {
        let mut extra = Map::new();
        extra.insert("mode".into(), Value::from("batch"));
        extra.insert("ignore_eos".into(), Value::from(false));
        let messages = [serde_json::json!({"role": "user", "content": "x \"quoted\""})];
        let request = ChatRequest {
            model: "m",
            messages: Messages::Values(&messages),
            max_tokens: Some(8),
            output_limit: crate::protocol::OutputLimit::MaxTokens,
            stream: true,
            include_usage: true,
            extra_body: &extra,
            min_tokens: Some(4),
            ignore_eos: Some(true),
        };
        let body = request.to_json();
        assert_eq!(body["mode"], "batch");
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["max_tokens"], 8);
        assert_eq!(body["messages"][0]["content"], "x \"quoted\"");
        assert_eq!(body["min_tokens"], 4);
        // The class's ignore_eos replaces extra_body's; the key appears once.
        assert_eq!(body["ignore_eos"], true);
        let text = String::from_utf8(request.to_bytes()).unwrap();
        assert_eq!(text.matches("ignore_eos").count(), 1, "{text}");
        // extra_body's own stream_options replaces drover's.
        let mut with_options = extra.clone();
        with_options.insert(
            "stream_options".into(),
            serde_json::json!({"include_usage": false}),
        );
        let body = ChatRequest {
            extra_body: &with_options,
            ..request
        }
        .to_json();
        assert_eq!(body["stream_options"]["include_usage"], false);
    }
}
