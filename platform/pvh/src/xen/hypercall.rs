//! Hypercalls through the hypercall page, and the few operations the platform uses.
//!
//! Calling convention (x86-64 HVM/PVH): `call hypercall_page + 32 * op` with the
//! arguments in RDI, RSI, RDX, R10, R8; the result (0 or a negative errno) in RAX. The
//! inline assembly does not say `nostack`, so the compiler keeps the red zone free for
//! the `call`.

use super::XenError;
use super::pvclock::TimeInfo;
use crate::cpu;
use core::arch::asm;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicU64, Ordering, fence};

const HYPERVISOR_MEMORY_OP: u64 = 12;
const HYPERVISOR_SCHED_OP: u64 = 29;
const HYPERVISOR_EVENT_CHANNEL_OP: u64 = 32;
const HYPERVISOR_HVM_OP: u64 = 34;

const XENMEM_ADD_TO_PHYSMAP: u64 = 7;
const XENMAPSPACE_SHARED_INFO: u32 = 0;
const XENMAPSPACE_GRANT_TABLE: u32 = 1;
const SCHEDOP_YIELD: u64 = 0;
const SCHEDOP_SHUTDOWN: u64 = 2;
const SCHEDOP_POLL: u64 = 3;
const EVTCHNOP_SEND: u64 = 4;
const HVMOP_GET_PARAM: u64 = 1;
const EVTCHNOP_CLOSE: u64 = 3;
const EVTCHNOP_ALLOC_UNBOUND: u64 = 6;
const DOMID_SELF: u16 = 0x7FF0;

/// `HVM_PARAM_STORE_PFN`.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_CONSOLE_PFN`.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;

#[repr(C, align(4096))]
struct Page(UnsafeCell<[u8; 4096]>);

// SAFETY: the pages are written by Xen (hypercall page: once, at init) or accessed
// only through volatile reads (shared info); one CPU.
unsafe impl Sync for Page {}

/// Filled in by Xen with one 32-byte stub per hypercall. kernel.ld puts it at the end of
/// the text segment, so that the kernel's W^X tables map it executable, as NOBITS: it
/// takes no bytes in the image. Xen writes it through its physical address.
#[unsafe(link_section = ".morgana_xen_hypercall_page")]
static HYPERCALL_PAGE: Page = Page(UnsafeCell::new([0; 4096]));

/// The page whose frame is replaced by Xen's shared info page.
#[unsafe(link_section = ".bss.morgana_xen_shared_info")]
static SHARED_INFO: Page = Page(UnsafeCell::new([0; 4096]));

/// Physical address of the hypercall page once Xen filled it (0 before).
static READY: AtomicU64 = AtomicU64::new(0);
static SHARED_READY: AtomicU64 = AtomicU64::new(0);

/// Asks Xen (MSR from CPUID leaf base+2) to fill the hypercall page.
pub(crate) fn init(base: u32) -> Result<(), XenError> {
    let r = cpu::cpuid(base + 2, 0);
    if r.eax == 0 || r.ebx == 0 {
        return Err(XenError::NoHypercallPage);
    }
    let page = HYPERCALL_PAGE.0.get() as u64;
    // SAFETY: writing the page's physical (== virtual) address to Xen's hypercall MSR
    // makes Xen fill that page with hypercall stubs; the page is ours, page aligned and
    // mapped executable.
    unsafe { cpu::wrmsr(r.ebx, page) };
    READY.store(page, Ordering::SeqCst);
    Ok(())
}

/// Whether hypercalls can be made.
pub(crate) fn ready() -> bool {
    READY.load(Ordering::Relaxed) != 0
}

/// Makes hypercall `op` with up to three arguments.
///
/// # Safety
/// The arguments must be valid for `op` (pointers to live, correctly laid out memory).
unsafe fn hypercall3(op: u64, a1: u64, a2: u64, a3: u64) -> i64 {
    let stub = READY.load(Ordering::Relaxed) + op * 32;
    let ret: i64;
    // SAFETY: `stub` is Xen's stub for `op` in the hypercall page (callers check
    // `ready()`); the stub clobbers only the registers listed; the caller vouches for
    // the arguments. No `nostack`: the call pushes a return address.
    unsafe {
        asm!(
            "call {stub}",
            stub = in(reg) stub,
            lateout("rax") ret,
            inout("rdi") a1 => _,
            inout("rsi") a2 => _,
            inout("rdx") a3 => _,
            lateout("rcx") _,
            lateout("r8") _,
            lateout("r10") _,
            lateout("r11") _,
        );
    }
    ret
}

fn check(ret: i64) -> Result<(), XenError> {
    if ret < 0 {
        Err(XenError::Hypercall(ret))
    } else {
        Ok(())
    }
}

#[repr(C)]
struct AddToPhysmap {
    domid: u16,
    size: u16,
    space: u32,
    idx: u64,
    gpfn: u64,
}

/// Maps the shared info page over `SHARED_INFO`.
pub(crate) fn map_shared_info() -> Result<(), XenError> {
    let page = SHARED_INFO.0.get() as u64;
    // SAFETY: the target frame is our own page-aligned, otherwise unused page.
    unsafe { add_to_physmap(XENMAPSPACE_SHARED_INFO, 0, page) }?;
    SHARED_READY.store(page, Ordering::SeqCst);
    Ok(())
}

/// Has Xen back the guest page at `page` (physical address) with grant table frame
/// `index` of this domain.
///
/// # Safety
/// `page` must be a page-aligned page of ours that nothing else uses: its contents are
/// replaced by the grant table frame.
pub(crate) unsafe fn map_grant_frame(index: u64, page: u64) -> Result<(), XenError> {
    // SAFETY: forwarded to the caller.
    unsafe { add_to_physmap(XENMAPSPACE_GRANT_TABLE, index, page) }
}

/// `XENMEM_add_to_physmap` for this domain.
///
/// # Safety
/// As [`map_grant_frame`]: the page at `page` is given up to Xen's frame.
unsafe fn add_to_physmap(space: u32, idx: u64, page: u64) -> Result<(), XenError> {
    let mut arg = AddToPhysmap {
        domid: DOMID_SELF,
        size: 0,
        space,
        idx,
        gpfn: page >> 12,
    };
    // SAFETY: `arg` is a live `xen_add_to_physmap`; the caller vouches for the page.
    check(unsafe {
        hypercall3(
            HYPERVISOR_MEMORY_OP,
            XENMEM_ADD_TO_PHYSMAP,
            (&raw mut arg) as u64,
            0,
        )
    })
}

#[repr(C)]
struct AllocUnbound {
    dom: u16,
    remote_dom: u16,
    port: u32,
}

/// Opens a new event channel that domain `remote` may bind to; returns its port.
pub(crate) fn evtchn_alloc_unbound(remote: u16) -> Result<u32, XenError> {
    if !ready() {
        return Err(XenError::NotXen);
    }
    let mut arg = AllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    // SAFETY: `arg` is a live `evtchn_alloc_unbound` (dom, remote_dom, port out).
    check(unsafe {
        hypercall3(
            HYPERVISOR_EVENT_CHANNEL_OP,
            EVTCHNOP_ALLOC_UNBOUND,
            (&raw mut arg) as u64,
            0,
        )
    })?;
    Ok(arg.port)
}

/// Closes event channel `port`.
pub(crate) fn evtchn_close(port: u32) {
    evtchn_port_op(EVTCHNOP_CLOSE, port)
}

/// An event channel operation whose argument is one port (`evtchn_send`,
/// `evtchn_close`); the result is ignored (nothing to do about a failure).
fn evtchn_port_op(op: u64, port: u32) {
    if !ready() {
        return;
    }
    let mut arg = port;
    // SAFETY: `arg` is a live `evtchn_send`/`evtchn_close` (one u32 port).
    unsafe { hypercall3(HYPERVISOR_EVENT_CHANNEL_OP, op, (&raw mut arg) as u64, 0) };
}

#[repr(C)]
struct HvmParam {
    domid: u16,
    _pad: u16,
    index: u32,
    value: u64,
}

/// Reads HVM parameter `index` of this domain.
pub(crate) fn hvm_param(index: u32) -> Result<u64, XenError> {
    let mut arg = HvmParam {
        domid: DOMID_SELF,
        _pad: 0,
        index,
        value: 0,
    };
    // SAFETY: `arg` is a live `xen_hvm_param`.
    check(unsafe { hypercall3(HYPERVISOR_HVM_OP, HVMOP_GET_PARAM, (&raw mut arg) as u64, 0) })?;
    Ok(arg.value)
}

/// Signals event channel `port`.
pub(crate) fn evtchn_send(port: u32) {
    evtchn_port_op(EVTCHNOP_SEND, port)
}

/// Gives the CPU back to Xen for a moment: the loops that wait for dom0 (console ring
/// full, xenstore replies, the flush before shutdown) call it between looks.
///
/// Interrupts stay disabled: Xen has nothing to inject into this kernel (event
/// channels are polled, no upcall is registered: see `evtchn`). An earlier version
/// enabled them around the yield to take a pending upcall; see docs/xen-under-qemu.md
/// for the triple faults both ways had under QEMU's emulated SVM.
pub(crate) fn sched_yield() {
    if ready() {
        crate::flight::record(crate::flight::Step::Yield, 0);
        // SAFETY: SCHEDOP_yield takes no argument.
        unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_YIELD, 0, 0) };
        crate::flight::record(crate::flight::Step::Yielded, 0);
    }
}

/// Shuts the domain down with `reason`; returns only if Xen refused.
pub(crate) fn sched_shutdown(reason: u32) {
    if !ready() {
        return;
    }
    let mut arg = reason;
    // SAFETY: `arg` is a live `sched_shutdown` (one u32 reason).
    unsafe {
        hypercall3(
            HYPERVISOR_SCHED_OP,
            SCHEDOP_SHUTDOWN,
            (&raw mut arg) as u64,
            0,
        )
    };
}

/// Offset of vCPU 0's `vcpu_time_info` in the shared info page.
const VCPU0_TIME: usize = 32;

/// A consistent read of vCPU 0's time record (zeroes before the page is mapped).
pub(crate) fn shared_info_time() -> TimeInfo {
    let base = SHARED_READY.load(Ordering::Relaxed) as usize;
    if base == 0 {
        return TimeInfo::default();
    }
    let p = (base + VCPU0_TIME) as *const u8;
    loop {
        // SAFETY: the shared info page is mapped at `base` (read-write, ours); the
        // fields are read volatile because Xen updates them; offsets follow
        // `vcpu_time_info` (version u32, pad u32, tsc_timestamp u64, system_time u64,
        // tsc_to_system_mul u32, tsc_shift i8).
        let t = unsafe {
            let version = p.cast::<u32>().read_volatile();
            fence(Ordering::Acquire);
            let t = TimeInfo {
                version,
                tsc_timestamp: p.add(8).cast::<u64>().read_volatile(),
                system_time: p.add(16).cast::<u64>().read_volatile(),
                tsc_to_system_mul: p.add(24).cast::<u32>().read_volatile(),
                tsc_shift: p.add(28).cast::<i8>().read_volatile(),
            };
            fence(Ordering::Acquire);
            if version & 1 == 0 && p.cast::<u32>().read_volatile() == version {
                Some(t)
            } else {
                None
            }
        };
        if let Some(t) = t {
            return t;
        }
        core::hint::spin_loop();
    }
}

/// The shared info page's address (0 before it is mapped).
pub(crate) fn shared_info_base() -> usize {
    SHARED_READY.load(Ordering::Relaxed) as usize
}

#[repr(C)]
struct SchedPoll {
    ports: u64,
    nr_ports: u32,
    timeout: u64,
}

/// `SCHEDOP_poll`: blocks vCPU 0 until one of `ports` is pending (at once if one is)
/// or until Xen system time `timeout` (0: none). Xen wakes a poller whether or not
/// the port is masked and injects nothing.
pub(crate) fn sched_poll(ports: &[u32], timeout: u64) {
    if !ready() {
        return;
    }
    let mut arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        timeout,
    };
    crate::flight::record(crate::flight::Step::Poll, timeout / 1_000_000);
    // SAFETY: `arg` is a live `sched_poll` whose handle points at `ports.len()` live
    // event channel ports (Xen reads them, with at most 128 of them).
    let ret = unsafe { hypercall3(HYPERVISOR_SCHED_OP, SCHEDOP_POLL, (&raw mut arg) as u64, 0) };
    // The result too: an error (a negative errno) would make every idle step return at
    // once, a busy loop the recorder then shows.
    crate::flight::record(crate::flight::Step::Polled, ret as u64);
}

/// Offsets of the wall clock in the shared info page: `wc_version`, `wc_sec`,
/// `wc_nsec`, `wc_sec_hi` (x86-64).
const WC_VERSION: usize = 3072;
const WC_SEC: usize = 3076;
const WC_SEC_HI: usize = 3084;

/// Unix seconds now, from the shared info's wall clock (the time of system time 0)
/// plus the pvclock's system time; `None` before the page is mapped or if Xen left the
/// wall clock unset.
pub(crate) fn wall_clock_secs() -> Option<u64> {
    let base = SHARED_READY.load(Ordering::Relaxed) as usize;
    if base == 0 {
        return None;
    }
    let read = |off: usize| {
        // SAFETY: `off` is a u32 field inside the mapped shared info page; volatile
        // because Xen updates it.
        unsafe { ((base + off) as *const u32).read_volatile() }
    };
    let secs = loop {
        let v = read(WC_VERSION);
        fence(Ordering::Acquire);
        let secs = u64::from(read(WC_SEC)) | (u64::from(read(WC_SEC_HI)) << 32);
        fence(Ordering::Acquire);
        if v & 1 == 0 && read(WC_VERSION) == v {
            break secs;
        }
        core::hint::spin_loop();
    };
    if secs == 0 {
        return None;
    }
    let t = shared_info_time();
    let now = super::pvclock::system_time_at(&t, cpu::rdtsc());
    Some(secs + now / 1_000_000_000)
}
