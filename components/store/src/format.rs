//! The on-disk format, version 1: superblock, segment headers, records.
//!
//! Everything is little-endian. `docs/store-format.md` is the reference; this module is
//! its implementation, and the two change together (with [`FORMAT_VERSION`]).
//!
//! ```text
//! byte 0                 superblock (64 bytes), alone in the first max(4096, sector) bytes
//! data_start             segment 0
//! data_start + i*S       segment i (S = segment_size bytes), i < segment_count
//!
//! segment:  [segment header, 32 bytes][record][record]...
//! record:   [header, 20 bytes][key][value]
//! ```
//!
//! A record never starts in the last [`RECORD_HEADER_LEN`]` - 1` bytes of a sector: a
//! record that would is placed at the next sector boundary instead ([`next_record_at`]),
//! so a reader finds every record from the previous one without a separate index.

/// The superblock's magic bytes.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"MORGANKV";
/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bytes of the superblock that carry data (the rest of its area is zero).
pub const SUPERBLOCK_LEN: usize = 64;
/// The superblock area: the data starts at `max(SUPERBLOCK_AREA, sector size)`.
pub const SUPERBLOCK_AREA: u64 = 4096;

/// A segment header's magic bytes.
pub const SEGMENT_MAGIC: [u8; 4] = *b"MSEG";
/// Bytes of a segment header; the first record follows it.
pub const SEGMENT_HEADER_LEN: usize = 32;

/// Bytes of a record header.
pub const RECORD_HEADER_LEN: usize = 20;

/// What a record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `key` holds `value` (and `meta`).
    Put = 1,
    /// `key` was deleted (a tombstone; no value).
    Delete = 2,
    /// Every key written before this record was deleted (no key, no value).
    Clear = 3,
    /// Filler up to the end of a sector: `value_len` zero bytes follow the header and
    /// are not covered by the checksum.
    Pad = 4,
}

impl Kind {
    fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Put,
            2 => Kind::Delete,
            3 => Kind::Clear,
            4 => Kind::Pad,
            _ => return None,
        })
    }
}

/// The superblock: what the store's geometry is. Written once, by `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Sector size the store was formatted for.
    pub sector_size: u32,
    /// Bytes per segment (a multiple of the sector size).
    pub segment_size: u32,
    /// Number of segments.
    pub segment_count: u32,
    /// Byte offset of segment 0.
    pub data_start: u64,
    /// A number chosen at format time; every checksum is seeded with it, so records of
    /// an earlier store on the same device never validate.
    pub store_id: u64,
    /// Longest key.
    pub max_key_len: u32,
    /// Longest value.
    pub max_value_len: u32,
}

/// Why a superblock was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SuperblockError {
    /// Every byte is zero: nothing was ever formatted here.
    Blank,
    /// Some other data: not a store.
    NotAStore,
    /// A store of another format version.
    Version(u32),
    /// The checksum does not match.
    Checksum,
    /// The fields contradict each other.
    Inconsistent(&'static str),
}

impl Superblock {
    /// Bytes of device this store occupies.
    pub fn end(&self) -> u64 {
        self.data_start + u64::from(self.segment_count) * u64::from(self.segment_size)
    }

    /// The superblock's bytes.
    pub fn encode(&self) -> [u8; SUPERBLOCK_LEN] {
        let mut b = [0u8; SUPERBLOCK_LEN];
        b[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(SUPERBLOCK_LEN as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.sector_size.to_le_bytes());
        b[20..24].copy_from_slice(&self.segment_size.to_le_bytes());
        b[24..28].copy_from_slice(&self.segment_count.to_le_bytes());
        // 28..32: flags, zero.
        b[32..40].copy_from_slice(&self.data_start.to_le_bytes());
        b[40..48].copy_from_slice(&self.store_id.to_le_bytes());
        b[48..52].copy_from_slice(&self.max_key_len.to_le_bytes());
        b[52..56].copy_from_slice(&self.max_value_len.to_le_bytes());
        // 56..60: reserved, zero.
        let crc = crate::checksum::hash(&b[..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks the first [`SUPERBLOCK_LEN`] bytes of a device.
    pub fn decode(b: &[u8]) -> Result<Superblock, SuperblockError> {
        let b = &b[..SUPERBLOCK_LEN];
        if b.iter().all(|&x| x == 0) {
            return Err(SuperblockError::Blank);
        }
        if b[0..8] != SUPERBLOCK_MAGIC {
            return Err(SuperblockError::NotAStore);
        }
        // The version is read before the checksum: a later format may lay out the rest
        // differently, and "written by a newer version" is the useful message.
        let version = le32(b, 8);
        if version != FORMAT_VERSION {
            return Err(SuperblockError::Version(version));
        }
        if le32(b, 60) != crate::checksum::hash(&b[..60]) {
            return Err(SuperblockError::Checksum);
        }
        if le32(b, 12) as usize != SUPERBLOCK_LEN || le32(b, 28) != 0 || le32(b, 56) != 0 {
            return Err(SuperblockError::Inconsistent(
                "unknown header length or flags",
            ));
        }
        let sb = Superblock {
            sector_size: le32(b, 16),
            segment_size: le32(b, 20),
            segment_count: le32(b, 24),
            data_start: le64(b, 32),
            store_id: le64(b, 40),
            max_key_len: le32(b, 48),
            max_value_len: le32(b, 52),
        };
        sb.check()?;
        Ok(sb)
    }

    /// Checks that the geometry holds together (used when formatting, too).
    pub fn check(&self) -> Result<(), SuperblockError> {
        let s = self.sector_size;
        if s < 512 || !s.is_power_of_two() || s > 65536 {
            return Err(SuperblockError::Inconsistent("sector size"));
        }
        if self.segment_size == 0 || !self.segment_size.is_multiple_of(s) {
            return Err(SuperblockError::Inconsistent(
                "segment size is not a multiple of the sector size",
            ));
        }
        if self.data_start != data_start(s as usize) {
            return Err(SuperblockError::Inconsistent("data start"));
        }
        if self.segment_count < crate::store::MIN_SEGMENTS {
            return Err(SuperblockError::Inconsistent("too few segments"));
        }
        if self.max_key_len == 0 || self.max_key_len > u32::from(u16::MAX) {
            return Err(SuperblockError::Inconsistent("maximum key length"));
        }
        let biggest = SEGMENT_HEADER_LEN as u64
            + RECORD_HEADER_LEN as u64
            + u64::from(self.max_key_len)
            + u64::from(self.max_value_len)
            + u64::from(s);
        if biggest > u64::from(self.segment_size) {
            return Err(SuperblockError::Inconsistent(
                "the largest record does not fit in a segment",
            ));
        }
        Ok(())
    }
}

/// Where segment 0 starts on a device with `sector_size`-byte sectors.
pub fn data_start(sector_size: usize) -> u64 {
    SUPERBLOCK_AREA.max(sector_size as u64)
}

/// A segment header: the segment is in use and holds the log from sequence `seq` on;
/// the segment before it (sequence `seq - 1`) ends at byte `prev_end` (0: none).
pub fn encode_segment_header(seq: u64, store_id: u64, prev_end: u32) -> [u8; SEGMENT_HEADER_LEN] {
    let mut b = [0u8; SEGMENT_HEADER_LEN];
    b[0..4].copy_from_slice(&SEGMENT_MAGIC);
    b[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    b[16..24].copy_from_slice(&store_id.to_le_bytes());
    b[24..28].copy_from_slice(&prev_end.to_le_bytes());
    let crc = crate::checksum::hash(&b[..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// The sequence number and the predecessor's end of a valid segment header of store
/// `store_id`, or `None` for a free segment (zeroed, never used, torn, or another
/// store's).
pub fn decode_segment_header(b: &[u8], store_id: u64) -> Option<(u64, u32)> {
    let b = b.get(..SEGMENT_HEADER_LEN)?;
    if b[0..4] != SEGMENT_MAGIC
        || le32(b, 4) != FORMAT_VERSION
        || le64(b, 16) != store_id
        || le32(b, 28) != crate::checksum::hash(&b[..28])
    {
        return None;
    }
    let seq = le64(b, 8);
    (seq != 0).then_some((seq, le32(b, 24)))
}

/// A parsed record header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The checksum stored.
    pub crc: u32,
    /// What the record says.
    pub kind: Kind,
    /// Key bytes after the header.
    pub key_len: u16,
    /// Value bytes after the key (for [`Kind::Pad`], filler bytes).
    pub value_len: u32,
    /// The key's meta word.
    pub meta: u64,
}

impl RecordHeader {
    /// Bytes of the whole record.
    pub fn len(&self) -> usize {
        RECORD_HEADER_LEN + usize::from(self.key_len) + self.value_len as usize
    }

    /// Whether the record is empty (never: a header is 20 bytes).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses a header; `None` if it cannot be one (unknown kind, reserved bits set,
    /// lengths that the kind does not allow).
    pub fn decode(b: &[u8]) -> Option<RecordHeader> {
        let b = b.get(..RECORD_HEADER_LEN)?;
        let kind = Kind::from_u8(b[4])?;
        if b[5] != 0 {
            return None;
        }
        let h = RecordHeader {
            crc: le32(b, 0),
            kind,
            key_len: u16::from_le_bytes([b[6], b[7]]),
            value_len: le32(b, 8),
            meta: le64(b, 12),
        };
        let ok = match kind {
            Kind::Put => h.key_len > 0,
            Kind::Delete => h.key_len > 0 && h.value_len == 0 && h.meta == 0,
            Kind::Clear => h.key_len == 0 && h.value_len == 0 && h.meta == 0,
            Kind::Pad => h.key_len == 0 && h.meta == 0,
        };
        ok.then_some(h)
    }
}

/// The checksum of a record at byte `offset` of the segment with sequence `seq`: seeded
/// with the store, the segment's sequence and the offset, so that a record is valid
/// only where it was written (a stale record of an earlier use of the segment, or one
/// copied elsewhere, fails). Covers the header after the checksum field, the key and
/// the value; for [`Kind::Pad`] only the header.
pub fn record_crc(store_id: u64, seq: u64, offset: u32, header_tail: &[u8], body: &[u8]) -> u32 {
    let mut h = crate::checksum::Hasher::new();
    h.update(&store_id.to_le_bytes());
    h.update(&seq.to_le_bytes());
    h.update(&offset.to_le_bytes());
    h.update(header_tail);
    h.update(body);
    h.finalize()
}

/// Appends a record to `out` as it will sit at byte `offset` of segment `seq`.
pub fn encode_record(
    out: &mut alloc::vec::Vec<u8>,
    ids: (u64, u64, u32),
    kind: Kind,
    key: &[u8],
    value: &[u8],
    meta: u64,
) {
    let (store_id, seq, offset) = ids;
    let start = out.len();
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[4] = kind as u8;
    header[6..8].copy_from_slice(&(key.len() as u16).to_le_bytes());
    header[8..12].copy_from_slice(&(value.len() as u32).to_le_bytes());
    header[12..20].copy_from_slice(&meta.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    let crc = record_crc(
        store_id,
        seq,
        offset,
        &out[start + 4..start + RECORD_HEADER_LEN],
        &out[start + RECORD_HEADER_LEN..],
    );
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
}

/// Appends a pad record of `len` bytes in all (at least [`RECORD_HEADER_LEN`]).
pub fn encode_pad(out: &mut alloc::vec::Vec<u8>, ids: (u64, u64, u32), len: usize) {
    let (store_id, seq, offset) = ids;
    let start = out.len();
    let mut header = [0u8; RECORD_HEADER_LEN];
    header[4] = Kind::Pad as u8;
    header[8..12].copy_from_slice(&((len - RECORD_HEADER_LEN) as u32).to_le_bytes());
    let crc = record_crc(store_id, seq, offset, &header[4..], &[]);
    header[0..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&header);
    out.resize(start + len, 0);
}

/// Where the record after byte `pos` goes: `pos` itself, or the next sector boundary
/// when fewer than [`RECORD_HEADER_LEN`] bytes are left in the sector.
pub fn next_record_at(pos: u32, sector_size: u32) -> u32 {
    let rem = sector_size - pos % sector_size;
    if rem < sector_size && (rem as usize) < RECORD_HEADER_LEN {
        pos + rem
    } else {
        pos
    }
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn sb() -> Superblock {
        Superblock {
            sector_size: 512,
            segment_size: 65536,
            segment_count: 16,
            data_start: 4096,
            store_id: 0x1234_5678_9abc_def0,
            max_key_len: 1024,
            max_value_len: 16384,
        }
    }

    #[test]
    fn superblock_round_trips_and_refuses_damage() {
        let b = sb().encode();
        assert_eq!(Superblock::decode(&b), Ok(sb()));
        assert_eq!(Superblock::decode(&[0u8; 64]), Err(SuperblockError::Blank));
        let mut x = b;
        x[0] = b'X';
        assert_eq!(Superblock::decode(&x), Err(SuperblockError::NotAStore));
        let mut x = b;
        x[8] = 2;
        assert_eq!(Superblock::decode(&x), Err(SuperblockError::Version(2)));
        let mut x = b;
        x[45] ^= 1;
        assert_eq!(Superblock::decode(&x), Err(SuperblockError::Checksum));
    }

    #[test]
    fn segment_headers_belong_to_one_store() {
        let h = encode_segment_header(7, 42, 4096);
        assert_eq!(decode_segment_header(&h, 42), Some((7, 4096)));
        assert_eq!(decode_segment_header(&h, 43), None);
        assert_eq!(decode_segment_header(&[0u8; 32], 42), None);
        let mut x = h;
        x[9] ^= 0x80;
        assert_eq!(decode_segment_header(&x, 42), None);
    }

    #[test]
    fn records_are_valid_only_where_they_were_written() {
        let mut out = Vec::new();
        encode_record(&mut out, (1, 2, 100), Kind::Put, b"key", b"value", 9);
        let h = RecordHeader::decode(&out).unwrap();
        assert_eq!(
            (h.kind, h.key_len, h.value_len, h.meta),
            (Kind::Put, 3, 5, 9)
        );
        let check = |ids: (u64, u64, u32)| {
            record_crc(ids.0, ids.1, ids.2, &out[4..20], &out[20..]) == h.crc
        };
        assert!(check((1, 2, 100)));
        assert!(!check((1, 2, 101)));
        assert!(!check((1, 3, 100)));
        assert!(!check((2, 2, 100)));
    }

    #[test]
    fn records_skip_the_tail_of_a_sector() {
        assert_eq!(next_record_at(0, 512), 0);
        assert_eq!(next_record_at(492, 512), 492);
        assert_eq!(next_record_at(493, 512), 512);
        assert_eq!(next_record_at(511, 512), 512);
        assert_eq!(next_record_at(512, 512), 512);
    }
}
