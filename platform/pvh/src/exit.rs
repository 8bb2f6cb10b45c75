//! Stopping the machine, with a status the host can see.
//!
//! QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`)
//! ends QEMU with status `(v << 1) | 1` when the guest writes `v` to port 0xf4, so it
//! can only produce odd statuses: it cannot say "success" as 0. Hence:
//!
//! | outcome | what the kernel does | QEMU's exit status |
//! |---|---|---|
//! | success (`Ok` from the appliance) | ACPI soft-off (S5) through the FADT's PM1 control port(s) | 0 |
//! | appliance returned `Err` ([`Failure::Error`]) | writes 1 to port 0xf4 | 3 |
//! | panic ([`Failure::Panic`]) | writes 2 | 5 |
//! | CPU exception ([`Failure::Exception`]) | writes 3 | 7 |
//! | boot failure ([`Failure::Boot`]) | writes 4 | 9 |
//!
//! Under `morgana-tender` the `exit` call carries the status QEMU would give (0, or the
//! table's 3, 5, 7, 9); the tender exits with it.
//!
//! On Xen (detected at boot) success is `SCHEDOP_shutdown` with reason poweroff and
//! every failure prints `morgana: exit status N (Kind)` (N as in the table) and shuts
//! down with reason crash: Xen's reasons cannot carry the status itself.
//!
//! On QEMU `-machine pc` and `q35` SeaBIOS' ACPI tables give PM1a_CNT = 0x604 and
//! `\_S5` = 0 (verified by the boot tests), so success writes SLP_EN|SLP_TYP(0) = 0x2000
//! there. Fallbacks: if ACPI power-off is unavailable or does not take effect within
//! 100 ms, success triple-faults (with `-no-reboot` QEMU then exits 0; without it the
//! guest reboots). If the debug-exit device is absent, a failure halts the CPU with
//! interrupts off (the report stays on the console; the VM must be stopped from outside).

use crate::acpi::AcpiInfo;
use crate::console;
use crate::cpu::{self, outb, outw};
use core::sync::atomic::{AtomicU64, Ordering};

/// Why the kernel stops with a failure; the value is written to isa-debug-exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Failure {
    /// The appliance's start future returned an error.
    Error = 1,
    /// A panic.
    Panic = 2,
    /// A CPU exception.
    Exception = 3,
    /// The kernel could not boot (no memory map, no heap, no clock...).
    Boot = 4,
}

impl Failure {
    /// The status QEMU exits with when isa-debug-exit is present.
    pub fn qemu_status(self) -> i32 {
        (i32::from(self as u8) << 1) | 1
    }
}

/// The ISA debug-exit port.
const DEBUG_EXIT_PORT: u16 = 0xF4;

/// PM1a port (bits 0-15), PM1b port (16-31), SLP_TYPa (32-39), SLP_TYPb (40-47),
/// valid (48).
static POWER_OFF: AtomicU64 = AtomicU64::new(0);

/// Remembers how to power off, from the ACPI tables read at boot.
pub(crate) fn set_power_off(info: &AcpiInfo) {
    if let (Some((a, b)), false) = (info.s5, info.pm1a_control == 0) {
        let v = u64::from(info.pm1a_control)
            | (u64::from(info.pm1b_control) << 16)
            | (u64::from(a) << 32)
            | (u64::from(b) << 40)
            | (1 << 48);
        POWER_OFF.store(v, Ordering::Relaxed);
    }
}

/// Whether ACPI power-off is known.
pub(crate) fn can_power_off() -> bool {
    POWER_OFF.load(Ordering::Relaxed) & (1 << 48) != 0
}

/// Stops the machine reporting success (QEMU exits 0; on Xen, shutdown reason
/// poweroff).
pub fn exit_success() -> ! {
    if crate::tender::on_tender() {
        crate::tender::exit(0);
    }
    if crate::xen::on_xen() {
        crate::xen::shutdown(crate::xen::ShutdownReason::Poweroff);
    }
    console::flush();
    let v = POWER_OFF.load(Ordering::Relaxed);
    if v & (1 << 48) != 0 {
        let pm1a = v as u16;
        let pm1b = (v >> 16) as u16;
        let slp_a = ((v >> 32) & 7) as u16;
        let slp_b = ((v >> 40) & 7) as u16;
        // SAFETY: the FADT names these ports as PM1 control blocks; writing SLP_EN with
        // the \_S5 sleep type is the ACPI soft-off request.
        unsafe {
            outw(pm1a, (slp_a << 10) | (1 << 13));
            if pm1b != 0 {
                outw(pm1b, (slp_b << 10) | (1 << 13));
            }
        }
        // Give the host a moment to act on the request.
        let start = cpu::rdtsc();
        let hz = crate::time::tsc_hz().max(1_000_000_000);
        while cpu::rdtsc().wrapping_sub(start) < hz / 10 {
            core::hint::spin_loop();
        }
    }
    triple_fault()
}

/// Stops the machine reporting `failure` (QEMU exits with [`Failure::qemu_status`]; on
/// Xen the status is printed and the domain shuts down with reason crash).
pub fn exit_failure(failure: Failure) -> ! {
    if crate::tender::on_tender() {
        crate::tender::exit(failure.qemu_status() as u32);
    }
    if crate::xen::on_xen() {
        console::print(format_args!(
            "morgana: exit status {} ({:?})\n",
            failure.qemu_status(),
            failure
        ));
        crate::xen::shutdown(crate::xen::ShutdownReason::Crash);
    }
    console::flush();
    // SAFETY: port 0xf4 is QEMU's isa-debug-exit when configured; elsewhere it is an
    // unused ISA port and the write is ignored.
    unsafe { outb(DEBUG_EXIT_PORT, failure as u8) };
    cpu::halt_forever()
}

/// Resets the CPU by making an exception undeliverable.
fn triple_fault() -> ! {
    let empty = [0u16; 5];
    // SAFETY: loading a zero-length IDT and raising #BP makes every delivery fail:
    // #BP -> #GP -> #DF -> triple fault, which the host turns into a reset (or, with
    // QEMU -no-reboot, an exit). Nothing after it runs.
    unsafe {
        core::arch::asm!("lidt [{}]", "int3", in(reg) &empty, options(nostack));
    }
    cpu::halt_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_statuses() {
        assert_eq!(Failure::Error.qemu_status(), 3);
        assert_eq!(Failure::Panic.qemu_status(), 5);
        assert_eq!(Failure::Exception.qemu_status(), 7);
        assert_eq!(Failure::Boot.qemu_status(), 9);
    }
}
