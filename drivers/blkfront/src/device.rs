//! The blkif ring and its request slots, generic over the [`Hal`]: the part of the
//! driver that moves sectors, run unchanged by the kernel and by the host tests'
//! simulated backends.
//!
//! # Slots
//!
//! Slot `s` owns pages `s × segments ..` of one allocation, each granted (writable)
//! once at start; a request in slot `s` carries the grants of as many of its pages as
//! its data needs. A request's `id` is `generation << 32 | slot`, the generation
//! counting the slot's uses, so a response repeated, stale or for a request never made
//! is recognised and dropped rather than completing someone else's request.
//!
//! A slot is `Free`, `InFlight` (its owner's waker, when it went out, whether it
//! timed out), `Done` (answered, the owner has not looked yet) or `Abandoned` (the
//! owner is gone — its future dropped, or told of a timeout — but the backend still
//! holds the pages: the slot is freed when the answer comes, never before).
//!
//! # Wake-ups
//!
//! The event channel keeps one waker, as a virtio interrupt does: whichever request it
//! wakes takes every response from the ring and wakes the owners of the others; a
//! request that finishes hands the event channel (and the watchdog) to one still in
//! flight.
//!
//! # The watchdog
//!
//! While anything is in flight or waiting for a slot, the owners park with
//! morgana-xen's [`Watchdog`] armed, so some request is woken at least once per
//! [`WATCHDOG_PERIOD`]; the first to run then checks (`check`): responses no event
//! announced are taken (counted: `unannounced`); if no response came during a whole
//! period the backend is notified again (`backend_kicks`, a lost notification) and, if
//! the kernel gave a probe, xenstore is asked whether the backend is closing; requests
//! older than the timeout fail with [`Error::Timeout`]. An idle disk runs no timer.

use crate::Error;
use crate::blkif::{self, MAX_SEGMENTS, WIRE_SECTOR, op_name, req, rsp};
use crate::handshake::{Flush, Geometry};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::poll_fn;
use core::ptr::NonNull;
use core::task::{Poll, Waker};
use core::time::Duration;
use morgana_signatures::{Block, BlockErrorKind, Instant, check_request};
use morgana_xen::device::{Hal, Watchdog};
use morgana_xen::ring::{Corrupt, FrontRing};

const PAGE: usize = 4096;

/// How often a driver with requests in flight is woken, whatever happens.
pub const WATCHDOG_PERIOD: Duration = Duration::from_secs(1);
/// How long a request may stay unanswered (or wait for a free slot) before it fails
/// with [`Error::Timeout`].
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Driver settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Requests in flight at most (1 to 32, the ring's entries).
    pub slots: u16,
    /// Pages per slot (1 to 11): a read or write is cut into pieces of this many pages.
    pub segments: u8,
    /// How long a request may stay unanswered.
    pub timeout: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            slots: 8,
            segments: MAX_SEGMENTS as u8,
            timeout: REQUEST_TIMEOUT,
        }
    }
}

/// Counters, for logs and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent (pieces of reads and writes count one each).
    pub requests: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub written_bytes: u64,
    /// Flush (or barrier) requests sent.
    pub flushes: u64,
    /// Discard requests sent.
    pub discards: u64,
    /// Requests that failed (error status, timeout, protocol).
    pub errors: u64,
    /// The most requests in flight at once.
    pub max_in_flight: u16,
    /// Event channel notifications sent.
    pub notifies: u64,
    /// Responses dropped: unknown, stale or repeated ids.
    pub bogus_responses: u64,
    /// Watchdog checks made.
    pub watchdog_checks: u64,
    /// Responses a check found waiting that no wake-up had taken.
    pub unannounced: u64,
    /// Times a check found nothing answered for a period and notified the backend again.
    pub backend_kicks: u64,
    /// Requests that timed out.
    pub timeouts: u64,
}

/// How a request ended, as the backend said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Status(i16),
    /// The response names another operation.
    Mismatch,
    /// The ring was given up.
    Broken,
    /// The backend closed.
    Gone,
}

#[derive(Debug)]
enum SlotState {
    Free,
    InFlight {
        waker: Option<Waker>,
        since: Instant,
        op: u8,
        timed_out: bool,
    },
    Done(Outcome),
    Abandoned,
}

struct Inner {
    ring: FrontRing,
    state: Vec<SlotState>,
    generation: Vec<u32>,
    free: Vec<u16>,
    /// Requests waiting for a free slot.
    waiting: Vec<Waker>,
    in_flight: u16,
    stats: Stats,
    broken: Option<Corrupt>,
    gone: bool,
    /// `rsp_cons` at the last check, and whether requests were outstanding then.
    at_check: (u32, bool),
}

/// Asks the kernel whether the backend closed (`true`: it did). Called at most once
/// per watchdog period, and only while the backend leaves requests unanswered.
pub type Probe = Box<dyn FnMut() -> bool>;

/// A Xen virtual block device, driven. Implements [`Block`].
pub struct Blkfront<H: Hal> {
    hal: H,
    inner: RefCell<Inner>,
    pages: NonNull<u8>,
    grefs: Vec<u32>,
    ring_ref: u32,
    segments: usize,
    geometry: Geometry,
    /// Bytes of data per piece (a whole number of sectors).
    chunk: usize,
    /// The backend answered a discard with EOPNOTSUPP: no more are sent.
    discard_off: Cell<bool>,
    timeout: Duration,
    watchdog: Watchdog<H::Sleep>,
    probe: RefCell<Option<Probe>>,
}

impl<H: Hal> core::fmt::Debug for Blkfront<H> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Blkfront")
            .field("geometry", &self.geometry)
            .field("slots", &self.slots())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// What one operation carries.
enum Data<'a> {
    In(&'a mut [u8]),
    Out(&'a [u8]),
    /// Flush or barrier: no data.
    None,
    /// Wire sectors: count.
    Discard(u64),
}

impl<H: Hal> Blkfront<H> {
    /// Allocates and grants the ring and the slots' pages. The frontend then publishes
    /// [`Blkfront::ring_ref`], connects, and gives the backend's description to
    /// [`Blkfront::attach`]; until then the disk has no sectors.
    pub fn new(hal: H, config: Config) -> Result<Blkfront<H>, Error> {
        let slots = usize::from(config.slots.clamp(1, 32));
        let segments = usize::from(config.segments.clamp(1, MAX_SEGMENTS as u8));
        let ring_page = hal.alloc_pages(1)?;
        // SAFETY: a fresh zeroed page, ours for the driver's life, shared only with the
        // backend through the grant below.
        let ring = unsafe { FrontRing::new(ring_page.as_ptr(), blkif::ENTRY_BYTES) };
        let ring_ref = hal.grant(ring_page, false)?;
        let pages = hal.alloc_pages(slots * segments)?;
        let grefs = (0..slots * segments)
            // SAFETY: page `i` of the `slots × segments`-page allocation.
            .map(|i| hal.grant(unsafe { pages.add(i * PAGE) }, false))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Blkfront {
            hal,
            inner: RefCell::new(Inner {
                ring,
                state: (0..slots).map(|_| SlotState::Free).collect(),
                generation: alloc::vec![0; slots],
                free: (0..slots as u16).rev().collect(),
                waiting: Vec::new(),
                in_flight: 0,
                stats: Stats::default(),
                broken: None,
                gone: false,
                at_check: (0, false),
            }),
            pages,
            grefs,
            ring_ref,
            segments,
            geometry: Geometry {
                handle: 0,
                sectors: 0,
                sector_size: WIRE_SECTOR as usize,
                read_only: true,
                flush: Flush::None,
                discard: false,
            },
            chunk: segments * PAGE,
            discard_off: Cell::new(false),
            timeout: config.timeout,
            watchdog: Watchdog::new(WATCHDOG_PERIOD),
            probe: RefCell::new(None),
        })
    }

    /// Takes the backend's description of the disk (see `handshake::describe`).
    pub fn attach(&mut self, geometry: Geometry) {
        self.chunk = self.segments * PAGE / geometry.sector_size * geometry.sector_size;
        self.geometry = geometry;
    }

    /// Gives the watchdog a way to ask whether the backend closed.
    pub fn set_probe(&mut self, probe: Probe) {
        *self.probe.get_mut() = Some(probe);
    }

    /// The ring's grant reference (`ring-ref`).
    pub fn ring_ref(&self) -> u32 {
        self.ring_ref
    }

    /// The disk as the backend described it.
    pub fn geometry(&self) -> Geometry {
        self.geometry
    }

    /// Request slots (the most requests in flight).
    pub fn slots(&self) -> usize {
        self.inner.borrow().state.len()
    }

    /// Bytes of data one request carries at most.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk
    }

    /// Bytes shared with the backend (the ring and the slots' pages).
    pub fn shared_bytes(&self) -> usize {
        PAGE + self.grefs.len() * PAGE
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.inner.borrow().stats
    }

    /// The host side (for the kernel's handshake and the tests).
    pub fn hal(&self) -> &H {
        &self.hal
    }

    /// Set when the backend broke the ring protocol; the device then stops.
    pub fn broken(&self) -> Option<Corrupt> {
        self.inner.borrow().broken
    }

    fn slot_ptr(&self, slot: u16) -> *mut u8 {
        // SAFETY: `slot < slots`, so its pages lie within the allocation.
        unsafe {
            self.pages
                .as_ptr()
                .add(usize::from(slot) * self.segments * PAGE)
        }
    }

    /// Takes every response from the ring: completes (or frees) their slots.
    fn reap(&self, inner: &mut Inner) {
        let mut freed = false;
        while inner.broken.is_none() {
            let (id, op, status) = match inner.ring.next_response() {
                Ok(Some(s)) => (
                    s.read_u64(rsp::ID),
                    s.read_u16(rsp::OPERATION) as u8,
                    s.read_i16(rsp::STATUS),
                ),
                Ok(None) => break,
                Err(c) => {
                    log::error!(
                        "blkfront: the backend broke the ring protocol (rsp_prod {}, rsp_cons {}); the disk stops",
                        c.rsp_prod,
                        c.rsp_cons
                    );
                    inner.broken = Some(c);
                    break;
                }
            };
            let slot = (id & 0xFFFF_FFFF) as usize;
            let known = slot < inner.state.len() && inner.generation[slot] == (id >> 32) as u32;
            let state = match known {
                true => &mut inner.state[slot],
                false => {
                    log::warn!("blkfront: dropped a response for id {id:#x}, a request never made");
                    inner.stats.bogus_responses += 1;
                    continue;
                }
            };
            match core::mem::replace(state, SlotState::Free) {
                SlotState::InFlight {
                    waker, op: sent, ..
                } => {
                    *state = SlotState::Done(if op == sent {
                        Outcome::Status(status)
                    } else {
                        Outcome::Mismatch
                    });
                    inner.in_flight -= 1;
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                SlotState::Abandoned => {
                    inner.in_flight -= 1;
                    inner.free.push(slot as u16);
                    freed = true;
                }
                other => {
                    log::warn!("blkfront: dropped a repeated response for id {id:#x}");
                    inner.stats.bogus_responses += 1;
                    *state = other;
                }
            }
        }
        let end = if inner.gone {
            Some(Outcome::Gone)
        } else {
            inner.broken.map(|_| Outcome::Broken)
        };
        if let Some(end) = end {
            // Nothing more will be answered: every owner still waiting hears it now.
            for s in &mut inner.state {
                if let SlotState::InFlight { waker, .. } = s {
                    if let Some(w) = waker.take() {
                        w.wake();
                    }
                    *s = SlotState::Done(end);
                }
            }
            freed = true;
        }
        if freed {
            inner.waiting.drain(..).for_each(Waker::wake);
        }
    }

    /// The watchdog's look (see the module docs).
    fn check(&self, inner: &mut Inner, now: Instant) {
        inner.stats.watchdog_checks += 1;
        if inner.ring.has_responses() {
            inner.stats.unannounced += 1;
            log::debug!("blkfront: watchdog found responses no event announced");
        }
        let outstanding = inner.in_flight > 0;
        let stalled = outstanding && inner.at_check == (inner.ring.rsp_cons(), true);
        inner.at_check = (inner.ring.rsp_cons(), outstanding);
        if stalled && !inner.ring.has_responses() {
            inner.stats.backend_kicks += 1;
            log::warn!(
                "blkfront: {} requests unanswered for {} ms; notifying the backend again",
                inner.in_flight,
                WATCHDOG_PERIOD.as_millis() as u64
            );
            inner.stats.notifies += 1;
            self.hal.notify();
            if let Some(probe) = self.probe.borrow_mut().as_mut()
                && probe()
            {
                log::error!("blkfront: the backend closed the disk; every request fails");
                inner.gone = true;
            }
        }
        for s in &mut inner.state {
            if let SlotState::InFlight {
                waker,
                since,
                timed_out,
                op,
            } = s
                && !*timed_out
                && now.saturating_duration_since(*since) >= self.timeout
            {
                *timed_out = true;
                inner.stats.timeouts += 1;
                log::warn!(
                    "blkfront: a {} request got no answer in {} ms",
                    op_name(*op),
                    self.timeout.as_millis() as u64
                );
                if let Some(w) = waker.take() {
                    w.wake();
                }
            }
        }
        inner.waiting.drain(..).for_each(Waker::wake);
    }

    /// Parks `waker` on the event channel and the watchdog; wakes it at once if
    /// responses are already waiting.
    fn park(&self, waker: &Waker) {
        self.hal.register_waker(waker);
        self.watchdog.arm(&self.hal, waker);
        if self.inner.borrow().ring.arm() {
            waker.wake_by_ref();
        }
    }

    /// Writes request `op` for piece `index` of `data` into slot `slot` and marks it in
    /// flight (published by the caller).
    fn submit(
        &self,
        inner: &mut Inner,
        (slot, index): (u16, usize),
        op: u8,
        sector: u64,
        data: &Data<'_>,
        now: Instant,
    ) {
        let s = usize::from(slot);
        inner.generation[s] = inner.generation[s].wrapping_add(1);
        let id = u64::from(inner.generation[s]) << 32 | u64::from(slot);
        let chunk = self.chunk;
        let (len, payload) = match data {
            Data::In(b) => ((b.len() - index * chunk).min(chunk), None),
            Data::Out(b) => {
                let at = index * chunk;
                let len = (b.len() - at).min(chunk);
                // SAFETY: the slot is free (the backend holds none of its pages) and
                // its pages hold `segments × PAGE >= chunk >= len` bytes.
                let dst = unsafe { core::slice::from_raw_parts_mut(self.slot_ptr(slot), len) };
                dst.copy_from_slice(&b[at..at + len]);
                (len, None)
            }
            Data::None => (0, None),
            Data::Discard(count) => (0, Some(*count)),
        };
        let Some(mut r) = inner.ring.next_request() else {
            // Cannot happen: `run` looked for a free entry first.
            log::error!("blkfront: no free ring entry for a request");
            return;
        };
        r.write_u8(req::OPERATION, op);
        r.write_u16(req::HANDLE, self.geometry.handle);
        r.write_u32(req::PAD, 0);
        r.write_u64(req::ID, id);
        r.write_u64(req::SECTOR, sector);
        match payload {
            Some(count) => {
                r.write_u8(req::NR_SEGMENTS, 0);
                r.write_u64(req::SEGMENTS, count);
            }
            None => {
                let pages = len.div_ceil(PAGE);
                r.write_u8(req::NR_SEGMENTS, pages as u8);
                for p in 0..pages {
                    let bytes = (len - p * PAGE).min(PAGE);
                    let at = req::SEGMENTS + p * req::SEGMENT_BYTES;
                    r.write_u32(at, self.grefs[s * self.segments + p]);
                    r.write_u8(at + 4, 0);
                    r.write_u8(at + 5, (bytes as u64 / WIRE_SECTOR - 1) as u8);
                    r.write_u16(at + 6, 0);
                }
            }
        }
        inner.state[s] = SlotState::InFlight {
            waker: None,
            since: now,
            op,
            timed_out: false,
        };
        inner.in_flight += 1;
        let st = &mut inner.stats;
        st.requests += 1;
        st.max_in_flight = st.max_in_flight.max(inner.in_flight);
        match data {
            Data::Out(_) => st.written_bytes += len as u64,
            Data::None => st.flushes += 1,
            Data::Discard(_) => st.discards += 1,
            Data::In(_) => {}
        }
    }

    /// Runs one operation, cut into pieces that go to the backend together. `first` is
    /// in wire (512-byte) sectors.
    async fn run(&self, op: u8, first: u64, mut data: Data<'_>) -> Result<(), Error> {
        let pieces = match &data {
            Data::In(b) => b.len().div_ceil(self.chunk),
            Data::Out(b) => b.len().div_ceil(self.chunk),
            Data::None | Data::Discard(_) => 1,
        };
        let per_piece = (self.chunk as u64) / WIRE_SECTOR;
        let mut flight = Flight {
            blk: self,
            list: Vec::new(),
        };
        let mut next = 0;
        let mut error = None;
        let mut slot_wait: Option<Instant> = None;
        poll_fn(|cx| {
            let now = self.hal.now();
            let mut inner = self.inner.borrow_mut();
            if self.watchdog.due(now) {
                self.check(&mut inner, now);
            }
            self.reap(&mut inner);
            let mut i = 0;
            while i < flight.list.len() {
                let (slot, piece) = flight.list[i];
                let s = usize::from(slot);
                let outcome = match &inner.state[s] {
                    SlotState::Done(o) => Ok(*o),
                    SlotState::InFlight {
                        timed_out: true, ..
                    } => Err(()),
                    _ => {
                        i += 1;
                        continue;
                    }
                };
                flight.list.swap_remove(i);
                let outcome = match outcome {
                    Ok(o) => {
                        inner.state[s] = SlotState::Free;
                        inner.free.push(slot);
                        inner.waiting.drain(..).for_each(Waker::wake);
                        o
                    }
                    Err(()) => {
                        // Still the backend's: freed when (if) it answers.
                        inner.state[s] = SlotState::Abandoned;
                        inner.stats.errors += 1;
                        error.get_or_insert(Error::Timeout {
                            op: op_name(op),
                            waited_ms: self.timeout.as_millis() as u64,
                        });
                        continue;
                    }
                };
                let failure = match outcome {
                    Outcome::Status(blkif::RSP_OKAY) => {
                        if let Data::In(buf) = &mut data {
                            let at = piece * self.chunk;
                            let len = (buf.len() - at).min(self.chunk);
                            // SAFETY: the backend answered, so the slot's pages are
                            // ours again and hold the `len <= chunk` bytes it wrote
                            // (the ring's acquire load of rsp_prod orders them).
                            let src =
                                unsafe { core::slice::from_raw_parts(self.slot_ptr(slot), len) };
                            buf[at..at + len].copy_from_slice(src);
                            inner.stats.read_bytes += len as u64;
                        }
                        continue;
                    }
                    Outcome::Status(blkif::RSP_ERROR) => Error::Io {
                        sector: (first + piece as u64 * per_piece) * WIRE_SECTOR
                            / self.geometry.sector_size as u64,
                    },
                    Outcome::Status(blkif::RSP_EOPNOTSUPP) => {
                        if op == blkif::OP_DISCARD {
                            log::warn!("blkfront: the backend refused a discard; no more are sent");
                            self.discard_off.set(true);
                        }
                        Error::Unsupported { op: op_name(op) }
                    }
                    Outcome::Status(_) => Error::Protocol {
                        what: "answered with a status blkif does not have",
                    },
                    Outcome::Mismatch => Error::Protocol {
                        what: "answered a request with another operation",
                    },
                    Outcome::Broken => Error::Protocol {
                        what: "corrupted the ring indices; the disk was given up",
                    },
                    Outcome::Gone => Error::BackendGone,
                };
                inner.stats.errors += 1;
                error.get_or_insert(failure);
            }
            let mut submitted = false;
            while error.is_none() && next < pieces {
                if inner.gone {
                    error = Some(Error::BackendGone);
                    break;
                }
                if inner.broken.is_some() {
                    error = Some(Error::Protocol {
                        what: "corrupted the ring indices; the disk was given up",
                    });
                    break;
                }
                // A free entry too (always, with at most one per slot outstanding).
                let entry = inner.ring.free_requests() > 0;
                let Some(slot) = (if entry { inner.free.pop() } else { None }) else {
                    let since = *slot_wait.get_or_insert(now);
                    if now.saturating_duration_since(since) >= self.timeout {
                        inner.stats.errors += 1;
                        error = Some(Error::Timeout {
                            op: op_name(op),
                            waited_ms: self.timeout.as_millis() as u64,
                        });
                    }
                    break;
                };
                slot_wait = None;
                let sector = first + next as u64 * per_piece;
                self.submit(&mut inner, (slot, next), op, sector, &data, now);
                flight.list.push((slot, next));
                next += 1;
                submitted = true;
            }
            if submitted && inner.ring.push() {
                inner.stats.notifies += 1;
                self.hal.notify();
            }
            if flight.list.is_empty() && (next == pieces || error.is_some()) {
                // Hand the event channel and the watchdog to a request still in flight.
                let other = inner.state.iter().find_map(|s| match s {
                    SlotState::InFlight { waker: Some(w), .. } => Some(w.clone()),
                    _ => None,
                });
                let waiting = inner.waiting.first().cloned();
                drop(inner);
                if let Some(w) = other.or(waiting) {
                    self.park(&w);
                }
                return Poll::Ready(());
            }
            for &(slot, _) in &flight.list {
                if let SlotState::InFlight { waker, .. } = &mut inner.state[usize::from(slot)] {
                    match waker {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        _ => *waker = Some(cx.waker().clone()),
                    }
                }
            }
            if next < pieces && error.is_none() {
                inner.waiting.push(cx.waker().clone());
            }
            drop(inner);
            self.park(cx.waker());
            Poll::Pending
        })
        .await;
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Checks a request; returns its first wire sector.
    fn check_request(&self, sector: u64, len: usize, write: bool) -> Result<u64, Error> {
        if write && self.geometry.read_only {
            return Err(Error::Request(BlockErrorKind::ReadOnly));
        }
        let g = &self.geometry;
        check_request(g.sector_size, g.sectors, sector, len).map_err(Error::Request)?;
        Ok(sector * (g.sector_size as u64 / WIRE_SECTOR))
    }
}

/// The pieces of one operation in flight; on drop (the future abandoned), their slots
/// are freed when the backend answers.
struct Flight<'a, H: Hal> {
    blk: &'a Blkfront<H>,
    list: Vec<(u16, usize)>,
}

impl<H: Hal> Drop for Flight<'_, H> {
    fn drop(&mut self) {
        if self.list.is_empty() {
            return;
        }
        let mut inner = self.blk.inner.borrow_mut();
        for &(slot, _) in &self.list {
            let s = &mut inner.state[usize::from(slot)];
            if matches!(s, SlotState::Done(_)) {
                *s = SlotState::Free;
                inner.free.push(slot);
            } else {
                *s = SlotState::Abandoned;
            }
        }
        inner.waiting.drain(..).for_each(Waker::wake);
    }
}

impl<H: Hal> Block for Blkfront<H> {
    type Error = Error;

    fn sector_size(&self) -> usize {
        self.geometry.sector_size
    }

    fn sectors(&self) -> u64 {
        self.geometry.sectors
    }

    fn is_read_only(&self) -> bool {
        self.geometry.read_only
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        let first = self.check_request(sector, buf.len(), false)?;
        self.run(blkif::OP_READ, first, Data::In(buf)).await
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        let first = self.check_request(sector, buf.len(), true)?;
        self.run(blkif::OP_WRITE, first, Data::Out(buf)).await
    }

    async fn flush(&self) -> Result<(), Error> {
        if self.geometry.read_only {
            return Err(Error::Request(BlockErrorKind::ReadOnly));
        }
        match self.geometry.flush {
            // No volatile cache: every completed write is durable already.
            Flush::None => Ok(()),
            Flush::Cache => self.run(blkif::OP_FLUSH_DISKCACHE, 0, Data::None).await,
            Flush::Barrier => self.run(blkif::OP_WRITE_BARRIER, 0, Data::None).await,
        }
    }

    async fn discard(&self, sector: u64, count: u64) -> Result<(), Error> {
        let g = &self.geometry;
        if g.read_only {
            return Err(Error::Request(BlockErrorKind::ReadOnly));
        }
        if count == 0 {
            return Err(Error::Request(BlockErrorKind::Misaligned));
        }
        if sector.checked_add(count).is_none_or(|end| end > g.sectors) {
            return Err(Error::Request(BlockErrorKind::OutOfRange));
        }
        let first = sector * (g.sector_size as u64 / WIRE_SECTOR);
        if !self.geometry.discard || self.discard_off.get() {
            return Ok(());
        }
        let wire = count * (self.geometry.sector_size as u64 / WIRE_SECTOR);
        self.run(blkif::OP_DISCARD, first, Data::Discard(wire))
            .await
    }
}
