//! A run's scrapes of its server's metrics, kept as they come ([`ScrapeLog`]) and turned into
//! results: points on the run's time base, a summary (means and maxima of the gauges, token rates
//! and the server's latency histograms over the run), and the saturation rule.
//!
//! **Saturation** (README, "Server metrics"): a run is flagged when the server's queue grew and
//! did not drain — over the thirds of the run's scrapes, the mean of waiting requests in the last
//! third is at least 2, at least 2 more than in the first third, and at least 90% of the second
//! third's — or when its KV cache stayed full: usage at or above 95% in at least half the scrapes.
//! Each needs 6 scrapes that report the figure. For an open loop only the scrapes while it sent
//! count: the backlog that drains once sending stops says nothing about whether it would have.

use std::collections::BTreeMap;

use crate::protocol::prometheus::servers::{Figures, ServerKind};
use crate::protocol::prometheus::{Exposition, Histogram};
use crate::results::server::{ServerLatency, ServerMetricsResults, ServerPoint, ServerSummary};

/// Points kept before every other one is dropped.
pub const MAX_POINTS: usize = 7_200;
/// Names kept by `keep` patterns; more are counted, not kept.
pub const MAX_KEPT_NAMES: usize = 100;
/// Scrapes a rule needs before it says anything.
const MIN_POINTS: usize = 6;

/// Everything scraped so far.
#[derive(Debug, Clone)]
pub struct ScrapeLog {
    pub url: String,
    pub every_s: f64,
    /// Metric names or `*` patterns kept as they are.
    keep: Vec<String>,
    kind: Option<ServerKind>,
    scrapes: u64,
    failed: BTreeMap<String, u64>,
    last_error: Option<String>,
    stopped: Option<String>,
    points: Vec<ServerPoint>,
    /// The first and the latest read scrape: (t_s, figures).
    first: Option<(f64, Figures)>,
    latest: Option<(f64, Figures)>,
    prefix_rates: Vec<f64>,
    kept: BTreeMap<String, Vec<[f64; 2]>>,
    kept_dropped: std::collections::BTreeSet<String>,
    /// The saturation rule looks at scrapes up to here (an open loop's sending window).
    saturation_until: Option<f64>,
}

impl ScrapeLog {
    pub fn new(url: String, every_s: f64, keep: Vec<String>) -> Self {
        ScrapeLog {
            url,
            every_s,
            keep,
            kind: None,
            scrapes: 0,
            failed: BTreeMap::new(),
            last_error: None,
            stopped: None,
            points: Vec::new(),
            first: None,
            latest: None,
            prefix_rates: Vec::new(),
            kept: BTreeMap::new(),
            kept_dropped: Default::default(),
            saturation_until: None,
        }
    }

    /// Judges saturation on the scrapes up to `until` seconds after the origin only (see
    /// [`saturation`]).
    pub fn judge_saturation_until(mut self, until: Option<f64>) -> Self {
        self.saturation_until = until;
        self
    }

    /// A page read at `t_s` seconds after the origin.
    pub fn read(&mut self, t_s: f64, page: &Exposition) {
        let (kind, figures) = crate::protocol::prometheus::servers::figures(page);
        self.kind.get_or_insert(kind);
        self.scrapes += 1;
        // A rate over much less than the scrape interval (the last scrape, right after the load
        // ends) would magnify a counter's step into a spike: it is left out.
        let min_dt = 0.5 * self.every_s;
        let rate = |now: Option<f64>, before: Option<f64>, dt: f64| match (now, before) {
            (Some(now), Some(before)) if dt > 0.0 && dt >= min_dt && now >= before => {
                Some((now - before) / dt)
            }
            _ => None,
        };
        let (prompt_rate, generation_rate) = match &self.latest {
            Some((t0, before)) => (
                rate(figures.prompt_tokens, before.prompt_tokens, t_s - t0),
                rate(
                    figures.generation_tokens,
                    before.generation_tokens,
                    t_s - t0,
                ),
            ),
            None => (None, None),
        };
        if let Some(rate) = figures.prefix_hit_rate {
            self.prefix_rates.push(rate);
        }
        self.points.push(ServerPoint {
            t_s,
            running: figures.running,
            waiting: figures.waiting,
            kv_usage: figures.kv_usage,
            prompt_tokens_per_s: prompt_rate,
            generation_tokens_per_s: generation_rate,
        });
        self.keep_series(t_s, page);
        if self.points.len() > MAX_POINTS {
            thin(&mut self.points);
            for series in self.kept.values_mut() {
                thin(series);
            }
        }
        if self.first.is_none() {
            self.first = Some((t_s, figures.clone()));
        }
        self.latest = Some((t_s, figures));
    }

    fn keep_series(&mut self, t_s: f64, page: &Exposition) {
        if self.keep.is_empty() {
            return;
        }
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for sample in &page.samples {
            if sample.value.is_finite() && self.keep.iter().any(|p| matches(p, &sample.name)) {
                *sums.entry(sample.name.as_str()).or_insert(0.0) += sample.value;
            }
        }
        for (name, value) in sums {
            if let Some(series) = self.kept.get_mut(name) {
                series.push([t_s, value]);
            } else if self.kept.len() < MAX_KEPT_NAMES {
                self.kept.insert(name.to_string(), vec![[t_s, value]]);
            } else {
                self.kept_dropped.insert(name.to_string());
            }
        }
    }

    /// A scrape that failed, by class, with its message.
    pub fn failed(&mut self, class: &str, message: String) {
        *self.failed.entry(class.to_string()).or_insert(0) += 1;
        self.last_error = Some(message);
    }

    /// Scraping stopped before the run ended, and why.
    pub fn stop(&mut self, reason: String) {
        self.stopped = Some(reason);
    }

    /// Scrapes read so far.
    pub fn scrapes(&self) -> u64 {
        self.scrapes
    }

    /// The results, on the time base that starts at `origin_unix`.
    pub fn into_results(self, origin_unix: u64) -> ServerMetricsResults {
        let summary = summary(
            &self.points,
            self.first.as_ref(),
            self.latest.as_ref(),
            &self.prefix_rates,
        );
        ServerMetricsResults {
            saturation: saturation(&self.points, self.saturation_until),
            url: self.url,
            every_s: self.every_s,
            server: self.kind.unwrap_or(ServerKind::Other).name().to_string(),
            scrapes: self.scrapes,
            failed: self.failed,
            last_error: self.last_error,
            stopped: self.stopped,
            origin_unix,
            points: self.points,
            summary,
            kept: self.kept,
            kept_dropped: self.kept_dropped.len() as u64,
        }
    }
}

/// Keeps every other element (the first among them).
fn thin<T: Clone>(items: &mut Vec<T>) {
    *items = items.iter().step_by(2).cloned().collect();
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn max(values: &[f64]) -> Option<f64> {
    values.iter().copied().reduce(f64::max)
}

fn field(points: &[ServerPoint], get: impl Fn(&ServerPoint) -> Option<f64>) -> Vec<f64> {
    points.iter().filter_map(get).collect()
}

fn summary(
    points: &[ServerPoint],
    first: Option<&(f64, Figures)>,
    latest: Option<&(f64, Figures)>,
    prefix_rates: &[f64],
) -> ServerSummary {
    let running = field(points, |p| p.running);
    let waiting = field(points, |p| p.waiting);
    let kv = field(points, |p| p.kv_usage);
    let mut summary = ServerSummary {
        max_running: max(&running),
        mean_running: mean(&running),
        max_waiting: max(&waiting),
        mean_waiting: mean(&waiting),
        mean_kv_usage: mean(&kv),
        max_kv_usage: max(&kv),
        prefix_cache_hit_rate: mean(prefix_rates),
        ..ServerSummary::default()
    };
    let (Some((t0, first)), Some((t1, last))) = (first, latest) else {
        return summary;
    };
    let elapsed = t1 - t0;
    let over_run = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if elapsed > 0.0 && b >= a => Some((b - a) / elapsed),
        _ => None,
    };
    summary.prompt_tokens_per_s = over_run(first.prompt_tokens, last.prompt_tokens);
    summary.generation_tokens_per_s = over_run(first.generation_tokens, last.generation_tokens);
    if let (Some((hits0, queries0)), Some((hits1, queries1))) =
        (first.prefix_counts, last.prefix_counts)
    {
        let queries = queries1 - queries0;
        if queries > 0.0 && hits1 >= hits0 {
            summary.prefix_cache_hit_rate = Some((hits1 - hits0) / queries);
        }
    }
    let latency = |a: &Option<Histogram>, b: &Option<Histogram>| {
        let (Some(a), Some(b)) = (a, b) else {
            return None;
        };
        latency_of(&b.since(a))
    };
    summary.ttft_ms = latency(&first.ttft, &last.ttft);
    summary.e2e_ms = latency(&first.e2e, &last.e2e);
    summary.queue_ms = latency(&first.queue, &last.queue);
    summary
}

/// A histogram in seconds summarised in milliseconds; `None` without observations.
fn latency_of(histogram: &Histogram) -> Option<ServerLatency> {
    let count = histogram.observations();
    if count <= 0.0 {
        return None;
    }
    Some(ServerLatency {
        count,
        mean: 1_000.0 * histogram.sum / count,
        p50: 1_000.0 * histogram.quantile(0.5)?,
        p90: 1_000.0 * histogram.quantile(0.9)?,
        p99: 1_000.0 * histogram.quantile(0.99)?,
    })
}

/// The saturation rule (module doc) over the scrapes up to `until_s` (the end of an open
/// loop's sending: a backlog that drains after the load stops is not a queue that stopped
/// growing), or all of them: what it found, in words; empty when nothing.
pub fn saturation(points: &[ServerPoint], until_s: Option<f64>) -> Vec<String> {
    let points: Vec<ServerPoint> = points
        .iter()
        .filter(|p| until_s.is_none_or(|until| p.t_s <= until))
        .cloned()
        .collect();
    let points = points.as_slice();
    let mut signs = Vec::new();
    let waiting = field(points, |p| p.waiting);
    if waiting.len() >= MIN_POINTS {
        let third = waiting.len() / 3;
        let (a, b, c) = (
            mean(&waiting[..third]).unwrap_or(0.0),
            mean(&waiting[third..2 * third]).unwrap_or(0.0),
            mean(&waiting[2 * third..]).unwrap_or(0.0),
        );
        if c >= 2.0 && c >= a + 2.0 && c >= 0.9 * b {
            signs.push(format!(
                "the server's queue grew and did not drain: {a:.1} → {b:.1} → {c:.1} requests waiting on average over the thirds of the load"
            ));
        }
    }
    let kv = field(points, |p| p.kv_usage);
    if kv.len() >= MIN_POINTS {
        let full = kv.iter().filter(|&&u| u >= 0.95).count();
        if 2 * full >= kv.len() {
            signs.push(format!(
                "the server's KV cache stayed full: at or above 95% in {full} of {} scrapes",
                kv.len()
            ));
        }
    }
    signs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::prometheus::{parse, Limits};

    fn vllm_page(
        running: f64,
        waiting: f64,
        kv: f64,
        generated: f64,
        ttft: [u64; 3],
    ) -> Exposition {
        let mut page = crate::protocol::prometheus::Writer::new();
        page.family("vllm:num_requests_running", "gauge", "r")
            .sample("vllm:num_requests_running", &[], running)
            .family("vllm:num_requests_waiting", "gauge", "w")
            .sample("vllm:num_requests_waiting", &[], waiting)
            .family("vllm:kv_cache_usage_perc", "gauge", "k")
            .sample("vllm:kv_cache_usage_perc", &[], kv)
            .family("vllm:generation_tokens_total", "counter", "g")
            .sample("vllm:generation_tokens_total", &[], generated)
            .family("vllm:num_preemptions_total", "counter", "p")
            .sample("vllm:num_preemptions_total", &[("engine", "0")], 1.0)
            .sample("vllm:num_preemptions_total", &[("engine", "1")], 2.0)
            .family("vllm:time_to_first_token_seconds", "histogram", "t")
            .histogram(
                "vllm:time_to_first_token_seconds",
                &[],
                &[0.05, 0.1],
                &ttft,
                0.0,
            );
        parse(&page.finish(), &Limits::default())
    }

    #[test]
    fn points_rates_summary_and_kept_series_come_from_the_scrapes() {
        let mut log = ScrapeLog::new("u".into(), 1.0, vec!["vllm:num_pre*".into()]);
        // Before the run: 10 TTFTs the run must not count.
        log.read(0.0, &vllm_page(1.0, 0.0, 0.1, 100.0, [10, 0, 0]));
        log.read(1.0, &vllm_page(4.0, 2.0, 0.5, 300.0, [10, 20, 0]));
        log.read(2.0, &vllm_page(4.0, 6.0, 0.9, 700.0, [10, 20, 20]));
        // The last scrape, a moment after the previous one: no rate from it.
        log.read(2.05, &vllm_page(4.0, 6.0, 0.9, 732.0, [10, 20, 20]));
        log.failed("timeout", "took longer than 1s".into());
        let results = log.into_results(1_000);
        assert_eq!(results.server, "vllm");
        assert_eq!(results.scrapes, 4);
        assert_eq!(results.failed["timeout"], 1);
        let rates: Vec<Option<f64>> = results
            .points
            .iter()
            .map(|p| p.generation_tokens_per_s)
            .collect();
        assert_eq!(rates, [None, Some(200.0), Some(400.0), None]);
        let summary = &results.summary;
        assert_eq!(summary.max_waiting, Some(6.0));
        assert_eq!(summary.mean_running, Some(3.25));
        assert!((summary.generation_tokens_per_s.unwrap() - 632.0 / 2.05).abs() < 1e-9);
        // 40 TTFTs during the run: 20 in (50, 100] ms, 20 in (100 ms, +Inf).
        let ttft = summary.ttft_ms.as_ref().unwrap();
        assert_eq!(ttft.count, 40.0);
        assert!((ttft.p50 - 100.0).abs() < 1e-9, "{ttft:?}");
        assert_eq!(ttft.p99, 100.0, "in +Inf: the highest finite bound");
        assert_eq!(
            results.kept["vllm:num_preemptions_total"],
            vec![[0.0, 3.0], [1.0, 3.0], [2.0, 3.0], [2.05, 3.0]]
        );
    }

    fn points(waiting: &[f64], kv: &[f64]) -> Vec<ServerPoint> {
        waiting
            .iter()
            .zip(kv)
            .enumerate()
            .map(|(i, (&w, &k))| ServerPoint {
                t_s: i as f64,
                waiting: Some(w),
                kv_usage: Some(k),
                ..ServerPoint::default()
            })
            .collect()
    }

    #[test]
    fn a_growing_queue_and_a_full_cache_are_saturation_and_a_quiet_server_is_not() {
        let growing: Vec<f64> = (0..12).map(|i| i as f64 * 3.0).collect();
        let signs = saturation(&points(&growing, &[0.5; 12]), None);
        assert_eq!(signs.len(), 1, "{signs:?}");
        assert!(signs[0].contains("queue grew"), "{signs:?}");
        let signs = saturation(&points(&[0.0; 12], &[0.97; 12]), None);
        assert_eq!(signs.len(), 1);
        assert!(signs[0].contains("KV cache stayed full: at or above 95% in 12 of 12"));
        // Below capacity: a request or two waiting now and then, the cache half used.
        let quiet = [0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0];
        assert!(saturation(&points(&quiet, &[0.5; 12]), None).is_empty());
        // A queue that drained by the end is not one that grew without bound.
        let drained = [
            0.0, 5.0, 9.0, 12.0, 14.0, 15.0, 12.0, 8.0, 3.0, 0.0, 0.0, 0.0,
        ];
        assert!(saturation(&points(&drained, &[0.5; 12]), None).is_empty());
        // Unless the drain came after the load stopped sending (at t = 5 s): up to then the
        // queue grew.
        let signs = saturation(&points(&drained, &[0.5; 12]), Some(5.0));
        assert!(signs[0].contains("2.5 → 10.5 → 14.5"), "{signs:?}");
        // Too few scrapes say nothing.
        assert!(saturation(&points(&[0.0, 10.0, 20.0], &[1.0; 3]), None).is_empty());
    }

    #[test]
    fn patterns_match_names() {
        assert!(matches(
            "vllm:spec_decode_*",
            "vllm:spec_decode_num_drafts_total"
        ));
        assert!(matches("*_total", "a_total"));
        assert!(matches("a*b*c", "a-x-b-y-c"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exactly"));
        assert!(!matches("a*b*c", "a-c-b"));
        assert!(!matches("ab*ba", "aba"));
    }

    #[test]
    fn points_are_thinned_past_the_limit() {
        let mut log = ScrapeLog::new("u".into(), 1.0, Vec::new());
        let page = vllm_page(1.0, 0.0, 0.1, 1.0, [1, 0, 0]);
        for i in 0..=MAX_POINTS {
            log.read(i as f64, &page);
        }
        let results = log.into_results(0);
        assert_eq!(results.points.len(), MAX_POINTS / 2 + 1);
        assert_eq!(results.scrapes, MAX_POINTS as u64 + 1);
        assert_eq!(results.points[1].t_s, 2.0);
    }
}
