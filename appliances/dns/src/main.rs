//! `dns`: an authoritative name server. The zones are compiled in by the build (the
//! `DnsServer` device's `zones`); the generated code opens them, binds UDP and TCP and
//! hands the server to the job, which says where it answers and serves.
#![no_std]
#![no_main]

extern crate alloc;

include!(concat!(env!("OUT_DIR"), "/appliance.rs"));

use alloc::format;
use morgana_signatures::{Console, ShowAddr, Tcp, Timer, Udp};

/// The job.
pub struct NameServer;

impl NameServer {
    /// Answers queries until the network fails.
    pub async fn start<C: Console, U: Udp, T: Tcp, Tm: Timer>(
        console: C,
        dns: morgana_dns::Server<U, T, Tm>,
    ) -> Result<(), morgana_dns::Error<U::Error, T::Error>> {
        console.write_str(&format!(
            "dns: answering on {} (UDP and TCP)\n",
            ShowAddr(dns.local_addr())
        ));
        dns.serve().await
    }
}
