//! The binary's commands: each parses its arguments (see [`args`]), calls a library workflow and
//! maps how it ended to an exit code ([`exit`], the one table of codes).

pub mod args;
pub mod exit;

use std::io::Write as _;
use std::time::Duration;

use drover::app::{self, Outcome};
use drover::driver::{self, StopSignal};

use args::{
    AuditArgs, CalibrateArgs, Cli, Command, CompareArgs, HistoryCommand, MergeArgs, MockArgs,
    ReportArgs, RunArgs, ValidateArgs,
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
        Command::Completions(args) => completions(args.shell),
        Command::Schema => print_schema(),
        Command::History(HistoryCommand::Add(args)) => {
            exit::code(app::history::add(app::history::AddRequest {
                results: args.results,
                db: args.db,
                provenance: app::history::provenance_from_env(drover::history::Provenance {
                    commit: args.commit,
                    branch: args.branch,
                    label: args.label,
                }),
            }))
        }
        Command::History(HistoryCommand::Report(args)) => {
            exit::code(app::history::report(app::history::ReportRequest {
                db: args.db,
                scenario: args.scenario,
                last: args.last as usize,
                threshold: args.drift,
                out: args.out,
                fail_on_drift: args.fail_on_drift,
            }))
        }
        Command::Man(args) => manual_pages(args.out),
    }
}

/// `drover schema`: the results document's JSON Schema on stdout.
fn print_schema() -> i32 {
    let text =
        serde_json::to_string_pretty(&drover::results::json_schema()).expect("a schema serializes");
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}") {
        Ok(()) => exit::code(Outcome::Ok),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => exit::code(Outcome::Ok),
        Err(error) => {
            eprintln!("error: cannot write the schema: {error}");
            exit::code(Outcome::RunFailed)
        }
    }
}

/// `drover completions SHELL`: the shell's completion script, generated from the arguments.
fn completions(shell: clap_complete::Shell) -> i32 {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut command, "drover", &mut std::io::stdout());
    exit::code(Outcome::Ok)
}

/// `drover man`: the manual page on stdout, or with `--out` a page per command in a folder,
/// generated from the arguments.
fn manual_pages(out: Option<std::path::PathBuf>) -> i32 {
    let command = <Cli as clap::CommandFactory>::command();
    let written = match &out {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout()),
        Some(dir) => {
            std::fs::create_dir_all(dir).and_then(|()| clap_mangen::generate_to(command, dir))
        }
    };
    match written {
        Ok(()) => exit::code(Outcome::Ok),
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => exit::code(Outcome::Ok),
        Err(error) => {
            let place = out.map_or("stdout".into(), |dir| dir.display().to_string());
            eprintln!("error: cannot write the manual pages to {place}: {error}");
            exit::code(Outcome::RunFailed)
        }
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

async fn run(args: RunArgs) -> i32 {
    let overrides = match overrides(args.sets) {
        Ok(overrides) => overrides,
        Err(code) => return code,
    };
    let (scenario, text) = match args.scenario {
        Some(file) => (file, None),
        None => (
            std::path::PathBuf::from("quick.toml"),
            Some(quick_run(&args.quick).to_toml()),
        ),
    };
    let request = app::run::RunRequest {
        scenario,
        text,
        out: args.out,
        progress: !args.no_progress,
        color: args.color.into(),
        preflight: !args.no_preflight,
        checkpoint_every: args.checkpoint_every,
        export_requests: args.export_requests,
        csv: args.csv,
        shard: args.shard,
        budget: args.budget,
        allow_over_budget: args.allow_over_budget,
        allow_unpriced: args.allow_unpriced,
        start_at: args.start_at,
        overrides,
        metrics_addr: args.metrics_addr,
        metrics_linger: args.metrics_linger,
    };
    if args.print_scenario {
        return exit::code(app::run::print_scenario(&request));
    }
    let prepared = match app::run::prepare(request) {
        Ok(prepared) => prepared,
        Err(outcome) => return exit::code(outcome),
    };
    let stop = StopSignal::default();
    exit_on_interrupts(stop.handle(), prepared.dir.join("results.json"));
    let outcome = app::run::execute(prepared, stop).await;
    if args.exit_zero_on_verdict && exit::is_verdict(outcome) {
        let (code, meaning) = exit::entry(outcome);
        eprintln!(
            "exit code {code} ({meaning}) withheld by --exit-zero-on-verdict: the verdict is in results.json"
        );
        return exit::code(Outcome::Ok);
    }
    exit::code(outcome)
}

/// The quick run the flags describe (clap has checked that --url or --mock is there, with
/// --model for a URL).
fn quick_run(args: &args::QuickArgs) -> drover::scenario::quick::QuickRun {
    use drover::scenario::quick::{self, QuickLength, QuickLoad, QuickRun, QuickTarget};
    // clap checked each against the same list; this finds the list's own &'static str.
    let pick = |list: &[&'static str], value: &Option<String>| {
        value
            .as_deref()
            .and_then(|v| list.iter().copied().find(|known| *known == v))
    };
    let target = match &args.url {
        Some(url) => QuickTarget::Url {
            base_url: url.clone(),
            key_env: args.key_env.clone(),
        },
        None => QuickTarget::Mock,
    };
    let load = match (args.rate, args.users) {
        (Some(per_second), _) => QuickLoad::Rate {
            per_second,
            arrival: pick(&quick::ARRIVALS, &args.arrival).unwrap_or("poisson"),
        },
        (None, users) => QuickLoad::Users(users.unwrap_or(1)),
    };
    let length = match (&args.duration, args.requests) {
        (_, Some(requests)) => QuickLength::Requests(requests),
        (Some(duration), None) => QuickLength::Duration(duration.clone()),
        (None, None) => QuickLength::Duration("10s".into()),
    };
    QuickRun {
        target,
        model: args.model.clone().unwrap_or_else(|| "mock-llm".into()),
        api: pick(&quick::APIS, &args.api),
        mode: pick(&quick::MODES, &args.mode),
        load,
        length,
        input_tokens: args.input_tokens,
        max_tokens: args.max_tokens,
        seed: args.seed,
    }
}

/// A first interrupt stops the load and lets in-flight requests finish; a second writes what
/// finished and exits at once.
fn exit_on_interrupts(handle: driver::StopHandle, results: std::path::PathBuf) {
    tokio::spawn(async move {
        app::wait_for_interrupt().await;
        eprintln!("\ninterrupted: no new requests; in-flight requests get 5 s to finish, then results are written (interrupt again to exit at once)");
        app::progress::other_output_written();
        handle.stop();
        app::wait_for_interrupt().await;
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

fn validate(args: ValidateArgs) -> i32 {
    match overrides(args.sets) {
        Ok(overrides) => exit::code(app::run::validate(&args.scenario, &overrides)),
        Err(code) => code,
    }
}

/// The `DROVER_SET_*` overrides of the environment, then the `--set` flags (so a flag wins).
fn overrides(
    sets: Vec<drover::scenario::overrides::Override>,
) -> Result<Vec<drover::scenario::overrides::Override>, i32> {
    use drover::scenario::overrides::{Override, ENV_PREFIX};
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let Some(value) = value.to_str() else {
            eprintln!("error: {name}: its value is not UTF-8");
            return Err(exit::code(Outcome::BadInput));
        };
        vars.push((name.to_string(), value.to_string()));
    }
    let mut overrides = Override::from_env(vars).map_err(|message| {
        eprintln!("error: {message}");
        exit::code(Outcome::BadInput)
    })?;
    overrides.extend(sets);
    Ok(overrides)
}

fn audit_command(args: AuditArgs) -> i32 {
    exit::code(app::audit::command(app::audit::AuditRequest {
        log: args.log,
        batch_threshold: args.batch_threshold,
        mappings: args.mappings,
        log_days: args.log_days,
        pricing: args.pricing,
        currency: args.currency,
        exchange_rates: args.exchange_rates,
    }))
}

fn merge_command(args: MergeArgs) -> i32 {
    exit::code(app::merge::command(app::merge::MergeRequest {
        results: args.results,
        output: args.output,
        require_all: args.require_all,
        max_start_skew: args.max_start_skew,
        force: args.force,
        wait: args.wait,
        report: args.report,
        archive: args.archive,
    }))
}

fn compare_command(args: CompareArgs) -> i32 {
    exit::code(app::compare::command(app::compare::CompareRequest {
        baseline: args.baseline,
        current: args.current,
        thresholds: args.thresholds,
        confidence: args.confidence,
        markdown: args.markdown,
        junit: args.junit,
    }))
}

fn report_command(args: ReportArgs) -> i32 {
    exit::code(app::report::command(app::report::ReportRequest {
        results: args.results,
        out: args.out,
        labels: args.labels,
        csv: args.csv,
    }))
}

async fn serve_mock(args: MockArgs) -> i32 {
    exit::code(
        app::mock::serve(app::mock::MockRequest {
            addr: args.addr,
            ttft: args.ttft,
            ttft_spread: args.ttft_spread,
            itl: args.itl,
            itl_spread: args.itl_spread,
            output_tokens: args.output_tokens,
            reasoning_tokens: args.reasoning_tokens,
            prelude: args.prelude,
            api_key_env: args.api_key_env,
            seed: args.seed,
            faults: args.faults,
            stall_for: args.stall_for,
            drip_every: args.drip_every,
            batch_processing_time: args.batch_processing_time,
            batch_failure_rate: args.batch_failure_rate,
            batch_mode_speedup: args.batch_mode_speedup,
            early_stop: args.early_stop,
            cache_ttft: args.cache_ttft,
            decode_slots: args.decode_slots,
            max_concurrent_streams: args.max_concurrent_streams,
        })
        .await,
    )
}

async fn calibrate_command(args: CalibrateArgs) -> i32 {
    let options = app::calibrate::CalibrateOptions {
        rates: args.rates,
        duration: args.duration,
        streams: args.streams.into_iter().filter(|s| *s > 0).collect(),
        ..Default::default()
    };
    exit::code(app::calibrate::command(options).await)
}
