//! Running as a Xen PVH guest: detection and the hypervisor interfaces.
//!
//! One image runs both on QEMU/other PVH loaders and on Xen; which one is decided at
//! boot by [`detect`] (CPUID leaves `0x4000_0000 + 0x100 * i`, signature
//! `"XenVMMXenVMM"`). On Xen there is no serial port, PIT, RTC, isa-debug-exit or ACPI
//! PM port, so the boot sequence uses instead:
//!
//! | need | on Xen |
//! |---|---|
//! | early output (before paging) | port 0xE9, shown by Xen as `(dN) ...` with `guest_loglvl=all` |
//! | console and `log` | the PV console ring ([`console`]), notified over its event channel |
//! | TSC frequency | the pvclock in the shared info page ([`pvclock`]), not the PIT |
//! | APIC timer frequency | Xen's virtual LAPIC runs at a fixed 100 MHz |
//! | power-off / failure | `SCHEDOP_shutdown`: reason poweroff on success, crash on failure |
//!
//! The hypercall page is a zero-filled (NOBITS) page at the end of the text segment
//! (executable under W^X, no bytes in the image) that Xen fills in when its physical
//! address is written to the MSR that CPUID leaf base+2 names. The shared
//! info page is mapped with `XENMEM_add_to_physmap` over a page-aligned `.bss` page.
//!
//! Xen's guest interfaces themselves — the xenstore client, the xenbus handshake,
//! grant-table bookkeeping, shared rings — are the morgana-xen crate (`platform/xen`),
//! portable and tested on the host. This module holds the kernel's instances of them:
//! [`store::open`] (the client over this domain's store ring), [`grant::grant_access`]
//! (the grant table's frames, mapped on first use), [`evtchn`] (delivery of event
//! channels, and [`evtchn::alloc_unbound`] for a device), [`bus::StoreWait`] (the
//! handshake's wait) and [`XenHal`], the `morgana_xen::device::Hal` a PV driver
//! (netfront) runs on. [`control`] obeys `xl shutdown` and `xl reboot` (the
//! `control/shutdown` node). [`secrets::read_boot_secrets`] takes the key material the
//! toolstack wrote to the domain's `data/morgana/secrets` (a `Secrets(from: Boot)`).
//!
//! The layouts and numbers here re-express Xen's public headers (`xen.h`,
//! `hvm/params.h`, `io/console.h`); no code is taken from them.

pub mod bus;
pub mod console;
pub mod control;
mod device;
pub mod diagnostics;
pub mod evtchn;
pub mod grant;
pub mod hypercall;
pub mod pvclock;
pub mod secrets;
pub mod store;

pub use device::XenHal;
pub use morgana_xen::XenError;

use crate::cpu;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The store ring's frame (0: unknown) and event channel, from the HVM params.
static STORE_PFN: AtomicU64 = AtomicU64::new(0);
static STORE_PORT: AtomicU32 = AtomicU32::new(0);

/// The store ring's page frame number and event channel, once Xen is set up.
pub fn store_ring() -> Option<(u64, u32)> {
    let pfn = STORE_PFN.load(Ordering::Relaxed);
    (pfn != 0).then(|| (pfn, STORE_PORT.load(Ordering::Relaxed)))
}

/// Where Xen's CPUID leaves are (0 until detected / not on Xen).
static CPUID_BASE: AtomicU32 = AtomicU32::new(0);

/// `"XenVMMXenVMM"` as CPUID returns it in EBX, ECX, EDX.
const SIGNATURE: [u32; 3] = [0x566e_6558, 0x65584d4d, 0x4d4d566e];

/// Finds Xen's CPUID leaves; `Some(base)` when running on Xen. Remembers the result.
pub fn detect() -> Option<u32> {
    // Only look at hypervisor leaves when CPUID says a hypervisor is present.
    if cpu::cpuid(1, 0).ecx & (1 << 31) == 0 {
        return None;
    }
    for i in 0..16u32 {
        let base = 0x4000_0000 + 0x100 * i;
        let r = cpu::cpuid(base, 0);
        if [r.ebx, r.ecx, r.edx] == SIGNATURE && r.eax >= base + 2 {
            CPUID_BASE.store(base, Ordering::Relaxed);
            return Some(base);
        }
    }
    None
}

/// Whether [`detect`] found Xen.
pub fn on_xen() -> bool {
    CPUID_BASE.load(Ordering::Relaxed) != 0
}

/// Xen's version as (major, minor), from CPUID leaf base+1.
pub fn version() -> Option<(u16, u16)> {
    let base = CPUID_BASE.load(Ordering::Relaxed);
    if base == 0 {
        return None;
    }
    let eax = cpu::cpuid(base + 1, 0).eax;
    Some(((eax >> 16) as u16, eax as u16))
}

/// Writes bytes to port 0xE9 (Xen's debug console for HVM/PVH guests).
pub(crate) fn debug_port_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: port 0xE9 is Xen's guest debug port; writing it only emits a byte on
        // the hypervisor's console.
        unsafe { cpu::outb(0xE9, b) };
    }
}

/// What `init` found.
#[derive(Clone, Copy, Debug)]
pub(crate) struct XenInfo {
    /// TSC ticks per second, from the pvclock.
    pub tsc_hz: u64,
    /// Store ring page frame and event channel.
    pub store: (u64, u32),
}

/// Sets Xen up after the kernel's page tables are active: hypercall page, shared info,
/// console ring. From here the console writes to the PV console.
pub(crate) fn init() -> Result<XenInfo, XenError> {
    let base = CPUID_BASE.load(Ordering::Relaxed);
    hypercall::init(base)?;
    hypercall::map_shared_info()?;
    let console_pfn = hypercall::hvm_param(hypercall::HVM_PARAM_CONSOLE_PFN)?;
    let console_evtchn = hypercall::hvm_param(hypercall::HVM_PARAM_CONSOLE_EVTCHN)?;
    console::init(console_pfn, console_evtchn as u32)?;
    let store_pfn = hypercall::hvm_param(hypercall::HVM_PARAM_STORE_PFN)?;
    let store_evtchn = hypercall::hvm_param(hypercall::HVM_PARAM_STORE_EVTCHN)?;
    STORE_PORT.store(store_evtchn as u32, Ordering::Relaxed);
    STORE_PFN.store(store_pfn, Ordering::Relaxed);
    let time = hypercall::shared_info_time();
    let tsc_hz = pvclock::tsc_hz(time.tsc_to_system_mul, time.tsc_shift);
    Ok(XenInfo {
        tsc_hz,
        store: (store_pfn, store_evtchn as u32),
    })
}

/// Xen's shutdown reasons (`SHUTDOWN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ShutdownReason {
    /// Clean power-off.
    Poweroff = 0,
    /// Restart.
    Reboot = 1,
    /// The guest crashed.
    Crash = 3,
}

/// Asks Xen to shut this domain down; falls back to halting if Xen refuses.
pub(crate) fn shutdown(reason: ShutdownReason) -> ! {
    console::flush();
    crate::flight::record(crate::flight::Step::Shutdown, reason as u64);
    hypercall::sched_shutdown(reason as u32);
    cpu::halt_forever()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_spells_xen() {
        let mut s = [0u8; 12];
        for (i, w) in SIGNATURE.iter().enumerate() {
            s[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&s, b"XenVMMXenVMM");
    }
}
