//! One timer for all of a request's timeouts.
//!
//! A request has a whole-request deadline and, inside it, a deadline per phase: the response
//! headers within `first_byte_timeout`, then each body frame within `idle_timeout` of the data
//! before it. Giving each its own `tokio::time::timeout` registers a timer in tokio's wheel per
//! phase and per pending frame (a lock, an insert and a removal each time), which was a few per
//! cent of the client's CPU per request at high rates. [`Deadline`] keeps one sleep for the whole
//! request instead, registered the first time the request waits at all. A wait whose limit is
//! later than the one set moves it on without touching the wheel (tokio extends a registered timer
//! in place and re-files it only if it would have fired); only an earlier limit re-registers. A
//! stream therefore costs one registration, not one per frame.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::time::Sleep;

/// Which limit a wait ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The phase's own limit (first byte, idle).
    Phase,
    /// The whole-request limit, which came first.
    Total,
}

/// The timer of one request, with its whole-request deadline.
pub struct Deadline<'a> {
    sleep: Pin<&'a mut Sleep>,
    total: Instant,
}

impl<'a> Deadline<'a> {
    /// A request timer that ends every wait at `total` at the latest; `sleep` comes from
    /// [`sleep_until`]`(total)`.
    pub fn new(sleep: Pin<&'a mut Sleep>, total: Instant) -> Self {
        Deadline { sleep, total }
    }

    /// The whole-request deadline.
    pub fn total(&self) -> Instant {
        self.total
    }

    /// Runs `future` until it completes or `limit` (or the whole-request deadline, if earlier)
    /// passes.
    pub fn run<F: Future>(&mut self, limit: Instant, future: F) -> Within<'_, 'a, F> {
        let (limit, kind) = if limit < self.total {
            (limit, Expired::Phase)
        } else {
            (self.total, Expired::Total)
        };
        Within {
            timer: self,
            limit: tokio::time::Instant::from_std(limit),
            kind,
            settling: None,
            future,
        }
    }
}

pin_project_lite::pin_project! {
    /// A future run under a request's timer (see [`Deadline::run`]). Written out rather than
    /// as an `async fn`, so that the future it runs is stored once, where it is polled.
    pub struct Within<'t, 'a, F> {
        timer: &'t mut Deadline<'a>,
        limit: tokio::time::Instant,
        kind: Expired,
        // Set once the limit passed: one yield to the scheduler before the timeout is declared.
        settling: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for Within<'_, '_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if let Some(settling) = this.settling.as_mut() {
            // The future was polled again above, after every task woken with the timer (the
            // connection's, with data or a close it read) had its turn: still nothing.
            return match settling.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Err(*this.kind)),
            };
        }
        let limit = *this.limit;
        let sleep = &mut this.timer.sleep;
        loop {
            if sleep.deadline() != limit {
                sleep.as_mut().reset(limit);
            }
            match sleep.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) if tokio::time::Instant::now() >= limit => {
                    // Under CPU contention the timer and the socket can wake together, with this
                    // task polled before the connection's task has handed over what the socket
                    // holds (a frame, or the close of a dropped stream). Yield once, so that the
                    // future is polled again after them: only what truly has not arrived times out.
                    let mut settling: Pin<Box<dyn Future<Output = ()> + Send>> =
                        Box::pin(tokio::task::yield_now());
                    if settling.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(*this.kind));
                    }
                    *this.settling = Some(settling);
                    return Poll::Pending;
                }
                // Woken before the limit (the wheel's ticks are coarser than an Instant): sleep
                // on.
                Poll::Ready(()) => sleep.as_mut().reset(limit),
            }
        }
    }
}

/// The sleep to give [`Deadline::new`]: until the whole-request deadline (it is not registered
/// until a wait is pending).
pub fn sleep_until(total: Instant) -> Sleep {
    tokio::time::sleep_until(tokio::time::Instant::from_std(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::pin;
    use std::time::Duration;

    #[tokio::test]
    async fn a_ready_future_completes_without_waiting() {
        let total = Instant::now() + Duration::from_secs(5);
        let mut sleep = pin!(sleep_until(total));
        let mut deadline = Deadline::new(sleep.as_mut(), total);
        let out = deadline.run(Instant::now(), async { 7 }).await;
        assert_eq!(out, Ok(7));
    }

    #[tokio::test]
    async fn what_another_task_hands_over_as_the_limit_passes_is_taken_not_timed_out() {
        // The limit is already past, and the answer arrives only once another task runs (as a
        // connection's task hands over a frame or a close that the socket holds).
        let total = Instant::now() + Duration::from_secs(5);
        let mut sleep = pin!(sleep_until(total));
        let mut deadline = Deadline::new(sleep.as_mut(), total);
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move { tx.send(7).unwrap() });
        let passed = Instant::now() - Duration::from_millis(1);
        let out = deadline.run(passed, rx).await;
        assert_eq!(out, Ok(Ok(7)));
        // Nothing handed over: the timeout stands.
        let out = deadline.run(passed, std::future::pending::<()>()).await;
        assert_eq!(out, Err(Expired::Phase));
    }

    #[tokio::test]
    async fn a_phase_limit_before_the_total_expires_as_the_phase() {
        let start = Instant::now();
        let total = start + Duration::from_secs(5);
        let mut sleep = pin!(sleep_until(total));
        let mut deadline = Deadline::new(sleep.as_mut(), total);
        let out = deadline
            .run(
                start + Duration::from_millis(30),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(out, Err(Expired::Phase));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn the_total_limit_wins_when_it_comes_first() {
        let start = Instant::now();
        let total = start + Duration::from_millis(30);
        let mut sleep = pin!(sleep_until(total));
        let mut deadline = Deadline::new(sleep.as_mut(), total);
        let out = deadline
            .run(start + Duration::from_secs(5), std::future::pending::<()>())
            .await;
        assert_eq!(out, Err(Expired::Total));
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[tokio::test]
    async fn a_later_limit_is_honoured_after_an_earlier_wait_armed_the_timer() {
        let start = Instant::now();
        let total = start + Duration::from_secs(5);
        let mut sleep = pin!(sleep_until(total));
        let mut deadline = Deadline::new(sleep.as_mut(), total);
        // The first wait arms the timer for 20 ms and finishes before it.
        let first = deadline
            .run(start + Duration::from_millis(20), async {
                tokio::time::sleep(Duration::from_millis(1)).await;
            })
            .await;
        assert_eq!(first, Ok(()));
        // The second may run to 120 ms: the timer's early wake-up at 20 ms must not end it.
        let second = deadline
            .run(
                start + Duration::from_millis(120),
                tokio::time::sleep(Duration::from_millis(60)),
            )
            .await;
        assert_eq!(second, Ok(()));
        // And it still ends at its own limit when the work never finishes.
        let third = deadline
            .run(
                start + Duration::from_millis(150),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(third, Err(Expired::Phase));
        assert!(start.elapsed() >= Duration::from_millis(150));
    }

    #[tokio::test]
    async fn an_earlier_limit_pulls_the_armed_timer_in() {
        let start = Instant::now();
        let total = start + Duration::from_secs(5);
        let mut sleep = pin!(sleep_until(total));
        let mut deadline = Deadline::new(sleep.as_mut(), total);
        let first = deadline
            .run(start + Duration::from_secs(2), async {
                tokio::time::sleep(Duration::from_millis(1)).await;
            })
            .await;
        assert_eq!(first, Ok(()));
        let second = deadline
            .run(
                Instant::now() + Duration::from_millis(30),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(second, Err(Expired::Phase));
        // Well before the 2 s the timer was armed for.
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
