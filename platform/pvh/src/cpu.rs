//! x86-64 primitives: port I/O, model-specific registers, control registers, CPUID and
//! the time-stamp counter.
//!
//! Everything here is a thin, `#[inline]` wrapper over one instruction. Port and MSR
//! accesses are `unsafe` because writing the wrong port or MSR can break the machine;
//! reads of CPUID, the TSC and CR2 have no side effects and are safe.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port must belong to a device this kernel drives, and the write must be one that
/// device expects.
#[inline]
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// As for [`outb`]: some devices change state when read.
#[inline]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the port; `in` touches no memory.
    unsafe {
        asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Writes a 16-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outw(port: u16, value: u16) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Writes a 32-bit word to an I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the port; `out` touches no memory.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    }
}

/// Reads a 32-bit word from an I/O port.
///
/// # Safety
/// As for [`outb`].
#[inline]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller vouches for the port; `in` touches no memory.
    unsafe {
        asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack, preserves_flags))
    }
    value
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU (reading an absent one raises #GP).
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees the MSR exists; `rdmsr` touches no memory.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags))
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must be valid for it.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the MSR and value are valid.
    unsafe {
        asm!(
            "wrmsr",
            in("ecx") msr,
            in("eax") value as u32,
            in("edx") (value >> 32) as u32,
            options(nostack, preserves_flags)
        )
    }
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: `rdtsc` only reads the counter (CR4.TSD is clear: we run in ring 0 anyway).
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// The page-fault linear address register.
#[inline]
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// The page-table root.
#[inline]
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe { asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Loads a new page-table root (and flushes the non-global TLB entries).
///
/// # Safety
/// `root` must be the physical address of a PML4 that maps the code, stack and data in
/// use at the time of the switch.
#[inline]
pub unsafe fn write_cr3(root: u64) {
    // SAFETY: the caller guarantees the new tables map everything in use.
    unsafe { asm!("mov cr3, {}", in(reg) root, options(nostack, preserves_flags)) }
}

/// Reads CR0.
#[inline]
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe { asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags)) }
    v
}

/// Writes CR0.
///
/// # Safety
/// The new value must keep protected mode and paging on and be valid for this CPU.
#[inline]
pub unsafe fn write_cr0(v: u64) {
    // SAFETY: the caller guarantees a valid value.
    unsafe { asm!("mov cr0, {}", in(reg) v, options(nostack, preserves_flags)) }
}

/// Invalidates the TLB entry for the page containing `addr`.
#[inline]
pub fn invlpg(addr: u64) {
    // SAFETY: invalidating a TLB entry is always safe: the next access re-walks the
    // page tables.
    unsafe { asm!("invlpg [{}]", in(reg) addr, options(nostack, preserves_flags)) }
}

/// Stops the CPU for good: interrupts off, then `hlt` forever.
#[inline]
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with interrupts disabled `hlt` only wakes for NMI/SMI, after which we
        // halt again; nothing is touched.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) }
    }
}

/// One CPUID result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cpuid {
    /// EAX.
    pub eax: u32,
    /// EBX.
    pub ebx: u32,
    /// ECX.
    pub ecx: u32,
    /// EDX.
    pub edx: u32,
}

/// Executes CPUID for `leaf` / `subleaf`.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> Cpuid {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: CPUID has no side effects. RBX is reserved by LLVM, so it is saved in a
    // scratch register around the instruction.
    unsafe {
        asm!(
            "mov {tmp:r}, rbx",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags)
        )
    }
    Cpuid { eax, ebx, ecx, edx }
}

/// What this kernel wants to know about the CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// No-execute pages (EFER.NXE may be set).
    pub nx: bool,
    /// The local APIC timer has a TSC-deadline mode.
    pub tsc_deadline: bool,
    /// RDRAND is available.
    pub rdrand: bool,
    /// RDSEED is available.
    pub rdseed: bool,
    /// The TSC runs at a constant rate in every power state.
    pub invariant_tsc: bool,
    /// We run under a hypervisor (CPUID.1:ECX bit 31).
    pub hypervisor: bool,
}

impl Features {
    /// Reads the features from CPUID.
    pub fn detect() -> Features {
        let max = cpuid(0, 0).eax;
        let max_ext = cpuid(0x8000_0000, 0).eax;
        let l1 = cpuid(1, 0);
        let l7 = if max >= 7 {
            cpuid(7, 0)
        } else {
            Cpuid::default()
        };
        let e1 = if max_ext >= 0x8000_0001 {
            cpuid(0x8000_0001, 0)
        } else {
            Cpuid::default()
        };
        let e7 = if max_ext >= 0x8000_0007 {
            cpuid(0x8000_0007, 0)
        } else {
            Cpuid::default()
        };
        Features {
            nx: e1.edx & (1 << 20) != 0,
            tsc_deadline: l1.ecx & (1 << 24) != 0,
            rdrand: l1.ecx & (1 << 30) != 0,
            rdseed: l7.ebx & (1 << 18) != 0,
            invariant_tsc: e7.edx & (1 << 8) != 0,
            hypervisor: l1.ecx & (1 << 31) != 0,
        }
    }
}

/// IA32_EFER.
pub const MSR_EFER: u32 = 0xC000_0080;
/// EFER.NXE: no-execute enable.
pub const EFER_NXE: u64 = 1 << 11;
/// IA32_APIC_BASE.
pub const MSR_APIC_BASE: u32 = 0x1B;
/// IA32_TSC_DEADLINE.
pub const MSR_TSC_DEADLINE: u32 = 0x6E0;
