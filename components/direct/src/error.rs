//! The stack's error type.

use core::fmt;
use core::net::SocketAddr;
use core::time::Duration;
use morgana_signatures::{ShowAddr, StartMessage, TcpError, TcpErrorKind, UdpError};

/// Why the direct stack could not start, listen, or move data.
#[derive(Clone, Debug)]
pub enum Error {
    /// The [`StackConfig`](crate::StackConfig) cannot work; the message says what to
    /// change.
    InvalidConfig(&'static str),
    /// No DHCP server leased an address within
    /// [`StackConfig::dhcp_timeout`](crate::StackConfig::dhcp_timeout).
    NoDhcpAnswer {
        /// How long the stack waited.
        after: Duration,
    },
    /// The entropy source failed, so the stack could not seed its sequence numbers.
    Entropy(StartMessage),
    /// An IPv6 address was asked for, and the stack has no IPv6 (not configured, or
    /// built without the `ipv6` feature).
    Ipv6(SocketAddr),
    /// An IPv4 address (`0.0.0.0` included) on a stack with
    /// [`Ipv4Config::Off`](crate::Ipv4Config::Off) (which needs IPv6, so only with the
    /// `ipv6` feature).
    #[cfg(feature = "ipv6")]
    NoIpv4(SocketAddr),
    /// Listening on an address the stack does not have.
    AddrNotAvailable(SocketAddr),
    /// Another listener has the port.
    AddrInUse(SocketAddr),
    /// Every TCP socket is in use.
    Exhausted {
        /// The configured limit.
        max_sockets: usize,
    },
    /// The peer reset the connection, or it timed out.
    Reset,
    /// A write after [`shutdown`](morgana_signatures::TcpStream::shutdown).
    Shutdown,
    /// A datagram longer than [`max_payload`](morgana_signatures::UdpSocket::max_payload).
    #[cfg(feature = "udp")]
    DatagramTooLarge {
        /// Its length.
        len: usize,
        /// The most the socket can send.
        max: usize,
    },
    /// A datagram to an address that is no destination (unspecified, port 0), or of
    /// the other family than the socket's (an IPv6 peer for a socket bound to IPv4).
    #[cfg(feature = "udp")]
    Unaddressable(SocketAddr),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::NoDhcpAnswer { after } => {
                if after.subsec_millis() == 0 {
                    write!(f, "no DHCP answer after {} s", after.as_secs())
                } else {
                    // As u64: formatting a u128 costs a kilobyte of image.
                    let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                    write!(f, "no DHCP answer after {ms} ms")
                }
            }
            Error::Entropy(why) => write!(
                f,
                "cannot seed the TCP/IP stack: the entropy source failed: {}",
                why.as_str()
            ),
            Error::Ipv6(addr) => {
                if crate::IPV6 {
                    write!(
                        f,
                        "cannot use {}: IPv6 is not configured on this stack",
                        ShowAddr(*addr)
                    )
                } else {
                    write!(
                        f,
                        "cannot use {}: this direct stack was built without IPv6 (morgana-direct's `ipv6` feature)",
                        ShowAddr(*addr)
                    )
                }
            }
            #[cfg(feature = "ipv6")]
            Error::NoIpv4(addr) => write!(
                f,
                "cannot use {}: IPv4 is off on this stack (IPv6 only): use `::` or one of its IPv6 addresses",
                ShowAddr(*addr)
            ),
            Error::AddrNotAvailable(addr) => {
                write!(
                    f,
                    "address {} is not an address of this stack (it has no loopback \
                     interface: listen on 0.0.0.0 or on the stack's own address)",
                    ShowAddr(*addr)
                )
            }
            Error::AddrInUse(addr) => write!(f, "address {} already in use", ShowAddr(*addr)),
            Error::Exhausted { max_sockets } => {
                write!(f, "out of TCP sockets (max_sockets = {max_sockets})")
            }
            Error::Reset => f.write_str("connection reset by peer or timed out"),
            Error::Shutdown => f.write_str("write after shutdown"),
            #[cfg(feature = "udp")]
            Error::DatagramTooLarge { len, max } => write!(
                f,
                "datagram of {len} bytes is larger than the {max} bytes one frame can carry"
            ),
            #[cfg(feature = "udp")]
            Error::Unaddressable(addr) => write!(
                f,
                "cannot send to {}: not a destination this socket can reach",
                ShowAddr(*addr)
            ),
        }
    }
}

impl core::error::Error for Error {}

impl TcpError for Error {
    fn kind(&self) -> TcpErrorKind {
        self.classify()
    }
}

impl UdpError for Error {
    fn kind(&self) -> TcpErrorKind {
        self.classify()
    }
}

impl Error {
    fn classify(&self) -> TcpErrorKind {
        match self {
            Error::Reset => TcpErrorKind::Reset,
            Error::AddrInUse(_) => TcpErrorKind::AddrInUse,
            Error::Exhausted { .. } => TcpErrorKind::Exhausted,
            Error::InvalidConfig(_)
            | Error::Ipv6(_)
            | Error::AddrNotAvailable(_)
            | Error::Shutdown => TcpErrorKind::Invalid,
            #[cfg(feature = "ipv6")]
            Error::NoIpv4(_) => TcpErrorKind::Invalid,
            #[cfg(feature = "udp")]
            Error::DatagramTooLarge { .. } | Error::Unaddressable(_) => TcpErrorKind::Invalid,
            Error::NoDhcpAnswer { .. } | Error::Entropy(_) => TcpErrorKind::Other,
        }
    }
}
