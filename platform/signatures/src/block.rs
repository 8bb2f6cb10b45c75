//! `BLOCK`: a block device (a disk image file, a host block device, virtio-blk, Xen
//! blkfront).
//!
//! Decisions recorded here:
//! - Addresses are sectors of [`Block::sector_size`] bytes; a request covers whole
//!   sectors (`buf.len()` a nonzero multiple of the sector size) inside the device. A
//!   request that is not is refused before any I/O, with [`BlockErrorKind::Misaligned`]
//!   or [`BlockErrorKind::OutOfRange`] ([`check_request`] does the arithmetic for every
//!   implementation).
//! - Methods take `&self`, so several requests can be in flight at once (several futures
//!   joined, or several tasks): a driver that can queue requests (virtio-blk) does, and
//!   one that cannot serves them one after the other. In-flight requests complete in any
//!   order; nothing orders two writes except a [`Block::flush`] between them.
//! - **Durability.** A completed [`Block::write`] is visible to later reads, but may sit
//!   in a volatile cache (the host's page cache, a disk's write cache). [`Block::flush`]
//!   completes once every write that *completed before `flush` was called* is on stable
//!   storage, so it survives a crash or power loss. A device without a volatile cache
//!   completes `flush` at once.
//! - **No atomicity.** After a crash, a write that was not followed by a completed flush
//!   may be absent, present, or partly present: any subset of its sectors, and a sector
//!   being written may hold a mixture of old and new bytes (a torn write). Data that was
//!   flushed is never changed by a crash unless it was being overwritten at the time.
//!   Whoever needs atomic updates (the key-value store) builds them on top: checksums,
//!   and never overwriting flushed data in place.
//! - Read-only devices (a disk attached read-only, a file without write permission)
//!   refuse [`Block::write`], [`Block::flush`] and [`Block::discard`] with
//!   [`BlockErrorKind::ReadOnly`].
//! - Dropping an unfinished request's future abandons the caller's interest, not the
//!   request: a write may still reach the device. Implementations must stay memory-safe
//!   (a driver copies through its own DMA buffers rather than lending the caller's).

use core::fmt;

/// What kind of block-device failure happened, so generic code (the key-value store)
/// can react without knowing the implementation's own error type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockErrorKind {
    /// The device is read-only: writes, flushes and discards are refused.
    ReadOnly,
    /// The request reaches past the end of the device.
    OutOfRange,
    /// The buffer is empty or not a whole number of sectors.
    Misaligned,
    /// The device reported a failure for this request (a medium error, the host's
    /// `EIO`, a virtio `IOERR` status).
    Io,
    /// The device does not do this (e.g. discard), or has gone away.
    Unsupported,
    /// Anything else.
    Other,
}

impl fmt::Display for BlockErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockErrorKind::ReadOnly => "the device is read-only",
            BlockErrorKind::OutOfRange => "the request reaches past the end of the device",
            BlockErrorKind::Misaligned => "the request is not a whole number of sectors",
            BlockErrorKind::Io => "I/O error",
            BlockErrorKind::Unsupported => "not supported by the device",
            BlockErrorKind::Other => "block device error",
        })
    }
}

/// An error of a block device.
pub trait BlockError: fmt::Debug + fmt::Display {
    /// The portable classification of this error.
    fn kind(&self) -> BlockErrorKind;
}

/// `BLOCK`: a device of [`Block::sectors`] sectors of [`Block::sector_size`] bytes.
pub trait Block {
    /// Errors of this device.
    type Error: BlockError;

    /// Bytes per sector: a power of two, at least 512 (512 or 4096 in practice).
    fn sector_size(&self) -> usize;

    /// Number of sectors.
    fn sectors(&self) -> u64;

    /// Capacity in bytes.
    fn capacity(&self) -> u64 {
        self.sectors() * self.sector_size() as u64
    }

    /// Whether writes are refused ([`BlockErrorKind::ReadOnly`]).
    fn is_read_only(&self) -> bool;

    /// Reads `buf.len() / sector_size` sectors starting at `sector` into `buf`.
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error>;

    /// Writes `buf` to the sectors starting at `sector`. Completion means the device
    /// took the data, not that it is durable: see [`Block::flush`].
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Self::Error>;

    /// Makes every write that completed before this call durable.
    async fn flush(&self) -> Result<(), Self::Error>;

    /// Tells the device that `count` sectors from `sector` hold nothing of value (TRIM).
    /// A hint: their contents are undefined afterwards, and a device that cannot discard
    /// does nothing (the default).
    async fn discard(&self, sector: u64, count: u64) -> Result<(), Self::Error> {
        let _ = (sector, count);
        Ok(())
    }
}

impl<B: Block + ?Sized> Block for &B {
    type Error = B::Error;
    fn sector_size(&self) -> usize {
        (**self).sector_size()
    }
    fn sectors(&self) -> u64 {
        (**self).sectors()
    }
    fn is_read_only(&self) -> bool {
        (**self).is_read_only()
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read(sector, buf).await
    }
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Self::Error> {
        (**self).write(sector, buf).await
    }
    async fn flush(&self) -> Result<(), Self::Error> {
        (**self).flush().await
    }
    async fn discard(&self, sector: u64, count: u64) -> Result<(), Self::Error> {
        (**self).discard(sector, count).await
    }
}

/// Checks a request of `len` bytes at `sector` against a device of `sectors` sectors of
/// `sector_size` bytes, and returns how many sectors it covers.
///
/// Every implementation calls this first, so every device refuses the same requests the
/// same way.
pub fn check_request(
    sector_size: usize,
    sectors: u64,
    sector: u64,
    len: usize,
) -> Result<u64, BlockErrorKind> {
    if len == 0 || sector_size == 0 || !len.is_multiple_of(sector_size) {
        return Err(BlockErrorKind::Misaligned);
    }
    let count = (len / sector_size) as u64;
    match sector.checked_add(count) {
        Some(end) if end <= sectors => Ok(count),
        _ => Err(BlockErrorKind::OutOfRange),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_the_same_way_everywhere() {
        assert_eq!(check_request(512, 8, 0, 512), Ok(1));
        assert_eq!(check_request(512, 8, 6, 1024), Ok(2));
        assert_eq!(
            check_request(512, 8, 7, 1024),
            Err(BlockErrorKind::OutOfRange)
        );
        assert_eq!(
            check_request(512, 8, u64::MAX, 512),
            Err(BlockErrorKind::OutOfRange)
        );
        assert_eq!(check_request(512, 8, 0, 0), Err(BlockErrorKind::Misaligned));
        assert_eq!(
            check_request(4096, 8, 0, 512),
            Err(BlockErrorKind::Misaligned)
        );
    }
}
