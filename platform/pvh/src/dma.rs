//! Memory for devices to read and write (DMA).
//!
//! Virtual == physical in this kernel and the heap is ordinary write-back RAM that
//! QEMU/KVM/Xen devices see coherently, so a DMA buffer is simply a zeroed, page-aligned
//! heap allocation whose address is its bus address. [`DmaBuffer`] packages that with
//! its physical address; drivers access the contents through raw pointers (the device
//! may write at any time, so Rust references to the bytes would be unsound).

use alloc::alloc::{alloc_zeroed, dealloc};
use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

/// Page size, the alignment of every DMA buffer.
pub const DMA_ALIGN: usize = 4096;

/// The allocation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaError {
    /// Bytes asked for.
    pub len: usize,
}

impl fmt::Display for DmaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot allocate a {}-byte DMA buffer", self.len)
    }
}

/// A zeroed, page-aligned buffer a device may access by its physical address.
#[derive(Debug)]
pub struct DmaBuffer {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl DmaBuffer {
    /// Allocates `len` bytes (rounded up to whole pages), zeroed.
    pub fn new(len: usize) -> Result<DmaBuffer, DmaError> {
        let size = len.max(1).div_ceil(DMA_ALIGN) * DMA_ALIGN;
        let layout = Layout::from_size_align(size, DMA_ALIGN).map_err(|_| DmaError { len })?;
        // SAFETY: the layout has a nonzero size.
        let ptr = unsafe { alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(DmaError { len })?;
        Ok(DmaBuffer { ptr, layout })
    }

    /// The bus (physical) address to give the device.
    pub fn phys(&self) -> u64 {
        crate::paging::virt_to_phys(self.ptr.as_ptr())
    }

    /// The buffer's size (whole pages).
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Always false: a buffer has at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Pointer to the first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Gives up ownership: the memory stays allocated (e.g. for a ring the device keeps
    /// using for the kernel's lifetime). Returns the pointer.
    pub fn leak(self) -> NonNull<u8> {
        let p = self.ptr;
        core::mem::forget(self);
        p
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout and not yet freed.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_page_aligned_zeroed_whole_pages() {
        let b = DmaBuffer::new(100).unwrap();
        assert_eq!(b.len(), 4096);
        assert_eq!(b.phys() % 4096, 0);
        // SAFETY: the buffer is 4096 bytes and no device uses it.
        let bytes = unsafe { core::slice::from_raw_parts(b.as_ptr(), b.len()) };
        assert!(bytes.iter().all(|&x| x == 0));
        assert_eq!(DmaBuffer::new(8193).unwrap().len(), 3 * 4096);
    }
}
