//! Reads the server's HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS off a new connection.
//!
//! hyper honours the server's stream limit by queueing streams inside the connection, where a
//! request's wait would be invisible and counted as its TTFT; it does not tell its user the limit.
//! So the connection's I/O is wrapped: the first frame a server sends is its SETTINGS frame
//! (RFC 9113, section 3.4), and this wrapper reads that one frame's bytes as they pass through,
//! reports the stream limit once, and from then on only forwards bytes. What it keeps is bounded
//! by the largest frame a server may send before the client raised its limit (16,384 bytes).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;

/// What the server's first frame said about concurrent streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStreams {
    /// SETTINGS_MAX_CONCURRENT_STREAMS was announced with this value.
    Limit(u32),
    /// The SETTINGS frame did not set it: no limit (the protocol's default).
    Unlimited,
    /// The first frame was not a readable SETTINGS frame; hyper will fail the connection.
    Unreadable,
}

/// A frame header's length.
const FRAME_HEADER: usize = 9;
/// The frame type of SETTINGS.
const SETTINGS: u8 = 0x4;
/// The identifier of SETTINGS_MAX_CONCURRENT_STREAMS.
const MAX_CONCURRENT_STREAMS: u16 = 0x3;
/// The largest frame payload a server may send before the client changes its limit.
const DEFAULT_MAX_FRAME: usize = 16_384;

/// Parses a server's first frame, given at least its header; `None` while more bytes are needed.
pub fn parse_first_frame(bytes: &[u8]) -> Option<ServerStreams> {
    if bytes.len() < FRAME_HEADER {
        return None;
    }
    let length = usize::from(bytes[0]) << 16 | usize::from(bytes[1]) << 8 | usize::from(bytes[2]);
    let is_ack = bytes[4] & 0x1 != 0;
    if bytes[3] != SETTINGS || is_ack || length % 6 != 0 || length > DEFAULT_MAX_FRAME {
        return Some(ServerStreams::Unreadable);
    }
    let payload = bytes.get(FRAME_HEADER..FRAME_HEADER + length)?;
    // The last value of a setting given twice wins (RFC 9113, section 6.5.3).
    let limit = payload
        .chunks_exact(6)
        .rev()
        .find(|entry| u16::from_be_bytes([entry[0], entry[1]]) == MAX_CONCURRENT_STREAMS)
        .map(|entry| u32::from_be_bytes([entry[2], entry[3], entry[4], entry[5]]));
    Some(limit.map_or(ServerStreams::Unlimited, ServerStreams::Limit))
}

/// An HTTP/2 connection's I/O that reports the server's stream limit from its first frame.
pub struct SettingsReader<T> {
    inner: T,
    /// The first frame's bytes so far; emptied once it is parsed.
    seen: Vec<u8>,
    report: Option<oneshot::Sender<ServerStreams>>,
}

impl<T> SettingsReader<T> {
    /// Wraps `inner`; the limit arrives on the returned receiver once the first frame was read
    /// (the receiver errs if the connection closes first).
    pub fn new(inner: T) -> (Self, oneshot::Receiver<ServerStreams>) {
        let (report, receiver) = oneshot::channel();
        let reader = SettingsReader {
            inner,
            seen: Vec::new(),
            report: Some(report),
        };
        (reader, receiver)
    }

    fn observe(&mut self, bytes: &[u8]) {
        if self.report.is_none() {
            return;
        }
        let wanted = FRAME_HEADER + DEFAULT_MAX_FRAME;
        let room = wanted.saturating_sub(self.seen.len());
        self.seen.extend_from_slice(&bytes[..bytes.len().min(room)]);
        if let Some(streams) = parse_first_frame(&self.seen) {
            if let Some(report) = self.report.take() {
                let _ = report.send(streams);
            }
            self.seen = Vec::new();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SettingsReader<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.report.is_some() && matches!(polled, Poll::Ready(Ok(()))) {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                this.observe(new);
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SettingsReader<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    fn settings(entries: &[(u16, u32)], flags: u8) -> Vec<u8> {
        let length = entries.len() * 6;
        let mut frame = vec![
            0,
            (length >> 8) as u8,
            length as u8,
            SETTINGS,
            flags,
            0,
            0,
            0,
            0,
        ];
        for (id, value) in entries {
            frame.extend_from_slice(&id.to_be_bytes());
            frame.extend_from_slice(&value.to_be_bytes());
        }
        frame
    }

    #[test]
    fn the_limit_is_read_from_the_first_settings_frame() {
        let frame = settings(&[(0x4, 65_535), (0x3, 100), (0x5, 16_384)], 0);
        assert_eq!(parse_first_frame(&frame), Some(ServerStreams::Limit(100)));
        let twice = settings(&[(0x3, 100), (0x3, 250)], 0);
        assert_eq!(parse_first_frame(&twice), Some(ServerStreams::Limit(250)));
        let none = settings(&[(0x4, 65_535)], 0);
        assert_eq!(parse_first_frame(&none), Some(ServerStreams::Unlimited));
        assert_eq!(
            parse_first_frame(&settings(&[], 0)),
            Some(ServerStreams::Unlimited)
        );
    }

    #[test]
    fn a_partial_frame_waits_and_anything_else_is_unreadable() {
        let frame = settings(&[(0x3, 100)], 0);
        for cut in 0..frame.len() {
            assert_eq!(parse_first_frame(&frame[..cut]), None, "cut at {cut}");
        }
        // A DATA frame first, an ACK, a length that is not whole entries, an oversized frame.
        let mut data = frame.clone();
        data[3] = 0x0;
        assert_eq!(parse_first_frame(&data), Some(ServerStreams::Unreadable));
        assert_eq!(
            parse_first_frame(&settings(&[], 1)),
            Some(ServerStreams::Unreadable)
        );
        let mut ragged = frame.clone();
        ragged[2] = 5;
        assert_eq!(parse_first_frame(&ragged), Some(ServerStreams::Unreadable));
        let huge = [0x01, 0x00, 0x00, SETTINGS, 0, 0, 0, 0, 0];
        assert_eq!(parse_first_frame(&huge), Some(ServerStreams::Unreadable));
        let text = b"HTTP/1.1 400 Bad Request\r\n";
        assert_eq!(parse_first_frame(text), Some(ServerStreams::Unreadable));
    }

    #[tokio::test]
    async fn the_reader_reports_once_and_passes_every_byte_through() {
        let mut wire = settings(&[(0x3, 128)], 0);
        wire.extend_from_slice(b"the rest of the connection");
        let (client, mut server) = tokio::io::duplex(64);
        let (mut reader, limit) = SettingsReader::new(client);
        let sent = wire.clone();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            // A byte at a time: the frame arrives in pieces.
            for byte in sent {
                server.write_all(&[byte]).await.unwrap();
            }
        });
        let mut read = Vec::new();
        reader.read_to_end(&mut read).await.unwrap();
        assert_eq!(read, wire);
        assert_eq!(limit.await.unwrap(), ServerStreams::Limit(128));
        assert!(reader.seen.is_empty());
    }
}
