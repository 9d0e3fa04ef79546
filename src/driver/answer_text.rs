//! The answer text a request keeps, bounded whatever the server streams, and its token count
//! when the server sent no usage — computed on tokio's blocking pool, never on the async workers
//! that time every other request, and only for a request that succeeded.
//!
//! At most [`KEPT_BYTES`] of text are kept: enough for a session's next turn and for the
//! agreement of a shadow pair on any real answer. Past it, only the byte count grows. At most
//! 64 KiB are tokenized (about 8 ms of CPU for the worst text, one endless word): a longer
//! answer's count is the first 64 KiB's, scaled by the bytes received over the bytes counted
//! (an estimate, as every tokenizer count of another model's vocabulary is: `token_source` says
//! `tokenizer`).

use crate::tokenizer::Tokenizer;

/// Most bytes of answer text kept per request (256 KiB: about 64,000 tokens of English).
pub const KEPT_BYTES: usize = 256 * 1024;

/// Most bytes tokenized per request (64 KiB, about 16,000 tokens of English: more than almost
/// any answer); the count of a longer text is scaled from its first 64 KiB.
const COUNTED_BYTES: usize = 64 * 1024;

/// Text longer than this is counted in pieces cut at white space (or at a character boundary
/// where a piece has none), so that one endless "word" cannot make the count superlinear.
const PIECE_BYTES: usize = 16 * 1024;

/// A request's answer text, bounded.
#[derive(Debug, Default)]
pub struct AnswerText {
    kept: String,
    /// Every byte of text received, kept or not.
    received: u64,
}

impl AnswerText {
    /// Adds text as it arrives.
    pub fn push(&mut self, text: &str) {
        self.received += text.len() as u64;
        let room = KEPT_BYTES.saturating_sub(self.kept.len());
        if room == 0 {
            return;
        }
        if text.len() <= room {
            self.kept.push_str(text);
        } else {
            let mut end = room;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            self.kept.push_str(&text[..end]);
        }
    }

    /// Replaces the text (a non-streamed answer, read whole).
    pub fn set(&mut self, text: &str) {
        *self = AnswerText::default();
        self.push(text);
    }

    /// Bytes of text kept.
    pub fn kept_len(&self) -> usize {
        self.kept.len()
    }

    /// Whether no text was received.
    pub fn is_empty(&self) -> bool {
        self.received == 0
    }

    /// Whether some of the text was not kept.
    #[cfg(test)]
    fn truncated(&self) -> bool {
        self.received > self.kept.len() as u64
    }

    /// The text kept (all of it unless [`AnswerText::truncated`]).
    pub fn into_kept(self) -> String {
        self.kept
    }

    #[cfg(test)]
    fn kept(&self) -> &str {
        &self.kept
    }

    /// Tokens in the whole text (see the module doc for text past the bound). Pure CPU work:
    /// call it on the blocking pool.
    pub fn count_tokens(&self, tokenizer: &Tokenizer) -> u64 {
        let mut end = self.kept.len().min(COUNTED_BYTES);
        while !self.kept.is_char_boundary(end) {
            end -= 1;
        }
        let sample = &self.kept[..end];
        let counted = count_in_pieces(sample, tokenizer);
        if self.received <= sample.len() as u64 || sample.is_empty() {
            return counted;
        }
        let scale = self.received as f64 / sample.len() as f64;
        (counted as f64 * scale).round() as u64
    }
}

fn count_in_pieces(text: &str, tokenizer: &Tokenizer) -> u64 {
    if text.len() <= PIECE_BYTES {
        return tokenizer.count(text);
    }
    let mut total = 0;
    let mut rest = text;
    while !rest.is_empty() {
        if rest.len() <= PIECE_BYTES {
            total += tokenizer.count(rest);
            break;
        }
        let mut end = PIECE_BYTES;
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        // Cut after the last white space of the piece, when it has one.
        let cut = rest[..end]
            .rfind(char::is_whitespace)
            .map_or(end, |at| at + 1);
        total += tokenizer.count(&rest[..cut]);
        rest = &rest[cut..];
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenizer::Encoding;

    #[test]
    fn text_past_the_bound_is_counted_not_kept() {
        let mut text = AnswerText::default();
        let line = "the quick brown fox jumps over the lazy dog. ";
        let mut pushed = 0;
        while pushed < 3 * KEPT_BYTES {
            text.push(line);
            pushed += line.len();
        }
        assert_eq!(text.kept().len(), KEPT_BYTES);
        assert!(text.truncated());
        let whole = Encoding::O200kBase.count(&line.repeat(pushed / line.len()));
        let estimated = text.count_tokens(&Encoding::O200kBase.into());
        let error = (estimated as f64 - whole as f64).abs() / whole as f64;
        assert!(error < 0.01, "estimated {estimated}, whole {whole}");
    }

    #[test]
    fn multibyte_text_is_cut_at_a_character_boundary() {
        let mut text = AnswerText::default();
        text.push(&"a".repeat(KEPT_BYTES - 1));
        text.push("é and more");
        assert_eq!(text.kept().len(), KEPT_BYTES - 1);
        assert!(text.truncated());
    }

    #[test]
    fn short_text_is_counted_exactly() {
        let mut text = AnswerText::default();
        text.set("Hello there, how are you?");
        assert!(!text.truncated());
        assert_eq!(
            text.count_tokens(&Encoding::O200kBase.into()),
            Encoding::O200kBase.count("Hello there, how are you?")
        );
        // One endless word is counted in pieces, in bounded time.
        let mut endless = AnswerText::default();
        endless.push(&"a".repeat(KEPT_BYTES));
        assert!(endless.count_tokens(&Encoding::O200kBase.into()) > 0);
    }
}
