//! Certificates and keys: PEM in, rustls `CertifiedKey`s out, and the SNI resolver that
//! picks one per handshake.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::provider::sign::{KeyKinds, Keys};

/// A certificate chain and its private key, as PEM text.
///
/// The chain is the server's certificate first, then the intermediates (the root is not
/// needed). The key is PKCS#8 (`BEGIN PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`) or
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`): ECDSA P-256 or RSA of at least 2048 bits. The bytes
/// are parsed once by [`Tls::connect`](crate::Tls::connect); the component keeps the
/// decoded key, never the text.
#[derive(Clone, Copy)]
pub struct Identity<'a> {
    /// The certificate chain, PEM.
    pub chain_pem: &'a [u8],
    /// The private key, PEM. Never printed: `Identity`'s `Debug` leaves it out.
    pub key_pem: &'a [u8],
}

impl fmt::Debug for Identity<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("chain_pem", &format_args!("{} bytes", self.chain_pem.len()))
            .field("key_pem", &format_args!("<secret>"))
            .finish()
    }
}

/// Why an identity could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentityError {
    /// The chain holds no `CERTIFICATE` block.
    NoCertificate,
    /// The chain's PEM is malformed.
    BadChain,
    /// No private key block in the key PEM, or a malformed one.
    BadKey,
    /// The key is of a kind or size the component does not support.
    UnsupportedKey(alloc::string::String),
    /// The key does not belong to the chain's first certificate.
    KeyMismatch,
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::NoCertificate => f.write_str("the certificate chain holds no CERTIFICATE block"),
            IdentityError::BadChain => f.write_str("the certificate chain is not valid PEM"),
            IdentityError::BadKey => f.write_str(
                "no private key in the key PEM (expected BEGIN PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY)",
            ),
            IdentityError::UnsupportedKey(why) => f.write_str(why),
            IdentityError::KeyMismatch => {
                f.write_str("the private key does not match the certificate")
            }
        }
    }
}

/// Decodes `identity` into a key rustls can serve.
pub(crate) fn load<K: KeyKinds>(
    identity: &Identity<'_>,
    keys: &Keys<K>,
) -> Result<CertifiedKey, IdentityError> {
    let mut chain = Vec::new();
    for cert in CertificateDer::pem_slice_iter(identity.chain_pem) {
        chain.push(cert.map_err(|_| IdentityError::BadChain)?);
    }
    if chain.is_empty() {
        return Err(IdentityError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem).map_err(|_| IdentityError::BadKey)?;
    let key = rustls::crypto::KeyProvider::load_private_key(keys, key).map_err(|e| match e {
        rustls::Error::General(why) => IdentityError::UnsupportedKey(why),
        _ => IdentityError::BadKey,
    })?;
    // The key's SubjectPublicKeyInfo must be the certificate's (what rustls's
    // `CertifiedKey::keys_match` checks, without webpki's certificate parser).
    match (key.public_key(), crate::der::certificate_spki(&chain[0])) {
        (Some(ours), Some(theirs)) if ours.as_ref() == theirs => {}
        _ => return Err(IdentityError::KeyMismatch),
    }
    Ok(CertifiedKey::new(chain, key))
}

/// Picks the certificate for a handshake (SNI, RFC 6066 §3).
///
/// Among the identities whose certificate is valid for the name the client asked for
/// (subject alternative names, wildcards included: `crate::der::name_matches`), the first whose
/// key can sign with a scheme the client offers; when none matches the name (or the
/// client sent none), the first identity whose key the client can use; failing that the
/// first identity, and rustls then ends the handshake with `handshake_failure`.
pub(crate) struct Resolver {
    identities: Vec<Arc<CertifiedKey>>,
}

/// Not derived: rustls's `Debug` of the certified keys would link its certificate and key
/// printing into every image, for a line nobody prints (docs/tls.md, "Size").
impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl Resolver {
    pub(crate) fn new(identities: Vec<Arc<CertifiedKey>>) -> Resolver {
        Resolver { identities }
    }
}

fn valid_for(key: &CertifiedKey, name: &DnsName<'_>) -> bool {
    let Ok(der) = key.end_entity_cert() else {
        return false;
    };
    let name = name.as_ref().as_bytes();
    crate::der::dns_names(der)
        .iter()
        .any(|pattern| crate::der::name_matches(pattern, name))
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let usable = |k: &&Arc<CertifiedKey>| k.key.choose_scheme(schemes).is_some();
        if self.identities.len() > 1 {
            let name = hello.server_name().and_then(|n| DnsName::try_from(n).ok());
            if let Some(name) = name
                && let Some(k) = self
                    .identities
                    .iter()
                    .filter(|k| valid_for(k, &name))
                    .find(usable)
            {
                return Some(k.clone());
            }
        }
        self.identities
            .iter()
            .find(usable)
            .or(self.identities.first())
            .cloned()
    }
}
