//! Entropy from the CPU: RDRAND (a DRBG reseeded by the hardware source) when CPUID
//! offers it, else RDSEED (the hardware source itself), else timing jitter.
//!
//! Both instructions may transiently fail (carry clear); the SDM-recommended retry loops
//! are used (10 tries for RDRAND; 100 with a pause for RDSEED), after which the fill
//! reports [`EntropyError::Exhausted`] rather than returning weak bytes.
//!
//! Under `morgana-tender` the source is its entropy call (the host's `getrandom`).
//!
//! Without either instruction (QEMU's default `qemu64` CPU model under TCG), each 64-bit
//! word is made from the jitter of 64 timestamp-counter deltas around a short loop whose
//! length depends on the state so far, folded with a multiply-xorshift mix and a
//! per-call counter — the bootstrap MirageOS and Linux use when the CPU has no random
//! number generator. It is the best a kernel has there, not a hardware source:
//! [`Entropy::is_available`] stays `false`, and `-cpu max` or `-cpu host` is better.

use crate::cpu::Features;
use core::arch::asm;
use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// Why no random bytes could be produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropyError {
    /// The CPU has neither RDRAND nor RDSEED (QEMU's default `qemu64` model; use
    /// `-cpu max` or `-cpu host`). [`Entropy`] falls back to timing jitter instead of
    /// returning it.
    Unsupported,
    /// The instruction kept failing.
    Exhausted,
}

impl fmt::Display for EntropyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntropyError::Unsupported => f.write_str("the CPU has neither RDRAND nor RDSEED"),
            EntropyError::Exhausted => {
                f.write_str("the CPU's random number generator kept failing")
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Rdrand,
    Rdseed,
    /// The tender's entropy call (the host's getrandom).
    Tender,
    None,
}

/// The entropy handle. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Entropy {
    source: Source,
}

impl Entropy {
    pub(crate) fn new(features: &Features) -> Entropy {
        let source = if crate::tender::on_tender() {
            Source::Tender
        } else if features.rdrand {
            Source::Rdrand
        } else if features.rdseed {
            Source::Rdseed
        } else {
            Source::None
        };
        Entropy { source }
    }

    /// Whether a hardware source exists.
    pub fn is_available(&self) -> bool {
        self.source != Source::None
    }

    fn next(&self) -> Result<u64, EntropyError> {
        match self.source {
            Source::Rdrand => (0..10)
                .find_map(|_| rdrand())
                .ok_or(EntropyError::Exhausted),
            Source::Rdseed => (0..100)
                .find_map(|_| {
                    let v = rdseed();
                    if v.is_none() {
                        core::hint::spin_loop();
                    }
                    v
                })
                .ok_or(EntropyError::Exhausted),
            Source::Tender => {
                let mut word = [0u8; 8];
                crate::tender::entropy(&mut word).map_err(|_| EntropyError::Exhausted)?;
                Ok(u64::from_le_bytes(word))
            }
            Source::None => Ok(jitter()),
        }
    }
}

/// Calls of [`jitter`] so far: consecutive words differ even if the deltas repeat.
static JITTER_CALLS: AtomicU64 = AtomicU64::new(0);

/// A word from timestamp-counter jitter (see the module documentation).
fn jitter() -> u64 {
    let mut h = JITTER_CALLS.fetch_add(1, Ordering::Relaxed) ^ 0x243F_6A88_85A3_08D3;
    let mut before = crate::cpu::rdtsc();
    for _ in 0..64 {
        for _ in 0..(h & 15) {
            core::hint::spin_loop();
        }
        let now = crate::cpu::rdtsc();
        h = (h ^ now.wrapping_sub(before)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^= h >> 29;
        before = now;
    }
    // SplitMix64's finaliser spreads the deltas' low bits over the whole word.
    h ^= before;
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

fn rdrand() -> Option<u64> {
    let (v, ok): (u64, u8);
    // SAFETY: only called when CPUID reports RDRAND; the instruction writes a register
    // and CF, nothing else.
    unsafe {
        asm!("rdrand {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
    }
    (ok != 0).then_some(v)
}

fn rdseed() -> Option<u64> {
    let (v, ok): (u64, u8);
    // SAFETY: only called when CPUID reports RDSEED; as for `rdrand`.
    unsafe {
        asm!("rdseed {v}", "setc {ok}", v = out(reg) v, ok = out(reg_byte) ok, options(nomem, nostack))
    }
    (ok != 0).then_some(v)
}

impl morgana_signatures::Entropy for Entropy {
    type Error = EntropyError;

    /// RDRAND or RDSEED: strong; the jitter fallback: not.
    fn is_strong(&self) -> bool {
        self.is_available()
    }

    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        if self.source == Source::Tender {
            // One call for the whole buffer.
            return crate::tender::entropy(buf).map_err(|_| EntropyError::Exhausted);
        }
        for chunk in buf.chunks_mut(8) {
            let v = self.next()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morgana_signatures::Entropy as _;

    #[test]
    fn without_rdrand_the_jitter_fallback_fills() {
        let e = Entropy {
            source: Source::None,
        };
        assert!(!e.is_available());
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        e.fill(&mut a).expect("jitter never fails");
        e.fill(&mut b).expect("jitter never fails");
        assert_ne!(a, b);
        assert_ne!(a, [0; 32]);
    }
}
