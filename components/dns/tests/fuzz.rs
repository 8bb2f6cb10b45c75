//! Seeded mutation fuzzing of the query path: valid queries are mutated (bit flips,
//! magic bytes, compression pointers and loops, truncation, extension, splicing, header
//! counts, oversized datagrams) and answered over UDP (IPv4, IPv6) and TCP. Whatever
//! arrives, `respond` must not panic, must not allocate, and every response it writes
//! must be a strictly well-formed message with the query's ID, QR set, within the size
//! allowed.
//!
//! CI runs 300,000 packets (a debug build, a few seconds); the full run is
//! `DNS_FUZZ_ITERATIONS=10000000 cargo test --release -p morgana-dns --test fuzz -- --nocapture`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Instant;

use morgana_dns::{AnswerConfig, Transport, respond};
use support::hostnet::compile_zones;
use support::msg::{parse, query};

/// Counts allocations made on this thread while `COUNTING` is set.
struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the counters are
// thread-local `Cell`s with const initialisers, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let names = [
        "example.test.",
        "www.example.test.",
        "WwW.ExAmPlE.tEsT.",
        "alias1.example.test.",
        "loop1.example.test.",
        "x.y.wild.example.test.",
        "a.cname-wild.example.test.",
        "host.sub.example.test.",
        "big.example.test.",
        "nope.example.test.",
        "deep.ent.a.b.example.test.",
        "cross.second.test.",
        "example.org.",
        ".",
    ];
    let types = [1u16, 2, 5, 6, 15, 16, 28, 33, 255, 252, 43, 257, 99];
    let ednses = [
        None,
        Some((512, 0, false)),
        Some((4096, 0, true)),
        Some((1232, 1, false)),
    ];
    let mut v = Vec::new();
    for (i, n) in names.iter().enumerate() {
        for (j, t) in types.iter().enumerate() {
            v.push(query((i * 31 + j) as u16, n, *t, 1, ednses[(i + j) % 4]));
        }
    }
    v
}

/// Filler for oversized datagrams.
static JUNK: [u8; 65_536] = {
    let mut j = [0u8; 65_536];
    let mut k = 0;
    while k < j.len() {
        j[k] = (k as u8).wrapping_mul(31);
        k += 1;
    }
    j
};

const MAGIC: &[u8] = &[
    0, 1, 0x3f, 0x40, 0x7f, 0x80, 0xbf, 0xc0, 0xc0, 0xff, b'*', b'.',
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&seeds[rng.below(seeds.len())]);
    for _ in 0..1 + rng.below(4) {
        let len = out.len().max(1);
        match rng.below(12) {
            0 => {
                let i = rng.below(len);
                if let Some(b) = out.get_mut(i) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => {
                let i = rng.below(len);
                if let Some(b) = out.get_mut(i) {
                    *b = MAGIC[rng.below(MAGIC.len())];
                }
            }
            2 => {
                // A compression pointer anywhere, often at itself or forward.
                let i = rng.below(len);
                let target = if rng.below(2) == 0 {
                    i
                } else {
                    rng.below(len + 8)
                };
                out.splice(
                    i..(i + 2).min(out.len()),
                    [0xc0 | (target >> 8) as u8 & 0x3f, target as u8],
                );
            }
            3 => {
                let n = rng.below(len + 1);
                out.truncate(n);
            }
            4 => {
                for _ in 0..rng.below(40) {
                    out.push(rng.next() as u8);
                }
            }
            5 => {
                // Header counts.
                let i = 4 + 2 * rng.below(4);
                if out.len() > i + 1 {
                    out[i] = MAGIC[rng.below(MAGIC.len())];
                    out[i + 1] = rng.next() as u8;
                }
            }
            6 => {
                let other = &seeds[rng.below(seeds.len())];
                let a = rng.below(len);
                let b = rng.below(other.len());
                out.truncate(a);
                out.extend_from_slice(&other[b..]);
            }
            7 => {
                // Oversized: up to 64 KiB of junk after the query.
                let n = rng.below(JUNK.len() - out.len().min(JUNK.len() - 1));
                out.extend_from_slice(&JUNK[..n]);
            }
            8 => {
                let i = rng.below(len);
                let b = MAGIC[rng.below(MAGIC.len())];
                if i <= out.len() {
                    out.insert(i, b);
                }
            }
            9 => {
                if !out.is_empty() {
                    let i = rng.below(out.len());
                    out.remove(i);
                }
            }
            10 => {
                // Flags: QR, opcode, every bit.
                if out.len() > 3 {
                    out[2] = rng.next() as u8;
                    out[3] = rng.next() as u8;
                }
            }
            _ => {
                // A second OPT or a label of 63 bytes.
                if rng.below(2) == 0 {
                    out.extend_from_slice(&[0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
                    if out.len() > 11 {
                        out[11] = out[11].wrapping_add(1);
                    }
                } else {
                    let i = 12.min(out.len());
                    out.splice(
                        i..i,
                        std::iter::once(63).chain(std::iter::repeat_n(b'a', 63)),
                    );
                }
            }
        }
    }
    out.truncate(65_535);
}

#[test]
fn the_query_path_survives_hostile_packets() {
    let base = env!("CARGO_MANIFEST_DIR");
    let zones = compile_zones(&[
        &format!("{base}/tests/zones/example.test.zone"),
        &format!("{base}/tests/zones/second.test.zone"),
    ]);
    let iterations: u64 = std::env::var("DNS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let seeds = seeds();
    let config = AnswerConfig::default();
    let mut rng = Rng(0x0dd5_eed5_f00d_0001);
    let mut packet = Vec::with_capacity(65_536);
    let mut udp = vec![0u8; 1232];
    let mut tcp = vec![0u8; 65_535];
    let mut answered = [0u64; 3];
    let mut rcodes = [0u64; 16];
    let start = Instant::now();
    for i in 0..iterations {
        mutate(&mut rng, &seeds, &mut packet);
        let (transport, buf): (Transport, &mut [u8]) = match i % 8 {
            0 => (Transport::Tcp, &mut tcp),
            1 => (Transport::Udp { ipv6: true }, &mut udp),
            _ => (Transport::Udp { ipv6: false }, &mut udp),
        };
        COUNTING.with(|c| c.set(true));
        let r = respond(&zones, &packet, buf, transport, &config);
        COUNTING.with(|c| c.set(false));
        let Some(n) = r else {
            answered[0] += 1;
            continue;
        };
        answered[if transport == Transport::Tcp { 2 } else { 1 }] += 1;
        let limit = if transport == Transport::Tcp {
            65_535
        } else {
            1232
        };
        assert!(
            n >= 12 && n <= limit,
            "response of {n} bytes to {packet:02x?}"
        );
        let m = parse(&buf[..n]).unwrap_or_else(|e| {
            panic!(
                "malformed response ({e}) to {packet:02x?}: {:02x?}",
                &buf[..n]
            )
        });
        assert_eq!(m.id, u16::from_be_bytes([packet[0], packet[1]]));
        assert!(m.flags & 0x8000 != 0, "QR clear");
        assert!(m.flags & 0x0080 == 0, "RA set");
        rcodes[usize::from(m.rcode & 0xf)] += 1;
    }
    let took = start.elapsed();
    let allocs = ALLOCS.with(Cell::get);
    println!(
        "fuzz: {iterations} packets in {:.1} s ({:.0}/s): {} dropped, {} answered over UDP, {} over TCP; rcodes {:?}; {allocs} allocations while answering",
        took.as_secs_f64(),
        iterations as f64 / took.as_secs_f64(),
        answered[0],
        answered[1],
        answered[2],
        &rcodes[..6],
    );
    assert_eq!(allocs, 0, "answering allocated");
    // The mutations must reach the answering paths, not only the parser's refusals.
    assert!(rcodes[0] > iterations / 50 && rcodes[1] > iterations / 50 && rcodes[3] > 0);
}
