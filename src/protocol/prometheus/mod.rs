//! The Prometheus text exposition format (0.0.4, and the OpenMetrics text a scrape meets): a
//! bounded parser for servers' `/metrics` pages, histogram arithmetic on what it reads, and a
//! writer for the pages drover and its mock serve.
//!
//! The parser never fails and never panics: a line it cannot read is counted (the first one is
//! kept, cut short, for the message), samples past [`Limits::max_samples`] are counted and
//! dropped, lines longer than [`Limits::max_line`] are skipped unread. Whether a page was
//! Prometheus text at all is the caller's judgement ([`Exposition::is_prometheus`]).
//! [`servers`] maps the names known inference servers use to common figures.

pub mod servers;
mod write;

use std::collections::BTreeMap;

pub use write::{Writer, CONTENT_TYPE};

/// One sample: a metric name, its labels in the order given, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of a label, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A metric family's declared type (`# TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Untyped,
}

/// How much of a page is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Samples kept; later ones are counted in [`Exposition::dropped`].
    pub max_samples: usize,
    /// Longer lines are skipped (and counted as invalid) without being read.
    pub max_line: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_samples: 100_000,
            max_line: 16 * 1024,
        }
    }
}

/// What a page held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Declared types, by family name.
    pub types: BTreeMap<String, MetricType>,
    /// Lines that were neither a sample, a comment nor blank.
    pub invalid_lines: usize,
    /// The first of them, at most 120 characters.
    pub first_invalid: Option<String>,
    /// Samples past the limit.
    pub dropped: usize,
}

impl Exposition {
    /// Whether the page looks like Prometheus text: it has samples and most of its non-blank,
    /// non-comment lines were samples (an HTML page or a JSON document has none).
    pub fn is_prometheus(&self) -> bool {
        let read = self.samples.len() + self.dropped;
        read > 0 && self.invalid_lines <= read
    }

    /// Samples of one metric name.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The sum of every sample of `name` (across label sets), if there is one.
    pub fn sum(&self, name: &str) -> Option<f64> {
        self.named(name)
            .map(|s| s.value)
            .filter(|v| v.is_finite())
            .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
    }

    /// The largest sample of `name` (across label sets), if there is one.
    pub fn max(&self, name: &str) -> Option<f64> {
        self.named(name)
            .map(|s| s.value)
            .filter(|v| v.is_finite())
            .fold(None, |acc: Option<f64>, v| {
                Some(acc.map_or(v, |a| a.max(v)))
            })
    }

    /// The histogram family `name` (`name_bucket`, `name_sum`, `name_count`), its label sets
    /// added together bucket by bucket; `None` when it has no buckets.
    pub fn histogram(&self, name: &str) -> Option<Histogram> {
        let bucket_name = format!("{name}_bucket");
        let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for sample in self.named(&bucket_name) {
            let Some(bound) = sample.label("le").and_then(parse_value) else {
                continue;
            };
            if bound.is_nan() || !sample.value.is_finite() {
                continue;
            }
            let entry = buckets.entry(order_key(bound)).or_insert((bound, 0.0));
            entry.1 += sample.value;
        }
        if buckets.is_empty() {
            return None;
        }
        Some(Histogram {
            buckets: buckets.into_values().collect(),
            sum: self.sum(&format!("{name}_sum")).unwrap_or(0.0),
            count: self.sum(&format!("{name}_count")).unwrap_or(0.0),
        })
    }
}

/// A key that sorts f64 bounds in numeric order (+Inf last).
fn order_key(bound: f64) -> u64 {
    let bits = bound.to_bits();
    if bound.is_sign_negative() {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A cumulative histogram as Prometheus exposes it: (upper bound, observations ≤ it) in
/// increasing bound order, the last bound normally `+Inf`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    pub buckets: Vec<(f64, f64)>,
    pub sum: f64,
    pub count: f64,
}

impl Histogram {
    /// What was observed between `earlier` and `self` (two scrapes of one counter-like
    /// histogram). A reset between them (a count that went down), or other bounds, leaves
    /// `self` whole.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let same_bounds = self.buckets.len() == earlier.buckets.len()
            && self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .all(|(a, b)| a.0 == b.0);
        let reset = self.count < earlier.count
            || self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .any(|(a, b)| a.1 < b.1);
        if !same_bounds || reset {
            return self.clone();
        }
        Histogram {
            buckets: self
                .buckets
                .iter()
                .zip(&earlier.buckets)
                .map(|(a, b)| (a.0, a.1 - b.1))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    /// Observations in it (the `+Inf` bucket, else the count).
    pub fn observations(&self) -> f64 {
        match self.buckets.last() {
            Some((bound, cumulative)) if bound.is_infinite() => *cumulative,
            _ => self.count,
        }
    }

    /// The `q` quantile (0–1) estimated as Prometheus' `histogram_quantile` does: linearly
    /// within the bucket that holds it, from 0 for the first bucket; a quantile in the `+Inf`
    /// bucket is the highest finite bound. `None` without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.observations();
        if total <= 0.0 || !q.is_finite() {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total;
        let mut lower_bound = 0.0;
        let mut lower_count = 0.0;
        for &(bound, cumulative) in &self.buckets {
            if cumulative >= rank {
                if bound.is_infinite() {
                    return Some(lower_bound);
                }
                let in_bucket = cumulative - lower_count;
                if in_bucket <= 0.0 {
                    return Some(bound);
                }
                return Some(
                    lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket,
                );
            }
            lower_bound = bound;
            lower_count = cumulative;
        }
        Some(lower_bound)
    }
}

/// Reads a page.
pub fn parse(text: &str, limits: &Limits) -> Exposition {
    let mut out = Exposition::default();
    for line in text.lines() {
        if line.len() > limits.max_line {
            invalid(&mut out, "(a line longer than the limit)");
            continue;
        }
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            read_comment(comment, &mut out.types);
            continue;
        }
        match parse_sample(line) {
            Some(sample) if out.samples.len() < limits.max_samples => out.samples.push(sample),
            Some(_) => out.dropped += 1,
            None => invalid(&mut out, line),
        }
    }
    out
}

fn invalid(out: &mut Exposition, line: &str) {
    out.invalid_lines += 1;
    if out.first_invalid.is_none() {
        out.first_invalid = Some(line.chars().take(120).collect());
    }
}

/// `# TYPE name type` is kept; `# HELP`, `# EOF` and other comments are not needed.
fn read_comment(comment: &str, types: &mut BTreeMap<String, MetricType>) {
    let mut words = comment.split_whitespace();
    if words.next() != Some("TYPE") {
        return;
    }
    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
        return;
    };
    let kind = match kind {
        "counter" => MetricType::Counter,
        "gauge" => MetricType::Gauge,
        "histogram" => MetricType::Histogram,
        "summary" => MetricType::Summary,
        _ => MetricType::Untyped,
    };
    types.insert(name.to_string(), kind);
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// `name{label="value",…} value [timestamp]`; `None` when the line is not one.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
    let name = &line[..name_end];
    if !name.starts_with(is_name_start) {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next()?)?;
    // A timestamp may follow (ignored: the scrape's own time is used); nothing else may.
    if let Some(timestamp) = fields.next() {
        timestamp.parse::<f64>().ok()?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels after `{`, up to and including the closing `}`; returns them and the rest.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start();
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let name_end = text.find(|c: char| !is_name_char(c))?;
        let name = &text[..name_end];
        if name.is_empty() {
            return None;
        }
        text = text[name_end..].trim_start().strip_prefix('=')?;
        text = text.trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = text.char_indices();
        let end = loop {
            let (at, c) = chars.next()?;
            match c {
                '"' => break at,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                other => value.push(other),
            }
        };
        labels.push((name.to_string(), value));
        text = text[end + 1..].trim_start();
        if let Some(rest) = text.strip_prefix(',') {
            text = rest;
        } else if !text.starts_with('}') {
            return None;
        }
    }
}

/// A sample value or bound: a float, `NaN`, `+Inf`, `-Inf` (Go's spellings too).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => text.parse::<f64>().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP demo_requests_running Requests in progress.
# TYPE demo_requests_running gauge
demo_requests_running{model_name="m",engine="0"} 3
demo_requests_running{model_name="m",engine="1"} 4.0
# TYPE demo_latency_seconds histogram
demo_latency_seconds_bucket{le="0.1",model_name="m"} 2.0
demo_latency_seconds_bucket{le="0.5",model_name="m"} 6.0
demo_latency_seconds_bucket{le="1.0",model_name="m"} 9.0
demo_latency_seconds_bucket{le="+Inf",model_name="m"} 10.0
demo_latency_seconds_sum{model_name="m"} 4.2
demo_latency_seconds_count{model_name="m"} 10.0
odd{path="a \"quoted\" \\ value, with = and }",} 1e3 1700000000000
demo_nan NaN
# EOF
"#;

    #[test]
    fn samples_labels_types_and_escapes_are_read() {
        let page = parse(PAGE, &Limits::default());
        assert_eq!(page.invalid_lines, 0, "{:?}", page.first_invalid);
        assert!(page.is_prometheus());
        assert_eq!(page.samples.len(), 10);
        assert_eq!(page.sum("demo_requests_running"), Some(7.0));
        assert_eq!(page.max("demo_requests_running"), Some(4.0));
        assert_eq!(
            page.types.get("demo_latency_seconds"),
            Some(&MetricType::Histogram)
        );
        let odd = page.named("odd").next().unwrap();
        assert_eq!(
            odd.label("path"),
            Some("a \"quoted\" \\ value, with = and }")
        );
        assert_eq!(odd.value, 1000.0);
        // NaN is read, and left out of sums.
        assert!(page.named("demo_nan").next().unwrap().value.is_nan());
        assert_eq!(page.sum("demo_nan"), None);
    }

    #[test]
    fn histogram_quantiles_interpolate_within_buckets() {
        let page = parse(PAGE, &Limits::default());
        let histogram = page.histogram("demo_latency_seconds").unwrap();
        assert_eq!(histogram.observations(), 10.0);
        assert_eq!(histogram.count, 10.0);
        // p50: rank 5 lies in (0.1, 0.5] holding observations 3..6: 0.1 + 0.4 * 3/4.
        assert!((histogram.quantile(0.5).unwrap() - 0.4).abs() < 1e-12);
        // p10: rank 1 in the first bucket, from 0: 0.1 * 1/2.
        assert!((histogram.quantile(0.1).unwrap() - 0.05).abs() < 1e-12);
        // p99: rank 9.9 is in +Inf: the highest finite bound.
        assert_eq!(histogram.quantile(0.99), Some(1.0));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn a_histogram_since_an_earlier_scrape_holds_only_the_new_observations() {
        let earlier = Histogram {
            buckets: vec![(0.1, 1.0), (1.0, 2.0), (f64::INFINITY, 2.0)],
            sum: 0.5,
            count: 2.0,
        };
        let later = Histogram {
            buckets: vec![(0.1, 1.0), (1.0, 5.0), (f64::INFINITY, 6.0)],
            sum: 5.5,
            count: 6.0,
        };
        let new = later.since(&earlier);
        assert_eq!(
            new.buckets,
            vec![(0.1, 0.0), (1.0, 3.0), (f64::INFINITY, 4.0)]
        );
        assert_eq!((new.sum, new.count), (5.0, 4.0));
        // A restarted server: the later scrape is taken whole.
        assert_eq!(earlier.since(&later), earlier);
    }

    #[test]
    fn html_json_and_garbage_are_not_prometheus_and_never_panic() {
        for page in [
            "<!doctype html><html><body><h1>Metrics</h1></body></html>",
            "{\"requests\": 3}",
            "",
            "# only comments\n",
            "name{unterminated=\"x 1\nname{a=b} 1\nname 1 2 3\n\u{0}\u{ffff} 4\n{} 5",
        ] {
            let read = parse(page, &Limits::default());
            assert!(!read.is_prometheus(), "{page:?}: {read:?}");
        }
        let html = parse("<html>\n<body>x</body>\n</html>", &Limits::default());
        assert_eq!(html.invalid_lines, 3);
        assert_eq!(html.first_invalid.as_deref(), Some("<html>"));
    }

    #[test]
    fn limits_bound_what_is_kept() {
        let page: String = (0..50).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
        let read = parse(
            &page,
            &Limits {
                max_samples: 10,
                max_line: 1024,
            },
        );
        assert_eq!((read.samples.len(), read.dropped), (10, 40));
        let long = format!("m{{a=\"{}\"}} 1\nm 2\n", "x".repeat(5_000));
        let read = parse(
            &long,
            &Limits {
                max_samples: 10,
                max_line: 1024,
            },
        );
        assert_eq!((read.samples.len(), read.invalid_lines), (1, 1));
    }

    #[test]
    fn any_input_is_read_without_panicking() {
        use rand::{RngExt, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet: Vec<char> = "ab_:{}=\",\\ \n#+-.0123456789eInfNa\u{e9}"
            .chars()
            .collect();
        for _ in 0..2_000 {
            let len = rng.random_range(0..80);
            let text: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            let read = parse(&text, &Limits::default());
            for name in ["a", "b"] {
                if let Some(histogram) = read.histogram(name) {
                    let _ = histogram.quantile(0.5);
                }
            }
        }
    }
}
