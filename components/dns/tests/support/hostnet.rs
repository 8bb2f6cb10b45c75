//! A test-only host adapter: the `Udp`, `Tcp` and `Timer` signatures over `std::net`
//! non-blocking sockets, with a `poll(2)` reactor as `morgana_rt::Idle`. It lets the
//! differential test and the benchmark run the real server over real sockets before a
//! platform's own UDP exists; it is not part of any appliance.
#![allow(dead_code)]

use std::cell::RefCell;
use std::fmt;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;

use morgana_rt::Idle;
use morgana_signatures::{
    Instant, MonotonicClock, Received, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer,
    Udp, UdpError, UdpSocket,
};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

#[derive(Default)]
struct State {
    io: Vec<(Weak<dyn AsFd>, PollFlags, Waker)>,
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
            state: Rc::default(),
            origin: std::time::Instant::now(),
        }
    }
}

impl HostNet {
    fn register(&self, fd: Weak<dyn AsFd>, flags: PollFlags, waker: &Waker) {
        self.state.borrow_mut().io.push((fd, flags, waker.clone()));
    }
}

impl Idle for HostNet {
    fn wait(&mut self) {
        let (io, timers) = {
            let mut s = self.state.borrow_mut();
            (std::mem::take(&mut s.io), std::mem::take(&mut s.timers))
        };
        let now = self.now();
        let mut later = Vec::new();
        let mut next: Option<Instant> = None;
        for (at, w) in timers {
            if at <= now {
                w.wake();
            } else {
                next = Some(next.map_or(at, |n: Instant| n.min(at)));
                later.push((at, w));
            }
        }
        let live: Vec<(Rc<dyn AsFd>, PollFlags, Waker)> = io
            .into_iter()
            .filter_map(|(fd, f, w)| fd.upgrade().map(|fd| (fd, f, w)))
            .collect();
        let timeout = next.map(|n| {
            let d = n.saturating_duration_since(now);
            Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            }
        });
        let mut fds: Vec<PollFd<'_>> = live.iter().map(|(fd, f, _)| PollFd::new(fd, *f)).collect();
        let woke_timers = later.len();
        if !fds.is_empty() || woke_timers > 0 {
            let _ = poll(&mut fds, timeout.as_ref());
        }
        let ready: Vec<bool> = fds.iter().map(|p| !p.revents().is_empty()).collect();
        drop(fds);
        let mut s = self.state.borrow_mut();
        for ((fd, f, w), r) in live.into_iter().zip(ready) {
            if r {
                w.wake();
            } else {
                s.io.push((Rc::downgrade(&fd), f, w));
            }
        }
        let now = self.now();
        for (at, w) in later {
            if at <= now {
                w.wake();
            } else {
                s.timers.push((at, w));
            }
        }
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

/// Runs a non-blocking operation, parking on `flags` of `fd` while it would block.
async fn io<T>(
    net: &HostNet,
    fd: &Rc<dyn AsFd>,
    flags: PollFlags,
    mut op: impl FnMut() -> io::Result<T>,
) -> Result<T, HostError> {
    poll_fn(|cx| match op() {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            net.register(Rc::downgrade(fd), flags, cx.waker());
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
    sock: Rc<std::net::UdpSocket>,
    fd: Rc<dyn AsFd>,
}

impl Udp for HostNet {
    type Error = HostError;
    type Socket = HostUdpSocket;

    async fn bind(&self, addr: SocketAddr) -> Result<HostUdpSocket, HostError> {
        let sock = std::net::UdpSocket::bind(addr).map_err(HostError)?;
        sock.set_nonblocking(true).map_err(HostError)?;
        let sock = Rc::new(sock);
        let fd: Rc<dyn AsFd> = sock.clone();
        Ok(HostUdpSocket {
            net: self.clone(),
            sock,
            fd,
        })
    }
}

impl UdpSocket for HostUdpSocket {
    type Error = HostError;

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, HostError> {
        let sock = self.sock.clone();
        // std has no MSG_TRUNC: a datagram that filled a buffer smaller than the largest
        // possible one is taken as truncated.
        let (len, peer) = io(&self.net, &self.fd, PollFlags::IN, || sock.recv_from(buf)).await?;
        Ok(Received {
            len,
            peer,
            truncated: len == buf.len() && buf.len() < 65_507,
        })
    }

    async fn send_to(&mut self, buf: &[u8], peer: SocketAddr) -> Result<(), HostError> {
        let sock = self.sock.clone();
        io(&self.net, &self.fd, PollFlags::OUT, || {
            sock.send_to(buf, peer)
        })
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
    sock: Rc<std::net::TcpListener>,
    fd: Rc<dyn AsFd>,
}

/// A connected stream.
pub struct HostStream {
    net: HostNet,
    sock: Rc<std::net::TcpStream>,
    fd: Rc<dyn AsFd>,
}

impl Tcp for HostNet {
    type Error = HostError;
    type Stream = HostStream;
    type Listener = HostListener;

    async fn listen(&self, addr: SocketAddr) -> Result<HostListener, HostError> {
        let sock = std::net::TcpListener::bind(addr).map_err(HostError)?;
        sock.set_nonblocking(true).map_err(HostError)?;
        let sock = Rc::new(sock);
        let fd: Rc<dyn AsFd> = sock.clone();
        Ok(HostListener {
            net: self.clone(),
            sock,
            fd,
        })
    }
}

impl TcpListener for HostListener {
    type Error = HostError;
    type Stream = HostStream;

    async fn accept(&mut self) -> Result<(HostStream, SocketAddr), HostError> {
        let sock = self.sock.clone();
        let (s, peer) = io(&self.net, &self.fd, PollFlags::IN, || sock.accept()).await?;
        s.set_nonblocking(true).map_err(HostError)?;
        let _ = s.set_nodelay(true);
        let s = Rc::new(s);
        let fd: Rc<dyn AsFd> = s.clone();
        Ok((
            HostStream {
                net: self.net.clone(),
                sock: s,
                fd,
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
        let sock = self.sock.clone();
        io(&self.net, &self.fd, PollFlags::IN, || (&*sock).read(buf)).await
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, HostError> {
        let sock = self.sock.clone();
        io(&self.net, &self.fd, PollFlags::OUT, || (&*sock).write(buf)).await
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
