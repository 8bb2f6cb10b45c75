//! The netfront rings and buffers, generic over the [`Hal`]: the part of the driver
//! that moves frames, run unchanged by the kernel and by the host tests' simulated
//! backend.
//!
//! Wire formats (`io/netif.h`, re-expressed):
//!
//! | entry | bytes | fields |
//! |---|---|---|
//! | TX request | 12 | `gref: u32`, `offset: u16`, `flags: u16`, `id: u16`, `size: u16` |
//! | TX response | 4 | `id: u16`, `status: i16` (0 okay, < 0 error) |
//! | RX request | 8 | `id: u16`, pad, `gref: u32` |
//! | RX response | 8 | `id: u16`, `offset: u16`, `flags: u16`, `status: i16` (length, or < 0 error) |
//!
//! Buffers: receive buffer `i` is page `i`, granted to the backend for writing once at
//! start and re-posted with the same id and grant after each frame (netback copies
//! into it: `request-rx-copy`). Transmit buffer `i` is half a page (2 KiB, enough for
//! a 1514-byte frame without crossing a page), granted read-only; a frame is written
//! straight into it by the stack ([`TxToken`]) and its slot is reused once the
//! backend's response for id `i` comes back. Nothing is allocated or copied per frame.

use crate::Error;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::ptr::NonNull;
use core::task::Waker;
use morgana_signatures::{MacAddress, NetIf};
use morgana_xen::device::{Hal, Watchdog};
use morgana_xen::ring::{Corrupt, FrontRing};

/// Receive buffers (pages) posted to the backend.
pub const RX_BUFFERS: usize = 128;
/// Transmit buffers (half pages).
pub const TX_BUFFERS: usize = 128;
/// Bytes of one transmit buffer.
pub const TX_BUFFER_BYTES: usize = 2048;
const PAGE: usize = 4096;

const TX_REQUEST_BYTES: usize = 12;
const RX_REQUEST_BYTES: usize = 8;
/// `NETRXF_more_data`: the frame continues in the next response (not negotiated).
const NETRXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`: an extra-info slot follows (GSO; not negotiated).
const NETRXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_csum_blank`: the checksum is left to us (we asked the backend not to).
const NETRXF_CSUM_BLANK: u16 = 1 << 1;
const ETHERNET_HEADER: usize = 14;

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received and handed to the stack.
    pub rx_frames: u64,
    /// Receive responses dropped (error status, bad id, unnegotiated flags, too short).
    pub rx_errors: u64,
    /// Frames transmitted.
    pub tx_frames: u64,
    /// Transmit responses with an error status or an unknown id.
    pub tx_errors: u64,
    /// Frames the stack wrote that could not be sent (too large, or no buffer).
    pub tx_dropped: u64,
    /// Event channel notifications sent.
    pub notifies: u64,
    /// Watchdog checks made (one per period, see `watchdog`).
    pub watchdog_checks: u64,
    /// Times the watchdog found responses that no event had announced (a lost
    /// notification from the backend, recovered).
    pub lost_events: u64,
    /// Times the watchdog found transmit requests unanswered for a whole period and
    /// notified the backend again (a lost notification to the backend).
    pub backend_kicks: u64,
    /// Receive buffers the backend no longer held (answered under another id) that the
    /// watchdog posted again.
    pub rx_reposted: u64,
}

/// The counters, shared by the two tokens of a received frame.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    rx_frames: Cell<u64>,
    rx_errors: Cell<u64>,
    tx_frames: Cell<u64>,
    tx_errors: Cell<u64>,
    tx_dropped: Cell<u64>,
    pub(crate) notifies: Cell<u64>,
    pub(crate) watchdog_checks: Cell<u64>,
    pub(crate) lost_events: Cell<u64>,
    pub(crate) backend_kicks: Cell<u64>,
    pub(crate) rx_reposted: Cell<u64>,
}

pub(crate) fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

/// The receive side: ring, pages (one per buffer) and their grants.
pub(crate) struct RxSide {
    pub(crate) ring: FrontRing,
    pages: NonNull<u8>,
    grefs: Vec<u32>,
    pub(crate) posted: Vec<bool>,
}

impl RxSide {
    pub(crate) fn post(&mut self, id: u16) {
        let Some(mut slot) = self.ring.next_request() else {
            // Cannot happen: at most RX_BUFFERS (< ring size) requests are outstanding.
            return;
        };
        slot.write_u16(0, id);
        slot.write_u16(2, 0);
        slot.write_u32(4, self.grefs[id as usize]);
        self.posted[id as usize] = true;
    }
}

/// The transmit side: ring, half-page buffers and their pages' grants.
pub(crate) struct TxSide {
    pub(crate) ring: FrontRing,
    pages: NonNull<u8>,
    grefs: Vec<u32>,
    pub(crate) free: Vec<u16>,
    busy: Vec<bool>,
    scratch: Vec<u8>,
    mtu: usize,
}

/// The rings, the buffers and their grants.
pub struct Netfront<H: Hal> {
    pub(crate) hal: H,
    mac: MacAddress,
    pub(crate) rx: RxSide,
    pub(crate) tx: TxSide,
    tx_ring_ref: u32,
    rx_ring_ref: u32,
    pub(crate) broken: Option<Corrupt>,
    pub(crate) counters: Counters,
    pub(crate) watchdog: Watchdog<H::Sleep>,
    /// What the watchdog looks at between two checks (see `watchdog`).
    pub(crate) watch: crate::watchdog::State,
}

impl<H: Hal> Netfront<H> {
    /// Allocates and grants the rings and buffers and posts every receive buffer. The
    /// frontend then publishes [`Netfront::tx_ring_ref`] and [`Netfront::rx_ring_ref`]
    /// and, once connected, calls [`Netfront::kick`].
    pub fn new(hal: H, mac: MacAddress, mtu: usize) -> Result<Netfront<H>, Error> {
        let rings = hal.alloc_pages(2)?;
        // SAFETY: two fresh zeroed pages, ours for the driver's life, shared only with
        // the backend through the grants below.
        let (tx_ring, rx_ring) = unsafe {
            (
                FrontRing::new(rings.as_ptr(), TX_REQUEST_BYTES),
                FrontRing::new(rings.as_ptr().add(PAGE), RX_REQUEST_BYTES),
            )
        };
        let tx_ring_ref = hal.grant(rings, false)?;
        // SAFETY: second page of the allocation above.
        let rx_ring_ref = hal.grant(unsafe { rings.add(PAGE) }, false)?;
        let rx_pages = hal.alloc_pages(RX_BUFFERS)?;
        let rx_grefs = (0..RX_BUFFERS)
            // SAFETY: page `i` of the `RX_BUFFERS`-page allocation.
            .map(|i| hal.grant(unsafe { rx_pages.add(i * PAGE) }, false))
            .collect::<Result<Vec<_>, _>>()?;
        let tx_page_count = TX_BUFFERS * TX_BUFFER_BYTES / PAGE;
        let tx_pages = hal.alloc_pages(tx_page_count)?;
        let tx_grefs = (0..tx_page_count)
            // SAFETY: page `i` of the transmit allocation.
            .map(|i| hal.grant(unsafe { tx_pages.add(i * PAGE) }, true))
            .collect::<Result<Vec<_>, _>>()?;
        let mut rx = RxSide {
            ring: rx_ring,
            pages: rx_pages,
            grefs: rx_grefs,
            posted: vec![false; RX_BUFFERS],
        };
        for id in 0..RX_BUFFERS as u16 {
            rx.post(id);
        }
        Ok(Netfront {
            hal,
            mac,
            rx,
            tx: TxSide {
                ring: tx_ring,
                pages: tx_pages,
                grefs: tx_grefs,
                free: (0..TX_BUFFERS as u16).rev().collect(),
                busy: vec![false; TX_BUFFERS],
                scratch: Vec::new(),
                mtu: mtu.min(1500),
            },
            tx_ring_ref,
            rx_ring_ref,
            broken: None,
            counters: Counters::default(),
            watchdog: Watchdog::new(crate::watchdog::PERIOD),
            watch: crate::watchdog::State::default(),
        })
    }

    /// The transmit ring's grant reference (`tx-ring-ref`).
    pub fn tx_ring_ref(&self) -> u32 {
        self.tx_ring_ref
    }

    /// The receive ring's grant reference (`rx-ring-ref`).
    pub fn rx_ring_ref(&self) -> u32 {
        self.rx_ring_ref
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let c = &self.counters;
        Stats {
            rx_frames: c.rx_frames.get(),
            rx_errors: c.rx_errors.get(),
            tx_frames: c.tx_frames.get(),
            tx_errors: c.tx_errors.get(),
            tx_dropped: c.tx_dropped.get(),
            notifies: c.notifies.get(),
            watchdog_checks: c.watchdog_checks.get(),
            lost_events: c.lost_events.get(),
            backend_kicks: c.backend_kicks.get(),
            rx_reposted: c.rx_reposted.get(),
        }
    }

    /// Bytes shared with the backend (rings and buffers).
    pub fn shared_bytes(&self) -> usize {
        2 * PAGE + RX_BUFFERS * PAGE + TX_BUFFERS * TX_BUFFER_BYTES
    }

    /// Frames in flight to the backend (sent, not yet answered).
    pub fn pending_tx(&self) -> usize {
        TX_BUFFERS - self.tx.free.len()
    }

    /// Set when the backend broke the ring protocol; the device then stops.
    pub fn broken(&self) -> Option<Corrupt> {
        self.broken
    }

    /// The host side (for the kernel's handshake and the tests).
    pub fn hal(&self) -> &H {
        &self.hal
    }

    /// Publishes what was posted and notifies the backend if it asked.
    pub fn kick(&self) {
        let rx = self.rx.ring.push();
        let tx = self.tx.ring.push();
        if rx || tx {
            bump(&self.counters.notifies);
            self.hal.notify();
        }
    }

    /// Takes back the buffers of answered transmit requests.
    pub(crate) fn reclaim_tx(&mut self) {
        if self.broken.is_some() {
            return;
        }
        loop {
            match self.tx.ring.next_response() {
                Ok(Some(slot)) => {
                    let (id, status) = (slot.read_u16(0), slot.read_i16(2));
                    if status == NETIF_RSP_NULL {
                        continue;
                    }
                    let i = id as usize;
                    if i >= TX_BUFFERS || !self.tx.busy[i] {
                        log::debug!("netfront: transmit response for unknown id {id}");
                        bump(&self.counters.tx_errors);
                        continue;
                    }
                    if status != 0 {
                        bump(&self.counters.tx_errors);
                    }
                    self.tx.busy[i] = false;
                    self.tx.free.push(id);
                }
                Ok(None) => return,
                Err(c) => return self.stop(c),
            }
        }
    }

    fn stop(&mut self, c: Corrupt) {
        log::error!(
            "netfront: the backend broke the ring protocol (rsp_prod {}, rsp_cons {}); the device stops",
            c.rsp_prod,
            c.rsp_cons
        );
        self.broken = Some(c);
    }
}

/// `NETIF_RSP_NULL`: the answer to an extra-info slot (we send none).
const NETIF_RSP_NULL: i16 = 1;

/// A received frame, lent in place; its buffer goes back to the backend after use.
pub struct RxToken<'a, H: Hal> {
    rx: &'a mut RxSide,
    hal: &'a H,
    counters: &'a Counters,
    id: u16,
    offset: usize,
    len: usize,
}

impl<H: Hal> core::fmt::Debug for RxToken<'_, H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RxToken")
            .field("id", &self.id)
            .field("len", &self.len)
            .finish()
    }
}

impl<H: Hal> morgana_signatures::RxToken for RxToken<'_, H> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        // SAFETY: the backend wrote `len` bytes at `offset` of page `id` (checked to
        // lie within the page) and answered; the page is not posted again, so not
        // written, until the token is dropped, after `f` returns.
        let frame = unsafe {
            core::slice::from_raw_parts(
                self.rx
                    .pages
                    .as_ptr()
                    .add(self.id as usize * PAGE + self.offset),
                self.len,
            )
        };
        // The buffer goes back to the backend when the token is dropped, right after.
        f(frame)
    }
}

impl<H: Hal> Drop for RxToken<'_, H> {
    /// Re-posts the buffer, whether the frame was consumed or the token merely dropped
    /// (a stack that discards a token must not leak one of the 128 buffers: without
    /// posted buffers netback stops delivering, for good).
    fn drop(&mut self) {
        self.rx.post(self.id);
        // Long bursts: hand buffers back before the ring runs dry.
        if self.rx.ring.unpublished() >= 32 && self.rx.ring.push() {
            bump(&self.counters.notifies);
            self.hal.notify();
        }
    }
}

/// Room for one frame to send.
pub struct TxToken<'a, H: Hal> {
    tx: &'a mut TxSide,
    hal: &'a H,
    counters: &'a Counters,
}

impl<H: Hal> core::fmt::Debug for TxToken<'_, H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TxToken")
            .field("free", &self.tx.free.len())
            .finish()
    }
}

impl<H: Hal> morgana_signatures::TxToken for TxToken<'_, H> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let tx = self.tx;
        let fits = len <= TX_BUFFER_BYTES && len <= tx.mtu + ETHERNET_HEADER;
        let id = match tx.free.pop() {
            Some(id) if fits => id,
            other => {
                if let Some(id) = other {
                    tx.free.push(id);
                }
                bump(&self.counters.tx_dropped);
                tx.scratch.clear();
                tx.scratch.resize(len, 0);
                return f(&mut tx.scratch);
            }
        };
        let byte = id as usize * TX_BUFFER_BYTES;
        // SAFETY: buffer `id` was free (answered or never used), so the backend does
        // not read it until it is published below, after the slice is gone;
        // `byte + len <= byte + TX_BUFFER_BYTES` lies within the transmit allocation.
        let frame = unsafe { core::slice::from_raw_parts_mut(tx.pages.as_ptr().add(byte), len) };
        let result = f(frame);
        let gref = tx.grefs[byte / PAGE];
        let Some(mut slot) = tx.ring.next_request() else {
            // Cannot happen: at most TX_BUFFERS (< ring size) requests are outstanding.
            tx.free.push(id);
            bump(&self.counters.tx_dropped);
            return result;
        };
        slot.write_u32(0, gref);
        slot.write_u16(4, (byte % PAGE) as u16);
        slot.write_u16(6, 0);
        slot.write_u16(8, id);
        slot.write_u16(10, len as u16);
        tx.busy[id as usize] = true;
        bump(&self.counters.tx_frames);
        if tx.ring.push() {
            bump(&self.counters.notifies);
            self.hal.notify();
        }
        result
    }
}

impl<H: Hal> NetIf for Netfront<H> {
    type RxToken<'a>
        = RxToken<'a, H>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, H>
    where
        Self: 'a;

    fn receive(&mut self) -> Option<(RxToken<'_, H>, TxToken<'_, H>)> {
        if self.broken.is_some() {
            return None;
        }
        if self.watch.asleep.replace(false) {
            // The first look after a wake-up: the watchdog's and the debug key's turn.
            self.woke();
        }
        self.reclaim_tx();
        loop {
            let (id, offset, flags, status) = match self.rx.ring.next_response() {
                Ok(Some(slot)) => (
                    slot.read_u16(0),
                    slot.read_u16(2) as usize,
                    slot.read_u16(4),
                    slot.read_i16(6),
                ),
                Ok(None) => {
                    // Going idle: give the backend what was re-posted.
                    self.kick();
                    self.drained();
                    return None;
                }
                Err(c) => {
                    self.stop(c);
                    return None;
                }
            };
            let i = id as usize;
            if i >= RX_BUFFERS || !self.rx.posted[i] {
                log::debug!("netfront: receive response for unknown id {id}");
                bump(&self.counters.rx_errors);
                continue;
            }
            self.rx.posted[i] = false;
            let len = status as isize;
            let bad = len < ETHERNET_HEADER as isize
                || offset + len as usize > PAGE
                || flags & (NETRXF_MORE_DATA | NETRXF_EXTRA_INFO | NETRXF_CSUM_BLANK) != 0;
            if bad {
                // As i32: the kernel formats i32 already; an i16 formatter is 250 bytes more.
                let status = i32::from(status);
                log::debug!(
                    "netfront: dropped receive response id {id}: status {status}, offset {offset}, flags {flags:#x}"
                );
                bump(&self.counters.rx_errors);
                self.rx.post(id);
                continue;
            }
            bump(&self.counters.rx_frames);
            return Some((
                RxToken {
                    rx: &mut self.rx,
                    hal: &self.hal,
                    counters: &self.counters,
                    id,
                    offset,
                    len: len as usize,
                },
                TxToken {
                    tx: &mut self.tx,
                    hal: &self.hal,
                    counters: &self.counters,
                },
            ));
        }
    }

    fn transmit(&mut self) -> Option<TxToken<'_, H>> {
        if self.broken.is_some() {
            return None;
        }
        self.reclaim_tx();
        if self.tx.free.is_empty() {
            // Ask for an event when the backend answers, so the stack is woken to
            // send again.
            self.tx.ring.arm();
            return None;
        }
        Some(TxToken {
            tx: &mut self.tx,
            hal: &self.hal,
            counters: &self.counters,
        })
    }

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.tx.mtu
    }

    fn register_rx_waker(&self, waker: &Waker) {
        self.kick();
        self.hal.register_waker(waker);
        self.watchdog.arm(&self.hal, waker);
        self.watch.asleep.set(true);
        // A frame (or, with every buffer in flight, a transmit answer) that arrived
        // before the event was armed would not wake anyone.
        let tx_waiting = self.tx.free.is_empty() && self.tx.ring.arm();
        if self.broken.is_none() && (self.rx.ring.arm() || tx_waiting) {
            waker.wake_by_ref();
        }
    }

    fn diagnostics_requested(&self) -> bool {
        self.watch.stack_report.replace(false)
    }
}
