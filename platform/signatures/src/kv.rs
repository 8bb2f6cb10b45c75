//! `KV`: a read-write key-value store kept on a block device (MirageOS's `KV` with
//! writes), and [`KvRead`], its read side, which a read-only image implements alone.
//!
//! Decisions recorded here:
//! - Separate from [`KvRo`](crate::KvRo): that one is synchronous and lends
//!   `&'static`-like bytes because its content is compiled in. These stores do I/O, so
//!   every operation that may touch the device is `async`, and a value is lent only
//!   until the next call ([`Value`] borrows the store mutably).
//! - Keys and values are bytes (a Redis key is binary). Each key carries a 64-bit
//!   `meta` word chosen by the writer (the RESP server keeps an expiry time in it) that
//!   the store keeps next to the key, so [`KvRead::meta`] and [`KvRead::scan`] answer
//!   without reading values.
//! - Methods take `&mut self`: a store has one user at a time. Code that shares one
//!   (the connections of a server) serialises access itself.
//! - **Durability.** [`Kv::put`], [`Kv::delete`] and [`Kv::clear`] take effect at once
//!   for readers; they become durable — present after a crash, whole — when a later
//!   [`Kv::sync`] completes. After a crash every change made before the last completed
//!   `sync` is there, and every key holds a value that was written to it (never a torn
//!   or invented one); changes made after it may each be there or not. Dropping an
//!   unfinished operation's future leaves the store consistent; the operation may or
//!   may not have taken effect.
//! - A full device, an oversized key or value, a corrupt record and a refused write each
//!   have a [`KvErrorKind`], so a server can answer with a clear error and carry on.

use core::fmt;

/// What kind of store failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvErrorKind {
    /// The key or the value is longer than the store takes
    /// ([`KvRead::max_key_len`], [`KvRead::max_value_len`]), or the key is empty.
    TooLarge,
    /// The device is full: delete something first.
    NoSpace,
    /// The store is read-only (an image, a read-only device).
    ReadOnly,
    /// Stored data failed its checksum or does not parse: the store refuses to return
    /// it (or to mount).
    Corrupt,
    /// The device failed.
    Io,
    /// Anything else.
    Other,
}

/// An error of a key-value store.
pub trait KvError: fmt::Debug + fmt::Display {
    /// The portable classification of this error.
    fn kind(&self) -> KvErrorKind;
}

/// A value lent by a store until its next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value<'a> {
    /// The bytes.
    pub data: &'a [u8],
    /// The key's `meta` word, as last written.
    pub meta: u64,
}

/// The read side of a key-value store.
pub trait KvRead {
    /// Errors of this store.
    type Error: KvError;

    /// The value under `key`, or `None`.
    async fn get(&mut self, key: &[u8]) -> Result<Option<Value<'_>>, Self::Error>;

    /// The `meta` word of `key` if it exists, without reading its value.
    async fn meta(&mut self, key: &[u8]) -> Result<Option<u64>, Self::Error>;

    /// Calls `f(key, meta)` for every key that starts with `prefix`, in byte order,
    /// beginning after `after` when it is given, until `f` returns `false`.
    async fn scan<F: FnMut(&[u8], u64) -> bool>(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        f: F,
    ) -> Result<(), Self::Error>;

    /// Number of keys.
    fn len(&self) -> u64;

    /// Whether the store holds no key.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The longest key the store takes (keys are at least one byte).
    fn max_key_len(&self) -> usize;

    /// The longest value the store takes.
    fn max_value_len(&self) -> usize;
}

/// `KV`: a read-write key-value store. See the module documentation for durability.
pub trait Kv: KvRead {
    /// Stores `value` and `meta` under `key`, replacing what was there.
    async fn put(&mut self, key: &[u8], value: &[u8], meta: u64) -> Result<(), Self::Error>;

    /// Removes `key`; returns whether it existed.
    async fn delete(&mut self, key: &[u8]) -> Result<bool, Self::Error>;

    /// Removes every key.
    async fn clear(&mut self) -> Result<(), Self::Error>;

    /// Makes every change made so far durable.
    async fn sync(&mut self) -> Result<(), Self::Error>;
}
