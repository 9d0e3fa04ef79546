//! The text every view shares (terminal, Markdown, HTML): a group's summary and cost cells, and
//! the SLO, workload, paired and phase lines, so that views never disagree. The numbers in them
//! are written by [`crate::units`], re-exported here.

use crate::results::{GroupResults, LatencyStat, RunResults};
pub use crate::units::{bytes, money, ms, percent, rate, thousands};

/// A latency statistic of a group, or `-` when the group has none (no successful request).
pub fn stat(group: &GroupResults, metric: &str, pick: fn(&LatencyStat) -> f64) -> String {
    group
        .latency_ms
        .get(metric)
        .map_or("-".into(), |stat| ms(pick(stat)))
}

/// Failed requests other than throttled ones, as a share of finished requests.
pub fn error_rate(group: &GroupResults) -> f64 {
    // Saturating: a results file from elsewhere may not keep throttled <= failed.
    share(
        group,
        group
            .requests
            .failed
            .saturating_sub(group.requests.throttled),
    )
}

/// Throttled (429) requests as a share of finished requests.
pub fn throttle_rate(group: &GroupResults) -> f64 {
    share(group, group.requests.throttled)
}

fn share(group: &GroupResults, count: u64) -> f64 {
    let finished = group
        .requests
        .succeeded
        .saturating_add(group.requests.failed);
    if finished == 0 {
        0.0
    } else {
        count as f64 / finished as f64
    }
}

/// The columns every summary table has, in order, with their values for one group.
pub const SUMMARY_COLUMNS: [&str; 14] = [
    "ok/sent",
    "failed",
    "req/s",
    "out tok/s",
    "TTFT p50",
    "TTFT p99",
    "ITL p50",
    "ITL p99",
    "TPOT p50",
    "E2E p50",
    "E2E p99",
    "E2E p99 corr",
    "err %",
    "429 %",
];

/// Header of [`cost_cells`].
pub const COST_COLUMNS: [&str; 8] = [
    "priced as",
    "discount",
    "vs official",
    "cost",
    "per request",
    "per 1M out",
    "per day",
    "per month",
];

/// The cost cells of a group's summary row (`-` where there is nothing to show).
pub fn cost_cells(group: &GroupResults) -> Vec<String> {
    let Some(cost) = &group.cost else {
        return vec![
            "unpriced".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    let estimated = if cost.requests_estimated > 0 { "~" } else { "" };
    let (per_day, per_month) = cost
        .projection
        .as_ref()
        .map_or(("-".into(), "-".into()), |p| {
            (money(p.per_day), money(p.per_month))
        });
    vec![
        cost.model.clone(),
        percent(cost.discount),
        cost.saving.map_or("-".into(), |saving| {
            if saving < 0.0 {
                format!("{} dearer", percent(-saving))
            } else {
                format!("{} saved", percent(saving))
            }
        }),
        format!("{estimated}{}", money(cost.total)),
        money(cost.per_request),
        // Without output tokens (embeddings) a price per output token means nothing.
        if group.tokens.output > 0 {
            money(cost.per_million_output_tokens)
        } else {
            "-".into()
        },
        per_day,
        per_month,
    ]
}

/// The groups a table shows of a target: `(all)`, then each class when there are several,
/// with the mode each ran in (a routed class's route).
pub fn shown_groups(
    target: &crate::results::TargetResults,
) -> impl Iterator<Item = (&str, &GroupResults, &str)> {
    std::iter::once(("(all)", &target.summary, target.mode.as_str())).chain(
        target
            .classes
            .iter()
            .filter(|_| target.classes.len() > 1)
            .map(|c| {
                (
                    c.name.as_str(),
                    &c.results,
                    c.route.as_deref().unwrap_or(target.mode.as_str()),
                )
            }),
    )
}

/// The cost of a run laid out once for every view: latency and speed beside cost, per target
/// and (when there are several) per class, with the mode each group ran in.
#[derive(Debug, Clone, PartialEq)]
pub struct CostTable {
    /// What the table holds and in which currency, with the price table it came from.
    pub heading: String,
    /// Target, class and mode, then four latency and speed columns, then [`COST_COLUMNS`].
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// What to read beside it: the projection's basis, the run's whole spend, estimates.
    pub notes: Vec<String>,
}

/// The run's cost table, or `None` when no target was priced.
pub fn cost_table(results: &RunResults) -> Option<CostTable> {
    if !results.targets.iter().any(|t| t.summary.cost.is_some()) {
        return None;
    }
    let mut rows = Vec::new();
    let mut currency = None;
    let mut projection = None;
    let mut estimated = false;
    for target in &results.targets {
        for (class, group, mode) in shown_groups(target) {
            if let Some(cost) = &group.cost {
                currency.get_or_insert_with(|| cost.currency.clone());
                projection = projection.or(cost.projection.clone());
                estimated |= cost.requests_estimated > 0;
            }
            let p50 = |s: &LatencyStat| s.p50;
            let p99 = |s: &LatencyStat| s.p99;
            let mut row = vec![target.name.clone(), class.to_string(), mode.to_string()];
            row.push(stat(group, "ttft", p50));
            row.push(stat(group, "e2e", p50));
            row.push(stat(group, "e2e", p99));
            row.push(rate(group.throughput.output_tokens_per_s));
            row.extend(cost_cells(group));
            rows.push(row);
        }
    }
    let mut header: Vec<String> = [
        "target",
        "class",
        "mode",
        "TTFT p50",
        "E2E p50",
        "E2E p99",
        "out tok/s",
    ]
    .iter()
    .map(|c| c.to_string())
    .collect();
    header.extend(COST_COLUMNS.iter().map(|c| c.to_string()));
    let heading = format!(
        "latency, speed and cost side by side; cost in {} of the successful requests{}",
        currency.unwrap_or_default(),
        results.pricing.as_ref().map_or(String::new(), |p| format!(
            " (prices: {}{}; they change)",
            p.table,
            p.as_of
                .as_deref()
                .map_or(String::new(), |d| format!(" as of {d}"))
        ))
    );
    let mut notes = Vec::new();
    if let Some(projection) = projection {
        notes.push(format!(
            "per day/month: projected to {} {} (30-day month)",
            thousands(projection.volume.round() as u64),
            projection.basis.replace('_', " ")
        ));
    }
    if let Some(spend) = &results.spend {
        let unpriced = if spend.targets_unpriced > 0 {
            format!(" ({} unpriced)", spend.targets_unpriced)
        } else {
            String::new()
        };
        let budget = spend.budget.map_or(String::new(), |cap| {
            format!(
                "; budget {} ({:.0}% used{})",
                money(cap),
                spend.total / cap * 100.0,
                if spend.exhausted { ", reached" } else { "" }
            )
        });
        // Under a budget the guard counted every request, warm-up included; otherwise the total
        // is the targets' cost, which covers the measured requests.
        let guarded = spend.budget.is_some() || !spend.target_budgets.is_empty();
        notes.push(format!(
            "{} {} {} over {} priced target(s){unpriced}{budget}",
            if guarded {
                "the whole run spent (warm-up included)"
            } else {
                "the measured requests cost"
            },
            money(spend.total),
            spend.currency,
            spend.targets_priced
        ));
    }
    if estimated {
        notes.push(
            "~: some token counts were estimated (the server sent no usage), so is the cost".into(),
        );
    }
    Some(CostTable {
        heading,
        header,
        rows,
        notes,
    })
}

/// Whether the run sent on a schedule (an open loop or a trace), where latency measured from
/// the intended send time differs from latency measured from the actual one. A closed loop has
/// no schedule: its users send when their last answer ends.
pub fn scheduled(results: &RunResults) -> bool {
    matches!(
        results
            .scenario
            .as_run
            .pointer("/load/kind")
            .and_then(|k| k.as_str()),
        Some("open" | "trace")
    )
}

/// What corrected latency means, said once wherever it is shown.
/// The note under a summary table some of whose figures rest on estimated output counts (marked
/// `~`); `None` when every count was the server's.
pub fn estimate_note(results: &crate::results::RunResults) -> Option<String> {
    let (estimated, succeeded) = results.targets.iter().fold((0, 0), |(e, s), target| {
        (
            e + target.summary.tokens.estimated(),
            s + target.summary.requests.succeeded,
        )
    });
    (estimated > 0).then(|| {
        format!(
            "~: estimated. {} of {} answers came without usage, so their output tokens were counted by the client (the warnings say how), and so were the tokens/s, TPOT and cost made from them",
            thousands(estimated),
            thousands(succeeded)
        )
    })
}

pub const CORRECTED_NOTE: &str = "\"corr\" latencies are measured from the time the schedule meant each request to leave, the others from the time it actually left. The difference is time requests waited behind max_in_flight or a client that fell behind: a user arriving on that schedule would have waited it too (coordinated omission).";

/// Header of [`corrected_table`].
pub const CORRECTED_COLUMNS: [&str; 9] = [
    "target", "class", "metric", "p50", "p50 corr", "p90", "p90 corr", "p99", "p99 corr",
];

/// TTFT and E2E percentiles beside their coordinated-omission-corrected values, per target (and
/// class, when there are several); `None` for a closed loop.
pub fn corrected_table(results: &RunResults) -> Option<Vec<Vec<String>>> {
    if !scheduled(results) {
        return None;
    }
    let mut rows = Vec::new();
    for target in &results.targets {
        for (class, group, _) in shown_groups(target) {
            for (label, metric, corrected) in [
                ("TTFT", "ttft", "ttft_corrected"),
                ("E2E", "e2e", "e2e_corrected"),
            ] {
                let (Some(plain), Some(corr)) = (
                    group.latency_ms.get(metric),
                    group.latency_ms.get(corrected),
                ) else {
                    continue;
                };
                rows.push(vec![
                    target.name.clone(),
                    class.to_string(),
                    label.to_string(),
                    ms(plain.p50),
                    ms(corr.p50),
                    ms(plain.p90),
                    ms(corr.p90),
                    ms(plain.p99),
                    ms(corr.p99),
                ]);
            }
        }
    }
    (!rows.is_empty()).then_some(rows)
}

/// A value with its unset fields (`null`) and the tables left empty by them removed.
fn without_unset(value: &serde_json::Value) -> Option<serde_json::Value> {
    match value {
        serde_json::Value::Null => None,
        serde_json::Value::Object(map) => {
            let kept: serde_json::Map<String, serde_json::Value> = map
                .iter()
                .filter_map(|(k, v)| without_unset(v).map(|v| (k.clone(), v)))
                .collect();
            (!kept.is_empty()).then_some(serde_json::Value::Object(kept))
        }
        serde_json::Value::Array(items) => Some(serde_json::Value::Array(
            items.iter().filter_map(without_unset).collect(),
        )),
        other => Some(other.clone()),
    }
}

/// The scenario as run, written back as TOML with only what the file (and its overrides) set:
/// every field it left to a default is left out. JSON when TOML cannot hold it.
pub fn scenario_toml(as_run: &serde_json::Value) -> String {
    let Some(kept) = without_unset(as_run) else {
        return String::new();
    };
    toml::to_string_pretty(&kept)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&kept).unwrap_or_default())
}

pub fn summary_cells(group: &GroupResults) -> Vec<String> {
    let p50 = |s: &LatencyStat| s.p50;
    let p99 = |s: &LatencyStat| s.p99;
    // Figures made from output token counts the server did not report.
    let estimated = |cell: String| {
        if group.tokens.estimated() > 0 && cell != "-" {
            format!("~{cell}")
        } else {
            cell
        }
    };
    vec![
        format!(
            "{}/{}",
            thousands(group.requests.succeeded),
            thousands(group.requests.sent)
        ),
        thousands(group.requests.failed),
        rate(group.throughput.requests_per_s),
        estimated(rate(group.throughput.output_tokens_per_s)),
        stat(group, "ttft", p50),
        stat(group, "ttft", p99),
        stat(group, "itl", p50),
        stat(group, "itl", p99),
        estimated(stat(group, "tpot", p50)),
        stat(group, "e2e", p50),
        stat(group, "e2e", p99),
        stat(group, "e2e_corrected", p99),
        percent(error_rate(group)),
        percent(throttle_rate(group)),
    ]
}

/// The SLO verdict, one line per evaluated assertion, and goodput per target (for the terminal,
/// Markdown and HTML alike). Empty without `[slo]`.
pub fn slo_lines(results: &crate::results::RunResults) -> Vec<String> {
    use crate::results::slo::Verdict;
    let Some(slo) = &results.slo else {
        return Vec::new();
    };
    let count = |verdict: Verdict| {
        slo.assertions
            .iter()
            .filter(|a| a.verdict == verdict)
            .count()
    };
    let mut out = vec![format!(
        "SLO verdict: {} ({} pass, {} fail, {} inconclusive; intervals at {}% confidence{})",
        slo.verdict.name().to_uppercase(),
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::Inconclusive),
        slo.confidence * 100.0,
        if slo.fail_on_inconclusive {
            "; inconclusive fails the run"
        } else {
            ""
        }
    )];
    for result in &slo.assertions {
        let value = |v: f64| slo_value(v, &result.unit);
        let measured = result.measured.map_or("nothing measured".to_string(), |v| {
            format!("measured {}", value(v))
        });
        let interval = match result.interval {
            Some((lower, upper)) => format!(
                " ({}% CI {} to {})",
                slo.confidence * 100.0,
                lower.map_or("-inf".to_string(), value),
                upper.map_or("+inf".to_string(), value)
            ),
            None => String::new(),
        };
        let needed = match (result.verdict, result.samples_needed) {
            (Verdict::Inconclusive, Some(n)) => {
                format!("; about {} samples would decide", thousands(n))
            }
            (Verdict::Inconclusive, None) => {
                "; no sample size would decide at the measured value".to_string()
            }
            _ => String::new(),
        };
        let note = if result.note.is_empty() {
            String::new()
        } else {
            format!("; {}", result.note)
        };
        let scope = match &result.class {
            Some(class) => format!("{}/{class}", result.target),
            None => result.target.clone(),
        };
        let text = result
            .assertion
            .split_once(':')
            .map_or(result.assertion.as_str(), |(_, body)| body.trim());
        out.push(format!(
            "{:<12} {scope}: {text}: {measured}{interval}, n={}{needed}{note}",
            result.verdict.name(),
            thousands(result.samples)
        ));
    }
    for target in &results.targets {
        if let Some(goodput) = &target.summary.goodput {
            let finished = target.summary.requests.succeeded + target.summary.requests.failed;
            out.push(format!(
                "goodput {}: {} of {} requests met every latency criterion ({:.1}%), {:.1} good requests/s",
                target.name,
                thousands(goodput.good),
                thousands(finished),
                goodput.good_fraction * 100.0,
                goodput.good_per_s
            ));
        }
    }
    out
}

fn slo_value(value: f64, unit: &str) -> String {
    match unit {
        "ms" => format!("{value:.2} ms"),
        "fraction" => format!("{:.2}%", value * 100.0),
        _ => format!("{value:.2} {unit}"),
    }
}

/// A metric's p50 as `12.3 ms`, or `-` when the group has none.
fn p50(group: &GroupResults, metric: &str) -> String {
    group
        .latency_ms
        .get(metric)
        .map_or("-".to_string(), |s| format!("{:.1} ms", s.p50))
}

/// An HTTP/2 pool's line: connections used of those allowed, streams each, how requests spread
/// over the connections, and how many waited for a stream slot (that wait is never TTFT).
fn http2_line(
    name: &str,
    shape: &crate::results::Http2PoolShape,
    group: &GroupResults,
    connections: &crate::results::ConnectionCounts,
) -> String {
    let streams = match (
        shape.max_streams_per_connection,
        connections.server_max_streams,
    ) {
        (Some(mine), Some(server)) => format!(
            "{} streams each ({} set, the server allows {})",
            thousands(u64::from(mine.min(server))),
            thousands(u64::from(mine)),
            thousands(u64::from(server))
        ),
        (Some(mine), None) => format!("{} streams each", thousands(u64::from(mine))),
        (None, Some(server)) => format!(
            "{} streams each (the server's limit)",
            thousands(u64::from(server))
        ),
        (None, None) => "streams unlimited (the server announced no limit)".to_string(),
    };
    const SHOWN: usize = 8;
    let spread = &connections.requests_per_connection;
    let mut per_connection = spread
        .iter()
        .take(SHOWN)
        .map(|n| thousands(*n))
        .collect::<Vec<_>>()
        .join(", ");
    if connections.connections_used as usize > SHOWN {
        per_connection.push_str(", …");
    }
    let requests = connections.opened + connections.reused;
    let waits = if connections.stream_waits == 0 {
        "no request waited for a stream slot".to_string()
    } else {
        let p99 = group
            .latency_ms
            .get("stream_wait")
            .map_or("-".to_string(), |s| format!("{:.1} ms", s.p99));
        format!(
            "{} of {} requests waited for a stream slot: p50 {}, p99 {p99} (not part of TTFT; more http2.connections would spare it)",
            thousands(connections.stream_waits),
            thousands(requests),
            p50(group, "stream_wait")
        )
    };
    format!(
        "http2 {name}: {} of {} connection(s) used, {streams}; requests per connection {per_connection}; {waits}",
        thousands(connections.connections_used),
        thousands(u64::from(shape.connections)),
    )
}

/// Per target: connections opened and reused with their set-up times, and what streams sent
/// before their first token. Per class: output length asked for versus produced, shared-prefix
/// cache hits, sessions. For the terminal, Markdown and HTML alike.
/// A merged run's shards: how many were merged, which are missing, how far apart their loads
/// began, then one indented line per shard (host, status, requests and rate, lateness).
pub fn shard_lines(results: &crate::results::RunResults) -> Vec<String> {
    use crate::results::RunStatus;
    let Some(merged) = &results.merged else {
        return Vec::new();
    };
    let missing = if merged.missing.is_empty() {
        String::new()
    } else {
        format!(
            "; MISSING shard(s) {}",
            merged
                .missing
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let skew = merged
        .start_skew_s
        .map(|skew| format!("; loads began within {skew:.3} s of each other"))
        .unwrap_or_default();
    let mut lines = vec![format!(
        "merged {} of {} shards{missing}{skew}",
        merged.present.len(),
        merged.shard_count
    )];
    for shard in &merged.shards {
        let sent: u64 = shard.targets.iter().map(|t| t.sent).sum();
        let rate: f64 = shard.targets.iter().map(|t| t.sent_per_s).sum();
        let status = match shard.status {
            RunStatus::Completed => "completed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::InProgress => "in progress",
            RunStatus::BudgetExhausted => "stopped at the budget",
            RunStatus::Degraded => "degraded",
        };
        let late = shard
            .start_late_s
            .map(|late| format!(", began {late:.3} s after --start-at"))
            .unwrap_or_default();
        lines.push(format!(
            "  shard {}/{} on {}: {status}, {} sent at {rate:.1} req/s in {:.1} s{late}",
            shard.index,
            merged.shard_count,
            shard.host,
            thousands(sent),
            shard.duration_s
        ));
    }
    lines
}

/// What each target's server said about itself (scraped `/metrics`): its queue, KV cache and
/// token rates, its own latencies beside drover's, and the saturation verdict.
pub fn server_lines(results: &crate::results::RunResults) -> Vec<String> {
    let mut lines = Vec::new();
    for target in &results.targets {
        let Some(metrics) = &target.server_metrics else {
            continue;
        };
        let s = &metrics.summary;
        let failed: u64 = metrics.failed.values().sum();
        let mut figures = vec![format!(
            "{} scrapes every {}s{}",
            metrics.scrapes,
            metrics.every_s,
            if failed > 0 {
                format!(" ({failed} failed)")
            } else {
                String::new()
            }
        )];
        let pair = |name: &str, max: Option<f64>, mean: Option<f64>| {
            max.zip(mean)
                .map(|(max, mean)| format!("{name} max {max:.0}, mean {mean:.1}"))
        };
        figures.extend(pair("running", s.max_running, s.mean_running));
        figures.extend(pair("waiting", s.max_waiting, s.mean_waiting));
        if let (Some(mean), Some(max)) = (s.mean_kv_usage, s.max_kv_usage) {
            figures.push(format!(
                "KV cache mean {:.0}%, max {:.0}%",
                100.0 * mean,
                100.0 * max
            ));
        }
        if let Some(rate) = s.prefix_cache_hit_rate {
            figures.push(format!("prefix cache hits {:.1}%", 100.0 * rate));
        }
        if let Some(rate) = s.prompt_tokens_per_s {
            figures.push(format!("prompt {} tok/s", thousands(rate.round() as u64)));
        }
        if let Some(rate) = s.generation_tokens_per_s {
            figures.push(format!(
                "generation {} tok/s",
                thousands(rate.round() as u64)
            ));
        }
        lines.push(format!(
            "server {} ({}): {}",
            target.name,
            metrics.server,
            figures.join("; ")
        ));
        for (label, server, client) in [
            ("TTFT", &s.ttft_ms, target.summary.latency_ms.get("ttft")),
            ("E2E", &s.e2e_ms, target.summary.latency_ms.get("e2e")),
        ] {
            let Some(server) = server else { continue };
            let mut line = format!(
                "server {} {label} p50 {:.1} ms, p99 {:.1} ms over {:.0} requests (its buckets, interpolated)",
                target.name, server.p50, server.p99, server.count
            );
            if let Some(client) = client.filter(|c| c.count > 0) {
                line.push_str(&format!(
                    "; drover measured p50 {:.1} ms, p99 {:.1} ms: the p50's {} is network, queueing before the server and the client",
                    client.p50,
                    client.p99,
                    signed_ms(client.p50 - server.p50)
                ));
            }
            lines.push(line);
        }
        if let Some(queue) = &s.queue_ms {
            lines.push(format!(
                "server {} queue time p50 {:.1} ms, p99 {:.1} ms",
                target.name, queue.p50, queue.p99
            ));
        }
        if metrics.saturation.is_empty() {
            lines.push(format!(
                "server {}: no sign of saturation (queue did not grow, KV cache not full)",
                target.name
            ));
        } else {
            for sign in &metrics.saturation {
                lines.push(format!("server {}: SATURATED: {sign}", target.name));
            }
        }
        if let Some(stopped) = &metrics.stopped {
            lines.push(format!("server {}: scraping {stopped}", target.name));
        }
    }
    lines
}

pub fn workload_lines(results: &crate::results::RunResults) -> Vec<String> {
    let mut out = Vec::new();
    let p50_precise = |group: &crate::results::GroupResults, metric: &str| {
        group
            .latency_ms
            .get(metric)
            .map(|s| format!("{metric} {:.3} ms", s.p50))
    };
    for target in &results.targets {
        let group = &target.summary;
        if let Some(check) = group.token_check.as_ref().filter(|c| c.checked > 0) {
            out.push(format!(
                "tokens {}: the server's usage is {} drover's own count of the text over {} checked requests (tolerance {:.2}x to {:.2}x); {} over max_tokens: {}",
                target.name,
                check
                    .usage_to_client
                    .map_or("-".to_string(), |r| format!("{r:.2}x")),
                thousands(check.checked),
                1.0 / crate::results::TokenCheck::TOLERANCE,
                crate::results::TokenCheck::TOLERANCE,
                thousands(check.over_max_tokens),
                if check.flagged() { "FLAGGED (see the warnings)" } else { "consistent" }
            ));
        }
        if let Some(connections) = &group.connections {
            let setup = ["dns", "tcp_connect", "tls_handshake", "connection_setup"]
                .iter()
                .filter_map(|metric| p50_precise(group, metric))
                .collect::<Vec<_>>();
            let setup = if setup.is_empty() {
                String::new()
            } else {
                format!("; set-up p50: {} (not part of TTFT)", setup.join(", "))
            };
            out.push(format!(
                "connections {}: {} opened ({} with TLS), {} reused ({:.1}% reuse){setup}",
                target.name,
                thousands(connections.opened),
                thousands(connections.tls_handshakes),
                thousands(connections.reused),
                connections.reuse_rate * 100.0
            ));
            if let Some(shape) = &target.http2 {
                out.push(http2_line(&target.name, shape, group, connections));
            }
        }
        if let Some(preamble) = &group.stream_preamble {
            if preamble.requests_with_prelude
                + preamble.keepalive_comments
                + preamble.reasoning_first
                > 0
            {
                let answer = if preamble.reasoning_first > 0 {
                    format!(
                        "; {} reasoned before answering: time to first answer p50 {} vs TTFT p50 {}",
                        thousands(preamble.reasoning_first),
                        p50(group, "time_to_first_answer"),
                        p50(group, "ttft")
                    )
                } else {
                    String::new()
                };
                out.push(format!(
                    "stream {}: {} of {} streams began with {} empty or role-only event(s), {} keep-alive comment(s); none counted as a token{answer}",
                    target.name,
                    thousands(preamble.requests_with_prelude),
                    thousands(preamble.requests),
                    thousands(preamble.empty_preludes),
                    thousands(preamble.keepalive_comments)
                ));
            }
        }
        if let Some(inputs) = group.inputs.as_ref().filter(|i| i.images > 0) {
            let sent = group
                .requests
                .sent
                .saturating_sub(group.requests.aborted)
                .max(1);
            out.push(format!(
                "images {}: {} images in {} requests, {} image tokens by the provider's formula ({} per request); request bodies {} on average",
                target.name,
                thousands(inputs.images),
                thousands(sent),
                thousands(inputs.image_tokens),
                thousands(inputs.image_tokens / sent),
                bytes(inputs.request_bytes / sent)
            ));
        }
    }
    for target in &results.targets {
        for class in &target.classes {
            if let Some(tools) = &class.results.tool_calls {
                out.push(tool_call_line(
                    &format!("{}/{}", target.name, class.name),
                    tools,
                    &class.results,
                ));
            }
        }
    }
    for target in &results.targets {
        for class in &target.classes {
            let group = &class.results;
            let name = format!("{}/{}", target.name, class.name);
            if let Some(length) = &group.output_length {
                out.push(format!(
                    "output {name}: asked {:.1} tokens on average (max_tokens), produced {}{:.1}; {:.0}% stopped early ({} of {})",
                    length.requested_mean,
                    if group.tokens.estimated() > 0 { "~" } else { "" },
                    length.produced_mean,
                    length.stopped_early_share * 100.0,
                    thousands(length.stopped_early),
                    thousands(length.requests)
                ));
            }
            if let Some(prefix) = &group.shared_prefix {
                out.push(format!(
                    "prefix cache {name}: {} of {} requests with a shared prefix read {} cached input tokens; TTFT p50 cached {} vs uncached {}",
                    thousands(prefix.cache_hits),
                    thousands(prefix.requests),
                    thousands(prefix.cached_input_tokens),
                    p50(group, "ttft_cache_hit"),
                    p50(group, "ttft_cache_miss")
                ));
            }
            if let Some(sessions) = &group.sessions {
                // Streams have a TTFT per turn; whole responses only their E2E.
                let metric = if group.latency_ms.contains_key("ttft_turn_1") {
                    "ttft"
                } else {
                    "e2e"
                };
                let turns = sessions
                    .turns
                    .iter()
                    .map(|t| {
                        format!(
                            "{}: {} ({} ok)",
                            t.turn,
                            p50(group, &format!("{metric}_turn_{}", t.turn)),
                            thousands(t.succeeded)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(format!(
                    "sessions {name}: {} of {} completed every turn; {} p50 by turn {turns}",
                    thousands(sessions.completed),
                    thousands(sessions.started),
                    metric.to_uppercase()
                ));
            }
        }
    }
    out.extend(answer_lines(results));
    out
}

/// A signed difference in milliseconds: `+20.1 ms`.
/// One class's tool calls: how many answers called a tool (with the 95% interval), whether
/// their arguments parse and match the schema, and the time to the first tool-call piece.
fn tool_call_line(
    name: &str,
    tools: &crate::results::ToolCallResults,
    group: &crate::results::GroupResults,
) -> String {
    let first = group
        .latency_ms
        .get("time_to_first_tool_call")
        .map_or(String::new(), |s| {
            format!(
                "; time to first tool call p50 {} ms, p99 {} ms",
                ms(s.p50),
                ms(s.p99)
            )
        });
    format!(
        "tools {name}: {} of {} answers called a tool ({}, 95% {}–{}); {} calls, {} with JSON arguments, {} matching the declared schema (broken {}), {} argument tokens{first}",
        thousands(tools.answers_with_calls),
        thousands(tools.answers),
        percent(tools.call_rate),
        percent(tools.call_rate_low),
        percent(tools.call_rate_high),
        thousands(tools.calls),
        thousands(tools.valid_json),
        thousands(tools.matching_schema),
        percent(tools.broken_rate),
        thousands(tools.argument_tokens),
    )
}

fn signed_ms(value: f64) -> String {
    if value >= 0.0 {
        format!("+{} ms", ms(value))
    } else {
        format!("-{} ms", ms(-value))
    }
}

/// A p-value, with very small ones shown as a bound.
fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else {
        format!("p = {p:.3}")
    }
}

/// One paired difference: `median +20.1 ms (95% CI +19.8 ms to +20.4 ms), p10 …, p90 …;
/// candidate faster in 0.0% of 200 pairs; Wilcoxon p < 0.001`.
fn difference_text(d: &crate::results::paired::PairedDifference) -> String {
    let ci = match (d.median_ci_low, d.median_ci_high) {
        (Some(low), Some(high)) => format!(" (95% CI {} to {})", signed_ms(low), signed_ms(high)),
        _ => " (too few pairs for an interval)".into(),
    };
    format!(
        "median {}{ci}, p10 {}, p90 {}; candidate faster in {} of {} pairs{}",
        signed_ms(d.median),
        signed_ms(d.p10),
        signed_ms(d.p90),
        percent(d.candidate_faster),
        thousands(d.pairs),
        d.wilcoxon_p.map_or(String::new(), |p| format!(
            "; Wilcoxon signed-rank {}",
            p_value(p)
        ))
    )
}

/// Per target: reasoning (how many answers reasoned, their reasoning tokens and share of the
/// output, time to the first reasoning and the first answer output), refusals, stream events
/// the API does not define, and texts embedded. For the terminal, Markdown and HTML alike.
pub fn answer_lines(results: &crate::results::RunResults) -> Vec<String> {
    let mut out = Vec::new();
    for target in &results.targets {
        let group = &target.summary;
        let Some(answers) = &group.answers else {
            continue;
        };
        let succeeded = group.requests.succeeded;
        if answers.reasoned > 0 {
            let estimated = if answers.reasoning_estimated > 0 {
                format!(
                    " ({} counted by drover from the reasoning text: the server's usage had no reasoning count)",
                    thousands(answers.reasoning_estimated)
                )
            } else {
                " (from the server's usage)".to_string()
            };
            out.push(format!(
                "reasoning {}: {} of {} answers reasoned: {} reasoning tokens, {:.1}% of their {} output tokens{estimated}; time to first reasoning p50 {}, time to first answer p50 {}",
                target.name,
                thousands(answers.reasoned),
                thousands(succeeded),
                thousands(answers.reasoning_tokens),
                answers.reasoning_share * 100.0,
                thousands(answers.reasoned_output_tokens),
                p50(group, "time_to_first_reasoning"),
                p50(group, "time_to_first_answer"),
            ));
        }
        if answers.refusals > 0 {
            out.push(format!(
                "refusals {}: {} of {} answers were refusals",
                target.name,
                thousands(answers.refusals),
                thousands(succeeded)
            ));
        }
        if answers.unknown_events > 0 {
            out.push(format!(
                "unknown events {}: {} stream event(s) of types the API does not define, not counted as tokens: {}",
                target.name,
                thousands(answers.unknown_events),
                answers.unknown_event_types.join(", ")
            ));
        }
        if answers.inputs > 0 {
            out.push(format!(
                "embeddings {}: {} texts embedded in {} requests, {:.1} inputs/s, {} input tokens",
                target.name,
                thousands(answers.inputs),
                thousands(succeeded),
                answers.inputs_per_s,
                thousands(group.tokens.input)
            ));
        }
    }
    out
}

/// The paired comparison of a shadow run, a few lines per group (for the terminal, Markdown and
/// HTML alike). Empty without pairs.
pub fn paired_lines(results: &crate::results::RunResults) -> Vec<String> {
    let Some(paired) = &results.paired else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "Shadow pairs: candidate \"{}\" against primary \"{}\" (differences are candidate − primary, per request)",
        paired.candidate, paired.primary
    )];
    for group in &paired.groups {
        out.push(format!(
            "{}: {} pairs, {} with both sides answering",
            group.class,
            thousands(group.pairs),
            thousands(group.both_succeeded)
        ));
        if let Some(d) = &group.ttft_difference_ms {
            out.push(format!("  TTFT difference: {}", difference_text(d)));
        }
        if let Some(d) = &group.e2e_difference_ms {
            out.push(format!("  E2E difference: {}", difference_text(d)));
        }
        let test = |p: Option<f64>| {
            p.map_or(String::new(), |p| {
                format!(" (two-proportion {})", p_value(p))
            })
        };
        out.push(format!(
            "  errors: primary {}, candidate {}{}; 429s: primary {}, candidate {}{}",
            percent(group.primary.error_rate),
            percent(group.candidate.error_rate),
            test(group.error_rate_p_value),
            percent(group.primary.throttle_rate),
            percent(group.candidate.throttle_rate),
            test(group.throttle_rate_p_value),
        ));
        if let Some(a) = &group.agreement {
            let model = |rate: Option<f64>| rate.map_or("-".to_string(), percent);
            out.push(format!(
                "  agreement over {} answered pairs: {} exact, token F1 mean {:.3} (p10 {:.3}), length ratio {}, finish reasons agree {}; model as asked: primary {}, candidate {}",
                thousands(a.compared),
                percent(a.exact_match_rate),
                a.similarity_mean,
                a.similarity_p10,
                a.length_ratio_median.map_or("-".into(), |r| format!("{r:.2}")),
                a.finish_reason_agreement.map_or("-".into(), percent),
                model(group.primary.model_match_rate),
                model(group.candidate.model_match_rate),
            ));
        }
        if let (Some(p), Some(c)) = (group.primary.cost, group.candidate.cost) {
            out.push(format!(
                "  cost of the pairs: primary {}, candidate {} ({}{})",
                money(p),
                money(c),
                if c >= p { "+" } else { "-" },
                money((c - p).abs())
            ));
        }
    }
    out
}

/// A migration phase's gates: a heading line, then one line per gate. Empty outside a migration.
pub fn phase_lines(results: &crate::results::RunResults) -> Vec<String> {
    let Some(phase) = &results.phase else {
        return Vec::new();
    };
    let mut out = vec![format!(
        "Migration phase {} \"{}\": candidate share {}, mirror {}: gates {}",
        phase.index,
        phase.name,
        percent(phase.share),
        percent(phase.mirror),
        phase.word().to_uppercase()
    )];
    if phase.gates.is_empty() {
        out.push("no gates set".into());
    }
    for gate in &phase.gates {
        out.push(format!("{} {}", gate.word(), gate.describe()));
    }
    out
}

/// A migration's verdict and one line per phase that ran (for Markdown and HTML alike).
pub fn rollout_lines(rollout: &crate::results::migration::RolloutResults) -> Vec<String> {
    let mut out = vec![format!(
        "Verdict: {} ({} → {}): {}",
        rollout.verdict.name().to_uppercase(),
        rollout.primary,
        rollout.candidate,
        rollout.reason
    )];
    for phase in &rollout.phases {
        let failed: Vec<String> = phase
            .gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| g.describe())
            .collect();
        out.push(format!(
            "Phase {} \"{}\": share {}, mirror {}; {} primary and {} candidate requests, {} pairs; gates {}{}",
            phase.index,
            phase.name,
            percent(phase.share),
            percent(phase.mirror),
            thousands(phase.primary_requests),
            thousands(phase.candidate_requests),
            thousands(phase.pairs),
            match phase.word() {
                "pass" => "passed",
                "FAIL" => "FAILED",
                _ => "INSUFFICIENT",
            },
            if failed.is_empty() {
                String::new()
            } else {
                format!(": {}", failed.join("; "))
            }
        ));
    }
    let skipped = rollout.phases_planned - rollout.phases.len();
    if skipped > 0 {
        out.push(format!("{skipped} later phase(s) did not run"));
    }
    out
}

/// Primary and candidate side by side over a group of pairs: `(columns, rows)`.
pub fn paired_table(
    group: &crate::results::paired::PairedGroup,
) -> (Vec<String>, Vec<Vec<String>>) {
    let (p, c) = (&group.primary, &group.candidate);
    let opt_ms = |v: Option<f64>| v.map_or("-".to_string(), ms);
    let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => signed_ms(b - a),
        _ => "-".into(),
    };
    let mut rows = vec![
        vec![
            "requests".into(),
            thousands(p.requests),
            thousands(c.requests),
            String::new(),
        ],
        vec![
            "error rate".into(),
            percent(p.error_rate),
            percent(c.error_rate),
            group.error_rate_p_value.map_or(String::new(), p_value),
        ],
        vec![
            "429 rate".into(),
            percent(p.throttle_rate),
            percent(c.throttle_rate),
            group.throttle_rate_p_value.map_or(String::new(), p_value),
        ],
    ];
    for (name, pick) in [
        ("TTFT p50", (p.ttft_p50_ms, c.ttft_p50_ms)),
        ("TTFT p90", (p.ttft_p90_ms, c.ttft_p90_ms)),
        ("TTFT p99", (p.ttft_p99_ms, c.ttft_p99_ms)),
        ("E2E p50", (p.e2e_p50_ms, c.e2e_p50_ms)),
        ("E2E p90", (p.e2e_p90_ms, c.e2e_p90_ms)),
        ("E2E p99", (p.e2e_p99_ms, c.e2e_p99_ms)),
    ] {
        rows.push(vec![
            format!("{name} (ms)"),
            opt_ms(pick.0),
            opt_ms(pick.1),
            delta(pick.0, pick.1),
        ]);
    }
    let rate = |v: Option<f64>| v.map_or("-".to_string(), percent);
    rows.push(vec![
        "model as asked".into(),
        rate(p.model_match_rate),
        rate(c.model_match_rate),
        String::new(),
    ]);
    if let (Some(pc), Some(cc)) = (p.cost, c.cost) {
        rows.push(vec![
            "cost".into(),
            money(pc),
            money(cc),
            format!(
                "{}{}",
                if cc >= pc { "+" } else { "-" },
                money((cc - pc).abs())
            ),
        ]);
    }
    let columns = vec![
        format!("{} ({} pairs)", group.class, thousands(group.pairs)),
        "primary".into(),
        "candidate".into(),
        "difference / test".into(),
    ];
    (columns, rows)
}

/// The line printed for a phase as it ends.
pub fn phase_line(outcome: &crate::results::migration::PhaseOutcome) -> String {
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:+.1} ms"));
    let mut line = format!(
        "phase {} \"{}\" (candidate share {:.0}%, mirror {:.0}%): {}  {} primary / {} candidate requests, {} pairs; paired median TTFT {} E2E {}",
        outcome.index,
        outcome.name,
        outcome.share * 100.0,
        outcome.mirror * 100.0,
        outcome.word(),
        outcome.primary_requests,
        outcome.candidate_requests,
        outcome.pairs,
        ms(outcome.ttft_difference_ms),
        ms(outcome.e2e_difference_ms),
    );
    if outcome.extended_by > 1.0 {
        line.push_str(&format!(
            "; ran {:.2}x its written length for its gates' minimum samples",
            outcome.extended_by
        ));
    }
    for gate in &outcome.gates {
        line.push_str(&format!("\n  {} {}", gate.word(), gate.describe()));
    }
    line
}

/// The closing line: the verdict and why.
pub fn verdict_line(rollout: &crate::results::migration::RolloutResults) -> String {
    format!(
        "migration verdict: {}: {}",
        rollout.verdict.name(),
        rollout.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_from_inconsistent_counts_do_not_underflow() {
        let mut group = GroupResults::default();
        group.requests.succeeded = 3;
        group.requests.failed = 1;
        group.requests.throttled = 5;
        assert_eq!(error_rate(&group), 0.0);
        assert_eq!(throttle_rate(&group), 1.25);
    }
}
