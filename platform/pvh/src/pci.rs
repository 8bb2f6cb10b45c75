//! PCI configuration space (mechanism #1: ports 0xCF8/0xCFC), bus scan, BARs, MSI-X.
//!
//! What a driver (morgana-virtio) needs, and no more:
//! - [`Pci::scan`] walks bus 0 and every bus behind a PCI-to-PCI bridge (PCIe root
//!   ports on q35 are such bridges);
//! - [`Pci::bar`] decodes a BAR, 64-bit BARs included (QEMU puts them above 4 GiB with
//!   enough RAM), and sizes it with the usual write-ones probe while decoding is off;
//!   a memory BAR on bus 0 that the firmware left without an address (QEMU's qboot
//!   assigns none: Linux does it itself) gets one from [`ASSIGN_WINDOW`];
//!   [`Pci::map_bar`] maps a memory BAR uncached;
//! - [`Pci::capabilities`] walks the capability list (virtio's vendor capabilities, 0x09,
//!   and MSI-X, 0x11); [`Pci::msix`] + [`MsixTable`] program MSI-X entries with an
//!   [`crate::Irq`]'s message.
//!
//! Port I/O cannot fault and the kernel has one CPU with interrupts off while Rust runs,
//! so the address/data port pair needs no lock.

use crate::cpu::{inl, outl};
use crate::interrupts::MsiMessage;
use crate::paging::{self, MapError, Mmio};
use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;
use core::sync::atomic::{AtomicU64, Ordering};

const CONFIG_ADDRESS: u16 = 0xCF8;
const CONFIG_DATA: u16 = 0xCFC;

/// Where memory BARs left unassigned by the firmware are placed: inside the 32-bit PCI
/// hole of QEMU's `pc` (RAM below 4 GiB ends by 0xC000_0000) and `q35` (its ECAM ends
/// there) machines, below the firmware, I/O APIC and local APIC pages.
pub const ASSIGN_WINDOW: Range<u64> = 0xC000_0000..0xFE00_0000;
/// The next free address in [`ASSIGN_WINDOW`].
static ASSIGN_NEXT: AtomicU64 = AtomicU64::new(ASSIGN_WINDOW.start);

/// Takes `size` bytes (a power of two), aligned to `size`, from [`ASSIGN_WINDOW`], whose
/// first free address is `next`.
fn take_window(next: &AtomicU64, size: u64) -> Option<u64> {
    if !size.is_power_of_two() {
        return None;
    }
    let at = next
        .load(Ordering::Relaxed)
        .checked_next_multiple_of(size)?;
    let end = at.checked_add(size)?;
    (end <= ASSIGN_WINDOW.end).then(|| {
        next.store(end, Ordering::Relaxed);
        at
    })
}

/// Command register bits.
pub mod command {
    /// Respond to I/O space accesses.
    pub const IO: u16 = 1 << 0;
    /// Respond to memory space accesses.
    pub const MEMORY: u16 = 1 << 1;
    /// May master the bus (DMA, MSI writes).
    pub const BUS_MASTER: u16 = 1 << 2;
    /// Legacy INTx assertion disabled.
    pub const INTX_DISABLE: u16 = 1 << 10;
}

/// Capability IDs.
pub mod capability {
    /// MSI.
    pub const MSI: u8 = 0x05;
    /// Vendor-specific (virtio's configuration structures).
    pub const VENDOR: u8 = 0x09;
    /// MSI-X.
    pub const MSIX: u8 = 0x11;
}

/// Bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// Bus 0-255.
    pub bus: u8,
    /// Device 0-31.
    pub device: u8,
    /// Function 0-7.
    pub function: u8,
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

impl PciAddress {
    fn config_address(self, offset: u8) -> u32 {
        0x8000_0000
            | (u32::from(self.bus) << 16)
            | (u32::from(self.device & 0x1F) << 11)
            | (u32::from(self.function & 0x7) << 8)
            | u32::from(offset & 0xFC)
    }
}

/// A present PCI function and its identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciFunction {
    /// Where it is.
    pub address: PciAddress,
    /// Vendor ID (0x1af4: virtio).
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Class code.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Revision.
    pub revision: u8,
    /// Header type (bit 7 masked off): 0 device, 1 PCI-to-PCI bridge.
    pub header_type: u8,
    /// Legacy interrupt pin (1 = INTA# ... 4 = INTD#; 0 none).
    pub interrupt_pin: u8,
    /// Legacy interrupt line as assigned by the firmware (an ISA IRQ on PC machines).
    pub interrupt_line: u8,
}

/// A decoded base address register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space.
    Memory {
        /// Physical address.
        address: u64,
        /// Size in bytes.
        size: u64,
        /// Prefetchable.
        prefetchable: bool,
        /// A 64-bit BAR (occupies this slot and the next).
        is_64bit: bool,
    },
    /// I/O space.
    Io {
        /// First port.
        port: u16,
        /// Number of ports.
        size: u16,
    },
}

/// PCI errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PciError {
    /// BAR index beyond 5 (or beyond 1 on a bridge), or the upper half of a 64-bit BAR.
    NoSuchBar,
    /// The BAR is not implemented (reads as zero size).
    Unimplemented,
    /// The firmware assigned no address.
    Unassigned,
    /// An I/O BAR where a memory BAR was needed.
    NotMemory,
    /// No MSI-X capability.
    NoMsix,
    /// Mapping failed.
    Map(MapError),
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PciError::NoSuchBar => f.write_str("no such BAR"),
            PciError::Unimplemented => f.write_str("BAR not implemented"),
            PciError::Unassigned => f.write_str("BAR has no address assigned"),
            PciError::NotMemory => f.write_str("BAR is not a memory BAR"),
            PciError::NoMsix => f.write_str("device has no MSI-X capability"),
            PciError::Map(e) => write!(f, "cannot map BAR: {e}"),
        }
    }
}

impl From<MapError> for PciError {
    fn from(e: MapError) -> Self {
        PciError::Map(e)
    }
}

/// The MSI-X capability of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsixCapability {
    /// Offset of the capability in configuration space.
    pub offset: u8,
    /// Number of table entries.
    pub table_size: u16,
    /// BAR holding the table.
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
    /// BAR holding the pending-bit array.
    pub pba_bar: u8,
    /// Offset of the pending-bit array in that BAR.
    pub pba_offset: u32,
}

/// A mapped MSI-X table.
#[derive(Clone, Copy, Debug)]
pub struct MsixTable {
    mmio: Mmio,
    entries: u16,
}

impl MsixTable {
    /// Number of entries.
    pub fn len(&self) -> u16 {
        self.entries
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Programs entry `index` to send `message`, masked or not.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn set(&self, index: u16, message: MsiMessage, masked: bool) {
        assert!(
            index < self.entries,
            "MSI-X entry {index} of {}",
            self.entries
        );
        let base = u64::from(index) * 16;
        self.mmio.write32(base + 12, 1); // mask while changing
        self.mmio.write32(base, message.address as u32);
        self.mmio.write32(base + 4, (message.address >> 32) as u32);
        self.mmio.write32(base + 8, message.data);
        self.mmio.write32(base + 12, u32::from(masked));
    }
}

/// The PCI configuration-space handle. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Pci {
    _private: (),
}

impl Pci {
    pub(crate) const fn new() -> Pci {
        Pci { _private: () }
    }

    /// Reads the dword at `offset` (rounded down to 4).
    pub fn read32(&self, at: PciAddress, offset: u8) -> u32 {
        // SAFETY: 0xCF8/0xCFC are the PC's configuration mechanism #1; selecting an
        // address and reading the data port has no other effect (one CPU, interrupts off:
        // nothing interleaves between the two accesses).
        unsafe {
            outl(CONFIG_ADDRESS, at.config_address(offset));
            inl(CONFIG_DATA)
        }
    }

    /// Writes the dword at `offset` (rounded down to 4).
    pub fn write32(&self, at: PciAddress, offset: u8, value: u32) {
        // SAFETY: as in `read32`; what the write does to the device is the caller's
        // business (configuration space is the device's interface, not Rust memory).
        unsafe {
            outl(CONFIG_ADDRESS, at.config_address(offset));
            outl(CONFIG_DATA, value);
        }
    }

    /// Reads a 16-bit register.
    pub fn read16(&self, at: PciAddress, offset: u8) -> u16 {
        (self.read32(at, offset) >> ((offset & 2) * 8)) as u16
    }

    /// Reads a byte register.
    pub fn read8(&self, at: PciAddress, offset: u8) -> u8 {
        (self.read32(at, offset) >> ((offset & 3) * 8)) as u8
    }

    /// Writes a 16-bit register (read-modify-write of its dword).
    pub fn write16(&self, at: PciAddress, offset: u8, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read32(at, offset);
        let new = (old & !(0xFFFF << shift)) | (u32::from(value) << shift);
        self.write32(at, offset, new);
    }

    /// The function at `at`, if present.
    pub fn function(&self, at: PciAddress) -> Option<PciFunction> {
        let id = self.read32(at, 0x00);
        if id & 0xFFFF == 0xFFFF {
            return None;
        }
        let class = self.read32(at, 0x08);
        let hdr = self.read32(at, 0x0C);
        let irq = self.read32(at, 0x3C);
        Some(PciFunction {
            address: at,
            vendor_id: id as u16,
            device_id: (id >> 16) as u16,
            revision: class as u8,
            prog_if: (class >> 8) as u8,
            subclass: (class >> 16) as u8,
            class: (class >> 24) as u8,
            header_type: ((hdr >> 16) as u8) & 0x7F,
            interrupt_line: irq as u8,
            interrupt_pin: (irq >> 8) as u8,
        })
    }

    /// Every function on bus 0 and behind its bridges, in bus/device/function order.
    pub fn scan(&self) -> Vec<PciFunction> {
        let mut found = Vec::new();
        let mut visited = [0u64; 4];
        let mut buses = Vec::from([0u8]);
        // Several host bridges: function f of 00:00 is the root of bus f.
        let host = PciAddress {
            bus: 0,
            device: 0,
            function: 0,
        };
        if self.function(host).is_some() && self.read8(host, 0x0E) & 0x80 != 0 {
            buses.extend(1..8);
        }
        while let Some(bus) = buses.pop() {
            let (w, b) = (usize::from(bus / 64), bus % 64);
            if visited[w] & (1 << b) != 0 {
                continue;
            }
            visited[w] |= 1 << b;
            for device in 0..32 {
                for function in 0..8 {
                    let at = PciAddress {
                        bus,
                        device,
                        function,
                    };
                    let Some(f) = self.function(at) else {
                        if function == 0 {
                            break;
                        }
                        continue;
                    };
                    if f.header_type == 1 {
                        buses.push(self.read8(at, 0x19)); // secondary bus
                    }
                    // Kept in address order (buses behind bridges come in any order).
                    let pos = found.partition_point(|g: &PciFunction| g.address < at);
                    found.insert(pos, f);
                    if function == 0 && self.read8(at, 0x0E) & 0x80 == 0 {
                        break; // single-function device
                    }
                }
            }
        }
        found
    }

    /// The first function with this vendor and device ID.
    pub fn find(&self, vendor_id: u16, device_id: u16) -> Option<PciFunction> {
        self.scan()
            .into_iter()
            .find(|f| f.vendor_id == vendor_id && f.device_id == device_id)
    }

    /// Sets bits in the command register (e.g. `command::MEMORY | command::BUS_MASTER`).
    pub fn enable(&self, at: PciAddress, bits: u16) {
        let cmd = self.read16(at, 0x04);
        self.write16(at, 0x04, cmd | bits);
    }

    /// Decodes and sizes BAR `index`.
    pub fn bar(&self, at: PciAddress, index: u8) -> Result<Bar, PciError> {
        let header = self.read8(at, 0x0E) & 0x7F;
        let max = if header == 1 { 2 } else { 6 };
        if index >= max || self.is_upper_half(at, index) {
            return Err(PciError::NoSuchBar);
        }
        let cmd = self.read16(at, 0x04);
        // Decoding off while the BAR holds all-ones.
        self.write16(at, 0x04, cmd & !(command::IO | command::MEMORY));
        let mut result = self.probe_bar(at, index, max);
        if let Ok(Bar::Memory {
            address: ref mut address @ 0,
            size,
            is_64bit,
            ..
        }) = result
            && at.bus == 0
            && let Some(a) = take_window(&ASSIGN_NEXT, size)
        {
            // Behind a bridge the bridge's window would need programming too: left alone.
            let off = 0x10 + index * 4;
            let flags = self.read32(at, off) & 0xF;
            self.write32(at, off, a as u32 | flags);
            if is_64bit {
                self.write32(at, off + 4, (a >> 32) as u32);
            }
            *address = a;
        }
        self.write16(at, 0x04, cmd);
        result
    }

    /// Whether BAR `index` is the upper half of a 64-bit memory BAR.
    fn is_upper_half(&self, at: PciAddress, index: u8) -> bool {
        let mut i = 0;
        while i < index {
            let raw = self.read32(at, 0x10 + i * 4);
            let is_64bit_memory = raw & 1 == 0 && (raw >> 1) & 3 == 2;
            i += if is_64bit_memory { 2 } else { 1 };
        }
        i != index
    }

    /// Reads and sizes a BAR; decoding must be off.
    fn probe_bar(&self, at: PciAddress, index: u8, max: u8) -> Result<Bar, PciError> {
        let off = 0x10 + index * 4;
        let low = self.read32(at, off);
        self.write32(at, off, u32::MAX);
        let low_mask = self.read32(at, off);
        self.write32(at, off, low);
        if low & 1 == 1 {
            let size = (!(low_mask & !0x3)).wrapping_add(1) & 0xFFFF;
            if low_mask == 0 || size == 0 {
                return Err(PciError::Unimplemented);
            }
            return Ok(Bar::Io {
                port: (low & !0x3) as u16,
                size: size as u16,
            });
        }
        let is_64bit = (low >> 1) & 3 == 2;
        let prefetchable = low & 0x8 != 0;
        let (address, mask) = if is_64bit {
            if index + 1 >= max {
                return Err(PciError::NoSuchBar);
            }
            let high = self.read32(at, off + 4);
            self.write32(at, off + 4, u32::MAX);
            let high_mask = self.read32(at, off + 4);
            self.write32(at, off + 4, high);
            (
                (u64::from(high) << 32) | u64::from(low & !0xF),
                (u64::from(high_mask) << 32) | u64::from(low_mask & !0xF),
            )
        } else {
            (
                u64::from(low & !0xF),
                u64::from(low_mask & !0xF) | 0xFFFF_FFFF_0000_0000,
            )
        };
        if mask & 0xFFFF_FFFF == 0 && !is_64bit || mask == 0 {
            return Err(PciError::Unimplemented);
        }
        Ok(Bar::Memory {
            address,
            size: (!mask).wrapping_add(1),
            prefetchable,
            is_64bit,
        })
    }

    /// Maps memory BAR `index` (uncached) and enables memory decoding.
    pub fn map_bar(&self, at: PciAddress, index: u8) -> Result<Mmio, PciError> {
        match self.bar(at, index)? {
            Bar::Memory { address: 0, .. } => Err(PciError::Unassigned),
            Bar::Memory { address, size, .. } => {
                let mmio = paging::map_mmio(address, size)?;
                self.enable(at, command::MEMORY);
                Ok(mmio)
            }
            Bar::Io { .. } => Err(PciError::NotMemory),
        }
    }

    /// The capability list: `(id, offset)` pairs.
    pub fn capabilities(&self, at: PciAddress) -> Capabilities {
        let status = self.read16(at, 0x06);
        let first = if status & (1 << 4) != 0 {
            self.read8(at, 0x34) & 0xFC
        } else {
            0
        };
        Capabilities {
            pci: *self,
            at,
            next: first,
            budget: 48,
        }
    }

    /// The MSI-X capability, if any.
    pub fn msix(&self, at: PciAddress) -> Option<MsixCapability> {
        let (_, offset) = self
            .capabilities(at)
            .find(|&(id, _)| id == capability::MSIX)?;
        let control = self.read16(at, offset + 2);
        let table = self.read32(at, offset + 4);
        let pba = self.read32(at, offset + 8);
        Some(MsixCapability {
            offset,
            table_size: (control & 0x7FF) + 1,
            table_bar: (table & 7) as u8,
            table_offset: table & !7,
            pba_bar: (pba & 7) as u8,
            pba_offset: pba & !7,
        })
    }

    /// Maps the MSI-X table of `cap`.
    pub fn msix_table(&self, at: PciAddress, cap: &MsixCapability) -> Result<MsixTable, PciError> {
        let bar = self.map_bar(at, cap.table_bar)?;
        let len = u64::from(cap.table_size) * 16;
        let mmio = paging::map_mmio(bar.phys() + u64::from(cap.table_offset), len)?;
        Ok(MsixTable {
            mmio,
            entries: cap.table_size,
        })
    }

    /// Turns MSI-X on (and legacy INTx off) or off.
    pub fn set_msix_enabled(&self, at: PciAddress, cap: &MsixCapability, enabled: bool) {
        let control = self.read16(at, cap.offset + 2);
        let control = if enabled {
            (control | (1 << 15)) & !(1 << 14)
        } else {
            control & !(1 << 15)
        };
        self.write16(at, cap.offset + 2, control);
        if enabled {
            self.enable(at, command::INTX_DISABLE | command::BUS_MASTER);
        }
    }
}

/// Iterator over a function's capability list.
#[derive(Debug)]
pub struct Capabilities {
    pci: Pci,
    at: PciAddress,
    next: u8,
    /// Bounds the walk: a malformed list could loop.
    budget: u8,
}

impl Iterator for Capabilities {
    type Item = (u8, u8);

    fn next(&mut self) -> Option<(u8, u8)> {
        if self.next < 0x40 || self.budget == 0 {
            return None;
        }
        self.budget -= 1;
        let offset = self.next;
        let header = self.pci.read16(self.at, offset);
        self.next = ((header >> 8) as u8) & 0xFC;
        Some((header as u8, offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unassigned_bars_are_placed_aligned_inside_the_window() {
        let next = AtomicU64::new(ASSIGN_WINDOW.start);
        assert_eq!(take_window(&next, 0x1000), Some(0xC000_0000));
        assert_eq!(take_window(&next, 0x4000), Some(0xC000_4000));
        assert_eq!(take_window(&next, 0x1000), Some(0xC000_8000));
        assert_eq!(take_window(&next, 0x3000), None, "not a power of two");
        assert_eq!(take_window(&next, 1 << 31), None, "does not fit");
        assert_eq!(take_window(&next, 1 << 28), Some(0xD000_0000));
    }

    #[test]
    fn config_addresses() {
        let a = PciAddress {
            bus: 1,
            device: 3,
            function: 2,
        };
        assert_eq!(a.config_address(0x11), 0x8001_1A10);
        assert_eq!(std::format!("{a}"), "01:03.2");
    }
}
