//! Boot: the PVH entry (32-bit, emitted into the binary by `entry!`), `hvm_start_info`,
//! and the Rust boot sequence up to running the appliance.
//!
//! ## The entry path
//! A PVH loader (QEMU `-kernel`, Xen, Firecracker...) finds the `XEN_ELFNOTE_PHYS32_ENTRY`
//! note (type 18, name "Xen", 4-byte aligned, first thing in the text segment) and jumps
//! to the 32-bit address it holds, in protected mode with paging off, interrupts off and
//! `%ebx` = physical address of `hvm_start_info`. The assembly in [`crate::__boot_asm!`]:
//! 1. reads the TSC first (the origin of the monotonic clock and of the ready time),
//!    saves it and `%ebx` on the boot stack;
//! 2. checks for long mode (else prints a line on COM1 and halts);
//! 3. clears `.bss` (`.noinit` — stacks and page-table pool — is left alone);
//! 4. builds boot page tables identity-mapping the first 4 GiB with 2 MiB pages;
//! 5. sets CR4.PAE|OSFXSR|OSXMMEXCPT, EFER.LME (and EFER.NXE if the CPU has NX), CR0.PG|MP
//!    with EM/TS clear (SSE on: the host target's code uses it), loads a GDT with a 64-bit
//!    code segment and far-jumps to 64-bit code;
//! 6. calls the binary's `extern "C" fn(start_info: u32, entry_tsc: u64) -> !`, which
//!    `entry!` defines to call [`start`].
//!
//! This assembly exists once per binary because `entry!` expands it there; the library
//! defines no entry symbol, note or section of its own.
//!
//! ## The Rust boot sequence ([`start`])
//! serial console → GDT/TSS/IDT (from here every exception is reported) → copy the
//! command line and memory map out of `hvm_start_info` → read ACPI → choose the heap →
//! build and switch to the W^X page tables → claim the heap → local APIC → I/O APICs →
//! RTC → finish the TSC calibration started at entry (and the APIC timer's, without
//! TSC-deadline) → logger →
//! `morgana: ready in N us` → run the appliance's future on `block_on` + [`Halt`] →
//! power off (success) or exit with a failure status.

use crate::acpi::{self, BootIdentityMap, PhysMemory};
use crate::console;
use crate::cpu::{self, EFER_NXE, MSR_EFER};
use crate::exit::{self, Failure};
use crate::heap::{Heap, HeapInitError};
use crate::idle::Halt;
use crate::memmap::{MemoryRegion, RegionKind, select_heap};
use crate::paging::{self, KernelLayout, MapError};
use crate::time::{self, CalibrationError};
use crate::{Platform, apic, interrupts, stacks};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::fmt;
use core::future::Future;
use morgana_signatures::StartError;

/// `hvm_start_info.magic`.
const HVM_START_MAGIC: u32 = 0x336e_c578;
/// Longest command line kept (longer ones are truncated, with a warning).
const CMDLINE_MAX: usize = 2048;
/// Most memory-map entries kept.
const MAP_MAX: usize = 128;
/// Most boot modules whose memory is kept away from the heap.
const MODULES_MAX: usize = 8;

/// The boot page tables (PML4, PDPT, four PDs), written by the 32-bit entry code.
#[doc(hidden)]
#[repr(C, align(4096))]
pub struct BootTables(UnsafeCell<[[u64; 512]; 6]>);

// SAFETY: only the boot assembly writes them, before any Rust code runs; afterwards
// only the CPU reads them until the switch to the kernel's tables.
unsafe impl Sync for BootTables {}

#[doc(hidden)]
#[unsafe(link_section = ".bss.morgana_noinit.boottables")]
pub static BOOT_TABLES: BootTables = BootTables(UnsafeCell::new([[0; 512]; 6]));

/// Emits the PVH note and the 32-bit entry code (see the module docs). Used by
/// `entry!`; `$start64` is the binary's `extern "C" fn(u32, u64) -> !`.
#[doc(hidden)]
#[macro_export]
macro_rules! __boot_asm {
    ($start64:path) => {
        ::core::arch::global_asm!(
            ".pushsection .note.Xen, \"a\", @note",
            ".p2align 2",
            ".long 4",
            ".long 4",
            ".long 18",
            ".asciz \"Xen\"",
            ".long morgana_pvh_start32",
            ".p2align 2",
            ".popsection",
            "",
            ".pushsection .text.morgana_pvh_boot, \"ax\", @progbits",
            ".code32",
            ".p2align 4",
            ".globl morgana_pvh_start32",
            ".type morgana_pvh_start32, @function",
            "morgana_pvh_start32:",
            "cli",
            "cld",
            "movl ${stacks} + {stack_top}, %esp",
            "pushl %ebx",
            "rdtsc",
            "pushl %edx",
            "pushl %eax",
            "movl $0x80000000, %eax",
            "cpuid",
            "cmpl $0x80000001, %eax",
            "jb 9f",
            "movl $0x80000001, %eax",
            "cpuid",
            "testl $(1 << 29), %edx",
            "jz 9f",
            "movl %edx, %esi",
            "movl $__morgana_bss_start, %edi",
            "movl $__morgana_bss_end, %ecx",
            "subl %edi, %ecx",
            "xorl %eax, %eax",
            "rep stosb",
            "movl ${tables}, %ebx",
            "movl %ebx, %edi",
            "movl $2048, %ecx",
            "xorl %eax, %eax",
            "rep stosl",
            "leal 0x1003(%ebx), %eax",
            "movl %eax, (%ebx)",
            "leal 0x2003(%ebx), %eax",
            "movl %eax, 0x1000(%ebx)",
            "leal 0x3003(%ebx), %eax",
            "movl %eax, 0x1008(%ebx)",
            "leal 0x4003(%ebx), %eax",
            "movl %eax, 0x1010(%ebx)",
            "leal 0x5003(%ebx), %eax",
            "movl %eax, 0x1018(%ebx)",
            "leal 0x2000(%ebx), %edi",
            "xorl %ecx, %ecx",
            "1:",
            "movl %ecx, %eax",
            "shll $21, %eax",
            "orl $0x83, %eax",
            "movl %eax, (%edi)",
            "movl %ecx, %eax",
            "shrl $11, %eax",
            "movl %eax, 4(%edi)",
            "addl $8, %edi",
            "incl %ecx",
            "cmpl $2048, %ecx",
            "jb 1b",
            "movl %cr4, %eax",
            "orl $0x620, %eax",
            "movl %eax, %cr4",
            "movl %ebx, %cr3",
            "movl $0xC0000080, %ecx",
            "rdmsr",
            "orl $(1 << 8), %eax",
            "testl $(1 << 20), %esi",
            "jz 2f",
            "orl $(1 << 11), %eax",
            "2:",
            "wrmsr",
            "movl %cr0, %eax",
            "andl $0xFFFFFFF3, %eax",
            "orl $0x80000003, %eax",
            "movl %eax, %cr0",
            "lgdt .Lmorgana_boot_gdtr",
            "ljmp $0x08, $3f",
            ".code64",
            "3:",
            "movl $0x10, %eax",
            "movl %eax, %ds",
            "movl %eax, %es",
            "movl %eax, %ss",
            "xorl %eax, %eax",
            "movl %eax, %fs",
            "movl %eax, %gs",
            "movl %esp, %esp",
            "movq (%rsp), %rsi",
            "movl 8(%rsp), %edi",
            "movq ${stacks} + {stack_top}, %rsp",
            "fninit",
            "xorl %ebp, %ebp",
            "call {start64}",
            "ud2",
            ".code32",
            "9:",
            "movl $.Lmorgana_no_long_mode, %esi",
            "4:",
            "lodsb",
            "testb %al, %al",
            "jz 5f",
            "movw $0x3F8, %dx",
            "outb %al, %dx",
            "jmp 4b",
            "5:",
            "cli",
            "hlt",
            "jmp 5b",
            ".code64",
            ".popsection",
            "",
            ".pushsection .rodata.morgana_pvh_boot, \"a\", @progbits",
            ".p2align 3",
            ".Lmorgana_boot_gdt:",
            ".quad 0",
            ".quad 0x00AF9B000000FFFF",
            ".quad 0x00CF93000000FFFF",
            ".Lmorgana_boot_gdtr:",
            ".word 23",
            ".long .Lmorgana_boot_gdt",
            ".Lmorgana_no_long_mode:",
            ".asciz \"morgana: this CPU has no 64-bit long mode\\r\\n\"",
            ".popsection",
            start64 = sym $start64,
            stacks = sym $crate::__private::STACKS,
            stack_top = const $crate::__private::BOOT_STACK_TOP,
            tables = sym $crate::__private::BOOT_TABLES,
            options(att_syntax)
        );
    };
}

/// Why the kernel could not boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BootError {
    /// `hvm_start_info` could not be read.
    StartInfoUnreadable { addr: u64 },
    /// `hvm_start_info` has the wrong magic: not started through the PVH entry.
    BadMagic { found: u32 },
    /// `hvm_start_info` version 0 carries no memory map.
    NoMemoryMap { version: u32 },
    /// No usable RAM above the kernel for a heap.
    NoHeapRegion,
    /// The page tables could not be built.
    Paging(MapError),
    /// The heap could not be claimed.
    Heap(HeapInitError),
    /// The local APIC could not be mapped.
    LocalApic(MapError),
    /// The clock could not be calibrated.
    Clock(CalibrationError),
    /// Xen's interfaces could not be set up.
    Xen(crate::xen::XenError),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::StartInfoUnreadable { addr } => {
                write!(f, "hvm_start_info at {addr:#x} is not readable")
            }
            BootError::BadMagic { found } => write!(
                f,
                "hvm_start_info magic is {found:#x}, not {HVM_START_MAGIC:#x}: not booted through the PVH entry"
            ),
            BootError::NoMemoryMap { version } => {
                write!(
                    f,
                    "hvm_start_info version {version} has no memory map (version 1 needed)"
                )
            }
            BootError::NoHeapRegion => {
                f.write_str("no usable RAM above the kernel image for the heap")
            }
            BootError::Paging(e) => write!(f, "building the page tables: {e}"),
            BootError::Heap(e) => write!(f, "claiming the heap: {e}"),
            BootError::LocalApic(e) => write!(f, "mapping the local APIC: {e}"),
            BootError::Clock(e) => write!(f, "{e}"),
            BootError::Xen(e) => write!(f, "{e}"),
        }
    }
}

/// What the kernel copies out of `hvm_start_info` before the memory it lives in may be
/// reused.
pub(crate) struct BootInfo {
    cmdline: [u8; CMDLINE_MAX],
    cmdline_len: usize,
    cmdline_truncated: bool,
    map: [MemoryRegion; MAP_MAX],
    map_len: usize,
    modules: [(u64, u64); MODULES_MAX],
    modules_len: usize,
    rsdp: u64,
}

impl BootInfo {
    fn memory_map(&self) -> &[MemoryRegion] {
        &self.map[..self.map_len]
    }

    fn cmdline(&self) -> &[u8] {
        &self.cmdline[..self.cmdline_len]
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from(u32_at(b, off)) | (u64::from(u32_at(b, off + 4)) << 32)
}

/// Reads `hvm_start_info` at `addr`.
pub(crate) fn read_start_info(mem: &impl PhysMemory, addr: u64) -> Result<BootInfo, BootError> {
    let si = mem
        .read(addr, 56)
        .ok_or(BootError::StartInfoUnreadable { addr })?;
    let magic = u32_at(si, 0);
    if magic != HVM_START_MAGIC {
        return Err(BootError::BadMagic { found: magic });
    }
    let version = u32_at(si, 4);
    let nr_modules = u32_at(si, 12) as usize;
    let modlist = u64_at(si, 16);
    let cmdline_addr = u64_at(si, 24);
    let rsdp = u64_at(si, 32);
    if version < 1 {
        return Err(BootError::NoMemoryMap { version });
    }
    let memmap_addr = u64_at(si, 40);
    let memmap_entries = u32_at(si, 48) as usize;
    let mut info = BootInfo {
        cmdline: [0; CMDLINE_MAX],
        cmdline_len: 0,
        cmdline_truncated: false,
        map: [MemoryRegion {
            start: 0,
            len: 0,
            kind: RegionKind::Reserved,
        }; MAP_MAX],
        map_len: 0,
        modules: [(0, 0); MODULES_MAX],
        modules_len: 0,
        rsdp,
    };
    if cmdline_addr != 0 {
        let mut n = 0;
        while let Some(&[b]) = mem.read(cmdline_addr + n as u64, 1) {
            if b == 0 {
                break;
            }
            if n == CMDLINE_MAX {
                info.cmdline_truncated = true;
                break;
            }
            info.cmdline[n] = b;
            n += 1;
        }
        info.cmdline_len = n;
    }
    for i in 0..memmap_entries.min(MAP_MAX) {
        let Some(e) = mem.read(memmap_addr + 24 * i as u64, 24) else {
            break;
        };
        info.map[i] = MemoryRegion {
            start: u64_at(e, 0),
            len: u64_at(e, 8),
            kind: RegionKind::from_e820(u32_at(e, 16)),
        };
        info.map_len = i + 1;
    }
    if memmap_entries == 0 || info.map_len == 0 {
        return Err(BootError::NoMemoryMap { version });
    }
    for i in 0..nr_modules.min(MODULES_MAX) {
        if let Some(m) = mem.read(modlist + 32 * i as u64, 32) {
            info.modules[i] = (u64_at(m, 0), u64_at(m, 8));
            info.modules_len = i + 1;
        }
    }
    Ok(info)
}

/// Prints why boot failed and stops with [`Failure::Boot`].
fn boot_failed(e: BootError) -> ! {
    console::print(format_args!("morgana: boot failed: {e}\n"));
    exit::exit_failure(Failure::Boot)
}

/// The Rust side of boot: everything from the serial console to running `main`. Called
/// by the binary's 64-bit entry that `entry!` defines; never returns.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn start<M, F>(
    start_info: u32,
    entry_tsc: u64,
    layout: KernelLayout,
    heap: &'static Heap,
    heap_bytes: usize,
    log_level: log::LevelFilter,
    built_for: crate::BuiltFor,
    main: M,
) -> !
where
    M: FnOnce(&'static Platform) -> F,
    F: Future<Output = Result<(), StartError>>,
{
    time::set_entry_tsc(entry_tsc);
    let mut cpu = start_cpu();
    let info =
        read_start_info(&BootIdentityMap, u64::from(start_info)).unwrap_or_else(|e| boot_failed(e));
    let acpi_info = acpi::parse(&BootIdentityMap, info.rsdp).unwrap_or_default();
    exit::set_power_off(&acpi_info);
    acpi::virtio_mmio::keep(&acpi_info.virtio_mmio);
    let memory = set_up_memory(&info, &layout, heap, heap_bytes, cpu.nx);
    let devices = set_up_devices(&mut cpu, &acpi_info);

    // The logger is installed once; a second `start` cannot happen.
    let _ = log::set_logger(&console::LOGGER);
    let log_level = crate::cmdline_arg(memory.cmdline, "morgana.log")
        .and_then(|l| l.parse().ok())
        .unwrap_or(log_level);
    log::set_max_level(log_level);
    log_boot(&cpu, &memory, &devices, &info);
    if let Some(why) = built_for.refusal(cpu.on_xen) {
        console::print(format_args!("morgana: {why}\n"));
        exit::exit_failure(Failure::Boot)
    }

    let platform: &'static Platform = Box::leak(Box::new(Platform::new(
        memory.cmdline,
        memory.map,
        memory.heap_range,
        heap,
        cpu.features,
    )));
    let ready = time::nanos_since_entry();
    console::print(format_args!("morgana: ready in {} us\n", ready / 1000));
    if let Some(kind) = crate::cmdline_arg(memory.cmdline, "morgana.fault")
        && !crate::fault::inject(kind)
    {
        log::warn!("morgana.fault={kind}: unknown kind (panic, null, stack-overflow, wx, nx)");
    }
    match morgana_rt::block_on(main(platform), &mut Halt::new()) {
        Ok(()) => exit::exit_success(),
        Err(e) => {
            console::print(format_args!("morgana: {e}\n"));
            exit::exit_failure(Failure::Error)
        }
    }
}

/// What the first boot step learned about the CPU and the machine.
struct CpuStart {
    on_xen: bool,
    /// The TSC (and APIC timer) rate the hypervisor or CPU states, if it does.
    stated: Option<time::Calibration>,
    /// The PIT measurement started at entry, when nothing states the TSC rate.
    pit: Option<time::PitStopwatch>,
    features: cpu::Features,
    nx: bool,
}

/// Step 1: Xen or not, the start of the TSC calibration, the serial console (not on
/// Xen), the IDT (from here every exception is reported), the CPU's features.
fn start_cpu() -> CpuStart {
    let on_xen = crate::xen::detect().is_some();
    // The TSC rate: stated by the hypervisor or CPU, else measured against the PIT over
    // the boot work from here to `time::finish` (Xen has no PIT: its pvclock states it).
    let stated = if on_xen { None } else { time::stated_rate() };
    let pit = (!on_xen && stated.is_none()).then(time::PitStopwatch::start);
    if !on_xen {
        console::init();
    }
    // SAFETY: once, at boot, on the boot stack, interrupts off.
    unsafe { interrupts::init() };
    let features = cpu::Features::detect();
    // SAFETY: EFER exists on every long-mode CPU.
    let nx = unsafe { cpu::rdmsr(MSR_EFER) } & EFER_NXE != 0;
    CpuStart {
        on_xen,
        stated,
        pit,
        features,
        nx,
    }
}

/// The kernel's memory once its own page tables are up.
struct Memory {
    heap_range: core::ops::Range<u64>,
    cmdline: &'static str,
    map: &'static [MemoryRegion],
}

/// Step 2: choose the heap (away from the image and the boot modules), switch to the
/// W^X page tables, claim the heap, and copy the command line and memory map out of
/// `hvm_start_info` onto it.
fn set_up_memory(
    info: &BootInfo,
    layout: &KernelLayout,
    heap: &'static Heap,
    heap_bytes: usize,
    nx: bool,
) -> Memory {
    let mut avoid: [core::ops::Range<u64>; MODULES_MAX + 1] = core::array::from_fn(|_| 0..0);
    avoid[0] = layout.kernel_start..layout.kernel_end;
    for (slot, &(start, len)) in avoid[1..].iter_mut().zip(&info.modules[..info.modules_len]) {
        *slot = start..start.saturating_add(len);
    }
    let heap_range = select_heap(
        info.memory_map(),
        &avoid,
        layout.kernel_end,
        heap_bytes as u64,
    )
    .unwrap_or_else(|| boot_failed(BootError::NoHeapRegion));
    // SAFETY: boot tables live; `layout` comes from the linker script; the heap range is
    // usable RAM outside the image and the boot modules.
    unsafe {
        paging::switch_to_kernel_tables(layout, &stacks::guard_pages(), heap_range.clone(), nx)
    }
    .unwrap_or_else(|e| boot_failed(BootError::Paging(e)));
    // SAFETY: the range is now mapped read-write and used by nothing else; once.
    unsafe { heap.init(heap_range.clone()) }.unwrap_or_else(|e| boot_failed(BootError::Heap(e)));

    let cmdline_bytes = info.cmdline();
    let cmdline = match core::str::from_utf8(cmdline_bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&cmdline_bytes[..e.valid_up_to()]).unwrap_or(""),
    };
    Memory {
        heap_range,
        cmdline: String::leak(String::from(cmdline)),
        map: Vec::leak(Vec::from(info.memory_map())),
    }
}

/// What the device step set up, for the boot log.
struct Devices {
    xen: Option<crate::xen::XenInfo>,
    xen_events: Option<Result<(), crate::xen::XenError>>,
    ioapics: Result<usize, MapError>,
    wall: Option<u64>,
    calibration: time::Calibration,
    timer_mode: &'static str,
}

/// Step 3: Xen's interfaces (PV console from here), the local and I/O APICs, the wall
/// clock, the end of the TSC calibration, the timer, and Xen's event channels.
fn set_up_devices(cpu: &mut CpuStart, acpi_info: &acpi::AcpiInfo) -> Devices {
    let xen = cpu
        .on_xen
        .then(|| crate::xen::init().unwrap_or_else(|e| boot_failed(BootError::Xen(e))));
    let lapic = apic::init().unwrap_or_else(|e| boot_failed(BootError::LocalApic(e)));
    // Without TSC-deadline the APIC timer's rate is needed too: measured against the TSC
    // from here on, unless stated.
    let apic_watch = (!cpu.on_xen
        && !cpu.features.tsc_deadline
        && cpu.stated.is_none_or(|c| c.apic_hz.is_none()))
    .then(|| time::ApicStopwatch::start(&lapic));
    let ioapics = apic::init_ioapics(acpi_info);
    // Xen PVH has no CMOS RTC: the shared info page carries the wall clock.
    let wall = if cpu.on_xen {
        let secs = crate::xen::hypercall::wall_clock_secs();
        if let Some(s) = secs {
            time::set_wall_clock(s);
        }
        secs
    } else {
        time::init_wall_clock()
    };
    let calibration = match xen {
        // The virtual LAPIC timer on Xen runs at a fixed 100 MHz.
        Some(x) if x.tsc_hz != 0 => time::Calibration {
            tsc_hz: x.tsc_hz,
            apic_hz: Some(100_000_000),
            reference: "Xen pvclock",
        },
        Some(_) => boot_failed(BootError::Clock(CalibrationError::NoReference)),
        None => time::finish(cpu.stated, cpu.pit.take(), apic_watch.map(|w| (w, &lapic)))
            .unwrap_or_else(|e| boot_failed(BootError::Clock(e))),
    };
    time::set_tsc_hz(calibration.tsc_hz);
    let timer_mode = lapic.setup_timer(cpu.features.tsc_deadline, calibration.apic_hz);
    let xen_events = cpu.on_xen.then(crate::xen::evtchn::init);
    Devices {
        xen,
        xen_events,
        ioapics,
        wall,
        calibration,
        timer_mode,
    }
}

/// Step 4: what boot found, at debug level (warnings for what is missing).
fn log_boot(cpu: &CpuStart, memory: &Memory, devices: &Devices, info: &BootInfo) {
    let ram: u64 = memory
        .map
        .iter()
        .filter(|r| r.kind == RegionKind::Usable)
        .map(|r| r.len)
        .sum();
    let heap = &memory.heap_range;
    let calibration = &devices.calibration;
    log::debug!(
        "PVH boot: {} MiB RAM, heap {} KiB at {:#x}, TSC {}.{:03} GHz ({}), {} APIC timer{}{}",
        ram >> 20,
        (heap.end - heap.start) >> 10,
        heap.start,
        calibration.tsc_hz / 1_000_000_000,
        calibration.tsc_hz / 1_000_000 % 1000,
        calibration.reference,
        devices.timer_mode,
        if cpu.features.rdrand || cpu.features.rdseed {
            ", RDRAND/RDSEED"
        } else {
            ""
        },
        if cpu.nx { ", NX" } else { "" },
    );
    let wall: &dyn core::fmt::Display = match &devices.wall {
        Some(secs) => secs,
        None => &"unknown",
    };
    log::debug!(
        "cmdline \"{}\"; ACPI power-off {}; {} I/O APIC(s); wall clock {}",
        memory.cmdline,
        if exit::can_power_off() {
            "available"
        } else {
            "unavailable"
        },
        devices.ioapics.as_ref().copied().unwrap_or(0),
        wall
    );
    if let Some(x) = devices.xen {
        let (major, minor) = crate::xen::version().unwrap_or((0, 0));
        log::debug!(
            "Xen {major}.{minor}: PV console, store ring at pfn {:#x} event channel {}",
            x.store.0,
            x.store.1
        );
    }
    match &devices.xen_events {
        Some(Ok(())) => log::debug!("Xen event channels: polled, SCHEDOP_poll idle"),
        Some(Err(e)) if crate::xen::evtchn::polled() => log::warn!(
            "xen: control/shutdown unavailable ({e}): `xl shutdown` will not reach this domain"
        ),
        Some(Err(e)) => log::warn!("Xen event channels unavailable ({e}): APIC timer idle"),
        None => {}
    }
    if info.cmdline_truncated {
        log::warn!("command line truncated to {CMDLINE_MAX} bytes");
    }
    if let Err(e) = &devices.ioapics {
        log::warn!("I/O APICs unavailable: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    struct FakeMemory(Vec<(u64, Vec<u8>)>);

    impl PhysMemory for FakeMemory {
        fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
            self.0.iter().find_map(|(base, bytes)| {
                let off = phys.checked_sub(*base)? as usize;
                bytes.get(off..off + len)
            })
        }
    }

    fn start_info(magic: u32, version: u32) -> Vec<u8> {
        let mut si = vec![0u8; 56];
        si[0..4].copy_from_slice(&magic.to_le_bytes());
        si[4..8].copy_from_slice(&version.to_le_bytes());
        si[12..16].copy_from_slice(&1u32.to_le_bytes()); // one module
        si[16..24].copy_from_slice(&0x7000u64.to_le_bytes());
        si[24..32].copy_from_slice(&0x6000u64.to_le_bytes());
        si[32..40].copy_from_slice(&0xF5A00u64.to_le_bytes());
        si[40..48].copy_from_slice(&0x5000u64.to_le_bytes());
        si[48..52].copy_from_slice(&2u32.to_le_bytes());
        si
    }

    fn memory(si: Vec<u8>) -> FakeMemory {
        let mut map = Vec::new();
        for (start, len, kind) in [(0u64, 0x9fc00u64, 1u32), (0x10_0000, 0x1f0_0000, 1)] {
            map.extend_from_slice(&start.to_le_bytes());
            map.extend_from_slice(&len.to_le_bytes());
            map.extend_from_slice(&kind.to_le_bytes());
            map.extend_from_slice(&0u32.to_le_bytes());
        }
        let mut module = Vec::new();
        module.extend_from_slice(&0x180_0000u64.to_le_bytes());
        module.extend_from_slice(&0x10_0000u64.to_le_bytes());
        module.extend_from_slice(&[0; 16]);
        FakeMemory(vec![
            (0x4000, si),
            (0x5000, map),
            (0x6000, b"fault=panic quiet\0garbage".to_vec()),
            (0x7000, module),
        ])
    }

    #[test]
    fn reads_cmdline_memory_map_and_modules() {
        let info = read_start_info(&memory(start_info(HVM_START_MAGIC, 1)), 0x4000).unwrap();
        assert_eq!(info.cmdline(), b"fault=panic quiet");
        assert!(!info.cmdline_truncated);
        assert_eq!(info.memory_map().len(), 2);
        assert_eq!(info.memory_map()[1].start, 0x10_0000);
        assert_eq!(info.memory_map()[1].kind, RegionKind::Usable);
        assert_eq!(
            &info.modules[..info.modules_len],
            &[(0x180_0000, 0x10_0000)]
        );
        assert_eq!(info.rsdp, 0xF5A00);
    }

    #[test]
    fn rejects_bad_start_info() {
        let e = read_start_info(&memory(start_info(0x1234, 1)), 0x4000).err();
        assert_eq!(e, Some(BootError::BadMagic { found: 0x1234 }));
        let e = read_start_info(&memory(start_info(HVM_START_MAGIC, 0)), 0x4000).err();
        assert_eq!(e, Some(BootError::NoMemoryMap { version: 0 }));
        let e = read_start_info(&memory(start_info(HVM_START_MAGIC, 1)), 0x9000).err();
        assert_eq!(e, Some(BootError::StartInfoUnreadable { addr: 0x9000 }));
        assert!(
            std::format!("{}", BootError::BadMagic { found: 0 })
                .contains("not booted through the PVH entry")
        );
    }
}
