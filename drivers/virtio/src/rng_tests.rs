//! Host tests of the virtio-rng driver against the fake device: what a well-behaved
//! device gives arrives in order and only once, and a silent, lying or broken device
//! ends in a clear error on virtual time.

use crate::fake::{Device, FakeHal, FakeRegs, NOTIFY_MULTIPLIER};
use crate::rng::{QUEUE_SIZE, REQUEST_BYTES, Rng, RngError, Seeded};
use crate::transport::status;
use crate::{Error, PciTransport};
use core::future::Future;
use core::pin::pin;
use core::task::{Context, Poll};
use core::time::Duration;
use morgana_signatures::{Entropy, Instant, MonotonicClock, Timer};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::vec;
use std::vec::Vec;

type TestRng = Rng<FakeHal, PciTransport<FakeRegs>>;

fn start(dev: &Rc<RefCell<Device>>) -> Result<TestRng, Error> {
    let transport = PciTransport::new(FakeRegs(dev.clone()), NOTIFY_MULTIPLIER)?;
    Rng::new(FakeHal::new(dev.clone()), transport)
}

/// A clock whose sleeps complete at once, moving time to their deadline.
#[derive(Default)]
struct Jump(Cell<u64>);

impl MonotonicClock for Jump {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.0.get())
    }
}

impl Timer for Jump {
    async fn sleep_until(&self, deadline: Instant) {
        self.0.set(self.0.get().max(deadline.as_nanos()));
    }
}

/// Polls `f` to completion (it never waits on anything but `Jump`).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(core::task::Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the future never completed");
}

#[test]
fn requests_are_posted_and_answered_bytes_arrive_in_order_once() {
    let dev = Rc::new(RefCell::new(Device::rng(8)));
    let mut rng = start(&dev).expect("driver starts");
    assert_eq!(
        dev.borrow().status,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    assert_eq!(dev.borrow().pending_requests(), QUEUE_SIZE);
    let mut out = [0u8; 100];
    assert_eq!(rng.poll(&mut out), 0, "nothing before the device answers");
    let first: Vec<u8> = (0..64).collect();
    let second: Vec<u8> = (100..164).collect();
    assert_eq!(
        dev.borrow_mut().answer_request(&first, None),
        Some(REQUEST_BYTES as u32)
    );
    assert_eq!(
        dev.borrow_mut().answer_request(&second, None),
        Some(REQUEST_BYTES as u32)
    );
    assert_eq!(rng.poll(&mut out), 100);
    assert_eq!(&out[..64], &first[..]);
    assert_eq!(&out[64..], &second[..36]);
    // The rest of the second buffer is thrown away, never handed out later; both
    // buffers are posted again, zeroed.
    assert_eq!(dev.borrow().pending_requests(), QUEUE_SIZE);
    let mut more = [0u8; 64];
    assert_eq!(rng.poll(&mut more), 0);
    assert_eq!(dev.borrow_mut().answer_request(&[7; 10], None), Some(64));
    assert_eq!(rng.poll(&mut more), 10);
    assert_eq!(&more[..10], &[7; 10]);
    assert_eq!(rng.received(), 110);
}

#[test]
fn a_device_that_claims_too_much_or_nothing_is_not_believed() {
    let dev = Rc::new(RefCell::new(Device::rng(4)));
    let mut rng = start(&dev).unwrap();
    // Claims 4096 bytes in a 64-byte buffer: only the buffer counts.
    dev.borrow_mut().answer_request(&[1; 64], Some(4096));
    // Claims nothing: the buffer goes back, no bytes.
    dev.borrow_mut().answer_request(&[], Some(0));
    let mut out = [0u8; 256];
    assert_eq!(rng.poll(&mut out), 64);
    assert!(out[..64].iter().all(|&b| b == 1));
    assert_eq!(dev.borrow().pending_requests(), QUEUE_SIZE);
}

#[test]
fn fill_waits_for_the_device_and_a_silent_one_times_out() {
    let dev = Rc::new(RefCell::new(Device::rng(4)));
    let mut rng = start(&dev).unwrap();
    let clock = Jump::default();
    let mut seed = [0u8; 32];
    let deadline = clock.now().saturating_add(Duration::from_secs(5));
    assert_eq!(
        run(rng.fill(&clock, &mut seed, deadline)),
        Err(RngError::Timeout)
    );
    assert!(clock.now() >= deadline);
    dev.borrow_mut().answer_request(&[9; 64], None);
    let deadline = clock.now().saturating_add(Duration::from_secs(5));
    assert_eq!(run(rng.fill(&clock, &mut seed, deadline)), Ok(()));
    assert_eq!(seed, [9; 32]);
}

#[test]
fn a_broken_device_is_refused_and_left_reset() {
    let dev = Rc::new(RefCell::new(Device::rng(0)));
    assert!(matches!(start(&dev), Err(Error::QueueMissing { queue: 0 })));
    assert_ne!(dev.borrow().status & status::FAILED, 0);
    let dev = Rc::new(RefCell::new(Device::rng(4)));
    dev.borrow_mut().offered = 0;
    assert!(matches!(start(&dev), Err(Error::NoVersion1 { .. })));
    let dev = Rc::new(RefCell::new(Device::rng(4)));
    dev.borrow_mut().fail_on_driver_ok = true;
    assert_eq!(start(&dev).err(), Some(Error::DeviceFailed));
    // Dropping the driver resets the device before the queue memory goes (the fake
    // checks that no live queue points into freed memory).
    let dev = Rc::new(RefCell::new(Device::rng(4)));
    drop(start(&dev).unwrap());
    assert_eq!(dev.borrow().status, 0);
}

#[derive(Clone, Copy)]
struct Constant;

impl Entropy for Constant {
    type Error = core::convert::Infallible;
    fn fill(&self, buf: &mut [u8]) -> Result<(), Self::Error> {
        buf.fill(0x5A);
        Ok(())
    }
}

#[test]
fn the_seeded_generator_is_strong_shared_and_never_repeats() {
    let a = Seeded::new([3; 32], Constant);
    let b = a;
    assert!(a.is_strong());
    let (mut x, mut y) = ([0u8; 48], [0u8; 48]);
    a.fill(&mut x).unwrap();
    b.fill(&mut y).unwrap();
    assert_ne!(
        x, y,
        "copies share one generator, so they never repeat each other"
    );
    let c = Seeded::new([3; 32], Constant);
    let mut z = [0u8; 48];
    c.fill(&mut z).unwrap();
    assert_eq!(z, x, "the output is the seed's, not the jitter's");
    assert_ne!(x, [0; 48]);
    let _ = vec![0u8; 1];
}

/// The generator's first output under the zero key is ChaCha20's keystream for the zero
/// key and nonce from block 0: RFC 8439, appendix A.1, test vector #1 (the same stream
/// rand_chacha's `ChaCha20Rng` gives). The seeded generator's first fill is exactly that.
#[test]
fn the_seeded_generator_is_chacha20_rfc_8439() {
    const A1_1: [u8; 64] = [
        0x76, 0xb8, 0xe0, 0xad, 0xa0, 0xf1, 0x3d, 0x90, 0x40, 0x5d, 0x6a, 0xe5, 0x53, 0x86, 0xbd,
        0x28, 0xbd, 0xd2, 0x19, 0xb8, 0xa0, 0x8d, 0xed, 0x1a, 0xa8, 0x36, 0xef, 0xcc, 0x8b, 0x77,
        0x0d, 0xc7, 0xda, 0x41, 0x59, 0x7c, 0x51, 0x57, 0x48, 0x8d, 0x77, 0x24, 0xe0, 0x3f, 0xb8,
        0xd8, 0x4a, 0x37, 0x6a, 0x43, 0xb8, 0xf4, 0x15, 0x18, 0xa1, 0x1c, 0xc3, 0x87, 0xb6, 0x69,
        0xb2, 0xee, 0x65, 0x86,
    ];
    let mut out = [0u8; 64];
    Seeded::new([0; 32], Constant).fill(&mut out).unwrap();
    assert_eq!(out, A1_1);
}
