//! A sub-millisecond timer, for the mock's token deadlines and the open loop's send times.
//!
//! tokio's timer fires at the first millisecond tick at or after a deadline, which makes every
//! delay 0–1 ms long (0.5 ms on average) plus the scheduler's lateness. The mock must produce the
//! configured delays and the driver must send at the intended times, so one thread keeps every
//! pending deadline in a heap and sleeps on a futex with a precise timeout until the earliest is
//! due (Linux wakes it within tens of microseconds), then wakes the waiting task.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Instant;

use tokio::sync::oneshot;

struct Entry {
    deadline: Instant,
    sequence: u64,
    wake: oneshot::Sender<()>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.sequence) == (other.deadline, other.sequence)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// Reversed, so the std max-heap yields the earliest deadline first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.deadline, other.sequence).cmp(&(self.deadline, self.sequence))
    }
}

/// Handle to the timer thread; the thread ends when every handle is gone.
#[derive(Debug)]
pub(crate) struct PreciseTimer {
    sender: mpsc::Sender<(Instant, oneshot::Sender<()>)>,
}

impl PreciseTimer {
    pub(crate) fn start() -> std::io::Result<Self> {
        let (sender, receiver) = mpsc::channel::<(Instant, oneshot::Sender<()>)>();
        std::thread::Builder::new()
            .name("drover-mock-timer".into())
            .spawn(move || run(receiver))?;
        Ok(PreciseTimer { sender })
    }

    /// Resolves at `deadline` (at once if it has passed).
    pub(crate) async fn sleep_until(&self, deadline: Instant) {
        if deadline <= Instant::now() {
            return;
        }
        let (wake, woken) = oneshot::channel();
        if self.sender.send((deadline, wake)).is_err() {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
        let _ = woken.await;
    }
}

fn run(receiver: mpsc::Receiver<(Instant, oneshot::Sender<()>)>) {
    let mut pending = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut open = true;
    while open || !pending.is_empty() {
        let next = pending.peek().map(|e: &Entry| e.deadline);
        let received = match next {
            _ if !open => {
                std::thread::sleep(next.map_or(std::time::Duration::ZERO, |d| {
                    d.saturating_duration_since(Instant::now())
                }));
                None
            }
            None => match receiver.recv() {
                Ok(entry) => Some(entry),
                Err(_) => {
                    open = false;
                    None
                }
            },
            Some(deadline) => {
                match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(entry) => Some(entry),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => {
                        open = false;
                        None
                    }
                }
            }
        };
        if let Some((deadline, wake)) = received {
            sequence += 1;
            pending.push(Entry {
                deadline,
                sequence,
                wake,
            });
        }
        let now = Instant::now();
        while pending.peek().is_some_and(|e| e.deadline <= now) {
            if let Some(entry) = pending.pop() {
                let _ = entry.wake.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wakes_in_deadline_order_and_not_early() {
        let timer = PreciseTimer::start().unwrap();
        let start = Instant::now();
        let (a, b) = tokio::join!(
            async {
                timer.sleep_until(start + Duration::from_millis(20)).await;
                Instant::now()
            },
            async {
                timer.sleep_until(start + Duration::from_millis(5)).await;
                Instant::now()
            }
        );
        assert!(b >= start + Duration::from_millis(5));
        assert!(a >= start + Duration::from_millis(20));
        assert!(b < a);
    }
}
