//! Morgana's PVH kernel platform: boot and CPU layer of the Xen/QEMU PVH target.
//!
//! An appliance built for the PVH target is a freestanding ELF that a PVH loader (QEMU
//! `-kernel`, Xen, Firecracker) starts directly. This crate provides everything between
//! that first 32-bit instruction and the appliance's `async fn`:
//!
//! | module | what |
//! |---|---|
//! | `boot` (private) | PVH note + 32-bit entry (emitted by [`entry!`]), `hvm_start_info`, the boot sequence |
//! | [`paging`] | identity mapping with W^X, guard pages, [`map_mmio`] |
//! | [`interrupts`] | GDT/TSS/IDT on IST stacks, exception reports, device vectors ([`Irq`]) |
//! | [`pci`] | configuration space, bus scan, BARs, MSI-X |
//! | [`time`] | TSC clock calibrated against the PIT, timers, CMOS wall clock |
//! | [`exit`] | power-off and failure statuses (QEMU isa-debug-exit, Xen shutdown) |
//! | [`tender`] | the second entry, for `morgana-tender` on KVM at CPL 3: boot information, console, idle, exit and entropy through the tender's port-I/O calls |
//! | [`xen`] | Xen detection, hypercalls, PV console, pvclock, event channels; the kernel's instances of morgana-xen's interfaces (store ring, grant table, [`xen::XenHal`]); `xl shutdown` |
//! | [`flight`] | the flight recorder: the last 64 halts, yields, interrupts and exceptions, for a guest that dies without a word |
//! | `console`, `heap`, `entropy`, `idle`, `dma`, `apic`, `acpi`, `memmap` | the rest |
//!
//! The shape matches `morgana-unix`: a [`Platform`] with `console()`, `clock()` and
//! `entropy()` handles implementing the `morgana-signatures` traits, and an
//! [`entry!`] macro that the generated code invokes once:
//!
//! ```ignore
//! morgana_pvh::entry!(connect_and_start, heap_bytes = 16777216, log_level = Info);
//! ```
//!
//! Ground rules (see `docs/architecture.md`): this crate defines no lang item and no
//! `#[no_mangle]` symbol; everything that must exist once per binary (PVH note and entry
//! code, panic handler, global allocator, `memcpy` & co.) is expanded by [`entry!`] into
//! the binary. The binary is linked with `kernel.ld` (see `build.rs`; its path is
//! published to dependents' build scripts as `DEP_MORGANA_PVH_KERNEL_LD`).
//!
//! ## For device drivers (morgana-virtio on PCI; Xen PV drivers see [`xen`])
//! - Find the device: `platform.pci().scan()` or [`Pci::find`]; configuration space
//!   through ports 0xCF8/0xCFC ([`Pci::read32`] & co.).
//! - Map its registers: [`Pci::map_bar`] (or [`map_mmio`]) gives an [`Mmio`] range,
//!   uncached, wherever the BAR is (64-bit BARs above 4 GiB included). Legacy I/O BARs
//!   are ports: [`cpu::inl`] & co.
//! - DMA: virtual == physical. Use a [`DmaBuffer`] (zeroed, page-aligned) or any heap
//!   allocation with [`virt_to_phys`].
//! - Interrupts: `platform.interrupts().allocate()` gives an [`Irq`] (a vector of its
//!   own). MSI-X: [`Pci::msix`], [`Pci::msix_table`], `table.set(entry,
//!   irq.msi_message(), false)`, [`Pci::set_msix_enabled`]. INTx: [`Irq::route_gsi`]
//!   (`Trigger::Level, Polarity::Low` for PCI) and [`Irq::unmask`] after servicing. The
//!   driver's future awaits [`Irq::wait`]; the handler only records the interrupt.
//! - Time: `platform.clock()` implements the `Timer` signature; between events the
//!   event loop ([`Halt`]) halts the CPU.
//!
//! Concurrency model: one CPU; Rust code always runs with interrupts disabled; the
//! event loop enables them only inside `sti; hlt` (on Xen, where event channels are
//! polled and the idle step blocks in Xen, only for one instruction); interrupt
//! handlers only set flags and acknowledge. Hence the plain `RefCell`-based globals (`sync::CpuCell`).
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod acpi;
mod apic;
mod boot;
mod console;
pub mod cpu;
mod dma;
mod entropy;
pub mod exit;
pub mod fault;
pub mod flight;
mod heap;
mod idle;
pub mod interrupts;
mod memmap;
pub mod paging;
pub mod pci;
mod stacks;
mod sync;
pub mod tender;
pub mod time;
pub mod xen;

use core::ops::Range;

pub use acpi::virtio_mmio::VirtioMmioDevice;
pub use console::Console;
pub use cpu::Features;
pub use dma::{DMA_ALIGN, DmaBuffer, DmaError};
pub use entropy::{Entropy, EntropyError};
pub use exit::{Failure, exit_failure, exit_success};
pub use heap::{Heap, HeapStats};
pub use idle::Halt;
pub use interrupts::{Interrupts, Irq, IrqError, IrqWait, MsiMessage, Polarity, Trigger, Watch};
pub use memmap::{MemoryRegion, RegionKind};
pub use paging::{MapError, Mmio, map_mmio, virt_to_phys};
pub use pci::{Bar, Pci, PciAddress, PciError, PciFunction};
pub use time::{Clock, Sleep};

/// The booted kernel: what the generated code and drivers get, as `&'static Platform`.
#[derive(Debug)]
pub struct Platform {
    cmdline: &'static str,
    memory_map: &'static [MemoryRegion],
    heap_range: Range<u64>,
    heap: &'static Heap,
    features: Features,
}

impl Platform {
    pub(crate) fn new(
        cmdline: &'static str,
        memory_map: &'static [MemoryRegion],
        heap_range: Range<u64>,
        heap: &'static Heap,
        features: Features,
    ) -> Platform {
        Platform {
            cmdline,
            memory_map,
            heap_range,
            heap,
            features,
        }
    }

    /// The console (COM1; on Xen the PV console).
    pub fn console(&'static self) -> Console {
        Console::new()
    }

    /// The monotonic clock, wall clock and timers.
    pub fn clock(&'static self) -> Clock {
        Clock::new()
    }

    /// The CPU's random number generator.
    pub fn entropy(&'static self) -> Entropy {
        Entropy::new(&self.features)
    }

    /// Device interrupt vectors.
    pub fn interrupts(&'static self) -> Interrupts {
        Interrupts::new()
    }

    /// PCI configuration space.
    pub fn pci(&'static self) -> Pci {
        Pci::new()
    }

    /// Maps device memory uncached (see [`map_mmio`]).
    pub fn map_mmio(&self, phys: u64, len: u64) -> Result<Mmio, MapError> {
        map_mmio(phys, len)
    }

    /// The kernel command line (QEMU `-append`), as given (invalid UTF-8 cut off).
    pub fn cmdline(&self) -> &'static str {
        self.cmdline
    }

    /// The value of `key=value` on the command line; `Some("")` for a bare `key`.
    pub fn cmdline_arg(&self, key: &str) -> Option<&'static str> {
        cmdline_arg(self.cmdline, key)
    }

    /// The virtio-mmio devices the firmware's ACPI tables describe (QEMU's `-machine
    /// microvm`), in DSDT order; none without ACPI. Devices named on the command line
    /// (`virtio_mmio.device=`) are the driver's to read from [`Platform::cmdline`].
    pub fn virtio_mmio_devices(&self) -> impl Iterator<Item = VirtioMmioDevice> {
        acpi::virtio_mmio::found()
    }

    /// The physical memory map from `hvm_start_info`.
    pub fn memory_map(&self) -> &'static [MemoryRegion] {
        self.memory_map
    }

    /// Where the heap is (physical == virtual).
    pub fn heap_range(&self) -> Range<u64> {
        self.heap_range.clone()
    }

    /// Heap size and use.
    pub fn heap_stats(&self) -> HeapStats {
        self.heap.stats()
    }

    /// What the CPU offers.
    pub fn cpu_features(&self) -> Features {
        self.features
    }
}

fn cmdline_arg<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|word| match word.split_once('=') {
            Some((k, v)) if k == key => Some(v),
            None if word == key => Some(""),
            _ => None,
        })
}

/// Defines the kernel's entry point and runs `main` on the PVH platform.
///
/// ```ignore
/// async fn main(p: &'static morgana_pvh::Platform) -> Result<(), morgana_signatures::StartError> { Ok(()) }
/// morgana_pvh::entry!(main, heap_bytes = 1048576, log_level = Info);
/// ```
///
/// Expands, in the invoking binary (`#![no_std] #![no_main]`, linked with `kernel.ld`),
/// to: the PVH ELF note and 32-bit entry code, the 64-bit entry function, the Morgana
/// tender note and its CPL 3 entry (`morgana-tender` on KVM, see [`tender`]), the panic
/// handler (`panic: <info>`, failure status 5 under QEMU), the global allocator (a
/// [`Heap`] of at most `heap_bytes`, over the largest usable RAM region above the
/// kernel), `memcpy` & co. (`morgana_rt::freestanding_symbols!`). `main` —
/// `async fn(&'static Platform) -> Result<(), StartError>` — runs on `morgana_rt::block_on`
/// with the halting idle [`Halt`]; `Ok` powers off (QEMU exits 0), `Err` prints
/// `morgana: <error>` and exits with failure (status 3). `log_level` is one of `Off`,
/// `Error`, `Warn`, `Info`, `Debug`, `Trace`.
///
/// This kernel boots on every hypervisor the platform knows ([`BuiltFor::Any`]); a
/// kernel for one only is made by [`qemu_entry!`] or [`xen_entry!`].
#[macro_export]
macro_rules! entry {
    ($main:path, heap_bytes = $heap_bytes:expr, log_level = $level:ident $(,)?) => {
        $crate::__pvh_entry!(Any, $main, $heap_bytes, $level);

        // The second entry, for morgana-tender (see `morgana_pvh::tender`).
        $crate::__private::tender_note!(
            entry = __morgana_pvh_tender_start,
            stack_bytes = $crate::__private::TENDER_STACK_BYTES,
        );

        extern "C" fn __morgana_pvh_tender_start(
            boot: &'static $crate::__private::TenderBootInfo,
        ) -> ! {
            $crate::__private::tender_start(
                boot,
                __morgana_pvh_layout(),
                &__MORGANA_PVH_HEAP,
                $heap_bytes,
                $crate::__private::LevelFilter::$level,
                $main,
            )
        }
    };
}

/// [`entry!`] for a kernel that runs under QEMU/KVM (and Firecracker) only
/// ([`BuiltFor::Qemu`]): no tender note, so `morgana-tender` refuses the image, and booted
/// under Xen it prints why and stops (failure status [`Failure::Boot`]). The appliance's
/// drivers are the virtio ones only (`morgana_nic::qemu`, `morgana_disk::qemu`).
#[macro_export]
macro_rules! qemu_entry {
    ($main:path, heap_bytes = $heap_bytes:expr, log_level = $level:ident $(,)?) => {
        $crate::__pvh_entry!(Qemu, $main, $heap_bytes, $level);
    };
}

/// [`entry!`] for a kernel that runs under Xen only ([`BuiltFor::Xen`]): no tender note,
/// and booted anywhere but Xen (QEMU, KVM) it prints why and stops (failure status
/// [`Failure::Boot`]: QEMU exits 9 with isa-debug-exit). The appliance's drivers are Xen's
/// only (`morgana_nic::xen`, `morgana_disk::xen`).
#[macro_export]
macro_rules! xen_entry {
    ($main:path, heap_bytes = $heap_bytes:expr, log_level = $level:ident $(,)?) => {
        $crate::__pvh_entry!(Xen, $main, $heap_bytes, $level);
    };
}

/// The part of [`entry!`], [`qemu_entry!`] and [`xen_entry!`] they share; not a public API.
#[doc(hidden)]
#[macro_export]
macro_rules! __pvh_entry {
    ($built_for:ident, $main:path, $heap_bytes:expr, $level:ident) => {
        $crate::__private::freestanding_symbols!(unwind_resume = $crate::__private::unwind_resume);

        #[global_allocator]
        static __MORGANA_PVH_HEAP: $crate::Heap = $crate::Heap::new();

        #[panic_handler]
        fn __morgana_pvh_panic(info: &::core::panic::PanicInfo<'_>) -> ! {
            $crate::__private::panic(info)
        }

        $crate::__boot_asm!(__morgana_pvh_start64);

        unsafe extern "C" {
            static __morgana_kernel_start: u8;
            static __morgana_text_end: u8;
            static __morgana_rodata_start: u8;
            static __morgana_rodata_end: u8;
            static __morgana_data_start: u8;
            static __morgana_bss_start: u8;
            static __morgana_bss_end: u8;
            static __morgana_kernel_end: u8;
        }

        fn __morgana_pvh_layout() -> $crate::__private::KernelLayout {
            $crate::__private::KernelLayout {
                kernel_start: (&raw const __morgana_kernel_start) as u64,
                text_end: (&raw const __morgana_text_end) as u64,
                rodata_start: (&raw const __morgana_rodata_start) as u64,
                rodata_end: (&raw const __morgana_rodata_end) as u64,
                data_start: (&raw const __morgana_data_start) as u64,
                bss_start: (&raw const __morgana_bss_start) as u64,
                bss_end: (&raw const __morgana_bss_end) as u64,
                kernel_end: (&raw const __morgana_kernel_end) as u64,
            }
        }

        extern "C" fn __morgana_pvh_start64(start_info: u32, entry_tsc: u64) -> ! {
            $crate::__private::start(
                start_info,
                entry_tsc,
                __morgana_pvh_layout(),
                &__MORGANA_PVH_HEAP,
                $heap_bytes,
                $crate::__private::LevelFilter::$level,
                $crate::BuiltFor::$built_for,
                $main,
            )
        }
    };
}

/// Which hypervisors a kernel image is built for: chosen by the entry macro
/// ([`entry!`], [`qemu_entry!`], [`xen_entry!`]), checked at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltFor {
    /// Every one the platform knows, the drivers chosen at boot (codegen's `xen` target).
    Any,
    /// QEMU/KVM and Firecracker only: virtio drivers (codegen's `qemu` target).
    Qemu,
    /// Xen only: Xen's PV drivers (codegen's `xen-only` target).
    Xen,
}

impl BuiltFor {
    /// Why a kernel built for `self` cannot run where it booted (`on_xen`: Xen's CPUID
    /// leaves were found), if it cannot.
    pub fn refusal(self, on_xen: bool) -> Option<&'static str> {
        match (self, on_xen) {
            (BuiltFor::Qemu, true) => Some(
                "this kernel is built for QEMU/KVM only (target qemu: virtio drivers, none of Xen's), but it was booted under Xen; build it with MORGANA_TARGET=xen-only (Xen only) or xen (every hypervisor)",
            ),
            (BuiltFor::Xen, false) => Some(
                "this kernel is built for Xen only (target xen-only: Xen's drivers, no virtio), but this machine is not Xen (no Xen CPUID leaves); build it with MORGANA_TARGET=qemu (QEMU/KVM only) or xen (every hypervisor)",
            ),
            _ => None,
        }
    }
}

/// Support for [`entry!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::boot::{BOOT_TABLES, start};
    pub use crate::paging::KernelLayout;
    pub use crate::stacks::{BOOT_STACK_TOP, STACKS};
    pub use crate::tender::start as tender_start;
    pub use morgana_tender_abi::{BootInfo as TenderBootInfo, tender_note};

    /// The stack the tender gives the kernel: as large as the PVH boot stack.
    pub const TENDER_STACK_BYTES: u64 = 256 * 1024;
    pub use log::LevelFilter;
    pub use morgana_rt::freestanding_symbols;

    use core::sync::atomic::{AtomicBool, Ordering};

    static PANICKING: AtomicBool = AtomicBool::new(false);

    /// What `_Unwind_Resume` does, should anything ever unwind (panic = "abort"):
    /// reports it and exits with the panic status.
    pub extern "C" fn unwind_resume() -> ! {
        crate::console::write_bytes(
            b"\nmorgana: _Unwind_Resume called, but nothing unwinds (panic = \"abort\")\n",
        );
        crate::exit::exit_failure(crate::exit::Failure::Panic)
    }

    /// The panic handler's body: prints `panic: <info>` and exits with failure.
    pub fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        if PANICKING.swap(true, Ordering::Relaxed) {
            crate::console::write_bytes(b"\npanic: (while panicking)\n");
        } else {
            crate::console::print(format_args!("panic: {info}\n"));
        }
        crate::exit::exit_failure(crate::exit::Failure::Panic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_arguments() {
        let c = "console=ttyS0 fault=stack-overflow quiet x=";
        assert_eq!(cmdline_arg(c, "fault"), Some("stack-overflow"));
        assert_eq!(cmdline_arg(c, "quiet"), Some(""));
        assert_eq!(cmdline_arg(c, "x"), Some(""));
        assert_eq!(cmdline_arg(c, "missing"), None);
        assert_eq!(cmdline_arg("", "fault"), None);
    }

    #[test]
    fn a_kernel_for_one_hypervisor_refuses_the_other() {
        assert_eq!(BuiltFor::Any.refusal(true), None);
        assert_eq!(BuiltFor::Any.refusal(false), None);
        assert_eq!(BuiltFor::Qemu.refusal(false), None);
        assert_eq!(BuiltFor::Xen.refusal(true), None);
        let on_xen = BuiltFor::Qemu.refusal(true).unwrap();
        assert!(on_xen.contains("QEMU/KVM only") && on_xen.contains("booted under Xen"));
        let not_xen = BuiltFor::Xen.refusal(false).unwrap();
        assert!(not_xen.contains("Xen only") && not_xen.contains("not Xen"));
    }
}
