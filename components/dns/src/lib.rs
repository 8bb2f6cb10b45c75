//! Morgana's authoritative DNS server component.
//!
//! [`Server`] is generic over the `UDP`, `TCP` and `TIME` signatures ([`Udp`], [`Tcp`],
//! [`Timer`]), so the same code answers from a Unix process and from a kernel. It answers
//! from [`Zones`]: an rkyv archive compiled from master files at build time by
//! `morgana-dns-zone`, read in place (validated once, no parsing, no allocation).
//!
//! [`Udp`]: morgana_signatures::Udp
//! [`Tcp`]: morgana_signatures::Tcp
//! [`Timer`]: morgana_signatures::Timer
//!
//! ```ignore
//! static ZONES: Aligned<[u8; N]> = ...; // the archive, embedded by the build
//! let zones = Zones::from_bytes(&ZONES.0)?;
//! let dns = Server::connect(net, net, clock, zones, Config::new(addr)).await?;
//! dns.serve().await?;
//! ```
//!
//! # What the server does
//!
//! - Authoritative only: no recursion (RD is copied, RA never set), no zone transfers
//!   (AXFR and IXFR: NOTIMP over UDP, REFUSED over TCP), no DNSSEC signing, no dynamic
//!   updates or NOTIFY (every opcode but QUERY gets NOTIMP).
//! - UDP and TCP on the same address; TCP per RFC 7766: two-byte length prefix, any
//!   number of queries per connection answered in order, an idle timeout.
//! - EDNS(0) (RFC 6891): an OPT record in a query is answered with ours (payload size
//!   [`AnswerConfig::udp_payload`], default 1232, DO copied); the client's payload size
//!   is honoured between 512 and ours; a version other than 0 gets BADVERS. Without EDNS
//!   a UDP response is at most 512 bytes.
//! - A response that cannot hold a whole RRset of the answer or authority section has
//!   TC set; optional data (the zone's NS records beside a positive answer, addresses in
//!   the additional section) is left out RRset by RRset instead.
//! - Names are compressed (owner names, and names in the RDATA of NS, CNAME, SOA, PTR,
//!   MX). Names match case-insensitively; the question is returned as sent.
//! - NXDOMAIN and NODATA carry the zone's SOA in the authority section with the
//!   negative TTL (RFC 2308); names below a zone cut get a referral (AA clear, the cut's
//!   NS records, glue in the additional section); CNAME chains are followed inside and
//!   across our zones (loops end when a CNAME comes round again, chains after
//!   [`MAX_CNAME_CHAIN`]); wildcards per RFC 4592; ANY is answered with one RRset (RFC
//!   8482 §4.1); names outside our zones get REFUSED (with Extended DNS Error 20 when the
//!   query had EDNS); classes other than IN and ANY get REFUSED; malformed queries get
//!   FORMERR; datagrams too short for a header, and responses, are dropped.
//!
//! NSD is the reference: a differential test sends a few thousand questions to NSD and
//! to this server loaded with the same zone files and compares the answers section by
//! section. The few deliberate differences are listed in `docs/dns.md`.
#![no_std]
#![deny(unsafe_code)]
#![allow(async_fn_in_trait)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod answer;
mod server;
pub mod wire;
pub mod zones;

pub use answer::{AnswerConfig, DEFAULT_UDP_PAYLOAD, MAX_CNAME_CHAIN, Transport, respond};
pub use server::{
    Config, DEFAULT_MAX_TCP_CONNECTIONS, DEFAULT_TCP_IDLE_TIMEOUT, Error, MAX_TCP_QUERY, Server,
    UDP_BACKOFF,
};
pub use zones::{Zones, ZonesError};

/// Bytes at a 16-byte aligned address, as a zone archive must be:
/// `static ZONES: &Aligned<[u8]> = &Aligned(*include_bytes!("zones.rkyv"));`
#[repr(C, align(16))]
pub struct Aligned<T: ?Sized>(pub T);
