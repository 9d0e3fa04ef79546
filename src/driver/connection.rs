//! Connections to one target, opened and kept by drover itself rather than by a generic pool, so
//! that every request knows whether it opened its connection and how long the DNS lookup, the TCP
//! connect and the TLS handshake took — before its request's first byte was written, and so never
//! part of its TTFT.
//!
//! HTTP/1.1: a stack of idle connections; a request takes one (or opens one) and gives it back
//! once its response has been read to the end. HTTP/2: a pool of up to `http2.connections`
//! connections that requests multiplex over, each stream taking a slot ([`super::http2_pool`]).
//! Every connection gets a number, so results can show how requests spread over them. Each
//! connection's I/O runs in a task of its own. (Polling an HTTP/1.1 connection's I/O inside the
//! request's task instead was measured: the same CPU per request against nginx, so the simpler
//! form stayed.)

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
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
use super::http2_pool::{Checkout, Http2Pool, StreamSlot};
use super::http2_settings::{ServerStreams, SettingsReader};
use crate::record::ConnectionSetup;
use crate::scenario::{Http2Shape, HttpVersion, TlsOptions};

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
    #[error("the server closed the HTTP/2 connection before sending its SETTINGS")]
    NoSettings,
}

/// A connection ready to carry one request.
enum Sender {
    Http1(http1::SendRequest<RequestBody>),
    /// A stream slot on a pooled HTTP/2 connection, freed when the lease is dropped.
    Http2(StreamSlot),
}

/// A connection just opened, not yet lent.
enum Opened {
    Http1(http1::SendRequest<RequestBody>),
    Http2(http2::SendRequest<RequestBody>, ServerStreams),
}

/// A connection lent to one request, and what opening it cost (`None`: it was reused).
pub struct Lease {
    sender: Sender,
    pub opened: Option<ConnectionSetup>,
    /// The request first went out on a reused connection that the server closed before
    /// answering, and was sent again on this fresh one (see [`ConnectionPool::send`]).
    pub reconnected: bool,
    /// The connection's number within its target, in the order they were opened.
    pub connection_id: u32,
    /// How long the request waited for an HTTP/2 stream slot with every connection of the
    /// pool open and full (`None`: it did not wait).
    pub stream_wait: Option<Duration>,
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
    /// Set once ALPN picked HTTP/2 on a `version = "auto"` target: pool HTTP/2 connections
    /// from then on.
    negotiated_http2: AtomicBool,
    /// Idle HTTP/1.1 connections, with their numbers.
    idle: Mutex<Vec<(u32, http1::SendRequest<RequestBody>)>>,
    http2: Http2Pool,
    /// The number the next connection opened gets.
    next_connection_id: AtomicU32,
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
        http2_shape: Http2Shape,
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
            http2: Http2Pool::new(http2_shape),
            next_connection_id: AtomicU32::new(0),
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
    /// Response headers must come within `first_byte` of the request's first byte going out:
    /// a wait for a connection or a stream slot before that is not the server's.
    ///
    /// On failure, the error comes with whether the request crossed such a close first.
    pub async fn send(
        &self,
        build: impl Fn() -> Request<RequestBody>,
        first_byte: Duration,
    ) -> Result<(Response<Incoming>, Lease, Instant), (SendError, bool)> {
        // On the heap: kept for a retry on a stale connection, its 256 bytes would otherwise
        // stay in every waiting request's task beside the copy handed to hyper.
        let mut request = Box::new(build());
        let mut fresh = false;
        for _ in 0..MAX_STALE_ATTEMPTS {
            let mut lease = if fresh {
                let (opened, setup, id) = self
                    .open()
                    .await
                    .map_err(|e| (SendError::Connect(e), true))?;
                let mut lease = self.lend_opened(opened, setup, id);
                lease.reconnected = true;
                lease
            } else {
                self.checkout()
                    .await
                    .map_err(|e| (SendError::Connect(e), false))?
            };
            let written = Instant::now();
            let headers_due = tokio::time::Instant::from_std(written + first_byte);
            let result = match &mut lease.sender {
                Sender::Http1(sender) => {
                    to_origin_form(&mut request, &self.host_header);
                    tokio::time::timeout_at(headers_due, sender.try_send_request(*request)).await
                }
                Sender::Http2(slot) => {
                    tokio::time::timeout_at(headers_due, slot.sender.try_send_request(*request))
                        .await
                }
            };
            let Ok(result) = result else {
                return Err((SendError::FirstByte(first_byte), fresh));
            };
            match result {
                Ok(response) => return Ok((response, lease, written)),
                Err(mut error) => match error.take_message() {
                    // A closed HTTP/2 connection leaves the pool at the next checkout.
                    Some(unsent) if lease.opened.is_none() => *request = unsent,
                    None if lease.opened.is_none()
                        && !fresh
                        && matches!(lease.sender, Sender::Http1(_))
                        && error.error().is_incomplete_message() =>
                    {
                        fresh = true;
                        *request = build();
                    }
                    _ => return Err((SendError::Http(error.into_error()), fresh)),
                },
            }
        }
        Err((SendError::Stale, fresh))
    }

    /// Gives a connection back after its response was read to the end (an HTTP/2 stream slot
    /// is freed as the lease drops).
    pub fn give_back(&self, lease: Lease) {
        if let Sender::Http1(sender) = lease.sender {
            if !sender.is_closed() {
                let id = lease.connection_id;
                self.idle.lock().expect("idle list lock").push((id, sender));
            }
        }
    }

    async fn checkout(&self) -> Result<Lease, ConnectError> {
        if self.uses_http2() {
            return self.checkout_http2().await;
        }
        loop {
            let idle = self.idle.lock().expect("idle list lock").pop();
            let Some((id, mut sender)) = idle else {
                break;
            };
            if sender.ready().await.is_ok() {
                return Ok(Lease {
                    sender: Sender::Http1(sender),
                    opened: None,
                    reconnected: false,
                    connection_id: id,
                    stream_wait: None,
                });
            }
        }
        let (opened, setup, id) = self.open().await?;
        Ok(self.lend_opened(opened, setup, id))
    }

    /// Lends a connection just opened to the request that opened it. One that ALPN made HTTP/2
    /// on an `http = "auto"` target joins the HTTP/2 pool, which later requests then use.
    fn lend_opened(&self, opened: Opened, setup: ConnectionSetup, id: u32) -> Lease {
        let sender = match opened {
            Opened::Http1(sender) => Sender::Http1(sender),
            Opened::Http2(sender, streams) => {
                self.negotiated_http2.store(true, Ordering::Relaxed);
                Sender::Http2(self.http2.adopt(id, sender, streams))
            }
        };
        Lease {
            sender,
            opened: Some(setup),
            reconnected: false,
            connection_id: id,
            stream_wait: None,
        }
    }

    fn uses_http2(&self) -> bool {
        // Cleartext HTTP/2 needs prior knowledge; over TLS, ALPN decides (see `open`).
        self.version == HttpVersion::Http2 || self.negotiated_http2.load(Ordering::Relaxed)
    }

    async fn checkout_http2(&self) -> Result<Lease, ConnectError> {
        let (checkout, stream_wait) = self.http2.checkout().await;
        let ticket = match checkout {
            Checkout::Slot(slot) => {
                return Ok(Lease {
                    connection_id: slot.connection_id,
                    sender: Sender::Http2(slot),
                    opened: None,
                    reconnected: false,
                    stream_wait,
                })
            }
            Checkout::Open(ticket) => ticket,
        };
        // A failure (or this future dropped) gives the ticket back with it.
        let (opened, setup, id) = self.open().await?;
        let sender = match opened {
            Opened::Http2(sender, streams) => {
                Sender::Http2(self.http2.add(ticket, id, sender, streams))
            }
            // TLS without ALPN's h2: the server spoke HTTP/1.1 on this one.
            Opened::Http1(sender) => Sender::Http1(sender),
        };
        Ok(Lease {
            sender,
            opened: Some(setup),
            reconnected: false,
            connection_id: id,
            stream_wait,
        })
    }

    /// Opens a connection: DNS, TCP, TLS (for https), then the HTTP handshake.
    ///
    /// Its future (several KiB: the TLS and HTTP handshakes) lives on the heap: opening is rare,
    /// and inline it would make every request's future that large, copied on every request.
    async fn open(&self) -> Result<(Opened, ConnectionSetup, u32), ConnectError> {
        let timeout = self.connect_timeout;
        let (opened, setup) = Box::pin(tokio::time::timeout(timeout, self.open_untimed()))
            .await
            .unwrap_or_else(|_| Err(ConnectError::Timeout(humantime::format_duration(timeout))))?;
        let id = self.next_connection_id.fetch_add(1, Ordering::Relaxed);
        Ok((opened, setup, id))
    }

    async fn open_untimed(&self) -> Result<(Opened, ConnectionSetup), ConnectError> {
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
            server_max_streams: None,
        };
        let Some(tls) = &self.tls else {
            let opened = self
                .handshake(tcp, self.version == HttpVersion::Http2, slot)
                .await?;
            setup.server_max_streams = announced_limit(&opened);
            return Ok((opened, setup));
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
        let opened = self.handshake(stream, negotiated_h2, slot).await?;
        setup.server_max_streams = announced_limit(&opened);
        Ok((opened, setup))
    }

    async fn handshake<T>(
        &self,
        io: T,
        http2: bool,
        slot: tokio::sync::OwnedSemaphorePermit,
    ) -> Result<Opened, ConnectError>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if http2 {
            let (io, server_settings) = SettingsReader::new(io);
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .initial_connection_window_size(4 * 1024 * 1024)
                .initial_stream_window_size(1024 * 1024)
                .handshake(TokioIo::new(io))
                .await
                .map_err(ConnectError::Http)?;
            tokio::spawn(async move {
                let _slot = slot;
                let _ = connection.await;
            });
            // The server's preface: its stream limit decides how many requests this connection
            // takes at once (the wait is part of opening, bounded by connect_timeout).
            let streams = server_settings
                .await
                .map_err(|_| ConnectError::NoSettings)?;
            Ok(Opened::Http2(sender, streams))
        } else {
            let io = TokioIo::new(io);
            let (sender, connection) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(ConnectError::Http)?;
            tokio::spawn(async move {
                let _slot = slot;
                let _ = connection.await;
            });
            Ok(Opened::Http1(sender))
        }
    }
}

/// The stream limit an HTTP/2 server announced on a connection just opened.
fn announced_limit(opened: &Opened) -> Option<u32> {
    match opened {
        Opened::Http2(_, ServerStreams::Limit(limit)) => Some(*limit),
        _ => None,
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
    #[error("no response headers within {}", humantime::format_duration(*.0))]
    FirstByte(Duration),
}
