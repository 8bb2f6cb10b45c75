//! The split virtqueue (virtio 1.x, "Split Virtqueues"): the rings and their indices,
//! shared by every queue of this crate. What a descriptor points at is the user's
//! business: the NIC's and the entropy device's queues ([`crate::queue`]) give each
//! descriptor a fixed buffer placed after the rings; virtio-blk's ([`crate::blk`]) writes
//! chains of descriptors over buffers of its own.
//!
//! Layout, all in one DMA allocation:
//!
//! ```text
//! offset 0            descriptor table   16 * size bytes   (align 16)
//!        avail        available ring     6 + 2 * size      (align 2)
//!        used         used ring          6 + 8 * size      (align 4)
//!        buffers      size * per_entry bytes for the user  (align 64)
//! ```
//!
//! Which chain heads the device owns is tracked in `owned`, so a device that returns a
//! head twice, or one it never had, is noticed instead of corrupting a buffer in use;
//! one that announces more used elements than it owns is given up. Ring indices are
//! free-running `u16`s, as the specification defines them; slots are `index % size`
//! (size is a power of two).

use crate::Error;
use crate::hal::{DmaMemory, Hal};
use crate::transport::{MAX_QUEUE_SIZE, QueueNotify, QueueSetup, Transport};
use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::mem::ManuallyDrop;

/// Descriptor flag: the chain continues at `next` (chains are virtio-blk's).
#[cfg_attr(not(feature = "blk"), allow(dead_code))]
pub(crate) const DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer (rather than reads it).
pub(crate) const DESC_F_WRITE: u16 = 2;
/// Available-ring flag: the driver does not want interrupts for this queue.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Used-ring flag: the device does not need notifications for this queue.
const USED_F_NO_NOTIFY: u16 = 1;

/// Byte offsets of the parts of a queue of `size` entries with `per_entry` bytes of
/// buffers per entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub avail: usize,
    pub used: usize,
    pub buffers: usize,
    pub total: usize,
}

impl Layout {
    pub(crate) fn new(size: u16, per_entry: usize) -> Layout {
        let n = usize::from(size);
        let avail = 16 * n;
        let used = (avail + 6 + 2 * n).next_multiple_of(4);
        let buffers = (used + 6 + 8 * n).next_multiple_of(64);
        Layout {
            avail,
            used,
            buffers,
            total: buffers + n * per_entry,
        }
    }
}

/// One element taken from the used ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Used {
    /// The device is done with the chain starting at `head`; it wrote `len` bytes.
    Chain { head: u16, len: u32 },
    /// The device returned a head it did not own (or one out of range).
    Bogus,
}

/// What a queue does when the device returns a head it does not own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnBogus {
    /// Skip the element (a NIC's buffers stand alone: the others are still right).
    Skip,
    /// Give the queue up (a block device's requests can no longer be told apart).
    #[cfg_attr(not(feature = "blk"), allow(dead_code))]
    GiveUp,
}

/// The rings of one split virtqueue and the driver's view of them.
pub(crate) struct Split<D: DmaMemory> {
    /// Dropped by `Drop`, unless `leak` was called.
    mem: ManuallyDrop<D>,
    /// The device may still use the memory (it did not reset): never free it.
    leaked: bool,
    layout: Layout,
    size: u16,
    notify: QueueNotify,
    on_bogus: OnBogus,
    /// Shadow of the available ring's index (the driver's, only it writes it).
    next_avail: u16,
    /// The used-ring index up to which elements have been taken.
    last_used: u16,
    /// Per head: the device owns its chain (it is in the available ring, not yet used).
    owned: Vec<bool>,
    /// Number of chains the device owns.
    in_flight: u16,
    /// The device misbehaved and the queue is no longer read.
    broken: bool,
    /// Shadow of the available ring's flags: whether `AVAIL_F_NO_INTERRUPT` is set
    /// (with `event_idx`: whether `used_event` lies behind the used index).
    no_interrupt: Cell<bool>,
    /// `VIRTIO_F_EVENT_IDX` was negotiated: notifications follow the used ring's
    /// `avail_event`, interrupts the available ring's `used_event`, not the flags.
    event_idx: bool,
    /// The available index at the last notification decision ([`Split::kick`]): the
    /// chains published since are those the next decision is about.
    kick_checked: Cell<u16>,
}

impl<D: DmaMemory> Split<D> {
    /// Allocates queue `index` with at most `wanted` entries (the device may allow
    /// fewer; the size is a power of two) and `per_entry` bytes of buffers per entry.
    /// The queue is not enabled yet: write what must be there first, then [`enable`].
    ///
    /// [`enable`]: Split::enable
    pub(crate) fn alloc<H: Hal<Dma = D>, T: Transport>(
        hal: &H,
        transport: &T,
        index: u16,
        wanted: u16,
        per_entry: usize,
        on_bogus: OnBogus,
    ) -> Result<Split<D>, Error> {
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
        // The largest power of two not above the limit.
        let size = 1u16 << (15 - limit.leading_zeros());
        let layout = Layout::new(size, per_entry);
        let mem = hal.dma_alloc(layout.total).ok_or(Error::OutOfMemory {
            bytes: layout.total,
        })?;
        assert!(mem.len() >= layout.total, "the HAL gave a short DMA region");
        Ok(Split {
            mem: ManuallyDrop::new(mem),
            leaked: false,
            layout,
            size,
            notify: QueueNotify {
                queue: index,
                cookie: 0,
            },
            on_bogus,
            next_avail: 0,
            last_used: 0,
            owned: vec![false; usize::from(size)],
            in_flight: 0,
            broken: false,
            no_interrupt: Cell::new(false),
            event_idx: false,
            kick_checked: Cell::new(0),
        })
    }

    /// Tells the device where the rings are and enables the queue.
    pub(crate) fn enable<T: Transport>(
        &mut self,
        transport: &T,
        msix_vector: Option<u16>,
    ) -> Result<(), Error> {
        let base = self.mem.phys();
        self.notify = transport.setup_queue(
            self.notify.queue,
            &QueueSetup {
                size: self.size,
                desc: base,
                driver: base + self.layout.avail as u64,
                device: base + self.layout.used as u64,
                msix_vector,
            },
        )?;
        Ok(())
    }

    /// From now on, suppresses notifications and interrupts with event indices
    /// (`VIRTIO_F_EVENT_IDX` was negotiated): call before the queue is used.
    pub(crate) fn use_event_idx(&mut self) {
        self.event_idx = true;
    }

    /// Offset of the available ring's `used_event` (after its `size` entries).
    fn used_event_at(&self) -> usize {
        self.layout.avail + 4 + 2 * usize::from(self.size)
    }

    /// Offset of the used ring's `avail_event` (after its `size` elements).
    fn avail_event_at(&self) -> usize {
        self.layout.used + 4 + 8 * usize::from(self.size)
    }

    /// Number of entries.
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    pub(crate) fn layout(&self) -> Layout {
        self.layout
    }

    /// Whether the device misbehaved and the queue was given up.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken
    }

    /// Bytes of DMA memory the queue uses (rings and buffers).
    pub(crate) fn dma_bytes(&self) -> usize {
        self.mem.len()
    }

    /// Pointer to byte `at` of the buffer part (`layout.buffers <= at < layout.total`).
    pub(crate) fn buffer_ptr(&self, at: usize) -> *mut u8 {
        assert!(self.layout.buffers <= at && at < self.layout.total);
        // SAFETY: `at < layout.total <= mem.len()`, so the result stays inside the DMA
        // region.
        unsafe { self.mem.as_ptr().add(at) }
    }

    /// The device's (physical) address of byte `at` of the region.
    pub(crate) fn phys(&self, at: usize) -> u64 {
        self.mem.phys() + at as u64
    }

    /// Asks the device not to interrupt for this queue (a hint it may ignore).
    pub(crate) fn suppress_interrupts(&mut self) {
        self.set_interrupts(false);
    }

    /// Asks the device to interrupt (`on`) or not for this queue, through the available
    /// ring's flags: a write to shared memory, no exit to the hypervisor, and none at
    /// all when the flag already says so. Turning them back on does not order the
    /// write before later reads of the used ring: a driver about to wait issues a full
    /// barrier between the two (or the device could add a buffer after the driver's
    /// last look and still read the old flag).
    ///
    /// With event indices, "on" asks for an interrupt once the device uses the next
    /// element not yet taken (`used_event` = that index): one interrupt, then none until
    /// the driver asks again; "off" puts `used_event` just behind the elements taken, so
    /// that the device would pass it only after 2^16 - 1 more.
    pub(crate) fn set_interrupts(&self, on: bool) {
        if self.no_interrupt.get() == on {
            self.no_interrupt.set(!on);
            let (at, value) = self.interrupt_word(on);
            self.write16(at, value);
        }
    }

    /// Where the word that turns this queue's interrupts on or off is, and the value
    /// that does it now.
    fn interrupt_word(&self, on: bool) -> (usize, u16) {
        if self.event_idx {
            let at = self.used_event_at();
            (
                at,
                if on {
                    self.last_used
                } else {
                    self.last_used.wrapping_sub(1)
                },
            )
        } else {
            (self.layout.avail, if on { 0 } else { AVAIL_F_NO_INTERRUPT })
        }
    }

    /// For a queue whose interrupts stay off for good (a NIC's transmit queue): with
    /// event indices, moves `used_event` along behind the elements taken, so that the
    /// device never reaches it. Nothing to do with the flag, which stays set.
    pub(crate) fn keep_interrupts_off(&self) {
        if self.event_idx {
            self.no_interrupt.set(true);
            self.write16(self.used_event_at(), self.last_used.wrapping_sub(1));
        }
    }

    /// Forgets what the flag of [`set_interrupts`](Split::set_interrupts) says: someone
    /// else (the platform's idle step, through [`watch`](Split::watch)) may turn
    /// interrupts on, so the next `set_interrupts(false)` writes the flag.
    pub(crate) fn interrupts_may_be_on(&self) {
        self.no_interrupt.set(false);
    }

    /// The used index, the index up to which elements were taken, and the available
    /// ring's flags, in memory: for a platform that watches the queue while the driver
    /// waits ([`crate::Interrupt::watch_queue`]). The pointers stay valid as long as
    /// `self` (for ever once it leaked its memory).
    pub(crate) fn watch(&self) -> crate::QueueWatch {
        let (at, on) = self.interrupt_word(true);
        let (_, off) = self.interrupt_word(false);
        crate::QueueWatch {
            used_index: self.ptr::<u16>(self.layout.used + 2).cast_const(),
            seen: self.last_used,
            arm: self.ptr::<u16>(at),
            on,
            off,
        }
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

    /// Writes the length of descriptor `i` only.
    pub(crate) fn set_len(&self, i: u16, len: u32) {
        assert!(i < self.size);
        self.write32(16 * usize::from(i) + 8, len);
    }

    /// Gives the chain starting at `head` to the device (its descriptors are written).
    /// Does not notify.
    pub(crate) fn push<H: Hal>(&mut self, hal: &H, head: u16) {
        let i = usize::from(head);
        assert!(!self.owned[i], "chain {head} given to the device twice");
        self.owned[i] = true;
        self.in_flight += 1;
        let slot = usize::from(self.next_avail & (self.size - 1));
        self.write16(self.layout.avail + 4 + 2 * slot, head);
        // Descriptors, buffers and ring entry before the index that publishes them.
        hal.wmb();
        self.next_avail = self.next_avail.wrapping_add(1);
        self.write16(self.layout.avail + 2, self.next_avail);
    }

    /// Whether the device returned chains not yet taken.
    pub(crate) fn has_used(&self) -> bool {
        !self.broken && self.read16(self.layout.used + 2) != self.last_used
    }

    /// Takes the next used element, if any.
    pub(crate) fn pop_used<H: Hal>(&mut self, hal: &H) -> Option<Used> {
        if self.broken {
            return None;
        }
        let used_idx = self.read16(self.layout.used + 2);
        let pending = used_idx.wrapping_sub(self.last_used);
        if pending == 0 {
            return None;
        }
        if pending > self.in_flight {
            log::error!(
                "virtio queue {}: the device returned {pending} chains but had {}; queue given up",
                self.notify.queue,
                self.in_flight
            );
            self.broken = true;
            return None;
        }
        // The index before the element and the buffers it announces.
        hal.rmb();
        let slot = usize::from(self.last_used & (self.size - 1));
        let at = self.layout.used + 4 + 8 * slot;
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
                match self.on_bogus {
                    OnBogus::Skip => log::warn!(
                        "virtio queue {}: the device returned chain {id}, which it did not own",
                        self.notify.queue
                    ),
                    OnBogus::GiveUp => {
                        log::error!(
                            "virtio queue {}: the device returned chain {id}, which it did not own; queue given up",
                            self.notify.queue
                        );
                        self.broken = true;
                    }
                }
                Some(Used::Bogus)
            }
        }
    }

    /// Notifies the device of the chains published since the last call, unless it
    /// asked not to be (the used ring's flag, or with event indices its `avail_event`
    /// not among them). Returns whether it was notified.
    pub(crate) fn kick<H: Hal, T: Transport>(&self, hal: &H, transport: &T) -> bool {
        // The published index before the device's flag is read: otherwise the device
        // could stop polling after we read "no notify" and miss the new chains.
        hal.mb();
        let old = self.kick_checked.replace(self.next_avail);
        let wanted = if self.event_idx {
            crate::transport::need_event(self.read16(self.avail_event_at()), self.next_avail, old)
        } else {
            self.read16(self.layout.used) & USED_F_NO_NOTIFY == 0
        };
        if wanted {
            transport.notify(self.notify);
        }
        wanted
    }

    /// Notifies the device whatever its flag says. For a driver about to wait for this
    /// queue: a device may have stopped taking new work after it last looked at the
    /// ring, so the flag can be stale (see `RxQueue::settle`).
    pub(crate) fn kick_always<T: Transport>(&self, hal: &impl Hal, transport: &T) {
        hal.mb();
        self.kick_checked.set(self.next_avail);
        transport.notify(self.notify);
    }

    /// The driver's next available index (how many chains it has published, mod 2^16).
    pub(crate) fn avail_idx(&self) -> u16 {
        self.next_avail
    }

    /// Never frees the memory: the device could not be stopped and may still use it.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }

    fn ptr<T>(&self, at: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        assert!(at + size <= self.layout.buffers && at.is_multiple_of(size));
        // SAFETY: in bounds of the ring part of the DMA region (checked above; the
        // region holds at least `layout.total` bytes), and aligned because the region
        // is 16-byte aligned and `at` is a multiple of the access size.
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
        // SAFETY: as in `read16`; the driver's fields are not Rust objects, only the
        // device reads them.
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

impl<D: DmaMemory> Drop for Split<D> {
    fn drop(&mut self) {
        if !self.leaked {
            // SAFETY: `mem` is dropped only here, once, and not used afterwards; the
            // owner reset the device first (or the queue was never enabled).
            unsafe { ManuallyDrop::drop(&mut self.mem) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_aligns_each_part() {
        let l = Layout::new(128, 1536);
        assert_eq!(l.avail, 2048);
        assert_eq!(l.used, 2048 + 264); // 6 + 256 rounded up to 4
        assert_eq!(l.buffers, (l.used + 6 + 1024).next_multiple_of(64));
        assert_eq!(l.total, l.buffers + 128 * 1536);
        let l = Layout::new(1, 1536);
        assert_eq!((l.avail, l.used, l.buffers), (16, 24, 64));
        let l = Layout::new(64, 0);
        assert_eq!(l.total, l.buffers);
    }
}
