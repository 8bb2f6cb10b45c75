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
//! Under `morgana-tender` (see `tender`) the idle step is the tender's `wait` call until
//! the earliest deadline or a received frame: no `sti`, no `hlt`, no APIC.
//!
//! On Xen the timer is Xen's single-shot timer (VIRQ_TIMER) and the wake-up is the
//! event channel upcall (see `xen::evtchn`); fired event channels are collected here.

use crate::{apic, interrupts, time};
use core::arch::asm;

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
        if wake_due() {
            return;
        }
        if crate::xen::evtchn::timer_ready() {
            crate::xen::evtchn::arm_timer(time::next_deadline());
        } else {
            apic::arm_timer(time::next_deadline());
        }
        // SAFETY: every IDT gate uses an IST stack, so an interrupt taken here does not
        // touch this stack (red zone included); the handlers save and restore every
        // register they use, including the SSE state. The asm may "touch memory" (no
        // `nomem`), so the compiler re-reads the flags the handlers set.
        unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
        wake_due();
    }
}
