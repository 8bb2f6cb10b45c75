//! virtio-mmio devices described in the DSDT: QEMU's `-machine microvm` (with ACPI,
//! its default) declares each transport that has a device attached as
//!
//! ```text
//! Device (VR00) {
//!     Name (_HID, "LNRO0005")
//!     Name (_UID, 0)
//!     Name (_CCA, 1)
//!     Name (_CRS, ResourceTemplate () {
//!         Memory32Fixed (ReadWrite, 0xFEB00000, 0x200)
//!         Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive) { 24 }
//!     })
//! }
//! ```
//!
//! and passes nothing on the kernel command line. As for `\_S5`, the DSDT is scanned
//! for the encoding rather than interpreted: each `_HID` string `LNRO0005`, then the
//! first `Name (_CRS, Buffer)` after it (before the next such `_HID`), whose resource
//! descriptors are walked one by one with their lengths checked. A device without a
//! fixed 32-bit memory range and an interrupt is skipped.

use super::{u16_at, u32_at};
use crate::interrupts::{Polarity, Trigger};
use crate::sync::CpuCell;

/// The `_HID` of a virtio-mmio transport (as Linux's virtio_mmio driver matches it).
pub const HID: &[u8] = b"LNRO0005";

/// How many devices are kept: QEMU's microvm has 24 transports, but a machine with more
/// than 8 virtio devices is not one a unikernel runs on (each kept slot costs image
/// bytes: the table is initialised data).
pub const MAX_DEVICES: usize = 8;

/// A virtio-mmio device the firmware described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioDevice {
    /// Physical address of the register window.
    pub base: u64,
    /// Its length in bytes.
    pub size: u64,
    /// Its interrupt (a GSI).
    pub gsi: u32,
    /// Edge or level.
    pub trigger: Trigger,
    /// Active high or low.
    pub polarity: Polarity,
}

/// The devices found at boot.
static FOUND: CpuCell<[Option<VirtioMmioDevice>; MAX_DEVICES]> = CpuCell::new([None; MAX_DEVICES]);

/// Keeps what the boot-time scan found, for [`found`].
pub(crate) fn keep(devices: &[Option<VirtioMmioDevice>; MAX_DEVICES]) {
    FOUND.with(|f| *f = *devices);
}

/// The devices kept at boot, in DSDT order.
pub(crate) fn found() -> impl Iterator<Item = VirtioMmioDevice> {
    FOUND.with(|f| *f).into_iter().flatten()
}

/// Decodes an AML PkgLength at the start of `b`: (length, bytes it took).
fn pkg_length(b: &[u8]) -> Option<(usize, usize)> {
    let lead = *b.first()?;
    let extra = usize::from(lead >> 6);
    if extra == 0 {
        return Some((usize::from(lead & 0x3F), 1));
    }
    let mut len = usize::from(lead & 0x0F);
    for i in 0..extra {
        len |= usize::from(*b.get(1 + i)?) << (4 + 8 * i);
    }
    Some((len, 1 + extra))
}

/// The resource bytes of `Buffer` at the start of `b` (BufferOp, PkgLength,
/// BufferSize, bytes).
fn buffer(b: &[u8]) -> Option<&[u8]> {
    if *b.first()? != 0x11 {
        return None;
    }
    let (pkg, used) = pkg_length(b.get(1..)?)?;
    // The package covers the size term and the bytes, from the PkgLength on.
    let body = b.get(1 + used..1 + pkg)?;
    let (size, used) = match *body.first()? {
        0x0A => (usize::from(*body.get(1)?), 2),
        0x0B => (usize::from(u16_at(body, 1)?), 3),
        0x0C => (u32_at(body, 1)? as usize, 5),
        _ => return None,
    };
    let bytes = body.get(used..)?;
    bytes.get(..size.min(bytes.len()))
}

/// Walks a resource template: the first fixed 32-bit memory range and the first
/// interrupt.
fn resources(mut r: &[u8]) -> Option<VirtioMmioDevice> {
    let (mut memory, mut irq) = (None, None);
    while let Some(&tag) = r.first() {
        let (kind, body, len) = if tag & 0x80 != 0 {
            let len = usize::from(u16_at(r, 1)?);
            (tag, r.get(3..3 + len)?, 3 + len)
        } else {
            let len = usize::from(tag & 7);
            ((tag >> 3) & 0x0F, r.get(1..1 + len)?, 1 + len)
        };
        match kind {
            0x0F => break, // end tag
            // Memory32Fixed: information, base, length.
            0x86 if body.len() >= 9 && memory.is_none() => {
                memory = Some((u64::from(u32_at(body, 1)?), u64::from(u32_at(body, 5)?)));
            }
            // Extended Interrupt: flags, count, the interrupts.
            0x89 if body.len() >= 6 && body[1] >= 1 && irq.is_none() => {
                let flags = body[0];
                let trigger = if flags & 2 != 0 {
                    Trigger::Edge
                } else {
                    Trigger::Level
                };
                let polarity = if flags & 4 != 0 {
                    Polarity::Low
                } else {
                    Polarity::High
                };
                irq = Some((u32_at(body, 2)?, trigger, polarity));
            }
            // Small IRQ descriptor: a mask of ISA IRQs (edge, active high by default).
            0x04 if body.len() >= 2 && irq.is_none() => {
                let mask = u16_at(body, 0)?;
                if mask != 0 {
                    let (trigger, polarity) = match body.get(2) {
                        Some(f) if f & 1 == 0 => (Trigger::Level, Polarity::Low),
                        _ => (Trigger::Edge, Polarity::High),
                    };
                    irq = Some((mask.trailing_zeros(), trigger, polarity));
                }
            }
            _ => {}
        }
        r = &r[len..];
    }
    let ((base, size), (gsi, trigger, polarity)) = (memory?, irq?);
    (size != 0).then_some(VirtioMmioDevice {
        base,
        size,
        gsi,
        trigger,
        polarity,
    })
}

/// Scans DSDT AML (after the header) for virtio-mmio devices, filling `out` in order.
pub(crate) fn scan(aml: &[u8], out: &mut [Option<VirtioMmioDevice>; MAX_DEVICES]) {
    let hids: [usize; MAX_DEVICES + 1] = {
        let mut at = [aml.len(); MAX_DEVICES + 1];
        let mut n = 0;
        let mut i = 0;
        while n < MAX_DEVICES {
            let Some(pos) = aml
                .get(i..)
                .and_then(|a| a.windows(HID.len()).position(|w| w == HID))
            else {
                break;
            };
            // `Name (_HID, "LNRO0005")`: NameOp, `_HID`, StringPrefix right before.
            let p = i + pos;
            if p >= 6 && aml[p - 1] == 0x0D && &aml[p - 5..p - 1] == b"_HID" {
                at[n] = p;
                n += 1;
            }
            i = p + HID.len();
        }
        at
    };
    let mut n = 0;
    for w in hids.windows(2) {
        let (start, end) = (w[0], w[1]);
        if start >= aml.len() {
            break;
        }
        let device = &aml[start..end];
        let Some(crs) = device.windows(5).position(|w| w == b"_CRS\x11") else {
            continue;
        };
        if let Some(d) = buffer(&device[crs + 4..]).and_then(resources)
            && let Some(slot) = out.get_mut(n)
        {
            *slot = Some(d);
            n += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// QEMU's encoding of one microvm transport (aml-build: Device, Name, Buffer).
    pub(crate) fn qemu_device(index: u8, base: u32, irq: u32) -> Vec<u8> {
        let mut crs = Vec::new();
        crs.extend_from_slice(&[0x86, 9, 0, 1]);
        crs.extend_from_slice(&base.to_le_bytes());
        crs.extend_from_slice(&0x200u32.to_le_bytes());
        crs.extend_from_slice(&[0x89, 6, 0, 0x01, 1]);
        crs.extend_from_slice(&irq.to_le_bytes());
        crs.extend_from_slice(&[0x79, 0]);
        let mut body = Vec::new();
        body.extend_from_slice(b"VR0");
        body.push(b'0' + index);
        body.extend_from_slice(b"\x08_HID\x0DLNRO0005\x00");
        body.extend_from_slice(&[0x08, b'_', b'U', b'I', b'D', 0x0A, index]);
        body.extend_from_slice(b"\x08_CCA\x01");
        body.extend_from_slice(b"\x08_CRS\x11");
        body.push((2 + crs.len() + 1) as u8); // PkgLength (one byte), size term, bytes
        body.extend_from_slice(&[0x0A, crs.len() as u8]);
        body.extend_from_slice(&crs);
        let mut d = std::vec![0x5B, 0x82, (body.len() + 1) as u8];
        d.extend_from_slice(&body);
        d
    }

    #[test]
    fn finds_qemu_microvm_transports_in_order() {
        let mut aml = Vec::new();
        aml.extend_from_slice(b"\x10\x20_SB_"); // the scope around them (not parsed)
        aml.extend_from_slice(b"\x08_HID\x0DLNRO0005\x00"); // a _HID without _CRS
        aml.extend_from_slice(&qemu_device(0, 0xFEB0_0000, 24));
        aml.extend_from_slice(&qemu_device(3, 0xFEB0_0600, 27));
        aml.extend_from_slice(b"\x08_S5_\x12\x06\x04\x05\x00\x00\x00"); // what follows
        let mut out = [None; MAX_DEVICES];
        scan(&aml, &mut out);
        let found: Vec<_> = out.iter().flatten().copied().collect();
        assert_eq!(
            found,
            [
                VirtioMmioDevice {
                    base: 0xFEB0_0000,
                    size: 0x200,
                    gsi: 24,
                    trigger: Trigger::Level,
                    polarity: Polarity::High
                },
                VirtioMmioDevice {
                    base: 0xFEB0_0600,
                    size: 0x200,
                    gsi: 27,
                    trigger: Trigger::Level,
                    polarity: Polarity::High
                }
            ]
        );
    }

    #[test]
    fn truncated_or_hostile_aml_finds_nothing_and_does_not_panic() {
        let whole = qemu_device(0, 0xFEB0_0000, 24);
        for cut in 0..whole.len() {
            let mut out = [None; MAX_DEVICES];
            scan(&whole[..cut], &mut out);
            assert!(out.iter().all(Option::is_none), "cut at {cut}: {out:?}");
        }
        // A resource length pointing past the buffer.
        let mut bad = whole.clone();
        let at = bad.windows(2).position(|w| w == [0x86, 9]).unwrap();
        bad[at + 1] = 0xF0;
        let mut out = [None; MAX_DEVICES];
        scan(&bad, &mut out);
        assert!(out.iter().all(Option::is_none));
        // A HID string that is not a `_HID` name.
        let mut out = [None; MAX_DEVICES];
        scan(
            b"\x0DLNRO0005\x00\x08_CRS\x11\x05\x0A\x02\x79\x00",
            &mut out,
        );
        assert!(out.iter().all(Option::is_none));
    }

    #[test]
    fn more_devices_than_slots_keeps_the_first() {
        let mut aml = Vec::new();
        for i in 0..(MAX_DEVICES as u32 + 6) {
            aml.extend_from_slice(&qemu_device(0, 0xFEB0_0000 + 0x200 * i, 24 + i));
        }
        let mut out = [None; MAX_DEVICES];
        scan(&aml, &mut out);
        assert_eq!(out.iter().flatten().count(), MAX_DEVICES);
        assert_eq!(
            out[MAX_DEVICES - 1].unwrap().gsi,
            24 + MAX_DEVICES as u32 - 1
        );
    }

    #[test]
    fn package_lengths_of_every_size() {
        assert_eq!(pkg_length(&[0x3F]), Some((0x3F, 1)));
        assert_eq!(pkg_length(&[0x41, 0x12]), Some((0x121, 2)));
        assert_eq!(pkg_length(&[0x81, 0x34, 0x12]), Some((0x12341, 3)));
        assert_eq!(pkg_length(&[0x81, 0x34]), None);
    }
}
