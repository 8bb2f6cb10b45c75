//! The value cache: direct-mapped, keyed by where a record sits in the log.
//!
//! A record never changes once written, and a segment's sequence number is never reused,
//! so `(sequence, offset)` names one value forever: an entry cannot go stale, only be
//! displaced. Each of the `entries` slots holds at most one value of at most `max_value`
//! bytes, so the cache never holds more than `entries × max_value` bytes of values; a
//! slot's buffer is reused for the next value that lands in it.

use alloc::vec::Vec;

struct Entry {
    seq: u64,
    off: u32,
    data: Vec<u8>,
}

pub(crate) struct Cache {
    slots: Vec<Option<Entry>>,
    max_value: usize,
}

impl Cache {
    pub(crate) fn new(entries: usize, max_value: usize) -> Cache {
        Cache {
            slots: (0..entries).map(|_| None).collect(),
            max_value,
        }
    }

    fn slot(&self, seq: u64, off: u32) -> usize {
        let h = (seq ^ (u64::from(off) << 20)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((h >> 32) as usize) % self.slots.len()
    }

    pub(crate) fn find(&self, seq: u64, off: u32) -> Option<&[u8]> {
        if self.slots.is_empty() {
            return None;
        }
        match &self.slots[self.slot(seq, off)] {
            Some(e) if e.seq == seq && e.off == off => Some(&e.data),
            _ => None,
        }
    }

    pub(crate) fn insert(&mut self, seq: u64, off: u32, value: &[u8]) {
        if self.slots.is_empty() || value.len() > self.max_value {
            return;
        }
        let i = self.slot(seq, off);
        match &mut self.slots[i] {
            Some(e) => {
                e.seq = seq;
                e.off = off;
                e.data.clear();
                e.data.extend_from_slice(value);
            }
            slot @ None => {
                *slot = Some(Entry {
                    seq,
                    off,
                    data: value.to_vec(),
                })
            }
        }
    }
}
