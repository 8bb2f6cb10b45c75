//! [`MemBlock`]: a block device in memory (a RAM disk, and the device of host tests).

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use morgana_signatures::{Block, BlockError, BlockErrorKind, check_request};

/// Why a [`MemBlock`] refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemError(pub BlockErrorKind);

impl fmt::Display for MemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory device: {}", self.0)
    }
}

impl BlockError for MemError {
    fn kind(&self) -> BlockErrorKind {
        self.0
    }
}

/// A block device in memory. Every write is durable at once (there is nothing to lose),
/// so `flush` does nothing.
pub struct MemBlock {
    sector_size: usize,
    data: RefCell<Vec<u8>>,
    read_only: bool,
}

impl fmt::Debug for MemBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemBlock")
            .field("sector_size", &self.sector_size)
            .field("bytes", &self.data.borrow().len())
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl MemBlock {
    /// A zeroed device of `bytes` (rounded down to whole sectors).
    pub fn new(sector_size: usize, bytes: usize) -> MemBlock {
        MemBlock::from_bytes(
            sector_size,
            vec![0; bytes / sector_size * sector_size],
            false,
        )
    }

    /// A device holding `data` (its length rounded down to whole sectors).
    pub fn from_bytes(sector_size: usize, mut data: Vec<u8>, read_only: bool) -> MemBlock {
        assert!(sector_size >= 512 && sector_size.is_power_of_two());
        data.truncate(data.len() / sector_size * sector_size);
        MemBlock {
            sector_size,
            data: RefCell::new(data),
            read_only,
        }
    }

    /// The device's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.data.into_inner()
    }

    /// A copy of the device's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.data.borrow().clone()
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, MemError> {
        let sectors = (self.data.borrow().len() / self.sector_size) as u64;
        check_request(self.sector_size, sectors, sector, len).map_err(MemError)?;
        let start = sector as usize * self.sector_size;
        Ok(start..start + len)
    }
}

impl Block for MemBlock {
    type Error = MemError;

    fn sector_size(&self) -> usize {
        self.sector_size
    }

    fn sectors(&self) -> u64 {
        (self.data.borrow().len() / self.sector_size) as u64
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let r = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.data.borrow()[r]);
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), MemError> {
        if self.read_only {
            return Err(MemError(BlockErrorKind::ReadOnly));
        }
        let r = self.range(sector, buf.len())?;
        self.data.borrow_mut()[r].copy_from_slice(buf);
        Ok(())
    }

    async fn flush(&self) -> Result<(), MemError> {
        if self.read_only {
            return Err(MemError(BlockErrorKind::ReadOnly));
        }
        Ok(())
    }
}
