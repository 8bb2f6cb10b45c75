//! A UDP echo service (RFC 862): every datagram goes back to whoever sent it.
//!
//! This is the job of the `udp-echo` appliance, written against the `UDP` signature
//! only, so the same code runs over the host's sockets (`morgana_unix::HostTcp`) and over
//! Morgana's own stack (`morgana_direct::Stack` with its `udp` feature) on a tap,
//! virtio-net or Xen netfront:
//!
//! ```ignore
//! // The appliance's job (what the generated code starts):
//! impl Echo {
//!     pub async fn start<C: Console, U: Udp>(console: C, net: U) -> Result<(), U::Error> {
//!         let address = SocketAddr::from((config::ADDRESS, config::PORT));
//!         match morgana_udp_echo::start(console, net, address).await? {}
//!     }
//! }
//! ```
//!
//! Decisions:
//! - One buffer of [`UdpSocket::max_payload`] + 1 bytes is allocated when the service
//!   starts; nothing is allocated per datagram.
//! - A datagram longer than the socket can send back (it arrives truncated) is dropped,
//!   and counted; echoing its head would answer with something that was not sent.
//! - A failed send (a peer the stack cannot reach, a full queue on the host) loses that
//!   one echo, as UDP may; it never stops the service. A failed receive does: it means
//!   the socket itself is broken.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::vec;
use core::convert::Infallible;
use core::net::SocketAddr;

use morgana_signatures::{Console, ShowAddr, Udp, UdpSocket};

/// What the service has done, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams echoed.
    pub echoed: u64,
    /// Datagrams dropped because they were larger than the socket can send back.
    pub too_large: u64,
    /// Echoes the stack refused to send.
    pub send_errors: u64,
}

/// Binds `address` on `net`, writes `udp echo on ADDR` on the console, and echoes
/// forever. Fails only if binding or receiving fails.
pub async fn start<C: Console, U: Udp>(
    console: C,
    net: U,
    address: SocketAddr,
) -> Result<Infallible, U::Error> {
    let mut socket = net.bind(address).await?;
    let local = socket.local_addr()?;
    let mut line = Line::new();
    let _ = core::fmt::write(&mut line, format_args!("udp echo on {}\n", ShowAddr(local)));
    console.write_bytes(line.as_bytes());
    let mut counters = Counters::default();
    serve(&mut socket, &mut counters).await
}

/// Echoes every datagram `socket` receives back to its sender, forever, counting in
/// `counters`. Returns only the error of a failed receive.
pub async fn serve<S: UdpSocket>(
    socket: &mut S,
    counters: &mut Counters,
) -> Result<Infallible, S::Error> {
    // One byte more than the largest datagram the socket sends: a datagram that fills
    // it was cut.
    let mut buf = vec![0u8; socket.max_payload() + 1];
    loop {
        let got = socket.recv_from(&mut buf).await?;
        if got.truncated || got.len > socket.max_payload() {
            counters.too_large += 1;
            log::debug!(
                "udp echo: a datagram from {} is larger than {} bytes, dropped",
                ShowAddr(got.peer),
                socket.max_payload()
            );
            continue;
        }
        match socket.send_to(&buf[..got.len], got.peer).await {
            Ok(()) => counters.echoed += 1,
            Err(e) => {
                counters.send_errors += 1;
                log::debug!("udp echo: cannot answer {}: {e}", ShowAddr(got.peer));
            }
        }
    }
}

/// Echoes every datagram of at most `limit` bytes (and at most what the socket can send)
/// back to its sender, forever, like [`serve`]; a longer one arrives truncated and is
/// not echoed, and the console says so (the 1st, 2nd, 4th, 8th, ... such datagram, so
/// that a flood cannot flood the console). This is the udp-echo appliance's job, whose
/// limit comes from its configuration.
pub async fn serve_limited<S: UdpSocket, C: Console>(
    socket: &mut S,
    limit: usize,
    console: &C,
    counters: &mut Counters,
) -> Result<Infallible, S::Error> {
    let limit = limit.min(socket.max_payload());
    let mut buf = vec![0u8; limit + 1];
    loop {
        let got = socket.recv_from(&mut buf).await?;
        if got.truncated || got.len > limit {
            counters.too_large += 1;
            if counters.too_large.is_power_of_two() {
                let mut line = Line::new();
                let _ = core::fmt::write(
                    &mut line,
                    format_args!(
                        "udp echo: a datagram from {} was truncated: longer than {limit} bytes, not echoed ({} so far)\n",
                        ShowAddr(got.peer),
                        counters.too_large
                    ),
                );
                console.write_bytes(line.as_bytes());
            }
            continue;
        }
        match socket.send_to(&buf[..got.len], got.peer).await {
            Ok(()) => counters.echoed += 1,
            Err(e) => {
                counters.send_errors += 1;
                log::debug!("udp echo: cannot answer {}: {e}", ShowAddr(got.peer));
            }
        }
    }
}

/// A line for the console, formatted without allocating.
struct Line {
    buf: [u8; 160],
    len: usize,
}

impl Line {
    fn new() -> Line {
        Line {
            buf: [0; 160],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl core::fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
