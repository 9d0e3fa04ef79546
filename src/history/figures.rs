//! The figures a history keeps of each target of a run: the headline numbers of its summary
//! (latency percentiles, throughput, error and throttle rates, cost per 1M output tokens), with
//! which way is better.

use crate::results::GroupResults;

/// One kept figure: its key in the database, how it is shown, and which way is worse.
#[derive(Debug, Clone, Copy)]
pub struct Figure {
    /// `ttft.p50`, `output_tokens_per_s`, … (the names `drover compare` uses).
    pub key: &'static str,
    pub label: &'static str,
    /// `ms`, `req/s`, `tok/s`, `%` (kept as a fraction, shown ×100) or `money`.
    pub unit: &'static str,
    pub lower_is_better: bool,
    pub read: fn(&GroupResults) -> Option<f64>,
}

fn latency(
    group: &GroupResults,
    metric: &str,
    pick: fn(&crate::results::LatencyStat) -> f64,
) -> Option<f64> {
    group.latency_ms.get(metric).map(pick)
}

fn finished_share(group: &GroupResults, count: u64) -> Option<f64> {
    let finished = group.requests.succeeded + group.requests.failed;
    (finished > 0).then(|| count as f64 / finished as f64)
}

/// Every figure kept, in the order tables show them.
pub const FIGURES: [Figure; 13] = [
    Figure {
        key: "ttft.p50",
        label: "TTFT p50",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "ttft", |s| s.p50),
    },
    Figure {
        key: "ttft.p90",
        label: "TTFT p90",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "ttft", |s| s.p90),
    },
    Figure {
        key: "ttft.p99",
        label: "TTFT p99",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "ttft", |s| s.p99),
    },
    Figure {
        key: "itl.p50",
        label: "ITL p50",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "itl", |s| s.p50),
    },
    Figure {
        key: "tpot.p50",
        label: "TPOT p50",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "tpot", |s| s.p50),
    },
    Figure {
        key: "e2e.p50",
        label: "E2E p50",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "e2e", |s| s.p50),
    },
    Figure {
        key: "e2e.p90",
        label: "E2E p90",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "e2e", |s| s.p90),
    },
    Figure {
        key: "e2e.p99",
        label: "E2E p99",
        unit: "ms",
        lower_is_better: true,
        read: |g| latency(g, "e2e", |s| s.p99),
    },
    Figure {
        key: "requests_per_s",
        label: "req/s",
        unit: "req/s",
        lower_is_better: false,
        read: |g| Some(g.throughput.requests_per_s),
    },
    Figure {
        key: "output_tokens_per_s",
        label: "out tok/s",
        unit: "tok/s",
        lower_is_better: false,
        read: |g| Some(g.throughput.output_tokens_per_s),
    },
    Figure {
        key: "error_rate",
        label: "err %",
        unit: "%",
        lower_is_better: true,
        read: |g| finished_share(g, g.requests.failed.saturating_sub(g.requests.throttled)),
    },
    Figure {
        key: "throttle_rate",
        label: "429 %",
        unit: "%",
        lower_is_better: true,
        read: |g| finished_share(g, g.requests.throttled),
    },
    Figure {
        key: "cost_per_mtok",
        label: "cost/1M out",
        unit: "money",
        lower_is_better: true,
        read: |g| {
            g.cost
                .as_ref()
                .filter(|_| g.tokens.output > 0)
                .map(|c| c.per_million_output_tokens)
        },
    },
];

/// The figure of a key.
pub fn figure(key: &str) -> Option<&'static Figure> {
    FIGURES.iter().find(|f| f.key == key)
}

/// A value as tables show it.
pub fn shown(figure: &Figure, value: f64) -> String {
    match figure.unit {
        "ms" => crate::units::ms(value),
        "%" => format!("{:.2}%", value * 100.0),
        "money" => crate::units::money(value),
        _ => crate::units::rate(value),
    }
}
