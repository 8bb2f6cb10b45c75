//! The front end of a Xen shared ring (`io/ring.h`), over one shared page.
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

    fn slot(&self, index: u32) -> *mut u8 {
        let i = (index & (self.size - 1)) as usize;
        // SAFETY: `i < size`, and `HEADER_BYTES + size * entry_bytes <= PAGE_BYTES`.
        unsafe { self.page.add(HEADER_BYTES + i * self.entry_bytes) }
    }

    /// The next request slot, to be filled before [`FrontRing::push`]; `None` when
    /// every slot holds an unanswered request.
    pub fn next_request(&mut self) -> Option<*mut u8> {
        if self.free_requests() == 0 {
            return None;
        }
        let slot = self.slot(self.req_prod_pvt);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Some(slot)
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

    /// The next response, if the backend produced one; the slot may be read until the
    /// next request is written.
    pub fn next_response(&mut self) -> Result<Option<*const u8>, Corrupt> {
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
        let slot = self.slot(self.rsp_cons);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        Ok(Some(slot))
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
}
