//! Host tests of the virtio-blk driver against the fake device (`fake.rs`): the same
//! generic code that runs in the kernel, over the PCI transport and an in-memory disk.

use super::fake::{BlkDevice, BlkHal, BlkRegs, NOTIFY_MULTIPLIER, with_size_max};
use super::{Blk, BlkConfig, BlkError};
use crate::PciTransport;
use crate::fake::FakeIrq;
use crate::transport::{feature, status};
use morgana_signatures::{Block, BlockError, BlockErrorKind};
use std::boxed::Box;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::vec;
use std::vec::Vec;

type TestBlk = Blk<BlkHal, PciTransport<BlkRegs>, FakeIrq>;

fn device(bytes: usize, tweak: impl FnOnce(&mut BlkDevice)) -> Rc<RefCell<BlkDevice>> {
    let mut d = BlkDevice::new(bytes);
    tweak(&mut d);
    Rc::new(RefCell::new(d))
}

fn start(dev: &Rc<RefCell<BlkDevice>>, config: BlkConfig) -> Result<TestBlk, BlkError> {
    let transport = PciTransport::new(BlkRegs(dev.clone()), NOTIFY_MULTIPLIER)?;
    let irq = FakeIrq {
        waker: dev.borrow().waker.clone(),
        msix: true,
        registrations: Cell::new(0),
    };
    let hal = BlkHal {
        device: dev.clone(),
        live: Rc::new(Cell::new(0)),
    };
    Blk::new(hal, transport, irq, config)
}

struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A future polled by hand, with a waker that counts its wake-ups.
struct Task<F: Future> {
    fut: Pin<Box<F>>,
    woken: Arc<Counter>,
    waker: Waker,
}

impl<F: Future> Task<F> {
    fn new(fut: F) -> Task<F> {
        let woken = Arc::new(Counter(AtomicUsize::new(0)));
        Task {
            fut: Box::pin(fut),
            waker: Waker::from(woken.clone()),
            woken,
        }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        self.fut
            .as_mut()
            .poll(&mut Context::from_waker(&self.waker))
    }

    fn wakes(&self) -> usize {
        self.woken.0.load(Ordering::SeqCst)
    }
}

/// Runs a future to completion, polling whenever it is woken (the fake device completes
/// requests synchronously unless deferred).
fn run<F: Future>(f: F) -> F::Output {
    let mut t = Task::new(f);
    for _ in 0..10_000 {
        if let Poll::Ready(v) = t.poll() {
            return v;
        }
    }
    panic!("the future never completed");
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn negotiates_only_what_it_drives_and_reads_back_what_it_wrote() {
    let dev = device(1 << 20, |_| {});
    let blk = start(&dev, BlkConfig::default()).unwrap();
    let d = dev.borrow();
    assert_eq!(
        d.driver_features,
        feature::VERSION_1 | super::SEG_MAX | super::BLK_SIZE | super::FLUSH | super::DISCARD
    );
    assert_eq!(
        d.status,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    drop(d);
    assert_eq!((blk.sector_size(), blk.sectors()), (512, 2048));
    assert!(blk.has_flush() && blk.has_discard() && !blk.is_read_only());
    let data = pattern(100 * 1024, 7);
    run(blk.write(10, &data)).unwrap();
    assert_eq!(dev.borrow().data[5120..5120 + data.len()], data[..]);
    // Not durable until flushed.
    assert!(dev.borrow().durable.iter().all(|&b| b == 0));
    run(blk.flush()).unwrap();
    assert_eq!(dev.borrow().durable[5120..5120 + data.len()], data[..]);
    let mut back = vec![0u8; data.len()];
    run(blk.read(10, &mut back)).unwrap();
    assert_eq!(back, data);
    // 100 KiB in 32 KiB pieces: 4 requests each way, and the flush.
    let s = blk.stats();
    assert_eq!(s.requests, 9);
    assert_eq!(
        (s.read_bytes, s.written_bytes, s.flushes),
        (102400, 102400, 1)
    );
    assert!(s.max_in_flight >= 4, "{s:?}");
}

#[test]
fn large_transfers_keep_many_requests_in_flight_completed_in_any_order() {
    let dev = device(4 << 20, |d| d.defer = true);
    let blk = start(
        &dev,
        BlkConfig {
            slots: 6,
            slot_bytes: 4096,
            ..BlkConfig::default()
        },
    )
    .unwrap();
    let data = pattern(64 * 1024 + 512, 3);
    let mut w = Task::new(blk.write(100, &data));
    let mut order = 7usize;
    loop {
        if let Poll::Ready(r) = w.poll() {
            r.unwrap();
            break;
        }
        // The device completes what it has, in a scrambled order.
        dev.borrow_mut().complete_with(|n| {
            order = order.wrapping_mul(31).wrapping_add(17);
            order % n
        });
    }
    assert_eq!(
        dev.borrow().max_pending,
        6,
        "all six slots in flight at once"
    );
    assert_eq!(dev.borrow().data[51200..51200 + data.len()], data[..]);
    // Two callers at once, each waiting for its own completions.
    let mut a_buf = vec![0u8; 16 * 1024];
    let mut b_buf = vec![0u8; 8 * 1024];
    {
        let mut a = Task::new(blk.read(100, &mut a_buf));
        let mut b = Task::new(blk.read(132, &mut b_buf));
        assert!(a.poll().is_pending());
        assert!(b.poll().is_pending());
        // a took four slots, b two.
        assert_eq!(dev.borrow().pending.len(), 6);
        dev.borrow_mut().complete_with(|n| n - 1);
        let (mut ra, mut rb) = (None, None);
        for _ in 0..20 {
            if ra.is_none()
                && let Poll::Ready(r) = a.poll()
            {
                ra = Some(r);
            }
            if rb.is_none()
                && let Poll::Ready(r) = b.poll()
            {
                rb = Some(r);
            }
            dev.borrow_mut().complete_with(|_| 0);
        }
        ra.unwrap().unwrap();
        rb.unwrap().unwrap();
    }
    assert_eq!(a_buf, data[..16 * 1024]);
    assert_eq!(b_buf, data[16 * 1024..24 * 1024]);
}

#[test]
fn the_interrupt_is_handed_on_to_a_request_still_in_flight() {
    let dev = device(1 << 20, |d| d.defer = true);
    let blk = start(&dev, BlkConfig::default()).unwrap();
    let mut a_buf = vec![0u8; 512];
    let mut b_buf = vec![0u8; 512];
    let mut a = Task::new(blk.read(0, &mut a_buf));
    let mut b = Task::new(blk.read(1, &mut b_buf));
    assert!(a.poll().is_pending());
    // b registers last: the interrupt wakes only b.
    assert!(b.poll().is_pending());
    dev.borrow_mut().complete_one(1);
    assert_eq!((a.wakes(), b.wakes()), (0, 1));
    assert!(b.poll().is_ready());
    // a's completion comes later; the interrupt must reach a (b handed it on).
    dev.borrow_mut().complete_one(0);
    assert!(a.wakes() >= 1, "a was never woken for its completion");
    assert!(matches!(a.poll(), Poll::Ready(Ok(()))));
}

#[test]
fn abandoned_requests_hold_their_slots_until_the_device_returns_them() {
    let dev = device(1 << 20, |d| d.defer = true);
    let blk = start(
        &dev,
        BlkConfig {
            slots: 2,
            slot_bytes: 4096,
            ..BlkConfig::default()
        },
    )
    .unwrap();
    let data = pattern(8192, 9);
    {
        let mut w = Task::new(blk.write(0, &data));
        assert!(w.poll().is_pending());
        // Dropped while both slots are in the device's hands.
    }
    assert_eq!(dev.borrow().pending.len(), 2);
    let mut back = vec![0u8; 4096];
    let mut r = Task::new(blk.read(0, &mut back));
    // No free slot yet: nothing is submitted.
    assert!(r.poll().is_pending());
    assert_eq!(dev.borrow().pending.len(), 2);
    // One abandoned slot comes back: the read takes it.
    dev.borrow_mut().complete_one(0);
    assert!(r.poll().is_pending());
    assert_eq!(dev.borrow().pending.len(), 2);
    dev.borrow_mut().complete_with(|_| 0);
    assert!(matches!(r.poll(), Poll::Ready(Ok(()))));
    drop(r);
    assert_eq!(back, data[..4096]);
}

#[test]
fn device_errors_are_typed_and_the_driver_carries_on() {
    let dev = device(1 << 20, |d| d.fail_sector = Some(70));
    let blk = start(
        &dev,
        BlkConfig {
            slot_bytes: 4096,
            ..BlkConfig::default()
        },
    )
    .unwrap();
    let mut buf = vec![0u8; 32 * 1024];
    let e = run(blk.read(64, &mut buf)).unwrap_err();
    assert_eq!(e, BlkError::Io { sector: 64 });
    assert_eq!(e.kind(), BlockErrorKind::Io);
    assert_eq!(std::format!("{e}"), "virtio-blk: I/O error at sector 64");
    // Every slot came back: other requests work.
    run(blk.read(0, &mut buf)).unwrap();
    dev.borrow_mut().unsupported = Some(4);
    assert_eq!(
        run(blk.flush()).unwrap_err().kind(),
        BlockErrorKind::Unsupported
    );
    // Refused before any I/O.
    let before = dev.borrow().seen.len();
    assert_eq!(
        run(blk.read(2047, &mut buf)).unwrap_err().kind(),
        BlockErrorKind::OutOfRange
    );
    assert_eq!(
        run(blk.write(0, &buf[..100])).unwrap_err().kind(),
        BlockErrorKind::Misaligned
    );
    assert_eq!(dev.borrow().seen.len(), before);
}

#[test]
fn a_device_that_returns_requests_it_never_had_is_given_up_without_a_panic() {
    let dev = device(1 << 20, |d| d.bogus_next = true);
    let blk = start(&dev, BlkConfig::default()).unwrap();
    let mut buf = vec![0u8; 512];
    // The request's own completion never comes: it fails instead of waiting forever,
    // and so does every later one.
    let e = run(blk.read(0, &mut buf)).unwrap_err();
    assert_eq!(e, BlkError::Broken);
    assert_eq!(e.kind(), BlockErrorKind::Unsupported);
    assert!(blk.is_broken());
    assert_eq!(run(blk.read(0, &mut buf)), Err(BlkError::Broken));
}

#[test]
fn read_only_devices_and_devices_without_a_cache() {
    let dev = device(1 << 20, |d| {
        d.offered = (d.offered | super::RO) & !super::FLUSH
    });
    let blk = start(&dev, BlkConfig::default()).unwrap();
    assert!(blk.is_read_only() && !blk.has_flush());
    let e = run(blk.write(0, &[0u8; 512])).unwrap_err();
    assert_eq!(e.kind(), BlockErrorKind::ReadOnly);
    assert_eq!(
        run(blk.flush()).unwrap_err().kind(),
        BlockErrorKind::ReadOnly
    );
    let mut buf = [0u8; 512];
    run(blk.read(0, &mut buf)).unwrap();

    let dev = device(1 << 20, |d| d.offered &= !super::FLUSH);
    let blk = start(&dev, BlkConfig::default()).unwrap();
    let before = dev.borrow().seen.len();
    run(blk.flush()).unwrap();
    assert_eq!(
        dev.borrow().seen.len(),
        before,
        "no cache: nothing to flush"
    );
}

#[test]
fn block_size_size_max_and_discard_limits_are_honoured() {
    let dev = device(1 << 20, |d| {
        d.blk_size = 4096;
        with_size_max(d, 8192);
        d.max_discard_sectors = 64;
    });
    let blk = start(&dev, BlkConfig::default()).unwrap();
    assert_eq!(
        (blk.sector_size(), blk.sectors(), blk.chunk_bytes()),
        (4096, 256, 8192)
    );
    let data = pattern(5 * 4096, 1);
    run(blk.write(3, &data)).unwrap();
    let seen = dev.borrow().seen.clone();
    // Virtio sectors are 512 bytes whatever the block size.
    assert_eq!(seen[0].sector, 24);
    assert!(seen.iter().all(|s| s.len <= 8192));
    assert_eq!(dev.borrow().data[3 * 4096..8 * 4096], data[..]);
    // 20 blocks are 160 virtio sectors: three discards of at most 64.
    run(blk.discard(3, 20)).unwrap();
    assert!(
        dev.borrow().data[3 * 4096..8 * 4096]
            .iter()
            .all(|&b| b == 0)
    );
    let discards: Vec<_> = dev
        .borrow()
        .seen
        .iter()
        .filter(|s| s.kind == 11)
        .copied()
        .collect();
    assert_eq!(discards.len(), 3);
    let e = start(
        &device(1 << 20, |d| d.blk_size = 1000),
        BlkConfig::default(),
    )
    .unwrap_err();
    assert_eq!(e, BlkError::BadBlockSize(1000));
}

#[test]
fn dropping_the_driver_resets_the_device_before_freeing_its_memory() {
    let dev = device(1 << 20, |_| {});
    let blk = start(&dev, BlkConfig::default()).unwrap();
    let mut buf = [0u8; 512];
    run(blk.read(0, &mut buf)).unwrap();
    drop(blk);
    // FakeDma's drop asserts the device no longer points into freed memory.
    assert_eq!(dev.borrow().status, 0);
}
