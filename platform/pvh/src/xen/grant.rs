//! The kernel's grant table: Xen's frames mapped over pages of `.bss` on first use, and
//! the bookkeeping of `morgana_xen::grant::Table` over them.
//!
//! A PVH guest maps its grant table into its physical address space with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)`, frame by frame; [`grant_access`]
//! does that the first time a driver shares a page. What an entry is and how a grant
//! is revoked safely is explained in `morgana_xen::grant`.

use super::hypercall;
use crate::sync::CpuCell;
use core::cell::UnsafeCell;
use morgana_xen::XenError;
use morgana_xen::grant::{ENTRIES_PER_FRAME, FRAMES, RESERVED, Table};
pub use morgana_xen::grant::{EndError, GrantRef};

#[repr(C, align(4096))]
struct Frames(UnsafeCell<[u8; 4096 * FRAMES]>);

// SAFETY: the pages are only reached through the `Table` in `TABLE` (one CPU) and by Xen.
unsafe impl Sync for Frames {}

/// The pages whose frames are replaced by the grant table's.
#[unsafe(link_section = ".bss.morgana_xen_grant_table")]
static GRANT_FRAMES: Frames = Frames(UnsafeCell::new([0; 4096 * FRAMES]));

static TABLE: CpuCell<Option<Table>> = CpuCell::new(None);

fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> Result<R, XenError> {
    TABLE.with(|t| {
        if t.is_none() {
            if !super::on_xen() {
                return Err(XenError::NotXen);
            }
            let base = GRANT_FRAMES.0.get() as *mut u8;
            for i in 0..FRAMES {
                // SAFETY: the page is ours (page-aligned `.bss`), used for nothing else.
                unsafe { hypercall::map_grant_frame(i as u64, base as u64 + 4096 * i as u64) }?;
            }
            // SAFETY: the frames are mapped at `base` for the kernel's lifetime and only
            // reached through this table.
            *t = Some(unsafe { Table::new(base, (ENTRIES_PER_FRAME * FRAMES) as u32) });
        }
        Ok(f(t.as_mut().expect("set above")))
    })
}

/// Grants domain `domid` access to the page at physical address `page` (page aligned;
/// virtual == physical in this kernel). Maps the grant table on first use.
pub fn grant_access(domid: u16, page: u64, readonly: bool) -> Result<GrantRef, XenError> {
    debug_assert_eq!(page % 4096, 0);
    let frame = u32::try_from(page >> 12).map_err(|_| XenError::GrantsExhausted)?;
    with_table(|t| t.grant(domid, frame, readonly))?
}

/// Revokes grant `r`; fails while the backend still uses the page.
pub fn end_access(r: GrantRef) -> Result<(), EndError> {
    with_table(|t| t.end(r)).unwrap_or(Err(EndError::NotGranted))
}

/// Grant entries in use (granted and not yet revoked); `None` before the table is
/// mapped. For diagnostics.
pub fn in_use() -> Option<usize> {
    TABLE.with(|t| {
        t.as_ref()
            .map(|t| ENTRIES_PER_FRAME * FRAMES - RESERVED as usize - t.available())
    })
}
