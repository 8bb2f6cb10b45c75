//! What a PV frontend driver needs from its kernel: pages to share, grants to its
//! backend's domain, and its event channel.
//!
//! A driver is generic over [`Hal`], like morgana-virtio over its own: the kernel's
//! implementation is morgana-pvh's `xen::XenHal` (heap pages, the grant table, an
//! event channel bound to the backend), and host tests run the same driver over a
//! simulated backend that plays the other side of the grants and rings.

use crate::XenError;
use crate::grant::GrantRef;
use core::ptr::NonNull;
use core::task::Waker;

/// The kernel services of one PV device.
pub trait Hal {
    /// `pages` zeroed, page-aligned pages that stay allocated for the driver's life.
    fn alloc_pages(&self, pages: usize) -> Result<NonNull<u8>, XenError>;
    /// Grants the backend access to the page at `page`; returns the grant reference.
    fn grant(&self, page: NonNull<u8>, readonly: bool) -> Result<GrantRef, XenError>;
    /// Signals the device's event channel.
    fn notify(&self);
    /// Wakes `waker` at the device's next event.
    fn register_waker(&self, waker: &Waker);
}
