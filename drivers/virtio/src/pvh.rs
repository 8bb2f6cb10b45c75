//! The driver on morgana-pvh: DMA from the kernel heap, registers through
//! [`morgana_pvh::Pci`] and uncached MMIO, interrupts from `Platform::interrupts()`.
//!
//! [`VirtioNet::find`] is what the generated code calls on the PVH target:
//!
//! ```ignore
//! let nic: morgana_virtio::VirtioNet = morgana_virtio::VirtioNet::find(platform)?;
//! ```
//!
//! It takes the first virtio network function on the PCI bus (vendor 0x1af4, device
//! 0x1041, or 0x1000 for QEMU's transitional `virtio-net-pci`), maps the four regions its
//! capabilities name (BAR anywhere, above 4 GiB included), enables memory decoding and
//! bus mastering, sets up its interrupt (MSI-X, else INTx, else polling: see
//! [`PvhInterrupt`]) and initialises it ([`Net::new`]).

use crate::net::Config;
use crate::pci::{
    NET_MODERN_DEVICE_ID, NET_TRANSITIONAL_DEVICE_ID, PciRegs, PciTransport, Region,
    VIRTIO_VENDOR_ID, VirtioPciCaps,
};
use crate::{DmaMemory, Error, Hal, Interrupt, Net, QueueWatch};
use core::arch::asm;
use core::cell::RefCell;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};
use core::time::Duration;
use morgana_pvh::pci::{capability, command};
use morgana_pvh::{
    Bar, Clock, DmaBuffer, Irq, Mmio, Pci, PciAddress, PciError, PciFunction, Platform, Polarity,
    Sleep, Trigger, Watch,
};
use morgana_signatures::{Entropy, MacAddress, MonotonicClock};

/// The virtio-net driver on morgana-pvh: what the generated code gets as its `NetIf`.
pub type VirtioNet = Net<PvhHal, PciTransport<PvhRegs>, PvhInterrupt>;

/// How often the driver looks for frames when the device cannot interrupt.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);

/// morgana-pvh's DMA and barriers.
///
/// DMA memory is a zeroed, page-aligned heap allocation ([`DmaBuffer`]); the kernel maps
/// everything 1:1, so its address is its bus address. Barriers follow x86's memory
/// model (stores are not reordered with stores, loads not with loads), as Linux's
/// `virt_wmb`/`virt_rmb` do: the read and write barriers only stop the compiler; the
/// full barrier is `mfence` (a store followed by a load may otherwise pass it).
#[derive(Clone, Copy, Debug, Default)]
pub struct PvhHal;

// SAFETY: `DmaBuffer::new` hands out zeroed, page-aligned heap memory that the buffer
// owns until it is dropped; the kernel maps it 1:1, so `phys()` (`virt_to_phys`) is the
// address a device reaches it at, and the heap is ordinary write-back RAM that QEMU/KVM
// devices access coherently.
unsafe impl DmaMemory for DmaBuffer {
    fn phys(&self) -> u64 {
        DmaBuffer::phys(self)
    }

    fn as_ptr(&self) -> *mut u8 {
        DmaBuffer::as_ptr(self)
    }

    fn len(&self) -> usize {
        DmaBuffer::len(self)
    }
}

impl Hal for PvhHal {
    type Dma = DmaBuffer;

    fn dma_alloc(&self, len: usize) -> Option<DmaBuffer> {
        DmaBuffer::new(len).ok()
    }

    fn mb(&self) {
        // SAFETY: `mfence` only orders memory accesses; the asm is a compiler barrier
        // too (it may touch memory: no `nomem`).
        unsafe { asm!("mfence", options(nostack, preserves_flags)) }
    }

    fn rmb(&self) {
        // SAFETY: an empty asm block; without `nomem` the compiler must assume it
        // accesses memory, so it keeps loads and stores on their side of it.
        unsafe { asm!("", options(nostack, preserves_flags)) }
    }

    fn wmb(&self) {
        // SAFETY: as in `rmb`.
        unsafe { asm!("", options(nostack, preserves_flags)) }
    }
}

/// The four register regions of the device, mapped uncached.
#[derive(Clone, Copy, Debug)]
pub struct PvhRegs {
    common: Mmio,
    notify: Mmio,
    isr: Mmio,
    device: Mmio,
}

impl PvhRegs {
    /// Maps the regions `caps` names in the BARs of the function at `at` and enables
    /// memory decoding.
    pub fn map(pci: &Pci, at: PciAddress, caps: &VirtioPciCaps) -> Result<PvhRegs, Error> {
        let map = |region: Region| -> Result<Mmio, Error> {
            let cap = caps.region(region);
            match pci.bar(at, cap.bar)? {
                Bar::Io { .. } => Err(Error::IoBar {
                    region,
                    bar: cap.bar,
                }),
                Bar::Memory { address: 0, .. } => Err(Error::Pci(PciError::Unassigned)),
                Bar::Memory { address, size, .. } => {
                    if u64::from(cap.offset) + u64::from(cap.length) > size {
                        return Err(Error::RegionOutsideBar {
                            region,
                            bar: cap.bar,
                        });
                    }
                    pci.map_bar(at, cap.bar)?;
                    let phys = address + u64::from(cap.offset);
                    log::debug!(
                        "virtio {at}: {region} at {phys:#x} (BAR{} + {:#x}), {} bytes",
                        cap.bar,
                        cap.offset,
                        cap.length
                    );
                    morgana_pvh::map_mmio(phys, u64::from(cap.length))
                        .map_err(|e| Error::Pci(PciError::Map(e)))
                }
            }
        };
        Ok(PvhRegs {
            common: map(Region::Common)?,
            notify: map(Region::Notify)?,
            isr: map(Region::Isr)?,
            device: map(Region::Device)?,
        })
    }

    fn mmio(&self, region: Region) -> &Mmio {
        match region {
            Region::Common => &self.common,
            Region::Notify => &self.notify,
            Region::Isr => &self.isr,
            Region::Device => &self.device,
        }
    }
}

impl PciRegs for PvhRegs {
    fn len(&self, region: Region) -> usize {
        self.mmio(region).len() as usize
    }

    fn read8(&self, region: Region, offset: usize) -> u8 {
        self.mmio(region).read8(offset as u64)
    }

    fn read16(&self, region: Region, offset: usize) -> u16 {
        u16::from_le(self.mmio(region).read16(offset as u64))
    }

    fn read32(&self, region: Region, offset: usize) -> u32 {
        u32::from_le(self.mmio(region).read32(offset as u64))
    }

    fn write8(&self, region: Region, offset: usize, value: u8) {
        self.mmio(region).write8(offset as u64, value)
    }

    fn write16(&self, region: Region, offset: usize, value: u16) {
        self.mmio(region).write16(offset as u64, value.to_le())
    }

    fn write32(&self, region: Region, offset: usize, value: u32) {
        self.mmio(region).write32(offset as u64, value.to_le())
    }
}

/// Which interrupt mechanisms [`VirtioNet::find_with`] may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum InterruptPreference {
    /// MSI-X if the device has it, else INTx if the firmware assigned a line, else
    /// polling.
    #[default]
    Auto,
    /// Poll every [`POLL_INTERVAL`] (for tests, and devices whose interrupts misbehave).
    Poll,
}

/// How the device's interrupts reach the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterruptMode {
    /// MSI-X table entry 0 sends `vector`.
    Msix {
        /// The CPU vector.
        vector: u8,
    },
    /// The INTx line the firmware assigned (ISA IRQ `line`, level-triggered through the
    /// I/O APIC) on `vector`.
    Intx {
        /// The IRQ line.
        line: u8,
        /// The CPU vector.
        vector: u8,
    },
    /// No interrupt: a timer every `interval`.
    Poll {
        /// The polling interval.
        interval: Duration,
    },
}

impl fmt::Display for InterruptMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterruptMode::Msix { vector } => write!(f, "MSI-X (vector {vector:#x})"),
            InterruptMode::Intx { line, vector } => {
                write!(f, "INTx (IRQ {line}, vector {vector:#x})")
            }
            InterruptMode::Poll { interval } => {
                // As u64: formatting a u128 costs a kilobyte of image.
                let us = u64::try_from(interval.as_micros()).unwrap_or(u64::MAX);
                write!(f, "polling every {us} us")
            }
        }
    }
}

/// The [`Interrupt`] of morgana-pvh: an allocated vector (MSI-X or INTx) or a timer.
///
/// - MSI-X: the vector's handler only records the interrupt; registering polls
///   [`Irq::wait`] with the stack's waker, which the event loop wakes when the vector
///   fires (at once if it already has).
/// - INTx: the same, but the line is level-triggered: the handler masks it, and the
///   driver unmasks it after reading the ISR status (which deasserts it). QEMU's ACPI
///   tables declare the lines SeaBIOS assigns to PCI devices (ISA IRQs 5, 9, 10, 11)
///   level-triggered and active-high, on `pc` and `q35`.
/// - Polling: a [`Sleep`] of [`POLL_INTERVAL`], re-armed at each registration.
#[derive(Debug)]
pub struct PvhInterrupt {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Msix(Irq),
    Intx {
        irq: Irq,
        line: u8,
    },
    Poll {
        clock: Clock,
        sleep: RefCell<Option<Sleep>>,
    },
}

impl PvhInterrupt {
    /// Sets up the interrupt of `function` as `preference` allows. With MSI-X this
    /// programs table entry 0 and enables MSI-X (which disables INTx).
    pub fn new(
        platform: &'static Platform,
        function: &PciFunction,
        preference: InterruptPreference,
    ) -> Result<PvhInterrupt, Error> {
        let pci = platform.pci();
        let at = function.address;
        let kind = match (preference, pci.msix(at)) {
            (InterruptPreference::Auto, Some(cap)) => {
                let table = pci.msix_table(at, &cap)?;
                let irq = platform.interrupts().allocate()?;
                table.set(0, irq.msi_message(), false);
                pci.set_msix_enabled(at, &cap, true);
                Kind::Msix(irq)
            }
            (InterruptPreference::Auto, None)
                if function.interrupt_pin != 0 && (1..16).contains(&function.interrupt_line) =>
            {
                let line = function.interrupt_line;
                let irq = platform.interrupts().allocate()?;
                irq.route_gsi(u32::from(line), Trigger::Level, Polarity::High)?;
                let cmd = pci.read16(at, 0x04);
                pci.write16(at, 0x04, cmd & !command::INTX_DISABLE);
                Kind::Intx { irq, line }
            }
            _ => Kind::Poll {
                clock: platform.clock(),
                sleep: RefCell::new(None),
            },
        };
        Ok(PvhInterrupt { kind })
    }

    /// Sets up the interrupt of a device with one line of its own (virtio-mmio): I/O
    /// APIC input `gsi`, with its trigger mode and polarity, serviced like INTx (the
    /// driver acknowledges the device's interrupt status before the line is unmasked
    /// again). Falls back to polling when `preference` asks for it or when the line
    /// cannot be routed (no I/O APIC serves it: a machine without ACPI tables), saying
    /// so in the log.
    pub fn line(
        platform: &'static Platform,
        gsi: u32,
        trigger: Trigger,
        polarity: Polarity,
        preference: InterruptPreference,
    ) -> Result<PvhInterrupt, Error> {
        let poll = || Kind::Poll {
            clock: platform.clock(),
            sleep: RefCell::new(None),
        };
        let kind = match (preference, u8::try_from(gsi)) {
            (InterruptPreference::Auto, Ok(line)) => {
                let irq = platform.interrupts().allocate()?;
                match irq.route_gsi(gsi, trigger, polarity) {
                    Ok(()) => Kind::Intx { irq, line },
                    Err(e) => {
                        log::warn!("virtio: IRQ {gsi}: {e}; polling instead");
                        poll()
                    }
                }
            }
            _ => poll(),
        };
        Ok(PvhInterrupt { kind })
    }

    /// The mechanism in use.
    pub fn mode(&self) -> InterruptMode {
        match &self.kind {
            Kind::Msix(irq) => InterruptMode::Msix {
                vector: irq.vector(),
            },
            Kind::Intx { irq, line } => InterruptMode::Intx {
                line: *line,
                vector: irq.vector(),
            },
            Kind::Poll { .. } => InterruptMode::Poll {
                interval: POLL_INTERVAL,
            },
        }
    }
}

/// Parks `waker` on `irq`, waking it at once if the interrupt already fired.
fn park(irq: &Irq, waker: &Waker) {
    let mut cx = Context::from_waker(waker);
    if Pin::new(&mut irq.wait()).poll(&mut cx).is_ready() {
        waker.wake_by_ref();
    }
}

impl Interrupt for PvhInterrupt {
    fn msix_entry(&self) -> Option<u16> {
        matches!(self.kind, Kind::Msix(_)).then_some(0)
    }

    fn needs_isr_ack(&self) -> bool {
        matches!(self.kind, Kind::Intx { .. })
    }

    fn register(&self, waker: &Waker) {
        match &self.kind {
            Kind::Msix(irq) => park(irq, waker),
            Kind::Intx { irq, .. } => {
                irq.unmask();
                park(irq, waker);
            }
            Kind::Poll { clock, sleep } => {
                let mut cx = Context::from_waker(waker);
                let mut slot = sleep.borrow_mut();
                // A running tick only needs the new waker; an expired one is replaced
                // (the driver looks at the ring itself after registering).
                if let Some(s) = slot.as_mut()
                    && Pin::new(s).poll(&mut cx).is_pending()
                {
                    return;
                }
                let mut next = Sleep::until(clock.now().saturating_add(POLL_INTERVAL));
                if Pin::new(&mut next).poll(&mut cx).is_ready() {
                    waker.wake_by_ref();
                }
                *slot = Some(next);
            }
        }
    }

    unsafe fn watch_queue(&self, watch: QueueWatch) -> bool {
        let irq = match &self.kind {
            Kind::Msix(irq) | Kind::Intx { irq, .. } => irq,
            Kind::Poll { .. } => return false,
        };
        // SAFETY: this function's contract is `Irq::watch`'s, and the `Irq` drops with
        // `self`.
        unsafe {
            irq.watch(Watch {
                index: watch.used_index,
                seen: watch.seen,
                arm: watch.arm,
                arm_value: watch.on,
                disarm_value: watch.off,
            })
        }
    }

    fn unwatch_queue(&self) {
        if let Kind::Msix(irq) | Kind::Intx { irq, .. } = &self.kind {
            irq.unwatch();
        }
    }
}

/// Maps the registers of the modern virtio PCI function `function` (any device type),
/// enables memory decoding and bus mastering: its transport.
pub fn open_pci(
    platform: &'static Platform,
    function: &PciFunction,
) -> Result<PciTransport<PvhRegs>, Error> {
    let pci = platform.pci();
    let at = function.address;
    let vendor_caps = pci
        .capabilities(at)
        .filter(|&(id, _)| id == capability::VENDOR)
        .map(|(_, offset)| offset);
    let caps = VirtioPciCaps::parse(vendor_caps, |offset| pci.read32(at, offset))?;
    let regs = PvhRegs::map(&pci, at, &caps)?;
    pci.enable(at, command::MEMORY | command::BUS_MASTER);
    PciTransport::new(regs, caps.notify_off_multiplier)
}

/// Whether `f` is a virtio network device.
pub fn is_virtio_net(f: &PciFunction) -> bool {
    f.vendor_id == VIRTIO_VENDOR_ID
        && (f.device_id == NET_MODERN_DEVICE_ID || f.device_id == NET_TRANSITIONAL_DEVICE_ID)
}

/// A locally administered unicast MAC for a device without one: random when the CPU
/// has RDRAND, else made from the PCI address.
fn fallback_mac(platform: &'static Platform, at: PciAddress) -> MacAddress {
    let mut b = [0u8; 6];
    if platform.entropy().fill(&mut b).is_err() {
        b = [0x02, 0x4D, 0x47, at.bus, at.device, at.function];
    }
    b[0] = (b[0] & 0xFC) | 0x02;
    MacAddress(b)
}

impl Net<PvhHal, PciTransport<PvhRegs>, PvhInterrupt> {
    /// Finds the first virtio network device on the PCI bus and drives it, with the
    /// default [`Config`] (128-entry queues; a random locally administered MAC if the
    /// device has none) and the best interrupt mechanism available.
    ///
    /// Fails with [`Error::NoDevice`] ("no virtio-net device found on the PCI bus (add
    /// -device virtio-net-pci,netdev=...)") when there is none.
    pub fn find(platform: &'static Platform) -> Result<VirtioNet, Error> {
        let function = Self::find_function(platform)?;
        let config = Config {
            fallback_mac: fallback_mac(platform, function.address),
            ..Config::default()
        };
        Self::attach(platform, &function, config, InterruptPreference::Auto)
    }

    /// [`VirtioNet::find`] with explicit settings.
    pub fn find_with(
        platform: &'static Platform,
        config: Config,
        interrupts: InterruptPreference,
    ) -> Result<VirtioNet, Error> {
        let function = Self::find_function(platform)?;
        Self::attach(platform, &function, config, interrupts)
    }

    /// The first virtio network function on the PCI bus.
    pub fn find_function(platform: &'static Platform) -> Result<PciFunction, Error> {
        platform
            .pci()
            .scan()
            .into_iter()
            .find(is_virtio_net)
            .ok_or(Error::NoDevice)
    }

    /// Drives the virtio network device `function`.
    pub fn attach(
        platform: &'static Platform,
        function: &PciFunction,
        config: Config,
        interrupts: InterruptPreference,
    ) -> Result<VirtioNet, Error> {
        let at = function.address;
        let transport = open_pci(platform, function)?;
        let irq = PvhInterrupt::new(platform, function, interrupts)?;
        let net = Net::new(PvhHal, transport, irq, config)?;
        let (rx, tx) = net.queue_sizes();
        let (rx_bytes, tx_bytes) = net.dma_bytes();
        log::info!(
            "virtio-net {at}: MAC {}, {}, queues {rx}+{tx} ({} KiB DMA)",
            morgana_signatures::NetIf::mac_address(&net),
            net.interrupt().mode(),
            (rx_bytes + tx_bytes) / 1024
        );
        Ok(net)
    }
}
