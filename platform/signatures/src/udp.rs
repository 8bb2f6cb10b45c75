//! `UDP`: datagrams.
//!
//! Decisions recorded here:
//! - A socket is bound once ([`Udp::bind`]) and then sends to and receives from any peer;
//!   there is no `connect`. Servers (DNS, syslog, echo) answer whoever asked.
//! - Receiving copies the datagram into the caller's buffer and says how long it really
//!   was ([`Received::truncated`]), as `recvmsg` does with `MSG_TRUNC`: nothing is
//!   allocated per datagram, and a datagram larger than the buffer is reported, never
//!   silently cut.
//! - Datagrams are at most [`UdpSocket::max_payload`] bytes: the interface MTU less the IP
//!   and UDP headers on the direct stack (no IP fragmentation), 65,507 on host sockets.
//!   A larger one is refused with [`TcpErrorKind::Invalid`].
//! - Errors share the TCP classification ([`TcpErrorKind`]): generic code reacts to
//!   "address in use" or "exhausted" the same way for both protocols.

use core::fmt;
use core::net::SocketAddr;

use crate::TcpErrorKind;

/// An error of a UDP implementation.
pub trait UdpError: fmt::Debug + fmt::Display {
    /// The portable classification of this error.
    fn kind(&self) -> TcpErrorKind;
}

/// What [`UdpSocket::recv_from`] received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// How many bytes were written to the caller's buffer.
    pub len: usize,
    /// Who sent the datagram.
    pub peer: SocketAddr,
    /// Whether the datagram was longer than the buffer (its tail was dropped).
    pub truncated: bool,
}

/// `UDP`: a stack that can bind datagram sockets.
pub trait Udp {
    /// Errors of this stack.
    type Error: UdpError;
    /// A bound socket.
    type Socket: UdpSocket<Error = Self::Error>;

    /// Binds `addr`. The unspecified address (`0.0.0.0`, `[::]`) means every interface;
    /// port 0 picks a free port.
    async fn bind(&self, addr: SocketAddr) -> Result<Self::Socket, Self::Error>;
}

/// A bound UDP socket.
pub trait UdpSocket {
    /// Errors of the stack this socket belongs to.
    type Error: UdpError;

    /// Waits for the next datagram and copies it into `buf`.
    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, Self::Error>;

    /// Sends `buf` as one datagram to `peer`. Waits while the stack has no room; a
    /// datagram longer than [`UdpSocket::max_payload`] is an error.
    async fn send_to(&mut self, buf: &[u8], peer: SocketAddr) -> Result<(), Self::Error>;

    /// The address actually bound (useful with port 0).
    fn local_addr(&self) -> Result<SocketAddr, Self::Error>;

    /// The largest datagram this socket can send or receive whole.
    fn max_payload(&self) -> usize;
}
