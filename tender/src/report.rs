//! The text of the tender's reports: where the guest was, what it hit, why it stopped.

use crate::cpu;
use crate::image::Symbols;
use crate::layout::{Kind, Layout};
use kvm_bindings::kvm_regs;
use std::fmt::Write;

/// One CPU exception, as the fault gate found it.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    /// The vector.
    pub vector: u8,
    /// The error code, for vectors that push one.
    pub error_code: Option<u64>,
    /// The faulting instruction (or, for traps, the next one).
    pub rip: u64,
    /// CS at the fault (RPL 3: the kernel; 0: the tender's gates).
    pub cs: u64,
    /// RFLAGS at the fault.
    pub rflags: u64,
    /// RSP at the fault.
    pub rsp: u64,
    /// CR2 (the page-fault address).
    pub cr2: u64,
    /// The general registers (RAX..R15 as at the fault).
    pub regs: kvm_regs,
    /// Up to 16 bytes of code at `rip`, if readable.
    pub code: Vec<u8>,
}

/// `0x20134a (test_guest::faults::null + 0x1a, in the kernel's .text)`.
pub fn place(addr: u64, layout: &Layout, symbols: &Symbols) -> String {
    let mut s = format!("{addr:#x} (");
    if let Some(sym) = symbols.describe(addr) {
        let _ = write!(s, "{sym}, ");
    }
    match layout.region(addr) {
        Some(r) => s.push_str(&format!("in {}", r.name)),
        None => s.push_str("outside the guest's memory"),
    }
    s.push(')');
    s
}

/// The general registers, two lines.
pub fn registers(r: &kvm_regs) -> String {
    format!(
        "  rax {:#x} rbx {:#x} rcx {:#x} rdx {:#x} rsi {:#x} rdi {:#x} rbp {:#x}\n  \
         r8 {:#x} r9 {:#x} r10 {:#x} r11 {:#x} r12 {:#x} r13 {:#x} r14 {:#x} r15 {:#x}",
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx,
        r.rsi,
        r.rdi,
        r.rbp,
        r.r8,
        r.r9,
        r.r10,
        r.r11,
        r.r12,
        r.r13,
        r.r14,
        r.r15
    )
}

/// Whether `cr2` can be the address of a page fault with `error_code` at `rip` (nested
/// hypervisors do not always pass it on): page 0 is never mapped, so no protection
/// violation happens there; an instruction fetch faults within the 15 bytes at `rip`.
fn cr2_fits(error_code: u64, rip: u64, cr2: u64) -> bool {
    let protection = error_code & 1 != 0;
    let fetch = error_code & (1 << 4) != 0;
    !(protection && cr2 < 4096 || fetch && cr2.wrapping_sub(rip) >= 15)
}

/// What a page fault was, in words.
fn page_fault_cause(f: &Fault, layout: &Layout) -> String {
    let code = f.error_code.unwrap_or(0);
    let access = if code & (1 << 4) != 0 {
        "instruction fetch at"
    } else if code & (1 << 1) != 0 {
        "write to"
    } else {
        "read of"
    };
    if !cr2_fits(code, f.rip, f.cr2) {
        return format!(
            "{access} an unknown address (cr2 = {:#x} cannot be this fault's address: the \
             hypervisor did not pass it on)",
            f.cr2
        );
    }
    let region = layout.region(f.cr2);
    let why = match region {
        None => "outside the guest's memory".to_string(),
        Some(r) if r.kind == Kind::Null => "a null pointer dereference".to_string(),
        Some(r) if r.kind == Kind::Guard && r.name.contains("stack") => {
            format!("stack overflow: it hit {}", r.name)
        }
        Some(r) if code & (1 << 3) != 0 => format!(
            "a reserved bit is set in the page tables for {} (a tender bug)",
            r.name
        ),
        Some(r) if !r.user.read => format!("{}, which the kernel cannot access", r.name),
        Some(r) if code & (1 << 4) != 0 && !r.user.execute => format!(
            "{} is not executable ({} for the kernel): W^X",
            r.name, r.user
        ),
        Some(r) if code & (1 << 1) != 0 && !r.user.write => {
            format!("{} is read-only ({} for the kernel): W^X", r.name, r.user)
        }
        Some(r) => format!("{} ({} for the kernel)", r.name, r.user),
    };
    format!("{access} {:#x}: {why}", f.cr2)
}

/// What a general protection fault most likely was, from the error code and the
/// instruction at RIP.
fn gp_cause(f: &Fault) -> String {
    let code = f.error_code.unwrap_or(0);
    if code & 2 != 0 {
        let vector = code >> 3;
        return if vector == 3 {
            "int3 (a breakpoint): software interrupts never reach the kernel under the tender"
                .into()
        } else {
            format!("int {vector:#x}: software interrupts never reach the kernel under the tender")
        };
    }
    let c = &f.code;
    let what = match (c.first(), c.get(1)) {
        (Some(0xf4), _) => "hlt, privileged at CPL 3 (wait with the tender's wait call)",
        (Some(0x0f), Some(0x01)) => {
            "a system-table or cache instruction (lgdt, lidt, ...), privileged at CPL 3"
        }
        (Some(0x0f), Some(0x20 | 0x22)) => {
            "a move to or from a control register, privileged at CPL 3"
        }
        (Some(0x0f), Some(0x30 | 0x32)) => "wrmsr/rdmsr, privileged at CPL 3",
        (Some(0x0f), Some(0x08 | 0x09)) => "invd/wbinvd, privileged at CPL 3",
        (Some(0xcd), _) => "int n: software interrupts never reach the kernel under the tender",
        (Some(0xe4..=0xe7 | 0xec..=0xef), _) | (Some(0x66), Some(0xe4..=0xe7 | 0xec..=0xef)) => {
            "in/out on a port that is no tender call (the I/O bitmap opens only the call ports)"
        }
        _ => "a privileged instruction, a non-canonical address or a bad segment",
    };
    what.into()
}

/// The report of a CPU exception.
pub fn fault(f: &Fault, layout: &Layout, symbols: &Symbols) -> String {
    let mut s = format!(
        "CPU exception {} (vector {}) at rip {}",
        cpu::exception_name(f.vector),
        f.vector,
        place(f.rip, layout, symbols)
    );
    match f.vector {
        14 => {
            let _ = write!(s, "\n  {}", page_fault_cause(f, layout));
        }
        13 => {
            let _ = write!(s, "\n  {}", gp_cause(f));
        }
        6 if f.code.starts_with(&[0x0f, 0x0b]) => s.push_str("\n  ud2: a deliberate trap"),
        0 => s.push_str("\n  division by zero"),
        3 => s.push_str("\n  int3: a breakpoint, and no debugger is attached"),
        _ => {}
    }
    if f.cs & 3 == 0 {
        s.push_str("\n  the fault happened at CPL 0, in the tender's own fault path");
    }
    let _ = write!(
        s,
        "\n  error code {}  rsp {}  rflags {:#x}  cr2 {:#x}\n{}",
        f.error_code
            .map_or_else(|| "none".into(), |c| format!("{c:#x}")),
        place(f.rsp, layout, symbols),
        f.rflags,
        f.cr2,
        registers(&f.regs)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::image;

    fn layout() -> Layout {
        Layout::new(&image(), 8).unwrap()
    }

    fn pf(cr2: u64, code: u64) -> Fault {
        Fault {
            vector: 14,
            error_code: Some(code),
            rip: 0x20_0100,
            cs: 0x23,
            cr2,
            ..Default::default()
        }
    }

    #[test]
    fn page_faults_name_their_cause() {
        let l = layout();
        let s = Symbols::default();
        let r = fault(&pf(0, 0x4), &l, &s);
        assert!(r.contains("#PF page fault (vector 14)"), "{r}");
        assert!(r.contains("read of 0x0: a null pointer dereference"), "{r}");
        let r = fault(&pf(l.stack_bottom - 8, 0x6), &l, &s);
        assert!(
            r.contains("stack overflow: it hit the stack's guard page"),
            "{r}"
        );
        let r = fault(&pf(0x20_0010, 0x7), &l, &s);
        assert!(r.contains("write to 0x200010: the kernel's .text is read-only (read+execute for the kernel): W^X"), "{r}");
        let mut f = pf(l.stack_top + 64, 0x15);
        f.rip = l.stack_top + 64;
        let r = fault(&f, &l, &s);
        assert!(r.contains("instruction fetch at"), "{r}");
        assert!(r.contains("RAM is not executable"), "{r}");
        let r = fault(&pf(crate::layout::IDT, 0x5), &l, &s);
        assert!(
            r.contains("the tender's IDT, which the kernel cannot access"),
            "{r}"
        );
        // A protection violation on page 0 cannot be: cr2 was not passed on.
        let r = fault(&pf(0, 0x7), &l, &s);
        assert!(r.contains("unknown address"), "{r}");
    }

    #[test]
    fn protection_faults_name_the_instruction() {
        let l = layout();
        let s = Symbols::default();
        let mut f = Fault {
            vector: 13,
            error_code: Some(0),
            code: vec![0xf4],
            cs: 0x23,
            ..Default::default()
        };
        assert!(fault(&f, &l, &s).contains("hlt, privileged at CPL 3"));
        f.code = vec![0xe6, 0xee];
        assert!(fault(&f, &l, &s).contains("no tender call"));
        f.error_code = Some(3 << 3 | 2);
        assert!(fault(&f, &l, &s).contains("int3"));
        f.error_code = Some(0x80 << 3 | 2);
        assert!(fault(&f, &l, &s).contains("int 0x80"));
    }
}
