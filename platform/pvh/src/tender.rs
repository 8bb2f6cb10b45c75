//! The tender path: the same kernel image, entered by `morgana-tender` on KVM at CPL 3.
//!
//! [`entry!`](crate::entry) emits, besides the PVH note, the Morgana tender note
//! (`.note.morgana.tender`, see `docs/tender-abi.md`) naming a second, 64-bit entry:
//! `extern "C" fn(&'static BootInfo) -> !`, which calls [`start`]. QEMU and Xen enter at
//! the PVH entry and never run this code; the tender enters here and never runs the PVH
//! entry. Which entry ran is the detection: [`on_tender`] is set once, first thing.
//!
//! At CPL 3 every privileged instruction (`cli`, `sti`, `hlt`, `lgdt`, `lidt`,
//! `mov cr*`, `rdmsr`, `wrmsr`) raises #GP, and this host's KVM ignores IOPL 3 (the
//! tender's I/O bitmap opens exactly its call ports; `docs/tender-abi.md`). So this path
//! executes none of them, and reaches no port but the tender's:
//!
//! | PVH path | tender path |
//! |---|---|
//! | GDT, TSS, IDT, W^X page tables built at boot | the tender's (its fault gates report exceptions; the kernel sees no interrupt) |
//! | command line, memory map from `hvm_start_info` | from [`BootInfo`] |
//! | TSC rate calibrated (PIT, CPUID), CMOS wall clock | [`BootInfo::tsc_hz`], [`BootInfo::boot_wall_ns`] |
//! | COM1 / Xen PV console | the `console-write` call |
//! | idle: APIC timer + `sti; hlt` | the `wait` call until the earliest timer's TSC deadline or a frame ([`idle`]) |
//! | RDRAND / jitter | the `entropy` call |
//! | ACPI power-off, isa-debug-exit | the `exit` call, with the statuses QEMU would give (0, 3, 5, 7, 9) |
//! | virtio-net / netfront | the `net-send` / `net-recv` calls (`morgana-nic`'s tender variant) |
//!
//! No ACPI, APIC, I/O APIC, PIT, RTC or PCI is touched; the `.noinit` stacks and
//! page-table pool of the PVH path stay untouched pages. Received frames wake the NIC
//! through [`register_rx_waker`]: the `wait` call returns when a frame is waiting (it is
//! level-triggered: a frame left in the tender's queue ends the next wait at once, so no
//! frame is ever waited past).

use crate::exit::{self, Failure};
use crate::heap::Heap;
use crate::idle::Halt;
use crate::memmap::{MemoryRegion, RegionKind, select_heap};
use crate::paging::KernelLayout;
use crate::sync::CpuCell;
use crate::{Platform, console, time};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use core::task::Waker;
use morgana_signatures::StartError;
use morgana_tender_abi::{self as abi, BootInfo, guest};

/// The boot information, once the tender entry ran (null on the PVH path).
static BOOT: AtomicPtr<BootInfo> = AtomicPtr::new(core::ptr::null_mut());

/// Whether a frame may be waiting in the tender's receive queue. True at boot: a
/// summoned guest finds the frames that woke it there.
static RX_MAYBE_WAITING: AtomicBool = AtomicBool::new(true);

/// The NIC's receive waker, woken when a `wait` call ends with a frame waiting.
static RX_WAKER: CpuCell<Option<Waker>> = CpuCell::new(None);

/// Whether this kernel was entered by `morgana-tender` (the tender note's entry).
pub fn on_tender() -> bool {
    !BOOT.load(Ordering::Relaxed).is_null()
}

/// What the tender told the kernel at entry; `None` on the PVH path.
pub fn boot_info() -> Option<&'static BootInfo> {
    let p = BOOT.load(Ordering::Relaxed);
    // SAFETY: set once by `start` from the `&'static BootInfo` the tender passed.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// Whether a received frame may be waiting in the tender: a `wait` call ended with
/// `EVENT_NET_RX` since the last [`clear_rx_maybe_waiting`], or the kernel just booted.
pub fn rx_maybe_waiting() -> bool {
    RX_MAYBE_WAITING.load(Ordering::Relaxed)
}

/// The NIC took every frame the tender had: until the next `wait` reports one,
/// receiving need not ask the tender.
pub fn clear_rx_maybe_waiting() {
    RX_MAYBE_WAITING.store(false, Ordering::Relaxed);
}

/// Arranges for `waker` to be woken when a frame arrives (only the latest is kept); at
/// once if one may be waiting already.
pub fn register_rx_waker(waker: &Waker) {
    if rx_maybe_waiting() {
        waker.wake_by_ref();
        return;
    }
    RX_WAKER.with(|w| match w {
        Some(old) if old.will_wake(waker) => {}
        _ => *w = Some(waker.clone()),
    });
}

/// The idle step on the tender: waits (in the tender, the vCPU stopped) until a frame is
/// waiting or the earliest timer is due (`deadline`, nanoseconds since entry), then wakes
/// the NIC if a frame is there. Without a timer and without a network device the
/// tender stops the guest (a wait nothing could end) with a report.
pub(crate) fn idle(deadline: Option<u64>) {
    let deadline_tsc = deadline.map_or(abi::NO_DEADLINE, time::tsc_at);
    let events = guest::wait(deadline_tsc);
    if events & abi::EVENT_NET_RX != 0 {
        RX_MAYBE_WAITING.store(true, Ordering::Relaxed);
        if let Some(w) = RX_WAKER.with(|w| w.take()) {
            w.wake();
        }
    }
}

/// Writes console bytes through the tender (its standard output).
pub(crate) fn console_write(bytes: &[u8]) {
    guest::console_write(bytes);
}

/// Ends the run with `status` (0 success; failures as QEMU's isa-debug-exit statuses).
pub(crate) fn exit(status: u32) -> ! {
    guest::exit(status)
}

/// Fills `buf` from the host's random number generator.
pub(crate) fn entropy(buf: &mut [u8]) -> Result<(), abi::Status> {
    guest::entropy(buf)
}

/// Why the kernel could not boot on the tender path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TenderBootError {
    /// The boot information does not start with the ABI's magic.
    BadMagic(u64),
    /// The tender speaks another ABI version, or wrote a shorter boot information.
    Version { version: u32, size: u32 },
    /// No RAM region outside the image for the heap.
    NoHeapRegion,
    /// The heap could not be claimed.
    Heap,
}

impl fmt::Display for TenderBootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TenderBootError::BadMagic(m) => write!(
                f,
                "the tender's boot information has magic {m:#x}, not {:#x}",
                abi::BOOT_MAGIC
            ),
            TenderBootError::Version { version, size } => write!(
                f,
                "the tender speaks ABI version {version} ({size}-byte boot information); \
                 this kernel was built for version {} ({} bytes)",
                abi::ABI_VERSION,
                core::mem::size_of::<BootInfo>()
            ),
            TenderBootError::NoHeapRegion => {
                f.write_str("no RAM region outside the kernel image for the heap")
            }
            TenderBootError::Heap => f.write_str("the heap region is too small for the allocator"),
        }
    }
}

fn boot_failed(e: TenderBootError) -> ! {
    console::print(format_args!("morgana: boot failed: {e}\n"));
    exit::exit_failure(Failure::Boot)
}

/// The tender's memory map as the platform's regions: the kernel's RAM is usable,
/// everything else (image, stack, boot information, the tender's pages) reserved.
pub(crate) fn memory_map(regions: &[abi::MemoryRegion]) -> Vec<MemoryRegion> {
    regions.iter().map(memory_map_entry).collect()
}

/// The largest piece of the tender's RAM outside the image, capped at `heap_bytes`.
pub(crate) fn choose_heap(
    regions: &[abi::MemoryRegion],
    layout: &KernelLayout,
    heap_bytes: u64,
) -> Option<core::ops::Range<u64>> {
    // Before the heap exists: no allocation. Converted region by region on the stack.
    let mut best: Option<core::ops::Range<u64>> = None;
    for r in regions {
        let one = memory_map_entry(r);
        let image = layout.kernel_start..layout.kernel_end;
        if let Some(range) = select_heap(
            &[one],
            core::slice::from_ref(&image),
            layout.kernel_end,
            heap_bytes,
        ) && best
            .as_ref()
            .is_none_or(|b| range.end - range.start > b.end - b.start)
        {
            best = Some(range);
        }
    }
    best
}

fn memory_map_entry(r: &abi::MemoryRegion) -> MemoryRegion {
    let usable = r.kind == abi::REGION_RAM
        && r.access & (abi::ACCESS_READ | abi::ACCESS_WRITE)
            == abi::ACCESS_READ | abi::ACCESS_WRITE;
    MemoryRegion {
        start: r.start,
        len: r.len,
        kind: if usable {
            RegionKind::Usable
        } else {
            RegionKind::Reserved
        },
    }
}

/// The Rust side of the tender entry: boot information → clock → heap → logger →
/// the appliance. Called by the binary's tender entry that `entry!` defines.
#[doc(hidden)]
pub fn start<M, F>(
    boot: &'static BootInfo,
    layout: KernelLayout,
    heap: &'static Heap,
    heap_bytes: usize,
    log_level: log::LevelFilter,
    main: M,
) -> !
where
    M: FnOnce(&'static Platform) -> F,
    F: Future<Output = Result<(), StartError>>,
{
    let entry_tsc = crate::cpu::rdtsc();
    BOOT.store(core::ptr::from_ref(boot).cast_mut(), Ordering::Relaxed);
    time::set_entry_tsc(entry_tsc);
    if boot.magic != abi::BOOT_MAGIC {
        boot_failed(TenderBootError::BadMagic(boot.magic));
    }
    if boot.abi_version != abi::ABI_VERSION
        || (boot.size as usize) < core::mem::size_of::<BootInfo>()
    {
        boot_failed(TenderBootError::Version {
            version: boot.abi_version,
            size: boot.size,
        });
    }
    time::set_tsc_hz(boot.tsc_hz);
    time::set_wall_clock_at(boot.boot_wall_ns, boot.boot_tsc);

    // SAFETY: the tender maps the memory map and the command line read-only for the
    // kernel for its whole life, at the addresses and lengths it wrote into `boot`
    // (ABI: REGION_BOOT_INFO); the tender built them before entry and never changes them.
    let (regions, cmdline_bytes) = unsafe {
        (
            core::slice::from_raw_parts(
                boot.memory_map as *const abi::MemoryRegion,
                boot.memory_map_len as usize,
            ),
            core::slice::from_raw_parts(boot.cmdline as *const u8, boot.cmdline_len as usize),
        )
    };
    let heap_range = choose_heap(regions, &layout, heap_bytes as u64)
        .unwrap_or_else(|| boot_failed(TenderBootError::NoHeapRegion));
    // SAFETY: the range is RAM the tender maps read-write for the kernel, outside the
    // image, the stack and the boot information; claimed once.
    unsafe { heap.init(heap_range.clone()) }.unwrap_or_else(|_| boot_failed(TenderBootError::Heap));

    let cmdline = match core::str::from_utf8(cmdline_bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&cmdline_bytes[..e.valid_up_to()]).unwrap_or(""),
    };
    let cmdline: &'static str = String::leak(String::from(cmdline));
    let map: &'static [MemoryRegion] = Vec::leak(memory_map(regions));

    let _ = log::set_logger(&console::LOGGER);
    let log_level = crate::cmdline_arg(cmdline, "morgana.log")
        .and_then(|l| l.parse().ok())
        .unwrap_or(log_level);
    log::set_max_level(log_level);
    log::debug!(
        "tender boot: ABI {}, {} MiB RAM, heap {} KiB at {:#x}, TSC {}.{:03} GHz (stated by the tender), network {}",
        boot.abi_version,
        map.iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| r.len)
            .sum::<u64>()
            >> 20,
        (heap_range.end - heap_range.start) >> 10,
        heap_range.start,
        boot.tsc_hz / 1_000_000_000,
        boot.tsc_hz / 1_000_000 % 1000,
        if boot.net.flags & abi::NET_PRESENT != 0 {
            "present"
        } else {
            "absent"
        },
    );

    let platform: &'static Platform = Box::leak(Box::new(Platform::new(
        cmdline,
        map,
        heap_range,
        heap,
        crate::cpu::Features::detect(),
    )));
    let ready = time::nanos_since_entry();
    console::print(format_args!("morgana: ready in {} us\n", ready / 1000));
    if let Some(kind) = crate::cmdline_arg(cmdline, "morgana.fault")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: u64, len: u64, kind: u32, access: u32) -> abi::MemoryRegion {
        abi::MemoryRegion {
            start,
            len,
            kind,
            access,
        }
    }

    const RW: u32 = abi::ACCESS_READ | abi::ACCESS_WRITE;

    fn tender_map() -> [abi::MemoryRegion; 6] {
        [
            region(0, 0x1000, abi::REGION_GUARD, 0),
            region(0x1000, 0x1000, abi::REGION_BOOT_INFO, abi::ACCESS_READ),
            region(0x2000, 0xfe000, abi::REGION_RESERVED, 0),
            region(0x10_0000, 0x8_0000, abi::REGION_KERNEL, RW),
            region(0x18_0000, 0x4_0000, abi::REGION_STACK, RW),
            region(0x1c_0000, 0x3e4_0000, abi::REGION_RAM, RW),
        ]
    }

    fn layout() -> KernelLayout {
        KernelLayout {
            kernel_start: 0x10_0000,
            text_end: 0x12_0000,
            rodata_start: 0x12_0000,
            rodata_end: 0x14_0000,
            data_start: 0x14_0000,
            bss_start: 0x16_0000,
            bss_end: 0x17_0000,
            kernel_end: 0x18_0000,
        }
    }

    #[test]
    fn only_the_kernels_ram_is_usable() {
        let map = memory_map(&tender_map());
        let usable: Vec<_> = map
            .iter()
            .filter(|r| r.kind == RegionKind::Usable)
            .map(|r| (r.start, r.len))
            .collect();
        assert_eq!(usable, [(0x1c_0000, 0x3e4_0000)]);
        // RAM the kernel may not write is not usable.
        let map = memory_map(&[region(0x20_0000, 0x1000, abi::REGION_RAM, abi::ACCESS_READ)]);
        assert_eq!(map[0].kind, RegionKind::Reserved);
    }

    #[test]
    fn the_heap_is_ram_capped_at_its_size() {
        let heap = choose_heap(&tender_map(), &layout(), 16 << 20).unwrap();
        assert_eq!(heap, 0x1c_0000..0x1c_0000 + (16 << 20));
        let all = choose_heap(&tender_map(), &layout(), 1 << 40).unwrap();
        assert_eq!(all, 0x1c_0000..0x400_0000);
        // Neither the stack nor the image is ever chosen.
        let none = choose_heap(&tender_map()[..5], &layout(), 16 << 20);
        assert_eq!(none, None);
    }

    #[test]
    fn boot_errors_say_what_differs() {
        let e = TenderBootError::Version {
            version: 3,
            size: 160,
        };
        let text = std::format!("{e}");
        assert!(text.contains("ABI version 3"), "{text}");
        assert!(text.contains("built for version 2"), "{text}");
    }
}
