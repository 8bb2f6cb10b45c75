//! What a PV frontend driver needs from its kernel — pages to share, grants to its
//! backend's domain, its event channel, a clock — and the [`Watchdog`] every such
//! driver runs so that a lost notification cannot stall it for good.
//!
//! A driver is generic over [`Hal`], like morgana-virtio over its own: the kernel's
//! implementation is morgana-pvh's `xen::XenHal` (heap pages, the grant table, an
//! event channel bound to the backend, the kernel's timers), and host tests run the same
//! driver over a simulated backend and a virtual clock.
//!
//! # Why a watchdog
//!
//! A frontend sleeps until its event channel fires. If one notification is lost — the
//! backend's to us, or ours to the backend — and the appliance has nothing else to do
//! (an idle server, which has no timer of its own pending), nothing wakes it again: the
//! backend's next notification is suppressed by the ring's event indices, because the
//! frontend never consumed what the lost one announced. The guest is off the network
//! for good. The watchdog bounds that: when the device has been idle for a period, the
//! driver is woken anyway, looks at its rings and notifies the backend, and says in the
//! log what it found (see netfront's `watchdog` module).
//!
//! (Linux's netfront has no such timer — its only one refills receive buffers after an
//! allocation failure; netback watches its side with stall and drain timeouts.)

use crate::XenError;
use crate::grant::GrantRef;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use morgana_signatures::Instant;

/// The kernel services of one PV device.
pub trait Hal {
    /// A timer of the kernel's clock, completing at a deadline (the watchdog's).
    type Sleep: Future<Output = ()> + Unpin;

    /// `pages` zeroed, page-aligned pages that stay allocated for the driver's life.
    fn alloc_pages(&self, pages: usize) -> Result<NonNull<u8>, XenError>;
    /// Grants the backend access to the page at `page`; returns the grant reference.
    fn grant(&self, page: NonNull<u8>, readonly: bool) -> Result<GrantRef, XenError>;
    /// Signals the device's event channel.
    fn notify(&self);
    /// Wakes `waker` at the device's next event.
    fn register_waker(&self, waker: &Waker);
    /// Whether the device's event channel fired since the last call, or is pending right
    /// now (and clears what it took).
    fn take_event(&self) -> bool;
    /// The kernel's monotonic clock.
    fn now(&self) -> Instant;
    /// A timer that completes at `deadline`.
    fn sleep_until(&self, deadline: Instant) -> Self::Sleep;
    /// A count of diagnostic requests (the kernel's debug key): a driver that sees it
    /// change logs its state once. Kernels without one leave it at 0.
    fn diagnostics_epoch(&self) -> u32 {
        0
    }
}

/// A watchdog timer for one device: a check is due once per period, however busy the
/// device is, so that a driver that missed a notification is woken within a period.
///
/// The driver arms the watchdog with its waker whenever it goes to sleep
/// ([`Watchdog::arm`]) and asks [`Watchdog::due`] when it wakes up. One timer runs at a
/// time, started by the first `arm` after a check: a device costs one timer wake-up per
/// period, and the clock is read once per wake-up. What a check looks at, and what
/// counts as stuck, is the driver's business (see netfront's `watchdog` module).
pub struct Watchdog<S> {
    period: Duration,
    /// The running timer and its deadline, if armed.
    timer: RefCell<Option<(Instant, S)>>,
    /// The timer completed when polled by [`Watchdog::arm`] (a late park).
    expired: Cell<bool>,
}

impl<S: Future<Output = ()> + Unpin> Watchdog<S> {
    /// A watchdog with this period, not yet armed.
    pub fn new(period: Duration) -> Watchdog<S> {
        Watchdog {
            period,
            timer: RefCell::new(None),
            expired: Cell::new(false),
        }
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// Whether a check is due at `now`: the running period is over. The next
    /// [`Watchdog::arm`] starts another.
    pub fn due(&self, now: Instant) -> bool {
        let mut timer = self.timer.borrow_mut();
        let over = self.expired.replace(false) || matches!(&*timer, Some((at, _)) if *at <= now);
        if over {
            *timer = None;
        }
        over
    }

    /// Makes sure `waker` is woken when the running period ends, starting one if none
    /// runs. Called whenever the driver parks its waker.
    pub fn arm<H: Hal<Sleep = S>>(&self, hal: &H, waker: &Waker) {
        let mut timer = self.timer.borrow_mut();
        let (_, sleep) = timer.get_or_insert_with(|| {
            let deadline = hal.now().saturating_add(self.period);
            (deadline, hal.sleep_until(deadline))
        });
        if Pin::new(sleep).poll(&mut Context::from_waker(waker)) == Poll::Ready(()) {
            self.expired.set(true);
            waker.wake_by_ref();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;
    use std::vec::Vec;

    /// A virtual clock with the timers registered on it.
    #[derive(Default)]
    struct Clock {
        now: Cell<u64>,
        timers: RefCell<Vec<(u64, Waker)>>,
    }

    impl Clock {
        fn advance(&self, nanos: u64) {
            self.now.set(self.now.get() + nanos);
            let now = self.now.get();
            let due: Vec<Waker> = {
                let mut t = self.timers.borrow_mut();
                let (due, rest): (Vec<_>, Vec<_>) = t.drain(..).partition(|(d, _)| *d <= now);
                *t = rest;
                due.into_iter().map(|(_, w)| w).collect()
            };
            due.into_iter().for_each(Waker::wake);
        }
    }

    /// Registers on its first poll (and after firing), like the kernel's `Sleep`.
    struct FakeSleep {
        clock: Rc<Clock>,
        deadline: u64,
        registered: bool,
    }

    impl Future for FakeSleep {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.clock.now.get() >= self.deadline {
                return Poll::Ready(());
            }
            if !self.registered {
                let mut t = self.clock.timers.borrow_mut();
                t.push((self.deadline, cx.waker().clone()));
                drop(t);
                self.registered = true;
            }
            Poll::Pending
        }
    }

    struct ClockHal(Rc<Clock>);

    impl Hal for ClockHal {
        type Sleep = FakeSleep;
        fn alloc_pages(&self, _: usize) -> Result<NonNull<u8>, XenError> {
            Err(XenError::NotXen)
        }
        fn grant(&self, _: NonNull<u8>, _: bool) -> Result<GrantRef, XenError> {
            Err(XenError::NotXen)
        }
        fn notify(&self) {}
        fn register_waker(&self, _: &Waker) {}
        fn take_event(&self) -> bool {
            false
        }
        fn now(&self) -> Instant {
            Instant::from_nanos(self.0.now.get())
        }
        fn sleep_until(&self, deadline: Instant) -> FakeSleep {
            FakeSleep {
                clock: self.0.clone(),
                deadline: deadline.as_nanos(),
                registered: false,
            }
        }
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn a_device_is_checked_once_per_period() {
        let hal = ClockHal(Rc::new(Clock::default()));
        let dog = Watchdog::new(Duration::from_millis(1000));
        let woken = Arc::new(Count::default());
        let waker = Waker::from(woken.clone());
        dog.arm(&hal, &waker);
        dog.arm(&hal, &waker);
        assert_eq!(hal.0.timers.borrow().len(), 1, "one timer, polled twice");
        hal.0.advance(999 * MS);
        assert_eq!(woken.0.load(Ordering::SeqCst), 0);
        assert!(!dog.due(hal.now()));
        hal.0.advance(MS);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        // The woken driver checks, then parks again.
        assert!(dog.due(hal.now()));
        assert!(!dog.due(hal.now()), "one check per period");
        // Parking again starts the next period; wake-ups within it are not checks.
        dog.arm(&hal, &waker);
        hal.0.advance(500 * MS);
        assert!(!dog.due(hal.now()));
        dog.arm(&hal, &waker);
        hal.0.advance(500 * MS);
        assert!(dog.due(hal.now()));
        assert_eq!(woken.0.load(Ordering::SeqCst), 2, "one wake-up per period");
    }

    #[test]
    fn a_timer_found_expired_when_parking_wakes_at_once() {
        let hal = ClockHal(Rc::new(Clock::default()));
        let dog = Watchdog::new(Duration::from_millis(10));
        let woken = Arc::new(Count::default());
        let waker = Waker::from(woken.clone());
        dog.arm(&hal, &waker);
        // The timer's own wake-up went to a waker that is gone; the driver parks late.
        hal.0.timers.borrow_mut().clear();
        hal.0.now.set(20 * MS);
        dog.arm(&hal, &waker);
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(dog.due(hal.now()));
    }
}
