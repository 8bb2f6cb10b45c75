//! The guest's page tables: a 4-level identity map of its memory, built by the tender
//! from the [`Layout`] and never mapped where the guest could change it.
//!
//! Leaf rights come from each region: pages the kernel may use carry the user bit with
//! its rights (writable only if the region is; no-execute unless it is executable); the
//! tender's own pages (descriptor tables, fault gates and stack) are supervisor-only;
//! guard pages, the null page and the page tables are not present. A 2 MiB block that one
//! region covers entirely becomes one large page. Accessed and dirty bits are preset, so
//! the CPU never writes to the tables.

use crate::image::{PAGE, Rights};
use crate::layout::{KERNEL_MIN, Layout, PAGE_TABLES};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const ACCESSED: u64 = 1 << 5;
const DIRTY: u64 = 1 << 6;
const LARGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;
const LARGE_PAGE: u64 = 2 << 20;

/// The page tables did not fit in the area reserved for them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the page tables need more than the {0} pages reserved for them")]
pub struct TooManyTables(pub usize);

/// Built page tables, to be copied to [`PAGE_TABLES`].
#[derive(Debug)]
pub struct PageTables {
    tables: Vec<[u64; 512]>,
}

/// What a virtual address maps to (for checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address.
    pub phys: u64,
    /// Accessible at CPL 3.
    pub user: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

fn leaf_flags(user: Rights, supervisor: Rights) -> Option<u64> {
    let (rights, user_bit) = if user.read {
        (user, USER)
    } else if supervisor.read {
        (supervisor, 0)
    } else {
        return None;
    };
    let mut flags = PRESENT | ACCESSED | DIRTY | user_bit;
    if rights.write {
        flags |= WRITABLE;
    }
    if !rights.execute {
        flags |= NO_EXECUTE;
    }
    Some(flags)
}

impl PageTables {
    const CAPACITY: usize = ((KERNEL_MIN - PAGE_TABLES) / PAGE) as usize;

    /// Builds the tables for `layout`.
    pub fn build(layout: &Layout) -> Result<PageTables, TooManyTables> {
        let mut pt = PageTables {
            tables: vec![[0; 512]],
        };
        for region in &layout.regions {
            let Some(flags) = leaf_flags(region.user, region.supervisor) else {
                continue;
            };
            let mut va = region.start;
            while va < region.end {
                if va.is_multiple_of(LARGE_PAGE) && va + LARGE_PAGE <= region.end {
                    pt.map(va, flags | LARGE, 2)?;
                    va += LARGE_PAGE;
                } else {
                    pt.map(va, flags, 1)?;
                    va += PAGE;
                }
            }
        }
        Ok(pt)
    }

    /// The CR3 value (the top table's address).
    pub fn root(&self) -> u64 {
        PAGE_TABLES
    }

    /// The tables' bytes and where each goes in guest memory.
    pub fn pages(&self) -> impl Iterator<Item = (u64, Vec<u8>)> + '_ {
        self.tables.iter().enumerate().map(|(i, t)| {
            let bytes = t.iter().flat_map(|e| e.to_le_bytes()).collect();
            (PAGE_TABLES + i as u64 * PAGE, bytes)
        })
    }

    /// How many table pages were used.
    pub fn len(&self) -> usize {
        self.tables.len()
    }

    /// Whether no table was built (never: the top table always exists).
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    fn table_index(addr: u64) -> usize {
        ((addr - PAGE_TABLES) / PAGE) as usize
    }

    /// Maps `va` with `flags` at `level` (1: 4 KiB page, 2: 2 MiB page).
    fn map(&mut self, va: u64, flags: u64, level: u32) -> Result<(), TooManyTables> {
        let mut table = 0;
        for l in (level + 1..=4).rev() {
            let index = ((va >> (12 + 9 * (l - 1))) & 511) as usize;
            let entry = self.tables[table][index];
            table = if entry & PRESENT != 0 {
                Self::table_index(entry & ADDRESS)
            } else {
                if self.tables.len() >= Self::CAPACITY {
                    return Err(TooManyTables(Self::CAPACITY));
                }
                self.tables.push([0; 512]);
                let new = self.tables.len() - 1;
                self.tables[table][index] =
                    (PAGE_TABLES + new as u64 * PAGE) | PRESENT | WRITABLE | USER | ACCESSED;
                new
            };
        }
        let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
        self.tables[table][index] = va | flags;
        Ok(())
    }

    /// Walks the tables as the CPU would.
    pub fn translate(&self, va: u64) -> Option<Translation> {
        let mut table = 0;
        let (mut user, mut write, mut execute) = (true, true, true);
        for level in (1..=4u32).rev() {
            let index = ((va >> (12 + 9 * (level - 1))) & 511) as usize;
            let entry = self.tables[table][index];
            if entry & PRESENT == 0 {
                return None;
            }
            user &= entry & USER != 0;
            write &= entry & WRITABLE != 0;
            execute &= entry & NO_EXECUTE == 0;
            let size_bits = 12 + 9 * (level - 1);
            if level == 1 || (level == 2 && entry & LARGE != 0) {
                let base = entry & ADDRESS & !((1u64 << size_bits) - 1);
                return Some(Translation {
                    phys: base | (va & ((1u64 << size_bits) - 1)),
                    user,
                    write,
                    execute,
                });
            }
            table = Self::table_index(entry & ADDRESS);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::tests::image;
    use crate::layout::{FAULT_STACK_GUARD, GATES, GDT};

    #[test]
    fn every_page_maps_as_its_region_says() {
        let layout = Layout::new(&image(), 16).unwrap();
        let pt = PageTables::build(&layout).unwrap();
        assert!(pt.len() < 16, "{} tables", pt.len());
        for page in (0..layout.size).step_by(PAGE as usize) {
            let r = layout.region(page).unwrap();
            let t = pt.translate(page + 123);
            match leaf_flags(r.user, r.supervisor) {
                None => assert_eq!(t, None, "{page:#x} in {} must be unmapped", r.name),
                Some(_) => {
                    let t = t.unwrap_or_else(|| panic!("{page:#x} in {} unmapped", r.name));
                    assert_eq!(t.phys, page + 123, "identity");
                    let rights = if r.user.read { r.user } else { r.supervisor };
                    assert_eq!(t.user, r.user.read, "{}", r.name);
                    assert_eq!(t.write, rights.write, "{}", r.name);
                    assert_eq!(t.execute, rights.execute, "{}", r.name);
                    assert!(!(t.user && t.write && t.execute), "W^X at {page:#x}");
                }
            }
        }
        assert_eq!(pt.translate(layout.size), None);
        assert_eq!(pt.translate(0), None);
        assert_eq!(pt.translate(FAULT_STACK_GUARD), None);
        assert_eq!(pt.translate(layout.stack_bottom - 1), None);
        assert!(!pt.translate(GATES).unwrap().user);
        assert!(pt.translate(GATES).unwrap().execute);
        assert!(!pt.translate(GDT).unwrap().user);
    }

    #[test]
    fn large_memories_use_large_pages() {
        let layout = Layout::new(&image(), 4096).unwrap();
        let pt = PageTables::build(&layout).unwrap();
        // PML4, PDPT, 4 PDs and a few page tables around the low area and the image.
        assert!(pt.len() <= 10, "{} tables", pt.len());
        let t = pt.translate((4 << 30) - 1).unwrap();
        assert!(t.user && t.write && !t.execute);
    }

    #[test]
    fn the_tables_are_never_mapped() {
        let layout = Layout::new(&image(), 16).unwrap();
        let pt = PageTables::build(&layout).unwrap();
        for (addr, bytes) in pt.pages() {
            assert_eq!(bytes.len(), PAGE as usize);
            assert_eq!(pt.translate(addr), None);
        }
    }
}
