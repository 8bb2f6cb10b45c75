//! Morgana's Xen blkfront driver: the `Block` of the PVH kernel on Xen.
//!
//! ```ignore
//! // What morgana-disk does on Xen:
//! let disk = morgana_blkfront::connect().await?;   // impl morgana_signatures::Block
//! ```
//!
//! # What it does
//!
//! - **Handshake** ([`connect`], `src/xen.rs`, over the generic `src/handshake.rs`):
//!   finds the domain's first `device/vbd/<n>` in xenstore (the toolstack writes it
//!   from the `.xl`'s `disk = [ ... ]`), waits for the backend to reach `InitWait`,
//!   shares one ring page and one event channel (`ring-ref`, `event-channel`,
//!   `protocol = x86_64-abi`), switches to `Connected` and waits for the backend to
//!   follow. Then it reads what the backend wrote when it connected: `sectors` (in
//!   512-byte units), `sector-size`, `info` (`VDISK_READONLY`), `mode`,
//!   `feature-flush-cache`, `feature-barrier`, `feature-discard`. A backend still in
//!   `InitWait` at the end is an error naming the usual cause (the block hotplug
//!   script did not write `physical-device`: without a device blkback cannot
//!   connect); a missing device, a backend that closes or never shows up is an
//!   error naming the node and its state.
//! - **Requests** ([`Blkfront`], `src/device.rs`, over morgana-xen's `ring`): the blkif
//!   ring of one page (32 entries of 112 bytes, `src/blkif.rs`); [`Config::slots`]
//!   request slots (8 by default), each with [`Config::segments`] pages (11, the
//!   protocol's most per request: 44 KiB) granted once at start. A read or write is
//!   cut into slot-sized pieces that all go out at once (one notification) and
//!   complete in any order; several callers may have requests in flight together
//!   (`&self`). Data is copied between the caller's buffer and the slot's pages, so a
//!   dropped future can never let the backend write into freed memory (its slot is
//!   reused once the backend answers).
//! - **Flush** is `BLKIF_OP_FLUSH_DISKCACHE` when the backend offers
//!   `feature-flush-cache`, else `BLKIF_OP_WRITE_BARRIER` (without data) when it offers
//!   `feature-barrier`; a backend with neither has no volatile cache to flush, so
//!   `flush` completes at once (as the block signature says). **Discard** is
//!   `BLKIF_OP_DISCARD` when the backend offers `feature-discard`, else nothing (a
//!   hint). A disk attached read-only (`info` has `VDISK_READONLY`, or `mode` is `r`)
//!   refuses writes, flushes and discards with `BlockErrorKind::ReadOnly` before
//!   anything is sent.
//! - **Errors** are typed ([`Error`]): `BLKIF_RSP_ERROR` is [`Error::Io`] (the sector
//!   named), `BLKIF_RSP_EOPNOTSUPP` [`Error::Unsupported`] (the operation named); a
//!   backend that answers with another operation or an unknown status fails that
//!   request ([`Error::Protocol`]); one that corrupts the ring indices is given up.
//!   Responses for requests never made (unknown ids, stale or repeated ids) are
//!   dropped and counted ([`Stats::bogus_responses`]).
//! - **Nothing waits forever** (`src/device.rs`, the watchdog): while requests are in
//!   flight the driver is woken once per [`WATCHDOG_PERIOD`] whatever happens; it takes
//!   responses no event announced, notifies the backend again when nothing was
//!   answered for a whole period (a lost notification), asks xenstore whether the
//!   backend went to `Closing` (then every request fails with
//!   [`Error::BackendGone`]), and fails a request unanswered for
//!   [`REQUEST_TIMEOUT`] with [`Error::Timeout`] (as it does a request that waited
//!   that long for a free slot). A slot whose request timed out is reused only once
//!   the backend answers it: its pages stay the backend's until then.
//!
//! # What we leave out (decisions)
//!
//! Multi-page rings (`ring-page-order`), persistent grants (`feature-persistent`),
//! indirect descriptors (`feature-max-indirect-segments`) and multiple queues: one
//! page of 32 entries with 11 segments each already holds more than the 8 slots of
//! 44 KiB the store above keeps busy, and each costs grants and memory for nothing
//! measurable at that depth. Secure discard is not requested.
//!
//! # Structure
//!
//! Like netfront, the driver is generic over morgana-xen's device [`Hal`] (pages,
//! grants, the event channel, the clock): morgana-pvh's `xen::XenHal` is the kernel's,
//! and the host tests (`src/tests.rs`) run the same code against simulated backends on
//! a virtual clock — an honest blkback that keeps a disk in memory, and hostile ones
//! (wrong ids, responses for requests never made, error statuses, silence, a backend
//! that goes to `Closing`, corrupt ring indices).
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod blkif;
mod device;
pub mod handshake;
pub mod xen;

#[cfg(test)]
mod tests;

use alloc::string::String;
use core::fmt;
use morgana_signatures::{BlockError, BlockErrorKind};
use morgana_xen::XenError;
use morgana_xen::bus::BusError;

pub use device::{Blkfront, Config, REQUEST_TIMEOUT, Stats, WATCHDOG_PERIOD};
pub use handshake::{Flush, Geometry};
pub use morgana_xen::device::Hal;
pub use xen::{XenBlk, connect, connect_nth};

/// Why the Xen disk could not be driven, or a request failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The domain has no virtual block device in xenstore.
    NoDisk,
    /// The domain has fewer virtual block devices than the appliance uses.
    TooFewDisks {
        /// The disks the appliance uses (the one asked for is the last).
        wanted: usize,
        /// The `device/vbd` entries found.
        found: usize,
    },
    /// The xenbus handshake failed (backend closed or stuck, xenstore).
    Bus(BusError),
    /// A Xen operation failed (grant table, event channel, memory to share).
    Xen(XenError),
    /// The backend stayed in `InitWait` after we connected: it has no device to serve.
    NotConnected {
        /// The backend's node.
        backend: String,
        /// How long we waited.
        waited_ms: u64,
    },
    /// The backend's description of the disk does not parse or is not supported.
    BadDisk {
        /// The node.
        path: String,
        /// Its value (empty when missing).
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A request refused before anything was sent (read-only, out of range,
    /// misaligned).
    Request(BlockErrorKind),
    /// The backend reported an I/O error (`BLKIF_RSP_ERROR`) for the request at this
    /// sector (in the disk's sector size).
    Io {
        /// The first sector of the failed piece.
        sector: u64,
    },
    /// The backend does not do this operation (`BLKIF_RSP_EOPNOTSUPP`).
    Unsupported {
        /// The operation.
        op: &'static str,
    },
    /// The backend did not answer in time.
    Timeout {
        /// The operation.
        op: &'static str,
        /// How long it waited (milliseconds).
        waited_ms: u64,
    },
    /// The backend went to `Closing` or `Closed`: the disk is gone.
    BackendGone,
    /// The backend broke the protocol for this request (another operation answered, a
    /// status blkif does not have) or for the ring (the device is given up).
    Protocol {
        /// What it did.
        what: &'static str,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDisk => f.write_str(
                "blkfront: no device/vbd in xenstore (add disk = [ 'format=raw,vdev=xvda,access=rw,target=IMAGE' ] to the xl config)",
            ),
            Error::TooFewDisks { wanted, found } => write!(
                f,
                "blkfront: the appliance uses disk {wanted} in vdev order but the domain has {found} (the xl config's disk = [ ... ] needs one entry per Block of appliance.ron: xvda, xvdb, ...)"
            ),
            Error::Bus(e) => write!(f, "blkfront: {e}"),
            Error::Xen(e) => write!(f, "blkfront: {e}"),
            Error::NotConnected { backend, waited_ms } => write!(
                f,
                "blkfront: backend {backend} stayed in state 2 (InitWait) for {waited_ms} ms \
                 after we connected: it has no device to serve (did the block hotplug script \
                 run and write physical-device? does the disk image exist?)"
            ),
            Error::BadDisk { path, value, why } => {
                let value = value.escape_default();
                write!(f, "blkfront: xenstore {path} holds \"{value}\": {why}")
            }
            Error::Request(kind) => write!(f, "blkfront: {kind}"),
            Error::Io { sector } => write!(f, "blkfront: I/O error at sector {sector}"),
            Error::Unsupported { op } => {
                write!(f, "blkfront: the backend does not support {op} requests")
            }
            Error::Timeout { op, waited_ms } => write!(
                f,
                "blkfront: the backend did not answer a {op} request in {waited_ms} ms"
            ),
            Error::BackendGone => f.write_str("blkfront: the backend closed the disk"),
            Error::Protocol { what } => write!(f, "blkfront: the backend {what}"),
        }
    }
}

impl BlockError for Error {
    fn kind(&self) -> BlockErrorKind {
        match self {
            Error::Request(kind) => *kind,
            Error::Io { .. } | Error::Timeout { .. } => BlockErrorKind::Io,
            Error::Unsupported { .. } | Error::BackendGone | Error::Protocol { .. } => {
                BlockErrorKind::Unsupported
            }
            _ => BlockErrorKind::Other,
        }
    }
}

impl From<BusError> for Error {
    fn from(e: BusError) -> Error {
        Error::Bus(e)
    }
}

impl From<XenError> for Error {
    fn from(e: XenError) -> Error {
        Error::Xen(e)
    }
}
