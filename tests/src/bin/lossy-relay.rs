//! A bad link for Ethernet frames carried in UDP datagrams: what the lossy-link test
//! (`tests/tests/lossy.rs`) and benchmark (`bench/lossy.sh`) put between a guest and
//! the host.
//!
//! ```text
//! lossy-relay --guest BIND PEER --host BIND PEER [--seed N]
//!             [--loss P] [--corrupt P] [--duplicate P] [--reorder P]
//! lossy-relay --make-file PATH BYTES SEED
//! ```
//!
//! QEMU's `-netdev dgram` sends each frame of the guest's NIC as one UDP datagram to the
//! relay's guest socket (`--guest BIND`, answering to `PEER`, QEMU's own address);
//! `socat` bridges a tap device to the relay's host socket the same way. Every frame,
//! in each direction, independently:
//!
//! - is dropped with probability `--loss` (default 0.10);
//! - otherwise has one byte after the Ethernet header flipped with probability
//!   `--corrupt` (0.01: the IP, TCP or UDP checksum must catch it);
//! - is sent twice with probability `--duplicate` (0.01);
//! - is held back and sent after the next frame of its direction with probability
//!   `--reorder` (0.02), or after 20 ms if none comes, so nothing is held forever.
//!
//! The pseudo-random draws come from a generator seeded with `--seed` (default 1), one
//! per direction, four draws per frame whatever happens: the n-th frame of a direction
//! always meets the same fate. (Which frames are sent depends on the endpoints' timers,
//! so two runs are alike, not identical.) Counters go to stderr every two seconds.
//!
//! `--make-file` writes BYTES pseudo-random bytes from SEED: the file both guests serve.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// xorshift64*: small, fast, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
struct Impairment {
    loss: f64,
    corrupt: f64,
    duplicate: f64,
    reorder: f64,
}

#[derive(Default)]
struct Counters {
    frames: u64,
    bytes: u64,
    largest: usize,
    dropped: u64,
    corrupted: u64,
    duplicated: u64,
    reordered: u64,
}

/// One direction of the link.
struct Direction {
    rng: Rng,
    held: Option<(Vec<u8>, Instant)>,
    counters: Counters,
}

const HOLD: Duration = Duration::from_millis(20);
const ETHERNET_HEADER: usize = 14;

impl Direction {
    /// What to send now for `frame`, in order.
    fn pass(&mut self, mut frame: Vec<u8>, imp: Impairment) -> VecDeque<Vec<u8>> {
        self.counters.frames += 1;
        self.counters.bytes += frame.len() as u64;
        self.counters.largest = self.counters.largest.max(frame.len());
        let (drop, corrupt, duplicate, reorder) = (
            self.rng.unit(),
            self.rng.unit(),
            self.rng.unit(),
            self.rng.unit(),
        );
        let position = self.rng.next();
        let mut out = VecDeque::new();
        if drop < imp.loss {
            self.counters.dropped += 1;
            return out;
        }
        if corrupt < imp.corrupt && frame.len() > ETHERNET_HEADER {
            let at = ETHERNET_HEADER + (position as usize) % (frame.len() - ETHERNET_HEADER);
            frame[at] ^= 1 << (position >> 61);
            self.counters.corrupted += 1;
        }
        if reorder < imp.reorder && self.held.is_none() {
            self.counters.reordered += 1;
            self.held = Some((frame, Instant::now() + HOLD));
            return out;
        }
        if duplicate < imp.duplicate {
            self.counters.duplicated += 1;
            out.push_back(frame.clone());
        }
        out.push_back(frame);
        // A frame held back goes after this one.
        if let Some((held, _)) = self.held.take() {
            out.push_back(held);
        }
        out
    }

    /// The held frame, if its time is up.
    fn expire(&mut self, now: Instant) -> Option<Vec<u8>> {
        match &self.held {
            Some((_, deadline)) if *deadline <= now => self.held.take().map(|(f, _)| f),
            _ => None,
        }
    }
}

fn make_file(path: &str, bytes: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut data = Vec::with_capacity(bytes + 8);
    while data.len() < bytes {
        data.extend_from_slice(&rng.next().to_le_bytes());
    }
    data.truncate(bytes);
    std::fs::write(path, data).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
}

fn usage() -> ! {
    eprintln!(
        "usage: lossy-relay --guest BIND PEER --host BIND PEER [--seed N] [--loss P] \
         [--corrupt P] [--duplicate P] [--reorder P]\n       lossy-relay --make-file PATH BYTES SEED"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    let mut guest: Option<(SocketAddr, SocketAddr)> = None;
    let mut host: Option<(SocketAddr, SocketAddr)> = None;
    let mut seed = 1u64;
    let mut imp = Impairment {
        loss: 0.10,
        corrupt: 0.01,
        duplicate: 0.01,
        reorder: 0.02,
    };
    fn addr(s: Option<&String>) -> SocketAddr {
        s.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage())
    }
    fn num<T: std::str::FromStr>(s: Option<&String>) -> T {
        s.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage())
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "--make-file" => {
                let path = it.next().unwrap_or_else(|| usage());
                make_file(path, num(it.next()), num(it.next()));
                return;
            }
            "--guest" => guest = Some((addr(it.next()), addr(it.next()))),
            "--host" => host = Some((addr(it.next()), addr(it.next()))),
            "--seed" => seed = num(it.next()),
            "--loss" => imp.loss = num(it.next()),
            "--corrupt" => imp.corrupt = num(it.next()),
            "--duplicate" => imp.duplicate = num(it.next()),
            "--reorder" => imp.reorder = num(it.next()),
            _ => usage(),
        }
    }
    let (Some((guest_bind, guest_peer)), Some((host_bind, host_peer))) = (guest, host) else {
        usage()
    };
    let guest_sock = UdpSocket::bind(guest_bind).expect("bind the guest side");
    let host_sock = UdpSocket::bind(host_bind).expect("bind the host side");
    // 0: guest -> host, 1: host -> guest.
    let (tx, rx) = mpsc::channel::<(usize, Vec<u8>)>();
    for (dir, sock) in [(0, &guest_sock), (1, &host_sock)] {
        let sock = sock.try_clone().expect("clone socket");
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            loop {
                match sock.recv_from(&mut buf) {
                    Ok((n, _)) => {
                        if tx.send((dir, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        eprintln!("lossy-relay: receive: {e}");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        });
    }
    let mut dirs = [0u64, 1].map(|d| Direction {
        rng: Rng::new(seed.wrapping_mul(2).wrapping_add(d)),
        held: None,
        counters: Counters::default(),
    });
    let send = |dir: usize, frame: &[u8]| {
        let _ = if dir == 0 {
            host_sock.send_to(frame, host_peer)
        } else {
            guest_sock.send_to(frame, guest_peer)
        };
    };
    let mut report = Instant::now() + Duration::from_secs(2);
    loop {
        let now = Instant::now();
        let next = dirs
            .iter()
            .filter_map(|d| d.held.as_ref().map(|(_, t)| *t))
            .chain([report])
            .min()
            .unwrap_or(report);
        match rx.recv_timeout(next.saturating_duration_since(now)) {
            Ok((dir, frame)) => {
                for f in dirs[dir].pass(frame, imp) {
                    send(dir, &f);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        let now = Instant::now();
        for (dir, d) in dirs.iter_mut().enumerate() {
            if let Some(f) = d.expire(now) {
                send(dir, &f);
            }
        }
        if now >= report {
            report = now + Duration::from_secs(2);
            for (name, d) in ["guest->host", "host->guest"].iter().zip(&dirs) {
                let c = &d.counters;
                eprintln!(
                    "lossy-relay: {name}: {} frames ({} bytes, largest {}), {} dropped, {} corrupted, {} duplicated, {} reordered",
                    c.frames, c.bytes, c.largest, c.dropped, c.corrupted, c.duplicated, c.reordered
                );
            }
        }
    }
}
