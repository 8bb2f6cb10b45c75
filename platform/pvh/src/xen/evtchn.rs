//! Event channels (2-level ABI) delivered through an upcall vector, and Xen's
//! single-shot timer for the idle loop.
//!
//! - At boot an ordinary device vector is allocated ([`crate::Interrupts`]) and given
//!   to Xen with `HVMOP_set_evtchn_upcall_vector`; its handler is the common one (IST
//!   stack, sets a pending flag, EOI): nothing Xen-specific runs in interrupt context.
//! - [`poll`] runs in the event loop (interrupts off): it clears vCPU 0's
//!   `evtchn_upcall_pending`, takes `evtchn_pending_sel`, and for every selected word
//!   takes the pending-and-unmasked bits of `evtchn_pending` (shared info, offsets
//!   2048 and 2560 for the pending and mask arrays), recording them per port and waking
//!   whoever waits.
//! - `VIRQ_TIMER` is bound to a port; the idle loop arms `VCPUOP_set_singleshot_timer`
//!   for the earliest sleep (converted to Xen system time through the pvclock) instead
//!   of the local APIC timer, then halts until the upcall.

use super::{XenError, hypercall, pvclock};
use crate::interrupts::{Interrupts, Irq};
use crate::sync::CpuCell;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use core::task::Waker;

/// Ports this kernel tracks (the 2-level ABI has 4096; the platform needs a handful).
pub const MAX_PORTS: u32 = 1024;
const WORDS: usize = (MAX_PORTS / 64) as usize;
const PENDING_OFF: usize = 2048;
const MASK_OFF: usize = 2560;
const UPCALL_PENDING_OFF: usize = 0;
const UPCALL_MASK_OFF: usize = 1;
const PENDING_SEL_OFF: usize = 8;
const VIRQ_TIMER: u32 = 0;

/// The upcall vector (0: not set up, events are not delivered).
static VECTOR: AtomicU8 = AtomicU8::new(0);
/// VIRQ_TIMER's port (0: not bound, the APIC timer is used).
static TIMER_PORT: AtomicU32 = AtomicU32::new(0);
/// Ports that fired and were not taken yet.
static FIRED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
static WAKERS: CpuCell<[Option<Waker>; MAX_PORTS as usize]> =
    CpuCell::new([const { None }; MAX_PORTS as usize]);
static UPCALL: CpuCell<Option<Irq>> = CpuCell::new(None);
/// Ports opened for devices ([`alloc_unbound`]), for diagnostics.
static DEVICE_PORTS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Sets up delivery: upcall vector, unmasked upcalls, VIRQ_TIMER.
pub(crate) fn init() -> Result<(), XenError> {
    let irq = Interrupts::new()
        .allocate()
        .map_err(|_| XenError::NoVector)?;
    hypercall::set_upcall_vector(irq.vector())?;
    VECTOR.store(irq.vector(), Ordering::Relaxed);
    UPCALL.with(|u| *u = Some(irq));
    let base = hypercall::shared_info_base();
    // SAFETY: the shared info page is mapped at `base`; vCPU 0's upcall mask byte.
    unsafe { ((base + UPCALL_MASK_OFF) as *mut u8).write_volatile(0) };
    let port = hypercall::bind_virq(VIRQ_TIMER)?;
    TIMER_PORT.store(port, Ordering::Relaxed);
    super::control::init()
}

/// Whether Xen's timer drives the idle loop.
pub(crate) fn timer_ready() -> bool {
    TIMER_PORT.load(Ordering::Relaxed) != 0
}

/// Takes the pending-and-unmasked bits of one word: the pure part of [`poll`].
pub fn take_word(pending: &AtomicU64, mask: u64) -> u64 {
    let ready = pending.load(Ordering::Acquire) & !mask;
    if ready != 0 {
        pending.fetch_and(!ready, Ordering::AcqRel);
    }
    ready
}

/// Collects fired event channels and wakes their waiters; returns whether any fired.
pub(crate) fn poll() -> bool {
    if VECTOR.load(Ordering::Relaxed) == 0 {
        return false;
    }
    UPCALL.with(|u| {
        if let Some(irq) = u {
            irq.take_pending();
        }
    });
    let base = hypercall::shared_info_base();
    // SAFETY: (for all accesses below) the shared info page is mapped at `base`; the
    // byte, selector word and bitmap words are naturally aligned and shared with Xen,
    // which updates them with atomic operations, so atomics are used here too.
    let sel = unsafe {
        (*((base + UPCALL_PENDING_OFF) as *const core::sync::atomic::AtomicU8))
            .store(0, Ordering::SeqCst);
        (*((base + PENDING_SEL_OFF) as *const AtomicU64)).swap(0, Ordering::AcqRel)
    };
    let mut any = false;
    let store_port = super::store_ring().map_or(u32::MAX, |(_, port)| port);
    let mut store_fired = false;
    let mut words = sel;
    while words != 0 {
        let w = words.trailing_zeros() as usize;
        words &= words - 1;
        // SAFETY: see above; word `w` < 64 of each array.
        let (pending, mask) = unsafe {
            (
                &*((base + PENDING_OFF + 8 * w) as *const AtomicU64),
                (*((base + MASK_OFF + 8 * w) as *const AtomicU64)).load(Ordering::Acquire),
            )
        };
        let mut bits = take_word(pending, mask);
        if w >= WORDS {
            continue;
        }
        FIRED[w].fetch_or(bits, Ordering::AcqRel);
        while bits != 0 {
            let b = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            any = true;
            store_fired |= (w * 64 + b) as u32 == store_port;
            if let Some(waker) = WAKERS.with(|t| t[w * 64 + b].take()) {
                waker.wake();
            }
        }
    }
    // The store's channel also carries the toolstack's requests (`xl shutdown`).
    if store_fired {
        super::control::check();
    }
    // The timer's own port only serves to end the halt.
    let tp = TIMER_PORT.load(Ordering::Relaxed);
    if tp != 0 && (tp as usize) < MAX_PORTS as usize {
        FIRED[tp as usize / 64].fetch_and(!(1 << (tp % 64)), Ordering::AcqRel);
    }
    any
}

/// Clears and returns whether `port` fired since the last call.
pub fn take_fired(port: u32) -> bool {
    if port >= MAX_PORTS {
        return false;
    }
    let bit = 1u64 << (port % 64);
    FIRED[port as usize / 64].fetch_and(!bit, Ordering::AcqRel) & bit != 0
}

/// Whether `port` fired since the last call (clearing that) or is pending in the shared
/// info page right now (an event Xen raised that the event loop has not collected yet).
pub fn take_event(port: u32) -> bool {
    let fired = take_fired(port);
    fired || port_state(port).0
}

/// Registers `waker` to be woken when `port` fires.
pub fn register_waker(port: u32, waker: &Waker) {
    if port < MAX_PORTS {
        WAKERS.with(|t| t[port as usize] = Some(waker.clone()));
    }
}

/// Signals `port`.
pub fn notify(port: u32) {
    hypercall::evtchn_send(port)
}

/// Opens an event channel for a device backend in domain `remote` (it binds the other
/// end): `EVTCHNOP_alloc_unbound`. Ports beyond the [`MAX_PORTS`] this kernel tracks
/// are closed again and refused.
pub fn alloc_unbound(remote: u16) -> Result<u32, XenError> {
    let port = hypercall::evtchn_alloc_unbound(remote)?;
    if port >= MAX_PORTS {
        hypercall::evtchn_close(port);
        return Err(XenError::PortTooHigh {
            port,
            tracked: MAX_PORTS,
        });
    }
    DEVICE_PORTS[port as usize / 64].fetch_or(1 << (port % 64), Ordering::Relaxed);
    Ok(port)
}

/// Closes `port` (a device going away).
pub fn close(port: u32) {
    if port < MAX_PORTS {
        DEVICE_PORTS[port as usize / 64].fetch_and(!(1 << (port % 64)), Ordering::Relaxed);
    }
    hypercall::evtchn_close(port)
}

/// The ports opened for devices.
pub(crate) fn device_ports() -> impl Iterator<Item = u32> {
    (0..MAX_PORTS)
        .filter(|&p| DEVICE_PORTS[p as usize / 64].load(Ordering::Relaxed) & (1 << (p % 64)) != 0)
}

/// The timer's port (0: not bound).
pub(crate) fn timer_port() -> u32 {
    TIMER_PORT.load(Ordering::Relaxed)
}

/// vCPU 0's `evtchn_upcall_pending` and `evtchn_upcall_mask` bytes and its
/// `evtchn_pending_sel` word, as they are now (diagnostics).
pub(crate) fn upcall_state() -> (u8, u8, u64) {
    let base = hypercall::shared_info_base();
    if base == 0 {
        return (0, 0, 0);
    }
    // SAFETY: the shared info page is mapped at `base`; plain atomic reads of fields
    // Xen updates atomically.
    unsafe {
        (
            (*((base + UPCALL_PENDING_OFF) as *const AtomicU8)).load(Ordering::Acquire),
            (*((base + UPCALL_MASK_OFF) as *const AtomicU8)).load(Ordering::Acquire),
            (*((base + PENDING_SEL_OFF) as *const AtomicU64)).load(Ordering::Acquire),
        )
    }
}

/// One port's state: (pending in shared info, masked, fired and not yet taken, a waker
/// registered), for diagnostics.
pub(crate) fn port_state(port: u32) -> (bool, bool, bool, bool) {
    let base = hypercall::shared_info_base();
    if base == 0 || port >= MAX_PORTS {
        return (false, false, false, false);
    }
    let (w, bit) = (port as usize / 64, 1u64 << (port % 64));
    // SAFETY: as in `upcall_state`; word `w` < 16 of each bitmap.
    let (pending, mask) = unsafe {
        (
            (*((base + PENDING_OFF + 8 * w) as *const AtomicU64)).load(Ordering::Acquire),
            (*((base + MASK_OFF + 8 * w) as *const AtomicU64)).load(Ordering::Acquire),
        )
    };
    let fired = FIRED[w].load(Ordering::Acquire) & bit != 0;
    let waker = WAKERS.with(|t| t[port as usize].is_some());
    (pending & bit != 0, mask & bit != 0, fired, waker)
}

/// Wakes whoever waits on a device port (diagnostics: the drivers then run and report).
pub(crate) fn wake_devices() {
    for port in device_ports() {
        if let Some(w) = WAKERS.with(|t| t[port as usize].take()) {
            w.wake();
        }
    }
}

/// Resolves once `port` has fired (see [`take_fired`]); the event loop halts meanwhile.
pub fn wait(port: u32) -> PortWait {
    PortWait { port }
}

/// The future of [`wait`].
#[derive(Debug)]
pub struct PortWait {
    port: u32,
}

impl core::future::Future for PortWait {
    type Output = ();
    fn poll(
        self: core::pin::Pin<&mut Self>,
        cx: &mut core::task::Context<'_>,
    ) -> core::task::Poll<()> {
        if take_fired(self.port) {
            return core::task::Poll::Ready(());
        }
        register_waker(self.port, cx.waker());
        if take_fired(self.port) {
            core::task::Poll::Ready(())
        } else {
            core::task::Poll::Pending
        }
    }
}

/// Arms Xen's single-shot timer for `deadline` (nanoseconds since entry) or stops it.
pub(crate) fn arm_timer(deadline: Option<u64>) {
    let at = deadline.map(|d| {
        let tsc = crate::time::tsc_at(d);
        pvclock::system_time_at(&hypercall::shared_info_time(), tsc)
    });
    let _ = hypercall::set_singleshot_timer(at);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_only_unmasked_pending_bits() {
        let w = AtomicU64::new(0b1011);
        assert_eq!(take_word(&w, 0b0010), 0b1001);
        assert_eq!(w.load(Ordering::Relaxed), 0b0010);
        assert_eq!(take_word(&w, 0b0010), 0);
    }
}
