//! The tool calls of one answer, as their pieces stream in: when the first piece arrived, each
//! call's name and arguments (bounded), and at the end whether each call's arguments parse as
//! JSON and satisfy the schema the class declared for that tool.

use std::time::Instant;

use crate::protocol::tools::{ToolDelta, ToolSet};
use crate::record::ToolCallDetail;

/// Most calls kept per answer, and most bytes of arguments kept per call (past them only the
/// count grows).
const MAX_CALLS: usize = 64;
const MAX_ARGUMENT_BYTES: usize = 64 * 1024;

/// The calls seen so far.
#[derive(Debug, Default)]
pub struct ToolCallsSeen {
    first: Option<Instant>,
    /// (index, name, arguments, arguments cut at the bound)
    calls: Vec<(u32, String, String, bool)>,
    /// The first call's id.
    first_id: Option<String>,
}

impl ToolCallsSeen {
    /// Adds a piece that arrived at `at`.
    pub fn push(&mut self, delta: &ToolDelta<'_>, at: Instant) {
        if delta.name.is_none() && delta.arguments.is_empty() {
            return;
        }
        self.first.get_or_insert(at);
        let position = self.calls.iter().position(|call| call.0 == delta.index);
        let position = match position {
            Some(position) => position,
            None if self.calls.len() < MAX_CALLS => {
                self.calls
                    .push((delta.index, String::new(), String::new(), false));
                self.calls.len() - 1
            }
            None => return,
        };
        if let (0, Some(id)) = (position, &delta.id) {
            self.first_id = Some(id.chars().take(256).collect());
        }
        let call = &mut self.calls[position];
        if let Some(name) = &delta.name {
            call.1 = name.chars().take(256).collect();
        }
        let room = MAX_ARGUMENT_BYTES.saturating_sub(call.2.len());
        if delta.arguments.len() <= room {
            call.2.push_str(&delta.arguments);
        } else {
            let mut end = room;
            while !delta.arguments.is_char_boundary(end) {
                end -= 1;
            }
            call.2.push_str(&delta.arguments[..end]);
            call.3 = true;
        }
    }

    /// Whether any call was seen.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The first call: its id (made up when the stream gave none), name and arguments.
    pub fn first_call(&self) -> Option<(String, String, String)> {
        let (_, name, arguments, _) = self.calls.first()?;
        let id = self
            .first_id
            .clone()
            .unwrap_or_else(|| "call_drover_0".to_string());
        Some((id, name.clone(), arguments.clone()))
    }

    /// The answer's calls judged against the class's `tools` (a call of an undeclared tool, or
    /// whose arguments were cut, does not match), with its arguments' text for counting.
    pub fn finish(self, tools: Option<&ToolSet>) -> (ToolCallDetail, String) {
        let mut detail = ToolCallDetail {
            first: self.first,
            calls: self.calls.len() as u32,
            ..ToolCallDetail::default()
        };
        let mut arguments = String::new();
        for (_, name, text, cut) in &self.calls {
            arguments.push_str(text);
            // An empty argument string is an empty object (a tool without parameters).
            let parsed = if text.trim().is_empty() {
                Ok(serde_json::json!({}))
            } else {
                serde_json::from_str::<serde_json::Value>(text)
            };
            let Ok(value) = parsed else {
                continue;
            };
            if *cut {
                continue;
            }
            detail.valid_json += 1;
            let schema = tools.and_then(|tools| tools.schema(name));
            if schema.is_some_and(|schema| crate::protocol::tools::matches(schema, &value)) {
                detail.matching_schema += 1;
            }
        }
        (detail, arguments)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::tools::{ToolChoice, ToolDef};
    use std::borrow::Cow;

    fn piece(index: u32, name: Option<&str>, arguments: &str) -> ToolDelta<'static> {
        ToolDelta {
            index,
            id: None,
            name: name.map(|n| Cow::Owned(n.to_string())),
            arguments: Cow::Owned(arguments.to_string()),
        }
    }

    #[test]
    fn calls_are_assembled_from_their_pieces_and_judged() {
        let tools = ToolSet {
            tools: vec![ToolDef {
                name: "get_weather".into(),
                description: None,
                parameters: serde_json::json!({
                    "type": "object",
                    "properties": { "city": { "type": "string" } },
                    "required": ["city"]
                }),
            }],
            choice: ToolChoice::Auto,
            result: None,
        };
        let start = Instant::now();
        let mut seen = ToolCallsSeen::default();
        seen.push(&piece(0, None, ""), start);
        assert!(seen.is_empty(), "an empty piece is not a call");
        seen.push(&piece(0, Some("get_weather"), ""), start);
        seen.push(&piece(0, None, "{\"ci"), start);
        seen.push(&piece(0, None, "ty\": \"Oslo\"}"), start);
        // A second call whose arguments do not match, a third that is not JSON.
        seen.push(&piece(1, Some("get_weather"), "{\"town\": 1}"), start);
        seen.push(&piece(2, Some("get_weather"), "{\"city\": "), start);
        let (detail, arguments) = seen.finish(Some(&tools));
        assert_eq!(detail.first, Some(start));
        assert_eq!(detail.calls, 3);
        assert_eq!(detail.valid_json, 2);
        assert_eq!(detail.matching_schema, 1);
        assert!(arguments.starts_with("{\"city\": \"Oslo\"}"));
    }
}
