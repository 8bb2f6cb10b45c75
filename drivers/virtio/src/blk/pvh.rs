//! The block driver on morgana-pvh: the NIC's DMA, registers and interrupts
//! ([`PvhHal`], [`PvhRegs`], [`PvhInterrupt`]), a block device's PCI IDs.
//!
//! [`VirtioBlk::find`] is what the generated code calls on the PVH target.

use morgana_pvh::pci::{capability, command};
use morgana_pvh::{PciFunction, Platform};

use super::{Blk, BlkConfig, BlkError};
use crate::pci::{PciTransport, VIRTIO_VENDOR_ID, VirtioPciCaps};
use crate::pvh::{InterruptPreference, PvhHal, PvhInterrupt, PvhRegs};

/// Device ID of a modern-only virtio block device (0x1040 + device type 2).
pub const BLK_MODERN_DEVICE_ID: u16 = 0x1042;
/// Device ID of a transitional virtio block device (QEMU's `virtio-blk-pci`).
pub const BLK_TRANSITIONAL_DEVICE_ID: u16 = 0x1001;

/// The virtio-blk driver on morgana-pvh: what the generated code gets as its `Block`.
pub type VirtioBlk = Blk<PvhHal, PciTransport<PvhRegs>, PvhInterrupt>;

/// Whether `f` is a virtio block device.
pub fn is_virtio_blk(f: &PciFunction) -> bool {
    f.vendor_id == VIRTIO_VENDOR_ID
        && (f.device_id == BLK_MODERN_DEVICE_ID || f.device_id == BLK_TRANSITIONAL_DEVICE_ID)
}

impl Blk<PvhHal, PciTransport<PvhRegs>, PvhInterrupt> {
    /// Drives the first virtio block device on the PCI bus, with the default
    /// [`BlkConfig`] and the best interrupt mechanism available.
    ///
    /// Fails with [`BlkError::NoDevice`] ("no virtio-blk device found on the PCI bus
    /// (add -drive ... -device virtio-blk-pci,drive=disk)") when there is none.
    pub fn find(platform: &'static Platform) -> Result<VirtioBlk, BlkError> {
        Self::find_nth(platform, 0, BlkConfig::default(), InterruptPreference::Auto)
    }

    /// Drives the `n`th virtio block device (0 first, in PCI bus order: QEMU gives
    /// devices without an `addr=` the free slots in the order of its command line).
    ///
    /// Fails with [`BlkError::NoDevice`] when there is none, with
    /// [`BlkError::TooFewDevices`] when there are fewer than `n + 1`.
    pub fn find_nth(
        platform: &'static Platform,
        n: usize,
        config: BlkConfig,
        interrupts: InterruptPreference,
    ) -> Result<VirtioBlk, BlkError> {
        let mut disks = platform.pci().scan();
        disks.retain(is_virtio_blk);
        let function = match disks.get(n) {
            Some(f) => f,
            None if disks.is_empty() => return Err(BlkError::NoDevice),
            None => {
                return Err(BlkError::TooFewDevices {
                    wanted: n + 1,
                    found: disks.len(),
                });
            }
        };
        Self::attach(platform, function, config, interrupts)
    }

    /// Drives the virtio block device `function`.
    pub fn attach(
        platform: &'static Platform,
        function: &PciFunction,
        config: BlkConfig,
        interrupts: InterruptPreference,
    ) -> Result<VirtioBlk, BlkError> {
        let pci = platform.pci();
        let at = function.address;
        let vendor_caps = pci
            .capabilities(at)
            .filter(|&(id, _)| id == capability::VENDOR)
            .map(|(_, offset)| offset);
        let caps = VirtioPciCaps::parse(vendor_caps, |offset| pci.read32(at, offset))?;
        let regs = PvhRegs::map(&pci, at, &caps)?;
        pci.enable(at, command::MEMORY | command::BUS_MASTER);
        let transport = PciTransport::new(regs, caps.notify_off_multiplier)?;
        let irq = PvhInterrupt::new(platform, function, interrupts)?;
        let blk = Blk::new(PvhHal, transport, irq, config)?;
        log::info!(
            "virtio-blk {at}: {} MiB in {}-byte sectors{}{}, {} slots of {} KiB, {}",
            (blk.sectors * blk.sector_size as u64) >> 20,
            blk.sector_size,
            if blk.features & super::RO != 0 {
                ", read-only"
            } else {
                ""
            },
            if blk.has_flush() { ", write cache" } else { "" },
            blk.slots(),
            blk.chunk_bytes() / 1024,
            blk.interrupt().mode()
        );
        Ok(blk)
    }
}
