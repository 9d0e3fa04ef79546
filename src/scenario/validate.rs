//! Checks a deserialized scenario and builds the [`RunPlan`]: ranges, required combinations,
//! environment variables for keys, datasets. Every problem found is reported, each with its place.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use super::locate::{locate, KeyPath};
use super::schema::{
    CostSpec, LatencySpec, LengthKind, LengthSpec, LoadKind, LoadSpec, MockSpec, SamplingSpec,
    ScenarioFile, SpreadKind, TargetMode,
};
use super::{
    is_sensitive_header, BatchOptions, ClassPlan, CostPlan, Endpoint, LoadPlan, LoadShape,
    RetryPolicy, RunPlan, ScenarioError, ScenarioIssue, Secret, StagePlan, TargetPlan, Timeouts,
    TlsOptions,
};
use crate::cost::{Currencies, PricedMode, PricingTable, TargetPricing};
use crate::mock::{Fault, FaultPlan, LatencyModel, MockConfig};
use crate::workload::{
    Dataset, DatasetFormat, DatasetSource, InputFilter, LengthModel, PromptSource, Sampling,
    SessionPlan, SharedPrefix, Trace, TracePrompt,
};

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

    let name = match &file.name {
        Some(name) if name.trim().is_empty() => {
            checker.fail(&root.key("name"), "must not be empty");
            String::new()
        }
        Some(name) => name.clone(),
        None => path
            .file_stem()
            .map_or("scenario".into(), |s| s.to_string_lossy().into_owned()),
    };

    if file.targets.is_empty() {
        checker.fail(
            &root.key("targets"),
            "is missing: add at least one [[targets]] table (base_url or mock)",
        );
    }
    let (cost, table, currencies) = cost_setup(
        &mut checker,
        &root.key("cost"),
        file.cost.as_ref(),
        base_dir,
    );
    let mut target_names = HashSet::new();
    let mut targets = Vec::new();
    for (index, spec) in file.targets.iter().enumerate() {
        let key = root.key("targets").index(index);
        if spec.name.trim().is_empty() {
            checker.fail(&key.key("name"), "must not be empty");
        } else if !target_names.insert(spec.name.clone()) {
            checker.fail(
                &key.key("name"),
                format!("\"{}\" is used by another target", spec.name),
            );
        }
        if spec.model.trim().is_empty() {
            checker.fail(&key.key("model"), "must not be empty");
        }
        let endpoint = match (&spec.base_url, &spec.mock) {
            (Some(_), Some(_)) => {
                checker.fail(&key.key("mock"), "set either base_url or mock, not both");
                None
            }
            (None, None) => {
                checker.fail(
                    &key,
                    format!(
                        "target \"{}\" needs base_url (a real endpoint) or a [targets.mock] table",
                        spec.name
                    ),
                );
                None
            }
            (Some(url), None) => check_base_url(&mut checker, &key.key("base_url"), url),
            // Each embedded mock draws its own latencies and faults: two mocks with the same
            // settings behave alike but not identically, as two providers would.
            (None, Some(mock)) => Some(Endpoint::Mock(Box::new(mock_config(
                &mut checker,
                &key.key("mock"),
                mock,
                seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            )))),
        };
        let api_key = match &spec.api_key_env {
            Some(var) if var.trim().is_empty() => {
                checker.fail(&key.key("api_key_env"), "must name an environment variable");
                None
            }
            Some(var) => match env(var) {
                Some(value) if !value.is_empty() => Some(Secret::new(value)),
                _ => {
                    checker.fail(
                        &key.key("api_key_env"),
                        format!(
                            "environment variable {var} is not set (target \"{}\" reads its API key from it)",
                            spec.name
                        ),
                    );
                    None
                }
            },
            None => None,
        };
        let mut headers = Vec::new();
        for (header, value) in &spec.headers {
            let header_key = key.key("headers").key(header);
            match (
                HeaderName::from_bytes(header.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                (Ok(name), Ok(mut value)) => {
                    value.set_sensitive(is_sensitive_header(header));
                    headers.push((name, value));
                }
                (Err(_), _) => checker.fail(&header_key, "is not a valid HTTP header name"),
                (_, Err(_)) => checker.fail(&header_key, "is not a valid HTTP header value"),
            }
        }
        for reserved in ["model", "messages", "stream", "max_tokens"] {
            if spec.extra_body.contains_key(reserved) {
                checker.fail(
                    &key.key("extra_body").key(reserved),
                    "is set by drover; use the target's model/mode or the class's max_tokens",
                );
            }
        }
        if let Some(retry) = &spec.retry {
            if retry.max > 10 {
                checker.fail(&key.key("retry").key("max"), "must be at most 10");
            }
            if retry
                .max_retry_after
                .is_some_and(|d| d.0 > crate::retry_after::CEILING)
            {
                checker.fail(
                    &key.key("retry").key("max_retry_after"),
                    "must be at most 24h (the longest Retry-After drover reads)",
                );
            }
        }
        let tls = TlsOptions {
            extra_roots: spec.ca_file.as_ref().map_or_else(Vec::new, |file| {
                load_ca_file(&mut checker, &key.key("ca_file"), &base_dir.join(file))
            }),
            insecure: spec.insecure_skip_verify.unwrap_or(false),
        };
        let defaults = Timeouts::default();
        let mut timeout = |name: &str, value: Option<super::schema::HumanDuration>, default| {
            let value = value.map_or(default, |t| t.0);
            checker.non_zero(&key.key(name), value);
            value
        };
        let timeouts = Timeouts {
            connect: timeout("connect_timeout", spec.connect_timeout, defaults.connect),
            first_byte: timeout(
                "first_byte_timeout",
                spec.first_byte_timeout,
                defaults.first_byte,
            ),
            idle: timeout("idle_timeout", spec.idle_timeout, defaults.idle),
            total: timeout("timeout", spec.timeout, defaults.total),
        };
        let batch = batch_options(&mut checker, &key.key("batch"), spec);
        if spec.api == crate::scenario::Api::Anthropic {
            if spec.mode == TargetMode::BatchApi {
                checker.fail(
                    &key.key("mode"),
                    "\"batch-api\" is OpenAI's Batch API; an api = \"anthropic\" target streams or completes live",
                );
            }
            if spec.routing.is_some() {
                checker.fail(
                    &key.key("routing"),
                    "routes to OpenAI's Batch API, which an api = \"anthropic\" target does not speak",
                );
            }
        }
        let batch_price = match &spec.routing {
            Some(_) if spec.mode == TargetMode::BatchApi => {
                checker.fail(
                    &key.key("routing"),
                    "is for stream or complete targets (a batch-api target sends everything through the Batch API)",
                );
                None
            }
            Some(_) => {
                // Routed requests are priced at the Batch API discount; errors were reported
                // for the target's own price already.
                let choices = TargetPricing {
                    model: spec.pricing.as_ref().and_then(|p| p.model.clone()),
                    bill_currency: spec.pricing.as_ref().and_then(|p| p.bill_currency.clone()),
                    bill_rate: spec.pricing.as_ref().and_then(|p| p.bill_rate),
                    discount: None,
                };
                crate::cost::resolve(
                    &table,
                    &currencies,
                    &spec.model,
                    &choices,
                    PricedMode::BatchApi,
                )
                .ok()
                .flatten()
            }
            None => None,
        };
        let price = target_price(&mut checker, &key.key("pricing"), &table, &currencies, spec);
        if let Some(endpoint) = endpoint {
            targets.push(TargetPlan {
                name: spec.name.clone(),
                endpoint,
                api_key_env: spec.api_key_env.clone(),
                api_key,
                model: spec.model.clone(),
                api: spec.api,
                mode: spec.mode,
                headers,
                extra_body: spec.extra_body.clone(),
                model_map: spec.model_map.clone(),
                timeouts,
                http: spec.http,
                tls,
                retry: spec.retry.as_ref().map(|r| RetryPolicy {
                    max_retries: r.max,
                    base: r.base.map_or(Duration::from_millis(250), |d| d.0),
                    max_backoff: r.max_backoff.map_or(Duration::from_secs(8), |d| d.0),
                    max_retry_after: r.max_retry_after.map_or(Duration::from_secs(60), |d| d.0),
                }),
                stream_usage: spec.stream_usage.unwrap_or(true),
                price,
                batch,
                tokenizer: spec.tokenizer.unwrap_or_default(),
                batch_classes: Vec::new(),
                batch_price,
                budget: spec.pricing.as_ref().and_then(|p| p.budget),
            });
        }
    }

    if file.classes.is_empty() {
        checker.fail(
            &root.key("classes"),
            "is empty: the traffic mix needs at least one [[classes]] table",
        );
    }
    let mut class_names = HashSet::new();
    let mut classes = Vec::new();
    for (index, spec) in file.classes.iter().enumerate() {
        let key = root.key("classes").index(index);
        if spec.name.trim().is_empty() {
            checker.fail(&key.key("name"), "must not be empty");
        } else if !class_names.insert(spec.name.clone()) {
            checker.fail(
                &key.key("name"),
                format!("\"{}\" is used by another class", spec.name),
            );
        }
        let weight = spec.weight.unwrap_or(1.0);
        if !(weight.is_finite() && weight > 0.0) {
            checker.fail(&key.key("weight"), format!("must be > 0 (got {weight})"));
        }
        let is_trace = file
            .load
            .as_ref()
            .is_some_and(|l| l.kind == LoadKind::Trace);
        let tokenizer = spec.tokenizer.unwrap_or_default();
        let prompt = match (&spec.input_tokens, &spec.dataset) {
            (Some(_), Some(_)) => {
                checker.fail(
                    &key.key("dataset"),
                    "set either input_tokens or dataset, not both",
                );
                None
            }
            (None, None) if is_trace => Some(PromptSource::TraceOnly),
            (None, None) => {
                checker.fail(
                    &key,
                    format!(
                        "class \"{}\" needs a prompt source: input_tokens or dataset",
                        spec.name
                    ),
                );
                None
            }
            (Some(lengths), None) => length_model(
                &mut checker,
                &key.key("input_tokens"),
                lengths,
                base_dir,
                tokenizer,
            )
            .map(|lengths| PromptSource::Synthetic {
                lengths,
                unique: spec.unique_prompts.unwrap_or(true),
            }),
            (None, Some(dataset)) => {
                let format = dataset_format(
                    &mut checker,
                    &key.key("dataset_format"),
                    spec.dataset_format.as_deref(),
                );
                let filter = InputFilter {
                    min_tokens: spec.min_input_tokens,
                    max_tokens: spec.max_input_tokens,
                    tokenizer,
                };
                if let (Some(min), Some(max)) = (filter.min_tokens, filter.max_tokens) {
                    if min > max {
                        checker.fail(
                            &key.key("min_input_tokens"),
                            format!("{min} is above max_input_tokens {max}"),
                        );
                    }
                }
                match Dataset::load(&base_dir.join(dataset), format, filter) {
                    Ok(data) => {
                        let sampling = match spec.sampling.unwrap_or(SamplingSpec::Random) {
                            SamplingSpec::Random => Sampling::Random,
                            SamplingSpec::Sequential => Sampling::Sequential,
                            SamplingSpec::Shuffle => Sampling::Shuffle,
                        };
                        Some(PromptSource::Dataset(DatasetSource::new(
                            Arc::new(data),
                            sampling,
                            seed,
                        )))
                    }
                    Err(error) => {
                        checker.fail(&key.key("dataset"), error.to_string());
                        None
                    }
                }
            }
        };
        if spec.dataset.is_none() {
            for (field, present) in [
                ("dataset_format", spec.dataset_format.is_some()),
                ("sampling", spec.sampling.is_some()),
                ("min_input_tokens", spec.min_input_tokens.is_some()),
                ("max_input_tokens", spec.max_input_tokens.is_some()),
            ] {
                if present {
                    checker.fail(&key.key(field), "applies to a dataset: set dataset too");
                }
            }
        }
        if spec.unique_prompts.is_some() && spec.input_tokens.is_none() {
            checker.fail(
                &key.key("unique_prompts"),
                "applies to synthetic prompts: set input_tokens too",
            );
        }
        let max_tokens = spec.max_tokens.as_ref().and_then(|lengths| {
            length_model(
                &mut checker,
                &key.key("max_tokens"),
                lengths,
                base_dir,
                tokenizer,
            )
        });
        if spec.min_tokens == Some(0) {
            checker.fail(&key.key("min_tokens"), "must be at least 1");
        }
        let shared_prefix = spec.shared_prefix.as_ref().and_then(|shared| {
            let prefix_key = key.key("shared_prefix");
            let fraction = shared.fraction.unwrap_or(1.0);
            let before = checker.issues.len();
            if shared.prompts == 0 {
                checker.fail(&prefix_key.key("prompts"), "must be at least 1");
            }
            if shared.tokens == 0 {
                checker.fail(&prefix_key.key("tokens"), "must be at least 1");
            }
            if !(0.0..=1.0).contains(&fraction) {
                checker.fail(
                    &prefix_key.key("fraction"),
                    format!("must be between 0 and 1 (got {fraction})"),
                );
            }
            (checker.issues.len() == before)
                .then(|| SharedPrefix::new(&spec.name, shared.prompts, shared.tokens, fraction))
        });
        let session = match spec.turns {
            Some(0) => {
                checker.fail(&key.key("turns"), "must be at least 1");
                None
            }
            Some(turns) if turns > 1 => Some(SessionPlan {
                turns,
                think_time: spec.think_time.map_or(Duration::ZERO, |d| d.0),
            }),
            _ => {
                if spec.think_time.is_some() {
                    checker.fail(
                        &key.key("think_time"),
                        "is the pause between turns: set turns above 1",
                    );
                }
                None
            }
        };
        if session.is_some() && is_trace {
            checker.fail(
                &key.key("turns"),
                "a trace replays single requests; multi-turn sessions need an open or closed load",
            );
        }
        if let Some(prompt) = prompt {
            classes.push(ClassPlan {
                name: spec.name.clone(),
                weight,
                prompt,
                max_tokens,
                min_tokens: spec.min_tokens,
                ignore_eos: spec.ignore_eos,
                shared_prefix,
                session,
                model: spec.model.clone(),
                labels: spec.labels.to_class_labels(),
            });
        }
    }

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
    if let Some(trace) = load.as_ref().and_then(|l| l.shape.trace()) {
        // A line without a prompt draws from its class, which must have a prompt source.
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

    // Which classes each target sends through the Batch API.
    for (target, spec) in targets.iter_mut().zip(&file.targets) {
        target.batch_classes = classes
            .iter()
            .map(|class| match spec.mode {
                TargetMode::BatchApi => true,
                _ => spec.routing.as_ref().is_some_and(|rules| {
                    rules
                        .iter()
                        .find(|rule| {
                            rule.when
                                .as_ref()
                                .is_none_or(|when| when.matches(&class.labels))
                        })
                        .is_some_and(|rule| rule.to == super::schema::RouteTo::BatchApi)
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
    if let Some(plan) = &load {
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
            if spec.mode == TargetMode::BatchApi && unknown_count {
                checker.fail(
                    &root.key("targets").index(index).key("mode"),
                    "\"batch-api\" submits every request at once, so it needs to know how many: \
                     set load.requests (a closed loop's duration does not tell)",
                );
            }
        }
    }
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
        shard: crate::shard::Shard::WHOLE,
        start_at: None,
        cost,
        slo,
        sweep,
        migration,
        shadow: None,
    })
}

/// Checks `[migration]`: two live targets, single-turn classes, phases with a share and a
/// length, and gates with sensible thresholds.
fn migration_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::MigrationSpec,
    targets: &[TargetPlan],
    classes: &[ClassPlan],
    load: Option<&LoadPlan>,
    has_sweep: bool,
) -> Option<crate::scenario::MigrationPlan> {
    use crate::scenario::{MigrationPlan, PhasePlan};
    let before = checker.issues.len();
    let mut side = |field: &str, name: &str| -> Option<usize> {
        let found = targets.iter().position(|t| t.name == name);
        match found {
            None => checker.fail(
                &key.key(field),
                format!(
                    "names no target: \"{name}\" (targets: {})",
                    targets
                        .iter()
                        .map(|t| format!("\"{}\"", t.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            Some(index)
                if targets[index].mode == TargetMode::BatchApi || targets[index].is_routed() =>
            {
                checker.fail(
                    &key.key(field),
                    format!("target \"{name}\" sends through the Batch API: shadow pairs need live requests"),
                );
            }
            Some(_) => {}
        }
        found
    };
    let primary = side("primary", &spec.primary);
    let candidate = side("candidate", &spec.candidate);
    if primary.is_some() && primary == candidate {
        checker.fail(
            &key.key("candidate"),
            "is the primary: name a different target to compare with it",
        );
    }
    if targets.len() != 2 && primary.is_some() && candidate.is_some() {
        let others: Vec<String> = targets
            .iter()
            .filter(|t| t.name != spec.primary && t.name != spec.candidate)
            .map(|t| format!("\"{}\"", t.name))
            .collect();
        checker.fail(
            key,
            format!(
                "a migration drives exactly its primary and candidate; remove the other targets ({})",
                others.join(", ")
            ),
        );
    }
    for class in classes.iter().filter(|c| c.session.is_some()) {
        checker.fail(
            key,
            format!(
                "class \"{}\" is multi-turn; shadow pairs compare single requests, so a migration takes single-turn classes only",
                class.name
            ),
        );
    }
    if has_sweep {
        checker.fail(
            key,
            "cannot be combined with [sweep]: run them as separate scenarios",
        );
    }
    if let Some(LoadShape::Open { stages, .. }) = load.map(|l| &l.shape) {
        if stages.len() > 1 && !spec.phases.is_empty() {
            checker.fail(
                key,
                "phases set their own length: give [load] a single rate, not stages",
            );
        }
    }
    let fraction = |checker: &mut Checker, at: &KeyPath, value: f64| {
        if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
            checker.fail(at, format!("must be a fraction from 0 to 1 (got {value})"));
        }
    };
    let mirror = spec.mirror.unwrap_or(1.0);
    if spec.mirror.is_some() {
        fraction(checker, &key.key("mirror"), mirror);
    }
    let extend_up_to = spec.extend_up_to.unwrap_or(DEFAULT_EXTEND_UP_TO);
    if !(extend_up_to.is_finite() && (1.0..=MAX_EXTEND_UP_TO).contains(&extend_up_to)) {
        checker.fail(
            &key.key("extend_up_to"),
            format!(
                "must be from 1 (never extend a phase) to {MAX_EXTEND_UP_TO} (got {extend_up_to})"
            ),
        );
    }
    let defaults = spec.gates.clone().unwrap_or_default();
    let default_gates = gate_plan(checker, &key.key("gates"), &defaults);
    let priced = |index: Option<usize>| index.is_some_and(|i| targets[i].price.is_some());
    let mut phases = Vec::new();
    if spec.phases.is_empty() {
        phases.push(PhasePlan {
            name: "shadow".into(),
            share: 0.0,
            mirror: 1.0,
            duration: None,
            requests: None,
            gates: default_gates.clone(),
        });
        if spec.mirror.is_some_and(|m| m < 1.0) {
            checker.fail(
                &key.key("mirror"),
                "without phases the run is one shadow phase that pairs every request; set phases to mirror a fraction",
            );
        }
    }
    for (index, phase) in spec.phases.iter().enumerate() {
        let at = key.key("phases").index(index);
        fraction(checker, &at.key("share"), phase.share);
        let phase_mirror = phase.mirror.unwrap_or(mirror);
        if phase.mirror.is_some() {
            fraction(checker, &at.key("mirror"), phase_mirror);
        }
        match (&phase.duration, phase.requests) {
            (Some(_), Some(_)) => checker.fail(&at, "give duration or requests, not both"),
            (None, None) => {
                checker.fail(&at, "needs a length: duration = \"2m\" or requests = 500")
            }
            (Some(duration), None) if duration.0.is_zero() => {
                checker.fail(&at.key("duration"), "must be longer than 0")
            }
            (None, Some(0)) => checker.fail(&at.key("requests"), "must be at least 1"),
            _ => {}
        }
        // A phase's own gates replace the migration's, gate by gate.
        let (gates_key, gates) = match &phase.gates {
            Some(own) => {
                let own = own.clone();
                let mut merged = defaults.clone();
                merged.max_error_rate = own.max_error_rate.or(merged.max_error_rate);
                merged.max_throttle_rate = own.max_throttle_rate.or(merged.max_throttle_rate);
                merged.max_regression.extend(own.max_regression);
                merged.min_agreement = own.min_agreement.or(merged.min_agreement);
                merged.max_cost_ratio = own.max_cost_ratio.or(merged.max_cost_ratio);
                merged.max_cost = own.max_cost.or(merged.max_cost);
                let at_gates = at.key("gates");
                let plan = gate_plan(checker, &at_gates, &merged);
                (at_gates, plan)
            }
            None => (key.key("gates"), default_gates.clone()),
        };
        if gates.min_agreement.is_some() && phase_mirror == 0.0 {
            checker.fail(
                &gates_key.key("min_agreement"),
                "needs paired answers, but the phase mirrors nothing: raise mirror",
            );
        }
        if (phase.share == 0.0 || phase.share == 1.0) && phase_mirror == 0.0 {
            checker.fail(
                &at,
                "sends every request to one side and mirrors nothing, so it measures one side only: raise mirror",
            );
        }
        phases.push(PhasePlan {
            name: phase
                .name
                .clone()
                .unwrap_or_else(|| format!("phase {}", index + 1)),
            share: phase.share,
            mirror: phase_mirror,
            duration: phase.duration.as_ref().map(|d| d.0),
            requests: phase.requests,
            gates,
        });
    }
    let wants_cost = phases
        .iter()
        .any(|p| p.gates.max_cost.is_some() || p.gates.max_cost_ratio.is_some());
    if wants_cost && !(priced(primary) && priced(candidate)) {
        checker.fail(
            &key.key("gates"),
            "max_cost and max_cost_ratio need both targets priced (a model in the pricing table, or a price override)",
        );
    }
    if checker.issues.len() > before {
        return None;
    }
    Some(MigrationPlan {
        primary: primary?,
        candidate: candidate?,
        phases,
        extend_up_to,
    })
}

/// Checks one phase's gates.
fn gate_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::GatesSpec,
) -> crate::scenario::GatePlan {
    use crate::scenario::{GatePlan, RegressionGate};
    let mut fraction = |name: &str, value: Option<f64>| -> Option<f64> {
        let value = value?;
        if !(value.is_finite() && (0.0..=1.0).contains(&value)) {
            checker.fail(
                &key.key(name),
                format!("must be a fraction from 0 to 1 (got {value}; 0.01 is 1%)"),
            );
        }
        Some(value)
    };
    let max_error_rate = fraction("max_error_rate", spec.max_error_rate);
    let max_throttle_rate = fraction("max_throttle_rate", spec.max_throttle_rate);
    let min_agreement = fraction("min_agreement", spec.min_agreement);
    let mut max_regression = Vec::new();
    for (name, max) in &spec.max_regression {
        let at = key.key("max_regression").key(name);
        match crate::slo::parse_latency_quantile(name) {
            Err(message) => checker.fail(&at, message),
            Ok(_) if !(max.is_finite() && *max >= 0.0) => checker.fail(
                &at,
                format!("must be a relative regression of at least 0 (got {max}; 0.25 allows 25% slower)"),
            ),
            Ok((histogram, quantile)) => max_regression.push(RegressionGate {
                key: name.clone(),
                histogram,
                quantile,
                max: *max,
            }),
        }
    }
    let positive = |checker: &mut Checker, name: &str, value: Option<f64>| {
        if let Some(value) = value {
            if !(value.is_finite() && value >= 0.0) {
                checker.fail(&key.key(name), format!("must be at least 0 (got {value})"));
            }
        }
        value
    };
    GatePlan {
        max_error_rate,
        max_throttle_rate,
        max_regression,
        min_agreement,
        max_cost_ratio: positive(checker, "max_cost_ratio", spec.max_cost_ratio),
        max_cost: positive(checker, "max_cost", spec.max_cost),
    }
}

/// Checks `[sweep]`: what it varies must match the load's kind, the values must rise, and the
/// SLOs that decide each step must exist.
fn sweep_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::SweepSpec,
    load: Option<&LoadPlan>,
    has_slo: bool,
) -> Option<crate::scenario::SweepPlan> {
    use crate::scenario::{SweepOver, SweepPlan};
    let before = checker.issues.len();
    let over = match spec.over.as_str() {
        "rate" => Some(SweepOver::Rate),
        "users" => Some(SweepOver::Users),
        other => {
            checker.fail(
                &key.key("over"),
                format!("\"{other}\" is not something a sweep varies: use \"rate\" (open loop) or \"users\" (closed loop)"),
            );
            None
        }
    };
    match (over, load.map(|l| &l.shape)) {
        (Some(SweepOver::Rate), Some(LoadShape::Open { stages, .. })) if stages.len() > 1 => {
            checker.fail(
                &key.key("over"),
                "a rate sweep replaces the load's rate: give [load] a single rate, not stages",
            );
        }
        (Some(SweepOver::Rate), Some(LoadShape::Closed { .. } | LoadShape::Trace { .. })) => {
            checker.fail(&key.key("over"), "\"rate\" needs load.kind = \"open\"");
        }
        (Some(SweepOver::Users), Some(LoadShape::Open { .. } | LoadShape::Trace { .. })) => {
            checker.fail(&key.key("over"), "\"users\" needs load.kind = \"closed\"");
        }
        _ => {}
    }
    if spec.values.is_empty() {
        checker.fail(
            &key.key("values"),
            "is empty: list the loads to try, rising",
        );
    }
    for (index, value) in spec.values.iter().enumerate() {
        if !(value.is_finite() && *value > 0.0) {
            checker.fail(
                &key.key("values").index(index),
                format!("must be a number above 0 (got {value})"),
            );
        } else if over == Some(SweepOver::Users) && value.fract() != 0.0 {
            checker.fail(
                &key.key("values").index(index),
                format!("users must be whole numbers (got {value})"),
            );
        } else if index > 0 && *value <= spec.values[index - 1] {
            checker.fail(
                &key.key("values").index(index),
                format!(
                    "must be above the value before it ({})",
                    spec.values[index - 1]
                ),
            );
        }
    }
    let step_duration = spec.step_duration.0;
    if step_duration.is_zero() {
        checker.fail(&key.key("step_duration"), "must be longer than 0");
    }
    if !has_slo {
        checker.fail(
            key,
            "needs [slo] assertions: they decide which steps still meet the target",
        );
    }
    if checker.issues.len() > before {
        return None;
    }
    Some(SweepPlan {
        over: over?,
        values: spec.values.clone(),
        step_duration,
        stop_at_first_failure: spec.stop_at_first_failure.unwrap_or(true),
    })
}

/// Parses `[slo]` assertions and checks that their scopes name real targets and classes.
fn slo_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &crate::scenario::schema::SloSpec,
    targets: &[TargetPlan],
    classes: &[ClassPlan],
) -> crate::slo::SloPlan {
    let confidence = spec.confidence.unwrap_or(0.95);
    if !(0.5..=0.9999).contains(&confidence) {
        checker.fail(
            &key.key("confidence"),
            format!("must be between 0.5 and 0.9999 (got {confidence})"),
        );
    }
    if spec.assert.is_empty() {
        checker.fail(
            &key.key("assert"),
            "is empty: list assertions such as \"ttft.p99 < 200ms\" or \"error_rate < 1%\"",
        );
    }
    let mut assertions = Vec::new();
    for (index, text) in spec.assert.iter().enumerate() {
        let at = key.key("assert").index(index);
        match crate::slo::parse(text) {
            Err(message) => checker.fail(&at, message),
            Ok(assertion) => {
                if let Some(target) = &assertion.target {
                    if !targets.iter().any(|t| t.name == *target) {
                        checker.fail(
                            &at,
                            format!("names target \"{target}\", which the scenario does not have"),
                        );
                    }
                }
                if let Some(class) = &assertion.class {
                    if !classes.iter().any(|c| c.name == *class) {
                        checker.fail(
                            &at,
                            format!("names class \"{class}\", which the scenario does not have"),
                        );
                    }
                }
                assertions.push(assertion);
            }
        }
    }
    crate::slo::SloPlan {
        assertions,
        confidence,
        fail_on_inconclusive: spec.fail_on_inconclusive.unwrap_or(false),
    }
}

/// Reads the pricing table (the scenario's or the built-in one), applies `[cost.models]`, and
/// checks currencies and the projection.
fn cost_setup(
    checker: &mut Checker,
    key: &KeyPath,
    spec: Option<&CostSpec>,
    base_dir: &Path,
) -> (CostPlan, PricingTable, Currencies) {
    let default_spec = CostSpec::default();
    let spec = spec.unwrap_or(&default_spec);
    let builtin = || -> PricingTable {
        toml::from_str(crate::cost::DEFAULT_TABLE).expect("the built-in pricing table parses")
    };
    let (mut table, source) = match &spec.pricing {
        None => (builtin(), crate::cost::DEFAULT_TABLE_NAME.to_string()),
        Some(file) => {
            let path = base_dir.join(file);
            let shown = path.display().to_string();
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read pricing table {shown}: {e}"))
                .and_then(|text| {
                    toml::from_str::<PricingTable>(&text).map_err(|e| {
                        let (line, column) = e
                            .span()
                            .map_or((1, 1), |span| super::line_col(&text, span.start));
                        format!("{shown}:{line}:{column}: {}", e.message().trim())
                    })
                });
            match parsed {
                Ok(table) => (table, shown),
                Err(message) => {
                    checker.fail(&key.key("pricing"), message);
                    (builtin(), shown)
                }
            }
        }
    };
    for (model, price) in &table.models {
        if let Some(problem) = price.problem() {
            checker.fail(
                &key.key("pricing"),
                format!("{source}: model \"{model}\": {problem}"),
            );
        }
    }
    for (model, price) in &spec.models {
        if let Some(problem) = price.problem() {
            checker.fail(&key.key("models").key(model), problem);
        }
        table.models.insert(model.clone(), price.clone());
    }
    let currency = spec
        .currency
        .clone()
        .unwrap_or_else(|| table.currency.clone());
    if currency.trim().is_empty() {
        checker.fail(&key.key("currency"), "must name a currency (e.g. \"USD\")");
    }
    for (name, rate) in &spec.exchange_rates {
        if !(rate.is_finite() && *rate > 0.0) {
            checker.fail(
                &key.key("exchange_rates").key(name),
                format!("must be > 0 units of {name} per 1 {currency} (got {rate})"),
            );
        }
    }
    let projection = spec.projection.as_ref().and_then(|p| {
        use crate::cost::{Projection, ProjectionBasis};
        let given: Vec<(ProjectionBasis, f64)> = [
            (ProjectionBasis::RequestsPerDay, p.requests_per_day),
            (ProjectionBasis::OutputTokensPerDay, p.output_tokens_per_day),
            (ProjectionBasis::TokensPerDay, p.tokens_per_day),
        ]
        .into_iter()
        .filter_map(|(basis, volume)| volume.map(|v| (basis, v)))
        .collect();
        match given.as_slice() {
            [(basis, volume)] if volume.is_finite() && *volume > 0.0 => Some(Projection {
                basis: *basis,
                volume: *volume,
            }),
            [(basis, volume)] => {
                checker.fail(
                    &key.key("projection").key(basis.name()),
                    format!("must be > 0 (got {volume})"),
                );
                None
            }
            _ => {
                checker.fail(
                    &key.key("projection"),
                    "set exactly one of requests_per_day, output_tokens_per_day, tokens_per_day",
                );
                None
            }
        }
    });
    let currencies = Currencies {
        reporting: currency.clone(),
        rates: spec.exchange_rates.clone(),
    };
    if let Some(budget) = spec.budget {
        if !(budget.is_finite() && budget > 0.0) {
            checker.fail(&key.key("budget"), format!("must be > 0 (got {budget})"));
        }
    }
    let alerts = spec.alerts.clone().unwrap_or_else(|| vec![0.5, 0.8]);
    for (index, alert) in alerts.iter().enumerate() {
        if !(*alert > 0.0 && *alert <= 1.0) {
            checker.fail(
                &key.key("alerts").index(index),
                format!("must be a fraction of the budget in (0, 1] (got {alert})"),
            );
        }
    }
    let plan = CostPlan {
        currency,
        table: source,
        as_of: table.as_of.clone(),
        note: table.note.clone(),
        projection,
        budget: spec.budget,
        alerts,
        allow_unpriced: spec.allow_unpriced.unwrap_or(false),
    };
    (plan, table, currencies)
}

/// A target's Batch API settings, checked.
fn batch_options(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &super::schema::TargetSpec,
) -> BatchOptions {
    let defaults = BatchOptions::default();
    let Some(batch) = &spec.batch else {
        return defaults;
    };
    if spec.mode != TargetMode::BatchApi && spec.routing.is_none() {
        checker.fail(
            key,
            "is only used with mode = \"batch-api\" or with routing rules",
        );
    }
    let mut duration = |name: &str, value: Option<super::schema::HumanDuration>, default| {
        let value = value.map_or(default, |d| d.0);
        checker.non_zero(&key.key(name), value);
        value
    };
    let options = BatchOptions {
        poll: duration("poll", batch.poll, defaults.poll),
        max_poll: duration("max_poll", batch.max_poll, defaults.max_poll),
        timeout: duration("timeout", batch.timeout, defaults.timeout),
        max_requests: batch.max_requests.unwrap_or(defaults.max_requests),
        max_bytes: batch.max_bytes.unwrap_or(defaults.max_bytes),
        completion_window: batch
            .completion_window
            .clone()
            .unwrap_or(defaults.completion_window),
    };
    if options.max_requests == 0 {
        checker.fail(&key.key("max_requests"), "must be at least 1");
    }
    if options.max_bytes < 1024 {
        checker.fail(&key.key("max_bytes"), "must be at least 1024");
    }
    if options.max_poll < options.poll {
        checker.fail(&key.key("max_poll"), "must not be shorter than poll");
    }
    options
}

/// A target's price from the table, its `pricing` choices and its mode.
fn target_price(
    checker: &mut Checker,
    key: &KeyPath,
    table: &PricingTable,
    currencies: &Currencies,
    spec: &super::schema::TargetSpec,
) -> Option<crate::cost::Price> {
    let pricing = spec.pricing.clone().unwrap_or_default();
    if let Some(budget) = pricing.budget {
        if !(budget.is_finite() && budget > 0.0) {
            checker.fail(&key.key("budget"), format!("must be > 0 (got {budget})"));
        }
    }
    if let Some(rate) = pricing.bill_rate {
        if !(rate.is_finite() && rate > 0.0) {
            checker.fail(&key.key("bill_rate"), format!("must be > 0 (got {rate})"));
            return None;
        }
    }
    if let Some(discount) = pricing.discount {
        if !(0.0..=1.0).contains(&discount) {
            checker.fail(
                &key.key("discount"),
                format!("must be a fraction between 0 and 1 (got {discount})"),
            );
            return None;
        }
    }
    let mode = if spec.mode == TargetMode::BatchApi {
        PricedMode::BatchApi
    } else if spec.extra_body.get("mode").and_then(|m| m.as_str()) == Some("batch") {
        PricedMode::BatchMode
    } else {
        PricedMode::Standard
    };
    let choices = TargetPricing {
        model: pricing.model.clone(),
        bill_currency: pricing.bill_currency.clone(),
        bill_rate: pricing.bill_rate,
        discount: pricing.discount,
    };
    match crate::cost::resolve(table, currencies, &spec.model, &choices, mode) {
        Ok(price) => price,
        Err(error) => {
            let at = if pricing.model.is_some() && error.0.contains("not in the pricing table") {
                key.key("model")
            } else {
                key.clone()
            };
            checker.fail(&at, error.0);
            None
        }
    }
}

fn check_base_url(checker: &mut Checker, key: &KeyPath, url: &str) -> Option<Endpoint> {
    let trimmed = url.trim_end_matches('/');
    match trimmed.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("http") | Some("https")) && uri.host().is_some() =>
        {
            Some(Endpoint::Url(trimmed.to_string()))
        }
        _ => {
            checker.fail(
                key,
                format!(
                    "\"{url}\" is not an http:// or https:// URL (e.g. https://api.openai.com/v1)"
                ),
            );
            None
        }
    }
}

fn latency_model(checker: &mut Checker, key: &KeyPath, spec: &LatencySpec) -> LatencyModel {
    match spec {
        LatencySpec::Fixed(d) => LatencyModel::Fixed(d.0),
        LatencySpec::Distribution(dist) => {
            if dist.mean.0.is_zero() && !dist.spread.0.is_zero() {
                checker.fail(&key.key("mean"), "must be > 0 when spread is set");
            }
            match dist.dist {
                SpreadKind::Normal => LatencyModel::Normal {
                    mean: dist.mean.0,
                    stddev: dist.spread.0,
                },
                SpreadKind::Uniform => LatencyModel::Uniform {
                    mean: dist.mean.0,
                    half_width: dist.spread.0,
                },
            }
        }
    }
}

fn mock_config(checker: &mut Checker, key: &KeyPath, spec: &MockSpec, seed: u64) -> MockConfig {
    let defaults = MockConfig::default();
    let output_tokens = spec.output_tokens.unwrap_or(defaults.output_tokens);
    if output_tokens > MAX_TOKENS {
        checker.fail(
            &key.key("output_tokens"),
            format!("must be at most {MAX_TOKENS} (got {output_tokens})"),
        );
    }
    if output_tokens == 0 {
        checker.fail(&key.key("output_tokens"), "must be at least 1");
    }
    let faults = spec.faults.as_ref().map_or_else(FaultPlan::default, |f| {
        fault_plan(checker, &key.key("faults"), f)
    });
    MockConfig {
        faults,
        ttft: spec.ttft.as_ref().map_or(defaults.ttft, |s| {
            latency_model(checker, &key.key("ttft"), s)
        }),
        itl: spec
            .itl
            .as_ref()
            .map_or(defaults.itl, |s| latency_model(checker, &key.key("itl"), s)),
        output_tokens,
        prelude: spec.prelude.map(|d| d.0),
        seed,
        batch: crate::mock::BatchMockConfig {
            processing_time: spec
                .batch_processing_time
                .map_or(defaults.batch.processing_time, |d| d.0),
            failure_rate: match spec.batch_failure_rate {
                Some(rate) if !(0.0..=1.0).contains(&rate) => {
                    checker.fail(
                        &key.key("batch_failure_rate"),
                        format!("must be a fraction between 0 and 1 (got {rate})"),
                    );
                    0.0
                }
                Some(rate) => rate,
                None => defaults.batch.failure_rate,
            },
        },
        batch_mode_speedup: match spec.batch_mode_speedup {
            Some(speedup) if !(SPEEDUP_RANGE.0..=SPEEDUP_RANGE.1).contains(&speedup) => {
                checker.fail(
                    &key.key("batch_mode_speedup"),
                    format!(
                        "must be from {} to {} (got {})",
                        SPEEDUP_RANGE.0,
                        SPEEDUP_RANGE.1,
                        number(speedup)
                    ),
                );
                1.0
            }
            Some(speedup) => speedup,
            None => defaults.batch_mode_speedup,
        },
        early_stop: match spec.early_stop {
            Some(p) if !(0.0..=1.0).contains(&p) => {
                checker.fail(
                    &key.key("early_stop"),
                    format!("must be a probability between 0 and 1 (got {p})"),
                );
                0.0
            }
            Some(p) => p,
            None => defaults.early_stop,
        },
        input_usage_scale: match spec.input_usage_scale {
            Some(scale) if !(scale.is_finite() && (0.01..=1000.0).contains(&scale)) => {
                checker.fail(
                    &key.key("input_usage_scale"),
                    format!("must be from 0.01 to 1000 (got {})", number(scale)),
                );
                1.0
            }
            Some(scale) => scale,
            None => defaults.input_usage_scale,
        },
        cache_ttft: spec
            .cache_ttft
            .as_ref()
            .map(|s| latency_model(checker, &key.key("cache_ttft"), s)),
        decode_slots: match spec.decode_slots {
            Some(0) => {
                checker.fail(
                    &key.key("decode_slots"),
                    "must be at least 1 (leave it out for unlimited capacity)",
                );
                None
            }
            slots => slots,
        },
    }
}

/// Reads a PEM file of CA certificates; reports an unreadable file or one without certificates.
fn load_ca_file(checker: &mut Checker, key: &KeyPath, path: &Path) -> Vec<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            checker.fail(key, format!("cannot read {}: {error}", path.display()));
            return Vec::new();
        }
    };
    let certificates: Result<Vec<Vec<u8>>, _> = CertificateDer::pem_slice_iter(&bytes)
        .map(|cert| cert.map(|c| c.as_ref().to_vec()))
        .collect();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => certificates,
        Ok(_) => {
            checker.fail(key, format!("{} holds no PEM certificate", path.display()));
            Vec::new()
        }
        Err(error) => {
            checker.fail(
                key,
                format!("{} is not valid PEM: {error:?}", path.display()),
            );
            Vec::new()
        }
    }
}

fn fault_plan(checker: &mut Checker, key: &KeyPath, spec: &super::schema::FaultsSpec) -> FaultPlan {
    let defaults = FaultPlan::default();
    let mut probabilities = Vec::new();
    let mut total = 0.0;
    for (name, probability) in spec.probabilities() {
        if !(0.0..=1.0).contains(&probability) {
            checker.fail(
                &key.key(name),
                format!("must be a probability from 0 to 1 (got {probability})"),
            );
            continue;
        }
        total += probability;
        if let Some(fault) = Fault::from_name(name) {
            probabilities.push((fault, probability));
        }
    }
    if total > 1.0 + 1e-9 {
        checker.fail(
            key,
            format!("fault probabilities add up to {total}, more than 1"),
        );
    }
    if spec.oversized_bytes == Some(0) {
        checker.fail(&key.key("oversized_bytes"), "must be at least 1");
    }
    FaultPlan {
        probabilities,
        stall_for: spec.stall_for.map_or(defaults.stall_for, |d| d.0),
        drip_every: spec.drip_every.map_or(defaults.drip_every, |d| d.0),
        oversized_bytes: spec.oversized_bytes.unwrap_or(defaults.oversized_bytes),
    }
}

fn dataset_format(
    checker: &mut Checker,
    key: &KeyPath,
    name: Option<&str>,
) -> Option<DatasetFormat> {
    let name = name?;
    let format = DatasetFormat::parse(name);
    if format.is_none() {
        checker.fail(
            key,
            format!("\"{name}\" is not a dataset format; use chat, sharegpt, batch or text"),
        );
    }
    format
}

fn length_model(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LengthSpec,
    base_dir: &Path,
    tokenizer: crate::tokenizer::Encoding,
) -> Option<LengthModel> {
    let dist = match spec {
        LengthSpec::Fixed(0) => {
            checker.fail(key, "must be at least 1 token");
            return None;
        }
        LengthSpec::Fixed(n) if *n > MAX_TOKENS => {
            checker.fail(
                key,
                format!("must be at most {MAX_TOKENS} tokens (got {n})"),
            );
            return None;
        }
        LengthSpec::Fixed(n) => return Some(LengthModel::Fixed(*n)),
        LengthSpec::Distribution(dist) => dist,
    };
    let issues_before = checker.issues.len();
    for (field, value) in [
        ("min", dist.min.map(f64::from)),
        ("max", dist.max.map(f64::from)),
        ("mean", dist.mean),
        ("stddev", dist.stddev),
    ] {
        if let Some(value) = value.filter(|v| v.is_nan() || *v > f64::from(MAX_TOKENS)) {
            checker.fail(
                &key.key(field),
                format!("must be at most {MAX_TOKENS} tokens (got {value})"),
            );
            return None;
        }
    }
    if dist.dist != LengthKind::Empirical && (dist.dataset.is_some() || dist.format.is_some()) {
        checker.fail(&key.key("dataset"), "belongs to dist = \"empirical\"");
    }
    let model = match dist.dist {
        LengthKind::Empirical => {
            let format = dataset_format(checker, &key.key("format"), dist.format.as_deref());
            match &dist.dataset {
                None => {
                    checker.fail(
                        key,
                        "an empirical distribution needs dataset (whose prompt lengths it draws)",
                    );
                    None
                }
                Some(file) => {
                    match Dataset::load(&base_dir.join(file), format, InputFilter::default()) {
                        Ok(data) => {
                            // Content tokens of each prompt, the quantity input_tokens asks for.
                            let lengths = data
                                .records
                                .iter()
                                .map(|r| {
                                    let content: u64 = r
                                        .messages
                                        .iter()
                                        .filter_map(|m| m.get("content").and_then(|c| c.as_str()))
                                        .map(|text| tokenizer.count(text))
                                        .sum();
                                    u32::try_from(content.max(1)).unwrap_or(u32::MAX)
                                })
                                .collect();
                            Some(LengthModel::Empirical(Arc::new(lengths)))
                        }
                        Err(error) => {
                            checker.fail(&key.key("dataset"), error.to_string());
                            None
                        }
                    }
                }
            }
        }
        LengthKind::Uniform => match (dist.min, dist.max) {
            (Some(min), Some(max)) if min >= 1 && min <= max => {
                Some(LengthModel::Uniform { min, max })
            }
            (Some(_), Some(_)) => {
                checker.fail(&key.key("min"), "must be at least 1 and not above max");
                None
            }
            _ => {
                checker.fail(key, "a uniform distribution needs min and max");
                None
            }
        },
        LengthKind::Normal | LengthKind::Lognormal => match (dist.mean, dist.stddev) {
            (Some(mean), Some(stddev))
                if mean.is_finite() && mean >= 1.0 && stddev.is_finite() && stddev >= 0.0 =>
            {
                Some(if dist.dist == LengthKind::Normal {
                    LengthModel::Normal { mean, stddev }
                } else {
                    LengthModel::LogNormal { mean, stddev }
                })
            }
            (Some(_), Some(_)) => {
                checker.fail(&key.key("mean"), "mean must be >= 1 and stddev >= 0");
                None
            }
            _ => {
                checker.fail(
                    key,
                    "a normal or lognormal distribution needs mean and stddev",
                );
                None
            }
        },
    };
    if checker.issues.len() == issues_before
        && dist.dist != LengthKind::Uniform
        && (dist.min.is_some() || dist.max.is_some())
    {
        checker.fail(&key.key("min"), "min/max belong to a uniform distribution");
        return None;
    }
    model
}

fn load_plan(
    checker: &mut Checker,
    key: &KeyPath,
    spec: &LoadSpec,
    base_dir: &Path,
    class_names: &[String],
) -> Option<LoadPlan> {
    let issues_before = checker.issues.len();
    if spec.kind != LoadKind::Trace {
        for (field, present) in [
            ("trace", spec.trace.is_some()),
            ("speed", spec.speed.is_some()),
        ] {
            if present {
                checker.fail(&key.key(field), "belongs to kind = \"trace\"");
            }
        }
    }
    if let Some(duration) = spec.duration {
        checker.non_zero(&key.key("duration"), duration.0);
    }
    if spec.requests == Some(0) {
        checker.fail(&key.key("requests"), "must be at least 1");
    }
    checker.request_count(&key.key("requests"), spec.requests);
    checker.request_count(&key.key("warmup_requests"), spec.warmup_requests);
    let shape = match spec.kind {
        LoadKind::Open => {
            for (field, present) in [("users", spec.users.is_some())] {
                if present {
                    checker.fail(&key.key(field), "belongs to kind = \"closed\"");
                }
            }
            if spec.max_in_flight == Some(0) {
                checker.fail(&key.key("max_in_flight"), "must be at least 1");
            }
            let stages = match (&spec.rate, &spec.stages) {
                (Some(_), Some(_)) => {
                    checker.fail(&key.key("stages"), "set either rate or stages, not both");
                    Vec::new()
                }
                (None, None) => {
                    checker.fail(
                        key,
                        "an open loop needs rate (requests per second) or stages",
                    );
                    Vec::new()
                }
                (Some(rate), None) => {
                    checker.positive_rate(&key.key("rate"), *rate);
                    if spec.duration.is_none() && spec.requests.is_none() {
                        checker.fail(key, "needs duration and/or requests to know when to stop");
                    }
                    vec![StagePlan {
                        rate: *rate,
                        end_rate: *rate,
                        duration: spec.duration.map(|d| d.0),
                    }]
                }
                (None, Some(stages)) => {
                    if stages.is_empty() {
                        checker.fail(&key.key("stages"), "must list at least one stage");
                    }
                    if spec.duration.is_some() {
                        checker.fail(
                            &key.key("duration"),
                            "is the sum of the stages; remove it when stages are set",
                        );
                    }
                    stages
                        .iter()
                        .enumerate()
                        .map(|(i, stage)| {
                            let stage_key = key.key("stages").index(i);
                            checker.positive_rate(&stage_key.key("rate"), stage.rate);
                            if let Some(end) = stage.end_rate {
                                checker.positive_rate(&stage_key.key("end_rate"), end);
                            }
                            checker.non_zero(&stage_key.key("duration"), stage.duration.0);
                            StagePlan {
                                rate: stage.rate,
                                end_rate: stage.end_rate.unwrap_or(stage.rate),
                                duration: Some(stage.duration.0),
                            }
                        })
                        .collect()
                }
            };
            LoadShape::Open {
                arrival: spec.arrival.unwrap_or_default(),
                stages,
                max_in_flight: spec.max_in_flight,
            }
        }
        LoadKind::Closed => {
            for (field, present) in [
                ("rate", spec.rate.is_some()),
                ("stages", spec.stages.is_some()),
                ("arrival", spec.arrival.is_some()),
                ("max_in_flight", spec.max_in_flight.is_some()),
            ] {
                if present {
                    checker.fail(
                        &key.key(field),
                        "belongs to kind = \"open\"; a closed loop is paced by users",
                    );
                }
            }
            let users = match spec.users {
                Some(0) => {
                    checker.fail(&key.key("users"), "must be at least 1");
                    0
                }
                Some(users) => users,
                None => {
                    checker.fail(key, "a closed loop needs users (concurrent users)");
                    0
                }
            };
            if spec.duration.is_none() && spec.requests.is_none() {
                checker.fail(key, "needs duration and/or requests to know when to stop");
            }
            LoadShape::Closed { users }
        }
        LoadKind::Trace => {
            for (field, present) in [
                ("rate", spec.rate.is_some()),
                ("stages", spec.stages.is_some()),
                ("arrival", spec.arrival.is_some()),
                ("users", spec.users.is_some()),
            ] {
                if present {
                    checker.fail(
                        &key.key(field),
                        "does not apply to kind = \"trace\"; the trace's timestamps pace it",
                    );
                }
            }
            if spec.max_in_flight == Some(0) {
                checker.fail(&key.key("max_in_flight"), "must be at least 1");
            }
            let speed = spec.speed.unwrap_or(1.0);
            if !(SPEED_RANGE.0..=SPEED_RANGE.1).contains(&speed) {
                checker.fail(
                    &key.key("speed"),
                    format!(
                        "must be from {} to {} (got {})",
                        SPEED_RANGE.0,
                        SPEED_RANGE.1,
                        number(speed)
                    ),
                );
            }
            let trace = match &spec.trace {
                None => {
                    checker.fail(
                        key,
                        "a trace load needs trace (a JSONL file of timestamped requests)",
                    );
                    None
                }
                Some(file) => match Trace::load(&base_dir.join(file), class_names) {
                    Ok(trace) => Some(Arc::new(trace)),
                    Err(error) => {
                        checker.fail(&key.key("trace"), error.to_string());
                        None
                    }
                },
            };
            match trace {
                Some(trace) => LoadShape::Trace {
                    trace,
                    speed,
                    max_in_flight: spec.max_in_flight,
                },
                None => return None,
            }
        }
    };
    let duration = match &shape {
        LoadShape::Open { stages, .. } if spec.stages.is_some() => {
            Some(stages.iter().filter_map(|s| s.duration).sum())
        }
        _ => spec.duration.map(|d| d.0),
    };
    let warmup = spec.warmup.map_or(Duration::ZERO, |w| w.0);
    if let Some(total) = duration {
        if warmup >= total && !warmup.is_zero() {
            checker.fail(
                &key.key("warmup"),
                "must be shorter than the run's duration",
            );
        }
    }
    let warmup_requests = spec.warmup_requests.unwrap_or(0);
    if let Some(total) = spec.requests {
        if warmup_requests >= total {
            checker.fail(
                &key.key("warmup_requests"),
                "must be smaller than requests, or nothing is measured",
            );
        }
    }
    if checker.issues.len() > issues_before {
        return None;
    }
    Some(LoadPlan {
        shape,
        duration,
        requests: spec.requests,
        warmup,
        warmup_requests,
    })
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
        let error = check(&text, &|_| None).unwrap_err();
        assert!(error.contains("targets[0].api_key_env environment variable K is not set"));
        assert!(error.starts_with("s.toml:5:15:"), "{error}");
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
}
