//! One open HTTP/2 connection over rustls: its streams, flow control, and the task that
//! reads it.
//!
//! Everything lives in one [`State`] under a mutex: the TLS session (rustls's unbuffered API),
//! the HPACK decoder, and a small table of open streams. Nothing is buffered that is not in
//! flight:
//!
//! * frames to send are encrypted as soon as they are queued and written to the socket without
//!   waiting; only what the socket does not take at once is kept, until the driver writes it;
//! * the driver reads into a buffer on its thread's stack, where the TLS records are decrypted
//!   and split into frames; only the start of a record (or frame) cut at the end of a read is
//!   kept until the rest comes;
//! * a stream keeps the data frames its reader has not taken yet, within its window.
//!
//! So an idle connection costs its TLS session (keys and the apiserver's certificate) and a few
//! hundred bytes, where h2 over tokio-rustls kept a 16 KiB write buffer, an 8 KiB read buffer,
//! HPACK tables and rustls's 4 KiB record buffer per connection.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::client::UnbufferedClientConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame::{self, Head, ProtocolError};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// How often an open connection is pinged.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a ping may go unanswered.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive windows (as hyper's client sets them): a large list is not held up by window
/// updates; nothing is allocated for them until data arrives.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
/// Streams opened before the apiserver's SETTINGS say how many it takes.
const FIRST_STREAM_LIMIT: usize = 100;
/// The largest header block taken, and the most fields in it (a response head of the
/// apiserver is well under 1 KiB, in about ten fields).
const MAX_HEADER_BLOCK: usize = 64 << 10;
const MAX_HEADER_FIELDS: usize = 128;

/// Why a request failed.
#[derive(Debug, Clone)]
pub struct Failure {
    message: String,
    /// The apiserver never processed the request (refused, above a GOAWAY's last stream, or
    /// never sent): sending it again is safe for any method.
    unprocessed: bool,
}

impl Failure {
    fn new(message: impl Into<String>, unprocessed: bool) -> Self {
        Self {
            message: message.into(),
            unprocessed,
        }
    }

    pub fn unprocessed(&self) -> bool {
        self.unprocessed
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A request's stream.
struct Stream {
    id: u32,
    /// The response head, until the request takes it.
    head: Option<Box<http::response::Parts>>,
    got_head: bool,
    /// Data received and not read yet.
    chunks: VecDeque<Bytes>,
    buffered: usize,
    /// The apiserver ended the stream.
    remote_done: bool,
    /// This side sent the request's end.
    local_done: bool,
    /// (boxed: a stream's table entry stays small while all goes well)
    failed: Option<Box<Failure>>,
    waker: Option<Waker>,
    /// What this side may still send.
    send_window: i64,
    /// Data read since the stream's window was last opened again.
    unacked: u32,
}

impl Stream {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn fail(&mut self, failure: Failure) {
        if self.failed.is_none() {
            self.failed = Some(Box::new(failure));
        }
        self.remote_done = true;
        self.wake();
    }
}

/// A connection's TLS session and the bytes it has not done with. Both buffers are empty, and
/// hold no memory, while the connection is idle.
struct State {
    tls: UnbufferedClientConnection,
    /// The TLS session failed or ended: it is not called again (after an error rustls may
    /// still offer to encrypt, and may still point into a buffer it was given).
    tls_over: bool,
    /// TLS bytes received and not taken by the session yet (the start of a record). Kept
    /// also once the connection died: the session expects its buffer back as it left it.
    incoming: Vec<u8>,
    /// TLS bytes the socket has not taken yet.
    outgoing: Vec<u8>,
    h2: H2,
}

impl std::ops::Deref for State {
    type Target = H2;

    fn deref(&self) -> &H2 {
        &self.h2
    }
}

impl std::ops::DerefMut for State {
    fn deref_mut(&mut self) -> &mut H2 {
        &mut self.h2
    }
}

/// The HTTP/2 side of a connection.
struct H2 {
    /// Frames not encrypted yet (encrypted as soon as the TLS session is free: after the
    /// records being read, or at once).
    plain_out: Vec<u8>,
    hpack: httlib_hpack::Decoder<'static>,
    /// The start of a frame whose rest has not arrived.
    inbox: Vec<u8>,
    /// A header block waiting for its CONTINUATION frames: stream, END_STREAM, fragments.
    header_block: Option<(u32, bool, Vec<u8>)>,
    streams: Vec<Stream>,
    next_id: u32,
    peer_max_frame: usize,
    peer_initial_window: i64,
    peer_max_streams: usize,
    send_window: i64,
    /// Data read (or discarded) since the connection's window was last opened again.
    recv_unacked: u32,
    /// What the apiserver may still send on the connection.
    recv_window: i64,
    /// The last stream id of a GOAWAY received.
    goaway: Option<u32>,
    /// Why the connection ended.
    dead: Option<String>,
    /// The handle is gone: close once the streams are done.
    released: bool,
    ping_sent: Option<Instant>,
    next_ping: Instant,
}

impl H2 {
    fn stream(&mut self, id: u32) -> Option<&mut Stream> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    fn remove(&mut self, id: u32) -> Option<Stream> {
        let at = self.streams.iter().position(|s| s.id == id)?;
        let stream = self.streams.swap_remove(at);
        if self.streams.is_empty() {
            self.streams = Vec::new();
        }
        Some(stream)
    }

    /// Why no new stream may be opened here, if so.
    fn closed_for_new(&self) -> Option<String> {
        if let Some(why) = &self.dead {
            return Some(why.clone());
        }
        if self.goaway.is_some() {
            return Some("the apiserver is closing the connection (GOAWAY)".into());
        }
        if self.released || self.next_id > i32::MAX as u32 {
            return Some("the connection is closing".into());
        }
        None
    }

    /// The queue frames to send are written into (encrypted and written by [`Conn::flush`]);
    /// none once the connection died: nothing more is sent.
    fn queue(&mut self) -> Option<&mut Vec<u8>> {
        if self.dead.is_some() {
            return None;
        }
        Some(&mut self.plain_out)
    }

    fn send_frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
        if let Some(out) = self.queue() {
            frame::put(out, kind, flags, stream, payload);
        }
    }

    /// Ends the connection: every stream not ended yet fails with `why`.
    fn die(&mut self, why: String) {
        if self.dead.is_some() {
            return;
        }
        for stream in &mut self.streams {
            if !stream.remote_done {
                stream.fail(Failure::new(why.clone(), false));
            }
        }
        self.header_block = None;
        self.inbox = Vec::new();
        self.dead = Some(why);
    }

    /// Ends the connection for a frame that breaks the protocol, telling the apiserver.
    fn protocol_error(&mut self, e: ProtocolError) {
        if let Some(out) = self.queue() {
            // a client processes no streams of the server's: the last stream id is 0
            frame::put_goaway(out, 0, e.code);
        }
        self.die(format!(
            "HTTP/2 protocol error ({}): {}",
            frame::reason(e.code),
            e.what
        ));
    }

    /// Gives the connection's window back once half of it has been read.
    fn reopen_connection_window(&mut self, read: usize) {
        self.recv_unacked = self
            .recv_unacked
            .saturating_add(u32::try_from(read).unwrap_or(u32::MAX));
        if self.recv_unacked >= CONNECTION_WINDOW / 2 {
            let increment = std::mem::take(&mut self.recv_unacked);
            self.recv_window += i64::from(increment);
            if let Some(out) = self.queue() {
                frame::put_u32(out, frame::WINDOW_UPDATE, 0, increment);
            }
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<(), ProtocolError> {
        if self.inbox.is_empty() {
            let used = self.on_frames(data)?;
            if used < data.len() {
                self.inbox = data[used..].to_vec();
            }
            return Ok(());
        }
        let mut inbox = std::mem::take(&mut self.inbox);
        inbox.extend_from_slice(data);
        let used = self.on_frames(&inbox)?;
        if used < inbox.len() && self.dead.is_none() {
            inbox.drain(..used);
            inbox.shrink_to(frame::MAX_FRAME + Head::SIZE);
            self.inbox = inbox;
        }
        Ok(())
    }

    /// Handles the whole frames at the start of `data`; how many bytes they took.
    fn on_frames(&mut self, data: &[u8]) -> Result<usize, ProtocolError> {
        let mut at = 0;
        while let Some(head) = Head::parse(&data[at..]) {
            if head.len > frame::MAX_FRAME {
                return Err(ProtocolError::new(0x6, "a frame larger than allowed"));
            }
            let end = at + Head::SIZE + head.len;
            let Some(payload) = data.get(at + Head::SIZE..end) else {
                break;
            };
            self.on_frame(head, payload)?;
            at = end;
            if self.dead.is_some() {
                break;
            }
        }
        Ok(at)
    }

    fn on_frame(&mut self, head: Head, payload: &[u8]) -> Result<(), ProtocolError> {
        if let Some((id, _, _)) = &self.header_block {
            if head.kind != frame::CONTINUATION || head.stream != *id {
                return Err(ProtocolError::new(
                    frame::PROTOCOL_ERROR,
                    "a header block not followed by its CONTINUATION",
                ));
            }
        }
        match head.kind {
            frame::DATA => self.on_data(head, payload),
            frame::HEADERS => {
                let fragment = frame::header_fragment(head.flags, payload)?;
                let end_stream = head.flags & frame::END_STREAM != 0;
                if head.flags & frame::END_HEADERS != 0 {
                    self.on_header_block(head.stream, end_stream, fragment)
                } else {
                    self.header_block = Some((head.stream, end_stream, fragment.to_vec()));
                    Ok(())
                }
            }
            frame::CONTINUATION => {
                let Some((id, end_stream, mut block)) = self.header_block.take() else {
                    return Err(ProtocolError::new(
                        frame::PROTOCOL_ERROR,
                        "a CONTINUATION without a header block",
                    ));
                };
                block.extend_from_slice(payload);
                if block.len() > MAX_HEADER_BLOCK {
                    return Err(ProtocolError::new(
                        frame::PROTOCOL_ERROR,
                        "a header block larger than 64 KiB",
                    ));
                }
                if head.flags & frame::END_HEADERS != 0 {
                    self.on_header_block(id, end_stream, &block)
                } else {
                    self.header_block = Some((id, end_stream, block));
                    Ok(())
                }
            }
            frame::RST_STREAM => {
                let code = frame::leading_u32(payload, false)?;
                if let Some(stream) = self.stream(head.stream) {
                    if stream.remote_done && code == frame::NO_ERROR {
                        // the response is whole; the apiserver only wants no more of the
                        // request's body (RFC 9113 §8.1)
                        stream.local_done = true;
                        return Ok(());
                    }
                    stream.fail(Failure::new(
                        format!("the apiserver reset the stream ({})", frame::reason(code)),
                        code == frame::REFUSED_STREAM,
                    ));
                }
                Ok(())
            }
            frame::SETTINGS => self.on_settings(head, payload),
            frame::PING => {
                if head.flags & frame::ACK != 0 {
                    self.ping_sent = None;
                    self.next_ping = Instant::now() + KEEPALIVE;
                } else {
                    self.send_frame(frame::PING, frame::ACK, 0, payload);
                }
                Ok(())
            }
            frame::GOAWAY => {
                let last = frame::leading_u32(payload, true)?;
                let code = frame::leading_u32(payload.get(4..).unwrap_or(&[]), false)
                    .unwrap_or(frame::NO_ERROR);
                self.goaway = Some(last);
                for stream in &mut self.streams {
                    if stream.id > last {
                        stream.fail(Failure::new(
                            format!(
                                "the apiserver closed the connection before taking the request \
                                 (GOAWAY, {})",
                                frame::reason(code)
                            ),
                            true,
                        ));
                    }
                }
                Ok(())
            }
            frame::WINDOW_UPDATE => {
                let increment = i64::from(frame::leading_u32(payload, true)?);
                if increment == 0 {
                    if head.stream == 0 {
                        return Err(ProtocolError::new(
                            frame::PROTOCOL_ERROR,
                            "a WINDOW_UPDATE of 0",
                        ));
                    }
                    self.reset(
                        head.stream,
                        frame::PROTOCOL_ERROR,
                        "the apiserver sent a WINDOW_UPDATE of 0",
                    );
                    return Ok(());
                }
                if head.stream == 0 {
                    self.send_window += increment;
                    if self.send_window > frame::MAX_WINDOW {
                        return Err(ProtocolError::new(
                            frame::FLOW_CONTROL_ERROR,
                            "the connection's window overflowed",
                        ));
                    }
                } else if let Some(stream) = self.stream(head.stream) {
                    stream.send_window += increment;
                    if stream.send_window > frame::MAX_WINDOW {
                        self.reset(
                            head.stream,
                            frame::FLOW_CONTROL_ERROR,
                            "the stream's window overflowed",
                        );
                    }
                }
                Ok(())
            }
            frame::PUSH_PROMISE => Err(ProtocolError::new(
                frame::PROTOCOL_ERROR,
                "a PUSH_PROMISE though push is disabled",
            )),
            // PRIORITY, and frame types this client does not know, are ignored
            _ => Ok(()),
        }
    }

    fn on_data(&mut self, head: Head, payload: &[u8]) -> Result<(), ProtocolError> {
        if head.stream == 0 {
            return Err(ProtocolError::new(
                frame::PROTOCOL_ERROR,
                "a DATA frame on stream 0",
            ));
        }
        // the whole frame, padding included, counts against the connection's window
        self.recv_window -= payload.len() as i64;
        if self.recv_window < 0 {
            return Err(ProtocolError::new(
                frame::FLOW_CONTROL_ERROR,
                "the apiserver sent more than the connection's window",
            ));
        }
        let data = frame::unpad(head.flags, payload)?;
        let end_stream = head.flags & frame::END_STREAM != 0;
        let padding = payload.len() - data.len();
        // padding is given back at once, as is data for a stream this side has closed
        let mut discarded = padding;
        let mut refused = None;
        match self.stream(head.stream) {
            Some(stream) if !stream.remote_done => {
                stream.buffered += data.len();
                stream.unacked = stream.unacked.saturating_add(padding as u32);
                if !stream.got_head {
                    refused = Some((frame::PROTOCOL_ERROR, "data before a response head"));
                } else if stream.buffered + stream.unacked as usize > STREAM_WINDOW as usize {
                    refused = Some((
                        frame::FLOW_CONTROL_ERROR,
                        "the apiserver sent more than the stream's window",
                    ));
                } else {
                    if !data.is_empty() {
                        stream.chunks.push_back(Bytes::copy_from_slice(data));
                    }
                    stream.remote_done = end_stream;
                    stream.wake();
                }
            }
            _ => discarded += data.len(),
        }
        if let Some((code, why)) = refused {
            discarded += data.len();
            self.reset(head.stream, code, why);
        }
        if discarded > 0 {
            self.reopen_connection_window(discarded);
        }
        Ok(())
    }

    /// Fails a stream and tells the apiserver (RST_STREAM with `code`).
    fn reset(&mut self, id: u32, code: u32, why: &str) {
        if let Some(stream) = self.stream(id) {
            stream.fail(Failure::new(why, false));
            if let Some(out) = self.queue() {
                frame::put_u32(out, frame::RST_STREAM, id, code);
            }
        }
    }

    fn on_header_block(
        &mut self,
        id: u32,
        end_stream: bool,
        block: &[u8],
    ) -> Result<(), ProtocolError> {
        // decoded even for a stream already closed: the decoder's table must follow the
        // apiserver's encoder
        let mut buf = block.to_vec();
        let mut fields = Vec::with_capacity(MAX_HEADER_FIELDS);
        let hpack = &mut self.hpack;
        // the decoder panics on some truncated input: that is an error like the others
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            hpack.decode_exact(&mut buf, &mut fields)
        }));
        match decoded {
            Ok(Ok(_)) if buf.is_empty() => {}
            Ok(Ok(_)) => {
                return Err(ProtocolError::new(
                    frame::COMPRESSION_ERROR,
                    "a header block of more than 128 fields",
                ))
            }
            Ok(Err(e)) => {
                return Err(ProtocolError::new(
                    frame::COMPRESSION_ERROR,
                    format!("a header block that does not decode ({e:?})"),
                ))
            }
            Err(_) => {
                return Err(ProtocolError::new(
                    frame::COMPRESSION_ERROR,
                    "a header block that does not decode",
                ))
            }
        }
        let Some(stream) = self.stream(id) else {
            return Ok(());
        };
        if stream.remote_done {
            return Ok(());
        }
        if !stream.got_head {
            match frame::response_head(&fields) {
                Ok(Some(parts)) => {
                    stream.head = Some(Box::new(parts));
                    stream.got_head = true;
                }
                Ok(None) => {}
                Err(e) => {
                    stream.fail(Failure::new(e, false));
                    if let Some(out) = self.queue() {
                        frame::put_u32(out, frame::RST_STREAM, id, frame::PROTOCOL_ERROR);
                    }
                    return Ok(());
                }
            }
        }
        // a later block is trailers, which nothing here reads
        if end_stream {
            stream.remote_done = true;
            if !stream.got_head {
                stream.fail(Failure::new("a stream ended without a response", false));
            }
        }
        stream.wake();
        Ok(())
    }

    fn on_settings(&mut self, head: Head, payload: &[u8]) -> Result<(), ProtocolError> {
        if head.flags & frame::ACK != 0 {
            return Ok(());
        }
        for (id, value) in frame::settings(payload)? {
            match id {
                frame::SETTINGS_MAX_CONCURRENT_STREAMS => {
                    self.peer_max_streams = usize::try_from(value).unwrap_or(usize::MAX);
                }
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    let value = i64::from(value);
                    if value > frame::MAX_WINDOW {
                        return Err(ProtocolError::new(
                            frame::FLOW_CONTROL_ERROR,
                            "an initial window above the maximum",
                        ));
                    }
                    let delta = value - self.peer_initial_window;
                    self.peer_initial_window = value;
                    for stream in &mut self.streams {
                        stream.send_window += delta;
                    }
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(16_384..=16_777_215).contains(&value) {
                        return Err(ProtocolError::new(
                            frame::PROTOCOL_ERROR,
                            "a maximum frame size out of range",
                        ));
                    }
                    self.peer_max_frame = value as usize;
                }
                _ => {}
            }
        }
        self.send_frame(frame::SETTINGS, frame::ACK, 0, &[]);
        Ok(())
    }
}

/// Appends what `write` puts into a buffer to `out`, growing it to the size `needs` asks for.
fn write_into<E: std::fmt::Display>(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, E>,
    needs: impl Fn(&E) -> Option<usize>,
) -> Result<(), String> {
    let start = out.len();
    let mut room = 0;
    loop {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(e) => match needs(&e) {
                Some(size) if size > room => room = size,
                _ => {
                    out.truncate(start);
                    return Err(format!("TLS: {e}"));
                }
            },
        }
    }
}

fn encode_needs(e: &EncodeError) -> Option<usize> {
    match e {
        EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

fn encrypt_needs(e: &EncryptError) -> Option<usize> {
    match e {
        EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
            Some(*required_size)
        }
        _ => None,
    }
}

impl State {
    /// Runs the TLS session over `data` (received bytes, or the start of a record kept):
    /// handshake messages it answers are queued in `outgoing`, records it decrypts have their
    /// frames handled, and, when `send`, the frames queued are encrypted as soon as the session
    /// may send. Returns how many bytes of `data` it is done with; the rest is the start of a
    /// record. A session that fails ends the connection and is not called again.
    fn run_tls(&mut self, data: &mut [u8], send: bool) -> usize {
        let mut used = 0;
        while !self.tls_over {
            let State {
                tls, outgoing, h2, ..
            } = self;
            let status = tls.process_tls_records(&mut data[used..]);
            let discard = status.discard;
            let mut waits = false;
            let failed = match status.state {
                Ok(ConnectionState::ReadTraffic(mut records)) => {
                    let mut failed = None;
                    while let Some(record) = records.next_record() {
                        match record {
                            Ok(record) => {
                                if let Err(e) = h2.on_bytes(record.payload) {
                                    h2.protocol_error(e);
                                }
                            }
                            Err(e) => failed = Some(format!("TLS: {e}")),
                        }
                        if failed.is_some() || h2.dead.is_some() {
                            break;
                        }
                    }
                    failed
                }
                Ok(ConnectionState::EncodeTlsData(mut message)) => {
                    write_into(outgoing, |b| message.encode(b), encode_needs).err()
                }
                // queued in `outgoing`, written in order before anything later
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    sent.done();
                    None
                }
                Ok(ConnectionState::WriteTraffic(mut writer))
                    if send && !h2.plain_out.is_empty() =>
                {
                    let plain = std::mem::take(&mut h2.plain_out);
                    write_into(outgoing, |b| writer.encrypt(&plain, b), encrypt_needs).err()
                }
                Ok(ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake) => {
                    waits = true;
                    None
                }
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    Some("the apiserver closed the connection".into())
                }
                Ok(other) => Some(format!("TLS: unexpected state {other:?}")),
                Err(e) => Some(format!("TLS: {e}")),
            };
            used += discard;
            if let Some(why) = failed {
                self.tls_over = true;
                self.h2.die(why);
            }
            // a connection that died while sending still encrypts what it queued last (the
            // GOAWAY saying why)
            if waits || (!send && self.h2.dead.is_some()) {
                break;
            }
        }
        if self.tls_over {
            // nothing is sent after the session failed: not the frames queued meanwhile
            self.h2.plain_out = Vec::new();
        }
        used
    }

    /// Encrypts the frames queued into `outgoing`.
    fn seal(&mut self) {
        if self.h2.plain_out.is_empty() && !self.tls_over {
            return;
        }
        // the start of a record kept is passed again, as the session expects its buffer back
        // as it left it (it does not complete a record: nothing is taken from it)
        let mut incoming = std::mem::take(&mut self.incoming);
        let used = self.run_tls(&mut incoming, true);
        incoming.drain(..used);
        if !incoming.is_empty() {
            self.incoming = incoming;
        }
    }

    /// Queues a close_notify alert.
    fn close_notify(&mut self) {
        if self.tls_over {
            return;
        }
        let State {
            tls,
            incoming,
            outgoing,
            ..
        } = self;
        let status = tls.process_tls_records(incoming);
        let discard = status.discard;
        if let Ok(ConnectionState::WriteTraffic(mut writer)) = status.state {
            let _ = write_into(outgoing, |b| writer.queue_close_notify(b), encrypt_needs);
        }
        incoming.drain(..discard);
    }

    /// Takes bytes read from the socket: after the start of a record kept from before, if any;
    /// keeps what is left of a record cut at the end.
    fn on_received(&mut self, data: &mut [u8]) {
        if self.incoming.is_empty() {
            let used = self.run_tls(data, false);
            if used < data.len() {
                self.incoming = data[used..].to_vec();
            }
            return;
        }
        let mut incoming = std::mem::take(&mut self.incoming);
        incoming.extend_from_slice(data);
        let used = self.run_tls(&mut incoming, false);
        if used < incoming.len() {
            incoming.drain(..used);
            self.incoming = incoming;
        }
    }

    /// Whether anything waits to be written.
    fn wants_write(&self) -> bool {
        !self.outgoing.is_empty() || !self.h2.plain_out.is_empty()
    }
}

/// An open connection, shared by its requests, their bodies and its driver task.
pub struct Conn {
    tcp: TcpStream,
    state: Mutex<State>,
    /// Wakes the driver: something is left to write, a stream ended, the handle was released.
    driver: Notify,
    /// Wakes requests waiting for a stream slot or for window to send their body.
    room: Notify,
}

impl Conn {
    /// Starts HTTP/2 on a connection whose TLS handshake is done (and agreed on h2), and the
    /// task that drives it. `received` is what arrived after the handshake's last message.
    pub fn start(
        tcp: TcpStream,
        tls: UnbufferedClientConnection,
        mut received: Vec<u8>,
    ) -> Arc<Self> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(frame::PREFACE);
        frame::put_settings(
            &mut out,
            &[
                (frame::SETTINGS_ENABLE_PUSH, 0),
                // the apiserver adds nothing to a table this side would have to keep
                (frame::SETTINGS_HEADER_TABLE_SIZE, 0),
                (frame::SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW),
            ],
        );
        frame::put_u32(
            &mut out,
            frame::WINDOW_UPDATE,
            0,
            CONNECTION_WINDOW - frame::DEFAULT_WINDOW,
        );
        let h2 = H2 {
            // the preface, settings and window opening go first
            plain_out: out,
            hpack: httlib_hpack::Decoder::with_dynamic_size(0),
            inbox: Vec::new(),
            header_block: None,
            streams: Vec::new(),
            next_id: 1,
            peer_max_frame: frame::MAX_FRAME,
            peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
            peer_max_streams: FIRST_STREAM_LIMIT,
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_unacked: 0,
            recv_window: i64::from(CONNECTION_WINDOW),
            goaway: None,
            dead: None,
            released: false,
            ping_sent: None,
            next_ping: Instant::now() + KEEPALIVE,
        };
        let mut state = State {
            tls,
            tls_over: false,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            h2,
        };
        // records that came with the handshake's last flight (the apiserver's SETTINGS) are
        // read already: no socket readiness will announce them
        if !received.is_empty() {
            state.on_received(&mut received);
        }
        let conn = Arc::new(Self {
            tcp,
            state: Mutex::new(state),
            driver: Notify::new(),
            room: Notify::new(),
        });
        conn.flush(&mut conn.lock());
        tokio::spawn(drive(conn.clone()));
        conn
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // a panic elsewhere while holding the lock leaves a state that is still consistent
        // enough to fail the streams: take it
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Encrypts the frames queued and writes them, as far as the socket takes them now; the
    /// driver writes the rest when the socket can take it.
    fn flush(&self, state: &mut State) {
        // also when the connection just died: a GOAWAY saying why goes out if it can
        state.seal();
        while !state.outgoing.is_empty() {
            match self.tcp.try_write(&state.outgoing) {
                Ok(n) if n == state.outgoing.len() => state.outgoing = Vec::new(),
                Ok(n) => {
                    state.outgoing.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.driver.notify_one();
                    break;
                }
                Err(e) => {
                    state.die(format!("writing to the connection: {e}"));
                    state.outgoing = Vec::new();
                    break;
                }
            }
        }
        if state.dead.is_some() {
            // whatever ended it (here, or while encoding frames): waiting requests and the
            // driver learn it now
            self.room.notify_waiters();
            self.driver.notify_one();
        }
    }

    /// Whether new requests may use this connection.
    pub fn usable(&self) -> bool {
        self.lock().closed_for_new().is_none()
    }

    /// The handle is gone: the connection closes once its streams are done.
    pub fn release(&self) {
        self.lock().released = true;
        self.driver.notify_one();
        self.room.notify_waiters();
    }

    /// Sends a request and waits for its response head.
    pub async fn request(
        self: &Arc<Self>,
        method: &http::Method,
        authority: &str,
        path: &str,
        headers: &http::HeaderMap,
        body: Bytes,
    ) -> Result<http::Response<Body>, Failure> {
        let block = frame::request_block(method, authority, path, headers);
        let end = body.is_empty();
        let id = loop {
            let room = self.room.notified();
            {
                let mut state = self.lock();
                if let Some(why) = state.closed_for_new() {
                    return Err(Failure::new(why, true));
                }
                if state.streams.len() < state.peer_max_streams {
                    let id = state.next_id;
                    state.next_id += 2;
                    let max_frame = state.peer_max_frame;
                    if let Some(out) = state.queue() {
                        frame::put_header_block(out, id, &block, end, max_frame);
                    }
                    let send_window = state.peer_initial_window;
                    // grown one at a time: a tool's handful of watches do not reserve room
                    // for twice as many
                    state.streams.reserve_exact(1);
                    state.streams.push(Stream {
                        id,
                        head: None,
                        got_head: false,
                        chunks: VecDeque::new(),
                        buffered: 0,
                        remote_done: false,
                        local_done: end,
                        failed: None,
                        waker: None,
                        send_window,
                        unacked: 0,
                    });
                    self.flush(&mut state);
                    break id;
                }
            }
            room.await;
        };
        // from here, dropping the request (a timeout) resets its stream
        let mut response = Body {
            conn: self.clone(),
            id,
            done: false,
        };
        let mut sent = 0;
        while sent < body.len() {
            let room = self.room.notified();
            {
                let mut state = self.lock();
                let max_frame = state.peer_max_frame as i64;
                let connection_window = state.send_window;
                let Some(stream) = state.stream(id) else {
                    return Err(Failure::new("the stream was closed", false));
                };
                if stream.remote_done && stream.got_head {
                    // answered before the whole body was sent: the answer is read below
                    break;
                }
                if let Some(failure) = &stream.failed {
                    return Err((**failure).clone());
                }
                let room_now = connection_window.min(stream.send_window).min(max_frame);
                if room_now > 0 {
                    let n = usize::try_from(room_now)
                        .unwrap_or(usize::MAX)
                        .min(body.len() - sent);
                    let last = sent + n == body.len();
                    stream.send_window -= n as i64;
                    stream.local_done = last;
                    state.send_window -= n as i64;
                    state.send_frame(
                        frame::DATA,
                        if last { frame::END_STREAM } else { 0 },
                        id,
                        &body[sent..sent + n],
                    );
                    self.flush(&mut state);
                    sent += n;
                    continue;
                }
            }
            room.await;
        }
        let head = std::future::poll_fn(|cx| response.poll_head(cx)).await?;
        Ok(http::Response::from_parts(*head, response))
    }

    /// Closes a stream its request no longer reads: resets it if it is not over, gives the
    /// window of what it held back.
    fn close_stream(&self, id: u32) {
        let mut state = self.lock();
        if let Some(stream) = state.remove(id) {
            if !(stream.remote_done && stream.local_done) {
                if let Some(out) = state.queue() {
                    frame::put_u32(out, frame::RST_STREAM, id, frame::CANCEL);
                }
            }
            if stream.buffered > 0 {
                state.reopen_connection_window(stream.buffered);
            }
            self.flush(&mut state);
        }
        drop(state);
        self.room.notify_waiters();
        self.driver.notify_one();
    }

    /// Reads what arrived on the socket.
    fn on_readable(&self) {
        // on this thread's stack: nothing of a read is kept but the start of a record
        let mut buf = [0u8; 32 << 10];
        let mut state = self.lock();
        while state.dead.is_none() {
            match self.tcp.try_read(&mut buf) {
                Ok(0) => state.die("the apiserver closed the connection".into()),
                Ok(n) => state.on_received(&mut buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => state.die(format!("reading the connection: {e}")),
            }
        }
        // acknowledgements and window updates the frames asked for
        self.flush(&mut state);
        drop(state);
        self.room.notify_waiters();
    }

    /// A keepalive tick: pings, or ends a connection whose ping went unanswered. When the next
    /// tick is due.
    fn on_tick(&self) -> Instant {
        let now = Instant::now();
        let mut state = self.lock();
        match state.ping_sent {
            Some(sent) if now >= sent + KEEPALIVE_TIMEOUT => {
                tracing::debug!("an apiserver connection did not answer a ping; closing it");
                state.die("the apiserver did not answer a ping".into());
                drop(state);
                self.room.notify_waiters();
                now + KEEPALIVE
            }
            Some(sent) => sent + KEEPALIVE_TIMEOUT,
            None if now >= state.next_ping => {
                state.send_frame(frame::PING, 0, 0, &[0; 8]);
                state.ping_sent = Some(now);
                self.flush(&mut state);
                now + KEEPALIVE_TIMEOUT
            }
            None => state.next_ping,
        }
    }
}

/// The TLS handshake on `tcp`, with rustls's unbuffered API (no buffers kept by the session
/// afterwards). What arrived after the handshake's last message, for [`Conn::start`].
pub async fn handshake(
    tcp: &TcpStream,
    tls: &mut UnbufferedClientConnection,
) -> Result<Vec<u8>, String> {
    let mut incoming = Vec::new();
    let mut outgoing = Vec::new();
    loop {
        let status = tls.process_tls_records(&mut incoming);
        let discard = status.discard;
        let mut read_more = false;
        match status.state.map_err(|e| format!("TLS: {e}"))? {
            ConnectionState::EncodeTlsData(mut message) => {
                write_into(&mut outgoing, |b| message.encode(b), encode_needs)?;
            }
            ConnectionState::TransmitTlsData(sent) => {
                write_all(tcp, &outgoing).await?;
                outgoing.clear();
                sent.done();
            }
            ConnectionState::BlockedHandshake => read_more = true,
            // done (records already here are the connection's first)
            ConnectionState::WriteTraffic(_) | ConnectionState::ReadTraffic(_) => {
                incoming.drain(..discard);
                return Ok(incoming);
            }
            other => return Err(format!("TLS: the handshake ended in state {other:?}")),
        }
        incoming.drain(..discard);
        if read_more {
            tcp.readable().await.map_err(|e| e.to_string())?;
            incoming.reserve(16 << 10);
            match tcp.try_read_buf(&mut incoming) {
                Ok(0) => return Err("the apiserver closed the connection in the handshake".into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    }
}

async fn write_all(tcp: &TcpStream, mut data: &[u8]) -> Result<(), String> {
    while !data.is_empty() {
        tcp.writable().await.map_err(|e| e.to_string())?;
        match tcp.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// Drives a connection: reads it, writes what the socket did not take at once, pings it; ends
/// when it died, or when its handle is gone and its streams are done (saying GOAWAY).
async fn drive(conn: Arc<Conn>) {
    let tick = tokio::time::sleep(KEEPALIVE);
    tokio::pin!(tick);
    loop {
        let want_write = {
            let mut state = conn.lock();
            if state.dead.is_some() {
                break;
            }
            if state.released && state.streams.is_empty() {
                if let Some(out) = state.queue() {
                    frame::put_goaway(out, 0, frame::NO_ERROR);
                }
                state.seal();
                state.close_notify();
                conn.flush(&mut state);
                state.dead = Some("the connection is closed".into());
                break;
            }
            state.wants_write()
        };
        tokio::select! {
            ready = conn.tcp.readable() => match ready {
                Ok(()) => conn.on_readable(),
                Err(e) => conn.lock().die(format!("reading the connection: {e}")),
            },
            ready = conn.tcp.writable(), if want_write => match ready {
                Ok(()) => {
                    let mut state = conn.lock();
                    conn.flush(&mut state);
                }
                Err(e) => conn.lock().die(format!("writing to the connection: {e}")),
            },
            () = conn.driver.notified() => {}
            () = &mut tick => {
                let next = conn.on_tick();
                tick.as_mut().reset(tokio::time::Instant::from_std(next));
            }
        }
    }
    conn.room.notify_waiters();
}

/// A response body, read from its stream as data arrives; the stream's window reopens as it
/// is read, not before. Dropping it before its end resets the stream.
pub struct Body {
    conn: Arc<Conn>,
    id: u32,
    done: bool,
}

impl Body {
    fn poll_head(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Box<http::response::Parts>, Failure>> {
        let mut state = self.conn.lock();
        let Some(stream) = state.stream(self.id) else {
            return Poll::Ready(Err(Failure::new("the stream was closed", false)));
        };
        if let Some(head) = stream.head.take() {
            return Poll::Ready(Ok(head));
        }
        if let Some(failure) = &stream.failed {
            return Poll::Ready(Err((**failure).clone()));
        }
        stream.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        // the fields apart: the state is borrowed from `conn` while `done` changes
        let Body { conn, id, done } = &mut *self;
        let id = *id;
        let mut state = conn.lock();
        let Some(stream) = state.stream(id) else {
            *done = true;
            return Poll::Ready(Some(Err("the stream was closed".into())));
        };
        if let Some(data) = stream.chunks.pop_front() {
            let n = data.len();
            stream.buffered -= n;
            if !stream.remote_done {
                stream.unacked = stream.unacked.saturating_add(n as u32);
            }
            let update =
                (stream.unacked >= STREAM_WINDOW / 2).then(|| std::mem::take(&mut stream.unacked));
            if stream.chunks.is_empty() {
                stream.chunks = VecDeque::new();
            }
            if let (Some(increment), Some(out)) = (update, state.queue()) {
                frame::put_u32(out, frame::WINDOW_UPDATE, id, increment);
            }
            state.reopen_connection_window(n);
            conn.flush(&mut state);
            return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        // ended: with its failure, or whole
        if stream.failed.is_some() || stream.remote_done {
            let failure = stream.failed.clone();
            drop(state);
            *done = true;
            conn.close_stream(id);
            return Poll::Ready(failure.map(|f| Err::<_, Error>(f)));
        }
        stream.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_stream(self.id);
        }
    }
}
