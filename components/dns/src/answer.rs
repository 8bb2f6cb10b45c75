//! Answering one query: parse it, look the name up in the zones, write the response into
//! the caller's buffer. Synchronous, allocation-free, bounded in time and stack.
//!
//! The answer is built in two steps, as NSD does it (NSD is the reference the
//! differential test holds this server to): first a *plan*, the RRsets to send and the
//! section of each, in order and without duplicates; then the plan is written, section
//! by section, into a message of the allowed size. An RRset of the answer or authority
//! section that does not fit sets TC and ends the message (RFC 2181 §9: never a part of
//! an RRset); the optional sections (the zone's NS records in the authority section of a
//! positive answer, and the additional section) are left out, RRset by RRset, when they
//! do not fit, without TC — except for a referral that would carry no address at all.

use crate::wire::{self, Full, HEADER_LEN, Writer, class, rcode, rtype};
use crate::zones::{ArchivedRRset, ArchivedZone, NONE, Zones};

/// Over which transport the query came, which decides how large the response may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// UDP from an IPv4 or IPv6 peer.
    Udp {
        /// Whether the peer is IPv6 (the additional section then lists AAAA before A).
        ipv6: bool,
    },
    /// TCP: up to 65,535 bytes.
    Tcp,
}

/// Tunables of the answering code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerConfig {
    /// The largest UDP response sent to an EDNS client, and the size advertised in the
    /// OPT record (RFC 6891 §6.2.5; 1232 avoids IP fragmentation on every usual path).
    pub udp_payload: u16,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        AnswerConfig {
            udp_payload: DEFAULT_UDP_PAYLOAD,
        }
    }
}

/// The default [`AnswerConfig::udp_payload`], as NSD's and BIND's.
pub const DEFAULT_UDP_PAYLOAD: u16 = 1232;

/// The most CNAME records followed for one answer (a chain loop ends earlier, when a
/// CNAME comes round again).
pub const MAX_CNAME_CHAIN: u32 = 16;

/// The most RRsets one answer is planned with (further additional data is left out).
const MAX_PLAN: usize = 96;

/// How much room a response keeps for its OPT record.
const OPT_LEN: usize = 11;

/// Extended DNS Error codes (RFC 8914) the server sends.
const EDE_NOT_AUTHORITATIVE: u16 = 20;
const EDE_NOT_SUPPORTED: u16 = 21;

// The sections of a plan, in the order they are written.
const ANSWER: u8 = 0;
const AUTHORITY: u8 = 1;
const OPTIONAL_AUTHORITY: u8 = 2;
const ADDITIONAL_A: u8 = 3;
const ADDITIONAL_AAAA: u8 = 4;
const SECTIONS: u8 = 5;

/// What the EDNS OPT record of a query said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Edns {
    payload: u16,
    version: u8,
    dnssec_ok: bool,
}

/// A query that passed the format checks.
struct Query<'q> {
    id: u16,
    /// RD, copied into the response (CD is not: there is no DNSSEC validation to skip).
    flags: u16,
    /// The question's name, as sent.
    qname: &'q [u8],
    /// The whole question section, as sent.
    question: &'q [u8],
    qtype: u16,
    qclass: u16,
    edns: Option<Edns>,
}

/// Parses `msg`; `Err(None)` means drop it, `Err(Some(..))` a header-only error response.
fn parse(msg: &[u8]) -> Result<Query<'_>, Option<(u16, u16, u8)>> {
    let (Some(id), Some(flags)) = (wire::u16_at(msg, 0), wire::u16_at(msg, 2)) else {
        return Err(None);
    };
    if msg.len() < HEADER_LEN || flags & 0x8000 != 0 {
        // Too short to answer, or a response: never answer those.
        return Err(None);
    }
    let opcode = (flags >> 11) & 0xf;
    let keep = (flags & 0x7800) | (flags & 0x0100);
    if opcode != 0 {
        return Err(Some((id, keep, rcode::NOTIMP)));
    }
    let formerr = Some((id, keep, rcode::FORMERR));
    let count = |at| wire::u16_at(msg, at).unwrap_or(0);
    if count(4) != 1 {
        // Not one question: nothing of the header is kept (as NSD).
        return Err(Some((id, 0, rcode::FORMERR)));
    }
    if count(6) != 0 || count(8) != 0 {
        return Err(formerr);
    }
    let qend = wire::skip_plain_name(msg, HEADER_LEN).ok_or(formerr)?;
    let (Some(qtype), Some(qclass)) = (wire::u16_at(msg, qend), wire::u16_at(msg, qend + 2)) else {
        return Err(formerr);
    };
    let mut at = qend + 4;
    let mut edns = None;
    for _ in 0..count(10) {
        let name_end = wire::skip_name(msg, at).ok_or(formerr)?;
        let (Some(t), Some(c), Some(ttl), Some(rdlen)) = (
            wire::u16_at(msg, name_end),
            wire::u16_at(msg, name_end + 2),
            wire::u32_at(msg, name_end + 4),
            wire::u16_at(msg, name_end + 8),
        ) else {
            return Err(formerr);
        };
        let rdata = name_end + 10;
        let end = rdata + usize::from(rdlen);
        if end > msg.len() || t != rtype::OPT || edns.is_some() || msg[at] != 0 {
            // Only one OPT record, owned by the root, may follow a query (no TSIG).
            return Err(formerr);
        }
        // The options must exactly fill the RDATA.
        let mut o = rdata;
        while o < end {
            let len = wire::u16_at(msg, o + 2).ok_or(formerr)?;
            o += 4 + usize::from(len);
        }
        if o != end {
            return Err(formerr);
        }
        edns = Some(Edns {
            payload: c,
            version: (ttl >> 16) as u8,
            dnssec_ok: ttl & 0x8000 != 0,
        });
        at = end;
    }
    // Bytes after the last record are ignored, as NSD does (some middleboxes pad).
    Ok(Query {
        id,
        flags: flags & 0x0100,
        qname: &msg[HEADER_LEN..qend],
        question: &msg[HEADER_LEN..qend + 4],
        qtype,
        qclass,
        edns,
    })
}

/// Answers the query in `query`, writing the response into `out`, and returns its
/// length; `None` means send nothing (too short to answer, or not a query at all).
///
/// `out` should hold 65,535 bytes for TCP and `config.udp_payload` (at least 512) for
/// UDP; a smaller buffer only makes responses truncate earlier. Nothing is allocated.
pub fn respond(
    zones: &Zones<'_>,
    query: &[u8],
    out: &mut [u8],
    transport: Transport,
    config: &AnswerConfig,
) -> Option<usize> {
    let q = match parse(query) {
        Ok(q) => q,
        Err(None) => return None,
        Err(Some((id, flags, code))) => return header_only(out, id, flags, code),
    };
    let max = match (transport, q.edns) {
        (Transport::Tcp, _) => 65_535,
        (Transport::Udp { .. }, None) => 512,
        (Transport::Udp { .. }, Some(e)) => {
            usize::from(e.payload.clamp(512, config.udp_payload.max(512)))
        }
    };
    if out.len() < 512.min(max) {
        return None;
    }
    let reserve = if q.edns.is_some() { OPT_LEN } else { 0 };
    let mut w = Writer::new(out, max - reserve);
    let mut head = [0u8; HEADER_LEN];
    head[..2].copy_from_slice(&q.id.to_be_bytes());
    head[5] = 1;
    w.put(&head).ok()?;
    w.put(q.question).ok()?;
    w.remember_name(HEADER_LEN);

    let mut flags = 0x8000 | q.flags;
    let mut r = Resolver::new(zones, &q, transport);
    let mut ede = None;
    let mut counts = [0u16; 3];
    if let Some(e) = q.edns.filter(|e| e.version != 0) {
        // RFC 6891 §6.1.3: BADVERS, with our OPT record, nothing else.
        w.set_limit(max);
        finish_opt(&mut w, config, e.dnssec_ok, rcode::BADVERS, None)?;
        w.patch_u16(2, flags);
        w.patch_u16(10, 1);
        return Some(w.len());
    }
    if q.qclass != class::IN && q.qclass != class::ANY {
        r.rcode = rcode::REFUSED;
        ede = Some(EDE_NOT_SUPPORTED);
    } else if q.qtype == rtype::AXFR || q.qtype == rtype::IXFR {
        // No zone transfers: not over UDP at all, and refused over TCP (NSD's answers
        // without a `provide-xfr`).
        r.rcode = match transport {
            Transport::Udp { .. } => rcode::NOTIMP,
            Transport::Tcp => rcode::REFUSED,
        };
    } else {
        r.lookup(q.qname, Owner::Qname);
        if r.rcode == rcode::REFUSED {
            ede = Some(EDE_NOT_AUTHORITATIVE);
        }
        counts = r.encode(&mut w, transport);
        if r.aa {
            flags |= 0x0400;
        }
        if r.tc {
            flags |= 0x0200;
        }
    }
    flags |= u16::from(r.rcode);
    w.set_limit(max);
    if let Some(e) = q.edns {
        finish_opt(&mut w, config, e.dnssec_ok, 0, ede)?;
        counts[2] += 1;
    }
    w.patch_u16(2, flags);
    w.patch_u16(6, counts[0]);
    w.patch_u16(8, counts[1]);
    w.patch_u16(10, counts[2]);
    Some(w.len())
}

fn header_only(out: &mut [u8], id: u16, flags: u16, code: u8) -> Option<usize> {
    let h = out.get_mut(..HEADER_LEN)?;
    h.fill(0);
    h[..2].copy_from_slice(&id.to_be_bytes());
    h[2..4].copy_from_slice(&(0x8000 | flags | u16::from(code)).to_be_bytes());
    Some(HEADER_LEN)
}

/// Appends our OPT record (RFC 6891 §6.1.2): our payload size, the extended RCODE's
/// upper bits, version 0, DO copied from the query (RFC 3225 §3), and an Extended DNS
/// Error option when there is one.
fn finish_opt(
    w: &mut Writer<'_>,
    config: &AnswerConfig,
    dnssec_ok: bool,
    ext_rcode: u16,
    ede: Option<u16>,
) -> Option<()> {
    w.put(&[0]).ok()?;
    w.u16(rtype::OPT).ok()?;
    w.u16(config.udp_payload.max(512)).ok()?;
    let ttl = (u32::from(ext_rcode >> 4) << 24) | if dnssec_ok { 0x8000 } else { 0 };
    w.u32(ttl).ok()?;
    match ede {
        Some(code) if w.u16(6).is_ok() && w.u16(15).is_ok() && w.u16(2).is_ok() => w.u16(code).ok(),
        Some(_) => None,
        None => w.u16(0).ok(),
    }
}

/// The owner name an RRset is written with.
#[derive(Clone, Copy, Debug)]
enum Owner<'z> {
    /// The question's name (a pointer to it).
    Qname,
    /// A name from the zones (a CNAME's target, a cut, the apex, an RDATA name).
    Name(&'z [u8]),
}

#[derive(Clone, Copy, Debug)]
struct Entry<'z> {
    section: u8,
    owner: Owner<'z>,
    zone: u16,
    node: u32,
    rrset: u16,
    /// The SOA of a negative answer (its TTL is the zone's negative TTL).
    negative: bool,
}

struct Resolver<'z, 'q> {
    zones: &'q Zones<'z>,
    qname: &'q [u8],
    qtype: u16,
    class_any: bool,
    transport: Transport,
    plan: [Entry<'z>; MAX_PLAN],
    len: usize,
    rcode: u8,
    aa: bool,
    tc: bool,
    cname_count: u32,
    delegation: bool,
}

impl<'z, 'q> Resolver<'z, 'q> {
    fn new(zones: &'q Zones<'z>, q: &Query<'q>, transport: Transport) -> Self {
        Resolver {
            zones,
            qname: q.qname,
            qtype: q.qtype,
            class_any: q.qclass == class::ANY,
            transport,
            plan: [Entry {
                section: 0,
                owner: Owner::Qname,
                zone: 0,
                node: 0,
                rrset: 0,
                negative: false,
            }; MAX_PLAN],
            len: 0,
            rcode: rcode::NOERROR,
            aa: false,
            tc: false,
            cname_count: 0,
            delegation: false,
        }
    }

    fn zone(&self, zi: usize) -> &'z ArchivedZone {
        &self.zones.zones()[zi]
    }

    fn owner_bytes(&self, o: Owner<'z>) -> &[u8] {
        match o {
            Owner::Qname => self.qname,
            Owner::Name(n) => n,
        }
    }

    /// RFC 1034 §4.3.2 for `name`, found as `owner`.
    fn lookup(&mut self, name: &[u8], owner: Owner<'z>) {
        let Some((zi, apex_at)) = self.zones.find_zone(name) else {
            if self.cname_count == 0 {
                self.rcode = rcode::REFUSED;
            }
            return;
        };
        let zone = self.zone(zi);
        let mut starts = [0u8; 128];
        let n = wire::label_starts(name, &mut starts);
        let mut found = (0, apex_at == 0);
        for (k, &s) in starts[..n].iter().enumerate() {
            let s = usize::from(s);
            if s >= apex_at {
                break;
            }
            if let Some(i) = zone.find(&name[s..]) {
                found = (i, k == 0);
                break;
            }
        }
        let (ni, exact) = found;
        let node = zone.node(ni);
        let cut = node.cut.to_native();
        if exact && self.qtype == rtype::DS && ni == 0 {
            // DS at our apex belongs to the parent zone, which we do not serve.
            self.aa = !self.class_any;
            self.negative(zi);
            return;
        }
        if cut != NONE && !(exact && self.qtype == rtype::DS && ni == cut) {
            // A referral; DS at the cut itself is the parent's data, answered below.
            self.aa = self.cname_count > 0;
            self.delegation = true;
            let cutnode = zone.node(cut);
            if let Some((ri, _)) = cutnode.rrset(rtype::NS) {
                self.add(
                    AUTHORITY,
                    Owner::Name(cutnode.name.as_slice()),
                    zi,
                    cut,
                    ri,
                    false,
                );
            }
            return;
        }
        self.aa = !self.class_any;
        let matched = if exact {
            ni
        } else if node.wildcard.to_native() != NONE {
            // RFC 4592: the wildcard answers, with the name asked for as owner.
            node.wildcard.to_native()
        } else {
            self.rcode = rcode::NXDOMAIN;
            self.negative(zi);
            return;
        };
        self.answer_node(zi, matched, owner);
    }

    fn answer_node(&mut self, zi: usize, ni: u32, owner: Owner<'z>) {
        let zone = self.zone(zi);
        let node = zone.node(ni);
        if self.qtype == rtype::ANY {
            // RFC 8482 §4.1: one RRset, a small and popular one when there is one.
            let mut preferred = None;
            let mut normal = None;
            for (i, rs) in node.rrsets.iter().enumerate() {
                match rs.rtype.to_native() {
                    rtype::A | rtype::AAAA | rtype::SOA | rtype::MX | rtype::PTR => {
                        preferred = Some(i);
                        break;
                    }
                    _ => normal = Some(i),
                }
            }
            match preferred.or(normal) {
                Some(ri) => {
                    self.add(ANSWER, owner, zi, ni, ri, false);
                }
                None => self.negative(zi),
            }
            return;
        }
        if let Some((ri, _)) = node.rrset(self.qtype) {
            self.add(ANSWER, owner, zi, ni, ri, false);
            if !self.class_any && self.qtype != rtype::DS && self.qtype != rtype::DNSKEY {
                let apex = zone.node(0);
                if let Some((nsi, _)) = apex.rrset(rtype::NS) {
                    let apex_name = Owner::Name(apex.name.as_slice());
                    self.add(OPTIONAL_AUTHORITY, apex_name, zi, 0, nsi, false);
                }
            }
            return;
        }
        if let Some((ri, rs)) = node.rrset(rtype::CNAME) {
            // A CNAME that is already in the answer closes a loop: stop there.
            if self.add(ANSWER, owner, zi, ni, ri, false) {
                self.cname_count += 1;
                if self.cname_count < MAX_CNAME_CHAIN {
                    let target = rs.rrs[0].rdata.as_slice();
                    if wire::skip_plain_name(target, 0) == Some(target.len()) {
                        self.lookup(target, Owner::Name(target));
                    }
                }
            }
            return;
        }
        self.negative(zi);
    }

    /// The SOA for a negative answer (RFC 2308 §3), unless the query's class is ANY.
    fn negative(&mut self, zi: usize) {
        if self.class_any {
            return;
        }
        let apex = self.zone(zi).node(0);
        if let Some((ri, _)) = apex.rrset(rtype::SOA) {
            self.add(
                AUTHORITY,
                Owner::Name(apex.name.as_slice()),
                zi,
                0,
                ri,
                true,
            );
        }
    }

    /// Plans an RRset, once; returns whether it was new (or moved to an earlier section).
    /// NS, MX and SRV bring the addresses of the names in their RDATA.
    fn add(
        &mut self,
        section: u8,
        owner: Owner<'z>,
        zi: usize,
        ni: u32,
        ri: usize,
        negative: bool,
    ) -> bool {
        let (zone16, ri16) = (zi as u16, ri as u16);
        for k in 0..self.len {
            let e = self.plan[k];
            if e.zone == zone16
                && e.node == ni
                && e.rrset == ri16
                && e.negative == negative
                && self
                    .owner_bytes(e.owner)
                    .eq_ignore_ascii_case(self.owner_bytes(owner))
            {
                if section < e.section {
                    self.plan[k].section = section;
                    return true;
                }
                return false;
            }
        }
        if self.len == MAX_PLAN {
            return false;
        }
        self.plan[self.len] = Entry {
            section,
            owner,
            zone: zone16,
            node: ni,
            rrset: ri16,
            negative,
        };
        self.len += 1;
        let zone = self.zone(zi);
        let rrset = &zone.node(ni).rrsets[ri];
        let name_at = match rrset.rtype.to_native() {
            rtype::NS => 0,
            rtype::MX => 2,
            rtype::SRV => 6,
            _ => return true,
        };
        let (first, second) = match self.transport {
            Transport::Udp { ipv6: true } => (rtype::AAAA, rtype::A),
            _ => (rtype::A, rtype::AAAA),
        };
        for (rr, t) in rrset.rrs.iter().zip(rrset.targets.iter()) {
            let t = t.to_native();
            if t == NONE {
                continue;
            }
            let Some(target) = rr.rdata.get(name_at..) else {
                continue;
            };
            let tnode = zone.node(t);
            for (sec, ty) in [(ADDITIONAL_A, first), (ADDITIONAL_AAAA, second)] {
                if let Some((ti, _)) = tnode.rrset(ty) {
                    self.add(sec, Owner::Name(target), zi, t, ti, false);
                }
            }
        }
        true
    }

    /// Writes the plan; returns the answer, authority and additional counts.
    fn encode(&mut self, w: &mut Writer<'_>, transport: Transport) -> [u16; 3] {
        let minimal = match transport {
            Transport::Udp { ipv6: false } => Some(1232),
            Transport::Udp { ipv6: true } => Some(1220),
            Transport::Tcp => None,
        };
        let mut per = [0u16; SECTIONS as usize];
        let mut done = false;
        for section in 0..SECTIONS {
            if self.tc {
                break;
            }
            for k in 0..self.len {
                if self.tc {
                    break;
                }
                let e = self.plan[k];
                if e.section != section {
                    continue;
                }
                let zone = self.zone(usize::from(e.zone));
                let rrset = &zone.node(e.node).rrsets[usize::from(e.rrset)];
                let mark = w.mark();
                let mut added = 0u16;
                let mut all = true;
                for rr in rrset.rrs.iter() {
                    let ttl = if e.negative {
                        zone.negative_ttl.to_native()
                    } else {
                        rr.ttl.to_native()
                    };
                    if write_rr(w, e.owner, rrset, ttl, rr.rdata.as_slice()).is_err() {
                        all = false;
                        break;
                    }
                    added += 1;
                }
                if section >= OPTIONAL_AUTHORITY && minimal.is_some_and(|m| !all || w.len() > m) {
                    // Optional data that does not fit is left out, without TC.
                    w.rollback(mark);
                    added = 0;
                    done = true;
                } else if !all && section <= AUTHORITY {
                    w.rollback(mark);
                    added = 0;
                    self.tc = true;
                }
                per[usize::from(section)] += added;
            }
            if done {
                // A referral must carry an address of its name servers when it has any.
                if section == ADDITIONAL_A && per[usize::from(ADDITIONAL_A)] == 0 && self.delegation
                {
                    self.tc = true;
                }
                break;
            }
        }
        [per[0], per[1] + per[2], per[3] + per[4]]
    }
}

/// Writes one record; on `Full` the message is as before.
fn write_rr(
    w: &mut Writer<'_>,
    owner: Owner<'_>,
    rrset: &ArchivedRRset,
    ttl: u32,
    rdata: &[u8],
) -> Result<(), Full> {
    let mark = w.mark();
    let r = (|| {
        match owner {
            Owner::Qname => w.pointer(HEADER_LEN as u16)?,
            Owner::Name(n) => w.name(n, true)?,
        }
        let t = rrset.rtype.to_native();
        w.u16(t)?;
        w.u16(class::IN)?;
        w.u32(ttl)?;
        let len_at = w.len();
        w.u16(0)?;
        // Names in the RDATA of the RFC 1035 types are compressed (RFC 3597 §4).
        let name_end = |at: usize| wire::skip_plain_name(rdata, at).ok_or(Full);
        match t {
            rtype::NS | rtype::CNAME | rtype::PTR => w.name(rdata, true)?,
            rtype::MX => {
                w.put(rdata.get(..2).ok_or(Full)?)?;
                w.name(&rdata[2..], true)?;
            }
            rtype::SOA => {
                let m = name_end(0)?;
                let r = name_end(m)?;
                w.name(&rdata[..m], true)?;
                w.name(&rdata[m..r], true)?;
                w.put(&rdata[r..])?;
            }
            _ => w.put(rdata)?,
        }
        let len = w.len() - len_at - 2;
        w.patch_u16(len_at, len as u16);
        Ok(())
    })();
    if r.is_err() {
        w.rollback(mark);
    }
    r
}
