//! The tender's disks: host image files behind `morgana-tender`'s `disk-info` and `disk`
//! calls (tender ABI version 2, `docs/tender-abi.md`).
//!
//! - **Found by number.** Disk `n` is the `n`th `--disk`/`--disk-ro` file the tender was
//!   given; [`TenderDisk::find_nth`] asks `disk-info` for its capacity, sector size and
//!   whether it is read-only.
//! - **Synchronous.** Each request is one call: the vCPU stops at the `out` and the
//!   tender does the `pread`, `pwrite`, `fdatasync` or hole punch before it resumes the
//!   kernel. The futures therefore complete at their first poll, and the caller's buffer
//!   is lent to the tender only for the length of the call (nothing is left in flight
//!   when a future is dropped). Transfers above the ABI's 1 MiB are split.
//! - **Durability.** `flush` returns after the host's `fdatasync` of the image returned.
//! - **Checked here first.** Every request is checked against the disk's geometry before
//!   the call ([`morgana_signatures::check_request`]), so the tender's statuses
//!   (out of range, read-only) are a second line; they still come back typed.
//!
//! Generic over [`Calls`] so that the host tests run the driver against a simulated,
//! hostile tender; [`GuestCalls`] are the real calls.

use core::fmt;
use morgana_signatures::{Block, BlockError, BlockErrorKind, check_request};
use morgana_tender_abi::{self as abi, DiskInfo, Status};

/// What the driver needs from the tender.
pub trait Calls {
    /// `disk-info` for disk `n`.
    fn info(&self, n: u32) -> Result<DiskInfo, Status>;
    /// `disk` read.
    fn read(&self, n: u32, sector: u64, buf: &mut [u8]) -> Result<(), Status>;
    /// `disk` write.
    fn write(&self, n: u32, sector: u64, data: &[u8]) -> Result<(), Status>;
    /// `disk` flush.
    fn flush(&self, n: u32) -> Result<(), Status>;
    /// `disk` discard of `len` bytes.
    fn discard(&self, n: u32, sector: u64, len: usize) -> Result<(), Status>;
}

/// The real calls, for a kernel entered by the tender.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestCalls;

impl Calls for GuestCalls {
    fn info(&self, n: u32) -> Result<DiskInfo, Status> {
        abi::guest::disk_info(n)
    }
    fn read(&self, n: u32, sector: u64, buf: &mut [u8]) -> Result<(), Status> {
        abi::guest::disk_read(n, sector, buf)
    }
    fn write(&self, n: u32, sector: u64, data: &[u8]) -> Result<(), Status> {
        abi::guest::disk_write(n, sector, data)
    }
    fn flush(&self, n: u32) -> Result<(), Status> {
        abi::guest::disk_flush(n)
    }
    fn discard(&self, n: u32, sector: u64, len: usize) -> Result<(), Status> {
        abi::guest::disk_discard(n, sector, len)
    }
}

/// Why a tender disk cannot be used, or a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The tender has no disk of this number (fewer `--disk` files than `Block`s).
    NoDevice(u32),
    /// The tender describes a disk no driver could use.
    BadGeometry {
        /// The disk's number.
        disk: u32,
        /// The sector size it states.
        sector_size: u32,
    },
    /// The request does not fit the disk (checked before any call).
    Request(BlockErrorKind),
    /// The tender answered a request with this status.
    Status(Status),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDevice(n) => write!(
                f,
                "the tender has no disk {n} (give it one --disk FILE per Block, in appliance.ron's order)"
            ),
            Error::BadGeometry { disk, sector_size } => write!(
                f,
                "the tender's disk {disk} states {sector_size}-byte sectors (a power of two from 512 to 65536 is needed)"
            ),
            Error::Request(kind) => fmt::Display::fmt(kind, f),
            Error::Status(s) => write!(f, "the tender's disk: {s}"),
        }
    }
}

impl BlockError for Error {
    fn kind(&self) -> BlockErrorKind {
        match self {
            Error::NoDevice(_) | Error::BadGeometry { .. } => BlockErrorKind::Unsupported,
            Error::Request(kind) => *kind,
            Error::Status(Status::OutOfRange) => BlockErrorKind::OutOfRange,
            Error::Status(Status::ReadOnly) => BlockErrorKind::ReadOnly,
            Error::Status(Status::IoError) => BlockErrorKind::Io,
            Error::Status(Status::NoDevice) => BlockErrorKind::Unsupported,
            Error::Status(Status::Ok) => BlockErrorKind::Other,
        }
    }
}

/// One of the tender's disks.
#[derive(Debug)]
pub struct TenderDisk<C: Calls = GuestCalls> {
    calls: C,
    disk: u32,
    sectors: u64,
    sector_size: usize,
    read_only: bool,
}

impl TenderDisk<GuestCalls> {
    /// The tender's disk `n` (0 first, in the order of its `--disk`/`--disk-ro` files).
    pub fn find_nth(n: usize) -> Result<TenderDisk<GuestCalls>, Error> {
        TenderDisk::with_calls(GuestCalls, n)
    }
}

impl<C: Calls> TenderDisk<C> {
    /// Disk `n` through `calls`.
    pub fn with_calls(calls: C, n: usize) -> Result<TenderDisk<C>, Error> {
        let disk = u32::try_from(n)
            .ok()
            .filter(|d| *d < abi::MAX_DISKS)
            .ok_or(Error::NoDevice(u32::MAX))?;
        let info = match calls.info(disk) {
            Ok(info) if info.flags & abi::BLOCK_PRESENT != 0 => info,
            Ok(_) | Err(Status::NoDevice) => return Err(Error::NoDevice(disk)),
            Err(s) => return Err(Error::Status(s)),
        };
        let sector_size = info.sector_size;
        if !sector_size.is_power_of_two() || !(512..=65536).contains(&sector_size) {
            return Err(Error::BadGeometry { disk, sector_size });
        }
        Ok(TenderDisk {
            calls,
            disk,
            sectors: info.sectors,
            sector_size: sector_size as usize,
            read_only: info.flags & abi::BLOCK_READ_ONLY != 0,
        })
    }

    fn check(&self, sector: u64, len: usize) -> Result<(), Error> {
        check_request(self.sector_size, self.sectors, sector, len)
            .map(|_| ())
            .map_err(Error::Request)
    }

    /// The largest transfer of one call, in whole sectors.
    fn chunk(&self) -> usize {
        (abi::MAX_BLOCK_TRANSFER as usize / self.sector_size).max(1) * self.sector_size
    }
}

impl<C: Calls> Block for TenderDisk<C> {
    type Error = Error;

    fn sector_size(&self) -> usize {
        self.sector_size
    }

    fn sectors(&self) -> u64 {
        self.sectors
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.check(sector, buf.len())?;
        let per_chunk = (self.chunk() / self.sector_size) as u64;
        for (i, part) in buf.chunks_mut(self.chunk()).enumerate() {
            self.calls
                .read(self.disk, sector + i as u64 * per_chunk, part)
                .map_err(Error::Status)?;
        }
        Ok(())
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        self.check(sector, buf.len())?;
        if self.read_only {
            return Err(Error::Request(BlockErrorKind::ReadOnly));
        }
        let per_chunk = (self.chunk() / self.sector_size) as u64;
        for (i, part) in buf.chunks(self.chunk()).enumerate() {
            self.calls
                .write(self.disk, sector + i as u64 * per_chunk, part)
                .map_err(Error::Status)?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::Request(BlockErrorKind::ReadOnly));
        }
        self.calls.flush(self.disk).map_err(Error::Status)
    }

    async fn discard(&self, sector: u64, count: u64) -> Result<(), Error> {
        if self.read_only {
            return Err(Error::Request(BlockErrorKind::ReadOnly));
        }
        let len = count
            .checked_mul(self.sector_size as u64)
            .and_then(|l| usize::try_from(l).ok())
            .ok_or(Error::Request(BlockErrorKind::OutOfRange))?;
        if len == 0 {
            return Ok(());
        }
        self.check(sector, len)?;
        self.calls
            .discard(self.disk, sector, len)
            .map_err(Error::Status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::RefCell;
    use core::future::Future;
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    /// A simulated tender: disks in memory, a log of calls, and answers to falsify.
    #[derive(Debug, Default)]
    struct Sim {
        disks: Vec<(Vec<u8>, u32, u32)>, // bytes, sector size, flags
        calls: RefCell<Vec<(&'static str, u32, u64, usize)>>,
        answer: Option<Status>,
    }

    impl Sim {
        fn with(disks: Vec<(Vec<u8>, u32, u32)>) -> Sim {
            Sim {
                disks,
                ..Sim::default()
            }
        }
        fn log(&self, what: &'static str, n: u32, sector: u64, len: usize) -> Result<(), Status> {
            self.calls.borrow_mut().push((what, n, sector, len));
            self.answer.map_or(Ok(()), Err)
        }
    }

    impl Calls for &Sim {
        fn info(&self, n: u32) -> Result<DiskInfo, Status> {
            let (bytes, ss, flags) = self.disks.get(n as usize).ok_or(Status::NoDevice)?;
            Ok(DiskInfo {
                disk: n,
                status: 0,
                sectors: bytes.len() as u64 / u64::from((*ss).max(1)),
                sector_size: *ss,
                flags: *flags,
            })
        }
        fn read(&self, n: u32, sector: u64, buf: &mut [u8]) -> Result<(), Status> {
            self.log("read", n, sector, buf.len())?;
            let at = sector as usize * 512;
            buf.copy_from_slice(&self.disks[n as usize].0[at..at + buf.len()]);
            Ok(())
        }
        fn write(&self, n: u32, sector: u64, data: &[u8]) -> Result<(), Status> {
            self.log("write", n, sector, data.len())
        }
        fn flush(&self, n: u32) -> Result<(), Status> {
            self.log("flush", n, 0, 0)
        }
        fn discard(&self, n: u32, sector: u64, len: usize) -> Result<(), Status> {
            self.log("discard", n, sector, len)
        }
    }

    /// Runs a future that must complete at its first poll (the calls are synchronous).
    fn now<F: Future>(f: F) -> F::Output {
        let mut f = pin!(f);
        match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("a tender disk request did not complete at once"),
        }
    }

    const RW: u32 = abi::BLOCK_PRESENT;
    const RO: u32 = abi::BLOCK_PRESENT | abi::BLOCK_READ_ONLY;

    #[test]
    fn disks_are_found_by_number_and_described() {
        let sim = Sim::with(vec![(vec![0; 8 << 20], 512, RW), (vec![0; 4096], 512, RO)]);
        let d0 = TenderDisk::with_calls(&sim, 0).unwrap();
        assert_eq!(
            (d0.sectors(), d0.sector_size(), d0.is_read_only()),
            (16384, 512, false)
        );
        let d1 = TenderDisk::with_calls(&sim, 1).unwrap();
        assert_eq!((d1.sectors(), d1.is_read_only()), (8, true));
        let e = TenderDisk::with_calls(&sim, 2).unwrap_err();
        assert_eq!(e, Error::NoDevice(2));
        assert_eq!(e.kind(), BlockErrorKind::Unsupported);
        assert!(alloc::format!("{e}").contains("one --disk FILE per Block"));
        assert_eq!(
            TenderDisk::with_calls(&sim, 99).unwrap_err(),
            Error::NoDevice(u32::MAX)
        );
    }

    #[test]
    fn a_hostile_tender_is_refused_or_its_status_typed() {
        // Geometry no driver could use.
        for ss in [0, 100, 513, 1 << 20] {
            let sim = Sim::with(vec![(vec![0; 4096], ss, RW)]);
            assert_eq!(
                TenderDisk::with_calls(&sim, 0).unwrap_err(),
                Error::BadGeometry {
                    disk: 0,
                    sector_size: ss
                }
            );
        }
        // A disk-info that says "not present".
        let sim = Sim::with(vec![(vec![0; 4096], 512, 0)]);
        assert_eq!(
            TenderDisk::with_calls(&sim, 0).unwrap_err(),
            Error::NoDevice(0)
        );
        // Statuses come back as the signature's kinds.
        for (status, kind) in [
            (Status::IoError, BlockErrorKind::Io),
            (Status::OutOfRange, BlockErrorKind::OutOfRange),
            (Status::ReadOnly, BlockErrorKind::ReadOnly),
            (Status::NoDevice, BlockErrorKind::Unsupported),
        ] {
            let mut sim = Sim::with(vec![(vec![0; 4096], 512, RW)]);
            sim.answer = Some(status);
            let d = TenderDisk::with_calls(&sim, 0).unwrap();
            assert_eq!(now(d.write(0, &[1; 512])).unwrap_err().kind(), kind);
            assert_eq!(now(d.flush()).unwrap_err().kind(), kind);
        }
    }

    #[test]
    fn requests_are_checked_before_any_call_and_split_at_the_limit() {
        let mut disk = vec![0u8; 4 << 20];
        disk[3 << 20] = 0x42;
        let sim = Sim::with(vec![(disk, 512, RW), (vec![0; 4096], 512, RO)]);
        let d = TenderDisk::with_calls(&sim, 0).unwrap();
        let kind = |r: Result<(), Error>| r.unwrap_err().kind();
        assert_eq!(
            kind(now(d.read(8191, &mut [0; 1024]))),
            BlockErrorKind::OutOfRange
        );
        assert_eq!(
            kind(now(d.write(u64::MAX, &[0; 512]))),
            BlockErrorKind::OutOfRange
        );
        assert_eq!(kind(now(d.write(0, &[0; 100]))), BlockErrorKind::Misaligned);
        assert_eq!(kind(now(d.read(0, &mut []))), BlockErrorKind::Misaligned);
        assert_eq!(kind(now(d.discard(8190, 4))), BlockErrorKind::OutOfRange);
        assert!(sim.calls.borrow().is_empty(), "nothing reached the tender");

        // 2.5 MiB from sector 2048: three calls of at most 1 MiB, sectors in order.
        let mut buf = vec![0u8; 5 << 19];
        now(d.read(2048, &mut buf)).unwrap();
        assert_eq!(buf[(3 << 20) - (1 << 20)], 0x42);
        now(d.write(2048, &buf)).unwrap();
        now(d.flush()).unwrap();
        now(d.discard(16, 8)).unwrap();
        now(d.discard(16, 0)).unwrap();
        assert_eq!(
            *sim.calls.borrow(),
            [
                ("read", 0, 2048, 1 << 20),
                ("read", 0, 4096, 1 << 20),
                ("read", 0, 6144, 1 << 19),
                ("write", 0, 2048, 1 << 20),
                ("write", 0, 4096, 1 << 20),
                ("write", 0, 6144, 1 << 19),
                ("flush", 0, 0, 0),
                ("discard", 0, 16, 4096),
            ]
        );

        // A read-only disk refuses writes, flushes and discards itself.
        let ro = TenderDisk::with_calls(&sim, 1).unwrap();
        sim.calls.borrow_mut().clear();
        assert_eq!(kind(now(ro.write(0, &[0; 512]))), BlockErrorKind::ReadOnly);
        assert_eq!(kind(now(ro.flush())), BlockErrorKind::ReadOnly);
        assert_eq!(kind(now(ro.discard(0, 1))), BlockErrorKind::ReadOnly);
        now(ro.read(0, &mut [0; 512])).unwrap();
        assert_eq!(*sim.calls.borrow(), [("read", 1, 0, 512)]);
    }
}
