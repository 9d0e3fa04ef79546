//! The mock's own `GET /metrics` page, in vLLM's names, so that scraping a server's metrics is
//! tested and shown with no real server: requests running (answers being generated) and waiting
//! (for a decode slot of the capacity model), KV-cache usage (the mock's cache is its decode
//! slots: running / `decode_slots`, only with a capacity model), prompt and generated token
//! counters, and a time-to-first-token histogram measured from each request's arrival (so it
//! includes the wait for a slot, as vLLM's does).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::protocol::prometheus::Writer;

/// vLLM's time-to-first-token bucket bounds, in seconds.
const TTFT_BOUNDS: [f64; 22] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];

/// The mock's model name on the page.
const MODEL: &str = "mock-llm";

/// The counters and gauges behind the page.
#[derive(Debug)]
pub(crate) struct ServerGauges {
    slots: Option<u32>,
    running: AtomicI64,
    waiting: AtomicI64,
    prompt_tokens: AtomicU64,
    generation_tokens: AtomicU64,
    /// Images received in requests (the mock's own counter, not vLLM's).
    images: AtomicU64,
    /// Tool results (`tool` messages) received in requests (the mock's own counter).
    tool_results: AtomicU64,
    /// Per bucket (not cumulative), the last for +Inf; and the sum in microseconds.
    ttft: Mutex<([u64; TTFT_BOUNDS.len() + 1], u64)>,
}

impl ServerGauges {
    pub(crate) fn new(slots: Option<u32>) -> Self {
        ServerGauges {
            slots,
            running: AtomicI64::new(0),
            waiting: AtomicI64::new(0),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            images: AtomicU64::new(0),
            tool_results: AtomicU64::new(0),
            ttft: Mutex::new(([0; TTFT_BOUNDS.len() + 1], 0)),
        }
    }

    /// A request waits (for a decode slot) while the guard lives.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(self.clone())
    }

    /// Counts the tool results (`tool` messages) of a request the mock answers.
    pub(crate) fn count_tool_results(&self, results: u64) {
        self.tool_results.fetch_add(results, Ordering::Relaxed);
    }

    /// Counts the images of a request the mock answers.
    pub(crate) fn count_images(&self, images: u64) {
        self.images.fetch_add(images, Ordering::Relaxed);
    }

    fn observe_ttft(&self, delay: Duration) {
        let seconds = delay.as_secs_f64();
        let bucket = TTFT_BOUNDS
            .iter()
            .position(|&bound| seconds <= bound)
            .unwrap_or(TTFT_BOUNDS.len());
        let mut ttft = self.ttft.lock().unwrap_or_else(|e| e.into_inner());
        ttft.0[bucket] += 1;
        ttft.1 += delay.as_micros() as u64;
    }

    /// The page.
    pub(crate) fn page(&self) -> String {
        let model = [("model_name", MODEL)];
        let running = self.running.load(Ordering::Relaxed).max(0) as f64;
        let mut page = Writer::new();
        page.family(
            "vllm:num_requests_running",
            "gauge",
            "Requests whose answer is being generated.",
        )
        .sample("vllm:num_requests_running", &model, running)
        .family(
            "vllm:num_requests_waiting",
            "gauge",
            "Requests waiting for a decode slot.",
        )
        .sample(
            "vllm:num_requests_waiting",
            &model,
            self.waiting.load(Ordering::Relaxed).max(0) as f64,
        );
        if let Some(slots) = self.slots {
            page.family(
                "vllm:kv_cache_usage_perc",
                "gauge",
                "KV-cache usage (the mock's decode slots in use); 1 means 100 percent.",
            )
            .sample(
                "vllm:kv_cache_usage_perc",
                &model,
                (running / f64::from(slots.max(1))).min(1.0),
            );
        }
        page.family(
            "vllm:prompt_tokens_total",
            "counter",
            "Prompt tokens of admitted requests.",
        )
        .sample(
            "vllm:prompt_tokens_total",
            &model,
            self.prompt_tokens.load(Ordering::Relaxed) as f64,
        )
        .family(
            "vllm:generation_tokens_total",
            "counter",
            "Tokens generated.",
        )
        .sample(
            "vllm:generation_tokens_total",
            &model,
            self.generation_tokens.load(Ordering::Relaxed) as f64,
        );
        page.family(
            "drover_mock_images_total",
            "counter",
            "Images received in requests (data URLs and web addresses).",
        )
        .sample(
            "drover_mock_images_total",
            &model,
            self.images.load(Ordering::Relaxed) as f64,
        )
        .family(
            "drover_mock_tool_results_total",
            "counter",
            "Tool results (tool messages) received in requests.",
        )
        .sample(
            "drover_mock_tool_results_total",
            &model,
            self.tool_results.load(Ordering::Relaxed) as f64,
        );
        let (counts, sum_us) = *self.ttft.lock().unwrap_or_else(|e| e.into_inner());
        page.family(
            "vllm:time_to_first_token_seconds",
            "histogram",
            "Time to first token in seconds, from the request's arrival.",
        )
        .histogram(
            "vllm:time_to_first_token_seconds",
            &model,
            &TTFT_BOUNDS,
            &counts,
            sum_us as f64 / 1e6,
        );
        page.finish()
    }
}

/// Counts a waiting request until dropped (a request whose client goes away while it waits is
/// no longer waiting).
pub(crate) struct Waiting(Arc<ServerGauges>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An answer being generated: counts as running until dropped, holds its decode slot, and
/// counts its tokens and its time to first token.
pub(crate) struct Busy {
    gauges: Arc<ServerGauges>,
    _slot: Option<tokio::sync::OwnedSemaphorePermit>,
    arrived: Instant,
    first_seen: bool,
}

impl Busy {
    /// Admits a request that arrived at `arrived` with `prompt_tokens`, holding `slot`.
    pub(crate) fn start(
        gauges: Arc<ServerGauges>,
        slot: Option<tokio::sync::OwnedSemaphorePermit>,
        arrived: Instant,
        prompt_tokens: u64,
    ) -> Self {
        gauges.running.fetch_add(1, Ordering::Relaxed);
        gauges
            .prompt_tokens
            .fetch_add(prompt_tokens, Ordering::Relaxed);
        Busy {
            gauges,
            _slot: slot,
            arrived,
            first_seen: false,
        }
    }

    /// A token went out at `at` (the first one's time is the time to first token).
    pub(crate) fn token(&mut self, at: Instant) {
        self.tokens(1, at);
    }

    /// `count` tokens went out, the first of them at `first_at`.
    pub(crate) fn tokens(&mut self, count: u64, first_at: Instant) {
        if count == 0 {
            return;
        }
        if !self.first_seen {
            self.first_seen = true;
            self.gauges
                .observe_ttft(first_at.saturating_duration_since(self.arrived));
        }
        self.gauges
            .generation_tokens
            .fetch_add(count, Ordering::Relaxed);
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.gauges.running.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::prometheus::{parse, servers, Limits};

    #[test]
    fn the_page_reads_back_through_the_vllm_mapping() {
        let gauges = Arc::new(ServerGauges::new(Some(4)));
        let arrived = Instant::now();
        let waiting = gauges.waiting();
        let mut first = Busy::start(gauges.clone(), None, arrived, 100);
        first.tokens(3, arrived + Duration::from_millis(30));
        let mut second = Busy::start(gauges.clone(), None, arrived, 20);
        second.token(arrived + Duration::from_millis(300));
        second.token(arrived + Duration::from_millis(310));

        let page = parse(&gauges.page(), &Limits::default());
        let (kind, figures) = servers::figures(&page);
        assert_eq!(kind, servers::ServerKind::Vllm);
        assert_eq!(figures.running, Some(2.0));
        assert_eq!(figures.waiting, Some(1.0));
        assert_eq!(figures.kv_usage, Some(0.5));
        assert_eq!(figures.prompt_tokens, Some(120.0));
        assert_eq!(figures.generation_tokens, Some(5.0));
        let ttft = figures.ttft.unwrap();
        assert_eq!(ttft.observations(), 2.0, "one TTFT per answer");
        assert!((ttft.sum - 0.33).abs() < 1e-9);

        drop((waiting, first, second));
        let page = parse(&gauges.page(), &Limits::default());
        let (_, figures) = servers::figures(&page);
        assert_eq!((figures.running, figures.waiting), (Some(0.0), Some(0.0)));
    }
}
