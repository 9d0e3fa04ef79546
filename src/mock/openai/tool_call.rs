//! The mock's tool calls: a request that declares tools is answered with a call of its first
//! tool (or the one `tool_choice` names) at the configured rate (always under `required` or a
//! named choice, never under `none`), its arguments made from the tool's schema, a configured
//! share of them deliberately broken (cut in half, so not JSON). The arguments stream in pieces
//! of a few characters, one per token.

use serde_json::Value;

use super::Format;
use crate::mock::MockConfig;

/// A planned tool call.
#[derive(Debug, Clone)]
pub(super) struct MockToolCall {
    pub name: String,
    /// The arguments, in the pieces they stream in (one per token).
    pub pieces: Vec<String>,
}

impl MockToolCall {
    pub(super) fn arguments(&self) -> String {
        self.pieces.concat()
    }
}

/// Characters per streamed piece of arguments.
const PIECE_CHARS: usize = 4;

/// The call a request gets, if any; `draw` gives uniform numbers in [0, 1).
pub(super) fn plan(
    request: &Value,
    format: Format,
    config: &MockConfig,
    draw: &mut dyn FnMut() -> f64,
) -> Option<MockToolCall> {
    let tools = request.get("tools")?.as_array()?;
    let choice = request.get("tool_choice");
    let chosen_name = choice.and_then(|c| {
        c.pointer("/function/name")
            .or_else(|| c.get("name"))
            .and_then(Value::as_str)
    });
    let mode = choice.and_then(|c| c.as_str().or_else(|| c.get("type").and_then(Value::as_str)));
    let always = chosen_name.is_some() || matches!(mode, Some("required") | Some("any"));
    if mode == Some("none") || tools.is_empty() {
        return None;
    }
    if !always && draw() >= config.tool_call_rate {
        return None;
    }
    // (name, schema) of a tool in the request's format.
    let described = |tool: &Value| -> Option<(String, Value)> {
        let (name, schema) = match format {
            Format::Anthropic => (tool.get("name"), tool.get("input_schema")),
            Format::Responses => (tool.get("name"), tool.get("parameters")),
            _ => (
                tool.pointer("/function/name"),
                tool.pointer("/function/parameters"),
            ),
        };
        Some((
            name?.as_str()?.to_string(),
            schema.cloned().unwrap_or(Value::Null),
        ))
    };
    let (name, schema) = tools
        .iter()
        .filter_map(described)
        .find(|(name, _)| chosen_name.is_none_or(|chosen| chosen == name))?;
    let mut arguments = crate::protocol::tools::example_arguments(&schema).to_string();
    if draw() < config.broken_arguments_rate {
        let mut cut = arguments.len() / 2;
        while !arguments.is_char_boundary(cut) {
            cut -= 1;
        }
        arguments.truncate(cut);
    }
    let chars: Vec<char> = arguments.chars().collect();
    let pieces = chars
        .chunks(PIECE_CHARS)
        .map(|piece| piece.iter().collect())
        .collect();
    Some(MockToolCall { name, pieces })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(choice: Value) -> Value {
        json!({
            "tools": [{ "type": "function", "function": { "name": "get_weather", "parameters": {
                "type": "object", "properties": { "city": { "type": "string" } }, "required": ["city"]
            }}}],
            "tool_choice": choice,
        })
    }

    #[test]
    fn calls_follow_the_rate_the_choice_and_the_schema() {
        let config = MockConfig {
            tool_call_rate: 0.3,
            broken_arguments_rate: 0.0,
            ..MockConfig::default()
        };
        let call = plan(
            &request(json!("auto")),
            Format::OpenAi,
            &config,
            &mut || 0.1,
        )
        .unwrap();
        assert_eq!(call.name, "get_weather");
        let arguments: Value = serde_json::from_str(&call.arguments()).unwrap();
        assert_eq!(arguments, json!({ "city": "paris" }));
        assert!(call.pieces.len() > 1);
        assert!(plan(
            &request(json!("auto")),
            Format::OpenAi,
            &config,
            &mut || 0.5
        )
        .is_none());
        assert!(plan(
            &request(json!("required")),
            Format::OpenAi,
            &config,
            &mut || 0.5
        )
        .is_some());
        assert!(plan(
            &request(json!("none")),
            Format::OpenAi,
            &config,
            &mut || 0.0
        )
        .is_none());
        let broken = MockConfig {
            broken_arguments_rate: 1.0,
            ..config.clone()
        };
        let call = plan(
            &request(json!("required")),
            Format::OpenAi,
            &broken,
            &mut || 0.5,
        )
        .unwrap();
        assert!(serde_json::from_str::<Value>(&call.arguments()).is_err());
        assert!(plan(
            &json!({ "messages": [] }),
            Format::OpenAi,
            &config,
            &mut || 0.0
        )
        .is_none());
    }
}
