//! The Redis-protocol server as a Unix process: `morgana-resp` over host sockets and
//! `morgana-store` on a disk image file — what `appliances/kv` will generate for the
//! Unix target, written by hand. Tests and `bench/kv.sh` run it.
//!
//! ```text
//! kv-server --disk PATH [--size-mib N] [--port N] [--durability always|everysec]
//!           [--sync fdatasync|direct] [--cache-entries N] [--max-connections N]
//! ```
//!
//! The disk image is created at `--size-mib` (default 256) if it does not exist, and
//! formatted if it is blank; an existing store is mounted (recovering from a crash).
//! Listens on 127.0.0.1:`--port` (default 6379; 0: any free port) and prints
//! `listening on ADDR` on stdout once it serves.
#![no_std]
#![no_main]

extern crate alloc;

use core::net::SocketAddr;
use morgana_resp::{Config as ServerConfig, Durability, Server};
use morgana_signatures::{Console as _, Entropy as _, StartError};
use morgana_store::{Config as StoreConfig, FormatOptions, Store};
use morgana_unix::{FileBlock, FileOptions, FileSync, HostTcp, Platform};

struct Options {
    disk: &'static str,
    size: u64,
    port: u16,
    durability: Durability,
    sync: FileSync,
    cache_entries: usize,
    max_connections: usize,
}

struct Usage(&'static str);

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (usage: kv-server --disk PATH [--size-mib N] [--port N] [--durability always|everysec] [--sync fdatasync|direct] [--cache-entries N] [--max-connections N])",
            self.0
        )
    }
}

fn options(platform: &'static Platform) -> Result<Options, Usage> {
    let mut o = Options {
        disk: "",
        size: 256 << 20,
        port: 6379,
        durability: Durability::Always,
        sync: FileSync::Fdatasync,
        cache_entries: StoreConfig::default().cache_entries,
        max_connections: morgana_resp::DEFAULT_MAX_CONNECTIONS,
    };
    let mut args = platform.args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(Usage("a value is missing"));
        match a {
            "--disk" => o.disk = value()?,
            "--size-mib" => {
                o.size = value()?
                    .parse::<u64>()
                    .map_err(|_| Usage("--size-mib takes a number"))?
                    << 20
            }
            "--port" => o.port = value()?.parse().map_err(|_| Usage("bad --port"))?,
            "--durability" => {
                o.durability = match value()? {
                    "always" => Durability::Always,
                    "everysec" => Durability::EverySec,
                    _ => return Err(Usage("--durability is always or everysec")),
                }
            }
            "--sync" => {
                o.sync = match value()? {
                    "fdatasync" => FileSync::Fdatasync,
                    "direct" => FileSync::Direct,
                    _ => return Err(Usage("--sync is fdatasync or direct")),
                }
            }
            "--cache-entries" => {
                o.cache_entries = value()?
                    .parse()
                    .map_err(|_| Usage("--cache-entries takes a number"))?
            }
            "--max-connections" => {
                o.max_connections = value()?
                    .parse()
                    .map_err(|_| Usage("--max-connections takes a number"))?
            }
            _ => return Err(Usage("unknown argument")),
        }
    }
    if o.disk.is_empty() {
        return Err(Usage("--disk is required"));
    }
    Ok(o)
}

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let o = options(platform).map_err(|e| StartError::new("main", &e))?;
    let disk = FileBlock::open_with(
        platform,
        o.disk,
        FileOptions {
            sync: o.sync,
            ..FileOptions::new(o.size)
        },
    )
    .map_err(|e| StartError::new("disk", &e))?;
    let mut id = [0u8; 8];
    platform
        .entropy()
        .fill(&mut id)
        .map_err(|e| StartError::new("entropy", &e))?;
    let config = StoreConfig {
        cache_entries: o.cache_entries,
        ..StoreConfig::default()
    };
    let store = Store::open_or_format(disk, FormatOptions::new(u64::from_le_bytes(id)), config)
        .await
        .map_err(|e| StartError::new("store", &e))?;
    let net = HostTcp::connect(platform)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    let address = SocketAddr::from(([127, 0, 0, 1], o.port));
    let server = Server::connect(
        net,
        platform.clock(),
        store,
        ServerConfig {
            max_connections: o.max_connections,
            ..ServerConfig::new(address, o.durability)
        },
    )
    .await
    .map_err(|e| StartError::new("resp", &e))?;
    platform
        .console()
        .write_str(&alloc::format!("listening on {}\n", server.local_addr()));
    server
        .serve()
        .await
        .map_err(|e| StartError::new("resp", &e))
}

morgana_unix::entry!(start, heap_bytes = 1073741824, log_level = Info);
