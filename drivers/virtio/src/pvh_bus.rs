//! Virtio devices on whichever bus the machine has: the PCI bus (QEMU `pc`/`q35`, most
//! KVM hosts) or virtio-mmio windows (Firecracker, QEMU `-machine microvm`).
//!
//! [`find_device`] looks for a device type on PCI first, then over virtio-mmio, and
//! hands back a [`PvhTransport`] (either transport, one type) with its interrupt, so
//! any driver generic over [`Transport`] runs on both machine models with one
//! monomorphisation. [`AnyVirtioNet`] is virtio-net so found: what `morgana_nic::Nic`
//! drives outside Xen.
//!
//! virtio-mmio devices are taken from the kernel command line
//! (`virtio_mmio.device=<size>@<base>:<irq>`, as Firecracker and QEMU's microvm with
//! `acpi=off` pass them) and from the ACPI DSDT (QEMU's microvm with ACPI, its
//! default: `Platform::virtio_mmio_devices`), in that order, a window named by both
//! only once. A command-line entry that cannot be parsed is logged and skipped; an
//! empty window (QEMU's microvm has 24, most without a device) is skipped; a legacy
//! device is an error naming the QEMU option that makes it modern, unless a modern
//! device of the type is found too.

use crate::mmio::{self, MmioDevice, MmioRegs, MmioTransport};
use crate::pci::{PciTransport, VIRTIO_VENDOR_ID};
use crate::pvh::{InterruptPreference, PvhHal, PvhInterrupt, PvhRegs, open_pci};
use crate::transport::{QueueNotify, QueueSetup, Transport};
use crate::{Config, Error, Net};
use alloc::vec::Vec;
use core::fmt;
use morgana_pvh::{Mmio, PciFunction, Platform, Polarity, Trigger};
use morgana_signatures::{Entropy, MacAddress};

/// virtio-net on either bus, driven: the `NetIf` of a kernel outside Xen.
pub type AnyVirtioNet = Net<PvhHal, PvhTransport, PvhInterrupt>;

impl MmioRegs for Mmio {
    fn len(&self) -> usize {
        Mmio::len(self) as usize
    }

    fn read8(&self, offset: usize) -> u8 {
        Mmio::read8(self, offset as u64)
    }

    fn read16(&self, offset: usize) -> u16 {
        u16::from_le(Mmio::read16(self, offset as u64))
    }

    fn read32(&self, offset: usize) -> u32 {
        u32::from_le(Mmio::read32(self, offset as u64))
    }

    fn write32(&self, offset: usize, value: u32) {
        Mmio::write32(self, offset as u64, value.to_le())
    }
}

/// A virtio device's transport, on the PCI bus or in a virtio-mmio window.
#[derive(Debug)]
pub enum PvhTransport {
    /// The modern PCI transport.
    Pci(PciTransport<PvhRegs>),
    /// The virtio-mmio transport.
    Mmio(MmioTransport<Mmio>),
}

/// Forwards a [`Transport`] method to whichever transport this is.
macro_rules! either {
    ($self:ident, $t:ident => $e:expr) => {
        match $self {
            PvhTransport::Pci($t) => $e,
            PvhTransport::Mmio($t) => $e,
        }
    };
}

impl Transport for PvhTransport {
    fn status(&self) -> u8 {
        either!(self, t => t.status())
    }

    fn set_status(&self, status: u8) {
        either!(self, t => t.set_status(status))
    }

    fn device_features(&self) -> u64 {
        either!(self, t => t.device_features())
    }

    fn set_driver_features(&self, features: u64) {
        either!(self, t => t.set_driver_features(features))
    }

    fn max_queue_size(&self, queue: u16) -> u16 {
        either!(self, t => t.max_queue_size(queue))
    }

    fn setup_queue(&self, queue: u16, setup: &QueueSetup) -> Result<QueueNotify, Error> {
        either!(self, t => t.setup_queue(queue, setup))
    }

    fn notify(&self, notify: QueueNotify) {
        either!(self, t => t.notify(notify))
    }

    fn set_config_vector(&self, vector: Option<u16>) {
        either!(self, t => t.set_config_vector(vector))
    }

    fn ack_interrupt(&self) -> u8 {
        either!(self, t => t.ack_interrupt())
    }

    fn config_generation(&self) -> u8 {
        either!(self, t => t.config_generation())
    }

    fn read_config8(&self, offset: usize) -> Option<u8> {
        either!(self, t => t.read_config8(offset))
    }

    fn read_config16(&self, offset: usize) -> Option<u16> {
        either!(self, t => t.read_config16(offset))
    }
}

/// Where a device was found, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    /// A PCI function.
    Pci(morgana_pvh::PciAddress),
    /// A virtio-mmio window.
    Mmio(MmioDevice),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Pci(at) => write!(f, "PCI {at}"),
            Location::Mmio(d) => fmt::Display::fmt(d, f),
        }
    }
}

/// A device found and opened, not yet initialised.
#[derive(Debug)]
pub struct Found {
    /// Its transport.
    pub transport: PvhTransport,
    /// Its interrupt, set up.
    pub interrupt: PvhInterrupt,
    /// Where it is.
    pub location: Location,
}

/// PCI device IDs of virtio device type `device_type`: the modern one (0x1040 + type)
/// and, for the types QEMU also offers as transitional devices, that one.
fn pci_device_ids(device_type: u32) -> [u16; 2] {
    let modern = 0x1040u16.saturating_add(u16::try_from(device_type).unwrap_or(u16::MAX));
    let transitional = match device_type {
        mmio::device_id::NET => 0x1000,
        mmio::device_id::BLOCK => 0x1001,
        mmio::device_id::CONSOLE => 0x1003,
        mmio::device_id::ENTROPY => 0x1005,
        _ => modern,
    };
    [modern, transitional]
}

/// Whether `f` is a virtio device of type `device_type`.
fn is_virtio(f: &PciFunction, device_type: u32) -> bool {
    f.vendor_id == VIRTIO_VENDOR_ID && pci_device_ids(device_type).contains(&f.device_id)
}

/// The virtio-mmio windows of this machine: the command line's, then the firmware's
/// that the command line did not name.
pub fn mmio_devices(platform: &'static Platform) -> Vec<MmioDevice> {
    let mut devices: Vec<MmioDevice> = Vec::new();
    for entry in mmio::parse_cmdline(platform.cmdline()) {
        match entry {
            Ok(d) if devices.iter().all(|o| o.base != d.base) => devices.push(d),
            Ok(_) => {}
            Err((text, e)) => log::warn!("ignored {}={text}: {e}", mmio::CMDLINE_KEY),
        }
    }
    for d in platform.virtio_mmio_devices() {
        if devices.iter().all(|o| o.base != d.base) {
            devices.push(MmioDevice {
                base: d.base,
                size: d.size,
                irq: d.gsi,
            });
        }
    }
    devices
}

/// The line mode of a virtio-mmio device's interrupt: as the firmware declared it, or
/// level-triggered and active high for a command-line device (what QEMU's virtio-mmio
/// drives: asserted while its interrupt status is nonzero).
fn line_mode(platform: &'static Platform, d: &MmioDevice) -> (Trigger, Polarity) {
    platform
        .virtio_mmio_devices()
        .find(|f| f.base == d.base)
        .map_or((Trigger::Level, Polarity::High), |f| {
            (f.trigger, f.polarity)
        })
}

/// Opens the virtio-mmio window `d` if a device of `device_type` is behind it:
/// `Ok(None)` for an empty window or another type.
fn open_mmio(d: &MmioDevice, device_type: u32) -> Result<Option<MmioTransport<Mmio>>, Error> {
    let regs = morgana_pvh::map_mmio(d.base, d.size).map_err(|error| Error::MmioMap {
        base: d.base,
        error,
    })?;
    let transport = MmioTransport::new(regs, d.base)?;
    Ok((transport.device_id() == device_type).then_some(transport))
}

/// Finds the first virtio device of `device_type` ([`mmio::device_id`]): on the PCI
/// bus, else in a virtio-mmio window; opens its transport and sets up its interrupt
/// as `preference` allows.
///
/// Fails with [`Error::NotFound`] when there is none, or with the error of the first
/// window that could not be used (a legacy device, a window without the magic value)
/// when no usable device was found either.
pub fn find_device(
    platform: &'static Platform,
    device_type: u32,
    preference: InterruptPreference,
) -> Result<Found, Error> {
    if let Some(function) = platform
        .pci()
        .scan()
        .into_iter()
        .find(|f| is_virtio(f, device_type))
    {
        let transport = open_pci(platform, &function)?;
        let interrupt = PvhInterrupt::new(platform, &function, preference)?;
        return Ok(Found {
            transport: PvhTransport::Pci(transport),
            interrupt,
            location: Location::Pci(function.address),
        });
    }
    let mut first_error = None;
    for d in mmio_devices(platform) {
        match open_mmio(&d, device_type) {
            Ok(Some(transport)) => {
                let (trigger, polarity) = line_mode(platform, &d);
                let interrupt = PvhInterrupt::line(platform, d.irq, trigger, polarity, preference)?;
                return Ok(Found {
                    transport: PvhTransport::Mmio(transport),
                    interrupt,
                    location: Location::Mmio(d),
                });
            }
            Ok(None) => {}
            Err(e) => {
                log::debug!("{d}: {e}");
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(Error::NotFound {
        device_id: device_type,
    }))
}

/// A locally administered unicast MAC for a device without one: random when the CPU
/// has RDRAND, else made from where the device is.
fn fallback_mac(platform: &'static Platform, location: Location) -> MacAddress {
    let mut b = [0u8; 6];
    if platform.entropy().fill(&mut b).is_err() {
        b = match location {
            Location::Pci(at) => [0x02, 0x4D, 0x47, at.bus, at.device, at.function],
            Location::Mmio(d) => {
                let a = (d.base >> 9).to_le_bytes();
                [0x02, 0x4D, 0x4D, a[0], a[1], a[2]]
            }
        };
    }
    b[0] = (b[0] & 0xFC) | 0x02;
    MacAddress(b)
}

impl Net<PvhHal, PvhTransport, PvhInterrupt> {
    /// Finds the first virtio network device, on the PCI bus or over virtio-mmio, and
    /// drives it with the default [`Config`] and the best interrupt available.
    ///
    /// Fails with [`Error::NotFound`] ("no virtio-net device found, neither on the PCI
    /// bus (add -device virtio-net-pci,...) nor over virtio-mmio (with -M microvm:
    /// -device virtio-net-device,...)") when there is none.
    pub fn find_any(platform: &'static Platform) -> Result<AnyVirtioNet, Error> {
        Self::find_any_with(platform, None, InterruptPreference::Auto)
    }

    /// [`AnyVirtioNet::find_any`] with explicit settings (`None`: the default
    /// configuration with a fallback MAC for the device found).
    pub fn find_any_with(
        platform: &'static Platform,
        config: Option<Config>,
        interrupts: InterruptPreference,
    ) -> Result<AnyVirtioNet, Error> {
        let found = find_device(platform, mmio::device_id::NET, interrupts)?;
        let config = config.unwrap_or_else(|| Config {
            fallback_mac: fallback_mac(platform, found.location),
            ..Config::default()
        });
        let location = found.location;
        let net = Net::new(PvhHal, found.transport, found.interrupt, config)?;
        let (rx, tx) = net.queue_sizes();
        let (rx_bytes, tx_bytes) = net.dma_bytes();
        log::info!(
            "virtio-net {location}: MAC {}, {}, queues {rx}+{tx} ({} KiB DMA)",
            morgana_signatures::NetIf::mac_address(&net),
            net.interrupt().mode(),
            (rx_bytes + tx_bytes) / 1024
        );
        Ok(net)
    }
}
