//! Key exchange: X25519 (`curve25519-dalek`, `x25519-dalek`) and secp256r1 (`p256`), for
//! TLS 1.3 and 1.2.

use alloc::boxed::Box;
use alloc::vec::Vec;

use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::EdwardsBasepointTable;
use curve25519_dalek::traits::BasepointTable;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::rng::Drbg;

/// X25519 (RFC 7748), with keys from the component's generator.
pub(crate) struct X25519(pub(crate) &'static Drbg);

/// Not derived: the name is all there is to say (the derived one also printed the
/// generator through the formatter's tuple builder).
impl core::fmt::Debug for X25519 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("X25519")
    }
}

/// Multiples of the Ed25519 base point for X25519's public keys: curve25519-dalek's
/// fixed-base table, built once at run time into the heap (30,720 B, a test pins it) rather
/// than its `precomputed-tables` constant (about 30 KB of `.rodata`), which nothing here
/// references: `x25519-dalek`'s `PublicKey::from` would (through `mul_base_clamped`), so
/// it is not called. 64 additions of table points and 4 doublings per key instead of
/// the variable-base multiplication's 252 doublings and 64 additions.
static BASEPOINT: spin::Once<Box<EdwardsBasepointTable>> = spin::Once::new();

fn basepoint() -> &'static EdwardsBasepointTable {
    BASEPOINT.call_once(|| Box::new(EdwardsBasepointTable::create(&ED25519_BASEPOINT_POINT)))
}

/// The X25519 public key of `secret` (RFC 7748 §6.1: X25519(secret, 9)): the clamped
/// scalar times the Ed25519 base point, which is birationally the Curve25519 base point
/// u = 9, mapped to its Montgomery u-coordinate. Clamping is `mul_base_clamped`'s.
pub(crate) fn x25519_public(secret: &[u8; 32]) -> [u8; 32] {
    basepoint()
        .mul_base_clamped(*secret)
        .to_montgomery()
        .to_bytes()
}

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        self.0.fill(&mut secret[..]);
        Ok(x25519_active(secret))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// An X25519 exchange under way with `secret` (32 random bytes; clamped where used): its
/// public key from the table, the shared secret by the ladder. `host.rs` draws the secret
/// from `getrandom` and calls this too.
pub(crate) fn x25519_active(secret: Zeroizing<[u8; 32]>) -> Box<dyn ActiveKeyExchange> {
    let public = x25519_public(&secret);
    Box::new(X25519Active { secret, public })
}

struct X25519Active {
    secret: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl ActiveKeyExchange for X25519Active {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        // The Montgomery ladder with the clamped secret (RFC 7748 §5).
        let shared = Zeroizing::new(x25519_dalek::x25519(*self.secret, peer));
        // A low-order point gives an all-zero secret (RFC 7748 §6.1): refuse it.
        if bool::from(shared.ct_eq(&[0u8; 32])) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// secp256r1 (NIST P-256) ECDHE with uncompressed points (RFC 8446 §4.2.8.2).
pub(crate) struct P256(pub(crate) &'static Drbg);

/// Not derived: the name is all there is to say (the derived one also printed the
/// generator through the formatter's tuple builder).
impl core::fmt::Debug for P256 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("P256")
    }
}

impl SupportedKxGroup for P256 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = p256::ecdh::EphemeralSecret::random(&mut self.0.rng());
        let public = p256::EncodedPoint::from(secret.public_key());
        Ok(Box::new(P256Active {
            secret,
            public: public.as_bytes().to_vec(),
        }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

struct P256Active {
    secret: p256::ecdh::EphemeralSecret,
    public: Vec<u8>,
}

impl ActiveKeyExchange for P256Active {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // Only the uncompressed form (0x04 ‖ x ‖ y) is allowed in TLS.
        if peer.len() != 65 || peer.first() != Some(&0x04) {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        // Decoding checks that the point is on the curve and not the identity.
        let peer = p256::PublicKey::from_sec1_bytes(peer)
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self.secret.diffie_hellman(&peer);
        Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::secp256r1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(hex: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    /// RFC 7748 §6.1's key pairs, and the table's public keys against the Montgomery
    /// ladder's X25519(secret, 9) for secrets at the clamping's edges and pseudo-random ones.
    #[test]
    fn x25519_public_keys_from_the_table() {
        for (secret, public) in [
            (
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            ),
            (
                "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            ),
        ] {
            assert_eq!(x25519_public(&hex32(secret)), hex32(public));
        }
        let mut base = [0u8; 32];
        base[0] = 9;
        let mut secrets = alloc::vec![[0u8; 32], [0xff; 32], [0x80; 32], [0x7f; 32], [0x08; 32]];
        let mut seed = [0u8; 32];
        for i in 0..100u32 {
            use sha2::Digest;
            seed = sha2::Sha256::new_with_prefix(seed)
                .chain_update(i.to_be_bytes())
                .finalize()
                .into();
            secrets.push(seed);
        }
        for secret in secrets {
            assert_eq!(
                x25519_public(&secret),
                x25519_dalek::x25519(secret, base),
                "secret {secret:x?}"
            );
        }
    }

    /// The heap the base-point table takes, as docs/tls.md states it: 32 × 8 points of
    /// three field elements.
    #[test]
    fn basepoint_table_bytes() {
        basepoint();
        assert_eq!(core::mem::size_of::<EdwardsBasepointTable>(), 30_720);
    }

    /// Two key exchanges agree, and a low-order peer key is refused.
    #[test]
    fn x25519_agreement() {
        let drbg: &'static Drbg = Box::leak(Box::new(Drbg::new([3; 32])));
        let group = X25519(drbg);
        let a = group.start().unwrap();
        let b = group.start().unwrap();
        let (a_public, b_public) = (a.pub_key().to_vec(), b.pub_key().to_vec());
        assert_ne!(a_public, b_public);
        let ab = a.complete(&b_public).unwrap();
        let ba = b.complete(&a_public).unwrap();
        assert_eq!(ab.secret_bytes(), ba.secret_bytes());
        let (a2, c) = (group.start().unwrap(), group.start().unwrap());
        // u = 0 is of low order: the shared secret is all zero.
        assert!(a2.complete(&[0u8; 32]).is_err());
        assert!(c.complete(&[0u8; 31]).is_err());
    }
}
