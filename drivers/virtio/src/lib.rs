//! Morgana's virtio-net driver: the `NetIf` of the PVH kernel under QEMU, KVM and
//! Firecracker.
//!
//! The crate also drives virtio-blk disks as the `BLOCK` signature: see [`blk`].
//!
//! ```ignore
//! // What the generated connect chain does on the PVH target:
//! let nic = morgana_virtio::VirtioNet::find(platform)?;   // impl morgana_signatures::NetIf
//! let net = morgana_direct::Stack::connect(nic, platform.clock(), platform.entropy(), config).await?;
//! ```
//!
//! # Why our own driver rather than the `virtio-drivers` crate
//!
//! `virtio-drivers` 0.13 is a good, general library (many device types, legacy and
//! modern, MMIO and PCI). What it does not fit is Morgana's [`NetIf`] contract and its
//! event loop:
//! - **Zero copy.** Its `VirtIONet` (with `alloc`) hands out owned `RxBuffer`s and
//!   takes `TxBuffer`s that it allocates per frame; its raw interface works with
//!   caller-provided slices, copying on the way in or out. `NetIf` lends a received frame
//!   in place for the duration of a closure ([`RxToken`]) and lets the stack write a
//!   frame straight into the buffer the device will read ([`TxToken`]). Here descriptor
//!   `i` owns DMA buffer `i` for the driver's lifetime, so a frame is never copied by
//!   the driver and never allocated per packet.
//! - **Interrupts from morgana-pvh.** The receive queue raises an MSI-X vector allocated
//!   from `Platform::interrupts()`, whose wake-up goes straight to the stack's waker;
//!   the transmit queue asks for no interrupts at all (buffers are reclaimed in
//!   `transmit`). This needs control over the per-queue MSI-X vectors and the ring
//!   flags.
//! - **Size and scope.** One device type, modern interface only, no feature beyond
//!   `VERSION_1`, `MAC`, `STATUS`, `MTU`: about 1 300 lines of code (besides comments)
//!   that one can read in a sitting, every `unsafe` justified, and a fake device in the
//!   host tests that exercises the very code that runs in the kernel.
//!
//! The cost is owning the spec details (init sequence, split-ring rules, barriers); the
//! virtio 1.x layouts and constants are re-expressed here from the specification.
//!
//! # Structure: a functor over the platform
//!
//! In the spirit of rcore-os/virtio-drivers, the driver [`Net<H, T, I>`] is generic over:
//! - a [`Hal`]: DMA memory with its bus address, and memory barriers;
//! - a [`Transport`]: the device's basic facilities (status, features, queue set-up,
//!   notifications, configuration space). [`PciTransport`] implements it for the modern
//!   PCI layout over any [`PciRegs`] (the mapped register regions), [`MmioTransport`]
//!   for virtio-mmio over any [`MmioRegs`] (a register window: Firecracker, QEMU
//!   `-machine microvm`; see [`mmio`]), [`PvhTransport`] for whichever of the two the
//!   machine has;
//! - an [`Interrupt`]: how the driver learns that frames arrived.
//!
//! [`pvh`] instantiates them for morgana-pvh: [`VirtioNet`] is
//! `Net<PvhHal, PciTransport<PvhRegs>, PvhInterrupt>`, and [`VirtioNet::find`] finds the
//! device on the PCI bus (vendor 0x1af4, device 0x1041 modern or 0x1000 transitional),
//! maps its capability regions and sets up its interrupt. [`pvh_bus`] does the same on
//! either bus: [`AnyVirtioNet::find_any`] (what `morgana_nic::Nic` uses) looks on PCI,
//! then in the virtio-mmio windows named by `virtio_mmio.device=` on the command line or
//! by the ACPI DSDT, and [`pvh_bus::find_device`] does it for any device type.
//! morgana-pvh does not depend on this crate. The host tests run the same generic code
//! against an in-memory fake device (`src/fake.rs`) that implements the register file
//! and the device side of the virtqueues (behind a virtio-mmio window:
//! `src/fake_mmio.rs`).
//!
//! # What the device gets
//!
//! - Features: `VIRTIO_F_VERSION_1` (required: legacy-only devices are refused with a
//!   clear error), `VIRTIO_NET_F_MAC` (else [`Config::fallback_mac`]),
//!   `VIRTIO_NET_F_STATUS` ([`Net::link_up`]), `VIRTIO_NET_F_MTU` when the device's MTU
//!   is at most 1500, `VIRTIO_F_ACCESS_PLATFORM` (addresses are the platform's bus
//!   addresses anyway). No checksum or segmentation offload, no mergeable buffers, no
//!   control queue, no event index, one queue pair.
//! - Split virtqueues, receive queue 0 and transmit queue 1, each of
//!   [`DEFAULT_QUEUE_SIZE`] = 128 entries (or the device's maximum if smaller),
//!   descriptors never chained: header and frame share one [`BUFFER_SIZE`] (1536-byte)
//!   buffer.
//!
//! # Memory
//!
//! Per queue, one DMA allocation (whole pages on morgana-pvh): the rings
//! (`16·n + 6 + 2·n + 6 + 8·n` bytes, aligned) and `n` buffers of 1536 bytes. With the
//! default 128 entries that is 3 456 + 196 608 bytes, 196 KiB in 49 pages, per queue:
//! **392 KiB for receive and transmit together**, allocated once at start-up from the
//! heap, plus a 1.5 KiB scratch buffer allocated the first time a frame has to be
//! dropped. [`Config`] trades memory for burst tolerance (64 entries: 196 KiB).
//!
//! # Interrupts and wake-ups
//!
//! [`NetIf::register_rx_waker`] first returns consumed receive buffers to the device,
//! then arms the interrupt, then wakes at once if a frame is already waiting (so no
//! frame can slip between the stack's last `receive` and the halt). On morgana-pvh
//! ([`PvhInterrupt`]):
//! 1. **MSI-X** when the device has it (QEMU's default): entry 0 of its table carries a
//!    vector of its own to the receive queue; the transmit queue and configuration
//!    changes raise nothing.
//! 2. **INTx** through the I/O APIC otherwise (`-device virtio-net-pci,vectors=0`): the
//!    line the firmware assigned, level-triggered; the driver reads the ISR status to
//!    deassert it before unmasking it again.
//! 3. **Polling** every [`POLL_INTERVAL`] (1 ms) when neither is usable (no line
//!    assigned), or when asked for with [`pvh::InterruptPreference::Poll`]. Measured
//!    under QEMU TCG, an idle kernel then costs about 10 % more of a host core than with
//!    MSI-X, where the CPU halts between frames.
//!
//! Transmit buffers are reclaimed in [`NetIf::transmit`] (and when the transmit token
//! lent with a received frame needs one), never by interrupt. The device sends
//! asynchronously after its notification: before powering off, wait for
//! [`Net::pending_tx`] to reach 0 or the last frames are lost.
//!
//! [`NetIf`]: morgana_signatures::NetIf
//! [`NetIf::register_rx_waker`]: morgana_signatures::NetIf::register_rx_waker
//! [`NetIf::transmit`]: morgana_signatures::NetIf::transmit
//! [`PvhInterrupt`]: pvh::PvhInterrupt
//! [`POLL_INTERVAL`]: pvh::POLL_INTERVAL
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

#[cfg(feature = "blk")]
pub mod blk;
mod hal;
pub mod mmio;
mod net;
pub mod pci;
pub mod pvh;
pub mod pvh_bus;
mod queue;
#[cfg(feature = "rng")]
pub mod rng;
mod split;
pub mod transport;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod fake_mmio;
#[cfg(test)]
mod fuzz_tests;
#[cfg(all(test, feature = "rng"))]
mod rng_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_mmio;

use core::fmt;
use core::task::Waker;

#[cfg(feature = "blk")]
pub use blk::{Blk, BlkConfig, BlkError, BlkStats, VirtioBlk};
pub use hal::{DmaMemory, Hal};
pub use mmio::{MmioDevice, MmioRegs, MmioTransport};
pub use net::{
    BUFFER_SIZE, Config, DEFAULT_QUEUE_SIZE, ETHERNET_MTU, NET_HDR_LEN, Net, RxToken, Stats,
    TxToken, net_feature,
};
pub use pci::{PciRegs, PciTransport, Region, VirtioPciCaps};
pub use pvh::{PvhHal, PvhInterrupt, PvhRegs, VirtioNet};
pub use pvh_bus::{AnyVirtioNet, PvhTransport};
pub use transport::{QueueNotify, QueueSetup, Transport};

/// How the driver learns that the device may have returned receive buffers.
///
/// The driver calls [`Interrupt::register`] when the stack parks its waker
/// ([`NetIf::register_rx_waker`](morgana_signatures::NetIf::register_rx_waker)); the
/// implementation wakes it on the next interrupt (or timer tick, when polling).
/// Spurious wake-ups are fine.
pub trait Interrupt {
    /// The MSI-X table entry the receive queue should signal, if the device interrupts
    /// through MSI-X.
    fn msix_entry(&self) -> Option<u16>;

    /// Whether the device interrupts through a level-triggered INTx line, which the
    /// driver deasserts by reading the ISR status before waiting again.
    fn needs_isr_ack(&self) -> bool {
        false
    }

    /// Arranges for `waker` to be woken at the next interrupt, or at once if one is
    /// already pending. Only the latest waker needs to be kept.
    fn register(&self, waker: &Waker);

    /// Offers the platform the receive queue's state in memory, after
    /// [`register`](Interrupt::register): a platform that accepts (returns true) counts
    /// a change of the used index away from `watch.seen` as the interrupt (it may look
    /// before halting the CPU, and spin on it a little), and turns the queue's
    /// interrupts on itself ([`QueueWatch::arm`]) just before the CPU halts, then
    /// looks once more (and may turn them off again when the CPU wakes). The driver then leaves its interrupts off while it waits. One
    /// that declines (the default) leaves the driver to turn them on before it waits.
    ///
    /// # Safety
    ///
    /// The pointers must stay valid (aligned, for volatile 16-bit reads of `used_index`
    /// and writes of `arm`) until the next `watch_queue` or
    /// [`unwatch_queue`](Interrupt::unwatch_queue), or until `self` drops.
    unsafe fn watch_queue(&self, watch: QueueWatch) -> bool {
        let _ = watch;
        false
    }

    /// Withdraws the offer of [`watch_queue`](Interrupt::watch_queue).
    fn unwatch_queue(&self) {}
}

/// Where a receive queue's progress and interrupt switch are in memory
/// ([`Interrupt::watch_queue`]). The words are little-endian, as the device uses them;
/// `on` and `off` are the values to write (in native order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueWatch {
    /// The used ring's index, which the device advances when it returns a buffer.
    pub used_index: *const u16,
    /// The used index up to which the driver has taken buffers.
    pub seen: u16,
    /// The word that switches the queue's interrupts: the available ring's flags
    /// (`on` 0, `off` `VIRTQ_AVAIL_F_NO_INTERRUPT`), or with `VIRTIO_F_EVENT_IDX` its
    /// `used_event` (`on` = `seen`: one interrupt when the device returns the next
    /// buffer; `off` = `seen - 1`). The device reads it after it advances the used index.
    pub arm: *mut u16,
    /// The value of `*arm` that turns interrupts on.
    pub on: u16,
    /// The value of `*arm` that turns them off.
    pub off: u16,
}

/// Why the driver could not take the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// No virtio network device on the PCI bus.
    NoDevice,
    /// A virtio PCI capability is missing: the device offers only the legacy interface.
    MissingCapability(Region),
    /// A register region is smaller than the registers it must hold.
    RegionTooSmall {
        /// Which region.
        region: Region,
        /// Its length.
        len: usize,
    },
    /// A capability points at an I/O-space BAR (this driver maps memory BARs only).
    IoBar {
        /// Which region.
        region: Region,
        /// The BAR.
        bar: u8,
    },
    /// A capability's region does not fit in its BAR.
    RegionOutsideBar {
        /// Which region.
        region: Region,
        /// The BAR.
        bar: u8,
    },
    /// The device did not read back status 0 after a reset.
    ResetTimeout,
    /// The device does not offer `VIRTIO_F_VERSION_1`: a legacy-only device.
    NoVersion1 {
        /// The features it offers.
        offered: u64,
    },
    /// The device cleared FEATURES_OK: it does not accept the features the driver can
    /// do without.
    FeaturesRefused {
        /// What the driver asked for.
        features: u64,
    },
    /// The device has no such queue (its size reads 0).
    QueueMissing {
        /// Queue index.
        queue: u16,
    },
    /// The device's maximum queue size is not a valid virtio queue size.
    QueueSizeInvalid {
        /// Queue index.
        queue: u16,
        /// What it said.
        size: u16,
    },
    /// The device did not accept the queue size the driver wrote.
    QueueSizeRejected {
        /// Queue index.
        queue: u16,
        /// The size written.
        size: u16,
    },
    /// The device did not accept the MSI-X table entry for a queue.
    MsixVectorRejected {
        /// Queue index.
        queue: u16,
        /// The entry asked for.
        vector: u16,
    },
    /// A queue's notification address lies outside the notification region.
    NotifyOutOfRange {
        /// Queue index.
        queue: u16,
        /// Its offset in the region.
        offset: u64,
        /// The region's length.
        len: usize,
    },
    /// The device set DEVICE_NEEDS_RESET during initialisation.
    DeviceFailed,
    /// DMA memory could not be allocated.
    OutOfMemory {
        /// Bytes asked for.
        bytes: usize,
    },
    /// A PCI operation failed (BAR decoding, mapping, MSI-X table).
    Pci(morgana_pvh::PciError),
    /// No interrupt vector could be set up.
    Irq(morgana_pvh::IrqError),
    /// No device of the wanted type on the PCI bus nor over virtio-mmio.
    NotFound {
        /// The virtio device type looked for ([`mmio::device_id`]).
        device_id: u32,
    },
    /// A virtio-mmio register window is smaller than its registers.
    MmioWindowTooSmall {
        /// Its physical address.
        base: u64,
        /// Its length.
        len: usize,
    },
    /// A virtio-mmio window does not start with the magic value "virt".
    MmioBadMagic {
        /// Its physical address.
        base: u64,
        /// What it read.
        magic: u32,
    },
    /// A virtio-mmio device offers only the legacy interface (QEMU's default,
    /// `force-legacy=on`).
    MmioLegacy {
        /// Its physical address.
        base: u64,
    },
    /// A virtio-mmio device of an unknown register version.
    MmioVersion {
        /// Its physical address.
        base: u64,
        /// The version it reports.
        version: u32,
    },
    /// A virtio-mmio window could not be mapped.
    MmioMap {
        /// Its physical address.
        base: u64,
        /// Why.
        error: morgana_pvh::MapError,
    },
    /// A virtio-mmio queue was already in use (QueueReady set) before set-up.
    MmioQueueBusy {
        /// Queue index.
        queue: u16,
    },
    /// A virtio-mmio queue did not become ready when told to.
    MmioQueueNotReady {
        /// Queue index.
        queue: u16,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDevice => f.write_str(
                "no virtio-net device found on the PCI bus (add -device virtio-net-pci,netdev=...)",
            ),
            Error::MissingCapability(r) => write!(
                f,
                "the virtio-net device has no {r} capability: it is legacy-only (drop disable-modern=on)"
            ),
            Error::RegionTooSmall { region, len } => {
                write!(f, "virtio {region} region is only {len} bytes")
            }
            Error::IoBar { region, bar } => write!(
                f,
                "virtio {region} region is in I/O BAR {bar}; only memory BARs are supported"
            ),
            Error::RegionOutsideBar { region, bar } => {
                write!(f, "virtio {region} region does not fit in BAR {bar}")
            }
            Error::ResetTimeout => f.write_str("the virtio device did not complete its reset"),
            Error::NoVersion1 { offered } => write!(
                f,
                "the virtio device is legacy-only (no VIRTIO_F_VERSION_1; features {offered:#x})"
            ),
            Error::FeaturesRefused { features } => {
                write!(f, "the virtio device refused features {features:#x}")
            }
            Error::QueueMissing { queue } => {
                write!(f, "the virtio device has no queue {queue}")
            }
            Error::QueueSizeInvalid { queue, size } => {
                write!(f, "virtio queue {queue} has an invalid maximum size {size}")
            }
            Error::QueueSizeRejected { queue, size } => {
                write!(
                    f,
                    "the virtio device rejected size {size} for queue {queue}"
                )
            }
            Error::MsixVectorRejected { queue, vector } => write!(
                f,
                "the virtio device rejected MSI-X entry {vector} for queue {queue}"
            ),
            Error::NotifyOutOfRange { queue, offset, len } => write!(
                f,
                "virtio queue {queue} notifies at offset {offset:#x}, outside the {len}-byte notification region"
            ),
            Error::DeviceFailed => f.write_str("the virtio device failed during initialisation"),
            Error::OutOfMemory { bytes } => {
                write!(f, "cannot allocate {bytes} bytes of DMA memory for virtio")
            }
            Error::Pci(e) => write!(f, "virtio PCI: {e}"),
            Error::Irq(e) => write!(f, "virtio interrupt: {e}"),
            Error::NotFound { device_id } => write!(
                f,
                "no virtio-{} device found, neither on the PCI bus (add -device virtio-{}-pci,...) nor over virtio-mmio (with -M microvm: -device virtio-{}-device,...)",
                mmio::device_name(*device_id),
                mmio::device_name(*device_id),
                mmio::device_name(*device_id)
            ),
            Error::MmioWindowTooSmall { base, len } => {
                write!(f, "the virtio-mmio window at {base:#x} is only {len} bytes")
            }
            Error::MmioBadMagic { base, magic } => write!(
                f,
                "no virtio-mmio device at {base:#x} (magic value {magic:#x}, not \"virt\")"
            ),
            Error::MmioLegacy { base } => write!(
                f,
                "the virtio-mmio device at {base:#x} is legacy-only (version 1); QEMU needs -global virtio-mmio.force-legacy=false"
            ),
            Error::MmioVersion { base, version } => write!(
                f,
                "the virtio-mmio device at {base:#x} has unknown register version {version}"
            ),
            Error::MmioMap { base, error } => {
                write!(f, "cannot map the virtio-mmio window at {base:#x}: {error}")
            }
            Error::MmioQueueBusy { queue } => {
                write!(f, "virtio-mmio queue {queue} is already in use")
            }
            Error::MmioQueueNotReady { queue } => {
                write!(f, "virtio-mmio queue {queue} did not become ready")
            }
        }
    }
}

impl From<morgana_pvh::PciError> for Error {
    fn from(e: morgana_pvh::PciError) -> Error {
        Error::Pci(e)
    }
}

impl From<morgana_pvh::IrqError> for Error {
    fn from(e: morgana_pvh::IrqError) -> Error {
        Error::Irq(e)
    }
}
