//! The store's errors.

use core::fmt;

use morgana_signatures::{BlockError, BlockErrorKind, KvError, KvErrorKind};

/// Why a store operation failed. `E` is the block device's error.
#[derive(Debug)]
pub enum Error<E> {
    /// The device failed.
    Device(E),
    /// The device holds no store (zeros where the superblock goes).
    Blank,
    /// The device holds something else.
    NotAStore,
    /// The store was written in another format version.
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The superblock is damaged.
    CorruptSuperblock {
        /// What is wrong with it.
        why: &'static str,
    },
    /// The store was formatted for another sector size.
    SectorSize {
        /// The store's.
        store: u32,
        /// The device's.
        device: u32,
    },
    /// The device is smaller than the store on it.
    DeviceTooSmall {
        /// Bytes the store occupies.
        store: u64,
        /// Bytes the device has.
        device: u64,
    },
    /// The device cannot be formatted with these options.
    Geometry {
        /// Why not.
        why: &'static str,
        /// The device's capacity in bytes.
        capacity: u64,
    },
    /// A stored record failed its checks: the store refuses to return it.
    Corrupt {
        /// The segment.
        segment: u32,
        /// The record's offset in it.
        offset: u32,
        /// What is wrong.
        why: &'static str,
    },
    /// Keys must not be empty.
    KeyEmpty,
    /// The key is longer than the store takes.
    KeyTooLong {
        /// Its length.
        len: usize,
        /// The store's limit.
        max: usize,
    },
    /// The value is longer than the store takes.
    ValueTooLarge {
        /// Its length.
        len: usize,
        /// The store's limit.
        max: usize,
    },
    /// The store is full.
    NoSpace {
        /// Bytes of live records.
        live: u64,
        /// The most it takes.
        limit: u64,
    },
    /// The store (or its device) is read-only.
    ReadOnly,
    /// An earlier device write failed; the store takes no more changes until it is
    /// mounted again.
    Failed,
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Device(e) => write!(f, "device error: {e}"),
            Error::Blank => f.write_str("the device holds no store (it is blank)"),
            Error::NotAStore => {
                f.write_str("the device holds something other than a Morgana store: refusing to use it")
            }
            Error::UnsupportedVersion { found } => write!(
                f,
                "the store is in format version {found}; this build reads version {}",
                crate::format::FORMAT_VERSION
            ),
            Error::CorruptSuperblock { why } => {
                write!(f, "the store's superblock is corrupt ({why}): refusing to mount")
            }
            Error::SectorSize { store, device } => write!(
                f,
                "the store was formatted for {store}-byte sectors, the device has {device}-byte sectors"
            ),
            Error::DeviceTooSmall { store, device } => write!(
                f,
                "the store occupies {store} bytes but the device has only {device}"
            ),
            Error::Geometry { why, capacity } => {
                write!(f, "cannot format a {capacity}-byte device: {why}")
            }
            Error::Corrupt {
                segment,
                offset,
                why,
            } => write!(
                f,
                "corrupt record at segment {segment} offset {offset}: {why}"
            ),
            Error::KeyEmpty => f.write_str("empty keys are not allowed"),
            Error::KeyTooLong { len, max } => {
                write!(f, "key of {len} bytes is longer than the store's limit of {max}")
            }
            Error::ValueTooLarge { len, max } => write!(
                f,
                "value of {len} bytes is larger than the store's limit of {max}"
            ),
            Error::NoSpace { live, limit } => write!(
                f,
                "no space left on the store ({live} of {limit} bytes of live data)"
            ),
            Error::ReadOnly => f.write_str("the store is read-only"),
            Error::Failed => f.write_str(
                "an earlier device write failed; the store takes no changes until it is mounted again",
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

impl<E: BlockError> KvError for Error<E> {
    fn kind(&self) -> KvErrorKind {
        match self {
            Error::Device(e) if e.kind() == BlockErrorKind::ReadOnly => KvErrorKind::ReadOnly,
            Error::Device(_) | Error::Failed => KvErrorKind::Io,
            Error::KeyEmpty | Error::KeyTooLong { .. } | Error::ValueTooLarge { .. } => {
                KvErrorKind::TooLarge
            }
            Error::NoSpace { .. } => KvErrorKind::NoSpace,
            Error::ReadOnly => KvErrorKind::ReadOnly,
            Error::Corrupt { .. }
            | Error::CorruptSuperblock { .. }
            | Error::NotAStore
            | Error::UnsupportedVersion { .. } => KvErrorKind::Corrupt,
            Error::Blank
            | Error::SectorSize { .. }
            | Error::DeviceTooSmall { .. }
            | Error::Geometry { .. } => KvErrorKind::Other,
        }
    }
}
