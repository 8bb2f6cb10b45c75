//! The virtio 1.x MMIO transport: the device model of Firecracker and of QEMU's
//! `-machine microvm` (`-device virtio-net-device`, `virtio-blk-device`, ...).
//!
//! A virtio-mmio device is one register window (512 bytes on QEMU, 4 KiB on
//! Firecracker) at a fixed physical address with one interrupt line. Nothing on a bus
//! announces it: the machine says where it is, either
//! - on the kernel command line, as Linux's `virtio_mmio.device=<size>@<base>:<irq>`
//!   ([`parse_cmdline`]; Firecracker always passes it, QEMU's microvm does with
//!   `acpi=off`), or
//! - in the ACPI DSDT, as a device with `_HID` `LNRO0005` (QEMU's microvm with ACPI, its
//!   default), which morgana-pvh reads at boot (`Platform::virtio_mmio_devices`).
//!
//! [`MmioTransport`] implements [`Transport`] over any [`MmioRegs`] (morgana-pvh's
//! uncached [`Mmio`](morgana_pvh::Mmio) in the kernel, an in-memory register file in the
//! host tests), so every driver written against [`Transport`] (virtio-net here) runs
//! over MMIO unchanged. Only the modern interface (register version 2) is driven:
//! QEMU's `virtio-mmio` still defaults to the legacy one (`force-legacy=on`), which is
//! refused with [`Error::MmioLegacy`] naming the fix
//! (`-global virtio-mmio.force-legacy=false`); Firecracker's devices are modern.
//!
//! Register layout (virtio 1.x, "MMIO Device Register Layout"): [`reg`]. Registers
//! below 0x100 are accessed 32 bits wide only, as the specification requires; the
//! device configuration from 0x100 on is read 8 or 16 bits wide.

use crate::Error;
use crate::transport::{QueueNotify, QueueSetup, Transport};
use core::fmt;

/// `MagicValue`: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;

/// Virtio device IDs (virtio 1.x, "Device Types"), as `DeviceID` reads them.
pub mod device_id {
    /// No device behind this transport (an empty slot of QEMU's microvm).
    pub const NONE: u32 = 0;
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Console.
    pub const CONSOLE: u32 = 3;
    /// Entropy source.
    pub const ENTROPY: u32 = 4;
}

/// The name QEMU gives a device type (`virtio-<name>-device`, `virtio-<name>-pci`).
pub fn device_name(id: u32) -> &'static str {
    match id {
        device_id::NET => "net",
        device_id::BLOCK => "blk",
        device_id::CONSOLE => "serial",
        device_id::ENTROPY => "rng",
        _ => "unknown",
    }
}

/// Register offsets of the MMIO transport, version 2.
pub mod reg {
    /// R: [`MAGIC`](super::MAGIC).
    pub const MAGIC_VALUE: usize = 0x000;
    /// R: 2 for the modern interface, 1 for legacy.
    pub const VERSION: usize = 0x004;
    /// R: the virtio device type; 0 when no device is attached.
    pub const DEVICE_ID: usize = 0x008;
    /// R: the vendor.
    pub const VENDOR_ID: usize = 0x00C;
    /// R: 32 of the device's feature bits, chosen by `DEVICE_FEATURES_SEL`.
    pub const DEVICE_FEATURES: usize = 0x010;
    /// W: which 32 feature bits `DEVICE_FEATURES` shows.
    pub const DEVICE_FEATURES_SEL: usize = 0x014;
    /// W: 32 of the driver's accepted feature bits.
    pub const DRIVER_FEATURES: usize = 0x020;
    /// W: which 32 feature bits `DRIVER_FEATURES` takes.
    pub const DRIVER_FEATURES_SEL: usize = 0x024;
    /// W: which queue the `QUEUE_*` registers show.
    pub const QUEUE_SEL: usize = 0x030;
    /// R: the largest size of the selected queue; 0 if it does not exist.
    pub const QUEUE_NUM_MAX: usize = 0x034;
    /// W: the size of the selected queue.
    pub const QUEUE_NUM: usize = 0x038;
    /// RW: 1 once the selected queue is set up; 0 to take it back.
    pub const QUEUE_READY: usize = 0x044;
    /// W: a queue index: that queue has new available buffers.
    pub const QUEUE_NOTIFY: usize = 0x050;
    /// R: bit 0 used buffers, bit 1 configuration change.
    pub const INTERRUPT_STATUS: usize = 0x060;
    /// W: the interrupt bits the driver has handled.
    pub const INTERRUPT_ACK: usize = 0x064;
    /// RW: the device status (0 resets).
    pub const STATUS: usize = 0x070;
    /// W: descriptor table address, low and high 32 bits.
    pub const QUEUE_DESC_LOW: usize = 0x080;
    /// W: see [`QUEUE_DESC_LOW`].
    pub const QUEUE_DESC_HIGH: usize = 0x084;
    /// W: available ring ("driver area") address, low and high.
    pub const QUEUE_DRIVER_LOW: usize = 0x090;
    /// W: see [`QUEUE_DRIVER_LOW`].
    pub const QUEUE_DRIVER_HIGH: usize = 0x094;
    /// W: used ring ("device area") address, low and high.
    pub const QUEUE_DEVICE_LOW: usize = 0x0A0;
    /// W: see [`QUEUE_DEVICE_LOW`].
    pub const QUEUE_DEVICE_HIGH: usize = 0x0A4;
    /// R: the configuration generation.
    pub const CONFIG_GENERATION: usize = 0x0FC;
    /// The device-specific configuration starts here.
    pub const CONFIG: usize = 0x100;
}

/// Volatile access to one mapped virtio-mmio register window.
///
/// Offsets are relative to the window's start. [`MmioTransport`] only calls these with
/// naturally aligned accesses that fit in [`MmioRegs::len`]; an implementation may panic
/// otherwise (a driver bug).
pub trait MmioRegs {
    /// Length of the window in bytes.
    fn len(&self) -> usize;
    /// Whether the window is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads a byte (device configuration only).
    fn read8(&self, offset: usize) -> u8;
    /// Reads a little-endian 16-bit value (device configuration only).
    fn read16(&self, offset: usize) -> u16;
    /// Reads a little-endian 32-bit register.
    fn read32(&self, offset: usize) -> u32;
    /// Writes a little-endian 32-bit register.
    fn write32(&self, offset: usize, value: u32);
}

/// Where one virtio-mmio device is: its register window and its interrupt line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    /// Physical address of the register window.
    pub base: u64,
    /// Length of the window in bytes.
    pub size: u64,
    /// The interrupt: a GSI of the I/O APIC (an ISA IRQ number below 16).
    pub irq: u32,
}

impl fmt::Display for MmioDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "virtio-mmio {:#x} ({} bytes, IRQ {})",
            self.base, self.size, self.irq
        )
    }
}

/// The key Linux reads virtio-mmio devices from.
pub const CMDLINE_KEY: &str = "virtio_mmio.device";

/// Why a `virtio_mmio.device=` argument was not understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    /// No `@` between size and base.
    MissingBase,
    /// No `:` between base and IRQ.
    MissingIrq,
    /// The size is not a number (with an optional K, M or G suffix), or is 0.
    BadSize,
    /// The base is not a number, or the window wraps around the address space.
    BadBase,
    /// The IRQ is not a number, or is 0.
    BadIrq,
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmdlineError::MissingBase => "no `@<base>` after the size",
            CmdlineError::MissingIrq => "no `:<irq>` after the base",
            CmdlineError::BadSize => "the size is not a nonzero number (suffix K, M or G allowed)",
            CmdlineError::BadBase => "the base is not an address",
            CmdlineError::BadIrq => "the IRQ is not a nonzero number",
        })
    }
}

/// A number as Linux's `simple_strtoull(s, .., 0)` reads it: `0x` hexadecimal, a
/// leading `0` octal, else decimal. The whole string must be the number. (No string
/// slicing by index here or below: its panic path would pull core's Unicode tables
/// into the kernel image.)
fn parse_number(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(hex) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        (hex, 16u64)
    } else if let Some(octal) = s.strip_prefix('0').filter(|o| !o.is_empty()) {
        (octal, 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return None;
    }
    // By hand rather than `u64::from_str_radix`: a third of the size in the image.
    digits.bytes().try_fold(0u64, |n, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        if u64::from(d) >= radix {
            return None;
        }
        n.checked_mul(radix)?.checked_add(u64::from(d))
    })
}

/// A size as Linux's `memparse` reads it: a number with an optional K, M or G suffix.
fn parse_size(s: &str) -> Option<u64> {
    let (number, shift) = if let Some(n) = s.strip_suffix(['k', 'K']) {
        (n, 10)
    } else if let Some(n) = s.strip_suffix(['m', 'M']) {
        (n, 20)
    } else if let Some(n) = s.strip_suffix(['g', 'G']) {
        (n, 30)
    } else {
        (s, 0)
    };
    parse_number(number)?.checked_mul(1 << shift)
}

/// Parses the value of one `virtio_mmio.device=` argument: `<size>@<base>:<irq>`,
/// optionally followed by `:<id>` (a platform device ID Linux uses; ignored here).
/// Examples: `512@0xfeb00000:12` (QEMU microvm), `4K@0xd0000000:5` (Firecracker).
pub fn parse_device(value: &str) -> Result<MmioDevice, CmdlineError> {
    let (size, rest) = value.split_once('@').ok_or(CmdlineError::MissingBase)?;
    let (base, rest) = rest.split_once(':').ok_or(CmdlineError::MissingIrq)?;
    let irq = rest.split_once(':').map_or(rest, |(irq, _id)| irq);
    let size = parse_size(size)
        .filter(|&s| s != 0)
        .ok_or(CmdlineError::BadSize)?;
    let base = parse_number(base)
        .filter(|b| b.checked_add(size).is_some())
        .ok_or(CmdlineError::BadBase)?;
    let irq = parse_number(irq)
        .and_then(|i| u32::try_from(i).ok())
        .filter(|&i| i != 0)
        .ok_or(CmdlineError::BadIrq)?;
    Ok(MmioDevice { base, size, irq })
}

/// Every `virtio_mmio.device=` argument of `cmdline`, in order: the device or why its
/// text was not understood (with the text).
pub fn parse_cmdline(
    cmdline: &str,
) -> impl Iterator<Item = Result<MmioDevice, (&str, CmdlineError)>> + '_ {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| word.split_once('='))
        .filter(|&(key, _)| key == CMDLINE_KEY)
        .map(|(_, value)| parse_device(value).map_err(|e| (value, e)))
}

/// The virtio-mmio transport, modern interface, over a mapped register window.
#[derive(Debug)]
pub struct MmioTransport<R: MmioRegs> {
    regs: R,
    base: u64,
    device_id: u32,
}

impl<R: MmioRegs> MmioTransport<R> {
    /// A transport over `regs` (the window at physical `base`, named in errors): checks
    /// the magic value and the version. `device_id` then says what is behind it
    /// ([`device_id::NONE`] for an empty slot).
    pub fn new(regs: R, base: u64) -> Result<MmioTransport<R>, Error> {
        let len = regs.len();
        if len < reg::CONFIG {
            return Err(Error::MmioWindowTooSmall { base, len });
        }
        let magic = regs.read32(reg::MAGIC_VALUE);
        if magic != MAGIC {
            return Err(Error::MmioBadMagic { base, magic });
        }
        match regs.read32(reg::VERSION) {
            2 => {}
            1 => return Err(Error::MmioLegacy { base }),
            version => return Err(Error::MmioVersion { base, version }),
        }
        let device_id = regs.read32(reg::DEVICE_ID);
        Ok(MmioTransport {
            regs,
            base,
            device_id,
        })
    }

    /// The virtio device type behind the window ([`device_id`]).
    pub fn device_id(&self) -> u32 {
        self.device_id
    }

    /// The window's physical address.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The registers.
    pub fn regs(&self) -> &R {
        &self.regs
    }

    fn config_len(&self) -> usize {
        self.regs.len() - reg::CONFIG
    }

    fn write64(&self, low: usize, value: u64) {
        self.regs.write32(low, value as u32);
        self.regs.write32(low + 4, (value >> 32) as u32);
    }
}

impl<R: MmioRegs> Transport for MmioTransport<R> {
    fn status(&self) -> u8 {
        self.regs.read32(reg::STATUS) as u8
    }

    fn set_status(&self, status: u8) {
        self.regs.write32(reg::STATUS, u32::from(status));
    }

    fn device_features(&self) -> u64 {
        let r = &self.regs;
        r.write32(reg::DEVICE_FEATURES_SEL, 0);
        let low = r.read32(reg::DEVICE_FEATURES);
        r.write32(reg::DEVICE_FEATURES_SEL, 1);
        let high = r.read32(reg::DEVICE_FEATURES);
        (u64::from(high) << 32) | u64::from(low)
    }

    fn set_driver_features(&self, features: u64) {
        let r = &self.regs;
        r.write32(reg::DRIVER_FEATURES_SEL, 0);
        r.write32(reg::DRIVER_FEATURES, features as u32);
        r.write32(reg::DRIVER_FEATURES_SEL, 1);
        r.write32(reg::DRIVER_FEATURES, (features >> 32) as u32);
    }

    fn max_queue_size(&self, queue: u16) -> u16 {
        self.regs.write32(reg::QUEUE_SEL, u32::from(queue));
        // A size beyond u16 is not a valid virtio queue size: reported as the largest
        // u16, which the queue code refuses with `QueueSizeInvalid`.
        u16::try_from(self.regs.read32(reg::QUEUE_NUM_MAX)).unwrap_or(u16::MAX)
    }

    fn setup_queue(&self, queue: u16, setup: &QueueSetup) -> Result<QueueNotify, Error> {
        let r = &self.regs;
        if let Some(vector) = setup.msix_vector {
            // MMIO has one interrupt line and no MSI-X.
            return Err(Error::MsixVectorRejected { queue, vector });
        }
        r.write32(reg::QUEUE_SEL, u32::from(queue));
        if r.read32(reg::QUEUE_READY) != 0 {
            return Err(Error::MmioQueueBusy { queue });
        }
        // QueueNum is write-only: the driver keeps to QueueNumMax (the queue code does).
        r.write32(reg::QUEUE_NUM, u32::from(setup.size));
        self.write64(reg::QUEUE_DESC_LOW, setup.desc);
        self.write64(reg::QUEUE_DRIVER_LOW, setup.driver);
        self.write64(reg::QUEUE_DEVICE_LOW, setup.device);
        r.write32(reg::QUEUE_READY, 1);
        if r.read32(reg::QUEUE_READY) != 1 {
            // The device may hold the rings anyway: a reset makes it let go before the
            // caller frees their memory.
            r.write32(reg::QUEUE_READY, 0);
            self.set_status(0);
            return Err(Error::MmioQueueNotReady { queue });
        }
        Ok(QueueNotify { queue, cookie: 0 })
    }

    fn notify(&self, notify: QueueNotify) {
        self.regs
            .write32(reg::QUEUE_NOTIFY, u32::from(notify.queue));
    }

    fn set_config_vector(&self, _vector: Option<u16>) {
        // No MSI-X on MMIO: configuration changes share the device's one line.
    }

    fn ack_interrupt(&self) -> u8 {
        let pending = self.regs.read32(reg::INTERRUPT_STATUS) & 0b11;
        if pending != 0 {
            self.regs.write32(reg::INTERRUPT_ACK, pending);
        }
        pending as u8
    }

    fn config_generation(&self) -> u8 {
        self.regs.read32(reg::CONFIG_GENERATION) as u8
    }

    fn read_config8(&self, offset: usize) -> Option<u8> {
        (offset < self.config_len()).then(|| self.regs.read8(reg::CONFIG + offset))
    }

    fn read_config16(&self, offset: usize) -> Option<u16> {
        (offset.is_multiple_of(2) && offset + 2 <= self.config_len())
            .then(|| self.regs.read16(reg::CONFIG + offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms_qemu_and_firecracker_pass() {
        assert_eq!(
            parse_device("512@0xfeb00000:12"),
            Ok(MmioDevice {
                base: 0xFEB0_0000,
                size: 512,
                irq: 12
            })
        );
        assert_eq!(
            parse_device("4K@0xd0000000:5"),
            Ok(MmioDevice {
                base: 0xD000_0000,
                size: 4096,
                irq: 5
            })
        );
        // Linux's optional platform device id, and a decimal base.
        assert_eq!(
            parse_device("0x1000@4096:7:3"),
            Ok(MmioDevice {
                base: 4096,
                size: 4096,
                irq: 7
            })
        );
        assert_eq!(parse_device("1m@0x100000:010").unwrap().irq, 8);
        assert_eq!(parse_device("1M@0x100000:9").unwrap().size, 1 << 20);
        assert_eq!(parse_number("0xFEB00E00"), Some(0xFEB0_0E00));
        assert_eq!(parse_number("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_number("18446744073709551616"), None);
        assert_eq!(parse_number("09"), None, "not octal");
        assert_eq!(parse_number("12a"), None);
        assert_eq!(parse_number("0"), Some(0));
        assert_eq!(parse_number("-1"), None);
    }

    #[test]
    fn malformed_arguments_say_what_is_wrong() {
        assert_eq!(parse_device("512"), Err(CmdlineError::MissingBase));
        assert_eq!(
            parse_device("512@0xfeb00000"),
            Err(CmdlineError::MissingIrq)
        );
        assert_eq!(parse_device("@0xfeb00000:5"), Err(CmdlineError::BadSize));
        assert_eq!(parse_device("0@0xfeb00000:5"), Err(CmdlineError::BadSize));
        assert_eq!(
            parse_device("512x@0xfeb00000:5"),
            Err(CmdlineError::BadSize)
        );
        assert_eq!(parse_device("99999999999G@0:5"), Err(CmdlineError::BadSize));
        assert_eq!(parse_device("512@0x:5"), Err(CmdlineError::BadBase));
        assert_eq!(parse_device("512@feb00000:5"), Err(CmdlineError::BadBase));
        assert_eq!(
            parse_device("4K@0xfffffffffffff800:5"),
            Err(CmdlineError::BadBase)
        );
        assert_eq!(parse_device("512@0xfeb00000:"), Err(CmdlineError::BadIrq));
        assert_eq!(parse_device("512@0xfeb00000:0"), Err(CmdlineError::BadIrq));
        assert_eq!(
            parse_device("512@0xfeb00000:99999999999"),
            Err(CmdlineError::BadIrq)
        );
    }

    #[test]
    fn finds_every_device_on_a_command_line() {
        let c = "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 reboot=k \
                 virtio_mmio.device=4K@0xd0001000:6 virtio_mmio.devicex=1@2:3 \
                 virtio_mmio.device=junk virtio_mmio.device";
        let found: std::vec::Vec<_> = parse_cmdline(c).collect();
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].unwrap().base, 0xD000_0000);
        assert_eq!(found[1].unwrap().irq, 6);
        assert_eq!(found[2], Err(("junk", CmdlineError::MissingBase)));
        assert_eq!(parse_cmdline("").count(), 0);
    }
}
