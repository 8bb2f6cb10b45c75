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
//! On Xen the idle step does not halt: it blocks in Xen with `SCHEDOP_poll` on the
//! event channels the kernel waits on, the earliest deadline as its timeout (see
//! `xen::evtchn`, which also says why Xen never interrupts this kernel); fired event
//! channels are collected here. Interrupts stay disabled but for a one-instruction
//! window per step in which a local APIC interrupt already pending (a self-IPI: a Xen
//! PVH guest has no other) is taken.

use crate::flight::{self, Step};
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
        if crate::xen::evtchn::polled() {
            // SAFETY: as for the halt below: every gate uses an IST stack and the
            // handlers save what they use. Only an interrupt already pending in the
            // local APIC is taken, between `nop` and `cli`.
            unsafe { asm!("sti", "nop", "cli", options(nostack)) };
            if wake_due() {
                return;
            }
            crate::xen::evtchn::block(time::next_deadline());
            wake_due();
            return;
        }
        if wake_due() {
            return;
        }
        let deadline = time::next_deadline();
        apic::arm_timer(deadline);
        flight::record(Step::Halt, deadline.map_or(0, |d| d / 1_000_000));
        // SAFETY: every IDT gate uses an IST stack, so an interrupt taken here does not
        // touch this stack (red zone included); the handlers save and restore every
        // register they use, including the SSE state. The asm may "touch memory" (no
        // `nomem`), so the compiler re-reads the flags the handlers set.
        unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
        flight::record(Step::Woke, 0);
        wake_due();
    }
}
