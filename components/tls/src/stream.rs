//! One TLS connection over a TCP stream: rustls's unbuffered state machine driven with
//! buffers the connection owns.
//!
//! Buffers (per connection; see the crate docs for the totals):
//! - `incoming`: ciphertext read from TCP and not yet processed. Starts at
//!   [`INITIAL_INCOMING`] and doubles when a record does not fit, up to
//!   [`MAX_INCOMING`] (the largest record TLS allows); a client sending more than that
//!   in one record gets an alert.
//! - `outgoing`: ciphertext waiting to be written: one handshake flight or one record
//!   (at most [`MAX_RECORD_PLAINTEXT`] bytes of data plus 22 of overhead).
//! - `plain`: decrypted bytes the reader has not taken yet (at most one record).
//! - `stage`: small writes gathered into one record (at most [`COALESCE_LIMIT`] bytes).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use alloc::sync::Arc;
use morgana_rt::{TimedOut, timeout};
use morgana_signatures::{Instant, TcpStream, Timer};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, InsufficientSizeError};

use crate::Error;

/// The incoming buffer's first size: a ClientHello and a request head fit.
pub const INITIAL_INCOMING: usize = 4 * 1024;

/// The largest incoming buffer: one record of 2^14 + 2048 bytes of ciphertext (the most
/// RFC 5246 allows) and its 5-byte header.
pub const MAX_INCOMING: usize = 16 * 1024 + 2048 + 5;

/// The most application data put into one record.
pub const MAX_RECORD_PLAINTEXT: usize = 16 * 1024;

/// The largest outgoing buffer: a handshake flight with a long chain, or one full record.
pub const MAX_OUTGOING: usize = 64 * 1024;

/// Writes of at most this many bytes in all (an HTTP head and a small body) are gathered
/// into one record.
pub const COALESCE_LIMIT: usize = 4 * 1024;

/// The seconds of the component's clock, shared with rustls's time provider.
pub(crate) type Seconds = Arc<AtomicU64>;

/// Where the connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Handshaking,
    Open,
    /// The peer sent close_notify (or closed TCP after the handshake): reads return 0.
    PeerClosed,
    /// An error ended the connection; everything fails.
    Failed,
}

/// What a call of [`Engine::pump`] is after.
enum Goal<'d> {
    /// Decrypted data in `plain` (or the end of the peer's data).
    Read,
    /// Encrypt these bytes as application data into `outgoing`.
    Write(&'d [u8]),
    /// Queue close_notify into `outgoing`.
    Close,
}

enum Reached {
    /// `Goal::Read`: data in `plain`.
    Data,
    /// `Goal::Read`: the peer will send no more.
    End,
    /// `Goal::Write`/`Goal::Close`: done, ciphertext is in `outgoing`.
    Queued,
}

/// Everything but the clock, so that a timeout can borrow the clock while the engine
/// runs.
struct Engine<S> {
    tcp: S,
    conn: Box<UnbufferedServerConnection>,
    incoming: Vec<u8>,
    in_len: usize,
    outgoing: Vec<u8>,
    out_len: usize,
    plain: Vec<u8>,
    plain_pos: usize,
    stage: Vec<u8>,
    phase: Phase,
    /// TCP reported end of stream.
    tcp_eof: bool,
    seconds: Seconds,
}

/// A TLS connection: implements [`TcpStream`], so any protocol written against the TCP
/// signature runs over it unchanged. The handshake runs on the first read or write,
/// within the handshake timeout counted from the accept.
pub struct TlsStream<S, C> {
    engine: Engine<S>,
    clock: C,
    handshake_deadline: Instant,
}

impl<S: TcpStream, C: Timer> TlsStream<S, C> {
    pub(crate) fn new(
        tcp: S,
        conn: UnbufferedServerConnection,
        clock: C,
        handshake_timeout: Duration,
        seconds: Seconds,
    ) -> Self {
        let handshake_deadline = clock.now().saturating_add(handshake_timeout);
        TlsStream {
            engine: Engine {
                tcp,
                conn: Box::new(conn),
                incoming: Vec::new(),
                in_len: 0,
                outgoing: Vec::new(),
                out_len: 0,
                plain: Vec::new(),
                plain_pos: 0,
                stage: Vec::new(),
                phase: Phase::Handshaking,
                tcp_eof: false,
                seconds,
            },
            clock,
            handshake_deadline,
        }
    }

    /// The negotiated protocol version, once the handshake is done.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.engine.conn.protocol_version()
    }

    /// The negotiated ALPN protocol, if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.engine.conn.alpn_protocol()
    }

    /// Whether the handshake has completed.
    pub fn is_handshake_done(&self) -> bool {
        self.engine.phase != Phase::Handshaking && self.engine.phase != Phase::Failed
    }

    /// Bytes of buffers this connection holds right now (for the memory tests).
    pub fn buffered_capacity(&self) -> usize {
        let e = &self.engine;
        e.incoming.capacity() + e.outgoing.capacity() + e.plain.capacity() + e.stage.capacity()
    }

    /// Runs `goal` within the handshake deadline while the handshake is not done.
    async fn pump(&mut self, goal: Goal<'_>) -> Result<Reached, Error<S::Error>> {
        self.engine.seconds.store(
            self.clock.now().as_nanos() / 1_000_000_000,
            Ordering::Relaxed,
        );
        if self.engine.phase == Phase::Handshaking {
            match timeout(&self.clock, self.handshake_deadline, self.engine.pump(goal)).await {
                Ok(r) => r,
                Err(TimedOut) => {
                    self.engine.phase = Phase::Failed;
                    Err(Error::HandshakeTimeout)
                }
            }
        } else {
            self.engine.pump(goal).await
        }
    }

    /// Encrypts `data` (at most one record) and sends it.
    async fn send_record(&mut self, data: &[u8]) -> Result<(), Error<S::Error>> {
        self.pump(Goal::Write(data)).await?;
        self.engine.flush().await
    }
}

impl<S: TcpStream> Engine<S> {
    /// Drives the state machine until `goal` is reached, reading from and writing to TCP
    /// as it asks.
    async fn pump(&mut self, goal: Goal<'_>) -> Result<Reached, Error<S::Error>> {
        if self.phase == Phase::Failed {
            return Err(Error::Failed);
        }
        if matches!(goal, Goal::Read) && self.phase == Phase::PeerClosed {
            return Ok(Reached::End);
        }
        loop {
            let (discard, next) = self.step(&goal);
            self.discard(discard);
            match next {
                Step::Again => {}
                Step::Reached(r) => return Ok(r),
                Step::Transmit => self.flush().await?,
                Step::NeedInput => {
                    // Send what is queued before waiting for the peer's answer.
                    self.flush().await?;
                    if self.read_tcp().await? == 0 {
                        self.tcp_eof = true;
                        if self.phase == Phase::Handshaking {
                            self.phase = Phase::Failed;
                            return Err(Error::ClosedInHandshake);
                        }
                        // Closed without close_notify: a truncation an HTTP server can
                        // tell by its own framing; report the end of data.
                        self.phase = Phase::PeerClosed;
                        return match goal {
                            Goal::Read => Ok(Reached::End),
                            _ => Err(Error::Closed),
                        };
                    }
                }
                Step::Fail(e) => {
                    self.send_alert().await;
                    self.phase = Phase::Failed;
                    let e = Error::Tls(e);
                    log::debug!("{e}");
                    return Err(e);
                }
            }
        }
    }

    /// One call of rustls's state machine; returns how much input to discard and what
    /// to do next.
    fn step(&mut self, goal: &Goal<'_>) -> (usize, Step) {
        let status = self
            .conn
            .process_tls_records(&mut self.incoming[..self.in_len]);
        let discard = status.discard;
        let state = match status.state {
            Ok(state) => state,
            Err(e) => return (discard, Step::Fail(e)),
        };
        let step = match state {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    match record {
                        Ok(record) => self.plain.extend_from_slice(record.payload),
                        Err(e) => return (discard, Step::Fail(e)),
                    }
                }
                if matches!(goal, Goal::Read) && self.plain.len() > self.plain_pos {
                    Step::Reached(Reached::Data)
                } else {
                    Step::Again
                }
            }
            ConnectionState::PeerClosed | ConnectionState::Closed => {
                self.phase = Phase::PeerClosed;
                match goal {
                    Goal::Read => Step::Reached(Reached::End),
                    // A peer that sent close_notify may still read (TLS 1.3 allows a
                    // half-close): rustls yields WriteTraffic next.
                    Goal::Write(_) => Step::Again,
                    Goal::Close => Step::Reached(Reached::Queued),
                }
            }
            ConnectionState::EncodeTlsData(mut data) => {
                match encode(&mut data, &mut self.outgoing, self.out_len) {
                    Ok(n) => {
                        self.out_len += n;
                        Step::Again
                    }
                    Err(e) => Step::Fail(e),
                }
            }
            ConnectionState::TransmitTlsData(data) => {
                data.done();
                Step::Transmit
            }
            ConnectionState::BlockedHandshake => Step::NeedInput,
            ConnectionState::WriteTraffic(mut traffic) => {
                if self.phase == Phase::Handshaking {
                    self.phase = Phase::Open;
                }
                match goal {
                    Goal::Read => Step::NeedInput,
                    Goal::Write(bytes) => {
                        match encrypt(&mut self.outgoing, self.out_len, |out| {
                            traffic.encrypt(bytes, out)
                        }) {
                            Ok(n) => {
                                self.out_len += n;
                                Step::Reached(Reached::Queued)
                            }
                            Err(e) => Step::Fail(e),
                        }
                    }
                    Goal::Close => {
                        match encrypt(&mut self.outgoing, self.out_len, |out| {
                            traffic.queue_close_notify(out)
                        }) {
                            Ok(n) => {
                                self.out_len += n;
                                Step::Reached(Reached::Queued)
                            }
                            Err(e) => Step::Fail(e),
                        }
                    }
                }
            }
            // Early data is never accepted (`max_early_data_size` is 0), and rustls may
            // grow states: neither can be handled here.
            _ => Step::Fail(rustls::Error::General("unexpected TLS state".into())),
        };
        (discard, step)
    }

    /// Drops `n` processed bytes from the front of `incoming`.
    fn discard(&mut self, n: usize) {
        let n = n.min(self.in_len);
        if n > 0 {
            self.incoming.copy_within(n..self.in_len, 0);
            self.in_len -= n;
        }
    }

    /// Reads from TCP into `incoming`, growing it (up to [`MAX_INCOMING`]) when full.
    async fn read_tcp(&mut self) -> Result<usize, Error<S::Error>> {
        if self.tcp_eof {
            return Ok(0);
        }
        if self.in_len == self.incoming.len() {
            let size = match self.incoming.len() {
                0 => INITIAL_INCOMING,
                n if n >= MAX_INCOMING => {
                    // rustls wants more than the largest legal record: not a TLS peer.
                    return Err(self.fail_with(rustls::Error::PeerSentOversizedRecord).await);
                }
                n => (n * 2).min(MAX_INCOMING),
            };
            self.incoming.resize(size, 0);
        }
        let n = self
            .tcp
            .read(&mut self.incoming[self.in_len..])
            .await
            .map_err(|e| {
                self.phase = Phase::Failed;
                Error::Tcp(e)
            })?;
        let n = n.min(self.incoming.len() - self.in_len);
        self.in_len += n;
        Ok(n)
    }

    async fn fail_with(&mut self, e: rustls::Error) -> Error<S::Error> {
        self.send_alert().await;
        self.phase = Phase::Failed;
        Error::Tls(e)
    }

    /// After an error, sends the alert rustls queued (if any), best effort.
    async fn send_alert(&mut self) {
        for _ in 0..4 {
            let status = self.conn.process_tls_records(&mut []);
            match status.state {
                Ok(ConnectionState::EncodeTlsData(mut data)) => {
                    match encode(&mut data, &mut self.outgoing, self.out_len) {
                        Ok(n) => self.out_len += n,
                        Err(_) => break,
                    }
                }
                Ok(ConnectionState::TransmitTlsData(data)) => data.done(),
                _ => break,
            }
        }
        let _ = self.flush().await;
    }

    /// Writes `outgoing` to TCP.
    async fn flush(&mut self) -> Result<(), Error<S::Error>> {
        if self.out_len == 0 {
            return Ok(());
        }
        let sent = self.tcp.write_all(&self.outgoing[..self.out_len]).await;
        self.out_len = 0;
        sent.map_err(|e| {
            self.phase = Phase::Failed;
            Error::Tcp(e)
        })
    }

    /// Takes up to `buf.len()` decrypted bytes.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let available = &self.plain[self.plain_pos..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.plain_pos += n;
        if self.plain_pos == self.plain.len() {
            self.plain.clear();
            self.plain_pos = 0;
        }
        n
    }
}

enum Step {
    Again,
    Reached(Reached),
    Transmit,
    NeedInput,
    Fail(rustls::Error),
}

/// Grows `out` so that `needed` more bytes fit after `used`, within [`MAX_OUTGOING`].
fn make_room(out: &mut Vec<u8>, used: usize, needed: usize) -> Result<(), rustls::Error> {
    let size = used
        .checked_add(needed)
        .filter(|&s| s <= MAX_OUTGOING)
        .ok_or_else(|| rustls::Error::General("outgoing TLS data exceeds the buffer".into()))?;
    if out.len() < size {
        out.resize(size, 0);
    }
    Ok(())
}

fn encode<D>(
    data: &mut rustls::unbuffered::EncodeTlsData<'_, D>,
    out: &mut Vec<u8>,
    used: usize,
) -> Result<usize, rustls::Error> {
    loop {
        match data.encode(&mut out[used..]) {
            Ok(n) => return Ok(n),
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                make_room(out, used, required_size)?;
            }
            Err(EncodeError::AlreadyEncoded) => return Ok(0),
        }
    }
}

fn encrypt(
    out: &mut Vec<u8>,
    used: usize,
    mut f: impl FnMut(&mut [u8]) -> Result<usize, EncryptError>,
) -> Result<usize, rustls::Error> {
    loop {
        match f(&mut out[used..]) {
            Ok(n) => return Ok(n),
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                make_room(out, used, required_size)?;
            }
            Err(EncryptError::EncryptExhausted) => {
                return Err(rustls::Error::EncryptError);
            }
        }
    }
}

impl<S: TcpStream, C: Timer> TcpStream for TlsStream<S, C> {
    type Error = Error<S::Error>;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.engine.plain_pos < self.engine.plain.len() {
            return Ok(self.engine.take_plain(buf));
        }
        match self.pump(Goal::Read).await? {
            Reached::Data => Ok(self.engine.take_plain(buf)),
            Reached::End | Reached::Queued => Ok(0),
        }
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(MAX_RECORD_PLAINTEXT);
        self.send_record(&buf[..n]).await?;
        Ok(n)
    }

    async fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> Result<(), Self::Error> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if total == 0 {
            return Ok(());
        }
        if bufs.len() > 1 && total <= COALESCE_LIMIT {
            // One record for a head and a small body.
            let mut stage = core::mem::take(&mut self.engine.stage);
            stage.clear();
            for b in bufs {
                stage.extend_from_slice(b);
            }
            let sent = self.send_record(&stage).await;
            self.engine.stage = stage;
            return sent;
        }
        for b in bufs {
            self.write_all(b).await?;
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), Self::Error> {
        if matches!(self.engine.phase, Phase::Open | Phase::PeerClosed) {
            // close_notify, so the client can tell the end of our data from a truncation.
            match self.engine.pump(Goal::Close).await {
                Ok(_) => self.engine.flush().await?,
                Err(e) => log::debug!("tls: close_notify not sent: {e}"),
            }
        }
        self.engine.tcp.shutdown().await.map_err(Error::Tcp)
    }
}
