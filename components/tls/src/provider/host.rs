//! The public-key operations of a process on a host: X25519 and P-256 key exchange and
//! ECDSA P-256 signing on ring (BoringSSL's assembly, as fast as OpenSSL's), instead of
//! the portable RustCrypto code of `kx.rs` and `sign.rs`.
//!
//! ring takes its randomness only from `ring::rand::SystemRandom`: its `SecureRandom`
//! trait is sealed, so the component's generator cannot stand in, and `SystemRandom`
//! calls `getrandom(2)` through the `getrandom` crate. That exists in a Unix process and
//! not in a kernel, so [`Asym::host`](super::Asym::host) is chosen only when the
//! platform's entropy source says it is the host's `getrandom`
//! (`morgana_signatures::Entropy::IS_HOST_GETRANDOM`, a constant): the kernel's build
//! never refers to this module, and the linker leaves all of it out (`nm` of the PVH
//! image shows no `getrandom` and no ring key-exchange or ECDSA symbol).
//!
//! Every ephemeral key and every ECDSA nonce is drawn from `getrandom` (ring hedges the
//! nonce with the key and the message digest as well); the component's own generator
//! still makes the server randoms and the ticket keys.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, NamedGroup, PeerMisbehaved, SignatureAlgorithm, SignatureScheme};

use super::rng::Drbg;
use super::sign::key_error;

/// A key-exchange group on ring: X25519 or secp256r1 (uncompressed points only, which
/// is all ring's P-256 agreement accepts and all TLS allows).
pub(crate) struct Group {
    alg: &'static agreement::Algorithm,
    name: NamedGroup,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring {:?}", self.name)
    }
}

pub(crate) static X25519: Group = Group {
    alg: &agreement::X25519,
    name: NamedGroup::X25519,
};

pub(crate) static P256: Group = Group {
    alg: &agreement::ECDH_P256,
    name: NamedGroup::secp256r1,
};

fn failed_random() -> Error {
    Error::FailedToGetRandomBytes
}

impl SupportedKxGroup for Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = EphemeralPrivateKey::generate(self.alg, &SystemRandom::new())
            .map_err(|_| failed_random())?;
        let public = secret.compute_public_key().map_err(|_| failed_random())?;
        Ok(Box::new(Active {
            secret,
            public,
            alg: self.alg,
            name: self.name,
        }))
    }

    fn name(&self) -> NamedGroup {
        self.name
    }
}

struct Active {
    secret: EphemeralPrivateKey,
    public: agreement::PublicKey,
    alg: &'static agreement::Algorithm,
    name: NamedGroup,
}

impl ActiveKeyExchange for Active {
    fn complete(self: Box<Self>, peer: &[u8]) -> Result<SharedSecret, Error> {
        // ring checks the peer's share: its length, for P-256 that it is an uncompressed
        // point on the curve, for X25519 that the result is not all zeros (a low-order
        // point, RFC 7748 §6.1).
        agreement::agree_ephemeral(
            self.secret,
            &UnparsedPublicKey::new(self.alg, peer),
            |secret| SharedSecret::from(secret),
        )
        .map_err(|_| PeerMisbehaved::InvalidKeyShare.into())
    }

    fn pub_key(&self) -> &[u8] {
        self.public.as_ref()
    }

    fn group(&self) -> NamedGroup {
        self.name
    }
}

/// An ECDSA P-256 key for ring, from its private scalar (the public point is computed
/// here, once, with `p256`, and ring checks that the two agree).
pub(crate) fn ecdsa(scalar: &[u8; 32], _rng: &'static Drbg) -> Result<Arc<dyn SigningKey>, Error> {
    let secret = p256::SecretKey::from_bytes(scalar.into())
        .map_err(|_| key_error("the P-256 private key is out of range"))?;
    let public = p256::EncodedPoint::from(secret.public_key());
    let pair = EcdsaKeyPair::from_private_key_and_public_key(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        scalar,
        public.as_bytes(),
        &SystemRandom::new(),
    )
    .map_err(|_| key_error("the P-256 private key is out of range"))?;
    Ok(Arc::new(EcdsaKey(Arc::new(pair))))
}

struct EcdsaKey(Arc<EcdsaKeyPair>);

impl fmt::Debug for EcdsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcdsaKey(P-256, ring)")
    }
}

impl SigningKey for EcdsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(EcdsaSigner(self.0.clone())) as Box<dyn Signer>)
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let point = self.0.public_key().as_ref();
        let mut der = Vec::with_capacity(crate::der::P256_SPKI_PREFIX.len() + point.len());
        der.extend_from_slice(&crate::der::P256_SPKI_PREFIX);
        der.extend_from_slice(point);
        Some(SubjectPublicKeyInfoDer::from(der))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct EcdsaSigner(Arc<EcdsaKeyPair>);

impl fmt::Debug for EcdsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcdsaSigner(P-256, ring)")
    }
}

impl Signer for EcdsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        // ASN.1 DER `Ecdsa-Sig-Value`, as TLS carries it.
        self.0
            .sign(&SystemRandom::new(), message)
            .map(|sig| sig.as_ref().to_vec())
            .map_err(|_| Error::General("ECDSA signing failed".into()))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Verifier;

    fn drbg() -> &'static Drbg {
        let mut seed = [0u8; 32];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut seed).unwrap();
        Box::leak(Box::new(Drbg::new(seed)))
    }

    #[test]
    fn x25519_agrees_with_x25519_dalek_and_refuses_bad_shares() {
        let rng = drbg();
        let theirs = x25519_dalek::EphemeralSecret::random_from_rng(rng.rng());
        let their_public = x25519_dalek::PublicKey::from(&theirs).to_bytes();
        let ours = X25519.start().unwrap();
        assert_eq!(ours.group(), NamedGroup::X25519);
        let our_public: [u8; 32] = ours.pub_key().try_into().unwrap();
        let expected = theirs.diffie_hellman(&x25519_dalek::PublicKey::from(our_public));
        let shared = ours.complete(&their_public).unwrap();
        assert_eq!(shared.secret_bytes(), expected.as_bytes());
        // A low-order point (zero) gives an all-zero secret; a short share is malformed.
        assert!(X25519.start().unwrap().complete(&[0u8; 32]).is_err());
        assert!(X25519.start().unwrap().complete(&[9u8; 31]).is_err());
    }

    #[test]
    fn p256_agrees_with_rustcrypto_and_refuses_bad_shares() {
        let rng = drbg();
        let theirs = p256::ecdh::EphemeralSecret::random(&mut rng.rng());
        let their_public = p256::EncodedPoint::from(theirs.public_key());
        let ours = P256.start().unwrap();
        assert_eq!(ours.pub_key().len(), 65);
        let our_public = p256::PublicKey::from_sec1_bytes(ours.pub_key()).unwrap();
        let expected = theirs.diffie_hellman(&our_public);
        let shared = ours.complete(their_public.as_bytes()).unwrap();
        assert_eq!(shared.secret_bytes(), &expected.raw_secret_bytes()[..]);
        // Compressed, off the curve, or the identity: refused.
        let compressed = their_public.compress();
        assert!(
            P256.start()
                .unwrap()
                .complete(compressed.as_bytes())
                .is_err()
        );
        let mut off = their_public.as_bytes().to_vec();
        off[64] ^= 1;
        assert!(P256.start().unwrap().complete(&off).is_err());
        assert!(P256.start().unwrap().complete(&[0]).is_err());
    }

    #[test]
    fn ecdsa_signatures_verify_with_rustcrypto_and_the_key_matches_the_portable_one() {
        let rng = drbg();
        let secret = p256::SecretKey::random(&mut rng.rng());
        let scalar: [u8; 32] = secret.to_bytes().into();
        let key = ecdsa(&scalar, rng).unwrap();
        assert!(
            key.choose_scheme(&[SignatureScheme::RSA_PSS_SHA256])
                .is_none()
        );
        let signer = key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .unwrap();
        let der = signer.sign(b"a transcript").unwrap();
        let sig = p256::ecdsa::Signature::from_der(&der).unwrap();
        let verifying = p256::ecdsa::VerifyingKey::from(secret.public_key());
        verifying.verify(b"a transcript", &sig).unwrap();
        assert!(verifying.verify(b"another transcript", &sig).is_err());
        // Fresh nonces: two signatures of one message differ.
        assert_ne!(signer.sign(b"a transcript").unwrap(), der);
        let portable = super::super::sign::portable_ecdsa(&scalar, rng).unwrap();
        assert_eq!(
            key.public_key().unwrap().as_ref(),
            portable.public_key().unwrap().as_ref()
        );
        // Zero is not a private key.
        assert!(ecdsa(&[0u8; 32], rng).is_err());
    }
}
