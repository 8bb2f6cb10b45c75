//! A split virtqueue whose requests are descriptor chains (virtio-blk: header, data,
//! status), over the same transport as the NIC's queues.
//!
//! Layout (virtio 1.x, "Split Virtqueues"), in one DMA allocation: the descriptor table
//! (16 bytes per entry), the available ring (`6 + 2·n`), the used ring (`6 + 8·n`,
//! 4-aligned). The buffers are the driver's, elsewhere. Which chain heads the device
//! owns is tracked, so a device that returns a chain twice, or one it never had, is
//! noticed instead of corrupting a request in progress.

use alloc::vec;
use alloc::vec::Vec;
use core::mem::ManuallyDrop;

use crate::Error;
use crate::hal::{DmaMemory, Hal};
use crate::transport::{MAX_QUEUE_SIZE, QueueNotify, QueueSetup, Transport};

/// Descriptor flag: the chain continues at `next`.
pub(crate) const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer.
pub(crate) const DESC_F_WRITE: u16 = 2;
/// Used-ring flag: the device does not need notifications.
const USED_F_NO_NOTIFY: u16 = 1;

/// One element taken from the used ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Used {
    /// The device is done with the chain starting at `head`; it wrote `len` bytes.
    Chain { head: u16, len: u32 },
    /// The device returned a chain it did not own (the queue is given up).
    Bogus,
}

pub(crate) struct Ring<D: DmaMemory> {
    mem: ManuallyDrop<D>,
    leaked: bool,
    size: u16,
    avail: usize,
    used: usize,
    notify: QueueNotify,
    next_avail: u16,
    last_used: u16,
    owned: Vec<bool>,
    in_flight: u16,
    broken: bool,
}

impl<D: DmaMemory> Ring<D> {
    /// Allocates queue `index` with at most `wanted` entries and enables it.
    pub(crate) fn new<H: Hal<Dma = D>, T: Transport>(
        hal: &H,
        transport: &T,
        index: u16,
        wanted: u16,
        msix_vector: Option<u16>,
    ) -> Result<Ring<D>, Error> {
        let max = transport.max_queue_size(index);
        if max == 0 {
            return Err(Error::QueueMissing { queue: index });
        }
        if max > MAX_QUEUE_SIZE {
            return Err(Error::QueueSizeInvalid {
                queue: index,
                size: max,
            });
        }
        let limit = wanted.clamp(1, max);
        let size = 1u16 << (15 - limit.leading_zeros());
        let n = usize::from(size);
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        let total = used + 6 + 8 * n;
        let mem = hal
            .dma_alloc(total)
            .ok_or(Error::OutOfMemory { bytes: total })?;
        assert!(mem.len() >= total, "the HAL gave a short DMA region");
        let base = mem.phys();
        let mut ring = Ring {
            mem: ManuallyDrop::new(mem),
            leaked: false,
            size,
            avail,
            used,
            notify: QueueNotify {
                queue: index,
                cookie: 0,
            },
            next_avail: 0,
            last_used: 0,
            owned: vec![false; n],
            in_flight: 0,
            broken: false,
        };
        ring.notify = transport.setup_queue(
            index,
            &QueueSetup {
                size,
                desc: base,
                driver: base + avail as u64,
                device: base + used as u64,
                msix_vector,
            },
        )?;
        Ok(ring)
    }

    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    pub(crate) fn dma_bytes(&self) -> usize {
        self.mem.len()
    }

    /// Writes descriptor `i`.
    pub(crate) fn set_desc(&self, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        assert!(i < self.size && next < self.size);
        let at = 16 * usize::from(i);
        self.write64(at, addr);
        self.write32(at + 8, len);
        self.write16(at + 12, flags);
        self.write16(at + 14, next);
    }

    /// Gives the chain starting at `head` to the device (its descriptors are written).
    /// Does not notify.
    pub(crate) fn push<H: Hal>(&mut self, hal: &H, head: u16) {
        let i = usize::from(head);
        assert!(!self.owned[i], "chain {head} given to the device twice");
        self.owned[i] = true;
        self.in_flight += 1;
        let slot = usize::from(self.next_avail & (self.size - 1));
        self.write16(self.avail + 4 + 2 * slot, head);
        // Descriptors, buffers and ring entry before the index that publishes them.
        hal.wmb();
        self.next_avail = self.next_avail.wrapping_add(1);
        self.write16(self.avail + 2, self.next_avail);
    }

    /// Whether the device returned chains not yet taken.
    pub(crate) fn has_used(&self) -> bool {
        !self.broken && self.read16(self.used + 2) != self.last_used
    }

    /// Takes the next used element.
    pub(crate) fn pop_used<H: Hal>(&mut self, hal: &H) -> Option<Used> {
        if self.broken {
            return None;
        }
        let used_idx = self.read16(self.used + 2);
        let pending = used_idx.wrapping_sub(self.last_used);
        if pending == 0 {
            return None;
        }
        if pending > self.in_flight {
            log::error!(
                "virtio-blk: the device returned {pending} requests but had {}; queue given up",
                self.in_flight
            );
            self.broken = true;
            return None;
        }
        hal.rmb();
        let slot = usize::from(self.last_used & (self.size - 1));
        let at = self.used + 4 + 8 * slot;
        let id = self.read32(at);
        let len = self.read32(at + 4);
        self.last_used = self.last_used.wrapping_add(1);
        match u16::try_from(id) {
            Ok(head) if head < self.size && self.owned[usize::from(head)] => {
                self.owned[usize::from(head)] = false;
                self.in_flight -= 1;
                Some(Used::Chain { head, len })
            }
            _ => {
                // Its requests can no longer be told apart: give the queue up.
                log::error!(
                    "virtio-blk: the device returned request {id}, which it did not own; queue given up"
                );
                self.broken = true;
                Some(Used::Bogus)
            }
        }
    }

    /// Notifies the device unless it asked not to be; returns whether it was.
    pub(crate) fn kick<H: Hal, T: Transport>(&self, hal: &H, transport: &T) -> bool {
        hal.mb();
        let wanted = self.read16(self.used) & USED_F_NO_NOTIFY == 0;
        if wanted {
            transport.notify(self.notify);
        }
        wanted
    }

    /// Never frees the memory (the device could not be stopped).
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }

    fn ptr<T>(&self, at: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(at + size <= self.used + 6 + 8 * usize::from(self.size) && at.is_multiple_of(size));
        // SAFETY: in bounds of the DMA region (checked above; the region holds the whole
        // layout) and aligned (the region is 16-byte aligned, `at` a multiple of the size).
        unsafe { self.mem.as_ptr().add(at).cast::<T>() }
    }

    fn read16(&self, at: usize) -> u16 {
        // SAFETY: `ptr` checked bounds and alignment; volatile because the device writes
        // the used ring concurrently.
        u16::from_le(unsafe { self.ptr::<u16>(at).read_volatile() })
    }

    fn read32(&self, at: usize) -> u32 {
        // SAFETY: as in `read16`.
        u32::from_le(unsafe { self.ptr::<u32>(at).read_volatile() })
    }

    fn write16(&self, at: usize, v: u16) {
        // SAFETY: as in `read16`; only the device reads the driver's fields.
        unsafe { self.ptr::<u16>(at).write_volatile(v.to_le()) }
    }

    fn write32(&self, at: usize, v: u32) {
        // SAFETY: as in `write16`.
        unsafe { self.ptr::<u32>(at).write_volatile(v.to_le()) }
    }

    fn write64(&self, at: usize, v: u64) {
        // SAFETY: as in `write16`.
        unsafe { self.ptr::<u64>(at).write_volatile(v.to_le()) }
    }
}

impl<D: DmaMemory> Drop for Ring<D> {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: dropped once, here; the owner reset the device first.
            unsafe { ManuallyDrop::drop(&mut self.mem) }
        }
    }
}
