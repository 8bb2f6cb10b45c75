//! Morgana's direct TCP/IP stack: [smoltcp] over any [`NetIf`], implementing the `TCP`
//! signature ([`Tcp`]).
//!
//! This is MirageOS's `MirTCP : TCP(ETH)` in Rust: [`Stack<N, C>`] is generic over a
//! network interface `N` (a Linux tap on Unix, virtio-net or Xen netfront in a kernel)
//! and a timer `C`, and the HTTP server runs over it unchanged. It is `#![no_std]` +
//! `alloc` and free of unsafe code.
//!
//! [smoltcp]: https://docs.rs/smoltcp
//! [`NetIf`]: morgana_signatures::NetIf
//! [`Tcp`]: morgana_signatures::Tcp
//!
//! ```ignore
//! // What the generated connect chain does for `Network(stack: Direct)`:
//! let tap = morgana_unix::Tap::open(platform, "tap0")?;
//! let net = morgana_direct::Stack::connect(
//!     tap,
//!     platform.clock(),
//!     platform.entropy(),
//!     StackConfig::new(Ipv4Config::Static { address: [10, 99, 0, 2], prefix_len: 24, gateway: None }),
//! )
//! .await?;
//! let http = morgana_http::Server::connect(net, platform.clock(), config).await?;
//! ```
//!
//! # What it does
//!
//! - Ethernet with ARP, IPv4 with a static address or a DHCP lease (renewed while the
//!   stack runs; the address is logged at `info` level) or none at all
//!   ([`Ipv4Config::Off`], an IPv6-only stack), ICMP echo (ping) answered by the
//!   interface itself, and TCP servers; UDP sockets with the `udp` feature, IPv6
//!   (link-local, SLAAC, static; ICMPv6 echo and neighbour discovery) with `ipv6`. No
//!   outgoing TCP connections: nothing in the signatures asks for them.
//! - smoltcp is built without `std` and without its `log` feature; its features are
//!   `medium-ethernet`, `proto-ipv4`, `socket-tcp`, `socket-dhcpv4`,
//!   `auto-icmp-echo-reply`, `async` (socket wakers) and `alloc`.
//! - The entropy source seeds smoltcp's generator, which makes the initial sequence
//!   numbers, and the port chosen for `listen` on port 0.
//! - TCP loss recovery beside smoltcp: the device wrapper keeps copies of the data
//!   segments sent and resends holes on duplicate ACKs, SACK blocks and its own 200 ms
//!   timer, before smoltcp's 1 s retransmission timeout (module `recovery`;
//!   [`Stats::recovery`] counts what it resent).
//!
//! # How it is driven
//!
//! smoltcp is a poll-driven library: someone must call `Interface::poll` when a frame
//! arrives and when a timer (retransmission, delayed ACK, DHCP renewal) is due. Morgana's
//! executors cannot spawn a background task, so the stack is driven by the operations
//! that wait on it, and needs nothing from the generated code besides `connect`:
//!
//! - The state (interface, sockets, listeners) sits in one `Rc<RefCell<..>>` shared by
//!   the [`Stack`], its [`Listener`]s and [`Stream`]s. Single-threaded by construction;
//!   the borrow is never held across an `.await`.
//! - Every pending operation (`accept`, `read`, `write`, waiting for a DHCP lease,
//!   [`Stack::run`]) is enlisted in a waiter table with its waker. One of them is the
//!   **driver**: when polled it runs the pump (`poll_ingress_single` for up to
//!   [`INGRESS_BUDGET`] frames, then `poll_egress` until nothing is left), parks its
//!   waker on the device ([`NetIf::register_rx_waker`]) and sleeps with the [`Timer`]
//!   until smoltcp's `poll_at` deadline. The sleep is one timer future re-armed in place.
//! - The other operations only register their wakers on their own smoltcp sockets
//!   (`register_recv_waker` / `register_send_waker`), which smoltcp wakes from inside
//!   the driver's pump. A woken operation checks its socket and returns; it does not
//!   pump unless work is queued.
//! - An operation that queues work (data, a FIN, a window update) pumps right after, so
//!   what it queued is on the wire before it returns; dropping a stream or a listener
//!   pumps too. Except a TCP `write` (and a UDP `send_to` in a burst) while another
//!   operation drives: it queues its data and wakes the driver, whose next pump (once
//!   the writing task yields) sends what every connection wrote in that turn in one
//!   pass over the sockets.
//! - When the driver finishes or is cancelled (dropped), it wakes another pending
//!   operation, which becomes the driver at its next poll. So the interface is driven
//!   as long as any operation is pending: a server's `accept` always is. An appliance
//!   that keeps the stack idle but still wants ARP and ping answered (or a DHCP lease
//!   renewed) runs [`Stack::run`] beside its work.
//!
//! With one driver there is one timer and one device waker however many connections
//! wait, and a received frame costs one pump plus a poll of the operations whose
//! sockets it concerns. A pump is O(sockets) (smoltcp walks its socket set for egress).
//!
//! # Listening: a backlog of pre-listening sockets
//!
//! A smoltcp TCP socket carries one connection, from LISTEN onwards. A [`Listener`]
//! owns a few sockets in LISTEN ([`LISTEN_SPARES`]) plus the connections that are
//! handshaking or established but not accepted yet. After every received frame that
//! may have consumed a listening socket, the pump adds a new one, so a burst of SYNs
//! between two `accept`s finds a listening socket for each, up to about
//! [`StackConfig::backlog`] waiting connections (default 128: redis-benchmark's 50
//! clients connecting at once all get in before the first `accept`). Beyond that, or
//! when [`StackConfig::max_sockets`] are all in use, a SYN is dropped without an answer,
//! as Linux does with a full accept queue: the client sends it again (after 1, 3, 7 s
//! ...) and gets in once there is room, or gives up with a timeout; it is never reset.
//! A connection to a port nobody listens on is refused with a reset. A connection reset or timed
//! out before `accept` puts its socket back to listening. `accept` hands out the
//! oldest socket that completed its handshake.
//!
//! # Buffers and limits
//!
//! Each socket has [`StackConfig::rx_buffer`] (default 16 KiB: the advertised window)
//! and [`StackConfig::tx_buffer`] (default 64 KiB: what can be in flight) bytes,
//! allocated when the socket is made. At most [`StackConfig::max_sockets`] (default
//! 128, so 10 MiB of buffers) exist at once; beyond that listeners stop adding spares and
//! new connections are refused until some close. Handshakes time out after
//! [`HANDSHAKE_TIMEOUT`], and an established connection that does not acknowledge data
//! for [`CONNECTION_TIMEOUT`] is aborted (reads and writes then fail with
//! [`Error::Reset`]).
//!
//! # Closing
//!
//! `shutdown` queues a FIN after the data written and returns at once, like
//! `shutdown(SHUT_WR)` on a host socket. Dropping a [`Stream`] closes gracefully as
//! well; the socket then belongs to the stack until the close completes, for at most
//! [`ORPHAN_TIMEOUT`], after which it is reset. Closed sockets are removed from the
//! socket set (and their buffers freed) as soon as they are done, TIME-WAIT included
//! (the stack does not hold a socket for two minutes to re-acknowledge a repeated FIN;
//! the peer would get a reset instead). At `max_sockets`, the oldest closing socket is
//! reclaimed first.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(test)]
extern crate std;

mod config;
mod device;
mod error;
#[cfg(feature = "ipv6")]
mod ipv6;
mod recovery;
mod stack;
mod tcp;
#[cfg(feature = "udp")]
mod udp;

pub use config::{
    DEFAULT_BACKLOG, DEFAULT_DHCP_TIMEOUT, DEFAULT_MAX_SOCKETS, DEFAULT_RX_BUFFER,
    DEFAULT_TX_BUFFER, DEFAULT_UDP_RX_BUFFER, DEFAULT_UDP_TX_BUFFER, Ipv4Config, Ipv6Config,
    StackConfig,
};
pub use error::Error;
#[cfg(feature = "ipv6")]
pub use ipv6::{link_local, slaac_address};
pub use recovery::RecoveryStats;
pub use stack::{Stack, Stats};
pub use tcp::{Listener, Stream};
#[cfg(feature = "udp")]
pub use udp::UdpSocket;

/// Whether this build has IPv6 (the `ipv6` feature; see [`Ipv6Config`]).
pub const IPV6: bool = cfg!(feature = "ipv6");

/// Whether this build has UDP sockets (the `udp` feature): the stack implements
/// [`Udp`](morgana_signatures::Udp) only then, so an appliance without UDP carries
/// none of smoltcp's UDP socket code.
pub const UDP: bool = cfg!(feature = "udp");

#[cfg(doc)]
use morgana_signatures::{NetIf, Timer};

/// The most received frames one pump processes before it lets other tasks run (the
/// driver is woken again at once for the rest).
pub const INGRESS_BUDGET: usize = 64;

/// How many sockets each listener keeps in the LISTEN state.
pub const LISTEN_SPARES: usize = 2;

/// How long a connection may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(10);

/// How long an established connection may leave sent data unacknowledged before it is
/// aborted.
pub const CONNECTION_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(60);

/// How long a dropped connection may take to finish closing before it is reset.
pub const ORPHAN_TIMEOUT: core::time::Duration = core::time::Duration::from_secs(30);
