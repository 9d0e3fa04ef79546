//! A usage-less answer's output token count, checked against what else the client saw. The
//! tokenizer's count is only right in the model's own vocabulary; two facts bound the truth
//! whatever the vocabulary: a streamed answer has at least one token per content event, and no
//! answer has more than its `max_tokens` (an answer cut at the cap has exactly that many). A
//! count outside those bounds is set aside for the better source, and the record says which
//! source counted.

use crate::record::TokenSource;

/// What the client knows of an answer that came without usage.
#[derive(Debug, Clone, Copy)]
pub struct Observed {
    /// The tokenizer's count of the answer text.
    pub counted: u64,
    /// Content-bearing events received (0 for an answer read whole).
    pub content_events: u64,
    /// The `max_tokens` sent.
    pub max_tokens: Option<u32>,
    /// The server said it stopped at the cap (`length`, `max_tokens`, `max_output_tokens`).
    pub cut_at_cap: bool,
}

/// Whether a finish reason says the answer stopped at its token cap.
pub fn is_cap_reason(reason: &str) -> bool {
    matches!(reason, "length" | "max_tokens" | "max_output_tokens")
}

/// The most plausible output count and its source.
pub fn choose(observed: Observed) -> (u64, TokenSource) {
    let Observed {
        counted,
        content_events,
        max_tokens,
        cut_at_cap,
    } = observed;
    let cap = max_tokens.map(u64::from);
    match cap {
        // Stopped at the cap: exactly the cap, unless more events than that arrived (a server
        // that ignores the cap, whose events are then the better count).
        Some(cap) if cut_at_cap && content_events <= cap => (cap, TokenSource::MaxTokens),
        // Fewer tokens than events cannot be: each event carried at least one.
        _ if counted < content_events => (content_events, TokenSource::Chunks),
        // More tokens than the cap cannot be either, for a server that honours it (no more
        // events than the cap): the events when streamed, else the cap. A server that sent
        // more events than its cap ignores it, and the count (no less than the events) stands.
        Some(cap) if counted > cap && content_events > 0 && content_events <= cap => {
            (content_events, TokenSource::Chunks)
        }
        Some(cap) if counted > cap && content_events == 0 => (cap, TokenSource::MaxTokens),
        _ => (counted, TokenSource::Tokenizer),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(counted: u64, events: u64, cap: Option<u32>, cut: bool) -> Observed {
        Observed {
            counted,
            content_events: events,
            max_tokens: cap,
            cut_at_cap: cut,
        }
    }

    #[test]
    fn a_plausible_count_stands() {
        // Between the events and the cap: a server may send several tokens per event.
        assert_eq!(
            choose(observed(40, 32, Some(64), false)),
            (40, TokenSource::Tokenizer)
        );
        assert_eq!(
            choose(observed(7, 0, None, false)),
            (7, TokenSource::Tokenizer)
        );
    }

    #[test]
    fn an_answer_cut_at_its_cap_has_exactly_the_cap() {
        // llama.cpp's case: o200k counted 42 where the model made 32, cut at max_tokens = 32.
        assert_eq!(
            choose(observed(42, 31, Some(32), true)),
            (32, TokenSource::MaxTokens)
        );
        // A server that streamed more events than its cap ignores it: the count, no less than
        // the events, stands.
        assert_eq!(
            choose(observed(60, 50, Some(32), true)),
            (60, TokenSource::Tokenizer)
        );
        assert!(is_cap_reason("length") && is_cap_reason("max_tokens"));
        assert!(!is_cap_reason("stop") && !is_cap_reason("end_turn"));
    }

    #[test]
    fn counts_outside_the_bounds_are_set_aside() {
        // Over the cap, without a cap reason: the events.
        assert_eq!(
            choose(observed(42, 31, Some(32), false)),
            (31, TokenSource::Chunks)
        );
        // Fewer than the events: the events.
        assert_eq!(
            choose(observed(20, 32, None, false)),
            (32, TokenSource::Chunks)
        );
        // Read whole, over the cap: the cap.
        assert_eq!(
            choose(observed(90, 0, Some(64), false)),
            (64, TokenSource::MaxTokens)
        );
    }
}
