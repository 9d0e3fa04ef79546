//! What the mock's tokens are. By default its own words, one token each in OpenAI's
//! vocabularies, and a prompt's tokens are its words. Given a tokenizer file (`tokenizer` of
//! `[targets.mock]`), it plays a server of that model: its answers are that vocabulary's
//! one-token words, one per token, and its usage counts prompts with that tokenizer, chat
//! template included, as vLLM or llama.cpp count theirs.

use std::sync::Arc;

use serde_json::Value;

use crate::tokenizer::Tokenizer;

/// Words the mock "generates" by default, one token each.
const OWN_WORDS: &[&str] = &[
    " the", " model", " is", " a", " mock", " and", " it", " streams", " one", " token", " at",
    " time", " for", " load", " testing",
];

/// The mock's tokens and how it counts a prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockVocabulary {
    /// `None`: the mock's own words, prompts counted by their words.
    model: Option<(Tokenizer, Arc<Vec<String>>)>,
}

impl MockVocabulary {
    /// The vocabulary of `tokenizer` (a built-in one answers in the mock's own words, which
    /// are one token each in it); `None` when it has too few one-token words to answer in.
    pub fn of(tokenizer: Tokenizer) -> Option<Self> {
        let spaced = match tokenizer.single_token_words() {
            None => OWN_WORDS.iter().map(|word| word.to_string()).collect(),
            Some(words) if words.is_empty() => return None,
            Some(words) => words.iter().map(|word| format!(" {word}")).collect(),
        };
        Some(MockVocabulary {
            model: Some((tokenizer, Arc::new(spaced))),
        })
    }

    /// The text of the answer's token `i`.
    pub fn word(&self, i: usize) -> &str {
        match &self.model {
            None => OWN_WORDS[i % OWN_WORDS.len()],
            Some((_, words)) => &words[i % words.len()],
        }
    }

    /// An answer of `tokens` tokens.
    pub fn text(&self, tokens: u32) -> String {
        (0..tokens as usize).map(|i| self.word(i)).collect()
    }

    /// The prompt tokens a server reports for `messages`.
    pub fn prompt_tokens(&self, messages: &[Value]) -> u64 {
        match &self.model {
            None => messages.iter().map(|m| words(&text_of(m))).sum(),
            Some((tokenizer, _)) => tokenizer.count_messages(&Value::Array(messages.to_vec())),
        }
    }

    /// The tokens of `messages`' text alone (a cached prefix).
    pub fn text_tokens(&self, messages: &[Value]) -> u64 {
        match &self.model {
            None => self.prompt_tokens(messages),
            Some((tokenizer, _)) => messages.iter().map(|m| tokenizer.count(&text_of(m))).sum(),
        }
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// A message's text: its string content, or its text parts a space apart.
fn text_of(message: &Value) -> String {
    crate::tokenizer::message_text(message, " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::FileTokenizer;

    #[test]
    fn the_default_counts_words_and_a_tokenizer_counts_its_own_tokens() {
        let own = MockVocabulary::default();
        let messages = [serde_json::json!({ "role": "user", "content": "one two three" })];
        assert_eq!(own.prompt_tokens(&messages), 3);
        assert_eq!(own.text(3), " the model is");
        let file = FileTokenizer::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tokenizer/tokenizer.json"),
            None,
        )
        .unwrap();
        let tokenizer = Tokenizer::File(file);
        let model = MockVocabulary::of(tokenizer.clone()).unwrap();
        // An answer of 32 tokens is 32 tokens of that vocabulary.
        assert_eq!(tokenizer.count(&model.text(32)), 32);
        let template = tokenizer.template();
        assert_eq!(
            model.prompt_tokens(&messages),
            template.per_request + template.per_message + tokenizer.count("one two three")
        );
    }
}
