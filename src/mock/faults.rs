//! Fault injection for the mock: each fault has a probability, at most one fault hits a request
//! (drawn from the mock's seed and the request number, so runs repeat), and the mock counts what
//! it injected so tests can compare the harness's error counts with it exactly.
//!
//! Streaming faults apply to `stream: true` requests only; a non-streaming request is never
//! given one (and it is not counted).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::{Rng, RngExt};

/// A fault the mock can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Close the connection before sending response headers.
    ResetBeforeHeaders,
    /// Break the connection halfway through the stream.
    DropMidStream,
    /// Send nothing for `stall_for` halfway through the stream.
    Stall,
    /// From halfway on, send one byte every `drip_every`.
    SlowDrip,
    /// An event whose data is not JSON at all (an HTML error page).
    MalformedSse,
    /// An event with truncated JSON.
    InvalidJson,
    /// End the stream without `data: [DONE]`.
    NoDone,
    Http408,
    /// 429 with `Retry-After` and `x-ratelimit-*` headers.
    Http429,
    Http500,
    Http502,
    Http503,
    /// A stream served as `application/json`.
    WrongContentType,
    /// An event whose data holds bytes that are not UTF-8.
    NonUtf8,
    /// An event of `oversized_bytes` bytes.
    OversizedEvent,
    /// A 401 whose error message repeats the request's API key, as some providers do.
    EchoKey,
}

impl Fault {
    pub const ALL: [Fault; 16] = [
        Fault::ResetBeforeHeaders,
        Fault::DropMidStream,
        Fault::Stall,
        Fault::SlowDrip,
        Fault::MalformedSse,
        Fault::InvalidJson,
        Fault::NoDone,
        Fault::Http408,
        Fault::Http429,
        Fault::Http500,
        Fault::Http502,
        Fault::Http503,
        Fault::WrongContentType,
        Fault::NonUtf8,
        Fault::OversizedEvent,
        Fault::EchoKey,
    ];

    /// The name used in scenario files, `x-mock-fault` headers and the counts report.
    pub fn name(self) -> &'static str {
        match self {
            Fault::ResetBeforeHeaders => "reset_before_headers",
            Fault::DropMidStream => "drop_mid_stream",
            Fault::Stall => "stall",
            Fault::SlowDrip => "slow_drip",
            Fault::MalformedSse => "malformed_sse",
            Fault::InvalidJson => "invalid_json",
            Fault::NoDone => "no_done",
            Fault::Http408 => "http_408",
            Fault::Http429 => "http_429",
            Fault::Http500 => "http_500",
            Fault::Http502 => "http_502",
            Fault::Http503 => "http_503",
            Fault::WrongContentType => "wrong_content_type",
            Fault::NonUtf8 => "non_utf8",
            Fault::OversizedEvent => "oversized_event",
            Fault::EchoKey => "echo_key",
        }
    }

    pub fn from_name(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the fault only makes sense on a streamed response.
    pub fn streaming_only(self) -> bool {
        matches!(
            self,
            Fault::DropMidStream
                | Fault::Stall
                | Fault::SlowDrip
                | Fault::MalformedSse
                | Fault::InvalidJson
                | Fault::NoDone
                | Fault::WrongContentType
                | Fault::NonUtf8
                | Fault::OversizedEvent
        )
    }
}

/// Which faults to inject and how.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultPlan {
    /// Probability of each fault per request; they add up to at most 1.
    pub probabilities: Vec<(Fault, f64)>,
    pub stall_for: Duration,
    pub drip_every: Duration,
    pub oversized_bytes: usize,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            probabilities: Vec::new(),
            stall_for: Duration::from_secs(5),
            drip_every: Duration::from_millis(100),
            oversized_bytes: 2 * 1024 * 1024,
        }
    }
}

impl FaultPlan {
    /// Draws the fault for one request, if any.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R, streaming: bool) -> Option<Fault> {
        if self.probabilities.is_empty() {
            return None;
        }
        let u: f64 = rng.random();
        let mut cumulative = 0.0;
        for &(fault, probability) in &self.probabilities {
            cumulative += probability;
            if u < cumulative {
                return (streaming || !fault.streaming_only()).then_some(fault);
            }
        }
        None
    }
}

/// How many of each fault the mock injected.
#[derive(Debug, Default)]
pub struct FaultCounts {
    counts: [AtomicU64; Fault::ALL.len()],
}

impl FaultCounts {
    pub fn add(&self, fault: Fault) {
        let index = Fault::ALL.iter().position(|f| *f == fault).unwrap_or(0);
        self.counts[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero counts by fault name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        Fault::ALL
            .iter()
            .zip(&self.counts)
            .map(|(f, c)| (f.name().to_string(), c.load(Ordering::Relaxed)))
            .filter(|(_, c)| *c > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_follow_the_probabilities_and_skip_stream_faults_for_plain_requests() {
        let plan = FaultPlan {
            probabilities: vec![(Fault::Http500, 0.2), (Fault::NoDone, 0.3)],
            ..FaultPlan::default()
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let draws: Vec<Option<Fault>> = (0..10_000).map(|_| plan.draw(&mut rng, true)).collect();
        let count = |f| draws.iter().filter(|d| **d == Some(f)).count() as f64 / 10_000.0;
        assert!((count(Fault::Http500) - 0.2).abs() < 0.02);
        assert!((count(Fault::NoDone) - 0.3).abs() < 0.02);
        assert!((0..1000).all(|_| plan.draw(&mut rng, false) != Some(Fault::NoDone)));
        for fault in Fault::ALL {
            assert_eq!(Fault::from_name(fault.name()), Some(fault));
        }
    }
}
