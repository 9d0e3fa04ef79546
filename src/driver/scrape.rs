//! Scrapes a target's server metrics while the run goes, off the request path: its own task and
//! its own connection pool (never a measured connection), one scrape at a time, each bounded by
//! a timeout and a page size, parsed on the blocking pool so that a large page costs the load's
//! workers nothing. A page that is not Prometheus text (or a 4xx) three times in a row stops the
//! scraping for the run; timeouts and 5xx are counted and scraping goes on. One last scrape
//! after the load ends makes the server's histograms cover every request.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Full};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::server::ScrapeLog;
use crate::protocol::prometheus::{self, Limits};
use crate::results::server::ServerMetricsResults;
use crate::scenario::{HttpVersion, ServerMetricsPlan, TlsOptions};

use super::client::{self, HttpClient};

/// Answers in a row that end the scraping: not Prometheus text, or a 4xx.
const UNUSABLE_IN_A_ROW: u32 = 3;

/// A running scrape of one server.
pub struct Scraper {
    stop: watch::Sender<bool>,
    task: JoinHandle<ScrapeLog>,
    origin_unix: u64,
}

/// Why one scrape failed: a class for the counts and a message.
#[derive(Debug)]
struct Failure {
    class: String,
    message: String,
    /// The page is not usable as it is (a repeat will not help).
    unusable: bool,
}

impl Scraper {
    /// Starts scraping `url`; points count seconds from `origin_unix` (the run's series origin),
    /// and saturation is judged on the scrapes up to `saturation_until` (an open loop's sending
    /// window) when given.
    pub fn start(
        plan: &ServerMetricsPlan,
        url: &str,
        tls: &TlsOptions,
        origin_unix: u64,
        saturation_until: Option<f64>,
    ) -> Result<Scraper, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("server_metrics url \"{url}\": {e}"))?;
        let client = client::build(
            HttpVersion::Http1,
            uri.scheme_str() == Some("https"),
            plan.timeout,
            tls,
        )
        .map_err(|e| e.to_string())?;
        let (stop, stopped) = watch::channel(false);
        let log = ScrapeLog::new(shown(&uri), plan.every.as_secs_f64(), plan.keep.clone())
            .judge_saturation_until(saturation_until);
        let task = tokio::spawn(scrape_loop(
            client,
            uri,
            plan.clone(),
            log,
            origin_unix,
            stopped,
        ));
        Ok(Scraper {
            stop,
            task,
            origin_unix,
        })
    }

    /// Ends the scraping (after one last scrape) and returns what it found.
    pub async fn finish(self) -> ServerMetricsResults {
        let _ = self.stop.send(true);
        let origin = self.origin_unix;
        match self.task.await {
            Ok(log) => log.into_results(origin),
            Err(error) => {
                let mut log = ScrapeLog::new(String::new(), 0.0, Vec::new());
                log.stop(format!("the scraper failed: {error}"));
                log.into_results(origin)
            }
        }
    }
}

async fn scrape_loop(
    client: HttpClient,
    uri: Uri,
    plan: ServerMetricsPlan,
    mut log: ScrapeLog,
    origin_unix: u64,
    mut stopped: watch::Receiver<bool>,
) -> ScrapeLog {
    let mut ticker = tokio::time::interval(plan.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut unusable = 0;
    let mut last = false;
    while !last {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stopped.changed() => last = true,
        }
        let t_s = seconds_since(origin_unix);
        match scrape_once(&client, &uri, &plan).await {
            Ok(page) => {
                log.read(t_s, &page);
                unusable = 0;
            }
            Err(failure) => {
                unusable = if failure.unusable { unusable + 1 } else { 0 };
                log.failed(&failure.class, failure.message);
                if unusable >= UNUSABLE_IN_A_ROW {
                    log.stop(format!(
                        "stopped after {UNUSABLE_IN_A_ROW} unusable answers in a row ({})",
                        failure.class
                    ));
                    break;
                }
            }
        }
    }
    log
}

/// The URL as results show it: scheme, host, port and path (credentials and query left out,
/// where a token might be).
fn shown(uri: &Uri) -> String {
    format!(
        "{}://{}{}",
        uri.scheme_str().unwrap_or("http"),
        uri.host().unwrap_or(""),
        uri.port_u16().map(|p| format!(":{p}")).unwrap_or_default()
    ) + uri.path()
}

fn seconds_since(origin_unix: u64) -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() - origin_unix as f64)
}

/// One bounded scrape: the page fetched within the timeout and size, then read.
async fn scrape_once(
    client: &HttpClient,
    uri: &Uri,
    plan: &ServerMetricsPlan,
) -> Result<prometheus::Exposition, Failure> {
    let text = match tokio::time::timeout(plan.timeout, fetch(client, uri, plan.max_bytes)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Failure {
                class: "timeout".into(),
                message: format!(
                    "no whole page within {}",
                    humantime::format_duration(plan.timeout)
                ),
                unusable: false,
            })
        }
    };
    let limits = Limits {
        max_samples: plan.max_samples,
        ..Limits::default()
    };
    let page = tokio::task::spawn_blocking(move || prometheus::parse(&text, &limits))
        .await
        .map_err(|e| Failure {
            class: "internal".into(),
            message: format!("reading the page failed: {e}"),
            unusable: true,
        })?;
    if !page.is_prometheus() {
        return Err(Failure {
            class: "not_prometheus".into(),
            message: format!(
                "the page is not Prometheus text (first line that is not: {:?})",
                page.first_invalid.as_deref().unwrap_or("")
            ),
            unusable: true,
        });
    }
    Ok(page)
}

/// GETs the page, reading at most `max_bytes` of it.
async fn fetch(client: &HttpClient, uri: &Uri, max_bytes: usize) -> Result<String, Failure> {
    let request = Request::get(uri.clone())
        .header(
            http::header::ACCEPT,
            "text/plain;version=0.0.4;q=1,*/*;q=0.1",
        )
        .body(Full::new(Bytes::new()))
        .map_err(|e| Failure {
            class: "connection".into(),
            message: e.to_string(),
            unusable: true,
        })?;
    let response = client.request(request).await.map_err(|e| Failure {
        class: "connection".into(),
        message: format!("{e}"),
        unusable: false,
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(Failure {
            class: format!("http_{}", status.as_u16()),
            message: format!("the server answered {status}"),
            unusable: status.is_client_error(),
        });
    }
    let bytes = http_body_util::Limited::new(response.into_body(), max_bytes)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                Failure {
                    class: "too_large".into(),
                    message: format!("the page is larger than max_bytes ({max_bytes} bytes)"),
                    unusable: true,
                }
            } else {
                Failure {
                    class: "connection".into(),
                    message: format!("the page broke off: {error}"),
                    unusable: false,
                }
            }
        })?
        .to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
