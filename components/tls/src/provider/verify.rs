//! Signature verification (certificate chains and handshake signatures of a peer):
//! ECDSA P-256 with SHA-256, RSA PSS and PKCS#1 v1.5 with SHA-256/384/512.
//!
//! The server asks no client for a certificate; these are here so that the provider is
//! complete (a TLS client built on it verifies servers), and the host tests' client uses
//! them to check the server's chain for real.

use core::marker::PhantomData;

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::signature::Verifier;
use rustls::SignatureScheme;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{
    AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm, alg_id,
};
use sha2::digest::{Digest, FixedOutputReset};

#[derive(Debug)]
struct EcdsaP256Sha256;

impl SignatureVerificationAlgorithm for EcdsaP256Sha256 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let sig = p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
}

/// Which RSA padding.
trait Padding: Send + Sync + 'static {
    fn verify<D: Digest + FixedOutputReset + pkcs8::der::oid::AssociatedOid>(
        key: rsa::RsaPublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature>;
}

#[derive(Debug)]
struct Pss;
#[derive(Debug)]
struct Pkcs1;

impl Padding for Pss {
    fn verify<D: Digest + FixedOutputReset + pkcs8::der::oid::AssociatedOid>(
        key: rsa::RsaPublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let sig = rsa::pss::Signature::try_from(signature).map_err(|_| InvalidSignature)?;
        rsa::pss::VerifyingKey::<D>::new(key)
            .verify(message, &sig)
            .map_err(|_| InvalidSignature)
    }
}

impl Padding for Pkcs1 {
    fn verify<D: Digest + FixedOutputReset + pkcs8::der::oid::AssociatedOid>(
        key: rsa::RsaPublicKey,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let sig = rsa::pkcs1v15::Signature::try_from(signature).map_err(|_| InvalidSignature)?;
        rsa::pkcs1v15::VerifyingKey::<D>::new(key)
            .verify(message, &sig)
            .map_err(|_| InvalidSignature)
    }
}

struct Rsa<P, D> {
    id: AlgorithmIdentifier,
    _marker: PhantomData<fn() -> (P, D)>,
}

impl<P, D> core::fmt::Debug for Rsa<P, D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rsa")
    }
}

impl<P: Padding, D> SignatureVerificationAlgorithm for Rsa<P, D>
where
    D: Digest + FixedOutputReset + pkcs8::der::oid::AssociatedOid + 'static,
{
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = rsa::RsaPublicKey::from_pkcs1_der(public_key).map_err(|_| InvalidSignature)?;
        if key.size() * 8 < super::sign::MIN_RSA_BITS {
            return Err(InvalidSignature);
        }
        P::verify::<D>(key, message, signature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.id
    }
}

use rsa::traits::PublicKeyParts;

static ECDSA_P256_SHA256: EcdsaP256Sha256 = EcdsaP256Sha256;
static RSA_PSS_SHA256: Rsa<Pss, sha2::Sha256> = Rsa {
    id: alg_id::RSA_PSS_SHA256,
    _marker: PhantomData,
};
static RSA_PSS_SHA384: Rsa<Pss, sha2::Sha384> = Rsa {
    id: alg_id::RSA_PSS_SHA384,
    _marker: PhantomData,
};
static RSA_PSS_SHA512: Rsa<Pss, sha2::Sha512> = Rsa {
    id: alg_id::RSA_PSS_SHA512,
    _marker: PhantomData,
};
static RSA_PKCS1_SHA256: Rsa<Pkcs1, sha2::Sha256> = Rsa {
    id: alg_id::RSA_PKCS1_SHA256,
    _marker: PhantomData,
};
static RSA_PKCS1_SHA384: Rsa<Pkcs1, sha2::Sha384> = Rsa {
    id: alg_id::RSA_PKCS1_SHA384,
    _marker: PhantomData,
};
static RSA_PKCS1_SHA512: Rsa<Pkcs1, sha2::Sha512> = Rsa {
    id: alg_id::RSA_PKCS1_SHA512,
    _marker: PhantomData,
};

/// What the provider verifies.
pub(crate) static ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        &ECDSA_P256_SHA256,
        &RSA_PSS_SHA256,
        &RSA_PSS_SHA384,
        &RSA_PSS_SHA512,
        &RSA_PKCS1_SHA256,
        &RSA_PKCS1_SHA384,
        &RSA_PKCS1_SHA512,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[&ECDSA_P256_SHA256],
        ),
        (SignatureScheme::RSA_PSS_SHA256, &[&RSA_PSS_SHA256]),
        (SignatureScheme::RSA_PSS_SHA384, &[&RSA_PSS_SHA384]),
        (SignatureScheme::RSA_PSS_SHA512, &[&RSA_PSS_SHA512]),
        (SignatureScheme::RSA_PKCS1_SHA256, &[&RSA_PKCS1_SHA256]),
        (SignatureScheme::RSA_PKCS1_SHA384, &[&RSA_PKCS1_SHA384]),
        (SignatureScheme::RSA_PKCS1_SHA512, &[&RSA_PKCS1_SHA512]),
    ],
};
