//! A split virtqueue with one fixed buffer per descriptor (the NIC's and the entropy
//! device's queues), over the rings of [`crate::split`].
//!
//! Descriptor `i` always points at buffer `i` (placed after the rings) and is never
//! chained, so a descriptor index is also a buffer index and the descriptor table is
//! written once, at set-up (a transmit only updates the length). A buffer the device
//! returns without owning it is skipped: the others are still right.

use crate::Error;
use crate::hal::{DmaMemory, Hal};
use crate::split::{self, DESC_F_WRITE, OnBogus, Split};
use crate::transport::Transport;

/// One element taken from the used ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Used {
    /// The device is done with buffer `id` and wrote `len` bytes into it.
    Buffer { id: u16, len: u32 },
    /// The device returned a buffer it did not own (or an index out of range): skipped.
    Bogus,
}

/// A split virtqueue whose descriptors each own one buffer.
pub(crate) struct Virtqueue<D: DmaMemory> {
    ring: Split<D>,
    buf_size: usize,
}

impl<D: DmaMemory> Virtqueue<D> {
    /// Allocates queue `index` with at most `wanted` entries of `buf_size`-byte buffers
    /// (the device may allow fewer), writes the descriptor table (device-writable
    /// buffers if `device_writes`) and enables it on `transport`.
    pub(crate) fn new<H: Hal<Dma = D>, T: Transport>(
        hal: &H,
        transport: &T,
        index: u16,
        wanted: u16,
        buf_size: usize,
        device_writes: bool,
        msix_vector: Option<u16>,
    ) -> Result<Virtqueue<D>, Error> {
        let ring = Split::alloc(hal, transport, index, wanted, buf_size, OnBogus::Skip)?;
        let mut q = Virtqueue { ring, buf_size };
        let flags = if device_writes { DESC_F_WRITE } else { 0 };
        for id in 0..q.ring.size() {
            q.ring
                .set_desc(id, q.ring.phys(q.offset(id)), buf_size as u32, flags, 0);
        }
        q.ring.enable(transport, msix_vector)?;
        Ok(q)
    }

    /// Offset of buffer `id` in the queue's region.
    fn offset(&self, id: u16) -> usize {
        assert!(id < self.ring.size());
        self.ring.layout().buffers + usize::from(id) * self.buf_size
    }

    /// Number of entries.
    pub(crate) fn size(&self) -> u16 {
        self.ring.size()
    }

    /// Size of each buffer.
    pub(crate) fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Whether the device misbehaved and the queue was given up.
    pub(crate) fn is_broken(&self) -> bool {
        self.ring.is_broken()
    }

    /// Bytes of DMA memory the queue uses (rings and buffers).
    pub(crate) fn dma_bytes(&self) -> usize {
        self.ring.dma_bytes()
    }

    /// See [`Split::use_event_idx`].
    pub(crate) fn use_event_idx(&mut self) {
        self.ring.use_event_idx();
    }

    /// See [`Split::keep_interrupts_off`].
    pub(crate) fn keep_interrupts_off(&self) {
        self.ring.keep_interrupts_off();
    }

    /// Asks the device not to interrupt for this queue (a hint it may ignore).
    pub(crate) fn suppress_interrupts(&mut self) {
        self.ring.suppress_interrupts();
    }

    /// Asks the device to interrupt for this queue or not (see [`Split::set_interrupts`]).
    pub(crate) fn set_interrupts(&self, on: bool) {
        self.ring.set_interrupts(on);
    }

    /// See [`Split::interrupts_may_be_on`].
    pub(crate) fn interrupts_may_be_on(&self) {
        self.ring.interrupts_may_be_on();
    }

    /// See [`Split::watch`].
    pub(crate) fn watch(&self) -> crate::QueueWatch {
        self.ring.watch()
    }

    /// Pointer to buffer `id` (`buf_size` bytes).
    pub(crate) fn buffer(&self, id: u16) -> *mut u8 {
        self.ring.buffer_ptr(self.offset(id))
    }

    /// Gives buffer `id` to the device, `len` bytes of it (for a device-readable
    /// buffer: the bytes to send). Does not notify.
    pub(crate) fn push<H: Hal>(&mut self, hal: &H, id: u16, len: u32) {
        self.ring.set_len(id, len);
        self.ring.push(hal, id);
    }

    /// Whether the device has returned buffers not yet taken.
    pub(crate) fn has_used(&self) -> bool {
        self.ring.has_used()
    }

    /// Takes the next used element, if any.
    pub(crate) fn pop_used<H: Hal>(&mut self, hal: &H) -> Option<Used> {
        Some(match self.ring.pop_used(hal)? {
            split::Used::Chain { head, len } => Used::Buffer { id: head, len },
            split::Used::Bogus => Used::Bogus,
        })
    }

    /// Notifies the device of new available buffers, unless it asked not to be.
    /// Returns whether it was notified.
    pub(crate) fn kick<H: Hal, T: Transport>(&self, hal: &H, transport: &T) -> bool {
        self.ring.kick(hal, transport)
    }

    /// Notifies the device whatever its flag says (see [`Split::kick_always`]).
    pub(crate) fn kick_always<T: Transport>(&self, hal: &impl Hal, transport: &T) {
        self.ring.kick_always(hal, transport);
    }

    /// The driver's next available index (how many buffers it has published, mod 2^16).
    pub(crate) fn avail_idx(&self) -> u16 {
        self.ring.avail_idx()
    }

    /// Never frees the memory: the device could not be stopped and may still use it.
    pub(crate) fn leak(&mut self) {
        self.ring.leak();
    }
}
