//! The tender's network device: a host tap behind `morgana-tender`'s `net-recv` and
//! `net-send` calls (`docs/tender-abi.md`).
//!
//! - **Receive.** When its batch of buffers is used up and a frame may be waiting, the
//!   driver takes up to [`RX_BATCH`] frames in one `net-recv` call (one exit to the
//!   tender for the whole batch), then hands them to the stack one by one. It asks the
//!   tender only when a frame may be waiting: at boot (a summoned guest finds the frames
//!   that woke it), after a call that filled every buffer (more may wait), and after the
//!   platform's idle `wait` call ended with `EVENT_NET_RX`. A call that filled fewer
//!   clears the hint; since `wait` is level-triggered, a frame that arrives afterwards
//!   ends the next wait at once, so none is waited past.
//! - **Send.** One `net-send` call per frame, the moment the stack fills it. A frame the
//!   tender would refuse (shorter than an Ethernet header, longer than 14 + MTU bytes:
//!   a request the tender answers by stopping the guest) is dropped here and counted.
//! - **Hostile answers.** The tender is trusted to keep the ABI, but its answers are
//!   still clamped: more frames than buffers, a length past the buffer, runt frames and
//!   truncated ones are dropped (counted), never read past a buffer.
//!
//! The driver is generic over [`Calls`] so its host tests run it against a simulated
//! tender; [`TenderNet`] is the kernel's instance over the real calls.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::task::Waker;
use morgana_signatures::{MacAddress, NetIf};
use morgana_tender_abi::Status;
use morgana_tender_abi::guest::Received;

/// Frames taken per `net-recv` call (and receive buffers held).
pub const RX_BATCH: usize = 32;
/// Bytes of an Ethernet header.
const ETH_HEADER: usize = 14;

/// What the driver needs from the tender: its calls and the platform's receive hint.
pub trait Calls {
    /// `net-recv`: fills `bufs` in order with waiting frames; returns how many.
    fn recv(&mut self, bufs: &mut [&mut [u8]], got: &mut [Received]) -> Result<usize, Status>;
    /// `net-send` of one whole frame; returns how many frames the host took (0 or 1).
    fn send(&mut self, frame: &[u8]) -> Result<usize, Status>;
    /// Whether a frame may be waiting in the tender.
    fn rx_maybe_waiting(&self) -> bool;
    /// Every waiting frame was taken.
    fn clear_rx_maybe_waiting(&self);
    /// Wake `waker` when a frame arrives (at once if one may be waiting).
    fn register_rx_waker(&self, waker: &Waker);
}

/// The real calls, for a kernel entered by the tender.
#[derive(Debug, Default)]
pub struct GuestCalls;

impl Calls for GuestCalls {
    fn recv(&mut self, bufs: &mut [&mut [u8]], got: &mut [Received]) -> Result<usize, Status> {
        morgana_tender_abi::guest::net_recv(bufs, got)
    }

    fn send(&mut self, frame: &[u8]) -> Result<usize, Status> {
        morgana_tender_abi::guest::net_send(&[frame])
    }

    fn rx_maybe_waiting(&self) -> bool {
        morgana_pvh::tender::rx_maybe_waiting()
    }

    fn clear_rx_maybe_waiting(&self) {
        morgana_pvh::tender::clear_rx_maybe_waiting()
    }

    fn register_rx_waker(&self, waker: &Waker) {
        morgana_pvh::tender::register_rx_waker(waker)
    }
}

/// Why the tender's network device cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The tender runs this guest without a network device.
    NoDevice,
    /// The tender states an MTU no Ethernet frame can have.
    BadMtu(u32),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDevice => f.write_str(
                "the tender runs this kernel without a network device (start morgana-tender \
                 with --tap NAME)",
            ),
            Error::BadMtu(m) => write!(f, "the tender states an MTU of {m} bytes (68..=65521)"),
        }
    }
}

/// Frames the driver dropped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Received frames cut to fit a buffer, or shorter than an Ethernet header.
    pub rx_malformed: u64,
    /// `net-recv` calls that failed.
    pub rx_errors: u64,
    /// Frames to send that the tender would refuse (size) or the host did not take.
    pub tx: u64,
}

/// The tender's network device over `C`.
pub struct TenderNetOver<C: Calls> {
    calls: C,
    mac: MacAddress,
    mtu: usize,
    rx: Vec<Vec<u8>>,
    rx_len: [usize; RX_BATCH],
    rx_next: usize,
    rx_count: usize,
    tx: Vec<u8>,
    drops: Drops,
}

/// The kernel's tender network device.
pub type TenderNet = TenderNetOver<GuestCalls>;

impl TenderNet {
    /// The device the tender describes in its boot information.
    pub fn find() -> Result<TenderNet, Error> {
        let info = morgana_pvh::tender::boot_info()
            .map(|b| b.net)
            .filter(|n| n.flags & morgana_tender_abi::NET_PRESENT != 0)
            .ok_or(Error::NoDevice)?;
        let net = TenderNetOver::new(GuestCalls, info.mac, info.mtu)?;
        log::debug!(
            "tender network: MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, MTU {}",
            info.mac[0],
            info.mac[1],
            info.mac[2],
            info.mac[3],
            info.mac[4],
            info.mac[5],
            info.mtu
        );
        Ok(net)
    }
}

impl<C: Calls> TenderNetOver<C> {
    /// A device with MAC `mac` and IP MTU `mtu` over `calls`.
    pub fn new(calls: C, mac: [u8; 6], mtu: u32) -> Result<TenderNetOver<C>, Error> {
        if !(68..=65521).contains(&mtu) {
            return Err(Error::BadMtu(mtu));
        }
        let frame = ETH_HEADER + mtu as usize;
        Ok(TenderNetOver {
            calls,
            mac: MacAddress(mac),
            mtu: mtu as usize,
            rx: (0..RX_BATCH).map(|_| vec![0; frame]).collect(),
            rx_len: [0; RX_BATCH],
            rx_next: 0,
            rx_count: 0,
            tx: Vec::with_capacity(frame),
            drops: Drops::default(),
        })
    }

    /// What was dropped so far.
    pub fn drops(&self) -> Drops {
        self.drops
    }

    /// Takes a batch from the tender when the last one is used up and a frame may wait.
    fn refill(&mut self) {
        if self.rx_next < self.rx_count || !self.calls.rx_maybe_waiting() {
            return;
        }
        self.rx_next = 0;
        self.rx_count = 0;
        let mut got = [Received::default(); RX_BATCH];
        let mut bufs: [&mut [u8]; RX_BATCH] = {
            let mut it = self.rx.iter_mut();
            core::array::from_fn(|_| it.next().map_or(&mut [][..], |b| &mut b[..]))
        };
        let n = match self.calls.recv(&mut bufs, &mut got) {
            Ok(n) => n.min(RX_BATCH),
            Err(_) => {
                self.drops.rx_errors += 1;
                self.calls.clear_rx_maybe_waiting();
                return;
            }
        };
        if n < RX_BATCH {
            self.calls.clear_rx_maybe_waiting();
        }
        for (i, r) in got[..n].iter().enumerate() {
            if r.truncated || r.len < ETH_HEADER || r.len > self.rx[i].len() {
                self.drops.rx_malformed += 1;
                continue;
            }
            self.rx_len[self.rx_count] = r.len;
            if self.rx_count != i {
                self.rx.swap(self.rx_count, i);
            }
            self.rx_count += 1;
        }
    }
}

/// A received frame.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

/// Room for a frame to send.
pub struct TxToken<'a, C: Calls> {
    calls: &'a mut C,
    buf: &'a mut Vec<u8>,
    max: usize,
    drops: &'a mut Drops,
}

impl morgana_signatures::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

impl<C: Calls> morgana_signatures::TxToken for TxToken<'_, C> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(self.buf);
        if !(ETH_HEADER..=self.max).contains(&len) || !matches!(self.calls.send(self.buf), Ok(1)) {
            self.drops.tx += 1;
        }
        r
    }
}

impl<C: Calls> NetIf for TenderNetOver<C> {
    type RxToken<'a>
        = RxToken<'a>
    where
        C: 'a;
    type TxToken<'a>
        = TxToken<'a, C>
    where
        C: 'a;

    fn receive(&mut self) -> Option<(RxToken<'_>, TxToken<'_, C>)> {
        self.refill();
        if self.rx_next >= self.rx_count {
            return None;
        }
        let i = self.rx_next;
        self.rx_next += 1;
        let max = ETH_HEADER + self.mtu;
        Some((
            RxToken {
                frame: &self.rx[i][..self.rx_len[i]],
            },
            TxToken {
                calls: &mut self.calls,
                buf: &mut self.tx,
                max,
                drops: &mut self.drops,
            },
        ))
    }

    fn transmit(&mut self) -> Option<TxToken<'_, C>> {
        Some(TxToken {
            calls: &mut self.calls,
            buf: &mut self.tx,
            max: ETH_HEADER + self.mtu,
            drops: &mut self.drops,
        })
    }

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn register_rx_waker(&self, waker: &Waker) {
        if self.rx_next < self.rx_count {
            waker.wake_by_ref();
        } else {
            self.calls.register_rx_waker(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::VecDeque;
    use core::cell::{Cell, RefCell};
    use morgana_signatures::{RxToken as _, TxToken as _};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A simulated tender: frames waiting in the host, what it answers, what it saw.
    #[derive(Default)]
    struct FakeTender {
        waiting: RefCell<VecDeque<Vec<u8>>>,
        hint: Cell<bool>,
        recv_calls: Cell<usize>,
        sent: RefCell<Vec<Vec<u8>>>,
        /// Hostile: report this many frames done whatever was filled.
        lie_done: Option<usize>,
        /// Hostile: report this length for every frame.
        lie_len: Option<usize>,
        fail_recv: bool,
        registered: Cell<usize>,
    }

    impl Calls for &FakeTender {
        fn recv(&mut self, bufs: &mut [&mut [u8]], got: &mut [Received]) -> Result<usize, Status> {
            self.recv_calls.set(self.recv_calls.get() + 1);
            if self.fail_recv {
                return Err(Status::IoError);
            }
            let mut n = 0;
            while n < bufs.len() {
                let Some(f) = self.waiting.borrow_mut().pop_front() else {
                    break;
                };
                let len = f.len().min(bufs[n].len());
                bufs[n][..len].copy_from_slice(&f[..len]);
                got[n] = Received {
                    len: self.lie_len.unwrap_or(len),
                    truncated: f.len() > len,
                };
                n += 1;
            }
            Ok(self.lie_done.unwrap_or(n))
        }

        fn send(&mut self, frame: &[u8]) -> Result<usize, Status> {
            self.sent.borrow_mut().push(frame.to_vec());
            Ok(1)
        }

        fn rx_maybe_waiting(&self) -> bool {
            self.hint.get()
        }

        fn clear_rx_maybe_waiting(&self) {
            self.hint.set(false)
        }

        fn register_rx_waker(&self, _: &Waker) {
            self.registered.set(self.registered.get() + 1);
        }
    }

    fn frame(tag: u8, len: usize) -> Vec<u8> {
        let mut f = vec![tag; len];
        f[..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f
    }

    fn tender(frames: impl IntoIterator<Item = Vec<u8>>) -> FakeTender {
        let t = FakeTender::default();
        t.waiting.borrow_mut().extend(frames);
        t.hint.set(true);
        t
    }

    fn receive_all<C: Calls>(net: &mut TenderNetOver<C>) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some((rx, _tx)) = net.receive() {
            out.push(rx.consume(|f| f.to_vec()));
        }
        out
    }

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn frames_come_in_batches_in_order_and_calls_stop_when_drained() {
        let frames: Vec<_> = (0..RX_BATCH as u8 + 3)
            .map(|i| frame(i, 60 + i as usize))
            .collect();
        let t = tender(frames.clone());
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        assert_eq!(receive_all(&mut net), frames);
        // A full batch, then the three left (fewer than a batch: the hint is cleared).
        assert_eq!(t.recv_calls.get(), 2);
        assert!(!t.hint.get());
        // Nothing may be waiting: receiving asks the tender nothing, and the waker is
        // handed to the platform.
        assert!(net.receive().is_none());
        assert_eq!(t.recv_calls.get(), 2);
        let counter = Arc::new(CountWake(AtomicUsize::new(0)));
        net.register_rx_waker(&Waker::from(counter.clone()));
        assert_eq!(t.registered.get(), 1);
        assert_eq!(counter.0.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_waker_registered_with_frames_in_hand_is_woken_at_once() {
        let t = tender([frame(1, 60), frame(2, 60)]);
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        assert!(net.receive().is_some());
        let counter = Arc::new(CountWake(AtomicUsize::new(0)));
        net.register_rx_waker(&Waker::from(counter.clone()));
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        assert_eq!(t.registered.get(), 0);
    }

    #[test]
    fn hostile_answers_are_clamped_and_counted() {
        // More frames reported than buffers exist, and than were filled.
        let mut t = tender([frame(1, 60)]);
        t.lie_done = Some(1000);
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        let got = receive_all(&mut net);
        assert_eq!(got[0], frame(1, 60));
        // The buffers the tender did not fill read as length 0: runts, dropped. A "full"
        // batch means more may wait, so the next receive asks again and gets a batch of
        // runts, after which it returns None: the stack's poll ends.
        assert_eq!(got.len(), 1);
        assert_eq!(net.drops().rx_malformed as usize, (RX_BATCH - 1) + RX_BATCH);
        assert_eq!(t.recv_calls.get(), 2);

        // A length past the buffer: dropped, not read past it.
        let mut t = tender([frame(1, 60)]);
        t.lie_len = Some(100_000);
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        assert!(receive_all(&mut net).is_empty());
        assert_eq!(net.drops().rx_malformed, 1);

        // A truncated frame and a runt among good ones: only the good ones arrive.
        let t = tender([frame(1, 60), frame(2, 9000), frame(3, 10), frame(4, 1514)]);
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        assert_eq!(receive_all(&mut net), [frame(1, 60), frame(4, 1514)]);
        assert_eq!(net.drops().rx_malformed, 2);

        // A failing call: counted, the hint cleared (no call storm), nothing received.
        let mut t = tender([frame(1, 60)]);
        t.fail_recv = true;
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        assert!(net.receive().is_none());
        assert!(net.receive().is_none());
        assert_eq!(t.recv_calls.get(), 1);
        assert_eq!(net.drops().rx_errors, 1);
    }

    #[test]
    fn frames_the_tender_would_refuse_are_never_sent() {
        let t = tender([]);
        let mut net = TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 1500).unwrap();
        net.transmit().unwrap().consume(60, |b| b.fill(7));
        net.transmit().unwrap().consume(1514, |b| b.fill(8));
        net.transmit().unwrap().consume(1515, |b| b.fill(9));
        net.transmit().unwrap().consume(13, |b| b.fill(10));
        let sent = t.sent.borrow();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], vec![7; 60]);
        assert_eq!(sent[1], vec![8; 1514]);
        assert_eq!(net.drops().tx, 2);
    }

    #[test]
    fn impossible_mtus_are_refused() {
        let t = tender([]);
        assert_eq!(
            TenderNetOver::new(&t, [2, 0, 0, 0, 0, 1], 20).err(),
            Some(Error::BadMtu(20))
        );
        assert!(std::format!("{}", Error::NoDevice).contains("--tap"));
    }
}
