//! OpenAI-compatible `/v1/chat/completions`: request bodies, streamed chunk parsing and
//! non-streaming response parsing. Only the fields drover measures are read.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::record::Usage;

/// Inputs for one chat-completion request body.
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Value],
    pub max_tokens: Option<u32>,
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
        let text: usize = self
            .messages
            .iter()
            .filter_map(|m| m.get("content").and_then(Value::as_str))
            .map(str::len)
            .sum();
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
        map.serialize_entry("messages", self.messages)?;
        if let Some(max_tokens) = self.max_tokens {
            map.serialize_entry("max_tokens", &max_tokens)?;
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
        }
    }
}

#[derive(Debug, Deserialize)]
struct WireChunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct WireDelta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    reasoning_content: Option<String>,
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

/// What one streamed chunk carried.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChunkInfo {
    /// Non-empty output of any kind: content, reasoning or tool-call text.
    pub has_output: bool,
    /// Non-empty `content` (the answer, as opposed to reasoning).
    pub has_answer: bool,
    pub finish_reason: Option<String>,
    /// The `model` the chunk names (what answered).
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// The chunk's output text (content, then reasoning), for counting tokens without usage.
    pub text: String,
}

/// Why a response could not be read as OpenAI-compatible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON in response: {0}")]
    Json(String),
    #[error("server sent an error: {0}")]
    ServerError(String),
}

fn is_nonempty(text: &Option<String>) -> bool {
    text.as_deref().is_some_and(|s| !s.is_empty())
}

/// Parses the `data` of one SSE event (not `[DONE]`).
pub fn parse_chunk(data: &str) -> Result<ChunkInfo, ParseError> {
    let chunk: WireChunk =
        serde_json::from_str(data).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(error) = chunk.error {
        return Err(ParseError::ServerError(error_message(&error)));
    }
    let mut info = ChunkInfo {
        usage: chunk.usage.map(WireUsage::into_usage),
        model: chunk.model,
        ..ChunkInfo::default()
    };
    for choice in chunk.choices {
        if let Some(delta) = choice.delta {
            let tool_text = delta.tool_calls.as_ref().is_some_and(|calls| {
                calls.iter().any(|call| {
                    call.pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                        || call
                            .pointer("/function/name")
                            .and_then(Value::as_str)
                            .is_some_and(|s| !s.is_empty())
                })
            });
            let answer = is_nonempty(&delta.content);
            info.has_answer |= answer;
            info.has_output |= answer
                || is_nonempty(&delta.reasoning_content)
                || is_nonempty(&delta.reasoning)
                || tool_text;
            for text in [delta.content, delta.reasoning_content, delta.reasoning]
                .into_iter()
                .flatten()
            {
                if info.text.is_empty() {
                    info.text = text;
                } else {
                    info.text.push_str(&text);
                }
            }
        }
        if choice.finish_reason.is_some() {
            info.finish_reason = choice.finish_reason;
        }
    }
    Ok(info)
}

/// The measured parts of a non-streaming completion.
#[derive(Debug, PartialEq, Eq)]
pub struct CompletionInfo {
    pub has_output: bool,
    /// Characters of output text (content, reasoning), for an estimate when usage is absent.
    pub output_chars: usize,
    pub finish_reason: Option<String>,
    /// The `model` the response names (what answered).
    pub model: Option<String>,
    pub usage: Option<Usage>,
    /// The output text (content, reasoning), for counting tokens without usage.
    pub text: String,
}

#[derive(Debug, Deserialize)]
struct WireCompletion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<WireCompletionChoice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireCompletionChoice {
    #[serde(default)]
    message: Option<WireDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

/// Parses a whole non-streaming response body.
pub fn parse_completion(body: &[u8]) -> Result<CompletionInfo, ParseError> {
    let completion: WireCompletion =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(error) = completion.error {
        return Err(ParseError::ServerError(error_message(&error)));
    }
    let first = completion.choices.into_iter().next();
    let has_output = first
        .as_ref()
        .and_then(|c| c.message.as_ref())
        .is_some_and(|m| {
            is_nonempty(&m.content)
                || is_nonempty(&m.reasoning_content)
                || m.tool_calls.as_ref().is_some_and(|t| !t.is_empty())
        });
    let text: String = first
        .as_ref()
        .and_then(|c| c.message.as_ref())
        .map_or(String::new(), |m| {
            [&m.content, &m.reasoning_content, &m.reasoning]
                .iter()
                .filter_map(|t| t.as_deref())
                .collect()
        });
    Ok(CompletionInfo {
        has_output,
        output_chars: text.chars().count(),
        finish_reason: first.and_then(|c| c.finish_reason),
        model: completion.model,
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

/// The error message of a non-2xx response body, or the start of the body as text.
pub fn describe_error_body(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        if let Some(error) = value.get("error") {
            return error_message(error);
        }
    }
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let mut short: String = trimmed.chars().take(300).collect();
    if short.len() < trimmed.len() {
        short.push('…');
    }
    short
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
            })
        );
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
    fn request_body_passes_extra_fields_through() {
        let mut extra = Map::new();
        extra.insert("mode".into(), Value::from("batch"));
        extra.insert("ignore_eos".into(), Value::from(false));
        let messages = [serde_json::json!({"role": "user", "content": "x \"quoted\""})];
        let request = ChatRequest {
            model: "m",
            messages: &messages,
            max_tokens: Some(8),
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
