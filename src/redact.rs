//! Scrubs secret values (API keys, sensitive header values) out of any text before it reaches a
//! results file, a log line or an error message.

/// Replaces every known secret with `<redacted>`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// Secrets shorter than 4 characters are not scrubbed (they would mangle ordinary text).
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= 4).collect();
        // Longest first, so a secret that contains another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "<redacted>");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_replaced_everywhere() {
        let redactor = Redactor::new(["sk-live-123".to_string(), "ab".to_string()]);
        assert_eq!(
            redactor.redact("bad key sk-live-123 (sk-live-123) ab"),
            "bad key <redacted> (<redacted>) ab"
        );
    }
}
