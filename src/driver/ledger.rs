//! The run's books: every request the driver starts is written in here, and ends in exactly one
//! of two ways: its record was handed to the recorder (ok, an error class, or `internal` when
//! drover itself panicked on it), or it was aborted (in flight at an interrupt's deadline).
//!
//! [`Books`] is held by the code that sends requests: a request begun in it and never handed over
//! counts as aborted when the books are dropped (the task was cancelled), so nothing can vanish
//! without a trace. At the end of the run [`Ledger::check`] compares these counts with what the
//! recorder actually received.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::results::Accounting;

/// The counts of one target.
#[derive(Debug, Default)]
struct TargetBooks {
    scheduled: AtomicU64,
    handed: AtomicU64,
    aborted: AtomicU64,
    /// What the target's Batch API batches are doing, for live views (`None`: no batch running).
    batch_status: std::sync::Mutex<Option<String>>,
}

/// Every target's counts.
#[derive(Debug)]
pub(crate) struct Ledger {
    targets: Vec<TargetBooks>,
}

/// What a request in flight needs for a record of its own, should drover fail on it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Begun {
    pub target: usize,
    pub index: u64,
    pub class: usize,
    pub stage: usize,
    pub intended: Instant,
    pub warmup: bool,
}

impl Ledger {
    pub(crate) fn new(targets: usize) -> Ledger {
        Ledger {
            targets: (0..targets).map(|_| TargetBooks::default()).collect(),
        }
    }

    /// Requests started in bulk (a Batch API submission).
    pub(crate) fn schedule(&self, target: usize, count: u64) {
        self.targets[target]
            .scheduled
            .fetch_add(count, Ordering::Relaxed);
    }

    /// Records handed over in bulk (a Batch API submission).
    pub(crate) fn hand(&self, target: usize, count: u64) {
        self.targets[target]
            .handed
            .fetch_add(count, Ordering::Relaxed);
    }

    /// Requests aborted in bulk (a Batch API submission at an interrupt).
    pub(crate) fn abort(&self, target: usize, count: u64) {
        self.targets[target]
            .aborted
            .fetch_add(count, Ordering::Relaxed);
    }

    /// How many of target `target`'s requests have begun so far (sent, or submitted in a batch).
    pub(crate) fn begun(&self, target: usize) -> u64 {
        self.targets[target].scheduled.load(Ordering::Relaxed)
    }

    /// Notes what target `target`'s batches are doing now (`None` once they are read back).
    pub(crate) fn set_batch_status(&self, target: usize, status: Option<String>) {
        if let Ok(mut slot) = self.targets[target].batch_status.lock() {
            *slot = status;
        }
    }

    /// What target `target`'s batches are doing, if any runs.
    pub(crate) fn batch_status(&self, target: usize) -> Option<String> {
        self.targets[target]
            .batch_status
            .lock()
            .ok()
            .and_then(|slot| slot.clone())
    }

    /// How many of target `target`'s requests were aborted.
    pub(crate) fn aborted(&self, target: usize) -> u64 {
        self.targets[target].aborted.load(Ordering::Relaxed)
    }

    /// The books of target `target`, against the `recorded` records the recorder received.
    pub(crate) fn check(&self, target: usize, recorded: u64) -> Accounting {
        let books = &self.targets[target];
        let scheduled = books.scheduled.load(Ordering::Relaxed);
        let handed = books.handed.load(Ordering::Relaxed);
        let aborted = books.aborted.load(Ordering::Relaxed);
        Accounting {
            scheduled,
            recorded,
            aborted,
            handed_over: handed,
            balanced: scheduled == recorded + aborted && handed == recorded,
        }
    }
}

/// The requests one sender has in flight at once: a session's turn, or both sides of a shadow
/// pair (kept inline: no allocation per request). Dropped with some still open (the sending
/// task was cancelled), they count as aborted.
pub(crate) struct Books<'l> {
    ledger: &'l Ledger,
    open: [Option<Begun>; 2],
}

impl<'l> Books<'l> {
    pub(crate) fn new(ledger: &'l Ledger) -> Self {
        Books {
            ledger,
            open: [None, None],
        }
    }

    /// A request starts.
    pub(crate) fn begin(&mut self, begun: Begun) {
        self.ledger.targets[begun.target]
            .scheduled
            .fetch_add(1, Ordering::Relaxed);
        match self.open.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(begun),
            // More at once than a sender ever has: counted, and left to the books' check.
            None => debug_assert!(false, "more than two requests in flight in one sender"),
        }
    }

    fn find(&mut self, target: usize, index: u64) -> Option<&mut Option<Begun>> {
        self.open
            .iter_mut()
            .find(|slot| slot.is_some_and(|b| b.target == target && b.index == index))
    }

    /// The record of request `index` to `target` reached the recorder.
    pub(crate) fn handed(&mut self, target: usize, index: u64) {
        if let Some(slot) = self.find(target, index) {
            *slot = None;
            self.ledger.targets[target]
                .handed
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Request `index` to `target`, still open, turned out to be of class `class`.
    pub(crate) fn relabel(&mut self, target: usize, index: u64, class: usize) {
        if let Some(Some(begun)) = self.find(target, index) {
            begun.class = class;
        }
    }

    /// The requests begun and not yet handed over (those a panic left without a record).
    pub(crate) fn take_open(&mut self) -> Vec<Begun> {
        self.open.iter_mut().filter_map(Option::take).collect()
    }
}

impl Drop for Books<'_> {
    fn drop(&mut self) {
        for begun in self.open.iter().flatten() {
            self.ledger.targets[begun.target]
                .aborted
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn begun(target: usize, index: u64) -> Begun {
        Begun {
            target,
            index,
            class: 0,
            stage: 0,
            intended: Instant::now(),
            warmup: false,
        }
    }

    #[test]
    fn a_request_begun_and_dropped_counts_as_aborted() {
        let ledger = Ledger::new(2);
        {
            let mut books = Books::new(&ledger);
            books.begin(begun(0, 1));
            books.begin(begun(1, 1));
            books.handed(1, 1);
        }
        assert_eq!(ledger.aborted(0), 1);
        assert_eq!(ledger.aborted(1), 0);
        let zero = ledger.check(0, 0);
        assert!(zero.balanced, "{zero:?}");
        let one = ledger.check(1, 1);
        assert!(one.balanced, "{one:?}");
        // A record the recorder never saw breaks the balance.
        assert!(!ledger.check(1, 0).balanced);
    }

    #[test]
    fn open_requests_can_be_taken_for_records_of_their_own() {
        let ledger = Ledger::new(1);
        let mut books = Books::new(&ledger);
        books.begin(begun(0, 7));
        let open = books.take_open();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].index, 7);
        drop(books);
        assert_eq!(ledger.aborted(0), 0);
    }
}
