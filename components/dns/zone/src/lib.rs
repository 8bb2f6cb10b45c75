//! The zone compiler of Morgana's DNS server (host, build time).
//!
//! [`compile`] reads RFC 1035 §5 master files, checks them, and compiles them into the
//! rkyv archive the server reads in place ([`morgana_dns::zones::ZoneSet`] is its root).
//! Everything wrong is reported at once, as [`Diagnostic`]s carrying the file, line,
//! column, byte range, message and a fix, for the appliance compiler to render like its
//! own.
//!
//! ```no_run
//! let text = std::fs::read_to_string("example.com.zone").unwrap();
//! let zones = [morgana_dns_zone::ZoneFile { path: "example.com.zone", text: &text, origin: None }];
//! match morgana_dns_zone::compile(&zones) {
//!     Ok(c) => std::fs::write("zones.bin", &c.archive).unwrap(), // embed 16-byte aligned
//!     Err(diags) => for d in diags { eprint!("{}", d.render(&text)) },
//! }
//! ```
//!
//! # The master-file format read
//!
//! `$ORIGIN`, `$TTL` (seconds or BIND's units: `1h30m`, `2d`, `1w`), relative names,
//! `@`, omitted owners (a line starting with a blank), omitted class and TTL (in either
//! order), parentheses, `;` comments, quoted strings, `\X` and `\DDD` escapes. Record
//! types SOA, NS, A, AAAA, CNAME, MX, TXT, SRV, PTR, CAA, and any other type in the
//! generic form of RFC 3597 (`TYPE99 \# 3 abcdef`). Not read: `$INCLUDE`, `$GENERATE`,
//! classes other than IN. A record without a TTL takes `$TTL`, else the last TTL
//! written (RFC 1035 §5.1); with neither it is an error.
//!
//! # The checks
//!
//! Errors: syntax, exactly one SOA and at the apex, NS records at the apex, a CNAME
//! beside other data or a second CNAME at one name (RFC 1034 §3.6.2, RFC 2181 §10.1),
//! data outside the zone, duplicate records, names over 255 bytes or labels over 63,
//! TTLs over 2^31 - 1, one zone given twice. Warnings: TTLs differing inside an RRset
//! (RFC 2181 §5.2; each record keeps its own, as NSD does), data hidden below a zone cut
//! (other than address glue).
#![deny(unsafe_code)]
#![warn(missing_docs)]

mod compiler;
mod diag;
mod parse;

use std::collections::HashMap;

use morgana_dns::wire::rtype;
use morgana_dns::zones::{NONE, Node, RRset, Rr, Zone, ZoneSet, name_hash};

pub use compiler::{COMPILER, ZoneCompiler};
pub use diag::{Diagnostic, Label, Level, Span};
pub use parse::{Parsed, Record, name_text};

/// One zone file to compile.
#[derive(Clone, Copy, Debug)]
pub struct ZoneFile<'a> {
    /// The path shown in diagnostics.
    pub path: &'a str,
    /// The file's text.
    pub text: &'a str,
    /// The zone's name (`example.com.`); `None` takes the file's first `$ORIGIN`.
    pub origin: Option<&'a str>,
}

/// What [`compile`] made.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The archive: a [`ZoneSet`] as rkyv bytes. Embed it at a 16-byte aligned address
    /// (e.g. in `morgana_dns::Aligned`) and open it with `morgana_dns::Zones::from_bytes`.
    pub archive: Vec<u8>,
    /// One line per zone.
    pub zones: Vec<ZoneSummary>,
    /// Warnings (the zones were compiled anyway).
    pub warnings: Vec<Diagnostic>,
}

/// What one compiled zone holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneSummary {
    /// The zone's name, presentation format.
    pub origin: String,
    /// Records.
    pub records: usize,
    /// Names (owner names and empty non-terminals).
    pub nodes: usize,
}

/// Parses, checks and compiles `files` into one archive. On error, returns every
/// diagnostic (errors and warnings), each file's in file order.
pub fn compile(files: &[ZoneFile<'_>]) -> Result<Compiled, Vec<Diagnostic>> {
    let (set, zones, diags) = build(files);
    if diags.iter().any(|d| d.level == Level::Error) {
        return Err(diags);
    }
    let archive = rkyv::to_bytes::<rkyv::rancor::Error>(&set)
        .map(|b| b.to_vec())
        .map_err(|e| {
            vec![Diagnostic::error(
                files.first().map_or("", |f| f.path),
                Span {
                    lo: 0,
                    hi: 0,
                    line: 1,
                    col: 1,
                },
                format!("cannot write the zone archive: {e}"),
            )]
        })?;
    Ok(Compiled {
        archive,
        zones,
        warnings: diags,
    })
}

/// Parses, checks and compiles `files` into a [`ZoneSet`] (not serialised), with every
/// diagnostic. The set is only meaningful when no diagnostic is an error.
pub fn build(files: &[ZoneFile<'_>]) -> (ZoneSet, Vec<ZoneSummary>, Vec<Diagnostic>) {
    let mut all = Vec::new();
    let mut set = ZoneSet::default();
    let mut summaries = Vec::new();
    let mut seen: HashMap<Vec<u8>, &str> = HashMap::new();
    for f in files {
        let mut diags = Vec::new();
        let origin = match f.origin {
            Some(o) => match parse::parse_name(o, Some(&[0])) {
                Ok(w) => Some(w.to_ascii_lowercase()),
                Err((m, h)) => {
                    all.push(
                        Diagnostic::error(
                            f.path,
                            start(),
                            format!("the zone's name `{o}` is invalid: {m}"),
                        )
                        .help(h),
                    );
                    continue;
                }
            },
            None => None,
        };
        let parsed = parse::parse_file(f.path, f.text, origin, &mut diags);
        if parsed.origin.is_empty() {
            diags.push(
                Diagnostic::error(f.path, start(), "cannot tell which zone this file is")
                    .label("no `$ORIGIN` before the records")
                    .help("add `$ORIGIN example.com.` (the zone's name) as the first line, or name the zone in appliance.ron (`origins: [\"example.com.\"]`, one per zone file)"),
            );
        } else if let Some(other) = seen.insert(parsed.origin.clone(), f.path) {
            diags.push(
                Diagnostic::error(
                    f.path,
                    start(),
                    format!("zone `{}` is given twice", name_text(&parsed.origin)),
                )
                .help(format!(
                    "it is also `{other}`: serve each zone from one file"
                )),
            );
        } else {
            // Zone-wide checks (SOA, NS, ...) only on a file that parsed: a record that
            // did not parse would only show up again as missing.
            let syntax_ok = !diags.iter().any(|d| d.level == Level::Error);
            check(f.path, &parsed, syntax_ok, &mut diags);
            if !diags.iter().any(|d| d.level == Level::Error) {
                let zone = compile_zone(&parsed);
                summaries.push(ZoneSummary {
                    origin: name_text(&parsed.origin),
                    records: parsed.records.len(),
                    nodes: zone.nodes.len(),
                });
                set.zones.push(zone);
            }
        }
        diags.sort_by_key(|d| (d.primary.span.lo, d.level == Level::Warning));
        all.extend(diags);
    }
    (set, summaries, all)
}

fn start() -> Span {
    Span {
        lo: 0,
        hi: 0,
        line: 1,
        col: 1,
    }
}

/// Whether `name` is `origin` or below it (both lowercase wire).
fn in_zone(name: &[u8], origin: &[u8]) -> bool {
    if name.len() < origin.len() || !name.ends_with(origin) {
        return false;
    }
    let at = name.len() - origin.len();
    let mut i = 0;
    while i < at {
        i += usize::from(name[i]) + 1;
    }
    i == at
}

/// The parent of a wire name (`None` for the root).
fn parent(name: &[u8]) -> Option<&[u8]> {
    match name.first() {
        Some(0) | None => None,
        Some(&l) => name.get(usize::from(l) + 1..),
    }
}

/// Where the RDATA of `rt` holds the name used for additional-section processing.
fn target_at(rt: u16) -> Option<usize> {
    match rt {
        rtype::NS => Some(0),
        rtype::MX => Some(2),
        rtype::SRV => Some(6),
        _ => None,
    }
}

/// RDATA with its names lowercased, to compare records (RFC 4034 §6.2's canonical form
/// for the types that hold names).
fn canonical_rdata(rt: u16, rdata: &[u8]) -> Vec<u8> {
    let mut v = rdata.to_vec();
    let names_from = match rt {
        rtype::NS | rtype::CNAME | rtype::PTR => Some((0, rdata.len())),
        rtype::MX => Some((2, rdata.len())),
        rtype::SRV => Some((6, rdata.len())),
        rtype::SOA => Some((0, rdata.len().saturating_sub(20))),
        _ => None,
    };
    if let Some((a, b)) = names_from
        && let Some(s) = v.get_mut(a..b)
    {
        s.make_ascii_lowercase();
    }
    v
}

fn check(file: &str, z: &Parsed, complete: bool, diags: &mut Vec<Diagnostic>) {
    let origin = &z.origin;
    let zname = name_text(origin);
    let mut first_soa: Option<&Record> = None;
    let mut by_owner: HashMap<&[u8], Vec<&Record>> = HashMap::new();
    for r in &z.records {
        if !in_zone(&r.owner, origin) {
            diags.push(
                Diagnostic::error(file, r.span, format!("`{}` is outside the zone `{zname}`", r.owner_text))
                    .label("not at or below the zone's name")
                    .help(format!("write names relative to `{zname}` (no final `.`), or move this record to the zone it belongs to")),
            );
            continue;
        }
        if r.rtype == rtype::SOA {
            if r.owner != *origin {
                diags.push(
                    Diagnostic::error(
                        file,
                        r.type_span,
                        format!("SOA record at `{}`, below the apex", r.owner_text),
                    )
                    .label("an SOA belongs at the zone's apex only")
                    .help(format!(
                        "write it as `@ SOA ...` for `{zname}`, or remove it"
                    )),
                );
                continue;
            }
            if let Some(f) = first_soa {
                diags.push(
                    Diagnostic::error(file, r.type_span, "a second SOA record")
                        .label("the zone already has one")
                        .secondary(f.type_span, "the first SOA")
                        .help("a zone has exactly one SOA record: remove one"),
                );
                continue;
            }
            first_soa = Some(r);
        }
        by_owner.entry(r.owner.as_slice()).or_default().push(r);
    }
    if first_soa.is_none() && complete {
        diags.push(
            Diagnostic::error(file, start(), format!("zone `{zname}` has no SOA record"))
                .help(format!("add `@ IN SOA ns1.{zname} hostmaster.{zname} 1 7200 3600 1209600 300` after `$ORIGIN`")),
        );
    }
    let apex_ns = by_owner
        .get(origin.as_slice())
        .is_some_and(|rs| rs.iter().any(|r| r.rtype == rtype::NS));
    if !apex_ns && complete {
        let at = first_soa.map_or(start(), |s| s.span);
        diags.push(
            Diagnostic::error(
                file,
                at,
                format!("zone `{zname}` has no NS records at its apex"),
            )
            .label("the apex")
            .help(format!(
                "add the zone's name servers: `@ IN NS ns1.{zname}`"
            )),
        );
    }
    // Zone cuts: names other than the apex with NS records.
    let cuts: Vec<&[u8]> = by_owner
        .iter()
        .filter(|(o, rs)| **o != origin.as_slice() && rs.iter().any(|r| r.rtype == rtype::NS))
        .map(|(o, _)| *o)
        .collect();
    let mut owners: Vec<&&[u8]> = by_owner.keys().collect();
    owners.sort_by_cached_key(|o| by_owner[**o][0].span.lo);
    for owner in owners {
        let rs = &by_owner[*owner];
        let cname = rs.iter().find(|r| r.rtype == rtype::CNAME);
        let mut seen: HashMap<(u16, Vec<u8>), &Record> = HashMap::new();
        let mut ttls: HashMap<u16, &Record> = HashMap::new();
        let mut cname_reported = false;
        for r in rs {
            if let Some(c) = cname
                && !std::ptr::eq(*r, *c)
            {
                if std::mem::replace(&mut cname_reported, true) {
                    continue;
                }
                let (later, earlier) = if r.span.lo > c.span.lo {
                    (*r, *c)
                } else {
                    (*c, *r)
                };
                if r.rtype == rtype::CNAME {
                    diags.push(
                        Diagnostic::error(
                            file,
                            later.type_span,
                            format!("a second CNAME at `{}`", r.owner_text),
                        )
                        .label("a name has one CNAME at most")
                        .secondary(earlier.type_span, "the first one")
                        .help(
                            "keep one CNAME: a name is an alias of one name only (RFC 2181 §10.1)",
                        ),
                    );
                } else {
                    diags.push(
                        Diagnostic::error(file, later.type_span, format!("CNAME beside other data at `{}`", r.owner_text))
                            .label(if later.rtype == rtype::CNAME { "this CNAME" } else { "this record" })
                            .secondary(earlier.type_span, if earlier.rtype == rtype::CNAME { "the CNAME" } else { "other data" })
                            .help("a name with a CNAME can have no other record (RFC 1034 §3.6.2): remove the CNAME, or move the other records to its target"),
                    );
                }
                continue;
            }
            if let Some(first) = seen.insert((r.rtype, canonical_rdata(r.rtype, &r.rdata)), r) {
                diags.push(
                    Diagnostic::error(
                        file,
                        r.span,
                        format!("duplicate record at `{}`", r.owner_text),
                    )
                    .label("the same type and data again")
                    .secondary(first.span, "first written here")
                    .help("remove one of them"),
                );
                continue;
            }
            match ttls.get(&r.rtype) {
                Some(first) if first.ttl != r.ttl => diags.push(
                    Diagnostic::warning(file, r.span, format!("TTL {} differs from the {} of the RRset's first record", r.ttl, first.ttl))
                        .label("another TTL in the same RRset")
                        .secondary(first.span, "the RRset's first record")
                        .help("give every record of an RRset the same TTL (RFC 2181 §5.2); resolvers may use the smallest"),
                ),
                Some(_) => {}
                None => {
                    ttls.insert(r.rtype, r);
                }
            }
        }
        // Occluded data below (or at) a zone cut.
        let below = cuts
            .iter()
            .find(|c| in_zone(owner, c) && c.len() != owner.len());
        for r in rs {
            let at_cut = cuts.contains(owner);
            let hidden = match (below, at_cut) {
                (Some(_), _) => r.rtype != rtype::A && r.rtype != rtype::AAAA,
                (None, true) => r.rtype != rtype::NS,
                _ => false,
            };
            if hidden {
                let cut = below.map_or((*owner).to_vec(), |c| c.to_vec());
                diags.push(
                    Diagnostic::warning(file, r.type_span, format!("this record is hidden by the delegation at `{}`", name_text(&cut)))
                        .label("never answered: queries get a referral")
                        .help("below a zone cut only the name servers' addresses (glue) are used; move the record to the delegated zone"),
                );
            }
        }
    }
}

fn compile_zone(z: &Parsed) -> Zone {
    let origin = z.origin.clone();
    let mut index: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut nodes: Vec<Node> = Vec::new();
    let ensure = |name: &[u8], nodes: &mut Vec<Node>, index: &mut HashMap<Vec<u8>, u32>| -> u32 {
        // The name and every ancestor down to the apex (empty non-terminals).
        let mut chain = Vec::new();
        let mut n = Some(name);
        while let Some(x) = n {
            if index.contains_key(x) || x.len() < origin.len() {
                break;
            }
            chain.push(x.to_vec());
            n = parent(x);
        }
        for x in chain.into_iter().rev() {
            index.insert(x.clone(), nodes.len() as u32);
            nodes.push(Node {
                name: x,
                rrsets: Vec::new(),
                cut: NONE,
                wildcard: NONE,
            });
        }
        index[name]
    };
    ensure(&origin, &mut nodes, &mut index);
    for r in &z.records {
        let i = ensure(&r.owner, &mut nodes, &mut index) as usize;
        let node = &mut nodes[i];
        let rr = Rr {
            ttl: r.ttl,
            rdata: r.rdata.clone(),
        };
        match node.rrsets.iter_mut().find(|s| s.rtype == r.rtype) {
            Some(s) => s.rrs.push(rr),
            None => node.rrsets.push(RRset {
                rtype: r.rtype,
                rrs: vec![rr],
                targets: Vec::new(),
            }),
        }
    }
    let has_ns = |n: &Node| n.rrsets.iter().any(|s| s.rtype == rtype::NS);
    // Topmost cut at or above each node, and wildcard children.
    let cut_of = |name: &[u8], nodes: &[Node]| -> u32 {
        let mut found = NONE;
        let mut n = Some(name);
        while let Some(x) = n {
            if x.len() <= origin.len() {
                break;
            }
            if let Some(&i) = index.get(x)
                && has_ns(&nodes[i as usize])
            {
                found = i;
            }
            n = parent(x);
        }
        found
    };
    for i in 0..nodes.len() {
        let cut = cut_of(&nodes[i].name, &nodes);
        let mut wild = vec![1, b'*'];
        wild.extend_from_slice(&nodes[i].name);
        let wildcard = index.get(&wild).copied().unwrap_or(NONE);
        nodes[i].cut = cut;
        nodes[i].wildcard = wildcard;
    }
    // Additional-section targets.
    for i in 0..nodes.len() {
        for s in 0..nodes[i].rrsets.len() {
            let rt = nodes[i].rrsets[s].rtype;
            let Some(at) = target_at(rt) else { continue };
            let targets: Vec<u32> = nodes[i].rrsets[s]
                .rrs
                .iter()
                .map(|rr| {
                    let name = rr.rdata.get(at..).unwrap_or(&[]).to_ascii_lowercase();
                    if !in_zone(&name, &origin) {
                        return NONE;
                    }
                    let (node, glue) = match index.get(&name) {
                        Some(&t) => (t, nodes[t as usize].cut != NONE),
                        None => {
                            // Its closest existing ancestor's wildcard, if any.
                            let mut n = parent(&name);
                            let mut found = NONE;
                            let mut glue = false;
                            while let Some(x) = n {
                                if let Some(&a) = index.get(x) {
                                    found = nodes[a as usize].wildcard;
                                    glue = nodes[a as usize].cut != NONE;
                                    break;
                                }
                                n = parent(x);
                            }
                            (found, glue)
                        }
                    };
                    if glue && rt != rtype::NS { NONE } else { node }
                })
                .collect();
            nodes[i].rrsets[s].targets = targets;
        }
    }
    let size = (nodes.len() * 2).next_power_of_two().max(2);
    let mut table = vec![0u32; size];
    for (i, n) in nodes.iter().enumerate() {
        let mut slot = name_hash(&n.name) as usize & (size - 1);
        while table[slot] != 0 {
            slot = (slot + 1) & (size - 1);
        }
        table[slot] = i as u32 + 1;
    }
    let negative_ttl = nodes[0]
        .rrsets
        .iter()
        .find(|s| s.rtype == rtype::SOA)
        .and_then(|s| {
            let rr = &s.rrs[0];
            let m = rr.rdata.len().checked_sub(4)?;
            let min = u32::from_be_bytes(rr.rdata[m..].try_into().ok()?);
            Some(rr.ttl.min(min))
        })
        .unwrap_or(0);
    Zone {
        origin,
        nodes,
        table,
        negative_ttl,
    }
}
