//! Turns [`RequestRecord`]s into HDR histograms (µs, 3 significant digits), counters and a
//! per-second series, per target and class. Memory is fixed per group: nothing grows with the
//! number of requests except the series (one small point per second).

mod assemble;
pub mod paired;
mod series;
pub mod server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::Histogram;

pub use crate::hist::{decode_histogram, encode_histogram, micros, new_histogram, stat_ms};
pub use series::{fill_gaps, origin_unix, PointSum, Series, MAX_POINTS};

use crate::cost::{Cost, Price, Projection, ProjectionBasis, TokenUsage, DAYS_PER_MONTH};
use crate::record::{ConnectionUse, ErrorClass, RequestRecord, TokenSource};
use crate::results::{
    AnswerDetail, ConnectionCounts, CostProjection, CostResults, Goodput, GroupResults,
    OutputLength, RequestCounts, SessionCounts, SharedPrefixCounts, StreamPreamble, Throughput,
    TokenCheck, TokenTotals,
};

/// The latency metrics recorded for each group, with their names in results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Ttft,
    TtftCorrected,
    Ttfb,
    TimeToFirstEvent,
    Itl,
    Tpot,
    E2e,
    E2eCorrected,
    ScheduleLag,
}

impl Metric {
    pub const ALL: [Metric; 9] = [
        Metric::Ttft,
        Metric::TtftCorrected,
        Metric::Ttfb,
        Metric::TimeToFirstEvent,
        Metric::Itl,
        Metric::Tpot,
        Metric::E2e,
        Metric::E2eCorrected,
        Metric::ScheduleLag,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Ttft => "ttft",
            Metric::TtftCorrected => "ttft_corrected",
            Metric::Ttfb => "ttfb",
            Metric::TimeToFirstEvent => "time_to_first_event",
            Metric::Itl => "itl",
            Metric::Tpot => "tpot",
            Metric::E2e => "e2e",
            Metric::E2eCorrected => "e2e_corrected",
            Metric::ScheduleLag => "schedule_lag",
        }
    }
}

/// Samples kept per error class.
pub const ERROR_SAMPLES: usize = 3;
/// `Retry-After` values kept per group.
pub const RETRY_AFTER_SAMPLES: usize = 100;

/// Histograms and counters for one group of requests (a target × class, or merged).
#[derive(Debug, Clone)]
pub struct GroupStats {
    histograms: Vec<Histogram<u64>>,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub warmup_excluded: u64,
    pub errors: BTreeMap<ErrorClass, u64>,
    http_statuses: BTreeMap<u16, u64>,
    error_samples: BTreeMap<ErrorClass, Vec<String>>,
    retry_after: Vec<f64>,
    pub output_tokens: u64,
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    /// Bytes of the request bodies sent (measured requests).
    pub request_bytes: u64,
    sources: [u64; 5],
    /// Cost of the successful requests, when the target is priced.
    cost: Cost,
    requests_priced: u64,
    requests_cost_estimated: u64,
    requests_retried: u64,
    retries: BTreeMap<ErrorClass, u64>,
    first_sent: Option<Instant>,
    last_done: Option<Instant>,
    /// Histograms that exist only for some workloads (`ttft_cache_hit`, `ttft_turn_2`, …).
    extra: BTreeMap<String, Histogram<u64>>,
    output_length: Option<OutputLength>,
    token_check: TokenCheck,
    shared_prefix: Option<SharedPrefixCounts>,
    sessions: Option<SessionCounts>,
    connections: Option<ConnectionCounts>,
    /// Requests each connection carried, by its number within the target.
    requests_by_connection: BTreeMap<u32, u64>,
    stream_preamble: Option<StreamPreamble>,
    answers: Option<AnswerDetail>,
    tool_calls: Option<crate::results::ToolCallResults>,
    /// Requests that met every goodput criterion (`None`: goodput is not tracked).
    good: Option<u64>,
    /// Successful requests that gave at least one token gap (the sample size of `itl`).
    requests_with_gaps: u64,
}

impl Default for GroupStats {
    fn default() -> Self {
        GroupStats {
            histograms: Metric::ALL.iter().map(|_| new_histogram()).collect(),
            sent: 0,
            succeeded: 0,
            failed: 0,
            warmup_excluded: 0,
            errors: BTreeMap::new(),
            http_statuses: BTreeMap::new(),
            error_samples: BTreeMap::new(),
            retry_after: Vec::new(),
            output_tokens: 0,
            input_tokens: 0,
            cached_input_tokens: 0,
            request_bytes: 0,
            sources: [0; 5],
            cost: Cost::default(),
            requests_priced: 0,
            requests_cost_estimated: 0,
            requests_retried: 0,
            retries: BTreeMap::new(),
            first_sent: None,
            last_done: None,
            extra: BTreeMap::new(),
            output_length: None,
            token_check: TokenCheck::default(),
            shared_prefix: None,
            sessions: None,
            connections: None,
            requests_by_connection: BTreeMap::new(),
            stream_preamble: None,
            answers: None,
            tool_calls: None,
            good: None,
            requests_with_gaps: 0,
        }
    }
}

impl GroupStats {
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric as usize]
    }

    fn observe(&mut self, metric: Metric, value: Duration) {
        self.histograms[metric as usize].saturating_record(micros(value));
    }

    fn observe_extra(&mut self, name: String, value: Duration) {
        self.extra
            .entry(name)
            .or_insert_with(new_histogram)
            .saturating_record(micros(value));
    }

    /// Output length, shared-prefix and session counts of one measured request.
    fn record_workload(&mut self, record: &RequestRecord) {
        let succeeded = record.outcome.is_ok();
        let shape = record.shape;
        if let Some(turn) = shape.turn {
            self.sessions
                .get_or_insert_with(SessionCounts::default)
                .count(turn.index, turn.of, succeeded);
        }
        if !succeeded {
            return;
        }
        self.token_check.observe(
            record.output_tokens,
            record.client_tokens,
            record.content_events,
            shape.max_tokens,
        );
        if let Some(cap) = shape.max_tokens {
            let length = self.output_length.get_or_insert_with(OutputLength::default);
            length.requests += 1;
            length.requested_tokens += u64::from(cap);
            length.produced_tokens += record.output_tokens;
            length.stopped_early += u64::from(record.stopped_early());
        }
        if shape.shared_prefix {
            let prefix = self
                .shared_prefix
                .get_or_insert_with(SharedPrefixCounts::default);
            prefix.requests += 1;
            prefix.cache_hits += u64::from(record.cached_input_tokens > 0);
            prefix.cached_input_tokens += record.cached_input_tokens;
        }
        if let Some(turn) = shape.turn {
            self.observe_extra(format!("e2e_turn_{}", turn.index + 1), record.e2e());
        }
        if let Some(ttft) = record.ttft() {
            // A request that could have hit a cache: a shared prefix or a later turn's history.
            let could_hit = shape.shared_prefix || shape.turn.is_some_and(|t| t.index > 0);
            if record.cached_input_tokens > 0 {
                self.observe_extra("ttft_cache_hit".into(), ttft);
            } else if could_hit {
                self.observe_extra("ttft_cache_miss".into(), ttft);
            }
            if let Some(turn) = shape.turn {
                self.observe_extra(format!("ttft_turn_{}", turn.index + 1), ttft);
            }
        }
    }

    /// How the request got its connection, and what its stream sent that was not a token.
    fn record_connection(&mut self, record: &RequestRecord) {
        if let Some(id) = record.connection_id {
            *self.requests_by_connection.entry(id).or_default() += 1;
        }
        if let Some(wait) = record.stream_wait {
            self.connections
                .get_or_insert_with(ConnectionCounts::default)
                .stream_waits += 1;
            self.observe_extra("stream_wait".into(), wait);
        }
        match record.connection {
            ConnectionUse::Unknown => {}
            ConnectionUse::Reused => {
                self.connections
                    .get_or_insert_with(ConnectionCounts::default)
                    .reused += 1;
            }
            ConnectionUse::Opened(setup) => {
                let counts = self
                    .connections
                    .get_or_insert_with(ConnectionCounts::default);
                counts.opened += 1;
                counts.tls_handshakes += u64::from(setup.tls.is_some());
                if let Some(limit) = setup.server_max_streams {
                    let smallest = counts.server_max_streams.map_or(limit, |s| s.min(limit));
                    counts.server_max_streams = Some(smallest);
                }
                self.observe_extra("dns".into(), setup.dns);
                self.observe_extra("tcp_connect".into(), setup.tcp);
                if let Some(tls) = setup.tls {
                    self.observe_extra("tls_handshake".into(), tls);
                }
                self.observe_extra("connection_setup".into(), setup.total());
            }
        }
        if record.outcome.is_err() || record.first_event.is_none() {
            return;
        }
        let preamble = self
            .stream_preamble
            .get_or_insert_with(StreamPreamble::default);
        preamble.requests += 1;
        preamble.empty_preludes += u64::from(record.empty_preludes);
        preamble.requests_with_prelude += u64::from(record.empty_preludes > 0);
        preamble.keepalive_comments += u64::from(record.keepalive_comments);
        preamble.reasoning_first += u64::from(record.reasoning_first);
        if let Some(answer) = record.time_to_first_answer() {
            self.observe_extra("time_to_first_answer".into(), answer);
        }
    }

    /// A request's unknown stream events (whatever its outcome), and a successful answer's
    /// reasoning, refusal and embedded texts.
    fn record_answer(&mut self, record: &RequestRecord) {
        let detail = &record.detail;
        let succeeded = record.outcome.is_ok();
        if succeeded && record.shape.tools {
            self.record_tool_calls(record);
        }
        let noteworthy = detail.unknown_events > 0
            || (succeeded && (detail.reasoned() || detail.refused || record.shape.inputs > 0));
        if !noteworthy {
            return;
        }
        let answers = self.answers.get_or_insert_with(AnswerDetail::default);
        answers.unknown_events += u64::from(detail.unknown_events);
        if let Some(kind) = &detail.unknown_event_type {
            answers.note_unknown_type(kind);
        }
        if !succeeded {
            return;
        }
        if detail.reasoned() {
            answers.reasoned += 1;
            answers.reasoning_tokens += detail.reasoning_tokens;
            answers.reasoned_output_tokens += record.output_tokens;
            answers.reasoning_estimated += u64::from(detail.reasoning_estimated);
        }
        answers.refusals += u64::from(detail.refused);
        answers.inputs += u64::from(record.shape.inputs);
        if let Some(first) = record.time_to_first_reasoning() {
            self.observe_extra("time_to_first_reasoning".into(), first);
        }
    }

    /// A successful answer to a request that declared tools: its calls, and the time to its
    /// first tool-call piece.
    fn record_tool_calls(&mut self, record: &RequestRecord) {
        let tools = self.tool_calls.get_or_insert_with(Default::default);
        tools.answers += 1;
        let Some(calls) = &record.detail.tool_calls else {
            return;
        };
        tools.answers_with_calls += u64::from(calls.calls > 0);
        tools.calls += u64::from(calls.calls);
        tools.valid_json += u64::from(calls.valid_json);
        tools.matching_schema += u64::from(calls.matching_schema);
        tools.argument_tokens += calls.argument_tokens;
        if let Some(first) = calls.first {
            self.observe_extra(
                "time_to_first_tool_call".into(),
                first.saturating_duration_since(record.sent),
            );
        }
    }

    /// Counts a measured request toward goodput when it was good.
    pub fn count_good(&mut self, record: &RequestRecord, good: bool) {
        if !record.warmup {
            *self.good.get_or_insert(0) += u64::from(good);
        }
    }

    /// Adds one request. Latencies are recorded for successful requests only; schedule lag for all.
    pub fn record(&mut self, record: &RequestRecord) {
        self.record_priced(record, None);
    }

    /// [`record`](Self::record), with the request's cost when its target is priced.
    pub fn record_priced(&mut self, record: &RequestRecord, cost: Option<Cost>) {
        if record.warmup {
            self.warmup_excluded += 1;
            return;
        }
        self.sent += 1;
        self.request_bytes += record.request_bytes;
        self.record_workload(record);
        self.record_connection(record);
        self.first_sent = Some(self.first_sent.map_or(record.sent, |t| t.min(record.sent)));
        self.last_done = Some(self.last_done.map_or(record.done, |t| t.max(record.done)));
        self.observe(Metric::ScheduleLag, record.schedule_lag());
        if !record.retried.is_empty() {
            self.requests_retried += 1;
            for class in &record.retried {
                *self.retries.entry(*class).or_default() += 1;
            }
            // Earlier attempts and backoffs: the server's doing, kept apart from schedule lag.
            self.observe_extra("retry_wait".into(), record.retry_wait);
        }
        self.record_answer(record);
        match &record.outcome {
            Ok(()) => {
                self.succeeded += 1;
                self.output_tokens += record.output_tokens;
                self.input_tokens += record.input_tokens.unwrap_or(0);
                self.cached_input_tokens += record.cached_input_tokens;
                if let Some(cost) = cost {
                    self.cost += cost;
                    self.requests_priced += 1;
                    if record.token_source != TokenSource::Usage || record.input_tokens.is_none() {
                        self.requests_cost_estimated += 1;
                    }
                }
                let source = match record.token_source {
                    TokenSource::Usage => 0,
                    TokenSource::Chunks => 1,
                    TokenSource::Estimated => 2,
                    TokenSource::Tokenizer => 3,
                    TokenSource::MaxTokens => 4,
                };
                self.sources[source] += 1;
                let optional = [
                    (Metric::Ttft, record.ttft()),
                    (Metric::TtftCorrected, record.ttft_corrected()),
                    (Metric::Ttfb, record.ttfb()),
                    (Metric::TimeToFirstEvent, record.time_to_first_event()),
                    (Metric::Tpot, record.tpot()),
                ];
                for (metric, value) in optional {
                    if let Some(value) = value {
                        self.observe(metric, value);
                    }
                }
                self.observe(Metric::E2e, record.e2e());
                self.observe(Metric::E2eCorrected, record.e2e_corrected());
                for gap in &record.token_gaps {
                    self.observe(Metric::Itl, *gap);
                }
                self.requests_with_gaps += u64::from(!record.token_gaps.is_empty());
            }
            Err(failure) => {
                self.failed += 1;
                *self.errors.entry(failure.class).or_default() += 1;
                if let Some(status) = failure.status {
                    *self.http_statuses.entry(status).or_default() += 1;
                }
                let samples = self.error_samples.entry(failure.class).or_default();
                if samples.len() < ERROR_SAMPLES && !samples.contains(&failure.message) {
                    samples.push(failure.message.clone());
                }
                if let Some(wait) = failure.retry_after {
                    if self.retry_after.len() < RETRY_AFTER_SAMPLES {
                        self.retry_after.push(wait.as_secs_f64());
                    }
                }
            }
        }
    }

    /// Adds another group into this one (exact: histograms merge without loss).
    pub fn merge(&mut self, other: &GroupStats) {
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            mine.add(theirs).expect("histograms share bounds");
        }
        self.sent += other.sent;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.request_bytes += other.request_bytes;
        self.warmup_excluded += other.warmup_excluded;
        for (class, count) in &other.errors {
            *self.errors.entry(*class).or_default() += count;
        }
        for (status, count) in &other.http_statuses {
            *self.http_statuses.entry(*status).or_default() += count;
        }
        for (class, messages) in &other.error_samples {
            let samples = self.error_samples.entry(*class).or_default();
            for message in messages {
                if samples.len() < ERROR_SAMPLES && !samples.contains(message) {
                    samples.push(message.clone());
                }
            }
        }
        let room = RETRY_AFTER_SAMPLES.saturating_sub(self.retry_after.len());
        self.retry_after
            .extend(other.retry_after.iter().take(room).copied());
        self.output_tokens += other.output_tokens;
        self.input_tokens += other.input_tokens;
        self.cached_input_tokens += other.cached_input_tokens;
        self.cost += other.cost;
        self.requests_priced += other.requests_priced;
        self.requests_cost_estimated += other.requests_cost_estimated;
        for (mine, theirs) in self.sources.iter_mut().zip(other.sources) {
            *mine += theirs;
        }
        self.requests_retried += other.requests_retried;
        self.requests_with_gaps += other.requests_with_gaps;
        for (class, count) in &other.retries {
            *self.retries.entry(*class).or_default() += count;
        }
        self.first_sent = match (self.first_sent, other.first_sent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_done = match (self.last_done, other.last_done) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        for (name, theirs) in &other.extra {
            self.extra
                .entry(name.clone())
                .or_insert_with(new_histogram)
                .add(theirs)
                .expect("histograms share bounds");
        }
        self.token_check.add(&other.token_check);
        if let Some(theirs) = &other.output_length {
            self.output_length
                .get_or_insert_with(OutputLength::default)
                .add(theirs);
        }
        if let Some(theirs) = &other.shared_prefix {
            self.shared_prefix
                .get_or_insert_with(SharedPrefixCounts::default)
                .add(theirs);
        }
        if let Some(theirs) = &other.sessions {
            self.sessions
                .get_or_insert_with(SessionCounts::default)
                .add(theirs);
        }
        if let Some(theirs) = &other.connections {
            self.connections
                .get_or_insert_with(ConnectionCounts::default)
                .add(theirs);
        }
        // The same target's connections: one number is one connection.
        for (id, requests) in &other.requests_by_connection {
            *self.requests_by_connection.entry(*id).or_default() += requests;
        }
        if let Some(theirs) = &other.stream_preamble {
            self.stream_preamble
                .get_or_insert_with(StreamPreamble::default)
                .add(theirs);
        }
        if let Some(theirs) = other.good {
            *self.good.get_or_insert(0) += theirs;
        }
        if let Some(theirs) = &other.answers {
            self.answers
                .get_or_insert_with(AnswerDetail::default)
                .add(theirs);
        }
        if let Some(theirs) = &other.tool_calls {
            self.tool_calls
                .get_or_insert_with(Default::default)
                .add(theirs);
        }
    }

    /// The measured window: first send to last completion.
    pub fn window(&self) -> Duration {
        match (self.first_sent, self.last_done) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => Duration::ZERO,
        }
    }

    /// The results form of this group.
    pub fn to_results(&self, aborted: u64) -> GroupResults {
        let window = self.window().as_secs_f64();
        let per_second = |n: u64| if window > 0.0 { n as f64 / window } else { 0.0 };
        let mut results = GroupResults {
            requests: RequestCounts {
                sent: self.sent + aborted,
                succeeded: self.succeeded,
                failed: self.failed,
                throttled: self
                    .errors
                    .get(&ErrorClass::Throttled)
                    .copied()
                    .unwrap_or(0),
                aborted,
                warmup_excluded: self.warmup_excluded,
            },
            retry_after_s: self.retry_after.clone(),
            tokens: TokenTotals {
                output: self.output_tokens,
                input: self.input_tokens,
                cached_input: self.cached_input_tokens,
                source_usage: self.sources[0],
                source_chunks: self.sources[1],
                source_estimated: self.sources[2],
                source_tokenizer: self.sources[3],
                source_max_tokens: self.sources[4],
            },
            inputs: (self.sent > 0).then(|| crate::results::InputTotals {
                request_bytes: self.request_bytes,
                ..Default::default()
            }),
            throughput: Throughput {
                window_s: window,
                requests_per_s: per_second(self.succeeded),
                output_tokens_per_s: per_second(self.output_tokens),
                ..Throughput::default()
            },
            ..GroupResults::default()
        };
        for (class, count) in &self.errors {
            results.errors.insert(class.key(), *count);
        }
        results.retries.requests_retried = self.requests_retried;
        for (class, count) in &self.retries {
            results.retries.attempts_failed.insert(class.key(), *count);
        }
        for (status, count) in &self.http_statuses {
            results.http_statuses.insert(status.to_string(), *count);
        }
        for (class, samples) in &self.error_samples {
            results.error_samples.insert(class.key(), samples.clone());
        }
        for metric in Metric::ALL {
            let histogram = self.histogram(metric);
            if histogram.is_empty() {
                continue;
            }
            let mut stat = stat_ms(histogram);
            if metric == Metric::Itl {
                stat.requests = Some(self.requests_with_gaps);
            }
            results.latency_ms.insert(metric.name().into(), stat);
            results
                .histograms
                .insert(metric.name().into(), encode_histogram(histogram));
        }
        for (name, histogram) in &self.extra {
            results.latency_ms.insert(name.clone(), stat_ms(histogram));
            results
                .histograms
                .insert(name.clone(), encode_histogram(histogram));
        }
        results.output_length = self.output_length.clone().map(|mut length| {
            length.finish();
            length
        });
        results.token_check = token_check_of(&self.token_check, &results.output_length);
        results.shared_prefix = self.shared_prefix.clone();
        results.sessions = self.sessions.clone();
        results.connections = self.connections.clone().map(|mut counts| {
            counts.connections_used = self.requests_by_connection.len() as u64;
            counts.requests_per_connection = self
                .requests_by_connection
                .values()
                .take(crate::results::MAX_CONNECTIONS_LISTED)
                .copied()
                .collect();
            counts.finish();
            counts
        });
        results.stream_preamble = self.stream_preamble.clone();
        results.tool_calls = self.tool_calls.clone().map(|mut tools| {
            tools.finish();
            tools
        });
        results.answers = self.answers.clone().map(|mut answers| {
            answers.finish(window);
            answers
        });
        results.goodput = self.good.map(|good| {
            let mut goodput = Goodput {
                good,
                ..Goodput::default()
            };
            goodput.finish(&results.requests, window);
            goodput
        });
        results
    }
}

/// A group's cost in results form.
pub fn cost_results(
    price: &Price,
    projection: Option<Projection>,
    cost: Cost,
    requests_priced: u64,
    requests_estimated: u64,
    usage: &TokenUsage,
) -> CostResults {
    let mut results = CostResults {
        currency: price.currency.clone(),
        model: price.model.clone(),
        discount: price.discount,
        total: cost.total(),
        list: cost.list,
        official: cost.official,
        input: cost.input,
        output: cost.output,
        requests_priced,
        requests_estimated,
        projection: projection.map(|p| CostProjection {
            basis: p.basis.name().into(),
            volume: p.volume,
            ..CostProjection::default()
        }),
        ..CostResults::default()
    };
    finish_cost(&mut results, usage.input, usage.output);
    results
}

/// Fills in a cost's discount obtained, ratios and projection from its totals (for a run's
/// groups and for merged shards alike). A projection with nothing of its basis measured is
/// dropped.
pub fn finish_cost(cost: &mut CostResults, input_tokens: u64, output_tokens: u64) {
    cost.discount = crate::cost::effective_discount(cost.total, cost.list, cost.discount);
    cost.saving = (cost.official > 0.0).then(|| {
        // Float noise off, as for the discount: a target at the official price saves 0.
        ((1.0 - cost.total / cost.official) * 1e9).round() / 1e9 + 0.0
    });
    cost.per_request = if cost.requests_priced > 0 {
        cost.total / cost.requests_priced as f64
    } else {
        0.0
    };
    cost.per_million_output_tokens = if output_tokens > 0 {
        cost.total / output_tokens as f64 * 1e6
    } else {
        0.0
    };
    // Token counts only scale the measured cost to a day's volume.
    let usage = TokenUsage {
        input: input_tokens,
        cached_input: 0,
        output: output_tokens,
        reasoning_output: 0,
    };
    let (total, requests) = (cost.total, cost.requests_priced);
    cost.projection = cost.projection.take().and_then(|mut projection| {
        let basis = [
            ProjectionBasis::RequestsPerDay,
            ProjectionBasis::OutputTokensPerDay,
            ProjectionBasis::TokensPerDay,
        ]
        .into_iter()
        .find(|b| b.name() == projection.basis)?;
        let per_day = Projection {
            basis,
            volume: projection.volume,
        }
        .per_day(total, requests, &usage)?;
        projection.per_day = per_day;
        projection.per_month = per_day * DAYS_PER_MONTH;
        Some(projection)
    });
}

/// All groups of a run: one [`GroupStats`] per target × class, plus a series per target.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The run's start on the monotonic clock and on the wall clock.
    start: Instant,
    started_at: SystemTime,
    /// Each target's price (`None` = unpriced) and the projection, for cost.
    prices: Vec<Option<Price>>,
    /// Prices of requests a routed target sent through the Batch API.
    batch_prices: Vec<Option<Price>>,
    projection: Option<Projection>,
    groups: Vec<Vec<GroupStats>>,
    /// Per target and load stage, kept only when the profile has more than one stage.
    stage_groups: Vec<Vec<GroupStats>>,
    series: Vec<Series>,
    /// Decides which requests count toward goodput (inactive without latency SLOs).
    goodput: crate::slo::GoodputJudge,
}

impl Recorder {
    pub fn new(
        targets: usize,
        classes: usize,
        stages: usize,
        start: Instant,
        started_at: SystemTime,
    ) -> Self {
        let stages = if stages > 1 { stages } else { 0 };
        Recorder {
            start,
            started_at,
            prices: vec![None; targets],
            batch_prices: vec![None; targets],
            projection: None,
            groups: (0..targets)
                .map(|_| (0..classes).map(|_| GroupStats::default()).collect())
                .collect(),
            stage_groups: (0..targets)
                .map(|_| (0..stages).map(|_| GroupStats::default()).collect())
                .collect(),
            series: (0..targets)
                .map(|_| Series::new(start, started_at))
                .collect(),
            goodput: crate::slo::GoodputJudge::default(),
        }
    }

    /// Tracks goodput with these per-request criteria.
    pub fn with_goodput(mut self, judge: crate::slo::GoodputJudge) -> Self {
        self.goodput = judge;
        self
    }

    /// Prices each target's requests (by index; `None` leaves one unpriced) and projects costs.
    pub fn with_cost(
        mut self,
        prices: Vec<Option<Price>>,
        batch_prices: Vec<Option<Price>>,
        projection: Option<Projection>,
    ) -> Self {
        self.prices = prices;
        self.batch_prices = batch_prices;
        self.projection = projection;
        self
    }

    pub fn record(&mut self, record: &RequestRecord) {
        let cost = crate::cost::record_cost(
            self.prices.get(record.target).and_then(Option::as_ref),
            self.batch_prices
                .get(record.target)
                .and_then(Option::as_ref),
            record,
        );
        self.groups[record.target][record.class].record_priced(record, cost);
        if let Some(stage) = self.stage_groups[record.target].get_mut(record.stage) {
            stage.record_priced(record, cost);
        }
        if self.goodput.is_active() {
            let good = self.goodput.is_good(record);
            self.groups[record.target][record.class].count_good(record, good);
            if let Some(stage) = self.stage_groups[record.target].get_mut(record.stage) {
                stage.count_good(record, good);
            }
        }
        if !record.warmup {
            self.series[record.target].record(record);
        }
    }

    /// The stats of one target and class.
    pub fn group(&self, target: usize, class: usize) -> &GroupStats {
        &self.groups[target][class]
    }

    /// The stats of one target's load stage, when stages are kept.
    pub fn stage_group(&self, target: usize, stage: usize) -> Option<&GroupStats> {
        self.stage_groups[target].get(stage)
    }

    /// All classes of a target merged.
    pub fn target_summary(&self, target: usize) -> GroupStats {
        let mut total = GroupStats::default();
        for group in &self.groups[target] {
            total.merge(group);
        }
        total
    }

    /// A target's series points, its origin (Unix seconds) and step (seconds).
    pub fn series(&mut self, target: usize) -> (Vec<crate::results::SeriesPoint>, u64, u64) {
        let series = &mut self.series[target];
        (series.finish(), series.origin_unix(), series.step())
    }

    /// Unix time (seconds) of a monotonic instant of this run.
    fn unix_s(&self, at: Instant) -> f64 {
        let wall = if at >= self.start {
            self.started_at + (at - self.start)
        } else {
            self.started_at - (self.start - at)
        };
        wall.duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }

    /// The results form of a target's group, with its window placed on the wall clock and its
    /// cost when the target is priced.
    pub fn results_of(&self, target: usize, stats: &GroupStats, aborted: u64) -> GroupResults {
        let mut results = stats.to_results(aborted);
        if let Some(Some(price)) = self.prices.get(target) {
            results.cost = Some(cost_results(
                price,
                self.projection,
                stats.cost,
                stats.requests_priced,
                stats.requests_cost_estimated,
                &TokenUsage {
                    input: stats.input_tokens,
                    cached_input: stats.cached_input_tokens,
                    output: stats.output_tokens,
                    reasoning_output: stats.answers.as_ref().map_or(0, |a| a.reasoning_tokens),
                },
            ));
        }
        results.throughput.first_sent_unix_s = stats.first_sent.map(|t| self.unix_s(t));
        results.throughput.last_done_unix_s = stats.last_done.map(|t| self.unix_s(t));
        results
    }
}

/// A group's token check, finished, when it checked anything: a request with usage and text,
/// or a request that sent `max_tokens`.
pub fn token_check_of(
    check: &TokenCheck,
    output_length: &Option<OutputLength>,
) -> Option<TokenCheck> {
    let capped = output_length.as_ref().map_or(0, |l| l.requests);
    (check.checked > 0 || capped > 0).then(|| {
        let mut check = check.clone();
        check.finish(capped);
        check
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Failure;

    fn record(ttft_ms: u64, outcome: Result<(), Failure>) -> RequestRecord {
        let start = Instant::now();
        let ms = Duration::from_millis;
        RequestRecord {
            index: 0,
            target: 0,
            class: 0,
            stage: 0,
            intended: start,
            started: start + ms(5),
            sent: start + ms(5),
            connection: Default::default(),
            connection_id: None,
            stream_wait: None,
            headers: Some(start + ms(6)),
            first_event: Some(start + ms(7)),
            first_token: Some(start + ms(5 + ttft_ms)),
            first_answer: None,
            empty_preludes: 0,
            keepalive_comments: 0,
            reasoning_first: false,
            detail: Default::default(),
            done: start + ms(5 + ttft_ms + 30),
            token_gaps: vec![ms(10), ms(10), ms(10)],
            output_tokens: 4,
            input_tokens: Some(12),
            cached_input_tokens: 0,
            token_source: TokenSource::Usage,
            content_events: 0,
            client_tokens: None,
            warmup: false,
            outcome,
            retried: Vec::new(),
            retry_wait: Duration::ZERO,
            via_batch_api: false,
            request_bytes: 0,
            shape: Default::default(),
            answer: None,
        }
    }

    #[test]
    fn records_latencies_from_send_and_from_intent() {
        let mut group = GroupStats::default();
        group.record(&record(50, Ok(())));
        let results = group.to_results(0);
        let ttft = &results.latency_ms["ttft"];
        assert!((ttft.p50 - 50.0).abs() < 0.1, "{ttft:?}");
        assert!((results.latency_ms["ttft_corrected"].p50 - 55.0).abs() < 0.1);
        assert!((results.latency_ms["schedule_lag"].max - 5.0).abs() < 0.1);
        assert!((results.latency_ms["tpot"].p50 - 10.0).abs() < 0.1);
        assert_eq!(results.latency_ms["itl"].count, 3);
        assert_eq!(results.tokens.output, 4);
        assert_eq!(results.tokens.source_usage, 1);
    }

    #[test]
    fn failures_are_counted_by_class_with_samples_and_merge_exactly() {
        let mut a = GroupStats::default();
        let throttled = Failure {
            class: ErrorClass::Throttled,
            status: Some(429),
            message: "HTTP 429".into(),
            retry_after: Some(Duration::from_secs(2)),
        };
        a.record(&record(50, Err(throttled)));
        a.record(&record(60, Ok(())));
        let mut b = GroupStats::default();
        b.record(&record(70, Ok(())));
        let mut merged = GroupStats::default();
        merged.merge(&a);
        merged.merge(&b);
        let results = merged.to_results(0);
        assert_eq!(results.requests.sent, 3);
        assert_eq!(results.requests.failed, 1);
        assert_eq!(results.errors["throttled"], 1);
        assert_eq!(results.retry_after_s, vec![2.0]);
        assert_eq!(results.latency_ms["ttft"].count, 2);
        let decoded = decode_histogram(&results.histograms["ttft"]).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(&decoded, merged.histogram(Metric::Ttft));
    }
}
