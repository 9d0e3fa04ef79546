//! The Anthropic Messages API (`POST /v1/messages`): the request body built from chat messages
//! (system messages move to the top-level `system` field), the event-typed SSE stream
//! (`message_start`, `content_block_start`/`_delta`/`_stop`, `message_delta` with usage,
//! `message_stop`, `ping`, `error`) and the non-streamed message, read into the same
//! [`ChunkInfo`] and [`CompletionInfo`] as OpenAI's chat completions so that both APIs are
//! measured alike.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use std::borrow::Cow;

use super::openai::{ChunkInfo, CompletionInfo, ParseError};
use crate::record::Usage;

/// The `anthropic-version` header drover sends.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the Messages API; drover sends this when a class sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 1024;

/// The JSON body of a Messages API request for chat `messages`: system messages are joined into
/// `system`, the rest are sent as they are.
pub fn request_body(
    model: &str,
    messages: &[Value],
    max_tokens: Option<u32>,
    stream: bool,
    extra_body: &Map<String, Value>,
) -> Value {
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for message in messages {
        if message.get("role").and_then(Value::as_str) == Some("system") {
            match message.get("content") {
                Some(Value::String(text)) => system.push(text.clone()),
                Some(Value::Array(parts)) => system.extend(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .map(str::to_string),
                ),
                _ => {}
            }
        } else {
            let mut turn = message.clone();
            // Image parts become image blocks.
            if let Some(Value::Array(parts)) = turn.get_mut("content") {
                for part in parts.iter_mut() {
                    *part = super::images::to_anthropic(std::mem::take(part));
                }
            }
            turns.push(turn);
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );
    if !system.is_empty() {
        body.insert("system".into(), json!(system.join("\n\n")));
    }
    body.insert("messages".into(), Value::Array(turns));
    if stream {
        body.insert("stream".into(), json!(true));
    }
    for (key, value) in extra_body {
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Value::Object(body)
}

#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

fn error_text(error: &WireError) -> String {
    match (&error.kind, &error.message) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (None, Some(message)) => message.clone(),
        (Some(kind), None) => kind.clone(),
        (None, None) => "an error without a message".into(),
    }
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
    #[serde(default)]
    stop_reason: Option<String>,
}

/// The block a `content_block_start` opens (a `tool_use` block names its tool).
#[derive(Debug, Deserialize)]
struct WireStartedBlock {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    content: Vec<WireBlock>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireBlock {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: String,
    /// The content block an event is about.
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    content_block: Option<WireStartedBlock>,
    #[serde(default)]
    message: Option<WireMessage>,
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

/// What one stream event meant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamEvent {
    /// Output (text, thinking or tool input), as OpenAI chunks are read.
    pub chunk: ChunkInfo<'static>,
    /// `message_stop`: the stream's final event.
    pub stop: bool,
    /// A `ping` (a keep-alive, never a token).
    pub ping: bool,
    /// An event type the Messages API does not define.
    pub unknown: Option<String>,
}

/// Token counts gathered over a stream: input from `message_start`, output from the last
/// `message_delta` (its `output_tokens` is cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamUsage {
    input: Option<u64>,
    cache_read: u64,
    cache_creation: u64,
    output: Option<u64>,
}

impl StreamUsage {
    fn absorb(&mut self, usage: &WireUsage) {
        if let Some(input) = usage.input_tokens {
            self.input = Some(input);
        }
        if let Some(read) = usage.cache_read_input_tokens {
            self.cache_read = read;
        }
        if let Some(created) = usage.cache_creation_input_tokens {
            self.cache_creation = created;
        }
        if let Some(output) = usage.output_tokens {
            self.output = Some(output);
        }
    }

    /// The usage in drover's terms once the stream told both counts: prompt tokens include
    /// the cache reads and writes (Anthropic counts them apart from `input_tokens`), and
    /// `cached_tokens` are the cache reads.
    pub fn usage(&self) -> Option<Usage> {
        let (input, output) = (self.input?, self.output?);
        Some(Usage {
            prompt_tokens: input + self.cache_read + self.cache_creation,
            completion_tokens: output,
            cached_tokens: self.cache_read,
            reasoning_tokens: 0,
        })
    }
}

fn block_index(index: Option<u64>) -> u32 {
    index.map_or(0, |i| i.min(u64::from(u32::MAX)) as u32)
}

/// Reads one stream event (its `event:` name, when sent, must match its `type`).
pub fn parse_event(
    name: Option<&str>,
    data: &str,
    usage: &mut StreamUsage,
) -> Result<StreamEvent, ParseError> {
    let event: WireEvent =
        serde_json::from_str(data).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(name) = name {
        if name != event.kind {
            return Err(ParseError::Json(format!(
                "event \"{name}\" carries data of type \"{}\"",
                event.kind
            )));
        }
    }
    let mut out = StreamEvent::default();
    match event.kind.as_str() {
        "message_start" => {
            if let Some(message) = &event.message {
                if let Some(wire) = &message.usage {
                    usage.absorb(wire);
                }
                out.chunk.model = message.model.clone().map(Cow::Owned);
            }
        }
        "content_block_delta" => {
            if let Some(delta) = &event.delta {
                let (text, answer) = match delta.kind.as_deref() {
                    Some("text_delta") => (delta.text.clone(), true),
                    Some("thinking_delta") => {
                        out.chunk.has_reasoning =
                            delta.thinking.as_deref().is_some_and(|t| !t.is_empty());
                        (delta.thinking.clone(), false)
                    }
                    Some("input_json_delta") => {
                        out.chunk.tool = Some(Box::new(crate::protocol::tools::ToolDelta {
                            index: block_index(event.index),
                            id: None,
                            name: None,
                            arguments: Cow::Owned(delta.partial_json.clone().unwrap_or_default()),
                        }));
                        (delta.partial_json.clone(), false)
                    }
                    _ => (None, false),
                };
                let text = text.unwrap_or_default();
                out.chunk.has_output = !text.is_empty();
                out.chunk.has_answer = answer && !text.is_empty();
                out.chunk.text = Cow::Owned(text);
            }
        }
        "message_delta" => {
            if let Some(wire) = &event.usage {
                usage.absorb(wire);
            }
            out.chunk.finish_reason = event.delta.and_then(|d| d.stop_reason).map(Cow::Owned);
            out.chunk.usage = usage.usage();
        }
        "message_stop" => {
            out.stop = true;
            out.chunk.usage = usage.usage();
        }
        "ping" => out.ping = true,
        "error" => {
            let error = event.error.unwrap_or(WireError {
                kind: None,
                message: None,
            });
            return Err(ParseError::ServerError(error_text(&error)));
        }
        "content_block_start" => {
            // A tool_use block starts a tool call: its name is the call's first piece.
            if let Some(block) = &event.content_block {
                if block.kind.as_deref() == Some("tool_use") {
                    out.chunk.tool = Some(Box::new(crate::protocol::tools::ToolDelta {
                        index: block_index(event.index),
                        id: block.id.clone().map(Cow::Owned),
                        name: block.name.clone().map(Cow::Owned),
                        arguments: Cow::Borrowed(""),
                    }));
                }
            }
        }
        "content_block_stop" => {}
        other => out.unknown = Some(other.to_string()),
    }
    Ok(out)
}

/// Reads a non-streamed message: its text, thinking and tool input, stop reason and usage.
pub fn parse_message(body: &[u8]) -> Result<CompletionInfo<'static>, ParseError> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        error: Option<WireError>,
        #[serde(flatten)]
        message: WireMessage,
    }
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if envelope.kind.as_deref() == Some("error") || envelope.error.is_some() {
        let error = envelope.error.unwrap_or(WireError {
            kind: None,
            message: None,
        });
        return Err(ParseError::ServerError(error_text(&error)));
    }
    let message = envelope.message;
    let mut text = String::new();
    for block in &message.content {
        match block.kind.as_deref() {
            Some("text") => text.push_str(block.text.as_deref().unwrap_or("")),
            Some("thinking") => text.push_str(block.thinking.as_deref().unwrap_or("")),
            Some("tool_use") => {
                if let Some(input) = &block.input {
                    text.push_str(&input.to_string());
                }
            }
            _ => {}
        }
    }
    let usage = message.usage.as_ref().and_then(|wire| {
        let mut gathered = StreamUsage::default();
        gathered.absorb(wire);
        gathered.usage()
    });
    Ok(CompletionInfo {
        has_output: !text.is_empty(),
        refusal: message.stop_reason.as_deref() == Some("refusal"),
        finish_reason: message.stop_reason.map(Cow::Owned),
        model: message.model.map(Cow::Owned),
        usage,
        text: Cow::Owned(text),
    })
}

/// The `model` a message names, if any (for checking what answered).
pub fn message_model(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<WireMessage>(body).ok()?.model
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sse::{SseItem, SseParser};

    /// A stream as the Messages API sends it: a ping, thinking before the answer, usage in
    /// `message_start` and `message_delta`.
    pub(crate) const RECORDED: &str = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":0,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\nevent: ping\ndata: {\"type\": \"ping\"}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me see.\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\nevent: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":12}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n";

    /// Everything the stream said, read as drover reads it.
    #[derive(Debug, PartialEq)]
    struct Read {
        outputs: Vec<(String, bool)>,
        pings: usize,
        stopped: bool,
        finish: Option<String>,
        usage: Option<Usage>,
    }

    fn read(pieces: &[&[u8]]) -> Read {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut items);
        }
        let mut usage = StreamUsage::default();
        let mut read = Read {
            outputs: Vec::new(),
            pings: 0,
            stopped: false,
            finish: None,
            usage: None,
        };
        for item in items {
            let SseItem::Event(event) = item else {
                continue;
            };
            let parsed = parse_event(event.event.as_deref(), &event.data, &mut usage).unwrap();
            if parsed.chunk.has_output {
                read.outputs
                    .push((parsed.chunk.text.to_string(), parsed.chunk.has_answer));
            }
            read.pings += usize::from(parsed.ping);
            read.stopped |= parsed.stop;
            if parsed.chunk.finish_reason.is_some() {
                read.finish = parsed.chunk.finish_reason.as_deref().map(str::to_string);
            }
            if parsed.chunk.usage.is_some() {
                read.usage = parsed.chunk.usage;
            }
        }
        read
    }

    #[test]
    fn a_recorded_stream_reads_the_same_split_at_every_byte() {
        let bytes = RECORDED.as_bytes();
        let whole = read(&[bytes]);
        assert_eq!(
            whole.outputs,
            [
                ("Let me see.".to_string(), false),
                ("Hello".to_string(), true),
                (" there".to_string(), true)
            ]
        );
        assert_eq!((whole.pings, whole.stopped), (1, true));
        assert_eq!(whole.finish.as_deref(), Some("end_turn"));
        // Output from message_delta's cumulative count; input includes the cache reads.
        assert_eq!(
            whole.usage,
            Some(Usage {
                prompt_tokens: 125,
                completion_tokens: 12,
                cached_tokens: 100,
                ..Default::default()
            })
        );
        for cut in 1..bytes.len() {
            assert_eq!(
                read(&[&bytes[..cut], &bytes[cut..]]),
                whole,
                "split at {cut}"
            );
        }
    }

    #[test]
    fn an_error_event_is_a_server_error_and_a_mismatched_name_is_malformed() {
        let mut usage = StreamUsage::default();
        let error = parse_event(
            Some("error"),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            &mut usage,
        )
        .unwrap_err();
        assert_eq!(
            error,
            ParseError::ServerError("overloaded_error: Overloaded".into())
        );
        assert!(matches!(
            parse_event(Some("ping"), r#"{"type":"message_stop"}"#, &mut usage),
            Err(ParseError::Json(_))
        ));
        assert!(parse_event(None, "not json", &mut usage).is_err());
    }

    #[test]
    fn a_message_reads_text_usage_and_stop_reason() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"Hi there"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":3,"cache_read_input_tokens":4}}"#;
        let info = parse_message(body).unwrap();
        assert_eq!(info.text, "Hi there");
        assert_eq!(info.finish_reason.as_deref(), Some("max_tokens"));
        assert_eq!(
            info.usage,
            Some(Usage {
                prompt_tokens: 14,
                completion_tokens: 3,
                cached_tokens: 4,
                ..Default::default()
            })
        );
        assert_eq!(message_model(body).as_deref(), Some("claude-sonnet-4-5"));
        let error = parse_message(
            br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            error,
            ParseError::ServerError("rate_limit_error: slow down".into())
        );
    }

    #[test]
    fn system_messages_move_to_the_system_field() {
        let messages = [
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": "Hi"}),
        ];
        let mut extra = Map::new();
        extra.insert("temperature".into(), json!(0));
        let body = request_body("claude", &messages, None, true, &extra);
        assert_eq!(
            body,
            json!({
                "model": "claude",
                "max_tokens": DEFAULT_MAX_TOKENS,
                "system": "Be brief.",
                "messages": [{"role": "user", "content": "Hi"}],
                "stream": true,
                "temperature": 0
            })
        );
    }
}
