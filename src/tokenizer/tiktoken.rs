//! OpenAI's tiktoken vocabularies, `o200k_base` (GPT-4o, GPT-4.1 and later) and `cl100k_base`
//! (GPT-4, GPT-3.5), compiled into the binary by `tiktoken-rs`, so nothing is downloaded at run
//! time, with OpenAI's published chat-format accounting.

use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A tokenizer vocabulary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    O200kBase,
    Cl100kBase,
}

/// Tokens the chat format adds per message, and to prime the reply (OpenAI's published
/// accounting for its chat models).
pub(super) const PER_MESSAGE: u64 = 3;
pub(super) const REPLY_PRIMING: u64 = 3;

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    fn bpe(self) -> &'static tiktoken_rs::CoreBPE {
        // Each vocabulary is built once per process (100–200 ms) and shared.
        let bpe = match self {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        };
        // Written once, not on every count: the flag is read by every worker.
        if !self.is_built() {
            self.built().store(true, Ordering::Release);
        }
        bpe
    }

    fn built(self) -> &'static AtomicBool {
        static O200K_BASE: AtomicBool = AtomicBool::new(false);
        static CL100K_BASE: AtomicBool = AtomicBool::new(false);
        match self {
            Encoding::O200kBase => &O200K_BASE,
            Encoding::Cl100kBase => &CL100K_BASE,
        }
    }

    /// Whether the vocabulary is built: until then, a count first spends 100–200 ms building it.
    pub fn is_built(self) -> bool {
        self.built().load(Ordering::Acquire)
    }

    /// Tokens in `text`.
    pub fn count(self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        self.bpe().encode_ordinary(text).len() as u64
    }

    /// Prompt tokens of chat `messages`: each message's role and text, plus the chat format's
    /// own tokens.
    pub fn count_messages(self, messages: &Value) -> u64 {
        let Some(messages) = messages.as_array() else {
            return 0;
        };
        let mut tokens = REPLY_PRIMING;
        for message in messages {
            tokens += PER_MESSAGE;
            if let Some(role) = message.get("role").and_then(Value::as_str) {
                tokens += self.count(role);
            }
            match message.get("content") {
                Some(Value::String(text)) => tokens += self.count(text),
                Some(Value::Array(parts)) => {
                    for part in parts {
                        if let Some(text) = part.get("text").and_then(Value::as_str) {
                            tokens += self.count(text);
                        }
                    }
                }
                _ => {}
            }
        }
        tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_offline_with_both_vocabularies() {
        // Known counts: "hello world" is two tokens in both; the emoji and CJK differ.
        assert_eq!(Encoding::O200kBase.count("hello world"), 2);
        assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
        assert_eq!(Encoding::O200kBase.count(""), 0);
        let text = "The quick brown fox jumps over the lazy dog.";
        assert_eq!(Encoding::O200kBase.count(text), 10);
        assert_eq!(Encoding::Cl100kBase.count(text), 10);
        // Words drover's synthetic prompts use are one token each (with their leading space).
        assert_eq!(Encoding::O200kBase.count(" the of and to in"), 5);
    }

    #[test]
    fn a_vocabulary_counts_as_built_after_a_count() {
        // Other tests in this process may have built it already: only "built after a count" is
        // certain here. (The driver counts short answers inline only once it is built.)
        assert_eq!(Encoding::Cl100kBase.count("hello"), 1);
        assert!(Encoding::Cl100kBase.is_built());
    }

    #[test]
    fn chat_messages_add_the_format_tokens() {
        let messages = serde_json::json!([
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": [{ "type": "text", "text": "hello world" }] }
        ]);
        let e = Encoding::O200kBase;
        let expected = REPLY_PRIMING
            + 2 * PER_MESSAGE
            + e.count("system")
            + e.count("Be brief.")
            + e.count("user")
            + e.count("hello world");
        assert_eq!(e.count_messages(&messages), expected);
        assert_eq!(e.count_messages(&Value::Null), 0);
    }
}
