//! The guest's disks: host files of whole 512-byte sectors, read and written
//! synchronously (`pread`/`pwrite`), flushed with `fdatasync`, discarded by punching
//! holes (`fallocate`).

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
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

    /// Makes completed writes durable: returns once `fdatasync` has.
    pub fn flush(&mut self) -> io::Result<()> {
        self.requests += 1;
        self.file.sync_data()
    }

    /// Drops `len` bytes from `sector` (a hole in the file, reading back as zeros). A
    /// file system that cannot punch holes leaves the bytes: discard is a hint.
    pub fn discard(&mut self, sector: u64, len: u64) -> io::Result<()> {
        self.requests += 1;
        if len == 0 {
            return Ok(());
        }
        let (Ok(offset), Ok(len)) = (
            libc::off_t::try_from(sector * SECTOR),
            libc::off_t::try_from(len),
        ) else {
            return Ok(());
        };
        // SAFETY: fallocate on a file descriptor this Disk owns; no memory is passed.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset,
                len,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
            _ => Err(e),
        }
    }
}
