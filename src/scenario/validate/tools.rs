//! `tools` and `tool_choice` of a class: each tool's name and JSON Schema checked (inline, or
//! read from a JSON file of tools in drover's shape or OpenAI's `{ type, function }`), and the
//! choice naming a declared tool.

use std::path::Path;

use serde_json::Value;

use crate::protocol::tools::{check_schema, ToolChoice, ToolDef, ToolSet};
use crate::scenario::locate::KeyPath;
use crate::scenario::schema::{ClassSpec, ToolChoiceSpec, ToolsSpec};

use super::Checker;

/// The largest tools file read.
const MAX_TOOLS_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// The class's tool set, or `None` (none declared, or a failure recorded).
pub(super) fn tool_set(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &ClassSpec,
    base_dir: &Path,
) -> Option<ToolSet> {
    let Some(tools_spec) = &spec.tools else {
        if spec.tool_choice.is_some() {
            checker.fail(&key.key("tool_choice"), "applies to tools: set tools too");
        }
        if spec.tool_result.is_some() {
            checker.fail(&key.key("tool_result"), "applies to tools: set tools too");
        }
        return None;
    };
    let tools_key = key.key("tools");
    let tools = match tools_spec {
        ToolsSpec::Inline(list) => {
            list.iter()
                .enumerate()
                .map(|(i, tool)| {
                    let at = tools_key.index(i);
                    let parameters = tool.parameters.clone().unwrap_or_else(
                        || serde_json::json!({ "type": "object", "properties": {} }),
                    );
                    checked_tool(
                        checker,
                        &at,
                        &at.to_string(),
                        ToolDef {
                            name: tool.name.clone(),
                            description: tool.description.clone(),
                            parameters,
                        },
                    )
                })
                .collect::<Vec<_>>()
        }
        ToolsSpec::File(path) => {
            let path = base_dir.join(path);
            match read_tools_file(&path) {
                Ok(defs) => defs
                    .into_iter()
                    .enumerate()
                    .map(|(i, def)| {
                        checked_tool(
                            checker,
                            &tools_key,
                            &format!("{}: tool {i}", path.display()),
                            def,
                        )
                    })
                    .collect(),
                Err(message) => {
                    checker.fail(&tools_key, format!("{}: {message}", path.display()));
                    return None;
                }
            }
        }
    };
    let tools: Vec<ToolDef> = tools.into_iter().flatten().collect();
    if tools.is_empty() {
        checker.fail(&tools_key, "declares no tool");
        return None;
    }
    let mut names = std::collections::HashSet::new();
    for tool in &tools {
        if !names.insert(tool.name.as_str()) {
            checker.fail(
                &tools_key,
                format!("tool \"{}\" is declared twice", tool.name),
            );
        }
    }
    let choice = match &spec.tool_choice {
        None => ToolChoice::Auto,
        Some(ToolChoiceSpec::Mode(mode)) => match mode.as_str() {
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            "none" => ToolChoice::None,
            other => {
                checker.fail(
                    &key.key("tool_choice"),
                    format!("must be \"auto\", \"required\", \"none\" or {{ name = \"…\" }} (got \"{other}\")"),
                );
                return None;
            }
        },
        Some(ToolChoiceSpec::Named { name }) => {
            if !names.contains(name.as_str()) {
                checker.fail(
                    &key.key("tool_choice"),
                    format!("names \"{name}\", which is not among the class's tools"),
                );
                return None;
            }
            ToolChoice::Named(name.clone())
        }
    };
    Some(ToolSet {
        tools,
        choice,
        result: spec.tool_result.clone(),
    })
}

/// The tool, if its name and schema pass (`place` names it in messages).
fn checked_tool(
    checker: &mut Checker,
    key: &KeyPath,
    place: &str,
    tool: ToolDef,
) -> Option<ToolDef> {
    let name_ok = (1..=64).contains(&tool.name.len())
        && tool
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !name_ok {
        checker.fail(
            key,
            format!(
                "{place}: tool name \"{}\" must be 1 to 64 letters, digits, _ or -",
                tool.name
            ),
        );
        return None;
    }
    if let Err(message) = check_schema(&tool.parameters) {
        checker.fail(
            key,
            format!("{place}: tool \"{}\": parameters {message}", tool.name),
        );
        return None;
    }
    Some(tool)
}

/// The tools of a JSON file: a list of `{ name, description, parameters }` or OpenAI's
/// `{ "type": "function", "function": { … } }`.
fn read_tools_file(path: &Path) -> Result<Vec<ToolDef>, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_TOOLS_FILE_BYTES {
        return Err(format!(
            "is {size} bytes, more than the {MAX_TOOLS_FILE_BYTES} a tools file may have"
        ));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value: Value = serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Array(entries) = value else {
        return Err("must hold a JSON list of tools".into());
    };
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let tool = entry.get("function").unwrap_or(entry);
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("tool {i} has no \"name\""))?;
            Ok(ToolDef {
                name: name.to_string(),
                description: tool
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                parameters: tool
                    .get("parameters")
                    .cloned()
                    .unwrap_or_else(|| serde_json::json!({ "type": "object", "properties": {} })),
            })
        })
        .collect()
}
