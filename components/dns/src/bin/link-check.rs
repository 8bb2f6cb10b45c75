//! A freestanding Unix binary (no std, no libc) that opens a compiled-in zone archive and
//! answers one query with `respond`, printing the answer's size and counts. It proves
//! that the server's dependency graph links without std and shows what answering costs
//! in an image. The archive comes from `MORGANA_DNS_LINK_CHECK_ZONES` (a path) at build
//! time; `tests/link_check.rs` builds and runs it.
#![no_std]
#![no_main]

extern crate alloc;

use morgana_dns::{AnswerConfig, Transport, Zones, respond};
use morgana_signatures::{Console as _, StartError};
use morgana_unix::Platform;

static ZONES: &morgana_dns::Aligned<[u8]> =
    &morgana_dns::Aligned(*include_bytes!(env!("MORGANA_DNS_LINK_CHECK_ZONES")));

/// `web.example.test. A`, with EDNS (payload 1232).
const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\x03web\x07example\x04test\x00\x00\x01\x00\x01\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let zones = Zones::from_bytes(&ZONES.0).map_err(|e| StartError::new("zones", &e))?;
    let mut out = [0u8; 1232];
    let config = AnswerConfig::default();
    let n = respond(
        &zones,
        QUERY,
        &mut out,
        Transport::Udp { ipv6: false },
        &config,
    )
    .ok_or_else(|| StartError::new("respond", &"no answer"))?;
    let count = |at: usize| u16::from_be_bytes([out[at], out[at + 1]]);
    platform.console().write_str(&alloc::format!(
        "answered {n} bytes: rcode {} answer {} authority {} additional {}\n",
        out[3] & 0xf,
        count(6),
        count(8),
        count(10)
    ));
    Ok(())
}

morgana_unix::entry!(start, heap_bytes = 65536, log_level = Off);
