//! Checks a deserialized scenario and builds the [`RunPlan`]: ranges, required combinations,
//! environment variables for keys, datasets. Every problem found is reported, each with its place.

mod class;
mod cost;
mod load;
mod migration;
mod mock;
mod slo;
mod sweep;
mod target;
mod tokenizer;
mod tools;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use crate::scenario::locate::{locate, KeyPath};
use crate::scenario::schema::{LoadKind, ScenarioFile, TargetMode};
use crate::scenario::{
    is_sensitive_header, ClassPlan, LoadPlan, LoadShape, RunPlan, ScenarioError, ScenarioIssue,
    TargetPlan,
};
use class::*;
use cost::*;
use load::*;
use migration::*;
use mock::*;
use slo::*;
use sweep::*;
use target::*;

use crate::workload::{PromptSource, TracePrompt};

/// Default seed when the scenario sets none.
pub const DEFAULT_SEED: u64 = 0x5eed;

/// The slowest rate accepted: one request every 10,000 s (below it a schedule's times overflow).
pub const MIN_RATE: f64 = 1e-4;
/// The fastest rate accepted, per target.
pub const MAX_RATE: f64 = 1e6;
/// The range of a trace's replay speed.
pub const SPEED_RANGE: (f64, f64) = (1e-3, 1e3);
/// The range of a mock's `batch_mode_speedup`.
pub const SPEEDUP_RANGE: (f64, f64) = (1e-2, 1e3);
/// The most requests a load (or its warm-up) may ask for.
pub const MAX_REQUESTS: u64 = 1_000_000_000;
/// How many times its length a migration phase may grow for its gates' minimum samples, unless
/// `[migration] extend_up_to` says otherwise, and the most it may say.
pub const DEFAULT_EXTEND_UP_TO: f64 = 4.0;
pub const MAX_EXTEND_UP_TO: f64 = 100.0;
/// The most tokens any length (input, output, max_tokens) may ask for.
pub const MAX_TOKENS: u32 = crate::workload::MAX_TOKENS;

/// A number as a message shows it: in scientific notation when very small or very large.
fn number(value: f64) -> String {
    if value != 0.0 && value.is_finite() && !(1e-4..1e9).contains(&value.abs()) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// Collects issues with their locations.
struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
    issues: Vec<ScenarioIssue>,
}

impl Checker<'_> {
    fn fail(&mut self, key: &KeyPath, message: impl Into<String>) {
        let (line, column) = locate(self.text, key);
        self.issues.push(ScenarioIssue {
            file: self.path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            set_by: None,
        });
    }

    fn positive_rate(&mut self, key: &KeyPath, rate: f64) -> bool {
        if (MIN_RATE..=MAX_RATE).contains(&rate) {
            true
        } else {
            self.fail(
                key,
                format!(
                    "must be from {MIN_RATE} to {MAX_RATE} requests per second (got {})",
                    number(rate)
                ),
            );
            false
        }
    }

    /// A count of requests within [`MAX_REQUESTS`].
    fn request_count(&mut self, key: &KeyPath, count: Option<u64>) {
        if let Some(count) = count.filter(|n| *n > MAX_REQUESTS) {
            self.fail(key, format!("must be at most {MAX_REQUESTS} (got {count})"));
        }
    }

    fn non_zero(&mut self, key: &KeyPath, duration: Duration) {
        if duration.is_zero() {
            self.fail(key, "must be longer than 0");
        }
    }
}

/// Validates `file` (parsed from `text`, read from `path`) into a plan. `env` looks up environment
/// variables (injected so tests do not touch the process environment).
pub fn plan_from_file(
    file: ScenarioFile,
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<RunPlan, ScenarioError> {
    let mut checker = Checker {
        text,
        path,
        issues: Vec::new(),
    };
    let root = KeyPath::root();
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let seed = file.seed.unwrap_or(DEFAULT_SEED);

    let name = scenario_name(&mut checker, &file, path);
    let (cost, table, currencies) = cost_setup(
        &mut checker,
        &root.key("cost"),
        file.cost.as_ref(),
        base_dir,
    );
    let context = TargetContext {
        base_dir,
        seed,
        env,
        table: &table,
        currencies: &currencies,
    };
    let mut targets = targets_of(&mut checker, &file, &context);

    let class_tokenizer = tokenizer::class_default(&targets);
    let classes = classes_of(&mut checker, &file, base_dir, seed, &class_tokenizer);

    let load = match &file.load {
        None => {
            checker.fail(&root.key("load"), "is missing: add a [load] table");
            None
        }
        Some(spec) => {
            let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
            load_plan(&mut checker, &root.key("load"), spec, base_dir, &names)
        }
    };
    if let Some(load) = &load {
        check_trace_prompts(&mut checker, load, &classes);
    }

    route_to_batch(&mut checker, &file, &mut targets, &classes, load.as_ref());
    classes_fit_apis(&mut checker, &file, &targets);
    let slo = file
        .slo
        .as_ref()
        .map(|spec| slo_plan(&mut checker, &root.key("slo"), spec, &targets, &classes));
    let sweep = file.sweep.as_ref().and_then(|spec| {
        sweep_plan(
            &mut checker,
            &root.key("sweep"),
            spec,
            load.as_ref(),
            slo.is_some(),
        )
    });
    let migration = file.migration.as_ref().and_then(|spec| {
        migration_plan(
            &mut checker,
            &root.key("migration"),
            spec,
            &targets,
            &classes,
            load.as_ref(),
            sweep.is_some(),
        )
    });
    if !checker.issues.is_empty() {
        return Err(ScenarioError::Invalid(checker.issues));
    }
    let scenario_as_run = scenario_as_run(&file);
    Ok(RunPlan {
        name,
        source: path.to_path_buf(),
        seed,
        targets,
        classes,
        load: load.expect("load checked above"),
        scenario_as_run,
        overrides: Vec::new(),
        shard: crate::shard::Shard::WHOLE,
        start_at: None,
        cost,
        slo,
        sweep,
        migration,
        shadow: None,
    })
}

/// The scenario's name: as set, or the file's stem.
fn scenario_name(checker: &mut Checker, file: &ScenarioFile, path: &Path) -> String {
    let root = KeyPath::root();
    match &file.name {
        Some(name) if name.trim().is_empty() => {
            checker.fail(&root.key("name"), "must not be empty");
            String::new()
        }
        Some(name) => name.clone(),
        None => path
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned()),
    }
}

/// Every `[[targets]]` table checked (at least one).
fn targets_of(
    checker: &mut Checker,
    file: &ScenarioFile,
    context: &TargetContext,
) -> Vec<TargetPlan> {
    let root = KeyPath::root();
    if file.targets.is_empty() {
        checker.fail(
            &root.key("targets"),
            "is missing: add at least one [[targets]] table (base_url or mock)",
        );
    }
    let mut target_names = HashSet::new();
    let mut targets = Vec::new();
    for (index, spec) in file.targets.iter().enumerate() {
        let key = root.key("targets").index(index);
        targets.extend(target_plan(
            checker,
            &key,
            index,
            spec,
            &mut target_names,
            context,
        ));
    }
    targets
}

/// Every `[[classes]]` table checked (at least one).
fn classes_of(
    checker: &mut Checker,
    file: &ScenarioFile,
    base_dir: &Path,
    seed: u64,
    default_tokenizer: &crate::tokenizer::Tokenizer,
) -> Vec<ClassPlan> {
    let root = KeyPath::root();
    if file.classes.is_empty() {
        checker.fail(
            &root.key("classes"),
            "is empty: the traffic mix needs at least one [[classes]] table",
        );
    }
    let mut class_names = HashSet::new();
    let mut classes = Vec::new();
    let class_context = ClassContext {
        base_dir,
        seed,
        default_tokenizer,
        is_trace: file
            .load
            .as_ref()
            .is_some_and(|l| l.kind == LoadKind::Trace),
    };
    for (index, spec) in file.classes.iter().enumerate() {
        let key = root.key("classes").index(index);
        classes.extend(class_plan(
            checker,
            &key,
            spec,
            &mut class_names,
            &class_context,
        ));
    }
    classes
}

/// A trace line without a prompt draws from its class, which must have a prompt source.
fn check_trace_prompts(checker: &mut Checker, load: &LoadPlan, classes: &[ClassPlan]) {
    let root = KeyPath::root();
    if let Some(trace) = load.shape.trace() {
        for entry in &trace.entries {
            let (class, line) = (&classes[entry.class], entry.line);
            if entry.prompt == TracePrompt::FromClass
                && matches!(class.prompt, PromptSource::TraceOnly)
            {
                checker.fail(
                    &root.key("load").key("trace"),
                    format!(
                        "{}:{line}: the line has neither messages nor input_tokens, and its class \"{}\" has no prompt source (input_tokens or dataset)",
                        trace.path.display(),
                        class.name
                    ),
                );
                break;
            }
        }
    }
}

/// Which classes each target sends through the Batch API (its mode, or its routing rules), and
/// what that rules out: multi-turn classes there, or a closed loop with no request count.
/// Refuses a class whose shape a target's API cannot carry: sessions to an API without turns
/// (legacy completions, embeddings), output caps to embeddings, several inputs per request to
/// anything but embeddings.
fn classes_fit_apis(checker: &mut Checker, file: &ScenarioFile, targets: &[TargetPlan]) {
    use crate::protocol::Api;
    let apis: Vec<Api> = targets.iter().map(|t| t.api).collect();
    let names = |wanted: &dyn Fn(Api) -> bool| {
        targets
            .iter()
            .filter(|t| wanted(t.api))
            .map(|t| format!("\"{}\" (api = \"{}\")", t.name, t.api.name()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let root = KeyPath::root();
    for (index, spec) in file.classes.iter().enumerate() {
        let key = root.key("classes").index(index);
        let no_turns = |api: Api| matches!(api, Api::Completions | Api::Embeddings);
        if spec.turns.is_some_and(|t| t > 1) && apis.iter().any(|a| no_turns(*a)) {
            checker.fail(
                &key.key("turns"),
                format!(
                    "multi-turn sessions need a chat API; target {} has no turns",
                    names(&no_turns)
                ),
            );
        }
        let embeds = |api: Api| api == Api::Embeddings;
        if apis.iter().any(|a| embeds(*a)) {
            for (field, set) in [
                ("max_tokens", spec.max_tokens.is_some()),
                ("min_tokens", spec.min_tokens.is_some()),
                ("ignore_eos", spec.ignore_eos.is_some()),
            ] {
                if set {
                    checker.fail(
                        &key.key(field),
                        format!(
                            "embeddings generate no tokens; target {} cannot use it",
                            names(&embeds)
                        ),
                    );
                }
            }
        }
        let no_images = |api: Api| matches!(api, Api::Completions | Api::Embeddings);
        let not_chat = |api: Api| api != Api::OpenAi;
        if spec.tool_result.is_some() && apis.iter().any(|a| not_chat(*a)) {
            checker.fail(
                &key.key("tool_result"),
                format!(
                    "a tool result is sent back as chat completions write it; target {} uses another API",
                    names(&not_chat)
                ),
            );
        }
        if spec.tools.is_some() && apis.iter().any(|a| no_images(*a)) {
            checker.fail(
                &key.key("tools"),
                format!(
                    "tools need a chat API (openai, anthropic, responses); target {} has none",
                    names(&no_images)
                ),
            );
        }
        if spec.images.is_some() && apis.iter().any(|a| no_images(*a)) {
            checker.fail(
                &key.key("images"),
                format!(
                    "images need a chat API (openai, anthropic, responses); target {} takes text only",
                    names(&no_images)
                ),
            );
        }
        if spec.inputs_per_request.is_some_and(|n| n > 1) && !apis.iter().all(|a| embeds(*a)) {
            checker.fail(
                &key.key("inputs_per_request"),
                format!(
                    "only embeddings take several inputs per request; target {} sends one prompt",
                    names(&|api| !embeds(api))
                ),
            );
        }
    }
}

fn route_to_batch(
    checker: &mut Checker,
    file: &ScenarioFile,
    targets: &mut [TargetPlan],
    classes: &[ClassPlan],
    load: Option<&LoadPlan>,
) {
    let root = KeyPath::root();
    // Which classes each target sends through the Batch API.
    for (target, spec) in targets.iter_mut().zip(&file.targets) {
        target.batch_classes = classes
            .iter()
            .map(|class| match spec.mode() {
                TargetMode::BatchApi => true,
                _ => spec.routing.as_ref().is_some_and(|rules| {
                    rules
                        .iter()
                        .find(|rule| {
                            rule.when
                                .as_ref()
                                .is_none_or(|when| when.matches(&class.labels))
                        })
                        .is_some_and(|rule| rule.to == crate::scenario::schema::RouteTo::BatchApi)
                }),
            })
            .collect();
    }
    for (index, target) in targets.iter().enumerate() {
        for (class_index, class) in classes.iter().enumerate() {
            if class.session.is_some() && target.class_via_batch(class_index) {
                checker.fail(
                    &root.key("targets").index(index).key(if target.mode == TargetMode::BatchApi {
                        "mode"
                    } else {
                        "routing"
                    }),
                    format!(
                        "would send class \"{}\" through the Batch API, but its turns each need the answer to the one before: send multi-turn classes live",
                        class.name
                    ),
                );
            }
        }
    }
    if let Some(plan) = load {
        let unknown_count =
            matches!(plan.shape, LoadShape::Closed { .. }) && plan.requests.is_none();
        for (index, spec) in file.targets.iter().enumerate() {
            let routed_to_batch = targets
                .iter()
                .find(|t| t.name == spec.name)
                .is_some_and(|t| t.is_routed());
            if routed_to_batch && unknown_count {
                checker.fail(
                    &root.key("targets").index(index).key("routing"),
                    "sends classes through the Batch API, which submits every request at once and \
                     needs to know how many: set load.requests",
                );
            }
            if spec.mode() == TargetMode::BatchApi && unknown_count {
                checker.fail(
                    &root.key("targets").index(index).key("mode"),
                    "\"batch-api\" submits every request at once, so it needs to know how many: \
                     set load.requests (a closed loop's duration does not tell)",
                );
            }
        }
    }
}

/// The scenario as written, as JSON, with sensitive header values replaced.
fn scenario_as_run(file: &ScenarioFile) -> serde_json::Value {
    let mut copy = file.clone();
    for target in &mut copy.targets {
        for (name, value) in target.headers.iter_mut() {
            if is_sensitive_header(name) {
                *value = "<redacted>".into();
            }
        }
    }
    serde_json::to_value(&copy).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<RunPlan, String> {
        let file: ScenarioFile = toml::from_str(text).map_err(|e| e.to_string())?;
        plan_from_file(file, text, Path::new("s.toml"), env).map_err(|e| e.to_string())
    }

    const BASE: &str = r#"
[[targets]]
name = "m"
model = "mock"
[targets.mock]
ttft = "10ms"

[[classes]]
name = "c"
input_tokens = 16
"#;

    const TWO_TARGETS: &str = r#"
[[targets]]
name = "official"
model = "gpt-4.1"
[targets.mock]
[[targets]]
name = "relay"
model = "gpt-4.1"
[targets.mock]
[[classes]]
name = "c"
input_tokens = 16
[load]
kind = "open"
rate = 10
duration = "5s"
"#;

    #[test]
    fn an_http2_pool_is_planned_and_a_bad_one_is_refused_at_its_place() {
        let load = "[load]\nkind = \"closed\"\nusers = 1\nrequests = 1\n";
        let with = |target: &str| {
            BASE.replace(
                "model = \"mock\"\n",
                &format!("model = \"mock\"\n{target}\n"),
            ) + load
        };
        let plan = check(
            &with("http = \"http2\"\nhttp2 = { connections = 4, max_streams_per_connection = 50 }"),
            &|_| None,
        )
        .unwrap();
        assert_eq!(
            plan.targets[0].http2,
            crate::scenario::Http2Shape {
                connections: 4,
                max_streams_per_connection: Some(50)
            }
        );
        let default = check(&with(""), &|_| None).unwrap();
        assert_eq!(
            default.targets[0].http2,
            crate::scenario::Http2Shape::default()
        );
        for (target, place, says) in [
            (
                "http2 = { connections = 0 }",
                "s.toml:5:25: ",
                "targets[0].http2.connections must be from 1 to 10000, not 0",
            ),
            (
                "http2 = { max_streams_per_connection = 0 }",
                "s.toml:5:40: ",
                "targets[0].http2.max_streams_per_connection must be at least 1",
            ),
            (
                "http = \"http1\"\nhttp2 = { connections = 2 }",
                "s.toml:6:9: ",
                "targets[0].http2 shapes HTTP/2 connections, but this target speaks HTTP/1.1",
            ),
        ] {
            let error = check(&with(target), &|_| None).unwrap_err();
            assert!(error.contains(says), "{target}: {error}");
            assert!(error.contains(place), "{target}: {error}");
        }
        let error = check(&with("http2 = { streams = 4 }"), &|_| None).unwrap_err();
        assert!(error.contains("unknown field `streams`"), "{error}");
    }

    #[test]
    fn a_migration_plans_its_phases_with_merged_gates() {
        let text = format!(
            r#"{TWO_TARGETS}
[migration]
primary = "official"
candidate = "relay"
mirror = 0.5
gates = {{ max_error_rate = 0.01, max_regression = {{ "ttft.p99" = 0.25 }} }}
[[migration.phases]]
name = "shadow"
share = 0
requests = 100
mirror = 1
[[migration.phases]]
share = 0.1
duration = "1m"
gates = {{ max_error_rate = 0.02, max_regression = {{ "e2e.p99.9" = 0.5 }}, min_agreement = 0.8 }}
"#
        );
        let plan = check(&text, &|_| None).unwrap();
        let migration = plan.migration.as_ref().unwrap();
        assert_eq!((migration.primary, migration.candidate), (0, 1));
        let phases = &migration.phases;
        assert_eq!(phases[0].name, "shadow");
        assert_eq!((phases[0].mirror, phases[0].requests), (1.0, Some(100)));
        assert_eq!(phases[1].name, "phase 2");
        assert_eq!(phases[1].mirror, 0.5);
        assert_eq!(phases[0].gates.max_error_rate, Some(0.01));
        assert_eq!(phases[1].gates.max_error_rate, Some(0.02));
        // Quantiles in thousandths (99.9 / 100 is not exactly 0.999 in binary).
        let keys: Vec<(&str, u32)> = phases[1]
            .gates
            .max_regression
            .iter()
            .map(|g| (g.histogram.as_str(), (g.quantile * 1000.0).round() as u32))
            .collect();
        assert_eq!(keys, [("e2e", 999), ("ttft", 990)]);
        // A phase's length replaces the load's; its split goes to the driver. The phase grows
        // so that its gates can get their minimum samples, up to extend_up_to (default 4): the
        // shadow phase's 1% error rate needs 381 candidate requests (400 with the margin of
        // 5%), 4.0 times its 100; the second phase's p99.9 needs 3,689 per side.
        assert_eq!(migration.extend_up_to, 4.0);
        assert_eq!(plan.phase_growth(0), 4.0);
        assert_eq!(plan.at_phase(0).unwrap().load.requests, Some(400));
        let second = plan.at_phase(1).unwrap();
        assert_eq!(second.load.duration, Some(Duration::from_secs(240)));
        assert_eq!(second.load.requests, None);
        let shadow = second.shadow.unwrap();
        assert_eq!((shadow.share, shadow.mirror), (0.1, 0.5));
        // A phase whose gates are met as written runs as written; extend_up_to = 1 never grows.
        let modest = text
            .replace(
                "max_error_rate = 0.01, max_regression = { \"ttft.p99\" = 0.25 }",
                "max_error_rate = 0.1",
            )
            .replace("requests = 100", "requests = 400");
        let plan = check(&modest, &|_| None).unwrap();
        assert_eq!(plan.phase_growth(0), 1.0);
        let fixed = text.replace("mirror = 0.5\n", "mirror = 0.5\nextend_up_to = 1\n");
        let plan = check(&fixed, &|_| None).unwrap();
        assert_eq!(plan.phase_growth(0), 1.0);
        assert_eq!(
            plan.at_phase(1).unwrap().load.duration,
            Some(Duration::from_secs(60))
        );
        let wrong = text.replace("mirror = 0.5\n", "mirror = 0.5\nextend_up_to = 0.5\n");
        let issues = check(&wrong, &|_| None).unwrap_err();
        assert!(
            issues.contains("migration.extend_up_to must be from 1 (never extend a phase) to 100"),
            "{issues}"
        );
    }

    #[test]
    fn migration_mistakes_are_named_where_they_are() {
        let text = format!(
            r#"{TWO_TARGETS}
[migration]
primary = "official"
candidate = "relai"
[[migration.phases]]
share = 1.5
[[migration.phases]]
share = 1
requests = 10
mirror = 0
gates = {{ max_regression = {{ "ttfx.p99" = 0.1 }}, max_error_rate = 5 }}
"#
        );
        let error = check(&text, &|_| None).unwrap_err();
        for expected in [
            "migration.candidate names no target: \"relai\" (targets: \"official\", \"relay\")",
            "migration.phases[0].share must be a fraction from 0 to 1 (got 1.5)",
            "needs a length: duration = \"2m\" or requests = 500",
            "max_regression.ttfx.p99 unknown latency \"ttfx\" (did you mean ttft or ttfb?): use one of ttft,",
            "max_error_rate must be a fraction from 0 to 1 (got 5; 0.01 is 1%)",
            "sends every request to one side and mirrors nothing",
        ] {
            assert!(
                error.contains(expected),
                "missing {expected:?} in:\n{error}"
            );
        }
        // Each message points at its value's line and column.
        let share_line = text.lines().position(|l| l == "share = 1.5").unwrap() + 1;
        assert!(
            error.contains(&format!("s.toml:{share_line}:9: migration.phases[0].share")),
            "no location for the share: {error}"
        );
    }

    #[test]
    fn routing_rules_pick_classes_by_label_in_order() {
        let text = r#"
[[targets]]
name = "r"
model = "m"
routing = [
  { when = { priority = "low", tags = { team = "search" } }, to = "batch-api" },
  { when = { user_facing = true }, to = "live" },
  { when = { max_latency_at_least = "1h" }, to = "batch-api" },
]
[targets.mock]
[[classes]]
name = "low-search"
input_tokens = 4
labels = { priority = "low", tags = { team = "search" } }
[[classes]]
name = "low-other"
input_tokens = 4
labels = { priority = "low", tags = { team = "ads" } }
[[classes]]
name = "facing-but-patient"
input_tokens = 4
labels = { user_facing = true, max_latency = "2h" }
[[classes]]
name = "patient"
input_tokens = 4
labels = { max_latency = "2h" }
[[classes]]
name = "unlabelled"
input_tokens = 4
[load]
kind = "closed"
users = 1
requests = 10
"#;
        let plan = check(text, &|_| None).unwrap();
        assert_eq!(
            plan.targets[0].batch_classes,
            vec![true, false, false, true, false]
        );
        assert!(plan.targets[0].is_routed());
        let endless = text.replace("requests = 10", "duration = \"5s\"");
        let error = check(&endless, &|_| None).unwrap_err();
        assert!(
            error.contains("targets[0].routing sends classes through the Batch API"),
            "{error}"
        );
        let on_batch = text.replace(
            "model = \"m\"\nrouting",
            "model = \"m\"\nmode = \"batch-api\"\nrouting",
        );
        let error = check(&on_batch, &|_| None).unwrap_err();
        assert!(
            error.contains("routing is for stream or complete targets"),
            "{error}"
        );
    }

    #[test]
    fn a_minimal_open_loop_plans_one_stage() {
        let text = format!("{BASE}\n[load]\nkind = \"open\"\nrate = 5\nduration = \"2s\"\n");
        let plan = check(&text, &|_| None).unwrap();
        assert_eq!(plan.load.duration, Some(Duration::from_secs(2)));
        assert!(matches!(&plan.load.shape, LoadShape::Open { stages, .. } if stages.len() == 1));
        assert_eq!(plan.name, "s");
    }

    #[test]
    fn stage_durations_add_up() {
        let text = format!(
            "{BASE}\n[load]\nkind = \"open\"\nstages = [{{ rate = 1, duration = \"2s\" }}, {{ rate = 2, end_rate = 4, duration = \"3s\" }}]\n"
        );
        let plan = check(&text, &|_| None).unwrap();
        assert_eq!(plan.load.duration, Some(Duration::from_secs(5)));
    }

    #[test]
    fn negative_rate_points_at_the_value() {
        let text = format!("{BASE}\n[load]\nkind = \"open\"\nrate = -1\nduration = \"2s\"\n");
        let error = check(&text, &|_| None).unwrap_err();
        assert_eq!(
            error,
            "s.toml:14:8: load.rate must be from 0.0001 to 1000000 requests per second (got -1)"
        );
    }

    #[test]
    fn key_env_var_is_resolved_and_missing_ones_are_named() {
        let text = format!(
            "{}\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 3\n",
            BASE.replace("model = \"mock\"", "model = \"mock\"\napi_key_env = \"K\"")
        );
        let plan = check(&text, &|name| (name == "K").then(|| "sk-1".to_string())).unwrap();
        assert_eq!(plan.targets[0].api_key.as_ref().unwrap().expose(), "sk-1");
        assert_eq!(plan.secrets(), vec!["sk-1".to_string()]);
        // An embedded mock runs without its key; a real endpoint is refused without it.
        let unkeyed = check(&text, &|_| None).unwrap();
        assert!(unkeyed.targets[0].api_key.is_none());
        let real = text.replace(
            "[targets.mock]\nttft = \"10ms\"",
            "base_url = \"http://127.0.0.1:9/v1\"",
        );
        let error = check(&real, &|_| None).unwrap_err();
        assert!(error.contains("targets[0].api_key_env environment variable K is not set"));
        assert!(error.starts_with("s.toml:5:15:"), "{error}");
    }

    #[test]
    fn server_metrics_are_checked_with_their_place() {
        let with = |metrics: &str, real: bool| {
            let mut text = BASE.replace(
                "model = \"mock\"",
                &format!("model = \"mock\"\nserver_metrics = {metrics}"),
            );
            if real {
                text = text.replace(
                    "[targets.mock]\nttft = \"10ms\"",
                    "base_url = \"http://127.0.0.1:9/v1\"",
                );
            }
            check(
                &format!("{text}\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 3\n"),
                &|_| None,
            )
        };
        // An embedded mock scrapes its own page; defaults filled in.
        let plan = with("{ keep = [\"vllm:*\"] }", false).unwrap();
        let metrics = plan.targets[0].server_metrics.clone().unwrap();
        assert_eq!(metrics.url, None);
        assert_eq!(metrics.every, Duration::from_secs(1));
        assert_eq!(metrics.timeout, Duration::from_secs(1));
        assert_eq!(metrics.max_bytes, 4 * 1024 * 1024);
        // A real endpoint must say where its page is.
        let error = with("{ every = \"2s\" }", true).unwrap_err();
        assert!(
            error.starts_with("s.toml:5:18: targets[0].server_metrics needs url"),
            "{error}"
        );
        for (metrics, expected) in [
            (
                "{ url = \"ftp://x/metrics\" }",
                "server_metrics.url \"ftp://x/metrics\" is not an http:// or https:// URL",
            ),
            (
                "{ every = \"10ms\" }",
                "server_metrics.every must be from 100ms to 1h",
            ),
            (
                "{ every = \"1s\", timeout = \"2s\" }",
                "server_metrics.timeout must be more than 0 and at most every (1s)",
            ),
            (
                "{ max_bytes = 10 }",
                "server_metrics.max_bytes must be from 1024",
            ),
            (
                "{ keep = [\"vllm:num requests\"] }",
                "server_metrics.keep[0] \"vllm:num requests\" is not a metric name",
            ),
            ("{ urls = \"x\" }", "unknown field `urls`"),
        ] {
            let error = with(metrics, false).unwrap_err();
            assert!(error.contains(expected), "{metrics}: {error}");
        }
    }

    #[test]
    fn closed_loop_rejects_open_loop_keys() {
        let text =
            format!("{BASE}\n[load]\nkind = \"closed\"\nusers = 2\nrate = 3\nrequests = 5\n");
        let error = check(&text, &|_| None).unwrap_err();
        assert!(
            error.contains("load.rate belongs to kind = \"open\""),
            "{error}"
        );
    }

    #[test]
    fn an_anthropic_target_batches_through_message_batches_with_anthropics_limits() {
        let batched = BASE.replace(
            "model = \"mock\"",
            "model = \"mock\"\napi = \"anthropic\"\nmode = \"batch-api\"",
        );
        let text = format!("{batched}\n[load]\nkind = \"closed\"\nusers = 1\nrequests = 5\n");
        let plan = check(&text, &|_| None).unwrap();
        let batch = &plan.targets[0].batch;
        assert_eq!(
            (batch.max_requests, batch.max_bytes),
            (100_000, 256 * 1024 * 1024)
        );
        let windowed = text.replace(
            "mode = \"batch-api\"",
            "mode = \"batch-api\"\nbatch = { completion_window = \"24h\" }",
        );
        let error = check(&windowed, &|_| None).unwrap_err();
        assert!(
            error.contains("targets[0].batch.completion_window is OpenAI's"),
            "{error}"
        );
        // An OpenAI target keeps OpenAI's limits.
        let openai = text.replace("api = \"anthropic\"\n", "");
        let plan = check(&openai, &|_| None).unwrap();
        assert_eq!(plan.targets[0].batch.max_requests, 50_000);
    }
}
