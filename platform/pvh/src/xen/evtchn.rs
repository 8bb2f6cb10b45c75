//! Event channels (2-level ABI), polled: Xen never interrupts this kernel.
//!
//! - No upcall: the kernel registers no upcall vector and no callback, and keeps vCPU
//!   0's `evtchn_upcall_mask` set, so Xen injects nothing when a port becomes pending;
//!   it only sets the pending bits in the shared info page. Interrupts stay disabled
//!   on Xen (the platform's rule for Rust code, here without exception).
//! - [`poll`] runs in the event loop: it clears vCPU 0's `evtchn_upcall_pending`,
//!   takes `evtchn_pending_sel`, and for every selected word takes the
//!   pending-and-unmasked bits of `evtchn_pending` (shared info, offsets 2048 and 2560
//!   for the pending and mask arrays), recording them per port and waking whoever
//!   waits.
//! - [`block`] is the idle step: `SCHEDOP_poll` on the ports the kernel waits on (the
//!   store's, every device's, every port a future waits for), with the earliest sleep
//!   as its timeout (Xen system time, through the pvclock). Xen checks the ports'
//!   pending bits after marking the vCPU blocked, so an event raised between the event
//!   loop's last look and the hypercall ends the block at once: no wake-up is lost.
//!
//! Why not an upcall vector (what this module did first): every triple fault this
//! kernel had on Xen under the harness (QEMU's emulated SVM, see
//! docs/xen-under-qemu.md) struck while Xen was injecting the upcall vector or holding
//! it pending — twice in loops waiting with interrupts off (Xen then opens an interrupt
//! window at every VM entry), twice with interrupts on in the idle halt or a yield
//! (RFLAGS.IF set in Xen's dump of the dead vCPU). Polling has no injection to get
//! wrong, costs the same hypercall per idle step as arming the timer did, and is what
//! Xen offers PV guests for exactly this (`SCHEDOP_poll`).

use super::{XenError, hypercall, pvclock};
use crate::sync::CpuCell;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use core::task::Waker;

/// Ports this kernel tracks (the 2-level ABI has 4096; the platform needs a handful).
pub const MAX_PORTS: u32 = 1024;
const WORDS: usize = (MAX_PORTS / 64) as usize;
const PENDING_OFF: usize = 2048;
const MASK_OFF: usize = 2560;
const UPCALL_PENDING_OFF: usize = 0;
const UPCALL_MASK_OFF: usize = 1;
const PENDING_SEL_OFF: usize = 8;
/// The most ports `SCHEDOP_poll` takes.
pub const POLL_PORTS: usize = 128;

/// Whether events are set up (the shared info page is mapped and polled).
static READY: AtomicBool = AtomicBool::new(false);
/// Ports that fired and were not taken yet.
static FIRED: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];
static WAKERS: CpuCell<[Option<Waker>; MAX_PORTS as usize]> =
    CpuCell::new([const { None }; MAX_PORTS as usize]);
/// Ports opened for devices ([`alloc_unbound`]), for diagnostics.
static DEVICE_PORTS: [AtomicU64; WORDS] = [const { AtomicU64::new(0) }; WORDS];

/// Sets up polled delivery (upcalls masked, none registered) and the toolstack's
/// control requests.
pub(crate) fn init() -> Result<(), XenError> {
    let base = hypercall::shared_info_base();
    if base == 0 {
        return Err(XenError::NotXen);
    }
    // SAFETY: the shared info page is mapped at `base`; vCPU 0's upcall mask byte.
    unsafe { ((base + UPCALL_MASK_OFF) as *mut u8).write_volatile(1) };
    READY.store(true, Ordering::Relaxed);
    super::control::init()
}

/// Whether the idle step blocks in Xen ([`block`]) rather than halting.
pub(crate) fn polled() -> bool {
    READY.load(Ordering::Relaxed)
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
    if !READY.load(Ordering::Relaxed) {
        return false;
    }
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
    any
}

/// Collects `ports` into `out`, each once, at most [`POLL_PORTS`]; returns how many.
/// The pure part of [`waited_ports`].
pub fn collect_ports(ports: impl IntoIterator<Item = u32>, out: &mut [u32; POLL_PORTS]) -> usize {
    let mut n = 0;
    for port in ports {
        if n == POLL_PORTS {
            break;
        }
        if !out[..n].contains(&port) {
            out[n] = port;
            n += 1;
        }
    }
    n
}

/// The ports [`block`] waits on: the store's first (`xl shutdown` must always get
/// through), every device's, every one a future waits for.
fn waited_ports(out: &mut [u32; POLL_PORTS]) -> usize {
    let store = super::store_ring().map(|(_, port)| port);
    let waited = WAKERS.with(|t| {
        let mut bits = [0u64; WORDS];
        for (port, w) in t.iter().enumerate() {
            if w.is_some() {
                bits[port / 64] |= 1 << (port % 64);
            }
        }
        bits
    });
    let waited = (0..MAX_PORTS).filter(move |&p| waited[p as usize / 64] & (1 << (p % 64)) != 0);
    collect_ports(store.into_iter().chain(device_ports()).chain(waited), out)
}

/// The idle step on Xen: blocks the vCPU until one of the ports the kernel waits on
/// is pending, or until `deadline` (nanoseconds since entry; `None`: no timeout).
/// Returns at once when one is pending already.
pub(crate) fn block(deadline: Option<u64>) {
    let mut ports = [0u32; POLL_PORTS];
    let n = waited_ports(&mut ports);
    // Xen system time; 0 would mean "no timeout", so a deadline maps to at least 1.
    let timeout = deadline.map_or(0, |d| {
        let tsc = crate::time::tsc_at(d);
        pvclock::system_time_at(&hypercall::shared_info_time(), tsc).max(1)
    });
    hypercall::sched_poll(&ports[..n], timeout);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ports_to_poll_come_once_store_first_and_at_most_128() {
        let mut out = [0u32; POLL_PORTS];
        let n = collect_ports([1, 4, 1, 7, 4], &mut out);
        assert_eq!(&out[..n], &[1, 4, 7]);
        // More than Xen takes: the first 128 (the store's port leads the list).
        let n = collect_ports([1].into_iter().chain(2..500), &mut out);
        assert_eq!(n, POLL_PORTS);
        assert_eq!(out[0], 1);
        assert_eq!(out[POLL_PORTS - 1], 128);
    }

    #[test]
    fn takes_only_unmasked_pending_bits() {
        let w = AtomicU64::new(0b1011);
        assert_eq!(take_word(&w, 0b0010), 0b1001);
        assert_eq!(w.load(Ordering::Relaxed), 0b0010);
        assert_eq!(take_word(&w, 0b0010), 0);
    }
}
