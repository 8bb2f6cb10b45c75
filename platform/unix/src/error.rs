//! The platform's error type and a small `strerror` without libc.

use core::fmt;
use core::net::SocketAddr;
use morgana_signatures::{TcpError, TcpErrorKind};
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

    pub(crate) fn listen(addr: SocketAddr, errno: Errno) -> Error {
        Error::Listen {
            addr,
            errno: errno.raw_os_error(),
        }
    }

    /// The raw error number (`errno`).
    pub fn raw_os_error(&self) -> i32 {
        match *self {
            Error::Listen { errno, .. } | Error::Os { errno, .. } => errno,
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
            Error::Os { op, errno } => {
                write!(f, "{op}: {} ({})", describe(errno), ErrnoName(errno))
            }
        }
    }
}

impl TcpError for Error {
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
        EINVAL | EADDRNOTAVAIL | EAFNOSUPPORT | EPROTONOSUPPORT | EOPNOTSUPP => {
            TcpErrorKind::Invalid
        }
        _ => TcpErrorKind::Other,
    }
}

const EPERM: i32 = 1;
const EINTR: i32 = 4;
const EIO: i32 = 5;
const EBADF: i32 = 9;
const EAGAIN: i32 = 11;
const ENOMEM: i32 = 12;
const EACCES: i32 = 13;
const EFAULT: i32 = 14;
const EINVAL: i32 = 22;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
const EPIPE: i32 = 32;
const ENOSYS: i32 = 38;
const ENOTSOCK: i32 = 88;
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
    (EINTR, "EINTR", "interrupted system call"),
    (EIO, "EIO", "input/output error"),
    (EBADF, "EBADF", "bad file descriptor"),
    (EAGAIN, "EAGAIN", "resource temporarily unavailable"),
    (ENOMEM, "ENOMEM", "out of memory"),
    (EACCES, "EACCES", "permission denied"),
    (EFAULT, "EFAULT", "bad address"),
    (EINVAL, "EINVAL", "invalid argument"),
    (ENFILE, "ENFILE", "too many open files in system"),
    (EMFILE, "EMFILE", "too many open files"),
    (EPIPE, "EPIPE", "broken pipe"),
    (ENOSYS, "ENOSYS", "function not implemented"),
    (ENOTSOCK, "ENOTSOCK", "not a socket"),
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
    fn kinds_classify_errnos() {
        let k = |e: Errno| Error::os("op", e).kind();
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
            Error::listen(addr, Errno::ADDRINUSE).kind(),
            TcpErrorKind::AddrInUse
        );
    }

    #[test]
    fn table_matches_rustix_numbers() {
        // Our constants must agree with the kernel's numbers (rustix has them).
        for (errno, n) in [
            (Errno::PERM, EPERM),
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
