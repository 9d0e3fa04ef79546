//! What each request carries: synthetic prompts of a requested length and JSONL datasets of chat
//! messages, sampled with a seeded generator.
//!
//! Synthetic prompts are built from common English words, each of which is a single token in the
//! cl100k and o200k vocabularies, so a prompt of N words is close to N tokens of content (chat
//! templates add a few tokens of their own; servers report the exact figure in `usage`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::{Rng, RngExt};
use rand_distr::{Distribution, LogNormal, Normal};
use serde_json::{json, Value};

/// A distribution of token lengths, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum LengthModel {
    Fixed(u32),
    Uniform { min: u32, max: u32 },
    Normal { mean: f64, stddev: f64 },
    LogNormal { mean: f64, stddev: f64 },
}

impl LengthModel {
    /// Draws one length, at least 1.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let value = match *self {
            LengthModel::Fixed(n) => return n.max(1),
            LengthModel::Uniform { min, max } => return rng.random_range(min..=max).max(1),
            LengthModel::Normal { mean, stddev } => Normal::new(mean, stddev)
                .map(|d| d.sample(rng))
                .unwrap_or(mean),
            LengthModel::LogNormal { mean, stddev } => {
                // Parameters of the underlying normal from the desired mean and deviation.
                let sigma2 = (1.0 + (stddev * stddev) / (mean * mean)).ln();
                let mu = mean.ln() - sigma2 / 2.0;
                LogNormal::new(mu, sigma2.sqrt())
                    .map(|d| d.sample(rng))
                    .unwrap_or(mean)
            }
        };
        value.round().clamp(1.0, u32::MAX as f64) as u32
    }
}

/// Words that are one token each (with their leading space) in cl100k_base and o200k_base.
const WORDS: &[&str] = &[
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
    "morning",
    "reason",
    "research",
    "girl",
    "guy",
    "moment",
    "air",
    "teacher",
    "force",
    "education",
];

/// Builds a synthetic user prompt of `tokens` words, random and therefore unique per request so a
/// provider's prompt cache does not flatter TTFT.
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

/// Where a class's prompts come from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    Synthetic(LengthModel),
    Dataset(Arc<Dataset>),
}

impl PromptSource {
    /// Picks the chat `messages` for one request.
    pub fn messages<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        match self {
            PromptSource::Synthetic(lengths) => {
                let tokens = lengths.sample(rng);
                json!([{ "role": "user", "content": synthetic_prompt(tokens, rng) }])
            }
            PromptSource::Dataset(dataset) => {
                let index = rng.random_range(0..dataset.records.len());
                dataset.records[index].clone()
            }
        }
    }
}

/// A JSONL file of chat requests, each line `{"messages": [{"role": ..., "content": ...}, ...]}`.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    /// The `messages` array of each record.
    pub records: Vec<Value>,
}

/// Why a dataset could not be used; carries the file and line.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: cannot read dataset: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadRecord {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: dataset has no records")]
    Empty { path: String },
}

impl Dataset {
    /// Reads and checks every record; the first bad one is reported with its line number.
    pub fn load(path: &Path) -> Result<Self, DatasetError> {
        let shown = path.display().to_string();
        let unreadable = |source| DatasetError::Unreadable {
            path: shown.clone(),
            source,
        };
        // Only regular files: a device such as /dev/zero would never end.
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(unreadable(std::io::Error::other("not a regular file")));
        }
        let text = std::fs::read_to_string(path).map_err(unreadable)?;
        let mut records = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let bad = |message: String| DatasetError::BadRecord {
                path: shown.clone(),
                line: index + 1,
                message,
            };
            let record: Value =
                serde_json::from_str(line).map_err(|e| bad(format!("invalid JSON: {e}")))?;
            let messages = record
                .get("messages")
                .ok_or_else(|| bad("record has no \"messages\" array".into()))?;
            let list = messages
                .as_array()
                .ok_or_else(|| bad("\"messages\" must be an array".into()))?;
            if list.is_empty() {
                return Err(bad("\"messages\" is empty".into()));
            }
            for (i, message) in list.iter().enumerate() {
                if message.get("role").and_then(Value::as_str).is_none() {
                    return Err(bad(format!("messages[{i}] has no string \"role\"")));
                }
                if message.get("content").is_none() {
                    return Err(bad(format!("messages[{i}] has no \"content\"")));
                }
            }
            records.push(messages.clone());
        }
        if records.is_empty() {
            return Err(DatasetError::Empty { path: shown });
        }
        Ok(Dataset {
            path: path.to_path_buf(),
            records,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn synthetic_prompts_have_the_requested_word_count_and_differ() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let a = synthetic_prompt(256, &mut rng);
        let b = synthetic_prompt(256, &mut rng);
        assert_eq!(a.split(' ').count(), 256);
        assert_ne!(a, b);
    }

    #[test]
    fn length_models_respect_their_bounds() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
        let uniform = LengthModel::Uniform { min: 10, max: 20 };
        assert!((0..1000).all(|_| (10..=20).contains(&uniform.sample(&mut rng))));
        let lognormal = LengthModel::LogNormal {
            mean: 200.0,
            stddev: 50.0,
        };
        let mean = (0..20_000)
            .map(|_| lognormal.sample(&mut rng) as f64)
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 200.0).abs() < 3.0, "mean {mean}");
    }

    #[test]
    fn bad_dataset_records_name_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n{\"messages\": 3}\n",
        )
        .unwrap();
        let error = Dataset::load(&path).unwrap_err().to_string();
        assert!(
            error.ends_with("d.jsonl:2: \"messages\" must be an array"),
            "{error}"
        );
    }
}
