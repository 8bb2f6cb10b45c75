//! The random generator of the TLS component: a ChaCha20 DRBG seeded from the platform's
//! entropy source, rekeyed after every use and reseeded at every accepted connection.
//!
//! Why a generator of our own rather than calling the platform source each time: rustls
//! asks for randomness through `&'static dyn` objects that must be `Send + Sync`
//! (`SecureRandom`, the key-exchange groups, the signing keys), and a platform's entropy
//! handle need be neither; a kernel's best source may also be a device read
//! asynchronously (virtio-rng). So the component pulls 32 bytes from the platform when
//! it starts and again at every accept (cheap: one `getrandom` or a few RDRANDs) and
//! mixes them into the generator's key with SHA-256.
//!
//! Every fill is followed by a rekey from the generator's own output ("fast key erasure"):
//! a memory dump after the fact cannot reproduce bytes handed out before it.

use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRng, RngCore, SeedableRng};
use rustls::crypto::{GetRandomFailed, SecureRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The generator, shared by the provider's objects (`&'static`, leaked once per
/// [`Tls`](crate::Tls)).
pub(crate) struct Drbg {
    state: spin::Mutex<ChaCha20Rng>,
}

impl core::fmt::Debug for Drbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Drbg")
    }
}

impl Drbg {
    /// A generator keyed with `seed` (which the caller then forgets).
    pub(crate) fn new(seed: [u8; 32]) -> Drbg {
        Drbg {
            state: spin::Mutex::new(ChaCha20Rng::from_seed(seed)),
        }
    }

    /// Fills `buf`, then rekeys.
    pub(crate) fn fill(&self, buf: &mut [u8]) {
        let mut rng = self.state.lock();
        rng.fill_bytes(buf);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        *rng = ChaCha20Rng::from_seed(key);
        key.zeroize();
    }

    /// Mixes `fresh` entropy into the key: key' = SHA-256(output ‖ fresh).
    pub(crate) fn reseed(&self, fresh: &[u8]) {
        let mut rng = self.state.lock();
        let mut old = [0u8; 32];
        rng.fill_bytes(&mut old);
        let mut h = Sha256::new();
        h.update(old);
        h.update(fresh);
        let mut key: [u8; 32] = h.finalize().into();
        *rng = ChaCha20Rng::from_seed(key);
        old.zeroize();
        key.zeroize();
    }

    /// A `rand_core` view for the RustCrypto primitives (key generation, signing).
    pub(crate) fn rng(&'static self) -> DrbgRng {
        DrbgRng(self)
    }
}

impl SecureRandom for Drbg {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        Drbg::fill(self, buf);
        Ok(())
    }
}

/// [`Drbg`] as a `rand_core` generator.
#[derive(Clone, Copy)]
pub(crate) struct DrbgRng(&'static Drbg);

impl RngCore for DrbgRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.0.fill(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.0.fill(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.0.fill(dest);
        Ok(())
    }
}

impl CryptoRng for DrbgRng {}
