//! The guest's block device: a host file of whole 512-byte sectors, read and written
//! synchronously (`pread`/`pwrite`), flushed with `fdatasync`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Bytes per sector.
pub const SECTOR: u64 = 512;

/// A disk.
#[derive(Debug)]
pub struct Disk {
    file: File,
    /// Capacity in sectors (a partial last sector is not used).
    pub sectors: u64,
    /// Writes are refused.
    pub read_only: bool,
    /// Requests served.
    pub requests: u64,
}

impl Disk {
    /// Opens `path` (read-write unless `read_only`).
    pub fn open(path: &Path, read_only: bool) -> io::Result<Disk> {
        let file = File::options().read(true).write(!read_only).open(path)?;
        let sectors = file.metadata()?.len() / SECTOR;
        Ok(Disk {
            file,
            sectors,
            read_only,
            requests: 0,
        })
    }

    /// Whether `len` bytes from `sector` lie on the disk.
    pub fn fits(&self, sector: u64, len: u64) -> bool {
        sector
            .checked_add(len / SECTOR)
            .is_some_and(|end| end <= self.sectors)
    }

    /// Reads `buf.len()` bytes from `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> io::Result<()> {
        self.requests += 1;
        self.file.read_exact_at(buf, sector * SECTOR)
    }

    /// Writes `data` at `sector`.
    pub fn write(&mut self, sector: u64, data: &[u8]) -> io::Result<()> {
        self.requests += 1;
        self.file.write_all_at(data, sector * SECTOR)
    }

    /// Makes completed writes durable.
    pub fn flush(&mut self) -> io::Result<()> {
        self.requests += 1;
        self.file.sync_data()
    }
}
