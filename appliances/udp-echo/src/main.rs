//! `udp-echo`: answers every UDP datagram with the same bytes (RFC 862). The socket is
//! bound by the generated code (`UdpSocket` in `appliance.ron`); the job is written
//! against the `UdpSocket` signature only, so it runs on host sockets and on Morgana's
//! own stack alike.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

use alloc::format;
use morgana_signatures::{Console, ShowAddr, UdpSocket};
use morgana_udp_echo::Counters;

/// The job.
pub struct Echo;

impl Echo {
    /// Says where it listens, then echoes datagrams of at most `config::MAX_DATAGRAM`
    /// bytes forever; longer ones are reported on the console, not echoed.
    pub async fn start<C: Console, S: UdpSocket>(
        console: C,
        mut socket: S,
    ) -> Result<(), S::Error> {
        let local = socket.local_addr()?;
        let limit = (config::MAX_DATAGRAM as usize).min(socket.max_payload());
        console.write_str(&format!(
            "udp echo on {} (datagrams up to {limit} bytes)\n",
            ShowAddr(local)
        ));
        let mut counters = Counters::default();
        match morgana_udp_echo::serve_limited(&mut socket, limit, &console, &mut counters).await? {}
    }
}
