//! Entropy from the CPU: RDRAND (a DRBG reseeded by the hardware source) when CPUID
//! offers it, else RDSEED (the hardware source itself), else a clear error.
//!
//! Both instructions may transiently fail (carry clear); the SDM-recommended retry loops
//! are used (10 tries for RDRAND; 100 with a pause for RDSEED), after which the fill
//! reports [`EntropyError::Exhausted`] rather than returning weak bytes.

use crate::cpu::Features;
use core::arch::asm;
use core::fmt;

/// Why no random bytes could be produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntropyError {
    /// The CPU has neither RDRAND nor RDSEED (QEMU's default `qemu64` model; use
    /// `-cpu max` or `-cpu host`).
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
    None,
}

/// The entropy handle. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Entropy {
    source: Source,
}

impl Entropy {
    pub(crate) fn new(features: &Features) -> Entropy {
        let source = if features.rdrand {
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
            Source::None => Err(EntropyError::Unsupported),
        }
    }
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

    fn fill(&self, buf: &mut [u8]) -> Result<(), EntropyError> {
        for chunk in buf.chunks_mut(8) {
            let v = self.next()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}
