//! Read-only images: a sorted table of keys and values, prepared on a host with
//! [`build`] (or the `mkimage` example) and mounted by an appliance as [`Image`], a
//! [`KvRead`] over any [`Block`] device.
//!
//! Unlike [`Store`](crate::Store), mounting an image reads no value and keeps only a
//! sparse index in memory: one key per [`BuildOptions::index_every`] bytes of entries
//! (8 KiB by default), so a 1 GiB image costs about 130 000 index keys. A lookup
//! binary-searches the sparse index and reads forward from the entry it names, at most
//! `index_every` bytes of entries plus the one it wants.
//!
//! Format (version 1, little-endian; every part starts on a 4096-byte boundary, so the
//! image works on 512- and 4096-byte sectors alike):
//!
//! ```text
//! 0       header, 64 bytes: magic "MORGKVRO", version u32 = 1, header length u32 = 64,
//!         entry count u64, entries offset u64 (4096), entries length u64,
//!         index offset u64, index length u64, index CRC-32 u32, header CRC-32 u32
//!         (over bytes 0..60)
//! 4096    entries, sorted by key, each: CRC-32 u32 (over the rest of the entry, seeded
//!         with the entry's offset), key length u16, zero u16, value length u32,
//!         meta u64, key, value
//! ...     sparse index: per indexed entry: key length u16, entry offset u64, key
//! ```

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use morgana_signatures::{Block, BlockError, KvError, KvErrorKind, KvRead, Value};

use crate::format::{le32, le64};

/// The image header's magic bytes.
pub const IMAGE_MAGIC: [u8; 8] = *b"MORGKVRO";
/// The image format version.
pub const IMAGE_VERSION: u32 = 1;
/// Every part of an image starts on a multiple of this.
pub const IMAGE_ALIGN: u64 = 4096;
const HEADER_LEN: usize = 64;
const ENTRY_HEADER_LEN: usize = 20;
/// How much is read at once when walking entries.
const READ_CHUNK: usize = 16 * 1024;

/// How [`build`] lays out an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildOptions {
    /// One key of the sparse index per this many bytes of entries.
    pub index_every: u64,
}

impl Default for BuildOptions {
    fn default() -> BuildOptions {
        BuildOptions { index_every: 8192 }
    }
}

/// Why an image could not be built or mounted, or a lookup failed.
#[derive(Debug)]
pub enum ImageError<E> {
    /// The device failed.
    Device(E),
    /// The device does not start with an image header.
    NotAnImage,
    /// Another image format version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The header, index or an entry failed its checks.
    Corrupt {
        /// Byte offset of the damaged part.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
    /// [`build`]: a key given twice.
    DuplicateKey,
    /// [`build`]: an empty key, or one longer than 65 535 bytes.
    BadKey,
    /// [`build`]: a value of 4 GiB or more.
    ValueTooLarge,
    /// Images take no changes.
    ReadOnly,
}

impl<E: fmt::Display> fmt::Display for ImageError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Device(e) => write!(f, "device error: {e}"),
            ImageError::NotAnImage => {
                f.write_str("the device does not hold a Morgana read-only image")
            }
            ImageError::UnsupportedVersion { found } => write!(
                f,
                "the image is in format version {found}; this build reads version {IMAGE_VERSION}"
            ),
            ImageError::Corrupt { offset, why } => {
                write!(f, "corrupt image at byte {offset}: {why}")
            }
            ImageError::DuplicateKey => f.write_str("a key was given twice"),
            ImageError::BadKey => f.write_str("keys must be 1 to 65535 bytes long"),
            ImageError::ValueTooLarge => f.write_str("values must be shorter than 4 GiB"),
            ImageError::ReadOnly => f.write_str("the image is read-only"),
        }
    }
}

impl<E: BlockError> KvError for ImageError<E> {
    fn kind(&self) -> KvErrorKind {
        match self {
            ImageError::Device(_) => KvErrorKind::Io,
            ImageError::NotAnImage
            | ImageError::UnsupportedVersion { .. }
            | ImageError::Corrupt { .. } => KvErrorKind::Corrupt,
            ImageError::DuplicateKey | ImageError::BadKey | ImageError::ValueTooLarge => {
                KvErrorKind::TooLarge
            }
            ImageError::ReadOnly => KvErrorKind::ReadOnly,
        }
    }
}

fn entry_crc(offset: u64, rest: &[u8]) -> u32 {
    let mut h = crate::checksum::Hasher::new();
    h.update(&offset.to_le_bytes());
    h.update(rest);
    h.finalize()
}

/// Builds an image of `entries` (key, value, meta), in any order. The result is a whole
/// number of 4096-byte blocks: write it to a file or a disk and attach it.
pub fn build<K, V, I>(
    entries: I,
    options: BuildOptions,
) -> Result<Vec<u8>, ImageError<core::convert::Infallible>>
where
    K: AsRef<[u8]>,
    V: AsRef<[u8]>,
    I: IntoIterator<Item = (K, V, u64)>,
{
    let mut sorted: BTreeMap<Vec<u8>, (V, u64)> = BTreeMap::new();
    for (k, v, meta) in entries {
        let k = k.as_ref();
        if k.is_empty() || k.len() > usize::from(u16::MAX) {
            return Err(ImageError::BadKey);
        }
        if v.as_ref().len() > u32::MAX as usize {
            return Err(ImageError::ValueTooLarge);
        }
        if sorted.insert(k.to_vec(), (v, meta)).is_some() {
            return Err(ImageError::DuplicateKey);
        }
    }
    let every = options.index_every.max(1);
    let mut out = vec![0u8; IMAGE_ALIGN as usize];
    let mut index = Vec::new();
    let mut next_indexed = IMAGE_ALIGN;
    for (key, (value, meta)) in &sorted {
        let offset = out.len() as u64;
        if offset >= next_indexed {
            index.extend_from_slice(&(key.len() as u16).to_le_bytes());
            index.extend_from_slice(&offset.to_le_bytes());
            index.extend_from_slice(key);
            next_indexed = offset + every;
        }
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&(key.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 2]);
        out.extend_from_slice(&(value.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&meta.to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(value.as_ref());
        let crc = entry_crc(offset, &out[start + 4..]);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    }
    let entries_len = out.len() as u64 - IMAGE_ALIGN;
    out.resize((out.len() as u64).next_multiple_of(IMAGE_ALIGN) as usize, 0);
    let index_start = out.len() as u64;
    out.extend_from_slice(&index);
    out.resize((out.len() as u64).next_multiple_of(IMAGE_ALIGN) as usize, 0);
    let h = &mut out[..HEADER_LEN];
    h[0..8].copy_from_slice(&IMAGE_MAGIC);
    h[8..12].copy_from_slice(&IMAGE_VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    h[16..24].copy_from_slice(&(sorted.len() as u64).to_le_bytes());
    h[24..32].copy_from_slice(&IMAGE_ALIGN.to_le_bytes());
    h[32..40].copy_from_slice(&entries_len.to_le_bytes());
    h[40..48].copy_from_slice(&index_start.to_le_bytes());
    h[48..56].copy_from_slice(&(index.len() as u64).to_le_bytes());
    h[56..60].copy_from_slice(&crate::checksum::hash(&index).to_le_bytes());
    let crc = crate::checksum::hash(&h[..60]);
    h[60..64].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A read-only image mounted from a [`Block`] device. Implements [`KvRead`].
pub struct Image<B: Block> {
    dev: B,
    entries: u64,
    entries_start: u64,
    entries_end: u64,
    /// Sparse index: (first key of a run, its entry offset), sorted.
    index: Vec<(Box<[u8]>, u64)>,
    max_key: usize,
    max_value: usize,
    win: Vec<u8>,
    win_start: u64,
    value: Vec<u8>,
}

impl<B: Block> fmt::Debug for Image<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("entries", &self.entries)
            .field("index_keys", &self.index.len())
            .finish_non_exhaustive()
    }
}

/// One entry as read.
struct Entry {
    key_range: (usize, usize),
    value_range: (usize, usize),
    meta: u64,
    next: u64,
}

impl<B: Block> Image<B> {
    /// Mounts the image on `dev`: checks the header and reads the sparse index.
    pub async fn open(dev: B) -> Result<Image<B>, ImageError<B::Error>> {
        let mut img = Image {
            dev,
            entries: 0,
            entries_start: 0,
            entries_end: 0,
            index: Vec::new(),
            max_key: 0,
            max_value: 0,
            win: Vec::new(),
            win_start: 0,
            value: Vec::new(),
        };
        let h = img.read_at(0, HEADER_LEN).await?.to_vec();
        if h[0..8] != IMAGE_MAGIC {
            return Err(ImageError::NotAnImage);
        }
        let version = le32(&h, 8);
        if version != IMAGE_VERSION {
            return Err(ImageError::UnsupportedVersion { found: version });
        }
        let corrupt = |why| ImageError::Corrupt { offset: 0, why };
        if le32(&h, 60) != crate::checksum::hash(&h[..60]) {
            return Err(corrupt("header checksum mismatch"));
        }
        let capacity = img.dev.capacity();
        let (entries, start, len) = (le64(&h, 16), le64(&h, 24), le64(&h, 32));
        let (index_start, index_len) = (le64(&h, 40), le64(&h, 48));
        if le32(&h, 12) as usize != HEADER_LEN
            || start != IMAGE_ALIGN
            || start.checked_add(len).is_none_or(|e| e > index_start)
            || index_start
                .checked_add(index_len)
                .is_none_or(|e| e > capacity)
        {
            return Err(corrupt("the header's extents do not fit the device"));
        }
        img.entries = entries;
        img.entries_start = start;
        img.entries_end = start + len;
        let index = img.read_at(index_start, index_len as usize).await?.to_vec();
        if crate::checksum::hash(&index) != le32(&h, 56) {
            return Err(ImageError::Corrupt {
                offset: index_start,
                why: "index checksum mismatch",
            });
        }
        let mut at = 0;
        while at < index.len() {
            let bad = ImageError::Corrupt {
                offset: index_start + at as u64,
                why: "index entry out of bounds",
            };
            if at + 10 > index.len() {
                return Err(bad);
            }
            let klen = usize::from(u16::from_le_bytes([index[at], index[at + 1]]));
            let off = le64(&index, at + 2);
            let Some(key) = index.get(at + 10..at + 10 + klen) else {
                return Err(bad);
            };
            if off < img.entries_start || off >= img.entries_end {
                return Err(bad);
            }
            img.index.push((key.into(), off));
            at += 10 + klen;
        }
        img.max_key = usize::from(u16::MAX);
        img.max_value = u32::MAX as usize;
        log::info!(
            "image: mounted: {} keys, {} KiB of entries, {} index keys",
            img.entries,
            len / 1024,
            img.index.len()
        );
        Ok(img)
    }

    /// Number of keys.
    pub fn len(&self) -> u64 {
        self.entries
    }

    /// Whether the image holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Keys kept in memory (the sparse index).
    pub fn index_keys(&self) -> usize {
        self.index.len()
    }

    /// The device.
    pub fn device(&self) -> &B {
        &self.dev
    }

    /// Makes `len` bytes at byte `at` available in the window; returns their place.
    async fn window(&mut self, at: u64, len: usize) -> Result<usize, ImageError<B::Error>> {
        let have = self.win_start + self.win.len() as u64;
        if at >= self.win_start && at + len as u64 <= have {
            return Ok((at - self.win_start) as usize);
        }
        let sector = self.dev.sector_size() as u64;
        let start = at - at % sector;
        let want = (at + len as u64 - start).max(READ_CHUNK as u64);
        let end = (start + want)
            .next_multiple_of(sector)
            .min(self.dev.capacity());
        if end < at + len as u64 {
            return Err(ImageError::Corrupt {
                offset: at,
                why: "reaches past the end of the device",
            });
        }
        self.win.resize((end - start) as usize, 0);
        self.win_start = start;
        if let Err(e) = self.dev.read(start / sector, &mut self.win).await {
            self.win.clear();
            return Err(ImageError::Device(e));
        }
        Ok((at - start) as usize)
    }

    async fn read_at(&mut self, at: u64, len: usize) -> Result<&[u8], ImageError<B::Error>> {
        let i = self.window(at, len).await?;
        Ok(&self.win[i..i + len])
    }

    /// Reads the entry at `offset` whole into the window and checks it.
    async fn entry(&mut self, offset: u64) -> Result<Entry, ImageError<B::Error>> {
        let corrupt = |why| ImageError::Corrupt { offset, why };
        if offset + ENTRY_HEADER_LEN as u64 > self.entries_end {
            return Err(corrupt("entry header past the end of the entries"));
        }
        let h = self.read_at(offset, ENTRY_HEADER_LEN).await?;
        let klen = usize::from(u16::from_le_bytes([h[4], h[5]]));
        let vlen = le32(h, 8) as usize;
        let meta = le64(h, 12);
        if klen == 0 || h[6] != 0 || h[7] != 0 {
            return Err(corrupt("not an entry header"));
        }
        let total = ENTRY_HEADER_LEN + klen + vlen;
        if offset + total as u64 > self.entries_end {
            return Err(corrupt("entry past the end of the entries"));
        }
        let i = self.window(offset, total).await?;
        let e = &self.win[i..i + total];
        if le32(e, 0) != entry_crc(offset, &e[4..]) {
            return Err(corrupt("entry checksum mismatch"));
        }
        let k = i + ENTRY_HEADER_LEN;
        Ok(Entry {
            key_range: (k, k + klen),
            value_range: (k + klen, k + klen + vlen),
            meta,
            next: offset + total as u64,
        })
    }

    /// Where to start reading for keys `>= key`: the last indexed entry not above it.
    fn start_for(&self, key: &[u8]) -> u64 {
        let i = self.index.partition_point(|(k, _)| &**k <= key);
        if i == 0 {
            self.entries_start
        } else {
            self.index[i - 1].1
        }
    }

    /// Finds `key`; leaves its entry in the window.
    async fn find(&mut self, key: &[u8]) -> Result<Option<Entry>, ImageError<B::Error>> {
        let mut at = self.start_for(key);
        while at < self.entries_end {
            let e = self.entry(at).await?;
            let k = &self.win[e.key_range.0..e.key_range.1];
            match k.cmp(key) {
                core::cmp::Ordering::Less => at = e.next,
                core::cmp::Ordering::Equal => return Ok(Some(e)),
                core::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The value under `key`, lent until the next call.
    pub async fn get(&mut self, key: &[u8]) -> Result<Option<Value<'_>>, ImageError<B::Error>> {
        let Some(e) = self.find(key).await? else {
            return Ok(None);
        };
        // Out of the window, which the next read may move.
        self.value.clear();
        self.value
            .extend_from_slice(&self.win[e.value_range.0..e.value_range.1]);
        Ok(Some(Value {
            data: &self.value,
            meta: e.meta,
        }))
    }

    /// The meta word of `key`, if present.
    pub async fn meta(&mut self, key: &[u8]) -> Result<Option<u64>, ImageError<B::Error>> {
        Ok(self.find(key).await?.map(|e| e.meta))
    }

    /// Calls `f(key, meta)` for keys starting with `prefix`, in order, after `after`.
    pub async fn scan<F: FnMut(&[u8], u64) -> bool>(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        mut f: F,
    ) -> Result<(), ImageError<B::Error>> {
        let from: &[u8] = match after {
            Some(a) if a >= prefix => a,
            _ => prefix,
        };
        let mut at = self.start_for(from);
        while at < self.entries_end {
            let e = self.entry(at).await?;
            at = e.next;
            let k = &self.win[e.key_range.0..e.key_range.1];
            if k < prefix || after.is_some_and(|a| k <= a) {
                continue;
            }
            if !k.starts_with(prefix) || !f(k, e.meta) {
                break;
            }
        }
        Ok(())
    }
}

impl<B: Block> KvRead for Image<B> {
    type Error = ImageError<B::Error>;

    async fn get(&mut self, key: &[u8]) -> Result<Option<Value<'_>>, Self::Error> {
        Image::get(self, key).await
    }

    async fn meta(&mut self, key: &[u8]) -> Result<Option<u64>, Self::Error> {
        Image::meta(self, key).await
    }

    async fn scan<F: FnMut(&[u8], u64) -> bool>(
        &mut self,
        prefix: &[u8],
        after: Option<&[u8]>,
        f: F,
    ) -> Result<(), Self::Error> {
        Image::scan(self, prefix, after, f).await
    }

    fn len(&self) -> u64 {
        self.entries
    }

    fn max_key_len(&self) -> usize {
        self.max_key
    }

    fn max_value_len(&self) -> usize {
        self.max_value
    }
}
