//! `drover mock`: the mock LLM server on its own, for peers and for runs too large for one
//! process: it serves until interrupted and then reports the delays it produced and the faults
//! it injected.

use std::io::Write;
use std::time::Duration;

use crate::mock::{FaultPlan, LatencyModel, MockConfig, MockOptions};

use super::Outcome;

fn latency(mean: Duration, spread: Duration) -> LatencyModel {
    if spread.is_zero() {
        LatencyModel::Fixed(mean)
    } else {
        LatencyModel::Normal {
            mean,
            stddev: spread,
        }
    }
}

/// `drover mock`'s arguments.
#[derive(Debug, Clone)]
pub struct MockRequest {
    pub addr: std::net::SocketAddr,
    pub ttft: Duration,
    pub ttft_spread: Duration,
    pub itl: Duration,
    pub itl_spread: Duration,
    pub output_tokens: u32,
    pub reasoning_tokens: u32,
    pub prelude: Option<Duration>,
    pub api_key_env: Option<String>,
    pub seed: u64,
    pub faults: Vec<(crate::mock::Fault, f64)>,
    pub stall_for: Duration,
    pub drip_every: Duration,
    pub batch_processing_time: Duration,
    pub batch_failure_rate: f64,
    pub batch_mode_speedup: f64,
    pub early_stop: f64,
    pub cache_ttft: Option<Duration>,
    pub decode_slots: Option<u32>,
    pub max_concurrent_streams: Option<u32>,
}

/// `drover mock`: a standalone mock server until interrupted, then what it served and produced.
pub async fn serve(args: MockRequest) -> Outcome {
    let required_key = match &args.api_key_env {
        Some(var) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Some(value),
            _ => {
                eprintln!("error: --api-key-env {var}: environment variable {var} is not set");
                return Outcome::BadInput;
            }
        },
        None => None,
    };
    let config = MockConfig {
        ttft: latency(args.ttft, args.ttft_spread),
        itl: latency(args.itl, args.itl_spread),
        output_tokens: args.output_tokens,
        reasoning_tokens: args.reasoning_tokens,
        prelude: args.prelude,
        seed: args.seed,
        faults: FaultPlan {
            probabilities: args.faults.clone(),
            stall_for: args.stall_for,
            drip_every: args.drip_every,
            ..FaultPlan::default()
        },
        batch: crate::mock::BatchMockConfig {
            processing_time: args.batch_processing_time,
            failure_rate: args.batch_failure_rate,
        },
        batch_mode_speedup: args.batch_mode_speedup,
        early_stop: args.early_stop,
        cache_ttft: args.cache_ttft.map(LatencyModel::Fixed),
        decode_slots: args.decode_slots,
        max_concurrent_streams: args.max_concurrent_streams,
        ..MockConfig::default()
    };
    if !(args.batch_mode_speedup.is_finite() && args.batch_mode_speedup > 0.0) {
        eprintln!("error: --batch-mode-speedup must be > 0");
        return Outcome::BadInput;
    }
    let total: f64 = args.faults.iter().map(|(_, p)| p).sum();
    if total > 1.0 + 1e-9 {
        eprintln!("error: --fault probabilities add up to {total}, more than 1");
        return Outcome::BadInput;
    }
    let options = MockOptions {
        addr: args.addr,
        required_key,
        ..MockOptions::default()
    };
    let handle = match crate::mock::start(config, options) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.addr);
            return Outcome::RunFailed;
        }
    };
    println!("drover mock listening on {}", handle.base_url());
    let _ = std::io::stdout().flush();
    super::wait_for_interrupt().await;
    let produced = handle.produced_delays();
    eprintln!(
        "drover mock: served {} chat completions ({} requests received); produced delays: \
         TTFT p50 {:.2} ms p99 {:.2} ms, inter-token p50 {:.2} ms p99 {:.2} ms",
        handle.completions_served(),
        handle.requests_received(),
        produced.ttft.p50,
        produced.ttft.p99,
        produced.itl.p50,
        produced.itl.p99,
    );
    let injected = handle.faults_injected();
    if !injected.is_empty() {
        eprintln!(
            "drover mock: faults injected: {}",
            injected
                .iter()
                .map(|(name, count)| format!("{name} {count}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Outcome::Ok
}
