//! Scrubs secret values (API keys, header values) out of any text before it reaches a results
//! file, a log line or an error message — and before the text is cut, so that a key straddling a
//! cut cannot leave its first half behind ([`Redactor::scrub_and_cut`]).
//!
//! One rule for every secret: the secret itself, the secret without a well-known prefix
//! (`Bearer `, `sk-`, `sk-ant-`, `sk-proj-`, …), and every [`WINDOW`]-character piece of it are
//! replaced by `<redacted>`, so a server that echoes part of a key (cut at its own limit, or
//! without its prefix) does not leak it either.

use aho_corasick::{AhoCorasick, MatchKind};

/// Every piece of a secret this long is scrubbed wherever it appears.
pub const WINDOW: usize = 12;

/// Longest error message kept (in characters), after scrubbing.
pub const MESSAGE_CHARS: usize = 300;

/// What a scrubbed piece becomes.
pub const REDACTED: &str = "<redacted>";

/// Prefixes a key is often shown without (longest first).
const KEY_PREFIXES: [&str; 5] = ["sk-ant-api03-", "sk-ant-", "sk-proj-", "sk-", "Bearer "];

/// Shortest secret scrubbed: shorter ones would mangle ordinary text.
const MIN_SECRET: usize = 4;

/// Replaces every known secret (and every piece of it) with `<redacted>`.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// `None`: no secrets.
    matcher: Option<AhoCorasick>,
}

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut patterns: Vec<String> = Vec::new();
        for secret in secrets {
            let mut forms = vec![secret.clone()];
            let mut rest = secret.as_str();
            // "Bearer sk-…": both prefixes go.
            while let Some(stripped) = KEY_PREFIXES.iter().find_map(|p| rest.strip_prefix(p)) {
                forms.push(stripped.to_string());
                rest = stripped;
            }
            for form in forms {
                let chars: Vec<char> = form.chars().collect();
                if chars.len() > WINDOW {
                    patterns.extend(chars.windows(WINDOW).map(|w| w.iter().collect::<String>()));
                }
                if chars.len() >= MIN_SECRET {
                    patterns.push(form);
                }
            }
        }
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Redactor::default();
        }
        // Standard semantics: every occurrence of every piece is found (overlapping), and the
        // pieces' spans are merged before they are replaced.
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok();
        Redactor { matcher }
    }

    /// `text` with every secret and every piece of one replaced.
    pub fn redact(&self, text: &str) -> String {
        let Some(matcher) = &self.matcher else {
            return text.to_string();
        };
        let mut spans: Vec<(usize, usize)> = Vec::new();
        for found in matcher.find_overlapping_iter(text) {
            match spans.last_mut() {
                Some((_, end)) if found.start() <= *end => *end = (*end).max(found.end()),
                _ => spans.push((found.start(), found.end())),
            }
        }
        if spans.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in spans {
            out.push_str(&text[at..start]);
            out.push_str(REDACTED);
            at = end;
        }
        out.push_str(&text[at..]);
        out
    }

    /// Scrubs `text`, then keeps at most `max_chars` characters of it (`…` marks a cut).
    pub fn scrub_and_cut(&self, text: &str, max_chars: usize) -> String {
        cut(&self.redact(text), max_chars)
    }
}

/// At most `max_chars` characters of `text`, with `…` where it was cut. Only for text that was
/// scrubbed already (or holds no secret).
pub fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        None => text.to_string(),
        Some((at, _)) => {
            let mut short = text[..at].to_string();
            short.push('…');
            short
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-0123456789abcdefghijKL";

    fn leaks(text: &str, secret: &str) -> Option<String> {
        let chars: Vec<char> = secret.chars().collect();
        chars
            .windows(8)
            .map(|w| w.iter().collect::<String>())
            .find(|piece| text.contains(piece.as_str()))
    }

    #[test]
    fn secrets_are_replaced_everywhere() {
        let redactor = Redactor::new(["sk-live-123".to_string(), "ab".to_string()]);
        assert_eq!(
            redactor.redact("bad key sk-live-123 (sk-live-123) ab"),
            "bad key <redacted> (<redacted>) ab"
        );
    }

    #[test]
    fn a_key_without_its_prefix_or_cut_in_pieces_is_scrubbed() {
        let redactor = Redactor::new([KEY.to_string()]);
        let bare = KEY.strip_prefix("sk-").unwrap();
        for text in [
            format!("key {bare} rejected"),
            format!("Bearer {KEY}"),
            // A server that cut the key itself: its first 20 characters, or its last 15.
            format!("key {}… rejected", &KEY[..20]),
            format!("…{} rejected", &KEY[KEY.len() - 15..]),
        ] {
            let scrubbed = redactor.redact(&text);
            assert_eq!(leaks(&scrubbed, KEY), None, "{text} -> {scrubbed}");
            assert!(scrubbed.contains(REDACTED), "{scrubbed}");
        }
        assert_eq!(redactor.redact("nothing secret"), "nothing secret");
    }

    #[test]
    fn scrubbing_comes_before_the_cut_at_every_offset() {
        let redactor = Redactor::new([format!("Bearer {KEY}")]);
        for offset in 250..=MESSAGE_CHARS + 5 {
            let text = format!("{}{KEY} and more text after it", "x".repeat(offset));
            let kept = redactor.scrub_and_cut(&text, MESSAGE_CHARS);
            assert!(kept.chars().count() <= MESSAGE_CHARS + 1);
            assert_eq!(leaks(&kept, KEY), None, "offset {offset}: {kept}");
        }
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        assert_eq!(cut("héllo", 2), "hé…");
        assert_eq!(cut("hé", 2), "hé");
    }
}
