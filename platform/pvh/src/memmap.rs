//! The physical memory map and the choice of the heap region.
//!
//! The heap is one contiguous range: the largest piece of usable RAM at or above the
//! kernel image, after cutting out the image itself and anything the loader put in RAM
//! for us (boot modules), trimmed to 4 KiB pages and capped at the appliance's
//! `heap_bytes`. Everything else (the start-info page, the command line, the map) is
//! copied before the heap is claimed, so it may be overwritten.

use core::ops::Range;

/// What a range of physical memory is (the `hvm_memmap_table_entry` / E820 types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    /// Usable RAM.
    Usable,
    /// Reserved by the firmware or the platform.
    Reserved,
    /// ACPI tables (reclaimable after reading them).
    AcpiReclaimable,
    /// ACPI non-volatile storage.
    AcpiNvs,
    /// Defective RAM.
    Unusable,
    /// Any other type code.
    Other(u32),
}

impl RegionKind {
    /// The kind for an E820 type code.
    pub fn from_e820(code: u32) -> RegionKind {
        match code {
            1 => RegionKind::Usable,
            2 => RegionKind::Reserved,
            3 => RegionKind::AcpiReclaimable,
            4 => RegionKind::AcpiNvs,
            5 => RegionKind::Unusable,
            other => RegionKind::Other(other),
        }
    }
}

/// One entry of the memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First physical address.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it is.
    pub kind: RegionKind,
}

impl MemoryRegion {
    /// One past the last address (saturating).
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

const PAGE: u64 = 4096;

/// The heap range: the largest page-aligned piece of usable RAM at or above `above`
/// that overlaps none of `avoid`, capped at `max_bytes` (taken from its start).
/// `None` if no piece of at least one page exists.
pub fn select_heap(
    map: &[MemoryRegion],
    avoid: &[Range<u64>],
    above: u64,
    max_bytes: u64,
) -> Option<Range<u64>> {
    let mut best: Option<Range<u64>> = None;
    for region in map.iter().filter(|r| r.kind == RegionKind::Usable) {
        let start = region.start.max(above);
        let end = region.end();
        if start >= end {
            continue;
        }
        // Cut the avoided ranges out of [start, end): walk the pieces left to right.
        let mut cursor = start;
        loop {
            // The first avoided range that overlaps [cursor, end).
            let next_cut = avoid
                .iter()
                .filter(|a| a.start < end && a.end > cursor && a.start < a.end)
                .min_by_key(|a| a.start);
            let piece_end = match next_cut {
                Some(a) => a.start.max(cursor),
                None => end,
            };
            consider(&mut best, cursor, piece_end);
            match next_cut {
                Some(a) if a.end < end => cursor = a.end.max(cursor),
                _ => break,
            }
        }
    }
    let best = best?;
    let len = (best.end - best.start).min(max_bytes & !(PAGE - 1));
    if len < PAGE {
        return None;
    }
    Some(best.start..best.start + len)
}

fn consider(best: &mut Option<Range<u64>>, start: u64, end: u64) {
    let start = start.div_ceil(PAGE) * PAGE;
    let end = end & !(PAGE - 1);
    if end <= start {
        return;
    }
    let better = match best {
        Some(b) => end - start > b.end - b.start,
        None => true,
    };
    if better {
        *best = Some(start..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel_range(start: u64, end: u64) -> Range<u64> {
        start..end
    }

    fn usable(start: u64, end: u64) -> MemoryRegion {
        MemoryRegion {
            start,
            len: end - start,
            kind: RegionKind::Usable,
        }
    }

    /// Roughly what QEMU `-m 32M` reports.
    fn qemu_32m() -> [MemoryRegion; 3] {
        [
            usable(0, 0x9fc00),
            MemoryRegion {
                start: 0x9fc00,
                len: 0x400,
                kind: RegionKind::Reserved,
            },
            usable(0x10_0000, 0x1fe_0000),
        ]
    }

    #[test]
    fn heap_goes_above_the_kernel_and_is_capped() {
        let kernel = 0x10_0000..0x16_3000;
        let h = select_heap(
            &qemu_32m(),
            core::slice::from_ref(&kernel),
            kernel.end,
            u64::MAX,
        )
        .unwrap();
        assert_eq!(h, 0x16_3000..0x1fe_0000);
        let capped = select_heap(
            &qemu_32m(),
            core::slice::from_ref(&kernel),
            kernel.end,
            1 << 20,
        )
        .unwrap();
        assert_eq!(capped, 0x16_3000..0x26_3000);
        // Low memory below the kernel is never chosen even though it is usable.
        let tiny = [usable(0, 0x9fc00), usable(0x10_0000, 0x10_2000)];
        assert_eq!(
            select_heap(
                &tiny,
                &[kernel_range(0x10_0000, 0x10_2000)],
                0x10_2000,
                u64::MAX
            ),
            None
        );
    }

    #[test]
    fn avoided_ranges_split_regions_and_the_largest_piece_wins() {
        let map = [usable(0x10_0000, 0x800_0000)];
        let kernel = 0x10_0000..0x20_0000;
        // A boot module near the top, and one in the lower part.
        let avoid = [kernel.clone(), 0x700_0000..0x780_0000, 0x30_0000..0x31_0000];
        let h = select_heap(&map, &avoid, kernel.end, u64::MAX).unwrap();
        assert_eq!(h, 0x31_0000..0x700_0000);
    }

    #[test]
    fn unaligned_edges_are_trimmed_to_pages() {
        let map = [usable(0x10_0123, 0x20_0fff)];
        let h = select_heap(&map, &[], 0, u64::MAX).unwrap();
        assert_eq!(h, 0x10_1000..0x20_0000);
    }

    #[test]
    fn the_largest_region_wins_even_above_4g() {
        let map = [
            usable(0x10_0000, 0xc000_0000),
            MemoryRegion {
                start: 0xc000_0000,
                len: 0x4000_0000,
                kind: RegionKind::Reserved,
            },
            usable(0x1_0000_0000, 0x3_0000_0000),
        ];
        let h = select_heap(
            &map,
            &[kernel_range(0x10_0000, 0x20_0000)],
            0x20_0000,
            64 << 20,
        )
        .unwrap();
        assert_eq!(h, 0x1_0000_0000..0x1_0400_0000);
        assert_eq!(RegionKind::from_e820(3), RegionKind::AcpiReclaimable);
        assert_eq!(RegionKind::from_e820(7), RegionKind::Other(7));
    }
}
