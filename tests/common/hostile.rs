//! A hostile HTTP/1.1 server for the tests: it reads each request by hand and answers with
//! exactly the bytes a test asks for (odd headers, endless streams, echoed keys, connections
//! closed at awkward moments). It binds 127.0.0.1:0 and serves until dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server read it.
pub struct Seen {
    /// 0-based, in arrival order over all connections.
    pub number: u64,
    /// The request line and headers.
    pub head: String,
    pub body: Vec<u8>,
    /// Requests served before this one on the same connection.
    pub on_connection: u64,
}

impl Seen {
    /// A header's value (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// What to answer.
pub enum Reply {
    /// These bytes (a whole response), then the connection stays open.
    Bytes(Vec<u8>),
    /// These bytes, then the connection is closed.
    BytesThenClose(Vec<u8>),
    /// These bytes after a wait, then the connection stays open.
    Later(std::time::Duration, Vec<u8>),
    /// A response head, then body pieces written one by one (each flushed), then the connection
    /// is closed.
    Pieces(Vec<u8>, Box<dyn Iterator<Item = Vec<u8>> + Send>),
    /// As `Pieces`, one piece every interval (a stream paced as a network would carry it).
    Paced(
        Vec<u8>,
        Box<dyn Iterator<Item = Vec<u8>> + Send>,
        std::time::Duration,
    ),
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

pub struct HostileServer {
    pub port: u16,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl HostileServer {
    /// Serves on its own thread's runtime, so that the test's runtime is not its scheduler.
    pub fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> HostileServer {
        let handler: Arc<Handler> = Arc::new(handler);
        let requests = Arc::new(AtomicU64::new(0));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        let counter = requests.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let task = runtime.spawn(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            port_tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                let counter = counter.clone();
                tokio::spawn(serve(stream, handler, counter));
            }
        });
        let port = port_rx.recv().unwrap();
        // The runtime lives on a thread of its own until the process ends.
        std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
        HostileServer {
            port,
            requests,
            task,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut stream: TcpStream, handler: Arc<Handler>, counter: Arc<AtomicU64>) {
    let _ = stream.set_nodelay(true);
    let mut buffer = Vec::new();
    let mut on_connection = 0;
    loop {
        let Some((head, body)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let seen = Seen {
            number: counter.fetch_add(1, Ordering::SeqCst),
            head,
            body,
            on_connection,
        };
        on_connection += 1;
        match handler(&seen) {
            Reply::Bytes(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Later(wait, bytes) => {
                tokio::time::sleep(wait).await;
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::BytesThenClose(bytes) => {
                let _ = stream.write_all(&bytes).await;
                let _ = stream.shutdown().await;
                return;
            }
            Reply::Pieces(head, pieces) => {
                if stream.write_all(&head).await.is_err() {
                    return;
                }
                for piece in pieces {
                    if stream.write_all(&piece).await.is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown().await;
                return;
            }
            Reply::Paced(head, pieces, every) => {
                if stream.write_all(&head).await.is_err() {
                    return;
                }
                let mut tick = tokio::time::interval(every);
                for piece in pieces {
                    tick.tick().await;
                    if stream.write_all(&piece).await.is_err() {
                        return;
                    }
                }
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}

/// Reads one request (head and Content-Length body); `None` at the end of the connection.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(String, Vec<u8>)> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buffer.len() < end + 4 + length {
                let read = stream.read(&mut chunk).await.ok()?;
                if read == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            let body = buffer[end + 4..end + 4 + length].to_vec();
            buffer.drain(..end + 4 + length);
            return Some((head, body));
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// A whole response with a body and a Content-Length.
pub fn response(status: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

/// A non-streamed chat completion with usage.
pub fn completion(content: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "id": "c", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    })
    .to_string();
    response("200 OK", &[("content-type", "application/json")], &body)
}

/// The head of an SSE response without a length (the body ends when the connection closes).
pub fn sse_head(content_type: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\nconnection: close\r\n\r\n")
        .into_bytes()
}

/// One OpenAI stream chunk carrying `content`.
pub fn sse_chunk(content: &str) -> Vec<u8> {
    let chunk = serde_json::json!({
        "id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n").into_bytes()
}
