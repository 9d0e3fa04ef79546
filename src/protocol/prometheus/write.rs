//! Writes a Prometheus text page (format 0.0.4): families with their HELP and TYPE lines,
//! label values escaped, histograms as cumulative `_bucket`, `_sum` and `_count` series.

use std::fmt::Write as _;

/// A page being written, family by family.
#[derive(Debug, Default)]
pub struct Writer {
    text: String,
}

/// The content type of the page.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    /// Starts a family: its HELP and TYPE lines (`kind`: counter, gauge, histogram).
    pub fn family(&mut self, name: &str, kind: &str, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        self
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(value));
        self
    }

    /// A histogram's series: `bounds` are the finite upper bounds in increasing order and
    /// `counts` the observations in each bucket (not cumulative), one more for `+Inf`.
    pub fn histogram(
        &mut self,
        name: &str,
        labels: &[(&str, &str)],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) -> &mut Self {
        let mut cumulative = 0u64;
        for (i, count) in counts.iter().enumerate() {
            cumulative += count;
            let bound = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_value(*b));
            self.text.push_str(name);
            self.text.push_str("_bucket");
            write_labels(&mut self.text, labels, Some(&bound));
            let _ = writeln!(self.text, " {cumulative}");
        }
        self.text.push_str(name);
        self.text.push_str("_sum");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {}", format_value(sum));
        self.text.push_str(name);
        self.text.push_str("_count");
        write_labels(&mut self.text, labels, None);
        let _ = writeln!(self.text, " {cumulative}");
        self
    }

    /// The page.
    pub fn finish(self) -> String {
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (name, value) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
}

fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value == f64::INFINITY {
        "+Inf".into()
    } else if value == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Limits};
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let mut page = Writer::new();
        page.family("drover_requests_total", "counter", "Requests.")
            .sample(
                "drover_requests_total",
                &[("target", "a \"b\"\\c"), ("outcome", "ok")],
                12.0,
            );
        page.family("drover_ttft_seconds", "histogram", "TTFT.")
            .histogram(
                "drover_ttft_seconds",
                &[("target", "t")],
                &[0.01, 0.1],
                &[1, 2, 3],
                0.9,
            );
        let text = page.finish();
        let read = parse(&text, &Limits::default());
        assert_eq!(read.invalid_lines, 0, "{text}");
        let requests = read.named("drover_requests_total").next().unwrap();
        assert_eq!(requests.label("target"), Some("a \"b\"\\c"));
        assert_eq!(requests.value, 12.0);
        let histogram = read.histogram("drover_ttft_seconds").unwrap();
        assert_eq!(
            histogram.buckets,
            vec![(0.01, 1.0), (0.1, 3.0), (f64::INFINITY, 6.0)]
        );
        assert_eq!((histogram.sum, histogram.count), (0.9, 6.0));
    }
}
