//! Synthetic prompts of an exact token length.
//!
//! A prompt is a run of common English words drawn from a fixed list. Every word on the list is a
//! single token of the `o200k_base` and `cl100k_base` vocabularies both with and without a leading
//! space, and the tokenizers' pre-tokenizer splits text at those spaces, so a prompt of N words is
//! exactly N tokens by either vocabulary (`tests` check 64, 512 and 2,048 words, and every word).
//! The chat format adds its own tokens around a message; those are counted apart.
//!
//! With a model's own `tokenizer.json`, the words come from its vocabulary instead: those that
//! are one token alone and after a space, checked when the file is loaded (`tokenizer`).

use std::sync::Arc;

use rand::{Rng, RngExt};

use crate::tokenizer::Tokenizer;

/// The words synthetic prompts are made of: the built-in list (one token each in both tiktoken
/// vocabularies) or a tokenizer file's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Words(Option<Arc<Vec<String>>>);

impl Words {
    /// The words of `tokenizer`; `None` when its vocabulary has too few one-token words.
    pub fn of(tokenizer: &Tokenizer) -> Option<Words> {
        match tokenizer.single_token_words() {
            None => Some(Words(None)),
            Some(words) if words.is_empty() => None,
            Some(words) => Some(Words(Some(words))),
        }
    }

    fn len(&self) -> usize {
        self.0.as_ref().map_or(WORDS.len(), |words| words.len())
    }

    fn get(&self, index: usize) -> &str {
        match &self.0 {
            None => WORDS[index],
            Some(words) => &words[index],
        }
    }
}

/// Words that are one token each, with or without their leading space, in cl100k_base and
/// o200k_base.
pub(crate) const WORDS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "time",
    "people",
    "year",
    "way",
    "day",
    "man",
    "thing",
    "woman",
    "life",
    "child",
    "world",
    "school",
    "state",
    "family",
    "group",
    "country",
    "problem",
    "hand",
    "part",
    "place",
    "case",
    "week",
    "company",
    "system",
    "program",
    "question",
    "work",
    "government",
    "number",
    "night",
    "point",
    "home",
    "water",
    "room",
    "mother",
    "area",
    "money",
    "story",
    "fact",
    "month",
    "lot",
    "right",
    "study",
    "book",
    "eye",
    "job",
    "word",
    "business",
    "issue",
    "side",
    "kind",
    "head",
    "house",
    "service",
    "friend",
    "father",
    "power",
    "hour",
    "game",
    "line",
    "end",
    "member",
    "law",
    "car",
    "city",
    "community",
    "name",
    "team",
    "minute",
    "idea",
    "kid",
    "body",
    "information",
    "back",
    "parent",
    "face",
    "others",
    "level",
    "office",
    "door",
    "health",
    "person",
    "art",
    "war",
    "history",
    "party",
    "result",
    "change",
    "reason",
    "research",
    "girl",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
];

/// Builds a prompt of exactly `tokens` tokens (see the module documentation), random and therefore
/// unique per draw so a provider's prompt cache does not flatter TTFT.
pub fn synthetic_prompt<R: Rng + ?Sized>(words: &Words, tokens: u32, rng: &mut R) -> String {
    let mut text = String::with_capacity(tokens as usize * 7);
    let count = words.len();
    for i in 0..tokens {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(words.get(rng.random_range(0..count)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;
    use rand::SeedableRng;

    #[test]
    fn every_word_is_one_token_with_and_without_its_space() {
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            for word in WORDS {
                assert_eq!(encoding.count(word), 1, "{word:?} in {}", encoding.name());
                assert_eq!(
                    encoding.count(&format!(" {word}")),
                    1,
                    "\" {word}\" in {}",
                    encoding.name()
                );
            }
        }
    }

    #[test]
    fn prompts_measure_exactly_the_requested_tokens() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for encoding in [Encoding::O200kBase, Encoding::Cl100kBase] {
            for tokens in [1, 64, 512, 2048] {
                for _ in 0..3 {
                    let prompt = synthetic_prompt(&Words::default(), tokens, &mut rng);
                    assert_eq!(
                        encoding.count(&prompt),
                        u64::from(tokens),
                        "{tokens} tokens by {}",
                        encoding.name()
                    );
                }
            }
        }
    }

    #[test]
    fn prompts_in_a_tokenizer_files_words_measure_exactly_in_it() {
        let file = crate::tokenizer::FileTokenizer::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/tokenizer/tokenizer.json"),
            None,
        )
        .unwrap();
        let tokenizer = Tokenizer::File(file);
        let words = Words::of(&tokenizer).unwrap();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        for tokens in [1, 7, 64, 512, 2048] {
            for _ in 0..3 {
                let prompt = synthetic_prompt(&words, tokens, &mut rng);
                assert_eq!(tokenizer.count(&prompt), u64::from(tokens), "{tokens}");
            }
        }
        // The same prompt by o200k_base is not that long: the vocabularies differ.
        let prompt = synthetic_prompt(&words, 512, &mut rng);
        assert_ne!(Encoding::O200kBase.count(&prompt), 512);
    }

    #[test]
    fn prompts_differ_from_draw_to_draw() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let a = synthetic_prompt(&Words::default(), 256, &mut rng);
        let b = synthetic_prompt(&Words::default(), 256, &mut rng);
        assert_eq!(a.split(' ').count(), 256);
        assert_ne!(a, b);
    }
}
