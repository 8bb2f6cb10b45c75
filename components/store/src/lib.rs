//! Morgana's durable key-value store, over any [`Block`] device, and a read-only image
//! format for prepared data.
//!
//! ```ignore
//! let store = Store::open_or_format(disk, FormatOptions::new(id), Config::default()).await?;
//! store.put(b"user:1", b"ada", 0).await?;
//! store.sync().await?;                       // durable from here on
//! assert_eq!(store.get(b"user:1").await?.unwrap().data, b"ada");
//! ```
//!
//! [`Store`] implements the `KV` signature ([`Kv`], [`KvRead`]); [`Image`] implements
//! [`KvRead`] for an image made by [`image::build`].
//!
//! # Design: a log in segments, an index in memory
//!
//! The device is a superblock and a row of equal **segments**. Every change is a
//! **record** appended to the log — put (key, value, meta), delete (tombstone), clear —
//! each with a CRC-32 seeded with the store's id, the segment's sequence number and the
//! record's offset, so a record is valid only where it was written. The log lives in the
//! segments in use, ordered by sequence number; the **head** is the one being appended
//! to. An ordered in-memory index (a `BTreeMap`) maps each key to where its current
//! record is; the values stay on the device, with a bounded cache of small values in
//! memory. The format is documented and versioned in `docs/store-format.md`.
//!
//! **Commit.** Appends go to an in-memory tail; [`Store::sync`] pads the tail to the end
//! of its sector, writes it and flushes the device. The next record starts in a fresh
//! sector, so no sector that holds flushed records is ever written again while its
//! segment lives: a crash can tear only unflushed data. (Groups of changes share one
//! flush: the RESP server calls `sync` once for everything its connections wrote in one
//! turn of the event loop.)
//!
//! **Recovery.** Mounting reads every segment header and replays the segments in use,
//! oldest first, each up to its first record that does not check out — a torn or never
//! written tail, or stale bytes of an earlier use of the segment (their checksums carry
//! another sequence number). The new head is always a fresh segment, so bytes after a
//! torn tail are never mistaken for new records later. Everything that was synced is
//! there; nothing torn or invented can be.
//!
//! **Compaction** is FIFO: when fewer than two segments are free, or the log occupies
//! more than [`Config::max_space_percent`] of the live data (plus two segments), the
//! oldest segment's live records are copied to the head, made durable, and the segment
//! is freed by zeroing its header (flushed). Because the oldest segment is always the
//! one compacted, its tombstones and clear records can be dropped: nothing older is left
//! for them to shadow. Space used is thus bounded by about `max_space_percent` of the
//! live data; a put that would take the live data beyond 90 % of the segments not held
//! back for compaction gets [`Error::NoSpace`].
//!
//! # Memory
//!
//! - The index: one `BTreeMap` entry per key — the key in its own allocation plus a
//!   32-byte entry (a 16-byte `Box<[u8]>` and a 20-byte location with the meta word,
//!   padded), in B-tree nodes of up to eleven entries. Measured
//!   (`tests/memory.rs`): see `docs/store-format.md` for the bytes per million keys.
//! - The value cache: at most [`Config::cache_entries`] × [`Config::cache_max_value`]
//!   bytes (8 MiB with the defaults), direct-mapped.
//! - The unwritten tail: about [`Config::write_buffer`] (256 KiB) plus one record.
//! - Mounting and compaction read a segment through a 256 KiB window (more for a
//!   record larger than that).
//!
//! # Why not ekv or sequential-storage
//!
//! Both are maintained `no_std` stores, and both are built for NOR flash: an erase-page
//! model, no flush (a flash write is durable when it completes), and sizes fixed for
//! microcontrollers. `ekv` (an LSM tree) takes its page size, page count, key and value
//! limits from compile-time features or environment variables that change its on-disk
//! format, and its mount does not check them; values above 64 KiB need a custom build.
//! `sequential-storage` finds a key by a linear scan of its pages and says cancelling an
//! operation can corrupt the flash. Neither knows a device with a volatile write cache,
//! a 1 MiB value, or a million keys at Redis speed; this crate is written for those.
//!
//! [`Block`]: morgana_signatures::Block
//! [`Kv`]: morgana_signatures::Kv
//! [`KvRead`]: morgana_signatures::KvRead
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(test)]
extern crate std;

mod cache;
mod checksum;
mod error;
pub mod format;
pub mod image;
mod mem;
pub mod seed;
mod store;

pub use error::Error;
pub use image::{Image, ImageError};
pub use mem::{MemBlock, MemError};
pub use seed::{SeedError, seed};
pub use store::{
    Config, DEFAULT_MAX_KEY_LEN, DEFAULT_MAX_VALUE_LEN, FormatOptions, MIN_SEGMENTS, Stats, Store,
};

/// A fresh store id ([`FormatOptions::store_id`]) from the platform's entropy: what the
/// generated code of a `KvStore` device passes to [`Store::open_or_format`] (it is used
/// only if the device is blank and gets formatted).
pub fn store_id<E: morgana_signatures::Entropy>(entropy: &E) -> Result<u64, E::Error> {
    let mut id = [0u8; 8];
    entropy.fill(&mut id)?;
    Ok(u64::from_le_bytes(id))
}
