//! The server: one UDP socket and one TCP listener on the same address, answering from
//! the compiled-in zones.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::{Future, poll_fn};
use core::net::SocketAddr;
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use morgana_rt::{TaskSet, timeout};
use morgana_signatures::{
    ShowAddr, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer, Udp, UdpError, UdpSocket,
};

use crate::answer::{AnswerConfig, DEFAULT_UDP_PAYLOAD, Transport, respond};
use crate::zones::Zones;

/// The default [`Config::max_tcp_connections`].
pub const DEFAULT_MAX_TCP_CONNECTIONS: usize = 64;
/// The default [`Config::tcp_idle_timeout`] (RFC 7766 §6.2.3 suggests seconds, not
/// minutes).
pub const DEFAULT_TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest query accepted: over TCP a longer one closes the connection, over UDP it
/// is dropped. Real queries are a question and an OPT record: well under 600 bytes.
pub const MAX_TCP_QUERY: usize = 4096;
/// How long the UDP loop pauses after the stack ran out of resources.
pub const UDP_BACKOFF: Duration = Duration::from_millis(10);

/// What the server is told by the appliance (compiled in by codegen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where to listen, UDP and TCP (port 0: UDP picks a port and TCP takes the same; if
    /// that one is taken for TCP, another is picked, a few times).
    pub address: SocketAddr,
    /// The most TCP connections served at once; a connection beyond it is closed at once.
    pub max_tcp_connections: usize,
    /// How long a TCP connection may wait for (or dawdle over) its next query.
    pub tcp_idle_timeout: Duration,
    /// The largest UDP response to an EDNS client, and the size advertised.
    pub udp_payload: u16,
}

impl Config {
    /// A configuration for `address` with the defaults.
    pub const fn new(address: SocketAddr) -> Config {
        Config {
            address,
            max_tcp_connections: DEFAULT_MAX_TCP_CONNECTIONS,
            tcp_idle_timeout: DEFAULT_TCP_IDLE_TIMEOUT,
            udp_payload: DEFAULT_UDP_PAYLOAD,
        }
    }
}

/// Why the server could not start or stopped. `U` and `T` are the stacks' errors.
#[derive(Debug)]
pub enum Error<U, T> {
    /// The configuration cannot work.
    InvalidConfig(&'static str),
    /// The UDP socket could not be bound.
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// The stack's reason.
        error: U,
    },
    /// The TCP listener could not be opened.
    Listen {
        /// The address (the UDP socket's, port included).
        address: SocketAddr,
        /// The stack's reason.
        error: T,
    },
    /// The UDP socket could not tell its address.
    LocalAddr(U),
    /// Receiving failed in a way that will not get better by waiting.
    Receive(U),
    /// Accepting failed in a way that will not get better by waiting.
    Accept(T),
}

impl<U: fmt::Display, T: fmt::Display> fmt::Display for Error<U, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Bind { address, error } => {
                write!(f, "cannot bind UDP {}: {error}", ShowAddr(*address))
            }
            Error::Listen { address, error } => {
                write!(f, "cannot listen on TCP {}: {error}", ShowAddr(*address))
            }
            Error::LocalAddr(e) => write!(f, "cannot read the UDP socket's address: {e}"),
            Error::Receive(e) => write!(f, "cannot receive UDP queries: {e}"),
            Error::Accept(e) => write!(f, "cannot accept TCP connections: {e}"),
        }
    }
}

impl<U: fmt::Debug + fmt::Display, T: fmt::Debug + fmt::Display> core::error::Error
    for Error<U, T>
{
}

/// An authoritative DNS server on a [`Udp`] and a [`Tcp`] stack, with TCP idle timeouts
/// from a [`Timer`], answering from [`Zones`].
pub struct Server<U: Udp, T: Tcp, C: Timer> {
    _udp: U,
    _tcp: T,
    socket: U::Socket,
    listener: T::Listener,
    clock: C,
    zones: Zones<'static>,
    config: Config,
    local_addr: SocketAddr,
}

impl<U: Udp, T: Tcp, C: Timer> fmt::Debug for Server<U, T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<U: Udp, T: Tcp, C: Timer> Server<U, T, C> {
    /// Checks `config`, binds the UDP socket and listens on TCP at the same address.
    pub async fn connect(
        udp: U,
        tcp: T,
        clock: C,
        zones: Zones<'static>,
        config: Config,
    ) -> Result<Self, Error<U::Error, T::Error>> {
        if config.max_tcp_connections == 0 {
            return Err(Error::InvalidConfig(
                "max_tcp_connections must be at least 1",
            ));
        }
        if config.tcp_idle_timeout.is_zero() {
            return Err(Error::InvalidConfig("tcp_idle_timeout must not be zero"));
        }
        if config.udp_payload < 512 {
            return Err(Error::InvalidConfig("udp_payload must be at least 512"));
        }
        // With port 0, the port UDP got may be taken for TCP: try another a few times.
        let mut attempts = if config.address.port() == 0 { 8 } else { 1 };
        let (socket, listener, local_addr) = loop {
            attempts -= 1;
            let socket = udp
                .bind(config.address)
                .await
                .map_err(|error| Error::Bind {
                    address: config.address,
                    error,
                })?;
            let local_addr = socket.local_addr().map_err(Error::LocalAddr)?;
            match tcp.listen(local_addr).await {
                Ok(listener) => break (socket, listener, local_addr),
                Err(e) if attempts > 0 && e.kind() == TcpErrorKind::AddrInUse => continue,
                Err(error) => {
                    return Err(Error::Listen {
                        address: local_addr,
                        error,
                    });
                }
            }
        };
        Ok(Server {
            _udp: udp,
            _tcp: tcp,
            socket,
            listener,
            clock,
            zones,
            config,
            local_addr,
        })
    }

    /// The address served, UDP and TCP (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves until receiving or accepting fails for good.
    ///
    /// UDP: one receive buffer and one response buffer, allocated here once; each
    /// datagram is answered in place before the next is read. A datagram longer than the
    /// buffer, or one that is not a query, is dropped. TCP: connections run concurrently
    /// as members of a [`TaskSet`]; each reads length-prefixed queries one after the
    /// other (RFC 7766 §6.2.1) and answers them in order, until the client closes, sends
    /// nothing for `tcp_idle_timeout`, or sends something that is not a query.
    pub async fn serve(self) -> Result<(), Error<U::Error, T::Error>> {
        let Server {
            _udp,
            _tcp,
            mut socket,
            mut listener,
            clock,
            zones,
            config,
            local_addr,
        } = self;
        log::info!(
            "dns: serving {} zone(s) on {} (UDP, TCP)",
            zones.zones().len(),
            ShowAddr(local_addr)
        );
        let answer = AnswerConfig {
            udp_payload: config.udp_payload,
        };
        // Shared by the TCP connections: each answer is written here synchronously, then
        // copied to its connection's own buffer for sending.
        let scratch = RefCell::new(vec![0u8; 2 + 65_535]);
        let (zones, answer, clock, scratch) = (&zones, &answer, &clock, &scratch);
        let idle = config.tcp_idle_timeout;
        let mut udp = pin!(serve_udp(&mut socket, zones, answer, clock));
        let mut conns = TaskSet::new(config.max_tcp_connections);
        loop {
            let mut accept = pin!(listener.accept());
            let event = poll_fn(|cx| {
                conns.poll_tasks(cx);
                if let Poll::Ready(e) = udp.as_mut().poll(cx) {
                    return Poll::Ready(Err(Error::Receive(e)));
                }
                accept.as_mut().poll(cx).map(Ok)
            })
            .await?;
            match event {
                Ok((stream, peer)) => {
                    if conns.is_full() {
                        log::debug!("dns: {}: closed: at the TCP connection cap", ShowAddr(peer));
                        drop(stream);
                    } else if conns
                        .insert(serve_tcp(stream, peer, clock, idle, zones, answer, scratch))
                        .is_err()
                    {
                        log::debug!("dns: {}: dropped: connection set full", ShowAddr(peer));
                    }
                }
                Err(e) => match e.kind() {
                    TcpErrorKind::Reset => log::debug!("dns: accept: {e}"),
                    TcpErrorKind::Exhausted => {
                        log::debug!("dns: accept: {e}; pausing");
                        let pause = clock.sleep(UDP_BACKOFF * 10);
                        let mut pause = pin!(pause);
                        poll_fn(|cx| {
                            conns.poll_tasks(cx);
                            if let Poll::Ready(e) = udp.as_mut().poll(cx) {
                                return Poll::Ready(Err(Error::Receive(e)));
                            }
                            pause.as_mut().poll(cx).map(Ok)
                        })
                        .await?;
                    }
                    _ => return Err(Error::Accept(e)),
                },
            }
        }
    }
}

/// The UDP loop; returns only on an error that waiting will not cure.
async fn serve_udp<S: UdpSocket, C: Timer>(
    socket: &mut S,
    zones: &Zones<'static>,
    answer: &AnswerConfig,
    clock: &C,
) -> S::Error {
    // A query is small: a datagram longer than a TCP query may be ([`MAX_TCP_QUERY`])
    // is not one and is dropped. (A small buffer also lets a stack receive in batches:
    // the Unix platform's `recvmmsg`.)
    let mut rx = vec![0u8; socket.max_payload().clamp(512, MAX_TCP_QUERY)];
    let mut tx = vec![0u8; usize::from(answer.udp_payload)];
    loop {
        let got = match socket.recv_from(&mut rx).await {
            Ok(got) => got,
            Err(e) => match e.kind() {
                TcpErrorKind::Reset | TcpErrorKind::Other => {
                    log::debug!("dns: udp receive: {e}");
                    continue;
                }
                TcpErrorKind::Exhausted => {
                    log::debug!("dns: udp receive: {e}; pausing");
                    clock.sleep(UDP_BACKOFF).await;
                    continue;
                }
                _ => return e,
            },
        };
        if got.truncated {
            log::trace!("dns: {}: oversized datagram dropped", ShowAddr(got.peer));
            continue;
        }
        let transport = Transport::Udp {
            ipv6: got.peer.is_ipv6(),
        };
        let Some(n) = respond(zones, &rx[..got.len], &mut tx, transport, answer) else {
            continue;
        };
        if let Err(e) = socket.send_to(&tx[..n], got.peer).await {
            log::debug!("dns: {}: udp send: {e}", ShowAddr(got.peer));
        }
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` if the peer closed before the first one.
async fn read_exact<S: TcpStream>(s: &mut S, buf: &mut [u8]) -> Result<bool, ()> {
    let mut got = 0;
    while got < buf.len() {
        match s.read(&mut buf[got..]).await {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) | Err(_) => return Err(()),
            Ok(n) => got += n,
        }
    }
    Ok(true)
}

/// One TCP connection (RFC 7766): length-prefixed queries, answered in order.
async fn serve_tcp<S: TcpStream, C: Timer>(
    mut stream: S,
    peer: SocketAddr,
    clock: &C,
    idle: Duration,
    zones: &Zones<'static>,
    answer: &AnswerConfig,
    scratch: &RefCell<Vec<u8>>,
) {
    let mut query = vec![0u8; MAX_TCP_QUERY];
    let mut out: Vec<u8> = Vec::new();
    loop {
        let deadline = clock.now().saturating_add(idle);
        let mut len = [0u8; 2];
        match timeout(clock, deadline, read_exact(&mut stream, &mut len)).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => break,
            Ok(Err(())) => {
                log::debug!("dns: {}: tcp read failed", ShowAddr(peer));
                break;
            }
            Err(_) => {
                log::debug!("dns: {}: tcp idle timeout", ShowAddr(peer));
                break;
            }
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len > MAX_TCP_QUERY {
            log::debug!(
                "dns: {}: {len}-byte query over TCP: closing",
                ShowAddr(peer)
            );
            break;
        }
        match timeout(clock, deadline, read_exact(&mut stream, &mut query[..len])).await {
            Ok(Ok(true)) => {}
            _ if len == 0 => {}
            _ => {
                log::debug!("dns: {}: incomplete tcp query", ShowAddr(peer));
                break;
            }
        }
        {
            let mut buf = scratch.borrow_mut();
            let Some(n) = respond(zones, &query[..len], &mut buf[2..], Transport::Tcp, answer)
            else {
                log::debug!("dns: {}: not a query over TCP: closing", ShowAddr(peer));
                break;
            };
            buf[..2].copy_from_slice(&(n as u16).to_be_bytes());
            out.clear();
            out.extend_from_slice(&buf[..2 + n]);
        }
        let deadline = clock.now().saturating_add(idle);
        match timeout(clock, deadline, stream.write_all(&out)).await {
            Ok(Ok(())) => {}
            _ => {
                log::debug!("dns: {}: tcp write failed or timed out", ShowAddr(peer));
                break;
            }
        }
    }
    let deadline = clock.now().saturating_add(Duration::from_secs(1));
    let _ = timeout(clock, deadline, stream.shutdown()).await;
}
