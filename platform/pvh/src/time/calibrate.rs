//! Calibrating the TSC (and, without TSC-deadline, the local APIC timer): from the rate
//! the hypervisor or CPU states, else against PIT channel 2 over the boot work (see the
//! decisions in the parent module).

use crate::cpu::{self, inb, outb, rdtsc};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
