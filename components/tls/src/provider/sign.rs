//! Server keys: ECDSA P-256 (`p256`'s arithmetic, signed over a fixed-base table in
//! `comb.rs`, with nonces derived from the key and the message by HMAC and hedged with
//! fresh randomness) and RSA of 2048 bits or more (`rsa`: PSS and PKCS#1 v1.5 with
//! SHA-256/384/512, blinded), loaded from PKCS#8, SEC1 or PKCS#1 DER.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding};
use rsa::traits::PublicKeyParts;
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};

use super::rng::Drbg;

/// The smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Why a private key was refused (rendered into `rustls::Error::General`).
pub(crate) fn key_error(why: &'static str) -> Error {
    Error::General(why.into())
}

/// Which kinds of server key an appliance can load: a type parameter of
/// [`Tls`](crate::Tls), so that what an appliance does not use falls away at link time
/// (with [`Ecdsa`] no RSA code is linked: about 85 KiB of a kernel).
pub trait KeyKinds: Send + Sync + 'static {
    /// Decodes `key`; `Err` with a message naming the kinds this type accepts.
    fn load(key: PrivateKeyDer<'static>, rng: Generator) -> Result<Arc<dyn SigningKey>, Error>;
}

/// The component's random generator, as [`KeyKinds::load`] gets it (keys sign with fresh
/// randomness), and the platform's way of making ECDSA keys. Opaque.
#[derive(Clone, Copy)]
pub struct Generator {
    pub(crate) rng: &'static Drbg,
    pub(crate) ecdsa: EcdsaMaker,
}

/// Makes a signing key from a P-256 private scalar: [`portable_ecdsa`] (RustCrypto's
/// `p256`) or, in a process on a host, ring's (`provider/host.rs`).
pub(crate) type EcdsaMaker = fn(&[u8; 32], &'static Drbg) -> Result<Arc<dyn SigningKey>, Error>;

/// ECDSA P-256 keys only.
#[derive(Debug)]
pub enum Ecdsa {}

/// RSA keys only (2048 bits or more).
#[derive(Debug)]
pub enum Rsa {}

/// ECDSA P-256 or RSA keys: the default.
#[derive(Debug)]
pub enum EcdsaOrRsa {}

fn ecdsa(
    key: &PrivateKeyDer<'static>,
    Generator { rng, ecdsa }: Generator,
) -> Option<Result<Arc<dyn SigningKey>, Error>> {
    // Read by `crate::der`, not by the `pkcs8`/`sec1` crates: about 13 KB less kernel.
    let scalar = match key {
        PrivateKeyDer::Pkcs8(der) => match crate::der::p256_pkcs8(der.secret_pkcs8_der()) {
            Ok(scalar) => scalar,
            // Another algorithm (RSA?) or malformed: not ours to judge.
            Err(crate::der::EcKeyError::NotEc | crate::der::EcKeyError::Malformed) => {
                return None;
            }
            Err(crate::der::EcKeyError::OtherCurve) => return Some(Err(not_p256())),
        },
        PrivateKeyDer::Sec1(der) => match crate::der::p256_sec1(der.secret_sec1_der()) {
            Ok(scalar) => scalar,
            Err(_) => return Some(Err(not_p256())),
        },
        _ => return None,
    };
    let key = ecdsa(&scalar, rng);
    zeroize::Zeroize::zeroize(&mut { scalar });
    Some(key)
}

/// An ECDSA P-256 key on RustCrypto's `p256` arithmetic, signing over the fixed-base
/// table of `comb.rs`, whose first use (here, at load) computes it.
pub(crate) fn portable_ecdsa(
    scalar: &[u8; 32],
    rng: &'static Drbg,
) -> Result<Arc<dyn SigningKey>, Error> {
    let secret =
        Option::<p256::NonZeroScalar>::from(p256::NonZeroScalar::from_repr((*scalar).into()))
            .ok_or_else(|| key_error("the P-256 private key is out of range"))?;
    let public = super::comb::table().mul(&secret).to_affine();
    let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&public, false);
    let mut spki = Vec::with_capacity(crate::der::P256_SPKI_PREFIX.len() + 65);
    spki.extend_from_slice(&crate::der::P256_SPKI_PREFIX);
    spki.extend_from_slice(point.as_bytes());
    Ok(Arc::new(EcdsaKey { secret, spki, rng }))
}

fn not_p256() -> Error {
    key_error("the EC private key is not a P-256 key (the only curve supported)")
}

fn rsa(
    key: &PrivateKeyDer<'static>,
    Generator { rng, .. }: Generator,
) -> Option<Result<Arc<dyn SigningKey>, Error>> {
    let decoded = match key {
        PrivateKeyDer::Pkcs8(der) => {
            rsa::RsaPrivateKey::from_pkcs8_der(der.secret_pkcs8_der()).ok()?
        }
        PrivateKeyDer::Pkcs1(der) => {
            match rsa::RsaPrivateKey::from_pkcs1_der(der.secret_pkcs1_der()) {
                Ok(k) => k,
                Err(_) => return Some(Err(key_error("the RSA private key cannot be decoded"))),
            }
        }
        _ => return None,
    };
    Some(rsa_key(decoded, rng))
}

impl KeyKinds for Ecdsa {
    fn load(key: PrivateKeyDer<'static>, rng: Generator) -> Result<Arc<dyn SigningKey>, Error> {
        ecdsa(&key, rng).unwrap_or_else(|| {
            Err(key_error(
                "the private key is not ECDSA P-256 (this appliance takes ECDSA keys only)",
            ))
        })
    }
}

impl KeyKinds for Rsa {
    fn load(key: PrivateKeyDer<'static>, rng: Generator) -> Result<Arc<dyn SigningKey>, Error> {
        rsa(&key, rng).unwrap_or_else(|| {
            Err(key_error(
                "the private key is not RSA (this appliance takes RSA keys only)",
            ))
        })
    }
}

impl KeyKinds for EcdsaOrRsa {
    fn load(key: PrivateKeyDer<'static>, rng: Generator) -> Result<Arc<dyn SigningKey>, Error> {
        ecdsa(&key, rng)
            .or_else(|| rsa(&key, rng))
            .unwrap_or_else(|| {
                Err(key_error(
                    "the private key is neither ECDSA P-256 nor RSA (the only kinds supported)",
                ))
            })
    }
}

/// Loads a private key for the provider (`KeyProvider::load_private_key`).
pub(crate) struct Keys<K>(
    pub(crate) Generator,
    pub(crate) core::marker::PhantomData<fn() -> K>,
);

impl<K> fmt::Debug for Keys<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Keys")
    }
}

impl<K: KeyKinds> rustls::crypto::KeyProvider for Keys<K> {
    fn load_private_key(&self, key: PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, Error> {
        K::load(key, self.0)
    }
}

fn rsa_key(key: rsa::RsaPrivateKey, rng: &'static Drbg) -> Result<Arc<dyn SigningKey>, Error> {
    if key.size() * 8 < MIN_RSA_BITS {
        return Err(key_error("the RSA key is shorter than 2048 bits"));
    }
    key.validate()
        .map_err(|_| key_error("the RSA private key is inconsistent"))?;
    Ok(Arc::new(RsaKey {
        key: Arc::new(key),
        rng,
    }))
}

/// An ECDSA P-256 key: its secret scalar and its `subjectPublicKeyInfo`.
struct EcdsaKey {
    secret: p256::NonZeroScalar,
    spki: Vec<u8>,
    rng: &'static Drbg,
}

impl Drop for EcdsaKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl fmt::Debug for EcdsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcdsaKey(P-256)")
    }
}

impl SigningKey for EcdsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| {
                Box::new(EcdsaSigner {
                    secret: self.secret,
                    rng: self.rng,
                }) as Box<dyn Signer>
            })
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(&self.spki[..]))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

struct EcdsaSigner {
    secret: p256::NonZeroScalar,
    rng: &'static Drbg,
}

impl Drop for EcdsaSigner {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.secret);
    }
}

impl fmt::Debug for EcdsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EcdsaSigner(P-256)")
    }
}

impl Signer for EcdsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let (r, s) = super::comb::sign(&self.secret, message, &mut self.rng.rng())
            .map_err(|_| Error::General("ECDSA signing failed".into()))?;
        Ok(crate::der::ecdsa_signature(&r, &s))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// An RSA key.
struct RsaKey {
    key: Arc<rsa::RsaPrivateKey>,
    rng: &'static Drbg,
}

impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaKey({} bits)", self.key.size() * 8)
    }
}

/// The schemes an RSA key signs with, best first: PSS (required by TLS 1.3), then
/// PKCS#1 v1.5 for TLS 1.2 clients that offer nothing else.
const RSA_SCHEMES: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

impl SigningKey for RsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = RSA_SCHEMES.iter().find(|s| offered.contains(s))?;
        Some(Box::new(RsaSigner {
            key: self.key.clone(),
            scheme: *scheme,
            rng: self.rng,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        let der = self.key.to_public_key().to_public_key_der().ok()?;
        Some(SubjectPublicKeyInfoDer::from(der.as_bytes().to_vec()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

struct RsaSigner {
    key: Arc<rsa::RsaPrivateKey>,
    scheme: SignatureScheme,
    rng: &'static Drbg,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RsaSigner({:#06x})", u16::from(self.scheme))
    }
}

impl Signer for RsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        use rsa::{pkcs1v15, pss};
        use sha2::{Sha256, Sha384, Sha512};
        let key = (*self.key).clone();
        let mut rng = self.rng.rng();
        let failed = |_| Error::General("RSA signing failed".into());
        let sig: Box<[u8]> = match self.scheme {
            SignatureScheme::RSA_PSS_SHA256 => pss::BlindedSigningKey::<Sha256>::new(key)
                .try_sign_with_rng(&mut rng, message)
                .map_err(failed)?
                .to_bytes(),
            SignatureScheme::RSA_PSS_SHA384 => pss::BlindedSigningKey::<Sha384>::new(key)
                .try_sign_with_rng(&mut rng, message)
                .map_err(failed)?
                .to_bytes(),
            SignatureScheme::RSA_PSS_SHA512 => pss::BlindedSigningKey::<Sha512>::new(key)
                .try_sign_with_rng(&mut rng, message)
                .map_err(failed)?
                .to_bytes(),
            SignatureScheme::RSA_PKCS1_SHA256 => pkcs1v15::SigningKey::<Sha256>::new(key)
                .try_sign_with_rng(&mut rng, message)
                .map_err(failed)?
                .to_bytes(),
            SignatureScheme::RSA_PKCS1_SHA384 => pkcs1v15::SigningKey::<Sha384>::new(key)
                .try_sign_with_rng(&mut rng, message)
                .map_err(failed)?
                .to_bytes(),
            SignatureScheme::RSA_PKCS1_SHA512 => pkcs1v15::SigningKey::<Sha512>::new(key)
                .try_sign_with_rng(&mut rng, message)
                .map_err(failed)?
                .to_bytes(),
            _ => return Err(Error::General("unsupported RSA scheme".into())),
        };
        Ok(sig.into_vec())
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
