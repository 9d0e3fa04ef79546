//! The seam between the run and its live outputs: every finished request is handed, in the
//! order the recorder receives it, to each [`RecordSink`] of the run, and each is ticked once a
//! second. The progress line is one such sink (the binary's); a Prometheus endpoint or a TUI
//! would be another. Sinks run on the recorder task, off the request path: a slow sink delays
//! recording, never a request.

use std::sync::Arc;
use std::time::Instant;

use crate::record::RequestRecord;

/// A live output of a run.
pub trait RecordSink: Send {
    /// One finished request (warm-up included; `record.warmup` says which).
    fn record(&mut self, record: &RequestRecord);
    /// Once a second while the run goes, with what the driver has begun so far.
    fn tick(&mut self, _live: &LiveCounts) {}
    /// The last record has arrived.
    fn finish(&mut self) {}
}

/// What a live view cannot learn from finished records: the requests begun per target (sent,
/// or submitted in a batch), so that begun − finished is what is in flight.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveCounts {
    pub begun: Vec<u64>,
    /// Per target, what its Batch API batches are doing, while they run.
    pub batch: Vec<Option<String>>,
}

/// Makes a run's sink, given the instant the run started (every phase or step of a workflow
/// gets its own).
pub type SinkFactory = Arc<dyn Fn(Instant) -> Box<dyn RecordSink> + Send + Sync>;
