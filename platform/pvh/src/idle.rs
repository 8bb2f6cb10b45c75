//! The event loop's idle step: wake what is due, else halt until an interrupt.
//!
//! `morgana_rt::block_on` calls `Halt::wait` (`morgana_rt::Idle`) whenever no future is ready. It wakes the
//! expired sleeps and the futures whose interrupt fired; if there were none it arms the
//! local APIC timer for the earliest deadline and executes `sti; hlt`. `sti` takes
//! effect after the next instruction, so an interrupt already pending is taken after
//! `hlt` begins and wakes it: no wake-up is lost between the check and the halt. The CPU
//! then sleeps, so an idle kernel costs the host (almost) nothing. Interrupts are
//! disabled again right after `hlt`, before any Rust code runs.
//!
//! A driver may let the idle step watch its device's progress in memory
//! ([`crate::Irq::watch`]: a virtqueue's used index) so that the device need not
//! interrupt a running CPU. Before halting, the idle step then spins on the watched
//! indices for an adaptive window (see [`WINDOW`]: it grows while halts end soon with a
//! frame, shrinks to nothing when the kernel goes idle) and takes a frame that arrives
//! meanwhile without an interrupt, a halt and the hypervisor's wake-ups. Only if none
//! comes does it turn the watched devices' interrupts on (the watch's arm word), fence,
//! look once more, and halt; a frame that arrives after that look finds interrupts on
//! and its interrupt, pending in the local APIC, ends the `sti; hlt` at once. Woken,
//! it turns them off again (the disarm word): under QEMU every frame that arrives
//! while they are on interrupts the vCPU, running or not, until its driver takes one.
//!
//! Under `morgana-tender` (see `tender`) the idle step is the tender's `wait` call until
//! the earliest deadline or a received frame: no `sti`, no `hlt`, no APIC.
//!
//! On Xen the idle step does not halt: it blocks in Xen with `SCHEDOP_poll` on the
//! event channels the kernel waits on, the earliest deadline as its timeout (see
//! `xen::evtchn`, which also says why Xen never interrupts this kernel); fired event
//! channels are collected here. Interrupts stay disabled but for a one-instruction
//! window per step in which a local APIC interrupt already pending (a self-IPI: a Xen
//! PVH guest has no other) is taken.

use crate::flight::{self, Step};
use crate::{apic, interrupts, time};
use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};

/// The longest the idle step looks at the watched devices before it halts, in
/// nanoseconds. Under QEMU TCG a halt while frames keep coming is dear: the vCPU thread
/// needs QEMU's big lock to leave its halt, and QEMU's main thread, busy receiving,
/// takes it back first, so the frames pile up (with one interrupt each) until the
/// client stops sending — about a hundred frames per halt under dnsperf.
pub const SPIN_MAX_NS: u64 = 1_000_000;
/// The window a spin starts from once a halt ended with a frame.
const SPIN_START_NS: u64 = 50_000;
/// A halt longer than this that a frame ended means that traffic had stopped.
const FLOWING_NS: u64 = 10_000_000;

/// The current spin window, in nanoseconds (0: no spin). It doubles (from
/// [`SPIN_START_NS`], up to [`SPIN_MAX_NS`]) when a halt ends with a watched device's
/// frame within [`FLOWING_NS`] — traffic flows, and a longer spin would have spared the
/// halt — and halves (to 0 below `SPIN_START_NS`) when an idle step lasted longer
/// without a frame, or a frame came only after `FLOWING_NS`. So it stays open while
/// traffic flows, and an idle kernel stops spinning within a few wake-ups.
static WINDOW: AtomicU64 = AtomicU64::new(0);

/// The spin window after an idle step that took `took_ns` (spin and halt) with window
/// `w`, ending with a watched device's frame or not (see [`WINDOW`]).
fn next_window(w: u64, took_ns: u64, frame: bool) -> u64 {
    if frame && took_ns < FLOWING_NS {
        if took_ns > w {
            (w * 2).clamp(SPIN_START_NS, SPIN_MAX_NS)
        } else {
            w
        }
    } else if took_ns >= SPIN_MAX_NS || frame {
        let half = w / 2;
        if half < SPIN_START_NS { 0 } else { half }
    } else {
        w
    }
}

/// Adapts [`WINDOW`] after an idle step that began at `began` (ns since entry).
fn adapt(began: u64, frame: bool) {
    let took = time::nanos_since_entry().saturating_sub(began);
    let w = WINDOW.load(Ordering::Relaxed);
    WINDOW.store(next_window(w, took, frame), Ordering::Relaxed);
}

/// The halting idle of the PVH kernel.
#[derive(Debug, Default)]
pub struct Halt {
    _private: (),
}

impl Halt {
    /// The idle step for `morgana_rt::block_on`.
    pub fn new() -> Halt {
        Halt { _private: () }
    }
}

fn wake_due() -> bool {
    interrupts::poll_watches();
    let events = crate::xen::evtchn::poll();
    let timers = time::wake_expired() > 0;
    let irqs = interrupts::dispatch();
    timers || irqs || events
}

impl morgana_rt::Idle for Halt {
    fn wait(&mut self) {
        if crate::tender::on_tender() {
            // No interrupts at CPL 3: the tender's wait call is the halt.
            if time::wake_expired() > 0 {
                return;
            }
            crate::tender::idle(time::next_deadline());
            time::wake_expired();
            return;
        }
        if crate::xen::evtchn::polled() {
            // SAFETY: as for the halt below: every gate uses an IST stack and the
            // handlers save what they use. Only an interrupt already pending in the
            // local APIC is taken, between `nop` and `cli`.
            unsafe { asm!("sti", "nop", "cli", options(nostack)) };
            if wake_due() || interrupts::arm_watches() {
                wake_due();
                return;
            }
            crate::xen::evtchn::block(time::next_deadline());
            interrupts::disarm_watches();
            wake_due();
            return;
        }
        if wake_due() {
            return;
        }
        let deadline = time::next_deadline();
        let calibrated = time::tsc_hz() != 0;
        let began = time::nanos_since_entry();
        let window = WINDOW.load(Ordering::Relaxed);
        if window > 0 && calibrated && interrupts::watching() {
            let end = began.saturating_add(window);
            let until = time::tsc_at(deadline.map_or(end, |d| end.min(d)));
            if interrupts::spin_watches(until) {
                wake_due();
                return;
            }
            if time::wake_expired() > 0 {
                return;
            }
        }
        // The watched devices' interrupts on, then one more look: from here a frame
        // interrupts (and ends the halt below).
        if interrupts::arm_watches() {
            // A frame came during the spin's last instants: a longer one would have
            // taken it.
            if calibrated {
                adapt(began, true);
            }
            wake_due();
            return;
        }
        apic::arm_timer(deadline);
        flight::record(Step::Halt, deadline.map_or(0, |d| d / 1_000_000));
        // SAFETY: every IDT gate uses an IST stack, so an interrupt taken here does not
        // touch this stack (red zone included); the handlers save and restore every
        // register they use, including the SSE state. The asm may "touch memory" (no
        // `nomem`), so the compiler re-reads the flags the handlers set.
        unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
        interrupts::disarm_watches();
        flight::record(Step::Woke, 0);
        if calibrated {
            adapt(began, interrupts::poll_watches());
        }
        wake_due();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_window_opens_while_frames_flow_and_closes_when_idle() {
        // Halts that a frame ends open the window, doubling up to the maximum.
        let mut w = next_window(0, 30_000, true);
        assert_eq!(w, SPIN_START_NS);
        w = next_window(w, 3_000_000, true);
        assert_eq!(w, 2 * SPIN_START_NS);
        // Frames sooner than the window: no change (those were spins that hit).
        assert_eq!(next_window(w, 10_000, true), w);
        // A short wake-up without a frame (a timer) changes nothing either.
        assert_eq!(next_window(w, 30_000, false), w);
        for _ in 0..20 {
            w = next_window(w, 5_000_000, true);
        }
        assert_eq!(w, SPIN_MAX_NS, "never beyond the maximum");
        // Idle: long halts halve it, then close it.
        let mut steps = 0;
        while w > 0 {
            w = next_window(w, 5_000_000_000, false);
            steps += 1;
        }
        assert!(steps <= 6, "closed after {steps} long halts");
        assert_eq!(next_window(0, 5_000_000_000, false), 0);
        // A frame after a long silence is no flow.
        assert_eq!(next_window(SPIN_START_NS, 50_000_000, true), 0);
    }
}
