//! UDP over the host's sockets: non-blocking datagram sockets on the epoll loop.
//!
//! - [`HostTcp`] (the host's sockets) implements [`Udp`] too: `bind` makes a
//!   `SOCK_DGRAM` socket, non-blocking and close-on-exec, registered with the reactor
//!   like a TCP socket.
//! - **Receiving in batches.** `recv_from` with a buffer of at most [`BATCH_BYTES`] / 2
//!   bytes (a DNS server's 4 KiB, not a 64 KiB one) takes up to [`BATCH`] datagrams in
//!   one `recvmmsg(MSG_TRUNC)`: the first straight into the caller's buffer, the others
//!   into the socket's slots of the same size (one 64 KiB area, allocated on the first
//!   such receive, never per datagram), from which the next calls copy them without a
//!   system call. A datagram is thus cut to the buffer of the receive that fetched its
//!   batch (or to the later caller's, if smaller), and `truncated` reports the cut, as
//!   with one `recvfrom(MSG_TRUNC)` per datagram (what a larger buffer gets).
//! - **Sending in batches.** `send_to` while received datagrams are still queued (the
//!   caller answering a batch) holds the datagram back in the socket's outbox (64 KiB,
//!   allocated once) and returns; the first `send_to` with none queued, a full outbox,
//!   the next receive that must ask the kernel, and the event loop before it sleeps
//!   ([`IdleFlush`]) send what is held in one `sendmmsg`. A held-back datagram the
//!   kernel refuses is dropped and logged (debug), as one lost on the way would be.
//! - A socket bound to `[::]` is dual-stack (Linux's default): IPv4 peers arrive as
//!   v4-mapped addresses (`::ffff:a.b.c.d`), which `recv_from` gives back as plain IPv4
//!   addresses, and `send_to` takes an IPv4 peer on such a socket (Linux accepts an
//!   `AF_INET` destination there).

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::net::{SocketAddr, SocketAddrV4};
use morgana_signatures::{Received, Udp, UdpSocket};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::Error;
use crate::mmsg::{BATCH, Got, MsgBatch};
use crate::reactor::{Direction, IdleFlush, Reactor};
use crate::tcp::{HostTcp, Registered, socket_addr};

/// The largest UDP payload over IPv4 (65,535 less the IPv4 and UDP headers); the same
/// limit is applied to IPv6 sockets so that code written for one fits the other.
pub const HOST_UDP_MAX_PAYLOAD: usize = 65_507;

/// The room a socket keeps for received datagrams waiting to be handed out, and for
/// datagrams held back to be sent together (each, allocated once when first used).
pub const BATCH_BYTES: usize = 64 * 1024;

impl Udp for HostTcp {
    type Error = Error;
    type Socket = HostUdpSocket;

    /// Binds a UDP socket on `addr` (`0.0.0.0` or `[::]` for every address; port 0 picks
    /// a free port).
    async fn bind(&self, addr: SocketAddr) -> Result<HostUdpSocket, Error> {
        let family = match addr {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let err = |e| Error::bind(addr, e);
        let fd = rustix::net::socket_with(
            family,
            SocketType::DGRAM,
            SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            None,
        )
        .map_err(err)?;
        rustix::net::bind(&fd, &addr).map_err(err)?;
        let local = socket_addr(fd.as_fd(), "getsockname")?;
        let reactor = self.reactor();
        let io = Registered::new(fd, reactor).map_err(|e| Error::os("epoll_ctl", e))?;
        log::debug!("udp bound on {local}");
        Ok(HostUdpSocket {
            shared: Rc::new(Shared {
                io,
                out: RefCell::new(None),
                listed: Cell::new(false),
            }),
            reactor,
            local,
            rx: None,
        })
    }
}

/// A bound UDP socket of [`HostTcp`] (the host's sockets).
pub struct HostUdpSocket {
    /// The socket and its outbox, shared with the event loop's list of what to flush.
    shared: Rc<Shared>,
    reactor: &'static Reactor,
    local: SocketAddr,
    /// Received datagrams not handed out yet (allocated on the first batched receive).
    rx: Option<Box<Inbox>>,
}

impl core::fmt::Debug for HostUdpSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostUdpSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The socket and its outbox.
struct Shared {
    io: Registered,
    out: RefCell<Option<Box<Outbox>>>,
    /// Whether the event loop has it in its list of what to flush before sleeping.
    listed: Cell<bool>,
}

/// Datagrams of one `recvmmsg` after the first, waiting for `recv_from`.
struct Inbox {
    msgs: MsgBatch,
    /// `BATCH_BYTES` of slots, `slot_len` each (datagram `i` of the batch, `i >= 1`, in
    /// slot `i - 1`).
    slots: Vec<u8>,
    slot_len: usize,
    got: [Got; BATCH],
    /// The next one to hand out, and how many the batch holds.
    next: usize,
    count: usize,
}

impl Inbox {
    fn queued(&self) -> bool {
        self.next < self.count
    }
}

/// Datagrams held back, packed into one area, to go out in one `sendmmsg`.
struct Outbox {
    msgs: MsgBatch,
    bytes: Vec<u8>,
    /// Each one's end in `bytes` and its destination.
    ends: [(usize, SocketAddr); BATCH],
    /// How many are held, and how many of those the kernel took already.
    count: usize,
    sent: usize,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            msgs: MsgBatch::new(),
            bytes: vec![0; BATCH_BYTES],
            ends: [(0, SocketAddr::V4(SocketAddrV4::new([0; 4].into(), 0))); BATCH],
            count: 0,
            sent: 0,
        }
    }

    fn used(&self) -> usize {
        self.count.checked_sub(1).map_or(0, |i| self.ends[i].0)
    }

    /// Holds `buf` for `peer`; `false` if there is no room.
    fn push(&mut self, buf: &[u8], peer: SocketAddr) -> bool {
        let at = self.used();
        if self.count == BATCH || at + buf.len() > self.bytes.len() {
            return false;
        }
        self.bytes[at..at + buf.len()].copy_from_slice(buf);
        self.ends[self.count] = (at + buf.len(), peer);
        self.count += 1;
        true
    }

    /// One `sendmmsg` of what the kernel has not taken yet: `Err(EAGAIN)` if it had no
    /// room. A datagram it refuses is dropped.
    fn send_some(&mut self, fd: rustix::fd::BorrowedFd<'_>) -> Result<(), Errno> {
        let (bytes, ends) = (&self.bytes, &self.ends);
        let start = |i: usize| if i == 0 { 0 } else { ends[i - 1].0 };
        let msgs = (self.sent..self.count).map(|i| (&bytes[start(i)..ends[i].0], ends[i].1));
        match self.msgs.send(fd, msgs) {
            Ok(n) => self.sent += n,
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err(Errno::AGAIN),
            Err(e) => {
                log::debug!(
                    "udp: sendmmsg: {e}; datagram to {} dropped",
                    ends[self.sent].1
                );
                self.sent += 1;
            }
        }
        if self.sent == self.count {
            self.count = 0;
            self.sent = 0;
        }
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

impl Shared {
    /// Sends everything held back, waiting for room if the kernel has none.
    async fn flush(&self) {
        let _ = self
            .io
            .io(Direction::Write, |fd| {
                let mut out = self.out.borrow_mut();
                let Some(out) = out.as_mut() else {
                    return Ok(());
                };
                while !out.is_empty() {
                    out.send_some(fd)?;
                }
                Ok(())
            })
            .await;
    }

    fn holds_back(&self) -> bool {
        self.out.borrow().as_ref().is_some_and(|o| !o.is_empty())
    }
}

impl IdleFlush for Shared {
    fn flush_now(&self) -> bool {
        let Ok(mut out) = self.out.try_borrow_mut() else {
            return false;
        };
        let Some(out) = out.as_mut() else {
            return true;
        };
        while !out.is_empty() {
            if out.send_some(self.io.fd.as_fd()).is_err() {
                return false;
            }
        }
        self.listed.set(false);
        true
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // What is held back goes out before the socket closes (if the kernel has room).
        self.flush_now();
    }
}

/// A v4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it stands for.
fn unmap(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

impl HostUdpSocket {
    /// The next queued datagram into `buf`, if one is queued; `Some(None)` for one that
    /// came without an address (skipped).
    fn take_queued(&mut self, buf: &mut [u8]) -> Option<Option<Received>> {
        let rx = self.rx.as_mut().filter(|rx| rx.queued())?;
        let i = rx.next;
        rx.next += 1;
        let got = rx.got[i];
        let stored = got.len.min(rx.slot_len);
        let len = stored.min(buf.len());
        let from = (i - 1) * rx.slot_len;
        buf[..len].copy_from_slice(&rx.slots[from..from + len]);
        Some(got.peer.map(|peer| Received {
            len,
            peer: unmap(peer),
            truncated: got.len > len,
        }))
    }

    /// Puts `buf` for `peer` into the outbox; `false` if it is full.
    fn hold_back(&mut self, buf: &[u8], peer: SocketAddr) -> bool {
        let mut out = self.shared.out.borrow_mut();
        let held = out
            .get_or_insert_with(|| Box::new(Outbox::new()))
            .push(buf, peer);
        if held && !self.shared.listed.replace(true) {
            let me: Rc<dyn IdleFlush> = self.shared.clone();
            self.reactor.flush_before_idle(Rc::downgrade(&me));
        }
        held
    }

    /// One `recvmmsg` into `buf` and the slots; hands out the first datagram.
    async fn recv_batch(
        &mut self,
        buf: &mut [u8],
        slots: usize,
    ) -> Result<Option<Received>, Errno> {
        let rx = self.rx.get_or_insert_with(|| {
            Box::new(Inbox {
                msgs: MsgBatch::new(),
                slots: vec![0; BATCH_BYTES],
                slot_len: 0,
                got: [Got { len: 0, peer: None }; BATCH],
                next: 0,
                count: 0,
            })
        });
        let len = buf.len();
        let n = {
            let (msgs, area) = (&mut rx.msgs, &mut rx.slots);
            self.shared
                .io
                .io(Direction::Read, |fd| {
                    let bufs = core::iter::once(&mut *buf).chain(area.chunks_mut(len).take(slots));
                    msgs.recv(fd, bufs)
                })
                .await?
        };
        for i in 0..n {
            rx.got[i] = rx.msgs.got(i);
        }
        rx.slot_len = len;
        rx.next = 1;
        rx.count = n;
        let first = rx.got[0];
        let got = first.len.min(len);
        Ok(first.peer.map(|peer| Received {
            len: got,
            peer: unmap(peer),
            truncated: first.len > got,
        }))
    }
}

impl UdpSocket for HostUdpSocket {
    type Error = Error;

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, Error> {
        let local = self.local;
        loop {
            match self.take_queued(buf) {
                Some(Some(r)) => return Ok(r),
                // No source address: not something a UDP socket delivers; skip it.
                Some(None) => continue,
                None => {}
            }
            // Going to the kernel: what is held back goes first.
            if self.shared.holds_back() {
                self.shared.flush().await;
            }
            let slots = (BATCH_BYTES / buf.len().max(1)).min(BATCH - 1);
            let got = if buf.is_empty() || slots < 2 {
                // A large buffer: one datagram per call, straight into it.
                self.shared
                    .io
                    .io(Direction::Read, |fd| {
                        rustix::net::recvfrom(fd, &mut *buf, RecvFlags::TRUNC)
                    })
                    .await
                    .map(|(len, full, from)| {
                        from.and_then(|f| SocketAddr::try_from(f).ok())
                            .map(|peer| Received {
                                len,
                                peer: unmap(peer),
                                truncated: full > len,
                            })
                    })
            } else {
                self.recv_batch(buf, slots).await
            };
            match got {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => continue,
                // An ICMP error for an earlier send (port unreachable): it says nothing
                // about the next datagram, so keep receiving.
                Err(Errno::CONNREFUSED | Errno::HOSTUNREACH | Errno::NETUNREACH) => continue,
                Err(e) => {
                    log::debug!("udp {local}: recvfrom failed");
                    return Err(Error::os("recvfrom", e));
                }
            }
        }
    }

    async fn send_to(&mut self, buf: &[u8], peer: SocketAddr) -> Result<(), Error> {
        if buf.len() > HOST_UDP_MAX_PAYLOAD {
            return Err(Error::os("sendto", Errno::MSGSIZE));
        }
        // On an IPv4 socket an IPv6 peer cannot be reached; a v4-mapped one can, as IPv4.
        let peer = match (self.local, unmap(peer)) {
            (SocketAddr::V4(_), SocketAddr::V6(_)) => {
                return Err(Error::os("sendto", Errno::AFNOSUPPORT));
            }
            (_, p) => p,
        };
        let more_to_answer = self.rx.as_ref().is_some_and(|rx| rx.queued());
        if more_to_answer || self.shared.holds_back() {
            // Into the outbox (sending it first if it is full); out with the rest when
            // no received datagram waits to be answered.
            if !self.hold_back(buf, peer) {
                self.shared.flush().await;
                // An empty outbox has room for the largest datagram.
                let held = self.hold_back(buf, peer);
                debug_assert!(held);
            }
            if !more_to_answer {
                self.shared.flush().await;
            }
            return Ok(());
        }
        let sent = self
            .shared
            .io
            .io(Direction::Write, |fd| match peer {
                SocketAddr::V4(a) => rustix::net::sendto(fd, buf, SendFlags::NOSIGNAL, &a),
                SocketAddr::V6(a) => rustix::net::sendto(fd, buf, SendFlags::NOSIGNAL, &a),
            })
            .await
            .map_err(|e| Error::os("sendto", e))?;
        // A datagram is sent whole or not at all.
        debug_assert_eq!(sent, buf.len());
        Ok(())
    }

    fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local)
    }

    fn max_payload(&self) -> usize {
        HOST_UDP_MAX_PAYLOAD
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Platform;
    use morgana_signatures::{TcpErrorKind, UdpError};
    use std::net::UdpSocket as StdUdp;
    use std::vec;

    fn bind(p: &'static Platform, addr: &str) -> Result<HostUdpSocket, Error> {
        p.run(async {
            let net = HostTcp::connect(p).await.unwrap();
            net.bind(addr.parse().unwrap()).await
        })
    }

    #[test]
    fn echoes_and_reports_truncation() {
        let p = Platform::leak_new().unwrap();
        let mut sock = bind(p, "127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(sock.max_payload(), HOST_UDP_MAX_PAYLOAD);

        let client = StdUdp::bind("127.0.0.1:0").unwrap();
        client.send_to(b"hello", addr).unwrap();
        let big: std::vec::Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        client.send_to(&big, addr).unwrap();
        client.send_to(&[], addr).unwrap();

        let mut buf = [0u8; 1024];
        let r = p.run(sock.recv_from(&mut buf)).unwrap();
        assert_eq!(r.len, 5);
        assert!(!r.truncated);
        assert_eq!(r.peer, client.local_addr().unwrap());
        assert_eq!(&buf[..5], b"hello");
        p.run(sock.send_to(&buf[..r.len], r.peer)).unwrap();

        // Longer than the buffer: the head is kept, the rest reported as cut.
        let r = p.run(sock.recv_from(&mut buf)).unwrap();
        assert_eq!(r.len, 1024);
        assert!(r.truncated);
        assert_eq!(&buf[..], &big[..1024]);

        // An empty datagram is a datagram.
        let r = p.run(sock.recv_from(&mut buf)).unwrap();
        assert_eq!((r.len, r.truncated), (0, false));

        let mut back = [0u8; 16];
        let (n, from) = client.recv_from(&mut back).unwrap();
        assert_eq!((&back[..n], from), (&b"hello"[..], addr));
    }

    #[test]
    fn a_burst_is_received_in_one_batch_in_order_and_answered_in_order() {
        let p = Platform::leak_new().unwrap();
        let mut sock = bind(p, "127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let a = StdUdp::bind("127.0.0.1:0").unwrap();
        let b = StdUdp::bind("127.0.0.1:0").unwrap();
        // Sizes 1..=40 from two peers, plus one of 100 bytes: all queued in the kernel
        // before the first receive (loopback delivers within `send_to`).
        let mut sent = std::vec::Vec::new();
        for i in 1..=40u8 {
            let from = if i % 3 == 0 { &b } else { &a };
            let d: std::vec::Vec<u8> = (0..i).map(|k| i.wrapping_add(k)).collect();
            from.send_to(&d, addr).unwrap();
            sent.push((d, from.local_addr().unwrap()));
        }
        let big = [7u8; 100];
        a.send_to(&big, addr).unwrap();
        p.run(async {
            // A 64-byte buffer: batches of up to BATCH; each datagram comes out whole,
            // from its peer, in the order sent, and is echoed (held back, then sent).
            let mut buf = [0u8; 64];
            for (d, from) in &sent {
                let r = sock.recv_from(&mut buf).await.unwrap();
                assert_eq!((&buf[..r.len], r.peer, r.truncated), (&d[..], *from, false));
                sock.send_to(&buf[..r.len], r.peer).await.unwrap();
            }
            // Longer than the buffer of the receive that fetched it: cut and reported.
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!((r.len, r.truncated), (64, true));
            assert_eq!(&buf[..], &big[..64]);
        });
        // The echoes arrive in order, each at its peer.
        let mut back = [0u8; 128];
        a.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        for (d, from) in &sent {
            let c = if *from == a.local_addr().unwrap() {
                &a
            } else {
                &b
            };
            let (n, src) = c.recv_from(&mut back).unwrap();
            assert_eq!((&back[..n], src), (&d[..], addr));
        }
    }

    #[test]
    fn a_queued_datagram_is_cut_to_a_smaller_later_buffer() {
        let p = Platform::leak_new().unwrap();
        let mut sock = bind(p, "127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        let c = StdUdp::bind("127.0.0.1:0").unwrap();
        c.send_to(b"first", addr).unwrap();
        c.send_to(&[9u8; 50], addr).unwrap();
        c.send_to(b"third", addr).unwrap();
        p.run(async {
            let mut buf = [0u8; 64];
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..r.len], b"first");
            let mut small = [0u8; 8];
            let r = sock.recv_from(&mut small).await.unwrap();
            assert_eq!((r.len, r.truncated, small), (8, true, [9u8; 8]));
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..r.len], r.truncated), (&b"third"[..], false));
        });
    }

    #[test]
    fn a_held_back_answer_goes_out_before_the_loop_sleeps() {
        // Three queries arrive together; the first is answered (held back, as two more
        // wait), then the program waits on something else instead of receiving: the
        // answer must still leave, or the client never acknowledges it.
        let p = Platform::leak_new().unwrap();
        let mut sock = bind(p, "127.0.0.1:0").unwrap();
        let mut acks = bind(p, "127.0.0.1:0").unwrap();
        let (addr, ack_addr) = (sock.local_addr().unwrap(), acks.local_addr().unwrap());
        let c = StdUdp::bind("127.0.0.1:0").unwrap();
        for q in [&b"q1"[..], b"q2", b"q3"] {
            c.send_to(q, addr).unwrap();
        }
        let client = std::thread::spawn(move || {
            c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 16];
            let said: &[u8] = match c.recv_from(&mut buf) {
                Ok((n, _)) if &buf[..n] == b"a1" => b"ack",
                _ => b"no answer",
            };
            c.send_to(said, ack_addr).unwrap();
        });
        p.run(async {
            let mut buf = [0u8; 16];
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..r.len], b"q1");
            sock.send_to(b"a1", r.peer).await.unwrap();
            let r = acks.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..r.len], b"ack");
        });
        client.join().unwrap();
    }

    #[test]
    fn too_large_and_wrong_family_are_errors() {
        let p = Platform::leak_new().unwrap();
        let mut sock = bind(p, "127.0.0.1:0").unwrap();
        let target = sock.local_addr().unwrap();
        let big = vec![0u8; HOST_UDP_MAX_PAYLOAD + 1];
        let e = p.run(sock.send_to(&big, target)).unwrap_err();
        assert_eq!(UdpError::kind(&e), TcpErrorKind::Invalid);
        assert_eq!(std::format!("{e}"), "sendto: message too long (EMSGSIZE)");
        let e = p
            .run(sock.send_to(b"x", "[2001:db8::1]:53".parse().unwrap()))
            .unwrap_err();
        assert_eq!(UdpError::kind(&e), TcpErrorKind::Invalid, "{e}");
        // The largest datagram goes through whole.
        let max = vec![7u8; HOST_UDP_MAX_PAYLOAD];
        p.run(sock.send_to(&max, target)).unwrap();
        let mut buf = vec![0u8; 70_000];
        let r = p.run(sock.recv_from(&mut buf)).unwrap();
        assert_eq!((r.len, r.truncated), (HOST_UDP_MAX_PAYLOAD, false));
    }

    #[test]
    fn port_in_use_is_reported_with_the_address() {
        let p = Platform::leak_new().unwrap();
        let taken = StdUdp::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(p, &std::format!("{addr}")).unwrap_err();
        assert_eq!(UdpError::kind(&e), TcpErrorKind::AddrInUse);
        assert_eq!(
            std::format!("{e}"),
            std::format!("address {addr} already in use (EADDRINUSE)")
        );
    }

    #[test]
    fn dual_stack_gives_ipv4_peers_as_ipv4() {
        let p = Platform::leak_new().unwrap();
        let Ok(mut sock) = bind(p, "[::]:0") else {
            // No IPv6 on this host (some containers).
            return;
        };
        let port = sock.local_addr().unwrap().port();
        let c4 = StdUdp::bind("127.0.0.1:0").unwrap();
        c4.send_to(b"four", ("127.0.0.1", port)).unwrap();
        let mut buf = [0u8; 16];
        let r = p.run(sock.recv_from(&mut buf)).unwrap();
        assert_eq!(r.peer, c4.local_addr().unwrap(), "v4-mapped peer unmapped");
        p.run(sock.send_to(b"back4", r.peer)).unwrap();
        let (n, _) = c4.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"back4");
        if let Ok(c6) = StdUdp::bind("[::1]:0") {
            c6.send_to(b"six", ("::1", port)).unwrap();
            let r = p.run(sock.recv_from(&mut buf)).unwrap();
            assert!(r.peer.is_ipv6());
            assert_eq!(r.peer, c6.local_addr().unwrap());
            p.run(sock.send_to(b"back6", r.peer)).unwrap();
            let (n, _) = c6.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"back6");
        }
    }
}
