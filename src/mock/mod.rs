//! The built-in mock LLM server: an OpenAI-compatible `POST /v1/chat/completions`, the Anthropic
//! Messages API's `POST /v1/messages` (each streaming and not), the Responses, completions and
//! embeddings APIs, OpenAI's Batch API, Anthropic's Message Batches, `GET /v1/models` and a
//! Prometheus `GET /metrics` in vLLM's names on hyper, with configurable, time-faithful latency
//! and an optional capacity model (decode slots).
//!
//! Tokens are scheduled at absolute deadlines (`start + ttft + Σ gaps`) rather than by repeated
//! sleeps, so delays do not drift. Tests can steer single requests with `x-mock-*` headers (see
//! [`openai`]) and pause every response in progress with [`MockHandle::pause_for`] (or
//! `POST /mock/pause?ms=N`). It binds loopback unless told otherwise.

pub mod batch;
pub mod faults;
mod latency;
mod message_batches;
pub mod openai;
mod server_metrics;
mod vocabulary;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

pub use batch::BatchMockConfig;
pub use faults::{Fault, FaultPlan};
pub use latency::LatencyModel;
pub use vocabulary::MockVocabulary;

/// Mock behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    /// Delay from receiving the request to the first content token.
    pub ttft: LatencyModel,
    /// Delay between successive tokens.
    pub itl: LatencyModel,
    /// Tokens generated when the request's `max_tokens` does not cap them.
    pub output_tokens: u32,
    /// Of each answer's tokens, this many come first as reasoning (`reasoning_content` deltas,
    /// a Responses reasoning summary, Anthropic thinking), counted in usage's reasoning tokens.
    pub reasoning_tokens: u32,
    /// When set, a role-only chunk is sent this long after the request; otherwise the role-only
    /// chunk goes out together with the first token.
    pub prelude: Option<Duration>,
    /// Seed for latency and fault draws.
    pub seed: u64,
    /// Faults to inject, with their probabilities.
    pub faults: FaultPlan,
    /// The Batch API's processing time and failure fraction.
    pub batch: BatchMockConfig,
    /// How much faster tokens come for `"mode": "batch"` requests (inter-token delay divided by it).
    pub batch_mode_speedup: f64,
    /// Probability that a response stops (finish reason `stop`) before its `max_tokens`, at a
    /// uniformly drawn length, unless the request sets `ignore_eos` (`min_tokens` is respected).
    pub early_stop: f64,
    /// The prompt cache: when set, a request whose messages before the last one were seen before
    /// (as a request's prefix, or as a request plus its answer) reports them as cached tokens and
    /// gets this time to first token.
    pub cache_ttft: Option<LatencyModel>,
    /// The capacity model: at most this many requests generate at once; the others queue
    /// (first come, first served) and their time to first token includes the wait, so latency
    /// rises with load past capacity. `None`: unlimited.
    pub decode_slots: Option<u32>,
    /// The HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS it announces (`None`: hyper's default, 200).
    pub max_concurrent_streams: Option<u32>,
    /// Input tokens reported in usage, as a multiple of the prompt's count (1: honest). A server
    /// that counts more than the client projects, for testing the spend guard.
    pub input_usage_scale: f64,
    /// Its tokens and how it counts prompts (its own words, or a tokenizer file's).
    pub vocabulary: MockVocabulary,
    /// Of requests that declare tools (under `tool_choice` "auto"), the share answered with a
    /// tool call; and of calls, the share whose arguments are deliberately broken.
    pub tool_call_rate: f64,
    pub broken_arguments_rate: f64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            ttft: LatencyModel::Fixed(Duration::from_millis(40)),
            itl: LatencyModel::Fixed(Duration::from_millis(8)),
            output_tokens: 64,
            reasoning_tokens: 0,
            prelude: None,
            seed: 0x5eed,
            faults: FaultPlan::default(),
            batch: BatchMockConfig::default(),
            batch_mode_speedup: 2.0,
            early_stop: 0.0,
            cache_ttft: None,
            decode_slots: None,
            max_concurrent_streams: None,
            input_usage_scale: 1.0,
            vocabulary: MockVocabulary::default(),
            tool_call_rate: 0.0,
            broken_arguments_rate: 0.0,
        }
    }
}

/// Settings of the listening socket.
#[derive(Debug, Clone)]
pub struct MockOptions {
    pub addr: SocketAddr,
    /// When set, requests must carry `Authorization: Bearer <key>` or get 401.
    pub required_key: Option<String>,
    /// Serve HTTP/1.1 only (default: HTTP/1.1 and HTTP/2 prior knowledge).
    pub http1_only: bool,
}

impl Default for MockOptions {
    fn default() -> Self {
        MockOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            required_key: None,
            http1_only: false,
        }
    }
}

/// A global pause: every response in progress waits until it has passed.
#[derive(Debug, Default)]
pub(crate) struct PauseGate {
    until: Mutex<Option<Instant>>,
}

impl PauseGate {
    fn pause_for(&self, duration: Duration) {
        let mut until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        let end = Instant::now() + duration;
        *until = Some(until.map_or(end, |u| u.max(end)));
    }

    /// Waits out a pause in force; returns how long it waited.
    pub(crate) async fn wait(&self) -> Duration {
        let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
        match until {
            Some(until) if until > Instant::now() => {
                let start = Instant::now();
                tokio::time::sleep_until(until.into()).await;
                start.elapsed()
            }
            _ => Duration::ZERO,
        }
    }
}

/// Shared state of a running mock.
#[derive(Debug)]
pub(crate) struct MockState {
    pub(crate) config: MockConfig,
    pub(crate) required_key: Option<String>,
    pub(crate) pause: PauseGate,
    pub(crate) requests: AtomicU64,
    pub(crate) completions: AtomicU64,
    pub(crate) timing: Mutex<ProducedTiming>,
    pub(crate) timer: crate::timer::PreciseTimer,
    pub(crate) faults_injected: faults::FaultCounts,
    pub(crate) batches: batch::BatchStore,
    pub(crate) message_batches: message_batches::MessageBatchStore,
    pub(crate) prompt_cache: PromptCache,
    /// The decode slots of the capacity model (`None`: unlimited).
    pub(crate) slots: Option<Arc<tokio::sync::Semaphore>>,
    /// What `GET /metrics` shows.
    pub(crate) gauges: Arc<server_metrics::ServerGauges>,
}

/// Hashes of message prefixes the mock has seen, for its simulated prompt cache.
#[derive(Debug, Default)]
pub(crate) struct PromptCache {
    seen: Mutex<std::collections::HashSet<u64>>,
}

/// Entries kept before the cache is emptied (as if evicted).
const PROMPT_CACHE_ENTRIES: usize = 100_000;

impl PromptCache {
    /// A hash of chat messages by role and content.
    pub(crate) fn key(messages: &[serde_json::Value]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        for message in messages {
            message.get("role").map(|r| r.to_string()).hash(&mut hasher);
            match message.get("content") {
                Some(serde_json::Value::String(text)) => text.hash(&mut hasher),
                other => other.map(|c| c.to_string()).hash(&mut hasher),
            }
        }
        hasher.finish()
    }

    /// Whether `key` was seen; records it either way.
    pub(crate) fn check_and_insert(&self, key: u64) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= PROMPT_CACHE_ENTRIES {
            seen.clear();
        }
        !seen.insert(key)
    }

    pub(crate) fn insert(&self, key: u64) {
        self.check_and_insert(key);
    }
}

/// Delays the mock actually produced, measured where it hands each frame to the server.
#[derive(Debug)]
pub(crate) struct ProducedTiming {
    ttft: hdrhistogram::Histogram<u64>,
    itl: hdrhistogram::Histogram<u64>,
}

impl ProducedTiming {
    fn new() -> Self {
        ProducedTiming {
            ttft: crate::hist::new_histogram(),
            itl: crate::hist::new_histogram(),
        }
    }
}

impl MockState {
    pub(crate) fn record_first_token(&self, delay: Duration) {
        let mut timing = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        timing.ttft.saturating_record(crate::hist::micros(delay));
    }

    pub(crate) fn record_token_gap(&self, gap: Duration) {
        let mut timing = self.timing.lock().unwrap_or_else(|e| e.into_inner());
        timing.itl.saturating_record(crate::hist::micros(gap));
    }
}

/// Summary of the delays a mock produced (streaming responses only), in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducedDelays {
    pub ttft: crate::results::LatencyStat,
    pub itl: crate::results::LatencyStat,
}

/// A running mock server; dropping it stops the server and closes its connections.
///
/// The mock runs on its own tokio runtime in its own threads, so that a load generator in the same
/// process never competes with it for a scheduler (a shared runtime delayed a burst of 200 new
/// connections by ~250 ms; separate runtimes behave like separate processes).
pub struct MockHandle {
    addr: SocketAddr,
    state: Arc<MockState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL for clients, e.g. `http://127.0.0.1:8089/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Holds every response in progress (and new ones) for `duration`.
    pub fn pause_for(&self, duration: Duration) {
        self.state.pause.pause_for(duration);
    }

    /// Chat-completion requests received so far.
    pub fn requests_received(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// The delays actually produced so far: time from a request's arrival to its first token, and
    /// between tokens, as the mock emitted them (pause time included).
    pub fn produced_delays(&self) -> ProducedDelays {
        let timing = self.state.timing.lock().unwrap_or_else(|e| e.into_inner());
        ProducedDelays {
            ttft: crate::hist::stat_ms(&timing.ttft),
            itl: crate::hist::stat_ms(&timing.itl),
        }
    }

    /// Every `custom_id` the Batch API and Message Batches failed on purpose so far.
    pub fn batch_failed_ids(&self) -> Vec<String> {
        let mut ids = self.state.batches.failed_ids();
        ids.extend(self.state.message_batches.failed_ids());
        ids
    }

    /// Faults injected so far, by name (also served at `GET /mock/faults`).
    pub fn faults_injected(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.faults_injected.snapshot()
    }

    /// Chat completions answered successfully so far.
    pub fn completions_served(&self) -> u64 {
        self.state.completions.load(Ordering::Relaxed)
    }
}

impl Drop for MockHandle {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Accept-queue length. The 128 that `TcpListener::bind` uses overflows when a load test opens a
/// few hundred connections at once; dropped SYNs are retried after ~250 ms and poison the
/// latencies measured through the mock.
const LISTEN_BACKLOG: u32 = 4096;

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Worker threads of the mock's runtime.
const MOCK_WORKER_THREADS: usize = 2;

/// Binds and starts serving on a runtime of its own; returns once the socket is listening.
pub fn start(config: MockConfig, options: MockOptions) -> std::io::Result<MockHandle> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(MOCK_WORKER_THREADS)
        .thread_name("drover-mock")
        .enable_all()
        .build()?;
    let config_slots = config
        .decode_slots
        .map(|slots| Arc::new(tokio::sync::Semaphore::new(slots.max(1) as usize)));
    let gauges = Arc::new(server_metrics::ServerGauges::new(config.decode_slots));
    let state = Arc::new(MockState {
        config,
        required_key: options.required_key,
        pause: PauseGate::default(),
        requests: AtomicU64::new(0),
        completions: AtomicU64::new(0),
        timing: Mutex::new(ProducedTiming::new()),
        timer: crate::timer::PreciseTimer::start()?,
        faults_injected: faults::FaultCounts::default(),
        batches: batch::BatchStore::default(),
        message_batches: message_batches::MessageBatchStore::default(),
        prompt_cache: PromptCache::default(),
        gauges,
        slots: config_slots,
    });
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let served_state = state.clone();
    let http1_only = options.http1_only;
    let requested = options.addr;
    // Bind inside the mock's thread: the caller may itself be inside a runtime, where blocking on
    // another runtime is not allowed.
    let thread = std::thread::Builder::new()
        .name("drover-mock-main".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match bind(requested) {
                    Ok(listener) => listener,
                    Err(error) => {
                        let _ = bound_tx.send(Err(error));
                        return;
                    }
                };
                let _ = bound_tx.send(listener.local_addr());
                tokio::select! {
                    _ = accept_loop(listener, served_state, http1_only) => {}
                    _ = shutdown_rx => {}
                }
            });
            // Open connections are dropped with the runtime, not waited for.
            runtime.shutdown_background();
        })?;
    let addr = bound_rx
        .recv()
        .map_err(|_| std::io::Error::other("the mock's thread ended before binding"))??;
    Ok(MockHandle {
        addr,
        state,
        shutdown: Some(shutdown),
        thread: Some(thread),
    })
}

async fn accept_loop(listener: TcpListener, state: Arc<MockState>, http1_only: bool) {
    // Connections live in this set so that aborting the server closes them all.
    let mut connections = JoinSet::new();
    let request_counter = Arc::new(AtomicU64::new(0));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of descriptors (or another accept error): wait instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let counter = request_counter.clone();
                let max_streams = state.config.max_concurrent_streams;
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = state.clone();
                        let id = counter.fetch_add(1, Ordering::Relaxed);
                        async move { openai::handle(request, state, id).await }
                    });
                    let io = TokioIo::new(stream);
                    if http1_only {
                        let _ = http1::Builder::new().serve_connection(io, service).await;
                    } else {
                        let mut builder =
                            hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                        if let Some(streams) = max_streams {
                            builder.http2().max_concurrent_streams(streams);
                        }
                        let _ = builder.serve_connection(io, service).await;
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
