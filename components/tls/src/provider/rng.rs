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

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::{ChaCha20, Key, Nonce};
use rand_core::{CryptoRng, RngCore};
use rustls::crypto::{GetRandomFailed, SecureRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

/// The generator, shared by the provider's objects (`&'static`, leaked once per
/// [`Tls`](crate::Tls)): a ChaCha20 key. Each use runs ChaCha20 (RFC 8439, the nonce
/// zero) under it for the output and then for the next key. ChaCha20 is chacha20's,
/// which the ChaCha20-Poly1305 records already link (rand_chacha's own ChaCha was 2 KB
/// more of a kernel; docs/tls.md, "Size").
pub(crate) struct Drbg {
    key: spin::Mutex<[u8; 32]>,
}

impl core::fmt::Debug for Drbg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Drbg")
    }
}

/// The ChaCha20 keystream under `key` into `out`, then its next 32 bytes into `next`.
fn keystream(key: &[u8; 32], out: &mut [u8], next: &mut [u8; 32]) {
    let mut cipher = ChaCha20::new(Key::from_slice(key), &Nonce::default());
    out.fill(0);
    cipher.apply_keystream(out);
    next.fill(0);
    cipher.apply_keystream(next);
}

impl Drbg {
    /// A generator keyed with `seed` (which the caller then forgets).
    pub(crate) fn new(seed: [u8; 32]) -> Drbg {
        Drbg {
            key: spin::Mutex::new(seed),
        }
    }

    /// Fills `buf`, then rekeys.
    pub(crate) fn fill(&self, buf: &mut [u8]) {
        let mut key = self.key.lock();
        let mut next = [0u8; 32];
        keystream(&key, buf, &mut next);
        *key = next;
        next.zeroize();
    }

    /// Mixes `fresh` entropy into the key: key' = SHA-256(output ‖ fresh).
    pub(crate) fn reseed(&self, fresh: &[u8]) {
        let mut key = self.key.lock();
        let mut old = [0u8; 32];
        let mut next = [0u8; 32];
        keystream(&key, &mut old, &mut next);
        let mut h = Sha256::new();
        h.update(old);
        h.update(fresh);
        *key = h.finalize().into();
        old.zeroize();
        next.zeroize();
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

#[cfg(test)]
mod tests {
    use super::Drbg;

    /// RFC 8439, A.1, test vector #1: the ChaCha20 block under the zero key, zero nonce
    /// and counter 0.
    const ZERO_KEY_BLOCK: [u8; 64] = [
        0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86, 0xbd,
        0x28, 0xbd, 0xd2, 0x19, 0xb8, 0xa0, 0x8d, 0xed, 0x1a, 0xa8, 0x36, 0xef, 0xcc, 0x8b, 0x77,
        0x0d, 0xc7, 0xda, 0x41, 0x59, 0x7c, 0x51, 0x57, 0x48, 0x8d, 0x77, 0x24, 0xe0, 0x3f, 0xb8,
        0xd8, 0x4a, 0x37, 0x6a, 0x43, 0xb8, 0xf4, 0x15, 0x18, 0xa1, 0x1c, 0xc3, 0x87, 0xb6, 0x69,
        0xb2, 0xee, 0x65, 0x86,
    ];

    #[test]
    fn output_is_the_chacha20_keystream_and_the_next_key_follows_it() {
        let drbg = Drbg::new([0; 32]);
        let mut out = [0u8; 16];
        drbg.fill(&mut out);
        assert_eq!(out, ZERO_KEY_BLOCK[..16]);
        // The key is now the next 32 bytes of that stream, never handed out.
        assert_eq!(*drbg.key.lock(), ZERO_KEY_BLOCK[16..48]);
        let mut again = [0u8; 16];
        drbg.fill(&mut again);
        assert_ne!(again, out);
    }
}
