//! The PVH kernel's disk, found at boot: one image, whichever device the machine
//! offers.
//!
//! ```ignore
//! // What the generated connect chain does on the xen target:
//! let disk = morgana_disk::Disk::find(platform).await?;   // impl morgana_signatures::Block
//! ```
//!
//! On Xen (detected by morgana-pvh from the CPUID leaves) the disk is the domain's
//! first `vbd` in xenstore, driven by blkfront (the `.xl`'s `disk = [ ... ]`).
//! Under `morgana-tender` (the kernel entered through its tender note) it is the
//! tender's first disk, a host image file behind its `disk` call ([`tender`]; the
//! `.tender`'s `--disk`). Elsewhere (QEMU, KVM) it is the first virtio-blk device on the
//! PCI bus (the `.qemu`'s `-drive`). An appliance with several disks finds each by its
//! position ([`Disk::find_nth`]). [`Disk`] is a plain enum over the three drivers, as
//! `morgana_nic::Nic` is for the network: the store above is monomorphised once and a
//! `match` per request picks the driver.
//!
//! A kernel built for one hypervisor (codegen's `qemu` and `xen-only` targets) names one
//! driver instead: [`qemu::Disk`] (virtio-blk) or [`xen::Disk`] (blkfront), found by
//! [`qemu::find_nth`] or [`xen::find_nth`], and links none of the others.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod tender;

use core::fmt;
use morgana_blkfront::XenBlk;
use morgana_pvh::Platform;
use morgana_signatures::{Block, BlockError, BlockErrorKind};
use morgana_virtio::VirtioBlk;

/// The disk this machine offers.
pub enum Disk {
    /// A virtio-blk device on the PCI bus (QEMU, KVM).
    Virtio(VirtioBlk),
    /// A Xen virtual block device, driven by blkfront.
    Xen(XenBlk),
    /// A disk of `morgana-tender` (a host image file), through its `disk` call.
    Tender(tender::TenderDisk),
}

/// Why no disk could be driven, or a request failed.
#[derive(Debug)]
pub enum Error {
    /// The virtio-blk driver's.
    Virtio(morgana_virtio::BlkError),
    /// blkfront's.
    Xen(morgana_blkfront::Error),
    /// The tender disk's.
    Tender(tender::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Virtio(e) => fmt::Display::fmt(e, f),
            Error::Xen(e) => fmt::Display::fmt(e, f),
            Error::Tender(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl BlockError for Error {
    fn kind(&self) -> BlockErrorKind {
        match self {
            Error::Virtio(e) => e.kind(),
            Error::Xen(e) => e.kind(),
            Error::Tender(e) => e.kind(),
        }
    }
}

impl Disk {
    /// Finds and drives the machine's (first) disk.
    pub async fn find(platform: &'static Platform) -> Result<Disk, Error> {
        Self::find_nth(platform, 0).await
    }

    /// Finds and drives the machine's `n`th disk (0 first): on Xen the `n`th `vbd` by
    /// device number (`xvda`, `xvdb`, ...), under the tender its `n`th `--disk` or
    /// `--disk-ro` file, elsewhere the `n`th virtio-blk device in PCI bus order. The
    /// generated `.xl`, `.tender` and `.qemu` attach an appliance's `Block`s in the order
    /// appliance.ron declares them, so `n` is a `Block`'s position there.
    pub async fn find_nth(platform: &'static Platform, n: usize) -> Result<Disk, Error> {
        if morgana_pvh::tender::on_tender() {
            tender::TenderDisk::find_nth(n)
                .map(Disk::Tender)
                .map_err(Error::Tender)
        } else if morgana_pvh::xen::on_xen() {
            morgana_blkfront::connect_nth(n)
                .await
                .map(Disk::Xen)
                .map_err(Error::Xen)
        } else {
            find_virtio(platform, n)
        }
    }
}

/// The `n`th virtio-blk device. Not inlined into the appliance's start-up: it runs once per
/// boot and is optimised for size with this crate (root `Cargo.toml`).
#[inline(never)]
fn find_virtio(platform: &'static Platform, n: usize) -> Result<Disk, Error> {
    VirtioBlk::find_nth(
        platform,
        n,
        morgana_virtio::BlkConfig::default(),
        morgana_virtio::pvh::InterruptPreference::Auto,
    )
    .map(Disk::Virtio)
    .map_err(Error::Virtio)
}

/// The disks of a kernel for QEMU/KVM only (codegen's `qemu` target): virtio-blk devices
/// on the PCI bus; no blkfront, no tender.
pub mod qemu {
    use morgana_pvh::Platform;

    /// A virtio-blk device.
    pub type Disk = morgana_virtio::VirtioBlk;
    /// virtio-blk's errors.
    pub type Error = morgana_virtio::BlkError;

    /// The `n`th virtio-blk device in PCI bus order (as [`super::Disk::find_nth`]).
    pub async fn find_nth(platform: &'static Platform, n: usize) -> Result<Disk, Error> {
        super::find_virtio_only(platform, n)
    }
}

/// The disks of a kernel for Xen only (codegen's `xen-only` target): the domain's `vbd`s,
/// driven by blkfront; no virtio, no tender.
pub mod xen {
    use morgana_pvh::Platform;

    /// A Xen virtual block device, driven by blkfront.
    pub type Disk = morgana_blkfront::XenBlk;
    /// blkfront's errors.
    pub type Error = morgana_blkfront::Error;

    /// The `n`th `vbd` by device number (as [`super::Disk::find_nth`]; `platform` for the
    /// same shape).
    pub async fn find_nth(_platform: &'static Platform, n: usize) -> Result<Disk, Error> {
        morgana_blkfront::connect_nth(n).await
    }
}

/// [`qemu::find_nth`]'s search, out of the appliance's start-up as [`find_virtio`].
#[inline(never)]
fn find_virtio_only(
    platform: &'static Platform,
    n: usize,
) -> Result<VirtioBlk, morgana_virtio::BlkError> {
    VirtioBlk::find_nth(
        platform,
        n,
        morgana_virtio::BlkConfig::default(),
        morgana_virtio::pvh::InterruptPreference::Auto,
    )
}

impl Block for Disk {
    type Error = Error;

    fn sector_size(&self) -> usize {
        match self {
            Disk::Virtio(d) => d.sector_size(),
            Disk::Xen(d) => d.sector_size(),
            Disk::Tender(d) => d.sector_size(),
        }
    }

    fn sectors(&self) -> u64 {
        match self {
            Disk::Virtio(d) => d.sectors(),
            Disk::Xen(d) => d.sectors(),
            Disk::Tender(d) => d.sectors(),
        }
    }

    fn is_read_only(&self) -> bool {
        match self {
            Disk::Virtio(d) => d.is_read_only(),
            Disk::Xen(d) => d.is_read_only(),
            Disk::Tender(d) => d.is_read_only(),
        }
    }

    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        match self {
            Disk::Virtio(d) => d.read(sector, buf).await.map_err(Error::Virtio),
            Disk::Xen(d) => d.read(sector, buf).await.map_err(Error::Xen),
            Disk::Tender(d) => d.read(sector, buf).await.map_err(Error::Tender),
        }
    }

    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        match self {
            Disk::Virtio(d) => d.write(sector, buf).await.map_err(Error::Virtio),
            Disk::Xen(d) => d.write(sector, buf).await.map_err(Error::Xen),
            Disk::Tender(d) => d.write(sector, buf).await.map_err(Error::Tender),
        }
    }

    async fn flush(&self) -> Result<(), Error> {
        match self {
            Disk::Virtio(d) => d.flush().await.map_err(Error::Virtio),
            Disk::Xen(d) => d.flush().await.map_err(Error::Xen),
            Disk::Tender(d) => d.flush().await.map_err(Error::Tender),
        }
    }

    async fn discard(&self, sector: u64, count: u64) -> Result<(), Error> {
        match self {
            Disk::Virtio(d) => d.discard(sector, count).await.map_err(Error::Virtio),
            Disk::Xen(d) => d.discard(sector, count).await.map_err(Error::Xen),
            Disk::Tender(d) => d.discard(sector, count).await.map_err(Error::Tender),
        }
    }
}
