//! Grant tables (version 1): how a guest lets a backend domain access its pages.
//!
//! A PV device shares memory by *granting* pages: entry `ref` of this domain's grant
//! table says "domain `domid` may map (or copy to/from) frame `frame`, read-only or
//! not", and the frontend tells the backend the `ref` (through xenstore for rings,
//! inside ring requests for buffers). Xen keeps the table in its own frames; a PVH
//! guest maps them into its physical address space with
//! `XENMEM_add_to_physmap(XENMAPSPACE_grant_table)` over pages of its own `.bss`, on
//! first use.
//!
//! This module is the table's bookkeeping ([`Table`]), the same code over Xen's frames
//! in the kernel (morgana-pvh's `xen::grant::grant_access`, which maps the frames on
//! first use) and over a plain buffer in the host tests.
//!
//! Entry layout (v1, 8 bytes): `flags: u16`, `domid: u16`, `frame: u32`. Granting
//! writes `domid` and `frame`, then (after a release fence) `flags =
//! GTF_permit_access [| GTF_readonly]`. Ending access must not race with the backend,
//! which sets `GTF_reading`/`GTF_writing` while it uses the page: the flags are
//! swapped to 0 with a compare-and-exchange that fails while either bit is set.
//! Entries 0..8 are reserved for the toolstack (xenstore and console rings).
//!
//! Version 2 tables, transitive and sub-page grants are not used: netfront needs
//! none of them (decision recorded in docs/architecture.md).

use crate::XenError;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, Ordering, fence};

/// A grant reference: an index into this domain's grant table.
pub type GrantRef = u32;

/// Bytes of one v1 entry.
const ENTRY_BYTES: usize = 8;
/// Entries per 4 KiB frame.
pub const ENTRIES_PER_FRAME: usize = 4096 / ENTRY_BYTES;
/// Entries the toolstack reserves (`GNTTAB_NR_RESERVED_ENTRIES`).
pub const RESERVED: u32 = 8;
/// Frames the kernel maps: 1 016 usable entries, room for a netfront's 2 rings, 128
/// receive pages and 64 transmit pages, and a block device's as many again.
pub const FRAMES: usize = 2;

/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_readonly`.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading`: the backend is reading the page right now.
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing`: the backend is writing the page right now.
pub const GTF_WRITING: u16 = 1 << 4;

/// Entry bookkeeping over table memory: which entries are free, and the entry writes.
/// The same code runs over Xen's frames in the kernel and over a plain buffer in the
/// host tests.
pub struct Table {
    base: *mut u8,
    entries: u32,
    free: Vec<GrantRef>,
}

/// Why [`Table::end`] could not revoke a grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndError {
    /// The backend is still reading or writing the page.
    InUse,
    /// The reference is reserved, out of range or not granted.
    NotGranted,
}

impl Table {
    /// Takes over `entries` entries at `base`; all but the reserved ones are free.
    ///
    /// # Safety
    /// `base` must point to `entries * 8` bytes of 2-byte aligned memory that stay valid
    /// and are written by nobody else (but the backend, through the flags) while the
    /// `Table` lives.
    pub unsafe fn new(base: *mut u8, entries: u32) -> Table {
        Table {
            base,
            entries,
            free: (RESERVED..entries).rev().collect(),
        }
    }

    /// Entries still free.
    pub fn available(&self) -> usize {
        self.free.len()
    }

    fn flags(&self, r: GrantRef) -> &AtomicU16 {
        // SAFETY: `r < entries` (checked by callers); the flags are the first, 2-byte
        // aligned field of entry `r`, accessed atomically because the backend updates
        // them.
        unsafe { &*(self.base.add(r as usize * ENTRY_BYTES) as *const AtomicU16) }
    }

    /// Grants domain `domid` access to frame `frame`; returns the reference.
    pub fn grant(&mut self, domid: u16, frame: u32, readonly: bool) -> Result<GrantRef, XenError> {
        let r = self.free.pop().ok_or(XenError::GrantsExhausted)?;
        // SAFETY: `r < entries`; the entry is ours (free, so the backend has no access
        // to it and does not touch it); domid at offset 2, frame at offset 4.
        unsafe {
            let entry = self.base.add(r as usize * ENTRY_BYTES);
            entry.add(2).cast::<u16>().write_volatile(domid);
            entry.add(4).cast::<u32>().write_volatile(frame);
        }
        fence(Ordering::Release);
        let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
        self.flags(r).store(flags, Ordering::Release);
        Ok(r)
    }

    /// Revokes grant `r`; fails while the backend still uses the page.
    pub fn end(&mut self, r: GrantRef) -> Result<(), EndError> {
        if r < RESERVED || r >= self.entries || self.free.contains(&r) {
            return Err(EndError::NotGranted);
        }
        let flags = self.flags(r);
        let mut current = flags.load(Ordering::Acquire);
        loop {
            if current & (GTF_READING | GTF_WRITING) != 0 {
                return Err(EndError::InUse);
            }
            match flags.compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        self.free.push(r);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn table(mem: &mut [u64]) -> Table {
        // SAFETY: `mem` outlives the table in every test and is 8-byte aligned.
        unsafe { Table::new(mem.as_mut_ptr().cast(), mem.len() as u32) }
    }

    fn entry(mem: &[u64], r: GrantRef) -> (u16, u16, u32) {
        let e = mem[r as usize];
        (e as u16, (e >> 16) as u16, (e >> 32) as u32)
    }

    #[test]
    fn grants_skip_reserved_entries_and_set_flags_last() {
        let mut mem = vec![0u64; 16];
        let mut t = table(&mut mem);
        let a = t.grant(0, 0x1234, false).unwrap();
        let b = t.grant(7, 0x5678, true).unwrap();
        assert_eq!((a, b), (RESERVED, RESERVED + 1));
        drop(t);
        assert_eq!(entry(&mem, a), (GTF_PERMIT_ACCESS, 0, 0x1234));
        assert_eq!(
            entry(&mem, b),
            (GTF_PERMIT_ACCESS | GTF_READONLY, 7, 0x5678)
        );
    }

    #[test]
    fn a_full_table_says_so() {
        let mut mem = vec![0u64; RESERVED as usize + 2];
        let mut t = table(&mut mem);
        t.grant(0, 1, false).unwrap();
        t.grant(0, 2, false).unwrap();
        assert_eq!(t.grant(0, 3, false), Err(XenError::GrantsExhausted));
    }

    #[test]
    fn end_refuses_while_the_backend_uses_the_page_and_frees_after() {
        let mut mem = vec![0u64; 16];
        let mut t = table(&mut mem);
        let r = t.grant(0, 9, false).unwrap();
        // The backend starts writing.
        t.flags(r).fetch_or(GTF_WRITING, Ordering::SeqCst);
        assert_eq!(t.end(r), Err(EndError::InUse));
        t.flags(r).fetch_and(!GTF_WRITING, Ordering::SeqCst);
        assert_eq!(t.end(r), Ok(()));
        assert_eq!(t.flags(r).load(Ordering::SeqCst), 0);
        assert_eq!(t.end(r), Err(EndError::NotGranted));
        assert_eq!(t.end(3), Err(EndError::NotGranted));
        assert_eq!(t.end(99), Err(EndError::NotGranted));
        // The freed entry is handed out again.
        assert_eq!(t.grant(0, 10, false), Ok(r));
    }
}
