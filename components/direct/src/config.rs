//! What the appliance tells the stack (compiled in by codegen).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};
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
    /// No IPv4 at all: an IPv6-only stack (needs [`StackConfig::with_ipv6`]; IPv4
    /// frames are dropped, ARP is not answered, and a socket bound to an IPv4 address,
    /// `0.0.0.0` included, fails with [`Error::NoIpv4`](crate::Error::NoIpv4)).
    Off,
}

impl fmt::Display for Ipv4Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv4Config::Dhcp => f.write_str("DHCP"),
            Ipv4Config::Off => f.write_str("off"),
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

/// How the stack gets its IPv6 addresses (with [`StackConfig::with_ipv6`]; a stack has
/// no IPv6 without it). Every choice includes the link-local address made from the MAC
/// address (`fe80::/64`, modified EUI-64), which neighbour discovery with the routers
/// needs.
///
/// IPv6 needs morgana-direct's `ipv6` cargo feature: smoltcp's IPv6 code is about 33 KB
/// of image, which an IPv4-only appliance must not carry (its network code is dispatched
/// on each frame's EtherType at run time, so it cannot fall away unused). A stack built
/// without the feature refuses an IPv6 configuration ([`StackConfig::check_features`]
/// fails at compile time in a `const`, `connect` at run time).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv6Config {
    /// The link-local address only.
    LinkLocal,
    /// The link-local address, and an address for each prefix that router
    /// advertisements announce with the autonomous flag (SLAAC, RFC 4862: prefix +
    /// modified EUI-64), with the advertising router as the default gateway. The stack
    /// solicits routers when it starts; `connect` does not wait for an answer.
    Slaac,
    /// The link-local address and a fixed address.
    Static {
        /// The address as eight 16-bit groups, e.g. `[0xfd00, 0, 0, 0, 0, 0, 0, 2]`.
        address: [u16; 8],
        /// The length of the on-link prefix, 1 to 128 (`64` for a /64).
        prefix_len: u8,
        /// The default gateway: on the link, so inside the prefix or link-local
        /// (`fe80::/10`, what routers usually are); `None` for a stack that only talks to
        /// its link.
        gateway: Option<[u16; 8]>,
    },
}

fn v6(groups: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, g, h] = groups;
    Ipv6Addr::new(a, b, c, d, e, f, g, h)
}

impl fmt::Display for Ipv6Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ipv6Config::LinkLocal => f.write_str("link-local only"),
            Ipv6Config::Slaac => f.write_str("SLAAC"),
            Ipv6Config::Static {
                address,
                prefix_len,
                gateway,
            } => {
                write!(f, "{}/{prefix_len}", v6(address))?;
                match gateway {
                    Some(g) => write!(f, " via {}", v6(g)),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Receive buffer of each TCP connection by default: 16 KiB (the largest window the
/// stack advertises; a request of a static site fits many times over).
pub const DEFAULT_RX_BUFFER: usize = 16 * 1024;

/// Transmit buffer of each TCP connection by default: 64 KiB (what a response can have
/// in flight and unacknowledged). On a lossy link a hole must be reported by three
/// duplicate ACKs, which only segments sent after it bring: with 32 KiB the buffer was
/// often full behind a hole, no segment followed, and smoltcp waited for its
/// retransmission timeout (at least 1 s). 64 KiB measured faster on the lossy-link
/// rig, 128 KiB slower (smoltcp resends everything in flight after a timeout):
/// docs/benchmarks.md, "TCP over a lossy link".
pub const DEFAULT_TX_BUFFER: usize = 64 * 1024;

/// Connections a listener holds before they are accepted, by default: 128, Linux's
/// historical `SOMAXCONN`. A waiting connection has a socket (and its buffers) only
/// while it waits, so a large backlog costs nothing until a burst of connections
/// arrives; [`DEFAULT_MAX_SOCKETS`] bounds the whole anyway.
pub const DEFAULT_BACKLOG: usize = 128;

/// Most TCP sockets (listening, connected, and closing) at once, by default: with the
/// default buffers at most 10 MiB of socket buffers.
pub const DEFAULT_MAX_SOCKETS: usize = 128;

/// Receive buffer of each UDP socket by default: 16 KiB of datagrams (eleven at the
/// Ethernet MTU, hundreds of DNS queries) waiting for `recv_from`.
pub const DEFAULT_UDP_RX_BUFFER: usize = 16 * 1024;

/// Transmit buffer of each UDP socket by default: datagrams `send_to` queued that the
/// interface has not sent yet.
pub const DEFAULT_UDP_TX_BUFFER: usize = 16 * 1024;

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
    /// IPv6, if any (see [`Ipv6Config`]; needs the `ipv6` feature).
    pub ipv6: Option<Ipv6Config>,
    /// How long to wait for the first DHCP lease (ignored for a static address).
    pub dhcp_timeout: Duration,
    /// Bytes of receive buffer per TCP connection (1 KiB to 1 GiB).
    pub rx_buffer: usize,
    /// Bytes of transmit buffer per TCP connection (1 KiB to 1 GiB).
    pub tx_buffer: usize,
    /// About how many connections a listener keeps waiting for `accept`; a connection
    /// attempt beyond that is held off (its SYN dropped, so the client tries again
    /// later), like a full accept queue on Linux.
    pub backlog: usize,
    /// The most TCP sockets at once. When they are all in use, new connections are
    /// refused until some close; the oldest connection that was dropped by the
    /// application but is still closing is reclaimed first.
    pub max_sockets: usize,
    /// Bytes of receive buffer per UDP socket (2 KiB to 1 GiB), allocated at `bind`:
    /// datagrams that arrive while it is full are dropped.
    pub udp_rx_buffer: usize,
    /// Bytes of transmit buffer per UDP socket (2 KiB to 1 GiB), allocated at `bind`.
    pub udp_tx_buffer: usize,
}

impl StackConfig {
    /// `ipv4` with the defaults for everything else.
    pub const fn new(ipv4: Ipv4Config) -> StackConfig {
        StackConfig {
            ipv4,
            ipv6: None,
            dhcp_timeout: DEFAULT_DHCP_TIMEOUT,
            rx_buffer: DEFAULT_RX_BUFFER,
            tx_buffer: DEFAULT_TX_BUFFER,
            backlog: DEFAULT_BACKLOG,
            max_sockets: DEFAULT_MAX_SOCKETS,
            udp_rx_buffer: DEFAULT_UDP_RX_BUFFER,
            udp_tx_buffer: DEFAULT_UDP_TX_BUFFER,
        }
    }

    /// The same configuration with IPv6 (dual stack).
    pub const fn with_ipv6(mut self, ipv6: Ipv6Config) -> StackConfig {
        self.ipv6 = Some(ipv6);
        self
    }

    /// Checks that this build of the stack has what the configuration asks for, and
    /// returns it unchanged: in a `const` the build stops with the message.
    ///
    /// ```ignore
    /// const NET: StackConfig = StackConfig::new(Ipv4Config::Dhcp)
    ///     .with_ipv6(Ipv6Config::Slaac)
    ///     .check_features();
    /// ```
    pub const fn check_features(self) -> StackConfig {
        if matches!(self.ipv4, Ipv4Config::Off) && self.ipv6.is_none() {
            panic!(
                "the stack has neither IPv4 nor IPv6: with `Ipv4Config::Off` give it IPv6 \
                 (`with_ipv6`)"
            );
        }
        if self.ipv6.is_some() && !crate::IPV6 {
            panic!(
                "IPv6 is configured but morgana-direct was built without it: \
                 add `features = [\"ipv6\"]` to morgana-direct in the appliance's Cargo.toml"
            );
        }
        self
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
        const UDP_BUFFER: core::ops::RangeInclusive<usize> = 2048..=(1 << 30);
        if crate::UDP
            && (!UDP_BUFFER.contains(&self.udp_rx_buffer)
                || !UDP_BUFFER.contains(&self.udp_tx_buffer))
        {
            return Err(Error::InvalidConfig(
                "udp_rx_buffer and udp_tx_buffer must be between 2 KiB and 1 GiB",
            ));
        }
        match self.ipv6 {
            None => {}
            Some(_) if !crate::IPV6 => {
                return Err(Error::InvalidConfig(
                    "IPv6 is configured but morgana-direct was built without its `ipv6` feature",
                ));
            }
            Some(Ipv6Config::LinkLocal | Ipv6Config::Slaac) => {}
            Some(Ipv6Config::Static {
                address,
                prefix_len,
                gateway,
            }) => check_static_v6(v6(address), prefix_len, gateway.map(v6))?,
        }
        match self.ipv4 {
            Ipv4Config::Off if self.ipv6.is_none() => {
                return Err(Error::InvalidConfig(
                    "ipv4 is off and there is no IPv6: the stack would have no address \
                     (configure IPv6, or an IPv4 address or DHCP)",
                ));
            }
            Ipv4Config::Off => {}
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

fn check_static_v6(
    address: Ipv6Addr,
    prefix_len: u8,
    gateway: Option<Ipv6Addr>,
) -> Result<(), Error> {
    if !(1..=128).contains(&prefix_len) {
        return Err(Error::InvalidConfig(
            "the IPv6 prefix length must be between 1 and 128",
        ));
    }
    if address.is_unspecified() || address.is_loopback() || address.is_multicast() {
        return Err(Error::InvalidConfig(
            "the static IPv6 address must be a unicast address (not ::, ::1 or multicast)",
        ));
    }
    if address.is_unicast_link_local() {
        return Err(Error::InvalidConfig(
            "the static IPv6 address must not be link-local (fe80::/10): the stack makes its link-local address itself",
        ));
    }
    if address.to_ipv4_mapped().is_some() {
        return Err(Error::InvalidConfig(
            "the static IPv6 address must not be an IPv4-mapped address (::ffff:a.b.c.d)",
        ));
    }
    if let Some(g) = gateway {
        if g == address {
            return Err(Error::InvalidConfig(
                "the IPv6 gateway must not be the stack's own address",
            ));
        }
        if g.is_unspecified() || g.is_multicast() || g.is_loopback() {
            return Err(Error::InvalidConfig(
                "the IPv6 gateway must be a unicast address",
            ));
        }
        let mask = u128::MAX << (128 - u32::from(prefix_len));
        if !g.is_unicast_link_local() && u128::from(g) & mask != u128::from(address) & mask {
            return Err(Error::InvalidConfig(
                "the IPv6 gateway is off-link: it must be inside the address's prefix or link-local (fe80::/10)",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    fn static_v6(address: [u16; 8], prefix_len: u8, gateway: Option<[u16; 8]>) -> StackConfig {
        StackConfig::new(Ipv4Config::Dhcp).with_ipv6(Ipv6Config::Static {
            address,
            prefix_len,
            gateway,
        })
    }

    fn message(c: StackConfig) -> &'static str {
        match c.check() {
            Err(Error::InvalidConfig(m)) => m,
            other => panic!("expected an invalid configuration, got {other:?}"),
        }
    }

    const ADDR: [u16; 8] = [0xfd00, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn ipv6_configurations_are_checked() {
        if !crate::IPV6 {
            assert!(message(static_v6(ADDR, 64, None)).contains("`ipv6` feature"));
            return;
        }
        assert!(
            static_v6(ADDR, 64, Some([0xfd00, 0, 0, 0, 0, 0, 0, 1]))
                .check()
                .is_ok()
        );
        assert!(
            static_v6(ADDR, 64, Some([0xfe80, 0, 0, 0, 0, 0, 0, 1]))
                .check()
                .is_ok()
        );
        assert!(
            message(static_v6(ADDR, 64, Some([0xfd01, 0, 0, 0, 0, 0, 0, 1]))).contains("off-link")
        );
        assert!(message(static_v6(ADDR, 0, None)).contains("between 1 and 128"));
        assert!(message(static_v6(ADDR, 129, None)).contains("between 1 and 128"));
        assert!(message(static_v6([0; 8], 64, None)).contains("unicast"));
        assert!(message(static_v6([0xff02, 0, 0, 0, 0, 0, 0, 1], 64, None)).contains("unicast"));
        assert!(message(static_v6([0xfe80, 0, 0, 0, 0, 0, 0, 5], 64, None)).contains("link-local"));
        assert!(message(static_v6(ADDR, 64, Some(ADDR))).contains("own address"));
        let slaac = StackConfig::new(Ipv4Config::Dhcp).with_ipv6(Ipv6Config::Slaac);
        assert!(slaac.check().is_ok());
        assert_eq!(format!("{}", Ipv6Config::Slaac), "SLAAC");
    }

    #[test]
    fn ipv6_configurations_display() {
        let c = Ipv6Config::Static {
            address: ADDR,
            prefix_len: 64,
            gateway: Some([0xfe80, 0, 0, 0, 0, 0, 0, 1]),
        };
        assert_eq!(format!("{c}"), "fd00::2/64 via fe80::1");
    }

    #[test]
    fn udp_buffers_are_checked() {
        let mut c = StackConfig::new(Ipv4Config::Dhcp);
        c.udp_rx_buffer = 100;
        assert!(message(c).contains("udp_rx_buffer"));
    }
}
