//! The guest's physical memory, region by region (virtual == physical):
//!
//! | address | region | kernel (CPL 3) | CPL 0 |
//! |---|---|---|---|
//! | `0x0000`–`0x0fff` | null page | unmapped | unmapped |
//! | `0x1000`–`0x1fff` | boot information, memory map, command line | read | read |
//! | `0x2000` | GDT | — | read+write |
//! | `0x3000` | IDT | — | read+write |
//! | `0x4000` | TSS | — | read+write |
//! | `0x5000` | fault gates (the exception stubs) | — | read+execute |
//! | `0x6000` | guard page of the fault stack | unmapped | unmapped |
//! | `0x7000` | fault stack | — | read+write |
//! | `0x8000`–`0xfffff` | page tables (never mapped) | — | — |
//! | from 1 MiB | the kernel's `PT_LOAD` segments, with their ELF rights | per segment | as CPL 3 |
//! | after the image | guard page, then the stack | unmapped, then read+write | |
//! | the rest | RAM | read+write | |
//!
//! Gaps between the kernel's segments (page granular) are RAM too. Nothing the kernel can
//! reach is both writable and executable. The tender checks every address a guest hands
//! it against this map ([`Layout::check`]).

use crate::image::{Image, PAGE, Rights};
use morgana_tender_abi as abi;

/// The boot information page.
pub const BOOT_INFO: u64 = 0x1000;
/// The GDT.
pub const GDT: u64 = 0x2000;
/// The IDT.
pub const IDT: u64 = 0x3000;
/// The TSS.
pub const TSS: u64 = 0x4000;
/// The fault gates' code.
pub const GATES: u64 = 0x5000;
/// The fault stack's guard page.
pub const FAULT_STACK_GUARD: u64 = 0x6000;
/// The fault stack (one page).
pub const FAULT_STACK: u64 = 0x7000;
/// Where the page tables go.
pub const PAGE_TABLES: u64 = 0x8000;
/// The lowest address a kernel segment may use.
pub const KERNEL_MIN: u64 = 0x10_0000;
/// The stack when the kernel's note does not ask for another size.
pub const DEFAULT_STACK: u64 = 256 * 1024;
/// The most memory a guest may have.
pub const MAX_MEMORY: u64 = 64 << 30;
/// Request blocks are addressed with 32 bits: the stack must lie below this.
pub const LOW_LIMIT: u64 = 1 << 32;

/// What a region is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The never-mapped page at address 0.
    Null,
    /// Boot information (read-only to the kernel).
    BootInfo,
    /// GDT, IDT or TSS.
    Descriptors,
    /// The fault gates' code.
    Gates,
    /// An unmapped guard page.
    Guard,
    /// The fault stack.
    FaultStack,
    /// The page tables (unmapped).
    PageTables,
    /// Kernel segment `n`.
    Kernel(usize),
    /// The kernel's stack.
    Stack,
    /// Free memory.
    Ram,
}

/// One region of guest memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    /// First address (page aligned).
    pub start: u64,
    /// One past the last (page aligned).
    pub end: u64,
    /// What it is.
    pub kind: Kind,
    /// What CPL 3 may do (nothing: not mapped for the kernel).
    pub user: Rights,
    /// What CPL 0 may do in a page the kernel cannot see (the tender's own pages).
    pub supervisor: Rights,
    /// How reports name it.
    pub name: String,
}

impl Region {
    /// The ABI's region kind.
    pub fn abi_kind(&self) -> u32 {
        match self.kind {
            Kind::Null | Kind::Guard => abi::REGION_GUARD,
            Kind::BootInfo => abi::REGION_BOOT_INFO,
            Kind::Descriptors | Kind::Gates | Kind::FaultStack | Kind::PageTables => {
                abi::REGION_RESERVED
            }
            Kind::Kernel(_) => abi::REGION_KERNEL,
            Kind::Stack => abi::REGION_STACK,
            Kind::Ram => abi::REGION_RAM,
        }
    }
}

/// Why the image and the memory size do not fit together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LayoutError {
    /// A segment lies in the tender's low area.
    #[error(
        "the kernel's first segment is at {0:#x}, below 1 MiB, where the tender keeps its own \
         tables: link the kernel at 1 MiB or above"
    )]
    TooLow(u64),
    /// The memory does not hold the image and its stack.
    #[error(
        "{memory} MiB of guest memory cannot hold the kernel and its stack (they end at \
         {needed:#x}): give the guest more memory"
    )]
    TooSmall {
        /// The memory asked for, in MiB.
        memory: u64,
        /// Where the image and stack end.
        needed: u64,
    },
    /// Too much memory asked for.
    #[error("{0} MiB of guest memory is more than the tender supports (64 GiB)")]
    TooLarge(u64),
    /// The stack would be above 4 GiB.
    #[error(
        "the kernel's stack would end above 4 GiB ({0:#x}); request blocks must be below 4 GiB"
    )]
    StackTooHigh(u64),
}

/// Why an address a guest handed over is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// Beyond the guest's memory (or wrapping around).
    #[error("{addr:#x} + {len} is outside the guest's memory (0x0..{size:#x})")]
    Outside {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// The guest's memory size.
        size: u64,
    },
    /// Inside memory, but not with the rights the call needs.
    #[error(
        "{addr:#x} + {len} reaches {region} at {at:#x} ({rights} for the kernel), which the call must {needed}"
    )]
    Denied {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
        /// The region's name.
        region: String,
        /// The first offending address.
        at: u64,
        /// The kernel's rights there.
        rights: Rights,
        /// What the call needed ("read" or "write").
        needed: &'static str,
    },
}

/// The guest's memory, region by region, sorted and contiguous from 0 to `size`.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Memory size in bytes.
    pub size: u64,
    /// Regions.
    pub regions: Vec<Region>,
    /// Where the kernel is entered.
    pub entry: u64,
    /// Lowest stack address.
    pub stack_bottom: u64,
    /// One past the highest.
    pub stack_top: u64,
}

impl Layout {
    /// Lays out `image` in `memory_mib` MiB.
    pub fn new(image: &Image, memory_mib: u64) -> Result<Layout, LayoutError> {
        let size = memory_mib
            .checked_mul(1 << 20)
            .filter(|s| *s <= MAX_MEMORY)
            .ok_or(LayoutError::TooLarge(memory_mib))?;
        if image.start() < KERNEL_MIN {
            return Err(LayoutError::TooLow(image.start()));
        }
        let stack_bytes = match image.stack_bytes {
            0 => DEFAULT_STACK,
            n => n.div_ceil(PAGE) * PAGE,
        };
        let stack_guard = image.end();
        let stack_bottom = stack_guard + PAGE;
        let stack_top = stack_bottom + stack_bytes;
        if stack_top > size {
            return Err(LayoutError::TooSmall {
                memory: memory_mib,
                needed: stack_top,
            });
        }
        if stack_top > LOW_LIMIT {
            return Err(LayoutError::StackTooHigh(stack_top));
        }

        let sup = |start: u64, end: u64, kind, rights, name: &str| Region {
            start,
            end,
            kind,
            user: Rights::NONE,
            supervisor: rights,
            name: name.into(),
        };
        let mut regions = vec![
            sup(0, BOOT_INFO, Kind::Null, Rights::NONE, "the null page"),
            Region {
                start: BOOT_INFO,
                end: GDT,
                kind: Kind::BootInfo,
                user: Rights::R,
                supervisor: Rights::R,
                name: "the boot information".into(),
            },
            sup(GDT, IDT, Kind::Descriptors, Rights::RW, "the tender's GDT"),
            sup(IDT, TSS, Kind::Descriptors, Rights::RW, "the tender's IDT"),
            sup(
                TSS,
                GATES,
                Kind::Descriptors,
                Rights::RW,
                "the tender's TSS",
            ),
            sup(
                GATES,
                FAULT_STACK_GUARD,
                Kind::Gates,
                Rights::RX,
                "the tender's fault gates",
            ),
            sup(
                FAULT_STACK_GUARD,
                FAULT_STACK,
                Kind::Guard,
                Rights::NONE,
                "the fault stack's guard page",
            ),
            sup(
                FAULT_STACK,
                PAGE_TABLES,
                Kind::FaultStack,
                Rights::RW,
                "the tender's fault stack",
            ),
            sup(
                PAGE_TABLES,
                KERNEL_MIN,
                Kind::PageTables,
                Rights::NONE,
                "the tender's page tables",
            ),
        ];
        let mut cursor = KERNEL_MIN;
        let ram = |start, end| Region {
            start,
            end,
            kind: Kind::Ram,
            user: Rights::RW,
            supervisor: Rights::NONE,
            name: "RAM".into(),
        };
        for (i, seg) in image.segments.iter().enumerate() {
            let (start, end) = seg.pages();
            // Segments with equal rights may share a page; merge into the previous one.
            let start = start.max(cursor);
            if start > cursor {
                regions.push(ram(cursor, start));
            }
            if end > start {
                let name = if seg.sections.is_empty() {
                    format!("kernel segment {i}")
                } else {
                    format!("the kernel's {}", seg.sections.join(" "))
                };
                regions.push(Region {
                    start,
                    end,
                    kind: Kind::Kernel(i),
                    user: seg.rights,
                    supervisor: Rights::NONE,
                    name,
                });
            }
            cursor = cursor.max(end);
        }
        regions.push(Region {
            start: stack_guard,
            end: stack_bottom,
            kind: Kind::Guard,
            user: Rights::NONE,
            supervisor: Rights::NONE,
            name: "the stack's guard page".into(),
        });
        regions.push(Region {
            start: stack_bottom,
            end: stack_top,
            kind: Kind::Stack,
            user: Rights::RW,
            supervisor: Rights::NONE,
            name: "the stack".into(),
        });
        if size > stack_top {
            regions.push(ram(stack_top, size));
        }
        Ok(Layout {
            size,
            regions,
            entry: image.entry,
            stack_bottom,
            stack_top,
        })
    }

    /// The region containing `addr`.
    pub fn region(&self, addr: u64) -> Option<&Region> {
        let i = self
            .regions
            .partition_point(|r| r.start <= addr)
            .checked_sub(1)?;
        let r = &self.regions[i];
        (addr < r.end).then_some(r)
    }

    /// How a report names `addr`: "the stack's guard page", "RAM", ...
    pub fn describe(&self, addr: u64) -> String {
        match self.region(addr) {
            Some(r) => format!("{} ({} for the kernel)", r.name, r.user),
            None => format!("outside the guest's memory (0x0..{:#x})", self.size),
        }
    }

    /// Checks that the kernel itself could access `addr .. addr + len` with `needed`
    /// (read or write); a zero-length range is always fine.
    pub fn check(&self, addr: u64, len: u64, needed: Rights) -> Result<(), AccessError> {
        if len == 0 {
            return Ok(());
        }
        let end =
            addr.checked_add(len)
                .filter(|e| *e <= self.size)
                .ok_or(AccessError::Outside {
                    addr,
                    len,
                    size: self.size,
                })?;
        let mut at = addr;
        while at < end {
            let r = self.region(at).ok_or(AccessError::Outside {
                addr,
                len,
                size: self.size,
            })?;
            let ok = (!needed.read || r.user.read) && (!needed.write || r.user.write);
            if !ok {
                return Err(AccessError::Denied {
                    addr,
                    len,
                    region: r.name.clone(),
                    at,
                    rights: r.user,
                    needed: if needed.write { "write" } else { "read" },
                });
            }
            at = r.end;
        }
        Ok(())
    }

    /// The memory map the kernel gets.
    pub fn memory_map(&self) -> Vec<abi::MemoryRegion> {
        self.regions
            .iter()
            .map(|r| abi::MemoryRegion {
                start: r.start,
                len: r.end - r.start,
                kind: r.abi_kind(),
                access: [
                    (r.user.read, abi::ACCESS_READ),
                    (r.user.write, abi::ACCESS_WRITE),
                    (r.user.execute, abi::ACCESS_EXECUTE),
                ]
                .into_iter()
                .filter(|(on, _)| *on)
                .fold(0, |a, (_, bit)| a | bit),
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::image::{Segment, Symbols};

    /// A three-segment image like a Morgana kernel: text, rodata, data+bss.
    pub(crate) fn image() -> Image {
        let seg = |vaddr, memsz, rights, name: &str| Segment {
            vaddr,
            memsz,
            bytes: vec![0xAA; 16],
            rights,
            sections: vec![name.into()],
        };
        Image {
            segments: vec![
                seg(0x20_0000, 0x3000, Rights::RX, ".text"),
                seg(0x20_3000, 0x1800, Rights::R, ".rodata"),
                seg(0x20_5000, 0x2100, Rights::RW, ".data"),
            ],
            entry: 0x20_0010,
            stack_bytes: 0,
            abi_version: morgana_tender_abi::ABI_VERSION,
            symbols: Symbols::default(),
        }
    }

    #[test]
    fn regions_cover_memory_without_gaps() {
        let l = Layout::new(&image(), 8).unwrap();
        assert_eq!(l.regions[0].start, 0);
        for w in l.regions.windows(2) {
            assert_eq!(w[0].end, w[1].start, "{:?} / {:?}", w[0], w[1]);
            assert!(w[0].start < w[0].end);
        }
        assert_eq!(l.regions.last().unwrap().end, 8 << 20);
        for r in &l.regions {
            assert!(!(r.user.write && r.user.execute), "W^X broken by {r:?}");
            assert_eq!(r.start % PAGE, 0);
        }
    }

    #[test]
    fn the_stack_sits_above_a_guard_page_after_the_image() {
        let l = Layout::new(&image(), 8).unwrap();
        assert_eq!(l.stack_bottom, 0x20_8000 + PAGE);
        assert_eq!(l.stack_top - l.stack_bottom, DEFAULT_STACK);
        let guard = l.region(l.stack_bottom - 1).unwrap();
        assert_eq!(guard.kind, Kind::Guard);
        assert_eq!(guard.user, Rights::NONE);
        assert_eq!(l.region(l.stack_top).unwrap().kind, Kind::Ram);
        // Between 1 MiB and the image: RAM.
        assert_eq!(l.region(KERNEL_MIN).unwrap().kind, Kind::Ram);
    }

    #[test]
    fn checks_follow_the_rights() {
        let l = Layout::new(&image(), 8).unwrap();
        // Text is readable, not writable.
        assert!(l.check(0x20_0000, 16, Rights::R).is_ok());
        let e = l.check(0x20_0000, 16, Rights::RW).unwrap_err();
        assert!(e.to_string().contains("the kernel's .text"), "{e}");
        // Boot info: read only.
        assert!(l.check(BOOT_INFO, 64, Rights::R).is_ok());
        assert!(l.check(BOOT_INFO, 64, Rights::RW).is_err());
        // The tender's pages: nothing.
        for a in [GDT, IDT, TSS, GATES, FAULT_STACK, PAGE_TABLES, 0] {
            assert!(l.check(a, 1, Rights::R).is_err(), "{a:#x}");
        }
        // A range crossing from the stack into RAM is fine; from data into the guard
        // page is not.
        assert!(l.check(l.stack_top - 0x100, 0x200, Rights::RW).is_ok());
        assert!(l.check(0x20_7000, 0x2000, Rights::RW).is_err());
        assert!(matches!(
            l.check(l.stack_bottom - 8, 16, Rights::RW),
            Err(AccessError::Denied { .. })
        ));
        // Outside memory, and wrap-around.
        assert!(matches!(
            l.check((8 << 20) - 4, 8, Rights::R),
            Err(AccessError::Outside { .. })
        ));
        assert!(matches!(
            l.check(u64::MAX - 2, 8, Rights::R),
            Err(AccessError::Outside { .. })
        ));
        assert!(l.check(u64::MAX, 0, Rights::RW).is_ok());
    }

    #[test]
    fn bad_sizes_are_refused() {
        assert!(matches!(
            Layout::new(&image(), 2),
            Err(LayoutError::TooSmall { .. })
        ));
        assert!(matches!(
            Layout::new(&image(), 1 << 20),
            Err(LayoutError::TooLarge(_))
        ));
        let mut low = image();
        low.segments[0].vaddr = 0x8_0000;
        assert_eq!(
            Layout::new(&low, 8).unwrap_err(),
            LayoutError::TooLow(0x8_0000)
        );
    }

    #[test]
    fn the_memory_map_mirrors_the_regions() {
        let l = Layout::new(&image(), 8).unwrap();
        let map = l.memory_map();
        assert_eq!(map.len(), l.regions.len());
        let ram: u64 = map
            .iter()
            .filter(|m| m.kind == abi::REGION_RAM)
            .map(|m| m.len)
            .sum();
        assert!(ram > 6 << 20, "{ram}");
        assert!(
            map.iter()
                .any(|m| m.kind == abi::REGION_STACK && m.access == 3)
        );
    }
}
