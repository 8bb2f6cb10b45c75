//! Key exchange: X25519 (`x25519-dalek`) and secp256r1 (`p256`), for TLS 1.3 and 1.2.

use alloc::boxed::Box;
use alloc::vec::Vec;

use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

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

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = x25519_dalek::EphemeralSecret::random_from_rng(self.0.rng());
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(X25519Active {
            secret,
            public: public.to_bytes(),
        }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Active {
    secret: x25519_dalek::EphemeralSecret,
    public: [u8; 32],
}

impl ActiveKeyExchange for X25519Active {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // A low-order point gives an all-zero secret (RFC 7748 §6.1): refuse it.
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
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
