//! The public-key operations of a process on a host: P-256 key exchange and ECDSA P-256
//! signing on ring (BoringSSL's assembly, as fast as OpenSSL's), instead of the portable
//! RustCrypto code of `kx.rs` and `sign.rs`; X25519 on `kx.rs`'s curve25519-dalek code
//! with its secret from `getrandom`.
//!
//! Why not ring's X25519 too (used until 2026-12-04): its field arithmetic is C
//! (`fiat_curve25519_adx`'s `fe4_*` helpers around the assembly multiplication), and the
//! workspace builds ring at opt-level "s" for the kernel's sake (its AEAD glue), so `cc`
//! compiles that C at `-Os`, where GCC leaves the helpers (`fe4_sub`,
//! `fiat_subborrowx_u64`, `fiat_cmovznz_u64`, ...) as calls: `perf` put 41 % of the
//! server's samples under a full handshake there. curve25519-dalek at opt-level 2 (the
//! key from the base-point table built once, the shared secret by its Montgomery ladder,
//! both constant time) took about half that time (docs/tls.md, "2026-12-04: the Unix
//! server's handshake cost"). Compiling ring's C at `-O2` would do as well, but the C
//! flags cannot differ between the Unix and the kernel build (same target triple, same
//! profile) and would add about 1.2 KB of AES fallback code to every kernel.
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
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rustls::crypto::hash::{self, HashAlgorithm};
use rustls::crypto::hmac;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::pki_types::SubjectPublicKeyInfoDer;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, NamedGroup, PeerMisbehaved, SignatureAlgorithm, SignatureScheme};
use zeroize::Zeroizing;

use super::rng::Drbg;
use super::sign::key_error;

/// A key-exchange group on ring: secp256r1 (uncompressed points only, which is all
/// ring's P-256 agreement accepts and all TLS allows).
pub(crate) struct Group {
    alg: &'static agreement::Algorithm,
    name: NamedGroup,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring {:?}", self.name)
    }
}

/// X25519 with its secret from `getrandom`, computed by `kx.rs` (see the module's
/// comment for why not ring's).
#[derive(Debug)]
pub(crate) struct X25519;

impl SupportedKxGroup for X25519 {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let mut secret = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut secret[..])
            .map_err(|_| failed_random())?;
        Ok(super::kx::x25519_active(secret))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

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
        // ring checks the peer's share: its length, and that it is an uncompressed point
        // on the curve.
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

/// SHA-256 and SHA-384 on ring (BoringSSL's assembly: SHA-NI, AVX2 or SSSE3, chosen at
/// run time), for the transcript, HKDF and the TLS 1.2 PRF. `sha2` with
/// `force-soft-compact`, the kernel's choice for size, took 8 % of a full handshake's
/// server time here; ring's digest is linked into a Unix process anyway (ECDSA signing
/// hashes with it).
pub(crate) struct RingHash(&'static digest::Algorithm, HashAlgorithm);

pub(crate) static SHA256: RingHash = RingHash(&digest::SHA256, HashAlgorithm::SHA256);
pub(crate) static SHA384: RingHash = RingHash(&digest::SHA384, HashAlgorithm::SHA384);

impl hash::Hash for RingHash {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(RingHashContext(digest::Context::new(self.0)))
    }

    fn hash(&self, data: &[u8]) -> hash::Output {
        hash::Output::new(digest::digest(self.0, data).as_ref())
    }

    fn output_len(&self) -> usize {
        self.0.output_len()
    }

    fn algorithm(&self) -> HashAlgorithm {
        self.1
    }
}

struct RingHashContext(digest::Context);

impl hash::Context for RingHashContext {
    fn fork_finish(&self) -> hash::Output {
        hash::Output::new(self.0.clone().finish().as_ref())
    }

    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(RingHashContext(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> hash::Output {
        hash::Output::new(self.0.finish().as_ref())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// HMAC on ring: the key's inner and outer states are computed once per key, not per tag.
pub(crate) struct RingHmac(ring::hmac::Algorithm);

pub(crate) static HMAC_SHA256: RingHmac = RingHmac(ring::hmac::HMAC_SHA256);
pub(crate) static HMAC_SHA384: RingHmac = RingHmac(ring::hmac::HMAC_SHA384);

impl hmac::Hmac for RingHmac {
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        Box::new(RingHmacKey(ring::hmac::Key::new(self.0, key)))
    }

    fn hash_output_len(&self) -> usize {
        self.0.digest_algorithm().output_len()
    }
}

struct RingHmacKey(ring::hmac::Key);

impl hmac::Key for RingHmacKey {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> hmac::Tag {
        let mut ctx = ring::hmac::Context::with_key(&self.0);
        ctx.update(first);
        for m in middle {
            ctx.update(m);
        }
        ctx.update(last);
        hmac::Tag::new(ctx.sign().as_ref())
    }

    fn tag_len(&self) -> usize {
        self.0.algorithm().digest_algorithm().output_len()
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

    /// ring's SHA-2 and HMAC give what RustCrypto's (`hash.rs`, the kernel's) give: for
    /// messages across block edges, forked and continued transcripts, HMAC keys shorter
    /// than, as long as and longer than a block (longer ones are hashed first).
    #[test]
    fn ring_hashes_and_hmacs_agree_with_rustcrypto() {
        use rustls::crypto::hmac::Hmac as _;
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        let pairs: [(&dyn hash::Hash, &dyn hash::Hash); 2] = [
            (&SHA256, &super::super::hash::SHA256),
            (&SHA384, &super::super::hash::SHA384),
        ];
        for (ring_hash, soft) in pairs {
            assert_eq!(ring_hash.algorithm(), soft.algorithm());
            assert_eq!(ring_hash.output_len(), soft.output_len());
            for len in [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 300] {
                assert_eq!(
                    ring_hash.hash(&data[..len]).as_ref(),
                    soft.hash(&data[..len]).as_ref(),
                    "length {len}"
                );
            }
            let (mut a, mut b) = (ring_hash.start(), soft.start());
            for chunk in data.chunks(37) {
                a.update(chunk);
                b.update(chunk);
                assert_eq!(a.fork_finish().as_ref(), b.fork_finish().as_ref());
            }
            let (mut fa, mut fb) = (a.fork(), b.fork());
            fa.update(b"more");
            fb.update(b"more");
            assert_eq!(fa.finish().as_ref(), fb.finish().as_ref());
            assert_eq!(a.finish().as_ref(), b.finish().as_ref());
        }
        let hmacs: [(&dyn hmac::Hmac, &dyn hmac::Hmac); 2] = [
            (&HMAC_SHA256, &super::super::hash::HMAC_SHA256),
            (&HMAC_SHA384, &super::super::hash::HMAC_SHA384),
        ];
        for (ring_hmac, soft) in hmacs {
            assert_eq!(ring_hmac.hash_output_len(), soft.hash_output_len());
            for key_len in [0, 20, 32, 64, 128, 129, 200] {
                let (a, b) = (
                    ring_hmac.with_key(&data[..key_len]),
                    soft.with_key(&data[..key_len]),
                );
                assert_eq!(a.tag_len(), b.tag_len());
                let middle: [&[u8]; 2] = [&data[5..90], &data[90..91]];
                assert_eq!(
                    a.sign_concat(&data[..5], &middle, &data[91..]).as_ref(),
                    b.sign_concat(&data[..5], &middle, &data[91..]).as_ref(),
                    "key length {key_len}"
                );
                assert_eq!(a.sign(&[b"x"]).as_ref(), b.sign(&[b"x"]).as_ref());
            }
        }
        // RFC 4231 test case 2 ("Jefe"), against the published tag.
        let tag = HMAC_SHA256
            .with_key(b"Jefe")
            .sign(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            tag.as_ref()[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
        );
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
