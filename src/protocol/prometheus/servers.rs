//! The names inference servers give their metrics, mapped to common figures: requests running
//! and waiting, KV-cache usage, prefix-cache hits, prompt and generated token counters, and the
//! server-side TTFT, end-to-end and queue-time histograms where a server exports them.
//!
//! | figure | vLLM | SGLang | TGI | llama.cpp |
//! |---|---|---|---|---|
//! | running | `vllm:num_requests_running` | `sglang:num_running_reqs` | `tgi_batch_current_size` | `llamacpp:requests_processing` |
//! | waiting | `vllm:num_requests_waiting` | `sglang:num_queue_reqs` | `tgi_queue_size` | `llamacpp:requests_deferred` |
//! | KV-cache usage (0–1) | `vllm:kv_cache_usage_perc` (`vllm:gpu_cache_usage_perc` before 0.10) | `sglang:token_usage` | — | `llamacpp:kv_cache_usage_ratio` (older servers) |
//! | prefix-cache hits | `vllm:prefix_cache_hits_total` / `vllm:prefix_cache_queries_total` (`vllm:gpu_prefix_cache_hit_rate`) | `sglang:cache_hit_rate` | — | `llamacpp:prompt_tokens_cached_total` / all prompt tokens |
//! | prompt tokens | `vllm:prompt_tokens_total` | `sglang:prompt_tokens_total` | `tgi_request_input_length_sum` | `llamacpp:prompt_tokens_total` + `llamacpp:prompt_tokens_cached_total` |
//! | generated tokens | `vllm:generation_tokens_total` | `sglang:generation_tokens_total` | `tgi_request_generated_tokens_sum` | `llamacpp:tokens_predicted_total` |
//! | TTFT | `vllm:time_to_first_token_seconds` | `sglang:time_to_first_token_seconds` | — | — |
//! | end to end | `vllm:e2e_request_latency_seconds` | `sglang:e2e_request_latency_seconds` | `tgi_request_duration` | — |
//! | queue time | `vllm:request_queue_time_seconds` | `sglang:queue_time_seconds` | `tgi_request_queue_duration` | — |
//!
//! Gauges and counters are summed over their label sets (one series per model or engine), but
//! KV-cache usage takes the fullest one: one full engine is a saturated server.

use super::{Exposition, Histogram};

/// Which server's names a page uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    Vllm,
    Sglang,
    Tgi,
    LlamaCpp,
    /// None of the known names: only series kept by name or pattern are read.
    Other,
}

impl ServerKind {
    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Vllm => "vllm",
            ServerKind::Sglang => "sglang",
            ServerKind::Tgi => "tgi",
            ServerKind::LlamaCpp => "llama.cpp",
            ServerKind::Other => "other",
        }
    }
}

/// The common figures of one scrape; `None` where the server does not export one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub running: Option<f64>,
    pub waiting: Option<f64>,
    /// 0–1.
    pub kv_usage: Option<f64>,
    /// Cumulative prefix-cache (hits, queries), where the server counts them.
    pub prefix_counts: Option<(f64, f64)>,
    /// A server's own hit-rate gauge (0–1), where it exports one instead.
    pub prefix_hit_rate: Option<f64>,
    /// Cumulative token counters.
    pub prompt_tokens: Option<f64>,
    pub generation_tokens: Option<f64>,
    /// Cumulative histograms, in seconds.
    pub ttft: Option<Histogram>,
    pub e2e: Option<Histogram>,
    pub queue: Option<Histogram>,
}

/// The server kind whose names the page uses, and the figures read with them.
pub fn figures(page: &Exposition) -> (ServerKind, Figures) {
    let has = |prefix: &str| page.samples.iter().any(|s| s.name.starts_with(prefix));
    if has("vllm:") {
        let prefix_counts = page
            .sum("vllm:prefix_cache_hits_total")
            .zip(page.sum("vllm:prefix_cache_queries_total"));
        (
            ServerKind::Vllm,
            Figures {
                running: page.sum("vllm:num_requests_running"),
                waiting: page.sum("vllm:num_requests_waiting"),
                kv_usage: page
                    .max("vllm:kv_cache_usage_perc")
                    .or_else(|| page.max("vllm:gpu_cache_usage_perc")),
                prefix_counts,
                prefix_hit_rate: page.max("vllm:gpu_prefix_cache_hit_rate"),
                prompt_tokens: page.sum("vllm:prompt_tokens_total"),
                generation_tokens: page.sum("vllm:generation_tokens_total"),
                ttft: page.histogram("vllm:time_to_first_token_seconds"),
                e2e: page.histogram("vllm:e2e_request_latency_seconds"),
                queue: page.histogram("vllm:request_queue_time_seconds"),
            },
        )
    } else if has("sglang:") {
        (
            ServerKind::Sglang,
            Figures {
                running: page.sum("sglang:num_running_reqs"),
                waiting: page.sum("sglang:num_queue_reqs"),
                kv_usage: page.max("sglang:token_usage"),
                prefix_counts: None,
                prefix_hit_rate: page.max("sglang:cache_hit_rate"),
                prompt_tokens: page.sum("sglang:prompt_tokens_total"),
                generation_tokens: page.sum("sglang:generation_tokens_total"),
                ttft: page.histogram("sglang:time_to_first_token_seconds"),
                e2e: page.histogram("sglang:e2e_request_latency_seconds"),
                queue: page.histogram("sglang:queue_time_seconds"),
            },
        )
    } else if has("tgi_") {
        (
            ServerKind::Tgi,
            Figures {
                running: page.sum("tgi_batch_current_size"),
                waiting: page.sum("tgi_queue_size"),
                kv_usage: None,
                prefix_counts: None,
                prefix_hit_rate: None,
                prompt_tokens: page.sum("tgi_request_input_length_sum"),
                generation_tokens: page.sum("tgi_request_generated_tokens_sum"),
                ttft: None,
                e2e: page.histogram("tgi_request_duration"),
                queue: page.histogram("tgi_request_queue_duration"),
            },
        )
    } else if has("llamacpp:") {
        // Its prompt counter leaves out the tokens reused from its cache, which it counts apart
        // (recent servers): together they are every prompt token, and the cached share is the
        // prefix cache's hit rate.
        let processed = page.sum("llamacpp:prompt_tokens_total");
        let cached = page.sum("llamacpp:prompt_tokens_cached_total");
        let prompt_tokens = match (processed, cached) {
            (Some(processed), Some(cached)) => Some(processed + cached),
            (processed, _) => processed,
        };
        (
            ServerKind::LlamaCpp,
            Figures {
                running: page.sum("llamacpp:requests_processing"),
                waiting: page.sum("llamacpp:requests_deferred"),
                // Exported by servers before late 2025 only.
                kv_usage: page.max("llamacpp:kv_cache_usage_ratio"),
                prefix_counts: cached.zip(prompt_tokens),
                prefix_hit_rate: None,
                prompt_tokens,
                generation_tokens: page.sum("llamacpp:tokens_predicted_total"),
                ttft: None,
                e2e: None,
                queue: None,
            },
        )
    } else {
        (ServerKind::Other, Figures::default())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Limits};
    use super::*;

    fn figures_of(page: &Exposition) -> Figures {
        figures(page).1
    }

    fn fixture(name: &str) -> Exposition {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/server-metrics")
            .join(name);
        let page = parse(&std::fs::read_to_string(&path).unwrap(), &Limits::default());
        assert!(page.is_prometheus(), "{name}: {:?}", page.first_invalid);
        assert_eq!(page.invalid_lines, 0, "{name}: {:?}", page.first_invalid);
        page
    }

    #[test]
    fn vllm_names_map_to_the_figures() {
        let (kind, figures) = figures(&fixture("vllm.txt"));
        assert_eq!(kind, ServerKind::Vllm);
        assert_eq!(figures.running, Some(12.0));
        assert_eq!(figures.waiting, Some(3.0));
        assert_eq!(figures.kv_usage, Some(0.4375));
        assert_eq!(figures.prefix_counts, Some((5376.0, 12800.0)));
        assert_eq!(figures.prompt_tokens, Some(251_904.0));
        assert_eq!(figures.generation_tokens, Some(61_440.0));
        let ttft = figures.ttft.unwrap();
        assert_eq!(ttft.observations(), 480.0);
        assert!(figures.e2e.is_some() && figures.queue.is_some());
    }

    #[test]
    fn sglang_names_map_to_the_figures() {
        let (kind, figures) = figures(&fixture("sglang.txt"));
        assert_eq!(kind, ServerKind::Sglang);
        assert_eq!(figures.running, Some(162.0));
        assert_eq!(figures.waiting, Some(2826.0));
        assert_eq!(figures.kv_usage, Some(0.28));
        assert_eq!(figures.prefix_hit_rate, Some(0.0075));
        assert_eq!(figures.prompt_tokens, Some(8_128_902.0));
        assert_eq!(figures.generation_tokens, Some(7_557_572.0));
        assert_eq!(figures.ttft.unwrap().observations(), 11_008.0);
        assert_eq!(figures.e2e.unwrap().observations(), 11_228.0);
    }

    #[test]
    fn tgi_names_map_to_the_figures() {
        let (kind, figures) = figures(&fixture("tgi.txt"));
        assert_eq!(kind, ServerKind::Tgi);
        assert_eq!(figures.running, Some(8.0));
        assert_eq!(figures.waiting, Some(5.0));
        assert_eq!(figures.kv_usage, None);
        assert_eq!(figures.prompt_tokens, Some(36_210.0));
        assert_eq!(figures.generation_tokens, Some(14_336.0));
        assert_eq!(figures.ttft, None, "TGI exports no TTFT histogram");
        assert_eq!(figures.e2e.unwrap().observations(), 112.0);
        assert_eq!(figures.queue.unwrap().observations(), 117.0);
    }

    #[test]
    fn llama_cpp_names_map_to_the_figures() {
        let (kind, figures) = figures(&fixture("llamacpp.txt"));
        // Recorded from a real llama-server with 2 slots, 60 requests deferred behind them.
        assert_eq!(kind, ServerKind::LlamaCpp);
        assert_eq!(figures.running, Some(2.0));
        assert_eq!(figures.waiting, Some(60.0));
        assert_eq!(figures.kv_usage, None, "no longer exported");
        // 1,073 processed and 12 from the cache: 1,085 prompt tokens, 12 of them hits.
        assert_eq!(figures.prompt_tokens, Some(1085.0));
        assert_eq!(figures.prefix_counts, Some((12.0, 1085.0)));
        assert_eq!(figures.generation_tokens, Some(328.0));
        assert_eq!(figures.ttft, None);
        // An older server's KV-cache ratio is still read.
        let older = parse(
            "llamacpp:requests_processing 1\nllamacpp:kv_cache_usage_ratio 0.21\n",
            &Limits::default(),
        );
        assert_eq!(figures_of(&older).kv_usage, Some(0.21));
    }

    #[test]
    fn an_unknown_server_maps_to_nothing() {
        let page = parse("process_cpu_seconds_total 1.5\n", &Limits::default());
        assert_eq!(figures(&page), (ServerKind::Other, Figures::default()));
    }
}
