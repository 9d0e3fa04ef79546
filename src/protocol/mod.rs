//! Wire formats: the OpenAI-compatible chat-completions API, the Anthropic Messages API, the
//! Server-Sent Events stream both use, and the asynchronous Batch API's lines.
//!
//! [`Api`] is the one place that knows what differs between the APIs a target may speak: the
//! path, how the key is sent, the request body, how a stream ends, and how its events and a
//! whole answer are decoded. The driver asks it and never matches on the API itself; a new API
//! is a new variant here (and a route in the mock).

pub mod anthropic;
pub mod batch;
pub mod openai;
pub mod sse;

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
}

impl Api {
    pub fn name(self) -> &'static str {
        match self {
            Api::OpenAi => "openai",
            Api::Anthropic => "anthropic",
        }
    }

    /// The request path under the target's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Api::OpenAi => "chat/completions",
            Api::Anthropic => "messages",
        }
    }

    /// The headers that carry `key`, marked sensitive (never logged or shown).
    pub fn key_headers(
        self,
        key: &str,
    ) -> Result<Vec<(HeaderName, HeaderValue)>, InvalidHeaderValue> {
        let (name, text) = match self {
            Api::OpenAi => (AUTHORIZATION, format!("Bearer {key}")),
            Api::Anthropic => (HeaderName::from_static("x-api-key"), key.to_string()),
        };
        let mut value = HeaderValue::from_str(&text)?;
        value.set_sensitive(true);
        Ok(vec![(name, value)])
    }

    /// Headers every request of this API carries.
    pub fn fixed_headers(self) -> Vec<(HeaderName, HeaderValue)> {
        match self {
            Api::OpenAi => Vec::new(),
            Api::Anthropic => vec![(
                HeaderName::from_static("anthropic-version"),
                HeaderValue::from_static(anthropic::API_VERSION),
            )],
        }
    }

    /// The request body for `request`, in this API's format.
    pub fn body(self, request: &ChatRequest<'_>) -> Bytes {
        match self {
            Api::OpenAi => Bytes::from(request.to_bytes()),
            Api::Anthropic => Bytes::from(
                anthropic::request_body(
                    request.model,
                    &request.messages.to_values(),
                    request.max_tokens,
                    request.stream,
                    request.extra_body,
                )
                .to_string(),
            ),
        }
    }

    /// What ends a stream of this API, as an error message names it.
    pub fn end_of_stream(self) -> &'static str {
        match self {
            Api::OpenAi => "[DONE]",
            Api::Anthropic => "message_stop",
        }
    }

    /// A decoder for one stream's events.
    pub fn stream_decoder(self) -> StreamDecoder {
        StreamDecoder {
            api: self,
            anthropic_usage: anthropic::StreamUsage::default(),
        }
    }

    /// A whole (non-streamed) answer.
    pub fn parse_completion(self, body: &[u8]) -> Result<CompletionInfo<'_>, ParseError> {
        match self {
            Api::OpenAi => openai::parse_completion(body),
            Api::Anthropic => anthropic::parse_message(body),
        }
    }
}

/// One stream's events decoded, with what the API carries across events (Anthropic sends usage
/// in pieces).
#[derive(Debug)]
pub struct StreamDecoder {
    api: Api,
    anthropic_usage: anthropic::StreamUsage,
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
}

impl StreamDecoder {
    /// Decodes one SSE event (`name`: its `event:` field, `data`: its data).
    pub fn decode<'a>(
        &mut self,
        name: Option<&str>,
        data: &'a str,
    ) -> Result<StreamItem<'a>, ParseError> {
        match self.api {
            Api::OpenAi if data.trim() == "[DONE]" => Ok(StreamItem::End(None)),
            Api::OpenAi => openai::parse_chunk(data).map(StreamItem::Chunk),
            Api::Anthropic => {
                let event = anthropic::parse_event(name, data, &mut self.anthropic_usage)?;
                Ok(if event.ping {
                    StreamItem::Ping
                } else if event.stop {
                    StreamItem::End(Some(event.chunk))
                } else {
                    StreamItem::Chunk(event.chunk)
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_sends_its_key_its_way() {
        let openai = Api::OpenAi.key_headers("sk-1").unwrap();
        assert_eq!(openai[0].0, AUTHORIZATION);
        assert_eq!(openai[0].1, "Bearer sk-1");
        assert!(openai[0].1.is_sensitive());
        let anthropic = Api::Anthropic.key_headers("sk-2").unwrap();
        assert_eq!(
            (anthropic[0].0.as_str(), anthropic[0].1.to_str().unwrap()),
            ("x-api-key", "sk-2")
        );
        assert_eq!(
            Api::Anthropic.fixed_headers()[0].0.as_str(),
            "anthropic-version"
        );
        assert!(Api::OpenAi.fixed_headers().is_empty());
        assert!(Api::OpenAi.key_headers("bad\nkey").is_err());
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
