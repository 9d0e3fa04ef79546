//! OpenAI's legacy text completions (`POST /v1/completions`, what vLLM's and SGLang's own
//! benchmarks drive): a `prompt` string instead of messages. Its streamed chunks and whole
//! answers carry `choices[].text` and the same `usage` as chat completions, so they are read by
//! [`super::openai`]'s parsers; only the request body differs.

use serde_json::{json, Map, Value};

use super::openai::ChatRequest;

/// The prompt text of chat messages: their contents in order, a blank line apart (a completion
/// has no roles; a multi-turn conversation is refused for this API by validation).
pub fn prompt_of(messages: &[Value]) -> String {
    messages
        .iter()
        .map(|message| crate::tokenizer::message_text(message, "\n"))
        .filter(|text| !text.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// The JSON body: drover's fields, then `extra_body`, then `min_tokens` and `ignore_eos`
/// (which win over the same keys in `extra_body`), as for chat completions.
pub fn request_body(request: &ChatRequest<'_>) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert(
        "prompt".into(),
        json!(prompt_of(&request.messages.to_values())),
    );
    if let (Some(limit), Some(field)) = (request.max_tokens, request.output_limit.field()) {
        body.insert(field.into(), json!(limit));
    }
    body.insert("stream".into(), json!(request.stream));
    if request.stream && request.include_usage {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    for (key, value) in request.extra_body {
        body.insert(key.clone(), value.clone());
    }
    if let Some(min_tokens) = request.min_tokens {
        body.insert("min_tokens".into(), json!(min_tokens));
    }
    if let Some(ignore_eos) = request.ignore_eos {
        body.insert("ignore_eos".into(), json!(ignore_eos));
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::openai::{parse_chunk, parse_completion, Messages};
    use crate::protocol::OutputLimit;

    #[test]
    fn a_prompt_is_the_messages_text_and_the_answer_is_the_choice_text() {
        let extra = Map::new();
        let request = ChatRequest {
            model: "m",
            messages: Messages::Prompt {
                system: Some("be brief"),
                user: "hello",
            },
            max_tokens: Some(16),
            output_limit: OutputLimit::MaxTokens,
            stream: true,
            include_usage: true,
            extra_body: &extra,
            min_tokens: None,
            ignore_eos: Some(true),
        };
        let body = request_body(&request);
        assert_eq!(body["prompt"], "be brief\n\nhello");
        assert_eq!(body["max_tokens"], 16);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["ignore_eos"], true);
        assert!(body.get("messages").is_none());
        let chunk = parse_chunk(
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"index":0,"text":" hi","logprobs":null,"finish_reason":null}],"model":"m"}"#,
        )
        .unwrap();
        assert!(chunk.has_output && chunk.has_answer);
        assert_eq!(chunk.text, " hi");
        let whole = parse_completion(
            br#"{"object":"text_completion","choices":[{"index":0,"text":"done","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#,
        )
        .unwrap();
        assert_eq!(whole.text, "done");
        assert_eq!(whole.finish_reason.as_deref(), Some("length"));
        assert_eq!(whole.usage.unwrap().completion_tokens, 1);
    }
}
