//! The platform's error type and a small `strerror` without libc.

use core::fmt;
use core::net::SocketAddr;
use morgana_signatures::{TcpError, TcpErrorKind, UdpError};
use rustix::io::Errno;

/// A failure of the Unix platform: a system call returned an error number.
///
/// The variants keep the context that makes the message useful: which call failed, and
/// for listening sockets the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Creating, binding or listening on a socket for `addr` failed.
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The error number (`errno`).
        errno: i32,
    },
    /// Creating or binding a UDP socket for `addr` failed.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The error number (`errno`).
        errno: i32,
    },
    /// Opening or attaching the tap device `name` failed.
    Tap {
        /// The interface name asked for.
        name: IfName,
        /// The step that failed.
        step: TapStep,
        /// The error number (`errno`).
        errno: i32,
    },
    /// Another system call failed.
    Os {
        /// The system call, e.g. `"recv"`.
        op: &'static str,
        /// The error number (`errno`).
        errno: i32,
    },
}

impl Error {
    pub(crate) fn os(op: &'static str, errno: Errno) -> Error {
        Error::Os {
            op,
            errno: errno.raw_os_error(),
        }
    }

    pub(crate) fn bind(addr: SocketAddr, errno: Errno) -> Error {
        Error::Bind {
            addr,
            errno: errno.raw_os_error(),
        }
    }

    pub(crate) fn listen(addr: SocketAddr, errno: Errno) -> Error {
        Error::Listen {
            addr,
            errno: errno.raw_os_error(),
        }
    }

    /// The raw error number (`errno`).
    pub fn raw_os_error(&self) -> i32 {
        match *self {
            Error::Listen { errno, .. }
            | Error::Bind { errno, .. }
            | Error::Tap { errno, .. }
            | Error::Os { errno, .. } => errno,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Listen { addr, errno } => {
                let name = ErrnoName(errno);
                match errno {
                    EADDRINUSE => write!(f, "address {addr} already in use ({name})"),
                    EACCES | EPERM => {
                        write!(f, "not allowed to listen on {addr} ({name})")
                    }
                    EADDRNOTAVAIL => {
                        write!(f, "address {addr} is not available on this host ({name})")
                    }
                    _ => write!(f, "cannot listen on {addr}: {} ({name})", describe(errno)),
                }
            }
            Error::Bind { addr, errno } => {
                let name = ErrnoName(errno);
                match errno {
                    EADDRINUSE => write!(f, "address {addr} already in use ({name})"),
                    EACCES | EPERM => write!(f, "not allowed to bind {addr} ({name})"),
                    EADDRNOTAVAIL => {
                        write!(f, "address {addr} is not available on this host ({name})")
                    }
                    _ => write!(f, "cannot bind {addr}: {} ({name})", describe(errno)),
                }
            }
            Error::Tap { name, step, errno } => {
                let name_errno = ErrnoName(errno);
                match (step, errno) {
                    (TapStep::Name, _) => write!(
                        f,
                        "{:?} is not a valid interface name (1 to 15 bytes, no '/', ':' or whitespace)",
                        name.as_str()
                    ),
                    (TapStep::Open, ENOENT | ENODEV | ENXIO) => write!(
                        f,
                        "cannot open tap {name}: /dev/net/tun is missing (load the tun module; in a container pass --device /dev/net/tun) ({name_errno})"
                    ),
                    (_, EACCES | EPERM) => write!(
                        f,
                        "not allowed to open tap {name}: it needs CAP_NET_ADMIN, or a tap made for this user beforehand (ip tuntap add dev {name} mode tap user <user>) ({name_errno})"
                    ),
                    (TapStep::Attach, EBUSY) => write!(
                        f,
                        "tap {name} is busy: another process has it open ({name_errno})"
                    ),
                    (TapStep::Attach, EINVAL) => write!(
                        f,
                        "{name} exists but is not a single-queue tap device (a tun device, or made with multi_queue?) ({name_errno})"
                    ),
                    (TapStep::Open, _) => write!(
                        f,
                        "cannot open /dev/net/tun for tap {name}: {} ({name_errno})",
                        describe(errno)
                    ),
                    (TapStep::Attach, _) => write!(
                        f,
                        "cannot attach tap {name} (TUNSETIFF): {} ({name_errno})",
                        describe(errno)
                    ),
                }
            }
            Error::Os { op, errno } => {
                write!(f, "{op}: {} ({})", describe(errno), ErrnoName(errno))
            }
        }
    }
}

/// A network interface name (at most 15 bytes, as Linux allows), kept inline so that
/// [`Error`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IfName {
    bytes: [u8; 16],
    len: u8,
}

impl IfName {
    /// The longest name Linux accepts (`IFNAMSIZ` - 1).
    pub const MAX_LEN: usize = 15;

    /// `name`, truncated to [`IfName::MAX_LEN`] bytes (on a character boundary).
    pub fn new(name: &str) -> IfName {
        let mut len = name.len().min(Self::MAX_LEN);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; 16];
        bytes[..len].copy_from_slice(&name.as_bytes()[..len]);
        IfName {
            bytes,
            len: len as u8,
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The name NUL-padded to 16 bytes, as `struct ifreq` wants it.
    pub(crate) fn to_c(self) -> [u8; 16] {
        self.bytes
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Which step of opening a tap failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TapStep {
    /// Checking the interface name.
    Name,
    /// Opening `/dev/net/tun`.
    Open,
    /// Attaching to the interface (`ioctl(TUNSETIFF)`).
    Attach,
}

impl TcpError for Error {
    fn kind(&self) -> TcpErrorKind {
        kind_of(self.raw_os_error())
    }
}

impl UdpError for Error {
    fn kind(&self) -> TcpErrorKind {
        kind_of(self.raw_os_error())
    }
}

/// The portable classification of an error number.
pub(crate) fn kind_of(errno: i32) -> TcpErrorKind {
    match errno {
        ECONNRESET | ECONNABORTED | EPIPE | ETIMEDOUT | ENOTCONN | ESHUTDOWN => TcpErrorKind::Reset,
        EADDRINUSE => TcpErrorKind::AddrInUse,
        EACCES | EPERM => TcpErrorKind::PermissionDenied,
        EMFILE | ENFILE | ENOBUFS | ENOMEM => TcpErrorKind::Exhausted,
        EINVAL | EADDRNOTAVAIL | EAFNOSUPPORT | EPROTONOSUPPORT | EOPNOTSUPP | EMSGSIZE => {
            TcpErrorKind::Invalid
        }
        _ => TcpErrorKind::Other,
    }
}

const EPERM: i32 = 1;
const ENOENT: i32 = 2;
const EINTR: i32 = 4;
const EIO: i32 = 5;
const ENXIO: i32 = 6;
const EBADF: i32 = 9;
const EAGAIN: i32 = 11;
const ENOMEM: i32 = 12;
const EACCES: i32 = 13;
const EFAULT: i32 = 14;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;
const ENODEV: i32 = 19;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const EPIPE: i32 = 32;
const ENOSYS: i32 = 38;
const ENOTSOCK: i32 = 88;
const EMSGSIZE: i32 = 90;
const EPROTONOSUPPORT: i32 = 93;
const EOPNOTSUPP: i32 = 95;
const EAFNOSUPPORT: i32 = 97;
const EADDRINUSE: i32 = 98;
const EADDRNOTAVAIL: i32 = 99;
const ENETDOWN: i32 = 100;
const ENETUNREACH: i32 = 101;
const ECONNABORTED: i32 = 103;
const ECONNRESET: i32 = 104;
const ENOBUFS: i32 = 105;
const ENOTCONN: i32 = 107;
const ESHUTDOWN: i32 = 108;
const ETIMEDOUT: i32 = 110;
const ECONNREFUSED: i32 = 111;
const EHOSTUNREACH: i32 = 113;

/// (number, symbolic name, description) of the error numbers this platform meets.
const TABLE: &[(i32, &str, &str)] = &[
    (EPERM, "EPERM", "operation not permitted"),
    (ENOENT, "ENOENT", "no such file or directory"),
    (EINTR, "EINTR", "interrupted system call"),
    (EIO, "EIO", "input/output error"),
    (ENXIO, "ENXIO", "no such device or address"),
    (EBADF, "EBADF", "bad file descriptor"),
    (EAGAIN, "EAGAIN", "resource temporarily unavailable"),
    (ENOMEM, "ENOMEM", "out of memory"),
    (EACCES, "EACCES", "permission denied"),
    (EFAULT, "EFAULT", "bad address"),
    (EBUSY, "EBUSY", "device or resource busy"),
    (ENODEV, "ENODEV", "no such device"),
    (EINVAL, "EINVAL", "invalid argument"),
    (ENFILE, "ENFILE", "too many open files in system"),
    (EMFILE, "EMFILE", "too many open files"),
    (EPIPE, "EPIPE", "broken pipe"),
    (ENOSYS, "ENOSYS", "function not implemented"),
    (ENOTSOCK, "ENOTSOCK", "not a socket"),
    (EMSGSIZE, "EMSGSIZE", "message too long"),
    (EPROTONOSUPPORT, "EPROTONOSUPPORT", "protocol not supported"),
    (EOPNOTSUPP, "EOPNOTSUPP", "operation not supported"),
    (EAFNOSUPPORT, "EAFNOSUPPORT", "address family not supported"),
    (EADDRINUSE, "EADDRINUSE", "address already in use"),
    (
        EADDRNOTAVAIL,
        "EADDRNOTAVAIL",
        "cannot assign requested address",
    ),
    (ENETDOWN, "ENETDOWN", "network is down"),
    (ENETUNREACH, "ENETUNREACH", "network is unreachable"),
    (ECONNABORTED, "ECONNABORTED", "connection aborted"),
    (ECONNRESET, "ECONNRESET", "connection reset by peer"),
    (ENOBUFS, "ENOBUFS", "no buffer space available"),
    (ENOTCONN, "ENOTCONN", "socket is not connected"),
    (ESHUTDOWN, "ESHUTDOWN", "cannot send after shutdown"),
    (ETIMEDOUT, "ETIMEDOUT", "connection timed out"),
    (ECONNREFUSED, "ECONNREFUSED", "connection refused"),
    (EHOSTUNREACH, "EHOSTUNREACH", "no route to host"),
];

fn lookup(errno: i32) -> Option<&'static (i32, &'static str, &'static str)> {
    TABLE.iter().find(|(n, _, _)| *n == errno)
}

/// A human description of `errno` ("connection reset by peer").
pub(crate) fn describe(errno: i32) -> &'static str {
    lookup(errno).map_or("system error", |e| e.2)
}

/// Displays the symbolic name of an error number (`ECONNRESET`), or `errno 123`.
pub(crate) struct ErrnoName(pub i32);

impl fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match lookup(self.0) {
            Some(e) => f.write_str(e.1),
            None => write!(f, "errno {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn messages_name_the_context() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            format!("{}", Error::listen(addr, Errno::ADDRINUSE)),
            "address 127.0.0.1:8080 already in use (EADDRINUSE)"
        );
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(
            format!("{}", Error::listen(v6, Errno::ACCESS)),
            "not allowed to listen on [::1]:80 (EACCES)"
        );
        assert_eq!(
            format!("{}", Error::os("recv", Errno::CONNRESET)),
            "recv: connection reset by peer (ECONNRESET)"
        );
        assert_eq!(
            format!(
                "{}",
                Error::Os {
                    op: "x",
                    errno: 4000
                }
            ),
            "x: system error (errno 4000)"
        );
    }

    #[test]
    fn tap_errors_say_what_to_do() {
        let tap = |step, errno: Errno| {
            format!(
                "{}",
                Error::Tap {
                    name: IfName::new("tap0"),
                    step,
                    errno: errno.raw_os_error()
                }
            )
        };
        let missing = tap(TapStep::Open, Errno::NOENT);
        assert!(
            missing.starts_with("cannot open tap tap0: /dev/net/tun is missing"),
            "{missing}"
        );
        assert!(missing.ends_with("(ENOENT)"), "{missing}");
        let denied = tap(TapStep::Attach, Errno::PERM);
        assert!(
            denied.starts_with("not allowed to open tap tap0: it needs CAP_NET_ADMIN"),
            "{denied}"
        );
        assert_eq!(
            tap(TapStep::Attach, Errno::BUSY),
            "tap tap0 is busy: another process has it open (EBUSY)"
        );
        assert!(tap(TapStep::Attach, Errno::INVAL).contains("not a single-queue tap"));
        assert_eq!(
            tap(TapStep::Name, Errno::INVAL),
            "\"tap0\" is not a valid interface name (1 to 15 bytes, no '/', ':' or whitespace)"
        );
        assert_eq!(IfName::new("a-very-long-interface-name").as_str().len(), 15);
        assert_eq!(IfName::new("ééééééééé").as_str(), "ééééééé");
    }

    #[test]
    fn kinds_classify_errnos() {
        let k = |e: Errno| TcpError::kind(&Error::os("op", e));
        assert_eq!(k(Errno::CONNRESET), TcpErrorKind::Reset);
        assert_eq!(k(Errno::PIPE), TcpErrorKind::Reset);
        assert_eq!(k(Errno::CONNABORTED), TcpErrorKind::Reset);
        assert_eq!(k(Errno::ADDRINUSE), TcpErrorKind::AddrInUse);
        assert_eq!(k(Errno::ACCESS), TcpErrorKind::PermissionDenied);
        assert_eq!(k(Errno::PERM), TcpErrorKind::PermissionDenied);
        assert_eq!(k(Errno::MFILE), TcpErrorKind::Exhausted);
        assert_eq!(k(Errno::NOBUFS), TcpErrorKind::Exhausted);
        assert_eq!(k(Errno::INVAL), TcpErrorKind::Invalid);
        assert_eq!(k(Errno::ADDRNOTAVAIL), TcpErrorKind::Invalid);
        assert_eq!(k(Errno::IO), TcpErrorKind::Other);
        let addr: SocketAddr = "0.0.0.0:1".parse().unwrap();
        assert_eq!(
            TcpError::kind(&Error::listen(addr, Errno::ADDRINUSE)),
            TcpErrorKind::AddrInUse
        );
    }

    #[test]
    fn table_matches_rustix_numbers() {
        // Our constants must agree with the kernel's numbers (rustix has them).
        for (errno, n) in [
            (Errno::PERM, EPERM),
            (Errno::NOENT, ENOENT),
            (Errno::NXIO, ENXIO),
            (Errno::BUSY, EBUSY),
            (Errno::NODEV, ENODEV),
            (Errno::AGAIN, EAGAIN),
            (Errno::ADDRINUSE, EADDRINUSE),
            (Errno::ADDRNOTAVAIL, EADDRNOTAVAIL),
            (Errno::CONNRESET, ECONNRESET),
            (Errno::CONNABORTED, ECONNABORTED),
            (Errno::NOBUFS, ENOBUFS),
            (Errno::TIMEDOUT, ETIMEDOUT),
            (Errno::HOSTUNREACH, EHOSTUNREACH),
            (Errno::SHUTDOWN, ESHUTDOWN),
            (Errno::OPNOTSUPP, EOPNOTSUPP),
            (Errno::PROTONOSUPPORT, EPROTONOSUPPORT),
        ] {
            assert_eq!(errno.raw_os_error(), n);
        }
        let mut seen = std::vec::Vec::new();
        for (n, _, _) in TABLE {
            assert!(!seen.contains(n), "duplicate errno {n}");
            seen.push(*n);
        }
    }
}
