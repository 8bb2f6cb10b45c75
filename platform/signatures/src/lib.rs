//! Morgana's module signatures.
//!
//! These are the MirageOS `module type`s of Morgana: `CONSOLE`, `CLOCK`, `TIME`,
//! `RANDOM`, `NETIF`, `TCP`, `UDP`, `KV_RO`, `BLOCK`, `KV`. Each is a trait with associated types for its errors and
//! handles, and no constructors: how a device is made is the business of the platform
//! that provides it and of the generated `connect` chain, never of the code that uses it.
//!
//! Application code and components (the HTTP server, the direct TCP/IP stack) are
//! written against these traits only, so the same code compiles for the Unix process and
//! for the PVH kernel.
//!
//! Decisions recorded here:
//! - Async methods are plain `async fn` in traits. Every Morgana executor is
//!   single-threaded, so no `Send` bounds are wanted; hence `allow(async_fn_in_trait)`.
//! - Everything is statically dispatched (generics, no `dyn`), so unused signatures and
//!   their implementations vanish at link time.
//! - [`KvRo`] is synchronous and hands out borrowed bytes: Morgana's read-only stores are
//!   compiled in (`crunch!`), so a lookup is a table search, not I/O. A store backed by a
//!   block device is a different signature: [`Kv`] and [`KvRead`] (over [`Block`]).
//! - [`NetIf`] hands out Ethernet frames through zero-copy tokens, the way smoltcp's
//!   `phy::Device` does: the device lends its own buffer for the duration of a closure,
//!   so a frame is never copied between the driver and the stack.
#![no_std]
#![deny(unsafe_code)]
#![allow(async_fn_in_trait)]

use core::fmt;
use core::net::SocketAddr;
use core::task::Waker;
use core::time::Duration;

mod udp;
pub use udp::{Received, Udp, UdpError, UdpSocket};

mod block;
pub use block::{Block, BlockError, BlockErrorKind, check_request};

mod kv;
pub use kv::{Kv, KvError, KvErrorKind, KvRead, Value};

/// A point on a monotonic clock, in nanoseconds since an arbitrary origin (boot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The clock's origin.
    pub const ZERO: Instant = Instant(0);

    /// An instant `nanos` nanoseconds after the origin.
    pub const fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    /// Nanoseconds since the origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

/// A TCP/UDP port number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(pub u16);

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `CONSOLE`: where logs and an appliance's own output go (stdout on Unix, serial or the
/// Xen console ring in a kernel).
pub trait Console {
    /// Writes all of `bytes`. A console cannot usefully fail; an implementation drops
    /// what it cannot deliver.
    fn write_bytes(&self, bytes: &[u8]);

    /// Writes a string.
    fn write_str(&self, s: &str) {
        self.write_bytes(s.as_bytes());
    }
}

/// `MCLOCK`: a monotonic clock.
pub trait MonotonicClock {
    /// Now.
    fn now(&self) -> Instant;
}

/// `PCLOCK`: the wall clock (POSIX time). A kernel without an RTC may not know it.
pub trait WallClock {
    /// Time since 1970-01-01T00:00:00Z, or `None` when the platform does not know it.
    fn now_since_epoch(&self) -> Option<Duration>;
}

/// `TIME`: sleeping. Timers are driven by the platform's event loop.
pub trait Timer: MonotonicClock {
    /// Completes at or after `deadline`.
    async fn sleep_until(&self, deadline: Instant);

    /// Completes after `d` has passed.
    async fn sleep(&self, d: Duration) {
        let deadline = self.now().saturating_add(d);
        self.sleep_until(deadline).await
    }
}

/// `RANDOM`: a source of unpredictable bytes (getrandom on Unix, RDRAND/RDSEED in a kernel).
pub trait Entropy {
    /// Why the source failed.
    type Error: fmt::Debug + fmt::Display;

    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Whether the source may be trusted with long-term secrets and TLS keys: the host
    /// kernel's pool, a hardware generator (RDRAND/RDSEED) or a device fed by one
    /// (virtio-rng). Timing jitter alone is not. TCP sequence numbers and hash seeds take
    /// any source; the TLS component refuses to start on a weak one. The default is
    /// `false`: a source must claim its strength.
    fn is_strong(&self) -> bool {
        false
    }

    /// Whether this source is the host operating system's own generator, `getrandom(2)`
    /// (a Unix process), so that a library which reads that generator directly may be
    /// used beside it: the TLS component then runs its key exchange and ECDSA signatures
    /// on ring, whose randomness can come from nowhere else. A constant, so that an
    /// image whose source is not the host's (a kernel) links none of that code. The
    /// default is `false`.
    const IS_HOST_GETRANDOM: bool = false;
}

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// Whether this is a unicast address (the I/G bit of the first octet is clear), the
    /// only kind a NIC may have as its own.
    pub const fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }

    /// Whether this address is locally administered (the U/L bit is set), as made-up
    /// addresses of virtual NICs should be.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Shows a socket address as its `Display` does, except that an IPv6 address is written
/// in full: `[fe80:0:0:0:0:0:0:1]:80` rather than `[fe80::1]:80`, without a scope id.
/// For messages and logs in kernels, which speak IPv4: the shortening IPv6 formatter is
/// two kilobytes of image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShowAddr(pub SocketAddr);

impl fmt::Display for ShowAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            SocketAddr::V4(a) => fmt::Display::fmt(&a, f),
            SocketAddr::V6(a) => {
                f.write_str("[")?;
                for (i, s) in a.ip().segments().iter().enumerate() {
                    let sep = if i == 0 { "" } else { ":" };
                    write!(f, "{sep}{s:x}")?;
                }
                write!(f, "]:{}", a.port())
            }
        }
    }
}

/// A received frame, lent by a [`NetIf`] until [`RxToken::consume`] returns.
pub trait RxToken {
    /// Calls `f` with the whole Ethernet frame (destination MAC first, no FCS) and returns
    /// what `f` returns. The frame stays in the device's buffer: nothing is copied.
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R;
}

/// Room for one frame to send, lent by a [`NetIf`].
pub trait TxToken {
    /// Calls `f` with a buffer of exactly `len` bytes to fill with an Ethernet frame
    /// (destination MAC first, no FCS), then sends the frame and returns what `f`
    /// returned. `len` is at most [`NetIf::mtu`] + 14. A frame the device cannot send is
    /// dropped (the protocols above retransmit); a device never fails a frame loudly.
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R;
}

/// `NETIF`: an Ethernet network interface (a Linux tap, virtio-net, Xen netfront).
///
/// Frames move through tokens so that neither side copies them: [`NetIf::receive`] lends
/// a received frame together with room for an immediate reply (ARP and ICMP echo answer
/// from inside the receive closure), [`NetIf::transmit`] lends room for a frame to send.
/// A token borrows the device, so at most one pair is alive at a time.
///
/// The interface is poll-driven and single-threaded like everything in Morgana: the
/// stack calls [`NetIf::receive`] until it returns `None`, then parks a waker with
/// [`NetIf::register_rx_waker`], which the device wakes when a frame may have arrived.
pub trait NetIf {
    /// A received frame.
    type RxToken<'a>: RxToken
    where
        Self: 'a;
    /// Room for a frame to send.
    type TxToken<'a>: TxToken
    where
        Self: 'a;

    /// The next received frame, with room for a reply; `None` when no frame is waiting.
    fn receive(&mut self) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)>;

    /// Room for one frame to send; `None` when the device has no room right now (the
    /// stack tries again at its next poll).
    fn transmit(&mut self) -> Option<Self::TxToken<'_>>;

    /// The interface's own MAC address (unicast).
    fn mac_address(&self) -> MacAddress;

    /// The IP MTU: the largest payload of one frame, without the 14-byte Ethernet
    /// header (1500 on a standard Ethernet).
    fn mtu(&self) -> usize;

    /// Arranges for `waker` to be woken when a frame may be waiting in
    /// [`NetIf::receive`]: at once if one may already be waiting (the last `receive` did
    /// not return `None`), otherwise when the next one arrives. Only the waker of the
    /// latest call needs to be kept. Spurious wake-ups are allowed. The arrangement may
    /// end at the next [`NetIf::receive`] that returns a frame (virtio-net stops the
    /// device's interrupts while frames are being taken): whoever receives registers
    /// again before anyone waits for frames.
    fn register_rx_waker(&self, waker: &Waker);

    /// Whether a diagnostic report was asked for since the last call (a kernel's debug
    /// key, e.g. `xl sysrq <domain> d` on Xen): the device has logged its own state, and
    /// the stack above logs its own. Default: never.
    fn diagnostics_requested(&self) -> bool {
        false
    }
}

/// What kind of TCP failure happened, so that generic code (the HTTP server) can react
/// without knowing the implementation's own error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpErrorKind {
    /// The peer reset or aborted the connection.
    Reset,
    /// The address or port is already taken.
    AddrInUse,
    /// Not allowed (e.g. a privileged port).
    PermissionDenied,
    /// Out of sockets, buffers or memory.
    Exhausted,
    /// The argument does not make sense for this stack.
    Invalid,
    /// Anything else.
    Other,
}

/// An error of a TCP implementation.
pub trait TcpError: fmt::Debug + fmt::Display {
    /// The portable classification of this error.
    fn kind(&self) -> TcpErrorKind;
}

/// `TCP`: a TCP stack that can listen for connections.
///
/// Connecting out is not needed by any appliance yet and is left out on purpose.
pub trait Tcp {
    /// Errors of this stack.
    type Error: TcpError;
    /// A connected stream.
    type Stream: TcpStream<Error = Self::Error>;
    /// A listening socket.
    type Listener: TcpListener<Stream = Self::Stream, Error = Self::Error>;

    /// Starts listening on `addr`. The unspecified address means every interface.
    async fn listen(&self, addr: SocketAddr) -> Result<Self::Listener, Self::Error>;
}

/// A listening TCP socket.
pub trait TcpListener {
    /// Errors of the stack this listener belongs to.
    type Error: TcpError;
    /// The connected stream that [`TcpListener::accept`] yields.
    type Stream: TcpStream<Error = Self::Error>;

    /// Waits for the next connection and returns it with the peer's address.
    async fn accept(&mut self) -> Result<(Self::Stream, SocketAddr), Self::Error>;

    /// The address actually bound (useful with port 0).
    fn local_addr(&self) -> Result<SocketAddr, Self::Error>;
}

/// A connected TCP stream.
pub trait TcpStream {
    /// Errors of the stack this stream belongs to.
    type Error: TcpError;

    /// Reads into `buf`; `Ok(0)` means the peer closed its sending side.
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error>;

    /// Writes some of `buf` and returns how much was taken (at least one byte unless
    /// `buf` is empty).
    async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error>;

    /// Writes all of `buf`.
    async fn write_all(&mut self, mut buf: &[u8]) -> Result<(), Self::Error> {
        while !buf.is_empty() {
            let n = self.write(buf).await?;
            buf = &buf[n..];
        }
        Ok(())
    }

    /// Writes `bufs` in order, as one gather write where the stack supports it.
    async fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> Result<(), Self::Error> {
        for b in bufs {
            self.write_all(b).await?;
        }
        Ok(())
    }

    /// Sends everything written so far and then FIN: no more writes.
    async fn shutdown(&mut self) -> Result<(), Self::Error>;
}

/// One value of a read-only key-value store, borrowed from the store.
///
/// Besides the bytes, it carries what a web server needs to serve the value without
/// computing anything at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object<'a> {
    /// The contents.
    pub data: &'a [u8],
    /// The media type, e.g. `text/html; charset=utf-8`.
    pub media_type: &'a str,
    /// A strong entity tag, quotes included: `"…"`.
    pub etag: &'a str,
    /// The contents gzip-compressed, when that is smaller.
    pub gzip: Option<&'a [u8]>,
}

/// `KV_RO`: a read-only key-value store. Keys are `/`-separated paths without a leading
/// slash (`index.html`, `css/site.css`).
pub trait KvRo {
    /// Why a lookup failed (other than the key being absent).
    type Error: fmt::Debug + fmt::Display;

    /// The value stored under `key`, or `None`.
    fn get(&self, key: &str) -> Result<Option<Object<'_>>, Self::Error>;

    /// Whether `key` names a directory, i.e. some key starts with `key/`.
    fn is_dir(&self, key: &str) -> Result<bool, Self::Error>;

    /// Number of values in the store.
    fn len(&self) -> usize;

    /// Whether the store holds no value.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: KvRo + ?Sized> KvRo for &K {
    type Error = K::Error;
    fn get(&self, key: &str) -> Result<Option<Object<'_>>, Self::Error> {
        (**self).get(key)
    }
    fn is_dir(&self, key: &str) -> Result<bool, Self::Error> {
        (**self).is_dir(key)
    }
    fn len(&self) -> usize {
        (**self).len()
    }
}

impl<C: Console + ?Sized> Console for &C {
    fn write_bytes(&self, bytes: &[u8]) {
        (**self).write_bytes(bytes)
    }
}

impl<C: MonotonicClock + ?Sized> MonotonicClock for &C {
    fn now(&self) -> Instant {
        (**self).now()
    }
}

impl<T: Timer + ?Sized> Timer for &T {
    async fn sleep_until(&self, deadline: Instant) {
        (**self).sleep_until(deadline).await
    }
}

/// Why an appliance stopped with an error. The generated `connect` chain converts every
/// device's error into this, keeping the device name for the message.
#[derive(Debug)]
pub struct StartError {
    /// The device (its name in appliance.ron) or `"main"`.
    pub device: &'static str,
    /// What went wrong, rendered.
    pub message: StartMessage,
}

/// A short fixed-capacity message, so reporting an error needs no allocator.
#[derive(Clone)]
pub struct StartMessage {
    buf: [u8; 120],
    len: u8,
}

impl StartMessage {
    /// Renders `what` into a message, truncating at 120 bytes.
    pub fn new(what: &dyn fmt::Display) -> StartMessage {
        let mut m = StartMessage {
            buf: [0; 120],
            len: 0,
        };
        let _ = fmt::write(&mut m, format_args!("{what}"));
        m
    }

    /// The message.
    pub fn as_str(&self) -> &str {
        let bytes = &self.buf[..usize::from(self.len)];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            // Truncation may cut a character; keep the valid prefix.
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl fmt::Write for StartMessage {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let start = usize::from(self.len);
        let room = self.buf.len() - start;
        let n = s.len().min(room);
        self.buf[start..start + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len = (start + n) as u8;
        Ok(())
    }
}

impl fmt::Debug for StartMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl StartError {
    /// An error of `device`.
    // Called once per device in the generated start chain: not worth a copy in each.
    #[inline(never)]
    pub fn new(device: &'static str, what: &dyn fmt::Display) -> StartError {
        StartError {
            device,
            message: StartMessage::new(what),
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.device, self.message.as_str())
    }
}

#[cfg(test)]
extern crate std;

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn instant_arithmetic_saturates() {
        let t = Instant::from_nanos(5);
        assert_eq!(
            t.saturating_add(Duration::from_nanos(3)),
            Instant::from_nanos(8)
        );
        assert_eq!(
            Instant::from_nanos(u64::MAX - 1).saturating_add(Duration::from_secs(10)),
            Instant::from_nanos(u64::MAX)
        );
        assert_eq!(
            Instant::from_nanos(3).saturating_duration_since(Instant::from_nanos(9)),
            Duration::ZERO
        );
    }

    #[test]
    fn mac_addresses_display_and_classify() {
        let mac = MacAddress([0x02, 0x00, 0x5e, 0x10, 0xab, 0x0f]);
        assert_eq!(format!("{mac}"), "02:00:5e:10:ab:0f");
        assert!(mac.is_unicast() && mac.is_local());
        let multicast = MacAddress([0x01, 0, 0x5e, 0, 0, 1]);
        assert!(!multicast.is_unicast() && !multicast.is_local());
    }

    #[test]
    fn show_addr_writes_ipv6_in_full() {
        let v4: SocketAddr = "10.0.2.15:8080".parse().unwrap();
        assert_eq!(format!("{}", ShowAddr(v4)), "10.0.2.15:8080");
        let v6: SocketAddr = "[fe80::1]:80".parse().unwrap();
        assert_eq!(format!("{}", ShowAddr(v6)), "[fe80:0:0:0:0:0:0:1]:80");
    }

    #[test]
    fn start_error_message_truncates_on_char_boundary() {
        let long = "é".repeat(100);
        let e = StartError::new("net", &long);
        assert!(e.message.as_str().len() <= 120);
        assert!(e.message.as_str().chars().all(|c| c == 'é'));
        assert_eq!(
            format!("{}", StartError::new("http", &"port 80 taken")),
            "http: port 80 taken"
        );
    }
}
