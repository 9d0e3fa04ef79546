//! The optional per-request export: one JSON line per finished request streamed to
//! `requests.jsonl` (`run --export-requests`), and the same fields as one CSV row each in
//! `requests.csv` (`run --csv`), written as records arrive so that they cost disk, not memory.
//! Times are milliseconds from the run's start (and the send time also as Unix seconds, to join
//! shards). Failure messages are the already scrubbed samples' text: no secrets.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::record::{ConnectionUse, RequestRecord};

/// One line of `requests.jsonl`.
#[derive(Debug, Serialize)]
struct Line<'a> {
    /// The request's global index: the same request on every target and shard.
    request: u64,
    target: &'a str,
    class: &'a str,
    stage: usize,
    warmup: bool,
    sent_unix_s: f64,
    intended_ms: f64,
    sent_ms: f64,
    schedule_lag_ms: f64,
    /// `"reused"`, `"opened"` or `"unknown"` (Batch API requests).
    connection: &'static str,
    /// The connection's number within the target, in the order connections were opened.
    #[serde(skip_serializing_if = "Option::is_none")]
    connection_id: Option<u32>,
    /// Set-up of the connection this request opened: before `sent_ms`, not part of TTFT.
    #[serde(skip_serializing_if = "Option::is_none")]
    dns_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcp_connect_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_handshake_ms: Option<f64>,
    /// The wait for an HTTP/2 stream slot, every connection of the pool full: before `sent_ms`.
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_wait_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    ttft_ms: Option<f64>,
    e2e_ms: f64,
    output_tokens: u64,
    input_tokens: Option<u64>,
    /// `"ok"` or the error class (`http_500`, `throttled`, `timeout_idle`, ...).
    outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    retried: Vec<String>,
}

/// One row of `requests.csv`: the fields of [`Line`], in its order, every column always present
/// (empty where the JSON line leaves a field out) and the retried classes joined by `;`.
#[derive(Debug, Serialize)]
struct CsvRow<'a> {
    request: u64,
    target: &'a str,
    class: &'a str,
    stage: usize,
    warmup: bool,
    sent_unix_s: f64,
    intended_ms: f64,
    sent_ms: f64,
    schedule_lag_ms: f64,
    connection: &'static str,
    connection_id: Option<u32>,
    dns_ms: Option<f64>,
    tcp_connect_ms: Option<f64>,
    tls_handshake_ms: Option<f64>,
    stream_wait_ms: Option<f64>,
    ttfb_ms: Option<f64>,
    ttft_ms: Option<f64>,
    e2e_ms: f64,
    output_tokens: u64,
    input_tokens: Option<u64>,
    outcome: &'a str,
    status: Option<u16>,
    error: Option<&'a str>,
    retried: String,
}

/// The header of `requests.csv`, the field names of [`CsvRow`] (a test keeps them equal).
pub const CSV_COLUMNS: [&str; 24] = [
    "request",
    "target",
    "class",
    "stage",
    "warmup",
    "sent_unix_s",
    "intended_ms",
    "sent_ms",
    "schedule_lag_ms",
    "connection",
    "connection_id",
    "dns_ms",
    "tcp_connect_ms",
    "tls_handshake_ms",
    "stream_wait_ms",
    "ttfb_ms",
    "ttft_ms",
    "e2e_ms",
    "output_tokens",
    "input_tokens",
    "outcome",
    "status",
    "error",
    "retried",
];

impl<'a> CsvRow<'a> {
    fn of(line: &'a Line<'a>) -> Self {
        CsvRow {
            request: line.request,
            target: line.target,
            class: line.class,
            stage: line.stage,
            warmup: line.warmup,
            sent_unix_s: line.sent_unix_s,
            intended_ms: line.intended_ms,
            sent_ms: line.sent_ms,
            schedule_lag_ms: line.schedule_lag_ms,
            connection: line.connection,
            connection_id: line.connection_id,
            dns_ms: line.dns_ms,
            tcp_connect_ms: line.tcp_connect_ms,
            tls_handshake_ms: line.tls_handshake_ms,
            stream_wait_ms: line.stream_wait_ms,
            ttfb_ms: line.ttfb_ms,
            ttft_ms: line.ttft_ms,
            e2e_ms: line.e2e_ms,
            output_tokens: line.output_tokens,
            input_tokens: line.input_tokens,
            outcome: &line.outcome,
            status: line.status,
            error: line.error,
            retried: line.retried.join(";"),
        }
    }
}

/// Writes request records as JSON lines, CSV rows, or both.
pub struct RequestLog {
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    csv: Option<csv::Writer<Box<dyn Write + Send>>>,
    targets: Vec<String>,
    classes: Vec<String>,
    start: Option<(Instant, SystemTime)>,
    failed: bool,
}

impl std::fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestLog").finish_non_exhaustive()
    }
}

/// Milliseconds with microsecond resolution (the clock's useful precision), printed short.
fn ms(duration: Duration) -> f64 {
    duration.as_micros() as f64 / 1000.0
}

impl RequestLog {
    /// A log into `path` (created or truncated).
    pub fn create(
        path: &Path,
        targets: Vec<String>,
        classes: Vec<String>,
    ) -> std::io::Result<Self> {
        let file = File::create(path)?;
        Ok(Self::new(Box::new(file), targets, classes))
    }

    /// A log of JSON lines into any writer.
    pub fn new(out: Box<dyn Write + Send>, targets: Vec<String>, classes: Vec<String>) -> Self {
        let mut log = Self::empty(targets, classes);
        log.out = Some(BufWriter::with_capacity(64 * 1024, out));
        log
    }

    /// A log that writes nothing until given a destination ([`RequestLog::with_csv`]).
    pub fn empty(targets: Vec<String>, classes: Vec<String>) -> Self {
        RequestLog {
            out: None,
            csv: None,
            targets,
            classes,
            start: None,
            failed: false,
        }
    }

    /// Also writes every record as a CSV row into `out`, after a header of [`CSV_COLUMNS`]
    /// (written at once, so that a run without a finished request still leaves a valid file).
    pub fn with_csv(mut self, out: Box<dyn Write + Send>) -> std::io::Result<Self> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .buffer_capacity(64 * 1024)
            .from_writer(out);
        writer
            .write_record(CSV_COLUMNS)
            .map_err(std::io::Error::other)?;
        self.csv = Some(writer);
        Ok(self)
    }

    /// Sets the run's start, from which line times are measured.
    pub fn start(&mut self, start: Instant, started_at: SystemTime) {
        self.start = Some((start, started_at));
    }

    /// Appends one record. After the first write error the log stops (the run goes on) and the
    /// error is returned once.
    pub fn write(&mut self, record: &RequestRecord) -> std::io::Result<()> {
        if self.failed {
            return Ok(());
        }
        let (start, started_at) = self.start.unwrap_or((record.intended, SystemTime::now()));
        let since = |t: Instant| t.saturating_duration_since(start);
        let failure = record.outcome.as_ref().err();
        let setup = match record.connection {
            ConnectionUse::Opened(setup) => Some(setup),
            ConnectionUse::Reused | ConnectionUse::Unknown => None,
        };
        let line = Line {
            request: record.index,
            target: self.targets.get(record.target).map_or("?", String::as_str),
            class: self.classes.get(record.class).map_or("?", String::as_str),
            stage: record.stage,
            warmup: record.warmup,
            sent_unix_s: (started_at + since(record.sent))
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_micros() as f64 / 1e6),
            intended_ms: ms(since(record.intended)),
            sent_ms: ms(since(record.sent)),
            schedule_lag_ms: ms(record.schedule_lag()),
            connection: match record.connection {
                ConnectionUse::Unknown => "unknown",
                ConnectionUse::Reused => "reused",
                ConnectionUse::Opened(_) => "opened",
            },
            connection_id: record.connection_id,
            dns_ms: setup.map(|s| ms(s.dns)),
            tcp_connect_ms: setup.map(|s| ms(s.tcp)),
            tls_handshake_ms: setup.and_then(|s| s.tls).map(ms),
            stream_wait_ms: record.stream_wait.map(ms),
            ttfb_ms: record.ttfb().map(ms),
            ttft_ms: record.ttft().map(ms),
            e2e_ms: ms(record.e2e()),
            output_tokens: record.output_tokens,
            input_tokens: record.input_tokens,
            outcome: failure.map_or_else(|| "ok".to_string(), |f| f.class.key()),
            status: failure.and_then(|f| f.status),
            error: failure.map(|f| f.message.as_str()),
            retried: record.retried.iter().map(|c| c.key()).collect(),
        };
        let mut result = Ok(());
        if let Some(out) = &mut self.out {
            result = serde_json::to_writer(&mut *out, &line)
                .map_err(std::io::Error::other)
                .and_then(|()| out.write_all(b"\n"));
        }
        if let (Ok(()), Some(csv)) = (&result, &mut self.csv) {
            result = csv
                .serialize(CsvRow::of(&line))
                .map_err(std::io::Error::other);
        }
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    /// Flushes what is buffered.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Ok(());
        }
        if let Some(out) = &mut self.out {
            out.flush()?;
        }
        if let Some(csv) = &mut self.csv {
            csv.flush()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{ErrorClass, Failure, TokenSource};
    use std::sync::{Arc, Mutex};

    /// A writer whose bytes the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A successful record: sent 12 ms into the run, first token at 52 ms, done at 112 ms.
    fn sample_record(start: Instant) -> RequestRecord {
        let ms = Duration::from_millis;
        RequestRecord {
            index: 0,
            target: 0,
            class: 0,
            stage: 0,
            intended: start + ms(10),
            started: start + ms(12),
            sent: start + ms(12),
            connection: Default::default(),
            connection_id: Some(3),
            stream_wait: Some(ms(2)),
            headers: Some(start + ms(20)),
            first_event: Some(start + ms(20)),
            first_token: Some(start + ms(52)),
            first_answer: None,
            empty_preludes: 0,
            keepalive_comments: 0,
            reasoning_first: false,
            detail: Default::default(),
            done: start + ms(112),
            token_gaps: Vec::new(),
            output_tokens: 7,
            input_tokens: Some(30),
            cached_input_tokens: 0,
            token_source: TokenSource::Usage,
            content_events: 0,
            client_tokens: None,
            warmup: false,
            outcome: Ok(()),
            retried: vec![ErrorClass::Throttled],
            retry_wait: Duration::ZERO,
            via_batch_api: false,
            request_bytes: 0,
            shape: Default::default(),
            answer: None,
        }
    }

    #[test]
    fn writes_one_json_line_per_record() {
        let start = Instant::now();
        let buffer = Shared::default();
        let mut log = RequestLog::new(
            Box::new(buffer.clone()),
            vec!["a".into()],
            vec!["chat".into()],
        );
        log.start(start, SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        let mut record = sample_record(start);
        log.write(&record).unwrap();
        record.outcome = Err(Failure {
            class: ErrorClass::HttpStatus(503),
            status: Some(503),
            message: "HTTP 503: busy".into(),
            retry_after: None,
        });
        log.write(&record).unwrap();
        log.flush().unwrap();
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["outcome"], "ok");
        assert_eq!(lines[0]["class"], "chat");
        assert!((lines[0]["ttft_ms"].as_f64().unwrap() - 40.0).abs() < 1e-6);
        assert!((lines[0]["sent_unix_s"].as_f64().unwrap() - 100.012).abs() < 1e-6);
        assert_eq!(lines[0]["retried"][0], "throttled");
        assert_eq!(lines[1]["outcome"], "http_503");
        assert_eq!(lines[1]["status"], 503);
        assert_eq!(lines[1]["error"], "HTTP 503: busy");
    }

    #[test]
    fn csv_rows_carry_the_json_lines_fields_under_the_published_header() {
        let start = Instant::now();
        let (json, csv) = (Shared::default(), Shared::default());
        let mut log = RequestLog::new(Box::new(json.clone()), vec!["a".into()], vec!["c,1".into()])
            .with_csv(Box::new(csv.clone()))
            .unwrap();
        log.start(start, SystemTime::UNIX_EPOCH);
        let record = RequestRecord {
            retried: vec![ErrorClass::Throttled, ErrorClass::HttpStatus(503)],
            outcome: Err(Failure {
                class: ErrorClass::HttpStatus(500),
                status: Some(500),
                message: "HTTP 500: \"quoted\", with a comma".into(),
                retry_after: None,
            }),
            ..sample_record(start)
        };
        log.write(&record).unwrap();
        log.flush().unwrap();
        let text = String::from_utf8(csv.0.lock().unwrap().clone()).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header, CSV_COLUMNS);
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let line: serde_json::Value = serde_json::from_str(
            String::from_utf8(json.0.lock().unwrap().clone())
                .unwrap()
                .trim(),
        )
        .unwrap();
        for (column, cell) in CSV_COLUMNS.iter().zip(rows[0].iter()) {
            let expected = match &line[*column] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().unwrap())
                    .collect::<Vec<_>>()
                    .join(";"),
                other => other.to_string(),
            };
            assert_eq!(cell, expected, "column {column}");
        }
        assert_eq!(&rows[0][2], "c,1");
        assert_eq!(&rows[0][23], "throttled;http_503");
    }
}
