//! What the appliance tells the stack (compiled in by codegen).

use core::fmt;
use core::net::Ipv4Addr;
use core::time::Duration;

use crate::Error;

/// How the stack gets its IPv4 address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Config {
    /// Lease an address with DHCP; [`Stack::connect`](crate::Stack::connect) waits for
    /// the first lease (at most [`StackConfig::dhcp_timeout`]) and the stack renews it
    /// while it runs.
    Dhcp,
    /// A fixed address.
    Static {
        /// The address, e.g. `[10, 99, 0, 2]`.
        address: [u8; 4],
        /// The length of the subnet prefix, 1 to 32 (`24` for a /24).
        prefix_len: u8,
        /// The default gateway, inside the subnet; `None` for a stack that only talks to
        /// its own subnet.
        gateway: Option<[u8; 4]>,
    },
}

impl fmt::Display for Ipv4Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv4Config::Dhcp => f.write_str("DHCP"),
            Ipv4Config::Static {
                address,
                prefix_len,
                gateway,
            } => {
                write!(f, "{}/{prefix_len}", Ipv4Addr::from(address))?;
                match gateway {
                    Some(g) => write!(f, " via {}", Ipv4Addr::from(g)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Receive buffer of each TCP connection by default: 16 KiB (the largest window the
/// stack advertises; a request of a static site fits many times over).
pub const DEFAULT_RX_BUFFER: usize = 16 * 1024;

/// Transmit buffer of each TCP connection by default: 32 KiB (what a response can have
/// in flight and unacknowledged; enough to keep a LAN or a tap busy).
pub const DEFAULT_TX_BUFFER: usize = 32 * 1024;

/// Connections a listener holds before they are accepted, by default.
pub const DEFAULT_BACKLOG: usize = 32;

/// Most TCP sockets (listening, connected, and closing) at once, by default: with the
/// default buffers at most 6 MiB of socket buffers.
pub const DEFAULT_MAX_SOCKETS: usize = 128;

/// How long [`Stack::connect`](crate::Stack::connect) waits for a DHCP lease, by default.
pub const DEFAULT_DHCP_TIMEOUT: Duration = Duration::from_secs(10);

/// Configuration of a [`Stack`](crate::Stack).
///
/// Memory is bounded by `max_sockets * (rx_buffer + tx_buffer)` plus a few hundred bytes
/// of state per socket: buffers are allocated when a socket is made (a listener keeps a
/// couple of spare listening sockets) and freed when it is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackConfig {
    /// The IPv4 address: static or DHCP.
    pub ipv4: Ipv4Config,
    /// How long to wait for the first DHCP lease (ignored for a static address).
    pub dhcp_timeout: Duration,
    /// Bytes of receive buffer per TCP connection (1 KiB to 1 GiB).
    pub rx_buffer: usize,
    /// Bytes of transmit buffer per TCP connection (1 KiB to 1 GiB).
    pub tx_buffer: usize,
    /// About how many connections a listener keeps waiting for `accept`; a connection
    /// attempt beyond that is refused (reset), like a full accept queue.
    pub backlog: usize,
    /// The most TCP sockets at once. When they are all in use, new connections are
    /// refused until some close; the oldest connection that was dropped by the
    /// application but is still closing is reclaimed first.
    pub max_sockets: usize,
}

impl StackConfig {
    /// `ipv4` with the defaults for everything else.
    pub const fn new(ipv4: Ipv4Config) -> StackConfig {
        StackConfig {
            ipv4,
            dhcp_timeout: DEFAULT_DHCP_TIMEOUT,
            rx_buffer: DEFAULT_RX_BUFFER,
            tx_buffer: DEFAULT_TX_BUFFER,
            backlog: DEFAULT_BACKLOG,
            max_sockets: DEFAULT_MAX_SOCKETS,
        }
    }

    /// Checks that the configuration can work, with a message saying what to change.
    pub(crate) fn check(&self) -> Result<(), Error> {
        const BUFFER: core::ops::RangeInclusive<usize> = 1024..=(1 << 30);
        if !BUFFER.contains(&self.rx_buffer) {
            return Err(Error::InvalidConfig(
                "rx_buffer must be between 1 KiB and 1 GiB",
            ));
        }
        if !BUFFER.contains(&self.tx_buffer) {
            return Err(Error::InvalidConfig(
                "tx_buffer must be between 1 KiB and 1 GiB",
            ));
        }
        if self.backlog == 0 {
            return Err(Error::InvalidConfig("backlog must be at least 1"));
        }
        if self.max_sockets < 2 {
            return Err(Error::InvalidConfig("max_sockets must be at least 2"));
        }
        match self.ipv4 {
            Ipv4Config::Dhcp => {
                if self.dhcp_timeout.is_zero() {
                    return Err(Error::InvalidConfig("dhcp_timeout must not be zero"));
                }
            }
            Ipv4Config::Static {
                address,
                prefix_len,
                gateway,
            } => check_static(Ipv4Addr::from(address), prefix_len, gateway)?,
        }
        Ok(())
    }
}

fn check_static(address: Ipv4Addr, prefix_len: u8, gateway: Option<[u8; 4]>) -> Result<(), Error> {
    if !(1..=32).contains(&prefix_len) {
        return Err(Error::InvalidConfig("prefix_len must be between 1 and 32"));
    }
    if address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_loopback()
    {
        return Err(Error::InvalidConfig(
            "the static address must be a unicast address (not 0.0.0.0, 127.x, multicast or broadcast)",
        ));
    }
    let mask = u32::MAX << (32 - u32::from(prefix_len));
    let host = u32::from(address) & !mask;
    if prefix_len <= 30 && (host == 0 || host == !mask) {
        return Err(Error::InvalidConfig(
            "the static address is the network or broadcast address of its subnet",
        ));
    }
    if let Some(g) = gateway {
        let g = Ipv4Addr::from(g);
        if g == address {
            return Err(Error::InvalidConfig(
                "the gateway must not be the stack's own address",
            ));
        }
        if u32::from(g) & mask != u32::from(address) & mask {
            return Err(Error::InvalidConfig(
                "the gateway must be inside the stack's subnet",
            ));
        }
    }
    Ok(())
}
