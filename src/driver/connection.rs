//! Connections to one target, opened and kept by drover itself rather than by a generic pool, so
//! that every request knows whether it opened its connection and how long the DNS lookup, the TCP
//! connect and the TLS handshake took — before its request's first byte was written, and so never
//! part of its TTFT.
//!
//! HTTP/1.1: a stack of idle connections; a request takes one (or opens one) and gives it back
//! once its response has been read to the end. HTTP/2: one shared connection that every request
//! multiplexes over, opened by the first request that needs it. Each connection's I/O runs in a
//! task of its own. (Polling an HTTP/1.1 connection's I/O inside the request's task instead was
//! measured: the same CPU per request against nginx, so the simpler form stayed.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::client::{tls_config, ClientError};
use crate::record::ConnectionSetup;
use crate::scenario::{HttpVersion, TlsOptions};

/// The body type of every request drover sends.
pub type RequestBody = Full<Bytes>;

/// Why no request could be put on a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("DNS lookup of {host} failed: {source}")]
    Dns {
        host: String,
        source: std::io::Error,
    },
    #[error("DNS lookup of {host} returned no address")]
    NoAddress { host: String },
    #[error("TCP connect to {address} failed: {source}")]
    Tcp {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS handshake with {host} failed: {source}")]
    Tls {
        host: String,
        source: std::io::Error,
    },
    #[error("HTTP handshake failed: {0}")]
    Http(hyper::Error),
    #[error("connection set-up took longer than connect_timeout of {0}")]
    Timeout(humantime::FormattedDuration),
    #[error(
        "no file descriptor left for another connection ({0} connections open; raise ulimit -n)"
    )]
    OutOfDescriptors(usize),
}

/// A connection ready to carry one request.
enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>),
}

/// A connection lent to one request, and what opening it cost (`None`: it was reused).
pub struct Lease {
    sender: Sender,
    pub opened: Option<ConnectionSetup>,
    /// The request first went out on a reused connection that the server closed before
    /// answering, and was sent again on this fresh one (see [`ConnectionPool::send`]).
    pub reconnected: bool,
}

/// The connections of one target.
pub struct ConnectionPool {
    host: String,
    port: u16,
    server_name: ServerName<'static>,
    /// `Some` for `https://`.
    tls: Option<TlsConnector>,
    /// The `Host` header of HTTP/1.1 requests: the URL's authority.
    host_header: HeaderValue,
    version: HttpVersion,
    connect_timeout: Duration,
    /// Set once ALPN picked HTTP/2 on a `version = "auto"` target: share one connection from then on.
    negotiated_http2: AtomicBool,
    idle: Mutex<Vec<http1::SendRequest<RequestBody>>>,
    shared_http2: tokio::sync::Mutex<Option<http2::SendRequest<RequestBody>>>,
    /// File-descriptor slots one connection takes from the process's budget
    /// ([`crate::resources::connection_slots`]): 2 when the server's end is in this process.
    slots_per_connection: u32,
}

/// Most stale idle connections a request skips before it opens a new one.
const MAX_STALE_ATTEMPTS: usize = 8;

impl ConnectionPool {
    /// A pool for the scheme, host and port of `url`.
    pub fn new(
        url: &Uri,
        version: HttpVersion,
        connect_timeout: Duration,
        tls: &TlsOptions,
        slots_per_connection: u32,
    ) -> Result<ConnectionPool, ClientError> {
        let https = url.scheme_str() == Some("https");
        let host = url
            .host()
            .unwrap_or("localhost")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port_u16().unwrap_or(if https { 443 } else { 80 });
        let host_header = url
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .unwrap_or_else(|| HeaderValue::from_static("localhost"));
        let server_name = ServerName::try_from(host.clone())
            .map_err(|e| ClientError::Certificate(format!("bad server name \"{host}\": {e}")))?;
        let tls = if https {
            let mut config = tls_config(tls)?;
            config.alpn_protocols = match version {
                HttpVersion::Http1 => vec![b"http/1.1".to_vec()],
                HttpVersion::Http2 => vec![b"h2".to_vec()],
                HttpVersion::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        Ok(ConnectionPool {
            host,
            port,
            server_name,
            tls,
            host_header,
            version,
            connect_timeout,
            negotiated_http2: AtomicBool::new(false),
            idle: Mutex::new(Vec::new()),
            shared_http2: tokio::sync::Mutex::new(None),
            slots_per_connection,
        })
    }

    /// Sends the request `build` makes on a reused or new connection. A reused HTTP/1.1
    /// connection that the server closed while idle is skipped (the request had not been written
    /// to it).
    ///
    /// A reused connection that the server closes as the request goes out, before any byte of an
    /// answer (the keep-alive race: the server closed it right after its last answer, and the
    /// close crossed the new request), never reached the server's handler: the request is sent
    /// again, once, on a fresh connection (`build` makes it anew), and the record counts the
    /// crossed close as a failed `connect` attempt (`retries`). On a connection it opened itself,
    /// the same close is the endpoint's answer and is reported.
    ///
    /// On failure, the error comes with whether the request crossed such a close first.
    pub async fn send(
        &self,
        build: impl Fn() -> Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Lease, Instant), (SendError, bool)> {
        let mut request = build();
        let mut fresh = false;
        for _ in 0..MAX_STALE_ATTEMPTS {
            let mut lease = if fresh {
                let (sender, opened) = self
                    .open()
                    .await
                    .map_err(|e| (SendError::Connect(e), true))?;
                Lease {
                    sender,
                    opened: Some(opened),
                    reconnected: true,
                }
            } else {
                self.checkout()
                    .await
                    .map_err(|e| (SendError::Connect(e), false))?
            };
            let written = Instant::now();
            let result = match &mut lease.sender {
                Sender::Http1(sender) => {
                    to_origin_form(&mut request, &self.host_header);
                    sender.try_send_request(request).await
                }
                Sender::Http2(sender) => sender.try_send_request(request).await,
            };
            match result {
                Ok(response) => return Ok((response, lease, written)),
                Err(mut error) => match error.take_message() {
                    Some(unsent) if lease.opened.is_none() => {
                        if let Sender::Http2(_) = lease.sender {
                            self.forget_http2().await;
                        }
                        request = unsent;
                    }
                    None if lease.opened.is_none()
                        && !fresh
                        && matches!(lease.sender, Sender::Http1(_))
                        && error.error().is_incomplete_message() =>
                    {
                        fresh = true;
                        request = build();
                    }
                    _ => return Err((SendError::Http(error.into_error()), fresh)),
                },
            }
        }
        Err((SendError::Stale, fresh))
    }

    /// Gives a connection back after its response was read to the end.
    pub fn give_back(&self, lease: Lease) {
        if let Sender::Http1(sender) = lease.sender {
            if !sender.is_closed() {
                self.idle.lock().expect("idle list lock").push(sender);
            }
        }
    }

    async fn checkout(&self) -> Result<Lease, ConnectError> {
        if self.uses_http2() {
            return self.checkout_http2().await;
        }
        loop {
            let idle = self.idle.lock().expect("idle list lock").pop();
            let Some(mut sender) = idle else {
                break;
            };
            if sender.ready().await.is_ok() {
                return Ok(Lease {
                    sender: Sender::Http1(sender),
                    opened: None,
                    reconnected: false,
                });
            }
        }
        let (sender, opened) = self.open().await?;
        if let Sender::Http2(http2) = &sender {
            // ALPN chose HTTP/2 for an "auto" target: later requests share this connection.
            *self.shared_http2.lock().await = Some(http2.clone());
            self.negotiated_http2.store(true, Ordering::Relaxed);
        }
        Ok(Lease {
            sender,
            opened: Some(opened),
            reconnected: false,
        })
    }

    fn uses_http2(&self) -> bool {
        // Cleartext HTTP/2 needs prior knowledge; over TLS, ALPN decides (see `open`).
        self.version == HttpVersion::Http2 || self.negotiated_http2.load(Ordering::Relaxed)
    }

    async fn checkout_http2(&self) -> Result<Lease, ConnectError> {
        let mut shared = self.shared_http2.lock().await;
        if let Some(sender) = shared.as_ref() {
            if !sender.is_closed() {
                return Ok(Lease {
                    sender: Sender::Http2(sender.clone()),
                    opened: None,
                    reconnected: false,
                });
            }
        }
        let (sender, opened) = self.open().await?;
        if let Sender::Http2(http2) = &sender {
            *shared = Some(http2.clone());
        }
        Ok(Lease {
            sender,
            opened: Some(opened),
            reconnected: false,
        })
    }

    async fn forget_http2(&self) {
        let mut shared = self.shared_http2.lock().await;
        if shared.as_ref().is_some_and(|s| s.is_closed()) {
            *shared = None;
        }
    }

    /// Opens a connection: DNS, TCP, TLS (for https), then the HTTP handshake.
    ///
    /// Its future (several KiB: the TLS and HTTP handshakes) lives on the heap: opening is rare,
    /// and inline it would make every request's future that large, copied on every request.
    async fn open(&self) -> Result<(Sender, ConnectionSetup), ConnectError> {
        let timeout = self.connect_timeout;
        Box::pin(tokio::time::timeout(timeout, self.open_untimed()))
            .await
            .unwrap_or_else(|_| Err(ConnectError::Timeout(humantime::format_duration(timeout))))
    }

    async fn open_untimed(&self) -> Result<(Sender, ConnectionSetup), ConnectError> {
        // A slot of the process's descriptor budget, held by the connection's task until it
        // closes; none left: the request fails as drover's shortage, at once.
        let slots = crate::resources::connection_slots();
        let slot = slots
            .clone()
            .try_acquire_many_owned(self.slots_per_connection)
            .map_err(|_| ConnectError::OutOfDescriptors(slots.available_permits()))?;
        let began = Instant::now();
        let address = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|source| ConnectError::Dns {
                host: self.host.clone(),
                source,
            })?
            .next()
            .ok_or_else(|| ConnectError::NoAddress {
                host: self.host.clone(),
            })?;
        let resolved = Instant::now();
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|source| ConnectError::Tcp { address, source })?;
        let _ = tcp.set_nodelay(true);
        let connected = Instant::now();
        let mut setup = ConnectionSetup {
            dns: resolved - began,
            tcp: connected - resolved,
            tls: None,
        };
        let Some(tls) = &self.tls else {
            let sender = self
                .handshake(tcp, self.version == HttpVersion::Http2, slot)
                .await?;
            return Ok((sender, setup));
        };
        let stream = tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| ConnectError::Tls {
                host: self.host.clone(),
                source,
            })?;
        setup.tls = Some(connected.elapsed());
        let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let sender = self.handshake(stream, negotiated_h2, slot).await?;
        Ok((sender, setup))
    }

    async fn handshake<T>(
        &self,
        io: T,
        http2: bool,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Sender, ConnectError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let io = TokioIo::new(io);
        if http2 {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .initial_connection_window_size(4 * 1024 * 1024)
                .initial_stream_window_size(1024 * 1024)
                .handshake(io)
                .await
                .map_err(ConnectError::Http)?;
            tokio::spawn(async move {
                let _slot = slot;
                let _ = connection.await;
            });
            Ok(Sender::Http2(sender))
        } else {
            let (sender, connection) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(ConnectError::Http)?;
            tokio::spawn(async move {
                let _slot = slot;
                let _ = connection.await;
            });
            Ok(Sender::Http1(sender))
        }
    }
}

/// An HTTP/1.1 request names its path in the request line and its authority in `Host`;
/// HTTP/2 keeps the full URI (hyper sends it as `:authority` and `:path`).
///
/// A request built for HTTP/1.1 (see `TargetContext`) is in that form already and is left as it
/// is.
fn to_origin_form(request: &mut Request<RequestBody>, host: &HeaderValue) {
    if request.uri().scheme().is_some() {
        if let Some(path) = request.uri().path_and_query().cloned() {
            *request.uri_mut() = Uri::from(path);
        }
    }
    if !request.headers().contains_key(http::header::HOST) {
        request
            .headers_mut()
            .insert(http::header::HOST, host.clone());
    }
}

/// Why a request could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Connect(ConnectError),
    #[error("{0}")]
    Http(hyper::Error),
    #[error("every reused connection had been closed by the server")]
    Stale,
}
