//! The kernel's xenstore client: `morgana_xen::store::Client` over this domain's store
//! ring ([`open`]).
//!
//! The ring page is the one `HVM_PARAM_STORE_PFN` names, mapped uncached; requests are
//! signalled on the store's event channel, and a request waits (yielding to Xen) for
//! at most 5 s. The client itself — wire format, typed errors, the host tests against
//! a hostile simulated xenstored — lives in morgana-xen and is re-exported here.

use morgana_xen::XenError;
pub use morgana_xen::store::*;

/// The store ring of this domain as a [`Transport`]: volatile accesses to the mapped
/// page, `EVTCHNOP_send` to notify, and a wait that yields to Xen until a deadline
/// (5 s per request on the calibrated clock).
#[derive(Debug)]
pub struct RingTransport {
    base: usize,
    port: u32,
    deadline: u64,
}

/// How long one request may take.
const REQUEST_NANOS: u64 = 5_000_000_000;

/// Opens a client on this domain's store ring (Xen only; mapping the page again for a
/// second client is harmless).
///
/// Several clients may share the ring (the kernel's `control` and a driver's handshake
/// do): every request completes, reply included, before the call returns, so replies
/// never interleave; a watch event is taken by whichever client reads the ring next,
/// so a client cannot rely on seeing its own events. The xenbus wait polls as well;
/// `control` does rely on its watch, so an `xl shutdown` sent while a driver is still
/// in its handshake (during boot) can be taken by the driver's client and missed: send
/// it again. One shared client would remove that window.
pub fn open() -> Result<Client<RingTransport>, XenError> {
    let (pfn, port) = super::store_ring().ok_or(XenError::NotXen)?;
    let phys = pfn << 12;
    crate::paging::map_mmio(phys, 4096).map_err(|_| XenError::StoreMap)?;
    Ok(Client::new(RingTransport {
        base: phys as usize,
        port,
        deadline: 0,
    }))
}

impl Transport for RingTransport {
    fn read_u32(&mut self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of the index fields inside the mapped store page.
        let v = unsafe { ((self.base + offset) as *const u32).read_volatile() };
        core::sync::atomic::fence(core::sync::atomic::Ordering::Acquire);
        v
    }
    fn write_u32(&mut self, offset: usize, value: u32) {
        core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
        // SAFETY: as above.
        unsafe { ((self.base + offset) as *mut u32).write_volatile(value) }
    }
    fn read_u8(&mut self, offset: usize) -> u8 {
        // SAFETY: `offset` < 2048 lies in one of the rings of the mapped page.
        unsafe { ((self.base + offset) as *const u8).read_volatile() }
    }
    fn write_u8(&mut self, offset: usize, value: u8) {
        // SAFETY: as above.
        unsafe { ((self.base + offset) as *mut u8).write_volatile(value) }
    }
    fn notify(&mut self) {
        super::hypercall::evtchn_send(self.port);
    }
    fn wait(&mut self) -> bool {
        super::hypercall::sched_yield();
        crate::time::nanos_since_entry() < self.deadline
    }
    fn start_request(&mut self) {
        self.deadline = crate::time::nanos_since_entry().saturating_add(REQUEST_NANOS);
    }
}
