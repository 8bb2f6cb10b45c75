//! AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 as TLS 1.3 and TLS 1.2 record
//! protection. AES-GCM over `ring::aead` (BoringSSL's assembly: stitched AES-NI/CLMUL
//! GCM where the CPU has it, constant-time portable code otherwise; CPU features read
//! with `cpuid`, which works in a kernel too); ChaCha20-Poly1305 over RustCrypto's
//! `chacha20poly1305` (SSE2; its AVX2 bodies left out by the workspace's `--cfg` flags,
//! docs/tls.md "Size"), which is about 25 KB
//! smaller in a kernel than ring's stitched SSE4.1 and AVX2 assembly for the suite the
//! server ranks last.
//!
//! Only ring's AEADs are used: they take no randomness (the nonces are the TLS sequence
//! numbers), so nothing here reaches ring's `SystemRandom` or `getrandom`. Key exchange,
//! signatures, hashes and tickets' randomness stay with the RustCrypto code and the
//! component's own generator. docs/tls.md ("The crypto provider") says why.

use alloc::boxed::Box;

use ring::aead::{Aad, LessSafeKey, UnboundKey};
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter, MessageEncrypter,
    NONCE_LEN, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError, make_tls13_aad,
};
use rustls::{ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion};

/// Every AEAD here has a 16-byte tag.
const TAG_LEN: usize = 16;

/// One AEAD cipher: how it is keyed, and its TLS 1.2 shape. The record code itself is
/// not generic (one copy for every suite: [`Keyed`] picks the primitive), which keeps a
/// kernel about 3 KB smaller than one copy per cipher (docs/tls.md, "Size").
pub(crate) trait Cipher: Send + Sync + 'static {
    /// The key length in bytes (the suite's).
    const KEY_LEN: usize;
    /// The TLS 1.2 fixed IV length from the key block (4 for GCM, 12 for ChaCha20).
    #[cfg_attr(not(feature = "tls12"), allow(dead_code))]
    const TLS12_FIXED_IV_LEN: usize;
    /// Whether TLS 1.2 records carry an explicit nonce (GCM) or not (ChaCha20, RFC 7905).
    #[cfg_attr(not(feature = "tls12"), allow(dead_code))]
    const TLS12_EXPLICIT_NONCE: bool;
    /// Keys the cipher; `key` is `KEY_LEN` bytes (rustls derives exactly that many).
    fn key(key: &[u8]) -> Keyed;
}

/// A keyed AEAD: AES-GCM on ring, or ChaCha20-Poly1305 on RustCrypto.
// One per direction of a connection, inside the boxed record protector either way: the
// 512 bytes a ChaCha20 key does not use are not worth a second allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Keyed {
    Gcm(LessSafeKey),
    ChaCha(chacha20poly1305::ChaCha20Poly1305),
}

impl Keyed {
    /// Seals `text` in place; the tag.
    fn seal(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        text: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        match self {
            Keyed::Gcm(key) => seal(key, nonce, aad, text),
            Keyed::ChaCha(key) => {
                use chacha20poly1305::AeadInPlace;
                let tag = key
                    .encrypt_in_place_detached(&nonce.into(), aad, text)
                    .map_err(|_| Error::EncryptError)?;
                Ok(tag.into())
            }
        }
    }

    /// Opens `text` in place against `tag`.
    fn open(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        text: &mut [u8],
        tag: &[u8],
    ) -> Result<(), Error> {
        match self {
            Keyed::Gcm(key) => open(key, nonce, aad, text, tag),
            Keyed::ChaCha(key) => {
                use chacha20poly1305::AeadInPlace;
                let tag: [u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptError)?;
                key.decrypt_in_place_detached(&nonce.into(), aad, text, &tag.into())
                    .map_err(|_| Error::DecryptError)
            }
        }
    }
}

pub(crate) struct Aes128Gcm;
pub(crate) struct Aes256Gcm;
pub(crate) struct ChaCha20Poly1305;

/// AES-GCM on ring, for a key length.
macro_rules! ring_gcm {
    ($cipher:ty, $algorithm:expr, $key_len:expr) => {
        impl Cipher for $cipher {
            const KEY_LEN: usize = $key_len;
            const TLS12_FIXED_IV_LEN: usize = 4;
            const TLS12_EXPLICIT_NONCE: bool = true;
            fn key(key: &[u8]) -> Keyed {
                Keyed::Gcm(LessSafeKey::new(
                    UnboundKey::new(&$algorithm, key)
                        .expect("rustls derives keys of the suite's key length"),
                ))
            }
        }
    };
}

ring_gcm!(Aes128Gcm, ring::aead::AES_128_GCM, 16);
ring_gcm!(Aes256Gcm, ring::aead::AES_256_GCM, 32);

impl Cipher for ChaCha20Poly1305 {
    const KEY_LEN: usize = 32;
    const TLS12_FIXED_IV_LEN: usize = 12;
    const TLS12_EXPLICIT_NONCE: bool = false;

    fn key(key: &[u8]) -> Keyed {
        use chacha20poly1305::KeyInit;
        Keyed::ChaCha(
            chacha20poly1305::ChaCha20Poly1305::new_from_slice(key)
                .expect("rustls derives 32-byte ChaCha20 keys"),
        )
    }
}

/// The AEAD algorithm `C` for rustls.
///
/// Not generic either: the three suites share one copy of the key-schedule glue below.
pub(crate) struct Aead {
    /// The key length in bytes.
    key_len: usize,
    /// The TLS 1.2 fixed IV length from the key block.
    #[cfg_attr(not(feature = "tls12"), allow(dead_code))]
    tls12_fixed_iv_len: usize,
    /// Whether TLS 1.2 records carry an explicit nonce.
    #[cfg_attr(not(feature = "tls12"), allow(dead_code))]
    tls12_explicit_nonce: bool,
    /// Keys the cipher.
    key: fn(&[u8]) -> Keyed,
}

impl Aead {
    const fn of<C: Cipher>() -> Aead {
        Aead {
            key_len: C::KEY_LEN,
            tls12_fixed_iv_len: C::TLS12_FIXED_IV_LEN,
            tls12_explicit_nonce: C::TLS12_EXPLICIT_NONCE,
            key: C::key,
        }
    }

    /// The keyed cipher; rustls derives keys of exactly `key_len()` /
    /// `key_block_shape().enc_key_len` bytes.
    fn cipher(&self, key: &AeadKey) -> Keyed {
        (self.key)(key.as_ref())
    }
}

pub(crate) static AES_128_GCM: Aead = Aead::of::<Aes128Gcm>();
pub(crate) static AES_256_GCM: Aead = Aead::of::<Aes256Gcm>();
pub(crate) static CHACHA20_POLY1305: Aead = Aead::of::<ChaCha20Poly1305>();

/// Seals `text` in place under `nonce` and `aad` with ring; the tag.
pub(crate) fn seal(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    text: &mut [u8],
) -> Result<[u8; TAG_LEN], Error> {
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
    let tag = key
        .seal_in_place_separate_tag(nonce, Aad::from(aad), text)
        .map_err(|_| Error::EncryptError)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Ok(out)
}

/// Opens `text` in place under `nonce` and `aad` against `tag`, with ring.
pub(crate) fn open(
    key: &LessSafeKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    text: &mut [u8],
    tag: &[u8],
) -> Result<(), Error> {
    let nonce = ring::aead::Nonce::assume_unique_for_key(nonce);
    let tag = ring::aead::Tag::try_from(tag).map_err(|_| Error::DecryptError)?;
    key.open_in_place_separate_tag(nonce, Aad::from(aad), tag, text, 0..)
        .map(|_| ())
        .map_err(|_| Error::DecryptError)
}

impl Tls13AeadAlgorithm for Aead {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Tls13Protect {
            cipher: self.cipher(&key),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Tls13Protect {
            cipher: self.cipher(&key),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        self.key_len
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        // For key extraction (kTLS): not offered.
        let _ = (key, iv);
        Err(UnsupportedOperationError)
    }
}

/// TLS 1.3 record protection (RFC 8446 §5.2): nonce = IV xor sequence number, additional
/// data = the record header, the real content type inside the encryption.
struct Tls13Protect {
    cipher: Keyed,
    iv: Iv,
}

impl MessageEncrypter for Tls13Protect {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        let tag = self.cipher.seal(nonce, &aad, payload.as_mut())?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

impl MessageDecrypter for Tls13Protect {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let len = payload.len();
        let Some(text_len) = len.checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(len);
        let (text, tag) = payload.split_at_mut(text_len);
        self.cipher.open(nonce, &aad, text, tag)?;
        payload.truncate(text_len);
        msg.into_tls13_unpadded_message()
    }
}

/// TLS 1.2 record protection: only with the `tls12` feature (rustls's TLS 1.2 code with it).
#[cfg(feature = "tls12")]
mod tls12 {
    use super::*;
    use rustls::crypto::cipher::{KeyBlockShape, Tls12AeadAlgorithm, make_tls12_aad};

    /// TLS 1.2 GCM: the record carries the last 8 bytes of the nonce in clear.
    const GCM_EXPLICIT_NONCE_LEN: usize = 8;

    /// The largest plaintext of a record (2^14), plus the padding/type byte rustls allows.
    const MAX_PLAINTEXT: usize = 16 * 1024;

    impl Tls12AeadAlgorithm for Aead {
        fn encrypter(&self, key: AeadKey, iv: &[u8], extra: &[u8]) -> Box<dyn MessageEncrypter> {
            Box::new(Tls12Protect {
                cipher: self.cipher(&key),
                iv: self.tls12_iv(iv, extra),
                explicit: self.explicit_len(),
            })
        }

        fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
            Box::new(Tls12Protect {
                cipher: self.cipher(&key),
                iv: self.tls12_iv(iv, &[]),
                explicit: self.explicit_len(),
            })
        }

        fn key_block_shape(&self) -> KeyBlockShape {
            KeyBlockShape {
                enc_key_len: self.key_len,
                fixed_iv_len: self.tls12_fixed_iv_len,
                explicit_nonce_len: self.explicit_len(),
            }
        }

        fn extract_keys(
            &self,
            _key: AeadKey,
            _iv: &[u8],
            _explicit: &[u8],
        ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
            Err(UnsupportedOperationError)
        }
    }

    impl Aead {
        /// The explicit nonce each record carries: 8 bytes for GCM, none for ChaCha20.
        fn explicit_len(&self) -> usize {
            if self.tls12_explicit_nonce {
                GCM_EXPLICIT_NONCE_LEN
            } else {
                0
            }
        }

        /// The 12-byte TLS 1.2 IV: GCM's 4-byte salt followed by the 8 key-block bytes that seed
        /// the explicit nonces (zeros for the decrypter, which reads them from each record);
        /// ChaCha20's 12-byte IV as is.
        fn tls12_iv(&self, fixed: &[u8], extra: &[u8]) -> Iv {
            let mut iv = [0u8; NONCE_LEN];
            let fixed = fixed
                .get(..self.tls12_fixed_iv_len.min(NONCE_LEN))
                .unwrap_or(fixed);
            iv[..fixed.len()].copy_from_slice(fixed);
            if self.tls12_explicit_nonce {
                let n = extra.len().min(NONCE_LEN - fixed.len());
                iv[fixed.len()..fixed.len() + n].copy_from_slice(&extra[..n]);
            }
            Iv::new(iv)
        }
    }

    /// TLS 1.2 AEAD record protection (RFC 5288 for GCM, RFC 7905 for ChaCha20-Poly1305).
    struct Tls12Protect {
        cipher: Keyed,
        iv: Iv,
        /// The explicit nonce's length in each record (`explicit_len`).
        explicit: usize,
    }

    impl MessageEncrypter for Tls12Protect {
        fn encrypt(
            &mut self,
            msg: OutboundPlainMessage<'_>,
            seq: u64,
        ) -> Result<OutboundOpaqueMessage, Error> {
            let total_len = self.encrypted_payload_len(msg.payload.len());
            let mut payload = PrefixedPayload::with_capacity(total_len);
            let nonce = Nonce::new(&self.iv, seq).0;
            let explicit = self.explicit;
            if explicit > 0 {
                payload.extend_from_slice(&nonce[NONCE_LEN - explicit..]);
            }
            payload.extend_from_chunks(&msg.payload);
            let aad = make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len());
            let tag = self
                .cipher
                .seal(nonce, &aad, &mut payload.as_mut()[explicit..])?;
            payload.extend_from_slice(&tag);
            Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
        }

        fn encrypted_payload_len(&self, payload_len: usize) -> usize {
            let explicit = self.explicit;
            payload_len + explicit + TAG_LEN
        }
    }

    impl MessageDecrypter for Tls12Protect {
        fn decrypt<'a>(
            &mut self,
            mut msg: InboundOpaqueMessage<'a>,
            seq: u64,
        ) -> Result<InboundPlainMessage<'a>, Error> {
            let explicit = self.explicit;
            let len = msg.payload.len();
            let Some(text_len) = len.checked_sub(explicit + TAG_LEN) else {
                return Err(Error::DecryptError);
            };
            if text_len > MAX_PLAINTEXT {
                return Err(Error::PeerSentOversizedRecord);
            }
            let mut nonce = Nonce::new(&self.iv, seq).0;
            if explicit > 0 {
                nonce[NONCE_LEN - explicit..].copy_from_slice(&msg.payload[..explicit]);
            }
            let aad = make_tls12_aad(seq, msg.typ, msg.version, text_len);
            let (text, tag) = msg.payload[explicit..].split_at_mut(text_len);
            self.cipher.open(nonce, &aad, text, tag)?;
            Ok(msg.into_plain_message_range(explicit..explicit + text_len))
        }
    }
}
