//! The platform object and its device handles: console, clock (+ timer), entropy.

use alloc::boxed::Box;
use core::future::Future;
use core::time::Duration;
use morgana_signatures::Instant;
use rustix::time::{ClockId, clock_gettime};

use crate::Error;
use crate::reactor::{EpollIdle, Reactor, Sleep};
use crate::sys::{self, Std};

/// The Unix platform: the process's event loop and its command line.
///
/// The entry glue of [`entry!`](crate::entry) makes exactly one, keeps it in a static and
/// hands `&'static Platform` to the appliance. It is deliberately neither `Send` nor
/// `Sync`: everything in a Morgana process runs on its one thread.
pub struct Platform {
    reactor: Reactor,
    argc: usize,
    argv: *const *const u8,
}

impl Platform {
    /// A platform for the process whose argument vector is `argv[..argc]`.
    ///
    /// # Safety
    /// `argv` must point to `argc` pointers to NUL-terminated strings that stay valid and
    /// unchanged for the rest of the process (the kernel's initial stack does), followed
    /// by a NULL and the environment's pointers up to a NULL (as the initial stack lays
    /// them out), or be NULL with `argc` 0.
    pub(crate) unsafe fn new(argc: usize, argv: *const *const u8) -> Result<Platform, Error> {
        Ok(Platform {
            reactor: Reactor::new()?,
            argc,
            argv,
        })
    }

    /// A platform for a process that has its own start-up code, e.g. a hosted test
    /// (`std` is fine there): a fresh event loop, no arguments. It is leaked, as a
    /// platform lives as long as the process. Use it from one thread only, which the
    /// types enforce (`Platform` is not `Sync`).
    pub fn leak_new() -> Result<&'static Platform, Error> {
        // SAFETY: argv is NULL with argc 0: neither the arguments nor the environment
        // are read.
        let p = unsafe { Platform::new(0, core::ptr::null()) }?;
        Ok(Box::leak(Box::new(p)))
    }

    /// The console: standard output.
    pub fn console(&'static self) -> Console {
        Console { _private: () }
    }

    /// The clock: monotonic and wall time, and timers driven by the event loop.
    pub fn clock(&'static self) -> Clock {
        Clock {
            reactor: &self.reactor,
        }
    }

    /// The entropy source: the kernel's `getrandom`.
    pub fn entropy(&'static self) -> Entropy {
        Entropy { _private: () }
    }

    /// The command line, program name first. An argument that is not UTF-8 comes out as
    /// `"\u{FFFD}"`.
    pub fn args(&self) -> Args {
        Args {
            argv: self.argv,
            next: 0,
            end: self.argc,
        }
    }

    /// The value of the environment variable `name`, if the process has it (and it is
    /// UTF-8). Read from the environment block the kernel gave the process, which
    /// follows argv's terminating NULL; a platform without arguments
    /// ([`leak_new`](Platform::leak_new)) has no environment.
    pub fn env(&self, name: &str) -> Option<&'static str> {
        if self.argv.is_null() {
            return None;
        }
        let mut i = self.argc + 1;
        loop {
            // SAFETY: `Platform::new`'s contract: argv[..argc] then a NULL, then the
            // environment's pointers up to a NULL, all on the initial stack that lives
            // for the rest of the process; `i` never passes the environment's NULL.
            let p = unsafe { *self.argv.add(i) };
            if p.is_null() {
                return None;
            }
            // SAFETY: a non-NULL entry of envp is a NUL-terminated string (as above).
            let bytes = unsafe { core::ffi::CStr::from_ptr(p.cast()).to_bytes() };
            if let Some(value) = bytes
                .strip_prefix(name.as_bytes())
                .and_then(|rest| rest.strip_prefix(b"="))
            {
                return core::str::from_utf8(value).ok();
            }
            i += 1;
        }
    }

    /// Runs `future` to completion on this platform's event loop (`morgana_rt::block_on`
    /// with an epoll [`Idle`](morgana_rt::Idle)). The entry glue calls this once; do not
    /// nest it.
    pub fn run<F: Future>(&'static self, future: F) -> F::Output {
        let out = morgana_rt::block_on(future, &mut self.idle());
        // Nothing held back for idle time (UDP datagrams to send together) stays behind
        // when the loop stops.
        self.reactor.flush_held_back();
        out
    }

    /// The platform's [`Idle`](morgana_rt::Idle), for driving futures with
    /// `morgana_rt::block_on` directly.
    pub fn idle(&'static self) -> EpollIdle {
        EpollIdle {
            reactor: &self.reactor,
        }
    }

    pub(crate) fn reactor(&'static self) -> &'static Reactor {
        &self.reactor
    }
}

impl core::fmt::Debug for Platform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Platform")
            .field("argc", &self.argc)
            .finish_non_exhaustive()
    }
}

/// The command-line arguments, as `&'static str`.
#[derive(Clone, Debug)]
pub struct Args {
    argv: *const *const u8,
    next: usize,
    end: usize,
}

impl Args {
    fn get(&self, i: usize) -> &'static str {
        // SAFETY: `i < argc` (callers check), and `Platform::new`'s contract makes
        // argv[i] a NUL-terminated string that lives for the rest of the process.
        let bytes = unsafe {
            let p = *self.argv.add(i);
            core::ffi::CStr::from_ptr(p.cast()).to_bytes()
        };
        core::str::from_utf8(bytes).unwrap_or("\u{FFFD}")
    }
}

impl Iterator for Args {
    type Item = &'static str;

    fn next(&mut self) -> Option<&'static str> {
        if self.next >= self.end {
            return None;
        }
        let s = self.get(self.next);
        self.next += 1;
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.next;
        (n, Some(n))
    }
}

impl DoubleEndedIterator for Args {
    fn next_back(&mut self) -> Option<&'static str> {
        if self.next >= self.end {
            return None;
        }
        self.end -= 1;
        Some(self.get(self.end))
    }
}

impl ExactSizeIterator for Args {}

/// The console device: writes go to standard output, unbuffered.
#[derive(Clone, Copy, Debug)]
pub struct Console {
    _private: (),
}

impl morgana_signatures::Console for Console {
    fn write_bytes(&self, bytes: &[u8]) {
        sys::write_all(Std::Out, bytes);
    }
}

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::write_all(Std::Out, s.as_bytes());
        Ok(())
    }
}

/// `CLOCK_MONOTONIC` now.
pub(crate) fn monotonic_now() -> Instant {
    let ts = clock_gettime(ClockId::Monotonic);
    // The monotonic clock is never negative.
    Instant::from_nanos((ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64)
}

/// The clock device: `CLOCK_MONOTONIC`, `CLOCK_REALTIME`, and sleeps on the event loop's
/// timer queue.
#[derive(Clone, Copy)]
pub struct Clock {
    reactor: &'static Reactor,
}

impl core::fmt::Debug for Clock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Clock")
    }
}

impl morgana_signatures::MonotonicClock for Clock {
    fn now(&self) -> Instant {
        monotonic_now()
    }
}

impl morgana_signatures::WallClock for Clock {
    fn now_since_epoch(&self) -> Option<Duration> {
        let ts = clock_gettime(ClockId::Realtime);
        // Before 1970 means the clock is not set: report it as unknown.
        let secs = u64::try_from(ts.tv_sec).ok()?;
        Some(Duration::new(secs, ts.tv_nsec as u32))
    }
}

impl morgana_signatures::Timer for Clock {
    async fn sleep_until(&self, deadline: Instant) {
        Sleep::new(self.reactor, deadline).await
    }
}

/// The entropy device: the kernel's `getrandom(2)` (blocking only until the kernel's
/// pool is initialised, early at boot).
#[derive(Clone, Copy, Debug)]
pub struct Entropy {
    _private: (),
}

impl morgana_signatures::Entropy for Entropy {
    type Error = Error;

    fn fill(&self, mut buf: &mut [u8]) -> Result<(), Error> {
        while !buf.is_empty() {
            match rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty()) {
                Ok(n) => buf = &mut buf[n..],
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Error::os("getrandom", e)),
            }
        }
        Ok(())
    }

    /// The kernel's pool: strong.
    fn is_strong(&self) -> bool {
        true
    }

    /// `getrandom(2)` itself.
    const IS_HOST_GETRANDOM: bool = true;
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_signatures::{Entropy as _, MonotonicClock, Timer, WallClock};

    #[test]
    fn clocks_and_entropy_work_hosted() {
        let p = Platform::leak_new().unwrap();
        let clock = p.clock();
        let a = clock.now();
        let b = clock.now();
        assert!(b >= a);
        let wall = clock.now_since_epoch().unwrap();
        assert!(wall.as_secs() > 1_600_000_000);

        let mut x = [0u8; 64];
        let mut y = [0u8; 64];
        p.entropy().fill(&mut x).unwrap();
        p.entropy().fill(&mut y).unwrap();
        assert_ne!(x, y);
        assert_eq!(p.args().count(), 0);
    }

    #[test]
    fn sleep_waits_on_the_event_loop() {
        let p = Platform::leak_new().unwrap();
        let clock = p.clock();
        let start = clock.now();
        p.run(async {
            clock.sleep(Duration::from_millis(30)).await;
            // Already past: completes at once.
            clock.sleep_until(start).await;
        });
        let took = clock.now().saturating_duration_since(start);
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(p.reactor.timer_count(), 0);
    }

    #[test]
    fn losing_timeouts_disarm_their_timers() {
        let p = Platform::leak_new().unwrap();
        let clock = p.clock();
        p.run(async {
            for _ in 0..100 {
                let far = clock.now().saturating_add(Duration::from_secs(3600));
                let near = clock.now().saturating_add(Duration::from_millis(1));
                let r = morgana_rt::timeout(&clock, far, clock.sleep_until(near)).await;
                assert!(r.is_ok());
            }
            let near = clock.now().saturating_add(Duration::from_millis(5));
            let r = morgana_rt::timeout(&clock, near, core::future::pending::<()>()).await;
            assert_eq!(r, Err(morgana_rt::TimedOut));
        });
        assert_eq!(p.reactor.timer_count(), 0);
    }

    /// Deadlines 100 ms apart: timers due at the same wake-up are polled in the task
    /// set's order, not their deadlines' (the process descheduled for longer than the
    /// spacing under a loaded CI machine once made 40 and 30 both due at once), so the
    /// spacing must exceed any scheduling delay for the order to be the deadlines'.
    #[test]
    fn timers_fire_in_order() {
        use core::cell::RefCell;
        let p = Platform::leak_new().unwrap();
        let clock = p.clock();
        let order = RefCell::new(std::vec::Vec::new());
        let t0 = clock.now();
        let sleeper = |ms: u64| {
            let order = &order;
            async move {
                clock
                    .sleep_until(t0.saturating_add(Duration::from_millis(ms * 10)))
                    .await;
                order.borrow_mut().push(ms);
            }
        };
        p.run(async {
            let mut set = morgana_rt::TaskSet::new(4);
            for ms in [40, 10, 30, 20] {
                assert!(set.insert(sleeper(ms)).is_ok());
            }
            set.join_all().await;
        });
        assert_eq!(*order.borrow(), [10, 20, 30, 40]);
    }
}
