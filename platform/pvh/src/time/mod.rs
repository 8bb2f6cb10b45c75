//! Time: the calibrated TSC clock, the timer queue, sleeping, and the CMOS wall clock.
//!
//! Decisions:
//! - The monotonic clock is the TSC, counted from the kernel's first instruction (the
//!   boot code reads the TSC before anything else), so log times and the ready time are
//!   "since entry". Its rate comes from, in order: the hypervisor timing leaf
//!   (CPUID 0x4000_0010), CPUID 0x15, a PIT channel-2 window, CPUID 0x16. The PIT window
//!   is started at entry and read back when the rate is needed, so it overlaps the boot
//!   work (under QEMU TCG ~10 ms, enough: no waiting) and is only waited out while it is
//!   not yet known to 0.05 %. Both ends of a window are bracketed by TSC reads: QEMU TCG
//!   stalls the vCPU for milliseconds at times, which widens a bracket instead of
//!   silently skewing the result (a naive "wait for the edge" loop read the TSC 10-60 %
//!   fast here). Without any reference the kernel stops at boot with a message.
//! - Conversions use a 32.32 fixed-point nanoseconds-per-tick factor and 128-bit
//!   products, so no division happens on the hot path.
//! - Timers live in one queue ordered by deadline (a `Vec` sorted by `(deadline, id)`:
//!   a new timer is usually the latest and is appended; the queue holds about one timer
//!   per connection, so moving entries on removal is cheap, and it is kilobytes smaller
//!   than a `BTreeMap`). A [`Sleep`] future registers on first poll, refreshes its waker
//!   on later polls and deregisters on drop, so a sleep polled many times (inside
//!   `select`) costs one entry. The idle loop wakes what expired and arms the local APIC
//!   timer for the earliest deadline.
//! - The wall clock is the CMOS RTC, read once at boot and advanced with the monotonic
//!   clock; if the RTC reads as garbage (or is absent) the wall clock is `None`.

use crate::cpu::rdtsc;
use crate::sync::CpuCell;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use morgana_signatures::{Instant, MonotonicClock, Timer, WallClock};

mod calibrate;
mod rtc;

pub use calibrate::CalibrationError;
pub(crate) use calibrate::{ApicStopwatch, Calibration, PitStopwatch, finish, stated_rate};
use rtc::read_rtc;

/// TSC value at the kernel's first instruction.
static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);
/// TSC ticks per second (0 until calibrated).
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick, 32.32 fixed point (0 until calibrated).
static NS_PER_TICK: AtomicU64 = AtomicU64::new(0);

/// Records the TSC read by the boot code at entry.
pub(crate) fn set_entry_tsc(tsc: u64) {
    ENTRY_TSC.store(tsc, Ordering::Relaxed);
}

/// Installs the TSC frequency.
pub(crate) fn set_tsc_hz(hz: u64) {
    TSC_HZ.store(hz, Ordering::Relaxed);
    NS_PER_TICK.store(ns_per_tick_fixed(hz), Ordering::Relaxed);
}

/// The calibrated TSC frequency in Hz (0 before calibration).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// 32.32 fixed-point nanoseconds per tick at `hz`.
pub(crate) fn ns_per_tick_fixed(hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    ((1_000_000_000u128 << 32) / u128::from(hz)) as u64
}

/// Converts `ticks` to nanoseconds with a [`ns_per_tick_fixed`] factor.
pub(crate) fn ticks_to_nanos(ticks: u64, fixed: u64) -> u64 {
    let ns = (u128::from(ticks) * u128::from(fixed)) >> 32;
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// Converts nanoseconds to ticks at `hz`, saturating.
pub(crate) fn nanos_to_ticks(nanos: u64, hz: u64) -> u64 {
    let t = u128::from(nanos) * u128::from(hz) / 1_000_000_000;
    u64::try_from(t).unwrap_or(u64::MAX)
}

/// Nanoseconds since the kernel's first instruction (0 before calibration).
// Read in some twenty places: a call is much smaller than the inlined 128-bit arithmetic.
#[inline(never)]
pub fn nanos_since_entry() -> u64 {
    let fixed = NS_PER_TICK.load(Ordering::Relaxed);
    if fixed == 0 {
        return 0;
    }
    let delta = rdtsc().saturating_sub(ENTRY_TSC.load(Ordering::Relaxed));
    ticks_to_nanos(delta, fixed)
}

/// The TSC value at which the monotonic clock reads `nanos`.
pub(crate) fn tsc_at(nanos: u64) -> u64 {
    ENTRY_TSC
        .load(Ordering::Relaxed)
        .saturating_add(nanos_to_ticks(nanos, tsc_hz()))
}

/// A registered timer: what [`TimerQueue::insert`] returns, to refresh or cancel it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimerKey {
    deadline: u64,
    id: u64,
}

/// Timers ordered by deadline (ties in insertion order).
#[derive(Debug)]
pub struct TimerQueue<W> {
    /// Sorted by key, earliest first.
    entries: Vec<(TimerKey, W)>,
    next_id: u64,
}

impl<W> Default for TimerQueue<W> {
    fn default() -> Self {
        TimerQueue::new()
    }
}

impl<W> TimerQueue<W> {
    /// An empty queue.
    pub const fn new() -> TimerQueue<W> {
        TimerQueue {
            entries: Vec::new(),
            next_id: 0,
        }
    }

    /// Registers `w` to fire at `deadline` (nanoseconds).
    pub fn insert(&mut self, deadline: u64, w: W) -> TimerKey {
        let key = TimerKey {
            deadline,
            id: self.next_id,
        };
        self.next_id += 1;
        // Usually the latest deadline yet: appended.
        let at = self.entries.partition_point(|(k, _)| *k < key);
        self.entries.insert(at, (key, w));
        key
    }

    fn find(&self, key: TimerKey) -> Option<usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(&key)).ok()
    }

    /// The value of a registered timer, to update it.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut W> {
        let at = self.find(key)?;
        Some(&mut self.entries[at].1)
    }

    /// Cancels a timer.
    pub fn remove(&mut self, key: TimerKey) -> Option<W> {
        let at = self.find(key)?;
        Some(self.entries.remove(at).1)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries.first().map(|(k, _)| k.deadline)
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: u64) -> Option<W> {
        match self.entries.first() {
            Some((k, _)) if k.deadline <= now => Some(self.entries.remove(0).1),
            _ => None,
        }
    }

    /// Number of timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no timer is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Every pending sleep of the kernel.
pub(crate) static TIMERS: CpuCell<TimerQueue<Waker>> = CpuCell::new(TimerQueue::new());

/// Wakes every sleep whose deadline has passed; returns how many.
pub(crate) fn wake_expired() -> usize {
    let now = nanos_since_entry();
    let mut n = 0;
    while let Some(w) = TIMERS.with(|q| q.pop_expired(now)) {
        w.wake();
        n += 1;
    }
    n
}

/// How many timers are pending, and the earliest deadline (diagnostics).
pub(crate) fn pending_timers() -> (usize, Option<u64>) {
    TIMERS.with(|q| (q.len(), q.next_deadline()))
}

/// The earliest pending deadline, in nanoseconds since entry.
pub(crate) fn next_deadline() -> Option<u64> {
    TIMERS.with(|q| q.next_deadline())
}

/// Completes at or after a deadline on the kernel's monotonic clock.
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: u64,
    key: Option<TimerKey>,
}

impl Sleep {
    /// A sleep until `deadline`.
    pub fn until(deadline: Instant) -> Sleep {
        Sleep {
            deadline: deadline.as_nanos(),
            key: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if nanos_since_entry() >= this.deadline {
            if let Some(key) = this.key.take() {
                TIMERS.with(|q| q.remove(key));
            }
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => TIMERS.with(|q| match q.get_mut(key) {
                Some(w) if w.will_wake(cx.waker()) => {}
                Some(w) => *w = cx.waker().clone(),
                // Fired (popped) but not yet past the deadline by our clock reading:
                // register again.
                None => this.key = Some(q.insert(this.deadline, cx.waker().clone())),
            }),
            None => this.key = Some(TIMERS.with(|q| q.insert(this.deadline, cx.waker().clone()))),
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            TIMERS.with(|q| q.remove(key));
        }
    }
}

/// The clock handle: monotonic clock, wall clock and timers. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    _private: (),
}

impl Clock {
    pub(crate) const fn new() -> Clock {
        Clock { _private: () }
    }
}

impl MonotonicClock for Clock {
    fn now(&self) -> Instant {
        Instant::from_nanos(nanos_since_entry())
    }
}

impl Timer for Clock {
    async fn sleep_until(&self, deadline: Instant) {
        Sleep::until(deadline).await
    }
}

/// Unix seconds read from the RTC at boot (`u64::MAX`: unknown).
static WALL_SECS: AtomicU64 = AtomicU64::new(u64::MAX);
/// TSC value at which the wall clock was read (so it can be read before calibration).
static WALL_READ_TSC: AtomicU64 = AtomicU64::new(0);

impl WallClock for Clock {
    fn now_since_epoch(&self) -> Option<Duration> {
        let secs = WALL_SECS.load(Ordering::Relaxed);
        if secs == u64::MAX {
            return None;
        }
        let ticks = rdtsc().saturating_sub(WALL_READ_TSC.load(Ordering::Relaxed));
        let since = ticks_to_nanos(ticks, NS_PER_TICK.load(Ordering::Relaxed));
        Some(Duration::from_secs(secs) + Duration::from_nanos(since))
    }
}

/// Anchors the wall clock at `secs` (Unix seconds) now (Xen: from the shared info page).
pub(crate) fn set_wall_clock(secs: u64) {
    WALL_READ_TSC.store(rdtsc(), Ordering::Relaxed);
    WALL_SECS.store(secs, Ordering::Relaxed);
}

/// Anchors the wall clock at `wall_ns` (nanoseconds since the Unix epoch) at TSC
/// `tsc` (the tender states both; the TSC rate must be installed first).
pub(crate) fn set_wall_clock_at(wall_ns: u64, tsc: u64) {
    let secs = wall_ns / 1_000_000_000;
    let past_second = nanos_to_ticks(wall_ns % 1_000_000_000, tsc_hz());
    WALL_READ_TSC.store(tsc.saturating_sub(past_second), Ordering::Relaxed);
    WALL_SECS.store(secs, Ordering::Relaxed);
}

/// Reads the CMOS RTC once and anchors the wall clock to the monotonic clock.
pub(crate) fn init_wall_clock() -> Option<u64> {
    let secs = read_rtc()?;
    WALL_READ_TSC.store(rdtsc(), Ordering::Relaxed);
    WALL_SECS.store(secs, Ordering::Relaxed);
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_queue_orders_by_deadline_then_insertion() {
        let mut q = TimerQueue::new();
        q.insert(30, "c");
        let b = q.insert(20, "b");
        q.insert(10, "a");
        q.insert(20, "b2");
        assert_eq!(q.next_deadline(), Some(10));
        assert_eq!(q.pop_expired(5), None);
        assert_eq!(q.pop_expired(25), Some("a"));
        assert_eq!(q.pop_expired(25), Some("b"));
        assert_eq!(q.pop_expired(25), Some("b2"));
        assert_eq!(q.pop_expired(25), None);
        assert_eq!(q.remove(b), None, "already fired");
        assert_eq!(q.len(), 1);
        assert_eq!(q.pop_expired(u64::MAX), Some("c"));
        assert!(q.is_empty());
    }

    #[test]
    fn timer_queue_cancel_and_update() {
        let mut q = TimerQueue::new();
        let k1 = q.insert(100, 1);
        let k2 = q.insert(50, 2);
        *q.get_mut(k1).unwrap() = 11;
        assert_eq!(q.remove(k2), Some(2));
        assert_eq!(q.next_deadline(), Some(100));
        assert_eq!(q.pop_expired(100), Some(11));
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn tick_conversions_round_trip() {
        let hz = 2_450_000_000;
        let fixed = ns_per_tick_fixed(hz);
        let second = ticks_to_nanos(hz, fixed);
        assert!((999_999_000..=1_000_000_000).contains(&second), "{second}");
        assert_eq!(nanos_to_ticks(1_000_000_000, hz), hz);
        assert_eq!(nanos_to_ticks(u64::MAX, hz), u64::MAX);
        assert_eq!(ns_per_tick_fixed(0), 0);
        // A year of ticks does not overflow.
        let year = hz * 86_400 * 365;
        assert_eq!(
            ticks_to_nanos(year, fixed) / 1_000_000_000,
            86_400 * 365 - 1
        );
    }
}
