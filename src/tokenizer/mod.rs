//! Offline token counting: for prompts of an exact length, for the size of a request before it
//! is sent (the spend projection, dataset filters), and for answers whose server sent no
//! `usage`. Two kinds of vocabulary: OpenAI's tiktoken ones compiled into the binary
//! ([`Encoding`]), or a model's own Hugging Face `tokenizer.json` read from a local file
//! ([`FileTokenizer`]), never downloaded. A count made with a vocabulary that is not the model's
//! is an estimate, and results say which vocabulary counted.

mod file;
mod template;
mod tiktoken;

use std::sync::Arc;

use serde_json::Value;

pub use file::{FileTokenizer, TokenizerError, MAX_TOKENIZER_BYTES};
pub use template::{ChatTemplate, TemplateSource};
pub use tiktoken::Encoding;

/// A vocabulary drover counts tokens with. Cheap to clone (a file's is shared).
#[derive(Debug, Clone)]
pub enum Tokenizer {
    Tiktoken(Encoding),
    File(Arc<FileTokenizer>),
}

impl Default for Tokenizer {
    fn default() -> Self {
        Tokenizer::Tiktoken(Encoding::default())
    }
}

impl PartialEq for Tokenizer {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Tokenizer::Tiktoken(a), Tokenizer::Tiktoken(b)) => a == b,
            (Tokenizer::File(a), Tokenizer::File(b)) => Arc::ptr_eq(a, b) || a.path() == b.path(),
            _ => false,
        }
    }
}

impl From<Encoding> for Tokenizer {
    fn from(encoding: Encoding) -> Self {
        Tokenizer::Tiktoken(encoding)
    }
}

impl Tokenizer {
    /// How results and messages name it: `o200k_base`, or `tokenizer.json (path/to/it)`.
    pub fn name(&self) -> String {
        match self {
            Tokenizer::Tiktoken(encoding) => encoding.name().to_string(),
            Tokenizer::File(file) => file.name(),
        }
    }

    /// Whether a count takes only the time of the text: a tiktoken vocabulary is built by the
    /// first count in the process (100–200 ms); a tokenizer file is read and built when loaded.
    pub fn is_ready(&self) -> bool {
        match self {
            Tokenizer::Tiktoken(encoding) => encoding.is_built(),
            Tokenizer::File(_) => true,
        }
    }

    /// Tokens in `text`, without any special token the model adds around a whole input.
    pub fn count(&self, text: &str) -> u64 {
        match self {
            Tokenizer::Tiktoken(encoding) => encoding.count(text),
            Tokenizer::File(file) => file.count(text),
        }
    }

    /// Prompt tokens of chat `messages`: each message's text plus what the chat format adds
    /// (OpenAI's published accounting for tiktoken; the template's measured or configured
    /// tokens for a file).
    pub fn count_messages(&self, messages: &Value) -> u64 {
        match self {
            Tokenizer::Tiktoken(encoding) => encoding.count_messages(messages),
            Tokenizer::File(_) => {
                let Some(messages) = messages.as_array() else {
                    return 0;
                };
                let (per_message, per_request) = self.template_tokens();
                let mut tokens = per_request;
                for message in messages {
                    tokens += per_message + self.count(&message_text(message, ""));
                }
                tokens
            }
        }
    }

    /// Tokens the chat format adds around one message (its role included), and once per
    /// request (priming the reply), with where they come from (for results).
    pub fn template(&self) -> ChatTemplate {
        match self {
            Tokenizer::Tiktoken(_) => {
                let (per_message, per_request) = self.template_tokens();
                ChatTemplate {
                    per_message,
                    per_request,
                    source: TemplateSource::OpenAi,
                }
            }
            Tokenizer::File(file) => file.template().clone(),
        }
    }

    /// The template's tokens per message and per request, without copying anything: what
    /// sizing a request (once per request of a run) needs.
    pub fn template_tokens(&self) -> (u64, u64) {
        match self {
            // Every role drover sends ("user", "system", "assistant") is one token of both
            // vocabularies (a unit test checks).
            Tokenizer::Tiktoken(_) => (tiktoken::PER_MESSAGE + 1, tiktoken::REPLY_PRIMING),
            Tokenizer::File(file) => (file.template().per_message, file.template().per_request),
        }
    }

    /// Words that are one token each in this vocabulary, first in a text or after a space, for
    /// synthetic prompts of an exact length; `None` for the built-in vocabularies, whose list
    /// is fixed (`workload`'s).
    pub fn single_token_words(&self) -> Option<Arc<Vec<String>>> {
        match self {
            Tokenizer::Tiktoken(_) => None,
            Tokenizer::File(file) => Some(file.words().clone()),
        }
    }

    /// Whether this is the built-in default (`o200k_base`).
    pub fn is_default(&self) -> bool {
        matches!(self, Tokenizer::Tiktoken(Encoding::O200kBase))
    }
}

/// The text of a chat message: its string content, or its text parts joined by `separator`
/// (images and other parts have none).
pub fn message_text(message: &Value, separator: &str) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(separator),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tiktoken_template_matches_its_message_count() {
        let tokenizer = Tokenizer::from(Encoding::O200kBase);
        let template = tokenizer.template();
        let messages = serde_json::json!([
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "hello world" }
        ]);
        assert_eq!(
            tokenizer.count_messages(&messages),
            template.per_request
                + 2 * template.per_message
                + tokenizer.count("Be brief.")
                + tokenizer.count("hello world")
        );
        assert!(tokenizer.is_default());
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            for role in ["user", "system", "assistant"] {
                assert_eq!(encoding.count(role), 1, "{role}");
            }
        }
        assert_eq!(tokenizer.name(), "o200k_base");
        assert!(tokenizer.single_token_words().is_none());
    }
}
