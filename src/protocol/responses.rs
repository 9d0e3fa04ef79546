//! OpenAI's Responses API (`POST /v1/responses`): the request body built from chat messages,
//! the typed event stream, and the whole response object, read into the same [`ChunkInfo`] and
//! [`CompletionInfo`] as chat completions so that every API is measured alike.
//!
//! The role of each streamed event (the event types of the official SDKs' `ResponseStreamEvent`
//! union; every event is `{"type": ..., "sequence_number": ...}`, usually with a matching SSE
//! `event:` line, and the stream has no `[DONE]`):
//!
//! | event type | what drover takes from it |
//! |---|---|
//! | `response.output_text.delta` | answer output: its first one is the answer's first token |
//! | `response.refusal.delta` | answer output, and the request is marked as refused |
//! | `response.reasoning_summary_text.delta`, `response.reasoning_text.delta` | reasoning output |
//! | `response.function_call_arguments.delta`, `response.custom_tool_call_input.delta`, `response.mcp_call_arguments.delta`, `response.code_interpreter_call_code.delta` | tool output (a token, not the answer) |
//! | `response.audio.transcript.delta` | answer output (the text of an audio answer) |
//! | `response.audio.delta`, `response.image_generation_call.partial_image` | output without countable text |
//! | `response.completed` | the end: usage (with reasoning and cached-token details) and model |
//! | `response.incomplete` | the end: usage, and `incomplete_details.reason` as the finish reason (`max_output_tokens` is read as `length`) |
//! | `response.failed`, `error` | a server error: the request fails as a protocol error quoting it |
//! | `response.created`, `.in_progress`, `.queued`, `.output_item.*`, `.content_part.*`, `.reasoning_summary_part.*`, every `*.done`, annotations, and the `*_call.*` progress events of built-in tools | no output (counted as preludes before the first token) |
//!
//! Any other type is returned as unknown: the driver counts it and shows its name, so that a
//! server's new or non-standard events are never dropped silently.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::openai::{ChunkInfo, CompletionInfo, ParseError};
use crate::record::Usage;

/// What one streamed event of the Responses API meant.
#[derive(Debug)]
pub enum ResponsesEvent<'a> {
    /// Output, or an event without output (`chunk.has_output` is false).
    Chunk(ChunkInfo<'a>),
    /// `response.completed` or `response.incomplete`: the final event.
    End(ChunkInfo<'a>),
    /// An event type drover does not know.
    Unknown(String),
}

/// The request body: system messages become `instructions`; a single user message goes as
/// `input` text, anything else as a list of input messages.
pub fn request_body(
    model: &str,
    messages: &[Value],
    max_output_tokens: Option<(&str, u32)>,
    stream: bool,
    extra_body: &Map<String, Value>,
) -> Value {
    let mut instructions = Vec::new();
    let mut turns = Vec::new();
    for message in messages {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        let content = message.get("content").cloned().unwrap_or(Value::Null);
        if role == "system" || role == "developer" {
            instructions.push(plain_text(&content));
            continue;
        }
        let content = match content {
            Value::Array(parts) => Value::Array(
                parts
                    .into_iter()
                    .map(|part| input_part(part, role == "assistant"))
                    .collect(),
            ),
            other => other,
        };
        turns.push(json!({ "role": role, "content": content }));
    }
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    let single_text = match turns.as_slice() {
        [only] if only["role"] == "user" => only["content"].as_str().map(str::to_string),
        _ => None,
    };
    body.insert(
        "input".into(),
        single_text.map_or(Value::Array(turns), Value::String),
    );
    if !instructions.is_empty() {
        body.insert("instructions".into(), json!(instructions.join("\n\n")));
    }
    if let Some((field, limit)) = max_output_tokens {
        body.insert(field.into(), json!(limit));
    }
    body.insert("stream".into(), json!(stream));
    for (key, value) in extra_body {
        body.entry(key.clone()).or_insert_with(|| value.clone());
    }
    Value::Object(body)
}

/// A chat content part in the Responses API's input shape (`text` parts become `input_text`,
/// or `output_text` in an assistant turn).
fn input_part(mut part: Value, assistant: bool) -> Value {
    part = super::images::to_responses(part);
    if part.get("type").and_then(Value::as_str) == Some("text") {
        part["type"] = json!(if assistant {
            "output_text"
        } else {
            "input_text"
        });
    }
    part
}

/// The text of a message's content (a string, or the text of its parts).
fn plain_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<WireInputDetails>,
    #[serde(default)]
    output_tokens_details: Option<WireOutputDetails>,
}

#[derive(Debug, Deserialize)]
struct WireInputDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct WireOutputDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    fn into_usage(self) -> Usage {
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0),
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_tokens: self
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            reasoning_tokens: self
                .output_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireIncomplete {
    #[serde(default)]
    reason: Option<String>,
}

/// The response object (whole, or inside `response.*` events).
#[derive(Debug, Deserialize)]
struct WireResponse {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    incomplete_details: Option<WireIncomplete>,
    #[serde(default)]
    output: Vec<WireItem>,
}

impl WireResponse {
    /// `incomplete_details.reason` in chat-completion terms (`length` for the output cap).
    fn incomplete_reason(&self) -> Option<String> {
        let reason = self.incomplete_details.as_ref()?.reason.as_deref()?;
        Some(match reason {
            "max_output_tokens" => "length".to_string(),
            other => other.to_string(),
        })
    }
}

#[derive(Debug, Deserialize)]
struct WireItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    content: Vec<WirePart>,
    #[serde(default)]
    summary: Vec<WirePart>,
    #[serde(default)]
    arguments: Option<String>,
    #[serde(default)]
    input: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WirePart {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    delta: Option<WireDeltaText<'a>>,
    #[serde(default)]
    response: Option<WireResponse>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    /// The output item an event is about.
    #[serde(default)]
    output_index: Option<u64>,
    /// The item `response.output_item.added` opens (a `function_call` names its tool).
    #[serde(default)]
    item: Option<WireAddedItem>,
}

#[derive(Debug, Deserialize)]
struct WireAddedItem {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    call_id: Option<String>,
}

/// A `delta` field: text for most events (read in place when unescaped), anything else
/// (audio and images) kept as a marker of output.
#[derive(Debug)]
enum WireDeltaText<'a> {
    Text(Cow<'a, str>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for WireDeltaText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either<'a> {
            Text(#[serde(borrow)] Cow<'a, str>),
            Other(serde::de::IgnoredAny),
        }
        Ok(match Either::deserialize(deserializer)? {
            Either::Text(text) => WireDeltaText::Text(text),
            Either::Other(_) => WireDeltaText::Other,
        })
    }
}

/// How a delta event's output counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeltaRole {
    Answer,
    Refusal,
    Reasoning,
    Tool,
    /// Output without countable text (audio bytes, partial images).
    Opaque,
}

/// The role of a delta event's type, if it is one drover reads as output.
fn delta_role(kind: &str) -> Option<DeltaRole> {
    Some(match kind {
        "response.output_text.delta" | "response.audio.transcript.delta" => DeltaRole::Answer,
        "response.refusal.delta" => DeltaRole::Refusal,
        "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
            DeltaRole::Reasoning
        }
        "response.function_call_arguments.delta"
        | "response.custom_tool_call_input.delta"
        | "response.mcp_call_arguments.delta"
        | "response.code_interpreter_call_code.delta"
        | "response.shell_call_command.delta"
        | "response.shell_call_output_content.delta" => DeltaRole::Tool,
        "response.audio.delta" | "response.image_generation_call.partial_image" => {
            DeltaRole::Opaque
        }
        _ => return None,
    })
}

/// Whether an event type is one the API documents that carries no output drover measures.
fn known_without_output(kind: &str) -> bool {
    const EXACT: &[&str] = &[
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.output_item.added",
        "response.output_item.done",
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.output_text.annotation.added",
        "response.shell_call_command.added",
    ];
    const FAMILIES: &[&str] = &[
        "response.web_search_call.",
        "response.file_search_call.",
        "response.code_interpreter_call.",
        "response.image_generation_call.",
        "response.mcp_call.",
        "response.mcp_list_tools.",
        "response.compaction.",
    ];
    EXACT.contains(&kind)
        || FAMILIES.iter().any(|family| kind.starts_with(family))
        || (kind.starts_with("response.") && kind.ends_with(".done"))
}

fn output_index(index: Option<u64>) -> u32 {
    index.map_or(0, |i| i.min(u64::from(u32::MAX)) as u32)
}

/// Reads one streamed event (`name`: its SSE `event:` field, which must match its `type`).
pub fn parse_event<'a>(
    name: Option<&str>,
    data: &'a str,
) -> Result<ResponsesEvent<'a>, ParseError> {
    let event: WireEvent =
        serde_json::from_str(data).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(name) = name {
        if name != event.kind && name != "message" {
            return Err(ParseError::Json(format!(
                "event \"{name}\" carries data of type \"{}\"",
                event.kind
            )));
        }
    }
    let kind = event.kind.as_ref();
    if let Some(role) = delta_role(kind) {
        let text = match event.delta {
            Some(WireDeltaText::Text(text)) if role != DeltaRole::Opaque => text,
            _ => Cow::Borrowed(""),
        };
        let opaque = role == DeltaRole::Opaque;
        let answer = matches!(role, DeltaRole::Answer | DeltaRole::Refusal);
        let has_output = !text.is_empty() || opaque;
        let tool = (kind == "response.function_call_arguments.delta").then(|| {
            Box::new(super::tools::ToolDelta {
                index: output_index(event.output_index),
                id: None,
                name: None,
                arguments: text.clone(),
            })
        });
        return Ok(ResponsesEvent::Chunk(ChunkInfo {
            tool,
            has_output,
            has_answer: answer && has_output,
            has_reasoning: role == DeltaRole::Reasoning && has_output,
            refusal: role == DeltaRole::Refusal && has_output,
            text,
            ..ChunkInfo::default()
        }));
    }
    match kind {
        "response.completed" | "response.incomplete" => {
            let response = event.response.ok_or_else(|| {
                ParseError::Json(format!("a \"{kind}\" event without its response"))
            })?;
            let finish_reason = response
                .incomplete_reason()
                .or_else(|| (kind == "response.completed").then(|| "stop".to_string()));
            Ok(ResponsesEvent::End(ChunkInfo {
                finish_reason: finish_reason.map(Cow::Owned),
                model: response.model.map(Cow::Owned),
                usage: response.usage.map(WireUsage::into_usage),
                ..ChunkInfo::default()
            }))
        }
        "response.failed" => {
            let error = event.response.and_then(|r| r.error);
            Err(ParseError::ServerError(match error {
                Some(error) => super::openai::error_message(&error),
                None => "response.failed without an error".into(),
            }))
        }
        "error" => Err(ParseError::ServerError(match (event.code, event.message) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (None, Some(message)) => message,
            (Some(code), None) => code,
            (None, None) => "an error event without a message".into(),
        })),
        _ if known_without_output(kind) => {
            // A function_call item starts a tool call: its name is the call's first piece.
            let tool = match &event.item {
                Some(item)
                    if kind == "response.output_item.added"
                        && item.kind.as_deref() == Some("function_call") =>
                {
                    Some(Box::new(super::tools::ToolDelta {
                        index: output_index(event.output_index),
                        id: item.call_id.clone().map(Cow::Owned),
                        name: item.name.clone().map(Cow::Owned),
                        arguments: Cow::Borrowed(""),
                    }))
                }
                _ => None,
            };
            let model = event.response.and_then(|r| r.model).map(Cow::Owned);
            Ok(ResponsesEvent::Chunk(ChunkInfo {
                model,
                tool,
                ..ChunkInfo::default()
            }))
        }
        _ => Ok(ResponsesEvent::Unknown(kind.to_string())),
    }
}

/// Reads a whole (non-streamed) response object: its answer, refusal, reasoning and tool-call
/// text, status and usage.
pub fn parse_response(body: &[u8]) -> Result<CompletionInfo<'static>, ParseError> {
    let response: WireResponse =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(error) = response.error.as_ref().filter(|e| !e.is_null()) {
        return Err(ParseError::ServerError(super::openai::error_message(error)));
    }
    if response.status.as_deref() == Some("failed") {
        return Err(ParseError::ServerError(
            "response status is \"failed\"".into(),
        ));
    }
    let mut text = String::new();
    let mut tool_output = false;
    let mut refusal = false;
    for item in &response.output {
        match item.kind.as_deref() {
            Some("message") => {
                for part in &item.content {
                    match part.kind.as_deref() {
                        Some("output_text") => text.push_str(part.text.as_deref().unwrap_or("")),
                        Some("refusal") => {
                            let said = part.refusal.as_deref().unwrap_or("");
                            refusal |= !said.is_empty();
                            text.push_str(said);
                        }
                        _ => {}
                    }
                }
            }
            Some("reasoning") => {
                for part in item.summary.iter().chain(&item.content) {
                    text.push_str(part.text.as_deref().unwrap_or(""));
                }
            }
            _ => {
                let call = item.arguments.as_deref().or(item.input.as_deref());
                if let Some(call) = call {
                    tool_output |= !call.is_empty();
                    text.push_str(call);
                }
            }
        }
    }
    let finish_reason = response
        .incomplete_reason()
        .or_else(|| (response.status.as_deref() == Some("completed")).then(|| "stop".to_string()));
    Ok(CompletionInfo {
        has_output: !text.is_empty() || tool_output,
        finish_reason: finish_reason.map(Cow::Owned),
        model: response.model.map(Cow::Owned),
        usage: response.usage.map(WireUsage::into_usage),
        text: Cow::Owned(text),
        refusal,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sse::{SseItem, SseParser};

    /// A streamed response of a reasoning model as the API documents it: created and in
    /// progress, a reasoning item with a summary, then a message with two text deltas, and
    /// `response.completed` with usage details.
    pub(crate) const RECORDED: &str = concat!(
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"o4-mini-2025-04-16\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.in_progress\ndata: {\"type\":\"response.in_progress\",\"sequence_number\":1,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"o4-mini-2025-04-16\",\"output\":[]}}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":2,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[]}}\n\n",
        "event: response.reasoning_summary_part.added\ndata: {\"type\":\"response.reasoning_summary_part.added\",\"sequence_number\":3,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"}}\n\n",
        "event: response.reasoning_summary_text.delta\ndata: {\"type\":\"response.reasoning_summary_text.delta\",\"sequence_number\":4,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"delta\":\"Weighing it.\"}\n\n",
        "event: response.reasoning_summary_text.done\ndata: {\"type\":\"response.reasoning_summary_text.done\",\"sequence_number\":5,\"item_id\":\"rs_1\",\"output_index\":0,\"summary_index\":0,\"text\":\"Weighing it.\"}\n\n",
        "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":6,\"output_index\":0,\"item\":{\"id\":\"rs_1\",\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":\"Weighing it.\"}]}}\n\n",
        "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":7,\"output_index\":1,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
        "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"sequence_number\":8,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":9,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\"Hi\",\"logprobs\":[]}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":10,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"delta\":\" there\",\"logprobs\":[]}\n\n",
        "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":11,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"text\":\"Hi there\",\"logprobs\":[]}\n\n",
        "event: response.content_part.done\ndata: {\"type\":\"response.content_part.done\",\"sequence_number\":12,\"item_id\":\"msg_1\",\"output_index\":1,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"Hi there\",\"annotations\":[]}}\n\n",
        "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"sequence_number\":13,\"output_index\":1,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hi there\",\"annotations\":[]}]}}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":14,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"o4-mini-2025-04-16\",\"output\":[],\"usage\":{\"input_tokens\":36,\"input_tokens_details\":{\"cached_tokens\":16},\"output_tokens\":87,\"output_tokens_details\":{\"reasoning_tokens\":64},\"total_tokens\":123}}}\n\n",
    );

    /// Everything a stream said: (text, answer?, reasoning?) per output event, the events
    /// without output, unknown types, and the end.
    #[derive(Debug, PartialEq)]
    struct Read {
        outputs: Vec<(String, bool, bool)>,
        silent: usize,
        unknown: Vec<String>,
        finish: Option<String>,
        usage: Option<Usage>,
    }

    fn read(pieces: &[&[u8]]) -> Read {
        let mut parser = SseParser::new();
        let mut items = Vec::new();
        for piece in pieces {
            parser.feed(piece, &mut items);
        }
        let mut read = Read {
            outputs: Vec::new(),
            silent: 0,
            unknown: Vec::new(),
            finish: None,
            usage: None,
        };
        for item in items {
            let SseItem::Event(event) = item else {
                continue;
            };
            match parse_event(event.event.as_deref(), &event.data).unwrap() {
                ResponsesEvent::Chunk(chunk) if chunk.has_output => read.outputs.push((
                    chunk.text.into_owned(),
                    chunk.has_answer,
                    chunk.has_reasoning,
                )),
                ResponsesEvent::Chunk(_) => read.silent += 1,
                ResponsesEvent::End(chunk) => {
                    read.finish = chunk.finish_reason.map(Cow::into_owned);
                    read.usage = chunk.usage;
                }
                ResponsesEvent::Unknown(kind) => read.unknown.push(kind),
            }
        }
        read
    }

    #[test]
    fn a_recorded_stream_reads_the_same_split_at_every_byte() {
        let whole = read(&[RECORDED.as_bytes()]);
        assert_eq!(
            whole.outputs,
            vec![
                ("Weighing it.".to_string(), false, true),
                ("Hi".to_string(), true, false),
                (" there".to_string(), true, false),
            ]
        );
        assert_eq!(whole.silent, 11);
        assert!(whole.unknown.is_empty());
        assert_eq!(whole.finish.as_deref(), Some("stop"));
        assert_eq!(
            whole.usage,
            Some(Usage {
                prompt_tokens: 36,
                completion_tokens: 87,
                cached_tokens: 16,
                reasoning_tokens: 64,
            })
        );
        let bytes = RECORDED.as_bytes();
        for at in 1..bytes.len() {
            assert_eq!(read(&[&bytes[..at], &bytes[at..]]), whole, "split at {at}");
        }
    }

    #[test]
    fn refusals_incomplete_answers_errors_and_unknown_events_are_told_apart() {
        let refusal = parse_event(
            Some("response.refusal.delta"),
            r#"{"type":"response.refusal.delta","sequence_number":3,"item_id":"m","output_index":0,"content_index":0,"delta":"I can't"}"#,
        )
        .unwrap();
        let ResponsesEvent::Chunk(chunk) = refusal else {
            panic!("a refusal delta is output");
        };
        assert!(chunk.refusal && chunk.has_answer && chunk.has_output);
        let incomplete = parse_event(
            None,
            r#"{"type":"response.incomplete","sequence_number":9,"response":{"status":"incomplete","incomplete_details":{"reason":"max_output_tokens"},"usage":{"input_tokens":3,"output_tokens":16,"output_tokens_details":{"reasoning_tokens":16}}}}"#,
        )
        .unwrap();
        let ResponsesEvent::End(end) = incomplete else {
            panic!("response.incomplete ends the stream");
        };
        assert_eq!(end.finish_reason.as_deref(), Some("length"));
        assert_eq!(end.usage.unwrap().reasoning_tokens, 16);
        let failed = parse_event(
            None,
            r#"{"type":"response.failed","sequence_number":4,"response":{"status":"failed","error":{"code":"server_error","message":"boom"}}}"#,
        );
        assert!(matches!(failed, Err(ParseError::ServerError(m)) if m == "server_error: boom"));
        let error = parse_event(
            Some("error"),
            r#"{"type":"error","sequence_number":1,"code":"rate_limit_exceeded","message":"slow down","param":null}"#,
        );
        assert!(
            matches!(error, Err(ParseError::ServerError(m)) if m == "rate_limit_exceeded: slow down")
        );
        let unknown = parse_event(None, r#"{"type":"response.teleport.delta","delta":"x"}"#);
        assert!(
            matches!(unknown, Ok(ResponsesEvent::Unknown(k)) if k == "response.teleport.delta")
        );
        let mismatch = parse_event(Some("response.completed"), r#"{"type":"response.created"}"#);
        assert!(matches!(mismatch, Err(ParseError::Json(_))));
        assert!(matches!(parse_event(None, "{"), Err(ParseError::Json(_))));
    }

    #[test]
    fn a_whole_response_reads_answer_reasoning_refusal_and_usage() {
        let body = br#"{"id":"resp_2","object":"response","status":"completed","model":"o4-mini","error":null,"incomplete_details":null,
            "output":[{"type":"reasoning","id":"rs","summary":[{"type":"summary_text","text":"Think. "}]},
                      {"type":"message","id":"m","role":"assistant","content":[{"type":"output_text","text":"Answer","annotations":[]}]}],
            "usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":20,"output_tokens_details":{"reasoning_tokens":12},"total_tokens":25}}"#;
        let info = parse_response(body).unwrap();
        assert_eq!(info.text, "Think. Answer");
        assert!(info.has_output && !info.refusal);
        assert_eq!(info.finish_reason.as_deref(), Some("stop"));
        assert_eq!(info.usage.unwrap().reasoning_tokens, 12);
        let refused = parse_response(
            br#"{"status":"completed","output":[{"type":"message","content":[{"type":"refusal","refusal":"No."}]}]}"#,
        )
        .unwrap();
        assert!(refused.refusal && refused.has_output);
        let tool = parse_response(
            br#"{"status":"completed","output":[{"type":"function_call","name":"f","arguments":"{\"a\":1}","call_id":"c"}]}"#,
        )
        .unwrap();
        assert!(tool.has_output);
        let failed = parse_response(
            br#"{"status":"failed","error":{"code":"server_error","message":"down"}}"#,
        );
        assert!(matches!(failed, Err(ParseError::ServerError(_))));
    }

    #[test]
    fn system_messages_become_instructions_and_one_user_turn_is_plain_input() {
        let extra = Map::new();
        let messages = [
            json!({"role": "system", "content": "be brief"}),
            json!({"role": "user", "content": "hello"}),
        ];
        let body = request_body(
            "m",
            &messages,
            Some(("max_output_tokens", 32)),
            true,
            &extra,
        );
        assert_eq!(body["instructions"], "be brief");
        assert_eq!(body["input"], "hello");
        assert_eq!(body["max_output_tokens"], 32);
        assert_eq!(body["stream"], true);
        let turns = [
            json!({"role": "user", "content": "a"}),
            json!({"role": "assistant", "content": [{"type": "text", "text": "b"}]}),
            json!({"role": "user", "content": [{"type": "text", "text": "c"}]}),
        ];
        let body = request_body("m", &turns, None, false, &extra);
        assert_eq!(body["input"][1]["content"][0]["type"], "output_text");
        assert_eq!(body["input"][2]["content"][0]["type"], "input_text");
        assert!(body.get("max_output_tokens").is_none() && body.get("instructions").is_none());
    }
}
