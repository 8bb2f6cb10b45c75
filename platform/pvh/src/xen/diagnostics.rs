//! The kernel's debug key: `xl sysrq <domain> d` prints the state of event channels,
//! grants and timers on the PV console, then asks every driver to report its own
//! (netfront: its rings; the stack above it: its sockets).
//!
//! `xl sysrq` writes the key to the domain's `control/sysrq` node, which
//! [`super::control`] watches (as Linux guests do). The kernel's own part is printed
//! right away, from the event loop; the drivers see [`epoch`] change the next time they
//! run, and every device port's waiter is woken so that they run at once — a driver
//! stuck without a wake-up still reports, and one that never does is itself a finding.

use super::{console, evtchn, grant};
use core::sync::atomic::{AtomicU32, Ordering};

static EPOCH: AtomicU32 = AtomicU32::new(0);

/// How many diagnostic requests there have been: a driver that sees it change logs its
/// state once (`morgana_xen::device::Hal::diagnostics_epoch`).
pub fn epoch() -> u32 {
    EPOCH.load(Ordering::Relaxed)
}

/// Prints the kernel's part and asks the drivers for theirs.
pub(crate) fn report() {
    let now = crate::time::nanos_since_entry();
    let (pending, mask, sel) = evtchn::upcall_state();
    crate::console::print(format_args!(
        "xen diagnostics at {}.{:03} s: upcall pending {pending} mask {mask}, pending_sel {sel:#x}\n",
        now / 1_000_000_000,
        now / 1_000_000 % 1000,
    ));
    let store = super::store_ring().map_or(0, |(_, port)| port);
    let named = [("store", store), ("console", console::port())];
    for (name, port) in named {
        print_port(name, port);
    }
    for port in evtchn::device_ports() {
        print_port("device", port);
    }
    let grants = grant::in_use().unwrap_or(0);
    let (timers, next) = crate::time::pending_timers();
    let next = next.map_or(u64::MAX, |d| d.saturating_sub(now) / 1_000_000);
    crate::console::print(format_args!(
        "xen diagnostics: {grants} grant entries in use; {timers} timers, the next in {next} ms\n"
    ));
    print_flight();
    EPOCH.fetch_add(1, Ordering::Relaxed);
    evtchn::wake_devices();
}

/// The flight recorder's last steps (the whole ring is what the harness dumps from a
/// dead guest; these few show a live one's rhythm).
fn print_flight() {
    const SHOWN: usize = 8;
    let r = &crate::flight::RECORDER;
    let skip = r.steps().count().saturating_sub(SHOWN);
    crate::console::print(format_args!(
        "xen diagnostics: flight recorder: {} steps; the last:",
        r.count()
    ));
    for (kind, arg, micros) in r.steps().skip(skip) {
        crate::console::print(format_args!(
            " {} {arg:#x} at {micros} us;",
            crate::flight::step_name(kind)
        ));
    }
    crate::console::print(format_args!("\n"));
}

fn print_port(name: &str, port: u32) {
    let (pending, masked, fired, waker) = evtchn::port_state(port);
    let [pending, masked, fired, waker] = [pending, masked, fired, waker].map(u8::from);
    crate::console::print(format_args!(
        "xen diagnostics: port {port} ({name}): pending {pending} masked {masked} fired {fired} waker {waker}\n"
    ));
}
