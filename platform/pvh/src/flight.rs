//! The flight recorder: the kernel's last 64 steps at its boundary with the machine —
//! halts and wake-ups, blocks in and yields to Xen, interrupts taken (with the
//! instruction they interrupted), exceptions, shutdown — in a ring in memory that
//! outlives the kernel.
//!
//! Why: a guest that triple-faults cannot report anything itself (the fault happened
//! while the CPU could not even deliver the double fault), and the vCPU's registers at
//! that moment say where it died but not how it got there. The ring does: the Xen
//! harness reads it from the dead domain with `xenctx -m` at the address of
//! [`RECORDER`] (found in the image's symbols by its mangled name, `6flight8RECORDER`),
//! and docs/xen-under-qemu.md says how to read a dump. The debug key (`xl sysrq <domain>
//! d`) prints the ring of a live guest too.
//!
//! Layout (what a dump shows, 8-byte little-endian words): word 0 counts the steps
//! recorded since boot; step `n` is at words `1 + 2 * (n % 64)` and the one after it:
//! first `kind << 56 | arg`, then microseconds since entry (the kernel's clock; 0 before
//! it is calibrated). Kinds and their `arg`:
//!
//! | kind | step | arg |
//! |---|---|---|
//! | 1 | about to halt (`sti; hlt`) | the deadline the timer was armed for, in ms (0: none) |
//! | 2 | woke from the halt (`cli` done) | 0 |
//! | 3 | about to yield to Xen with interrupts on (`sti; SCHEDOP_yield`) | 0 |
//! | 4 | back from the yield (`cli` done) | 0 |
//! | 5 | an interrupt | `rip << 8 \| vector`: the instruction it interrupted |
//! | 6 | an exception | `rip << 8 \| vector` |
//! | 7 | shutting down (`SCHEDOP_shutdown`) | Xen's reason (0 poweroff, 1 reboot, 3 crash) |
//! | 8 | the toolstack's request read (`control/shutdown`) | 1 poweroff, 2 reboot, 3 other |
//! | 9 | about to block in Xen until an event (`SCHEDOP_poll`) | its timeout, Xen system time in ms (0: none) |
//! | 10 | back from the block | Xen's result: 0, or a negative errno (low 56 bits) |
//!
//! Cost: two relaxed stores and a counter per step, a few nanoseconds; the hot path
//! (a halt and a wake-up per idle step) gains nothing else. One CPU: interrupts are off
//! wherever Rust code records, and the interrupt handler's record cannot be torn by
//! another (handlers do not nest), so plain loads and stores suffice.

use core::sync::atomic::{AtomicU64, Ordering};

/// Steps kept.
pub const STEPS: usize = 64;

/// What a step was (the `kind` byte of its first word).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Step {
    /// About to halt with interrupts enabled.
    Halt = 1,
    /// Woke from the halt, interrupts disabled again.
    Woke = 2,
    /// About to yield to Xen with interrupts enabled.
    Yield = 3,
    /// Back from the yield, interrupts disabled again.
    Yielded = 4,
    /// An interrupt was taken.
    Interrupt = 5,
    /// An exception was taken.
    Exception = 6,
    /// Asking Xen to shut the domain down.
    Shutdown = 7,
    /// The toolstack's shutdown request was read.
    Request = 8,
    /// About to block in Xen until an event or a timeout.
    Poll = 9,
    /// Back from the block.
    Polled = 10,
}

/// The ring: word 0 the count, then [`STEPS`] pairs of words.
pub struct Recorder {
    words: [AtomicU64; 1 + 2 * STEPS],
}

/// The kernel's one recorder (its address is what the harness dumps).
pub static RECORDER: Recorder = Recorder::new();

impl Recorder {
    const fn new() -> Recorder {
        Recorder {
            words: [const { AtomicU64::new(0) }; 1 + 2 * STEPS],
        }
    }

    /// Records one step; `arg` keeps its low 56 bits.
    pub fn record(&self, step: Step, arg: u64, micros: u64) {
        let n = self.words[0].load(Ordering::Relaxed);
        let at = 1 + 2 * (n as usize % STEPS);
        self.words[at].store(
            (u64::from(step as u8) << 56) | (arg & ((1 << 56) - 1)),
            Ordering::Relaxed,
        );
        self.words[at + 1].store(micros, Ordering::Relaxed);
        self.words[0].store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// The steps recorded, oldest first: (kind, arg, microseconds). Steps whose kind is
    /// unknown are returned with kind 0.
    pub fn steps(&self) -> impl Iterator<Item = (u8, u64, u64)> + '_ {
        let n = self.words[0].load(Ordering::Relaxed);
        let kept = n.min(STEPS as u64);
        (n - kept..n).map(move |i| {
            let at = 1 + 2 * (i as usize % STEPS);
            let w = self.words[at].load(Ordering::Relaxed);
            (
                (w >> 56) as u8,
                w & ((1 << 56) - 1),
                self.words[at + 1].load(Ordering::Relaxed),
            )
        })
    }

    /// Steps recorded since boot.
    pub fn count(&self) -> u64 {
        self.words[0].load(Ordering::Relaxed)
    }
}

/// Records a step in the kernel's recorder, stamped with the kernel's clock.
#[inline]
pub(crate) fn record(step: Step, arg: u64) {
    RECORDER.record(step, arg, crate::time::nanos_since_entry() / 1000);
}

/// The name of a step's kind, for the debug key's listing.
pub fn step_name(kind: u8) -> &'static str {
    match kind {
        1 => "halt",
        2 => "woke",
        3 => "yield",
        4 => "yielded",
        5 => "interrupt",
        6 => "exception",
        7 => "shutdown",
        8 => "request",
        9 => "poll",
        10 => "polled",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn keeps_the_last_steps_in_order() {
        let r = Recorder::new();
        assert_eq!(r.steps().count(), 0);
        for i in 0..(STEPS as u64 + 5) {
            r.record(Step::Interrupt, (0x10_0000 + i) << 8 | 0x30, i);
        }
        let steps: Vec<_> = r.steps().collect();
        assert_eq!(r.count(), STEPS as u64 + 5);
        assert_eq!(steps.len(), STEPS);
        assert_eq!(steps[0], (5, (0x10_0005 << 8) | 0x30, 5));
        assert_eq!(steps[STEPS - 1].2, STEPS as u64 + 4);
    }

    #[test]
    fn the_layout_is_what_the_dump_reader_expects() {
        let r = Recorder::new();
        r.record(Step::Halt, 1234, 99);
        r.record(Step::Shutdown, 0, 100);
        // Word 0 is the count; step n at words 1 + 2n, 2 + 2n.
        assert_eq!(r.words[0].load(Ordering::Relaxed), 2);
        assert_eq!(r.words[1].load(Ordering::Relaxed), (1 << 56) | 1234);
        assert_eq!(r.words[2].load(Ordering::Relaxed), 99);
        assert_eq!(r.words[3].load(Ordering::Relaxed), 7 << 56);
        assert_eq!(r.words[4].load(Ordering::Relaxed), 100);
        assert_eq!(step_name(7), "shutdown");
    }
}
