//! The little of ACPI this kernel reads: how to power off (FADT + the DSDT's `\_S5`), and
//! where the I/O APICs are and how ISA IRQs map onto them (MADT).
//!
//! Tables are read once at boot, while the boot page tables still map the low 4 GiB
//! (where firmware and hypervisors put them), and the results are kept as plain values.
//! Every table's checksum is verified; anything malformed is skipped, never trusted.
//! `\_S5` is found by scanning the DSDT for the `Name(_S5_, Package(){...})` encoding
//! rather than by interpreting AML: enough for the firmware we boot on (SeaBIOS-installed
//! QEMU tables, Xen's), and it fails safe (no S5 value means no ACPI power-off).

use crate::interrupts::{Polarity, Trigger};

pub mod virtio_mmio;

/// Read access to physical memory, for the table walk.
pub(crate) trait PhysMemory {
    /// `len` bytes at `phys`, if readable.
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]>;
}

/// Physical memory through the boot identity map (first 4 GiB).
pub(crate) struct BootIdentityMap;

impl PhysMemory for BootIdentityMap {
    fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
        let end = phys.checked_add(len as u64)?;
        if phys == 0 || end > 1 << 32 {
            return None;
        }
        // SAFETY: the boot page tables identity-map the first 4 GiB, and this is only
        // used before the switch to the kernel's tables. The bytes are firmware tables
        // or ROM that nothing writes while we read them.
        Some(unsafe { core::slice::from_raw_parts(phys as *const u8, len) })
    }
}

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IoApicEntry {
    /// Register base (physical).
    pub address: u64,
    /// First GSI it serves.
    pub gsi_base: u32,
}

/// An interrupt source override from the MADT: ISA IRQ `source` is GSI `gsi`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IsaOverride {
    pub source: u8,
    pub gsi: u32,
    pub trigger: Trigger,
    pub polarity: Polarity,
}

/// What the kernel keeps from ACPI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AcpiInfo {
    /// PM1a control port (0: none).
    pub pm1a_control: u16,
    /// PM1b control port (0: none).
    pub pm1b_control: u16,
    /// SLP_TYPa / SLP_TYPb for S5 (soft off).
    pub s5: Option<(u8, u8)>,
    /// The FADT says "hardware-reduced ACPI" (no PM1 ports, e.g. Xen PVH).
    pub hw_reduced: bool,
    /// I/O APICs.
    pub ioapics: [Option<IoApicEntry>; 4],
    /// ISA interrupt overrides.
    pub overrides: [Option<IsaOverride>; 16],
    /// virtio-mmio devices the DSDT describes (QEMU's microvm).
    pub virtio_mmio: [Option<virtio_mmio::VirtioMmioDevice>; virtio_mmio::MAX_DEVICES],
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

fn checksum_ok(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

/// Finds and validates the RSDP: at `hint` if given, else in the BIOS area.
fn find_rsdp(mem: &impl PhysMemory, hint: u64) -> Option<u64> {
    let valid = |addr: u64| {
        mem.read(addr, 20)
            .is_some_and(|b| &b[..8] == b"RSD PTR " && checksum_ok(b))
    };
    if hint != 0 {
        return valid(hint).then_some(hint);
    }
    (0xE0000u64..0x100000).step_by(16).find(|&a| valid(a))
}

/// A checksummed system description table at `addr`.
fn table(mem: &impl PhysMemory, addr: u64) -> Option<&[u8]> {
    let header = mem.read(addr, 36)?;
    let len = u32_at(header, 4)? as usize;
    if !(36..=1 << 20).contains(&len) {
        return None;
    }
    let t = mem.read(addr, len)?;
    checksum_ok(t).then_some(t)
}

/// Reads the tables reachable from the RSDP (`rsdp_hint` from `hvm_start_info`, or 0 to
/// search the BIOS area). `None` if there is no valid RSDP.
pub(crate) fn parse(mem: &impl PhysMemory, rsdp_hint: u64) -> Option<AcpiInfo> {
    let rsdp_addr = find_rsdp(mem, rsdp_hint)?;
    let rsdp = mem
        .read(rsdp_addr, 36)
        .or_else(|| mem.read(rsdp_addr, 20))?;
    let revision = rsdp[15];
    let xsdt = if revision >= 2 {
        u64_at(rsdp, 24).unwrap_or(0)
    } else {
        0
    };
    let (root, entry_size) = if xsdt != 0 {
        (xsdt, 8)
    } else {
        (u64::from(u32_at(rsdp, 16)?), 4)
    };
    let root = table(mem, root)?;
    let mut info = AcpiInfo::default();
    for off in (36..root.len()).step_by(entry_size) {
        let addr = if entry_size == 8 {
            u64_at(root, off)
        } else {
            u32_at(root, off).map(u64::from)
        };
        let Some(t) = addr.and_then(|a| table(mem, a)) else {
            continue;
        };
        match &t[..4] {
            b"FACP" => parse_fadt(mem, t, &mut info),
            b"APIC" => parse_madt(t, &mut info),
            _ => {}
        }
    }
    Some(info)
}

fn parse_fadt(mem: &impl PhysMemory, t: &[u8], info: &mut AcpiInfo) {
    let flags = u32_at(t, 112).unwrap_or(0);
    info.hw_reduced = flags & (1 << 20) != 0;
    let port = |legacy: usize, gas: usize| -> u16 {
        match u32_at(t, legacy) {
            Some(p) if p != 0 => u16::try_from(p).unwrap_or(0),
            // X_PM1x_CNT_BLK: a Generic Address Structure; space 1 is system I/O.
            _ if t.get(gas) == Some(&1) => u64_at(t, gas + 4)
                .and_then(|a| u16::try_from(a).ok())
                .unwrap_or(0),
            _ => 0,
        }
    };
    info.pm1a_control = port(64, 172);
    info.pm1b_control = port(68, 184);
    let dsdt = match u64_at(t, 140) {
        Some(x) if x != 0 && t.len() >= 148 => x,
        _ => u64::from(u32_at(t, 40).unwrap_or(0)),
    };
    if let Some(d) = table(mem, dsdt).filter(|_| dsdt != 0) {
        info.s5 = find_s5(&d[36..]);
        virtio_mmio::scan(&d[36..], &mut info.virtio_mmio);
    }
}

/// Decodes one AML integer constant of a package element: (value, bytes used).
fn aml_small_int(b: &[u8]) -> Option<(u8, usize)> {
    match *b.first()? {
        0x00 => Some((0, 1)),          // ZeroOp
        0x01 => Some((1, 1)),          // OneOp
        0x0A => Some((*b.get(1)?, 2)), // BytePrefix
        _ => None,
    }
}

/// Finds `Name(_S5_, Package(){ SLP_TYPa, SLP_TYPb, ... })` in AML bytes.
pub(crate) fn find_s5(aml: &[u8]) -> Option<(u8, u8)> {
    let mut i = 0;
    while let Some(pos) = aml.get(i..)?.windows(4).position(|w| w == b"_S5_") {
        let at = i + pos;
        i = at + 4;
        // NameOp directly before, or NameOp + root prefix.
        let named = (at >= 1 && aml[at - 1] == 0x08)
            || (at >= 2 && aml[at - 1] == b'\\' && aml[at - 2] == 0x08);
        if !named || aml.get(at + 4) != Some(&0x12) {
            continue;
        }
        // PkgLength: the top two bits of the lead byte count the extra bytes.
        let lead = *aml.get(at + 5)?;
        let mut p = at + 6 + usize::from(lead >> 6);
        let _num_elements = aml.get(p)?;
        p += 1;
        let (a, used) = aml_small_int(aml.get(p..)?)?;
        let (b, _) = aml_small_int(aml.get(p + used..)?).unwrap_or((0, 0));
        return Some((a & 7, b & 7));
    }
    None
}

fn parse_madt(t: &[u8], info: &mut AcpiInfo) {
    let mut off = 44;
    let (mut n_io, mut n_ov) = (0, 0);
    while off + 2 <= t.len() {
        let kind = t[off];
        let len = usize::from(t[off + 1]);
        if len < 2 || off + len > t.len() {
            break;
        }
        let e = &t[off..off + len];
        match kind {
            1 if len >= 12 && n_io < info.ioapics.len() => {
                if let (Some(addr), Some(gsi_base)) = (u32_at(e, 4), u32_at(e, 8)) {
                    info.ioapics[n_io] = Some(IoApicEntry {
                        address: u64::from(addr),
                        gsi_base,
                    });
                    n_io += 1;
                }
            }
            2 if len >= 10 && n_ov < info.overrides.len() => {
                if let (Some(gsi), Some(flags)) = (u32_at(e, 4), u16_at(e, 8)) {
                    let source = e[3];
                    // Polarity bits 0-1: 3 = active low; trigger bits 2-3: 3 = level.
                    // "Conforms to the bus" (0) means ISA: edge, active high.
                    let polarity = if flags & 3 == 3 {
                        Polarity::Low
                    } else {
                        Polarity::High
                    };
                    let trigger = if (flags >> 2) & 3 == 3 {
                        Trigger::Level
                    } else {
                        Trigger::Edge
                    };
                    info.overrides[n_ov] = Some(IsaOverride {
                        source,
                        gsi,
                        trigger,
                        polarity,
                    });
                    n_ov += 1;
                }
            }
            _ => {}
        }
        off += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    struct FakeMemory(Vec<(u64, Vec<u8>)>);

    impl PhysMemory for FakeMemory {
        fn read(&self, phys: u64, len: usize) -> Option<&[u8]> {
            self.0.iter().find_map(|(base, bytes)| {
                let off = phys.checked_sub(*base)? as usize;
                bytes.get(off..off + len)
            })
        }
    }

    fn fix_checksum(b: &mut [u8], at: usize) {
        b[at] = 0;
        let sum = b.iter().fold(0u8, |a, &x| a.wrapping_add(x));
        b[at] = 0u8.wrapping_sub(sum);
    }

    fn sdt(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 36];
        t[..4].copy_from_slice(sig);
        t.extend_from_slice(body);
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        fix_checksum(&mut t, 9);
        t
    }

    /// RSDP (rev 0) -> RSDT -> FADT (-> DSDT) and MADT, like SeaBIOS installs for QEMU.
    fn machine() -> FakeMemory {
        let dsdt = sdt(
            b"DSDT",
            &[
                0x10, 0x05, b'_', b'S', b'B', b'_', // some other AML
                0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x0A, 0x05, 0x00, 0x00, 0x00,
            ],
        );
        let mut fadt_body = vec![0u8; 244 - 36];
        fadt_body[40 - 36..44 - 36].copy_from_slice(&0x3000u32.to_le_bytes()); // DSDT
        fadt_body[64 - 36..68 - 36].copy_from_slice(&0x604u32.to_le_bytes()); // PM1a_CNT
        let fadt = sdt(b"FACP", &fadt_body);
        let mut madt_body = vec![0u8; 8]; // local APIC address, flags
        madt_body.extend_from_slice(&[1, 12, 0, 0]); // I/O APIC id 0
        madt_body.extend_from_slice(&0xFEC0_0000u32.to_le_bytes());
        madt_body.extend_from_slice(&0u32.to_le_bytes());
        madt_body.extend_from_slice(&[2, 10, 0, 0]); // IRQ0 -> GSI2, conforming
        madt_body.extend_from_slice(&2u32.to_le_bytes());
        madt_body.extend_from_slice(&0u16.to_le_bytes());
        madt_body.extend_from_slice(&[2, 10, 0, 9]); // IRQ9 -> GSI9, level, active high
        madt_body.extend_from_slice(&9u32.to_le_bytes());
        madt_body.extend_from_slice(&0x000Du16.to_le_bytes());
        let madt = sdt(b"APIC", &madt_body);
        let mut rsdt_body = Vec::new();
        rsdt_body.extend_from_slice(&0x2000u32.to_le_bytes());
        rsdt_body.extend_from_slice(&0x5000u32.to_le_bytes()); // garbage: skipped
        rsdt_body.extend_from_slice(&0x4000u32.to_le_bytes());
        let rsdt = sdt(b"RSDT", &rsdt_body);
        let mut rsdp = Vec::from(*b"RSD PTR ");
        rsdp.extend_from_slice(&[0; 12]);
        rsdp[16..20].copy_from_slice(&0x1000u32.to_le_bytes());
        fix_checksum(&mut rsdp, 8);
        FakeMemory(vec![
            (0xF5A00, rsdp),
            (0x1000, rsdt),
            (0x2000, fadt),
            (0x3000, dsdt),
            (0x4000, madt),
            (0x5000, vec![0xAB; 64]),
        ])
    }

    #[test]
    fn reads_power_off_and_interrupt_routing() {
        let mem = machine();
        let info = parse(&mem, 0).expect("RSDP found by scanning");
        assert_eq!(info.pm1a_control, 0x604);
        assert_eq!(info.pm1b_control, 0);
        assert_eq!(info.s5, Some((5, 0)));
        assert!(!info.hw_reduced);
        assert_eq!(
            info.ioapics[0],
            Some(IoApicEntry {
                address: 0xFEC0_0000,
                gsi_base: 0
            })
        );
        assert_eq!(info.ioapics[1], None);
        assert_eq!(
            info.overrides[1],
            Some(IsaOverride {
                source: 9,
                gsi: 9,
                trigger: Trigger::Level,
                polarity: Polarity::High
            })
        );
        assert_eq!(parse(&mem, 0xF5A00), Some(info));
        assert_eq!(parse(&mem, 0x1000), None, "a hint that is no RSDP");
    }

    #[test]
    fn bad_checksums_are_rejected() {
        let mut mem = machine();
        mem.0[1].1[20] ^= 0xFF; // corrupt the RSDT
        assert_eq!(parse(&mem, 0), None);
    }

    #[test]
    fn s5_encodings() {
        assert_eq!(
            find_s5(&[0x08, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0x00, 0x01]),
            Some((0, 1))
        );
        assert_eq!(
            find_s5(&[
                0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x0A, 0x07, 0x00
            ]),
            Some((7, 0))
        );
        // A method named _S5_ is not the package.
        assert_eq!(
            find_s5(&[0x14, b'_', b'S', b'5', b'_', 0x12, 0x04, 0x02, 0x00, 0x01]),
            None
        );
        assert_eq!(find_s5(b"nothing here"), None);
    }
}
