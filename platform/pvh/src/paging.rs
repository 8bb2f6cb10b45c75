//! Page tables: identity mapping with W^X, guard pages, and MMIO on demand.
//!
//! Decisions:
//! - Virtual == physical everywhere. A driver hands the address of a heap buffer to a
//!   device as is (DMA needs no translation), and the boot code needs no relocation.
//! - The boot code (32-bit, in the `entry!` glue) maps the first 4 GiB with 2 MiB pages,
//!   read-write-execute, just to reach long mode. The Rust boot path then builds the real
//!   tables and switches to them before the heap exists:
//!   - kernel text read+execute, rodata read-only + no-execute, data/bss/stacks
//!     read-write + no-execute, all with 4 KiB pages (section bounds come from the
//!     linker script);
//!   - one unmapped guard page under every stack (boot stack and each IST stack): stack
//!     probes write to every page a frame touches, so an overflow faults on the guard
//!     page instead of silently overwriting what lies below;
//!   - the heap read-write + no-execute, with 2 MiB pages where alignment allows;
//!   - nothing else: page 0 (null), low memory and unclaimed RAM are unmapped, so stray
//!     pointers fault.
//! - CR0.WP is set, so the kernel itself cannot write to read-only pages.
//! - Device memory (local APIC, I/O APIC, PCI BARs, anywhere in the 52-bit physical
//!   space, e.g. 64-bit BARs above 4 GiB) is mapped on demand with [`map_mmio`],
//!   uncached (PCD|PWT), read-write, no-execute. Mappings are permanent and mapping a
//!   range again is a no-op.
//! - Page-table pages come from a fixed pool in `.noinit` (so building tables needs no
//!   heap); running out is a typed error, not a panic.

use crate::sync::CpuCell;
use core::cell::UnsafeCell;
use core::fmt;
use core::ops::Range;

/// Size of a small page.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a large (2 MiB) page.
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

/// Entry bits.
pub mod bits {
    /// The entry is valid.
    pub const PRESENT: u64 = 1 << 0;
    /// Writes are allowed.
    pub const WRITABLE: u64 = 1 << 1;
    /// Write-through caching.
    pub const WRITE_THROUGH: u64 = 1 << 3;
    /// Caching disabled.
    pub const CACHE_DISABLE: u64 = 1 << 4;
    /// Set by the CPU when the entry was used.
    pub const ACCESSED: u64 = 1 << 5;
    /// Set by the CPU when the page was written.
    pub const DIRTY: u64 = 1 << 6;
    /// In a page-directory entry: a 2 MiB page rather than a page table.
    pub const LARGE: u64 = 1 << 7;
    /// Instruction fetches fault (needs EFER.NXE).
    pub const NO_EXECUTE: u64 = 1 << 63;
    /// The physical address field.
    pub const ADDRESS: u64 = 0x000F_FFFF_FFFF_F000;
}

/// What a mapping allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Kernel code: read and execute.
    Code,
    /// Constants: read only.
    ReadOnly,
    /// Data, stacks, heap: read and write, no execute.
    ReadWrite,
    /// Device registers: read and write, uncached, no execute.
    Mmio,
}

/// The flag bits of a leaf entry (4 KiB page) for `access`. `nx` says whether the CPU
/// supports no-execute (otherwise bit 63 is reserved and must stay clear).
pub fn leaf_flags(access: Access, nx: bool) -> u64 {
    let no_exec = if nx { bits::NO_EXECUTE } else { 0 };
    match access {
        Access::Code => bits::PRESENT,
        Access::ReadOnly => bits::PRESENT | no_exec,
        Access::ReadWrite => bits::PRESENT | bits::WRITABLE | no_exec,
        Access::Mmio => {
            bits::PRESENT | bits::WRITABLE | bits::WRITE_THROUGH | bits::CACHE_DISABLE | no_exec
        }
    }
}

/// Flags of a non-leaf entry: permissive; the leaves decide.
const TABLE_FLAGS: u64 = bits::PRESENT | bits::WRITABLE;

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The page-table pool is exhausted.
    OutOfTables,
    /// The address is already mapped with different rights.
    Conflict {
        /// The first conflicting address.
        addr: u64,
    },
    /// The range does not fit in the 47-bit identity-mapped space.
    OutOfRange {
        /// The offending address.
        addr: u64,
    },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::OutOfTables => f.write_str("out of page-table pages"),
            MapError::Conflict { addr } => {
                write!(f, "{addr:#x} is already mapped with different rights")
            }
            MapError::OutOfRange { addr } => {
                write!(
                    f,
                    "{addr:#x} is beyond the identity-mappable range (128 TiB)"
                )
            }
        }
    }
}

/// Where the mapper gets zeroed page-table pages from.
pub trait FrameSource {
    /// The physical (== virtual) address of a zeroed, 4 KiB-aligned page, or `None`.
    fn alloc_zeroed(&mut self) -> Option<u64>;
}

/// Adds identity mappings to a four-level page-table tree.
pub struct Mapper<'a, F: FrameSource> {
    root: u64,
    frames: &'a mut F,
    nx: bool,
}

impl<'a, F: FrameSource> Mapper<'a, F> {
    /// A mapper over the tree rooted at `root`.
    ///
    /// # Safety
    /// `root` and every table reachable from it (and every page `frames` hands out) must
    /// be valid, writable memory at their physical addresses as seen by the current
    /// address space, and nothing else may modify the tree while the mapper exists.
    pub unsafe fn new(root: u64, frames: &'a mut F, nx: bool) -> Mapper<'a, F> {
        Mapper { root, frames, nx }
    }

    fn table(&self, phys: u64) -> *mut u64 {
        phys as *mut u64
    }

    /// Reads entry `index` of the table at `table`.
    fn entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a table of the tree (the contract of `new`), 512 entries.
        unsafe { self.table(table).add(index).read_volatile() }
    }

    fn set_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `entry`; the mapper has exclusive access to the tree.
        unsafe { self.table(table).add(index).write_volatile(value) }
    }

    /// The table that entry `index` of `table` points to, creating it if absent.
    fn next_table(&mut self, table: u64, index: usize, addr: u64) -> Result<u64, MapError> {
        let e = self.entry(table, index);
        if e & bits::PRESENT != 0 {
            if e & bits::LARGE != 0 {
                return Err(MapError::Conflict { addr });
            }
            return Ok(e & bits::ADDRESS);
        }
        let new = self.frames.alloc_zeroed().ok_or(MapError::OutOfTables)?;
        self.set_entry(table, index, new | TABLE_FLAGS);
        Ok(new)
    }

    /// Identity-maps every page overlapping `range` with `access`, using 2 MiB pages where
    /// a whole aligned 2 MiB block is covered. Pages already mapped with the same rights
    /// are left alone.
    pub fn map(&mut self, range: Range<u64>, access: Access) -> Result<(), MapError> {
        if range.start >= range.end {
            return Ok(());
        }
        let mut addr = range.start & !(PAGE_SIZE - 1);
        let end = range.end.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        if end > 1 << 47 {
            return Err(MapError::OutOfRange { addr: end - 1 });
        }
        let leaf = leaf_flags(access, self.nx);
        while addr < end {
            let pml4 = self.root;
            let pdpt = self.next_table(pml4, index(addr, 39), addr)?;
            let pd = self.next_table(pdpt, index(addr, 30), addr)?;
            let pde_index = index(addr, 21);
            let pde = self.entry(pd, pde_index);
            if addr.is_multiple_of(LARGE_PAGE_SIZE)
                && end - addr >= LARGE_PAGE_SIZE
                && pde & bits::PRESENT == 0
            {
                self.set_entry(pd, pde_index, addr | leaf | bits::LARGE);
                addr += LARGE_PAGE_SIZE;
                continue;
            }
            if pde & bits::PRESENT != 0 && pde & bits::LARGE != 0 {
                // Covered by an existing large page: fine if the rights are the same.
                if pde & !(bits::ADDRESS | bits::LARGE | bits::ACCESSED | bits::DIRTY) != leaf {
                    return Err(MapError::Conflict { addr });
                }
                addr = (addr | (LARGE_PAGE_SIZE - 1)) + 1;
                continue;
            }
            let pt = self.next_table(pd, pde_index, addr)?;
            let pte_index = index(addr, 12);
            let pte = self.entry(pt, pte_index);
            let want = addr | leaf;
            if pte & bits::PRESENT == 0 {
                self.set_entry(pt, pte_index, want);
            } else if pte & !(bits::ACCESSED | bits::DIRTY) != want {
                return Err(MapError::Conflict { addr });
            }
            addr += PAGE_SIZE;
        }
        Ok(())
    }

    /// The physical address and leaf flags that `virt` maps to, if mapped.
    pub fn translate(&self, virt: u64) -> Option<(u64, u64)> {
        let mut table = self.root;
        for shift in [39, 30] {
            let e = self.entry(table, index(virt, shift));
            if e & bits::PRESENT == 0 {
                return None;
            }
            table = e & bits::ADDRESS;
        }
        let pde = self.entry(table, index(virt, 21));
        if pde & bits::PRESENT == 0 {
            return None;
        }
        if pde & bits::LARGE != 0 {
            let base = pde & bits::ADDRESS & !(LARGE_PAGE_SIZE - 1);
            let flags = pde & !(bits::ADDRESS | bits::LARGE | bits::ACCESSED | bits::DIRTY);
            return Some((base + virt % LARGE_PAGE_SIZE, flags));
        }
        let pte = self.entry(pde & bits::ADDRESS, index(virt, 12));
        if pte & bits::PRESENT == 0 {
            return None;
        }
        let flags = pte & !(bits::ADDRESS | bits::ACCESSED | bits::DIRTY);
        Some(((pte & bits::ADDRESS) + virt % PAGE_SIZE, flags))
    }
}

fn index(addr: u64, shift: u32) -> usize {
    ((addr >> shift) & 511) as usize
}

/// Number of pages in the page-table pool: enough for the kernel image, a heap of many
/// GiB in 2 MiB pages, and dozens of MMIO regions anywhere in the physical space.
const POOL_PAGES: usize = 64;

#[repr(C, align(4096))]
struct PoolPages(UnsafeCell<[[u64; 512]; POOL_PAGES]>);

// SAFETY: the pool is only handed out through `POOL_STATE` (a `CpuCell`), one page at a
// time, each page exactly once.
unsafe impl Sync for PoolPages {}

/// The pool itself: in `.noinit` (not cleared at boot; each page is zeroed when taken).
#[unsafe(link_section = ".bss.morgana_noinit.pagetables")]
static POOL: PoolPages = PoolPages(UnsafeCell::new([[0; 512]; POOL_PAGES]));

/// The kernel's page-table state once the real tables are live.
struct Active {
    root: u64,
    nx: bool,
    pool: Pool,
}

/// Hands out the pool's pages in order.
struct Pool {
    next: usize,
}

impl FrameSource for Pool {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        if self.next >= POOL_PAGES {
            return None;
        }
        // SAFETY: page `next` has never been handed out (the index only grows), so no
        // reference to it exists; it lies inside the static pool.
        let page = unsafe { &mut (*POOL.0.get())[self.next] };
        self.next += 1;
        page.fill(0);
        Some(page.as_ptr() as u64)
    }
}

static ACTIVE: CpuCell<Option<Active>> = CpuCell::new(None);

/// Section bounds of the kernel image, from the linker script (via `entry!`).
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub struct KernelLayout {
    /// Start of the image (and of text).
    pub kernel_start: u64,
    /// End of text.
    pub text_end: u64,
    /// Start of rodata.
    pub rodata_start: u64,
    /// End of rodata.
    pub rodata_end: u64,
    /// Start of data (data, noinit, bss follow).
    pub data_start: u64,
    /// Start of bss.
    pub bss_start: u64,
    /// End of bss.
    pub bss_end: u64,
    /// End of the image (page aligned).
    pub kernel_end: u64,
}

/// Builds the kernel's page tables (see the module docs) and switches to them.
///
/// # Safety
/// Called once, at boot, while the boot tables are live; `layout` must describe the
/// running image and `heap` must be RAM that nothing else uses.
pub(crate) unsafe fn switch_to_kernel_tables(
    layout: &KernelLayout,
    guards: &[u64],
    heap: Range<u64>,
    nx: bool,
) -> Result<(), MapError> {
    let mut pool = Pool { next: 0 };
    let root = pool.alloc_zeroed().ok_or(MapError::OutOfTables)?;
    {
        // SAFETY: the tree is new, lives in the pool (mapped by the boot tables), and
        // nothing else knows of it yet.
        let mut m = unsafe { Mapper::new(root, &mut pool, nx) };
        m.map(layout.kernel_start..layout.text_end, Access::Code)?;
        m.map(layout.rodata_start..layout.rodata_end, Access::ReadOnly)?;
        // Data, noinit (stacks, page tables) and bss, minus the guard pages.
        let mut start = layout.data_start;
        let mut sorted_guards = [0u64; 8];
        let n = guards.len().min(sorted_guards.len());
        sorted_guards[..n].copy_from_slice(&guards[..n]);
        // Insertion sort: at most 8 entries, and no sort's code (~2 KB) in the kernel.
        for i in 1..n {
            let mut j = i;
            while j > 0 && sorted_guards[j - 1] > sorted_guards[j] {
                sorted_guards.swap(j - 1, j);
                j -= 1;
            }
        }
        for &g in &sorted_guards[..n] {
            if g >= start && g < layout.kernel_end {
                m.map(start..g, Access::ReadWrite)?;
                start = g + PAGE_SIZE;
            }
        }
        m.map(start..layout.kernel_end, Access::ReadWrite)?;
        m.map(heap, Access::ReadWrite)?;
    }
    // SAFETY: the new tree maps the running code (text), this stack (data) and all
    // statics at their identity addresses, as the caller guarantees `layout` is right.
    unsafe {
        crate::cpu::write_cr3(root);
        // CR0.WP: supervisor writes honour read-only pages.
        crate::cpu::write_cr0(crate::cpu::read_cr0() | (1 << 16));
    }
    ACTIVE.with(|a| *a = Some(Active { root, nx, pool }));
    Ok(())
}

/// A mapped range of device memory (uncached, identity-mapped).
///
/// Accessors take byte offsets and panic if an access does not fit in the range or is
/// misaligned: a driver bug, caught before it touches the wrong register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mmio {
    base: u64,
    len: u64,
}

impl Mmio {
    /// Physical (== virtual) address of the first byte.
    pub fn phys(&self) -> u64 {
        self.base
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A raw pointer to the first byte (for drivers with their own volatile accessors).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base as *mut u8
    }

    fn at<T>(&self, offset: u64) -> *mut T {
        let size = core::mem::size_of::<T>() as u64;
        assert!(
            offset.checked_add(size).is_some_and(|e| e <= self.len) && offset.is_multiple_of(size),
            "MMIO access of {size} bytes at offset {offset:#x} outside a {:#x}-byte region",
            self.len
        );
        (self.base + offset) as *mut T
    }

    /// Reads a byte register.
    pub fn read8(&self, offset: u64) -> u8 {
        // SAFETY: `at` checked the bounds and alignment; the range is mapped uncached.
        unsafe { self.at::<u8>(offset).read_volatile() }
    }

    /// Reads a 16-bit register.
    pub fn read16(&self, offset: u64) -> u16 {
        // SAFETY: as in `read8`.
        unsafe { self.at::<u16>(offset).read_volatile() }
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, offset: u64) -> u32 {
        // SAFETY: as in `read8`.
        unsafe { self.at::<u32>(offset).read_volatile() }
    }

    /// Reads a 64-bit register.
    pub fn read64(&self, offset: u64) -> u64 {
        // SAFETY: as in `read8`.
        unsafe { self.at::<u64>(offset).read_volatile() }
    }

    /// Writes a byte register.
    pub fn write8(&self, offset: u64, v: u8) {
        // SAFETY: as in `read8`; device registers are not Rust objects.
        unsafe { self.at::<u8>(offset).write_volatile(v) }
    }

    /// Writes a 16-bit register.
    pub fn write16(&self, offset: u64, v: u16) {
        // SAFETY: as in `write8`.
        unsafe { self.at::<u16>(offset).write_volatile(v) }
    }

    /// Writes a 32-bit register.
    pub fn write32(&self, offset: u64, v: u32) {
        // SAFETY: as in `write8`.
        unsafe { self.at::<u32>(offset).write_volatile(v) }
    }

    /// Writes a 64-bit register.
    pub fn write64(&self, offset: u64, v: u64) {
        // SAFETY: as in `write8`.
        unsafe { self.at::<u64>(offset).write_volatile(v) }
    }
}

/// Maps `len` bytes of device memory at physical `phys`, uncached, and returns it.
///
/// Anywhere in the physical space works (64-bit BARs above 4 GiB included). Mapping a
/// range that is already mapped as MMIO is a no-op; mapping RAM or the kernel this way
/// fails with [`MapError::Conflict`].
pub fn map_mmio(phys: u64, len: u64) -> Result<Mmio, MapError> {
    ACTIVE.with(|active| {
        let active = active
            .as_mut()
            .expect("map_mmio is available once the kernel has booted");
        let (root, nx) = (active.root, active.nx);
        // SAFETY: the active tree lives in the pool, which is mapped read-write; we hold
        // the only access to it (the `CpuCell` borrow).
        let mut m = unsafe { Mapper::new(root, &mut active.pool, nx) };
        m.map(phys..phys.saturating_add(len.max(1)), Access::Mmio)?;
        Ok(())
    })?;
    let first = phys & !(PAGE_SIZE - 1);
    let mut page = first;
    while page < phys + len {
        crate::cpu::invlpg(page);
        page += PAGE_SIZE;
    }
    Ok(Mmio { base: phys, len })
}

/// The physical address of a kernel pointer: the identity, stated once so that drivers
/// say what they mean when they hand an address to a device.
pub fn virt_to_phys<T: ?Sized>(ptr: *const T) -> u64 {
    ptr.cast::<u8>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    #[repr(C, align(4096))]
    struct Page([u64; 512]);

    /// Host stand-in for physical memory: boxed pages whose host addresses play the
    /// physical addresses (the mapper only follows them as pointers).
    #[derive(Default)]
    struct HostFrames(Vec<Box<Page>>);

    impl FrameSource for HostFrames {
        fn alloc_zeroed(&mut self) -> Option<u64> {
            if self.0.len() >= 32 {
                return None;
            }
            self.0.push(Box::new(Page([0; 512])));
            Some(self.0.last().unwrap().0.as_ptr() as u64)
        }
    }

    #[test]
    fn leaf_flags_are_w_xor_x() {
        use bits::*;
        assert_eq!(leaf_flags(Access::Code, true), PRESENT);
        assert_eq!(leaf_flags(Access::ReadOnly, true), PRESENT | NO_EXECUTE);
        assert_eq!(
            leaf_flags(Access::ReadWrite, true),
            PRESENT | WRITABLE | NO_EXECUTE
        );
        assert_eq!(
            leaf_flags(Access::Mmio, true),
            PRESENT | WRITABLE | NO_EXECUTE | CACHE_DISABLE | WRITE_THROUGH
        );
        // Without NX support bit 63 is reserved.
        for a in [
            Access::Code,
            Access::ReadOnly,
            Access::ReadWrite,
            Access::Mmio,
        ] {
            assert_eq!(leaf_flags(a, false) & NO_EXECUTE, 0);
            let f = leaf_flags(a, true);
            assert!(
                f & WRITABLE == 0 || f & NO_EXECUTE != 0,
                "{a:?} is writable and executable"
            );
        }
    }

    #[test]
    fn maps_small_and_large_pages_and_leaves_holes() {
        let mut frames = HostFrames::default();
        let root = frames.alloc_zeroed().unwrap();
        // SAFETY: the tree lives in `frames`' boxed pages, valid for the whole test.
        let mut m = unsafe { Mapper::new(root, &mut frames, true) };
        m.map(0x10_0000..0x10_3000, Access::Code).unwrap();
        m.map(0x10_4000..0x10_5000, Access::ReadWrite).unwrap(); // 0x103000 is a hole
        m.map(0x20_0000..0x60_0000, Access::ReadWrite).unwrap(); // two large pages
        m.map(0xc0_0000_0000..0xc0_0000_4000, Access::Mmio).unwrap(); // 64-bit BAR
        let (phys, flags) = m.translate(0x10_1234).unwrap();
        assert_eq!(phys, 0x10_1234);
        assert_eq!(flags, bits::PRESENT);
        assert_eq!(m.translate(0x10_3000), None, "guard page");
        assert_eq!(m.translate(0), None, "null page");
        let (phys, flags) = m.translate(0x5f_ffff).unwrap();
        assert_eq!(phys, 0x5f_ffff);
        assert_eq!(flags, leaf_flags(Access::ReadWrite, true));
        let (phys, flags) = m.translate(0xc0_0000_3ffc).unwrap();
        assert_eq!(phys, 0xc0_0000_3ffc);
        assert_eq!(flags, leaf_flags(Access::Mmio, true));
        assert_eq!(m.translate(0xc0_0000_4000), None);
        // Idempotent for the same rights (even after the CPU set accessed/dirty), an
        // error for different ones.
        // Simulate the CPU marking the MMIO page accessed and dirty.
        let pte = {
            let a = 0xc0_0000_0000;
            let pdpt = m.entry(root, index(a, 39)) & bits::ADDRESS;
            let pd = m.entry(pdpt, index(a, 30)) & bits::ADDRESS;
            m.entry(pd, index(a, 21)) & bits::ADDRESS
        };
        m.set_entry(pte, 0, m.entry(pte, 0) | bits::ACCESSED | bits::DIRTY);
        m.map(0xc0_0000_0000..0xc0_0000_1000, Access::Mmio).unwrap();
        m.map(0x30_0000..0x30_1000, Access::ReadWrite).unwrap(); // inside a large page
        assert_eq!(
            m.map(0x10_0000..0x10_1000, Access::Mmio),
            Err(MapError::Conflict { addr: 0x10_0000 })
        );
        assert_eq!(
            m.map(0x20_0000..0x20_1000, Access::Mmio),
            Err(MapError::Conflict { addr: 0x20_0000 })
        );
        assert!(matches!(
            m.map(1 << 47..(1 << 47) + 1, Access::Mmio),
            Err(MapError::OutOfRange { .. })
        ));
    }

    #[test]
    fn running_out_of_tables_is_an_error() {
        let mut frames = HostFrames::default();
        let root = frames.alloc_zeroed().unwrap();
        // SAFETY: as above.
        let mut m = unsafe { Mapper::new(root, &mut frames, true) };
        // Each 512 GiB apart: every mapping needs a new PDPT, PD and PT.
        let mut result = Ok(());
        for i in 0..20u64 {
            result = m.map(i << 39..(i << 39) + 0x1000, Access::Mmio);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(MapError::OutOfTables));
    }

    #[test]
    fn virt_to_phys_is_the_identity() {
        let x = 5u32;
        assert_eq!(virt_to_phys(&x), &x as *const u32 as u64);
        assert_eq!(index(0xc0_0000_0000, 39), 1);
    }
}
