//! The guest's allocator: talc over the largest RAM region of the memory map. The test
//! guest itself barely allocates (smoltcp runs on static buffers); the runtime crate it
//! links for `memcpy` & co. uses `alloc`, which needs a global allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use talc::DefaultBinning;
use talc::base::Talc;
use talc::source::Manual;

/// The global allocator.
pub struct Heap(UnsafeCell<Talc<Manual, DefaultBinning>>);

// SAFETY: one CPU and no interrupts: the cell is never used from two contexts at once.
unsafe impl Sync for Heap {}

impl Heap {
    /// An empty heap: allocations fail until [`Heap::claim`].
    pub const fn new() -> Heap {
        Heap(UnsafeCell::new(Talc::new(Manual)))
    }

    /// Gives `len` bytes at `start` to the allocator.
    ///
    /// # Safety
    /// The range is mapped read-write, used by nothing else, and claimed once.
    pub unsafe fn claim(&self, start: u64, len: u64) {
        // SAFETY: the caller's contract; exclusive access (see `Sync`).
        unsafe { (*self.0.get()).claim(start as *mut u8, len as usize) };
    }
}

// SAFETY: blocks come from talc, which hands out non-overlapping blocks of the requested
// layout inside the claimed range and takes back what it handed out.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: nonzero size (GlobalAlloc's contract); exclusive access.
        unsafe { (*self.0.get()).allocate(layout) }.map_or(core::ptr::null_mut(), |p| p.as_ptr())
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: a block this allocator returned, with its layout.
        unsafe { (*self.0.get()).deallocate(ptr, layout) };
    }
}
