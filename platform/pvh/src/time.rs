//! Time: the calibrated TSC clock, the timer queue, sleeping, and the CMOS wall clock.
//!
//! Decisions:
//! - The monotonic clock is the TSC, counted from the kernel's first instruction (the
//!   boot code reads the TSC before anything else), so log times and the ready time are
//!   "since entry". It is calibrated once against PIT channel 2: 2 ms countdowns whose
//!   start and end are bracketed by TSC reads, repeated (up to 10 times) until one is
//!   known to 0.05 %. Bracketing matters under emulation: QEMU TCG sometimes stalls the
//!   vCPU for milliseconds between two polls, and a naive "wait for the edge" loop then
//!   read the TSC 10-60 % fast (measured here). Where no PIT answers (Xen PVH has none)
//!   CPUID leaf 0x15/0x16 is tried; without either the kernel cannot keep time and stops
//!   at boot with a message.
//! - Conversions use a 32.32 fixed-point nanoseconds-per-tick factor and 128-bit
//!   products, so no division happens on the hot path.
//! - Timers live in one queue ordered by deadline (a `BTreeMap` keyed by
//!   `(deadline, id)`). A [`Sleep`] future registers on first poll, refreshes its waker
//!   on later polls and deregisters on drop, so a sleep polled many times (inside
//!   `select`) costs one entry. The idle loop wakes what expired and arms the local APIC
//!   timer for the earliest deadline.
//! - The wall clock is the CMOS RTC, read once at boot and advanced with the monotonic
//!   clock; if the RTC reads as garbage (or is absent) the wall clock is `None`.

use crate::cpu::{self, inb, outb, rdtsc};
use crate::sync::CpuCell;
use alloc::collections::BTreeMap;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll, Waker};
use core::time::Duration;
use morgana_signatures::{Instant, MonotonicClock, Timer, WallClock};

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

/// Why the clock could not be calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationError {
    /// No PIT answered and CPUID does not state the TSC frequency.
    NoReference,
}

impl core::fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CalibrationError::NoReference => f.write_str(
                "cannot calibrate the TSC: no PIT answered and CPUID leaves 0x15/0x16 give no frequency",
            ),
        }
    }
}

/// What calibration measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Local APIC timer ticks per second at divide-by-1, when measured.
    pub apic_hz: Option<u64>,
    /// Which reference was used.
    pub reference: &'static str,
}

const PIT_HZ: u64 = 1_193_182;
/// One calibration window, in microseconds.
const GATE_US: u64 = 2_000;
/// Windows tried before settling for the most precise one.
const MAX_TRIES: u32 = 10;

/// One PIT window: TSC ticks for `count` PIT ticks, and how uncertain that is (TSC
/// ticks), plus the APIC timer ticks seen (if measured).
struct Window {
    tsc: u64,
    uncertainty: u64,
    apic: Option<u32>,
}

/// Times one PIT channel-2 countdown of `count` ticks with the TSC.
///
/// Both ends are bracketed by TSC reads: the start lies between the reads around the
/// write that loads the counter; the end (the OUT edge) between the read before the last
/// poll that saw it low and the read after the poll that saw it high. Under emulation
/// the vCPU may stall at any point (seen under QEMU TCG: stalls of milliseconds), which
/// widens a bracket instead of silently skewing the result.
fn pit_window(count: u64, lapic: Option<&crate::apic::Lapic>) -> Option<Window> {
    // SAFETY: (this and the port accesses below) ports 0x42/0x43/0x61 are PIT channel 2
    // and its gate on the PC platform; channel 2 (the speaker's) is used by nothing
    // else, and the speaker output stays off.
    unsafe {
        let gate = inb(0x61);
        outb(0x61, (gate & !0x02) | 0x01);
        outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
        outb(0x42, count as u8);
    }
    if let Some(l) = lapic {
        l.start_calibration();
    }
    let a0 = rdtsc();
    // SAFETY: see above; the high byte starts the countdown.
    unsafe { outb(0x42, (count >> 8) as u8) };
    let a1 = rdtsc();
    let mut before_low = a1;
    loop {
        let b0 = rdtsc();
        // SAFETY: see above; reading the gate register has no side effect.
        let high = unsafe { inb(0x61) } & 0x20 != 0;
        let b1 = rdtsc();
        if high {
            let apic = lapic.map(|l| l.stop_calibration());
            let start = a0 / 2 + a1 / 2;
            let end = before_low / 2 + b1 / 2;
            return Some(Window {
                tsc: end.saturating_sub(start),
                uncertainty: ((a1 - a0) + (b1 - before_low)) / 2,
                apic,
            });
        }
        before_low = b0;
        // No edge after ~2^31 ticks (about a second on any usable CPU): no PIT here.
        if b1.wrapping_sub(a0) > 1 << 31 {
            return None;
        }
        core::hint::spin_loop();
    }
}

/// Measures the TSC (and, if `lapic` is given, the APIC timer) against PIT channel 2.
/// Tries windows until one is known to 0.05 % (keeping the most precise).
pub(crate) fn calibrate(
    lapic: Option<&crate::apic::Lapic>,
) -> Result<Calibration, CalibrationError> {
    let count = PIT_HZ * GATE_US / 1_000_000;
    // SAFETY: reading port 0x61 has no side effect; it is restored below.
    let saved = unsafe { inb(0x61) };
    let mut best: Option<Window> = None;
    for _ in 0..MAX_TRIES {
        let Some(w) = pit_window(count, lapic) else {
            break;
        };
        let precise = w.uncertainty.saturating_mul(2000) < w.tsc;
        if best.as_ref().is_none_or(|b| w.uncertainty < b.uncertainty) {
            best = Some(w);
        }
        if precise {
            break;
        }
    }
    // SAFETY: restores the gate register as it was.
    unsafe { outb(0x61, saved) };
    if let Some(w) = best {
        return Ok(Calibration {
            tsc_hz: w.tsc * PIT_HZ / count,
            apic_hz: w.apic.map(|t| u64::from(t) * PIT_HZ / count),
            reference: "PIT",
        });
    }
    // No PIT: CPUID leaf 0x15 (TSC/crystal ratio) or 0x16 (base MHz).
    let max = cpu::cpuid(0, 0).eax;
    if max >= 0x15 {
        let l = cpu::cpuid(0x15, 0);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Ok(Calibration {
                tsc_hz: u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax),
                apic_hz: None,
                reference: "CPUID 0x15",
            });
        }
    }
    if max >= 0x16 {
        let mhz = cpu::cpuid(0x16, 0).eax & 0xFFFF;
        if mhz != 0 {
            return Ok(Calibration {
                tsc_hz: u64::from(mhz) * 1_000_000,
                apic_hz: None,
                reference: "CPUID 0x16",
            });
        }
    }
    Err(CalibrationError::NoReference)
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
    entries: BTreeMap<TimerKey, W>,
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
            entries: BTreeMap::new(),
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
        self.entries.insert(key, w);
        key
    }

    /// The value of a registered timer, to update it.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut W> {
        self.entries.get_mut(&key)
    }

    /// Cancels a timer.
    pub fn remove(&mut self, key: TimerKey) -> Option<W> {
        self.entries.remove(&key)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<u64> {
        self.entries.first_key_value().map(|(k, _)| k.deadline)
    }

    /// Removes and returns the earliest timer whose deadline is at or before `now`.
    pub fn pop_expired(&mut self, now: u64) -> Option<W> {
        match self.entries.first_key_value() {
            Some((k, _)) if k.deadline <= now => self.entries.pop_first().map(|(_, w)| w),
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
/// Monotonic nanoseconds at which the RTC was read.
static WALL_READ_AT: AtomicU64 = AtomicU64::new(0);

impl WallClock for Clock {
    fn now_since_epoch(&self) -> Option<Duration> {
        let secs = WALL_SECS.load(Ordering::Relaxed);
        if secs == u64::MAX {
            return None;
        }
        let since = nanos_since_entry().saturating_sub(WALL_READ_AT.load(Ordering::Relaxed));
        Some(Duration::from_secs(secs) + Duration::from_nanos(since))
    }
}

/// Anchors the wall clock at `secs` (Unix seconds) now (Xen: from the shared info page).
pub(crate) fn set_wall_clock(secs: u64) {
    WALL_READ_AT.store(nanos_since_entry(), Ordering::Relaxed);
    WALL_SECS.store(secs, Ordering::Relaxed);
}

/// Reads the CMOS RTC once and anchors the wall clock to the monotonic clock.
pub(crate) fn init_wall_clock() -> Option<u64> {
    let secs = read_rtc()?;
    WALL_READ_AT.store(nanos_since_entry(), Ordering::Relaxed);
    WALL_SECS.store(secs, Ordering::Relaxed);
    Some(secs)
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index/data pair; selecting a register and
    // reading it has no side effect beyond the index latch.
    unsafe {
        outb(0x70, reg);
        inb(0x71)
    }
}

/// Raw RTC registers: seconds, minutes, hours, day, month, year, century.
type RtcRaw = [u8; 7];

fn read_raw() -> RtcRaw {
    [
        cmos(0x00),
        cmos(0x02),
        cmos(0x04),
        cmos(0x07),
        cmos(0x08),
        cmos(0x09),
        cmos(0x32),
    ]
}

fn read_rtc() -> Option<u64> {
    // Wait (bounded) for no update in progress, then read until two reads agree.
    let t0 = rdtsc();
    while cmos(0x0A) & 0x80 != 0 && rdtsc().wrapping_sub(t0) < (1 << 28) {
        core::hint::spin_loop();
    }
    let mut raw = read_raw();
    for _ in 0..5 {
        let again = read_raw();
        if again == raw {
            break;
        }
        raw = again;
    }
    let status_b = cmos(0x0B);
    decode_rtc(raw, status_b)
}

fn bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0F)
}

/// Decodes raw RTC registers (binary or BCD, 12- or 24-hour, per status register B)
/// into Unix seconds; `None` if they do not form a plausible date.
pub(crate) fn decode_rtc(raw: RtcRaw, status_b: u8) -> Option<u64> {
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let conv = |v: u8| if binary { v } else { bcd(v) };
    let pm = raw[2] & 0x80 != 0;
    let sec = conv(raw[0]);
    let min = conv(raw[1]);
    let mut hour = conv(raw[2] & 0x7F);
    if !h24 {
        hour %= 12;
        if pm {
            hour += 12;
        }
    }
    let day = conv(raw[3]);
    let month = conv(raw[4]);
    let year2 = conv(raw[5]);
    let century = conv(raw[6]);
    let century = if (19..=21).contains(&century) {
        century
    } else {
        20
    };
    if sec > 59
        || min > 59
        || hour > 23
        || !(1..=31).contains(&day)
        || !(1..=12).contains(&month)
        || year2 > 99
    {
        return None;
    }
    let year = i64::from(century) * 100 + i64::from(year2);
    let days = days_from_civil(year, u32::from(month), u32::from(day));
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    u64::try_from(secs).ok()
}

/// Days from 1970-01-01 to the given proleptic Gregorian date.
///
/// Counts in 400-year eras starting on 1 March, so that the leap day is the last day of
/// the (shifted) year and month lengths follow a fixed pattern.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400; // 0..=399
    let m = i64::from(month);
    let shifted_month = if m > 2 { m - 3 } else { m + 9 }; // March = 0
    let day_of_year = (153 * shifted_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
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

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn rtc_decoding() {
        // 2026-11-01 13:45:30 in BCD, 24-hour mode, century 0x20.
        let raw = [0x30, 0x45, 0x13, 0x01, 0x11, 0x26, 0x20];
        assert_eq!(decode_rtc(raw, 0x02), Some(1_793_540_730));
        // Same in binary, 12-hour mode with the PM bit.
        let raw = [30, 45, 0x80 | 1, 1, 11, 26, 20];
        assert_eq!(decode_rtc(raw, 0x04), Some(1_793_540_730));
        // No RTC: the bus reads 0xFF.
        assert_eq!(decode_rtc([0xFF; 7], 0xFF), None);
    }
}
