//! The compiled zones: the archive's schema, written at build time by `morgana-dns-zone`
//! and read here, in place, with no parsing and no allocation.
//!
//! Layout decisions:
//! - One [`ZoneSet`] is the archive's root: every zone of the appliance.
//! - A zone's nodes are every owner name with data, every empty non-terminal between
//!   them and the apex (so that NODATA and NXDOMAIN are told apart), node 0 being the
//!   apex. Names are stored in lowercase wire format (uncompressed, absolute).
//! - Nodes are found through an open-addressing hash table ([`Zone::table`], linear
//!   probing, load at most one half) keyed by [`name_hash`] of the lowercase name: one or
//!   two probes whatever the zone's size. The closest encloser of a missing name is found
//!   by looking its ancestors up, which are suffixes of its wire form.
//! - What a lookup needs beyond the node is precomputed: the topmost zone cut at or above
//!   it ([`Node::cut`]), its wildcard child ([`Node::wildcard`]), and for NS, MX and SRV
//!   records the node whose addresses go into the additional section
//!   ([`RRset::targets`]).
//! - RDATA is stored in wire format with its names uncompressed and as written (case
//!   kept); the answer writer compresses the names of the types RFC 3597 lets it.

use alloc::vec::Vec;
use core::fmt;

use rkyv::rancor::Failure;
use rkyv::{Archive, Serialize};

/// "No node": the value of [`Node::cut`], [`Node::wildcard`] and [`RRset::targets`]
/// entries that point nowhere.
pub const NONE: u32 = u32::MAX;

/// Every zone of an appliance: the archive's root.
#[derive(Archive, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ZoneSet {
    /// The zones, in the order they were given.
    pub zones: Vec<Zone>,
}

/// One zone.
#[derive(Archive, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Zone {
    /// The apex, lowercase wire format.
    pub origin: Vec<u8>,
    /// The nodes; node 0 is the apex.
    pub nodes: Vec<Node>,
    /// Hash table over `nodes`: a power-of-two number of slots, each 0 (empty) or a node
    /// index plus one.
    pub table: Vec<u32>,
    /// The TTL of the SOA record sent in the authority section of negative answers: the
    /// smaller of the SOA's own TTL and its MINIMUM field (RFC 2308 §3).
    pub negative_ttl: u32,
}

/// One owner name.
#[derive(Archive, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Node {
    /// The name, lowercase wire format.
    pub name: Vec<u8>,
    /// Its RRsets in zone-file order; empty for an empty non-terminal.
    pub rrsets: Vec<RRset>,
    /// The topmost delegation point (a node other than the apex with NS records) at or
    /// above this node, or [`NONE`].
    pub cut: u32,
    /// The node `*.<this name>`, or [`NONE`].
    pub wildcard: u32,
}

/// The records of one type at one name.
#[derive(Archive, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct RRset {
    /// The record type.
    pub rtype: u16,
    /// The records, in zone-file order.
    pub rrs: Vec<Rr>,
    /// For NS, MX and SRV: per record, the node holding the A/AAAA records of the name in
    /// its RDATA (possibly a wildcard), or [`NONE`]. Empty for other types.
    pub targets: Vec<u32>,
}

/// One record.
#[derive(Archive, Serialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Rr {
    /// Time to live, seconds.
    pub ttl: u32,
    /// RDATA in wire format, names uncompressed.
    pub rdata: Vec<u8>,
}

/// The hash of a wire-format name, ASCII case folded: FNV-1a, 32 bits. The compiler
/// builds [`Zone::table`] with it; lookups hash the query's name, in whatever case.
pub fn name_hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= u32::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Why an archive was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ZonesError {
    /// The bytes are not a valid archive of a [`ZoneSet`] (or are misaligned: an archive
    /// must start on a 16-byte boundary).
    Invalid,
    /// A zone has no node, a table whose size is not a power of two, or an index out of
    /// range.
    Inconsistent,
}

impl fmt::Display for ZonesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZonesError::Invalid => f.write_str("the zone archive is not a valid archive"),
            ZonesError::Inconsistent => f.write_str("the zone archive is inconsistent"),
        }
    }
}

impl core::error::Error for ZonesError {}

/// The zones, read in place from an archive.
#[derive(Clone, Copy)]
pub struct Zones<'a> {
    set: &'a ArchivedZoneSet,
}

impl fmt::Debug for Zones<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zones")
            .field("zones", &self.set.zones.len())
            .finish()
    }
}

impl<'a> Zones<'a> {
    /// Validates `bytes` once (structure, then every index the lookups follow) and gives
    /// access to the zones in place. Allocates nothing.
    pub fn from_bytes(bytes: &'a [u8]) -> Result<Zones<'a>, ZonesError> {
        let set = rkyv::api::low::access::<ArchivedZoneSet, Failure>(bytes)
            .map_err(|_| ZonesError::Invalid)?;
        for zone in set.zones.iter() {
            let n = zone.nodes.len();
            if n == 0 || !zone.table.len().is_power_of_two() {
                return Err(ZonesError::Inconsistent);
            }
            let ok = |i: u32| i == NONE || (i as usize) < n;
            // Every slot points at a node, and one at least is empty so that a probe for
            // a missing name ends.
            if zone.table.iter().any(|s| s.to_native() as usize > n)
                || !zone.table.iter().any(|s| s.to_native() == 0)
            {
                return Err(ZonesError::Inconsistent);
            }
            for node in zone.nodes.iter() {
                if !ok(node.cut.to_native()) || !ok(node.wildcard.to_native()) {
                    return Err(ZonesError::Inconsistent);
                }
                for rrset in node.rrsets.iter() {
                    if rrset.rrs.is_empty()
                        || rrset.targets.iter().any(|t| !ok(t.to_native()))
                        || (!rrset.targets.is_empty() && rrset.targets.len() != rrset.rrs.len())
                    {
                        return Err(ZonesError::Inconsistent);
                    }
                }
            }
        }
        Ok(Zones { set })
    }

    /// The archived zones.
    pub fn zones(&self) -> &'a [ArchivedZone] {
        self.set.zones.as_slice()
    }

    /// How many records the zones hold.
    pub fn record_count(&self) -> usize {
        self.zones()
            .iter()
            .flat_map(|z| z.nodes.iter())
            .flat_map(|n| n.rrsets.iter())
            .map(|r| r.rrs.len())
            .sum()
    }

    /// The zone whose apex is the longest label-aligned suffix of `name` (a valid wire
    /// name, any case), with the offset in `name` where that suffix starts.
    pub fn find_zone(&self, name: &[u8]) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for (zi, zone) in self.zones().iter().enumerate() {
            let origin = zone.origin.as_slice();
            if origin.len() > name.len() {
                continue;
            }
            let at = name.len() - origin.len();
            if best.is_some_and(|(_, b)| b <= at) {
                continue;
            }
            if is_label_start(name, at) && name[at..].eq_ignore_ascii_case(origin) {
                best = Some((zi, at));
            }
        }
        best
    }
}

/// Whether `at` is where a label starts in the wire name `name`.
fn is_label_start(name: &[u8], at: usize) -> bool {
    let mut i = 0;
    while i < at {
        i += usize::from(name[i]) + 1;
    }
    i == at
}

impl ArchivedZone {
    /// The node named `name` (wire format, any case), if it exists.
    pub fn find(&self, name: &[u8]) -> Option<u32> {
        let mask = self.table.len() - 1;
        let mut slot = name_hash(name) as usize & mask;
        loop {
            let v = self.table[slot].to_native();
            if v == 0 {
                return None;
            }
            let i = v - 1;
            if self.nodes[i as usize]
                .name
                .as_slice()
                .eq_ignore_ascii_case(name)
            {
                return Some(i);
            }
            slot = (slot + 1) & mask;
        }
    }

    /// The node `i`.
    pub fn node(&self, i: u32) -> &ArchivedNode {
        &self.nodes[i as usize]
    }
}

impl ArchivedNode {
    /// The RRset of type `rtype`, if any.
    pub fn rrset(&self, rtype: u16) -> Option<(usize, &ArchivedRRset)> {
        self.rrsets
            .iter()
            .enumerate()
            .find(|(_, r)| r.rtype.to_native() == rtype)
    }
}
