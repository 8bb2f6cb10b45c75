//! A Linux tap device as a [`NetIf`]: Ethernet frames through `/dev/net/tun`, with
//! readiness from the platform's epoll loop.
//!
//! The fd is opened non-blocking and registered with the reactor like a socket
//! (edge-triggered). Reading follows the reactor's "try first, park on `EAGAIN`" rule:
//! [`NetIf::receive`] reads one frame per call and remembers when the kernel said
//! `EAGAIN`; [`NetIf::register_rx_waker`] parks the waker on the fd only then, and wakes
//! it at once otherwise (frames may still be queued, and no new edge would come for
//! them). Writing never waits: a tap takes a frame or drops it (the kernel's queue is
//! full only under overload, and TCP retransmits).

use alloc::boxed::Box;
use alloc::vec;
use core::cell::Cell;
use core::task::Waker;
use morgana_signatures::{Entropy as _, MacAddress, NetIf, RxToken, TxToken};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::Errno;

use crate::Error;
use crate::error::{IfName, TapStep};
use crate::platform::Platform;
use crate::reactor::{Direction, Reactor};

/// Largest frame the receive buffer takes: a tap's kernel side can have an MTU up to
/// 65535, and a frame must be read whole.
const RX_BUFFER: usize = 65535 + 14;

/// `struct ifreq` as `TUNSETIFF` reads it: the name, then `ifr_flags` at the start of
/// the 24-byte union.
#[repr(C, align(8))]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _union_rest: [u8; 22],
}

// The kernel copies `sizeof(struct ifreq)` bytes in and out: 40 on x86_64.
const _: () = assert!(core::mem::size_of::<IfReq>() == 40);

const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
/// `TUNSETIFF = _IOW('T', 202, int)`.
const TUNSETIFF: rustix::ioctl::Opcode =
    rustix::ioctl::opcode::write::<core::ffi::c_int>(b'T', 202);

/// A Linux tap interface: the appliance's Ethernet port on the Unix target.
///
/// [`Tap::open`] attaches to the tap named `name`, creating it if it does not exist
/// (which needs `CAP_NET_ADMIN`). Creating it beforehand, e.g. with
/// `ip tuntap add dev tap0 mode tap user $USER`, lets an unprivileged appliance attach.
/// The host side of the tap is a normal Linux interface: give it an address in the
/// appliance's subnet (`ip addr add 10.99.0.1/24 dev tap0; ip link set tap0 up`).
///
/// The appliance's MAC address is made up (random, locally administered) unless set
/// with [`Tap::with_mac_address`]. It is not the host side's MAC.
pub struct Tap {
    fd: OwnedFd,
    reactor: &'static Reactor,
    name: IfName,
    mac: MacAddress,
    mtu: usize,
    rx: Box<[u8]>,
    tx: Box<[u8]>,
    /// The last read said `EAGAIN`: nothing is queued until the fd signals an edge.
    drained: Cell<bool>,
}

impl core::fmt::Debug for Tap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tap")
            .field("name", &self.name)
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .finish_non_exhaustive()
    }
}

impl Tap {
    /// The IP MTU a tap has unless told otherwise (`ip tuntap add` makes it 1500).
    pub const DEFAULT_MTU: usize = 1500;

    /// Opens `/dev/net/tun` and attaches to the tap `name` (`IFF_TAP | IFF_NO_PI`).
    ///
    /// Errors say what to do: `/dev/net/tun` missing, permission denied (no
    /// `CAP_NET_ADMIN` and the tap is not this user's), the tap busy (another process has
    /// it open), or `name` being something other than a plain tap.
    pub fn open(platform: &'static Platform, name: &str) -> Result<Tap, Error> {
        let if_name = IfName::new(name);
        let tap_err = |step, errno: Errno| Error::Tap {
            name: if_name,
            step,
            errno: errno.raw_os_error(),
        };
        if name.is_empty()
            || name.len() > IfName::MAX_LEN
            || name
                .bytes()
                .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
        {
            return Err(tap_err(TapStep::Name, Errno::INVAL));
        }
        let fd = rustix::fs::open(
            "/dev/net/tun",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| tap_err(TapStep::Open, e))?;
        let mut req = IfReq {
            name: if_name.to_c(),
            flags: IFF_TAP | IFF_NO_PI,
            _union_rest: [0; 22],
        };
        // SAFETY: TUNSETIFF takes a pointer to a `struct ifreq`, which `IfReq` lays out
        // (name[16], then the union, whose first member is the `short` flags; 40 bytes,
        // 8-aligned like the kernel's). The kernel reads it and writes the name back
        // into the same memory, which `req` provides for the duration of the call.
        unsafe {
            let op = rustix::ioctl::Updater::<TUNSETIFF, IfReq>::new(&mut req);
            rustix::ioctl::ioctl(&fd, op)
        }
        .map_err(|e| tap_err(TapStep::Attach, e))?;
        let reactor = platform.reactor();
        reactor
            .register(fd.as_fd())
            .map_err(|e| Error::os("epoll_ctl", e))?;

        let mut mac = [0u8; 6];
        platform.entropy().fill(&mut mac)?;
        // Locally administered, unicast.
        mac[0] = (mac[0] & 0xfe) | 0x02;

        log::debug!("tap {if_name} attached");
        Ok(Tap {
            fd,
            reactor,
            name: if_name,
            mac: MacAddress(mac),
            mtu: Self::DEFAULT_MTU,
            rx: vec![0; RX_BUFFER].into_boxed_slice(),
            tx: vec![0; Self::DEFAULT_MTU + 14].into_boxed_slice(),
            drained: Cell::new(false),
        })
    }

    /// The same tap with `mac` as the appliance's MAC address (unicast; locally
    /// administered is advisable).
    pub fn with_mac_address(mut self, mac: MacAddress) -> Tap {
        self.mac = mac;
        self
    }

    /// The same tap with an IP MTU other than 1500; it must match the host side's
    /// (`ip link set tap0 mtu N`).
    pub fn with_mtu(mut self, mtu: usize) -> Tap {
        self.mtu = mtu.clamp(576, 65535);
        self.tx = vec![0; self.mtu + 14].into_boxed_slice();
        self
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        self.reactor.deregister(self.fd.as_fd());
    }
}

/// A frame read from a [`Tap`], in the tap's receive buffer.
pub struct TapRx<'a> {
    frame: &'a [u8],
}

impl RxToken for TapRx<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Room for a frame to write to a [`Tap`]: its transmit buffer.
pub struct TapTx<'a> {
    fd: BorrowedFd<'a>,
    buf: &'a mut [u8],
}

impl TxToken for TapTx<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        if len > self.buf.len() {
            // Larger than the MTU: the stack should never ask. Build it and drop it.
            log::debug!("tap: dropped a {len}-byte frame (larger than the MTU)");
            return f(&mut vec![0; len]);
        }
        let frame = &mut self.buf[..len];
        let r = f(frame);
        loop {
            match rustix::io::write(self.fd, frame) {
                Ok(_) => break,
                Err(Errno::INTR) => continue,
                // The kernel's queue is full, or the interface is down (EIO): drop.
                Err(e) => {
                    log::trace!("tap: frame dropped: {}", Error::os("write", e));
                    break;
                }
            }
        }
        r
    }
}

impl NetIf for Tap {
    type RxToken<'a> = TapRx<'a>;
    type TxToken<'a> = TapTx<'a>;

    fn receive(&mut self) -> Option<(TapRx<'_>, TapTx<'_>)> {
        loop {
            match rustix::io::read(&self.fd, &mut self.rx[..]) {
                Ok(n) => {
                    self.drained.set(false);
                    return Some((
                        TapRx {
                            frame: &self.rx[..n],
                        },
                        TapTx {
                            fd: self.fd.as_fd(),
                            buf: &mut self.tx[..],
                        },
                    ));
                }
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => {
                    self.drained.set(true);
                    return None;
                }
                Err(e) => {
                    // EIO/EBADFD when the interface goes away: report, then wait for the
                    // next edge rather than spin.
                    log::warn!("tap {}: {}", self.name, Error::os("read", e));
                    self.drained.set(true);
                    return None;
                }
            }
        }
    }

    fn transmit(&mut self) -> Option<TapTx<'_>> {
        Some(TapTx {
            fd: self.fd.as_fd(),
            buf: &mut self.tx[..],
        })
    }

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn register_rx_waker(&self, waker: &Waker) {
        if self.drained.get() {
            self.reactor.park(self.fd.as_fd(), Direction::Read, waker);
        } else {
            waker.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn bad_interface_names_are_refused_before_any_system_call() {
        let p = Platform::leak_new().unwrap();
        for name in ["", "a/b", "tap 0", "tap:1", "sixteen-bytes-xx"] {
            let e = Tap::open(p, name).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::Tap {
                        step: TapStep::Name,
                        ..
                    }
                ),
                "{name:?}: {e}"
            );
            assert!(
                format!("{e}").contains("is not a valid interface name"),
                "{e}"
            );
        }
    }

    #[test]
    fn the_tunsetiff_request_is_the_kernels() {
        // _IOW('T', 202, int) on x86_64.
        assert_eq!(TUNSETIFF, 0x4004_54ca);
    }
}
