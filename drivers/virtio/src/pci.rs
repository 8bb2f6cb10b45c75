//! The virtio 1.x ("modern") PCI transport.
//!
//! A modern virtio PCI function describes four register regions with vendor-specific
//! capabilities (ID 0x09) in its configuration space, each naming a BAR, an offset and a
//! length: the common configuration (status, features, queue set-up), the notification
//! region (where the driver writes a queue's index to kick it), the ISR status byte, and
//! the device-specific configuration (the MAC address for a NIC).
//!
//! - [`VirtioPciCaps::parse`] finds them in the capability list (pure parsing: tested on
//!   the host with a fake configuration space);
//! - a [`PciRegs`] gives volatile access to the mapped regions (morgana-pvh's MMIO in
//!   [`crate::pvh`], an in-memory register file in the host tests);
//! - [`PciTransport`] implements [`Transport`] over any [`PciRegs`], checking every
//!   offset it derives from the device against the region's length, so a confused
//!   device gives an [`Error`], never an out-of-bounds access.
//!
//! Transitional devices (QEMU's default `virtio-net-pci`, device ID 0x1000) offer these
//! capabilities next to the legacy I/O BAR; the legacy interface is not used.

use crate::Error;
use crate::transport::{NO_VECTOR, QueueNotify, QueueSetup, Transport};
use core::fmt;

/// The PCI vendor ID of virtio devices.
pub const VIRTIO_VENDOR_ID: u16 = 0x1AF4;
/// Device ID of a modern-only virtio network device (0x1040 + device type 1).
pub const NET_MODERN_DEVICE_ID: u16 = 0x1041;
/// Device ID of a transitional virtio network device (legacy + modern).
pub const NET_TRANSITIONAL_DEVICE_ID: u16 = 0x1000;

/// `cfg_type` values of the virtio PCI capabilities.
pub mod cfg_type {
    /// Common configuration.
    pub const COMMON: u8 = 1;
    /// Notifications.
    pub const NOTIFY: u8 = 2;
    /// ISR status.
    pub const ISR: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE: u8 = 4;
    /// PCI configuration access window (not used).
    pub const PCI_CFG: u8 = 5;
}

/// Byte offsets in the common configuration structure (virtio 1.x,
/// `struct virtio_pci_common_cfg`).
pub mod common {
    /// le32: which 32 feature bits `DEVICE_FEATURE` shows.
    pub const DEVICE_FEATURE_SELECT: usize = 0x00;
    /// le32, read-only: 32 of the device's feature bits.
    pub const DEVICE_FEATURE: usize = 0x04;
    /// le32: which 32 feature bits `DRIVER_FEATURE` takes.
    pub const DRIVER_FEATURE_SELECT: usize = 0x08;
    /// le32: 32 of the driver's accepted feature bits.
    pub const DRIVER_FEATURE: usize = 0x0C;
    /// le16: MSI-X entry for configuration changes.
    pub const CONFIG_MSIX_VECTOR: usize = 0x10;
    /// le16, read-only: number of queues.
    pub const NUM_QUEUES: usize = 0x12;
    /// u8: device status.
    pub const DEVICE_STATUS: usize = 0x14;
    /// u8, read-only: configuration generation.
    pub const CONFIG_GENERATION: usize = 0x15;
    /// le16: which queue the `QUEUE_*` fields show.
    pub const QUEUE_SELECT: usize = 0x16;
    /// le16: queue size (the device's maximum on reset; the driver may lower it).
    pub const QUEUE_SIZE: usize = 0x18;
    /// le16: MSI-X entry for the queue.
    pub const QUEUE_MSIX_VECTOR: usize = 0x1A;
    /// le16: 1 enables the queue.
    pub const QUEUE_ENABLE: usize = 0x1C;
    /// le16, read-only: the queue's notification offset, in multiplier units.
    pub const QUEUE_NOTIFY_OFF: usize = 0x1E;
    /// le64: descriptor table address.
    pub const QUEUE_DESC: usize = 0x20;
    /// le64: available ring address.
    pub const QUEUE_DRIVER: usize = 0x28;
    /// le64: used ring address.
    pub const QUEUE_DEVICE: usize = 0x30;
    /// Size of the fields above: the least a common configuration region must have.
    pub const LEN: usize = 0x38;
}

/// One of the four register regions of a modern virtio PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The common configuration.
    Common,
    /// The notification region.
    Notify,
    /// The ISR status byte.
    Isr,
    /// The device-specific configuration.
    Device,
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Region::Common => "common configuration",
            Region::Notify => "notification",
            Region::Isr => "ISR status",
            Region::Device => "device configuration",
        })
    }
}

/// Where a capability puts its region: BAR `bar`, `length` bytes from `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapRegion {
    /// BAR index (0-5).
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The four regions of a modern virtio PCI function, found in its capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioPciCaps {
    /// Common configuration.
    pub common: CapRegion,
    /// Notification region.
    pub notify: CapRegion,
    /// Queue `q`'s notification address is `notify.offset + queue_notify_off(q) *
    /// notify_off_multiplier`.
    pub notify_off_multiplier: u32,
    /// ISR status.
    pub isr: CapRegion,
    /// Device-specific configuration.
    pub device: CapRegion,
}

impl VirtioPciCaps {
    /// Parses the vendor-specific capabilities at `offsets` (configuration-space offsets
    /// of capabilities with ID 0x09, in list order) with `read32`, which reads the
    /// configuration dword at an offset. The first usable capability of each type wins,
    /// as the specification asks; types this driver does not use are skipped.
    ///
    /// Fails with [`Error::MissingCapability`] when one of the four regions is absent:
    /// the device is legacy-only (e.g. `disable-modern=on`).
    pub fn parse(
        offsets: impl IntoIterator<Item = u8>,
        read32: impl Fn(u8) -> u32,
    ) -> Result<VirtioPciCaps, Error> {
        let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
        let mut multiplier = 0;
        for at in offsets {
            let head = read32(at);
            let cap_len = (head >> 16) as u8;
            let kind = (head >> 24) as u8;
            let bar = read32(at.wrapping_add(4)) as u8;
            if cap_len < 16 || bar > 5 {
                continue; // malformed or a reserved BAR value: unusable
            }
            let region = CapRegion {
                bar,
                offset: read32(at.wrapping_add(8)),
                length: read32(at.wrapping_add(12)),
            };
            match kind {
                cfg_type::COMMON if common.is_none() => common = Some(region),
                cfg_type::NOTIFY if notify.is_none() && cap_len >= 20 => {
                    notify = Some(region);
                    multiplier = read32(at.wrapping_add(16));
                }
                cfg_type::ISR if isr.is_none() => isr = Some(region),
                cfg_type::DEVICE if device.is_none() => device = Some(region),
                _ => {}
            }
        }
        Ok(VirtioPciCaps {
            common: common.ok_or(Error::MissingCapability(Region::Common))?,
            notify: notify.ok_or(Error::MissingCapability(Region::Notify))?,
            notify_off_multiplier: multiplier,
            isr: isr.ok_or(Error::MissingCapability(Region::Isr))?,
            device: device.ok_or(Error::MissingCapability(Region::Device))?,
        })
    }

    /// The capability of `region`.
    pub fn region(&self, region: Region) -> CapRegion {
        match region {
            Region::Common => self.common,
            Region::Notify => self.notify,
            Region::Isr => self.isr,
            Region::Device => self.device,
        }
    }
}

/// Volatile access to the mapped register regions of a modern virtio PCI function.
///
/// Offsets are relative to the region's start. [`PciTransport`] only calls these with
/// accesses that fit in [`PciRegs::len`] and are naturally aligned; an implementation
/// may panic otherwise (a driver bug).
pub trait PciRegs {
    /// Length of `region` in bytes.
    fn len(&self, region: Region) -> usize;
    /// Reads a byte.
    fn read8(&self, region: Region, offset: usize) -> u8;
    /// Reads a little-endian 16-bit register.
    fn read16(&self, region: Region, offset: usize) -> u16;
    /// Reads a little-endian 32-bit register.
    fn read32(&self, region: Region, offset: usize) -> u32;
    /// Writes a byte.
    fn write8(&self, region: Region, offset: usize, value: u8);
    /// Writes a little-endian 16-bit register.
    fn write16(&self, region: Region, offset: usize, value: u16);
    /// Writes a little-endian 32-bit register.
    fn write32(&self, region: Region, offset: usize, value: u32);
}

/// The modern virtio PCI transport over mapped registers.
#[derive(Debug)]
pub struct PciTransport<R: PciRegs> {
    regs: R,
    notify_off_multiplier: u32,
}

impl<R: PciRegs> PciTransport<R> {
    /// A transport over `regs`, checking that each region is large enough for the
    /// registers every device has.
    pub fn new(regs: R, notify_off_multiplier: u32) -> Result<PciTransport<R>, Error> {
        for (region, least) in [
            (Region::Common, common::LEN),
            (Region::Notify, 2),
            (Region::Isr, 1),
        ] {
            let len = regs.len(region);
            if len < least {
                return Err(Error::RegionTooSmall { region, len });
            }
        }
        Ok(PciTransport {
            regs,
            notify_off_multiplier,
        })
    }

    /// The registers.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    fn write64(&self, offset: usize, value: u64) {
        // 64-bit fields may be written as two 32-bit halves (virtio 1.x, 4.1.3.1).
        self.regs.write32(Region::Common, offset, value as u32);
        self.regs
            .write32(Region::Common, offset + 4, (value >> 32) as u32);
    }
}

impl<R: PciRegs> Transport for PciTransport<R> {
    fn status(&self) -> u8 {
        self.regs.read8(Region::Common, common::DEVICE_STATUS)
    }

    fn set_status(&self, status: u8) {
        self.regs
            .write8(Region::Common, common::DEVICE_STATUS, status);
    }

    fn device_features(&self) -> u64 {
        let r = &self.regs;
        r.write32(Region::Common, common::DEVICE_FEATURE_SELECT, 0);
        let low = r.read32(Region::Common, common::DEVICE_FEATURE);
        r.write32(Region::Common, common::DEVICE_FEATURE_SELECT, 1);
        let high = r.read32(Region::Common, common::DEVICE_FEATURE);
        (u64::from(high) << 32) | u64::from(low)
    }

    fn set_driver_features(&self, features: u64) {
        let r = &self.regs;
        r.write32(Region::Common, common::DRIVER_FEATURE_SELECT, 0);
        r.write32(Region::Common, common::DRIVER_FEATURE, features as u32);
        r.write32(Region::Common, common::DRIVER_FEATURE_SELECT, 1);
        r.write32(
            Region::Common,
            common::DRIVER_FEATURE,
            (features >> 32) as u32,
        );
    }

    fn max_queue_size(&self, queue: u16) -> u16 {
        let r = &self.regs;
        if queue >= r.read16(Region::Common, common::NUM_QUEUES) {
            return 0;
        }
        r.write16(Region::Common, common::QUEUE_SELECT, queue);
        r.read16(Region::Common, common::QUEUE_SIZE)
    }

    fn setup_queue(&self, queue: u16, setup: &QueueSetup) -> Result<QueueNotify, Error> {
        let r = &self.regs;
        r.write16(Region::Common, common::QUEUE_SELECT, queue);
        r.write16(Region::Common, common::QUEUE_SIZE, setup.size);
        let size = r.read16(Region::Common, common::QUEUE_SIZE);
        if size != setup.size {
            return Err(Error::QueueSizeRejected {
                queue,
                size: setup.size,
            });
        }
        self.write64(common::QUEUE_DESC, setup.desc);
        self.write64(common::QUEUE_DRIVER, setup.driver);
        self.write64(common::QUEUE_DEVICE, setup.device);
        let vector = setup.msix_vector.unwrap_or(NO_VECTOR);
        r.write16(Region::Common, common::QUEUE_MSIX_VECTOR, vector);
        // The device answers NO_VECTOR when it could not allocate the vector.
        if vector != NO_VECTOR && r.read16(Region::Common, common::QUEUE_MSIX_VECTOR) != vector {
            return Err(Error::MsixVectorRejected { queue, vector });
        }
        let notify_off = r.read16(Region::Common, common::QUEUE_NOTIFY_OFF);
        let offset = u64::from(notify_off) * u64::from(self.notify_off_multiplier);
        let len = r.len(Region::Notify) as u64;
        if offset + 2 > len || !offset.is_multiple_of(2) {
            return Err(Error::NotifyOutOfRange {
                queue,
                offset,
                len: len as usize,
            });
        }
        r.write16(Region::Common, common::QUEUE_ENABLE, 1);
        Ok(QueueNotify {
            queue,
            cookie: offset as u32,
        })
    }

    fn notify(&self, notify: QueueNotify) {
        self.regs
            .write16(Region::Notify, notify.cookie as usize, notify.queue);
    }

    fn set_config_vector(&self, vector: Option<u16>) {
        self.regs.write16(
            Region::Common,
            common::CONFIG_MSIX_VECTOR,
            vector.unwrap_or(NO_VECTOR),
        );
    }

    fn ack_interrupt(&self) -> u8 {
        self.regs.read8(Region::Isr, 0)
    }

    fn config_generation(&self) -> u8 {
        self.regs.read8(Region::Common, common::CONFIG_GENERATION)
    }

    fn read_config8(&self, offset: usize) -> Option<u8> {
        (offset < self.regs.len(Region::Device)).then(|| self.regs.read8(Region::Device, offset))
    }

    fn read_config16(&self, offset: usize) -> Option<u16> {
        (offset.is_multiple_of(2) && offset + 2 <= self.regs.len(Region::Device))
            .then(|| self.regs.read16(Region::Device, offset))
    }

    fn read_config32(&self, offset: usize) -> Option<u32> {
        (offset.is_multiple_of(4) && offset + 4 <= self.regs.len(Region::Device))
            .then(|| self.regs.read32(Region::Device, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration space of 256 bytes with a capability list.
    struct ConfigSpace([u8; 256]);

    impl ConfigSpace {
        fn read32(&self, at: u8) -> u32 {
            let a = usize::from(at & 0xFC);
            u32::from_le_bytes(self.0[a..a + 4].try_into().unwrap())
        }

        /// Writes a virtio capability at `at`, linked to `next`.
        fn cap(&mut self, at: usize, next: u8, kind: u8, bar: u8, offset: u32, length: u32) {
            let len = if kind == cfg_type::NOTIFY { 20 } else { 16 };
            self.0[at..at + 4].copy_from_slice(&[0x09, next, len, kind]);
            self.0[at + 4] = bar;
            self.0[at + 8..at + 12].copy_from_slice(&offset.to_le_bytes());
            self.0[at + 12..at + 16].copy_from_slice(&length.to_le_bytes());
        }
    }

    #[test]
    fn finds_the_four_regions_the_way_qemu_lays_them_out() {
        let mut c = ConfigSpace([0; 256]);
        // QEMU: BAR4, common at 0, ISR at 0x1000, device at 0x2000, notify at 0x3000
        // with multiplier 4; plus a PCI_CFG capability and a second COMMON that must lose.
        c.cap(0x84, 0x70, cfg_type::PCI_CFG, 0, 0, 0);
        c.cap(0x70, 0x60, cfg_type::NOTIFY, 4, 0x3000, 0x1000);
        c.0[0x70 + 16..0x70 + 20].copy_from_slice(&4u32.to_le_bytes());
        c.cap(0x60, 0x50, cfg_type::DEVICE, 4, 0x2000, 0x1000);
        c.cap(0x50, 0x40, cfg_type::ISR, 4, 0x1000, 0x1000);
        c.cap(0x40, 0x98, cfg_type::COMMON, 4, 0, 0x1000);
        c.cap(0x98, 0, cfg_type::COMMON, 2, 0x500, 0x38);
        let caps =
            VirtioPciCaps::parse([0x84, 0x70, 0x60, 0x50, 0x40, 0x98], |o| c.read32(o)).unwrap();
        assert_eq!(
            caps.common,
            CapRegion {
                bar: 4,
                offset: 0,
                length: 0x1000
            }
        );
        assert_eq!(caps.notify.offset, 0x3000);
        assert_eq!(caps.notify_off_multiplier, 4);
        assert_eq!(caps.isr.offset, 0x1000);
        assert_eq!(caps.region(Region::Device).offset, 0x2000);
    }

    #[test]
    fn a_legacy_only_device_is_a_clear_error() {
        let c = ConfigSpace([0; 256]);
        let e = VirtioPciCaps::parse([], |o| c.read32(o)).unwrap_err();
        assert_eq!(e, Error::MissingCapability(Region::Common));
        assert!(std::format!("{e}").contains("legacy-only"), "{e}");
    }

    #[test]
    fn malformed_capabilities_are_skipped() {
        let mut c = ConfigSpace([0; 256]);
        c.cap(0x40, 0x50, cfg_type::COMMON, 7, 0, 0x1000); // BAR 7 does not exist
        c.cap(0x50, 0x60, cfg_type::ISR, 4, 0x1000, 0x1000);
        c.cap(0x60, 0x70, cfg_type::DEVICE, 4, 0x2000, 0x1000);
        c.cap(0x70, 0, cfg_type::NOTIFY, 4, 0x3000, 0x1000);
        c.0[0x72] = 16; // a notify capability too short to hold its multiplier
        let e = VirtioPciCaps::parse([0x40, 0x50, 0x60, 0x70], |o| c.read32(o)).unwrap_err();
        assert_eq!(e, Error::MissingCapability(Region::Common));
        c.cap(0x40, 0x50, cfg_type::COMMON, 4, 0, 0x1000);
        let e = VirtioPciCaps::parse([0x40, 0x50, 0x60, 0x70], |o| c.read32(o)).unwrap_err();
        assert_eq!(e, Error::MissingCapability(Region::Notify));
    }
}
