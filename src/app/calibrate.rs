//! `drover calibrate`: what this machine adds to every number it measures.
//!
//! Two measurements, both against embedded mocks on loopback:
//!
//! - **The floor**: an open loop at a few rates against a mock with zero configured delay. Each
//!   request's TTFT is then nothing but the harness, the loopback and the mock's own work, so its
//!   distribution is the resolution of a TTFT claim on this machine at that rate. Schedule lag
//!   says how punctually requests left.
//! - **Mock precision**: closed loops of 1, 100 and 1,000 concurrent streams against a mock set to
//!   a fixed TTFT and inter-token delay; the delays it actually produced (as it emitted each
//!   frame) against those configured. The mock's timing is part of every accuracy test.

use std::time::Duration;

use crate::driver::{self, RunOptions, StopSignal};
use crate::results::{LatencyStat, RunResults};

use super::Outcome;

/// What to measure.
#[derive(Debug, Clone, PartialEq)]
pub struct CalibrateOptions {
    /// Open-loop rates (requests per second) of the floor measurement.
    pub rates: Vec<f64>,
    /// How long each rate runs.
    pub duration: Duration,
    /// Concurrent streams of the mock-precision measurement (empty: skip it).
    pub streams: Vec<u32>,
    /// Requests per stream of the mock-precision measurement (50 at least in all).
    pub requests_per_stream: u32,
}

impl Default for CalibrateOptions {
    fn default() -> Self {
        CalibrateOptions {
            rates: vec![10.0, 100.0, 1000.0],
            duration: Duration::from_secs(5),
            streams: vec![1, 100, 1000],
            requests_per_stream: 5,
        }
    }
}

/// The floor at one rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Floor {
    pub rate: f64,
    /// Requests measured (the warm-up tenth excluded) and failed.
    pub measured: u64,
    pub failed: u64,
    /// TTFT against a zero-delay mock: the harness's own latency.
    pub ttft: LatencyStat,
    pub schedule_lag: LatencyStat,
}

impl Floor {
    /// The shortest TTFT claim this floor can resolve: its p99, rounded up to 0.1 ms.
    pub fn resolvable_ms(&self) -> f64 {
        (self.ttft.p99 * 10.0).ceil() / 10.0
    }
}

/// The mock's produced delays at one concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct MockPrecision {
    pub streams: u32,
    pub configured_ttft_ms: f64,
    pub configured_itl_ms: f64,
    pub produced_ttft: LatencyStat,
    pub produced_itl: LatencyStat,
    /// TTFT as drover measured it on the client side.
    pub measured_ttft: LatencyStat,
    pub failed: u64,
}

/// Both measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub cores: usize,
    pub floors: Vec<Floor>,
    pub mock: Vec<MockPrecision>,
}

/// Why a calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("calibration scenario: {0}")]
    Scenario(String),
    #[error("{0}")]
    Driver(#[from] driver::DriverError),
    #[error("cannot start the mock: {0}")]
    Mock(std::io::Error),
    #[error("the {what} run measured no {metric} (every request failed: {samples})")]
    NothingMeasured {
        what: String,
        metric: &'static str,
        samples: String,
    },
}

const CONFIGURED_TTFT_MS: u64 = 50;
const CONFIGURED_ITL_MS: u64 = 10;
/// Tokens per response in the precision runs (1 TTFT and 19 gaps each).
const PRECISION_TOKENS: u32 = 20;
/// Fewest requests of a precision run.
const MIN_PRECISION_REQUESTS: u64 = 50;

/// Runs both measurements.
pub async fn calibrate(options: &CalibrateOptions) -> Result<Calibration, CalibrateError> {
    let mut floors = Vec::new();
    for rate in &options.rates {
        floors.push(floor(*rate, options.duration).await?);
    }
    let mut mock = Vec::new();
    for streams in &options.streams {
        mock.push(precision(*streams, options.requests_per_stream).await?);
    }
    Ok(Calibration {
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        floors,
        mock,
    })
}

async fn run_text(text: &str) -> Result<RunResults, CalibrateError> {
    let plan = crate::scenario::parse(text, std::path::Path::new("calibrate.toml"))
        .map_err(|e| CalibrateError::Scenario(e.to_string()))?;
    Ok(driver::run(&plan, RunOptions::default(), StopSignal::default()).await?)
}

fn stat(
    results: &RunResults,
    what: &str,
    metric: &'static str,
) -> Result<LatencyStat, CalibrateError> {
    let summary = &results.targets[0].summary;
    summary
        .latency_ms
        .get(metric)
        .cloned()
        .ok_or_else(|| CalibrateError::NothingMeasured {
            what: what.to_string(),
            metric,
            samples: format!("{:?}", summary.error_samples),
        })
}

/// The floor at `rate`: an open loop against a zero-delay embedded mock.
async fn floor(rate: f64, duration: Duration) -> Result<Floor, CalibrateError> {
    let text = format!(
        "name = \"calibrate-floor\"\n[[targets]]\nname = \"floor\"\nmodel = \"mock-llm\"\nmode = \"stream\"\n\
         [targets.mock]\nttft = \"0ms\"\nitl = \"0ms\"\noutput_tokens = 2\n\n\
         [[classes]]\nname = \"probe\"\ninput_tokens = 16\nmax_tokens = 2\n\n\
         [load]\nkind = \"open\"\nrate = {rate}\nduration = \"{}ms\"\nwarmup = \"{}ms\"\n",
        duration.as_millis(),
        // The first tenth opens connections and warms caches; it is sent but not measured.
        (duration / 10).as_millis().max(1)
    );
    let results = run_text(&text).await?;
    let what = format!("{rate} req/s");
    let summary = &results.targets[0].summary;
    Ok(Floor {
        rate,
        measured: summary.requests.sent,
        failed: summary.requests.failed,
        ttft: stat(&results, &what, "ttft")?,
        schedule_lag: stat(&results, &what, "schedule_lag")?,
    })
}

/// The mock's precision with `streams` concurrent streams.
async fn precision(streams: u32, per_stream: u32) -> Result<MockPrecision, CalibrateError> {
    use crate::mock::{self, LatencyModel, MockConfig, MockOptions};
    let server = mock::start(
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(CONFIGURED_TTFT_MS)),
            itl: LatencyModel::Fixed(Duration::from_millis(CONFIGURED_ITL_MS)),
            output_tokens: PRECISION_TOKENS,
            ..MockConfig::default()
        },
        MockOptions::default(),
    )
    .map_err(CalibrateError::Mock)?;
    let text = format!(
        "name = \"calibrate-mock\"\n[[targets]]\nname = \"mock\"\nmodel = \"mock-llm\"\nmode = \"stream\"\n\
         base_url = \"{}\"\nhttp = \"http1\"\n\n\
         [[classes]]\nname = \"probe\"\ninput_tokens = 16\n\n\
         [load]\nkind = \"closed\"\nusers = {streams}\nrequests = {}\n",
        server.base_url(),
        // At low concurrency, enough requests for a p99 to mean something.
        (u64::from(streams) * u64::from(per_stream)).max(MIN_PRECISION_REQUESTS)
    );
    let results = run_text(&text).await?;
    let what = format!("{streams}-stream");
    let produced = server.produced_delays();
    Ok(MockPrecision {
        streams,
        configured_ttft_ms: CONFIGURED_TTFT_MS as f64,
        configured_itl_ms: CONFIGURED_ITL_MS as f64,
        produced_ttft: produced.ttft,
        produced_itl: produced.itl,
        measured_ttft: stat(&results, &what, "ttft")?,
        failed: results.targets[0].summary.requests.failed,
    })
}

impl Calibration {
    /// The report printed by `drover calibrate`.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "harness floor: open loop against an embedded mock with zero configured delay ({} cores; client and mock share them)\n",
            self.cores
        );
        out.push_str(&format!(
            "{:>9}  {:>8}  {:>6}  {:>9}  {:>9}  {:>8}  {:>8}\n",
            "rate/s", "measured", "failed", "TTFT p50", "TTFT p99", "lag p50", "lag p99"
        ));
        for floor in &self.floors {
            out.push_str(&format!(
                "{:>9}  {:>8}  {:>6}  {:>6.3} ms  {:>6.3} ms  {:>5.3} ms  {:>5.3} ms\n",
                floor.rate,
                floor.measured,
                floor.failed,
                floor.ttft.p50,
                floor.ttft.p99,
                floor.schedule_lag.p50,
                floor.schedule_lag.p99
            ));
        }
        for floor in &self.floors {
            out.push_str(&format!(
                "at {} req/s this machine adds {:.3} ms (p50) to {:.3} ms (p99) to every TTFT: TTFT claims below {:.1} ms cannot be resolved on this machine at this rate\n",
                floor.rate,
                floor.ttft.p50,
                floor.ttft.p99,
                floor.resolvable_ms()
            ));
        }
        if !self.mock.is_empty() {
            out.push_str(&format!(
                "\nmock precision: configured TTFT {} ms and inter-token delay {} ms, {} tokens per stream; delays as the mock produced them, and TTFT as drover measured it\n",
                CONFIGURED_TTFT_MS, CONFIGURED_ITL_MS, PRECISION_TOKENS
            ));
            out.push_str(&format!(
                "{:>8}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>13}\n",
                "streams", "failed", "TTFT p50", "TTFT p99", "ITL p50", "ITL p99", "measured p50"
            ));
            for row in &self.mock {
                out.push_str(&format!(
                    "{:>8}  {:>6}  {:>6.2} ms  {:>6.2} ms  {:>6.2} ms  {:>6.2} ms  {:>10.2} ms\n",
                    row.streams,
                    row.failed,
                    row.produced_ttft.p50,
                    row.produced_ttft.p99,
                    row.produced_itl.p50,
                    row.produced_itl.p99,
                    row.measured_ttft.p50
                ));
            }
        }
        out
    }
}

/// `drover calibrate`: the harness floor and the mock's precision on this machine.
pub async fn command(args: CalibrateOptions) -> Outcome {
    if args.duration < Duration::from_millis(100) {
        eprintln!("error: --duration must be at least 100ms");
        return Outcome::BadInput;
    }
    let options = args;
    println!(
        "calibrating: {} rate(s) for {} each, then the mock at {} concurrency level(s)",
        options.rates.len(),
        humantime::format_duration(options.duration),
        options.streams.len()
    );
    match calibrate(&options).await {
        Ok(calibration) => {
            print!("{}", calibration.describe());
            Outcome::Ok
        }
        Err(error) => {
            eprintln!("error: {error}");
            Outcome::RunFailed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(p50: f64, p99: f64) -> LatencyStat {
        LatencyStat {
            p50,
            p99,
            ..LatencyStat::default()
        }
    }

    #[test]
    fn the_resolvable_claim_is_the_floor_p99_rounded_up() {
        let floor = Floor {
            rate: 100.0,
            measured: 500,
            failed: 0,
            ttft: stat(0.21, 0.432),
            schedule_lag: stat(0.1, 0.2),
        };
        assert_eq!(floor.resolvable_ms(), 0.5);
        let calibration = Calibration {
            cores: 2,
            floors: vec![floor],
            mock: Vec::new(),
        };
        let text = calibration.describe();
        assert!(
            text.contains(
                "TTFT claims below 0.5 ms cannot be resolved on this machine at this rate"
            ),
            "{text}"
        );
    }
}
