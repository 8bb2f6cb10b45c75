//! A static website served by Morgana's own TCP/IP stack over a Linux tap: the Unix
//! "direct stack" target in miniature, and the end-to-end check of `morgana-direct`.
//!
//! ```text
//! direct-http --tap NAME (--address A.B.C.D/LEN [--gateway A.B.C.D] | --dhcp)
//!             [--port N] [--dhcp-timeout-ms N]
//! ```
//!
//! Attaches to the tap `NAME`, brings the stack up with the static address or a DHCP
//! lease, serves `examples/site` (compiled in with `crunch!`) on port N (default 80), and
//! prints `listening on ADDR:PORT` on stdout. The host side of the tap needs an address
//! in the same subnet, e.g.:
//!
//! ```text
//! ip tuntap add dev tap0 mode tap
//! ip addr add 10.99.0.1/24 dev tap0 && ip link set tap0 up
//! direct-http --tap tap0 --address 10.99.0.2/24 &
//! curl http://10.99.0.2/ && ping -c 1 10.99.0.2
//! ```
#![no_std]
#![no_main]

extern crate alloc;

use core::net::{Ipv4Addr, SocketAddr};
use core::time::Duration;
use morgana_direct::{Ipv4Config, Stack, StackConfig};
use morgana_http::{Config, Server, StaticSite};
use morgana_signatures::{Console as _, StartError};
use morgana_unix::{Platform, Tap};

static SITE: kv_crunch::Table = kv_crunch::crunch!("examples/site");

struct Options {
    tap: &'static str,
    ipv4: Ipv4Config,
    port: u16,
    dhcp_timeout: Duration,
}

/// Why the arguments were refused.
struct Usage(&'static str);

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (usage: direct-http --tap NAME (--address A.B.C.D/LEN [--gateway A.B.C.D] | --dhcp) [--port N] [--dhcp-timeout-ms N])",
            self.0
        )
    }
}

fn parse_cidr(s: &str) -> Result<([u8; 4], u8), Usage> {
    let (ip, len) = s
        .split_once('/')
        .ok_or(Usage("--address needs A.B.C.D/LEN"))?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| Usage("bad --address"))?;
    let len: u8 = len.parse().map_err(|_| Usage("bad prefix length"))?;
    Ok((ip.octets(), len))
}

fn options(platform: &'static Platform) -> Result<Options, Usage> {
    let mut tap = None;
    let mut address = None;
    let mut gateway = None;
    let mut dhcp = false;
    let mut port = 80;
    let mut dhcp_timeout = morgana_direct::DEFAULT_DHCP_TIMEOUT;
    let mut args = platform.args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(Usage("missing value"));
        match a {
            "--tap" => tap = Some(value()?),
            "--address" => address = Some(parse_cidr(value()?)?),
            "--gateway" => {
                let g: Ipv4Addr = value()?.parse().map_err(|_| Usage("bad --gateway"))?;
                gateway = Some(g.octets());
            }
            "--dhcp" => dhcp = true,
            "--port" => port = value()?.parse().map_err(|_| Usage("bad --port"))?,
            "--dhcp-timeout-ms" => {
                let ms: u64 = value()?.parse().map_err(|_| Usage("bad timeout"))?;
                dhcp_timeout = Duration::from_millis(ms);
            }
            _ => return Err(Usage("unknown argument")),
        }
    }
    let ipv4 = match (address, dhcp) {
        (Some((address, prefix_len)), false) => Ipv4Config::Static {
            address,
            prefix_len,
            gateway,
        },
        (None, true) => Ipv4Config::Dhcp,
        _ => return Err(Usage("give either --address or --dhcp")),
    };
    Ok(Options {
        tap: tap.ok_or(Usage("--tap is required"))?,
        ipv4,
        port,
        dhcp_timeout,
    })
}

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let opts = options(platform).map_err(|e| StartError::new("main", &e))?;
    let clock = platform.clock();

    let tap = Tap::open(platform, opts.tap).map_err(|e| StartError::new("net", &e))?;
    let mut config = StackConfig::new(opts.ipv4);
    config.dhcp_timeout = opts.dhcp_timeout;
    let net = Stack::connect(tap, clock, platform.entropy(), config)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    let (ip, _) = net
        .ipv4_address()
        .ok_or_else(|| StartError::new("net", &"no IPv4 address"))?;

    let http = Server::connect(
        net,
        clock,
        Config::new(SocketAddr::from(([0, 0, 0, 0], opts.port))),
    )
    .await
    .map_err(|e| StartError::new("http", &e))?;
    platform
        .console()
        .write_str(&alloc::format!("listening on {ip}:{}\n", opts.port));
    http.serve(StaticSite::new(&SITE))
        .await
        .map_err(|e| StartError::new("http", &e))
}

morgana_unix::entry!(start, heap_bytes = 16777216, log_level = Info);
