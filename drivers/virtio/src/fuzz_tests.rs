//! A seeded fuzz loop over what the driver reads from the device: used-ring elements
//! (buffer ids, lengths, indices, including ones the device has no business returning),
//! received frames of every length, and transmit requests of every length, interleaved
//! at random against the fake device (`fake.rs`). The driver must never panic, never
//! hand the stack a frame outside its buffer, and give up a queue (not spin) when the
//! device announces more buffers than it had. `MORGANA_FUZZ_FRAMES` sets the number of
//! steps (default 20,000; docs/benchmarks.md records a 10-million-step run).

use crate::fake::{Device, FakeHal, FakeIrq, FakeRegs, NOTIFY_MULTIPLIER};
use crate::{BUFFER_SIZE, Config, NET_HDR_LEN, Net, PciTransport};
use morgana_signatures::{NetIf, RxToken as _, TxToken as _};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::vec::Vec;

type FuzzNet = Net<FakeHal, PciTransport<FakeRegs>, FakeIrq>;

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

struct Nothing;
impl Wake for Nothing {
    fn wake(self: Arc<Self>) {}
}

fn start(size: u16) -> (Rc<RefCell<Device>>, FuzzNet) {
    let mut d = Device::new();
    d.queues[0].max_size = size;
    d.queues[1].max_size = size;
    let dev = Rc::new(RefCell::new(d));
    let transport = PciTransport::new(FakeRegs(dev.clone()), NOTIFY_MULTIPLIER).expect("transport");
    let irq = FakeIrq {
        waker: dev.borrow().waker.clone(),
        msix: true,
        registrations: Cell::new(0),
    };
    let net = Net::new(FakeHal::new(dev.clone()), transport, irq, Config::default())
        .expect("driver starts");
    (dev, net)
}

#[test]
fn the_driver_survives_whatever_the_device_returns() {
    let steps: u64 = std::env::var("MORGANA_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let mut rng = Rng(0x07e5_71d5);
    let waker = Waker::from(Arc::new(Nothing));
    let started = std::time::Instant::now();
    let (mut dev, mut net) = start(16);
    let (mut restarts, mut frames, mut bogus) = (0u64, 0u64, 0u64);
    for _ in 0..steps {
        match rng.below(10) {
            // A frame of any length the buffer can hold, or a lie about its length.
            0..=2 => {
                let len = 1 + rng.below(1514) as usize;
                let frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let reported = match rng.below(4) {
                    0 => Some(rng.below(u64::from(u32::MAX)) as u32),
                    1 => Some(rng.below(BUFFER_SIZE as u64 + 64) as u32),
                    _ => None,
                };
                dev.borrow_mut().receive_with_len(&frame, reported);
            }
            // A used element of the device's own making: any id, any length.
            3 => {
                let q = rng.below(2) as usize;
                let id = match rng.below(3) {
                    0 => rng.next() as u32,
                    _ => rng.below(40) as u32,
                };
                dev.borrow_mut()
                    .push_used(q, id, rng.below(u64::from(u32::MAX)) as u32);
                bogus += 1;
            }
            // The stack takes what arrived.
            4..=6 => {
                while let Some((rx, _tx)) = net.receive() {
                    let len = rx.consume(|f| {
                        assert!(
                            f.len() + NET_HDR_LEN <= BUFFER_SIZE,
                            "frame beyond its buffer"
                        );
                        f.len()
                    });
                    assert!(len >= 14, "a frame shorter than an Ethernet header");
                    frames += 1;
                }
            }
            // The stack sends frames of any length (longer than the MTU: dropped).
            7 | 8 => {
                if let Some(tx) = net.transmit() {
                    let len = rng.below(1600) as usize;
                    tx.consume(len, |b| b.fill(0xa5));
                }
                if rng.below(2) == 0 {
                    dev.borrow_mut().transmit();
                }
            }
            _ => net.register_rx_waker(&waker),
        }
        if net.is_broken() {
            // Given up, as it must be: a new device and driver carry on.
            drop(net);
            (dev, net) = start(16);
            restarts += 1;
        }
    }
    std::eprintln!(
        "virtio fuzz: {steps} steps in {:.1} s: {frames} frames received, {bogus} forged used elements, {restarts} queues given up",
        started.elapsed().as_secs_f64()
    );
}
