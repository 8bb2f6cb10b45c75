//! The global allocator `entry!` installs: talc over a fixed arena.
//!
//! The arena is a zero-initialised static array in the invoking binary, so it lands in
//! `.bss`: it costs nothing in the file, and the kernel commits its pages on first touch.
//! talc claims it on the first allocation.
//!
//! The lock: talc wants a `lock_api::RawMutex`. The process has one thread and no signal
//! handlers, so the lock can only ever be found taken if the allocator is re-entered
//! (a bug); instead of spinning forever, that is reported and the process exits.

use core::alloc::{GlobalAlloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use talc::lock_api::{GuardSend, RawMutex};
use talc::source::Claim;

use crate::sys::{self, Std};

/// The single-thread lock (see the module docs).
pub struct OneThreadLock(AtomicBool);

// SAFETY: the lock is exclusive: `lock` returns only after switching the flag from false
// to true (otherwise it exits the process), and `unlock` clears it.
unsafe impl RawMutex for OneThreadLock {
    #[allow(clippy::declare_interior_mutable_const)] // required by lock_api's design
    const INIT: OneThreadLock = OneThreadLock(AtomicBool::new(false));
    type GuardMarker = GuardSend;

    fn lock(&self) {
        if !self.try_lock() {
            sys::write_all(
                Std::Err,
                b"morgana: the allocator was re-entered while in use\n",
            );
            sys::exit(134);
        }
    }

    fn try_lock(&self) -> bool {
        !self.0.swap(true, Ordering::Acquire)
    }

    unsafe fn unlock(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The size of the failed allocation, if the last allocation failed (0 otherwise).
static FAILED_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The arena size, recorded with a failure (a `const` constructor cannot store it).
static ARENA_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The global allocator: talc over an arena of a fixed size.
pub struct Heap {
    talc: talc::TalcLock<OneThreadLock, Claim>,
    size: usize,
}

impl Heap {
    /// The smallest arena accepted (talc's metadata must fit, with room to spare).
    pub const MIN_BYTES: usize = 4096;

    /// An allocator over the array at `arena`.
    ///
    /// # Safety
    /// Nothing else may access the array, ever.
    pub const unsafe fn new<const N: usize>(arena: *mut [u8; N]) -> Heap {
        assert!(
            N >= Heap::MIN_BYTES,
            "entry!: heap_bytes must be at least 4096"
        );
        Heap {
            // SAFETY: the caller hands us exclusive use of the array, which is what
            // `Talc::claim` requires.
            talc: talc::TalcLock::new(unsafe { Claim::array(arena) }),
            size: N,
        }
    }

    /// The arena's size in bytes.
    pub const fn size(&self) -> usize {
        self.size
    }

    fn failed(&self, layout: Layout) {
        FAILED_SIZE.store(layout.size().max(1), Ordering::Relaxed);
        ARENA_SIZE.store(self.size, Ordering::Relaxed);
    }

    fn succeeded(&self) {
        if FAILED_SIZE.load(Ordering::Relaxed) != 0 {
            FAILED_SIZE.store(0, Ordering::Relaxed);
        }
    }
}

/// If the most recent allocation failed: its size and the arena's size.
pub(crate) fn last_failure() -> Option<(usize, usize)> {
    match FAILED_SIZE.load(Ordering::Relaxed) {
        0 => None,
        n => Some((n, ARENA_SIZE.load(Ordering::Relaxed))),
    }
}

// SAFETY: every method forwards to talc's `GlobalAlloc`, which upholds the contract; the
// wrapper only records failures.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.talc.alloc(layout) };
        if p.is_null() {
            self.failed(layout);
        } else {
            self.succeeded();
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { self.talc.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { self.talc.realloc(ptr, layout, new_size) };
        if p.is_null() {
            // SAFETY: `new_size` is valid for `layout.align()` per realloc's contract.
            self.failed(unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) });
        } else {
            self.succeeded();
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn allocates_frees_and_reports_exhaustion() {
        static mut ARENA: [u8; 64 * 1024] = [0; 64 * 1024];
        // SAFETY: ARENA is used by this test only.
        let heap = unsafe { Heap::new(&raw mut ARENA) };
        assert_eq!(heap.size(), 64 * 1024);
        let small = Layout::from_size_align(100, 8).unwrap();
        let mut ptrs = Vec::new();
        for i in 0..100 {
            // SAFETY: non-zero size.
            let p = unsafe { heap.alloc(small) };
            assert!(!p.is_null());
            assert_eq!(p as usize % 8, 0);
            // SAFETY: p is a fresh 100-byte allocation.
            unsafe { p.write_bytes(i as u8, 100) };
            ptrs.push(p);
        }
        for (i, p) in ptrs.iter().enumerate() {
            // SAFETY: still allocated, 100 bytes, written above.
            let bytes = unsafe { core::slice::from_raw_parts(*p, 100) };
            assert!(bytes.iter().all(|b| *b == i as u8));
        }
        // SAFETY: allocated above with `small`.
        let grown = unsafe { heap.realloc(ptrs[0], small, 1000) };
        assert!(!grown.is_null());
        // SAFETY: realloc kept the first 100 bytes.
        assert_eq!(unsafe { *grown.add(99) }, 0);
        ptrs[0] = grown;
        let big = Layout::from_size_align(1 << 20, 16).unwrap();
        // SAFETY: non-zero size.
        assert!(unsafe { heap.alloc(big) }.is_null());
        assert_eq!(last_failure(), Some((1 << 20, 64 * 1024)));
        for (i, p) in ptrs.into_iter().enumerate() {
            let l = if i == 0 {
                Layout::from_size_align(1000, 8).unwrap()
            } else {
                small
            };
            // SAFETY: allocated above with `l`.
            unsafe { heap.dealloc(p, l) };
        }
        // After freeing, most of the arena is available again, and success clears the
        // failure record.
        let half = Layout::from_size_align(32 * 1024, 8).unwrap();
        // SAFETY: non-zero size.
        let p = unsafe { heap.alloc(half) };
        assert!(!p.is_null());
        assert_eq!(last_failure(), None);
        // SAFETY: allocated just above.
        unsafe { heap.dealloc(p, half) };
    }

    #[test]
    fn the_lock_is_exclusive() {
        let l = OneThreadLock::INIT;
        assert!(l.try_lock());
        assert!(!l.try_lock());
        // SAFETY: held.
        unsafe { l.unlock() };
        assert!(l.try_lock());
    }
}
