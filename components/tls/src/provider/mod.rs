//! The crypto provider: rustls's `CryptoProvider` built from RustCrypto primitives, with
//! ring's AEADs (BoringSSL's assembly) for the records.
//!
//! | what | suites / groups / schemes | crate |
//! |---|---|---|
//! | TLS 1.3 suites | `TLS13_AES_128_GCM_SHA256`, `TLS13_AES_256_GCM_SHA384`, `TLS13_CHACHA20_POLY1305_SHA256` | `ring::aead` (no randomness taken) |
//! | TLS 1.2 suites | `ECDHE_{ECDSA,RSA}_WITH_AES_{128,256}_GCM_SHA{256,384}`, `ECDHE_{ECDSA,RSA}_WITH_CHACHA20_POLY1305_SHA256` | same |
//! | key exchange | X25519, secp256r1 | `curve25519-dalek` (X25519 keys over a base-point table), `x25519-dalek`, `p256`; in a process on a host, secp256r1 on `ring::agreement` and X25519 keys from `getrandom` (`host.rs`) |
//! | server keys | ECDSA P-256; RSA ≥ 2048 bits (PSS, PKCS#1 v1.5) | `p256` (signing over a table of G, `comb.rs`), `rsa`; in a process on a host, ECDSA on `ring::signature` |
//! | hashes, HKDF, PRF | SHA-256, SHA-384, HMAC | `sha2`, `hmac`; in a process on a host, `ring::digest` and `ring::hmac` (`host.rs`) |
//!
//! Nothing else: no CBC, no RSA key exchange, no finite-field DH, no SHA-1, no static keys.
//! Signature verification (`verify`) covers the same schemes, for a peer's certificate.
//! Randomness comes from [`rng::Drbg`], never from `getrandom`, except where the platform's
//! entropy source is the host's `getrandom` itself ([`Asym::host`]): there the
//! key exchange and ECDSA draw from it through `ring::rand::SystemRandom`. A kernel never
//! takes that path, so nothing of `getrandom` is linked into one (`nm` shows it).

pub(crate) mod aead;
pub(crate) mod comb;
pub(crate) mod hash;
pub(crate) mod host;
pub(crate) mod kx;
pub(crate) mod rng;
pub(crate) mod sign;
pub(crate) mod ticket;
pub(crate) mod verify;

use alloc::vec;
use alloc::vec::Vec;

#[cfg(feature = "tls12")]
use rustls::crypto::KeyExchangeAlgorithm;
#[cfg(feature = "tls12")]
use rustls::crypto::tls12::PrfUsingHmac;
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, CipherSuiteCommon, SupportedCipherSuite, Tls13CipherSuite};
#[cfg(feature = "tls12")]
use rustls::{SignatureScheme, Tls12CipherSuite};

use rng::Drbg;

/// AES-GCM: 2^24 full records per key (RFC 8446 §5.5 and the AEAD limits draft).
const GCM_LIMIT: u64 = 1 << 24;
/// ChaCha20-Poly1305: no practical limit below the sequence number's.
const CHACHA_LIMIT: u64 = u64::MAX;

#[cfg(feature = "tls12")]
const TLS12_ECDSA: &[SignatureScheme] = &[SignatureScheme::ECDSA_NISTP256_SHA256];
#[cfg(feature = "tls12")]
const TLS12_RSA: &[SignatureScheme] = &[
    SignatureScheme::RSA_PSS_SHA256,
    SignatureScheme::RSA_PSS_SHA384,
    SignatureScheme::RSA_PSS_SHA512,
    SignatureScheme::RSA_PKCS1_SHA256,
    SignatureScheme::RSA_PKCS1_SHA384,
    SignatureScheme::RSA_PKCS1_SHA512,
];

macro_rules! tls12_suite {
    ($name:ident, $suite:ident, $hash:expr, $hmac:expr, $aead:expr, $sign:expr, $limit:expr) => {
        #[cfg(feature = "tls12")]
        static $name: Tls12CipherSuite = Tls12CipherSuite {
            common: CipherSuiteCommon {
                suite: CipherSuite::$suite,
                hash_provider: $hash,
                confidentiality_limit: $limit,
            },
            kx: KeyExchangeAlgorithm::ECDHE,
            sign: $sign,
            aead_alg: $aead,
            prf_provider: &PrfUsingHmac($hmac),
        };
    };
}

/// A function returning the cipher suites, in the server's order of preference, with the
/// given SHA-256 and SHA-384 hashes and HMACs (transcript, HKDF, PRF): TLS 1.3 first;
/// AES-GCM before ChaCha20-Poly1305 (the server honours its own order, and AES-GCM is the
/// faster with AES-NI, which every x86-64 server of the last decade has).
macro_rules! suite_set {
    ($(#[$meta:meta])* $name:ident, $sha256:expr, $sha384:expr, $hmac256:expr, $hmac384:expr) => {
        $(#[$meta])*
        pub(crate) fn $name() -> Vec<SupportedCipherSuite> {
            static TLS13_AES_128_GCM_SHA256: Tls13CipherSuite = Tls13CipherSuite {
                common: CipherSuiteCommon {
                    suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
                    hash_provider: $sha256,
                    confidentiality_limit: GCM_LIMIT,
                },
                hkdf_provider: &HkdfUsingHmac($hmac256),
                aead_alg: &aead::AES_128_GCM,
                quic: None,
            };
            static TLS13_AES_256_GCM_SHA384: Tls13CipherSuite = Tls13CipherSuite {
                common: CipherSuiteCommon {
                    suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
                    hash_provider: $sha384,
                    confidentiality_limit: GCM_LIMIT,
                },
                hkdf_provider: &HkdfUsingHmac($hmac384),
                aead_alg: &aead::AES_256_GCM,
                quic: None,
            };
            static TLS13_CHACHA20_POLY1305_SHA256: Tls13CipherSuite = Tls13CipherSuite {
                common: CipherSuiteCommon {
                    suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
                    hash_provider: $sha256,
                    confidentiality_limit: CHACHA_LIMIT,
                },
                hkdf_provider: &HkdfUsingHmac($hmac256),
                aead_alg: &aead::CHACHA20_POLY1305,
                quic: None,
            };
            tls12_suite!(
                ECDHE_ECDSA_AES128_GCM,
                TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                $sha256,
                $hmac256,
                &aead::AES_128_GCM,
                TLS12_ECDSA,
                GCM_LIMIT
            );
            tls12_suite!(
                ECDHE_ECDSA_AES256_GCM,
                TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                $sha384,
                $hmac384,
                &aead::AES_256_GCM,
                TLS12_ECDSA,
                GCM_LIMIT
            );
            tls12_suite!(
                ECDHE_ECDSA_CHACHA20,
                TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
                $sha256,
                $hmac256,
                &aead::CHACHA20_POLY1305,
                TLS12_ECDSA,
                CHACHA_LIMIT
            );
            tls12_suite!(
                ECDHE_RSA_AES128_GCM,
                TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
                $sha256,
                $hmac256,
                &aead::AES_128_GCM,
                TLS12_RSA,
                GCM_LIMIT
            );
            tls12_suite!(
                ECDHE_RSA_AES256_GCM,
                TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                $sha384,
                $hmac384,
                &aead::AES_256_GCM,
                TLS12_RSA,
                GCM_LIMIT
            );
            tls12_suite!(
                ECDHE_RSA_CHACHA20,
                TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
                $sha256,
                $hmac256,
                &aead::CHACHA20_POLY1305,
                TLS12_RSA,
                CHACHA_LIMIT
            );
            vec![
                SupportedCipherSuite::Tls13(&TLS13_AES_128_GCM_SHA256),
                SupportedCipherSuite::Tls13(&TLS13_AES_256_GCM_SHA384),
                SupportedCipherSuite::Tls13(&TLS13_CHACHA20_POLY1305_SHA256),
                #[cfg(feature = "tls12")]
                SupportedCipherSuite::Tls12(&ECDHE_ECDSA_AES128_GCM),
                #[cfg(feature = "tls12")]
                SupportedCipherSuite::Tls12(&ECDHE_ECDSA_AES256_GCM),
                #[cfg(feature = "tls12")]
                SupportedCipherSuite::Tls12(&ECDHE_ECDSA_CHACHA20),
                #[cfg(feature = "tls12")]
                SupportedCipherSuite::Tls12(&ECDHE_RSA_AES128_GCM),
                #[cfg(feature = "tls12")]
                SupportedCipherSuite::Tls12(&ECDHE_RSA_AES256_GCM),
                #[cfg(feature = "tls12")]
                SupportedCipherSuite::Tls12(&ECDHE_RSA_CHACHA20),
            ]
        }
    };
}

suite_set!(
    /// The cipher suites on RustCrypto's `sha2` and `hmac` (any platform).
    cipher_suites,
    &hash::SHA256,
    &hash::SHA384,
    &hash::HMAC_SHA256,
    &hash::HMAC_SHA384
);

suite_set!(
    /// The same cipher suites with ring's SHA-2 and HMAC (`host.rs`): for a process on a
    /// host only (see [`Asym::host`]).
    host_cipher_suites,
    &host::SHA256,
    &host::SHA384,
    &host::HMAC_SHA256,
    &host::HMAC_SHA384
);

/// Where the public-key operations run: the key-exchange groups (X25519 first) and the
/// maker of ECDSA keys. RSA and everything symmetric are the same on every platform,
/// but for the hashes ([`suites_for_entropy`]).
#[derive(Clone, Copy)]
pub(crate) struct Asym {
    kx: [&'static dyn SupportedKxGroup; 2],
    pub(crate) keys: sign::Generator,
}

impl Asym {
    /// RustCrypto's portable code, with every random byte from `rng`: for any platform.
    pub(crate) fn portable(rng: &'static Drbg) -> Asym {
        let x25519: &'static dyn SupportedKxGroup =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(kx::X25519(rng)));
        let p256: &'static dyn SupportedKxGroup =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(kx::P256(rng)));
        Asym {
            kx: [x25519, p256],
            keys: sign::Generator {
                rng,
                ecdsa: sign::portable_ecdsa,
            },
        }
    }

    /// `host.rs`: ring's assembly for P-256, X25519 keys from the host's `getrandom`:
    /// only for a platform whose entropy source is that (a Unix process), never for a
    /// kernel.
    pub(crate) fn host(rng: &'static Drbg) -> Asym {
        Asym {
            kx: [&host::X25519, &host::P256],
            keys: sign::Generator {
                rng,
                ecdsa: host::ecdsa,
            },
        }
    }

    /// [`Asym::host`] if the entropy source `E` is the host's `getrandom`, else
    /// [`Asym::portable`]. The choice is a constant of `E`, so a kernel's image holds
    /// nothing of the other.
    pub(crate) fn for_entropy<E: morgana_signatures::Entropy>(rng: &'static Drbg) -> Asym {
        if E::IS_HOST_GETRANDOM {
            Asym::host(rng)
        } else {
            Asym::portable(rng)
        }
    }
}

/// [`host_cipher_suites`] (ring's SHA-2) if the entropy source `E` is the host's
/// `getrandom`, that is in a process on a host, else [`cipher_suites`]. A constant of
/// `E`, as for [`Asym::for_entropy`]: a kernel's image holds nothing of ring's digest.
pub(crate) fn suites_for_entropy<E: morgana_signatures::Entropy>() -> Vec<SupportedCipherSuite> {
    if E::IS_HOST_GETRANDOM {
        host_cipher_suites()
    } else {
        cipher_suites()
    }
}

/// The provider, with its randomness from `rng`, its public-key operations from `asym`
/// and the cipher `suites`.
pub(crate) fn provider<K: sign::KeyKinds>(
    rng: &'static Drbg,
    asym: Asym,
    suites: Vec<SupportedCipherSuite>,
) -> CryptoProvider {
    let keys: &'static sign::Keys<K> = alloc::boxed::Box::leak(alloc::boxed::Box::new(sign::Keys(
        asym.keys,
        core::marker::PhantomData,
    )));
    CryptoProvider {
        cipher_suites: suites,
        kx_groups: asym.kx.to_vec(),
        // The server asks no client for a certificate: nothing to verify, and nothing of
        // the verification code linked (`crate::provider()` adds it for clients).
        signature_verification_algorithms: rustls::crypto::WebPkiSupportedAlgorithms {
            all: &[],
            mapping: &[],
        },
        secure_random: rng,
        key_provider: keys,
    }
}
