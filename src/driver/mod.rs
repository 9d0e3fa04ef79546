//! Runs a [`RunPlan`]: starts embedded mocks, sends traffic to every target on its own schedule
//! (open loop at intended times, or closed loop with N users), streams each [`RequestRecord`] to a
//! single recorder task, shows live progress, and assembles the [`RunResults`].
//!
//! Each target gets the same traffic: request k carries the same class and prompt on every target
//! (both derive from the scenario seed and k), so targets can be compared side by side.

mod answer_text;
mod batch;
mod client;
mod connection;
mod deadline;
mod finish;
mod http2_pool;
mod http2_settings;
mod ledger;
mod output_count;
mod preflight;
mod recorder;
mod request;
mod scrape;
mod sink;
mod tool_calls;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

use crate::traffic::{sides_of, Schedule};
pub use client::HttpClient;
pub use preflight::{preflight, PreflightError};
pub use request::{execute, execute_with_retries, Job, TargetContext};
pub use sink::{LiveCounts, RecordSink, SinkFactory};

use crate::export::RequestLog;
use crate::metrics::paired::{model_matches, Agreement, PairSample, SideOutcome, SideSample};
use crate::metrics::Recorder;
use crate::mock::{self, MockHandle, MockOptions};
use crate::protocol::openai::{ChatRequest, Messages};
use crate::record::{ErrorClass, RequestRecord, RequestShape, Turn};
use crate::redact::Redactor;
use crate::results::{RunResults, RunStatus};
use crate::scenario::{ClassPlan, Endpoint, LoadPlan, LoadShape, RunPlan, ShadowPlan, TargetMode};
use crate::shard::Shard;
use crate::spend::{Caps, RequestSizer, Reservation, SpendGuard};
use crate::workload::{self, Trace};
use futures_util::FutureExt;
use ledger::{panic_message, Begun, Books, Ledger};
use serde_json::{json, Value};

/// Receives periodic snapshots of the results while the run goes on.
pub type CheckpointSink = Arc<dyn Fn(&RunResults) + Send + Sync>;

/// How a run is driven.
#[derive(Clone)]
pub struct RunOptions {
    /// The run's live outputs (the binary's progress line, …): each gets every record as it
    /// arrives and a tick once a second.
    pub live: Vec<SinkFactory>,
    /// Where the run's warnings go as they happen (dropped by default).
    pub notices: crate::notice::Notices,
    /// In-flight requests get this long to finish after an interrupt before they are aborted.
    pub interrupt_grace: Duration,
    /// Called at the start and then every `checkpoint_every` with results so far (status
    /// `in_progress`), so that a killed run still leaves what it measured.
    pub checkpoint: Option<CheckpointSink>,
    pub checkpoint_every: Duration,
    /// Every finished request is also written here, as it arrives (`--export-requests`).
    pub request_log: Option<Arc<std::sync::Mutex<RequestLog>>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            live: Vec::new(),
            notices: crate::notice::Notices::default(),
            interrupt_grace: Duration::from_secs(5),
            checkpoint: None,
            checkpoint_every: Duration::from_secs(10),
            request_log: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("live", &self.live.len())
            .field("notices", &self.notices)
            .field("interrupt_grace", &self.interrupt_grace)
            .field("checkpoint", &self.checkpoint.is_some())
            .field("checkpoint_every", &self.checkpoint_every)
            .field("request_log", &self.request_log.is_some())
            .finish()
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot start the embedded mock for target \"{target}\": {source}")]
    Mock {
        target: String,
        source: std::io::Error,
    },
    #[error("target \"{target}\": {message}")]
    Target { target: String, message: String },
    #[error("internal error (a bug: please report it): {message}")]
    Internal { message: String },
}

/// A handle that stops a run early (as Ctrl-C does); results still cover what finished.
#[derive(Debug, Clone)]
pub struct StopHandle {
    stop: Arc<watch::Sender<bool>>,
    urgent: Arc<watch::Sender<Urgency>>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Asks the run to write what it has measured now (results with status `interrupted`, the
    /// per-request export flushed), before the process exits without waiting for requests in
    /// flight. Returns once that is written, or after `patience`; `true` if it was written.
    pub async fn write_now(&self, patience: Duration) -> bool {
        self.stop();
        self.urgent.send_replace(Urgency::Requested);
        let mut written = self.urgent.subscribe();
        tokio::time::timeout(patience, written.wait_for(|u| *u == Urgency::Written))
            .await
            .is_ok_and(|w| w.is_ok())
    }
}

/// Whether a run must write what it has at once (a second interrupt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Urgency {
    None,
    Requested,
    Written,
}

/// A run's stop switch: create it, hand out [`StopHandle`]s, then pass it to [`run`]. Clones
/// share the switch (a sweep passes one to each of its runs).
#[derive(Debug, Clone)]
pub struct StopSignal {
    sender: Arc<watch::Sender<bool>>,
    urgent: Arc<watch::Sender<Urgency>>,
}

impl Default for StopSignal {
    fn default() -> Self {
        StopSignal {
            sender: Arc::new(watch::channel(false).0),
            urgent: Arc::new(watch::channel(Urgency::None).0),
        }
    }
}

impl StopSignal {
    pub fn handle(&self) -> StopHandle {
        StopHandle {
            stop: self.sender.clone(),
            urgent: self.urgent.clone(),
        }
    }

    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        *self.sender.borrow()
    }
}

/// Resolves once a stop was requested (never, if the switch is gone).
async fn stopped(receiver: &mut watch::Receiver<bool>) {
    if receiver.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Everything a request generator needs.
struct Generator {
    target: Arc<TargetContext>,
    classes: Arc<Vec<ClassPlan>>,
    load: LoadPlan,
    /// The scenario's seed, for prompts, class choices and arrival times: the same on every
    /// shard and target, so request k is the same request everywhere.
    seed: u64,
    shard: Shard,
    start: Instant,
    records: mpsc::Sender<RequestRecord>,
    stop: watch::Receiver<bool>,
    grace: Duration,
    /// Spend caps, when the run has any.
    guard: Option<Arc<SpendGuard>>,
    /// Projects each request's cost for the guard (built only when there is one).
    sizer: Option<Arc<RequestSizer>>,
    /// The replayed trace, for a trace load.
    trace: Option<Arc<Trace>>,
    /// In a migration phase: the candidate this (primary's) generator also sends to.
    mirror: Option<Arc<Mirror>>,
    /// The run's books: every request started, handed over or aborted.
    ledger: Arc<Ledger>,
    /// Where warnings go as they happen.
    notices: crate::notice::Notices,
}

/// The other side of shadow pairs: where a phase sends the candidate's share and the mirrored
/// copies, and where the pairs go.
struct Mirror {
    plan: ShadowPlan,
    candidate: Arc<TargetContext>,
    pairs: Arc<std::sync::Mutex<Vec<PairSample>>>,
}

impl Generator {
    /// Reserves request `k`'s projected cost under the spend caps; `Err(())` when the caps are
    /// reached (no new request may start), `Ok(None)` without caps.
    async fn reserve(&self, k: u64) -> Result<Option<Reservation>, ()> {
        let (Some(guard), Some(sizer)) = (&self.guard, &self.sizer) else {
            return Ok(None);
        };
        let (class, usage) = sizer.size(&self.classes, self.trace.as_deref(), self.seed, k);
        let estimate = self
            .target
            .plan
            .price_for(class)
            .map_or(0.0, |p| p.cost(&usage).total());
        guard
            .reserve(self.target.index, estimate)
            .await
            .map(Some)
            .ok_or(())
    }

    /// [`Generator::reserve`], given up when the run is stopped meanwhile (`Err(())` either
    /// way). Without spend caps there is nothing to wait for, and no stop watch is set up.
    async fn reserve_unless_stopped(&self, k: u64) -> Result<Option<Reservation>, ()> {
        if self.guard.is_none() {
            return Ok(None);
        }
        let mut stop = self.stop.clone();
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => Err(()),
            reserved = self.reserve(k) => reserved,
        }
    }

    /// What every request task needs, to move into it.
    fn requester(&self) -> Requester {
        Requester {
            target: self.target.clone(),
            classes: self.classes.clone(),
            trace: self.trace.clone(),
            seed: self.seed,
            records: self.records.clone(),
            guard: self.guard.clone(),
            stop: self.stop.clone(),
            mirror: self.mirror.clone(),
            ledger: self.ledger.clone(),
        }
    }
}

/// Sends the requests (or sessions) a generator schedules.
#[derive(Clone)]
struct Requester {
    target: Arc<TargetContext>,
    classes: Arc<Vec<ClassPlan>>,
    trace: Option<Arc<Trace>>,
    seed: u64,
    records: mpsc::Sender<RequestRecord>,
    guard: Option<Arc<SpendGuard>>,
    stop: watch::Receiver<bool>,
    mirror: Option<Arc<Mirror>>,
    ledger: Arc<Ledger>,
}

impl Requester {
    /// Sends request `k` (all turns of its session, for a multi-turn class, or both sides of a
    /// shadow pair), settling its reservation and handing every record to the recorder.
    /// Returns `false` once the recorder is gone.
    ///
    /// A panic on the way is caught: each request it left without a record gets one of class
    /// `internal`, so that the run's books still balance.
    async fn send(
        &self,
        k: u64,
        stage: usize,
        intended: Instant,
        warmup: bool,
        reservation: Option<Reservation>,
        permit: Option<tokio::sync::OwnedSemaphorePermit>,
    ) -> bool {
        let mut books = Books::new(&self.ledger);
        let begun = Begun {
            target: self.target.index,
            index: k,
            class: 0,
            stage,
            intended,
            warmup,
        };
        let sending = async {
            match &self.mirror {
                // A shadow pair holds two requests' futures at once: on the heap, so that every
                // other request's task stays the size of one (it is most of the client's memory
                // per open stream).
                Some(mirror) => {
                    Box::pin(self.send_pair(&mut books, mirror, begun, reservation)).await
                }
                None => self.send_turns(&mut books, begun, reservation).await,
            }
        };
        let sent = std::panic::AssertUnwindSafe(sending).catch_unwind().await;
        drop(permit);
        match sent {
            Ok(alive) => alive,
            Err(panic) => {
                let message = format!(
                    "drover failed on this request (a bug: please report it): {}",
                    panic_message(&*panic)
                );
                for begun in books.take_open() {
                    let record = request::internal_record(&begun, &message);
                    if self.records.send(record).await.is_err() {
                        self.ledger.abort(begun.target, 1);
                        return false;
                    }
                    self.ledger.hand(begun.target, 1);
                }
                true
            }
        }
    }

    /// Request body of a turn: a single request's comes straight from its draw; a session's
    /// turns carry the history as message values (returned, kept for the next turn).
    fn turn_body(
        &self,
        drawn: &workload::Draw,
        turn: u32,
        turns: u32,
        history: &[Value],
    ) -> (Bytes, Vec<Value>) {
        let mut messages = Vec::new();
        let body = if turns == 1 {
            first_turn_body(
                &self.target.plan,
                &self.classes,
                self.trace.as_deref(),
                drawn,
            )
        } else {
            messages = match workload::messages(&self.classes, self.trace.as_deref(), drawn) {
                Value::Array(list) => list,
                _ => Vec::new(),
            };
            if turn > 0 {
                let mut sent = history.to_vec();
                sent.append(&mut messages);
                messages = sent;
            }
            request_body(
                &self.target.plan,
                &self.classes[drawn.class],
                drawn,
                Messages::Values(&messages),
            )
        };
        (body, messages)
    }

    /// Between turns: waits the think time (until `intended`) and reserves the next turn's
    /// spend. `None` when the session ends here (stopped, or the budget is reached).
    async fn before_next_turn(
        &self,
        drawn: &workload::Draw,
        intended: Instant,
    ) -> Option<Option<Reservation>> {
        let mut stop = self.stop.clone();
        tokio::select! {
            biased;
            _ = stopped(&mut stop) => return None,
            _ = tokio::time::sleep_until(intended.into()) => {}
        }
        if let Some(guard) = &self.guard {
            // Later turns are reserved at the first turn's projected price of a request.
            let estimate = estimated_cost(
                &self.target.plan,
                &self.classes,
                self.trace.as_deref(),
                drawn,
            );
            let mut stop = self.stop.clone();
            return Some(tokio::select! {
                biased;
                _ = stopped(&mut stop) => return None,
                reserved = guard.reserve(self.target.index, estimate) => match reserved {
                    Some(reservation) => Some(reservation),
                    None => return None,
                },
            });
        }
        Some(None)
    }

    /// [`Requester::send`] for a single request or a session.
    async fn send_turns(
        &self,
        books: &mut Books<'_>,
        begun: Begun,
        reservation: Option<Reservation>,
    ) -> bool {
        let Begun {
            index: k,
            stage,
            intended,
            warmup,
            ..
        } = begun;
        // Begun before anything that could fail on it; its class is known once drawn.
        books.begin(begun);
        let first = workload::draw(&self.classes, self.trace.as_deref(), self.seed, k);
        books.relabel(self.target.index, k, first.class);
        let session = self.classes[first.class].session;
        let turns = session.map_or(1, |s| s.turns);
        let mut history = Vec::new();
        let mut reservation = reservation;
        let mut intended = intended;
        let mut drawn = first;
        for turn in 0..turns {
            if turn > 0 {
                books.begin(Begun {
                    class: drawn.class,
                    intended,
                    ..begun
                });
            }
            let (body, messages) = self.turn_body(&drawn, turn, turns, &history);
            let shape = RequestShape {
                turn: session.map(|_| Turn {
                    index: turn,
                    of: turns,
                }),
                ..request_shape(&self.target.plan, &self.classes, &drawn)
            };
            let last_turn = turn + 1 == turns;
            // The record's scope ends as it goes into the channel's send, so the task holds it
            // once, not twice, across that wait (every byte here is per open stream).
            let (answer, succeeded, done, starved, handing) = {
                // Borrowed: an async fn's argument is stored twice in its future.
                let mut record = execute_with_retries(
                    &self.target,
                    &Job {
                        index: k,
                        class: drawn.class,
                        stage,
                        intended,
                        body,
                        warmup,
                        shape,
                        keep_answer: !last_turn,
                        tools: self.classes[drawn.class].tools.clone(),
                    },
                )
                .await;
                settle(
                    self.guard.as_deref(),
                    reservation.take(),
                    &self.target,
                    &record,
                );
                let answer = record.answer.take();
                let succeeded = record.outcome.is_ok();
                let done = record.done;
                let starved =
                    matches!(&record.outcome, Err(f) if f.class == ErrorClass::ClientResources);
                (answer, succeeded, done, starved, self.records.send(record))
            };
            if handing.await.is_err() {
                return false;
            }
            books.handed(self.target.index, k);
            if starved {
                // Out of descriptors: this sender pauses instead of failing again at once.
                tokio::time::sleep(RESOURCE_PAUSE).await;
            }
            let Some(session) = session.filter(|_| succeeded && !last_turn) else {
                break;
            };
            // The next turn carries everything so far: this turn's messages and the answer (a
            // tool call with the class's canned result, when it has one).
            history = messages;
            push_answer(
                &mut history,
                answer,
                self.classes[drawn.class].tools.as_deref(),
            );
            intended = done + session.think_time;
            match self.before_next_turn(&drawn, intended).await {
                Some(next) => reservation = next,
                None => break,
            }
            drawn = workload::draw_turn(&self.classes, drawn.class, self.seed, k, turn + 1);
        }
        true
    }
}

/// Adds a session turn's answer to its history: the assistant's text; or, for a tool call of a
/// class with a `tool_result`, the assistant's call and a `tool` message with the result.
fn push_answer(
    history: &mut Vec<Value>,
    answer: Option<crate::record::Answer>,
    tools: Option<&crate::protocol::tools::ToolSet>,
) {
    let answer = answer.unwrap_or_default();
    match (answer.tool_call, tools.and_then(|t| t.result.as_ref())) {
        (Some((id, name, arguments)), Some(result)) => {
            history.push(json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{ "id": id, "type": "function",
                                 "function": { "name": name, "arguments": arguments } }],
            }));
            history.push(json!({ "role": "tool", "tool_call_id": id, "content": result }));
        }
        _ => history.push(json!({ "role": "assistant", "content": answer.text })),
    }
}

impl Requester {
    /// Settles both sides' spend reservations and, outside warm-up, keeps the pair when both
    /// sides were sent.
    fn settle_pair(
        &self,
        mirror: &Mirror,
        (primary, candidate): (&Option<RequestRecord>, &Option<RequestRecord>),
        (primary_reservation, candidate_reservation): (Option<Reservation>, Option<Reservation>),
        class: &ClassPlan,
        warmup: bool,
    ) {
        match primary {
            Some(record) => settle(
                self.guard.as_deref(),
                primary_reservation,
                &self.target,
                record,
            ),
            None => {
                if let (Some(guard), Some(reservation)) = (&self.guard, primary_reservation) {
                    guard.settle(reservation, 0.0);
                }
            }
        }
        if let Some(record) = candidate {
            settle(
                self.guard.as_deref(),
                candidate_reservation,
                &mirror.candidate,
                record,
            );
        }
        if let (Some(p), Some(c), false) = (primary, candidate, warmup) {
            let asked = |target: &TargetContext| target.plan.model_for(class.model.as_deref());
            let sample = pair_sample(
                p,
                c,
                &asked(&self.target),
                &asked(&mirror.candidate),
                actual_cost_if_priced(&self.target.plan, p),
                actual_cost_if_priced(&mirror.candidate.plan, c),
            );
            if let Ok(mut pairs) = mirror.pairs.lock() {
                pairs.push(sample);
            }
        }
    }

    /// Sends request `k` of a migration phase to the side that serves it and, when mirrored,
    /// to the other side at the same moment; both records go to the recorder, and a pair (both
    /// sides sent, outside warm-up) to the phase's pairs.
    async fn send_pair(
        &self,
        books: &mut Books<'_>,
        mirror: &Mirror,
        begun: Begun,
        primary_reservation: Option<Reservation>,
    ) -> bool {
        let Begun {
            index: k,
            stage,
            intended,
            warmup,
            ..
        } = begun;
        let drawn = workload::draw(&self.classes, self.trace.as_deref(), self.seed, k);
        let messages = match workload::messages(&self.classes, self.trace.as_deref(), &drawn) {
            Value::Array(list) => list,
            _ => Vec::new(),
        };
        let class = &self.classes[drawn.class];
        let (to_primary, mut to_candidate) = sides_of(&mirror.plan, self.seed, k);
        let mut candidate_reservation = None;
        if let (true, Some(guard)) = (to_candidate, &self.guard) {
            let estimate = estimated_cost(
                &mirror.candidate.plan,
                &self.classes,
                self.trace.as_deref(),
                &drawn,
            );
            candidate_reservation = guard.try_reserve(mirror.candidate.index, estimate);
            // Past the candidate's cap its copies stop; the primary still serves.
            to_candidate = candidate_reservation.is_some();
        }
        for (side, sent) in [
            (&self.target, to_primary),
            (&mirror.candidate, to_candidate),
        ] {
            if sent {
                books.begin(Begun {
                    target: side.index,
                    class: drawn.class,
                    ..begun
                });
            }
        }
        let job = |target: &TargetContext| Job {
            index: k,
            class: drawn.class,
            stage,
            intended,
            body: request_body(&target.plan, class, &drawn, Messages::Values(&messages)),
            warmup,
            shape: request_shape(&target.plan, &self.classes, &drawn),
            keep_answer: true,
            tools: class.tools.clone(),
        };
        let primary = async {
            if to_primary {
                Some(execute_with_retries(&self.target, &job(&self.target)).await)
            } else {
                None
            }
        };
        let candidate = async {
            if to_candidate {
                Some(execute_with_retries(&mirror.candidate, &job(&mirror.candidate)).await)
            } else {
                None
            }
        };
        let (primary, candidate) = tokio::join!(primary, candidate);
        self.settle_pair(
            mirror,
            (&primary, &candidate),
            (primary_reservation, candidate_reservation),
            class,
            warmup,
        );
        for mut record in [primary, candidate].into_iter().flatten() {
            record.answer = None;
            let target = record.target;
            if self.records.send(record).await.is_err() {
                return false;
            }
            books.handed(target, k);
        }
        true
    }
}

/// A pair of records of the same request, reduced to what the paired comparison needs.
fn pair_sample(
    primary: &RequestRecord,
    candidate: &RequestRecord,
    primary_model: &str,
    candidate_model: &str,
    primary_cost: Option<f64>,
    candidate_cost: Option<f64>,
) -> PairSample {
    let side = |record: &RequestRecord, asked: &str, cost: Option<f64>| {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let outcome = match &record.outcome {
            Ok(()) => SideOutcome::Succeeded,
            Err(f) if f.class == crate::record::ErrorClass::Throttled => SideOutcome::Throttled,
            Err(_) => SideOutcome::Failed,
        };
        let ok = outcome == SideOutcome::Succeeded;
        SideSample {
            outcome,
            ttft_ms: record.ttft().filter(|_| ok).map(ms),
            e2e_ms: ok.then(|| ms(record.e2e())),
            output_tokens: if ok { record.output_tokens } else { 0 },
            cost,
            model_matches: record
                .answer
                .as_ref()
                .and_then(|a| a.model.as_deref())
                .filter(|_| ok)
                .map(|answered| model_matches(asked, answered)),
        }
    };
    let agreement = match (
        &primary.outcome,
        &candidate.outcome,
        &primary.answer,
        &candidate.answer,
    ) {
        (Ok(()), Ok(()), Some(p), Some(c)) => Some(Agreement::of(
            &p.text,
            &c.text,
            p.finish_reason.as_deref(),
            c.finish_reason.as_deref(),
        )),
        _ => None,
    };
    PairSample {
        class: primary.class,
        primary: side(primary, primary_model, primary_cost),
        candidate: side(candidate, candidate_model, candidate_cost),
        agreement,
    }
}

/// What a request cost, or `None` for an unpriced target.
fn actual_cost_if_priced(
    plan: &crate::scenario::TargetPlan,
    record: &RequestRecord,
) -> Option<f64> {
    plan.price.as_ref()?;
    Some(actual_cost(plan, record))
}

/// The projected cost of a drawn request on `target` (its input tokens, and its output cap or
/// the assumed output), for the spend guard.
fn estimated_cost(
    target: &crate::scenario::TargetPlan,
    classes: &[ClassPlan],
    trace: Option<&Trace>,
    drawn: &workload::Draw,
) -> f64 {
    target.price_for(drawn.class).map_or(0.0, |p| {
        p.cost(&crate::cost::TokenUsage {
            input: workload::input_tokens(classes, trace, drawn, &target.tokenizer, target.api),
            cached_input: 0,
            output: drawn
                .max_tokens
                .map_or(crate::spend::ASSUMED_OUTPUT_TOKENS, u64::from),
            // Not known before the answer: the estimate prices all output as answer tokens.
            reasoning_output: 0,
        })
        .total()
    })
}

/// Settles a request's reservation with what its record cost.
fn settle(
    guard: Option<&SpendGuard>,
    reservation: Option<Reservation>,
    target: &TargetContext,
    record: &RequestRecord,
) {
    if let (Some(guard), Some(reservation)) = (guard, reservation) {
        guard.settle(reservation, actual_cost(&target.plan, record));
    }
}

/// What a finished request cost (0 for a failure or an unpriced target).
fn actual_cost(plan: &crate::scenario::TargetPlan, record: &RequestRecord) -> f64 {
    crate::cost::record_cost(plan.price.as_ref(), plan.batch_price.as_ref(), record)
        .map_or(0.0, |cost| cost.total())
}

/// The results of a run that has not sent anything yet (status `in_progress`): what a run's
/// folder holds before its first request.
pub fn empty_results(plan: &RunPlan) -> RunResults {
    let stage_count = match &plan.load.shape {
        LoadShape::Open { stages, .. } => stages.len(),
        LoadShape::Closed { .. } | LoadShape::Trace { .. } => 1,
    };
    let now = SystemTime::now();
    Recorder::new(
        plan.targets.len(),
        plan.classes.len(),
        stage_count,
        Instant::now(),
        now,
    )
    .into_results(
        plan,
        &vec![0; plan.targets.len()],
        now,
        now,
        Duration::ZERO,
        RunStatus::InProgress,
    )
}

/// Runs the plan to completion (or until stopped) and returns its results.
pub async fn run(
    plan: &RunPlan,
    options: RunOptions,
    stop: StopSignal,
) -> Result<RunResults, DriverError> {
    let (mocks, targets) = start_targets(plan)?;

    wait_for_start_at(plan, &stop).await;
    let started_at = SystemTime::now();
    let start = Instant::now();
    let scrapers = start_scrapers(plan, &mocks, started_at);
    let (record_tx, record_rx) = mpsc::channel::<RequestRecord>(16 * 1024);
    let target_count = plan.targets.len();
    let ledger = Arc::new(Ledger::new(target_count));
    let collector = recorder::spawn(
        plan,
        &options,
        &stop,
        (start, started_at),
        record_rx,
        ledger.clone(),
    );

    let classes = Arc::new(plan.classes.clone());
    let guard = spend_guard(plan, &options.notices);
    let pairs = Arc::new(std::sync::Mutex::new(Vec::new()));
    // In a migration phase only the primary's generator runs: it sends each request to the
    // side that serves it and mirrors copies to the other side.
    let mirror = plan.shadow.map(|shadow| {
        Arc::new(Mirror {
            plan: shadow,
            candidate: targets[shadow.candidate].clone(),
            pairs: pairs.clone(),
        })
    });
    let mut generators = JoinSet::new();
    for target in &targets {
        if plan
            .shadow
            .is_some_and(|shadow| shadow.primary != target.index)
        {
            continue;
        }
        let sizer = guard.as_ref().map(|_| {
            Arc::new(RequestSizer::new(
                &plan.classes,
                target.plan.tokenizer.clone(),
                target.plan.api,
            ))
        });
        let generator = || Generator {
            target: target.clone(),
            classes: classes.clone(),
            load: plan.load.clone(),
            seed: plan.seed,
            shard: plan.shard,
            start,
            records: record_tx.clone(),
            stop: stop.sender.subscribe(),
            grace: options.interrupt_grace,
            notices: options.notices.clone(),
            guard: guard.clone(),
            sizer: sizer.clone(),
            trace: match &plan.load.shape {
                LoadShape::Trace { trace, .. } => Some(trace.clone()),
                _ => None,
            },
            mirror: mirror.clone(),
            ledger: ledger.clone(),
        };
        spawn_loops(&mut generators, target, generator);
    }
    drop(record_tx);
    drop(mirror);
    let mut batches = vec![Vec::new(); target_count];
    // A generator that panicked outside any request (each request's own panics are caught and
    // recorded) is reported; the books below show what it left unsent.
    let generator_failures = join_generators(&mut generators, &mut batches).await;
    let interrupted = *stop.sender.borrow();
    let (recorder, received) = collector.await.map_err(|error| DriverError::Internal {
        message: format!("the recorder failed: {error}"),
    })?;
    let aborted: Vec<u64> = (0..target_count).map(|t| ledger.aborted(t)).collect();
    let ended_at = SystemTime::now();
    // The last scrape runs while an embedded mock still serves its page.
    let server_metrics = finish_scrapers(scrapers).await;
    drop(mocks);

    let budget_stopped = guard.as_ref().is_some_and(|g| g.exhausted());
    let status = if interrupted {
        RunStatus::Interrupted
    } else if budget_stopped {
        RunStatus::BudgetExhausted
    } else {
        RunStatus::Completed
    };
    let mut results = recorder.into_results(
        plan,
        &aborted,
        started_at,
        ended_at,
        start.elapsed(),
        status,
    );
    finish::server_metrics(&mut results, server_metrics);
    check_books(&mut results, &ledger, &received, &generator_failures);
    finish::degraded_if_drover_failed(&mut results, &generator_failures);
    if let Some(shadow) = plan.shadow {
        results.paired = Some(finish::paired(plan, shadow, &pairs));
    }
    finish::batch_reports(&mut results, batches);
    finish::token_warnings(&mut results);
    if let Some(guard) = &guard {
        finish::spend(&mut results, plan, guard);
    }
    Ok(results)
}

/// A target's index and its embedded mock.
type TargetMock = (usize, MockHandle);

/// Waits for every generator: their Batch API reports go to their target's list; a generator
/// that panicked outside any request (each request's own panics are caught and recorded) is
/// returned as a failure.
async fn join_generators(
    generators: &mut JoinSet<(usize, Vec<crate::results::BatchResults>)>,
    batches: &mut [Vec<crate::results::BatchResults>],
) -> Vec<String> {
    let mut failures = Vec::new();
    while let Some(joined) = generators.join_next().await {
        match joined {
            Ok((index, reports)) => batches[index].extend(reports),
            Err(error) => failures.push(match error.try_into_panic() {
                Ok(panic) => panic_message(&*panic),
                Err(error) => error.to_string(),
            }),
        }
    }
    failures
}

/// Starts scraping the server metrics of every target that asks for them (an embedded mock's
/// own page when no URL is given), on the run's series time base. A scraper that cannot start
/// leaves its target's `server_metrics` saying why.
fn start_scrapers(
    plan: &RunPlan,
    mocks: &[TargetMock],
    started_at: SystemTime,
) -> Vec<Option<Result<scrape::Scraper, String>>> {
    let origin_unix = crate::metrics::origin_unix(started_at);
    // An open loop's sending window, on the points' clock (which counts from the wall-clock
    // second the run started in): a backlog drained after it says nothing of saturation.
    let sending_until = match &plan.load.shape {
        LoadShape::Open { stages, .. } => {
            let sending: Duration = stages.iter().filter_map(|stage| stage.duration).sum();
            let start_offset = started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| f64::from(d.subsec_nanos()) / 1e9);
            Some(start_offset + sending.as_secs_f64())
        }
        LoadShape::Closed { .. } | LoadShape::Trace { .. } => None,
    };
    plan.targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            let metrics = target.server_metrics.as_ref()?;
            let url = match &metrics.url {
                Some(url) => url.clone(),
                None => {
                    let mock = mocks.iter().find(|(i, _)| *i == index)?;
                    format!("http://{}/metrics", mock.1.addr())
                }
            };
            Some(scrape::Scraper::start(
                metrics,
                &url,
                &target.tls,
                origin_unix,
                sending_until,
            ))
        })
        .collect()
}

/// Ends every target's scraping (each with one last scrape) and returns what each found.
async fn finish_scrapers(
    scrapers: Vec<Option<Result<scrape::Scraper, String>>>,
) -> Vec<ScrapedServer> {
    let mut found = Vec::with_capacity(scrapers.len());
    for scraper in scrapers {
        found.push(match scraper {
            Some(Ok(scraper)) => Some(Ok(scraper.finish().await)),
            Some(Err(message)) => Some(Err(message)),
            None => None,
        });
    }
    found
}

/// A target's scraped server metrics, why its scraper could not start, or nothing asked.
type ScrapedServer = Option<Result<crate::results::server::ServerMetricsResults, String>>;

/// Starts each target's embedded mock (kept running while the handles live) and builds every
/// target's context: its HTTP client, base URL and redactor.
fn start_targets(
    plan: &RunPlan,
) -> Result<(Vec<TargetMock>, Vec<Arc<TargetContext>>), DriverError> {
    let redactor = Redactor::new(plan.secrets());
    let mut mocks: Vec<TargetMock> = Vec::new();
    let mut targets = Vec::new();
    for (index, target) in plan.targets.iter().enumerate() {
        let base_url = match &target.endpoint {
            Endpoint::Url(url) => url.clone(),
            Endpoint::Mock(config) => {
                // A mock target with a key requires it, in the header the target sends it in.
                let options = MockOptions {
                    required_key: target.api_key.as_ref().map(|k| k.expose().to_string()),
                    ..MockOptions::default()
                };
                let handle = mock::start((**config).clone(), options).map_err(|source| {
                    DriverError::Mock {
                        target: target.name.clone(),
                        source,
                    }
                })?;
                let url = handle.base_url();
                mocks.push((index, handle));
                url
            }
        };
        let http_client = client::build(
            target.http,
            base_url.starts_with("https://"),
            target.timeouts.connect,
            &target.tls,
        )
        .map_err(|e| DriverError::Target {
            target: target.name.clone(),
            message: e.to_string(),
        })?;
        let context = TargetContext::new(
            index,
            target.clone(),
            &base_url,
            http_client,
            redactor.clone(),
        )
        .map_err(|message| DriverError::Target {
            target: target.name.clone(),
            message,
        })?;
        targets.push(Arc::new(context));
    }
    Ok((mocks, targets))
}

/// Waits for `--start-at` (every shard waits for the same moment); an interrupt ends the wait.
async fn wait_for_start_at(plan: &RunPlan, stop: &StopSignal) {
    if let Some(start_at) = plan.start_at {
        // Every shard waits for the same moment; an interrupt while waiting ends the run empty.
        let wait = start_at
            .duration_since(SystemTime::now())
            .unwrap_or_default();
        let mut receiver = stop.sender.subscribe();
        tokio::select! {
            biased;
            _ = stopped(&mut receiver) => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The spend guard, when the run or a target has a budget.
fn spend_guard(plan: &RunPlan, notices: &crate::notice::Notices) -> Option<Arc<SpendGuard>> {
    let caps = Caps {
        run: plan.cost.budget,
        targets: plan.targets.iter().map(|t| t.budget).collect(),
    };
    (caps.run.is_some() || caps.targets.iter().any(Option::is_some)).then(|| {
        Arc::new(
            SpendGuard::new(
                caps,
                plan.cost.alerts.clone(),
                plan.cost.currency.clone(),
                plan.targets.len(),
            )
            .with_notices(notices.clone()),
        )
    })
}

/// Spawns a target's loops: its Batch API part (a routed target's routed classes, or the whole
/// of a batch-api target), and its live open or closed loop.
fn spawn_loops(
    generators: &mut JoinSet<(usize, Vec<crate::results::BatchResults>)>,
    target: &TargetContext,
    generator: impl Fn() -> Generator,
) {
    let index = target.index;
    if target.plan.is_routed() {
        // The classes routed to the Batch API go there; the live loop below skips them.
        let batch_part = generator();
        generators.spawn(async move { (index, batch::run(batch_part).await) });
    }
    let generator = generator();
    let batch_api = target.plan.mode == TargetMode::BatchApi;
    generators.spawn(async move {
        if batch_api {
            return (index, batch::run(generator).await);
        }
        if let LoadShape::Closed { users } = generator.load.shape {
            closed_loop(generator, users).await;
        } else {
            let max_in_flight = generator.load.shape.max_in_flight();
            // Only a closed loop has no schedule.
            if let Some(schedule) = Schedule::of(&generator.load.shape, generator.seed) {
                open_loop(generator, schedule, max_in_flight).await;
            }
        }
        (index, Vec::new())
    });
}

/// Writes each target's books into the results and a loud warning for every difference (and
/// for every generator that failed).
fn check_books(
    results: &mut RunResults,
    ledger: &Ledger,
    received: &[u64],
    generator_failures: &[String],
) {
    for (index, target) in results.targets.iter_mut().enumerate() {
        let books = ledger.check(index, received.get(index).copied().unwrap_or(0));
        if !books.balanced {
            results.warnings.push(format!(
                "target \"{}\": THE BOOKS DO NOT BALANCE: {} requests started, {} recorded, {} aborted, {} handed to the recorder; the figures above miss {} request(s) (a bug: please report it)",
                target.name,
                books.scheduled,
                books.recorded,
                books.aborted,
                books.handed_over,
                books.scheduled.abs_diff(books.recorded + books.aborted),
            ));
        }
        target.accounting = Some(books);
        for (class, count) in &target.summary.errors {
            if class == "internal" {
                results.warnings.push(format!(
                    "target \"{}\": drover failed on {count} request(s) itself (class internal, a bug: please report it); the run is degraded",
                    target.name
                ));
            } else if class == "client_resources" {
                results.warnings.push(format!(
                    "target \"{}\": {count} request(s) could not be sent because drover ran out of file descriptors (class client_resources, not the endpoint's fault); raise the limit (ulimit -n) or lower users/max_in_flight",
                    target.name
                ));
            }
        }
    }
    for failure in generator_failures {
        results.warnings.push(format!(
            "a request generator failed (a bug: please report it): {failure}; the run is degraded"
        ));
    }
}

/// Whether an error class key (as in results) is drover's own failure.
fn client_side_key(class: &str) -> bool {
    [ErrorClass::Internal, ErrorClass::ClientResources]
        .iter()
        .any(|c| c.key() == class)
}

/// How long a sender waits after a request could not be sent for want of file descriptors.
const RESOURCE_PAUSE: Duration = Duration::from_millis(100);

/// Whether request `k` of a routed target goes through the Batch API (and not the live loop).
fn routed_away(generator: &Generator, k: u64) -> bool {
    let plan = &generator.target.plan;
    plan.is_routed()
        && plan.class_via_batch(
            workload::draw(
                &generator.classes,
                generator.trace.as_deref(),
                generator.seed,
                k,
            )
            .class,
        )
}

/// What a drawn request asks of `target`: the cap it sends (none when the target sends no cap
/// field), its shared prefix, the texts it embeds.
pub(crate) fn request_shape(
    target: &crate::scenario::TargetPlan,
    classes: &[ClassPlan],
    drawn: &workload::Draw,
) -> RequestShape {
    let embeds = target.api == crate::protocol::Api::Embeddings;
    RequestShape {
        max_tokens: drawn
            .max_tokens
            .filter(|_| target.output_limit.field().is_some()),
        turn: None,
        shared_prefix: drawn.prefix.is_some(),
        inputs: if embeds {
            classes[drawn.class].inputs_per_request.max(1)
        } else {
            0
        },
        tools: classes[drawn.class].tools.is_some(),
    }
}

/// The JSON body of a drawn request for this target.
fn request_body(
    target: &crate::scenario::TargetPlan,
    class: &ClassPlan,
    drawn: &workload::Draw,
    messages: Messages<'_>,
) -> Bytes {
    let model = target.model_for(class.model.as_deref());
    // A class's tools go in as the target's extra fields do (which win over them).
    let with_tools = class.tools.as_ref().map(|tools| {
        let mut fields = tools.fields(target.api);
        for (key, value) in &target.extra_body {
            fields.insert(key.clone(), value.clone());
        }
        fields
    });
    chat_body_with(
        target,
        with_tools.as_ref().unwrap_or(&target.extra_body),
        &model,
        messages,
        (drawn.max_tokens, class.min_tokens, class.ignore_eos),
    )
}

/// The body asking `target` for an answer to `messages`, in the target's API.
pub(crate) fn chat_body(
    target: &crate::scenario::TargetPlan,
    model: &str,
    messages: Messages<'_>,
    max_tokens: Option<u32>,
    min_tokens: Option<u32>,
    ignore_eos: Option<bool>,
) -> Bytes {
    chat_body_with(
        target,
        &target.extra_body,
        model,
        messages,
        (max_tokens, min_tokens, ignore_eos),
    )
}

/// [`chat_body`] with these extra fields instead of the target's.
fn chat_body_with(
    target: &crate::scenario::TargetPlan,
    extra_body: &serde_json::Map<String, Value>,
    model: &str,
    messages: Messages<'_>,
    (max_tokens, min_tokens, ignore_eos): (Option<u32>, Option<u32>, Option<bool>),
) -> Bytes {
    target.api.body(&ChatRequest {
        model,
        messages,
        max_tokens,
        output_limit: target.output_limit,
        stream: target.mode == TargetMode::Stream,
        include_usage: target.stream_usage,
        extra_body,
        min_tokens,
        ignore_eos,
    })
}

/// The JSON body request `k` of a plan sends to target `target` (its first turn), built as a run
/// builds it: for benchmarks and tools.
pub fn request_bytes(plan: &RunPlan, target: usize, k: u64) -> Bytes {
    let trace = plan.load.shape.trace();
    let drawn = workload::draw(&plan.classes, trace, plan.seed, k);
    first_turn_body(&plan.targets[target], &plan.classes, trace, &drawn)
}

/// The body of a drawn request's first turn. A synthetic prompt is written straight from its
/// text, without building message values.
fn first_turn_body(
    target: &crate::scenario::TargetPlan,
    classes: &[ClassPlan],
    trace: Option<&Trace>,
    drawn: &workload::Draw,
) -> Bytes {
    let class = &classes[drawn.class];
    if target.api == crate::protocol::Api::Embeddings && class.inputs_per_request > 1 {
        let inputs = workload::embedding_inputs(classes, trace, drawn);
        return request_body(target, class, drawn, Messages::Values(&inputs));
    }
    match workload::synthetic_text(classes, drawn).filter(|_| class.images.is_none()) {
        Some(prompt) => request_body(
            target,
            class,
            drawn,
            Messages::Prompt {
                system: prompt.system,
                user: &prompt.user,
            },
        ),
        None => {
            let messages = workload::messages(classes, trace, drawn);
            let list = messages.as_array().map_or(&[][..], Vec::as_slice);
            request_body(target, class, drawn, Messages::Values(list))
        }
    }
}

/// The class, output cap and body of single request `k`, for the Batch API.
fn single_request_body(generator: &Generator, k: u64) -> (usize, Option<u32>, Bytes) {
    let drawn = workload::draw(
        &generator.classes,
        generator.trace.as_deref(),
        generator.seed,
        k,
    );
    let body = first_turn_body(
        &generator.target.plan,
        &generator.classes,
        generator.trace.as_deref(),
        &drawn,
    );
    (drawn.class, drawn.max_tokens, body)
}

async fn open_loop(mut generator: Generator, mut schedule: Schedule, max_in_flight: Option<u32>) {
    let permits = max_in_flight.map(|n| Arc::new(Semaphore::new(n as usize)));
    let mut in_flight = JoinSet::new();
    let shard = generator.shard;
    // The global index of the next arrival of the scenario's schedule; this shard sends its own.
    let mut next_arrival = 0u64;
    let load = generator.load.clone();
    // Sends leave at their intended time to well under a millisecond (tokio's own timer rounds
    // every sleep up to its next millisecond tick); tokio's timer if no thread can be started.
    let timer = crate::timer::PreciseTimer::start().ok();
    'schedule: while let Some(offset) = schedule.next_offset() {
        let k = next_arrival;
        next_arrival += 1;
        // Stages end at the duration themselves; a replayed trace may be cut short by it.
        if load.requests.is_some_and(|limit| k >= limit)
            || load.duration.is_some_and(|d| offset >= d)
        {
            break;
        }
        if !shard.owns(k) || routed_away(&generator, k) {
            continue;
        }
        let intended = generator.start + offset;
        while in_flight.try_join_next().is_some() {}
        let due = async {
            match &timer {
                Some(timer) => timer.sleep_until(intended).await,
                None => tokio::time::sleep_until(intended.into()).await,
            }
        };
        tokio::select! {
            biased;
            _ = stopped(&mut generator.stop) => break 'schedule,
            _ = due => {}
        }
        let permit = match &permits {
            Some(semaphore) => tokio::select! {
                biased;
                _ = stopped(&mut generator.stop) => break 'schedule,
                permit = semaphore.clone().acquire_owned() => permit.ok(),
            },
            None => None,
        };
        let Ok(reservation) = generator.reserve_unless_stopped(k).await else {
            break 'schedule;
        };
        let warmup = offset < load.warmup || k < load.warmup_requests;
        let stage = schedule.stage_of(offset);
        let requester = generator.requester();
        in_flight.spawn(async move {
            requester
                .send(k, stage, intended, warmup, reservation, permit)
                .await;
        });
    }
    drain(&mut in_flight, &mut generator.stop, generator.grace).await
}

/// Closed-loop users started between two yields to the runtime.
const START_BATCH: u32 = 256;

async fn closed_loop(generator: Generator, users: u32) {
    let counter = Arc::new(AtomicU64::new(0));
    let generator = Arc::new(generator);
    let mut user_tasks = JoinSet::new();
    for user in 0..users {
        if user % START_BATCH == START_BATCH - 1 {
            // Let the users started so far (and their connections) run before the next batch:
            // 100,000 users started in one go each hold hyper's per-request tasks and queued
            // frames at the same moment, memory the process keeps after it is freed.
            tokio::task::yield_now().await;
        }
        let generator = generator.clone();
        let counter = counter.clone();
        user_tasks.spawn(async move {
            let requester = generator.requester();
            let load = &generator.load;
            let end = load.duration.map(|d| generator.start + d);
            loop {
                if *generator.stop.borrow() {
                    break;
                }
                let now = Instant::now();
                if end.is_some_and(|end| now >= end) {
                    break;
                }
                let k = generator
                    .shard
                    .global_index(counter.fetch_add(1, Ordering::Relaxed));
                if load.requests.is_some_and(|limit| k >= limit) {
                    break;
                }
                if routed_away(&generator, k) {
                    continue;
                }
                let Ok(reservation) = generator.reserve_unless_stopped(k).await else {
                    break;
                };
                let warmup =
                    now.duration_since(generator.start) < load.warmup || k < load.warmup_requests;
                // A reservation may have waited for spend to settle: the send is intended now.
                let intended = if generator.guard.is_some() {
                    Instant::now()
                } else {
                    now
                };
                if !requester
                    .send(k, 0, intended, warmup, reservation, None)
                    .await
                {
                    break;
                }
            }
        });
    }
    let mut stop = generator.stop.clone();
    drain(&mut user_tasks, &mut stop, generator.grace).await
}

/// Waits for in-flight work; after a stop, waits `grace` more, then aborts what is left (the
/// run's books count each request aborted in flight).
async fn drain(tasks: &mut JoinSet<()>, stop: &mut watch::Receiver<bool>, grace: Duration) {
    loop {
        tokio::select! {
            biased;
            joined = tasks.join_next() => if joined.is_none() { return },
            _ = stopped(stop) => break,
        }
    }
    let deadline = tokio::time::Instant::now() + grace;
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { return },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}
