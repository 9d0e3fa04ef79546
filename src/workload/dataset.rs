//! Prompt datasets in the formats users already have, each record checked on load; a bad record
//! is reported with its file, line and the field that is wrong.
//!
//! | format | file | a record |
//! |---|---|---|
//! | `chat` | JSONL | `{"messages": [{"role": "user", "content": "…"}, …]}` |
//! | `sharegpt` | JSON array or JSONL | `{"conversations": [{"from": "human", "value": "…"}, {"from": "gpt", …}]}` |
//! | `batch` | JSONL (OpenAI Batch API input) | `{"custom_id": "…", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": […], "max_tokens": 64}}` |
//! | `text` | plain text | one prompt per line |
//!
//! A ShareGPT conversation becomes the turns up to and including its first human turn (a system
//! turn before it is kept), so the request asks what the conversation's first answer answered. A
//! Batch line's own `max_tokens` (or `max_completion_tokens`) is kept and used when the class sets
//! none.

use std::path::{Path, PathBuf};

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::tokenizer::Tokenizer;

/// A dataset file's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    Chat,
    ShareGpt,
    Batch,
    Text,
}

impl DatasetFormat {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "chat" => Some(DatasetFormat::Chat),
            "sharegpt" => Some(DatasetFormat::ShareGpt),
            "batch" => Some(DatasetFormat::Batch),
            "text" => Some(DatasetFormat::Text),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DatasetFormat::Chat => "chat",
            DatasetFormat::ShareGpt => "sharegpt",
            DatasetFormat::Batch => "batch",
            DatasetFormat::Text => "text",
        }
    }
}

/// One request's worth of a dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetRecord {
    /// The chat `messages` to send.
    pub messages: Vec<Value>,
    /// The record's own output cap (Batch API lines carry one).
    pub max_tokens: Option<u32>,
    /// Line of the file the record starts on.
    pub line: usize,
    /// The sizes of the images it carries (`None`: a web address, of unknown size).
    pub image_sizes: Vec<Option<(u32, u32)>>,
}

impl DatasetRecord {
    /// Chat-format input tokens of the record's text by `tokenizer`.
    pub fn input_tokens(&self, tokenizer: &Tokenizer) -> u64 {
        tokenizer.count_messages(&Value::Array(self.messages.clone()))
    }

    /// The tokens of its images on `api`, by the provider's formula (0 for a web address).
    pub fn image_tokens(&self, api: crate::protocol::Api) -> u64 {
        self.image_sizes
            .iter()
            .flatten()
            .map(|&(width, height)| crate::protocol::images::tokens(api, width, height, None))
            .sum()
    }
}

/// Keeps only records whose input, in chat-format tokens, is within the bounds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InputFilter {
    pub min_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    pub tokenizer: Tokenizer,
}

impl InputFilter {
    fn is_active(&self) -> bool {
        self.min_tokens.is_some() || self.max_tokens.is_some()
    }

    fn keeps(&self, tokens: u64) -> bool {
        self.min_tokens.is_none_or(|min| tokens >= min)
            && self.max_tokens.is_none_or(|max| tokens <= max)
    }
}

/// A loaded dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub path: PathBuf,
    pub format: DatasetFormat,
    pub records: Vec<DatasetRecord>,
    /// Records the input filter left out.
    pub filtered_out: usize,
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
    #[error("{path}: {message}")]
    Unusable { path: String, message: String },
}

/// Reads a file that must be a regular file (a device such as /dev/zero would never end).
pub(crate) fn read_regular_file(path: &Path) -> Result<String, std::io::Error> {
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    std::fs::read_to_string(path)
}

/// The 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The non-empty lines of a JSONL file with their 1-based numbers.
pub(crate) fn jsonl_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| (index + 1, line))
}

impl Dataset {
    /// Reads and checks every record in the given format (or the one its content shows, when
    /// `format` is `None`); the first bad record is reported with its line and field.
    pub fn load(
        path: &Path,
        format: Option<DatasetFormat>,
        filter: InputFilter,
    ) -> Result<Self, DatasetError> {
        let shown = path.display().to_string();
        let text = read_regular_file(path).map_err(|source| DatasetError::Unreadable {
            path: shown.clone(),
            source,
        })?;
        let format = match format {
            Some(format) => format,
            None => detect(path, &text).map_err(|message| DatasetError::Unusable {
                path: shown.clone(),
                message,
            })?,
        };
        let bad = |line: usize, message: String| DatasetError::BadRecord {
            path: shown.clone(),
            line,
            message,
        };
        let mut records = Vec::new();
        match format {
            DatasetFormat::Text => {
                for (line, prompt) in text.lines().enumerate() {
                    if prompt.trim().is_empty() {
                        continue;
                    }
                    records.push(DatasetRecord {
                        messages: vec![json!({ "role": "user", "content": prompt })],
                        max_tokens: None,
                        line: line + 1,
                        image_sizes: Vec::new(),
                    });
                }
            }
            DatasetFormat::ShareGpt if text.trim_start().starts_with('[') => {
                let items: Vec<&RawValue> = serde_json::from_str(&text).map_err(|e| {
                    bad(
                        e.line(),
                        format!("invalid JSON array of conversations: {e}"),
                    )
                })?;
                for item in items {
                    let offset = item.get().as_ptr() as usize - text.as_ptr() as usize;
                    let line = line_of(&text, offset);
                    let value: Value = serde_json::from_str(item.get())
                        .map_err(|e| bad(line, format!("invalid JSON: {e}")))?;
                    records.push(sharegpt_record(&value, line).map_err(|m| bad(line, m))?);
                }
            }
            DatasetFormat::Chat | DatasetFormat::ShareGpt | DatasetFormat::Batch => {
                for (line, raw) in jsonl_lines(&text) {
                    let value: Value = serde_json::from_str(raw)
                        .map_err(|e| bad(line, format!("invalid JSON: {e}")))?;
                    let record = match format {
                        DatasetFormat::Chat => chat_record(&value, line),
                        DatasetFormat::ShareGpt => sharegpt_record(&value, line),
                        _ => batch_record(&value, line),
                    };
                    let mut record = record.map_err(|m| bad(line, m))?;
                    let dir = path.parent().unwrap_or(Path::new("."));
                    let (parts, sizes) = super::dataset_images::record_images(&value, dir)
                        .map_err(|m| bad(line, m))?;
                    super::dataset_images::append_to_last_user(&mut record.messages, parts);
                    record.image_sizes = sizes;
                    records.push(record);
                }
            }
        }
        let read = records.len();
        if read == 0 {
            return Err(DatasetError::Unusable {
                path: shown,
                message: "dataset has no records".into(),
            });
        }
        if filter.is_active() {
            records.retain(|r| filter.keeps(r.input_tokens(&filter.tokenizer)));
            if records.is_empty() {
                return Err(DatasetError::Unusable {
                    path: shown,
                    message: format!(
                        "none of its {read} records has between {} and {} input tokens ({})",
                        filter.min_tokens.unwrap_or(0),
                        filter
                            .max_tokens
                            .map_or("any number of".to_string(), |m| m.to_string()),
                        filter.tokenizer.name()
                    ),
                });
            }
        }
        Ok(Dataset {
            path: path.to_path_buf(),
            format,
            filtered_out: read - records.len(),
            records,
        })
    }
}

/// Tells the format from the file: `.txt` is text; otherwise the first record's shape.
fn detect(path: &Path, text: &str) -> Result<DatasetFormat, String> {
    if path.extension().is_some_and(|e| e == "txt") {
        return Ok(DatasetFormat::Text);
    }
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return Ok(DatasetFormat::ShareGpt);
    }
    let Some((line, first)) = jsonl_lines(text).next() else {
        return Err("dataset has no records".into());
    };
    let value: Value = serde_json::from_str(first).map_err(|e| {
        format!("line {line} is not JSON ({e}); a plain-text dataset needs dataset_format = \"text\" or a .txt name")
    })?;
    if value.get("messages").is_some() {
        Ok(DatasetFormat::Chat)
    } else if value.get("conversations").is_some() {
        Ok(DatasetFormat::ShareGpt)
    } else if value.get("body").is_some() {
        Ok(DatasetFormat::Batch)
    } else {
        Err(format!(
            "cannot tell the format from line {line}: a record needs \"messages\" (chat), \
             \"conversations\" (sharegpt) or \"body\" (batch); set dataset_format"
        ))
    }
}

/// Checks a chat `messages` array (datasets and traces); `field` names it in errors.
pub(crate) fn checked_messages(
    messages: Option<&Value>,
    field: &str,
) -> Result<Vec<Value>, String> {
    let messages = messages.ok_or_else(|| format!("record has no \"{field}\" array"))?;
    let list = messages
        .as_array()
        .ok_or_else(|| format!("\"{field}\" must be an array"))?;
    if list.is_empty() {
        return Err(format!("\"{field}\" is empty"));
    }
    for (i, message) in list.iter().enumerate() {
        if message.get("role").and_then(Value::as_str).is_none() {
            return Err(format!("{field}[{i}] has no string \"role\""));
        }
        match message.get("content") {
            Some(Value::String(_)) | Some(Value::Array(_)) => {}
            Some(_) => {
                return Err(format!(
                    "{field}[{i}].content must be a string or an array of parts"
                ))
            }
            None => return Err(format!("{field}[{i}] has no \"content\"")),
        }
    }
    Ok(list.clone())
}

fn chat_record(value: &Value, line: usize) -> Result<DatasetRecord, String> {
    Ok(DatasetRecord {
        messages: checked_messages(value.get("messages"), "messages")?,
        max_tokens: None,
        line,
        image_sizes: Vec::new(),
    })
}

fn sharegpt_record(value: &Value, line: usize) -> Result<DatasetRecord, String> {
    let turns = value
        .get("conversations")
        .ok_or("record has no \"conversations\" array")?
        .as_array()
        .ok_or("\"conversations\" must be an array")?;
    let mut messages = Vec::new();
    for (i, turn) in turns.iter().enumerate() {
        let from = turn
            .get("from")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("conversations[{i}] has no string \"from\""))?;
        let text = turn
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("conversations[{i}] has no string \"value\""))?;
        let role = match from {
            "human" | "user" => "user",
            "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model" => "assistant",
            "system" => "system",
            other => {
                return Err(format!(
                    "conversations[{i}].from is \"{other}\"; expected human, gpt or system"
                ))
            }
        };
        if role == "assistant" && messages.is_empty() {
            // Some exports open with the model's greeting; a request cannot start there.
            continue;
        }
        messages.push(json!({ "role": role, "content": text }));
        if role == "user" {
            return Ok(DatasetRecord {
                messages,
                max_tokens: None,
                line,
                image_sizes: Vec::new(),
            });
        }
    }
    Err("\"conversations\" has no human turn to send".into())
}

fn batch_record(value: &Value, line: usize) -> Result<DatasetRecord, String> {
    if let Some(url) = value.get("url") {
        let url = url.as_str().ok_or("\"url\" must be a string")?;
        if url != "/v1/chat/completions" {
            return Err(format!(
                "\"url\" is \"{url}\"; only /v1/chat/completions lines can be replayed"
            ));
        }
    }
    let body = value.get("body").ok_or("record has no \"body\" object")?;
    if !body.is_object() {
        return Err("\"body\" must be an object".into());
    }
    let messages = checked_messages(body.get("messages"), "body.messages")?;
    let cap = body
        .get("max_completion_tokens")
        .map(|v| ("body.max_completion_tokens", v))
        .or_else(|| body.get("max_tokens").map(|v| ("body.max_tokens", v)));
    let max_tokens = match cap {
        Some((field, v)) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| format!("{field} must be a whole number of at least 1"))?,
        ),
        None => None,
    };
    Ok(DatasetRecord {
        messages,
        max_tokens,
        line,
        image_sizes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, content: &str, format: Option<DatasetFormat>) -> Result<Dataset, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        Dataset::load(&path, format, InputFilter::default()).map_err(|e| e.to_string())
    }

    #[test]
    fn bad_chat_records_name_their_line_and_field() {
        let error = load(
            "d.jsonl",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}\n{\"messages\": 3}\n",
            None,
        )
        .unwrap_err();
        assert!(
            error.ends_with("d.jsonl:2: \"messages\" must be an array"),
            "{error}"
        );
        let error = load(
            "d.jsonl",
            "\n{\"messages\":[{\"role\":\"user\"}]}\n",
            Some(DatasetFormat::Chat),
        )
        .unwrap_err();
        assert!(
            error.ends_with("d.jsonl:2: messages[0] has no \"content\""),
            "{error}"
        );
    }

    #[test]
    fn sharegpt_arrays_report_the_line_a_bad_conversation_starts_on() {
        let text = "[\n  {\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": \"hi\"}]},\n  {\"id\": \"b\",\n   \"conversations\": [{\"from\": \"robot\", \"value\": \"x\"}]}\n]\n";
        let error = load("s.json", text, None).unwrap_err();
        assert!(
            error.ends_with(
                "s.json:3: conversations[0].from is \"robot\"; expected human, gpt or system"
            ),
            "{error}"
        );
    }

    #[test]
    fn batch_lines_need_the_chat_endpoint_and_keep_their_cap() {
        let good = "{\"custom_id\":\"r1\",\"method\":\"POST\",\"url\":\"/v1/chat/completions\",\"body\":{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":12}}\n";
        let data = load("b.jsonl", good, None).unwrap();
        assert_eq!(data.format, DatasetFormat::Batch);
        assert_eq!(data.records[0].max_tokens, Some(12));
        let wrong = good.replace("/v1/chat/completions", "/v1/embeddings");
        let error = load("b.jsonl", &format!("{good}{wrong}"), None).unwrap_err();
        assert!(
            error.contains("b.jsonl:2: \"url\" is \"/v1/embeddings\""),
            "{error}"
        );
    }

    #[test]
    fn an_input_filter_that_keeps_nothing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.txt");
        std::fs::write(&path, "one two\nthree\n").unwrap();
        let filter = InputFilter {
            min_tokens: Some(1000),
            ..InputFilter::default()
        };
        let error = Dataset::load(&path, None, filter).unwrap_err().to_string();
        assert!(
            error.contains("none of its 2 records has between 1000 and any number of input tokens"),
            "{error}"
        );
    }
}
