//! What each subcommand does, with exit codes:
//! 0 ok, 1 internal error, 2 bad input, 3 run could not complete, 4 preflight failed,
//! 5 refused by the spend guard, 6 stopped at a budget, 7 SLOs failed, 8 regressed against a
//! baseline, 9 a migration's gate failed (rollback), 10 degraded (drover itself failed on some
//! requests, or its books did not balance), 130 interrupted.

use std::io::Write;
use std::time::Duration;

use drover::driver::{self, RunOptions, StopSignal};
use drover::mock::{self, FaultPlan, LatencyModel, MockConfig, MockOptions};
use drover::report;
use std::sync::Arc;

use drover::results::{RunResults, RunStatus};
use drover::scenario::{self, Endpoint, LoadShape, RunPlan, ScenarioError};

use crate::cli::{
    AuditArgs, CalibrateArgs, Cli, Command, CompareArgs, MergeArgs, MockArgs, ReportArgs, RunArgs,
    ValidateArgs,
};

pub const EXIT_OK: i32 = 0;
pub const EXIT_INTERNAL: i32 = 1;
pub const EXIT_BAD_INPUT: i32 = 2;
pub const EXIT_RUN_FAILED: i32 = 3;
pub const EXIT_PREFLIGHT: i32 = 4;
pub const EXIT_OVER_BUDGET: i32 = 5;
pub const EXIT_BUDGET_EXHAUSTED: i32 = 6;
pub const EXIT_SLO_FAILED: i32 = 7;
pub const EXIT_REGRESSED: i32 = 8;
pub const EXIT_ROLLBACK: i32 = 9;
pub const EXIT_DEGRADED: i32 = 10;
pub const EXIT_INSUFFICIENT: i32 = 11;
pub const EXIT_INTERRUPTED: i32 = 130;

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
            EXIT_INTERNAL
        }
    }
}

fn print_scenario_error(error: &ScenarioError) {
    for line in error.to_string().lines() {
        eprintln!("error: {line}");
    }
}

fn load_plan(path: &std::path::Path) -> Result<RunPlan, i32> {
    scenario::load(path).map_err(|error| {
        print_scenario_error(&error);
        EXIT_BAD_INPUT
    })
}

/// A one-paragraph description of what a plan will do.
fn describe(plan: &RunPlan) -> String {
    let mut text = format!(
        "scenario \"{}\": {} target(s) [{}], {} class(es) [{}]\n",
        plan.name,
        plan.targets.len(),
        plan.targets
            .iter()
            .map(|t| match &t.endpoint {
                Endpoint::Url(url) => format!("{} -> {url}", t.name),
                Endpoint::Mock(_) => format!("{} -> embedded mock", t.name),
            })
            .collect::<Vec<_>>()
            .join(", "),
        plan.classes.len(),
        plan.classes
            .iter()
            .map(|c| format!("{} (weight {})", c.name, c.weight))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for class in &plan.classes {
        text.push_str(&format!(
            "class {}: {}\n",
            class.name,
            drover::workload::describe_class(class)
        ));
    }
    let load = &plan.load;
    let bound = match (load.duration, load.requests) {
        (Some(d), Some(n)) => format!(
            "for {} or {n} requests, whichever comes first",
            humantime::format_duration(d)
        ),
        (Some(d), None) => format!("for {}", humantime::format_duration(d)),
        (None, Some(n)) => format!("for {n} requests"),
        (None, None) => String::new(),
    };
    let shape = match &load.shape {
        LoadShape::Open {
            arrival,
            stages,
            max_in_flight,
        } => {
            let whole = drover::shard::Shard::default();
            let expected = driver::expected_requests(load, whole)
                .filter(|n| n.is_finite())
                .unwrap_or(0.0);
            let cap = max_in_flight.map_or(String::new(), |c| format!(", at most {c} in flight"));
            let rates = stages
                .iter()
                .map(|s| {
                    if s.rate == s.end_rate {
                        format!("{} req/s", s.rate)
                    } else {
                        format!("{}→{} req/s", s.rate, s.end_rate)
                    }
                })
                .collect::<Vec<_>>()
                .join(", then ");
            let expected = if expected > 0.0 {
                format!(" (~{expected:.0} requests per target)")
            } else {
                String::new()
            };
            format!("open loop, {arrival:?} arrivals at {rates}{cap}{expected}")
        }
        LoadShape::Closed { users } => format!("closed loop, {users} concurrent users"),
        LoadShape::Trace {
            trace,
            speed,
            max_in_flight,
        } => {
            let cap = max_in_flight.map_or(String::new(), |c| format!(", at most {c} in flight"));
            format!(
                "trace replay of {} ({} requests over {} at {speed}x speed{cap})",
                trace.path.display(),
                trace.entries.len(),
                humantime::format_duration(Duration::from_millis(
                    trace.span(*speed).as_millis() as u64
                ))
            )
        }
    };
    text.push_str(&format!("load: {shape} {bound}"));
    let shard = plan.shard;
    if !shard.is_whole() {
        text.push_str(&format!(
            "\nshard {shard}: this worker sends 1 in {n} requests of the load above (global \
             indices {k}, {k}+{n}, …), with its share of users and in-flight cap and its own \
             dataset slice",
            n = shard.count,
            k = shard.index,
        ));
        if let LoadShape::Closed { users } = &load.shape {
            text.push_str(&format!(" ({users} users here)"));
        }
    }
    if !load.warmup.is_zero() {
        text.push_str(&format!(
            "; requests scheduled in the first {} are warm-up, not measured",
            humantime::format_duration(load.warmup)
        ));
    }
    if load.warmup_requests > 0 {
        text.push_str(&format!(
            "; the first {} requests are warm-up, not measured",
            load.warmup_requests
        ));
    }
    if let Some(sweep) = &plan.sweep {
        let values: Vec<String> = sweep.values.iter().map(|v| v.to_string()).collect();
        text.push_str(&format!(
            "\nsweep: {} in {} steps of {} ({}); the load above is replaced at each step",
            sweep.over.name(),
            values.len(),
            humantime::format_duration(sweep.step_duration),
            values.join(", ")
        ));
    }
    if let Some(migration) = &plan.migration {
        let phases: Vec<String> = migration
            .phases
            .iter()
            .enumerate()
            .map(|(index, phase)| {
                let growth = plan.phase_growth(index);
                let extended = if growth > 1.0 {
                    format!(", run {growth:.2}x for its gates' minimum samples")
                } else {
                    String::new()
                };
                let length = match (phase.duration, phase.requests) {
                    (Some(duration), _) => humantime::format_duration(duration).to_string(),
                    (None, Some(requests)) => format!("{requests} requests"),
                    (None, None) => "the load's length".into(),
                };
                format!(
                    "{} (share {:.0}%, mirror {:.0}%, {length}{extended})",
                    phase.name,
                    phase.share * 100.0,
                    phase.mirror * 100.0
                )
            })
            .collect();
        let short: Vec<String> = (0..migration.phases.len())
            .filter(|&index| plan.phase_growth_needed(index) > migration.extend_up_to)
            .map(|index| {
                format!(
                    "\nwarning: migration phase \"{}\" cannot decide its gates: their minimum samples need {:.1}x its length and extend_up_to allows {}; it will end insufficient unless the phase is longer, mirrors more, or its gates ask for less",
                    migration.phases[index].name,
                    plan.phase_growth_needed(index),
                    migration.extend_up_to
                )
            })
            .collect();
        text.push_str(&format!(
            "\nmigration: \"{}\" → \"{}\" in {} phase(s): {}; the load above runs in each phase for the phase's length",
            plan.targets[migration.primary].name,
            plan.targets[migration.candidate].name,
            phases.len(),
            phases.join(", ")
        ));
        text.push_str(&short.concat());
    }
    if let Some(slo) = &plan.slo {
        let assertions: Vec<&str> = slo.assertions.iter().map(|a| a.text.as_str()).collect();
        text.push_str(&format!(
            "\nslo: {} at {}% confidence{}",
            assertions.join(", "),
            slo.confidence * 100.0,
            if slo.fail_on_inconclusive {
                "; inconclusive fails the run"
            } else {
                ""
            }
        ));
        for warning in undecidable_assertions(plan, slo) {
            text.push_str(&format!("\nwarning: {warning}"));
        }
    }
    text
}

/// The measured requests per target the plan should give (warm-up left out), for a sweep its
/// smallest step: `None` when it cannot be told before the run (a closed-loop sweep, a
/// migration, a load bounded by time alone in a closed loop).
fn planned_measured_requests(plan: &RunPlan) -> Option<f64> {
    if plan.migration.is_some() {
        return None;
    }
    let load = match &plan.sweep {
        Some(sweep) if sweep.over == scenario::SweepOver::Rate => {
            let lowest = sweep.values.iter().copied().fold(f64::INFINITY, f64::min);
            plan.at_sweep_step(sweep.over, lowest, sweep.step_duration)
                .load
        }
        Some(_) => return None,
        None => plan.load.clone(),
    };
    let planned = driver::expected_requests(&load, plan.shard)?;
    let warm_share = match load.duration {
        Some(duration) if !duration.is_zero() && !load.warmup.is_zero() => {
            (load.warmup.as_secs_f64() / duration.as_secs_f64()).min(1.0)
        }
        _ => 0.0,
    };
    Some((planned * (1.0 - warm_share) - load.warmup_requests as f64).max(0.0))
}

/// SLO assertions that could not pass on the planned sample even if every request were as good
/// as it can be: each says how many requests a pass needs (a scoped assertion gets its class's
/// share of the requests).
fn undecidable_assertions(plan: &RunPlan, slo: &drover::compare::SloPlan) -> Vec<String> {
    let Some(planned) = planned_measured_requests(plan) else {
        return Vec::new();
    };
    let total_weight: f64 = plan.classes.iter().map(|c| c.weight).sum();
    let mut warnings = Vec::new();
    for assertion in &slo.assertions {
        let share = match &assertion.class {
            Some(name) => plan
                .classes
                .iter()
                .find(|c| &c.name == name)
                .map_or(1.0, |c| c.weight / total_weight.max(f64::MIN_POSITIVE)),
            None => 1.0,
        };
        let expected = (planned * share).floor() as u64;
        match assertion.samples_to_pass(slo.confidence) {
            Some(needed) if needed <= expected => {}
            Some(needed) => warnings.push(format!(
                "slo \"{}\" cannot pass on the ~{expected} measured requests planned{}: a pass at {}% confidence needs at least {needed}; plan more requests or loosen the assertion",
                assertion.text,
                if plan.sweep.is_some() { " for the smallest sweep step" } else { "" },
                slo.confidence * 100.0
            )),
            None => warnings.push(format!(
                "slo \"{}\" cannot pass on any number of requests",
                assertion.text
            )),
        }
    }
    warnings
}

fn validate(args: ValidateArgs) -> i32 {
    match load_plan(&args.scenario) {
        Ok(plan) => {
            println!("ok: {}", args.scenario.display());
            println!("{}", describe(&plan));
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
            EXIT_OK
        }
        Err(code) => code,
    }
}

async fn run(args: RunArgs) -> i32 {
    let plan = match load_plan(&args.scenario) {
        Ok(plan) => plan,
        Err(code) => return code,
    };
    let shard = match args.shard {
        Some(shard) => Some(shard),
        None => match drover::shard::Shard::from_env(&|name| std::env::var(name).ok()) {
            Ok(shard) => shard,
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_BAD_INPUT;
            }
        },
    };
    let mut plan = match drover::shard::apply(plan, shard.unwrap_or_default()) {
        Ok(plan) => plan,
        Err(error) => {
            eprintln!(
                "error: {}: --shard {}: {error}",
                args.scenario.display(),
                shard.unwrap_or_default()
            );
            return EXIT_BAD_INPUT;
        }
    };
    if !plan.shard.is_whole() && (plan.migration.is_some() || plan.sweep.is_some()) {
        eprintln!(
            "error: {}: --shard {}: a [migration] or [sweep] decides after each phase or step, so it runs on one machine: drop --shard",
            args.scenario.display(),
            plan.shard
        );
        return EXIT_BAD_INPUT;
    }
    plan.start_at = args.start_at;
    if let Some(budget) = args.budget {
        if !(budget.is_finite() && budget > 0.0) {
            eprintln!("error: --budget must be > 0 (got {budget})");
            return EXIT_BAD_INPUT;
        }
        plan.cost.budget = Some(budget);
    }

    eprintln!("{}", describe(&plan));
    if let Err(message) = drover::resources::check_fds(&plan) {
        eprintln!("error: {}: {message}", args.scenario.display());
        return EXIT_BAD_INPUT;
    }
    if let Err(code) = spend_check(&plan, &args) {
        return code;
    }
    // The folder is named when the run starts; checkpoints and the final results go there.
    let stamp = report::json::utc_stamp(plan.start_at.unwrap_or_else(std::time::SystemTime::now));
    let mut folder = report::json::folder_name(&plan.name, &stamp);
    if !plan.shard.is_whole() {
        folder.push_str(&format!(
            "-shard-{}-of-{}",
            plan.shard.index, plan.shard.count
        ));
    }
    let dir = args.out.join(folder);
    let out_existed = args.out.exists();
    // Where the results go is checked before anything is sent (the preflight request too): a
    // run whose measurements could not be written must not spend a request.
    if let Err(error) = check_output(&plan, &dir) {
        eprintln!(
            "error: cannot write the results to {}: {error}; nothing was sent",
            dir.display()
        );
        return EXIT_RUN_FAILED;
    }
    if args.export_requests && plan.sweep.is_some() {
        eprintln!(
            "error: {}: --export-requests does not export a [sweep]'s steps yet: run a step's load as its own scenario to export its requests",
            args.scenario.display()
        );
        return EXIT_BAD_INPUT;
    }
    let request_log = if args.export_requests && plan.migration.is_none() {
        let path = dir.join("requests.jsonl");
        let created = std::fs::create_dir_all(&dir).and_then(|()| {
            drover::export::RequestLog::create(
                &path,
                plan.targets.iter().map(|t| t.name.clone()).collect(),
                plan.classes.iter().map(|c| c.name.clone()).collect(),
            )
        });
        match created {
            Ok(log) => Some(Arc::new(std::sync::Mutex::new(log))),
            Err(error) => {
                eprintln!("error: cannot create {}: {error}", path.display());
                return EXIT_RUN_FAILED;
            }
        }
    } else {
        None
    };
    for target in plan.targets.iter().filter(|t| t.tls.insecure) {
        eprintln!(
            "warning: target \"{}\": TLS certificate verification is OFF (insecure_skip_verify)",
            target.name
        );
    }
    let preflight_warnings = if args.no_preflight {
        Vec::new()
    } else {
        match driver::preflight(&plan).await {
            Ok(warnings) => {
                for warning in &warnings {
                    eprintln!("warning: {warning}");
                }
                warnings
            }
            Err(error) => {
                eprintln!("error: preflight: {error}");
                // Nothing was measured: the folder made for the run goes again.
                for file in ["results.json", "requests.jsonl"] {
                    let _ = std::fs::remove_file(dir.join(file));
                }
                let _ = std::fs::remove_dir(&dir);
                if !out_existed {
                    let _ = std::fs::remove_dir(&args.out);
                }
                return EXIT_PREFLIGHT;
            }
        }
    };
    if let Some(start_at) = plan.start_at {
        let now = std::time::SystemTime::now();
        match start_at.duration_since(now) {
            Ok(wait) => eprintln!(
                "waiting {:.1} s for --start-at {}",
                wait.as_secs_f64(),
                humantime::format_rfc3339_millis(start_at)
            ),
            Err(late) => eprintln!(
                "warning: --start-at {} was {:.1} s ago: starting now, not in step with other shards",
                humantime::format_rfc3339_millis(start_at),
                late.duration().as_secs_f64()
            ),
        }
    }
    let stop = StopSignal::default();
    let handle = stop.handle();
    let checkpoint_path = dir.join("results.json");
    tokio::spawn(async move {
        wait_for_interrupt().await;
        eprintln!("\ninterrupted: no new requests; in-flight requests get 5 s to finish, then results are written (interrupt again to exit at once)");
        handle.stop();
        wait_for_interrupt().await;
        // What finished is written first (a few seconds at most), then the process exits.
        let written = handle.write_now(Duration::from_secs(3)).await;
        eprintln!(
            "second interrupt: exiting now; {} holds {}",
            checkpoint_path.display(),
            if written {
                "every request that finished (status interrupted)"
            } else {
                "the last checkpoint"
            }
        );
        std::process::exit(EXIT_INTERRUPTED);
    });
    if plan.sweep.is_some() {
        return run_sweep(&plan, &dir, stop).await;
    }
    if plan.migration.is_some() {
        return run_migration(&plan, &dir, stop, &args).await;
    }
    let checkpoint_dir = dir.clone();
    let sink: driver::CheckpointSink = Arc::new(move |snapshot: &RunResults| {
        if let Err(error) = report::json::write_results(&checkpoint_dir, snapshot) {
            eprintln!("warning: checkpoint not written: {error}");
        }
    });
    let options = RunOptions {
        progress: !args.no_progress,
        checkpoint: Some(sink),
        checkpoint_every: args.checkpoint_every,
        request_log,
        ..RunOptions::default()
    };
    let mut results = match driver::run(&plan, options, stop).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_RUN_FAILED;
        }
    };
    results.warnings.extend(preflight_warnings);
    if let Some(slo) = &plan.slo {
        results.slo = Some(drover::compare::slo::evaluate(slo, &results));
    }
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "{}", report::terminal::summary(&results));
    // The measurements go to disk first; the rendered report comes after.
    match report::json::write_results(&dir, &results) {
        Ok(path) => {
            let _ = writeln!(stdout, "results: {}", path.display());
        }
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_RUN_FAILED;
        }
    }
    let rendered = report::write_report(
        &dir,
        &report::Report {
            inputs: vec![report::ReportInput {
                label: results.scenario.name.clone(),
                results: results.clone(),
            }],
            rollout: None,
        },
    );
    match &rendered {
        Ok(written) => {
            let _ = writeln!(
                stdout,
                "report: {} ({} charts, summary.md)",
                written.dir.join("report.html").display(),
                written.charts.len()
            );
        }
        Err(error) => eprintln!("error: could not render the report: {error}"),
    }
    let _ = stdout.flush();
    if rendered.is_err() {
        return EXIT_RUN_FAILED;
    }
    if results.status == RunStatus::Interrupted {
        return EXIT_INTERRUPTED;
    }
    if results.status == RunStatus::BudgetExhausted {
        eprintln!("stopped at the budget: see the spend line above");
        return EXIT_BUDGET_EXHAUSTED;
    }
    if results.status == RunStatus::Degraded {
        eprintln!(
            "error: the run is degraded: drover itself failed on some requests (see the warnings above); its figures are not the endpoint's alone"
        );
        return EXIT_DEGRADED;
    }
    let failed_target = results
        .targets
        .iter()
        .find(|t| t.summary.requests.sent == 0 || t.summary.requests.succeeded == 0);
    if let Some(target) = failed_target {
        eprintln!(
            "error: target \"{}\" completed no request successfully ({} sent); see the errors above",
            target.name, target.summary.requests.sent
        );
        return EXIT_RUN_FAILED;
    }
    if let Some(slo) = results.slo.as_ref().filter(|slo| slo.failed()) {
        eprintln!(
            "SLO verdict: {}; see the SLO lines above",
            slo.verdict.name()
        );
        return EXIT_SLO_FAILED;
    }
    EXIT_OK
}

/// Runs a scenario's `[sweep]`: one run per load value, each with its results folder, then
/// `sweep.json` and the knee.
async fn run_sweep(
    plan: &drover::scenario::RunPlan,
    dir: &std::path::Path,
    stop: StopSignal,
) -> i32 {
    let over = plan.sweep.as_ref().map_or("load", |s| s.over.name());
    let write = |folder: &std::path::Path, results: &RunResults| {
        report::json::write_results(folder, results).map_err(|e| e.to_string())
    };
    let mut progress = |step: &drover::sweep::SweepStep| {
        println!("{}", drover::sweep::step_line(over, step));
    };
    let results = match drover::sweep::run(plan, dir, stop, &write, &mut progress).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: sweep: {error}");
            return EXIT_RUN_FAILED;
        }
    };
    println!("{}", drover::sweep::knee_line(&results));
    let path = dir.join("sweep.json");
    if let Err(error) = std::fs::create_dir_all(dir) {
        eprintln!("error: cannot create {}: {error}", dir.display());
        return EXIT_RUN_FAILED;
    }
    let text = serde_json::to_string_pretty(&results).expect("sweep results serialize");
    if let Err(error) = report::json::write_atomically(&path, text.as_bytes()) {
        eprintln!("error: {error}");
        return EXIT_RUN_FAILED;
    }
    println!("sweep: {}", path.display());
    if results.interrupted {
        EXIT_INTERRUPTED
    } else if results.budget_exhausted {
        eprintln!(
            "warning: the budget, which covers the whole sweep, was reached after {} of {} steps: later steps did not run",
            results.steps.len(),
            plan.sweep.as_ref().map_or(0, |s| s.values.len())
        );
        EXIT_BUDGET_EXHAUSTED
    } else if !results.degraded_steps.is_empty() {
        eprintln!(
            "error: the sweep is degraded: drover itself failed on some requests of step(s) {:?} (see their results' warnings); the knee is not the endpoint's alone",
            results.degraded_steps
        );
        EXIT_DEGRADED
    } else if results.knee.is_none() {
        EXIT_SLO_FAILED
    } else {
        EXIT_OK
    }
}

/// Runs a scenario's `[migration]`: one run per phase (each with its results and report), the
/// gates after each, then `migration.json`, a report over every phase, and the verdict.
async fn run_migration(
    plan: &drover::scenario::RunPlan,
    dir: &std::path::Path,
    stop: StopSignal,
    args: &RunArgs,
) -> i32 {
    // Each phase shows its progress and checkpoints into its own folder, as a run does, and
    // with --export-requests writes its requests.jsonl there (both sides of every pair).
    let (show_progress, checkpoint_every) = (!args.no_progress, args.checkpoint_every);
    let export = args.export_requests;
    let target_names: Vec<String> = plan.targets.iter().map(|t| t.name.clone()).collect();
    let class_names: Vec<String> = plan.classes.iter().map(|c| c.name.clone()).collect();
    let options = move |folder: &std::path::Path| {
        let request_log = export
            .then(|| {
                let path = folder.join("requests.jsonl");
                let created = std::fs::create_dir_all(folder).and_then(|()| {
                    drover::export::RequestLog::create(
                        &path,
                        target_names.clone(),
                        class_names.clone(),
                    )
                });
                match created {
                    Ok(log) => Some(Arc::new(std::sync::Mutex::new(log))),
                    Err(error) => {
                        eprintln!(
                            "warning: the per-request export {} could not be created: {error}",
                            path.display()
                        );
                        None
                    }
                }
            })
            .flatten();
        let folder = folder.to_path_buf();
        let sink: driver::CheckpointSink = Arc::new(move |snapshot: &RunResults| {
            if let Err(error) = report::json::write_results(&folder, snapshot) {
                eprintln!("warning: checkpoint not written: {error}");
            }
        });
        RunOptions {
            progress: show_progress,
            checkpoint: Some(sink),
            checkpoint_every,
            request_log,
            ..RunOptions::default()
        }
    };
    let write = |folder: &std::path::Path, results: &RunResults| {
        let path = report::json::write_results(folder, results).map_err(|e| e.to_string())?;
        report::write_report(
            folder,
            &report::Report {
                inputs: vec![report::ReportInput {
                    label: results.scenario.name.clone(),
                    results: results.clone(),
                }],
                rollout: None,
            },
        )
        .map_err(|e| e.to_string())?;
        Ok(path)
    };
    let mut phases = Vec::new();
    let mut progress = |outcome: &drover::rollout::PhaseOutcome, results: &RunResults| {
        println!("{}", drover::rollout::phase_line(outcome));
        for line in report::format::paired_lines(results).iter().skip(1) {
            println!("  {line}");
        }
        phases.push(report::ReportInput {
            label: outcome.name.clone(),
            results: results.clone(),
        });
    };
    let rollout = match drover::rollout::run(plan, dir, stop, &options, &write, &mut progress).await
    {
        Ok(rollout) => rollout,
        Err(error) => {
            eprintln!("error: migration: {error}");
            return EXIT_RUN_FAILED;
        }
    };
    println!("{}", drover::rollout::verdict_line(&rollout));
    let path = dir.join("migration.json");
    let text = serde_json::to_string_pretty(&rollout).expect("migration results serialize");
    if let Err(error) = report::json::write_atomically(&path, text.as_bytes()) {
        eprintln!("error: {error}");
        return EXIT_RUN_FAILED;
    }
    println!("migration: {}", path.display());
    if !phases.is_empty() {
        let rendered = report::write_report(
            dir,
            &report::Report {
                inputs: phases,
                rollout: Some(rollout.clone()),
            },
        );
        match rendered {
            Ok(written) => println!("report: {}", written.dir.join("report.html").display()),
            Err(error) => {
                eprintln!("error: could not render the report: {error}");
                return EXIT_RUN_FAILED;
            }
        }
    }
    use drover::rollout::RolloutVerdict;
    let stopped = matches!(
        rollout.verdict,
        RolloutVerdict::Interrupted | RolloutVerdict::BudgetExhausted
    );
    if !stopped && !rollout.degraded_phases.is_empty() {
        eprintln!(
            "error: the migration is degraded: drover itself failed on some requests of phase(s) {:?} (see their results' warnings); its verdict ({}) rests on figures that are not the endpoints' alone",
            rollout.degraded_phases,
            rollout.verdict.name()
        );
        return EXIT_DEGRADED;
    }
    match rollout.verdict {
        drover::rollout::RolloutVerdict::Promote => EXIT_OK,
        drover::rollout::RolloutVerdict::Rollback => EXIT_ROLLBACK,
        drover::rollout::RolloutVerdict::Interrupted => EXIT_INTERRUPTED,
        drover::rollout::RolloutVerdict::BudgetExhausted => EXIT_BUDGET_EXHAUSTED,
        drover::rollout::RolloutVerdict::Insufficient => EXIT_INSUFFICIENT,
    }
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

/// Prints the projection and refuses a run whose projection exceeds a budget, or that has an
/// unpriced target under a budget, unless told to go on.
/// Creates the run's folder and writes into it what a run writes first: an empty results file
/// (status `in_progress`) for a run, or a probe for a sweep or migration, whose runs write into
/// folders of their own below it.
fn check_output(plan: &RunPlan, dir: &std::path::Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    if plan.sweep.is_some() || plan.migration.is_some() {
        let probe = dir.join(".drover-write-check");
        report::json::write_atomically(&probe, b"ok").map_err(|e| e.to_string())?;
        return std::fs::remove_file(&probe).map_err(|e| e.to_string());
    }
    report::json::write_results(dir, &driver::empty_results(plan))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn spend_check(plan: &RunPlan, args: &RunArgs) -> Result<(), i32> {
    let budgeted = plan.cost.budget.is_some() || plan.targets.iter().any(|t| t.budget.is_some());
    let projection = match drover::spend::project(plan) {
        Ok(projection) => projection,
        Err(why) => {
            if budgeted {
                eprintln!(
                    "projection: none ({why}); the budget is still enforced as responses arrive"
                );
            }
            return Ok(());
        }
    };
    eprintln!("{}", projection.describe());
    if !budgeted {
        return Ok(());
    }
    let currency = &plan.cost.currency;
    let unpriced = projection.unpriced();
    let allowed = args.allow_unpriced || plan.cost.allow_unpriced;
    if !unpriced.is_empty() && !allowed {
        eprintln!(
            "error: a budget is set but target(s) {} are unpriced, so their spend cannot be counted: add pricing = {{ model = \"...\" }} to them, or pass --allow-unpriced (or set [cost] allow_unpriced = true) to run anyway",
            unpriced.join(", ")
        );
        return Err(EXIT_OVER_BUDGET);
    }
    let mut over = Vec::new();
    if let Some(cap) = plan.cost.budget {
        if projection.total() > cap {
            over.push(format!(
                "the run is projected at {} {currency}, over its budget of {} {currency}",
                report::format::money(projection.total()),
                report::format::money(cap)
            ));
        }
    }
    for (target, projected) in plan.targets.iter().zip(&projection.targets) {
        if let (Some(cap), Some(cost)) = (target.budget, projected.cost) {
            if cost > cap {
                over.push(format!(
                    "target \"{}\" is projected at {} {currency}, over its budget of {} {currency}",
                    target.name,
                    report::format::money(cost),
                    report::format::money(cap)
                ));
            }
        }
    }
    if over.is_empty() {
        return Ok(());
    }
    if args.allow_over_budget {
        for line in &over {
            eprintln!(
                "warning: {line}; starting anyway (--allow-over-budget): the run stops at the cap"
            );
        }
        return Ok(());
    }
    for line in &over {
        eprintln!("error: {line}");
    }
    eprintln!(
        "nothing was sent. Raise the budget ([cost] budget or --budget), lower the load, or pass --allow-over-budget to start and stop when the cap is reached"
    );
    Err(EXIT_OVER_BUDGET)
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
                return EXIT_BAD_INPUT;
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
            return EXIT_BAD_INPUT;
        }
    };
    for (model, price) in &table.models {
        if let Some(problem) = price.problem() {
            eprintln!("error: {shown}: model \"{model}\": {problem}");
            return EXIT_BAD_INPUT;
        }
    }
    let file = match std::fs::File::open(&args.log) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("error: {}: cannot read log: {error}", args.log.display());
            return EXIT_BAD_INPUT;
        }
    };
    let threshold_ms = args.batch_threshold.as_secs_f64() * 1000.0;
    let options = drover::audit::AuditOptions {
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
        return EXIT_BAD_INPUT;
    }
    if options
        .log_days
        .is_some_and(|d| !(d.is_finite() && d > 0.0))
    {
        eprintln!("error: --log-days must be > 0");
        return EXIT_BAD_INPUT;
    }
    match drover::audit::audit(std::io::BufReader::new(file), &options) {
        Ok(report) => {
            println!("audit of {} (prices: {shown})", args.log.display());
            print!("{}", report.render(threshold_ms));
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {}: {error}", args.log.display());
            EXIT_BAD_INPUT
        }
    }
}

fn merge_command(args: MergeArgs) -> i32 {
    let paths = match results_paths(&args.results) {
        Ok(paths) => paths,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_BAD_INPUT;
        }
    };
    let mut inputs = Vec::new();
    for path in &paths {
        match report::read_results(path) {
            Ok(results) => inputs.push(drover::merge::MergeInput {
                source: path.display().to_string(),
                results,
            }),
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_BAD_INPUT;
            }
        }
    }
    let merged = match drover::merge::merge(inputs) {
        Ok(merged) => merged,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_BAD_INPUT;
        }
    };
    let text = serde_json::to_string_pretty(&merged).expect("results always serialize");
    if let Err(error) = report::json::write_atomically(&args.output, text.as_bytes()) {
        eprintln!("error: {error}");
        return EXIT_RUN_FAILED;
    }
    print!("{}", report::terminal::summary(&merged));
    println!("merged results: {}", args.output.display());
    let missing = merged.merged.as_ref().map_or(0, |m| m.missing.len());
    if args.require_all && missing > 0 {
        eprintln!("error: {missing} shard(s) missing and --require-all was given");
        return EXIT_RUN_FAILED;
    }
    // The verdict of the whole run, as a single run would give it.
    if merged.slo.as_ref().is_some_and(|slo| slo.failed()) {
        return EXIT_SLO_FAILED;
    }
    EXIT_OK
}

fn compare_command(args: CompareArgs) -> i32 {
    use drover::compare::baseline::{self, CompareOptions, Threshold};
    if !(0.5..=0.9999).contains(&args.confidence) {
        eprintln!(
            "error: --confidence must be between 0.5 and 0.9999 (got {})",
            args.confidence
        );
        return EXIT_BAD_INPUT;
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
            return EXIT_BAD_INPUT;
        };
        if let Err(error) = drover::compare::baseline::check_threshold_name(name.trim()) {
            eprintln!("error: --threshold {flag}: {error}");
            return EXIT_BAD_INPUT;
        }
        match Threshold::parse(value) {
            Ok(threshold) => {
                options
                    .thresholds
                    .insert(name.trim().to_string(), threshold);
            }
            Err(error) => {
                eprintln!("error: --threshold {flag}: {error}");
                return EXIT_BAD_INPUT;
            }
        }
    }
    let mut runs = Vec::new();
    for path in [&args.baseline, &args.current] {
        match report::read_results(path) {
            Ok(results) => runs.push(results),
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_BAD_INPUT;
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
            return EXIT_BAD_INPUT;
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
            return EXIT_RUN_FAILED;
        }
    }
    if let Some(path) = &args.junit {
        if let Err(error) =
            report::json::write_atomically(path, baseline::junit(&comparison).as_bytes())
        {
            eprintln!("error: {error}");
            return EXIT_RUN_FAILED;
        }
    }
    if comparison.regressed() {
        EXIT_REGRESSED
    } else {
        EXIT_OK
    }
}

fn report_command(args: ReportArgs) -> i32 {
    if !args.labels.is_empty() && args.labels.len() != args.results.len() {
        eprintln!(
            "error: {} --label given for {} results files; give one per file, in order, or none",
            args.labels.len(),
            args.results.len()
        );
        return EXIT_BAD_INPUT;
    }
    let mut inputs = Vec::new();
    for (i, path) in args.results.iter().enumerate() {
        let results = match report::read_results(path) {
            Ok(results) => results,
            Err(error) => {
                eprintln!("error: {error}");
                return EXIT_BAD_INPUT;
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
            EXIT_OK
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_RUN_FAILED
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
                return EXIT_BAD_INPUT;
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
        return EXIT_BAD_INPUT;
    }
    let total: f64 = args.faults.iter().map(|(_, p)| p).sum();
    if total > 1.0 + 1e-9 {
        eprintln!("error: --fault probabilities add up to {total}, more than 1");
        return EXIT_BAD_INPUT;
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
            return EXIT_RUN_FAILED;
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
    EXIT_OK
}

/// `drover calibrate`: the harness floor and the mock's precision on this machine.
async fn calibrate_command(args: CalibrateArgs) -> i32 {
    if args.duration < Duration::from_millis(100) {
        eprintln!("error: --duration must be at least 100ms");
        return EXIT_BAD_INPUT;
    }
    let options = drover::calibrate::CalibrateOptions {
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
    match drover::calibrate::calibrate(&options).await {
        Ok(calibration) => {
            print!("{}", calibration.describe());
            0
        }
        Err(error) => {
            eprintln!("error: {error}");
            EXIT_RUN_FAILED
        }
    }
}
