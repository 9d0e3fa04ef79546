//! `tokenizer = …` of a target or a class: a built-in vocabulary, or a model's own
//! `tokenizer.json` loaded here, once, so that a bad file fails validation with its path.

use std::path::Path;

use crate::scenario::locate::KeyPath;
use crate::scenario::schema::TokenizerSpec;
use crate::tokenizer::{FileTokenizer, Tokenizer, TokenizerError};

use super::Checker;

/// The tokenizer `spec` names (`None`: not set, or it failed and the failure is recorded).
pub(super) fn tokenizer(
    checker: &mut Checker,
    key: &KeyPath,
    spec: Option<&TokenizerSpec>,
    base_dir: &Path,
) -> Option<Tokenizer> {
    match spec? {
        TokenizerSpec::Builtin(encoding) => Some(Tokenizer::Tiktoken(*encoding)),
        TokenizerSpec::File(file) => {
            let template = file
                .template_tokens
                .map(|t| (u64::from(t.per_message), u64::from(t.per_request)));
            match FileTokenizer::load(&base_dir.join(&file.file), template) {
                Ok(loaded) => Some(Tokenizer::File(loaded)),
                Err(error) => {
                    let at = match error {
                        TokenizerError::Template { .. } => key.clone(),
                        _ => key.key("file"),
                    };
                    checker.fail(&at, error.to_string());
                    None
                }
            }
        }
    }
}

/// The tokenizer classes use when they set none: the targets' own file when every target names
/// the same one (so that synthetic prompts are exact in the model's vocabulary), else the
/// built-in default.
pub(super) fn class_default(targets: &[crate::scenario::TargetPlan]) -> Tokenizer {
    match targets.first().map(|t| &t.tokenizer) {
        Some(first @ Tokenizer::File(_)) if targets.iter().all(|t| &t.tokenizer == first) => {
            first.clone()
        }
        _ => Tokenizer::default(),
    }
}
