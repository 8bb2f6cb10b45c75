//! The blkif wire format (Xen's public `io/blkif.h`, re-expressed for the x86_64 ABI
//! that this driver announces with `protocol = x86_64-abi`).
//!
//! | entry | bytes | fields (byte offset) |
//! |---|---|---|
//! | request | 112 | `operation: u8` (0), `nr_segments: u8` (1), `handle: u16` (2), pad, `id: u64` (8), `sector_number: u64` (16), 11 × segment (24) |
//! | segment | 8 | `gref: u32` (0), `first_sect: u8` (4), `last_sect: u8` (5), pad |
//! | discard request | 112 | `operation: u8` (0), `flag: u8` (1), `handle: u16` (2), pad, `id: u64` (8), `sector_number: u64` (16), `nr_sectors: u64` (24) |
//! | response | 16 | `id: u64` (0), `operation: u8` (8), pad, `status: i16` (10) |
//!
//! Sector numbers, `sectors` and a segment's `first_sect`/`last_sect` are always in
//! units of 512 bytes, whatever the disk's `sector-size`. A segment covers sectors
//! `first_sect..=last_sect` of one granted page (0 to 7).

/// Bytes of a ring entry (the request; the response is shorter and shares the slot).
pub const ENTRY_BYTES: usize = 112;
/// Segments (granted pages) one request carries at most
/// (`BLKIF_MAX_SEGMENTS_PER_REQUEST`).
pub const MAX_SEGMENTS: usize = 11;
/// The unit of every sector number on the wire.
pub const WIRE_SECTOR: u64 = 512;

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`: sent without segments, a flush on backends that offer
/// only `feature-barrier`.
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`: sent without segments (`feature-flush-cache`).
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_DISCARD` (`feature-discard`).
pub const OP_DISCARD: u8 = 5;

/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;

/// `VDISK_READONLY`, a bit of the backend's `info` key.
pub const VDISK_READONLY: u32 = 0x4;

/// Request field offsets.
pub mod req {
    /// `operation: u8`.
    pub const OPERATION: usize = 0;
    /// `nr_segments: u8` (a discard's `flag`).
    pub const NR_SEGMENTS: usize = 1;
    /// `handle: u16`.
    pub const HANDLE: usize = 2;
    /// The padding before `id`.
    pub const PAD: usize = 4;
    /// `id: u64`, echoed in the response.
    pub const ID: usize = 8;
    /// `sector_number: u64`.
    pub const SECTOR: usize = 16;
    /// The first segment (a discard's `nr_sectors: u64`).
    pub const SEGMENTS: usize = 24;
    /// Bytes of one segment.
    pub const SEGMENT_BYTES: usize = 8;
}

/// Response field offsets.
pub mod rsp {
    /// `id: u64`.
    pub const ID: usize = 0;
    /// `operation: u8`, read as the low byte of the `u16` at this offset.
    pub const OPERATION: usize = 8;
    /// `status: i16`.
    pub const STATUS: usize = 10;
}

/// The name of an operation, for messages.
pub fn op_name(op: u8) -> &'static str {
    match op {
        OP_READ => "read",
        OP_WRITE => "write",
        OP_WRITE_BARRIER => "write barrier",
        OP_FLUSH_DISKCACHE => "flush",
        OP_DISCARD => "discard",
        _ => "unknown operation",
    }
}
