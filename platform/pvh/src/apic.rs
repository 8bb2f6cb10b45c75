//! The local APIC (timer, EOI, self-IPI) and the I/O APICs (routing device lines).
//!
//! Decisions:
//! - xAPIC (MMIO) mode: every PVH host (QEMU, KVM, Xen) emulates it; x2APIC is not needed
//!   with one CPU. The register page is mapped uncached on demand.
//! - The timer is one-shot, re-armed by the idle loop for the earliest timer deadline.
//!   With TSC-deadline mode (CPUID.1:ECX bit 24) the deadline is written as a TSC value,
//!   exact and free of drift. Without it the APIC timer counts down at a rate measured
//!   against the PIT at boot (divide-by-1); a deadline beyond its 32-bit range is armed
//!   at the maximum and re-armed on the (harmless) early wake-up.
//! - The legacy 8259 PICs are remapped to vectors 0x20-0x2F and masked, and LINT0 is
//!   masked, so nothing arrives through them (a remapped PIC cannot alias exceptions).
//! - I/O APIC pins start masked. A driver routes a line to its vector with
//!   `Irq::route_gsi`; level-triggered lines are masked by the handler and unmasked by
//!   the driver after it serviced the device.

use crate::acpi::AcpiInfo;
use crate::cpu::{self, MSR_APIC_BASE, MSR_TSC_DEADLINE, outb};
use crate::interrupts::{
    IrqError, PIC_BASE_VECTOR, Polarity, SPURIOUS_VECTOR, TIMER_VECTOR, Trigger,
};
use crate::paging::{self, MapError, Mmio};
use crate::sync::CpuCell;
use crate::time;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

const REG_ID: u64 = 0x20;
const REG_TPR: u64 = 0x80;
const REG_EOI: u64 = 0xB0;
const REG_SVR: u64 = 0xF0;
const REG_ICR_LOW: u64 = 0x300;
const REG_LVT_TIMER: u64 = 0x320;
const REG_LVT_LINT0: u64 = 0x350;
const REG_LVT_ERROR: u64 = 0x370;
const REG_TIMER_INITIAL: u64 = 0x380;
const REG_TIMER_CURRENT: u64 = 0x390;
const REG_TIMER_DIVIDE: u64 = 0x3E0;
const LVT_MASKED: u32 = 1 << 16;
const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
const DIVIDE_BY_1: u32 = 0b1011;

/// Physical (== virtual) address of the local APIC's registers; 0 before `init`.
static LAPIC_BASE: AtomicU64 = AtomicU64::new(0);
/// Timer mode: 0 none, 1 TSC deadline, 2 one-shot count.
static TIMER_MODE: AtomicU8 = AtomicU8::new(0);
/// APIC timer ticks per second (one-shot mode).
static APIC_HZ: AtomicU64 = AtomicU64::new(0);

fn reg(offset: u64) -> *mut u32 {
    (LAPIC_BASE.load(Ordering::Relaxed) + offset) as *mut u32
}

fn read(offset: u64) -> u32 {
    // SAFETY: only called after `init` mapped the register page (uncached); `offset` is a
    // register of the local APIC.
    unsafe { reg(offset).read_volatile() }
}

fn write(offset: u64, value: u32) {
    // SAFETY: as in `read`.
    unsafe { reg(offset).write_volatile(value) }
}

/// The local APIC after `init`.
pub(crate) struct Lapic {
    _mmio: Mmio,
}

/// Remaps and masks the legacy PICs, maps and enables the local APIC.
pub(crate) fn init() -> Result<Lapic, MapError> {
    // SAFETY: the 8259 initialisation sequence (ICW1-ICW4) on the PC's PIC ports, then
    // mask every line. On platforms without PICs (Xen PVH) the writes go nowhere.
    unsafe {
        outb(0x20, 0x11);
        outb(0xA0, 0x11);
        outb(0x21, PIC_BASE_VECTOR);
        outb(0xA1, PIC_BASE_VECTOR + 8);
        outb(0x21, 4);
        outb(0xA1, 2);
        outb(0x21, 1);
        outb(0xA1, 1);
        outb(0x21, 0xFF);
        outb(0xA1, 0xFF);
    }
    // SAFETY: IA32_APIC_BASE exists on every x86-64 CPU; setting the global-enable bit
    // (11) keeps the address and only enables the APIC.
    let msr = unsafe { cpu::rdmsr(MSR_APIC_BASE) };
    if msr & (1 << 11) == 0 {
        // SAFETY: as above.
        unsafe { cpu::wrmsr(MSR_APIC_BASE, msr | (1 << 11)) };
    }
    let base = msr & 0x000F_FFFF_FFFF_F000;
    let mmio = paging::map_mmio(base, 4096)?;
    LAPIC_BASE.store(base, Ordering::Relaxed);
    write(REG_TPR, 0);
    write(REG_SVR, 0x100 | u32::from(SPURIOUS_VECTOR));
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_ERROR, LVT_MASKED);
    write(REG_LVT_TIMER, LVT_MASKED);
    Ok(Lapic { _mmio: mmio })
}

impl Lapic {
    /// Starts the timer counting down from the maximum (masked), for calibration.
    pub(crate) fn start_calibration(&self) {
        write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
        write(REG_LVT_TIMER, LVT_MASKED | u32::from(TIMER_VECTOR));
        write(REG_TIMER_INITIAL, u32::MAX);
    }

    /// Ticks counted since [`Lapic::start_calibration`].
    pub(crate) fn calibration_ticks(&self) -> u32 {
        u32::MAX - read(REG_TIMER_CURRENT)
    }

    /// Stops the calibration count.
    pub(crate) fn stop_calibration(&self) {
        write(REG_TIMER_INITIAL, 0);
    }

    /// Selects the timer mode: TSC deadline if available, else one-shot at `apic_hz`.
    pub(crate) fn setup_timer(&self, tsc_deadline: bool, apic_hz: Option<u64>) -> &'static str {
        if tsc_deadline {
            write(REG_LVT_TIMER, LVT_TSC_DEADLINE | u32::from(TIMER_VECTOR));
            TIMER_MODE.store(1, Ordering::Relaxed);
            "TSC-deadline"
        } else {
            write(REG_TIMER_DIVIDE, DIVIDE_BY_1);
            write(REG_LVT_TIMER, u32::from(TIMER_VECTOR));
            APIC_HZ.store(apic_hz.unwrap_or(0), Ordering::Relaxed);
            TIMER_MODE.store(2, Ordering::Relaxed);
            "one-shot"
        }
    }
}

/// Arms the timer to interrupt at `deadline` (nanoseconds since entry), or disarms it.
pub(crate) fn arm_timer(deadline: Option<u64>) {
    match TIMER_MODE.load(Ordering::Relaxed) {
        1 => {
            let tsc = deadline.map_or(0, |d| time::tsc_at(d).max(1));
            // SAFETY: TSC-deadline mode was selected (so the MSR exists); the fence orders
            // the earlier LVT write before the MSR write, as the SDM asks.
            unsafe {
                core::arch::asm!("mfence", options(nostack, preserves_flags));
                cpu::wrmsr(MSR_TSC_DEADLINE, tsc);
            }
        }
        2 => {
            let count = match deadline {
                None => 0,
                Some(d) => {
                    let wait = d.saturating_sub(time::nanos_since_entry());
                    let ticks = time::nanos_to_ticks(wait, APIC_HZ.load(Ordering::Relaxed));
                    ticks.clamp(1, u64::from(u32::MAX)) as u32
                }
            };
            write(REG_TIMER_INITIAL, count);
        }
        _ => {}
    }
}

/// Signals end of interrupt. Called from the interrupt handler.
pub(crate) fn eoi() {
    if LAPIC_BASE.load(Ordering::Relaxed) != 0 {
        write(REG_EOI, 0);
    }
}

/// This CPU's APIC ID.
pub(crate) fn id() -> u8 {
    if LAPIC_BASE.load(Ordering::Relaxed) == 0 {
        return 0;
    }
    (read(REG_ID) >> 24) as u8
}

/// Sends `vector` to this CPU (fixed delivery, "self" shorthand).
pub(crate) fn self_ipi(vector: u8) {
    if LAPIC_BASE.load(Ordering::Relaxed) == 0 {
        return;
    }
    while read(REG_ICR_LOW) & (1 << 12) != 0 {
        core::hint::spin_loop();
    }
    write(REG_ICR_LOW, u32::from(vector) | (1 << 14) | (0b01 << 18));
}

/// One I/O APIC.
struct IoApic {
    mmio: Mmio,
    gsi_base: u32,
    pins: u32,
}

const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;

fn ioapic_read(base: u64, reg: u32) -> u32 {
    // SAFETY: `base` is a mapped I/O APIC (see `init_ioapics`); select-then-access is
    // not interleaved with another access because Rust code runs with interrupts off and
    // the handler's own access (masking) happens while Rust code is halted.
    unsafe {
        ((base + IOREGSEL) as *mut u32).write_volatile(reg);
        ((base + IOWIN) as *mut u32).read_volatile()
    }
}

fn ioapic_write(base: u64, reg: u32, value: u32) {
    // SAFETY: as in `ioapic_read`.
    unsafe {
        ((base + IOREGSEL) as *mut u32).write_volatile(reg);
        ((base + IOWIN) as *mut u32).write_volatile(value);
    }
}

static IOAPICS: CpuCell<Vec<IoApic>> = CpuCell::new(Vec::new());
static ISA_OVERRIDES: CpuCell<Vec<crate::acpi::IsaOverride>> = CpuCell::new(Vec::new());

/// Maps every I/O APIC the MADT lists and masks all their pins.
pub(crate) fn init_ioapics(info: &AcpiInfo) -> Result<usize, MapError> {
    let mut list = Vec::new();
    for entry in info.ioapics.iter().flatten() {
        let mmio = paging::map_mmio(entry.address, 0x20)?;
        let pins = ((ioapic_read(mmio.phys(), 1) >> 16) & 0xFF) + 1;
        for pin in 0..pins {
            ioapic_write(mmio.phys(), 0x10 + 2 * pin, 1 << 16);
        }
        list.push(IoApic {
            mmio,
            gsi_base: entry.gsi_base,
            pins,
        });
    }
    let n = list.len();
    IOAPICS.with(|l| *l = list);
    ISA_OVERRIDES.with(|o| *o = info.overrides.iter().flatten().copied().collect());
    Ok(n)
}

/// A pin of an I/O APIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoApicLine {
    base: u64,
    pin: u8,
}

impl IoApicLine {
    /// Packs the line in a word for the interrupt handler (the register base is at least
    /// 256-byte aligned, the pin below 256); never 0.
    pub(crate) fn encode(self) -> u64 {
        self.base | u64::from(self.pin)
    }

    fn decode(v: u64) -> IoApicLine {
        IoApicLine {
            base: v & !0xFF,
            pin: v as u8,
        }
    }
}

/// Programs the redirection entry for `gsi` (masked) to deliver `vector` to this CPU.
pub(crate) fn route(
    gsi: u32,
    vector: u8,
    trigger: Trigger,
    polarity: Polarity,
) -> Result<IoApicLine, IrqError> {
    let line = IOAPICS.with(|l| {
        l.iter()
            .find(|a| gsi >= a.gsi_base && gsi - a.gsi_base < a.pins && a.mmio.phys() & 0xFF == 0)
            .map(|a| IoApicLine {
                base: a.mmio.phys(),
                pin: (gsi - a.gsi_base) as u8,
            })
    });
    let line = line.ok_or(IrqError::NoIoApic { gsi })?;
    let mut low = u32::from(vector) | (1 << 16);
    if polarity == Polarity::Low {
        low |= 1 << 13;
    }
    if trigger == Trigger::Level {
        low |= 1 << 15;
    }
    let reg = 0x10 + 2 * u32::from(line.pin);
    ioapic_write(line.base, reg + 1, u32::from(id()) << 24);
    ioapic_write(line.base, reg, low);
    Ok(line)
}

fn set_mask(line: IoApicLine, masked: bool) {
    let reg = 0x10 + 2 * u32::from(line.pin);
    let low = ioapic_read(line.base, reg);
    let low = if masked {
        low | (1 << 16)
    } else {
        low & !(1 << 16)
    };
    ioapic_write(line.base, reg, low);
}

/// Unmasks a routed line.
pub(crate) fn unmask_line(line: IoApicLine) {
    set_mask(line, false)
}

/// Masks a line given in its encoded form (from the interrupt handler).
pub(crate) fn mask_encoded_line(v: u64) {
    set_mask(IoApicLine::decode(v), true)
}

/// Unmasks a line given in its encoded form.
pub(crate) fn unmask_encoded_line(v: u64) {
    set_mask(IoApicLine::decode(v), false)
}

/// The GSI, trigger mode and polarity of ISA IRQ `irq`, after the MADT's overrides.
pub(crate) fn isa_to_gsi(irq: u8) -> (u32, Trigger, Polarity) {
    let o = ISA_OVERRIDES.with(|o| o.iter().find(|o| o.source == irq).copied());
    match o {
        Some(o) => (o.gsi, o.trigger, o.polarity),
        None => (u32::from(irq), Trigger::Edge, Polarity::High),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_apic_lines_round_trip() {
        let l = IoApicLine {
            base: 0xFEC0_0000,
            pin: 23,
        };
        assert_ne!(l.encode(), 0);
        assert_eq!(IoApicLine::decode(l.encode()), l);
    }
}
