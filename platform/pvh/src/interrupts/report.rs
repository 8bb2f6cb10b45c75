//! Exception reports: what the exception stubs' common path prints before the kernel
//! stops with a failure status (see the decisions in the parent module).

use crate::console::SerialWriter;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

/// Registers saved by the exception stub, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub(super) struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

const EXCEPTION_NAMES: [&str; 32] = [
    "#DE divide error",
    "#DB debug",
    "NMI non-maskable interrupt",
    "#BP breakpoint",
    "#OF overflow",
    "#BR bound range exceeded",
    "#UD invalid opcode",
    "#NM device not available",
    "#DF double fault",
    "coprocessor segment overrun",
    "#TS invalid TSS",
    "#NP segment not present",
    "#SS stack-segment fault",
    "#GP general protection fault",
    "#PF page fault",
    "reserved vector 15",
    "#MF x87 floating-point error",
    "#AC alignment check",
    "#MC machine check",
    "#XM SIMD floating-point exception",
    "#VE virtualization exception",
    "#CP control protection",
    "reserved vector 22",
    "reserved vector 23",
    "reserved vector 24",
    "reserved vector 25",
    "reserved vector 26",
    "reserved vector 27",
    "#HV hypervisor injection",
    "#VC VMM communication",
    "#SX security exception",
    "reserved vector 31",
];

/// The name of exception `vector` (e.g. `"#PF page fault"`).
pub fn exception_name(vector: u8) -> &'static str {
    EXCEPTION_NAMES
        .get(usize::from(vector))
        .copied()
        .unwrap_or("not an exception")
}

/// Describes a page-fault error code.
fn describe_pf(code: u64, out: &mut impl Write) -> fmt::Result {
    let access = if code & (1 << 4) != 0 {
        "instruction fetch"
    } else if code & (1 << 1) != 0 {
        "write"
    } else {
        "read"
    };
    let cause = if code & 1 != 0 {
        "protection violation"
    } else {
        "page not present"
    };
    write!(out, " ({access}, {cause})")
}

static REPORTING: AtomicBool = AtomicBool::new(false);

pub(super) extern "C" fn exception_entry(frame: &ExceptionFrame) -> ! {
    let cr2 = crate::cpu::read_cr2();
    crate::flight::record(
        crate::flight::Step::Exception,
        (frame.rip << 8) | (frame.vector & 0xFF),
    );
    if REPORTING.swap(true, Ordering::Relaxed) {
        crate::console::write_bytes(b"\nmorgana: CPU exception while reporting a CPU exception\n");
        crate::exit::exit_failure(crate::exit::Failure::Exception);
    }
    let _ = report(frame, cr2, &mut SerialWriter);
    crate::exit::exit_failure(crate::exit::Failure::Exception)
}

/// Writes the exception report.
fn report(f: &ExceptionFrame, cr2: u64, out: &mut impl Write) -> fmt::Result {
    let vector = f.vector as u8;
    write!(
        out,
        "\nmorgana: CPU exception {} (vector {})\n  error code: {:#x}",
        exception_name(vector),
        vector,
        f.error_code
    )?;
    if vector == 14 {
        describe_pf(f.error_code, out)?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "  rip: {:#018x}  rsp: {:#018x}  rflags: {:#x}  cs: {:#x}  ss: {:#x}",
        f.rip, f.rsp, f.rflags, f.cs, f.ss
    )?;
    writeln!(
        out,
        "  cr2: {cr2:#018x} (fault address for #PF; may be stale under nested virtualization, e.g. Xen on KVM)"
    )?;
    writeln!(
        out,
        "  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}",
        f.rax, f.rbx, f.rcx, f.rdx, f.rsi, f.rdi, f.rbp
    )?;
    writeln!(
        out,
        "  r8 {:#x} r9 {:#x} r10 {:#x} r11 {:#x} r12 {:#x} r13 {:#x} r14 {:#x} r15 {:#x}",
        f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14, f.r15
    )?;
    let guard = match vector {
        14 => crate::stacks::guard_hit(cr2).or_else(|| crate::stacks::guard_hit(f.rsp)),
        8 | 12 => crate::stacks::guard_hit(f.rsp),
        _ => None,
    };
    if let Some(stack) = guard {
        writeln!(
            out,
            "  stack overflow: the {} stack ran into its guard page",
            stack.name()
        )?;
    } else if vector == 14 && !cr2_fits(f.error_code, f.rip, cr2) {
        writeln!(
            out,
            "  the fault address is unknown: cr2 cannot be the address of this fault (the \
             hypervisor did not pass it on, as Xen under QEMU does not)"
        )?;
    } else if vector == 14 && cr2 < 4096 {
        writeln!(out, "  null pointer dereference")?;
    }
    Ok(())
}

/// Whether `cr2` can be the address of a page fault with `error_code` at `rip`. Nested
/// hypervisors do not always pass the address on (Xen under QEMU TCG reads 0), and a
/// report must not then name a cause the address would imply. Two cases are certain:
/// page 0 is never mapped, so no protection violation happens there; and an
/// instruction fetch faults on the bytes of the instruction at `rip` (at most 15).
fn cr2_fits(error_code: u64, rip: u64, cr2: u64) -> bool {
    let protection = error_code & 1 != 0;
    let fetch = error_code & (1 << 4) != 0;
    !(protection && cr2 < 4096 || fetch && cr2.wrapping_sub(rip) >= 15)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stacks::Stack;
    use std::string::String;

    #[test]
    fn exception_names_and_page_fault_codes() {
        assert_eq!(exception_name(14), "#PF page fault");
        assert_eq!(exception_name(8), "#DF double fault");
        assert_eq!(exception_name(40), "not an exception");
        let mut s = String::new();
        describe_pf(0b10, &mut s).unwrap();
        assert_eq!(s, " (write, page not present)");
        s.clear();
        describe_pf(0b10001, &mut s).unwrap();
        assert_eq!(s, " (instruction fetch, protection violation)");
    }

    #[test]
    fn report_names_the_guard_page() {
        let guard = Stack::Boot.guard();
        let f = ExceptionFrame {
            r15: 0,
            r14: 0,
            r13: 0,
            r12: 0,
            r11: 0,
            r10: 0,
            r9: 0,
            r8: 0,
            rbp: 0,
            rdi: 0,
            rsi: 0,
            rdx: 0,
            rcx: 0,
            rbx: 0,
            rax: 0,
            vector: 14,
            error_code: 2,
            rip: 0x10_1000,
            cs: 8,
            rflags: 0x2,
            rsp: guard + 0xff8,
            ss: 0x10,
        };
        let mut s = String::new();
        report(&f, guard + 0xff8, &mut s).unwrap();
        assert!(
            s.contains("CPU exception #PF page fault (vector 14)"),
            "{s}"
        );
        assert!(
            s.contains("error code: 0x2 (write, page not present)"),
            "{s}"
        );
        assert!(
            s.contains("stack overflow: the boot stack ran into its guard page"),
            "{s}"
        );
        s.clear();
        report(
            &ExceptionFrame {
                rsp: 0x20_0000,
                ..f
            },
            0,
            &mut s,
        )
        .unwrap();
        assert!(s.contains("null pointer dereference"), "{s}");
        // What Xen under QEMU reports for `morgana.fault=wx` and `nx`: cr2 reads 0, which
        // a protection violation or a fetch from the heap cannot have: no null pointer.
        for (error_code, rip) in [(0x3, 0x10_cdd3), (0x11, 0x1b_9700)] {
            s.clear();
            let frame = ExceptionFrame {
                error_code,
                rip,
                rsp: 0x20_0000,
                ..f
            };
            report(&frame, 0, &mut s).unwrap();
            assert!(!s.contains("null pointer"), "{s}");
            assert!(s.contains("the fault address is unknown"), "{s}");
        }
        // Plausible addresses keep their diagnosis, or none.
        assert!(cr2_fits(0x11, 0x1b_9700, 0x1b_9700));
        assert!(cr2_fits(0x11, 0x1b_9ffe, 0x1b_a000));
        assert!(cr2_fits(0x3, 0x10_cdd3, 0x13_4000));
        assert!(cr2_fits(0x0, 0x10_cd55, 0));
    }
}
