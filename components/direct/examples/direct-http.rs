//! A static website served by Morgana's own TCP/IP stack over a Linux tap: the Unix
//! "direct stack" target in miniature, and the end-to-end check of `morgana-direct`.
//!
//! ```text
//! direct-http --tap NAME (--address A.B.C.D/LEN [--gateway A.B.C.D] | --dhcp)
//!             [--port N] [--dhcp-timeout-ms N] [--mac XX:XX:XX:XX:XX:XX]
//!             [--ipv6 (link-local | slaac | ADDR/LEN) [--gateway6 ADDR]] [--udp-echo N]
//! ```
//!
//! Attaches to the tap `NAME`, brings the stack up with the static address or a DHCP
//! lease (and IPv6 with `--ipv6`), serves `examples/site` (compiled in with `crunch!`)
//! on port N (default 80; on `[::]` with IPv6, else `0.0.0.0`), runs a UDP echo on port
//! N with `--udp-echo`, and prints `listening on ADDR:PORT` on stdout. The host side of
//! the tap needs an address in the same subnet, e.g.:
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

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;
use morgana_direct::{Ipv4Config, Ipv6Config, Stack, StackConfig};
use morgana_http::{Config, Server, StaticSite};
use morgana_signatures::{Console as _, MacAddress, StartError, Udp as _};
use morgana_unix::{Platform, Tap};

static SITE: kv_crunch::Table = kv_crunch::crunch!("examples/site");

struct Options {
    tap: &'static str,
    ipv4: Ipv4Config,
    ipv6: Option<Ipv6Config>,
    port: u16,
    dhcp_timeout: Duration,
    mac: Option<MacAddress>,
    udp_echo: Option<u16>,
}

/// Why the arguments were refused.
struct Usage(&'static str);

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (usage: direct-http --tap NAME (--address A.B.C.D/LEN [--gateway A.B.C.D] | --dhcp) [--port N] [--dhcp-timeout-ms N] [--mac MAC] [--ipv6 (link-local | slaac | ADDR/LEN) [--gateway6 ADDR]] [--udp-echo N])",
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

fn parse_mac(s: &str) -> Result<MacAddress, Usage> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let part = parts.next().ok_or(Usage("bad --mac"))?;
        *b = u8::from_str_radix(part, 16).map_err(|_| Usage("bad --mac"))?;
    }
    if parts.next().is_some() {
        return Err(Usage("bad --mac"));
    }
    Ok(MacAddress(mac))
}

fn parse_v6(s: &str) -> Result<[u16; 8], Usage> {
    let ip: Ipv6Addr = s.parse().map_err(|_| Usage("bad IPv6 address"))?;
    Ok(ip.segments())
}

fn options(platform: &'static Platform) -> Result<Options, Usage> {
    let mut tap = None;
    let mut address = None;
    let mut gateway = None;
    let mut dhcp = false;
    let mut port = 80;
    let mut dhcp_timeout = morgana_direct::DEFAULT_DHCP_TIMEOUT;
    let mut mac = None;
    let mut ipv6 = None;
    let mut gateway6 = None;
    let mut udp_echo = None;
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
            "--mac" => mac = Some(parse_mac(value()?)?),
            "--ipv6" => {
                ipv6 = Some(match value()? {
                    "link-local" => Ipv6Config::LinkLocal,
                    "slaac" => Ipv6Config::Slaac,
                    cidr => {
                        let (ip, len) =
                            cidr.split_once('/').ok_or(Usage("--ipv6 needs ADDR/LEN"))?;
                        Ipv6Config::Static {
                            address: parse_v6(ip)?,
                            prefix_len: len.parse().map_err(|_| Usage("bad prefix length"))?,
                            gateway: None,
                        }
                    }
                })
            }
            "--gateway6" => gateway6 = Some(parse_v6(value()?)?),
            "--udp-echo" => udp_echo = Some(value()?.parse().map_err(|_| Usage("bad --udp-echo"))?),
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
    if let (Some(Ipv6Config::Static { gateway, .. }), Some(g)) = (&mut ipv6, gateway6) {
        *gateway = Some(g);
    } else if gateway6.is_some() {
        return Err(Usage("--gateway6 needs --ipv6 ADDR/LEN"));
    }
    Ok(Options {
        tap: tap.ok_or(Usage("--tap is required"))?,
        ipv4,
        ipv6,
        port,
        dhcp_timeout,
        mac,
        udp_echo,
    })
}

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let opts = options(platform).map_err(|e| StartError::new("main", &e))?;
    let clock = platform.clock();

    let mut tap = Tap::open(platform, opts.tap).map_err(|e| StartError::new("net", &e))?;
    if let Some(mac) = opts.mac {
        tap = tap.with_mac_address(mac);
    }
    let mut config = StackConfig::new(opts.ipv4);
    config.ipv6 = opts.ipv6;
    config.dhcp_timeout = opts.dhcp_timeout;
    let net = Stack::connect(tap, clock, platform.entropy(), config)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    let (ip, _) = net
        .ipv4_address()
        .ok_or_else(|| StartError::new("net", &"no IPv4 address"))?;

    let every = match opts.ipv6 {
        Some(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, opts.port)),
        None => SocketAddr::from(([0, 0, 0, 0], opts.port)),
    };
    let mut echo = match opts.udp_echo {
        Some(port) => Some(
            net.bind(SocketAddr::new(every.ip(), port))
                .await
                .map_err(|e| StartError::new("echo", &e))?,
        ),
        None => None,
    };
    let http = Server::connect(net, clock, Config::new(every))
        .await
        .map_err(|e| StartError::new("http", &e))?;
    platform
        .console()
        .write_str(&alloc::format!("listening on {ip}:{}\n", opts.port));
    let serve = http.serve(StaticSite::new(&SITE));
    match &mut echo {
        Some(socket) => {
            let mut counters = morgana_udp_echo::Counters::default();
            match morgana_rt::select(serve, morgana_udp_echo::serve(socket, &mut counters)).await {
                morgana_rt::Either::Left(r) => r.map_err(|e| StartError::new("http", &e)),
                morgana_rt::Either::Right(Ok(never)) => match never {},
                morgana_rt::Either::Right(Err(e)) => Err(StartError::new("echo", &e)),
            }
        }
        None => serve.await.map_err(|e| StartError::new("http", &e)),
    }
}

morgana_unix::entry!(start, heap_bytes = 16777216, log_level = Info);
