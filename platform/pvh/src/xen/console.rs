//! The PV console: the `out` ring of `xencons_interface` in the page that
//! `HVM_PARAM_CONSOLE_PFN` names, drained by xenconsoled in dom0.
//!
//! Layout: `in[1024]` at 0, `out[2048]` at 1024, then `in_cons`, `in_prod`, `out_cons`,
//! `out_prod` (u32 each) at 3072..3088. Indices run freely and are masked by the ring
//! size. The guest copies bytes, raises `out_prod` after a write barrier and signals
//! the console event channel when a write ends a line (or on a full ring, or flush). A full ring is waited on (yielding to Xen, bounded); if
//! dom0 never drains it, output is dropped rather than hanging the kernel.

use super::XenError;
use super::hypercall;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;
/// Yields to Xen before giving up on a full ring.
const FULL_LIMIT: u32 = 10_000;

static RING: AtomicU64 = AtomicU64::new(0);
static EVTCHN: AtomicU32 = AtomicU32::new(0);

/// Maps the ring and switches the console to it.
pub(crate) fn init(pfn: u64, evtchn: u32) -> Result<(), XenError> {
    if pfn == 0 {
        return Err(XenError::ConsoleMap);
    }
    let phys = pfn << 12;
    crate::paging::map_mmio(phys, 4096).map_err(|_| XenError::ConsoleMap)?;
    EVTCHN.store(evtchn, Ordering::Relaxed);
    RING.store(phys, Ordering::SeqCst);
    Ok(())
}

/// The console's event channel.
pub(crate) fn port() -> u32 {
    EVTCHN.load(Ordering::Relaxed)
}

/// Whether the ring is in use.
pub(crate) fn active() -> bool {
    RING.load(Ordering::Relaxed) != 0
}

fn index(ring: u64, off: usize) -> *mut u32 {
    (ring as usize + off) as *mut u32
}

/// Writes bytes to the ring (as many as fit; see the module docs).
pub(crate) fn write(bytes: &[u8]) {
    let ring = RING.load(Ordering::Relaxed);
    if ring == 0 {
        return;
    }
    let evtchn = EVTCHN.load(Ordering::Relaxed);
    let mut rest = bytes;
    let mut waits = 0;
    while !rest.is_empty() {
        // SAFETY: `ring` is the mapped console page; the indices are u32 at fixed
        // offsets, read volatile because dom0 advances `out_cons`.
        let (cons, prod) = unsafe {
            (
                index(ring, OUT_CONS).read_volatile(),
                index(ring, OUT_PROD).read_volatile(),
            )
        };
        fence(Ordering::Acquire);
        let used = prod.wrapping_sub(cons);
        if used >= OUT_SIZE {
            hypercall::evtchn_send(evtchn);
            hypercall::sched_yield();
            waits += 1;
            if waits > FULL_LIMIT {
                return;
            }
            continue;
        }
        let n = ((OUT_SIZE - used) as usize).min(rest.len());
        for (i, &b) in rest[..n].iter().enumerate() {
            let at = OUT + (prod.wrapping_add(i as u32) & (OUT_SIZE - 1)) as usize;
            // SAFETY: `at` lies inside the `out` array of the mapped page.
            unsafe { ((ring as usize + at) as *mut u8).write_volatile(b) };
        }
        fence(Ordering::Release);
        // SAFETY: as above; publishing the new producer index.
        unsafe { index(ring, OUT_PROD).write_volatile(prod.wrapping_add(n as u32)) };
        rest = &rest[n..];
    }
    // A hypercall costs a VM exit: signal dom0 once per line, not per fragment (the
    // formatter writes a line in many pieces). `flush` signals whatever is left.
    if bytes.contains(&b'\n') {
        hypercall::evtchn_send(evtchn);
    }
}

/// Waits (bounded) until dom0 has consumed everything written.
pub(crate) fn flush() {
    let ring = RING.load(Ordering::Relaxed);
    if ring == 0 {
        return;
    }
    let evtchn = EVTCHN.load(Ordering::Relaxed);
    for _ in 0..FULL_LIMIT {
        // SAFETY: as in `write`.
        let (cons, prod) = unsafe {
            (
                index(ring, OUT_CONS).read_volatile(),
                index(ring, OUT_PROD).read_volatile(),
            )
        };
        if cons == prod {
            return;
        }
        hypercall::evtchn_send(evtchn);
        hypercall::sched_yield();
    }
}
