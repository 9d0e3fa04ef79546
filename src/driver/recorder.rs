//! The recorder task: receives every finished request from the loops, in arrival order, and
//! hands it to the metrics [`Recorder`], the run's live outputs ([`RecordSink`]s) and the
//! per-request export; once a second it ticks the sinks and writes a checkpoint when one is due;
//! on a second interrupt it writes what finished at once and records nothing more.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures_util::FutureExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::export::RequestLog;
use crate::metrics::Recorder;
use crate::notice::Notices;
use crate::record::RequestRecord;
use crate::results::RunStatus;
use crate::scenario::{LoadShape, RunPlan};

use super::ledger::Ledger;
use super::{LiveCounts, RecordSink, RunOptions, SinkFactory, StopSignal, Urgency};

/// Most records the recorder takes from its channel at once.
const RECORD_BATCH: usize = 256;

/// Writes results so far with a status.
type Checkpoint = Box<dyn Fn(&Recorder, RunStatus) + Send>;

/// What the loop owns.
struct RecordLoop {
    recorder: Recorder,
    records: mpsc::Receiver<RequestRecord>,
    live: Vec<SinkFactory>,
    start: Instant,
    target_count: usize,
    checkpoint: Option<Checkpoint>,
    checkpoint_every: Duration,
    request_log: Option<Arc<Mutex<RequestLog>>>,
    notices: Notices,
    urgent: Arc<watch::Sender<Urgency>>,
    urgent_requests: watch::Receiver<Urgency>,
    ledger: Arc<Ledger>,
}

/// Starts the recorder task (`(start, started_at)`: the run's clock); it ends with the metrics
/// and every record received per target, once every sender of `records` is gone.
pub(super) fn spawn(
    plan: &RunPlan,
    options: &RunOptions,
    stop: &StopSignal,
    (start, started_at): (Instant, SystemTime),
    records: mpsc::Receiver<RequestRecord>,
    ledger: Arc<Ledger>,
) -> JoinHandle<(Recorder, Vec<u64>)> {
    let target_count = plan.targets.len();
    let class_count = plan.classes.len();
    let stage_count = match &plan.load.shape {
        LoadShape::Open { stages, .. } => stages.len(),
        LoadShape::Closed { .. } | LoadShape::Trace { .. } => 1,
    };
    let live = options.live.clone();
    let notices = options.notices.clone();
    let checkpoint = options.checkpoint.clone().map(|sink| -> Checkpoint {
        let plan = plan.clone();
        let zeros = vec![0; target_count];
        Box::new(move |recorder: &Recorder, status: RunStatus| {
            let snapshot = recorder.clone().into_results(
                &plan,
                &zeros,
                started_at,
                SystemTime::now(),
                start.elapsed(),
                status,
            );
            sink(&snapshot);
        })
    });
    let urgent = stop.urgent.clone();
    let urgent_requests = stop.urgent.subscribe();
    let checkpoint_every = options.checkpoint_every;
    let prices: Vec<_> = plan.targets.iter().map(|t| t.price.clone()).collect();
    let batch_prices: Vec<_> = plan.targets.iter().map(|t| t.batch_price.clone()).collect();
    let projection = plan.cost.projection;
    let goodput = match &plan.slo {
        Some(slo) => crate::slo::GoodputJudge::new(
            &slo.good_criteria(),
            &plan
                .targets
                .iter()
                .map(|t| t.name.clone())
                .collect::<Vec<_>>(),
            &plan
                .classes
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>(),
        ),
        None => crate::slo::GoodputJudge::default(),
    };
    let request_log = options.request_log.clone();
    if let Some(log) = &request_log {
        if let Ok(mut log) = log.lock() {
            log.start(start, started_at);
        }
    }
    let recorder = Recorder::new(target_count, class_count, stage_count, start, started_at)
        .with_cost(prices, batch_prices, projection)
        .with_goodput(goodput);
    tokio::spawn(record_loop(RecordLoop {
        recorder,
        records,
        live,
        start,
        target_count,
        checkpoint,
        checkpoint_every,
        request_log,
        notices,
        urgent,
        urgent_requests,
        ledger,
    }))
}

async fn record_loop(state: RecordLoop) -> (Recorder, Vec<u64>) {
    let RecordLoop {
        mut recorder,
        records: mut record_rx,
        live,
        start,
        target_count,
        checkpoint,
        checkpoint_every,
        request_log,
        notices,
        urgent,
        mut urgent_requests,
        ledger,
    } = state;
    let mut sinks: Vec<Box<dyn RecordSink>> = live.iter().map(|make| make(start)).collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    if let Some(write) = &checkpoint {
        write(&recorder, RunStatus::InProgress);
    }
    // The export is flushed before every checkpoint, so that it always holds at least the
    // requests the checkpoint counts.
    let flush_log = || {
        if let Some(log) = &request_log {
            if let Ok(mut log) = log.lock() {
                if let Err(error) = log.flush() {
                    notices.send(&format!(
                        "warning: the per-request export is incomplete: {error}"
                    ));
                }
            }
        }
    };
    let mut last_checkpoint = Instant::now();
    let mut urgent_open = true;
    // Set once a second interrupt's results are written: nothing more is recorded.
    let mut frozen = false;
    // Records are taken in batches of what is waiting: one wake-up and one pass of the
    // select for many records at high rates.
    let mut batch = Vec::with_capacity(RECORD_BATCH);
    // Every record received, per target (warm-up included): the run's books check it.
    let mut arrived = vec![0u64; target_count];
    loop {
        tokio::select! {
            received = record_rx.recv_many(&mut batch, RECORD_BATCH) => {
                if received == 0 {
                    break;
                }
                if frozen {
                    // The process is exiting on a second interrupt: what was written stays
                    // as written (results and export hold the same requests).
                    batch.clear();
                    continue;
                }
                for record in batch.drain(..) {
                    if let Some(count) = arrived.get_mut(record.target) {
                        *count += 1;
                    }
                    for sink in &mut sinks {
                        sink.record(&record);
                    }
                    recorder.record(&record);
                    if let Some(log) = &request_log {
                        if let Err(error) = log.lock().map_err(|_| std::io::Error::other("poisoned")).and_then(|mut log| log.write(&record)) {
                            notices.send(&format!("warning: the per-request export stopped: {error}"));
                        }
                    }
                }
            },
            _ = tick.tick() => {
                let live = LiveCounts {
                    begun: (0..target_count).map(|t| ledger.begun(t)).collect(),
                    batch: (0..target_count).map(|t| ledger.batch_status(t)).collect(),
                };
                for sink in &mut sinks {
                    sink.tick(&live);
                }
                if let Some(write) = checkpoint.as_ref().filter(|_| !frozen) {
                    if last_checkpoint.elapsed() >= checkpoint_every {
                        flush_log();
                        write(&recorder, RunStatus::InProgress);
                        last_checkpoint = Instant::now();
                    }
                }
            }
            // A second interrupt: what finished is written now, as an interrupted run. (The
            // watch's read guard is dropped before the answer is sent on the same channel.)
            asked = urgent_requests
                .wait_for(|u| *u == Urgency::Requested)
                .map(|seen| seen.is_ok()),
                if urgent_open =>
            {
                // Answered once; a closed channel (its sender gone) is not asked again.
                urgent_open = false;
                frozen = asked;
                if asked {
                    flush_log();
                    if let Some(write) = &checkpoint {
                        write(&recorder, RunStatus::Interrupted);
                    }
                    urgent.send_replace(Urgency::Written);
                }
            }
        }
    }
    for sink in &mut sinks {
        sink.finish();
    }
    flush_log();
    (recorder, arrived)
}
