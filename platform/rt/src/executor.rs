//! The single-threaded executor.

use alloc::sync::Arc;
use alloc::task::Wake;
use core::future::Future;
use core::pin::pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

/// What a platform does when every task is waiting: sleep until something may have
/// become ready (an I/O event, a timer, an interrupt) and wake the wakers concerned.
pub trait Idle {
    /// Blocks until at least one event was delivered, or returns at once if one is
    /// pending. Spurious returns are allowed.
    fn wait(&mut self);
}

/// The top-level waker: a flag the executor looks at before going idle.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `future` to completion on this thread, idling through `idle` while it waits.
pub fn block_on<F: Future, I: Idle>(future: F, idle: &mut I) -> F::Output {
    let flag = Arc::new(Flag(AtomicBool::new(true)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if flag.0.swap(false, Ordering::Acquire) {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        } else {
            idle.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A future that is pending `n` times, waking itself later through the idle hook.
    struct Later<'a> {
        left: u32,
        parked: &'a Cell<Option<Waker>>,
    }

    impl Future for Later<'_> {
        type Output = u32;
        fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.left == 0 {
                return Poll::Ready(7);
            }
            self.left -= 1;
            self.parked.set(Some(cx.waker().clone()));
            Poll::Pending
        }
    }

    struct WakeParked<'a> {
        parked: &'a Cell<Option<Waker>>,
        waits: u32,
    }

    impl Idle for WakeParked<'_> {
        fn wait(&mut self) {
            self.waits += 1;
            if let Some(w) = self.parked.take() {
                w.wake();
            }
        }
    }

    #[test]
    fn idles_until_woken_then_completes() {
        let parked = Cell::new(None);
        let mut idle = WakeParked {
            parked: &parked,
            waits: 0,
        };
        let out = block_on(
            Later {
                left: 3,
                parked: &parked,
            },
            &mut idle,
        );
        assert_eq!(out, 7);
        assert_eq!(idle.waits, 3);
    }
}
