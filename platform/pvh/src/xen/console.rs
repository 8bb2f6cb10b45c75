//! The PV console: the `out` ring of `xencons_interface` in the page that
//! `HVM_PARAM_CONSOLE_PFN` names, drained by xenconsoled in dom0.
//!
//! Layout: `in[1024]` at 0, `out[2048]` at 1024, then `in_cons`, `in_prod`, `out_cons`,
//! `out_prod` (u32 each) at 3072..3088. Indices run freely and are masked by the ring
//! size. The guest copies bytes, raises `out_prod` after a write barrier and signals
//! the console event channel when a write ends a line (or on a full ring, or flush).
//!
//! A full ring (and `flush`, before the domain shuts down) is waited on, yielding to
//! Xen, for at most [`FULL_WAIT_NANOS`] on the calibrated clock ([`FULL_LIMIT`] yields
//! before calibration): a yield returns at once when nothing else wants the vCPU, so a
//! count of yields is no measure of the time xenconsoled in a busy dom0 was given. If
//! dom0 has not drained the ring by then, the rest of that write is dropped and the
//! console is *dropping*: later writes to a full ring (and flushes) return at once
//! instead of waiting again, so a dead dom0 cannot hang the kernel nor slow every
//! print; the first write that finds room again says that output was lost
//! ([`DROPPED`]) and waits as before.

use super::XenError;
use super::hypercall;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, fence};

const OUT: usize = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: usize = 3080;
const OUT_PROD: usize = 3084;
/// How long a full ring, or a flush, is waited on before output is dropped.
const FULL_WAIT_NANOS: u64 = 5_000_000_000;
/// Yields to Xen before giving up while the clock is not calibrated yet.
const FULL_LIMIT: u32 = 10_000;
/// Written once the ring has room again after output was dropped.
const DROPPED: &[u8] = b"\n[console: output lost here: dom0 did not drain the PV console ring]\n";

static RING: AtomicU64 = AtomicU64::new(0);
static EVTCHN: AtomicU32 = AtomicU32::new(0);
/// Output was dropped after a full wait, and the ring has not had room since.
static DROPPING: AtomicBool = AtomicBool::new(false);

/// The bound on one wait for dom0 to drain the ring.
#[derive(Clone, Copy, Debug)]
struct Patience {
    /// The calibrated clock when the wait began (`None`: not calibrated then).
    since: Option<u64>,
    yields: u32,
}

impl Patience {
    /// A wait beginning at `now` (the calibrated clock, `None` before calibration).
    fn new(now: Option<u64>) -> Patience {
        Patience {
            since: now,
            yields: 0,
        }
    }

    /// Counts one more yield, at `now`; whether to go on waiting. The time bound
    /// applies from the first look at a calibrated clock on, the count only before.
    fn again(&mut self, now: Option<u64>) -> bool {
        self.yields = self.yields.saturating_add(1);
        match (self.since, now) {
            (_, None) => self.yields <= FULL_LIMIT,
            (None, Some(now)) => {
                self.since = Some(now);
                true
            }
            (Some(since), Some(now)) => now.saturating_sub(since) < FULL_WAIT_NANOS,
        }
    }
}

/// The calibrated clock, or `None` before calibration.
fn clock() -> Option<u64> {
    (crate::time::tsc_hz() != 0).then(crate::time::nanos_since_entry)
}

/// Yields to Xen after signalling dom0; whether to go on waiting.
fn yield_to_dom0(evtchn: u32, patience: &mut Patience) -> bool {
    hypercall::evtchn_send(evtchn);
    hypercall::sched_yield();
    patience.again(clock())
}

/// The ring's (consumer, producer) indices.
fn indices(ring: u64) -> (u32, u32) {
    // SAFETY: `ring` is the mapped console page; the indices are u32 at fixed offsets,
    // read volatile because dom0 advances `out_cons`.
    let both = unsafe {
        (
            index(ring, OUT_CONS).read_volatile(),
            index(ring, OUT_PROD).read_volatile(),
        )
    };
    fence(Ordering::Acquire);
    both
}

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
    if DROPPING.load(Ordering::Relaxed) {
        let (cons, prod) = indices(ring);
        if OUT_SIZE - prod.wrapping_sub(cons).min(OUT_SIZE) < DROPPED.len() as u32 {
            hypercall::evtchn_send(evtchn);
            return;
        }
        DROPPING.store(false, Ordering::Relaxed);
        put(ring, evtchn, DROPPED);
    }
    put(ring, evtchn, bytes);
    // A hypercall costs a VM exit: signal dom0 once per line, not per fragment (the
    // formatter writes a line in many pieces). `flush` signals whatever is left.
    if bytes.contains(&b'\n') {
        hypercall::evtchn_send(evtchn);
    }
}

/// Copies `bytes` into the ring, waiting (bounded) while it is full; what is left at
/// the end of the wait is dropped, and the console starts dropping.
fn put(ring: u64, evtchn: u32, bytes: &[u8]) {
    let mut rest = bytes;
    let mut patience: Option<Patience> = None;
    while !rest.is_empty() {
        let (cons, prod) = indices(ring);
        let used = prod.wrapping_sub(cons);
        if used >= OUT_SIZE {
            let p = patience.get_or_insert_with(|| Patience::new(clock()));
            if !yield_to_dom0(evtchn, p) {
                DROPPING.store(true, Ordering::Relaxed);
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
        // SAFETY: as in `indices`; publishing the new producer index.
        unsafe { index(ring, OUT_PROD).write_volatile(prod.wrapping_add(n as u32)) };
        rest = &rest[n..];
    }
}

/// Waits (bounded, see the module docs) until dom0 has consumed everything written.
pub(crate) fn flush() {
    let ring = RING.load(Ordering::Relaxed);
    if ring == 0 {
        return;
    }
    let evtchn = EVTCHN.load(Ordering::Relaxed);
    if DROPPING.load(Ordering::Relaxed) {
        hypercall::evtchn_send(evtchn);
        return;
    }
    let mut patience = Patience::new(clock());
    loop {
        let (cons, prod) = indices(ring);
        if cons == prod {
            return;
        }
        // Nothing is lost yet when this gives up (the bytes stay in the ring for
        // dom0), so the console does not start dropping.
        if !yield_to_dom0(evtchn, &mut patience) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    /// Yields until `patience` gives up, the clock reading `clock(yield number)`;
    /// how many it took (or `None` after a million).
    fn yields_until_given_up(
        mut patience: Patience,
        clock: impl Fn(u32) -> Option<u64>,
    ) -> Option<u32> {
        (1..=1_000_000).find(|&i| !patience.again(clock(i)))
    }

    #[test]
    fn before_calibration_the_wait_is_a_count_of_yields() {
        let p = Patience::new(None);
        assert_eq!(yields_until_given_up(p, |_| None), Some(FULL_LIMIT + 1));
    }

    #[test]
    fn once_calibrated_the_wait_is_time_however_fast_the_yields_return() {
        // Yields that return at once (10 us each): far more than the count
        // before calibration, and exactly the time allowed.
        let p = Patience::new(Some(7 * SECOND));
        let fast = |i: u32| Some(7 * SECOND + u64::from(i) * 10_000);
        let n = yields_until_given_up(p, fast).expect("gives up");
        assert!(n > FULL_LIMIT);
        assert_eq!(u64::from(n) * 10_000, FULL_WAIT_NANOS);
        // Slow yields (dom0 ran each time for a second): the same time, few yields.
        let slow = |i: u32| Some(7 * SECOND + u64::from(i) * SECOND);
        assert_eq!(
            yields_until_given_up(p, slow),
            Some((FULL_WAIT_NANOS / SECOND) as u32)
        );
    }

    #[test]
    fn a_wait_that_sees_the_clock_calibrated_is_timed_from_then() {
        // Begun before calibration, when the clock already reads 3 s since entry: not
        // given up at once, but FULL_WAIT_NANOS after the first calibrated reading.
        let p = Patience::new(None);
        let clock = |i: u32| (i > 5).then(|| 3 * SECOND + u64::from(i - 6) * 1_000_000);
        let n = yields_until_given_up(p, clock).expect("gives up");
        assert_eq!(u64::from(n - 6) * 1_000_000, FULL_WAIT_NANOS);
    }

    #[test]
    fn a_clock_that_goes_backwards_does_not_wait_forever_on_the_count() {
        // A reading before `since` counts as no time passed; the wait still ends once
        // the clock moves on.
        let p = Patience::new(Some(10 * SECOND));
        let clock = |i: u32| {
            Some(if i < 100 {
                SECOND
            } else {
                10 * SECOND + u64::from(i) * SECOND
            })
        };
        assert!(yields_until_given_up(p, clock).is_some());
    }

    #[test]
    fn the_lost_output_note_fits_the_ring() {
        assert!(DROPPED.len() < OUT_SIZE as usize / 4);
        assert!(DROPPED.ends_with(b"\n"));
    }
}
