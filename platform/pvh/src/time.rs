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

use crate::cpu::{self, inb, outb, rdtsc};
use crate::sync::CpuCell;
use alloc::vec::Vec;
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

/// Why the clock could not be calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CalibrationError {
    /// CPUID states no TSC frequency and no PIT answered.
    NoReference,
}

impl core::fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CalibrationError::NoReference => f.write_str(
                "cannot calibrate the TSC: CPUID states no frequency (leaves 0x40000010, 0x15, 0x16) and no PIT answered",
            ),
        }
    }
}

/// The clock's rates and where they came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Calibration {
    /// TSC ticks per second.
    pub tsc_hz: u64,
    /// Local APIC timer ticks per second at divide-by-1, when known.
    pub apic_hz: Option<u64>,
    /// Which reference was used.
    pub reference: &'static str,
}

const PIT_HZ: u64 = 1_193_182;
/// The count a PIT window starts from: the largest, 54.9 ms until it runs out.
const PIT_START: u16 = 0xFFFF;
/// A window is accepted once its uncertainty is below 1/`PRECISION` of it (0.05 %).
const PRECISION: u64 = 2000;
/// The APIC timer's rate is accepted at 1/`APIC_PRECISION` (1 %).
const APIC_PRECISION: u64 = 100;
/// PIT windows started before giving up (each runs out after 54.9 ms).
const MAX_WINDOWS: u32 = 4;

/// Two TSC reads around an event: it happened somewhere in between.
#[derive(Clone, Copy, Debug)]
struct Bracket {
    before: u64,
    after: u64,
}

impl Bracket {
    fn around(event: impl FnOnce()) -> Bracket {
        let before = rdtsc();
        event();
        Bracket {
            before,
            after: rdtsc(),
        }
    }

    fn mid(self) -> u64 {
        self.before / 2 + self.after / 2
    }

    fn width(self) -> u64 {
        self.after.saturating_sub(self.before)
    }
}

/// TSC ticks between two brackets, and how uncertain that is (half of each bracket).
fn span(from: Bracket, to: Bracket) -> (u64, u64) {
    (
        to.mid().saturating_sub(from.mid()),
        (from.width() + to.width()) / 2,
    )
}

/// The rate the CPU or the hypervisor states, if any: the hypervisor timing leaf
/// 0x4000_0010 (KVM with an invariant TSC, VMware: TSC and APIC bus in kHz), else leaf
/// 0x15 (TSC/crystal ratio and the crystal, which also drives the local APIC timer).
/// Leaf 0x16 (the nominal base frequency) is only a last resort, see [`finish`].
pub(crate) fn stated_rate() -> Option<Calibration> {
    stated_rate_from(|leaf| cpu::cpuid(leaf, 0))
}

/// [`stated_rate`] over any CPUID (subleaf 0), for tests.
fn stated_rate_from(cpuid: impl Fn(u32) -> cpu::Cpuid) -> Option<Calibration> {
    if cpuid(1).ecx & (1 << 31) != 0 {
        let h = cpuid(0x4000_0000);
        let mut vendor = [0u8; 12];
        for (d, r) in vendor.chunks_exact_mut(4).zip([h.ebx, h.ecx, h.edx]) {
            d.copy_from_slice(&r.to_le_bytes());
        }
        if h.eax >= 0x4000_0010 && (&vendor == b"KVMKVMKVM\0\0\0" || &vendor == b"VMwareVMware") {
            let t = cpuid(0x4000_0010);
            if t.eax != 0 {
                return Some(Calibration {
                    tsc_hz: u64::from(t.eax) * 1000,
                    apic_hz: (t.ebx != 0).then(|| u64::from(t.ebx) * 1000),
                    reference: "CPUID 0x40000010",
                });
            }
        }
    }
    if cpuid(0).eax >= 0x15 {
        let l = cpuid(0x15);
        if l.eax != 0 && l.ebx != 0 && l.ecx != 0 {
            return Some(Calibration {
                tsc_hz: u64::from(l.ecx) * u64::from(l.ebx) / u64::from(l.eax),
                apic_hz: Some(u64::from(l.ecx)),
                reference: "CPUID 0x15",
            });
        }
    }
    None
}

/// The TSC against PIT channel 2, measured while the kernel boots: [`PitStopwatch::start`]
/// loads the counter at entry and [`PitStopwatch::finish`] latches it when the rate is
/// needed, so the boot work in between is the window and nothing is waited out unless it
/// is still too short for 0.05 % (fast hardware: up to ~2 ms).
///
/// The count and the OUT pin are read with the 8254's read-back command (OUT high: the
/// count ran out, after 54.9 ms, and a new window starts). Port 0x61 is only written, to
/// open channel 2's gate: machines without a speaker port (QEMU `-M microvm`) read 0xFF
/// there, and the earlier calibration that polled it for OUT saw every window end at once
/// and read the TSC ~2,500 times too slow (`ready in 124949170 us`).
pub(crate) struct PitStopwatch {
    start: Bracket,
    windows: u32,
    saved_gate: u8,
}

impl PitStopwatch {
    /// Starts a window: channel 2 in mode 0 (count down once) from [`PIT_START`].
    pub(crate) fn start() -> PitStopwatch {
        // SAFETY: (this and the port accesses below) ports 0x42/0x43/0x61 are PIT channel
        // 2 and its gate on the PC platform; channel 2 (the speaker's) is used by nothing
        // else, and the speaker output stays off (bit 1 of port 0x61 clear).
        let saved_gate = unsafe {
            let gate = inb(0x61);
            outb(0x61, (gate & !0x02) | 0x01);
            outb(0x43, 0b1011_0000); // channel 2, lobyte/hibyte, mode 0, binary
            gate
        };
        // Done twice: the first time, QEMU TCG translates the code between the TSC reads
        // (a 15 us bracket instead of 0.25 us); reloading the count restarts it.
        Self::load();
        let start = Self::load();
        PitStopwatch {
            start,
            windows: 1,
            saved_gate,
        }
    }

    /// Loads the count (high byte last, which starts the countdown); returns when.
    #[inline(never)]
    fn load() -> Bracket {
        // SAFETY: see `start`.
        unsafe { outb(0x42, PIT_START as u8) };
        // SAFETY: see `start`.
        Bracket::around(|| unsafe { outb(0x42, (PIT_START >> 8) as u8) })
    }

    /// PIT ticks counted so far and when they were latched; `None` if the count ran out
    /// or what answers is not a PIT in the mode we set (an absent one reads 0xFF).
    fn read(&self) -> Option<(u64, Bracket)> {
        // SAFETY: see `start`; read-back latches channel 2's status and count (bits
        // 5 and 4 clear, bit 3 = channel 2), which are then read in that order.
        let at = Bracket::around(|| unsafe { outb(0x43, 0b1100_1000) });
        // SAFETY: see above.
        let (status, lo, hi) = unsafe { (inb(0x42), inb(0x42), inb(0x42)) };
        // OUT (bit 7) high: ran out; the access mode and mode bits must be ours.
        if status & 0x80 != 0 || status & 0x3F != 0b11_0000 {
            return None;
        }
        // Null count (bit 6): the count is not loaded yet.
        let ticks = if status & 0x40 != 0 {
            0
        } else {
            u64::from(PIT_START - u16::from_le_bytes([lo, hi]))
        };
        Some((ticks, at))
    }

    /// Waits until the window is long enough and returns the TSC rate (Hz); `None` if no
    /// PIT counts here.
    pub(crate) fn finish(mut self) -> Option<u64> {
        let hz = loop {
            match self.read() {
                None if self.windows < MAX_WINDOWS => {
                    let windows = self.windows + 1;
                    self = PitStopwatch {
                        windows,
                        ..PitStopwatch::start()
                    };
                }
                None => break None,
                Some((ticks, at)) => {
                    let (tsc, bracket) = span(self.start, at);
                    // Plus one PIT tick of quantisation.
                    if ticks > 0 && (bracket + tsc / ticks).saturating_mul(PRECISION) < tsc {
                        break Some(tsc * PIT_HZ / ticks);
                    }
                    // Far past the 54.9 ms the count lasts, yet neither precise nor run
                    // out: nothing counts here.
                    if tsc > 1 << 31 {
                        break None;
                    }
                }
            }
            core::hint::spin_loop();
        };
        // SAFETY: restores the gate register as it was.
        unsafe { outb(0x61, self.saved_gate) };
        hz
    }
}

/// The local APIC timer (divide-by-1) against the TSC, when nothing states its rate:
/// started once the APIC is mapped and read once the TSC rate is known.
pub(crate) struct ApicStopwatch {
    start: Bracket,
}

impl ApicStopwatch {
    /// Starts the APIC timer counting down (masked).
    pub(crate) fn start(lapic: &crate::apic::Lapic) -> ApicStopwatch {
        // Twice, for the reason given in `PitStopwatch::start`; the second start restarts
        // the count.
        Self::load(lapic);
        ApicStopwatch {
            start: Self::load(lapic),
        }
    }

    #[inline(never)]
    fn load(lapic: &crate::apic::Lapic) -> Bracket {
        Bracket::around(|| lapic.start_calibration())
    }

    /// Waits until the window is known to 1 % (or is 10 ms long) and returns the APIC
    /// timer's rate (Hz) at `tsc_hz`. The APIC timer only wakes the idle loop, which
    /// checks the TSC and sleeps again if woken early, so 1 % is plenty; holding it to
    /// the TSC's 0.05 % made boots wait up to 17 ms after a vCPU stall during `start`.
    pub(crate) fn finish(self, lapic: &crate::apic::Lapic, tsc_hz: u64) -> u64 {
        loop {
            let mut ticks = 0;
            let at = Bracket::around(|| ticks = lapic.calibration_ticks());
            let (tsc, uncertainty) = span(self.start, at);
            if tsc > 0 && (uncertainty.saturating_mul(APIC_PRECISION) < tsc || tsc > tsc_hz / 100) {
                lapic.stop_calibration();
                let hz = u128::from(ticks) * u128::from(tsc_hz) / u128::from(tsc);
                return u64::try_from(hz).unwrap_or(u64::MAX);
            }
            core::hint::spin_loop();
        }
    }
}

/// Completes the calibration begun at boot: the stated rate if there is one, else the PIT
/// window (else CPUID 0x16's nominal frequency); the APIC timer's rate, if `apic` is
/// given and nothing stated it, against the TSC.
pub(crate) fn finish(
    stated: Option<Calibration>,
    pit: Option<PitStopwatch>,
    apic: Option<(ApicStopwatch, &crate::apic::Lapic)>,
) -> Result<Calibration, CalibrationError> {
    let mut c = match (stated, pit.and_then(PitStopwatch::finish)) {
        (Some(c), _) => c,
        (None, Some(tsc_hz)) => Calibration {
            tsc_hz,
            apic_hz: None,
            reference: "PIT",
        },
        (None, None) => {
            let max = cpu::cpuid(0, 0).eax;
            let mhz = if max >= 0x16 {
                cpu::cpuid(0x16, 0).eax & 0xFFFF
            } else {
                0
            };
            if mhz == 0 {
                return Err(CalibrationError::NoReference);
            }
            Calibration {
                tsc_hz: u64::from(mhz) * 1_000_000,
                apic_hz: None,
                reference: "CPUID 0x16",
            }
        }
    };
    if let Some((watch, lapic)) = apic {
        let hz = watch.finish(lapic, c.tsc_hz);
        c.apic_hz = c.apic_hz.or(Some(hz));
    }
    Ok(c)
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

/// Reads the CMOS RTC once and anchors the wall clock to the monotonic clock.
pub(crate) fn init_wall_clock() -> Option<u64> {
    let secs = read_rtc()?;
    WALL_READ_TSC.store(rdtsc(), Ordering::Relaxed);
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

    fn leaves(list: &[(u32, [u32; 4])]) -> impl Fn(u32) -> cpu::Cpuid + '_ {
        |leaf| {
            let r = list
                .iter()
                .find(|(l, _)| *l == leaf)
                .map_or([0; 4], |(_, r)| *r);
            cpu::Cpuid {
                eax: r[0],
                ebx: r[1],
                ecx: r[2],
                edx: r[3],
            }
        }
    }

    #[test]
    fn stated_rates() {
        let kvm = u32::from_le_bytes(*b"KVMK");
        let vmkv = u32::from_le_bytes(*b"VMKV");
        let m = u32::from_le_bytes(*b"M\0\0\0");
        // KVM with the timing leaf: TSC and APIC bus in kHz.
        let c = stated_rate_from(leaves(&[
            (0, [0xd, 0, 0, 0]),
            (1, [0, 0, 1 << 31, 0]),
            (0x4000_0000, [0x4000_0010, kvm, vmkv, m]),
            (0x4000_0010, [2_500_000, 1_000_000, 0, 0]),
        ]))
        .unwrap();
        assert_eq!((c.tsc_hz, c.apic_hz), (2_500_000_000, Some(1_000_000_000)));
        // Another hypervisor's leaf 0x4000_0010 means something else: not used.
        let other = u32::from_le_bytes(*b"Othe");
        assert_eq!(
            stated_rate_from(leaves(&[
                (1, [0, 0, 1 << 31, 0]),
                (0x4000_0000, [0x4000_0010, other, other, other]),
                (0x4000_0010, [2_500_000, 0, 0, 0]),
            ])),
            None
        );
        // Leaf 0x15: crystal 24 MHz, TSC = crystal * 125 / 1.
        let c = stated_rate_from(leaves(&[
            (0, [0x16, 0, 0, 0]),
            (0x15, [1, 125, 24_000_000, 0]),
        ]))
        .unwrap();
        assert_eq!((c.tsc_hz, c.apic_hz), (3_000_000_000, Some(24_000_000)));
        // Leaf 0x15 without the crystal (many CPUs), or absent: measure instead.
        assert_eq!(
            stated_rate_from(leaves(&[(0, [0x16, 0, 0, 0]), (0x15, [2, 250, 0, 0])])),
            None
        );
        assert_eq!(stated_rate_from(leaves(&[(0, [0xd, 0, 0, 0])])), None);
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
