//! The binary's commands: each parses its arguments (see [`args`]), calls a library workflow and
//! maps how it ended to an exit code ([`exit`], the one table of codes).

pub mod args;
pub mod exit;

use std::io::Write;
use std::time::Duration;

use drover::app::{self, Outcome};
use drover::driver::{self, StopSignal};
use drover::mock::{self, FaultPlan, LatencyModel, MockConfig, MockOptions};
use drover::report;

use drover::scenario::{self, RunPlan};

use args::{
    AuditArgs, CalibrateArgs, Cli, Command, CompareArgs, MergeArgs, MockArgs, ReportArgs, RunArgs,
    ValidateArgs,
};

pub fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Validate(args) => validate(args),
        Command::Report(args) => report_command(args),
        Command::Run(args) => with_runtime(|| run(args)),
        Command::Mock(args) => with_runtime(|| serve_mock(args)),
        Command::Merge(args) => merge_command(args),
        Command::Compare(args) => compare_command(args),
        Command::Audit(args) => audit_command(args),
        Command::Calibrate(args) => with_runtime(|| calibrate_command(args)),
    }
}

fn with_runtime<F, Fut>(body: F) -> i32
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = i32>,
{
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(body()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            exit::code(Outcome::Internal)
        }
    }
}

fn load_plan(path: &std::path::Path) -> Result<RunPlan, i32> {
    app::run::load_plan(path).map_err(exit::code)
}

fn validate(args: ValidateArgs) -> i32 {
    match load_plan(&args.scenario) {
        Ok(plan) => {
            println!("ok: {}", args.scenario.display());
            println!("{}", scenario::describe(&plan));
            match drover::spend::project(&plan) {
                Ok(projection) => println!("{}", projection.describe()),
                Err(why) => println!("projection: none ({why})"),
            }
            if let Some(budget) = plan.cost.budget {
                println!(
                    "budget: {} {}",
                    report::format::money(budget),
                    plan.cost.currency
                );
            }
            exit::code(Outcome::Ok)
        }
        Err(code) => code,
    }
}

async fn run(args: RunArgs) -> i32 {
    let request = app::run::RunRequest {
        scenario: args.scenario,
        out: args.out,
        progress: !args.no_progress,
        preflight: !args.no_preflight,
        checkpoint_every: args.checkpoint_every,
        export_requests: args.export_requests,
        shard: args.shard,
        budget: args.budget,
        allow_over_budget: args.allow_over_budget,
        allow_unpriced: args.allow_unpriced,
        start_at: args.start_at,
    };
    let prepared = match app::run::prepare(request) {
        Ok(prepared) => prepared,
        Err(outcome) => return exit::code(outcome),
    };
    let stop = StopSignal::default();
    exit_on_interrupts(stop.handle(), prepared.dir.join("results.json"));
    exit::code(app::run::execute(prepared, stop).await)
}

/// A first interrupt stops the load and lets in-flight requests finish; a second writes what
/// finished and exits at once.
fn exit_on_interrupts(handle: driver::StopHandle, results: std::path::PathBuf) {
    tokio::spawn(async move {
        wait_for_interrupt().await;
        eprintln!("\ninterrupted: no new requests; in-flight requests get 5 s to finish, then results are written (interrupt again to exit at once)");
        handle.stop();
        wait_for_interrupt().await;
        // What finished is written first (a few seconds at most), then the process exits.
        let written = handle.write_now(Duration::from_secs(3)).await;
        eprintln!(
            "second interrupt: exiting now; {} holds {}",
            results.display(),
            if written {
                "every request that finished (status interrupted)"
            } else {
                "the last checkpoint"
            }
        );
        std::process::exit(exit::code(Outcome::Interrupted));
    });
}

/// The results files named by merge's arguments: a file as given; a folder stands for the
/// `results.json` files in it and in its immediate subfolders (one per worker).
fn results_paths(arguments: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>, String> {
    let mut paths = Vec::new();
    for argument in arguments {
        if !argument.is_dir() {
            paths.push(argument.clone());
            continue;
        }
        let entries = std::fs::read_dir(argument)
            .map_err(|e| format!("{}: cannot list folder: {e}", argument.display()))?;
        let mut found: Vec<std::path::PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("results.json"))
            .chain(std::iter::once(argument.join("results.json")))
            .filter(|path| path.is_file())
            .collect();
        if found.is_empty() {
            return Err(format!(
                "{}: no results.json in this folder or its subfolders",
                argument.display()
            ));
        }
        found.sort();
        paths.extend(found);
    }
    Ok(paths)
}

fn audit_command(args: AuditArgs) -> i32 {
    let table_text = match &args.pricing {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!(
                    "error: {}: cannot read pricing table: {error}",
                    path.display()
                );
                return exit::code(Outcome::BadInput);
            }
        },
        None => drover::cost::DEFAULT_TABLE.to_string(),
    };
    let shown = args.pricing.as_ref().map_or_else(
        || drover::cost::DEFAULT_TABLE_NAME.to_string(),
        |p| p.display().to_string(),
    );
    let table: drover::cost::PricingTable = match toml::from_str(&table_text) {
        Ok(table) => table,
        Err(error) => {
            let (line, column) = error.span().map_or((1, 1), |span| {
                drover::scenario::line_col(&table_text, span.start)
            });
            eprintln!("error: {shown}:{line}:{column}: {}", error.message().trim());
            return exit::code(Outcome::BadInput);
        }
    };
    for (model, price) in &table.models {
        if let Some(problem) = price.problem() {
            eprintln!("error: {shown}: model \"{model}\": {problem}");
            return exit::code(Outcome::BadInput);
        }
    }
    let file = match std::fs::File::open(&args.log) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("error: {}: cannot read log: {error}", args.log.display());
            return exit::code(Outcome::BadInput);
        }
    };
    let threshold_ms = args.batch_threshold.as_secs_f64() * 1000.0;
    let options = drover::app::audit::AuditOptions {
        batch_threshold_ms: threshold_ms,
        mapping: args.mappings.into_iter().collect(),
        log_days: args.log_days,
        currencies: drover::cost::Currencies {
            reporting: args.currency.unwrap_or_else(|| table.currency.clone()),
            rates: args.exchange_rates.into_iter().collect(),
        },
        table,
    };
    if let Err(error) = options.currencies.rate(&options.table.currency) {
        eprintln!("error: {error}");
        return exit::code(Outcome::BadInput);
    }
    if options
        .log_days
        .is_some_and(|d| !(d.is_finite() && d > 0.0))
    {
        eprintln!("error: --log-days must be > 0");
        return exit::code(Outcome::BadInput);
    }
    match drover::app::audit::audit(std::io::BufReader::new(file), &options) {
        Ok(report) => {
            println!("audit of {} (prices: {shown})", args.log.display());
            print!("{}", report.render(threshold_ms));
            exit::code(Outcome::Ok)
        }
        Err(error) => {
            eprintln!("error: {}: {error}", args.log.display());
            exit::code(Outcome::BadInput)
        }
    }
}

fn merge_command(args: MergeArgs) -> i32 {
    let paths = match results_paths(&args.results) {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::code(Outcome::BadInput);
        }
    };
    let mut inputs = Vec::new();
    for path in &paths {
        match report::read_results(path) {
            Ok(results) => inputs.push(drover::app::merge::MergeInput {
                source: path.display().to_string(),
                results,
            }),
            Err(error) => {
                eprintln!("error: {error}");
                return exit::code(Outcome::BadInput);
            }
        }
    }
    let merged = match drover::app::merge::merge(inputs) {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("error: {error}");
            return exit::code(Outcome::BadInput);
        }
    };
    let text = serde_json::to_string_pretty(&merged).expect("results always serialize");
    if let Err(error) = report::json::write_atomically(&args.output, text.as_bytes()) {
        eprintln!("error: {error}");
        return exit::code(Outcome::RunFailed);
    }
    print!("{}", report::terminal::summary(&merged));
    println!("merged results: {}", args.output.display());
    let missing = merged.merged.as_ref().map_or(0, |m| m.missing.len());
    if args.require_all && missing > 0 {
        eprintln!("error: {missing} shard(s) missing and --require-all was given");
        return exit::code(Outcome::RunFailed);
    }
    // The verdict of the whole run, as a single run would give it.
    if merged.slo.as_ref().is_some_and(|slo| slo.failed()) {
        return exit::code(Outcome::SloFailed);
    }
    exit::code(Outcome::Ok)
}

fn compare_command(args: CompareArgs) -> i32 {
    use drover::compare::baseline::{self, CompareOptions, Threshold};
    if !(0.5..=0.9999).contains(&args.confidence) {
        eprintln!(
            "error: --confidence must be between 0.5 and 0.9999 (got {})",
            args.confidence
        );
        return exit::code(Outcome::BadInput);
    }
    let mut options = CompareOptions {
        confidence: args.confidence,
        ..CompareOptions::default()
    };
    for flag in &args.thresholds {
        let Some((name, value)) = flag.split_once('=') else {
            eprintln!(
                "error: --threshold {flag}: write NAME=VALUE, e.g. ttft.p99=20% or latency=5ms"
            );
            return exit::code(Outcome::BadInput);
        };
        if let Err(error) = drover::compare::baseline::check_threshold_name(name.trim()) {
            eprintln!("error: --threshold {flag}: {error}");
            return exit::code(Outcome::BadInput);
        }
        match Threshold::parse(value) {
            Ok(threshold) => {
                options
                    .thresholds
                    .insert(name.trim().to_string(), threshold);
            }
            Err(error) => {
                eprintln!("error: --threshold {flag}: {error}");
                return exit::code(Outcome::BadInput);
            }
        }
    }
    let mut runs = Vec::new();
    for path in [&args.baseline, &args.current] {
        match report::read_results(path) {
            Ok(results) => runs.push(results),
            Err(error) => {
                eprintln!("error: {error}");
                return exit::code(Outcome::BadInput);
            }
        }
    }
    let comparison = match baseline::compare(&runs[0], &runs[1], &options) {
        Ok(comparison) => comparison,
        Err(error) => {
            eprintln!(
                "error: cannot compare {} with {}: {error}",
                args.current.display(),
                args.baseline.display()
            );
            return exit::code(Outcome::BadInput);
        }
    };
    print!("{}", baseline::terminal(&comparison));
    if let Some(path) = &args.markdown {
        // Appended: $GITHUB_STEP_SUMMARY collects every step's summary in one file.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut file| {
                std::io::Write::write_all(&mut file, baseline::markdown(&comparison).as_bytes())
            });
        if let Err(error) = written {
            eprintln!("error: cannot write {}: {error}", path.display());
            return exit::code(Outcome::RunFailed);
        }
    }
    if let Some(path) = &args.junit {
        if let Err(error) =
            report::json::write_atomically(path, baseline::junit(&comparison).as_bytes())
        {
            eprintln!("error: {error}");
            return exit::code(Outcome::RunFailed);
        }
    }
    if comparison.regressed() {
        exit::code(Outcome::Regressed)
    } else {
        exit::code(Outcome::Ok)
    }
}

fn report_command(args: ReportArgs) -> i32 {
    if !args.labels.is_empty() && args.labels.len() != args.results.len() {
        eprintln!(
            "error: {} --label given for {} results files; give one per file, in order, or none",
            args.labels.len(),
            args.results.len()
        );
        return exit::code(Outcome::BadInput);
    }
    let mut inputs = Vec::new();
    for (i, path) in args.results.iter().enumerate() {
        let results = match report::read_results(path) {
            Ok(results) => results,
            Err(error) => {
                eprintln!("error: {error}");
                return exit::code(Outcome::BadInput);
            }
        };
        let label = args
            .labels
            .get(i)
            .cloned()
            .unwrap_or_else(|| default_label(path, &results));
        inputs.push(report::ReportInput { label, results });
    }
    // Labels name the lines on every chart: keep them distinct.
    for i in 1..inputs.len() {
        let taken = inputs[..i]
            .iter()
            .filter(|p| p.label == inputs[i].label)
            .count();
        if taken > 0 {
            inputs[i].label = format!("{} #{}", inputs[i].label, taken + 1);
        }
    }
    let out = args.out.unwrap_or_else(|| {
        let stamp = report::json::utc_stamp(std::time::SystemTime::now());
        std::path::PathBuf::from("reports").join(format!("report-{stamp}"))
    });
    match report::write_report(
        &out,
        &report::Report {
            inputs,
            rollout: None,
        },
    ) {
        Ok(written) => {
            println!(
                "report: {} ({} charts, summary.md)",
                written.dir.join("report.html").display(),
                written.charts.len()
            );
            exit::code(Outcome::Ok)
        }
        Err(error) => {
            eprintln!("error: {error}");
            exit::code(Outcome::RunFailed)
        }
    }
}

/// A results file's label: its folder's name for `…/results.json`, else its file stem.
fn default_label(path: &std::path::Path, results: &drover::results::RunResults) -> String {
    let from_path = if path.file_name().is_some_and(|n| n == "results.json") {
        path.parent().and_then(|p| p.file_name())
    } else {
        path.file_stem()
    };
    from_path
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| results.scenario.name.clone())
}

/// Resolves on Ctrl-C, or SIGTERM on Unix (how Kubernetes and CI stop a process).
async fn wait_for_interrupt() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

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

async fn serve_mock(args: MockArgs) -> i32 {
    let required_key = match &args.api_key_env {
        Some(var) => match std::env::var(var) {
            Ok(value) if !value.is_empty() => Some(value),
            _ => {
                eprintln!("error: --api-key-env {var}: environment variable {var} is not set");
                return exit::code(Outcome::BadInput);
            }
        },
        None => None,
    };
    let config = MockConfig {
        ttft: latency(args.ttft, args.ttft_spread),
        itl: latency(args.itl, args.itl_spread),
        output_tokens: args.output_tokens,
        prelude: args.prelude,
        seed: args.seed,
        faults: FaultPlan {
            probabilities: args.faults.clone(),
            stall_for: args.stall_for,
            drip_every: args.drip_every,
            ..FaultPlan::default()
        },
        batch: drover::mock::BatchMockConfig {
            processing_time: args.batch_processing_time,
            failure_rate: args.batch_failure_rate,
        },
        batch_mode_speedup: args.batch_mode_speedup,
        early_stop: args.early_stop,
        cache_ttft: args.cache_ttft.map(LatencyModel::Fixed),
        decode_slots: args.decode_slots,
        ..MockConfig::default()
    };
    if !(args.batch_mode_speedup.is_finite() && args.batch_mode_speedup > 0.0) {
        eprintln!("error: --batch-mode-speedup must be > 0");
        return exit::code(Outcome::BadInput);
    }
    let total: f64 = args.faults.iter().map(|(_, p)| p).sum();
    if total > 1.0 + 1e-9 {
        eprintln!("error: --fault probabilities add up to {total}, more than 1");
        return exit::code(Outcome::BadInput);
    }
    let options = MockOptions {
        addr: args.addr,
        required_key,
        ..MockOptions::default()
    };
    let handle = match mock::start(config, options) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.addr);
            return exit::code(Outcome::RunFailed);
        }
    };
    println!("drover mock listening on {}", handle.base_url());
    let _ = std::io::stdout().flush();
    wait_for_interrupt().await;
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
    exit::code(Outcome::Ok)
}

/// `drover calibrate`: the harness floor and the mock's precision on this machine.
async fn calibrate_command(args: CalibrateArgs) -> i32 {
    if args.duration < Duration::from_millis(100) {
        eprintln!("error: --duration must be at least 100ms");
        return exit::code(Outcome::BadInput);
    }
    let options = drover::app::calibrate::CalibrateOptions {
        rates: args.rates,
        duration: args.duration,
        streams: args.streams.into_iter().filter(|s| *s > 0).collect(),
        ..Default::default()
    };
    println!(
        "calibrating: {} rate(s) for {} each, then the mock at {} concurrency level(s)",
        options.rates.len(),
        humantime::format_duration(options.duration),
        options.streams.len()
    );
    match drover::app::calibrate::calibrate(&options).await {
        Ok(calibration) => {
            print!("{}", calibration.describe());
            0
        }
        Err(error) => {
            eprintln!("error: {error}");
            exit::code(Outcome::RunFailed)
        }
    }
}
