//! The store's checksum: CRC-32 (IEEE 802.3, the "ISO-HDLC" parameters: the CRC of zlib,
//! PNG and Ethernet), computed four bytes at a time with four 1 KiB tables (slice-by-4)
//! built at the first use, in memory that the kernel image does not carry (`.bss`). The
//! on-disk format names it (docs/store-format.md).
//!
//! Not the `crc` crate, which offers one table (byte at a time: a third of this speed
//! on long values) or sixteen (16 KiB of every kernel image, 4 % of the kv kernel, for
//! twice this speed on 1 MiB values and none on the short records of a Redis SET).
//! Not the SSE4.2 `crc32` instruction: it computes CRC-32C, another polynomial, so the
//! on-disk format would change. The tests check this code against `crc` (a
//! dev-dependency) on every length and alignment up to 300 bytes.

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// The reflected IEEE polynomial.
const POLY: u32 = 0xedb8_8320;

/// `TABLES[0]` is the byte-at-a-time table; `TABLES[k][b]` is the CRC of byte `b`
/// followed by `k` zero bytes. Zeros in the image (`.bss`: no bytes of the file) until
/// the first checksum fills them in (`fill`: about ten thousand instructions, once per
/// process or boot). Atomics only so that filling them needs no `unsafe`: relaxed loads
/// and stores are plain moves.
static TABLES: [[AtomicU32; 256]; 4] = [const { [const { AtomicU32::new(0) }; 256] }; 4];
/// Set (release) once `TABLES` is filled in.
static READY: AtomicBool = AtomicBool::new(false);

/// Fills in the tables if that was not done yet. Called where a checksum starts
/// ([`hash`], [`Hasher::new`]), not per piece, so that `update` makes no call: it would
/// have to save registers around it. Two threads may both fill them, with the same
/// values; a reader sees `READY` only after every entry (acquire/release).
fn ensure_tables() {
    if !READY.load(Ordering::Acquire) {
        fill();
    }
}

#[cold]
#[inline(never)]
fn fill() {
    let t = &TABLES;
    for i in 0..256u32 {
        let mut c = i;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
        t[0][i as usize].store(c, Ordering::Relaxed);
    }
    for s in 1..4 {
        for i in 0..256 {
            let p = t[s - 1][i].load(Ordering::Relaxed);
            let q = t[0][(p & 0xff) as usize].load(Ordering::Relaxed);
            t[s][i].store((p >> 8) ^ q, Ordering::Relaxed);
        }
    }
    READY.store(true, Ordering::Release);
}

/// Advances the (inverted) register `crc` over `bytes`. The tables are filled in: every
/// path here starts at `hash` or `Hasher::new`.
fn update(mut crc: u32, bytes: &[u8]) -> u32 {
    let t = &TABLES;
    let at = |k: usize, i: u32| t[k][(i & 0xff) as usize].load(Ordering::Relaxed);
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        let v = crc ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        crc = at(3, v) ^ at(2, v >> 8) ^ at(1, v >> 16) ^ at(0, v >> 24);
    }
    for &b in words.remainder() {
        crc = (crc >> 8) ^ at(0, crc ^ u32::from(b));
    }
    crc
}

/// The CRC-32 of `bytes`.
pub fn hash(bytes: &[u8]) -> u32 {
    ensure_tables();
    !update(!0, bytes)
}

/// A CRC-32 over several pieces.
pub struct Hasher(u32);

impl Hasher {
    /// An empty CRC.
    pub fn new() -> Hasher {
        ensure_tables();
        Hasher(!0)
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0 = update(self.0, bytes);
    }

    /// The CRC of everything added.
    pub fn finalize(self) -> u32 {
        !self.0
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

    #[test]
    fn agrees_with_the_crc_crate_on_every_length_and_split() {
        let reference = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
        let data: alloc::vec::Vec<u8> = (0..304u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..4 {
            for end in start..data.len() {
                let piece = &data[start..end];
                assert_eq!(hash(piece), reference.checksum(piece), "{start}..{end}");
                let mid = (end - start) / 3;
                let mut h = Hasher::new();
                h.update(&piece[..mid]);
                h.update(&piece[mid..]);
                assert_eq!(
                    h.finalize(),
                    reference.checksum(piece),
                    "split {start}..{end}"
                );
            }
        }
    }
}
