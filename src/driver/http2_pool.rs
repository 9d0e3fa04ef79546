//! The HTTP/2 connections of one target, shaped by `http2 = { connections, max_streams_per_connection }`.
//!
//! Up to `connections` connections are opened as requests need them; each carries at most as
//! many concurrent streams as both the scenario and the server's SETTINGS_MAX_CONCURRENT_STREAMS
//! allow. A request takes a stream slot on the open connection with the most room. When every
//! connection is open and full it waits for a slot here, in drover, where the wait is timed as
//! its own figure; left to hyper, the stream would queue inside the connection and the wait would
//! be counted as the server's TTFT.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::client::conn::http2;
use tokio::sync::oneshot;

use super::connection::RequestBody;
use super::http2_settings::ServerStreams;
use crate::scenario::Http2Shape;

/// Streams one connection may carry at once: the smaller of the scenario's and the server's
/// limits.
pub fn streams_per_connection(shape: &Http2Shape, server: ServerStreams) -> u32 {
    let server = match server {
        ServerStreams::Limit(limit) => limit,
        ServerStreams::Unlimited | ServerStreams::Unreadable => u32::MAX,
    };
    shape
        .max_streams_per_connection
        .unwrap_or(u32::MAX)
        .min(server)
}

/// One open connection and its streams in flight.
struct PooledConnection {
    id: u32,
    sender: http2::SendRequest<RequestBody>,
    in_use: u32,
    limit: u32,
}

/// A request waiting for a slot or for leave to open a connection, first come first served.
struct Waiter {
    handoff: oneshot::Sender<(Checkout, Option<Instant>)>,
    /// Since when every connection of the pool has been open and full while it waited.
    full_since: Option<Instant>,
}

#[derive(Default)]
struct PoolState {
    open: Vec<PooledConnection>,
    /// Connections being opened by a request right now.
    opening: u32,
    waiting: VecDeque<Waiter>,
    /// Waiters queued while a connection was being opened, not yet marked as waiting on full
    /// connections: the marking walks the queue only while there are some.
    unmarked: usize,
}

struct Shared {
    shape: Http2Shape,
    state: Mutex<PoolState>,
}

/// The HTTP/2 connections of one target.
#[derive(Clone)]
pub struct Http2Pool {
    shared: Arc<Shared>,
}

/// A stream slot on one connection: the request's sender. Dropped (once the request's response
/// was read, or the request failed), it goes to the longest waiter or back to the connection.
pub struct StreamSlot {
    pub sender: http2::SendRequest<RequestBody>,
    /// The connection's number (see [`crate::record::RequestRecord::connection_id`]).
    pub connection_id: u32,
    /// `None` once disarmed: a slot that no longer holds a place (see [`Shared::undo`]).
    shared: Option<Arc<Shared>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut state = shared.state.lock().expect("http2 pool lock");
            if let Some(connection) = state.open.iter_mut().find(|c| c.id == self.connection_id) {
                connection.in_use = connection.in_use.saturating_sub(1);
            }
            shared.dispatch(&mut state);
        }
    }
}

/// Leave to open one more connection: spent by [`Http2Pool::add`]; dropped unspent (the
/// connection failed to open, or its request was dropped meanwhile), it lets another request
/// try.
#[must_use]
pub struct OpenTicket {
    shared: Option<Arc<Shared>>,
}

impl Drop for OpenTicket {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            let mut state = shared.state.lock().expect("http2 pool lock");
            state.opening = state.opening.saturating_sub(1);
            shared.dispatch(&mut state);
        }
    }
}

/// What a checkout gave.
pub enum Checkout {
    /// A stream slot on an open connection.
    Slot(StreamSlot),
    /// No connection has room and the pool may grow: the caller opens one.
    Open(OpenTicket),
}

impl Shared {
    /// A slot on the open connection with the most room (the longest-open among equals).
    fn take_slot(self: &Arc<Self>, state: &mut PoolState) -> Option<StreamSlot> {
        let connection = state
            .open
            .iter_mut()
            .filter(|c| c.in_use < c.limit)
            .max_by_key(|c| (c.limit - c.in_use, std::cmp::Reverse(c.id)))?;
        connection.in_use += 1;
        Some(StreamSlot {
            sender: connection.sender.clone(),
            connection_id: connection.id,
            shared: Some(self.clone()),
        })
    }

    /// A slot, or leave to open a connection when the pool may grow; `None`: wait.
    fn try_checkout(self: &Arc<Self>, state: &mut PoolState) -> Option<Checkout> {
        if let Some(slot) = self.take_slot(state) {
            return Some(Checkout::Slot(slot));
        }
        if (state.open.len() as u32).saturating_add(state.opening) < self.shape.connections {
            state.opening += 1;
            return Some(Checkout::Open(OpenTicket {
                shared: Some(self.clone()),
            }));
        }
        None
    }

    /// Hands free slots, or leave to open, to the longest waiters; then marks those still
    /// waiting as waiting on full connections when every connection is open and full.
    fn dispatch(self: &Arc<Self>, state: &mut PoolState) {
        state.open.retain(|c| !c.sender.is_closed());
        while let Some(waiter) = state.waiting.pop_front() {
            let Some(checkout) = self.try_checkout(state) else {
                state.waiting.push_front(waiter);
                break;
            };
            if waiter.full_since.is_none() {
                state.unmarked -= 1;
            }
            if let Err((unwanted, _)) = waiter.handoff.send((checkout, waiter.full_since)) {
                // That request is gone (timed out, or the run stopped): its place goes on.
                Self::undo(state, unwanted);
            }
        }
        if state.opening == 0 && state.unmarked > 0 {
            let now = Instant::now();
            for waiter in &mut state.waiting {
                waiter.full_since.get_or_insert(now);
            }
            state.unmarked = 0;
        }
    }

    /// Takes back what a vanished waiter was handed, under the lock already held.
    fn undo(state: &mut PoolState, checkout: Checkout) {
        match checkout {
            Checkout::Slot(mut slot) => {
                slot.shared = None;
                if let Some(connection) = state.open.iter_mut().find(|c| c.id == slot.connection_id)
                {
                    connection.in_use = connection.in_use.saturating_sub(1);
                }
            }
            Checkout::Open(mut ticket) => {
                ticket.shared = None;
                state.opening = state.opening.saturating_sub(1);
            }
        }
    }
}

impl Http2Pool {
    pub fn new(shape: Http2Shape) -> Self {
        Http2Pool {
            shared: Arc::new(Shared {
                shape,
                state: Mutex::new(PoolState::default()),
            }),
        }
    }

    /// A stream slot, or leave to open a connection; first come first served, waiting while
    /// every connection is open and full or being opened. Also gives how long it waited with
    /// every connection open and full (`None`: it did not), which is the request's wait for a
    /// stream slot. A wait for a connection another request is opening is connection set-up.
    pub async fn checkout(&self) -> (Checkout, Option<Duration>) {
        loop {
            let handed = {
                let mut state = self.shared.state.lock().expect("http2 pool lock");
                state.open.retain(|c| !c.sender.is_closed());
                if state.waiting.is_empty() {
                    if let Some(checkout) = self.shared.try_checkout(&mut state) {
                        return (checkout, None);
                    }
                }
                let (handoff, handed) = oneshot::channel();
                let full = state.opening == 0;
                state.unmarked += usize::from(!full);
                state.waiting.push_back(Waiter {
                    handoff,
                    full_since: full.then(Instant::now),
                });
                handed
            };
            // The sender lives in the pool's queue until it is used: an error is impossible
            // while the pool exists, and a new place in the queue is the safe answer to it.
            if let Ok((checkout, full_since)) = handed.await {
                return (checkout, full_since.map(|since| since.elapsed()));
            }
        }
    }

    /// Adds the connection a ticket opened, with its first slot for the opener; its other slots
    /// go to the requests waiting.
    pub fn add(
        &self,
        mut ticket: OpenTicket,
        connection_id: u32,
        sender: http2::SendRequest<RequestBody>,
        server: ServerStreams,
    ) -> StreamSlot {
        ticket.shared = None;
        let limit = streams_per_connection(&self.shared.shape, server).max(1);
        let mut state = self.shared.state.lock().expect("http2 pool lock");
        state.opening = state.opening.saturating_sub(1);
        state.open.push(PooledConnection {
            id: connection_id,
            sender: sender.clone(),
            in_use: 1,
            limit,
        });
        self.shared.dispatch(&mut state);
        StreamSlot {
            sender,
            connection_id,
            shared: Some(self.shared.clone()),
        }
    }

    /// Takes in a connection that ALPN made HTTP/2 on an `http = "auto"` target, with a slot for
    /// the request that opened it. When the pool is full already, the connection stays that one
    /// request's (it closes once the request is done).
    pub fn adopt(
        &self,
        connection_id: u32,
        sender: http2::SendRequest<RequestBody>,
        server: ServerStreams,
    ) -> StreamSlot {
        let mut state = self.shared.state.lock().expect("http2 pool lock");
        state.open.retain(|c| !c.sender.is_closed());
        if (state.open.len() as u32).saturating_add(state.opening) >= self.shared.shape.connections
        {
            return StreamSlot {
                sender,
                connection_id,
                shared: None,
            };
        }
        state.opening += 1;
        drop(state);
        let ticket = OpenTicket {
            shared: Some(self.shared.clone()),
        };
        self.add(ticket, connection_id, sender, server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    /// The client end of an HTTP/2 connection to a server that answers every request empty.
    async fn connection() -> http2::SendRequest<RequestBody> {
        let (client, server) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            });
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(server), service)
                .await;
        });
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(client))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender
    }

    fn pool(connections: u32, streams: u32) -> Http2Pool {
        Http2Pool::new(Http2Shape {
            connections,
            max_streams_per_connection: Some(streams),
        })
    }

    async fn slot(pool: &Http2Pool) -> (StreamSlot, Option<Duration>) {
        match pool.checkout().await {
            (Checkout::Slot(slot), waited) => (slot, waited),
            (Checkout::Open(_), _) => panic!("expected a slot"),
        }
    }

    async fn ticket(pool: &Http2Pool) -> OpenTicket {
        match pool.checkout().await {
            (Checkout::Open(ticket), None) => ticket,
            _ => panic!("expected leave to open"),
        }
    }

    /// Lets spawned checkouts reach their place in the queue.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn full_connections_hand_slots_to_waiters_first_come_first_served() {
        let pool = pool(1, 2);
        let opened = pool.add(
            ticket(&pool).await,
            0,
            connection().await,
            ServerStreams::Limit(100),
        );
        let (second, waited) = slot(&pool).await;
        assert_eq!((second.connection_id, waited), (0, None));
        let first_waiter = tokio::spawn({
            let pool = pool.clone();
            async move { slot(&pool).await }
        });
        settle().await;
        let second_waiter = tokio::spawn({
            let pool = pool.clone();
            async move { slot(&pool).await }
        });
        settle().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(opened);
        let (kept, waited) = first_waiter.await.unwrap();
        let waited = waited.expect("it waited on a full pool");
        assert!(waited >= Duration::from_millis(20), "{waited:?}");
        settle().await;
        assert!(
            !second_waiter.is_finished(),
            "the first waiter's slot is still held"
        );
        drop(second);
        assert!(second_waiter.await.unwrap().1.is_some());
        drop(kept);
    }

    #[tokio::test]
    async fn a_waiter_that_gave_up_passes_its_slot_on() {
        let pool = pool(1, 1);
        let only = pool.add(
            ticket(&pool).await,
            0,
            connection().await,
            ServerStreams::Unlimited,
        );
        let gave_up = tokio::spawn({
            let pool = pool.clone();
            async move { slot(&pool).await }
        });
        settle().await;
        let stays = tokio::spawn({
            let pool = pool.clone();
            async move { slot(&pool).await.1 }
        });
        settle().await;
        gave_up.abort();
        let _ = gave_up.await;
        drop(only);
        assert!(stays.await.unwrap().is_some());
        // Every slot came back: the next checkout finds one at once.
        let state = pool.shared.state.lock().unwrap();
        assert_eq!(state.open[0].in_use, 0);
        assert!(state.waiting.is_empty());
        assert_eq!(state.unmarked, 0);
    }

    #[tokio::test]
    async fn a_connection_that_failed_to_open_lets_a_waiter_open_one() {
        let pool = pool(1, 10);
        let first = ticket(&pool).await;
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move {
                match pool.checkout().await {
                    // Waiting for a connection another request opens is not a stream wait.
                    (Checkout::Open(_), waited) => waited,
                    (Checkout::Slot(_), _) => panic!("no connection was open"),
                }
            }
        });
        settle().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert_eq!(waiter.await.unwrap(), None);
    }

    #[test]
    fn a_connection_carries_the_smaller_of_the_two_limits() {
        let shape = |max| Http2Shape {
            connections: 1,
            max_streams_per_connection: max,
        };
        let limit = |max, server| streams_per_connection(&shape(max), server);
        assert_eq!(limit(None, ServerStreams::Limit(100)), 100);
        assert_eq!(limit(Some(50), ServerStreams::Limit(100)), 50);
        assert_eq!(limit(Some(500), ServerStreams::Limit(100)), 100);
        assert_eq!(limit(Some(500), ServerStreams::Unlimited), 500);
        assert_eq!(limit(Some(500), ServerStreams::Unreadable), 500);
        assert_eq!(limit(None, ServerStreams::Unlimited), u32::MAX);
    }
}
