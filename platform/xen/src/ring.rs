//! The front end of a Xen shared ring (`io/ring.h`), over one shared page, for any
//! device: the entry size is a parameter, and requests and responses are read and
//! written field by field through a [`Slot`] (volatile, bounds-checked), so a driver
//! needs no `unsafe` for its ring traffic. netfront's TX and RX rings use it; a block
//! frontend's ring is the same with 112-byte entries.
//!
//! Layout: a 64-byte header — `req_prod`, `req_event`, `rsp_prod`, `rsp_event` (u32
//! each), then padding — followed by the entries. Requests and responses share the
//! entries (a slot holds a request until the backend overwrites it with the response),
//! so an entry is as large as the larger of the two, and the ring holds the largest
//! power of two of entries that fits in the rest of the page.
//!
//! The frontend alone writes `req_prod` and `rsp_event`; the backend alone writes
//! `rsp_prod` and `req_event`. Notifications are suppressed with the event indices:
//! after publishing requests, the backend needs an event only if its `req_event` lies
//! in the newly published range; before sleeping, the frontend sets `rsp_event` to
//! the next response it wants to hear about and looks once more. Indices are free
//! running `u32`s (wrapping arithmetic).

use core::marker::PhantomData;
use core::sync::atomic::{AtomicU32, Ordering, fence};

const REQ_PROD: usize = 0;
const REQ_EVENT: usize = 4;
const RSP_PROD: usize = 8;
const RSP_EVENT: usize = 12;
/// Bytes before the first entry.
pub const HEADER_BYTES: usize = 64;
/// A ring is one page.
pub const PAGE_BYTES: usize = 4096;

/// Entries of a one-page ring whose entries are `entry_bytes` long.
pub const fn entries_for(entry_bytes: usize) -> u32 {
    let n = (PAGE_BYTES - HEADER_BYTES) / entry_bytes;
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// The backend's responses do not add up: more outstanding than the ring holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// `rsp_prod` as the backend wrote it.
    pub rsp_prod: u32,
    /// Our consumer index.
    pub rsp_cons: u32,
}

/// The frontend's view of one shared ring.
#[derive(Debug)]
pub struct FrontRing {
    page: *mut u8,
    entry_bytes: usize,
    size: u32,
    req_prod_pvt: u32,
    rsp_cons: u32,
}

impl FrontRing {
    /// Initialises the shared page (`SHARED_RING_INIT`) and the private indices.
    ///
    /// # Safety
    /// `page` must be a zeroed, 4-byte aligned page that stays valid while the ring
    /// lives, shared only with the backend, which follows the ring protocol.
    pub unsafe fn new(page: *mut u8, entry_bytes: usize) -> FrontRing {
        let ring = FrontRing {
            page,
            entry_bytes,
            size: entries_for(entry_bytes),
            req_prod_pvt: 0,
            rsp_cons: 0,
        };
        ring.index(REQ_PROD).store(0, Ordering::Relaxed);
        ring.index(RSP_PROD).store(0, Ordering::Relaxed);
        ring.index(REQ_EVENT).store(1, Ordering::Relaxed);
        ring.index(RSP_EVENT).store(1, Ordering::Release);
        ring
    }

    fn index(&self, offset: usize) -> &AtomicU32 {
        // SAFETY: `offset` is one of the four 4-byte aligned header fields of the page
        // (valid for the ring's lifetime, see `new`); the backend writes some of them
        // concurrently, hence atomics.
        unsafe { &*(self.page.add(offset) as *const AtomicU32) }
    }

    /// Entries in the ring.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Request slots not holding an unanswered request.
    pub fn free_requests(&self) -> u32 {
        self.size - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    fn slot(&self, index: u32) -> Slot<'_> {
        let i = (index & (self.size - 1)) as usize;
        Slot {
            // SAFETY: `i < size`, and `HEADER_BYTES + size * entry_bytes <= PAGE_BYTES`.
            ptr: unsafe { self.page.add(HEADER_BYTES + i * self.entry_bytes) },
            len: self.entry_bytes,
            _ring: PhantomData,
        }
    }

    /// The next request slot, to be filled before [`FrontRing::push`]; `None` when
    /// every slot holds an unanswered request.
    pub fn next_request(&mut self) -> Option<Slot<'_>> {
        if self.free_requests() == 0 {
            return None;
        }
        let index = self.req_prod_pvt;
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Some(self.slot(index))
    }

    /// The slot of request `index` (free running) while it is outstanding: between
    /// [`FrontRing::rsp_cons`] and [`FrontRing::req_prod_pvt`] the slots still hold the
    /// requests as written (the backend writes a response only at `rsp_prod`). For
    /// audits: which buffers the backend really holds.
    pub fn outstanding(&self, index: u32) -> Option<Slot<'_>> {
        let pending = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        (index.wrapping_sub(self.rsp_cons) < pending).then(|| self.slot(index))
    }

    /// The private request producer: requests written so far, published or not.
    pub fn req_prod_pvt(&self) -> u32 {
        self.req_prod_pvt
    }

    /// The private response consumer: responses taken so far.
    pub fn rsp_cons(&self) -> u32 {
        self.rsp_cons
    }

    /// The shared indices as they are now: (`req_prod`, `req_event`, `rsp_prod`,
    /// `rsp_event`). For diagnostics.
    pub fn shared_indices(&self) -> [u32; 4] {
        [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT].map(|o| self.index(o).load(Ordering::Acquire))
    }

    /// Requests written but not yet published.
    pub fn unpublished(&self) -> u32 {
        self.req_prod_pvt
            .wrapping_sub(self.index(REQ_PROD).load(Ordering::Relaxed))
    }

    /// Publishes the requests written so far; `true` if the backend asked to be
    /// notified of them (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`).
    pub fn push(&self) -> bool {
        let old = self.index(REQ_PROD).load(Ordering::Relaxed);
        let new = self.req_prod_pvt;
        if old == new {
            return false;
        }
        // Requests are visible before the index that publishes them.
        self.index(REQ_PROD).store(new, Ordering::Release);
        // The index is visible before we read the backend's event index.
        fence(Ordering::SeqCst);
        let event = self.index(REQ_EVENT).load(Ordering::Acquire);
        new.wrapping_sub(event) < new.wrapping_sub(old)
    }

    /// The next response, if the backend produced one.
    pub fn next_response(&mut self) -> Result<Option<Slot<'_>>, Corrupt> {
        let prod = self.index(RSP_PROD).load(Ordering::Acquire);
        if prod == self.rsp_cons {
            return Ok(None);
        }
        let outstanding = self.req_prod_pvt.wrapping_sub(self.rsp_cons);
        if prod.wrapping_sub(self.rsp_cons) > outstanding {
            return Err(Corrupt {
                rsp_prod: prod,
                rsp_cons: self.rsp_cons,
            });
        }
        let index = self.rsp_cons;
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(self.slot(index)))
    }

    /// How many responses are waiting (as the backend's `rsp_prod` says; a corrupt
    /// index gives a meaningless count, which [`FrontRing::next_response`] refuses).
    pub fn pending_responses(&self) -> u32 {
        self.index(RSP_PROD)
            .load(Ordering::Acquire)
            .wrapping_sub(self.rsp_cons)
    }

    /// Whether responses are waiting.
    pub fn has_responses(&self) -> bool {
        self.index(RSP_PROD).load(Ordering::Acquire) != self.rsp_cons
    }

    /// Asks for an event at the next response and looks once more
    /// (`RING_FINAL_CHECK_FOR_RESPONSES`); `true` if responses are waiting.
    pub fn arm(&self) -> bool {
        if self.has_responses() {
            return true;
        }
        self.index(RSP_EVENT)
            .store(self.rsp_cons.wrapping_add(1), Ordering::Release);
        fence(Ordering::SeqCst);
        self.has_responses()
    }
}

/// One entry of a ring: a request being written or a response being read, field by
/// field at byte offsets. Accesses are volatile (the backend shares the page) and
/// checked against the entry size (a wrong offset is a driver bug: it panics rather
/// than touch the next entry).
#[derive(Debug)]
pub struct Slot<'a> {
    ptr: *mut u8,
    len: usize,
    _ring: PhantomData<&'a FrontRing>,
}

impl Slot<'_> {
    fn at<T>(&self, offset: usize) -> *mut T {
        let size = core::mem::size_of::<T>();
        // A static message: formatting the offsets would cost the kernel image a
        // formatter for a driver bug that tests catch.
        assert!(
            offset + size <= self.len && offset.is_multiple_of(size),
            "a ring field outside its entry or misaligned"
        );
        // SAFETY: within the entry (checked above), which lies within the ring page.
        unsafe { self.ptr.add(offset).cast() }
    }

    /// Reads the `u16` at byte `offset`.
    pub fn read_u16(&self, offset: usize) -> u16 {
        // SAFETY: `at` checked bounds and alignment; the page is live for the ring's life.
        unsafe { self.at::<u16>(offset).read_volatile() }
    }

    /// Reads the `i16` at byte `offset`.
    pub fn read_i16(&self, offset: usize) -> i16 {
        // SAFETY: as in `read_u16`.
        unsafe { self.at::<i16>(offset).read_volatile() }
    }

    /// Reads the `u32` at byte `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: as in `read_u16`.
        unsafe { self.at::<u32>(offset).read_volatile() }
    }

    /// Reads the `u64` at byte `offset`.
    pub fn read_u64(&self, offset: usize) -> u64 {
        // SAFETY: as in `read_u16`.
        unsafe { self.at::<u64>(offset).read_volatile() }
    }

    /// Writes the `u8` at byte `offset`.
    pub fn write_u8(&mut self, offset: usize, value: u8) {
        // SAFETY: as in `read_u16`; a request slot is ours until published.
        unsafe { self.at::<u8>(offset).write_volatile(value) }
    }

    /// Writes the `u16` at byte `offset`.
    pub fn write_u16(&mut self, offset: usize, value: u16) {
        // SAFETY: as in `write_u8`.
        unsafe { self.at::<u16>(offset).write_volatile(value) }
    }

    /// Writes the `u32` at byte `offset`.
    pub fn write_u32(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `write_u8`.
        unsafe { self.at::<u32>(offset).write_volatile(value) }
    }

    /// Writes the `u64` at byte `offset`.
    pub fn write_u64(&mut self, offset: usize, value: u64) {
        // SAFETY: as in `write_u8`.
        unsafe { self.at::<u64>(offset).write_volatile(value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_sizes_match_the_netif_rings() {
        // netif_tx_request is 12 bytes, netif_rx_request/response 8: 256 entries each.
        assert_eq!(entries_for(12), 256);
        assert_eq!(entries_for(8), 256);
        assert_eq!(entries_for(4032), 1);
    }

    /// A zeroed page for a ring, 4096-aligned.
    fn page() -> std::boxed::Box<Page> {
        std::boxed::Box::new(Page([0; 4096]))
    }

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    /// The backend writing the u32 at `offset` of the ring page.
    fn set(base: *mut u8, offset: usize, v: u32) {
        // SAFETY: `offset + 4 <= 4096`, inside the live page; aligned.
        unsafe { base.add(offset).cast::<u32>().write_volatile(v) }
    }

    #[test]
    fn requests_go_out_and_responses_come_back_through_slots() {
        let mut p = page();
        let base = p.0.as_mut_ptr();
        // SAFETY: the page outlives the ring; the test plays the backend in between.
        let mut ring = unsafe { FrontRing::new(base, 112) };
        assert_eq!(ring.size(), 32, "blkif: 112-byte entries, 32 per page");
        let mut slot = ring.next_request().unwrap();
        slot.write_u8(0, 1);
        slot.write_u16(2, 0x1234);
        slot.write_u64(8, 0xDEAD_BEEF_0000_0001);
        assert!(
            ring.push(),
            "the backend's req_event is 1: it wants an event"
        );
        assert_eq!(ring.shared_indices()[0], 1);
        // Still outstanding: the slot holds the request as written.
        assert_eq!(
            ring.outstanding(0).unwrap().read_u64(8),
            0xDEAD_BEEF_0000_0001
        );
        assert!(ring.outstanding(1).is_none());
        assert!(!ring.arm());
        // The backend answers in the same slot and publishes rsp_prod = 1.
        // SAFETY: entry 0's bytes 8..16, inside the page.
        unsafe { base.add(64 + 8).cast::<u64>().write_volatile(7) };
        set(base, 8, 1);
        let rsp = ring.next_response().unwrap().unwrap();
        assert_eq!(rsp.read_u64(8), 7);
        assert!(ring.next_response().unwrap().is_none());
        assert!(ring.outstanding(0).is_none());
        assert_eq!((ring.req_prod_pvt(), ring.rsp_cons()), (1, 1));
    }

    #[test]
    fn a_response_producer_beyond_the_requests_is_corrupt() {
        let mut p = page();
        let base = p.0.as_mut_ptr();
        // SAFETY: as above.
        let mut ring = unsafe { FrontRing::new(base, 8) };
        ring.next_request().unwrap().write_u16(0, 1);
        ring.push();
        set(base, 8, 5);
        assert_eq!(
            ring.next_response().unwrap_err(),
            Corrupt {
                rsp_prod: 5,
                rsp_cons: 0
            }
        );
    }

    #[test]
    #[should_panic(expected = "a ring field outside its entry or misaligned")]
    fn a_field_beyond_the_entry_is_refused() {
        let mut p = page();
        // SAFETY: as above.
        let mut ring = unsafe { FrontRing::new(p.0.as_mut_ptr(), 8) };
        ring.next_request().unwrap().write_u16(8, 1);
    }
}
