//! A seeded fuzz loop over the descriptors netfront reads from netback: receive
//! responses with any id, offset, flags and status (negative errors, lengths beyond
//! the page, "more data" without scatter-gather), transmit responses with any id and
//! status, responses published without a request, and now and then a corrupted
//! producer index; interleaved with the stack receiving and sending frames of every
//! length. The driver must never panic nor lend a frame outside its page, and must
//! stop the device (not the kernel) when the indices make no sense.
//! `MORGANA_FUZZ_FRAMES` sets the number of steps (default 20,000).
//!
//! A child of `tests` (it drives the simulated netback there).

use super::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Answers the next receive request (or none: a response nobody asked for) with a
/// forged descriptor.
fn forge_rx(back: &mut Backend, rng: &mut Rng) {
    let requested = back.rx.next_request();
    if requested.is_none() && rng.below(1000) != 0 {
        return;
    }
    let len = rng.below(2000) as usize;
    if let Some(req) = requested {
        let gref = rd32(req, 4);
        let (page, _) = back.grant(gref);
        let fill = (rng.next() as u8, len.min(PAGE));
        // SAFETY: the granted page is PAGE bytes.
        unsafe { core::ptr::write_bytes(page as *mut u8, fill.0, fill.1) };
    }
    let id = match (requested, rng.below(4)) {
        (Some(req), 0 | 1) => rd16(req, 0),
        _ => rng.next() as u16,
    };
    let offset = match rng.below(4) {
        0 => rng.next() as u16,
        _ => 0,
    };
    let flags = match rng.below(4) {
        0 => rng.next() as u16,
        _ => 0,
    };
    let status = match rng.below(5) {
        0 => -(rng.below(32) as i16),
        1 => rng.next() as i16,
        _ => len as i16,
    };
    let rsp = back.rx.response_slot();
    wr16(rsp, 0, id);
    wr16(rsp, 2, offset);
    wr16(rsp, 4, flags);
    wr16(rsp, 6, status as u16);
    back.rx.publish();
}

/// Answers the next transmit request (or none) with a forged response.
fn forge_tx(back: &mut Backend, rng: &mut Rng) {
    let requested = back.tx.next_request();
    if requested.is_none() && rng.below(1000) != 0 {
        return;
    }
    let id = match (requested, rng.below(30)) {
        (Some(req), 1..) => rd16(req, 8),
        _ => rng.next() as u16,
    };
    let rsp = back.tx.response_slot();
    wr16(rsp, 0, id);
    wr16(rsp, 2, rng.next() as u16);
    back.tx.publish();
}

#[test]
fn netfront_survives_whatever_netback_returns() {
    let steps: u64 = std::env::var("MORGANA_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0x0e7f_0a7d);
    let started = std::time::Instant::now();
    let (mut net, mut back) = driver();
    let (mut restarts, mut frames) = (0u64, 0u64);
    for _ in 0..steps {
        match rng.below(12) {
            0..=2 => forge_rx(&mut back, &mut rng),
            3 => {
                let len = 14 + rng.below(1500) as usize;
                back.deliver(&frame(rng.below(256) as usize, len));
            }
            4 => forge_tx(&mut back, &mut rng),
            5 => {
                back.collect();
            }
            6..=8 => {
                while let Some((rx, _tx)) = net.receive() {
                    let len = rx.consume(|f| f.len());
                    assert!(len <= PAGE, "a frame beyond its page");
                    frames += 1;
                }
            }
            9 | 10 => {
                if let Some(tx) = net.transmit() {
                    let len = rng.below(1700) as usize;
                    tx.consume(len, |b| b.fill(0x5a));
                }
            }
            _ => {
                // Now and then a producer index that makes no sense. (Rarely: every
                // stopped device is replaced, and the simulated grant table keeps the
                // old one's pages.)
                if rng.below(2000) == 0 {
                    let ring = if rng.below(2) == 0 {
                        &back.rx
                    } else {
                        &back.tx
                    };
                    ring.set_u32(8, rng.next() as u32);
                }
            }
        }
        if net.broken().is_some() {
            assert!(net.receive().is_none() && net.transmit().is_none());
            (net, back) = driver();
            restarts += 1;
        }
    }
    std::eprintln!(
        "netfront fuzz: {steps} steps in {:.1} s: {frames} frames received, {restarts} devices stopped",
        started.elapsed().as_secs_f64()
    );
}
