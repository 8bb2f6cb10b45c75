//! The UDP echo service over the host's sockets: the Unix host-socket target in
//! miniature, the end-to-end check of `morgana-unix`'s UDP, and the server of
//! `bench/udp-echo.sh`.
//!
//! ```text
//! udp-echo [--address ADDR:PORT]      (default 127.0.0.1:0: a free port)
//! ```
//!
//! Prints `udp echo on ADDR:PORT` on stdout once it is bound.
#![no_std]
#![no_main]

use core::net::SocketAddr;
use morgana_signatures::StartError;
use morgana_unix::{HostTcp, Platform};

/// Why the arguments were refused.
struct Usage(&'static str);

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} (usage: udp-echo [--address ADDR:PORT])", self.0)
    }
}

fn address(platform: &'static Platform) -> Result<SocketAddr, Usage> {
    let mut address = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut args = platform.args().skip(1);
    while let Some(a) = args.next() {
        match a {
            "--address" => {
                address = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(Usage("--address needs ADDR:PORT"))?;
            }
            _ => return Err(Usage("unknown argument")),
        }
    }
    Ok(address)
}

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let address = address(platform).map_err(|e| StartError::new("main", &e))?;
    let net = HostTcp::connect(platform)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    match morgana_udp_echo::start(platform.console(), net, address).await {
        Ok(never) => match never {},
        Err(e) => Err(StartError::new("echo", &e)),
    }
}

morgana_unix::entry!(start, heap_bytes = 1048576, log_level = Info);
