//! Deliberate faults, for tests: the kernel command line switch `morgana.fault=KIND`
//! makes any appliance fault right after boot, before its `main` runs, so tests can
//! check that each kind is reported on the console and ends the run with failure
//! instead of corrupting memory.
//!
//! Kinds: `panic`, `null` (read address 0), `stack-overflow` (unbounded recursion into
//! the guard page), `wx` (write to `.rodata`), `nx` (execute from the heap). The switch
//! is in every kernel image: it costs a few hundred bytes and needs access to the
//! command line, which only whoever boots the kernel has.

use alloc::vec::Vec;

/// A constant in `.rodata`, the target of the `wx` fault.
static READ_ONLY: [u8; 8] = *b"morgana\0";

/// Triggers fault `kind`. Returns `false` for a kind this module does not know (the
/// caller decides what that means); the known kinds never return.
pub fn inject(kind: &str) -> bool {
    log::warn!("morgana.fault={kind}: faulting on purpose");
    match kind {
        "panic" => panic!("morgana.fault=panic requested on the command line"),
        "null" => {
            let v: u64;
            // SAFETY: deliberately reads address 0, which is never mapped: the CPU raises
            // a page fault before anything is read, and the handler ends the run.
            unsafe { core::arch::asm!("mov {}, [0]", out(reg) v, options(nostack, readonly)) };
            core::hint::black_box(v);
        }
        "stack-overflow" => {
            core::hint::black_box(recurse(0));
        }
        "wx" => {
            let target = READ_ONLY.as_ptr();
            // SAFETY: deliberately writes to `.rodata`, mapped read-only: the CPU raises
            // a page fault and the write never happens.
            unsafe { core::arch::asm!("mov byte ptr [{}], 0", in(reg) target, options(nostack)) };
        }
        "nx" => {
            let code: Vec<u8> = Vec::from([0xC3u8]); // ret
            // SAFETY: deliberately calls into the heap, mapped no-execute: the CPU raises
            // a page fault on the instruction fetch, so nothing runs.
            unsafe { core::arch::asm!("call {}", in(reg) code.as_ptr(), clobber_abi("C")) };
        }
        _ => return false,
    }
    // A fault that did not fault is a failure of the protection it tests.
    panic!("morgana.fault={kind} did not fault")
}

/// Recurses until the stack runs into its guard page.
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let frame = [depth; 256];
    let frame = core::hint::black_box(frame);
    if core::hint::black_box(depth) == u64::MAX {
        return frame[0];
    }
    recurse(depth + 1).wrapping_add(frame[depth as usize % 256])
}
