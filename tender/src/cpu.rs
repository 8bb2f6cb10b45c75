//! The vCPU's state at entry: descriptor tables, fault gates, control registers, CPUID.
//!
//! The kernel runs at CPL 3 with IOPL 3 (so `in`/`out` are allowed and exit to the
//! tender) and never at CPL 0: on this kind of host KVM emulates CPL 0 code instruction
//! by instruction. The only CPL 0 code is the tender's own: one fault gate per exception
//! vector, 8 bytes each, which the CPU enters (on the fault stack, through IST1) when the
//! kernel faults. A gate is `out 0xE0+vector, al; hlt`: the `out` exits to the tender,
//! with the kernel's general registers untouched and the exception frame (error code,
//! RIP, CS, RFLAGS, RSP, SS) on the fault stack, which the tender reads to write its
//! report. The gates' DPL is 0, so `int n` from the kernel raises #GP instead of entering
//! them; vectors 32 and up are beyond the IDT's limit (also #GP).

use crate::layout::{FAULT_STACK, GATES, GDT, IDT, PAGE_TABLES, TSS};
use kvm_bindings::{CpuId, kvm_cpuid_entry2, kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use morgana_tender_abi as abi;

/// Kernel (CPL 0) code selector: the fault gates run with it.
pub const KERNEL_CS: u16 = 0x08;
/// User data selector (RPL 3).
pub const USER_DS: u16 = 0x18 | 3;
/// User code selector (RPL 3).
pub const USER_CS: u16 = 0x20 | 3;
/// TSS selector.
pub const TSS_SEL: u16 = 0x28;
/// GDT entries (the TSS descriptor takes two).
const GDT_ENTRIES: usize = 7;
/// IDT entries: the 32 exception vectors.
pub const IDT_ENTRIES: usize = 32;
/// Bytes per fault gate.
pub const GATE_SIZE: u64 = 8;
/// RFLAGS at entry: IOPL 3, interrupts off, the always-one bit.
pub const ENTRY_RFLAGS: u64 = 0x3002;

/// The TSS fills its page: 104 bytes of TSS, then the I/O bitmap (ports 0 to 0x7cbf).
const TSS_SIZE: usize = 4096;
const TSS_LIMIT: u32 = TSS_SIZE as u32 - 1;
/// Offset of the I/O permission bitmap in the TSS.
const IO_BITMAP: usize = 104;

/// The GDT: null, kernel code, kernel data, user data, user code, TSS (two slots).
pub fn gdt() -> Vec<u8> {
    let tss_low = u64::from(TSS_LIMIT)
        | ((TSS & 0xff_ffff) << 16)
        | (0x8b << 40) // present, 64-bit TSS (busy)
        | (((TSS >> 24) & 0xff) << 56);
    let tss_high = TSS >> 32;
    let entries: [u64; GDT_ENTRIES] = [
        0,
        0x00af_9b00_0000_ffff, // 0x08 kernel code: present, DPL 0, 64-bit, accessed
        0x00cf_9300_0000_ffff, // 0x10 kernel data
        0x00cf_f300_0000_ffff, // 0x18 user data: DPL 3
        0x00af_fb00_0000_ffff, // 0x20 user code: DPL 3, 64-bit
        tss_low,
        tss_high,
    ];
    entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

/// The IDT: interrupt gates (DPL 0, IST1) to the fault gates; with `gates` false, all
/// not present (every exception then becomes a triple fault: `--no-fault-gates`).
pub fn idt(gates: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(IDT_ENTRIES * 16);
    for vector in 0..IDT_ENTRIES as u64 {
        let target = GATES + vector * GATE_SIZE;
        let present = if gates { 0x8e } else { 0x0e }; // interrupt gate, DPL 0
        let low = (target & 0xffff)
            | (u64::from(KERNEL_CS) << 16)
            | (1 << 32) // IST1
            | (present << 40)
            | (((target >> 16) & 0xffff) << 48);
        let high = target >> 32;
        out.extend_from_slice(&low.to_le_bytes());
        out.extend_from_slice(&high.to_le_bytes());
    }
    out
}

/// The TSS: RSP0 and IST1 at the top of the fault stack, and an I/O permission bitmap
/// that lets CPL 3 use the call ports and nothing else. The bitmap is what makes the
/// calls work on hosts whose KVM does not honour IOPL 3 for a CPL 3 guest (this kind of
/// host: the guest reads RFLAGS with IOPL 0 whatever the tender set); where IOPL 3 is
/// honoured the CPU skips the bitmap and the tender refuses ports that are no call.
/// Ports beyond the bitmap (above the TSS limit) are denied.
pub fn tss() -> Vec<u8> {
    let mut t = vec![0u8; TSS_SIZE];
    let top = FAULT_STACK + 4096;
    t[4..12].copy_from_slice(&top.to_le_bytes()); // RSP0
    t[36..44].copy_from_slice(&top.to_le_bytes()); // IST1
    t[102..104].copy_from_slice(&(IO_BITMAP as u16).to_le_bytes()); // I/O map base
    for byte in &mut t[IO_BITMAP..] {
        *byte = 0xff; // denied
    }
    // A 32-bit `out` is allowed only if all four ports it covers are.
    for call in abi::Call::ALL {
        for port in usize::from(call.port())..usize::from(call.port()) + 4 {
            t[IO_BITMAP + port / 8] &= !(1 << (port % 8));
        }
    }
    t
}

/// Whether the TSS's I/O bitmap lets CPL 3 make a 32-bit access to `port`.
pub fn io_allowed(tss: &[u8], port: u16) -> bool {
    (usize::from(port)..usize::from(port) + 4).all(|p| {
        tss.get(IO_BITMAP + p / 8)
            .is_some_and(|byte| byte & (1 << (p % 8)) == 0)
    })
}

/// The fault gates' code: per vector, `out imm8, al` to its gate port, then `hlt`
/// forever (the tender never resumes a faulted guest).
pub fn gate_code() -> Vec<u8> {
    let mut code = Vec::with_capacity(IDT_ENTRIES * GATE_SIZE as usize);
    for vector in 0..IDT_ENTRIES as u16 {
        let port = (abi::FAULT_GATE_PORT_BASE + vector) as u8;
        code.extend_from_slice(&[0xe6, port, 0xf4, 0xeb, 0xfd, 0xf4, 0xf4, 0xf4]);
    }
    code
}

fn flat(selector: u16, code: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_: if code { 0xb } else { 0x3 },
        present: 1,
        dpl: (selector & 3) as u8,
        db: u8::from(!code),
        s: 1,
        l: u8::from(code),
        g: 1,
        avl: 0,
        unusable: 0,
        padding: 0,
    }
}

/// Optional CR4 bits this host's KVM offers for the guest.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extras {
    /// Supervisor-mode execution prevention: the fault gates cannot run kernel pages.
    pub smep: bool,
    /// User-mode instruction prevention: `sgdt`/`sidt` & co. fault at CPL 3.
    pub umip: bool,
}

impl Extras {
    /// What `supported` (KVM's supported CPUID) offers.
    pub fn from_cpuid(supported: &CpuId) -> Extras {
        let leaf7 = supported
            .as_slice()
            .iter()
            .find(|e| e.function == 7 && e.index == 0);
        Extras {
            smep: leaf7.is_some_and(|e| e.ebx & (1 << 7) != 0),
            umip: leaf7.is_some_and(|e| e.ecx & (1 << 2) != 0),
        }
    }
}

/// The special registers at entry: long mode, paging, CPL 3 segments, the tender's GDT,
/// IDT and TSS. `base` is the vCPU's reset state (for the fields left alone).
pub fn sregs(mut s: kvm_sregs, extras: Extras) -> kvm_sregs {
    s.cs = flat(USER_CS, true);
    for seg in [&mut s.ds, &mut s.es, &mut s.fs, &mut s.gs, &mut s.ss] {
        *seg = flat(USER_DS, false);
    }
    s.tr = kvm_segment {
        base: TSS,
        limit: TSS_LIMIT,
        selector: TSS_SEL,
        type_: 0xb,
        present: 1,
        dpl: 0,
        db: 0,
        s: 0,
        l: 0,
        g: 0,
        avl: 0,
        unusable: 0,
        padding: 0,
    };
    s.gdt.base = GDT;
    s.gdt.limit = (GDT_ENTRIES * 8 - 1) as u16;
    s.idt.base = IDT;
    s.idt.limit = (IDT_ENTRIES * 16 - 1) as u16;
    // PE, MP, ET, NE, WP, PG.
    s.cr0 = 0x8001_0033;
    s.cr3 = PAGE_TABLES;
    // PAE, OSFXSR, OSXMMEXCPT (SSE works), and what the host offers of SMEP/UMIP.
    s.cr4 = 0x20 | 0x200 | 0x400;
    if extras.smep {
        s.cr4 |= 1 << 20;
    }
    if extras.umip {
        s.cr4 |= 1 << 11;
    }
    // LME, LMA, NXE.
    s.efer = 0x100 | 0x400 | 0x800;
    s
}

/// The general registers at entry: RIP at the entry point, RSP as right after a `call`
/// (top of stack minus the return-address slot), RDI the boot information.
pub fn regs(entry: u64, stack_top: u64, boot_info: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: stack_top - 8,
        rdi: boot_info,
        rflags: ENTRY_RFLAGS,
        ..Default::default()
    }
}

/// x87 and SSE state as after `fninit` and with MXCSR's reset value.
pub fn fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// The guest's CPUID: what KVM supports, with the hypervisor bit set and the hypervisor
/// leaves replaced by the tender's signature and ABI version (no KVM paravirtual
/// features: the kernel cannot use them at CPL 3).
pub fn cpuid(supported: &CpuId) -> CpuId {
    let mut entries: Vec<kvm_cpuid_entry2> = supported
        .as_slice()
        .iter()
        .filter(|e| !(0x4000_0000..0x5000_0000).contains(&e.function))
        .copied()
        .collect();
    for e in &mut entries {
        if e.function == 1 {
            e.ecx |= 1 << 31;
        }
    }
    let sig = abi::CPUID_SIGNATURE;
    let word = |i: usize| u32::from_le_bytes([sig[i], sig[i + 1], sig[i + 2], sig[i + 3]]);
    entries.push(kvm_cpuid_entry2 {
        function: abi::CPUID_SIGNATURE_LEAF,
        eax: abi::CPUID_INFO_LEAF,
        ebx: word(0),
        ecx: word(4),
        edx: word(8),
        ..Default::default()
    });
    entries.push(kvm_cpuid_entry2 {
        function: abi::CPUID_INFO_LEAF,
        eax: abi::ABI_VERSION,
        ..Default::default()
    });
    CpuId::from_entries(&entries).expect("fewer entries than KVM supplied plus two")
}

/// The CPU's name for exception `vector`.
pub fn exception_name(vector: u8) -> &'static str {
    const NAMES: [&str; 32] = [
        "#DE divide error",
        "#DB debug",
        "NMI",
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
    NAMES
        .get(usize::from(vector))
        .copied()
        .unwrap_or("not an exception")
}

/// Whether the CPU pushes an error code for `vector`.
pub fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_their_sizes() {
        assert_eq!(gdt().len(), GDT_ENTRIES * 8);
        assert_eq!(idt(true).len(), IDT_ENTRIES * 16);
        assert_eq!(gate_code().len(), IDT_ENTRIES * GATE_SIZE as usize);
        assert!(gate_code().len() <= 4096);
        assert_eq!(tss().len(), 4096);
    }

    #[test]
    fn idt_gate_points_at_its_stub() {
        let table = idt(true);
        let entry = |v: usize| {
            let lo = u64::from_le_bytes(table[v * 16..v * 16 + 8].try_into().unwrap());
            let hi = u64::from_le_bytes(table[v * 16 + 8..v * 16 + 16].try_into().unwrap());
            let target = (lo & 0xffff) | ((lo >> 48) << 16) | (hi << 32);
            let selector = (lo >> 16) & 0xffff;
            let ist = (lo >> 32) & 7;
            let attr = (lo >> 40) & 0xff;
            (target, selector, ist, attr)
        };
        assert_eq!(entry(14), (GATES + 14 * 8, 0x08, 1, 0x8e));
        assert_eq!(entry(0).0, GATES);
        // DPL 0: `int n` from CPL 3 cannot enter a gate.
        assert_eq!((entry(3).3 >> 5) & 3, 0);
        assert_eq!(idt(false)[5] & 0x80, 0, "not present");
    }

    #[test]
    fn the_stub_writes_its_gate_port_without_touching_registers() {
        let code = gate_code();
        let stub = &code[14 * 8..15 * 8];
        assert_eq!(stub[0], 0xe6, "out imm8, al");
        assert_eq!(u16::from(stub[1]), abi::FAULT_GATE_PORT_BASE + 14);
        assert_eq!(stub[2], 0xf4, "hlt");
    }

    #[test]
    fn tss_descriptor_encodes_its_base() {
        let g = gdt();
        let low = u64::from_le_bytes(g[40..48].try_into().unwrap());
        let base = ((low >> 16) & 0xff_ffff) | (((low >> 56) & 0xff) << 24);
        assert_eq!(base, TSS);
        assert_eq!(low & 0xffff, u64::from(TSS_LIMIT));
    }

    #[test]
    fn the_io_bitmap_opens_the_call_ports_only() {
        let t = tss();
        for call in abi::Call::ALL {
            assert!(io_allowed(&t, call.port()), "{call:?}");
        }
        for port in [
            0u16, 0x60, 0xe0, 0xee, 0x3f8, 0x4cff, 0x4cfd, 0x4d09, 0x7cbf, 0x7cc0, 0xfffc,
        ] {
            assert!(!io_allowed(&t, port), "{port:#x}");
        }
    }

    #[test]
    fn error_codes() {
        assert!(has_error_code(14) && has_error_code(13) && has_error_code(8));
        assert!(!has_error_code(0) && !has_error_code(6) && !has_error_code(3));
        assert_eq!(exception_name(14), "#PF page fault");
    }
}
