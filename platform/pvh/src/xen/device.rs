//! [`XenHal`]: the kernel services of one PV device (`morgana_xen::device::Hal`).

use super::{evtchn, grant};
use core::ptr::NonNull;
use core::task::Waker;
use morgana_signatures::Instant;
use morgana_xen::XenError;
use morgana_xen::device::Hal;
use morgana_xen::grant::GrantRef;

/// Pages from the heap, grants to the backend's domain, an event channel bound to the
/// backend, the kernel's clock and timers, and the debug key's epoch: what a frontend
/// driver (netfront) runs on in the kernel.
#[derive(Debug)]
pub struct XenHal {
    backend_id: u16,
    port: u32,
}

impl XenHal {
    /// Opens an event channel that the backend in domain `backend_id` binds to.
    pub fn bind(backend_id: u16) -> Result<XenHal, XenError> {
        let port = evtchn::alloc_unbound(backend_id)?;
        Ok(XenHal { backend_id, port })
    }

    /// The event channel shared with the backend.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// The backend's domain.
    pub fn backend_id(&self) -> u16 {
        self.backend_id
    }
}

impl Hal for XenHal {
    type Sleep = crate::Sleep;

    fn alloc_pages(&self, pages: usize) -> Result<NonNull<u8>, XenError> {
        let bytes = pages * 4096;
        crate::DmaBuffer::new(bytes)
            .map(crate::DmaBuffer::leak)
            .map_err(|_| XenError::OutOfMemory { bytes })
    }

    fn grant(&self, page: NonNull<u8>, readonly: bool) -> Result<GrantRef, XenError> {
        let phys = crate::virt_to_phys(page.as_ptr());
        grant::grant_access(self.backend_id, phys, readonly)
    }

    fn notify(&self) {
        evtchn::notify(self.port)
    }

    fn register_waker(&self, waker: &Waker) {
        evtchn::register_waker(self.port, waker)
    }

    fn take_event(&self) -> bool {
        evtchn::take_event(self.port)
    }

    fn now(&self) -> Instant {
        Instant::from_nanos(crate::time::nanos_since_entry())
    }

    fn sleep_until(&self, deadline: Instant) -> crate::Sleep {
        crate::Sleep::until(deadline)
    }

    fn diagnostics_epoch(&self) -> u32 {
        super::diagnostics::epoch()
    }
}
