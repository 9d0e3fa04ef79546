//! A model's own tokenizer, read from a Hugging Face `tokenizer.json` on disk (the `tokenizers`
//! crate, without its hub access: nothing is fetched). Loaded once per process and path, when a
//! scenario is validated, never on a request's path: a bad, missing or oversized file is a
//! validation error with its path. Loading also finds the vocabulary's words that are one token
//! each (for synthetic prompts of an exact length) and the chat template's tokens.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::template::{self, ChatTemplate, TemplateSource};

/// The largest `tokenizer.json` drover reads: 64 MiB (the largest of current open models' are
/// about 35 MB).
pub const MAX_TOKENIZER_BYTES: u64 = 64 * 1024 * 1024;

/// Synthetic prompts need at least this many distinct one-token words to vary.
const MIN_WORDS: usize = 16;
/// Words kept for synthetic prompts (the first of the vocabulary's order).
const MAX_WORDS: usize = 1024;

/// Why a tokenizer file cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is {size} bytes, more than the {max} bytes a tokenizer file may have")]
    TooLarge { path: PathBuf, size: u64, max: u64 },
    #[error("{path} is not a Hugging Face tokenizer.json: {reason}")]
    NotATokenizer { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Template { path: PathBuf, reason: String },
}

/// A loaded `tokenizer.json`.
pub struct FileTokenizer {
    path: PathBuf,
    inner: tokenizers::Tokenizer,
    words: Arc<Vec<String>>,
    template: ChatTemplate,
}

impl std::fmt::Debug for FileTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileTokenizer")
            .field("path", &self.path)
            .field("words", &self.words.len())
            .field("template", &self.template)
            .finish()
    }
}

/// What a load depends on: the file (as it is now) and the template figures asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    path: PathBuf,
    size: u64,
    modified: Option<std::time::SystemTime>,
    template_tokens: Option<(u64, u64)>,
}

fn cache() -> &'static Mutex<HashMap<CacheKey, Arc<FileTokenizer>>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<FileTokenizer>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

impl FileTokenizer {
    /// Loads `path` (once per process while the file is unchanged). `template_tokens`
    /// (per message, per request) replaces what the chat template of the `tokenizer_config.json`
    /// beside it would measure.
    pub fn load(
        path: &Path,
        template_tokens: Option<(u64, u64)>,
    ) -> Result<Arc<FileTokenizer>, TokenizerError> {
        let read_error = |e: std::io::Error| TokenizerError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let metadata = std::fs::metadata(path).map_err(read_error)?;
        if metadata.is_dir() {
            return Err(TokenizerError::Read {
                path: path.to_path_buf(),
                reason: "it is a directory (name the tokenizer.json in it)".into(),
            });
        }
        if metadata.len() > MAX_TOKENIZER_BYTES {
            return Err(TokenizerError::TooLarge {
                path: path.to_path_buf(),
                size: metadata.len(),
                max: MAX_TOKENIZER_BYTES,
            });
        }
        let key = CacheKey {
            path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
            size: metadata.len(),
            modified: metadata.modified().ok(),
            template_tokens,
        };
        if let Some(loaded) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Ok(loaded.clone());
        }
        let bytes = std::fs::read(path).map_err(read_error)?;
        let loaded = Arc::new(Self::from_bytes(path, &bytes, template_tokens)?);
        cache()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, loaded.clone());
        Ok(loaded)
    }

    fn from_bytes(
        path: &Path,
        bytes: &[u8],
        template_tokens: Option<(u64, u64)>,
    ) -> Result<FileTokenizer, TokenizerError> {
        let not_a_tokenizer = |reason: String| TokenizerError::NotATokenizer {
            path: path.to_path_buf(),
            reason,
        };
        // The file is untrusted input: a panic inside the parser is an error, not a crash.
        let inner = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes))
            .map_err(|_| not_a_tokenizer("the tokenizer library failed on it".into()))?
            .map_err(|e| not_a_tokenizer(e.to_string()))?;
        if inner.get_vocab_size(true) == 0 {
            return Err(not_a_tokenizer("its vocabulary is empty".into()));
        }
        let mut tokenizer = FileTokenizer {
            path: path.to_path_buf(),
            inner,
            words: Arc::new(Vec::new()),
            template: ChatTemplate {
                per_message: 0,
                per_request: 0,
                source: TemplateSource::Unknown,
            },
        };
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tokenizer.count("hello")))
            .map_err(|_| not_a_tokenizer("it fails to encode text".into()))?;
        tokenizer.words = Arc::new(tokenizer.find_words());
        tokenizer.template = match template_tokens {
            Some((per_message, per_request)) => ChatTemplate {
                per_message,
                per_request,
                source: TemplateSource::Configured,
            },
            None => {
                let config = path.with_file_name("tokenizer_config.json");
                if config.is_file() {
                    let content = tokenizer.words.first().map_or("hello", String::as_str);
                    template::measure(&config, content, &|text| tokenizer.count(text))
                        .map_err(|reason| TokenizerError::Template {
                            path: config.clone(),
                            reason: format!(
                                "{reason} (set the tokenizer's template_tokens instead)"
                            ),
                        })?
                        .unwrap_or(tokenizer.template.clone())
                } else {
                    tokenizer.template.clone()
                }
            }
        };
        Ok(tokenizer)
    }

    /// `tokenizer.json (path)`.
    pub fn name(&self) -> String {
        format!("tokenizer.json ({})", self.path.display())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Tokens in `text`, without the special tokens the model adds around a whole input. A text
    /// the library cannot encode counts 0 (never a panic).
    pub fn count(&self, text: &str) -> u64 {
        if text.is_empty() {
            return 0;
        }
        self.inner
            .encode_fast(text, false)
            .map_or(0, |encoding| encoding.len() as u64)
    }

    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// Words that are one token each, first in a text or after a space (see
    /// [`Self::find_words`]); empty when the vocabulary has too few.
    pub fn words(&self) -> &Arc<Vec<String>> {
        &self.words
    }

    /// The vocabulary's lowercase ASCII words (2–12 letters) that are one token alone and one
    /// token after a space, in vocabulary order, checked together: the words joined by spaces
    /// count exactly one token each, or none are kept.
    fn find_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in 0..self.inner.get_vocab_size(false) as u32 {
            let Ok(text) = self.inner.decode(&[id], false) else {
                continue;
            };
            let word = text.trim_start();
            if !(2..=12).contains(&word.len())
                || !word.bytes().all(|b| b.is_ascii_lowercase())
                || seen.contains(word)
            {
                continue;
            }
            if self.count(word) == 1 && self.count(&format!("{word} {word}")) == 2 {
                seen.insert(word.to_string());
                words.push(word.to_string());
                if words.len() == MAX_WORDS {
                    break;
                }
            }
        }
        if words.len() < MIN_WORDS || self.count(&words.join(" ")) != words.len() as u64 {
            return Vec::new();
        }
        words
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The test tokenizer committed under tests/fixtures (see its train.py).
    pub(crate) fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizer/tokenizer.json")
    }

    #[test]
    fn the_fixture_loads_once_with_words_and_its_measured_template() {
        let a = FileTokenizer::load(&fixture(), None).unwrap();
        let b = FileTokenizer::load(&fixture(), None).unwrap();
        assert!(Arc::ptr_eq(&a, &b), "loaded once per process");
        assert!(a.words().len() >= 300, "{} words", a.words().len());
        for word in a.words().iter().take(50) {
            assert_eq!(a.count(word), 1, "{word}");
            assert_eq!(a.count(&format!(" {word}")), 1, "{word}");
        }
        // ChatML: <|im_start|> role \n … <|im_end|> \n per message; the reply's header per
        // request (<|im_start|> assistant \n). A one-message request is counted exactly.
        let template = a.template();
        assert!(matches!(template.source, TemplateSource::Measured(_)));
        let word = &a.words()[0];
        let rendered = format!("<|im_start|>user\n{word}<|im_end|>\n<|im_start|>assistant\n");
        assert_eq!(
            template.per_message + template.per_request,
            a.count(&rendered) - 1
        );
        // "user" is one token of this vocabulary, "assistant" three: per message is their mean.
        assert_eq!(template.per_message, 6);
        let configured = FileTokenizer::load(&fixture(), Some((7, 1))).unwrap();
        assert_eq!(configured.template().per_message, 7);
        assert_eq!(configured.template().source, TemplateSource::Configured);
    }

    #[test]
    fn bad_files_are_errors_that_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.json");
        let error = FileTokenizer::load(&missing, None).unwrap_err().to_string();
        assert!(error.contains("nope.json"), "{error}");
        let json = dir.path().join("tokenizer.json");
        std::fs::write(&json, r#"{ "hello": "world" }"#).unwrap();
        let error = FileTokenizer::load(&json, None).unwrap_err().to_string();
        assert!(
            error.contains("is not a Hugging Face tokenizer.json"),
            "{error}"
        );
        std::fs::write(&json, [0xff, 0xfe, 0x00]).unwrap();
        assert!(FileTokenizer::load(&json, None).is_err());
        let error = FileTokenizer::load(dir.path(), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("directory"), "{error}");
        // A valid tokenizer with a broken template beside it.
        std::fs::copy(fixture(), &json).unwrap();
        std::fs::write(
            dir.path().join("tokenizer_config.json"),
            r#"{ "chat_template": "{% if %}" }"#,
        )
        .unwrap();
        let error = FileTokenizer::load(&json, None).unwrap_err().to_string();
        assert!(error.contains("tokenizer_config.json"), "{error}");
        assert!(error.contains("template_tokens"), "{error}");
        // The same with template_tokens set: the config is not read.
        assert!(FileTokenizer::load(&json, Some((4, 3))).is_ok());
    }
}
