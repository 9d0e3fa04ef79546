//! Wire formats: the OpenAI-compatible chat-completions API, the Responses API, legacy text
//! completions, embeddings, the Anthropic Messages API, the Server-Sent Events stream they use,
//! the asynchronous Batch APIs' lines, and the Prometheus text servers export metrics in.
//!
//! [`Api`] is the one place that knows what differs between the APIs a target may speak: the
//! path, how the key is sent, the request body, how a stream ends, and how its events and a
//! whole answer are decoded. The driver asks it and never matches on the API itself; a new API
//! is a new variant here (and a route in the mock).

pub mod anthropic;
pub mod batch;
pub mod completions;
pub mod embeddings;
pub mod images;
pub mod message_batches;
pub mod openai;
pub mod prometheus;
pub mod responses;
pub mod sse;
pub mod tools;

use bytes::Bytes;
use http::header::{InvalidHeaderValue, AUTHORIZATION};
use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use openai::{ChatRequest, ChunkInfo, CompletionInfo, ParseError};

/// The API a target speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Api {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer`, `data:` chunks until `[DONE]`.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// `POST {base_url}/messages`, `x-api-key` and `anthropic-version`, event-typed SSE.
    #[serde(rename = "anthropic")]
    Anthropic,
    /// `POST {base_url}/responses`: `input` and `instructions`, typed events until
    /// `response.completed`.
    #[serde(rename = "responses")]
    Responses,
    /// `POST {base_url}/completions`: a `prompt` string, `data:` chunks of `choices[].text`.
    #[serde(rename = "completions")]
    Completions,
    /// `POST {base_url}/embeddings`: `input` strings, one JSON answer of vectors (no stream).
    #[serde(rename = "embeddings")]
    Embeddings,
}

/// The request field that caps the output, or none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputLimit {
    /// `max_tokens` (chat completions, legacy completions, Anthropic).
    MaxTokens,
    /// `max_completion_tokens` (OpenAI's reasoning models on chat completions).
    MaxCompletionTokens,
    /// `max_output_tokens` (the Responses API).
    MaxOutputTokens,
    /// No cap is sent.
    None,
}

impl OutputLimit {
    /// The field's name in a request body.
    pub fn field(self) -> Option<&'static str> {
        match self {
            OutputLimit::MaxTokens => Some("max_tokens"),
            OutputLimit::MaxCompletionTokens => Some("max_completion_tokens"),
            OutputLimit::MaxOutputTokens => Some("max_output_tokens"),
            OutputLimit::None => None,
        }
    }
}

/// How a key is sent: a header, and a scheme before the key (`Bearer`) or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    pub header: HeaderName,
    pub scheme: String,
}

impl Auth {
    /// The header that carries `key`, marked sensitive (never logged or shown).
    pub fn header_for(&self, key: &str) -> Result<(HeaderName, HeaderValue), InvalidHeaderValue> {
        let text = if self.scheme.is_empty() {
            key.to_string()
        } else {
            format!("{} {key}", self.scheme)
        };
        let mut value = HeaderValue::from_str(&text)?;
        value.set_sensitive(true);
        Ok((self.header.clone(), value))
    }
}

impl Api {
    /// Every API, in the order documentation lists them.
    pub const ALL: [Api; 5] = [
        Api::OpenAi,
        Api::Responses,
        Api::Completions,
        Api::Embeddings,
        Api::Anthropic,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
            Api::Responses => "responses",
            Api::Completions => "completions",
            Api::Embeddings => "embeddings",
        }
    }

    /// The request path under the target's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Api::OpenAi => "chat/completions",
            Api::Anthropic => "messages",
            Api::Responses => "responses",
            Api::Completions => "completions",
            Api::Embeddings => "embeddings",
        }
    }

    /// Whether the API can stream its answer.
    pub fn streams(self) -> bool {
        self != Api::Embeddings
    }

    /// Whether its answers are generated text (and so have tokens, a first token and a cap).
    pub fn generates(self) -> bool {
        self != Api::Embeddings
    }

    /// The `url` of this API's lines in an OpenAI Batch API input file, if it has one there.
    pub fn openai_batch_url(self) -> Option<&'static str> {
        match self {
            Api::OpenAi => Some("/v1/chat/completions"),
            Api::Responses => Some("/v1/responses"),
            Api::Completions => Some("/v1/completions"),
            Api::Embeddings => Some("/v1/embeddings"),
            Api::Anthropic => None,
        }
    }

    /// The asynchronous batch API that carries this API's requests, if there is one.
    pub fn batch_api(self) -> Option<batch::BatchApi> {
        match self {
            Api::Anthropic => Some(batch::BatchApi::MessageBatches),
            _ => self.openai_batch_url().map(|_| batch::BatchApi::OpenAi),
        }
    }

    /// The output cap's field unless a target names another.
    pub fn default_output_limit(self) -> OutputLimit {
        match self {
            Api::OpenAi | Api::Anthropic | Api::Completions => OutputLimit::MaxTokens,
            Api::Responses => OutputLimit::MaxOutputTokens,
            Api::Embeddings => OutputLimit::None,
        }
    }

    /// How a key is sent unless a target says otherwise.
    pub fn default_auth(self) -> Auth {
        match self {
            Api::Anthropic => Auth {
                header: HeaderName::from_static("x-api-key"),
                scheme: String::new(),
            },
            _ => Auth {
                header: AUTHORIZATION,
                scheme: "Bearer".into(),
            },
        }
    }

    /// Headers every request of this API carries.
    pub fn fixed_headers(self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Api::Anthropic => vec![(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(anthropic::API_VERSION),
            )],
            _ => Vec::new(),
        }
    }

    /// The request body for `request`, in this API's format.
    pub fn body(self, request: &ChatRequest<'_>) -> Bytes {
        let value = match self {
            Api::OpenAi => return Bytes::from(request.to_bytes()),
            Api::Anthropic => anthropic::request_body(
                request.model,
                &request.messages.to_values(),
                request.max_tokens,
                request.stream,
                request.extra_body,
            ),
            Api::Responses => responses::request_body(
                request.model,
                &request.messages.to_values(),
                request.output_limit.field().zip(request.max_tokens),
                request.stream,
                request.extra_body,
            ),
            Api::Completions => completions::request_body(request),
            Api::Embeddings => embeddings::request_body(
                request.model,
                &request.messages.to_values(),
                request.extra_body,
            ),
        };
        Bytes::from(value.to_string())
    }

    /// What ends a stream of this API, as an error message names it.
    pub fn end_of_stream(self) -> &'static str {
        match self {
            Api::OpenAi | Api::Completions | Api::Embeddings => "[DONE]",
            Api::Anthropic => "message_stop",
            Api::Responses => "response.completed",
        }
    }

    /// A decoder for one stream's events.
    pub fn stream_decoder(self) -> StreamDecoder {
        StreamDecoder {
            api: self,
            anthropic_usage: anthropic::StreamUsage::default(),
            openai: openai::ChunkReader::default(),
        }
    }

    /// A whole (non-streamed) answer.
    pub fn parse_completion(self, body: &[u8]) -> Result<CompletionInfo<'_>, ParseError> {
        match self {
            Api::OpenAi | Api::Completions => openai::parse_completion(body),
            Api::Anthropic => anthropic::parse_message(body),
            Api::Responses => responses::parse_response(body),
            Api::Embeddings => embeddings::parse_embeddings(body),
        }
    }

    /// The prompt of a request body this API sent, as chat messages (for counting its tokens
    /// when the server sends no usage).
    pub fn prompt_messages(self, body: &serde_json::Value) -> serde_json::Value {
        use serde_json::{json, Value};
        let text = |value: &Value| json!([{ "role": "user", "content": value }]);
        match self {
            Api::OpenAi => body["messages"].clone(),
            Api::Anthropic => {
                let mut messages = body["messages"].as_array().cloned().unwrap_or_default();
                if let Some(system) = body.get("system") {
                    messages.insert(0, json!({ "role": "system", "content": system }));
                }
                Value::Array(messages)
            }
            Api::Responses => {
                let mut messages = match &body["input"] {
                    Value::Array(items) => items.clone(),
                    other => vec![json!({ "role": "user", "content": other })],
                };
                if let Some(instructions) = body.get("instructions") {
                    messages.insert(0, json!({ "role": "system", "content": instructions }));
                }
                Value::Array(messages)
            }
            Api::Completions => text(&body["prompt"]),
            Api::Embeddings => match &body["input"] {
                Value::Array(inputs) => Value::Array(
                    inputs
                        .iter()
                        .map(|input| json!({ "role": "user", "content": input }))
                        .collect(),
                ),
                other => text(other),
            },
        }
    }
}

/// One stream's events decoded, with what the API carries across events (Anthropic sends usage
/// in pieces; OpenAI-compatible chunks repeat their bytes, which [`openai::ChunkReader`] uses).
#[derive(Debug)]
pub struct StreamDecoder {
    api: Api,
    anthropic_usage: anthropic::StreamUsage,
    openai: openai::ChunkReader,
}

/// One decoded stream event.
#[derive(Debug)]
pub enum StreamItem<'a> {
    /// Output, usage or metadata.
    Chunk(ChunkInfo<'a>),
    /// A keep-alive (never a token).
    Ping,
    /// The end of the stream (`[DONE]`; a final chunk may come with it).
    End(Option<ChunkInfo<'a>>),
    /// An event of a type the API does not define (counted and named, never dropped silently).
    Unknown(String),
}

impl StreamDecoder {
    /// Decodes one SSE event (`name`: its `event:` field, `data`: its data).
    pub fn decode<'a>(
        &mut self,
        name: Option<&str>,
        data: &'a str,
    ) -> Result<StreamItem<'a>, ParseError> {
        match self.api {
            Api::OpenAi | Api::Completions | Api::Embeddings if is_done(data) => {
                Ok(StreamItem::End(None))
            }
            Api::OpenAi | Api::Completions | Api::Embeddings => {
                self.openai.read(data).map(StreamItem::Chunk)
            }
            Api::Anthropic => {
                let event = anthropic::parse_event(name, data, &mut self.anthropic_usage)?;
                Ok(if let Some(kind) = event.unknown {
                    StreamItem::Unknown(kind)
                } else if event.ping {
                    StreamItem::Ping
                } else if event.stop {
                    StreamItem::End(Some(event.chunk))
                } else {
                    StreamItem::Chunk(event.chunk)
                })
            }
            Api::Responses => Ok(match responses::parse_event(name, data)? {
                responses::ResponsesEvent::Chunk(chunk) => StreamItem::Chunk(chunk),
                responses::ResponsesEvent::End(chunk) => StreamItem::End(Some(chunk)),
                responses::ResponsesEvent::Unknown(kind) => StreamItem::Unknown(kind),
            }),
        }
    }
}

/// Whether an OpenAI-style event's data is the `[DONE]` marker (white space around it allowed).
/// A chunk starts with `{`, which is not white space: it is told apart by its first byte,
/// without trimming every chunk from both ends.
fn is_done(data: &str) -> bool {
    !data.starts_with('{') && data.trim() == "[DONE]"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_done_marker_is_told_from_chunks() {
        for done in ["[DONE]", " [DONE] ", "\t[DONE]\r\n", "\u{a0}[DONE]"] {
            assert!(is_done(done), "{done:?}");
        }
        for other in ["{\"choices\":[]}", "{[DONE]", "[DONE", "[done]", ""] {
            assert!(!is_done(other), "{other:?}");
        }
    }

    #[test]
    fn each_api_sends_its_key_its_way() {
        let openai = Api::OpenAi.default_auth().header_for("sk-1").unwrap();
        assert_eq!(openai.0, AUTHORIZATION);
        assert_eq!(openai.1, "Bearer sk-1");
        assert!(openai.1.is_sensitive());
        let anthropic = Api::Anthropic.default_auth().header_for("sk-2").unwrap();
        assert_eq!(
            (anthropic.0.as_str(), anthropic.1.to_str().unwrap()),
            ("x-api-key", "sk-2")
        );
        let azure = Auth {
            header: HeaderName::from_static("api-key"),
            scheme: String::new(),
        };
        let azure = azure.header_for("az-3").unwrap();
        assert_eq!(
            (azure.0.as_str(), azure.1.to_str().unwrap()),
            ("api-key", "az-3")
        );
        assert!(azure.1.is_sensitive());
        assert_eq!(
            Api::Anthropic.fixed_headers()[0].0.as_str(),
            "anthropic-version"
        );
        assert!(Api::OpenAi.fixed_headers().is_empty());
        assert!(Api::OpenAi.default_auth().header_for("bad\nkey").is_err());
    }

    #[test]
    fn a_stream_ends_at_done_or_message_stop() {
        let mut openai = Api::OpenAi.stream_decoder();
        assert!(matches!(
            openai.decode(None, " [DONE] "),
            Ok(StreamItem::End(None))
        ));
        let chunk = r#"{"choices":[{"index":0,"delta":{"content":"hi"}}]}"#;
        assert!(matches!(
            openai.decode(None, chunk),
            Ok(StreamItem::Chunk(_))
        ));
        let mut anthropic = Api::Anthropic.stream_decoder();
        assert!(matches!(
            anthropic.decode(Some("ping"), r#"{"type":"ping"}"#),
            Ok(StreamItem::Ping)
        ));
        assert!(matches!(
            anthropic.decode(Some("message_stop"), r#"{"type":"message_stop"}"#),
            Ok(StreamItem::End(Some(_)))
        ));
    }
}
