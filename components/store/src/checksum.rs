//! The store's checksum: CRC-32 (IEEE 802.3, the "ISO-HDLC" parameters: the CRC of zlib,
//! PNG and Ethernet), with slice-by-16 tables. The on-disk format names it
//! (docs/store-format.md).

use crc::{CRC_32_ISO_HDLC, Crc, Digest, Table};

static CRC32: Crc<u32, Table<16>> = Crc::<u32, Table<16>>::new(&CRC_32_ISO_HDLC);

/// The CRC-32 of `bytes`.
pub fn hash(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// A CRC-32 over several pieces.
pub struct Hasher(Digest<'static, u32, Table<16>>);

impl Hasher {
    /// An empty CRC.
    pub fn new() -> Hasher {
        Hasher(CRC32.digest())
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The CRC of everything added.
    pub fn finalize(self) -> u32 {
        self.0.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_the_ieee_crc32() {
        // The check value of CRC-32/ISO-HDLC, and zlib's crc32 of a known string.
        assert_eq!(hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(
            hash(b"The quick brown fox jumps over the lazy dog"),
            0x414f_a339
        );
        let mut h = Hasher::new();
        h.update(b"12345");
        h.update(b"6789");
        assert_eq!(h.finalize(), 0xcbf4_3926);
        assert_eq!(hash(b""), 0);
    }
}
