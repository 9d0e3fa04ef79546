//! Tool calling. A class declares tools (a name, a description, JSON Schema `parameters`) and a
//! `tool_choice`; this module writes them in each API's request fields (chat completions'
//! `tools[].function`, the Responses API's flat `tools[]`, the Messages API's `input_schema`),
//! names the streamed pieces of a tool call the parsers pass on ([`ToolDelta`]), and checks a
//! call's arguments against the declared schema.
//!
//! The schema check covers the keywords tool definitions use: `type` (one or a list),
//! `properties`, `required`, `additionalProperties: false`, `enum`, `const`, `items`,
//! `minimum`/`maximum`, `minLength`/`maxLength`, `minItems`/`maxItems`, and `anyOf`/`oneOf`/
//! `allOf`; other keywords are accepted without being checked (README says so).

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::Api;

/// One declared tool.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of its arguments (an object schema).
    pub parameters: Value,
}

/// Which tool the model may or must call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    Required,
    None,
    Named(String),
}

/// A class's tools and its choice.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSet {
    pub tools: Vec<ToolDef>,
    pub choice: ToolChoice,
    /// The canned result a multi-turn session sends back for a tool call before its next turn.
    pub result: Option<String>,
}

impl ToolSet {
    /// The request fields (`tools`, `tool_choice`) in `api`'s format.
    pub fn fields(&self, api: Api) -> Map<String, Value> {
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|tool| {
                let description = tool.description.clone().unwrap_or_default();
                match api {
                    Api::Anthropic => json!({
                        "name": tool.name, "description": description, "input_schema": tool.parameters
                    }),
                    Api::Responses => json!({
                        "type": "function", "name": tool.name, "description": description,
                        "parameters": tool.parameters
                    }),
                    _ => json!({ "type": "function", "function": {
                        "name": tool.name, "description": description, "parameters": tool.parameters
                    }}),
                }
            })
            .collect();
        let choice = match (&self.choice, api) {
            (ToolChoice::Auto, Api::Anthropic) => json!({ "type": "auto" }),
            (ToolChoice::Required, Api::Anthropic) => json!({ "type": "any" }),
            (ToolChoice::None, Api::Anthropic) => json!({ "type": "none" }),
            (ToolChoice::Named(name), Api::Anthropic) => json!({ "type": "tool", "name": name }),
            (ToolChoice::Auto, _) => json!("auto"),
            (ToolChoice::Required, _) => json!("required"),
            (ToolChoice::None, _) => json!("none"),
            (ToolChoice::Named(name), Api::Responses) => {
                json!({ "type": "function", "name": name })
            }
            (ToolChoice::Named(name), _) => {
                json!({ "type": "function", "function": { "name": name } })
            }
        };
        let mut fields = Map::new();
        fields.insert("tools".into(), Value::Array(tools));
        fields.insert("tool_choice".into(), choice);
        fields
    }

    /// The declared schema of tool `name`.
    pub fn schema(&self, name: &str) -> Option<&Value> {
        self.tools
            .iter()
            .find(|tool| tool.name == name)
            .map(|tool| &tool.parameters)
    }
}

/// A streamed piece of a tool call: which call (its index in the answer), its name when this
/// piece starts it, and a piece of its JSON arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolDelta<'a> {
    pub index: u32,
    /// The call's id, when this piece starts it (`call_…`, `toolu_…`).
    pub id: Option<Cow<'a, str>>,
    pub name: Option<Cow<'a, str>>,
    pub arguments: Cow<'a, str>,
}

/// Why a tool's `parameters` is not a schema drover can check arguments against.
pub fn check_schema(schema: &Value) -> Result<(), String> {
    let Some(object) = schema.as_object() else {
        return Err("must be a JSON Schema object (a table)".into());
    };
    if object.get("type").and_then(Value::as_str) != Some("object") {
        return Err("must have type = \"object\" (tool arguments are an object)".into());
    }
    check_node(schema, "parameters")
}

const TYPES: [&str; 7] = [
    "object", "array", "string", "number", "integer", "boolean", "null",
];

fn check_node(schema: &Value, at: &str) -> Result<(), String> {
    let Some(object) = schema.as_object() else {
        return Err(format!("{at}: a schema must be an object"));
    };
    match object.get("type") {
        None => {}
        Some(Value::String(kind)) if TYPES.contains(&kind.as_str()) => {}
        Some(Value::Array(kinds))
            if kinds
                .iter()
                .all(|k| k.as_str().is_some_and(|k| TYPES.contains(&k))) => {}
        Some(other) => {
            return Err(format!(
                "{at}.type: {other} is not a JSON Schema type ({})",
                TYPES.join(", ")
            ))
        }
    }
    if let Some(properties) = object.get("properties") {
        let Some(properties) = properties.as_object() else {
            return Err(format!("{at}.properties must be an object"));
        };
        for (name, property) in properties {
            check_node(property, &format!("{at}.properties.{name}"))?;
        }
    }
    if let Some(required) = object.get("required") {
        if !required
            .as_array()
            .is_some_and(|names| names.iter().all(Value::is_string))
        {
            return Err(format!("{at}.required must be a list of property names"));
        }
    }
    if let Some(items) = object.get("items") {
        check_node(items, &format!("{at}.items"))?;
    }
    for combinator in ["anyOf", "oneOf", "allOf"] {
        if let Some(list) = object.get(combinator) {
            let Some(list) = list.as_array() else {
                return Err(format!("{at}.{combinator} must be a list of schemas"));
            };
            for (i, branch) in list.iter().enumerate() {
                check_node(branch, &format!("{at}.{combinator}[{i}]"))?;
            }
        }
    }
    if let Some(values) = object.get("enum") {
        if !values.is_array() {
            return Err(format!("{at}.enum must be a list"));
        }
    }
    Ok(())
}

/// Whether `value` satisfies `schema` (the keywords of the module documentation).
pub fn matches(schema: &Value, value: &Value) -> bool {
    let Some(schema) = schema.as_object() else {
        return true;
    };
    let type_ok = |kind: &str| match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => true,
    };
    let typed = match schema.get("type") {
        Some(Value::String(kind)) => type_ok(kind),
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).any(type_ok),
        _ => true,
    };
    if !typed {
        return false;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return false;
        }
    }
    if schema.get("const").is_some_and(|c| c != value) {
        return false;
    }
    if let Some(number) = value.as_f64() {
        let below = schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|min| number < min);
        let above = schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|max| number > max);
        if below || above {
            return false;
        }
    }
    let bounded = |len: usize, min: &str, max: &str| {
        schema
            .get(min)
            .and_then(Value::as_u64)
            .is_none_or(|m| len as u64 >= m)
            && schema
                .get(max)
                .and_then(Value::as_u64)
                .is_none_or(|m| len as u64 <= m)
    };
    if let Some(text) = value.as_str() {
        if !bounded(text.chars().count(), "minLength", "maxLength") {
            return false;
        }
    }
    if let Some(items) = value.as_array() {
        if !bounded(items.len(), "minItems", "maxItems") {
            return false;
        }
        if let Some(item_schema) = schema.get("items") {
            if !items.iter().all(|item| matches(item_schema, item)) {
                return false;
            }
        }
    }
    if let Some(fields) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        let required = schema.get("required").and_then(Value::as_array);
        if required
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|name| !fields.contains_key(name))
        {
            return false;
        }
        for (name, field) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(property) if !matches(property, field) => return false,
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    return false
                }
                _ => {}
            }
        }
    }
    let all = |key: &str| schema.get(key).and_then(Value::as_array);
    if all("allOf").is_some_and(|list| !list.iter().all(|s| matches(s, value))) {
        return false;
    }
    if all("anyOf").is_some_and(|list| !list.iter().any(|s| matches(s, value))) {
        return false;
    }
    if all("oneOf").is_some_and(|list| list.iter().filter(|s| matches(s, value)).count() != 1) {
        return false;
    }
    true
}

/// Arguments that satisfy `schema`, made from it (the mock's answers): every property, the
/// first `enum` value where there is one, a typed placeholder otherwise.
pub fn example_arguments(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|v| v.first())
    {
        return first.clone();
    }
    let kind = match schema.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds.first().and_then(Value::as_str).unwrap_or("string"),
        _ => "object",
    };
    match kind {
        "object" => Value::Object(
            schema
                .get("properties")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(name, property)| (name.clone(), example_arguments(property)))
                .collect(),
        ),
        "array" => json!([schema.get("items").map_or(json!("item"), example_arguments)]),
        "number" => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(1.5)),
        "integer" => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(1)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!("paris"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weather() -> Value {
        json!({
            "type": "object",
            "properties": {
                "city": { "type": "string", "minLength": 1 },
                "unit": { "type": "string", "enum": ["celsius", "fahrenheit"] },
                "days": { "type": "integer", "minimum": 1, "maximum": 14 }
            },
            "required": ["city"],
            "additionalProperties": false
        })
    }

    #[test]
    fn arguments_are_checked_against_the_schema() {
        let schema = weather();
        assert!(check_schema(&schema).is_ok());
        assert!(matches(&schema, &json!({ "city": "Oslo" })));
        assert!(matches(
            &schema,
            &json!({ "city": "Oslo", "unit": "celsius", "days": 3 })
        ));
        assert!(
            !matches(&schema, &json!({ "unit": "celsius" })),
            "city is required"
        );
        assert!(!matches(
            &schema,
            &json!({ "city": "Oslo", "unit": "kelvin" })
        ));
        assert!(!matches(&schema, &json!({ "city": "Oslo", "days": 30 })));
        assert!(!matches(&schema, &json!({ "city": "Oslo", "wind": true })));
        assert!(!matches(&schema, &json!({ "city": 7 })));
        assert!(!matches(&schema, &json!("Oslo")));
        // What the mock answers with satisfies the schema it was made from.
        assert!(matches(&schema, &example_arguments(&schema)));
    }

    #[test]
    fn schemas_that_are_not_json_schema_are_refused() {
        assert!(check_schema(&json!("string")).is_err());
        assert!(check_schema(&json!({ "type": "string" }))
            .unwrap_err()
            .contains("type = \"object\""));
        let error =
            check_schema(&json!({ "type": "object", "properties": { "a": { "type": "text" } } }))
                .unwrap_err();
        assert!(error.contains("parameters.properties.a.type"), "{error}");
        assert!(check_schema(&json!({ "type": "object", "required": "a" })).is_err());
        assert!(check_schema(&json!({ "type": "object", "properties": [] })).is_err());
    }

    #[test]
    fn streamed_tool_calls_are_read_in_every_api() {
        // Chat completions: the first piece names the call, later ones add arguments.
        let first = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]},"finish_reason":null}]}"#;
        let info = super::super::openai::parse_chunk(first).unwrap();
        let tool = info.tool.unwrap();
        assert_eq!((tool.index, tool.name.as_deref()), (0, Some("get_weather")));
        let more = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\""}}]},"finish_reason":null}]}"#;
        let info = super::super::openai::parse_chunk(more).unwrap();
        assert_eq!(info.tool.unwrap().arguments, "{\"city\"");
        // The Messages API: a tool_use block, then input_json_delta pieces.
        let mut usage = super::super::anthropic::StreamUsage::default();
        let start = r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#;
        let event = super::super::anthropic::parse_event(None, start, &mut usage).unwrap();
        let tool = event.chunk.tool.unwrap();
        assert_eq!((tool.index, tool.name.as_deref()), (1, Some("get_weather")));
        let delta = r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Os"}}"#;
        let event = super::super::anthropic::parse_event(None, delta, &mut usage).unwrap();
        let tool = event.chunk.tool.unwrap();
        assert_eq!(
            (tool.index, tool.arguments.as_ref()),
            (1, "{\"city\": \"Os")
        );
        assert!(event.chunk.has_output);
        // The Responses API: a function_call item, then its arguments' deltas.
        let added = r#"{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"fc_1","call_id":"call_1","name":"get_weather","arguments":""}}"#;
        let super::super::responses::ResponsesEvent::Chunk(chunk) =
            super::super::responses::parse_event(None, added).unwrap()
        else {
            panic!("a chunk");
        };
        assert_eq!(chunk.tool.unwrap().name.as_deref(), Some("get_weather"));
        let delta = r#"{"type":"response.function_call_arguments.delta","item_id":"fc_1","output_index":0,"delta":"{\"city\""}"#;
        let super::super::responses::ResponsesEvent::Chunk(chunk) =
            super::super::responses::parse_event(None, delta).unwrap()
        else {
            panic!("a chunk");
        };
        assert_eq!(chunk.tool.unwrap().arguments, "{\"city\"");
        // A text block is not a tool call.
        let text =
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
        let event = super::super::anthropic::parse_event(None, text, &mut usage).unwrap();
        assert!(event.chunk.tool.is_none());
    }

    #[test]
    fn each_api_gets_its_own_fields() {
        let set = ToolSet {
            tools: vec![ToolDef {
                name: "get_weather".into(),
                description: Some("Weather".into()),
                parameters: weather(),
            }],
            choice: ToolChoice::Named("get_weather".into()),
            result: None,
        };
        let openai = set.fields(Api::OpenAi);
        assert_eq!(openai["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(openai["tool_choice"]["function"]["name"], "get_weather");
        let responses = set.fields(Api::Responses);
        assert_eq!(responses["tools"][0]["name"], "get_weather");
        assert_eq!(responses["tool_choice"]["name"], "get_weather");
        let anthropic = set.fields(Api::Anthropic);
        assert_eq!(anthropic["tools"][0]["input_schema"]["type"], "object");
        assert_eq!(
            anthropic["tool_choice"],
            json!({ "type": "tool", "name": "get_weather" })
        );
        let auto = ToolSet {
            choice: ToolChoice::Required,
            ..set
        };
        assert_eq!(auto.fields(Api::Anthropic)["tool_choice"]["type"], "any");
        assert_eq!(auto.fields(Api::OpenAi)["tool_choice"], "required");
        assert!(auto.schema("get_weather").is_some() && auto.schema("nope").is_none());
    }
}
