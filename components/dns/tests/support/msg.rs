//! Test-side DNS messages: a query builder and a strict response parser that normalises
//! a response for comparison (names decompressed and lowercased, sections sorted).
#![allow(dead_code)]

use std::fmt;

/// A query's wire form.
pub fn query(
    id: u16,
    name: &str,
    qtype: u16,
    qclass: u16,
    edns: Option<(u16, u8, bool)>,
) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // RD, as resolvers and dig send it
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    q.extend_from_slice(&wire_name(name));
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&qclass.to_be_bytes());
    if let Some((payload, version, dnssec_ok)) = edns {
        q.push(0);
        q.extend_from_slice(&41u16.to_be_bytes());
        q.extend_from_slice(&payload.to_be_bytes());
        q.extend_from_slice(&[0, version, if dnssec_ok { 0x80 } else { 0 }, 0]);
        q.extend_from_slice(&0u16.to_be_bytes());
    }
    q
}

/// `a.b.` (or `a.b`) in wire format, case kept; `\.` is not supported here.
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name.split('.').filter(|l| !l.is_empty()) {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v
}

/// One record, normalised.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rr {
    pub owner: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    pub rdata: String,
}

impl fmt::Display for Rr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} {} {}",
            self.owner, self.ttl, self.class, self.rtype, self.rdata
        )
    }
}

/// A response, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub id: u16,
    /// QR, opcode, AA, TC, RD, RA, Z, AD, CD (the RCODE bits masked out).
    pub flags: u16,
    /// Header RCODE plus the OPT record's extended bits.
    pub rcode: u16,
    /// The question section, byte for byte.
    pub question: Vec<u8>,
    pub answer: Vec<Rr>,
    pub authority: Vec<Rr>,
    pub additional: Vec<Rr>,
    /// Payload size, version, DO, options (hex) of the OPT record.
    pub opt: Option<(u16, u8, bool, String)>,
    pub len: usize,
}

fn u16_at(b: &[u8], i: usize) -> Result<u16, String> {
    b.get(i..i + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| format!("short message at {i}"))
}

/// Reads a possibly compressed name; returns it (lowercase presentation) and the offset
/// after it in place.
pub fn read_name(b: &[u8], mut i: usize) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut end = None;
    let mut hops = 0;
    loop {
        let l = *b.get(i).ok_or("name runs off the message")?;
        if l & 0xc0 == 0xc0 {
            let p = usize::from(u16_at(b, i)? & 0x3fff);
            end.get_or_insert(i + 2);
            if p >= i {
                return Err("forward compression pointer".into());
            }
            hops += 1;
            if hops > 128 {
                return Err("pointer loop".into());
            }
            i = p;
            continue;
        }
        if l & 0xc0 != 0 {
            return Err("bad label type".into());
        }
        if l == 0 {
            if out.is_empty() {
                out.push('.');
            }
            if out.len() > 255 {
                return Err("name too long".into());
            }
            return Ok((out, end.unwrap_or(i + 1)));
        }
        let s = b
            .get(i + 1..i + 1 + usize::from(l))
            .ok_or("label runs off the message")?;
        for &c in s {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_graphic() && c != b'.' && c != b'\\' {
                out.push(c as char);
            } else {
                out.push_str(&format!("\\{c:03}"));
            }
        }
        out.push('.');
        i += 1 + usize::from(l);
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn rdata_text(b: &[u8], t: u16, at: usize, len: usize) -> Result<String, String> {
    let end = at + len;
    let rd = b.get(at..end).ok_or("rdata runs off the message")?;
    let name = |i: usize| -> Result<(String, usize), String> {
        let (n, e) = read_name(b, i)?;
        if e > end {
            return Err("name runs off its rdata".into());
        }
        Ok((n, e))
    };
    let s = match t {
        2 | 5 | 12 => {
            let (n, e) = name(at)?;
            if e != end {
                return Err("junk after a name in rdata".into());
            }
            n
        }
        15 => {
            let (n, e) = name(at + 2)?;
            if e != end {
                return Err("junk after MX".into());
            }
            format!("{} {n}", u16_at(b, at)?)
        }
        33 => {
            let (n, e) = name(at + 6)?;
            if e != end {
                return Err("junk after SRV".into());
            }
            format!(
                "{} {} {} {n}",
                u16_at(b, at)?,
                u16_at(b, at + 2)?,
                u16_at(b, at + 4)?
            )
        }
        6 => {
            let (m, e) = name(at)?;
            let (r, e) = name(e)?;
            if e + 20 != end {
                return Err("bad SOA length".into());
            }
            format!("{m} {r} {}", hex(&b[e..end]))
        }
        _ => hex(rd),
    };
    Ok(s)
}

/// Parses a response strictly: every count honoured, nothing left over.
pub fn parse(b: &[u8]) -> Result<Msg, String> {
    if b.len() < 12 {
        return Err("shorter than a header".into());
    }
    let id = u16_at(b, 0)?;
    let raw = u16_at(b, 2)?;
    let counts = [u16_at(b, 4)?, u16_at(b, 6)?, u16_at(b, 8)?, u16_at(b, 10)?];
    let mut i = 12;
    for _ in 0..counts[0] {
        let (_, e) = read_name(b, i)?;
        i = e + 4;
    }
    if i > b.len() {
        return Err("question runs off the message".into());
    }
    let question = b[12..i].to_vec();
    let mut sections: [Vec<Rr>; 3] = Default::default();
    let mut opt = None;
    let mut rcode = raw & 0xf;
    for (s, &n) in counts[1..].iter().enumerate() {
        for _ in 0..n {
            let (owner, e) = read_name(b, i)?;
            let t = u16_at(b, e)?;
            let class = u16_at(b, e + 2)?;
            let ttl_hi = u16_at(b, e + 4)?;
            let ttl = (u32::from(ttl_hi) << 16) | u32::from(u16_at(b, e + 6)?);
            let len = usize::from(u16_at(b, e + 8)?);
            let at = e + 10;
            if at + len > b.len() {
                return Err("rdata runs off the message".into());
            }
            if t == 41 {
                if s != 2 || opt.is_some() || owner != "." {
                    return Err("misplaced OPT".into());
                }
                rcode |= ((ttl >> 24) as u16) << 4;
                opt = Some((
                    class,
                    (ttl >> 16) as u8,
                    ttl & 0x8000 != 0,
                    hex(&b[at..at + len]),
                ));
            } else {
                let rdata = rdata_text(b, t, at, len)?;
                sections[s].push(Rr {
                    owner,
                    rtype: t,
                    class,
                    ttl,
                    rdata,
                });
            }
            i = at + len;
        }
    }
    if i != b.len() {
        return Err(format!("{} bytes after the last record", b.len() - i));
    }
    for s in &mut sections {
        s.sort();
    }
    let [answer, authority, additional] = sections;
    Ok(Msg {
        id,
        flags: raw & !0xf,
        rcode,
        question,
        answer,
        authority,
        additional,
        opt,
        len: b.len(),
    })
}
