//! `drover audit`: reads a request log (JSON lines), sorts each request into a streaming or a
//! batch candidate by how long it can wait for its answer, and prices the log three ways — all
//! streaming, all through the Batch API, and routed (batch candidates to the Batch API, the rest
//! streamed) — projected to a month. A bad line is reported with its number and skipped.
//!
//! Accepted fields (each can be renamed with a mapping, dotted paths reach into objects):
//! `model`; `input_tokens` (or `prompt_tokens`, `usage.prompt_tokens`); `output_tokens` (or
//! `completion_tokens`, `usage.completion_tokens`); `cached_input_tokens` (or
//! `usage.prompt_tokens_details.cached_tokens`), optional; `max_wait_time` in milliseconds,
//! optional (a request without one is interactive: streamed); `timestamp` (RFC 3339 or Unix
//! seconds), optional, used to learn how many days the log covers.

use std::collections::BTreeMap;
use std::io::BufRead;

use serde_json::Value;

use crate::cost::{
    resolve, Cost, Currencies, Price, PricedMode, PricingTable, TargetPricing, TokenUsage,
    DAYS_PER_MONTH,
};

use super::Outcome;

/// Fields read from each line, and the names tried for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Field {
    Model,
    InputTokens,
    OutputTokens,
    CachedInputTokens,
    MaxWaitTime,
    Timestamp,
}

impl Field {
    pub const ALL: [Field; 6] = [
        Field::Model,
        Field::InputTokens,
        Field::OutputTokens,
        Field::CachedInputTokens,
        Field::MaxWaitTime,
        Field::Timestamp,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Model => "model",
            Field::InputTokens => "input_tokens",
            Field::OutputTokens => "output_tokens",
            Field::CachedInputTokens => "cached_input_tokens",
            Field::MaxWaitTime => "max_wait_time",
            Field::Timestamp => "timestamp",
        }
    }

    pub fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The paths tried when the user maps none.
    fn default_paths(self) -> &'static [&'static str] {
        match self {
            Field::Model => &["model"],
            Field::InputTokens => &["input_tokens", "prompt_tokens", "usage.prompt_tokens"],
            Field::OutputTokens => &[
                "output_tokens",
                "completion_tokens",
                "usage.completion_tokens",
            ],
            Field::CachedInputTokens => &[
                "cached_input_tokens",
                "usage.prompt_tokens_details.cached_tokens",
            ],
            Field::MaxWaitTime => &["max_wait_time"],
            Field::Timestamp => &["timestamp"],
        }
    }
}

/// How to read and judge a log.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// A request that can wait at least this long (ms) is a batch candidate.
    pub batch_threshold_ms: f64,
    /// User paths for fields (`input_tokens` → `meta.tokens_in`).
    pub mapping: BTreeMap<Field, String>,
    /// Days the log covers, when its lines carry no timestamps (or to override them).
    pub log_days: Option<f64>,
    pub table: PricingTable,
    pub currencies: Currencies,
}

/// Totals of one way of sending the log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModeTotals {
    pub requests: u64,
    pub usage: TokenUsage,
    pub cost: f64,
}

impl ModeTotals {
    fn add(&mut self, usage: &TokenUsage, cost: Cost) {
        self.requests += 1;
        // Sums saturate: a log of absurd counts stays absurd, it never wraps round to small.
        self.usage.input = self.usage.input.saturating_add(usage.input);
        self.usage.cached_input = self.usage.cached_input.saturating_add(usage.cached_input);
        self.usage.output = self.usage.output.saturating_add(usage.output);
        self.cost += cost.total();
    }
}

/// What an audit found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditReport {
    pub lines: u64,
    /// Bad lines: (line number, what is wrong), all of them counted, the first 20 kept.
    pub malformed: Vec<(usize, String)>,
    pub malformed_count: u64,
    /// Requests whose model is not in the pricing table, by model.
    pub unpriced: BTreeMap<String, u64>,
    /// Priced requests that can wait for a batch, and those that cannot.
    pub batch_candidates: ModeTotals,
    pub stream_only: ModeTotals,
    /// Requests without a latency tolerance (counted among `stream_only`).
    pub no_tolerance: u64,
    /// The whole priced log sent each way.
    pub all_stream: ModeTotals,
    pub all_batch: ModeTotals,
    pub routed: ModeTotals,
    /// Days the log covers and where that came from.
    pub days: f64,
    pub days_source: &'static str,
    pub currency: String,
}

/// Malformed lines kept with their message.
const MALFORMED_KEPT: usize = 20;

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(value, |current, key| current.get(key))
        .filter(|v| !v.is_null())
}

fn field<'a>(
    value: &'a Value,
    field: Field,
    options: &AuditOptions,
) -> Option<(&'a Value, String)> {
    match options.mapping.get(&field) {
        Some(path) => lookup(value, path).map(|v| (v, path.clone())),
        None => field
            .default_paths()
            .iter()
            .find_map(|path| lookup(value, path).map(|v| (v, path.to_string()))),
    }
}

fn count(
    value: &Value,
    field: Field,
    options: &AuditOptions,
    required: bool,
) -> Result<u64, String> {
    match self::field(value, field, options) {
        Some((v, path)) => v
            .as_u64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| *f >= 0.0 && f.fract() == 0.0)
                    .map(|f| f as u64)
            })
            .ok_or_else(|| format!("\"{path}\" is not a whole number of tokens ({v})")),
        None if required => Err(format!(
            "no {} (looked for {})",
            field.name(),
            match options.mapping.get(&field) {
                Some(path) => format!("\"{path}\""),
                None => field.default_paths().join(", "),
            }
        )),
        None => Ok(0),
    }
}

fn timestamp(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(text) => humantime::parse_rfc3339_weak(text.trim_end_matches('Z'))
            .ok()
            .and_then(|t| t.duration_since(std::time::SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64()),
        _ => None,
    }
}

/// Audits a log read from `input`.
pub fn audit(input: impl BufRead, options: &AuditOptions) -> std::io::Result<AuditReport> {
    let mut report = AuditReport {
        currency: options.currencies.reporting.clone(),
        ..AuditReport::default()
    };
    let mut prices = BTreeMap::new();
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for (index, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        report.lines += 1;
        let number = index + 1;
        let entry = match parse_line(&line, options) {
            Ok(entry) => entry,
            Err(message) => {
                report.malformed_count += 1;
                if report.malformed.len() < MALFORMED_KEPT {
                    report.malformed.push((number, message));
                }
                continue;
            }
        };
        let LogEntry {
            model,
            usage,
            tolerance,
            timestamp,
        } = entry;
        if let Some(t) = timestamp {
            first = first.min(t);
            last = last.max(t);
        }
        let entry = prices
            .entry(model.clone())
            .or_insert_with(|| prices_of(options, &model));
        let Some((standard, batch)) = entry else {
            *report.unpriced.entry(model).or_default() += 1;
            continue;
        };
        let (stream_cost, batch_cost) = (standard.cost(&usage), batch.cost(&usage));
        report.all_stream.add(&usage, stream_cost);
        report.all_batch.add(&usage, batch_cost);
        if tolerance.is_some_and(|ms| ms >= options.batch_threshold_ms) {
            report.batch_candidates.add(&usage, batch_cost);
            report.routed.add(&usage, batch_cost);
        } else {
            if tolerance.is_none() {
                report.no_tolerance += 1;
            }
            report.stream_only.add(&usage, stream_cost);
            report.routed.add(&usage, stream_cost);
        }
    }
    (report.days, report.days_source) = match options.log_days {
        Some(days) => (days, "--log-days"),
        None if last > first => ((last - first) / 86_400.0, "timestamps"),
        None => (1.0, "assumed (no timestamps; pass --log-days)"),
    };
    Ok(report)
}

/// One request of the log, read.
struct LogEntry {
    model: String,
    usage: TokenUsage,
    /// How long it could wait for its answer (ms), when the log says.
    tolerance: Option<f64>,
    /// When it was sent (Unix seconds), when the log says.
    timestamp: Option<f64>,
}

/// Reads one line of the log, or says what is wrong with it.
fn parse_line(line: &str, options: &AuditOptions) -> Result<LogEntry, String> {
    let value: Value = match serde_json::from_str(line) {
        Ok(value @ Value::Object(_)) => value,
        Ok(_) => {
            return Err("not a JSON object".into());
        }
        Err(e) => {
            return Err(format!("invalid JSON: {e}"));
        }
    };
    let model = match field(&value, Field::Model, options) {
        Some((Value::String(model), _)) if !model.is_empty() => model.clone(),
        Some((other, path)) => {
            return Err(format!("\"{path}\" is not a model name ({other})"));
        }
        None => {
            return Err("no model".into());
        }
    };
    let usage = match (
        count(&value, Field::InputTokens, options, true),
        count(&value, Field::OutputTokens, options, true),
        count(&value, Field::CachedInputTokens, options, false),
    ) {
        (Ok(input), Ok(output), Ok(cached_input)) => TokenUsage {
            input,
            cached_input: cached_input.min(input),
            output,
            // Logs are audited at the answer-token price: their reasoning share is not read.
            reasoning_output: 0,
        },
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            return Err(e);
        }
    };
    let tolerance = match field(&value, Field::MaxWaitTime, options) {
        Some((v, path)) => match v.as_f64().filter(|t| *t >= 0.0) {
            Some(ms) => Some(ms),
            None => {
                return Err(format!("\"{path}\" is not a time in milliseconds ({v})"));
            }
        },
        None => None,
    };
    let mut at = None;
    if let Some((v, path)) = field(&value, Field::Timestamp, options) {
        match timestamp(v).filter(|t| t.is_finite()) {
            Some(t) => at = Some(t),
            None => {
                return Err(format!(
                    "\"{path}\" is not a time (RFC 3339 or Unix seconds): {v}"
                ));
            }
        }
    }
    Ok(LogEntry {
        model,
        usage,
        tolerance,
        timestamp: at,
    })
}

/// A model's standard and Batch API prices, when the table has both.
fn prices_of(options: &AuditOptions, model: &str) -> Option<(Price, Price)> {
    let pricing = TargetPricing::default();
    let standard = resolve(
        &options.table,
        &options.currencies,
        model,
        &pricing,
        PricedMode::Standard,
    );
    let batch = resolve(
        &options.table,
        &options.currencies,
        model,
        &pricing,
        PricedMode::BatchApi,
    );
    match (standard, batch) {
        (Ok(Some(s)), Ok(Some(b))) => Some((s, b)),
        _ => None,
    }
}

impl AuditReport {
    /// Monthly cost of a log-period cost.
    pub fn monthly(&self, cost: f64) -> f64 {
        if self.days > 0.0 {
            cost / self.days * DAYS_PER_MONTH
        } else {
            0.0
        }
    }

    /// The printed report.
    pub fn render(&self, threshold_ms: f64) -> String {
        use crate::units::{money, thousands};
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} lines: {} priced, {} unpriced, {} malformed (skipped)",
            thousands(self.lines),
            thousands(self.all_stream.requests),
            thousands(self.unpriced.values().sum()),
            thousands(self.malformed_count)
        );
        let _ = writeln!(
            out,
            "batch candidates (can wait ≥ {}): {} requests; streaming: {} (of which {} gave no max_wait_time)",
            humantime::format_duration(std::time::Duration::from_millis(threshold_ms as u64)),
            thousands(self.batch_candidates.requests),
            thousands(self.stream_only.requests),
            thousands(self.no_tolerance)
        );
        let _ = writeln!(
            out,
            "log covers {:.2} days ({}); cost in {}, month = 30 days\n",
            self.days, self.days_source, self.currency
        );
        let rows = [
            ("all streaming", &self.all_stream),
            ("all Batch API", &self.all_batch),
            ("routed", &self.routed),
            ("  batch part", &self.batch_candidates),
            ("  stream part", &self.stream_only),
        ];
        let _ = writeln!(
            out,
            "{:<14} {:>10} {:>14} {:>14} {:>12} {:>14}",
            "mode", "requests", "input tok", "output tok", "log cost", "per month"
        );
        for (name, totals) in rows {
            let _ = writeln!(
                out,
                "{:<14} {:>10} {:>14} {:>14} {:>12} {:>14}",
                name,
                thousands(totals.requests),
                thousands(totals.usage.input),
                thousands(totals.usage.output),
                money(totals.cost),
                money(self.monthly(totals.cost))
            );
        }
        let saving = self.all_stream.cost - self.routed.cost;
        let share = if self.all_stream.cost > 0.0 {
            saving / self.all_stream.cost
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "\nrouting saves {} per month ({:.1}% of all-streaming)",
            money(self.monthly(saving)),
            share * 100.0
        );
        for (model, count) in &self.unpriced {
            let _ = writeln!(
                out,
                "unpriced: {} requests for model \"{model}\" (not in the pricing table)",
                thousands(*count)
            );
        }
        for (line, message) in &self.malformed {
            let _ = writeln!(out, "line {line}: {message}");
        }
        if self.malformed_count > self.malformed.len() as u64 {
            let _ = writeln!(
                out,
                "… and {} more malformed lines",
                thousands(self.malformed_count - self.malformed.len() as u64)
            );
        }
        out
    }
}

/// `drover audit`'s arguments.
#[derive(Debug, Clone)]
pub struct AuditRequest {
    pub log: std::path::PathBuf,
    pub batch_threshold: std::time::Duration,
    pub mappings: Vec<(Field, String)>,
    pub log_days: Option<f64>,
    pub pricing: Option<std::path::PathBuf>,
    pub currency: Option<String>,
    pub exchange_rates: Vec<(String, f64)>,
}

/// `drover audit`: the pricing table read and checked, the log priced three ways and printed.
pub fn command(args: AuditRequest) -> Outcome {
    let table_text = match &args.pricing {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) => {
                eprintln!(
                    "error: {}: cannot read pricing table: {error}",
                    path.display()
                );
                return Outcome::BadInput;
            }
        },
        None => crate::cost::DEFAULT_TABLE.to_string(),
    };
    let shown = args.pricing.as_ref().map_or_else(
        || crate::cost::DEFAULT_TABLE_NAME.to_string(),
        |p| p.display().to_string(),
    );
    let table: crate::cost::PricingTable = match toml::from_str(&table_text) {
        Ok(table) => table,
        Err(error) => {
            let (line, column) = error.span().map_or((1, 1), |span| {
                crate::scenario::line_col(&table_text, span.start)
            });
            eprintln!("error: {shown}:{line}:{column}: {}", error.message().trim());
            return Outcome::BadInput;
        }
    };
    for (model, price) in &table.models {
        if let Some(problem) = price.problem() {
            eprintln!("error: {shown}: model \"{model}\": {problem}");
            return Outcome::BadInput;
        }
    }
    let file = match std::fs::File::open(&args.log) {
        Ok(file) => file,
        Err(error) => {
            eprintln!("error: {}: cannot read log: {error}", args.log.display());
            return Outcome::BadInput;
        }
    };
    let threshold_ms = args.batch_threshold.as_secs_f64() * 1000.0;
    let options = AuditOptions {
        batch_threshold_ms: threshold_ms,
        mapping: args.mappings.into_iter().collect(),
        log_days: args.log_days,
        currencies: crate::cost::Currencies {
            reporting: args.currency.unwrap_or_else(|| table.currency.clone()),
            rates: args.exchange_rates.into_iter().collect(),
        },
        table,
    };
    if let Err(error) = options.currencies.rate(&options.table.currency) {
        eprintln!("error: {error}");
        return Outcome::BadInput;
    }
    if options
        .log_days
        .is_some_and(|d| !(d.is_finite() && d > 0.0))
    {
        eprintln!("error: --log-days must be > 0");
        return Outcome::BadInput;
    }
    match audit(std::io::BufReader::new(file), &options) {
        Ok(report) => {
            println!("audit of {} (prices: {shown})", args.log.display());
            print!("{}", report.render(threshold_ms));
            Outcome::Ok
        }
        Err(error) => {
            eprintln!("error: {}: {error}", args.log.display());
            Outcome::BadInput
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(threshold_ms: f64) -> AuditOptions {
        AuditOptions {
            batch_threshold_ms: threshold_ms,
            mapping: BTreeMap::new(),
            log_days: None,
            table: toml::from_str(crate::cost::DEFAULT_TABLE).unwrap(),
            currencies: Currencies {
                reporting: "USD".into(),
                rates: BTreeMap::new(),
            },
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// tests/fixtures/audit-log.jsonl, priced by hand with the built-in table (per 1M tokens:
    /// gpt-4.1 $2 input, $0.50 cached, $8 output, Batch API −50%; deepseek-v3.2 $0.28 / $0.42,
    /// no batch discount), with a 1 h threshold:
    /// - line 1, gpt-4.1, 1,000 in + 500 out, waits 2 h: batch. Stream $0.006, batch $0.003.
    /// - line 2, gpt-4.1, 2,000 in (1,000 cached) + 1,000 out, waits 0.5 s: stream. $0.0105.
    /// - line 3, deepseek, 1M in + 1M out, no max_wait_time: stream. $0.70 (batch also $0.70).
    /// - line 10, gpt-4.1, 4,000 in + 2,000 out, waits exactly 1 h: batch. Stream $0.024,
    ///   batch $0.012.
    /// - lines 4, 5, 8, 9 malformed; line 7 an unknown model; line 6 blank.
    #[test]
    fn the_fixture_log_adds_up_by_hand() {
        let log = include_str!("../../tests/fixtures/audit-log.jsonl");
        let report = audit(log.as_bytes(), &options(3_600_000.0)).unwrap();
        assert_eq!(report.lines, 9);
        assert_eq!(report.malformed_count, 4);
        let lines: Vec<usize> = report.malformed.iter().map(|(n, _)| *n).collect();
        assert_eq!(lines, vec![4, 5, 8, 9]);
        assert_eq!(report.unpriced["mystery-model"], 1);
        assert_eq!(report.batch_candidates.requests, 2);
        assert_eq!(report.stream_only.requests, 2);
        assert_eq!(report.no_tolerance, 1);
        assert!(close(report.all_stream.cost, 0.006 + 0.0105 + 0.70 + 0.024));
        assert!(close(report.all_batch.cost, 0.003 + 0.00525 + 0.70 + 0.012));
        assert!(close(report.routed.cost, 0.003 + 0.012 + 0.0105 + 0.70));
        assert!(close(report.batch_candidates.cost, 0.015));
        assert_eq!(report.all_stream.usage.input, 1_007_000);
        assert_eq!(report.all_stream.usage.cached_input, 1_000);
        assert_eq!(report.all_stream.usage.output, 1_003_500);
        // Timestamps span 2026-11-01T00:00Z to 2026-11-02T00:00Z: one day.
        assert!(close(report.days, 1.0));
        assert!(close(report.monthly(report.routed.cost), 0.7255 * 30.0));
        let text = report.render(3_600_000.0);
        assert!(
            text.contains("routing saves 0.450 per month (2.0% of all-streaming)"),
            "{text}"
        );
    }

    #[test]
    fn the_default_threshold_streams_what_cannot_wait_a_day_and_mappings_rename_fields() {
        let log = include_str!("../../tests/fixtures/audit-log.jsonl");
        let report = audit(log.as_bytes(), &options(86_400_000.0)).unwrap();
        assert_eq!(report.batch_candidates.requests, 0);
        assert!(close(report.routed.cost, report.all_stream.cost));

        let custom =
            "{\"engine\":\"gpt-4.1\",\"meta\":{\"in\":1000000,\"out\":0},\"sla_ms\":90000000}\n";
        let mut options = options(86_400_000.0);
        options.mapping = BTreeMap::from([
            (Field::Model, "engine".to_string()),
            (Field::InputTokens, "meta.in".to_string()),
            (Field::OutputTokens, "meta.out".to_string()),
            (Field::MaxWaitTime, "sla_ms".to_string()),
        ]);
        options.log_days = Some(7.0);
        let report = audit(custom.as_bytes(), &options).unwrap();
        assert_eq!(report.malformed_count, 0, "{:?}", report.malformed);
        assert_eq!(report.batch_candidates.requests, 1);
        assert!(close(report.routed.cost, 1.0)); // $2 per 1M input, half price
        assert!(close(report.monthly(report.routed.cost), 30.0 / 7.0));
        assert_eq!(report.days_source, "--log-days");
    }
}
