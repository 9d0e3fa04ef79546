//! `drover run --metrics-addr 127.0.0.1:9464`: drover's own figures, live, in Prometheus text at
//! `GET /metrics`, so that a long soak can be watched in Grafana while it runs. The figures come
//! through the driver's sink seam (a [`RecordSink`] fed by the recorder task, never the request
//! path) and are counted as results count them: warm-up requests apart, errors by class, latency
//! histograms of the requests that had the figure. Off by default.
//!
//! Families (every one labelled by `target`): `drover_requests_total` (and `class`, `outcome`:
//! `ok` or the error class), `drover_warmup_requests_total`, `drover_requests_in_flight`,
//! `drover_output_tokens_total`, `drover_spend_total` (and `currency`; priced targets), and the
//! histograms `drover_ttft_seconds`, `drover_itl_seconds`, `drover_e2e_seconds`,
//! `drover_schedule_lag_seconds`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::driver::{LiveCounts, RecordSink, SinkFactory};
use crate::protocol::prometheus::{Writer, CONTENT_TYPE};
use crate::record::RequestRecord;
use crate::scenario::RunPlan;

/// Latency bucket bounds, seconds.
const LATENCY_BOUNDS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Schedule-lag bucket bounds, seconds.
const LAG_BOUNDS: [f64; 10] = [
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
];

/// A histogram with fixed bounds: counts per bucket (the last for +Inf) and the sum.
#[derive(Debug, Clone)]
struct Buckets {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
}

impl Buckets {
    fn new(bounds: &'static [f64]) -> Self {
        Buckets {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, value: Duration) {
        let seconds = value.as_secs_f64();
        let bucket = self
            .bounds
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(self.bounds.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
    }
}

/// One target's live figures.
#[derive(Debug, Clone)]
struct TargetFigures {
    name: String,
    /// By (class, outcome).
    requests: BTreeMap<(usize, String), u64>,
    warmup: u64,
    finished: u64,
    /// Begun less finished, as of the last tick (both counted then).
    in_flight: u64,
    output_tokens: u64,
    spend: Option<f64>,
    ttft: Buckets,
    itl: Buckets,
    e2e: Buckets,
    lag: Buckets,
}

/// Everything the page shows.
#[derive(Debug)]
struct Figures {
    classes: Vec<String>,
    currency: String,
    targets: Vec<TargetFigures>,
    /// Per target: its price and its Batch API price.
    prices: Vec<(Option<crate::cost::Price>, Option<crate::cost::Price>)>,
}

impl Figures {
    fn record(&mut self, record: &RequestRecord) {
        let Some(target) = self.targets.get_mut(record.target) else {
            return;
        };
        target.finished += 1;
        if record.warmup {
            target.warmup += 1;
            return;
        }
        let outcome = match &record.outcome {
            Ok(()) => "ok".to_string(),
            Err(failure) => failure.class.key(),
        };
        *target.requests.entry((record.class, outcome)).or_insert(0) += 1;
        target.lag.observe(record.schedule_lag());
        if record.outcome.is_ok() {
            target.output_tokens += record.output_tokens;
            target.e2e.observe(record.e2e());
            if let Some(ttft) = record.ttft() {
                target.ttft.observe(ttft);
            }
            for gap in &record.token_gaps {
                target.itl.observe(*gap);
            }
            if let Some(spend) = target.spend.as_mut() {
                let (price, batch_price) = &self.prices[record.target];
                if let Some(cost) =
                    crate::cost::record_cost(price.as_ref(), batch_price.as_ref(), record)
                {
                    *spend += cost.input + cost.output;
                }
            }
        }
    }

    fn page(&self) -> String {
        let mut page = Writer::new();
        page.family(
            "drover_requests_total",
            "counter",
            "Requests finished (warm-up excluded), by class and outcome: ok or the error class.",
        );
        for target in &self.targets {
            for ((class, outcome), count) in &target.requests {
                let class = self.classes.get(*class).map_or("?", String::as_str);
                page.sample(
                    "drover_requests_total",
                    &[
                        ("target", &target.name),
                        ("class", class),
                        ("outcome", outcome),
                    ],
                    *count as f64,
                );
            }
        }
        type Pick = fn(&TargetFigures) -> Option<f64>;
        let simple: [(&str, &str, &str, Pick); 3] = [
            (
                "drover_warmup_requests_total",
                "counter",
                "Warm-up requests finished (not in the results' figures).",
                |t| Some(t.warmup as f64),
            ),
            (
                "drover_requests_in_flight",
                "gauge",
                "Requests begun and not yet finished (as of the last second's count).",
                |t| Some(t.in_flight as f64),
            ),
            (
                "drover_output_tokens_total",
                "counter",
                "Output tokens of successful requests (warm-up excluded).",
                |t| Some(t.output_tokens as f64),
            ),
        ];
        for (name, kind, help, pick) in simple {
            page.family(name, kind, help);
            for target in &self.targets {
                if let Some(value) = pick(target) {
                    page.sample(name, &[("target", &target.name)], value);
                }
            }
        }
        if self.targets.iter().any(|t| t.spend.is_some()) {
            page.family(
                "drover_spend_total",
                "counter",
                "What the successful requests cost, in the reporting currency.",
            );
            for target in &self.targets {
                if let Some(spend) = target.spend {
                    page.sample(
                        "drover_spend_total",
                        &[("target", &target.name), ("currency", &self.currency)],
                        spend,
                    );
                }
            }
        }
        type Histogram = fn(&TargetFigures) -> &Buckets;
        let histograms: [(&str, &str, Histogram); 4] = [
            (
                "drover_ttft_seconds",
                "Time to first token of successful requests.",
                |t| &t.ttft,
            ),
            (
                "drover_itl_seconds",
                "Gaps between output tokens of successful requests.",
                |t| &t.itl,
            ),
            (
                "drover_e2e_seconds",
                "End-to-end latency of successful requests, from the actual send.",
                |t| &t.e2e,
            ),
            (
                "drover_schedule_lag_seconds",
                "How late requests were sent after their intended time.",
                |t| &t.lag,
            ),
        ];
        for (name, help, pick) in histograms {
            page.family(name, "histogram", help);
            for target in &self.targets {
                let buckets = pick(target);
                page.histogram(
                    name,
                    &[("target", &target.name)],
                    buckets.bounds,
                    &buckets.counts,
                    buckets.sum,
                );
            }
        }
        page.finish()
    }
}

/// The live endpoint of one run: its figures and the server that shows them.
pub struct Exposition {
    figures: Arc<Mutex<Figures>>,
    server: tokio::task::JoinHandle<()>,
    addr: SocketAddr,
}

impl Exposition {
    /// Binds `addr` and serves the run's figures there (must be called within the runtime).
    pub fn serve(addr: SocketAddr, plan: &RunPlan) -> std::io::Result<Exposition> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let figures = Arc::new(Mutex::new(Figures {
            classes: plan.classes.iter().map(|c| c.name.clone()).collect(),
            currency: plan.cost.currency.clone(),
            targets: plan
                .targets
                .iter()
                .map(|t| TargetFigures {
                    name: t.name.clone(),
                    requests: BTreeMap::new(),
                    warmup: 0,
                    finished: 0,
                    in_flight: 0,
                    output_tokens: 0,
                    spend: (t.price.is_some() || t.batch_price.is_some()).then_some(0.0),
                    ttft: Buckets::new(&LATENCY_BOUNDS),
                    itl: Buckets::new(&LATENCY_BOUNDS),
                    e2e: Buckets::new(&LATENCY_BOUNDS),
                    lag: Buckets::new(&LAG_BOUNDS),
                })
                .collect(),
            prices: plan
                .targets
                .iter()
                .map(|t| (t.price.clone(), t.batch_price.clone()))
                .collect(),
        }));
        let shown = figures.clone();
        let server = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly rather than spin.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let figures = shown.clone();
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let figures = figures.clone();
                            async move {
                                let response = if request.uri().path() == "/metrics" {
                                    let page =
                                        figures.lock().unwrap_or_else(|e| e.into_inner()).page();
                                    Response::builder()
                                        .header(http::header::CONTENT_TYPE, CONTENT_TYPE)
                                        .body(Full::new(Bytes::from(page)))
                                } else {
                                    Response::builder()
                                        .status(StatusCode::NOT_FOUND)
                                        .body(Full::new(Bytes::from_static(b"GET /metrics\n")))
                                };
                                Ok::<_, std::convert::Infallible>(
                                    response.expect("static response parts are valid"),
                                )
                            }
                        });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Exposition {
            figures,
            server,
            addr,
        })
    }

    /// Where it listens (the port chosen when `:0` was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The run's sink: every finished request and the live counts reach the figures.
    pub fn sink(&self) -> SinkFactory {
        let figures = self.figures.clone();
        Arc::new(move |_start| {
            Box::new(ExpositionSink {
                figures: figures.clone(),
            }) as Box<dyn RecordSink>
        })
    }

    /// Keeps serving the final figures for `linger` (so that a last scrape sees them), then
    /// stops.
    pub async fn linger_and_stop(self, linger: Duration) {
        if !linger.is_zero() {
            tokio::time::sleep(linger).await;
        }
        self.server.abort();
    }
}

struct ExpositionSink {
    figures: Arc<Mutex<Figures>>,
}

impl RecordSink for ExpositionSink {
    fn record(&mut self, record: &RequestRecord) {
        self.figures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(record);
    }

    fn tick(&mut self, live: &LiveCounts) {
        let mut figures = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        for (target, begun) in figures.targets.iter_mut().zip(&live.begun) {
            target.in_flight = begun.saturating_sub(target.finished);
        }
    }

    /// The last record has arrived: nothing is in flight any more.
    fn finish(&mut self) {
        let mut figures = self.figures.lock().unwrap_or_else(|e| e.into_inner());
        for target in &mut figures.targets {
            target.in_flight = 0;
        }
    }
}
