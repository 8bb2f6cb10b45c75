//! A static website over HTTPS on the Unix platform: the TLS component's end-to-end
//! check against real clients (curl, openssl s_client, testssl.sh) and the subject of
//! `bench/tls.sh`.
//!
//! ```text
//! https --cert CHAIN.pem --key KEY.pem [--cert CHAIN2.pem --key KEY2.pem ...]
//!       [--port N] [--tls13-only] [--handshake-timeout-ms N] [--max-connections N]
//! ```
//!
//! Reads each certificate chain and private key at start (boot-time secrets:
//! `morgana_unix::read_secret_file`), serves `examples/site` (compiled in with `crunch!`)
//! plus two generated files for benchmarks, `/bench/600.txt` (600 bytes) and
//! `/bench/100k.txt` (102,400 bytes), each byte `b'a' + i % 26`, on 127.0.0.1:N (default
//! 0: any free port), and prints `listening on ADDR` on stdout. With several `--cert`s
//! the one whose names match the client's SNI is served; the first one otherwise.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;
use morgana_http::{Server, StaticSite};
use morgana_signatures::{Console as _, KvRo, Object, StartError};
use morgana_tls::{Config, Identity, Tls};
use morgana_unix::{HostTcp, Platform, read_secret_file};

static SITE: kv_crunch::Table = kv_crunch::crunch!("examples/site");

/// Sizes of the generated benchmark files.
const BENCH_FILES: [(&str, usize); 2] = [("bench/600.txt", 600), ("bench/100k.txt", 102_400)];

/// The compiled-in site plus the generated benchmark files.
struct Site {
    bench: Vec<(&'static str, &'static [u8], &'static str)>,
}

impl KvRo for Site {
    type Error = <&'static kv_crunch::Table as KvRo>::Error;

    fn get(&self, key: &str) -> Result<Option<Object<'_>>, Self::Error> {
        if let Some((_, data, etag)) = self.bench.iter().find(|(k, _, _)| *k == key) {
            return Ok(Some(Object {
                data,
                media_type: "text/plain; charset=utf-8",
                etag,
                gzip: None,
            }));
        }
        Ok(SITE.get(key))
    }

    fn is_dir(&self, key: &str) -> Result<bool, Self::Error> {
        Ok(key == "bench" || SITE.is_dir(key))
    }

    fn len(&self) -> usize {
        self.bench.len() + SITE.len()
    }
}

struct Options {
    certs: Vec<(&'static str, &'static str)>,
    port: u16,
    tls13_only: bool,
    handshake_timeout: Duration,
    max_connections: usize,
}

struct Usage(&'static str);

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (usage: https --cert CHAIN --key KEY [--cert .. --key ..] [--port N] [--tls13-only] [--handshake-timeout-ms N] [--max-connections N])",
            self.0
        )
    }
}

fn options(platform: &'static Platform) -> Result<Options, Usage> {
    let mut o = Options {
        certs: Vec::new(),
        port: 0,
        tls13_only: false,
        handshake_timeout: morgana_tls::DEFAULT_HANDSHAKE_TIMEOUT,
        max_connections: morgana_http::DEFAULT_MAX_CONNECTIONS,
    };
    let mut chain = None;
    let mut args = platform.args().skip(1);
    while let Some(a) = args.next() {
        match a {
            "--cert" => chain = Some(args.next().ok_or(Usage("--cert needs a path"))?),
            "--key" => {
                let key = args.next().ok_or(Usage("--key needs a path"))?;
                let c = chain.take().ok_or(Usage("--key must follow its --cert"))?;
                o.certs.push((c, key));
            }
            "--port" => {
                o.port = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(Usage("bad port"))?
            }
            "--handshake-timeout-ms" => {
                let ms: u64 = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(Usage("bad timeout"))?;
                o.handshake_timeout = Duration::from_millis(ms);
            }
            "--max-connections" => {
                o.max_connections = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or(Usage("bad connection count"))?
            }
            "--tls13-only" => o.tls13_only = true,
            _ => return Err(Usage("unknown argument")),
        }
    }
    if o.certs.is_empty() || chain.is_some() {
        return Err(Usage("give --cert and --key"));
    }
    Ok(o)
}

fn bench_files() -> Vec<(&'static str, &'static [u8], &'static str)> {
    BENCH_FILES
        .iter()
        .map(|&(name, len)| {
            let data: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let data: &'static [u8] = Box::leak(data.into_boxed_slice());
            let etag: &'static str = Box::leak(alloc::format!("\"bench-{len}\"").into_boxed_str());
            (name, data, etag)
        })
        .collect()
}

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let opts = options(platform).map_err(|e| StartError::new("main", &e))?;
    let mut secrets = Vec::new();
    for (chain, key) in &opts.certs {
        let chain = read_secret_file(chain).map_err(|e| StartError::new("secrets", &e))?;
        let key = read_secret_file(key).map_err(|e| StartError::new("secrets", &e))?;
        secrets.push((chain, key));
    }
    let identities: Vec<Identity<'_>> = secrets
        .iter()
        .map(|(chain, key)| Identity {
            chain_pem: chain.expose(),
            key_pem: key.expose(),
        })
        .collect();
    let mut config = Config::new(&identities);
    config.tls12 = !opts.tls13_only;
    config.handshake_timeout = opts.handshake_timeout;
    let net = HostTcp::connect(platform)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    let tls: Tls<_, _, _> = Tls::connect(net, platform.clock(), platform.entropy(), config)
        .await
        .map_err(|e| StartError::new("tls", &e))?;
    // The keys are decoded; the PEM text is not needed any more (zeroised on drop).
    drop(identities);
    drop(secrets);
    let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
    let mut http_config = morgana_http::Config::new(addr);
    http_config.max_connections = opts.max_connections;
    let http = Server::connect(tls, platform.clock(), http_config)
        .await
        .map_err(|e| StartError::new("http", &e))?;
    platform
        .console()
        .write_str(&alloc::format!("listening on {}\n", http.local_addr()));
    let site = Site {
        bench: bench_files(),
    };
    http.serve(StaticSite::new(site))
        .await
        .map_err(|e| StartError::new("http", &e))
}

morgana_unix::entry!(start, heap_bytes = 67108864, log_level = Info);
