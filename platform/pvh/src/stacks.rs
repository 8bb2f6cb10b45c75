//! The kernel's stacks, each above an unmapped guard page.
//!
//! One static area in `.noinit` (not cleared at boot, not in the image file) holds, from
//! low to high addresses: guard, boot stack, guard, exception stack, guard, double-fault
//! stack, guard, NMI/machine-check stack, guard, interrupt stack. The page-table builder
//! leaves every guard page unmapped, so running off the bottom of any stack faults at
//! once (stack probes touch every page) and the fault is reported on another stack.
//!
//! Why IST stacks at all: the host target's code (including the prebuilt `core`) uses the
//! 128-byte red zone below RSP, and stable Rust cannot turn that off. An interrupt or
//! exception delivered on the current stack would overwrite it. With every IDT gate on
//! an IST stack the CPU always switches to a known stack first.

use core::cell::UnsafeCell;

const PAGE: usize = 4096;
/// The boot stack: where `entry!` and the appliance's future run.
pub const BOOT_STACK_SIZE: usize = 256 * 1024;
/// Each IST stack.
pub const IST_STACK_SIZE: usize = 16 * 1024;

/// The stacks, in address order (the boot stack first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stack {
    Boot,
    Exception,
    DoubleFault,
    Nmi,
    Interrupt,
}

impl Stack {
    pub(crate) const ALL: [Stack; 5] = [
        Stack::Boot,
        Stack::Exception,
        Stack::DoubleFault,
        Stack::Nmi,
        Stack::Interrupt,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Stack::Boot => "boot",
            Stack::Exception => "exception",
            Stack::DoubleFault => "double-fault",
            Stack::Nmi => "NMI",
            Stack::Interrupt => "interrupt",
        }
    }

    const fn size(self) -> usize {
        match self {
            Stack::Boot => BOOT_STACK_SIZE,
            _ => IST_STACK_SIZE,
        }
    }

    /// Offset of this stack's guard page in the area.
    const fn guard_offset(self) -> usize {
        let mut offset = 0;
        let mut i = 0;
        while i < Stack::ALL.len() {
            if Stack::ALL[i] as usize == self as usize {
                return offset;
            }
            offset += PAGE + Stack::ALL[i].size();
            i += 1;
        }
        offset
    }

    /// Address of the guard page.
    pub(crate) fn guard(self) -> u64 {
        area_base() + self.guard_offset() as u64
    }

    /// Lowest usable address.
    pub(crate) fn bottom(self) -> u64 {
        self.guard() + PAGE as u64
    }

    /// One past the highest address: the initial RSP (16-byte aligned).
    pub(crate) fn top(self) -> u64 {
        self.bottom() + self.size() as u64
    }
}

const AREA_SIZE: usize = Stack::Interrupt.guard_offset() + PAGE + IST_STACK_SIZE;

/// Offset of the boot stack's top in [`STACKS`] (used by the boot code).
#[doc(hidden)]
pub const BOOT_STACK_TOP: usize = Stack::Boot.guard_offset() + PAGE + BOOT_STACK_SIZE;

/// The stack area.
#[doc(hidden)]
#[repr(C, align(4096))]
pub struct StackArea(UnsafeCell<[u8; AREA_SIZE]>);

// SAFETY: the area is never accessed as Rust data: the CPU uses it as stack memory
// (each stack by one context at a time), and Rust only takes its address.
unsafe impl Sync for StackArea {}

#[doc(hidden)]
#[unsafe(link_section = ".bss.morgana_noinit.stacks")]
pub static STACKS: StackArea = StackArea(UnsafeCell::new([0; AREA_SIZE]));

fn area_base() -> u64 {
    STACKS.0.get() as u64
}

/// The guard pages' addresses.
pub(crate) fn guard_pages() -> [u64; 5] {
    Stack::ALL.map(Stack::guard)
}

/// The stack whose guard page contains `addr`.
pub(crate) fn guard_hit(addr: u64) -> Option<Stack> {
    Stack::ALL
        .into_iter()
        .find(|s| (s.guard()..s.guard() + PAGE as u64).contains(&addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_has_a_guard_under_every_stack() {
        assert_eq!(Stack::Boot.guard_offset(), 0);
        assert_eq!(BOOT_STACK_TOP, PAGE + BOOT_STACK_SIZE);
        let mut prev_top = area_base();
        for s in Stack::ALL {
            assert_eq!(s.guard(), prev_top, "{s:?}");
            assert_eq!(s.bottom() - s.guard(), PAGE as u64);
            assert_eq!(s.top() % 16, 0);
            assert_eq!(guard_hit(s.guard() + 8), Some(s));
            assert_eq!(guard_hit(s.bottom()), None);
            prev_top = s.top();
        }
        assert_eq!(prev_top, area_base() + AREA_SIZE as u64);
    }
}
