//! A TCP echo server on the Unix platform: the end-to-end check of `morgana-unix`.
//!
//! ```text
//! echo [--port N] [--idle-ms N] [--max N] [--panic] [--oom]
//! ```
//!
//! Listens on 127.0.0.1:N (default 0: any free port) and prints `listening on ADDR` on
//! stdout. Each connection is echoed back, and closed after `--idle-ms` (default 1000)
//! without input. At most `--max` (default 64) connections are served at once; more are
//! refused. `--panic` panics at start (to test the panic path), `--oom` exhausts the
//! heap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::future::poll_fn;
use core::net::SocketAddr;
use core::task::Poll;
use core::time::Duration;
use morgana_rt::{Either, TaskSet, select, timeout};
use morgana_signatures::{
    Console as _, Entropy as _, MonotonicClock, StartError, Tcp, TcpListener, TcpStream, Timer,
    WallClock,
};
use morgana_unix::{Clock, HostStream, HostTcp, Platform};

struct Options {
    port: u16,
    idle: Duration,
    max: usize,
}

/// Why the arguments were refused.
struct Usage(&'static str);

impl core::fmt::Display for Usage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} (usage: echo [--port N] [--idle-ms N] [--max N] [--panic] [--oom])",
            self.0
        )
    }
}

fn options(platform: &'static Platform) -> Result<Options, Usage> {
    let mut o = Options {
        port: 0,
        idle: Duration::from_millis(1000),
        max: 64,
    };
    let mut args = platform.args().skip(1);
    while let Some(a) = args.next() {
        let mut number = || {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(Usage("expected a number"))
        };
        match a {
            "--port" => o.port = u16::try_from(number()?).map_err(|_| Usage("bad port"))?,
            "--idle-ms" => o.idle = Duration::from_millis(number()?),
            "--max" => o.max = number()? as usize,
            "--panic" => panic!("--panic was given"),
            "--oom" => {
                let mut hog: Vec<Vec<u8>> = Vec::new();
                loop {
                    hog.push(Vec::with_capacity(64 * 1024));
                }
            }
            _ => return Err(Usage("unknown argument")),
        }
    }
    Ok(o)
}

/// Echoes one connection until EOF, an error, or `idle` without input.
async fn serve(mut stream: HostStream, peer: SocketAddr, clock: Clock, idle: Duration) {
    let mut buf = [0u8; 4096];
    loop {
        let deadline = clock.now().saturating_add(idle);
        match timeout(&clock, deadline, stream.read(&mut buf)).await {
            Err(_) => {
                log::info!("{peer}: idle for {idle:?}, closing");
                break;
            }
            Ok(Ok(0)) => {
                log::debug!("{peer}: end of stream");
                break;
            }
            Ok(Ok(n)) => {
                // Two buffers, one gather write: exercises write_all_vectored.
                let (a, b) = buf[..n].split_at(n / 2);
                if let Err(e) = stream.write_all_vectored(&[a, b]).await {
                    log::warn!("{peer}: {e}");
                    return;
                }
            }
            Ok(Err(e)) => {
                log::warn!("{peer}: {e}");
                return;
            }
        }
    }
    if let Err(e) = stream.shutdown().await {
        log::debug!("{peer}: shutdown: {e}");
    }
}

async fn start(platform: &'static Platform) -> Result<(), StartError> {
    let opts = options(platform).map_err(|e| StartError::new("main", &e))?;
    let clock = platform.clock();
    let mut nonce = [0u8; 4];
    platform
        .entropy()
        .fill(&mut nonce)
        .map_err(|e| StartError::new("entropy", &e))?;
    log::info!(
        "starting; wall clock {}s since the epoch, nonce {:08x}",
        clock.now_since_epoch().map_or(0, |d| d.as_secs()),
        u32::from_le_bytes(nonce)
    );

    let net = HostTcp::connect(platform)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], opts.port));
    let mut listener = net
        .listen(addr)
        .await
        .map_err(|e| StartError::new("net", &e))?;
    let local = listener
        .local_addr()
        .map_err(|e| StartError::new("net", &e))?;
    // `format!` on purpose: the prebuilt `alloc` it pulls in must link freestanding.
    platform
        .console()
        .write_str(&alloc::format!("listening on {local}\n"));

    let mut conns = TaskSet::new(opts.max);
    loop {
        let drive = poll_fn(|cx| {
            conns.poll_tasks(cx);
            Poll::<()>::Pending
        });
        let accepted = match select(listener.accept(), drive).await {
            Either::Left(r) => r,
            Either::Right(()) => unreachable!("the driver never completes"),
        };
        match accepted {
            Ok((stream, peer)) => {
                log::debug!("{peer}: connected");
                if conns.insert(serve(stream, peer, clock, opts.idle)).is_err() {
                    log::warn!("{peer}: too many connections, refused");
                }
            }
            Err(e) => {
                log::warn!("accept: {e}");
                // Out of fds: give connections a moment to finish.
                clock.sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

morgana_unix::entry!(start, heap_bytes = 1048576, log_level = Info);
