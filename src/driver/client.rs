//! The HTTP client: hyper 1.x with a connection pool, HTTP/1.1 or HTTP/2, rustls (ring) for
//! `https://` with the Mozilla root store.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::scenario::HttpVersion;

/// The client type every request goes through.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up TLS: {0}")]
pub struct ClientError(#[from] rustls::Error);

/// Builds a pooled client for one target.
pub fn build(
    version: HttpVersion,
    is_https: bool,
    connect_timeout: Duration,
) -> Result<HttpClient, ClientError> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http();
    let connector = match version {
        HttpVersion::Http1 => builder.enable_http1().wrap_connector(http),
        HttpVersion::Http2 => builder.enable_http2().wrap_connector(http),
        HttpVersion::Auto => builder.enable_http1().enable_http2().wrap_connector(http),
    };
    let mut client = Client::builder(TokioExecutor::new());
    client
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .http2_initial_connection_window_size(Some(4 * 1024 * 1024))
        .http2_initial_stream_window_size(Some(1024 * 1024));
    // Cleartext HTTP/2 needs prior knowledge; over TLS, ALPN picks the version.
    if version == HttpVersion::Http2 && !is_https {
        client.http2_only(true);
    }
    Ok(client.build(connector))
}
