//! A test-only host adapter: the `Udp`, `Tcp` and `Timer` signatures over non-blocking
//! host sockets (`mio`: epoll), with `mio::Poll` as `morgana_rt::Idle`. It lets the
//! differential test and the benchmark run the real server over real sockets before a
//! platform's own UDP exists; it is not part of any appliance.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use mio::{Events, Interest, Token};
use morgana_rt::Idle;
use morgana_signatures::{
    Instant, MonotonicClock, Received, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer,
    Udp, UdpError, UdpSocket,
};

struct State {
    poll: mio::Poll,
    events: Events,
    next: usize,
    /// Per registered socket: who waits to read, who waits to write.
    wakers: HashMap<usize, (Option<Waker>, Option<Waker>)>,
    timers: Vec<(Instant, Waker)>,
}

/// The reactor and clock; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct HostNet {
    state: Rc<RefCell<State>>,
    origin: std::time::Instant,
}

impl Default for HostNet {
    fn default() -> Self {
        HostNet {
            state: Rc::new(RefCell::new(State {
                poll: mio::Poll::new().expect("epoll"),
                events: Events::with_capacity(256),
                next: 0,
                wakers: HashMap::new(),
                timers: Vec::new(),
            })),
            origin: std::time::Instant::now(),
        }
    }
}

impl HostNet {
    fn register(&self, source: &mut impl mio::event::Source) -> io::Result<usize> {
        let mut s = self.state.borrow_mut();
        s.next += 1;
        let t = s.next;
        s.poll
            .registry()
            .register(source, Token(t), Interest::READABLE | Interest::WRITABLE)?;
        s.wakers.insert(t, (None, None));
        Ok(t)
    }

    fn forget(&self, token: usize) {
        self.state.borrow_mut().wakers.remove(&token);
    }
}

impl Idle for HostNet {
    fn wait(&mut self) {
        let now = self.now();
        let mut s = self.state.borrow_mut();
        let next = s.timers.iter().map(|(at, _)| *at).min();
        let timeout = next.map(|n| n.saturating_duration_since(now));
        let State {
            poll,
            events,
            wakers,
            ..
        } = &mut *s;
        let _ = poll.poll(events, timeout);
        let mut wake = Vec::new();
        for e in events.iter() {
            if let Some((r, w)) = wakers.get_mut(&e.token().0) {
                if e.is_readable() || e.is_read_closed() || e.is_error() {
                    wake.extend(r.take());
                }
                if e.is_writable() || e.is_write_closed() || e.is_error() {
                    wake.extend(w.take());
                }
            }
        }
        let now = self.now();
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut s.timers)
            .into_iter()
            .partition(|(at, _)| *at <= now);
        s.timers = later;
        drop(s);
        wake.into_iter().for_each(Waker::wake);
        due.into_iter().for_each(|(_, w)| w.wake());
    }
}

impl MonotonicClock for HostNet {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.origin.elapsed().as_nanos() as u64)
    }
}

impl Timer for HostNet {
    async fn sleep_until(&self, deadline: Instant) {
        poll_fn(|cx| {
            if self.now() >= deadline {
                return Poll::Ready(());
            }
            self.state
                .borrow_mut()
                .timers
                .push((deadline, cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

/// An `std::io::Error` classified for the signatures.
#[derive(Debug)]
pub struct HostError(pub io::Error);

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn kind(e: &io::Error) -> TcpErrorKind {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionRefused => TcpErrorKind::Reset,
        io::ErrorKind::AddrInUse => TcpErrorKind::AddrInUse,
        io::ErrorKind::PermissionDenied => TcpErrorKind::PermissionDenied,
        io::ErrorKind::InvalidInput => TcpErrorKind::Invalid,
        io::ErrorKind::OutOfMemory => TcpErrorKind::Exhausted,
        _ if e.raw_os_error() == Some(24) || e.raw_os_error() == Some(23) => {
            TcpErrorKind::Exhausted
        }
        _ => TcpErrorKind::Other,
    }
}

impl TcpError for HostError {
    fn kind(&self) -> TcpErrorKind {
        kind(&self.0)
    }
}

impl UdpError for HostError {
    fn kind(&self) -> TcpErrorKind {
        kind(&self.0)
    }
}

/// Runs a non-blocking operation, parking (for reading or writing) while it would block.
/// The operation is always tried first, so an edge that epoll reported earlier is never
/// needed again.
async fn io<T>(
    net: &HostNet,
    token: usize,
    write: bool,
    mut op: impl FnMut() -> io::Result<T>,
) -> Result<T, HostError> {
    poll_fn(|cx| match op() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            if let Some((r, w)) = net.state.borrow_mut().wakers.get_mut(&token) {
                *(if write { w } else { r }) = Some(cx.waker().clone());
            }
            Poll::Pending
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        r => Poll::Ready(r.map_err(HostError)),
    })
    .await
}

/// A bound UDP socket.
pub struct HostUdpSocket {
    net: HostNet,
    sock: mio::net::UdpSocket,
    token: usize,
}

impl Drop for HostUdpSocket {
    fn drop(&mut self) {
        self.net.forget(self.token);
    }
}

impl Udp for HostNet {
    type Error = HostError;
    type Socket = HostUdpSocket;

    async fn bind(&self, addr: SocketAddr) -> Result<HostUdpSocket, HostError> {
        let mut sock = mio::net::UdpSocket::bind(addr).map_err(HostError)?;
        let token = self.register(&mut sock).map_err(HostError)?;
        Ok(HostUdpSocket {
            net: self.clone(),
            sock,
            token,
        })
    }
}

impl UdpSocket for HostUdpSocket {
    type Error = HostError;

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, HostError> {
        let sock = &self.sock;
        let (len, peer) = io(&self.net, self.token, false, || sock.recv_from(buf)).await?;
        // std has no MSG_TRUNC: a datagram that filled a buffer smaller than the largest
        // possible one is taken as truncated.
        Ok(Received {
            len,
            peer,
            truncated: len == buf.len() && buf.len() < 65_507,
        })
    }

    async fn send_to(&mut self, buf: &[u8], peer: SocketAddr) -> Result<(), HostError> {
        let sock = &self.sock;
        io(&self.net, self.token, true, || sock.send_to(buf, peer))
            .await
            .map(|_| ())
    }

    fn local_addr(&self) -> Result<SocketAddr, HostError> {
        self.sock.local_addr().map_err(HostError)
    }

    fn max_payload(&self) -> usize {
        65_507
    }
}

/// A listening socket.
pub struct HostListener {
    net: HostNet,
    sock: mio::net::TcpListener,
    token: usize,
}

impl Drop for HostListener {
    fn drop(&mut self) {
        self.net.forget(self.token);
    }
}

/// A connected stream.
pub struct HostStream {
    net: HostNet,
    sock: mio::net::TcpStream,
    token: usize,
}

impl Drop for HostStream {
    fn drop(&mut self) {
        self.net.forget(self.token);
    }
}

impl Tcp for HostNet {
    type Error = HostError;
    type Stream = HostStream;
    type Listener = HostListener;

    async fn listen(&self, addr: SocketAddr) -> Result<HostListener, HostError> {
        let mut sock = mio::net::TcpListener::bind(addr).map_err(HostError)?;
        let token = self.register(&mut sock).map_err(HostError)?;
        Ok(HostListener {
            net: self.clone(),
            sock,
            token,
        })
    }
}

impl TcpListener for HostListener {
    type Error = HostError;
    type Stream = HostStream;

    async fn accept(&mut self) -> Result<(HostStream, SocketAddr), HostError> {
        let sock = &self.sock;
        let (mut s, peer) = io(&self.net, self.token, false, || sock.accept()).await?;
        let _ = s.set_nodelay(true);
        let token = self.net.register(&mut s).map_err(HostError)?;
        Ok((
            HostStream {
                net: self.net.clone(),
                sock: s,
                token,
            },
            peer,
        ))
    }

    fn local_addr(&self) -> Result<SocketAddr, HostError> {
        self.sock.local_addr().map_err(HostError)
    }
}

impl TcpStream for HostStream {
    type Error = HostError;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, HostError> {
        let sock = &self.sock;
        io(&self.net, self.token, false, || (&*sock).read(buf)).await
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, HostError> {
        let sock = &self.sock;
        io(&self.net, self.token, true, || (&*sock).write(buf)).await
    }

    async fn shutdown(&mut self) -> Result<(), HostError> {
        self.sock
            .shutdown(std::net::Shutdown::Write)
            .map_err(HostError)
    }
}

/// Compiles the zone files at `paths` (panicking with the rendered diagnostics on error)
/// and returns their archive, leaked so that it lives as long as the test.
pub fn compile_zones(paths: &[&str]) -> morgana_dns::Zones<'static> {
    let texts: Vec<(String, String)> = paths
        .iter()
        .map(|p| {
            (
                p.to_string(),
                std::fs::read_to_string(p).expect("read zone file"),
            )
        })
        .collect();
    let files: Vec<morgana_dns_zone::ZoneFile<'_>> = texts
        .iter()
        .map(|(p, t)| morgana_dns_zone::ZoneFile {
            path: p,
            text: t,
            origin: None,
        })
        .collect();
    let compiled = match morgana_dns_zone::compile(&files) {
        Ok(c) => c,
        Err(diags) => {
            let text: String = diags
                .iter()
                .map(|d| {
                    let src = texts
                        .iter()
                        .find(|(p, _)| *p == d.file)
                        .map_or("", |(_, t)| t);
                    d.render(src)
                })
                .collect();
            panic!("zone files do not compile:\n{text}");
        }
    };
    // The archive must sit at a 16-byte aligned address.
    let len = compiled.archive.len();
    let store: &'static mut [u8] = Vec::leak(vec![0u8; len + 16]);
    let off = store.as_ptr().align_offset(16);
    let bytes = &mut store[off..off + len];
    bytes.copy_from_slice(&compiled.archive);
    morgana_dns::Zones::from_bytes(bytes).expect("valid archive")
}

/// How long a test waits for a reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
