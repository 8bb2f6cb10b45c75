//! A store that starts with prepared data: [`seed`] copies every key of a read-only
//! image (any [`KvRead`], e.g. an [`Image`](crate::Image) on a read-only disk) into a
//! store that holds no key, then makes it durable. What the generated code of a
//! `KvSeed` device calls: the image's data is there at the first start, and whatever
//! clients change afterwards stays changed.

use alloc::vec::Vec;
use core::fmt;
use morgana_signatures::{Kv, KvError, KvErrorKind, KvRead};

/// Keys read from the image per scan (the memory bound of a copy: this many keys).
const BATCH: usize = 256;
/// Bytes copied between two syncs of the store.
const SYNC_EVERY: usize = 4 << 20;

/// Why seeding failed: the store's error or the image's.
#[derive(Debug)]
pub enum SeedError<S, I> {
    /// The store refused a write or its sync.
    Store(S),
    /// The image could not be read.
    Image(I),
}

impl<S: fmt::Display, I: fmt::Display> fmt::Display for SeedError<S, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedError::Store(e) => write!(f, "seeding the store: {e}"),
            SeedError::Image(e) => write!(f, "reading the seed image: {e}"),
        }
    }
}

impl<S: KvError, I: KvError> KvError for SeedError<S, I> {
    fn kind(&self) -> KvErrorKind {
        match self {
            SeedError::Store(e) => e.kind(),
            SeedError::Image(e) => e.kind(),
        }
    }
}

/// Copies every key of `image` (value and `meta`) into `store` when `store` holds no
/// key, and syncs it; a store that holds keys is returned as it is. Logs how many keys
/// were copied.
///
/// A crash during the copy leaves some of the keys in the store, which then is not
/// empty: the next start does not copy again. The copy is durable once this returns.
pub async fn seed<K: Kv, R: KvRead>(
    mut store: K,
    mut image: R,
) -> Result<K, SeedError<K::Error, R::Error>> {
    if !store.is_empty() {
        log::info!(
            "seed: the store holds {} keys; the image is not copied",
            store.len()
        );
        return Ok(store);
    }
    let mut copied = 0u64;
    let mut unsynced = 0usize;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(BATCH);
        image
            .scan(b"", after.as_deref(), |k, _| {
                keys.push(k.to_vec());
                keys.len() < BATCH
            })
            .await
            .map_err(SeedError::Image)?;
        for key in &keys {
            // Present: the scan just listed it (an image does not change).
            let Some(v) = image.get(key).await.map_err(SeedError::Image)? else {
                continue;
            };
            let meta = v.meta;
            unsynced += key.len() + v.data.len();
            store
                .put(key, v.data, meta)
                .await
                .map_err(SeedError::Store)?;
            copied += 1;
            if unsynced >= SYNC_EVERY {
                store.sync().await.map_err(SeedError::Store)?;
                unsynced = 0;
            }
        }
        if keys.len() < BATCH {
            break;
        }
        after = keys.pop();
    }
    store.sync().await.map_err(SeedError::Store)?;
    log::info!("seed: copied {copied} keys from the image into the empty store");
    Ok(store)
}
