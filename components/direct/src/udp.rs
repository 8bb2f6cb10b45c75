//! The UDP signature over the stack (the `udp` feature): smoltcp UDP sockets.
//!
//! - `bind` makes a smoltcp UDP socket whose packet buffers
//!   ([`StackConfig::udp_rx_buffer`](crate::StackConfig::udp_rx_buffer),
//!   [`udp_tx_buffer`](crate::StackConfig::udp_tx_buffer)) are allocated there and then:
//!   receiving and sending allocate nothing per datagram. A datagram that arrives while
//!   the receive buffer is full is dropped, as a host socket's would be.
//! - `recv_from` copies the oldest datagram into the caller's buffer and reports its
//!   real length through [`Received::truncated`]. A datagram already queued is taken
//!   without running the pump; only a receive that finds the socket empty pumps (and
//!   waits).
//! - `send_to` queues the datagram and runs the pump, so it is on the wire (or waiting
//!   for the peer's MAC address, which the stack asks for) when it returns; it waits only
//!   while the transmit buffer is full. **Answering a burst**: while more received
//!   datagrams wait on the socket and another operation drives the interface, the
//!   datagram is only queued; the next pump sends the whole burst's answers (the
//!   receive that empties the socket runs it, and the driver is woken so that it runs
//!   it anyway once the caller's task yields). One pump per burst rather than one per
//!   datagram in each direction: under QEMU TCG a pump is microseconds of emulated
//!   work.
//! - Datagrams are at most one frame: the interface MTU less the IP and UDP headers
//!   ([`UdpSocket::max_payload`]): smoltcp's IP fragmentation is not built in.
//! - A socket on `0.0.0.0` of a dual stack takes IPv4 datagrams only; `[::]` takes both
//!   families, and IPv4 peers come as IPv4 addresses.

use alloc::rc::Rc;
use alloc::vec;
use core::net::SocketAddr;
use core::task::Poll;

use morgana_signatures::{NetIf, Received, Timer, Udp};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::udp::{self, PacketBuffer, PacketMetadata, SendError};
use smoltcp::wire::{IpAddress, IpEndpoint, IpListenEndpoint};

use crate::Error;
use crate::stack::{Inner, Shared, Stack};

/// Bytes of IPv4 + UDP headers.
const V4_HEADERS: usize = 20 + 8;
/// Bytes of IPv6 + UDP headers.
const V6_HEADERS: usize = 40 + 8;
/// Payload bytes per metadata slot of a packet buffer: a buffer holds up to
/// `bytes / SLOT_BYTES` datagrams (small DNS queries fill it by bytes before slots).
const SLOT_BYTES: usize = 128;

impl<N: NetIf, C: Timer> Udp for Stack<N, C> {
    type Error = Error;
    type Socket = UdpSocket<N, C>;

    /// Binds `addr`: the unspecified address (`0.0.0.0`, or `[::]` for both families
    /// on a dual stack) or one of the stack's own; port 0 picks a free one from 49152
    /// up. A port bound by another UDP socket is [`Error::AddrInUse`].
    ///
    /// `max_payload` is the IPv4 maximum (MTU − 28) for a socket that takes IPv4
    /// (`0.0.0.0`, `[::]`, an IPv4 address), the IPv6 one (MTU − 48) for a socket on an
    /// IPv6 address; `send_to` refuses a datagram above its peer's family's maximum.
    async fn bind(&self, addr: SocketAddr) -> Result<UdpSocket<N, C>, Error> {
        let (handle, local, v4_only, max_payload) =
            self.shared.inner.borrow_mut().bind_udp(addr)?;
        Ok(UdpSocket {
            shared: self.shared.clone(),
            handle,
            local,
            v4_only,
            max_payload,
        })
    }
}

impl<N: NetIf> Inner<N> {
    /// One frame less `headers`, and never more than a buffer holds (a larger datagram
    /// could never be queued).
    fn max_udp_payload(&self, headers: usize) -> usize {
        self.dev
            .0
            .mtu()
            .saturating_sub(headers)
            .min(self.config.udp_rx_buffer)
            .min(self.config.udp_tx_buffer)
    }

    fn udp_port_in_use(&self, port: u16) -> bool {
        self.sockets.iter().any(|(_, s)| {
            <udp::Socket<'_> as smoltcp::socket::AnySocket<'_>>::downcast(s)
                .is_some_and(|u| u.endpoint().port == port)
        })
    }

    fn bind_udp(
        &mut self,
        addr: SocketAddr,
    ) -> Result<(SocketHandle, SocketAddr, bool, usize), Error> {
        let (endpoint_addr, v4_only) = self.local_endpoint(addr)?;
        if self.udp_sockets >= self.config.max_sockets {
            return Err(Error::Exhausted {
                max_sockets: self.config.max_sockets,
            });
        }
        let port = match addr.port() {
            0 => self
                .ephemeral_port(Self::udp_port_in_use)
                .ok_or(Error::AddrInUse(addr))?,
            p if self.udp_port_in_use(p) => return Err(Error::AddrInUse(addr)),
            p => p,
        };
        let buffer = |bytes: usize| {
            PacketBuffer::new(
                vec![PacketMetadata::EMPTY; (bytes / SLOT_BYTES).max(4)],
                vec![0u8; bytes],
            )
        };
        let mut socket = udp::Socket::new(
            buffer(self.config.udp_rx_buffer),
            buffer(self.config.udp_tx_buffer),
        );
        socket
            .bind(IpListenEndpoint {
                addr: endpoint_addr,
                port,
            })
            .map_err(|_| Error::AddrNotAvailable(addr))?;
        // A socket that takes IPv4 (on an IPv4 address, or `[::]`) carries the IPv4
        // maximum; one on an IPv6 address the IPv6 one (`send_to` checks each peer).
        let v4_too = addr.is_ipv4() || addr.ip().is_unspecified();
        let max_payload = self.max_udp_payload(if v4_too { V4_HEADERS } else { V6_HEADERS });
        self.udp_sockets += 1;
        let local = SocketAddr::new(addr.ip(), port);
        log::debug!("udp bound on {}", morgana_signatures::ShowAddr(local));
        Ok((self.sockets.add(socket), local, v4_only, max_payload))
    }
}

/// A bound UDP socket of a [`Stack`]. Dropping it unbinds the port and frees its
/// buffers (datagrams still queued for sending are dropped).
pub struct UdpSocket<N: NetIf, C: Timer> {
    shared: Rc<Shared<N, C>>,
    handle: SocketHandle,
    local: SocketAddr,
    v4_only: bool,
    max_payload: usize,
}

impl<N: NetIf, C: Timer> core::fmt::Debug for UdpSocket<N, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// `peer` as smoltcp's endpoint, or why it cannot be one for this socket.
fn endpoint(peer: SocketAddr, local: SocketAddr, v4_only: bool) -> Result<IpEndpoint, Error> {
    match peer {
        // A socket on an IPv6 address has no IPv4 source.
        SocketAddr::V4(_) if local.is_ipv6() && !local.ip().is_unspecified() => {
            Err(Error::Unaddressable(peer))
        }
        SocketAddr::V4(a) => Ok(IpEndpoint::from(a)),
        #[cfg(feature = "ipv6")]
        SocketAddr::V6(a) if !v4_only => match a.ip().to_ipv4_mapped() {
            Some(v4) => Ok(IpEndpoint::new(v4.into(), a.port())),
            None => Ok(IpEndpoint::from(a)),
        },
        #[cfg(feature = "ipv6")]
        SocketAddr::V6(_) => Err(Error::Unaddressable(peer)),
        #[cfg(not(feature = "ipv6"))]
        SocketAddr::V6(_) => {
            let _ = v4_only;
            Err(Error::Ipv6(peer))
        }
    }
}

impl<N: NetIf, C: Timer> morgana_signatures::UdpSocket for UdpSocket<N, C> {
    type Error = Error;

    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, Error> {
        let handle = self.handle;
        let v4_only = self.v4_only;
        // A datagram already queued is handed out without a pump and without joining
        // the waiters (which would make this receive the driver, then hand the role on
        // when it returns): a burst the last pump brought in costs one pump, not one
        // or two per datagram.
        if let Some(got) = take_queued(&mut self.shared.inner.borrow_mut(), handle, v4_only, buf) {
            return Ok(got);
        }
        let got = self
            .shared
            .drive(|inner, cx| match take_queued(inner, handle, v4_only, buf) {
                Some(got) => Poll::Ready(got),
                None => {
                    inner
                        .sockets
                        .get_mut::<udp::Socket>(handle)
                        .register_recv_waker(cx.waker());
                    Poll::Pending
                }
            })
            .await;
        Ok(got)
    }

    async fn send_to(&mut self, buf: &[u8], peer: SocketAddr) -> Result<(), Error> {
        let to = endpoint(peer, self.local, self.v4_only)?;
        let max = match to.addr {
            IpAddress::Ipv4(_) => self.max_payload,
            #[allow(unreachable_patterns)]
            _ => self
                .max_payload
                .min(self.shared.inner.borrow().max_udp_payload(V6_HEADERS)),
        };
        if buf.len() > max {
            return Err(Error::DatagramTooLarge {
                len: buf.len(),
                max,
            });
        }
        let handle = self.handle;
        {
            // Answering a burst (more datagrams wait to be received): the datagram is
            // queued and goes out with the others at the next pump, which the next
            // receive that finds the socket empty runs (`dirty`); the driver is woken
            // too, so that it pumps once this task yields, whatever the task does next.
            // Without a driver (no operation waits), it is sent at once as below.
            let mut inner = self.shared.inner.borrow_mut();
            if let Some(driver) = inner.driver_waker() {
                let socket = inner.sockets.get_mut::<udp::Socket>(handle);
                if socket.can_recv() && socket.send_slice(buf, to).is_ok() {
                    inner.dirty = true;
                    drop(inner);
                    driver.wake();
                    return Ok(());
                }
            }
        }
        self.shared
            .drive(|inner, cx| {
                let socket = inner.sockets.get_mut::<udp::Socket>(handle);
                match socket.send_slice(buf, to) {
                    Ok(()) => {
                        inner.dirty = true;
                        Poll::Ready(Ok(()))
                    }
                    Err(SendError::BufferFull) => {
                        socket.register_send_waker(cx.waker());
                        Poll::Pending
                    }
                    Err(SendError::Unaddressable) => Poll::Ready(Err(Error::Unaddressable(peer))),
                }
            })
            .await
    }

    fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.local)
    }

    fn max_payload(&self) -> usize {
        self.max_payload
    }
}

/// The oldest datagram queued on socket `handle`, copied into `buf` (IPv6 ones dropped
/// on an IPv4-only socket); `None` when none is queued.
fn take_queued<N: NetIf>(
    inner: &mut Inner<N>,
    handle: SocketHandle,
    v4_only: bool,
    buf: &mut [u8],
) -> Option<Received> {
    let socket = inner.sockets.get_mut::<udp::Socket>(handle);
    loop {
        match socket.recv() {
            Ok((payload, meta)) => {
                let peer = SocketAddr::from(meta.endpoint);
                if v4_only && peer.is_ipv6() {
                    // An IPv6 datagram for a socket on 0.0.0.0: not ours.
                    continue;
                }
                let len = payload.len().min(buf.len());
                buf[..len].copy_from_slice(&payload[..len]);
                return Some(Received {
                    len,
                    peer,
                    truncated: payload.len() > len,
                });
            }
            Err(udp::RecvError::Exhausted | udp::RecvError::Truncated) => return None,
        }
    }
}

impl<N: NetIf, C: Timer> Drop for UdpSocket<N, C> {
    fn drop(&mut self) {
        let mut inner = self.shared.inner.borrow_mut();
        inner.sockets.remove(self.handle);
        inner.udp_sockets -= 1;
    }
}
