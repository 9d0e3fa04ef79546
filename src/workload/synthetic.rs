//! Synthetic prompts of an exact token length.
//!
//! A prompt is a run of common English words drawn from a fixed list. Every word on the list is a
//! single token of the `o200k_base` and `cl100k_base` vocabularies both with and without a leading
//! space, and the tokenizers' pre-tokenizer splits text at those spaces, so a prompt of N words is
//! exactly N tokens by either vocabulary (`tests` check 64, 512 and 2,048 words, and every word).
//! The chat format adds its own tokens around a message; those are counted apart.

use rand::{Rng, RngExt};

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
pub fn synthetic_prompt<R: Rng + ?Sized>(tokens: u32, rng: &mut R) -> String {
    let mut text = String::with_capacity(tokens as usize * 7);
    for i in 0..tokens {
        if i > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
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
                    let prompt = synthetic_prompt(tokens, &mut rng);
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
    fn prompts_differ_from_draw_to_draw() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let a = synthetic_prompt(256, &mut rng);
        let b = synthetic_prompt(256, &mut rng);
        assert_eq!(a.split(' ').count(), 256);
        assert_ne!(a, b);
    }
}
