//! Timestamped request traces, replayed at their recorded times (optionally faster or slower).
//!
//! A trace is JSONL, one request per line:
//!
//! ```text
//! {"timestamp_ms": 0,    "messages": [{"role": "user", "content": "…"}], "output_tokens": 128}
//! {"timestamp_ms": 12.5, "input_tokens": 512, "output_tokens": 64, "class": "long"}
//! ```
//!
//! - `timestamp_ms` (or `timestamp`): when the request was sent, in milliseconds; only the offsets
//!   between lines matter (the first line is sent at the start), so epoch milliseconds work too.
//!   Timestamps must not decrease.
//! - the prompt: `messages` (sent as is), or `input_tokens` (or `input_length`) for a synthetic
//!   prompt of exactly that many tokens, or neither to draw one from the line's class.
//! - `output_tokens` (or `output_length`): sent as `max_tokens`; otherwise the class's cap.
//! - `class`: which scenario class the request counts under (default the first).

/// The longest span a trace may cover: 30 days, in milliseconds.
const MAX_SPAN_MS: f64 = 30.0 * 24.0 * 3600.0 * 1000.0;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::dataset::{checked_messages, jsonl_lines, read_regular_file};

/// A trace's prompt for one request.
#[derive(Debug, Clone, PartialEq)]
pub enum TracePrompt {
    Messages(Vec<Value>),
    Tokens(u32),
    /// Drawn from the class's own prompt source.
    FromClass,
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceEntry {
    /// When it is due, from the first entry, before any speed-up.
    pub offset: Duration,
    pub class: usize,
    pub prompt: TracePrompt,
    pub output_tokens: Option<u32>,
    /// Its line in the file.
    pub line: usize,
}

/// A loaded trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub path: PathBuf,
    pub entries: Vec<TraceEntry>,
}

/// Why a trace could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{path}: cannot read trace: {source}")]
    Unreadable {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    BadEntry {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}: trace has no entries")]
    Empty { path: String },
}

impl Trace {
    /// Reads and checks every line; `classes` are the scenario's class names.
    pub fn load(path: &Path, classes: &[String]) -> Result<Self, TraceError> {
        let shown = path.display().to_string();
        let text = read_regular_file(path).map_err(|source| TraceError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let mut entries = Vec::new();
        let mut first: Option<f64> = None;
        let mut previous = f64::NEG_INFINITY;
        for (line, raw) in jsonl_lines(&text) {
            let bad = |message: String| TraceError::BadEntry {
                path: shown.clone(),
                line,
                message,
            };
            let value: Value =
                serde_json::from_str(raw).map_err(|e| bad(format!("invalid JSON: {e}")))?;
            let (field, stamp) = ["timestamp_ms", "timestamp"]
                .into_iter()
                .find_map(|f| value.get(f).map(|v| (f, v)))
                .ok_or_else(|| bad("entry has no \"timestamp_ms\"".into()))?;
            let stamp = stamp
                .as_f64()
                .filter(|t| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| bad(format!("\"{field}\" must be a number of milliseconds >= 0")))?;
            if stamp < previous {
                return Err(bad(format!(
                    "\"{field}\" {stamp} is earlier than the line before ({previous}); a trace \
                     must be in time order"
                )));
            }
            previous = stamp;
            let origin = *first.get_or_insert(stamp);
            // Only offsets count (timestamps may be Unix milliseconds): a trace spans 30 days at
            // most.
            if stamp - origin > MAX_SPAN_MS {
                return Err(bad(format!(
                    "\"{field}\" {stamp:e} is more than 30 days after the first line's ({origin:e}), the longest trace drover replays"
                )));
            }
            let tokens = |names: [&'static str; 2]| -> Result<Option<u32>, TraceError> {
                match names.into_iter().find_map(|f| value.get(f).map(|v| (f, v))) {
                    None => Ok(None),
                    Some((field, v)) => v
                        .as_u64()
                        .and_then(|n| u32::try_from(n).ok())
                        .filter(|n| (1..=super::MAX_TOKENS).contains(n))
                        .map(Some)
                        .ok_or_else(|| {
                            bad(format!(
                                "\"{field}\" must be a whole number from 1 to {}",
                                super::MAX_TOKENS
                            ))
                        }),
                }
            };
            let input = tokens(["input_tokens", "input_length"])?;
            let output_tokens = tokens(["output_tokens", "output_length"])?;
            let prompt = match (value.get("messages"), input) {
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "set either \"messages\" or \"input_tokens\", not both".into()
                    ))
                }
                (Some(messages), None) => TracePrompt::Messages(
                    checked_messages(Some(messages), "messages").map_err(bad)?,
                ),
                (None, Some(tokens)) => TracePrompt::Tokens(tokens),
                (None, None) => TracePrompt::FromClass,
            };
            let class = match value.get("class") {
                None => 0,
                Some(name) => {
                    let name = name
                        .as_str()
                        .ok_or_else(|| bad("\"class\" must be a string".into()))?;
                    classes.iter().position(|c| c == name).ok_or_else(|| {
                        bad(format!(
                            "\"class\" is \"{name}\", which the scenario does not define ({})",
                            classes.join(", ")
                        ))
                    })?
                }
            };
            entries.push(TraceEntry {
                offset: Duration::from_secs_f64((stamp - origin) / 1000.0),
                class,
                prompt,
                output_tokens,
                line,
            });
        }
        if entries.is_empty() {
            return Err(TraceError::Empty { path: shown });
        }
        Ok(Trace {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// How long the trace lasts at `speed` (the last entry's offset).
    pub fn span(&self, speed: f64) -> Duration {
        self.entries
            .last()
            .map_or(Duration::ZERO, |e| e.offset.div_f64(speed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(content: &str) -> Result<Trace, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, content).unwrap();
        Trace::load(&path, &["chat".into(), "long".into()]).map_err(|e| e.to_string())
    }

    #[test]
    fn offsets_start_at_the_first_entry_and_classes_resolve() {
        let trace = load(
            "{\"timestamp\": 1700000000000, \"input_length\": 10, \"output_length\": 5}\n\
             {\"timestamp\": 1700000000250, \"messages\": [{\"role\":\"user\",\"content\":\"hi\"}], \"class\": \"long\"}\n",
        )
        .unwrap();
        assert_eq!(trace.entries[0].offset, Duration::ZERO);
        assert_eq!(trace.entries[0].prompt, TracePrompt::Tokens(10));
        assert_eq!(trace.entries[0].output_tokens, Some(5));
        assert_eq!(trace.entries[1].offset, Duration::from_millis(250));
        assert_eq!(trace.entries[1].class, 1);
        assert_eq!(trace.span(2.0), Duration::from_millis(125));
    }

    #[test]
    fn bad_entries_name_their_line_and_field() {
        let error = load("{\"timestamp_ms\": 5}\n{\"timestamp_ms\": 3}\n").unwrap_err();
        assert!(
            error.ends_with("t.jsonl:2: \"timestamp_ms\" 3 is earlier than the line before (5); a trace must be in time order"),
            "{error}"
        );
        let error = load("{\"timestamp_ms\": 1, \"class\": \"nope\"}\n").unwrap_err();
        assert!(
            error.contains("t.jsonl:1: \"class\" is \"nope\""),
            "{error}"
        );
        let error =
            load("{\"timestamp_ms\": 1, \"messages\": [{\"role\": \"user\", \"content\": 7}]}\n")
                .unwrap_err();
        assert!(
            error.ends_with("t.jsonl:1: messages[0].content must be a string or an array of parts"),
            "{error}"
        );
        let error = load("{\"timestamp_ms\": 1, \"output_tokens\": 0}\n").unwrap_err();
        assert!(
            error
                .ends_with("t.jsonl:1: \"output_tokens\" must be a whole number from 1 to 1048576"),
            "{error}"
        );
    }
}
