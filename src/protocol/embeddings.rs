//! OpenAI's embeddings (`POST /v1/embeddings`): `input` as one string or a list of them, and a
//! whole answer of vectors with `usage.prompt_tokens`. Embeddings do not stream; the vectors are
//! skipped while parsing (only their number is kept), so a large answer costs no allocation per
//! number.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::openai::{CompletionInfo, ParseError};
use crate::record::Usage;

/// The texts to embed: the content of each non-system message, in order.
pub fn inputs_of(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) != Some("system"))
        .filter_map(|m| match m.get("content") {
            Some(Value::String(text)) => Some(text.clone()),
            Some(Value::Array(parts)) => Some(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
            _ => None,
        })
        .collect()
}

/// The JSON body: one input as a string, several as a list, then `extra_body` (which may set
/// `dimensions` or `encoding_format`).
pub fn request_body(model: &str, messages: &[Value], extra_body: &Map<String, Value>) -> Value {
    let mut inputs = inputs_of(messages);
    let input = if inputs.len() == 1 {
        Value::String(inputs.remove(0))
    } else {
        json!(inputs)
    };
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert("input".into(), input);
    for (key, value) in extra_body {
        body.insert(key.clone(), value.clone());
    }
    Value::Object(body)
}

#[derive(Debug, Deserialize)]
struct WireEmbeddings {
    #[serde(default)]
    data: Option<Vec<serde::de::IgnoredAny>>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
}

/// Reads an embeddings answer: its vector count, model and input tokens. An answer without a
/// `data` list is a protocol error.
pub fn parse_embeddings(body: &[u8]) -> Result<CompletionInfo<'static>, ParseError> {
    let answer: WireEmbeddings =
        serde_json::from_slice(body).map_err(|e| ParseError::Json(e.to_string()))?;
    if let Some(error) = answer.error.as_ref().filter(|e| !e.is_null()) {
        return Err(ParseError::ServerError(super::openai::error_message(error)));
    }
    let vectors = answer
        .data
        .ok_or_else(|| ParseError::Json("an embeddings answer without \"data\"".into()))?
        .len();
    Ok(CompletionInfo {
        has_output: vectors > 0,
        finish_reason: None,
        model: answer.model.map(Cow::Owned),
        usage: answer.usage.map(|u| Usage {
            prompt_tokens: u.prompt_tokens.unwrap_or(0),
            ..Usage::default()
        }),
        text: Cow::Borrowed(""),
        refusal: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_input_is_a_string_and_many_are_a_list() {
        let extra = Map::new();
        let one = [json!({"role": "user", "content": "a"})];
        assert_eq!(request_body("e", &one, &extra)["input"], "a");
        let many = [
            json!({"role": "system", "content": "ignored"}),
            json!({"role": "user", "content": "a"}),
            json!({"role": "user", "content": "b"}),
        ];
        assert_eq!(request_body("e", &many, &extra)["input"], json!(["a", "b"]));
    }

    #[test]
    fn an_answer_is_read_without_its_vectors() {
        let info = parse_embeddings(
            br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2]},{"object":"embedding","index":1,"embedding":"AAAA"}],"model":"e-1","usage":{"prompt_tokens":7,"total_tokens":7}}"#,
        )
        .unwrap();
        assert!(info.has_output);
        assert_eq!(info.usage.unwrap().prompt_tokens, 7);
        assert_eq!(info.model.as_deref(), Some("e-1"));
        assert!(matches!(
            parse_embeddings(br#"{"object":"list"}"#),
            Err(ParseError::Json(_))
        ));
        assert!(matches!(
            parse_embeddings(br#"{"error":{"message":"bad","type":"invalid_request_error"}}"#),
            Err(ParseError::ServerError(_))
        ));
    }
}
