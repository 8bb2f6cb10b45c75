//! The cost of answering, without sockets: `respond` over a mix of queries against the
//! test zones, in a loop.
//!
//!     cargo run --release -p morgana-dns --example answer-bench
#[path = "../tests/support/hostnet.rs"]
mod hostnet;
#[path = "../tests/support/msg.rs"]
mod msg;

use std::time::Instant;

fn main() {
    let base = env!("CARGO_MANIFEST_DIR");
    let zones = hostnet::compile_zones(&[
        &format!("{base}/tests/zones/example.test.zone"),
        &format!("{base}/tests/zones/second.test.zone"),
    ]);
    let mix: &[(&str, u16)] = &[
        ("web.example.test.", 1),
        ("www.example.test.", 1),
        ("mail.example.test.", 28),
        ("example.test.", 15),
        ("nope.example.test.", 1),
        ("x.wild.example.test.", 1),
        ("host.sub.example.test.", 1),
        ("text.example.test.", 16),
    ];
    let queries: Vec<Vec<u8>> = mix
        .iter()
        .enumerate()
        .map(|(i, (n, t))| msg::query(i as u16, n, *t, 1, Some((1232, 0, false))))
        .collect();
    let config = morgana_dns::AnswerConfig::default();
    let mut out = vec![0u8; 1232];
    let rounds = 2_000_000;
    let start = Instant::now();
    let mut bytes = 0usize;
    for i in 0..rounds {
        let q = &queries[i % queries.len()];
        bytes += morgana_dns::respond(
            &zones,
            q,
            &mut out,
            morgana_dns::Transport::Udp { ipv6: false },
            &config,
        )
        .unwrap_or(0);
    }
    let took = start.elapsed();
    println!(
        "{rounds} answers in {:.3} s: {:.0} ns per answer, {:.0} answers/s on one core ({} bytes written)",
        took.as_secs_f64(),
        took.as_nanos() as f64 / rounds as f64,
        rounds as f64 / took.as_secs_f64(),
        bytes
    );
}
