//! A minimal PVH kernel: prints a line, sleeps 100 ms on the timer, takes one
//! self-interrupt through an allocated vector and one device interrupt through the I/O
//! APIC (COM1's IRQ 4), and powers off.
//!
//! Test switches on the command line (QEMU `-append`):
//! `fault=stack-overflow|null|panic|wx|nx|oom|error` triggers that failure so the
//! boot tests can check its report and exit status. `storm=N` first wakes the kernel N
//! times from 20-microsecond sleeps, with a xenstore read every eighth time on Xen: the
//! idle loop's halt and wake-up and, on Xen, the waits for xenstored, as fast as the
//! machine allows (the Xen harness uses it to stress event delivery). Virtio PCI devices get their BARs
//! mapped and MSI-X entry 0 programmed, as a driver would.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use morgana_pvh::cpu::outb;
use morgana_pvh::{Bar, IrqError, PciAddress, PciError, Platform};
use morgana_signatures::{Console, Entropy, MonotonicClock, StartError, Timer, WallClock};

static GREETING: &str = "Hello from a Morgana PVH kernel";

async fn main(p: &'static Platform) -> Result<(), StartError> {
    let console = p.console();
    let clock = p.clock();
    if let Some(fault) = p.cmdline_arg("fault")
        && trigger(fault, p)
    {
        return Err(StartError::new("main", &"fault=error requested"));
    }
    console.write_str(GREETING);
    console.write_str("\n");
    if let Some(n) = p.cmdline_arg("storm") {
        let n = n
            .parse::<u32>()
            .map_err(|_| StartError::new("storm", &"storm=N takes a number"))?;
        storm(p, n).await;
    }

    let before = clock.now();
    clock.sleep(Duration::from_millis(100)).await;
    let slept = clock.now().saturating_duration_since(before);
    log::info!("slept {} ms", slept.as_millis());

    let irq = p
        .interrupts()
        .allocate()
        .map_err(|e| StartError::new("irq", &e))?;
    irq.trigger_self();
    irq.wait().await;
    log::info!("interrupt on vector {:#x} delivered", irq.vector());

    // Xen PVH guests have no UART and no I/O APIC.
    if morgana_pvh::xen::on_xen() {
        log::info!(
            "on Xen {:?}: no COM1 IRQ to test",
            morgana_pvh::xen::version()
        );
        match morgana_pvh::xen::store::open().map(|mut s| {
            let name = s.read_string("name");
            let vm = s.directory("device");
            (name, vm)
        }) {
            Ok((name, devices)) => log::info!("xenstore: name {name:?}, device/ {devices:?}"),
            Err(e) => log::warn!("xenstore: {e}"),
        }
    } else {
        // An I/O APIC line: COM1 raises ISA IRQ 4 while its transmitter is empty.
        let serial_irq = p
            .interrupts()
            .allocate()
            .map_err(|e| StartError::new("irq", &e))?;
        serial_irq
            .route_isa(4)
            .map_err(|e| StartError::new("irq", &e))?;
        // SAFETY: COM1's interrupt-enable and modem-control registers: enable the
        // transmitter-empty interrupt and OUT2 (which gates the UART's IRQ line).
        unsafe {
            outb(0x3F9, 0x02);
            outb(0x3FC, 0x0B);
        }
        let deadline = clock.now().saturating_add(Duration::from_secs(5));
        let delivered = morgana_rt::timeout(&clock, deadline, serial_irq.wait()).await;
        // SAFETY: back to no UART interrupts, as the console driver expects.
        unsafe {
            outb(0x3F9, 0x00);
            outb(0x3FC, 0x03);
        }
        match delivered {
            Ok(()) => log::info!(
                "I/O APIC: COM1 IRQ 4 delivered on vector {:#x}",
                serial_irq.vector()
            ),
            Err(e) => log::warn!("I/O APIC: COM1 IRQ 4 {e}"),
        }
        drop(serial_irq);
    }

    let mut random = [0u8; 8];
    match p.entropy().fill(&mut random) {
        Ok(()) => log::info!("random: {:02x?}", random),
        Err(e) => log::info!("no entropy: {e}"),
    }
    if let Some(t) = clock.now_since_epoch() {
        log::info!("wall clock: {} s since the epoch", t.as_secs());
    }
    let pci = p.pci();
    let functions = pci.scan();
    log::info!("{} PCI functions", functions.len());
    for f in &functions {
        log::debug!(
            "pci {} {:04x}:{:04x} class {:02x}.{:02x}",
            f.address,
            f.vendor_id,
            f.device_id,
            f.class,
            f.subclass
        );
        if f.vendor_id == 0x1af4 {
            probe_virtio(p, f.address).map_err(|e| StartError::new("virtio", &e))?;
        }
    }
    Ok(())
}

/// `storm=N`: N wake-ups from short sleeps, a xenstore read every eighth on Xen.
async fn storm(p: &'static Platform, n: u32) {
    let clock = p.clock();
    let start = clock.now();
    let mut store = if morgana_pvh::xen::on_xen() {
        morgana_pvh::xen::store::open().ok()
    } else {
        None
    };
    let mut reads = 0u32;
    for i in 0..n {
        clock.sleep(Duration::from_micros(20)).await;
        if i % 8 == 0
            && let Some(s) = store.as_mut()
            && s.read_string("name").is_ok()
        {
            reads += 1;
        }
    }
    let ms = clock.now().saturating_duration_since(start).as_millis();
    log::info!("storm: {n} wake-ups and {reads} xenstore reads in {ms} ms");
}

/// What a virtio driver does first: map each memory BAR (uncached, wherever it is) and
/// point MSI-X entry 0 at an allocated vector.
fn probe_virtio(p: &'static Platform, at: PciAddress) -> Result<(), ProbeError> {
    let pci = p.pci();
    for index in 0..6 {
        let Ok(Bar::Memory {
            address,
            size,
            is_64bit,
            ..
        }) = pci.bar(at, index)
        else {
            continue;
        };
        let mmio = pci.map_bar(at, index)?;
        log::info!(
            "virtio {at} BAR{index}: {address:#x} + {size:#x}{}, mapped; first dword {:#x}",
            if is_64bit { " (64-bit)" } else { "" },
            mmio.read32(0)
        );
    }
    if let Some(cap) = pci.msix(at) {
        let table = pci.msix_table(at, &cap)?;
        let irq = p.interrupts().allocate()?;
        table.set(0, irq.msi_message(), true);
        log::info!(
            "virtio {at} MSI-X: {} entries, entry 0 -> vector {:#x}",
            table.len(),
            irq.vector()
        );
    }
    Ok(())
}

/// Why probing a virtio device failed.
enum ProbeError {
    Pci(PciError),
    Irq(IrqError),
}

impl From<PciError> for ProbeError {
    fn from(e: PciError) -> Self {
        ProbeError::Pci(e)
    }
}

impl From<IrqError> for ProbeError {
    fn from(e: IrqError) -> Self {
        ProbeError::Irq(e)
    }
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Pci(e) => write!(f, "PCI: {e}"),
            ProbeError::Irq(e) => write!(f, "interrupts: {e}"),
        }
    }
}

/// The fault switches: the platform's (`morgana_pvh::fault`) plus `oom` and `error`;
/// returns whether `main` should fail with an error.
fn trigger(fault: &str, p: &'static Platform) -> bool {
    match fault {
        "oom" => {
            let bytes = p.heap_stats().size + 1;
            let v: Vec<u8> = Vec::with_capacity(bytes);
            core::hint::black_box(v);
        }
        "error" => return true,
        other => {
            if !morgana_pvh::fault::inject(other) {
                log::warn!("unknown fault {other:?}");
            }
        }
    }
    false
}

morgana_pvh::entry!(main, heap_bytes = 4 << 20, log_level = Info);
