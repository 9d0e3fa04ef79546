//! What a chat template adds to a request's tokens: per message (its role and delimiters) and
//! once per request (a start token, priming the reply). For a model's own tokenizer it is
//! measured once, at load, by rendering the `chat_template` of the `tokenizer_config.json` beside
//! its `tokenizer.json` (with MiniJinja and its Python-compatibility methods, as Hugging Face's
//! TGI does) and counting the difference the messages make; a scenario can set it instead.

use std::path::{Path, PathBuf};

use minijinja::{context, Environment, Error, ErrorKind};
use serde::Serialize;
use serde_json::Value;

/// Tokens the chat format adds, and where that figure comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplate {
    /// Per message, its role included.
    pub per_message: u64,
    /// Once per request (e.g. a start token and the reply's header).
    pub per_request: u64,
    pub source: TemplateSource,
}

/// Where a [`ChatTemplate`]'s figures come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSource {
    /// OpenAI's published accounting (3 per message, 1 for the role, 3 to prime the reply).
    OpenAi,
    /// The scenario's `template_tokens`.
    Configured,
    /// Measured from the chat template in this `tokenizer_config.json`.
    Measured(PathBuf),
    /// Unknown: the tokenizer came with no chat template and the scenario set none, so input
    /// counts leave the template's tokens out.
    Unknown,
}

impl TemplateSource {
    /// For messages and results.
    pub fn describe(&self) -> String {
        match self {
            TemplateSource::OpenAi => "OpenAI's chat-format accounting".to_string(),
            TemplateSource::Configured => "the scenario's template_tokens".to_string(),
            TemplateSource::Measured(path) => {
                format!("measured from the chat template of {}", path.display())
            }
            TemplateSource::Unknown => "unknown (no chat template, no template_tokens)".into(),
        }
    }
}

/// The chat template of a `tokenizer_config.json`, and the special tokens it refers to.
struct ConfigTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

/// Reads the `chat_template` of a `tokenizer_config.json` (a string, or a list of named templates
/// of which the one called `default` is used). `Ok(None)`: the file has none.
fn read_config(path: &Path, text: &str) -> Result<Option<ConfigTemplate>, String> {
    let config: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let template = match config.get("chat_template") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(named)) => named
            .iter()
            .find(|entry| entry.get("name").and_then(Value::as_str) == Some("default"))
            .and_then(|entry| entry.get("template").and_then(Value::as_str))
            .ok_or_else(|| {
                format!(
                    "{}: chat_template is a list without a template named \"default\"",
                    path.display()
                )
            })?
            .to_string(),
        Some(_) => {
            return Err("chat_template must be a string or a list of named templates".into())
        }
    };
    // A special token is a string, or an object with its `content`.
    let special = |key: &str| match config.get(key) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Object(token)) => token
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    };
    Ok(Some(ConfigTemplate {
        source: template,
        bos_token: special("bos_token"),
        eos_token: special("eos_token"),
    }))
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

/// Renders the template for `messages`, with the reply's prompt added.
fn render(
    env: &Environment<'_>,
    config: &ConfigTemplate,
    messages: &[Message],
) -> Result<String, Error> {
    env.get_template("chat")?.render(context! {
        messages => minijinja::Value::from(minijinja::value::Serde(messages)),
        add_generation_prompt => true,
        bos_token => &config.bos_token,
        eos_token => &config.eos_token,
        tools => minijinja::Value::from(()),
    })
}

/// Measures the template of the `tokenizer_config.json` at `path`, counting with `count`, with
/// `content` (best a one-token word) as every message's text: rendered for one user message and
/// for user, assistant, user, the two extra messages give the tokens per message (the mean of an
/// assistant's and a user's) and the rest is the request's own, so that a one-message request is
/// counted exactly. `Ok(None)`: no template in the file.
pub(super) fn measure(
    path: &Path,
    content: &str,
    count: &dyn Fn(&str) -> u64,
) -> Result<Option<ChatTemplate>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let Some(config) = read_config(path, &text)? else {
        return Ok(None);
    };
    let mut env = Environment::new();
    minijinja_contrib::add_to_environment(&mut env);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |message: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    // Templates that print today's date: a fixed one, so the count does not change with it.
    env.add_function("strftime_now", |_format: String| "01 Jan 2026".to_string());
    env.add_template_owned("chat", config.source.clone())
        .map_err(|e| format!("its chat_template does not parse: {e}"))?;
    let one = render(
        &env,
        &config,
        &[Message {
            role: "user",
            content,
        }],
    )
    .map_err(|e| format!("its chat_template does not render: {e}"))?;
    let three = render(
        &env,
        &config,
        &[
            Message {
                role: "user",
                content,
            },
            Message {
                role: "assistant",
                content,
            },
            Message {
                role: "user",
                content,
            },
        ],
    )
    .map_err(|e| format!("its chat_template does not render: {e}"))?;
    let text_tokens = count(content);
    let (one, three) = (count(&one), count(&three));
    let per_message = three.saturating_sub(one + 2 * text_tokens) / 2;
    let per_request = one.saturating_sub(text_tokens + per_message);
    Ok(Some(ChatTemplate {
        per_message,
        per_request,
        source: TemplateSource::Measured(path.to_path_buf()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> u64 {
        // Each delimiter and each word is one "token" of this stand-in vocabulary.
        text.split(|c: char| c.is_whitespace() || c == '|')
            .filter(|piece| !piece.is_empty())
            .count() as u64
    }

    #[test]
    fn a_chatml_template_is_measured_per_message_and_per_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer_config.json");
        let template = "{% for m in messages %}|start| {{ m.role }} {{ m.content.strip() }} |end|\n{% endfor %}{% if add_generation_prompt %}|start| assistant {% endif %}";
        std::fs::write(
            &path,
            serde_json::json!({ "chat_template": template, "eos_token": { "content": "|end|" } })
                .to_string(),
        )
        .unwrap();
        let measured = measure(&path, "hello", &words).unwrap().unwrap();
        // Per message: start, role, end; per request: start, assistant.
        assert_eq!(measured.per_message, 3);
        assert_eq!(measured.per_request, 2);
        assert_eq!(measured.source, TemplateSource::Measured(path));
    }

    #[test]
    fn a_config_without_a_template_or_with_a_broken_one_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer_config.json");
        std::fs::write(&path, r#"{ "bos_token": "<s>" }"#).unwrap();
        assert_eq!(measure(&path, "hello", &words).unwrap(), None);
        std::fs::write(&path, r#"{ "chat_template": "{% for m in messages %}" }"#).unwrap();
        let error = measure(&path, "hello", &words).unwrap_err();
        assert!(error.contains("does not parse"), "{error}");
        std::fs::write(
            &path,
            r#"{ "chat_template": "{{ raise_exception('roles must alternate') }}" }"#,
        )
        .unwrap();
        let error = measure(&path, "hello", &words).unwrap_err();
        assert!(error.contains("roles must alternate"), "{error}");
        std::fs::write(&path, "not json").unwrap();
        assert!(measure(&path, "hello", &words)
            .unwrap_err()
            .contains("not JSON"));
    }
}
