//! SHA-256 and SHA-384 (RustCrypto `sha2`) as rustls hashes, HMAC over them (`hmac`).

use alloc::boxed::Box;
use core::marker::PhantomData;

use rustls::crypto::hash::{self, HashAlgorithm, Output};
use rustls::crypto::hmac::{self, Tag};
use sha2::Digest;
use sha2::digest::core_api::BlockSizeUser;

/// A digest rustls can use: cloneable (for `fork`) and shareable.
pub(crate) trait Sha: Digest + Clone + BlockSizeUser + Send + Sync + 'static {
    const ALGORITHM: HashAlgorithm;
}

impl Sha for sha2::Sha256 {
    const ALGORITHM: HashAlgorithm = HashAlgorithm::SHA256;
}

impl Sha for sha2::Sha384 {
    const ALGORITHM: HashAlgorithm = HashAlgorithm::SHA384;
}

/// `D` as a [`hash::Hash`]. `fn() -> D` keeps the marker `Send + Sync`.
pub(crate) struct ShaHash<D>(PhantomData<fn() -> D>);

pub(crate) static SHA256: ShaHash<sha2::Sha256> = ShaHash(PhantomData);
pub(crate) static SHA384: ShaHash<sha2::Sha384> = ShaHash(PhantomData);

impl<D: Sha> hash::Hash for ShaHash<D> {
    fn start(&self) -> Box<dyn hash::Context> {
        Box::new(ShaContext(D::new()))
    }

    fn hash(&self, data: &[u8]) -> Output {
        Output::new(&D::digest(data)[..])
    }

    fn output_len(&self) -> usize {
        <D as Digest>::output_size()
    }

    fn algorithm(&self) -> HashAlgorithm {
        D::ALGORITHM
    }
}

struct ShaContext<D>(D);

impl<D: Sha> hash::Context for ShaContext<D> {
    fn fork_finish(&self) -> Output {
        Output::new(&self.0.clone().finalize()[..])
    }

    fn fork(&self) -> Box<dyn hash::Context> {
        Box::new(ShaContext(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> Output {
        Output::new(&self.0.finalize()[..])
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// HMAC over `D`.
pub(crate) struct ShaHmac<D>(PhantomData<fn() -> D>);

pub(crate) static HMAC_SHA256: ShaHmac<sha2::Sha256> = ShaHmac(PhantomData);
pub(crate) static HMAC_SHA384: ShaHmac<sha2::Sha384> = ShaHmac(PhantomData);

impl<D: Sha> hmac::Hmac for ShaHmac<D>
where
    ::hmac::SimpleHmac<D>: Send + Sync,
{
    fn with_key(&self, key: &[u8]) -> Box<dyn hmac::Key> {
        let mac = <::hmac::SimpleHmac<D> as ::hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC takes keys of any length (longer ones are hashed)");
        Box::new(ShaHmacKey(mac))
    }

    fn hash_output_len(&self) -> usize {
        <D as Digest>::output_size()
    }
}

struct ShaHmacKey<D: Sha>(::hmac::SimpleHmac<D>);

impl<D: Sha> hmac::Key for ShaHmacKey<D>
where
    ::hmac::SimpleHmac<D>: Send + Sync,
{
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        use ::hmac::Mac;
        let mut mac = self.0.clone();
        mac.update(first);
        for m in middle {
            mac.update(m);
        }
        mac.update(last);
        Tag::new(&mac.finalize().into_bytes()[..])
    }

    fn tag_len(&self) -> usize {
        <D as Digest>::output_size()
    }
}
