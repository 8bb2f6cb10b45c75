//! The DNS wire format (RFC 1035 §4, RFC 6891): the numbers, reading a query, and the
//! response writer with name compression.
//!
//! Morgana writes its own codec rather than using `domain` or hickory-proto: a server
//! that answers from a compiled-in archive only needs to read one question and one OPT
//! record and to write records it already holds in wire form, which is a few hundred
//! lines with no allocation, where the crates bring general message models (see
//! `docs/dns.md` for the measurement).

/// Record types the server knows by number.
pub mod rtype {
    /// IPv4 address.
    pub const A: u16 = 1;
    /// Name server.
    pub const NS: u16 = 2;
    /// Canonical name.
    pub const CNAME: u16 = 5;
    /// Start of authority.
    pub const SOA: u16 = 6;
    /// Domain name pointer.
    pub const PTR: u16 = 12;
    /// Mail exchange.
    pub const MX: u16 = 15;
    /// Text.
    pub const TXT: u16 = 16;
    /// IPv6 address.
    pub const AAAA: u16 = 28;
    /// Service location.
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record.
    pub const OPT: u16 = 41;
    /// Delegation signer.
    pub const DS: u16 = 43;
    /// DNS key.
    pub const DNSKEY: u16 = 48;
    /// Incremental zone transfer.
    pub const IXFR: u16 = 251;
    /// Zone transfer.
    pub const AXFR: u16 = 252;
    /// Any type.
    pub const ANY: u16 = 255;
    /// Certification authority authorization.
    pub const CAA: u16 = 257;
}

/// Classes.
pub mod class {
    /// Internet.
    pub const IN: u16 = 1;
    /// Any class.
    pub const ANY: u16 = 255;
}

/// Response codes (the low four bits in the header; BADVERS goes in the OPT record).
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
    /// Extended: bad EDNS version (16), upper eight bits in the OPT TTL.
    pub const BADVERS: u16 = 16;
}

/// Size of the fixed header.
pub const HEADER_LEN: usize = 12;
/// The largest wire name.
pub const MAX_NAME: usize = 255;
/// The largest label.
pub const MAX_LABEL: usize = 63;

/// Reads a big-endian u16 at `at`.
pub fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Reads a big-endian u32 at `at`.
pub fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Checks the uncompressed name at `at` in `msg` and returns the offset just past it.
/// Compression pointers are refused (a query's question never needs one), as are labels
/// longer than 63 and names longer than 255 bytes.
pub fn skip_plain_name(msg: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    loop {
        let len = usize::from(*msg.get(i)?);
        if len == 0 {
            i += 1;
            break;
        }
        if len > MAX_LABEL {
            return None;
        }
        i += 1 + len;
        if i - at >= MAX_NAME {
            return None;
        }
    }
    if i > msg.len() { None } else { Some(i) }
}

/// Skips a possibly compressed name (in a record of the additional section). At most 128
/// pointers are followed, so a pointer loop ends; only the bytes in place are skipped.
pub fn skip_name(msg: &[u8], at: usize) -> Option<usize> {
    let mut i = at;
    let mut end = None;
    let mut total = 0usize;
    for _ in 0..128 {
        let len = *msg.get(i)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Some(end.unwrap_or(i + 1)),
            0x00 => {
                total += usize::from(len) + 1;
                if total >= MAX_NAME {
                    return None;
                }
                i += usize::from(len) + 1;
            }
            0xc0 => {
                let ptr = usize::from(u16_at(msg, i)? & 0x3fff);
                end.get_or_insert(i + 2);
                if ptr >= i {
                    return None;
                }
                i = ptr;
            }
            _ => return None,
        }
    }
    None
}

/// Offsets of the labels of the wire name `name` (which must be valid), the root
/// excluded, into `starts`; returns how many.
pub fn label_starts(name: &[u8], starts: &mut [u8; 128]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < name.len() && name[i] != 0 && n < starts.len() {
        starts[n] = i as u8;
        n += 1;
        i += usize::from(name[i]) + 1;
    }
    n
}

/// How many compression targets a response remembers. Beyond this, names are still
/// written, just less compressed.
const MAX_TARGETS: usize = 64;

/// Writes a response into a caller-owned buffer, compressing names.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
    /// Where the writer must stop (the message limit less room kept for the OPT record).
    limit: usize,
    /// Offsets of label sequences already in the message, with their label counts.
    targets: [(u16, u8); MAX_TARGETS],
    ntargets: usize,
}

/// The message is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

impl<'b> Writer<'b> {
    /// A writer over `buf` that will not write beyond `limit` bytes.
    pub fn new(buf: &'b mut [u8], limit: usize) -> Writer<'b> {
        let limit = limit.min(buf.len());
        Writer {
            buf,
            pos: 0,
            limit,
            targets: [(0, 0); MAX_TARGETS],
            ntargets: 0,
        }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// Changes the limit (at most the buffer's size).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.buf.len());
    }

    /// A mark to roll back to.
    pub fn mark(&self) -> (usize, usize) {
        (self.pos, self.ntargets)
    }

    /// Forgets everything written since `mark`, compression targets included.
    pub fn rollback(&mut self, mark: (usize, usize)) {
        self.pos = mark.0;
        self.ntargets = mark.1;
    }

    /// The written bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.pos]
    }

    /// Overwrites two bytes already written.
    pub fn patch_u16(&mut self, at: usize, v: u16) {
        self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
    }

    /// Appends bytes.
    pub fn put(&mut self, b: &[u8]) -> Result<(), Full> {
        let end = self.pos + b.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.pos..end].copy_from_slice(b);
        self.pos = end;
        Ok(())
    }

    /// Appends a u16.
    pub fn u16(&mut self, v: u16) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    /// Appends a u32.
    pub fn u32(&mut self, v: u32) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    /// Remembers the labels of the uncompressed name written at `at` as compression
    /// targets.
    pub fn remember_name(&mut self, at: usize) {
        let mut starts = [0u8; 128];
        let name = &self.buf[at..self.pos.max(at)];
        let Some(end) = skip_plain_name(name, 0) else {
            return;
        };
        let n = label_starts(&name[..end], &mut starts);
        for (k, &s) in starts[..n].iter().enumerate() {
            self.add_target(at + usize::from(s), (n - k) as u8);
        }
    }

    fn add_target(&mut self, at: usize, labels: u8) {
        if at < 0x4000 && self.ntargets < MAX_TARGETS {
            self.targets[self.ntargets] = (at as u16, labels);
            self.ntargets += 1;
        }
    }

    /// Whether the name in the message at `at` (possibly compressed, written by us)
    /// equals the uncompressed `name`, ignoring ASCII case.
    fn equals_at(&self, mut at: usize, name: &[u8]) -> bool {
        let mut i = 0;
        for _ in 0..128 {
            let Some(&len) = self.buf.get(at) else {
                return false;
            };
            if len & 0xc0 == 0xc0 {
                let Some(p) = u16_at(self.buf, at) else {
                    return false;
                };
                let p = usize::from(p & 0x3fff);
                if p >= at {
                    return false;
                }
                at = p;
                continue;
            }
            let l = usize::from(len);
            if name.get(i) != Some(&len) {
                return false;
            }
            if l == 0 {
                return true;
            }
            let (Some(a), Some(b)) = (self.buf.get(at + 1..at + 1 + l), name.get(i + 1..i + 1 + l))
            else {
                return false;
            };
            if !a.eq_ignore_ascii_case(b) {
                return false;
            }
            at += 1 + l;
            i += 1 + l;
        }
        false
    }

    /// Writes the uncompressed wire name `name`, compressed against the names already in
    /// the message when `compress`, and remembers its new labels as targets.
    pub fn name(&mut self, name: &[u8], compress: bool) -> Result<(), Full> {
        let mut starts = [0u8; 128];
        let n = label_starts(name, &mut starts);
        let mut hit = None;
        if compress {
            'outer: for (k, &s) in starts[..n].iter().enumerate() {
                let suffix = &name[usize::from(s)..];
                let labels = (n - k) as u8;
                for &(at, l) in &self.targets[..self.ntargets] {
                    if l == labels && self.equals_at(usize::from(at), suffix) {
                        hit = Some((k, at));
                        break 'outer;
                    }
                }
            }
        }
        let plain = hit.map_or(n, |(k, _)| k);
        let start = self.pos;
        let prefix_end = if plain == n {
            name.len()
        } else {
            usize::from(starts[plain])
        };
        self.put(&name[..prefix_end])?;
        if let Some((_, at)) = hit {
            self.u16(0xc000 | at)?;
        }
        if compress {
            for (k, &s) in starts[..plain].iter().enumerate() {
                self.add_target(start + usize::from(s), (n - k) as u8);
            }
        }
        Ok(())
    }

    /// Writes a pointer to the name at `at` (the question's name).
    pub fn pointer(&mut self, at: u16) -> Result<(), Full> {
        self.u16(0xc000 | at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(s: &str) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec::Vec::new();
        for l in s.split('.').filter(|l| !l.is_empty()) {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    #[test]
    fn names_compress_against_earlier_suffixes_in_any_case() {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf, 512);
        w.put(&[0; 12]).unwrap();
        let q = w.len();
        w.put(&wire("WWW.Example.test")).unwrap();
        w.remember_name(q);
        let a = w.len();
        w.name(&wire("mail.example.TEST"), true).unwrap();
        // "mail" + pointer to "Example.test" at q + 4.
        assert_eq!(
            &w.bytes()[a..],
            &[4, b'm', b'a', b'i', b'l', 0xc0, (q + 4) as u8]
        );
        let b = w.len();
        w.name(&wire("x.mail.example.test"), true).unwrap();
        assert_eq!(&w.bytes()[b..], &[1, b'x', 0xc0, a as u8]);
        let c = w.len();
        w.name(&wire("www.example.test"), true).unwrap();
        assert_eq!(&w.bytes()[c..], &[0xc0, q as u8]);
        let d = w.len();
        w.name(&wire("other.org"), false).unwrap();
        assert_eq!(&w.bytes()[d..], &wire("other.org")[..]);
    }

    #[test]
    fn skipping_names_refuses_loops_and_overlong_names() {
        // A pointer to itself, and two pointing at each other.
        assert_eq!(skip_name(&[0xc0, 0x00], 0), None);
        assert_eq!(skip_name(&[1, b'a', 0xc0, 0x00, 0xc0, 0x02], 4), None);
        assert_eq!(skip_name(&[1, b'a', 0, 0xc0, 0x00], 3), Some(5));
        let mut long = alloc::vec::Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        assert_eq!(skip_plain_name(&long, 0), None);
        assert_eq!(skip_plain_name(&[64, 0], 0), None);
        assert_eq!(skip_plain_name(&[3, b'a'], 0), None);
        assert_eq!(skip_plain_name(&[0], 0), Some(1));
    }
}
