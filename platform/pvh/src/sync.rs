//! Interior mutability for a kernel with one CPU.
//!
//! The kernel runs on one CPU, Rust code runs with interrupts disabled, and the
//! interrupt and exception handlers never touch a [`CpuCell`] (they only set atomic
//! flags). So a `RefCell` is enough to share state between the event loop and the
//! futures: there is no concurrent access, and a re-entrant borrow — a bug — panics
//! instead of corrupting memory.

use core::cell::RefCell;

/// A `RefCell` that may live in a `static` of the single-CPU kernel.
pub(crate) struct CpuCell<T>(RefCell<T>);

// SAFETY: see the module documentation: one CPU, no access from interrupt context, so
// the inner `RefCell` is never used from two contexts at once.
unsafe impl<T> Sync for CpuCell<T> {}

impl<T> CpuCell<T> {
    pub(crate) const fn new(value: T) -> CpuCell<T> {
        CpuCell(RefCell::new(value))
    }

    /// Runs `f` with exclusive access to the value. Must not be re-entered from `f`.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }
}
