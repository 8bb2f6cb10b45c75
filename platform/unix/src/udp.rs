//! UDP over the host's sockets: non-blocking datagram sockets on the epoll loop.
//!
//! - [`HostTcp`] (the host's sockets) implements [`Udp`] too: `bind` makes a
//!   `SOCK_DGRAM` socket, non-blocking and close-on-exec, registered with the reactor
//!   like a TCP socket.
//! - `recv_from` is one `recvfrom(MSG_TRUNC)` into the caller's buffer: the kernel
//!   returns the datagram's real length, so truncation is reported without a second
//!   buffer, and nothing is allocated per datagram.
//! - A socket bound to `[::]` is dual-stack (Linux's default): IPv4 peers arrive as
//!   v4-mapped addresses (`::ffff:a.b.c.d`), which `recv_from` gives back as plain IPv4
//!   addresses, and `send_to` takes an IPv4 peer on such a socket (Linux accepts an
//!   `AF_INET` destination there).

use core::net::{SocketAddr, SocketAddrV4};
use morgana_signatures::{Received, Udp, UdpSocket};
use rustix::fd::AsFd;
use rustix::io::Errno;
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

use crate::Error;
use crate::reactor::Direction;
use crate::tcp::{HostTcp, Registered, socket_addr};

/// The largest UDP payload over IPv4 (65,535 less the IPv4 and UDP headers); the same
/// limit is applied to IPv6 sockets so that code written for one fits the other.
pub const HOST_UDP_MAX_PAYLOAD: usize = 65_507;

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
        let io = Registered::new(fd, self.reactor()).map_err(|e| Error::os("epoll_ctl", e))?;
        log::debug!("udp bound on {local}");
        Ok(HostUdpSocket { io, local })
    }
}

/// A bound UDP socket of [`HostTcp`] (the host's sockets).
pub struct HostUdpSocket {
    io: Registered,
    local: SocketAddr,
}

impl core::fmt::Debug for HostUdpSocket {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostUdpSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
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

impl UdpSocket for HostUdpSocket {
    type Error = Error;

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, Error> {
        let local = self.local;
        loop {
            let got = self
                .io
                .io(Direction::Read, |fd| {
                    rustix::net::recvfrom(fd, &mut *buf, RecvFlags::TRUNC)
                })
                .await;
            match got {
                Ok((len, full, Some(from))) => {
                    // An address the kernel gives for a datagram is always IPv4 or IPv6.
                    let Ok(peer) = SocketAddr::try_from(from) else {
                        continue;
                    };
                    return Ok(Received {
                        len,
                        peer: unmap(peer),
                        truncated: full > len,
                    });
                }
                // No source address: not something a UDP socket delivers; skip it.
                Ok((_, _, None)) => continue,
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
        let sent = self
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
