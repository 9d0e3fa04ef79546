//! One run of a scenario, as `drover run` does it: shard and budget applied to the plan, the plan
//! described, descriptors and spend checked, the results folder made writable before anything is
//! sent, preflight, `--start-at`, checkpoints and the per-request export, then the run (or the
//! scenario's sweep or migration), SLOs, results and report, and the [`Outcome`] the exit code
//! comes from. In two steps, [`prepare`] and [`execute`], so that the caller knows the results
//! folder (to name it on an interrupt) before the load starts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::driver::{self, CheckpointSink, RunOptions, SinkFactory, StopSignal};
use crate::export::RequestLog;
use crate::notice::Notices;
use crate::report;
use crate::results::{RunResults, RunStatus};
use crate::scenario::overrides::Override;
use crate::scenario::{self, RunPlan, ScenarioError};
use crate::shard::Shard;

use super::Outcome;

/// What to run and how: `drover run`'s arguments.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The scenario file (for a quick run, the name its text goes by).
    pub scenario: PathBuf,
    /// The scenario's text when it comes from flags rather than the file (a quick run).
    pub text: Option<String>,
    /// The folder under which the run's folder is made.
    pub out: PathBuf,
    /// Show live progress on stderr.
    pub progress: bool,
    /// Colours in the live progress on a terminal.
    pub color: super::progress::ColorChoice,
    /// Send one request per target first to check key, model and mode.
    pub preflight: bool,
    pub checkpoint_every: Duration,
    /// Write every finished request to `requests.jsonl`.
    pub export_requests: bool,
    /// Write every finished request to `requests.csv`, and each group's summary to `groups.csv`.
    pub csv: bool,
    /// `--shard K/N`; without it, the shard comes from the Indexed Job's environment.
    pub shard: Option<Shard>,
    /// `--budget`, over `[cost] budget`.
    pub budget: Option<f64>,
    pub allow_over_budget: bool,
    pub allow_unpriced: bool,
    pub start_at: Option<SystemTime>,
    /// Overrides applied to the scenario before validation (`--set`, then `DROVER_SET_*`).
    pub overrides: Vec<Override>,
    /// Serve drover's live figures in Prometheus text here during the run.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// How long the live figures stay served after the run.
    pub metrics_linger: Duration,
}

impl RunRequest {
    /// The scenario run as `drover run SCENARIO --out OUT` runs it, without a progress line.
    pub fn new(scenario: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        RunRequest {
            scenario: scenario.into(),
            text: None,
            out: out.into(),
            progress: false,
            color: super::progress::ColorChoice::Auto,
            preflight: true,
            checkpoint_every: Duration::from_secs(10),
            export_requests: false,
            csv: false,
            shard: None,
            budget: None,
            allow_over_budget: false,
            allow_unpriced: false,
            start_at: None,
            overrides: Vec::new(),
            metrics_addr: None,
            metrics_linger: Duration::ZERO,
        }
    }

    /// How live progress is drawn on this process's stderr, when it is asked for.
    fn progress_style(&self) -> Option<super::progress::Style> {
        self.progress
            .then(|| super::progress::Style::for_stderr(self.color))
    }
}

/// A run that passed every check and may start.
pub struct Prepared {
    pub plan: RunPlan,
    /// The run's folder: its results, report and export.
    pub dir: PathBuf,
    out_existed: bool,
    request_log: Option<Arc<Mutex<RequestLog>>>,
    request: RunRequest,
}

/// Both steps, for callers that handle no interrupt of their own.
pub async fn run(request: RunRequest, stop: StopSignal) -> Outcome {
    match prepare(request) {
        Ok(prepared) => execute(prepared, stop).await,
        Err(outcome) => outcome,
    }
}

/// Reads the scenario (or takes its `text`), applies the overrides and validates it, printing
/// each problem with its place in the file (or the override it came from).
pub fn load_plan(
    path: &Path,
    text: Option<&str>,
    overrides: &[Override],
) -> Result<RunPlan, Outcome> {
    let env = |name: &str| std::env::var(name).ok();
    scenario_text(path, text)
        .and_then(|text| scenario::parse_overridden(&text, path, overrides, &env))
        .map_err(|error| {
            print_scenario_error(&error);
            Outcome::BadInput
        })
}

/// A quick run's `text`, or else the scenario file's.
fn scenario_text(path: &Path, text: Option<&str>) -> Result<String, ScenarioError> {
    text.map_or_else(|| scenario::read(path), |text| Ok(text.to_string()))
}

/// Prints a scenario error, one `error:` line per problem.
pub fn print_scenario_error(error: &ScenarioError) {
    for line in error.to_string().lines() {
        eprintln!("error: {line}");
    }
}

/// Everything before the first request: the plan, described; the checks that refuse a run
/// (shard, descriptors, spend, a results folder that cannot be written); the export created.
pub fn prepare(request: RunRequest) -> Result<Prepared, Outcome> {
    let plan = planned(&request)?;
    eprintln!("{}", scenario::describe(&plan));
    if let Err(message) = crate::resources::check_fds(&plan) {
        eprintln!("error: {}: {message}", request.scenario.display());
        return Err(Outcome::BadInput);
    }
    spend_check(&plan, &request)?;
    let dir = request.out.join(folder_of(&plan));
    let out_existed = request.out.exists();
    // Where the results go is checked before anything is sent (the preflight request too): a
    // run whose measurements could not be written must not spend a request.
    if let Err(error) = check_output(&plan, &dir) {
        eprintln!(
            "error: cannot write the results to {}: {error}; nothing was sent",
            dir.display()
        );
        return Err(Outcome::RunFailed);
    }
    if (request.export_requests || request.csv) && plan.sweep.is_some() {
        eprintln!(
            "error: {}: --export-requests and --csv do not export a [sweep]'s steps yet: run a step's load as its own scenario to export its requests",
            request.scenario.display()
        );
        return Err(Outcome::BadInput);
    }
    let formats = RequestFormats {
        jsonl: request.export_requests,
        csv: request.csv,
    };
    let request_log = if formats.any() && plan.migration.is_none() {
        match create_request_log(&plan, &dir, formats) {
            Ok(log) => Some(log),
            Err(message) => {
                eprintln!("error: {message}");
                return Err(Outcome::RunFailed);
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
    Ok(Prepared {
        plan,
        dir,
        out_existed,
        request_log,
        request,
    })
}

/// The scenario's plan with the run's shard, start time and budget applied.
fn planned(request: &RunRequest) -> Result<RunPlan, Outcome> {
    let plan = load_plan(
        &request.scenario,
        request.text.as_deref(),
        &request.overrides,
    )?;
    let shard = match request.shard {
        Some(shard) => Some(shard),
        None => Shard::from_env(&|name| std::env::var(name).ok()).map_err(|error| {
            eprintln!("error: {error}");
            Outcome::BadInput
        })?,
    };
    let mut plan = scenario::apply_shard(plan, shard.unwrap_or_default()).map_err(|error| {
        eprintln!(
            "error: {}: --shard {}: {error}",
            request.scenario.display(),
            shard.unwrap_or_default()
        );
        Outcome::BadInput
    })?;
    if !plan.shard.is_whole() && (plan.migration.is_some() || plan.sweep.is_some()) {
        eprintln!(
            "error: {}: --shard {}: a [migration] or [sweep] decides after each phase or step, so it runs on one machine: drop --shard",
            request.scenario.display(),
            plan.shard
        );
        return Err(Outcome::BadInput);
    }
    plan.start_at = request.start_at;
    if let Some(budget) = request.budget {
        if !(budget.is_finite() && budget > 0.0) {
            eprintln!("error: --budget must be > 0 (got {budget})");
            return Err(Outcome::BadInput);
        }
        plan.cost.budget = Some(budget);
    }
    Ok(plan)
}

/// The run's folder name: the scenario and the start time, and the shard when sharded.
fn folder_of(plan: &RunPlan) -> String {
    let stamp = report::json::utc_stamp(plan.start_at.unwrap_or_else(SystemTime::now));
    let mut folder = report::json::folder_name(&plan.name, &stamp);
    if !plan.shard.is_whole() {
        folder.push_str(&format!(
            "-shard-{}-of-{}",
            plan.shard.index, plan.shard.count
        ));
    }
    folder
}

/// The files a run's per-request export goes to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFormats {
    /// `requests.jsonl` (`--export-requests`).
    pub jsonl: bool,
    /// `requests.csv` (`--csv`).
    pub csv: bool,
}

impl RequestFormats {
    pub fn any(self) -> bool {
        self.jsonl || self.csv
    }
}

/// `requests.jsonl` and/or `requests.csv` in `dir`, ready for the run's records.
pub(crate) fn create_request_log(
    plan: &RunPlan,
    dir: &Path,
    formats: RequestFormats,
) -> Result<Arc<Mutex<RequestLog>>, String> {
    let create = |name: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::File::create(&path))
            .map_err(|error| format!("cannot create {}: {error}", path.display()))
    };
    let targets = plan.targets.iter().map(|t| t.name.clone()).collect();
    let classes = plan.classes.iter().map(|c| c.name.clone()).collect();
    let mut log = if formats.jsonl {
        RequestLog::new(Box::new(create("requests.jsonl")?), targets, classes)
    } else {
        RequestLog::empty(targets, classes)
    };
    if formats.csv {
        log = log
            .with_csv(Box::new(create("requests.csv")?))
            .map_err(|error| format!("cannot write requests.csv: {error}"))?;
    }
    Ok(Arc::new(Mutex::new(log)))
}

/// Preflight, the wait for `--start-at`, then the run, its sweep or its migration.
pub async fn execute(prepared: Prepared, stop: StopSignal) -> Outcome {
    let preflight_warnings = match preflight(&prepared).await {
        Ok(warnings) => warnings,
        Err(outcome) => return outcome,
    };
    announce_start_at(&prepared.plan);
    let Prepared {
        plan,
        dir,
        request_log,
        request,
        ..
    } = prepared;
    if (plan.sweep.is_some() || plan.migration.is_some()) && request.metrics_addr.is_some() {
        eprintln!(
            "warning: --metrics-addr serves a plain run's figures; a sweep's or a migration's are not served"
        );
    }
    if plan.sweep.is_some() {
        return super::sweep::run_and_report(&plan, &dir, stop).await;
    }
    if plan.migration.is_some() {
        let phases = super::migration::PhaseOptions {
            progress: request.progress_style(),
            checkpoint_every: request.checkpoint_every,
            formats: RequestFormats {
                jsonl: request.export_requests,
                csv: request.csv,
            },
        };
        return super::migration::run_and_report(&plan, &dir, stop, phases).await;
    }
    let exposition = match request.metrics_addr {
        Some(addr) => match super::exposition::Exposition::serve(addr, &plan) {
            Ok(exposition) => {
                eprintln!(
                    "live metrics: http://{}/metrics (Prometheus text)",
                    exposition.addr()
                );
                Some(exposition)
            }
            Err(error) => {
                eprintln!("error: --metrics-addr {addr}: cannot listen there: {error}");
                return Outcome::RunFailed;
            }
        },
        None => None,
    };
    let mut live = live_outputs(&plan, request.progress_style(), true);
    live.extend(exposition.as_ref().map(super::exposition::Exposition::sink));
    let options = RunOptions {
        live,
        notices: stderr_notices(),
        checkpoint: Some(checkpoint_sink(&dir)),
        checkpoint_every: request.checkpoint_every,
        request_log,
        ..RunOptions::default()
    };
    let mut results = match driver::run(&plan, options, stop).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: {error}");
            return Outcome::RunFailed;
        }
    };
    results.warnings.extend(preflight_warnings);
    if let Some(slo) = &plan.slo {
        results.slo = Some(crate::slo::evaluate(slo, &results));
    }
    let written = write_and_report(&dir, &results, request.csv);
    if let Some(exposition) = exposition {
        exposition.linger_and_stop(request.metrics_linger).await;
    }
    if let Err(outcome) = written {
        return outcome;
    }
    verdict_of(&results)
}

/// The one-request-per-target check (unless skipped); on failure the run's folder goes again,
/// since nothing was measured.
async fn preflight(prepared: &Prepared) -> Result<Vec<String>, Outcome> {
    if !prepared.request.preflight {
        return Ok(Vec::new());
    }
    match driver::preflight(&prepared.plan).await {
        Ok(warnings) => {
            for warning in &warnings {
                eprintln!("warning: {warning}");
            }
            Ok(warnings)
        }
        Err(error) => {
            eprintln!("error: preflight: {error}");
            for file in ["results.json", "requests.jsonl"] {
                let _ = std::fs::remove_file(prepared.dir.join(file));
            }
            let _ = std::fs::remove_dir(&prepared.dir);
            if !prepared.out_existed {
                let _ = std::fs::remove_dir(&prepared.request.out);
            }
            Err(Outcome::PreflightFailed)
        }
    }
}

fn announce_start_at(plan: &RunPlan) {
    let Some(start_at) = plan.start_at else {
        return;
    };
    match start_at.duration_since(SystemTime::now()) {
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

/// Prints the summary, writes the results (first: the measurements) and then the report (with
/// `groups.csv` when `csv`).
fn write_and_report(dir: &Path, results: &RunResults, csv: bool) -> Result<(), Outcome> {
    let mut stdout = std::io::stdout().lock();
    let _ = write!(stdout, "{}", report::terminal::summary(results));
    match report::json::write_results(dir, results) {
        Ok(path) => {
            let _ = writeln!(stdout, "results: {}", path.display());
        }
        Err(error) => {
            eprintln!("error: {error}");
            return Err(Outcome::RunFailed);
        }
    }
    let report = report::Report {
        inputs: vec![
            report::ReportInput::new(results.scenario.name.clone(), results.clone())
                .with_requests_in(dir),
        ],
        rollout: None,
        sweep: None,
    };
    if csv {
        match report::write_groups_csv(dir, &report) {
            Ok(path) => {
                let _ = writeln!(stdout, "csv: {} (and requests.csv)", path.display());
            }
            Err(error) => eprintln!("error: {error}"),
        }
    }
    let rendered = report::write_report(dir, &report);
    let _ = match &rendered {
        Ok(written) => writeln!(stdout, "report: {}", written.described()),
        Err(error) => {
            eprintln!("error: could not render the report: {error}");
            Ok(())
        }
    };
    let _ = stdout.flush();
    rendered.map(|_| ()).map_err(|_| Outcome::RunFailed)
}

/// A finished run's outcome: interrupted, stopped at a budget, degraded, a target that never
/// succeeded, a failed SLO, or ok.
pub fn verdict_of(results: &RunResults) -> Outcome {
    match results.status {
        RunStatus::Interrupted => return Outcome::Interrupted,
        RunStatus::BudgetExhausted => {
            eprintln!("stopped at the budget: see the spend line above");
            return Outcome::BudgetExhausted;
        }
        RunStatus::Degraded => {
            eprintln!(
                "error: the run is degraded: drover itself failed on some requests (see the warnings above); its figures are not the endpoint's alone"
            );
            return Outcome::Degraded;
        }
        _ => {}
    }
    measured_verdict(results)
}

/// The verdict of what was measured, whatever the run's status: a target that never succeeded
/// (run failed), a failed SLO, or ok.
pub fn measured_verdict(results: &RunResults) -> Outcome {
    let failed_target = results
        .targets
        .iter()
        .find(|t| t.summary.requests.sent == 0 || t.summary.requests.succeeded == 0);
    if let Some(target) = failed_target {
        eprintln!(
            "error: target \"{}\" completed no request successfully ({} sent); see the errors above",
            target.name, target.summary.requests.sent
        );
        return Outcome::RunFailed;
    }
    if let Some(slo) = results.slo.as_ref().filter(|slo| slo.failed()) {
        eprintln!(
            "SLO verdict: {}; see the SLO lines above",
            slo.verdict.name()
        );
        return Outcome::SloFailed;
    }
    Outcome::Ok
}

/// Creates the run's folder and writes into it what a run writes first: an empty results file
/// (status `in_progress`) for a run, or a probe for a sweep or migration, whose runs write into
/// folders of their own below it.
fn check_output(plan: &RunPlan, dir: &Path) -> Result<(), String> {
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

/// Prints the projection and refuses a run whose projection exceeds a budget, or that has an
/// unpriced target under a budget, unless told to go on.
fn spend_check(plan: &RunPlan, request: &RunRequest) -> Result<(), Outcome> {
    let budgeted = plan.cost.budget.is_some() || plan.targets.iter().any(|t| t.budget.is_some());
    let projection = match crate::spend::project(plan) {
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
    let unpriced = projection.unpriced();
    let unpriced_allowed = request.allow_unpriced || plan.cost.allow_unpriced;
    if !unpriced.is_empty() && !unpriced_allowed {
        eprintln!(
            "error: a budget is set but target(s) {} are unpriced, so their spend cannot be counted: add pricing = {{ model = \"...\" }} to them, or pass --allow-unpriced (or set [cost] allow_unpriced = true) to run anyway",
            unpriced.join(", ")
        );
        return Err(Outcome::OverBudget);
    }
    let over = over_budget(plan, &projection);
    if over.is_empty() {
        return Ok(());
    }
    if request.allow_over_budget {
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
    Err(Outcome::OverBudget)
}

/// Each budget the projection is over, as a sentence.
fn over_budget(plan: &RunPlan, projection: &crate::spend::RunProjection) -> Vec<String> {
    let currency = &plan.cost.currency;
    let money = crate::units::money;
    let mut over = Vec::new();
    if let Some(cap) = plan.cost.budget.filter(|cap| projection.total() > *cap) {
        over.push(format!(
            "the run is projected at {} {currency}, over its budget of {} {currency}",
            money(projection.total()),
            money(cap)
        ));
    }
    for (target, projected) in plan.targets.iter().zip(&projection.targets) {
        if let (Some(cap), Some(cost)) = (target.budget, projected.cost) {
            if cost > cap {
                over.push(format!(
                    "target \"{}\" is projected at {} {currency}, over its budget of {} {currency}",
                    target.name,
                    money(cost),
                    money(cap)
                ));
            }
        }
    }
    over
}

/// The run's live outputs: the progress display when asked for (`length`: it may show a
/// percentage and an ETA from the plan).
pub(crate) fn live_outputs(
    plan: &RunPlan,
    progress: Option<super::progress::Style>,
    length: bool,
) -> Vec<SinkFactory> {
    progress
        .map(|style| super::progress::sink(plan, style, length))
        .into_iter()
        .collect()
}

/// A run's warnings, printed to stderr as they happen.
pub(crate) fn stderr_notices() -> Notices {
    Notices::to(|line| {
        eprintln!("{line}");
        super::progress::other_output_written();
    })
}

/// Checkpoints into `dir`: a failed write is a warning, the run goes on.
pub(crate) fn checkpoint_sink(dir: &Path) -> CheckpointSink {
    let dir = dir.to_path_buf();
    Arc::new(move |snapshot: &RunResults| {
        if let Err(error) = report::json::write_results(&dir, snapshot) {
            eprintln!("warning: checkpoint not written: {error}");
        }
    })
}

/// `drover run --print-scenario`: the scenario as it would run (a quick run's file, overrides
/// applied), validated, on stdout; nothing is sent. A key variable not set yet is only warned
/// about, as in `drover validate`.
pub fn print_scenario(request: &RunRequest) -> Outcome {
    let text = scenario_text(&request.scenario, request.text.as_deref());
    let unset = std::cell::RefCell::new(Vec::new());
    let env = stand_in_keys(&unset);
    // Validation names a refused override, or a problem of the file, with its place.
    let printed = text.and_then(|text| {
        scenario::parse_overridden_text(&text, &request.scenario, &request.overrides, &env)
            .map(|(_, as_run)| as_run)
    });
    match printed {
        Ok(text) => {
            print!("{text}");
            warn_unset_keys(&unset.borrow());
            Outcome::Ok
        }
        Err(error) => {
            print_scenario_error(&error);
            Outcome::BadInput
        }
    }
}

/// Environment look-ups for a check that sends nothing: a key variable not set yet reads as a
/// stand-in and is noted in `unset`.
fn stand_in_keys(unset: &std::cell::RefCell<Vec<String>>) -> impl Fn(&str) -> Option<String> + '_ {
    move |name: &str| match std::env::var(name) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            unset.borrow_mut().push(name.to_string());
            Some("drover-validate-stand-in-key".to_string())
        }
    }
}

fn warn_unset_keys(names: &[String]) {
    for name in names {
        eprintln!(
            "warning: environment variable {name} is not set: the file is valid; `drover run` needs it for a real endpoint (an embedded mock runs without a key)"
        );
    }
}

/// `drover validate`: the plan described and its spend projected; nothing is sent.
pub fn validate(scenario: &Path, overrides: &[Override]) -> Outcome {
    // A key variable that is not set yet is a warning here (nothing is sent); `drover run`
    // refuses it.
    let unset = std::cell::RefCell::new(Vec::new());
    let env = stand_in_keys(&unset);
    let checked = scenario::read(scenario)
        .and_then(|text| scenario::parse_overridden(&text, scenario, overrides, &env));
    let checked = checked.map_err(|error| {
        print_scenario_error(&error);
        Outcome::BadInput
    });
    warn_unset_keys(&unset.borrow());
    match checked {
        Ok(plan) => {
            println!("ok: {}", scenario.display());
            println!("{}", scenario::describe(&plan));
            match crate::spend::project(&plan) {
                Ok(projection) => println!("{}", projection.describe()),
                Err(why) => println!("projection: none ({why})"),
            }
            if let Some(budget) = plan.cost.budget {
                println!(
                    "budget: {} {}",
                    crate::units::money(budget),
                    plan.cost.currency
                );
            }
            Outcome::Ok
        }
        Err(outcome) => outcome,
    }
}
