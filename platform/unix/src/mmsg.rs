//! `recvmmsg(2)` and `sendmmsg(2)`: many datagrams per system call, for the UDP sockets
//! (`udp.rs`). rustix 1.1 offers `sendmmsg` but not `recvmmsg` in a libc-free build, so
//! both are made here, like `sys.rs`'s calls, from the kernel's x86_64 structures: one
//! shape for both directions.
//!
//! A [`MsgBatch`] holds the headers, the I/O vectors and the address buffers of up to
//! [`BATCH`] messages; it is allocated once per socket (on its first batched receive),
//! and each call fills it afresh from the caller's buffers, so nothing is allocated per
//! datagram.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use rustix::fd::{AsRawFd, BorrowedFd};
use rustix::io::Errno;

/// The most messages per call.
pub(crate) const BATCH: usize = 32;

const NR_RECVMMSG: usize = 299;
const NR_SENDMMSG: usize = 307;
const MSG_TRUNC: usize = 0x20;
const MSG_NOSIGNAL: usize = 0x4000;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// `struct iovec`.
#[repr(C)]
#[derive(Clone, Copy)]
struct IoVec {
    base: *mut u8,
    len: usize,
}

/// `struct msghdr` (x86_64 layout: `repr(C)` inserts the kernel's padding).
#[repr(C)]
#[derive(Clone, Copy)]
struct MsgHdr {
    name: *mut u8,
    namelen: u32,
    iov: *mut IoVec,
    iovlen: usize,
    control: *mut u8,
    controllen: usize,
    flags: i32,
}

/// `struct mmsghdr`: a header and the length the kernel received or sent.
#[repr(C)]
#[derive(Clone, Copy)]
struct MMsgHdr {
    hdr: MsgHdr,
    len: u32,
}

/// Room for a `sockaddr_in` or a `sockaddr_in6` (28 bytes), aligned like them.
#[repr(C, align(4))]
#[derive(Clone, Copy)]
struct RawAddr([u8; 28]);

impl RawAddr {
    const EMPTY: RawAddr = RawAddr([0; 28]);

    /// The address the kernel wrote, `namelen` bytes of it.
    fn decode(&self, namelen: u32) -> Option<SocketAddr> {
        let b = &self.0;
        let family = u16::from_ne_bytes([b[0], b[1]]);
        let port = u16::from_be_bytes([b[2], b[3]]);
        match family {
            AF_INET if namelen >= 16 => {
                let ip = Ipv4Addr::new(b[4], b[5], b[6], b[7]);
                Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            AF_INET6 if namelen >= 28 => {
                let flow = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                let mut ip = [0u8; 16];
                ip.copy_from_slice(&b[8..24]);
                let scope = u32::from_ne_bytes([b[24], b[25], b[26], b[27]]);
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(ip),
                    port,
                    flow,
                    scope,
                )))
            }
            _ => None,
        }
    }

    /// `addr` as a `sockaddr_in`/`sockaddr_in6`, with its length.
    fn encode(addr: SocketAddr) -> (RawAddr, u32) {
        let mut b = [0u8; 28];
        match addr {
            SocketAddr::V4(a) => {
                b[0..2].copy_from_slice(&AF_INET.to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.ip().octets());
                (RawAddr(b), 16)
            }
            SocketAddr::V6(a) => {
                b[0..2].copy_from_slice(&AF_INET6.to_ne_bytes());
                b[2..4].copy_from_slice(&a.port().to_be_bytes());
                b[4..8].copy_from_slice(&a.flowinfo().to_be_bytes());
                b[8..24].copy_from_slice(&a.ip().octets());
                b[24..28].copy_from_slice(&a.scope_id().to_ne_bytes());
                (RawAddr(b), 28)
            }
        }
    }
}

/// What one message of a batch carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Got {
    /// The datagram's real length (`MSG_TRUNC`): more than its buffer if it was cut.
    pub(crate) len: usize,
    /// Where it came from (`None`: no address, which UDP never gives).
    pub(crate) peer: Option<SocketAddr>,
}

/// The kernel structures of up to [`BATCH`] messages.
pub(crate) struct MsgBatch {
    hdrs: [MMsgHdr; BATCH],
    iovs: [IoVec; BATCH],
    addrs: [RawAddr; BATCH],
}

impl MsgBatch {
    pub(crate) fn new() -> MsgBatch {
        let iov = IoVec {
            base: core::ptr::null_mut(),
            len: 0,
        };
        let hdr = MMsgHdr {
            hdr: MsgHdr {
                name: core::ptr::null_mut(),
                namelen: 0,
                iov: core::ptr::null_mut(),
                iovlen: 0,
                control: core::ptr::null_mut(),
                controllen: 0,
                flags: 0,
            },
            len: 0,
        };
        MsgBatch {
            hdrs: [hdr; BATCH],
            iovs: [iov; BATCH],
            addrs: [RawAddr::EMPTY; BATCH],
        }
    }

    /// Points message `i` at `buf` and at its address buffer (`namelen` bytes of it).
    fn set(&mut self, i: usize, base: *mut u8, len: usize, namelen: u32) {
        self.iovs[i] = IoVec { base, len };
        self.hdrs[i] = MMsgHdr {
            hdr: MsgHdr {
                name: self.addrs[i].0.as_mut_ptr(),
                namelen,
                iov: &mut self.iovs[i],
                iovlen: 1,
                control: core::ptr::null_mut(),
                controllen: 0,
                flags: 0,
            },
            len: 0,
        };
    }

    /// `recvmmsg(fd, .., MSG_TRUNC)` into `bufs` (at most [`BATCH`] of them), one
    /// datagram each, without waiting for more than the kernel has queued (the socket is
    /// non-blocking). Returns how many arrived; [`MsgBatch::got`] tells each one's real
    /// length and sender. `EAGAIN` when none had.
    pub(crate) fn recv<'b>(
        &mut self,
        fd: BorrowedFd<'_>,
        bufs: impl Iterator<Item = &'b mut [u8]>,
    ) -> Result<usize, Errno> {
        let mut n = 0;
        for b in bufs.take(BATCH) {
            self.set(n, b.as_mut_ptr(), b.len(), 28);
            n += 1;
        }
        let ret: isize;
        // SAFETY: `recvmmsg(fd, hdrs, n, MSG_TRUNC, NULL)`: the first `n` headers point
        // at this batch's I/O vectors and address buffers (28 bytes each, as `namelen`
        // says) and the vectors at the callers' buffers, which are borrowed for the call
        // and written only up to their lengths; the kernel writes the headers' `len`,
        // `namelen` and `flags`. The syscall clobbers rcx and r11, declared.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") NR_RECVMMSG as isize => ret,
                in("rdi") fd.as_raw_fd() as isize,
                in("rsi") self.hdrs.as_mut_ptr(),
                in("rdx") n,
                in("r10") MSG_TRUNC,
                in("r8") 0usize,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        result(ret)
    }

    /// Message `i` of the last [`MsgBatch::recv`].
    pub(crate) fn got(&self, i: usize) -> Got {
        let h = &self.hdrs[i];
        Got {
            len: h.len as usize,
            peer: self.addrs[i].decode(h.hdr.namelen),
        }
    }

    /// `sendmmsg(fd, .., MSG_NOSIGNAL)` of `msgs` (at most [`BATCH`]): returns how many
    /// the kernel took, the first ones (`EAGAIN` when it took none, or the first one's
    /// error).
    pub(crate) fn send<'b>(
        &mut self,
        fd: BorrowedFd<'_>,
        msgs: impl Iterator<Item = (&'b [u8], SocketAddr)>,
    ) -> Result<usize, Errno> {
        let mut n = 0;
        for (b, to) in msgs.take(BATCH) {
            let (raw, namelen) = RawAddr::encode(to);
            self.addrs[n] = raw;
            // The kernel only reads a datagram being sent.
            self.set(n, b.as_ptr().cast_mut(), b.len(), namelen);
            n += 1;
        }
        let ret: isize;
        // SAFETY: `sendmmsg(fd, hdrs, n, MSG_NOSIGNAL)`: the first `n` headers point at
        // this batch's I/O vectors and encoded addresses and the vectors at the callers'
        // datagrams, borrowed for the call and only read by the kernel; it writes the
        // headers' `len`. The syscall clobbers rcx and r11, declared.
        unsafe {
            core::arch::asm!(
                "syscall",
                inlateout("rax") NR_SENDMMSG as isize => ret,
                in("rdi") fd.as_raw_fd() as isize,
                in("rsi") self.hdrs.as_mut_ptr(),
                in("rdx") n,
                in("r10") MSG_NOSIGNAL,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack)
            );
        }
        result(ret)
    }
}

/// A raw system call's return: a count, or `-errno`.
fn result(ret: isize) -> Result<usize, Errno> {
    if ret < 0 {
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for a in [
            "192.0.2.1:53",
            "0.0.0.0:0",
            "[2001:db8::1]:5353",
            "[::ffff:192.0.2.7]:1",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            let (raw, len) = RawAddr::encode(a);
            assert_eq!(raw.decode(len), Some(a));
            // Too short for its family, or no family: none.
            assert_eq!(raw.decode(len - 1), None);
        }
        assert_eq!(RawAddr::EMPTY.decode(28), None);
    }

    #[test]
    fn layouts_are_the_kernels() {
        assert_eq!(core::mem::size_of::<IoVec>(), 16);
        assert_eq!(core::mem::size_of::<MsgHdr>(), 56);
        assert_eq!(core::mem::size_of::<MMsgHdr>(), 64);
        assert_eq!(core::mem::size_of::<RawAddr>(), 28);
    }
}
