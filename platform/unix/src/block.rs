//! [`FileBlock`]: a disk image file or a host block device as the `BLOCK` signature.
//!
//! - **Opening.** A file that does not exist is created at the configured size
//!   (`fallocate`, so the first writes do not allocate, and the directory is fsynced so
//!   the new file survives a crash); an existing file or block device is used as it is,
//!   never truncated, extended or overwritten (a file left empty by a crash during its
//!   creation is the one exception: it is grown to the configured size). The file is
//!   locked (`flock`, exclusive; shared when read-only), so two processes cannot open
//!   the same image.
//! - **Durability.** `flush` is `fdatasync(2)`: the file's data, and on a block device
//!   a cache flush of the disk. Writes go through the host's page cache
//!   ([`FileSync::Fdatasync`], the default) or bypass it ([`FileSync::Direct`]:
//!   `O_DIRECT`, through a 4096-aligned bounce buffer; `fdatasync` is still needed for
//!   the disk's own cache). `bench/kv.sh` measures both; the page cache wins for this
//!   store, whose reads hit the cache and whose commits write a few kilobytes.
//! - **Synchronous.** Requests are plain `pread`/`pwrite`/`fdatasync` system calls made
//!   inside the poll, so they block the event loop for their duration, as Redis's own
//!   `appendfsync always` does. (Concurrent requests therefore run one after the other.)
//! - Sectors are 512 bytes on a regular file (4096 with `O_DIRECT`, whose alignment a
//!   file system may require) and the logical sector size (`BLKSSZGET`) on a block
//!   device. A regular file's size is rounded down to whole sectors.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::fmt;

use morgana_signatures::{Block, BlockError, BlockErrorKind, check_request};
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{FallocateFlags, FileType, FlockOperation, Mode, OFlags, SeekFrom};
use rustix::io::Errno;

use crate::Platform;
use crate::error::{ErrnoName, describe};

/// How [`FileBlock`] makes writes durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FileSync {
    /// Writes go to the page cache; `flush` is `fdatasync`.
    #[default]
    Fdatasync,
    /// Writes bypass the page cache (`O_DIRECT`); `flush` is `fdatasync`.
    Direct,
}

/// How to open a [`FileBlock`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileOptions {
    /// The size of a file created because it did not exist (a multiple of the sector
    /// size). An existing file keeps its size.
    pub size: u64,
    /// Open read-only: writes are refused, nothing is created.
    pub read_only: bool,
    /// Page cache or `O_DIRECT`.
    pub sync: FileSync,
}

impl FileOptions {
    /// Read-write, created at `size` bytes if absent, through the page cache.
    pub const fn new(size: u64) -> FileOptions {
        FileOptions {
            size,
            read_only: false,
            sync: FileSync::Fdatasync,
        }
    }
}

/// The most bytes of a path kept for messages.
const PATH_KEPT: usize = 96;

/// A path, kept inline (and truncated) for error messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortPath {
    bytes: [u8; PATH_KEPT],
    len: u8,
    truncated: bool,
}

impl ShortPath {
    fn new(path: &str) -> ShortPath {
        let mut len = path.len().min(PATH_KEPT);
        while !path.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; PATH_KEPT];
        bytes[..len].copy_from_slice(&path.as_bytes()[..len]);
        ShortPath {
            bytes,
            len: len as u8,
            truncated: len < path.len(),
        }
    }

    /// The path (perhaps cut short).
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl fmt::Display for ShortPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Why a [`FileBlock`] could not be opened or a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileBlockError {
    /// A system call on the image failed while opening it.
    Open {
        /// The image.
        path: ShortPath,
        /// The call.
        op: &'static str,
        /// `errno`.
        errno: i32,
    },
    /// Another process has the image open.
    Locked {
        /// The image.
        path: ShortPath,
    },
    /// The image's size or kind is unusable.
    Unusable {
        /// The image.
        path: ShortPath,
        /// Why.
        why: &'static str,
    },
    /// A request the device refuses (read-only, out of range, misaligned).
    Request(BlockErrorKind),
    /// `pread`, `pwrite` or `fdatasync` failed.
    Io {
        /// The call.
        op: &'static str,
        /// `errno`.
        errno: i32,
    },
}

const EEXIST: i32 = 17;
const EISDIR: i32 = 21;
const ENOSPC: i32 = 28;
const EROFS: i32 = 30;
const EDQUOT: i32 = 122;

/// `describe`, with the error numbers only files meet.
fn describe_file(errno: i32) -> &'static str {
    match errno {
        EEXIST => "file exists",
        EISDIR => "is a directory",
        ENOSPC => "no space left on device",
        EROFS => "read-only file system",
        EDQUOT => "disk quota exceeded",
        _ => describe(errno),
    }
}

/// [`ErrnoName`], with the error numbers only files meet.
struct FileErrno(i32);

impl fmt::Display for FileErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            EEXIST => f.write_str("EEXIST"),
            EISDIR => f.write_str("EISDIR"),
            ENOSPC => f.write_str("ENOSPC"),
            EROFS => f.write_str("EROFS"),
            EDQUOT => f.write_str("EDQUOT"),
            n => ErrnoName(n).fmt(f),
        }
    }
}

impl fmt::Display for FileBlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FileBlockError::Open { path, op, errno } => write!(
                f,
                "disk image {path}: {op}: {} ({})",
                describe_file(errno),
                FileErrno(errno)
            ),
            FileBlockError::Locked { path } => {
                write!(f, "disk image {path} is in use by another process")
            }
            FileBlockError::Unusable { path, why } => write!(f, "disk image {path}: {why}"),
            FileBlockError::Request(kind) => write!(f, "disk image: {kind}"),
            FileBlockError::Io { op, errno } => write!(
                f,
                "disk image: {op}: {} ({})",
                describe_file(errno),
                FileErrno(errno)
            ),
        }
    }
}

impl BlockError for FileBlockError {
    fn kind(&self) -> BlockErrorKind {
        match self {
            FileBlockError::Request(kind) => *kind,
            FileBlockError::Io { errno: EROFS, .. } => BlockErrorKind::ReadOnly,
            FileBlockError::Io { .. } => BlockErrorKind::Io,
            _ => BlockErrorKind::Other,
        }
    }
}

/// A disk image file or block device. Implements [`Block`].
pub struct FileBlock {
    fd: OwnedFd,
    sector_size: usize,
    sectors: u64,
    read_only: bool,
    direct: bool,
    /// `O_DIRECT` bounce buffer (over-allocated; used from its 4096-aligned part).
    bounce: RefCell<Vec<u8>>,
}

impl fmt::Debug for FileBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBlock")
            .field("sector_size", &self.sector_size)
            .field("sectors", &self.sectors)
            .field("read_only", &self.read_only)
            .field("direct", &self.direct)
            .finish()
    }
}

/// The alignment `O_DIRECT` buffers get.
const DIRECT_ALIGN: usize = 4096;

impl FileBlock {
    /// Opens the image at `path` read-write, creating it with `size` bytes if it does
    /// not exist.
    pub fn open(
        platform: &'static Platform,
        path: &str,
        size: u64,
    ) -> Result<FileBlock, FileBlockError> {
        FileBlock::open_with(platform, path, FileOptions::new(size))
    }

    /// Opens the image at `path` as `options` say.
    pub fn open_with(
        _platform: &'static Platform,
        path: &str,
        options: FileOptions,
    ) -> Result<FileBlock, FileBlockError> {
        let short = ShortPath::new(path);
        let open_err = |op, e: Errno| FileBlockError::Open {
            path: short,
            op,
            errno: e.raw_os_error(),
        };
        let unusable = |why| FileBlockError::Unusable { path: short, why };
        let direct = options.sync == FileSync::Direct;
        let mut flags = OFlags::CLOEXEC;
        flags |= if options.read_only {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        if direct {
            flags |= OFlags::DIRECT;
        }
        let (fd, created) = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => (fd, false),
            Err(Errno::NOENT) if !options.read_only => {
                let sector = if direct { DIRECT_ALIGN } else { 512 } as u64;
                if options.size == 0 || !options.size.is_multiple_of(sector) {
                    return Err(unusable(
                        "the configured size must be a nonzero multiple of the sector size",
                    ));
                }
                let fd = rustix::fs::open(
                    path,
                    flags | OFlags::CREATE | OFlags::EXCL,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(|e| open_err("create", e))?;
                (fd, true)
            }
            Err(e) => return Err(open_err("open", e)),
        };
        let lock = if options.read_only {
            FlockOperation::NonBlockingLockShared
        } else {
            FlockOperation::NonBlockingLockExclusive
        };
        match rustix::fs::flock(&fd, lock) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Err(FileBlockError::Locked { path: short }),
            Err(e) => return Err(open_err("flock", e)),
        }
        let stat = rustix::fs::fstat(&fd).map_err(|e| open_err("fstat", e))?;
        let kind = FileType::from_raw_mode(stat.st_mode);
        let (sector_size, bytes) = match kind {
            FileType::BlockDevice => {
                let sector =
                    rustix::fs::ioctl_blksszget(&fd).map_err(|e| open_err("BLKSSZGET", e))?;
                let end =
                    rustix::fs::seek(&fd, SeekFrom::End(0)).map_err(|e| open_err("lseek", e))?;
                (sector as usize, end)
            }
            FileType::RegularFile => {
                let sector = if direct { DIRECT_ALIGN } else { 512 };
                let mut len = stat.st_size as u64;
                if len == 0 && !options.read_only {
                    // Created now, or left empty by a crash while being created.
                    if options.size == 0 || !options.size.is_multiple_of(sector as u64) {
                        return Err(unusable(
                            "the configured size must be a nonzero multiple of the sector size",
                        ));
                    }
                    match rustix::fs::fallocate(&fd, FallocateFlags::empty(), 0, options.size) {
                        Ok(()) => {}
                        // A file system without fallocate: a sparse file.
                        Err(Errno::OPNOTSUPP) => {
                            rustix::fs::ftruncate(&fd, options.size)
                                .map_err(|e| open_err("ftruncate", e))?;
                        }
                        Err(e) => return Err(open_err("fallocate", e)),
                    }
                    rustix::fs::fsync(&fd).map_err(|e| open_err("fsync", e))?;
                    if created {
                        sync_parent(path).map_err(|e| open_err("fsync of the directory", e))?;
                    }
                    len = options.size;
                    log::info!("disk image {short}: created, {} MiB", len >> 20);
                } else if len != options.size && options.size != 0 {
                    log::info!(
                        "disk image {short}: {len} bytes (the configured {} apply only to a new image)",
                        options.size
                    );
                }
                (sector, len)
            }
            FileType::Directory => return Err(unusable("is a directory")),
            _ => return Err(unusable("is neither a regular file nor a block device")),
        };
        let sectors = bytes / sector_size as u64;
        if sectors == 0 {
            return Err(unusable("is empty"));
        }
        Ok(FileBlock {
            fd,
            sector_size,
            sectors,
            read_only: options.read_only,
            direct,
            bounce: RefCell::new(Vec::new()),
        })
    }

    /// Whether writes bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn check(&self, sector: u64, len: usize) -> Result<u64, FileBlockError> {
        check_request(self.sector_size, self.sectors, sector, len)
            .map_err(FileBlockError::Request)?;
        Ok(sector * self.sector_size as u64)
    }

    fn pread_all(&self, mut buf: &mut [u8], mut at: u64) -> Result<(), FileBlockError> {
        while !buf.is_empty() {
            match rustix::io::pread(&self.fd, &mut *buf, at) {
                Ok(0) => {
                    return Err(FileBlockError::Io {
                        op: "pread (end of file)",
                        errno: 5,
                    });
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    at += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    return Err(FileBlockError::Io {
                        op: "pread",
                        errno: e.raw_os_error(),
                    });
                }
            }
        }
        Ok(())
    }

    fn pwrite_all(&self, mut buf: &[u8], mut at: u64) -> Result<(), FileBlockError> {
        while !buf.is_empty() {
            match rustix::io::pwrite(&self.fd, buf, at) {
                Ok(n) => {
                    buf = &buf[n..];
                    at += n as u64;
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    return Err(FileBlockError::Io {
                        op: "pwrite",
                        errno: e.raw_os_error(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Runs `f` on a 4096-aligned buffer of `len` bytes.
    fn with_bounce<R>(&self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
        let mut b = self.bounce.borrow_mut();
        if b.len() < len + DIRECT_ALIGN {
            *b = vec![0; len + DIRECT_ALIGN];
        }
        let off = b.as_ptr().align_offset(DIRECT_ALIGN);
        f(&mut b[off..off + len])
    }
}

/// fsyncs the directory holding `path`, so a file just created there survives a crash.
fn sync_parent(path: &str) -> Result<(), Errno> {
    let dir = match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    };
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fsync(fd.as_fd())
}

impl Block for FileBlock {
    type Error = FileBlockError;

    fn sector_size(&self) -> usize {
        self.sector_size
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), FileBlockError> {
        let at = self.check(sector, buf.len())?;
        if self.direct && !(buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN) {
            self.with_bounce(buf.len(), |b| {
                self.pread_all(b, at)?;
                buf.copy_from_slice(b);
                Ok(())
            })
        } else {
            self.pread_all(buf, at)
        }
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), FileBlockError> {
        if self.read_only {
            return Err(FileBlockError::Request(BlockErrorKind::ReadOnly));
        }
        let at = self.check(sector, buf.len())?;
        if self.direct && !(buf.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN) {
            self.with_bounce(buf.len(), |b| {
                b.copy_from_slice(buf);
                self.pwrite_all(b, at)
            })
        } else {
            self.pwrite_all(buf, at)
        }
    }

    async fn flush(&self) -> Result<(), FileBlockError> {
        if self.read_only {
            return Err(FileBlockError::Request(BlockErrorKind::ReadOnly));
        }
        loop {
            match rustix::fs::fdatasync(&self.fd) {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => {
                    return Err(FileBlockError::Io {
                        op: "fdatasync",
                        errno: e.raw_os_error(),
                    });
                }
            }
        }
    }

    async fn discard(&self, sector: u64, count: u64) -> Result<(), FileBlockError> {
        if self.read_only {
            return Err(FileBlockError::Request(BlockErrorKind::ReadOnly));
        }
        let len = count * self.sector_size as u64;
        let at = self.check(sector, len as usize)?;
        // Punch a hole where the file system can (regular files); a hint, so a refusal
        // (a block device, an old file system) is not an error.
        let _ = rustix::fs::fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            at,
            len,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;
    use std::string::String;

    fn temp(name: &str) -> String {
        let dir = std::env::temp_dir();
        let p = format!(
            "{}/morgana-fileblock-{}-{name}",
            dir.display(),
            std::process::id()
        );
        let _ = std::fs::remove_file(&p);
        p
    }

    fn run<F: core::future::Future>(f: F) -> F::Output {
        struct Never;
        impl morgana_rt::Idle for Never {
            fn wait(&mut self) {
                unreachable!("file I/O completes at once")
            }
        }
        morgana_rt::block_on(f, &mut Never)
    }

    #[test]
    fn a_new_image_is_created_at_its_size_and_an_old_one_never_overwritten() {
        let p = Platform::leak_new().unwrap();
        let path = temp("create");
        let dev = FileBlock::open(p, &path, 1 << 20).unwrap();
        assert_eq!((dev.sector_size(), dev.sectors()), (512, 2048));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
        let data: std::vec::Vec<u8> = (0..4096).map(|i| (i % 251) as u8).collect();
        run(dev.write(10, &data)).unwrap();
        run(dev.flush()).unwrap();
        // Locked while open.
        let e = FileBlock::open(p, &path, 1 << 20).unwrap_err();
        assert_eq!(
            e,
            FileBlockError::Locked {
                path: ShortPath::new(&path)
            }
        );
        assert!(format!("{e}").ends_with("is in use by another process"));
        drop(dev);
        // Reopened with another size: the existing image is kept as it is.
        let dev = FileBlock::open(p, &path, 8 << 20).unwrap();
        assert_eq!(dev.sectors(), 2048);
        let mut back = std::vec![0u8; 4096];
        run(dev.read(10, &mut back)).unwrap();
        assert_eq!(back, data);
        // Requests outside the device or not in whole sectors are refused.
        assert_eq!(
            run(dev.read(2047, &mut back)).unwrap_err().kind(),
            BlockErrorKind::OutOfRange
        );
        assert_eq!(
            run(dev.write(0, &data[..100])).unwrap_err().kind(),
            BlockErrorKind::Misaligned
        );
        drop(dev);
        // Read-only: reads work, writes and flushes are refused with the typed error.
        let ro = FileBlock::open_with(
            p,
            &path,
            FileOptions {
                read_only: true,
                ..FileOptions::new(0)
            },
        )
        .unwrap();
        assert!(ro.is_read_only());
        run(ro.read(10, &mut back)).unwrap();
        let e = run(ro.write(10, &data)).unwrap_err();
        assert_eq!(e.kind(), BlockErrorKind::ReadOnly);
        assert_eq!(format!("{e}"), "disk image: the device is read-only");
        assert_eq!(
            run(ro.flush()).unwrap_err().kind(),
            BlockErrorKind::ReadOnly
        );
        drop(ro);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn direct_io_takes_unaligned_buffers_and_errors_name_the_image() {
        let p = Platform::leak_new().unwrap();
        let path = temp("direct");
        let options = FileOptions {
            sync: FileSync::Direct,
            ..FileOptions::new(1 << 20)
        };
        match FileBlock::open_with(p, &path, options) {
            Ok(dev) => {
                assert_eq!(dev.sector_size(), 4096);
                let mut data = std::vec![0u8; 8193];
                for (i, b) in data.iter_mut().enumerate() {
                    *b = (i * 7) as u8;
                }
                // An unaligned slice of it.
                run(dev.write(3, &data[1..])).unwrap();
                run(dev.flush()).unwrap();
                let mut back = std::vec![0u8; 8193];
                run(dev.read(3, &mut back[1..])).unwrap();
                assert_eq!(back[1..], data[1..]);
            }
            // A file system without O_DIRECT (tmpfs before Linux 6.6).
            Err(FileBlockError::Open { errno: 22, .. }) => {}
            Err(e) => panic!("{e}"),
        }
        let _ = std::fs::remove_file(&path);

        let e = FileBlock::open(p, "/nonexistent-dir/disk.img", 1 << 20).unwrap_err();
        assert_eq!(
            format!("{e}"),
            "disk image /nonexistent-dir/disk.img: create: no such file or directory (ENOENT)"
        );
        let e = FileBlock::open(p, "/", 1 << 20).unwrap_err();
        assert!(format!("{e}").contains("disk image /:"), "{e}");
        let e = FileBlock::open(p, &temp("odd"), 1000).unwrap_err();
        assert!(
            format!("{e}").contains("nonzero multiple of the sector size"),
            "{e}"
        );
    }
}
