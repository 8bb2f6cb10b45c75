//! TCP over the host's sockets: non-blocking sockets on the epoll loop.

use core::future::poll_fn;
use core::net::{Ipv4Addr, SocketAddr};
use core::task::Poll;
use morgana_signatures::{Tcp, TcpListener, TcpStream};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::{Errno, IoSlice};
use rustix::net::{
    AddressFamily, RecvFlags, SendAncillaryBuffer, SendFlags, Shutdown, SocketFlags, SocketType,
    sockopt,
};

use crate::Error;
use crate::platform::Platform;
use crate::reactor::{Direction, Reactor};

/// The listen backlog.
const BACKLOG: i32 = 1024;
/// How many buffers one `sendmsg` gathers at most (the rest go in the next call).
const IOV_BATCH: usize = 64;

/// The host's TCP stack, reached through sockets. Implements [`Tcp`].
#[derive(Clone, Copy)]
pub struct HostTcp {
    reactor: &'static Reactor,
}

impl core::fmt::Debug for HostTcp {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("HostTcp")
    }
}

impl HostTcp {
    /// Connects the device. Nothing can fail today (sockets are made on `listen`); the
    /// `Result` keeps the shape every device's `connect` has.
    pub async fn connect(platform: &'static Platform) -> Result<HostTcp, Error> {
        Ok(HostTcp {
            reactor: platform.reactor(),
        })
    }

    pub(crate) fn reactor(&self) -> &'static Reactor {
        self.reactor
    }
}

/// A socket registered with the event loop; closed (and deregistered) on drop.
pub(crate) struct Registered {
    pub(crate) fd: OwnedFd,
    pub(crate) reactor: &'static Reactor,
}

impl Registered {
    pub(crate) fn new(fd: OwnedFd, reactor: &'static Reactor) -> Result<Registered, Errno> {
        reactor.register(fd.as_fd())?;
        Ok(Registered { fd, reactor })
    }

    /// Runs `op` until it does not say `EAGAIN`, parking on the event loop in between
    /// (and retrying at once on `EINTR`). A read whose fd has had no edge since its last
    /// `EAGAIN` (see [`Reactor::still_waiting`]) stays pending without calling `op`.
    pub(crate) async fn io<T>(
        &self,
        dir: Direction,
        mut op: impl FnMut(BorrowedFd<'_>) -> Result<T, Errno>,
    ) -> Result<T, Errno> {
        poll_fn(|cx| {
            // No read edge since the last `EAGAIN`: the call would say it again. (Reads
            // only: a write closure may finish without a system call, an emptied outbox.)
            if dir == Direction::Read
                && self.reactor.still_waiting(self.fd.as_fd(), dir, cx.waker())
            {
                return Poll::Pending;
            }
            loop {
                match op(self.fd.as_fd()) {
                    Err(Errno::INTR) => continue,
                    Err(Errno::AGAIN) => {
                        self.reactor.park(self.fd.as_fd(), dir, cx.waker());
                        return Poll::Pending;
                    }
                    other => return Poll::Ready(other),
                }
            }
        })
        .await
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.reactor.deregister(self.fd.as_fd());
        // `OwnedFd`'s drop closes the socket.
    }
}

pub(crate) fn socket_addr(fd: BorrowedFd<'_>, op: &'static str) -> Result<SocketAddr, Error> {
    let any = rustix::net::getsockname(fd).map_err(|e| Error::os(op, e))?;
    SocketAddr::try_from(any).map_err(|e| Error::os(op, e))
}

impl Tcp for HostTcp {
    type Error = Error;
    type Stream = HostStream;
    type Listener = HostListener;

    async fn listen(&self, addr: SocketAddr) -> Result<HostListener, Error> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let err = |e| Error::listen(addr, e);
        let fd = rustix::net::socket_with(
            family,
            SocketType::STREAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(err)?;
        // Restarting an appliance must not wait for old connections' TIME_WAIT.
        sockopt::set_socket_reuseaddr(&fd, true).map_err(err)?;
        rustix::net::bind(&fd, &addr).map_err(err)?;
        rustix::net::listen(&fd, BACKLOG).map_err(err)?;
        let local = socket_addr(fd.as_fd(), "getsockname")?;
        let io = Registered::new(fd, self.reactor).map_err(|e| Error::os("epoll_ctl", e))?;
        log::debug!("listening on {local}");
        Ok(HostListener { io, local })
    }
}

/// A listening socket of [`HostTcp`].
pub struct HostListener {
    io: Registered,
    local: SocketAddr,
}

impl core::fmt::Debug for HostListener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TcpListener for HostListener {
    type Error = Error;
    type Stream = HostStream;

    async fn accept(&mut self) -> Result<(HostStream, SocketAddr), Error> {
        loop {
            let accepted = self
                .io
                .io(Direction::Read, |fd| {
                    rustix::net::acceptfrom_with(fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)
                })
                .await;
            let (fd, peer) = match accepted {
                Ok(ok) => ok,
                // The peer gave up between the handshake and accept: next one.
                Err(Errno::CONNABORTED) => continue,
                Err(e) => return Err(Error::os("accept4", e)),
            };
            let peer = peer
                .and_then(|a| SocketAddr::try_from(a).ok())
                .unwrap_or(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
            // Small responses must not wait for Nagle; failure only costs latency.
            let _ = sockopt::set_tcp_nodelay(&fd, true);
            let io = Registered::new(fd, self.io.reactor).map_err(|e| Error::os("epoll_ctl", e))?;
            return Ok((HostStream { io }, peer));
        }
    }

    fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local)
    }
}

/// A connected stream of [`HostTcp`].
pub struct HostStream {
    io: Registered,
}

impl core::fmt::Debug for HostStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostStream").finish_non_exhaustive()
    }
}

impl HostStream {
    /// The local end's address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        socket_addr(self.io.fd.as_fd(), "getsockname")
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Result<SocketAddr, Error> {
        let any = rustix::net::getpeername(&self.io.fd)
            .map_err(|e| Error::os("getpeername", e))?
            .ok_or(Error::os("getpeername", Errno::NOTCONN))?;
        SocketAddr::try_from(any).map_err(|e| Error::os("getpeername", e))
    }
}

impl TcpStream for HostStream {
    type Error = Error;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.io
            .io(Direction::Read, |fd| {
                rustix::net::recv(fd, &mut *buf, RecvFlags::empty()).map(|(n, _)| n)
            })
            .await
            .map_err(|e| Error::os("recv", e))
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        if buf.is_empty() {
            return Ok(0);
        }
        // MSG_NOSIGNAL: a peer that went away gives EPIPE, never SIGPIPE.
        self.io
            .io(Direction::Write, |fd| {
                rustix::net::send(fd, buf, SendFlags::NOSIGNAL)
            })
            .await
            .map_err(|e| Error::os("send", e))
    }

    async fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> Result<(), Error> {
        // Position: bufs[idx][off..] is the next byte to send.
        let mut idx = 0;
        let mut off = 0;
        loop {
            while idx < bufs.len() && off == bufs[idx].len() {
                idx += 1;
                off = 0;
            }
            if idx == bufs.len() {
                return Ok(());
            }
            let sent = self
                .io
                .io(Direction::Write, |fd| {
                    let mut iov: [IoSlice<'_>; IOV_BATCH] =
                        core::array::from_fn(|_| IoSlice::new(&[]));
                    let mut n = 0;
                    iov[0] = IoSlice::new(&bufs[idx][off..]);
                    n += 1;
                    for b in bufs[idx + 1..].iter().filter(|b| !b.is_empty()) {
                        if n == IOV_BATCH {
                            break;
                        }
                        iov[n] = IoSlice::new(b);
                        n += 1;
                    }
                    rustix::net::sendmsg(
                        fd,
                        &iov[..n],
                        &mut SendAncillaryBuffer::default(),
                        SendFlags::NOSIGNAL,
                    )
                })
                .await
                .map_err(|e| Error::os("sendmsg", e))?;
            // Advance over what the kernel took.
            let mut left = sent;
            while left > 0 {
                let room = bufs[idx].len() - off;
                if left < room {
                    off += left;
                    left = 0;
                } else {
                    left -= room;
                    idx += 1;
                    off = 0;
                }
            }
        }
    }

    async fn shutdown(&mut self) -> Result<(), Error> {
        // The kernel sends what is queued, then FIN; nothing to wait for here.
        match rustix::net::shutdown(&self.io.fd, Shutdown::Write) {
            // Already disconnected: nothing left to shut down.
            Ok(()) | Err(Errno::NOTCONN) => Ok(()),
            Err(e) => Err(Error::os("shutdown", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_signatures::{MonotonicClock, TcpError, TcpErrorKind};
    use std::io::{Read, Write};
    use std::vec::Vec;

    fn localhost(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    /// A task woken again and again for one fd (a UDP socket, as the DNS server's loop)
    /// also polls a read on another fd that stays quiet (its TCP listener): after the
    /// loop has waited once, the quiet read makes no more system calls, and a datagram
    /// that comes later still completes it.
    #[test]
    fn a_read_with_no_edge_since_its_eagain_is_not_retried_and_still_completes() {
        use core::cell::Cell;
        use core::pin::pin;
        use core::time::Duration;
        let p = Platform::leak_new().unwrap();
        let clock = p.clock();
        let udp = || {
            let fd = rustix::net::socket_with(
                AddressFamily::INET,
                SocketType::DGRAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .unwrap();
            rustix::net::bind(&fd, &localhost(0)).unwrap();
            let addr = socket_addr(fd.as_fd(), "getsockname").unwrap();
            (Registered::new(fd, p.reactor()).unwrap(), addr)
        };
        let ((quiet, quiet_addr), (busy, busy_addr)) = (udp(), udp());
        let recv = |fd: BorrowedFd<'_>| rustix::net::recv(fd, &mut [0u8; 16], RecvFlags::empty());
        // 20 datagrams to the busy socket, 5 ms apart: the loop sleeps between them.
        let sender = std::thread::spawn(move || {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            for _ in 0..20 {
                std::thread::sleep(Duration::from_millis(5));
                s.send_to(b"busy", busy_addr).unwrap();
            }
            s
        });
        let calls = Cell::new(0u32);
        let deadline = clock.now().saturating_add(Duration::from_secs(20));
        let done = p.run(morgana_rt::timeout(&clock, deadline, async {
            let mut quiet_read = pin!(quiet.io(Direction::Read, |fd| {
                calls.set(calls.get() + 1);
                recv(fd)
            }));
            for _ in 0..20 {
                let mut busy_read = pin!(busy.io(Direction::Read, recv));
                poll_fn(|cx| {
                    assert!(quiet_read.as_mut().poll(cx).is_pending());
                    busy_read.as_mut().poll(cx)
                })
                .await
                .unwrap();
            }
            // At most the first poll and those before the loop first waited.
            assert!(
                calls.get() <= 3,
                "{} recv calls on the quiet socket",
                calls.get()
            );
            let s = sender.join().unwrap();
            s.send_to(b"quiet", quiet_addr).unwrap();
            quiet_read.as_mut().await.unwrap()
        }));
        assert_eq!(done, Ok((5, 5)));
    }

    #[test]
    fn accepts_echoes_vectored_and_shuts_down() {
        let p = Platform::leak_new().unwrap();
        let mut listener = p
            .run(async {
                let net = HostTcp::connect(p).await.unwrap();
                net.listen(localhost(0)).await
            })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        assert_ne!(addr.port(), 0);

        let client = std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"hello").unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });

        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let big2 = big.clone();
        p.run(async move {
            let (mut s, peer) = listener.accept().await.unwrap();
            assert_eq!(peer.ip(), addr.ip());
            assert_eq!(s.local_addr().unwrap(), addr);
            assert_eq!(s.peer_addr().unwrap(), peer);
            let mut buf = [0u8; 5];
            let mut n = 0;
            while n < 5 {
                n += s.read(&mut buf[n..]).await.unwrap();
            }
            assert_eq!(&buf, b"hello");
            // Larger than the socket buffer: must park on EAGAIN and resume.
            let parts: Vec<&[u8]> = [&b""[..], &buf, &b""[..], &big[..1000], &big[1000..]]
                .into_iter()
                .collect();
            s.write_all_vectored(&parts).await.unwrap();
            s.write_all(b"!").await.unwrap();
            s.shutdown().await.unwrap();
        });
        let got = client.join().unwrap();
        assert_eq!(&got[..5], b"hello");
        assert_eq!(&got[5..5 + big2.len()], &big2[..]);
        assert_eq!(&got[5 + big2.len()..], b"!");
    }

    #[test]
    fn address_in_use_is_reported_with_the_address() {
        let p = Platform::leak_new().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = p
            .run(async { HostTcp::connect(p).await.unwrap().listen(addr).await })
            .unwrap_err();
        assert_eq!(err.kind(), TcpErrorKind::AddrInUse);
        assert_eq!(
            std::format!("{err}"),
            std::format!("address {addr} already in use (EADDRINUSE)")
        );
    }

    #[test]
    fn ipv6_listens_where_available() {
        let p = Platform::leak_new().unwrap();
        let r = p.run(async {
            HostTcp::connect(p)
                .await
                .unwrap()
                .listen("[::1]:0".parse().unwrap())
                .await
        });
        match r {
            Ok(l) => {
                let a = l.local_addr().unwrap();
                assert!(a.is_ipv6());
                let c = std::net::TcpStream::connect(a).unwrap();
                let mut l = l;
                let (_, peer) = p.run(l.accept()).unwrap();
                assert!(peer.is_ipv6());
                drop(c);
            }
            // No IPv6 on this host (some containers): the error must say so.
            Err(e) => assert!(
                matches!(e.kind(), TcpErrorKind::Invalid | TcpErrorKind::Other),
                "{e}"
            ),
        }
    }

    #[test]
    fn reset_and_closed_peers_give_errors_not_signals() {
        let p = Platform::leak_new().unwrap();
        let mut listener = p
            .run(async {
                HostTcp::connect(p)
                    .await
                    .unwrap()
                    .listen(localhost(0))
                    .await
            })
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let c = std::net::TcpStream::connect(addr).unwrap();
        let (mut s, _) = p.run(listener.accept()).unwrap();
        drop(c);
        let clock = p.clock();
        let r = p.run(async {
            // Keep writing to a closed peer: the first write may succeed, a later one
            // must fail with EPIPE/ECONNRESET (and the process must survive).
            let deadline = clock
                .now()
                .saturating_add(core::time::Duration::from_secs(5));
            loop {
                if let Err(e) = s.write_all(&[0u8; 4096]).await {
                    return Some(e);
                }
                if clock.now() > deadline {
                    return None;
                }
            }
        });
        let e = r.expect("writes to a closed peer kept succeeding");
        assert_eq!(e.kind(), TcpErrorKind::Reset, "{e}");
        // Reading a reset connection: an error or EOF, never a hang.
        let mut buf = [0u8; 16];
        match p.run(s.read(&mut buf)) {
            Ok(0) => {}
            Ok(n) => panic!("read {n} bytes from a closed peer"),
            Err(e) => assert_eq!(e.kind(), TcpErrorKind::Reset, "{e}"),
        }
    }
}
