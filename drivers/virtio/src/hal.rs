//! What the driver needs from the platform besides registers: memory the device can reach
//! (DMA) and memory barriers.
//!
//! The register side (MMIO) belongs to the [`Transport`](crate::Transport): only it
//! touches device registers, and it is built by platform code that has already mapped
//! them (see [`crate::pvh`]). So the HAL stays two things small enough to fake in a host
//! test: allocating DMA memory with its bus address, and ordering memory accesses
//! against the device.

use core::sync::atomic::{Ordering, fence};

/// A region of memory that a device reads and writes by bus address.
///
/// The driver accesses it only through raw pointers (the device may write whatever it
/// owns at any time, so no Rust reference to those bytes may exist), and frees it by
/// dropping it, after resetting the device.
///
/// # Safety
/// Implementors guarantee that, for the value's whole lifetime:
/// - [`DmaMemory::as_ptr`] is valid for reads and writes of [`DmaMemory::len`] bytes and
///   aligned to at least 16 bytes;
/// - the bytes were zero when the value was handed out by [`Hal::dma_alloc`];
/// - the device reaches the same bytes at the bus address [`DmaMemory::phys`], coherently
///   with the CPU (the [`Hal`] barriers are all the ordering the driver adds);
/// - nothing but the holder of this value uses the memory.
pub unsafe trait DmaMemory {
    /// The bus (physical) address of the first byte, as the device must be told.
    fn phys(&self) -> u64;
    /// The CPU's pointer to the first byte.
    fn as_ptr(&self) -> *mut u8;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The platform services a virtio driver needs: DMA memory and barriers.
///
/// The default barriers are Rust's atomic fences, which order the accesses of this CPU
/// in the C++ memory model; a platform may replace them with the instructions its
/// devices need (morgana-pvh's [`crate::pvh::PvhHal`] uses `mfence` and compiler
/// barriers, as Linux's `virt_mb` family does on x86).
pub trait Hal {
    /// The DMA memory this platform hands out.
    type Dma: DmaMemory;

    /// Allocates `len` bytes of zeroed DMA memory, at least 16-byte aligned; `None` when
    /// memory is exhausted.
    fn dma_alloc(&self, len: usize) -> Option<Self::Dma>;

    /// Full barrier: every earlier load and store is visible to the device before any
    /// later one (publishing a ring index, then reading the device's flags).
    fn mb(&self) {
        fence(Ordering::SeqCst);
    }

    /// Read barrier: a value read from the device (a used index) is read before the
    /// data it announces.
    fn rmb(&self) {
        fence(Ordering::Acquire);
    }

    /// Write barrier: the data (descriptors, frames) is visible to the device before the
    /// index that announces it.
    fn wmb(&self) {
        fence(Ordering::Release);
    }
}
