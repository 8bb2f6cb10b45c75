//! virtio-blk: a disk under QEMU, KVM or Firecracker, as the `BLOCK` signature.
//!
//! ```ignore
//! let disk = morgana_virtio::VirtioBlk::find(platform)?;   // impl morgana_signatures::Block
//! ```
//!
//! The driver [`Blk<H, T, I>`] is generic over the same [`Hal`], [`Transport`] and
//! [`Interrupt`] as the NIC's, and uses the same initialisation sequence, PCI transport
//! and interrupt set-up; its queue ([`ring`]) chains descriptors, since a virtio-blk
//! request is a header the device reads, the data, and a status byte it writes.
//!
//! - **Requests in flight.** The driver owns [`BlkConfig::slots`] request slots (8 by
//!   default), each with its own DMA bounce buffer of [`BlkConfig::slot_bytes`] (32 KiB)
//!   and three descriptors. A read or write is cut into slot-sized pieces that are all
//!   submitted at once (one notification) and complete in any order; several callers
//!   may have requests in flight together (`&self`). A request that finds no free slot
//!   waits for one.
//! - **Copies, not loans.** Data is copied between the caller's buffer and the slot's,
//!   so a request whose future is dropped can never let the device write into freed
//!   memory: its slot is marked abandoned and reused only once the device returns it.
//! - **Features.** `VERSION_1` (required), `SIZE_MAX` (pieces never exceed it),
//!   `SEG_MAX`, `BLK_SIZE` (the sector size; virtio addresses stay in 512-byte units),
//!   `RO` (writes refused with [`BlockErrorKind::ReadOnly`]), `FLUSH` (`flush` sends
//!   `VIRTIO_BLK_T_FLUSH`; without it the device has no volatile cache and `flush`
//!   completes at once), `DISCARD` (`discard` sends `VIRTIO_BLK_T_DISCARD`, cut to the
//!   device's limits; without it `discard` does nothing). One queue (no `MQ`), no
//!   `WRITE_ZEROES`, no indirect descriptors, no event index.
//! - **Interrupts**: the queue's completions raise the MSI-X vector (else INTx, else a
//!   1 ms poll), as for the NIC. Only one waker is kept by an [`Interrupt`]: whichever
//!   request it wakes takes every completion from the used ring and wakes the others'
//!   owners, and a request that finishes hands the interrupt on to one still in flight.
//! - **Errors** are [`BlkError`]s: a status `IOERR` from the device is
//!   [`BlockErrorKind::Io`], `UNSUPP` [`BlockErrorKind::Unsupported`]; a device that
//!   returns requests it does not have is given up ([`BlkError::Broken`]).
//!
//! Memory: the ring (64 entries: 1.7 KiB) and `slots × (64 + slot_bytes)` of slot
//! buffers (8 × 32 KiB: 257 KiB) of DMA memory, allocated once.

pub mod pvh;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;
use core::future::poll_fn;
use core::mem::ManuallyDrop;
use core::task::{Poll, Waker};

use morgana_signatures::{Block, BlockError, BlockErrorKind, check_request};

use crate::hal::{DmaMemory, Hal};
use crate::split::{DESC_F_NEXT, DESC_F_WRITE, OnBogus, Split, Used};
use crate::transport::{self, Transport, feature};
use crate::{Error, Interrupt};

pub use pvh::VirtioBlk;

/// virtio-blk feature bits (virtio 1.x, "Block Device: Feature bits").
pub mod blk_feature {
    /// The device says the largest size of one data segment.
    pub const SIZE_MAX: u64 = 1 << 1;
    /// The device says how many segments a request may have.
    pub const SEG_MAX: u64 = 1 << 2;
    /// The device is read-only.
    pub const RO: u64 = 1 << 5;
    /// The device says its logical block size.
    pub const BLK_SIZE: u64 = 1 << 6;
    /// The device has a volatile cache and takes flush requests.
    pub const FLUSH: u64 = 1 << 9;
    /// The device takes discard requests.
    pub const DISCARD: u64 = 1 << 13;
}
use blk_feature::{BLK_SIZE, DISCARD, FLUSH, RO, SEG_MAX, SIZE_MAX};

/// Request types.
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
const T_DISCARD: u32 = 11;
/// Status values the device writes.
const S_OK: u8 = 0;
const S_IOERR: u8 = 1;
const S_UNSUPP: u8 = 2;
/// A status byte the device never writes: set before a request, so a request the
/// device returns without a status is noticed.
const S_UNSET: u8 = 0xFF;

/// Offsets in the device configuration (`struct virtio_blk_config`).
const CONFIG_CAPACITY: usize = 0;
const CONFIG_SIZE_MAX: usize = 8;
const CONFIG_BLK_SIZE: usize = 20;
const CONFIG_MAX_DISCARD_SECTORS: usize = 36;
const CONFIG_MAX_DISCARD_SEG: usize = 40;
const CONFIG_DISCARD_ALIGNMENT: usize = 44;

/// virtio addresses sectors of 512 bytes, whatever the block size.
const VIRTIO_SECTOR: u64 = 512;
/// Bytes before a slot's data: the header (16), the status byte (at 16), a discard
/// segment (at 32, 16 bytes), padding.
const SLOT_HEAD: usize = 64;

/// Driver settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlkConfig {
    /// Queue entries wanted (three per slot; rounded down to a power of two and to the
    /// device's maximum).
    pub queue_size: u16,
    /// Requests in flight at most.
    pub slots: u16,
    /// Bytes of one slot's buffer: a request's data is cut into pieces this large
    /// (rounded down to the block size).
    pub slot_bytes: usize,
}

impl Default for BlkConfig {
    fn default() -> BlkConfig {
        BlkConfig {
            queue_size: 64,
            slots: 8,
            slot_bytes: 32 * 1024,
        }
    }
}

/// Why the driver could not take the device, or a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkError {
    /// No virtio block device on the PCI bus.
    NoDevice,
    /// Fewer virtio block devices on the PCI bus than the appliance uses.
    TooFewDevices {
        /// The disks the appliance uses (the one asked for is the last).
        wanted: usize,
        /// The virtio block devices found.
        found: usize,
    },
    /// The transport or the initialisation failed.
    Init(Error),
    /// The device configuration cannot be read (or keeps changing).
    ConfigUnreadable,
    /// The device's block size is not a power of two from 512 to 65536.
    BadBlockSize(u32),
    /// A request the device refuses before it is sent (read-only, out of range,
    /// misaligned).
    Request(BlockErrorKind),
    /// The device reported an I/O error for the request at this sector.
    Io {
        /// The first sector (in the device's block size) of the failed piece.
        sector: u64,
    },
    /// The device does not do this request.
    Unsupported,
    /// The device returned a request it did not have, or none with a status: it is
    /// given up.
    Broken,
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::NoDevice => f.write_str(
                "no virtio-blk device found on the PCI bus (add -drive file=IMG,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0)",
            ),
            BlkError::TooFewDevices { wanted, found } => write!(
                f,
                "virtio-blk: the appliance uses disk {wanted} in PCI bus order but the machine has {found} (attach one -drive ... -device virtio-blk-pci per Block of appliance.ron, in their order)"
            ),
            BlkError::Init(e) => write!(f, "virtio-blk: {e}"),
            BlkError::ConfigUnreadable => {
                f.write_str("virtio-blk: the device configuration cannot be read")
            }
            BlkError::BadBlockSize(s) => {
                write!(f, "virtio-blk: the device's block size {s} is not supported")
            }
            BlkError::Request(kind) => write!(f, "virtio-blk: {kind}"),
            BlkError::Io { sector } => write!(f, "virtio-blk: I/O error at sector {sector}"),
            BlkError::Unsupported => f.write_str("virtio-blk: the device does not support the request"),
            BlkError::Broken => f.write_str("virtio-blk: the device misbehaved and was given up"),
        }
    }
}

impl BlockError for BlkError {
    fn kind(&self) -> BlockErrorKind {
        match self {
            BlkError::Request(kind) => *kind,
            BlkError::Io { .. } => BlockErrorKind::Io,
            BlkError::Unsupported | BlkError::Broken => BlockErrorKind::Unsupported,
            _ => BlockErrorKind::Other,
        }
    }
}

impl From<Error> for BlkError {
    fn from(e: Error) -> BlkError {
        BlkError::Init(e)
    }
}

/// Counters of the driver's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlkStats {
    /// Requests sent to the device (pieces of reads and writes count one each).
    pub requests: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub written_bytes: u64,
    /// Flush requests sent.
    pub flushes: u64,
    /// Requests that failed.
    pub errors: u64,
    /// The most requests in flight at once.
    pub max_in_flight: u16,
    /// Notifications sent.
    pub kicks: u64,
}

#[derive(Debug)]
enum SlotState {
    Free,
    InFlight(Option<Waker>),
    Done(u8),
    /// Its request's future was dropped: free it when the device returns it.
    Abandoned,
}

struct Inner<D: DmaMemory> {
    ring: Split<D>,
    /// The slots' buffers: `slots × stride` bytes.
    bufs: ManuallyDrop<D>,
    leaked: bool,
    state: Vec<SlotState>,
    free: Vec<u16>,
    /// Requests waiting for a free slot.
    waiting: Vec<Waker>,
    in_flight: u16,
    stats: BlkStats,
}

/// What one piece sent to the device is.
#[derive(Clone, Copy)]
enum Piece {
    Read,
    Write,
    Flush,
    /// Device sectors (virtio units): from, count.
    Discard(u64, u64),
}

/// What one operation carries.
enum Data<'a> {
    In(&'a mut [u8]),
    Out(&'a [u8]),
    Flush,
    /// Device sectors (virtio units): from, count.
    Discard(u64, u64),
}

/// A virtio-blk device, driven. Implements [`Block`].
pub struct Blk<H: Hal, T: Transport, I: Interrupt> {
    hal: H,
    transport: T,
    irq: I,
    inner: RefCell<Inner<H::Dma>>,
    features: u64,
    sector_size: usize,
    sectors: u64,
    /// Bytes of data per piece.
    chunk: usize,
    stride: usize,
    max_discard: u64,
    failed: bool,
}

impl<H: Hal, T: Transport, I: Interrupt> fmt::Debug for Blk<H, T, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blk")
            .field("sector_size", &self.sector_size)
            .field("sectors", &self.sectors)
            .field("features", &format_args!("{:#x}", self.features))
            .field("slots", &self.slots())
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}

/// Reads a 64-bit field of the configuration, retrying while it changes under the read.
fn read_config64<T: Transport>(t: &T, offset: usize) -> Option<u64> {
    for _ in 0..8 {
        let before = t.config_generation();
        let lo = t.read_config32(offset)?;
        let hi = t.read_config32(offset + 4)?;
        if t.config_generation() == before {
            return Some(u64::from(lo) | (u64::from(hi) << 32));
        }
    }
    None
}

/// Gives up on a device whose initialisation failed half-way.
fn abandon<T: Transport>(t: &T, e: BlkError) -> BlkError {
    if transport::reset(t).is_err() {
        log::error!("virtio-blk: the device did not reset after: {e}");
    }
    transport::fail(t);
    e
}

impl<H: Hal, T: Transport, I: Interrupt> Blk<H, T, I> {
    /// Initialises the device behind `transport`: feature negotiation, the request
    /// queue, the slot buffers, DRIVER_OK. On failure the device is marked FAILED.
    pub fn new(hal: H, transport: T, irq: I, config: BlkConfig) -> Result<Blk<H, T, I>, BlkError> {
        let features = transport::initialize(&transport, |offered| {
            let mut accept = feature::VERSION_1
                | feature::ACCESS_PLATFORM
                | SIZE_MAX
                | SEG_MAX
                | RO
                | BLK_SIZE
                | FLUSH;
            if offered & DISCARD != 0
                && transport
                    .read_config32(CONFIG_MAX_DISCARD_SECTORS)
                    .is_some_and(|n| n > 0)
                && transport
                    .read_config32(CONFIG_MAX_DISCARD_SEG)
                    .is_some_and(|n| n > 0)
            {
                accept |= DISCARD;
            }
            accept
        })?;
        let capacity = read_config64(&transport, CONFIG_CAPACITY)
            .ok_or_else(|| abandon(&transport, BlkError::ConfigUnreadable))?;
        let block = if features & BLK_SIZE != 0 {
            transport
                .read_config32(CONFIG_BLK_SIZE)
                .ok_or_else(|| abandon(&transport, BlkError::ConfigUnreadable))?
        } else {
            512
        };
        if !(512..=65536).contains(&block) || !block.is_power_of_two() {
            return Err(abandon(&transport, BlkError::BadBlockSize(block)));
        }
        let block = block as usize;
        let size_max = if features & SIZE_MAX != 0 {
            transport.read_config32(CONFIG_SIZE_MAX).unwrap_or(0) as usize
        } else {
            0
        };
        let mut chunk = config.slot_bytes.max(block) / block * block;
        if size_max >= block {
            chunk = chunk.min(size_max / block * block);
        }
        let max_discard = if features & DISCARD != 0 {
            let n = u64::from(
                transport
                    .read_config32(CONFIG_MAX_DISCARD_SECTORS)
                    .unwrap_or(0),
            );
            let align = u64::from(
                transport
                    .read_config32(CONFIG_DISCARD_ALIGNMENT)
                    .unwrap_or(0),
            );
            // Whole blocks, and a multiple of the device's alignment when it has one.
            let unit = (block as u64 / VIRTIO_SECTOR).max(align).max(1);
            n / unit * unit
        } else {
            0
        };
        // A request the device returns without owning it leaves the others in doubt:
        // the queue is given up.
        let ring = Split::alloc(
            &hal,
            &transport,
            0,
            config.queue_size.max(4),
            0,
            OnBogus::GiveUp,
        )
        .and_then(|mut ring| {
            ring.enable(&transport, irq.msix_entry())?;
            Ok(ring)
        })
        .map_err(|e| abandon(&transport, e.into()))?;
        let slots = config.slots.clamp(1, ring.size() / 3);
        let stride = SLOT_HEAD + chunk;
        let bytes = usize::from(slots) * stride;
        let Some(bufs) = hal.dma_alloc(bytes) else {
            let e = abandon(&transport, Error::OutOfMemory { bytes }.into());
            drop(ring);
            return Err(e);
        };
        assert!(bufs.len() >= bytes, "the HAL gave a short DMA region");
        transport.set_config_vector(None);
        let mut blk = Blk {
            hal,
            transport,
            irq,
            inner: RefCell::new(Inner {
                ring,
                bufs: ManuallyDrop::new(bufs),
                leaked: false,
                state: (0..slots).map(|_| SlotState::Free).collect(),
                free: (0..slots).rev().collect(),
                waiting: Vec::new(),
                in_flight: 0,
                stats: BlkStats::default(),
            }),
            features,
            sector_size: block,
            sectors: capacity * VIRTIO_SECTOR / block as u64,
            chunk,
            stride,
            max_discard,
            failed: false,
        };
        if let Err(e) = transport::driver_ok(&blk.transport) {
            blk.failed = true;
            return Err(e.into());
        }
        Ok(blk)
    }

    /// The negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Request slots (the most requests in flight).
    pub fn slots(&self) -> u16 {
        self.inner.borrow().state.len() as u16
    }

    /// Bytes of data per request piece.
    pub fn chunk_bytes(&self) -> usize {
        self.chunk
    }

    /// Whether `flush` reaches the device (it has a volatile cache).
    pub fn has_flush(&self) -> bool {
        self.features & FLUSH != 0
    }

    /// Whether `discard` reaches the device.
    pub fn has_discard(&self) -> bool {
        self.max_discard > 0
    }

    /// Bytes of DMA memory used (ring and slot buffers).
    pub fn dma_bytes(&self) -> usize {
        let inner = self.inner.borrow();
        inner.ring.dma_bytes() + inner.bufs.len()
    }

    /// Counters.
    pub fn stats(&self) -> BlkStats {
        self.inner.borrow().stats
    }

    /// Whether the device misbehaved and was given up.
    pub fn is_broken(&self) -> bool {
        self.inner.borrow().ring.is_broken()
    }

    /// How interrupts reach the driver.
    pub fn interrupt(&self) -> &I {
        &self.irq
    }

    fn slot_ptr(&self, inner: &Inner<H::Dma>, slot: u16, at: usize) -> *mut u8 {
        let off = usize::from(slot) * self.stride + at;
        assert!(off < usize::from(slot + 1) * self.stride);
        // SAFETY: within the slot buffers (`slots × stride` bytes, checked at
        // allocation; `off` lies in slot `slot`'s stride).
        unsafe { inner.bufs.as_ptr().add(off) }
    }

    fn slot_phys(&self, inner: &Inner<H::Dma>, slot: u16, at: usize) -> u64 {
        inner.bufs.phys() + (usize::from(slot) * self.stride + at) as u64
    }

    /// Takes every completion from the used ring into the slots' states, waking the
    /// owners; frees abandoned slots.
    fn reap(&self, inner: &mut Inner<H::Dma>) {
        let mut freed = false;
        while let Some(used) = inner.ring.pop_used(&self.hal) {
            let Used::Chain { head, .. } = used else {
                inner.stats.errors += 1;
                continue;
            };
            let slot = head / 3;
            // SAFETY: the device returned the chain, so it no longer writes the status
            // byte; the read barrier in `pop_used` ordered its writes before this read.
            let status = unsafe { self.slot_ptr(inner, slot, 16).read_volatile() };
            inner.in_flight -= 1;
            match core::mem::replace(&mut inner.state[usize::from(slot)], SlotState::Done(status)) {
                SlotState::InFlight(w) => {
                    if let Some(w) = w {
                        w.wake();
                    }
                }
                SlotState::Abandoned => {
                    inner.state[usize::from(slot)] = SlotState::Free;
                    inner.free.push(slot);
                    freed = true;
                }
                other => {
                    log::warn!("virtio-blk: slot {slot} returned while {other:?}");
                    inner.state[usize::from(slot)] = other;
                }
            }
        }
        if inner.ring.is_broken() {
            // Nothing more will come back: every request in flight fails.
            for slot in 0..inner.state.len() {
                match &mut inner.state[slot] {
                    SlotState::InFlight(w) => {
                        if let Some(w) = w.take() {
                            w.wake();
                        }
                        inner.state[slot] = SlotState::Done(S_UNSET);
                    }
                    SlotState::Abandoned => {
                        inner.state[slot] = SlotState::Free;
                        inner.free.push(slot as u16);
                        freed = true;
                    }
                    _ => {}
                }
            }
        }
        if freed {
            for w in inner.waiting.drain(..) {
                w.wake();
            }
        }
    }

    /// Writes slot `slot`'s header and descriptors for piece `data` and gives it to the
    /// device (no notification).
    fn submit(
        &self,
        inner: &mut Inner<H::Dma>,
        slot: u16,
        kind: u32,
        sector: u64,
        piece: Piece,
        len: usize,
    ) {
        let head = slot * 3;
        let base = self.slot_ptr(inner, slot, 0);
        // SAFETY: the slot is free, so the device does not own its buffer; the header
        // (16 bytes at 0), status (at 16) and discard segment (16 bytes at 32) lie in
        // its first SLOT_HEAD bytes; all are aligned for their types (the region is
        // 16-byte aligned, the stride a multiple of 64).
        unsafe {
            base.cast::<u32>().write_volatile(kind.to_le());
            base.add(4).cast::<u32>().write_volatile(0);
            base.add(8).cast::<u64>().write_volatile(sector.to_le());
            base.add(16).write_volatile(S_UNSET);
        }
        let header = self.slot_phys(inner, slot, 0);
        let status = self.slot_phys(inner, slot, 16);
        let ring = &inner.ring;
        match piece {
            Piece::Flush => {
                ring.set_desc(head, header, 16, DESC_F_NEXT, head + 2);
            }
            Piece::Discard(from, count) => {
                // SAFETY: as above: `struct virtio_blk_discard_write_zeroes` at 32.
                unsafe {
                    let seg = base.add(32);
                    seg.cast::<u64>().write_volatile(from.to_le());
                    seg.add(8)
                        .cast::<u32>()
                        .write_volatile((count as u32).to_le());
                    seg.add(12).cast::<u32>().write_volatile(0);
                }
                ring.set_desc(head, header, 16, DESC_F_NEXT, head + 1);
                ring.set_desc(
                    head + 1,
                    self.slot_phys(inner, slot, 32),
                    16,
                    DESC_F_NEXT,
                    head + 2,
                );
            }
            Piece::Read | Piece::Write => {
                let flags = if matches!(piece, Piece::Read) {
                    DESC_F_NEXT | DESC_F_WRITE
                } else {
                    DESC_F_NEXT
                };
                ring.set_desc(head, header, 16, DESC_F_NEXT, head + 1);
                ring.set_desc(
                    head + 1,
                    self.slot_phys(inner, slot, SLOT_HEAD),
                    len as u32,
                    flags,
                    head + 2,
                );
            }
        }
        ring.set_desc(head + 2, status, 1, DESC_F_WRITE, 0);
        inner.ring.push(&self.hal, head);
        inner.state[usize::from(slot)] = SlotState::InFlight(None);
        inner.in_flight += 1;
        inner.stats.requests += 1;
        inner.stats.max_in_flight = inner.stats.max_in_flight.max(inner.in_flight);
    }

    /// Arranges for `waker` to be woken at the next completion (at once if one is
    /// waiting).
    fn arm(&self, waker: &Waker) {
        if self.irq.needs_isr_ack() {
            self.transport.ack_interrupt();
        }
        self.irq.register(waker);
        if self.inner.borrow().ring.has_used() {
            waker.wake_by_ref();
        }
    }

    /// Runs one operation, cut into pieces that go to the device together.
    async fn run(&self, kind: u32, first: u64, mut data: Data<'_>) -> Result<(), BlkError> {
        // Pieces: (device sector in virtio units, byte offset in the caller's buffer,
        // length in bytes or sectors).
        let per = self.sector_size as u64 / VIRTIO_SECTOR;
        let pieces = match &data {
            Data::In(b) => b.len().div_ceil(self.chunk),
            Data::Out(b) => b.len().div_ceil(self.chunk),
            Data::Flush => 1,
            Data::Discard(_, count) => count.div_ceil(self.max_discard) as usize,
        };
        let mut guard = Flight {
            blk: self,
            list: Vec::new(),
        };
        let mut next = 0;
        let mut error = None;
        poll_fn(|cx| {
            let mut inner = self.inner.borrow_mut();
            self.reap(&mut inner);
            // Our completions.
            let mut i = 0;
            while i < guard.list.len() {
                let (slot, piece) = guard.list[i];
                let SlotState::Done(status) = inner.state[usize::from(slot)] else {
                    i += 1;
                    continue;
                };
                guard.list.swap_remove(i);
                match status {
                    S_OK => {
                        if let Data::In(buf) = &mut data {
                            let at = piece * self.chunk;
                            let len = (buf.len() - at).min(self.chunk);
                            let src = self.slot_ptr(&inner, slot, SLOT_HEAD);
                            // SAFETY: the device returned the slot, so its buffer is
                            // ours again and holds `len` bytes it wrote (ordered by the
                            // read barrier in `pop_used`); `len <= chunk`, the buffer's
                            // size.
                            let part = unsafe { core::slice::from_raw_parts(src, len) };
                            buf[at..at + len].copy_from_slice(part);
                            inner.stats.read_bytes += len as u64;
                        }
                    }
                    other => {
                        inner.stats.errors += 1;
                        error.get_or_insert(match other {
                            S_IOERR => BlkError::Io {
                                sector: (first + (piece * self.chunk) as u64 / VIRTIO_SECTOR) / per,
                            },
                            S_UNSUPP => BlkError::Unsupported,
                            _ => BlkError::Broken,
                        });
                    }
                }
                inner.state[usize::from(slot)] = SlotState::Free;
                inner.free.push(slot);
                for w in inner.waiting.drain(..) {
                    w.wake();
                }
            }
            // More pieces, as many as there are free slots.
            let mut submitted = false;
            while error.is_none() && next < pieces && !inner.ring.is_broken() {
                let Some(slot) = inner.free.pop() else {
                    break;
                };
                let (sector, len) = match &data {
                    Data::In(b) => {
                        let at = next * self.chunk;
                        (
                            first + at as u64 / VIRTIO_SECTOR,
                            (b.len() - at).min(self.chunk),
                        )
                    }
                    Data::Out(b) => {
                        let at = next * self.chunk;
                        let len = (b.len() - at).min(self.chunk);
                        let dst = self.slot_ptr(&inner, slot, SLOT_HEAD);
                        // SAFETY: the slot is free (the device does not own it) and its
                        // buffer holds `chunk >= len` bytes.
                        let part = unsafe { core::slice::from_raw_parts_mut(dst, len) };
                        part.copy_from_slice(&b[at..at + len]);
                        inner.stats.written_bytes += len as u64;
                        (first + at as u64 / VIRTIO_SECTOR, len)
                    }
                    Data::Flush => {
                        inner.stats.flushes += 1;
                        (0, 0)
                    }
                    Data::Discard(from, count) => {
                        let at = next as u64 * self.max_discard;
                        (from + at, (*count - at).min(self.max_discard) as usize)
                    }
                };
                let piece = match &data {
                    Data::Discard(_, _) => Piece::Discard(sector, len as u64),
                    Data::In(_) => Piece::Read,
                    Data::Out(_) => Piece::Write,
                    Data::Flush => Piece::Flush,
                };
                self.submit(&mut inner, slot, kind, sector, piece, len);
                guard.list.push((slot, next));
                next += 1;
                submitted = true;
            }
            if submitted && inner.ring.kick(&self.hal, &self.transport) {
                inner.stats.kicks += 1;
            }
            if inner.ring.is_broken()
                && error.is_none()
                && (next < pieces || !guard.list.is_empty())
            {
                error = Some(BlkError::Broken);
            }
            let finished = guard.list.is_empty() && (next == pieces || error.is_some());
            if finished {
                // Hand the interrupt to a request still in flight, if any.
                let other = inner.state.iter().find_map(|s| match s {
                    SlotState::InFlight(Some(w)) => Some(w.clone()),
                    _ => None,
                });
                drop(inner);
                if let Some(w) = other {
                    self.arm(&w);
                }
                return Poll::Ready(());
            }
            for &(slot, _) in &guard.list {
                if let SlotState::InFlight(w) = &mut inner.state[usize::from(slot)] {
                    match w {
                        Some(old) if old.will_wake(cx.waker()) => {}
                        _ => *w = Some(cx.waker().clone()),
                    }
                }
            }
            if next < pieces && inner.free.is_empty() {
                inner.waiting.push(cx.waker().clone());
            }
            drop(inner);
            self.arm(cx.waker());
            Poll::Pending
        })
        .await;
        match error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn check(&self, sector: u64, len: usize, write: bool) -> Result<u64, BlkError> {
        if write && self.features & RO != 0 {
            return Err(BlkError::Request(BlockErrorKind::ReadOnly));
        }
        check_request(self.sector_size, self.sectors, sector, len).map_err(BlkError::Request)?;
        Ok(sector * (self.sector_size as u64 / VIRTIO_SECTOR))
    }
}

/// The pieces of one operation in flight; on drop (the future abandoned), their slots
/// are freed when the device returns them.
struct Flight<'a, H: Hal, T: Transport, I: Interrupt> {
    blk: &'a Blk<H, T, I>,
    list: Vec<(u16, usize)>,
}

impl<H: Hal, T: Transport, I: Interrupt> Drop for Flight<'_, H, T, I> {
    fn drop(&mut self) {
        if self.list.is_empty() {
            return;
        }
        let mut inner = self.blk.inner.borrow_mut();
        let mut freed = false;
        for &(slot, _) in &self.list {
            let s = &mut inner.state[usize::from(slot)];
            if matches!(s, SlotState::Done(_)) {
                *s = SlotState::Free;
                inner.free.push(slot);
                freed = true;
            } else {
                *s = SlotState::Abandoned;
            }
        }
        if freed {
            for w in inner.waiting.drain(..) {
                w.wake();
            }
        }
    }
}

impl<H: Hal, T: Transport, I: Interrupt> Drop for Blk<H, T, I> {
    fn drop(&mut self) {
        let inner = self.inner.get_mut();
        if transport::reset(&self.transport).is_err() {
            log::error!("virtio-blk: the device did not reset; leaking its memory");
            inner.ring.leak();
            inner.leaked = true;
        }
        if !inner.leaked {
            // SAFETY: dropped once, here, after the reset: the device no longer uses
            // the slot buffers.
            unsafe { ManuallyDrop::drop(&mut inner.bufs) }
        }
        if self.failed {
            transport::fail(&self.transport);
        }
    }
}

impl<H: Hal, T: Transport, I: Interrupt> Block for Blk<H, T, I> {
    type Error = BlkError;

    fn sector_size(&self) -> usize {
        self.sector_size
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn is_read_only(&self) -> bool {
        self.features & RO != 0
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        let first = self.check(sector, buf.len(), false)?;
        self.run(T_IN, first, Data::In(buf)).await
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        let first = self.check(sector, buf.len(), true)?;
        self.run(T_OUT, first, Data::Out(buf)).await
    }

    async fn flush(&self) -> Result<(), BlkError> {
        if self.features & RO != 0 {
            return Err(BlkError::Request(BlockErrorKind::ReadOnly));
        }
        if self.features & FLUSH == 0 {
            // No volatile cache: every completed write is durable already.
            return Ok(());
        }
        self.run(T_FLUSH, 0, Data::Flush).await
    }

    async fn discard(&self, sector: u64, count: u64) -> Result<(), BlkError> {
        let len = usize::try_from(count * self.sector_size as u64)
            .map_err(|_| BlkError::Request(BlockErrorKind::OutOfRange))?;
        let first = self.check(sector, len, true)?;
        if self.max_discard == 0 {
            return Ok(());
        }
        let virt = count * (self.sector_size as u64 / VIRTIO_SECTOR);
        self.run(T_DISCARD, first, Data::Discard(first, virt)).await
    }
}
