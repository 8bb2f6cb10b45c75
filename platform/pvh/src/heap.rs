//! The kernel heap: the `talc` allocator over one contiguous RAM range.
//!
//! `entry!` declares a [`Heap`] as the binary's global allocator; the boot path claims
//! the range chosen from the memory map (see `memmap::select_heap`) once the kernel's
//! page tables map it. Allocation before that fails (returns null).
//!
//! `talc` is used directly (not its lock wrapper): one CPU, Rust code runs with
//! interrupts off, and no interrupt or exception handler allocates, so an `UnsafeCell`
//! is sound. When an allocation fails, a line naming the request and the heap's size and
//! use is printed on the console (the allocation error handler then panics, unless the
//! caller handles the failure, as `try_reserve` does).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ops::Range;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};
use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

/// The kernel's global allocator.
pub struct Heap {
    talc: UnsafeCell<Talc<Manual, DefaultBinning>>,
    size: AtomicUsize,
    used: AtomicUsize,
}

// SAFETY: see the module docs: one CPU, no allocation from interrupt context, so the
// `UnsafeCell` is never accessed from two contexts at once.
unsafe impl Sync for Heap {}

impl core::fmt::Debug for Heap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap")
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for Heap {
    fn default() -> Self {
        Heap::new()
    }
}

/// Heap figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes claimed for the heap.
    pub size: usize,
    /// Bytes currently allocated (requested sizes).
    pub used: usize,
}

/// The heap could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapInitError;

impl core::fmt::Display for HeapInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the heap region is too small for the allocator's metadata")
    }
}

impl Heap {
    /// An empty heap (every allocation fails until the boot path claims memory).
    pub const fn new() -> Heap {
        Heap {
            talc: UnsafeCell::new(Talc::new(Manual)),
            size: AtomicUsize::new(0),
            used: AtomicUsize::new(0),
        }
    }

    /// Gives `range` to the allocator.
    ///
    /// # Safety
    /// `range` must be mapped read-write, unused by anything else for the rest of the
    /// kernel's life, and `init` must be called once.
    pub(crate) unsafe fn init(&self, range: Range<u64>) -> Result<(), HeapInitError> {
        let len = (range.end - range.start) as usize;
        // SAFETY: the caller guarantees exclusive use of the range; we are the only user
        // of the allocator state (one CPU, interrupts off).
        let claimed = unsafe { (*self.talc.get()).claim(range.start as *mut u8, len) };
        claimed.ok_or(HeapInitError)?;
        self.size.store(len, Ordering::Relaxed);
        Ok(())
    }

    /// Size and use.
    pub fn stats(&self) -> HeapStats {
        HeapStats {
            size: self.size.load(Ordering::Relaxed),
            used: self.used.load(Ordering::Relaxed),
        }
    }

    fn out_of_memory(&self, layout: Layout) {
        if cfg!(test) {
            return; // host unit tests have no serial port
        }
        let s = self.stats();
        crate::console::print(format_args!(
            "morgana: out of memory: cannot allocate {} bytes (align {}); heap {} KiB, {} KiB in use\n",
            layout.size(),
            layout.align(),
            s.size / 1024,
            s.used / 1024
        ));
    }
}

// SAFETY: allocations come from talc, which hands out non-overlapping blocks of the
// requested layout within the claimed range; deallocation passes back what it handed
// out. `&mut` access to talc is exclusive (see the `Sync` impl).
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout.size()` is nonzero (GlobalAlloc's contract); exclusive access.
        match unsafe { (*self.talc.get()).allocate(layout) } {
            Some(p) => {
                self.used.fetch_add(layout.size(), Ordering::Relaxed);
                p.as_ptr()
            }
            None => {
                self.out_of_memory(layout);
                ptr::null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller passes a block this allocator returned with this layout.
        unsafe { (*self.talc.get()).deallocate(ptr, layout) };
        self.used.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` came from this allocator and `new_size` is nonzero
        // (GlobalAlloc's contract).
        if unsafe { (*self.talc.get()).try_realloc_in_place(ptr, layout, new_size) } {
            self.used.fetch_add(new_size, Ordering::Relaxed);
            self.used.fetch_sub(layout.size(), Ordering::Relaxed);
            return ptr;
        }
        // SAFETY: `new_size` with the old alignment is a valid layout (the contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: nonzero size, as above.
        let new = unsafe { self.alloc(new_layout) };
        if let Some(new) = NonNull::new(new) {
            // SAFETY: both blocks are valid for the smaller size and do not overlap; the
            // old block is freed once, after the copy.
            unsafe {
                ptr::copy_nonoverlapping(ptr, new.as_ptr(), layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    #[test]
    fn allocates_within_the_claimed_range_and_tracks_use() {
        #[repr(align(4096))]
        struct Arena([u8; 64 * 1024]);
        let arena = Box::leak(Box::new(Arena([0; 64 * 1024])));
        let start = arena.0.as_mut_ptr() as u64;
        let heap = Heap::new();
        let l = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: nonzero layout; heap not yet claimed.
        assert!(unsafe { heap.alloc(l) }.is_null());
        // SAFETY: the leaked arena is ours alone.
        unsafe { heap.init(start..start + 64 * 1024) }.unwrap();
        // SAFETY: nonzero layouts; pointers passed back as allocated.
        unsafe {
            let a = heap.alloc(l);
            assert!(!a.is_null());
            assert!((a as u64) >= start && (a as u64) + 100 <= start + 64 * 1024);
            assert_eq!(heap.stats().used, 100);
            let b = heap.realloc(a, l, 5000);
            assert!(!b.is_null());
            assert_eq!(heap.stats().used, 5000);
            heap.dealloc(b, Layout::from_size_align(5000, 8).unwrap());
            assert_eq!(heap.stats().used, 0);
            let huge = Layout::from_size_align(1 << 20, 8).unwrap();
            assert!(heap.alloc(huge).is_null());
        }
    }
}
