//! Host tests of the driver against the fake device (`fake.rs`): the same generic code
//! that runs in the kernel, with the PCI transport over an in-memory register file.

use crate::fake::{BUS_OFFSET, Device, FakeHal, FakeIrq, FakeRegs, NOTIFY_MULTIPLIER};
use crate::net::net_feature::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS};
use crate::transport::{NO_VECTOR, feature, status};
use crate::{BUFFER_SIZE, Config, Error, Net, PciTransport, Region};
use morgana_signatures::{MacAddress, NetIf, RxToken as _, TxToken as _};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Wake, Waker};
use std::vec::Vec;
use std::{format, vec};

type TestNet = Net<FakeHal, PciTransport<FakeRegs>, FakeIrq>;

const ALL_OK: u8 = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;

/// A device with `tweak` applied.
fn device(tweak: impl FnOnce(&mut Device)) -> Rc<RefCell<Device>> {
    let mut d = Device::new();
    tweak(&mut d);
    Rc::new(RefCell::new(d))
}

fn start_with(dev: &Rc<RefCell<Device>>, config: Config, msix: bool) -> Result<TestNet, Error> {
    start_on(FakeHal::new(dev.clone()), dev, config, msix)
}

fn start_on(
    hal: FakeHal,
    dev: &Rc<RefCell<Device>>,
    config: Config,
    msix: bool,
) -> Result<TestNet, Error> {
    let transport = PciTransport::new(FakeRegs(dev.clone()), NOTIFY_MULTIPLIER)?;
    let irq = FakeIrq {
        waker: dev.borrow().waker.clone(),
        msix,
        registrations: Cell::new(0),
    };
    Net::new(hal, transport, irq, config)
}

fn start(dev: &Rc<RefCell<Device>>) -> TestNet {
    start_with(dev, Config::default(), true).expect("driver starts")
}

/// A frame of `len` bytes numbered `n`: broadcast, EtherType 0x88b5 (local experimental).
fn frame(n: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0xFF; 6];
    f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 2, 0x88, 0xB5]);
    f.extend_from_slice(&n.to_be_bytes());
    f.extend((f.len()..len).map(|i| (i as u32 ^ n) as u8));
    f.truncate(len);
    f
}

/// Receives one frame and returns a copy of it.
fn recv<I: crate::Interrupt>(net: &mut Net<FakeHal, PciTransport<FakeRegs>, I>) -> Option<Vec<u8>> {
    let (rx, _tx) = net.receive()?;
    Some(rx.consume(|f| f.to_vec()))
}

/// Sends `bytes` through a `transmit` token; false when there is no room.
fn send(net: &mut TestNet, bytes: &[u8]) -> bool {
    match net.transmit() {
        Some(tx) => {
            tx.consume(bytes.len(), |b| b.copy_from_slice(bytes));
            true
        }
        None => false,
    }
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let c = Arc::new(CountingWaker(AtomicUsize::new(0)));
    (c.clone(), Waker::from(c))
}

#[test]
fn negotiates_version_1_mac_and_status_and_declines_offloads() {
    let dev = device(|_| {});
    let net = start(&dev);
    let d = dev.borrow();
    assert_eq!(
        d.driver_features,
        feature::VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | feature::EVENT_IDX
    );
    assert_eq!(net.features(), d.driver_features);
    assert_eq!(d.status, ALL_OK);
    // The initialisation sequence, in the specification's order.
    assert_eq!(
        d.status_writes,
        [
            0,
            status::ACKNOWLEDGE,
            status::ACKNOWLEDGE | status::DRIVER,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
            ALL_OK
        ]
    );
    assert_eq!(
        net.mac_address(),
        MacAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    );
    assert_eq!(net.mtu(), 1500);
    drop(d);
    assert_eq!(net.link_up(), Some(true));
    dev.borrow_mut().config[6] = 0;
    assert_eq!(net.link_up(), Some(false));
}

#[test]
fn sets_up_both_queues_with_bus_addresses_and_vectors() {
    let dev = device(|_| {});
    let net = start(&dev);
    assert_eq!(net.queue_sizes(), (128, 128));
    let d = dev.borrow();
    for (i, q) in d.queues.iter().enumerate() {
        assert_eq!(q.enable, 1, "queue {i}");
        assert_eq!(q.size, 128);
        assert!(
            q.desc >= BUS_OFFSET && q.desc.is_multiple_of(16),
            "{:#x}",
            q.desc
        );
        assert!(q.driver > q.desc && q.driver.is_multiple_of(2));
        assert!(q.device > q.driver && q.device.is_multiple_of(4));
    }
    assert_eq!(d.queues[0].vector, 0, "receive queue on MSI-X entry 0");
    assert_eq!(d.queues[1].vector, NO_VECTOR, "no transmit interrupts");
    assert_eq!(d.config_vector, NO_VECTOR);
    // Every receive buffer posted and announced with one notification.
    assert_eq!(d.queues[0].notifications, 1);
    assert_eq!(d.queues[1].notifications, 0);
    let (rx, tx) = net.dma_bytes();
    assert_eq!(rx, tx);
    assert_eq!(rx, 49 * 4096, "rings + 128 buffers of {BUFFER_SIZE} bytes");
}

#[test]
fn queue_size_is_a_power_of_two_within_the_device_maximum() {
    for (max, wanted, expect) in [(256, 128, 128), (64, 128, 64), (100, 128, 64), (1, 128, 1)] {
        let dev = device(|d| d.queues[0].max_size = max);
        let config = Config {
            rx_queue_size: wanted,
            ..Config::default()
        };
        let net = start_with(&dev, config, true).unwrap();
        assert_eq!(net.queue_sizes().0, expect, "max {max}, wanted {wanted}");
        assert_eq!(dev.borrow().queues[0].size, expect);
    }
}

#[test]
fn receives_frames_in_place() {
    let dev = device(|_| {});
    let mut net = start(&dev);
    assert!(recv(&mut net).is_none());
    for (n, len) in [(1, 60), (2, 1514), (3, 14 + 1500)] {
        assert!(dev.borrow_mut().receive(&frame(n, len)));
    }
    assert_eq!(recv(&mut net).unwrap(), frame(1, 60));
    assert_eq!(recv(&mut net).unwrap(), frame(2, 1514));
    // The frame is lent where the device wrote it: no copy.
    let (rx, _) = net.receive().unwrap();
    let dev_ref = dev.clone();
    rx.consume(|f| {
        assert_eq!(f, &frame(3, 1514)[..]);
        let addr = f.as_ptr() as u64 + BUS_OFFSET - crate::NET_HDR_LEN as u64;
        let q = dev_ref.borrow().queues[0];
        assert!(addr > q.device, "frame lies in the queue's DMA buffers");
    });
    assert!(recv(&mut net).is_none());
    assert_eq!(net.stats().rx_frames, 3);
}

#[test]
fn many_frames_wrap_the_rings_and_the_16_bit_indices() {
    let dev = device(|_| {});
    let config = Config {
        rx_queue_size: 8,
        tx_queue_size: 8,
        ..Config::default()
    };
    let mut net = start_with(&dev, config, true).unwrap();
    let mut n = 0u32;
    let mut got = 0u32;
    // 70 000 frames through 8 entries: the ring wraps 8 750 times and the free-running
    // u16 indices wrap once. Bursts of 1 to 8 frames, so the slots do not stay aligned.
    while n < 70_000 {
        let burst = 1 + n % 8;
        for _ in 0..burst {
            if dev
                .borrow_mut()
                .receive(&frame(n, 60 + (n % 1400) as usize))
            {
                n += 1;
            }
        }
        while let Some(f) = recv(&mut net) {
            assert_eq!(f, frame(got, 60 + (got % 1400) as usize), "frame {got}");
            got += 1;
        }
    }
    assert_eq!(got, n);
    assert!(n > u32::from(u16::MAX));
    assert_eq!(
        dev.borrow().queues[0].used_idx,
        n as u16,
        "the u16 index wrapped"
    );
    // Replies through the paired token, also across the wrap.
    for i in 0..20_000u32 {
        assert!(dev.borrow_mut().receive(&frame(i, 64)));
        let (rx, tx) = net.receive().unwrap();
        rx.consume(|f| tx.consume(f.len(), |out| out.copy_from_slice(f)));
        assert_eq!(dev.borrow_mut().transmit(), [frame(i, 64)]);
    }
    assert_eq!(net.stats().tx_frames, 20_000);
    assert_eq!(net.stats().tx_dropped, 0);
}

#[test]
fn event_indices_are_declined_when_not_offered_or_not_wanted() {
    let dev = device(|d| d.offered &= !feature::EVENT_IDX);
    let net = start(&dev);
    assert_eq!(net.features() & feature::EVENT_IDX, 0);
    let dev = device(|_| {});
    let config = Config {
        event_idx: false,
        ..Config::default()
    };
    let net = start_with(&dev, config, true).unwrap();
    assert_eq!(net.features() & feature::EVENT_IDX, 0);
    assert_eq!(dev.borrow().driver_features & feature::EVENT_IDX, 0);
}

#[test]
fn a_full_receive_ring_refills_when_the_stack_has_read_it() {
    let dev = device(|d| d.offered &= !feature::EVENT_IDX);
    let mut net = start(&dev);
    let mut n = 0;
    while dev.borrow_mut().receive(&frame(n, 100)) {
        n += 1;
    }
    assert_eq!(n, 128, "all 128 buffers were posted");
    let kicks = dev.borrow().queues[0].notifications;
    for i in 0..n {
        assert_eq!(recv(&mut net).unwrap(), frame(i, 100));
    }
    assert!(recv(&mut net).is_none());
    // Returned in batches of a quarter ring, and the rest when receive found nothing.
    assert_eq!(dev.borrow().queues[0].notifications, kicks + 4);
    assert!(dev.borrow_mut().receive(&frame(999, 100)));
    // A device that does not want notifications gets none.
    dev.borrow_mut().set_no_notify(0, true);
    assert!(recv(&mut net).is_some());
    assert!(recv(&mut net).is_none());
    assert_eq!(dev.borrow().queues[0].notifications, kicks + 4);
}

/// With event indices the device says up to where it has taken buffers: returned
/// buffers are announced only when it had taken every one announced before.
#[test]
fn with_event_indices_the_receive_ring_is_announced_only_to_a_device_that_ran_dry() {
    let dev = device(|_| {});
    let mut net = start(&dev);
    assert_ne!(net.features() & feature::EVENT_IDX, 0);
    let mut n = 0;
    while dev.borrow_mut().receive(&frame(n, 100)) {
        n += 1;
    }
    assert_eq!(n, 128);
    let kicks = dev.borrow().queues[0].notifications;
    for i in 0..n {
        assert_eq!(recv(&mut net).unwrap(), frame(i, 100));
    }
    assert!(recv(&mut net).is_none());
    // The device had taken all 128: the first quarter back is announced; the rest
    // follows without notification (the device reads the index when it next takes one).
    assert_eq!(dev.borrow().queues[0].notifications, kicks + 1);
    assert!(dev.borrow_mut().receive(&frame(999, 100)));
    assert_eq!(recv(&mut net).unwrap(), frame(999, 100));
    assert!(recv(&mut net).is_none());
    assert_eq!(dev.borrow().queues[0].notifications, kicks + 1);
    // It takes the rest and runs dry: what comes back is announced again.
    let mut m = 0;
    while dev.borrow_mut().receive(&frame(1000 + m, 100)) {
        m += 1;
    }
    assert_eq!(m, 128, "every returned buffer was usable");
    for _ in 0..m {
        assert!(recv(&mut net).is_some());
    }
    assert!(recv(&mut net).is_none());
    assert_eq!(dev.borrow().queues[0].notifications, kicks + 2);
}

#[test]
fn an_unconsumed_token_still_returns_its_buffer() {
    let dev = device(|d| d.queues[0].max_size = 2);
    let mut net = start(&dev);
    for round in 0..10 {
        assert!(dev.borrow_mut().receive(&frame(round, 60)), "round {round}");
        let tokens = net.receive();
        assert!(tokens.is_some());
        drop(tokens);
    }
}

#[test]
fn transmits_until_the_ring_is_full_then_reclaims() {
    let dev = device(|d| d.offered &= !feature::EVENT_IDX);
    let mut net = start(&dev);
    let mut sent = 0;
    while send(&mut net, &frame(sent, 60 + sent as usize)) {
        sent += 1;
    }
    assert_eq!(sent, 128);
    assert_eq!(net.pending_tx(), 128);
    assert_eq!(dev.borrow().queues[1].notifications, 128);
    let out = dev.borrow_mut().transmit();
    assert_eq!(out.len(), 128);
    for (i, f) in out.iter().enumerate() {
        assert_eq!(f, &frame(i as u32, 60 + i));
    }
    assert_eq!(net.pending_tx(), 0);
    // transmit() reclaims what the device sent.
    assert!(send(&mut net, &frame(500, 1514)));
    assert_eq!(dev.borrow_mut().transmit(), [frame(500, 1514)]);
    // No transmit interrupts were asked for.
    assert_eq!(dev.borrow().interrupts, 0);
    // A device that polls needs no notification.
    dev.borrow_mut().set_no_notify(1, true);
    assert!(send(&mut net, &frame(501, 60)));
    assert_eq!(dev.borrow().queues[1].notifications, 129);
    assert_eq!(net.stats().tx_frames, 130);
}

/// With event indices, a frame written while the device has not yet taken the last
/// announced one needs no notification; one written after it took them all does, and
/// so does one past an `avail_event` the device moved back (as QEMU does when it
/// schedules its transmit work).
#[test]
fn with_event_indices_transmits_notify_a_device_that_took_everything() {
    let dev = device(|_| {});
    let mut net = start(&dev);
    assert!(send(&mut net, &frame(1, 60)));
    assert_eq!(dev.borrow().queues[1].notifications, 1);
    // The device has not taken frame 1 yet: frames 2 and 3 are not announced.
    assert!(send(&mut net, &frame(2, 60)));
    assert!(send(&mut net, &frame(3, 60)));
    assert_eq!(dev.borrow().queues[1].notifications, 1);
    assert_eq!(
        dev.borrow_mut().transmit(),
        [frame(1, 60), frame(2, 60), frame(3, 60)]
    );
    // It took them all: the next one is announced, the one after it not.
    assert!(send(&mut net, &frame(4, 60)));
    assert!(send(&mut net, &frame(5, 60)));
    assert_eq!(dev.borrow().queues[1].notifications, 2);
    // The device asks to hear of anything past frame 5 (available index 5).
    dev.borrow_mut().set_avail_event(1, 5);
    assert!(send(&mut net, &frame(6, 60)));
    assert!(send(&mut net, &frame(7, 60)));
    assert_eq!(dev.borrow().queues[1].notifications, 3);
    assert_eq!(dev.borrow_mut().transmit().len(), 4);
    // The transmit queue does not interrupt, past 2^16 frames either (a device's first
    // decision may signal without looking, as QEMU's does: there is no vector).
    let interrupts = dev.borrow().interrupts;
    assert!(interrupts <= 1);
    for n in 0..70_000u32 {
        assert!(send(&mut net, &frame(n, 60)));
        if n % 100 == 99 {
            assert_eq!(dev.borrow_mut().transmit().len(), 100);
        }
    }
    assert_eq!(dev.borrow().interrupts, interrupts);
}

#[test]
fn a_reply_with_the_transmit_ring_full_is_dropped_not_lost_in_a_hang() {
    let dev = device(|d| d.queues[1].max_size = 4);
    let mut net = start(&dev);
    for i in 0..4 {
        assert!(send(&mut net, &frame(i, 60)));
    }
    assert!(net.transmit().is_none());
    assert!(dev.borrow_mut().receive(&frame(7, 60)));
    let (rx, tx) = net
        .receive()
        .expect("a received frame even with the TX ring full");
    let r = rx.consume(|f| tx.consume(f.len(), |out| out.len()));
    assert_eq!(r, 60);
    assert_eq!(net.stats().tx_dropped, 1);
    // Once the device has sent, the reply token finds room.
    assert_eq!(dev.borrow_mut().transmit().len(), 4);
    assert!(dev.borrow_mut().receive(&frame(8, 60)));
    let (rx, tx) = net.receive().unwrap();
    rx.consume(|f| tx.consume(f.len(), |out| out.copy_from_slice(f)));
    assert_eq!(dev.borrow_mut().transmit(), [frame(8, 60)]);
    // A frame longer than the buffers is dropped too.
    let tx = net.transmit().unwrap();
    tx.consume(BUFFER_SIZE, |out| out.fill(1));
    assert_eq!(net.stats().tx_dropped, 2);
    assert!(dev.borrow_mut().transmit().is_empty());
}

#[test]
fn a_device_without_a_mac_gets_the_fallback() {
    let dev = device(|d| d.offered &= !VIRTIO_NET_F_MAC);
    let config = Config {
        fallback_mac: MacAddress([0x02, 0x4D, 0x47, 0, 3, 0]),
        ..Config::default()
    };
    let net = start_with(&dev, config, true).unwrap();
    assert_eq!(net.mac_address(), MacAddress([0x02, 0x4D, 0x47, 0, 3, 0]));
    assert_eq!(net.features() & VIRTIO_NET_F_MAC, 0);
    // Nor a garbage one.
    let dev = device(|d| d.config[0] = 0x01);
    let net = start_with(&dev, config, true).unwrap();
    assert_eq!(net.mac_address(), config.fallback_mac);
}

#[test]
fn a_mac_is_read_again_while_the_configuration_changes() {
    // Each read of byte 0 bumps the generation: every attempt is inconsistent, so the
    // driver gives up after a bounded number and uses the fallback.
    let dev = device(|d| d.unstable_config = true);
    let net = start(&dev);
    assert_eq!(net.mac_address(), Config::default().fallback_mac);
}

#[test]
fn the_device_mtu_is_used_when_it_is_smaller_than_1500() {
    let dev = device(|d| {
        d.offered |= VIRTIO_NET_F_MTU;
        d.config[10..12].copy_from_slice(&1400u16.to_le_bytes());
    });
    let net = start(&dev);
    assert_eq!(net.mtu(), 1400);
    assert_ne!(net.features() & VIRTIO_NET_F_MTU, 0);
    let dev = device(|d| {
        d.offered |= VIRTIO_NET_F_MTU;
        d.config[10..12].copy_from_slice(&9000u16.to_le_bytes());
    });
    let net = start(&dev);
    assert_eq!(net.mtu(), 1500);
    assert_eq!(net.features() & VIRTIO_NET_F_MTU, 0, "jumbo MTU declined");
}

#[test]
fn the_receive_interrupt_wakes_the_registered_waker() {
    let dev = device(|_| {});
    let mut net = start(&dev);
    let (count, waker) = counting_waker();
    net.register_rx_waker(&waker);
    assert_eq!(count.0.load(Ordering::Relaxed), 0, "nothing to receive yet");
    assert!(dev.borrow_mut().receive(&frame(1, 60)));
    assert_eq!(count.0.load(Ordering::Relaxed), 1, "woken by the interrupt");
    // Registering while a frame waits wakes at once.
    net.register_rx_waker(&waker);
    assert_eq!(count.0.load(Ordering::Relaxed), 2);
    assert!(recv(&mut net).is_some());
    // Buffers consumed since the last notification go back to the device first.
    assert!(dev.borrow_mut().receive(&frame(2, 60)));
    let kicks = dev.borrow().queues[0].notifications;
    let (rx, _) = net.receive().unwrap();
    rx.consume(|_| ());
    net.register_rx_waker(&waker);
    assert_eq!(dev.borrow().queues[0].notifications, kicks + 1);
}

#[test]
fn intx_reads_the_isr_before_waiting() {
    let dev = device(|d| d.msix_entries = 0);
    let mut net = start_with(&dev, Config::default(), false).unwrap();
    assert_eq!(dev.borrow().queues[0].vector, NO_VECTOR);
    assert!(dev.borrow_mut().receive(&frame(1, 60)));
    assert_eq!(dev.borrow().isr, 1);
    assert!(recv(&mut net).is_some());
    let (_, waker) = counting_waker();
    net.register_rx_waker(&waker);
    assert_eq!(dev.borrow().isr, 0, "the ISR was read: line deasserted");
    assert_eq!(net.interrupt().registrations.get(), 1);
}

#[test]
fn dropping_the_driver_resets_the_device_before_freeing_its_memory() {
    let dev = device(|_| {});
    let hal = FakeHal::new(dev.clone());
    let live = hal.live.clone();
    let net = start_on(hal, &dev, Config::default(), true).unwrap();
    assert_eq!(live.get(), 2);
    drop(net); // FakeDma's drop asserts that no enabled queue points into it
    assert_eq!(live.get(), 0);
    assert_eq!(dev.borrow().status, 0);
}

// ---- Broken devices: clear errors, no hangs, device marked FAILED, memory freed. ----

fn fails(tweak: impl FnOnce(&mut Device), msix: bool) -> (Error, Rc<RefCell<Device>>) {
    let dev = device(tweak);
    let hal = FakeHal::new(dev.clone());
    let live = hal.live.clone();
    let e = start_on(hal, &dev, Config::default(), msix).expect_err("the driver must refuse");
    assert_eq!(live.get(), 0, "DMA memory freed after {e}");
    assert_ne!(
        dev.borrow().status & status::FAILED,
        0,
        "FAILED set after {e}"
    );
    (e, dev)
}

#[test]
fn a_missing_queue_is_an_error() {
    let (e, _) = fails(|d| d.queues[1].max_size = 0, true);
    assert_eq!(e, Error::QueueMissing { queue: 1 });
    assert_eq!(format!("{e}"), "the virtio device has no queue 1");
}

#[test]
fn an_invalid_queue_size_is_an_error() {
    let (e, _) = fails(|d| d.queues[0].max_size = 40_000, true);
    assert_eq!(
        e,
        Error::QueueSizeInvalid {
            queue: 0,
            size: 40_000
        }
    );
}

#[test]
fn a_queue_size_the_device_will_not_take_is_an_error() {
    let (e, _) = fails(|d| d.fixed_queue_size = true, true);
    assert_eq!(
        e,
        Error::QueueSizeRejected {
            queue: 0,
            size: 128
        }
    );
    assert!(format!("{e}").contains("rejected size 128 for queue 0"));
}

#[test]
fn refused_features_are_an_error() {
    let (e, dev) = fails(|d| d.refuse_features = true, true);
    assert_eq!(
        e,
        Error::FeaturesRefused {
            features: feature::VERSION_1
                | VIRTIO_NET_F_MAC
                | VIRTIO_NET_F_STATUS
                | feature::EVENT_IDX
        }
    );
    assert!(dev.borrow().queues.iter().all(|q| q.enable == 0));
}

#[test]
fn a_legacy_only_device_is_an_error() {
    let (e, _) = fails(|d| d.offered &= !feature::VERSION_1, true);
    assert!(matches!(e, Error::NoVersion1 { .. }));
    assert!(format!("{e}").contains("legacy-only"));
}

#[test]
fn a_device_that_never_resets_is_an_error_not_a_hang() {
    let dev = device(|d| d.stuck_in_reset = true);
    let e = start_with(&dev, Config::default(), true).unwrap_err();
    assert_eq!(e, Error::ResetTimeout);
}

#[test]
fn a_rejected_msix_vector_is_an_error() {
    let (e, _) = fails(|d| d.msix_entries = 0, true);
    assert_eq!(
        e,
        Error::MsixVectorRejected {
            queue: 0,
            vector: 0
        }
    );
}

#[test]
fn a_notification_address_outside_its_region_is_an_error() {
    let (e, _) = fails(|d| d.queues[1].notify_off = 0x4000, true);
    assert!(
        matches!(e, Error::NotifyOutOfRange { queue: 1, .. }),
        "{e:?}"
    );
}

#[test]
fn a_device_failing_at_driver_ok_is_an_error() {
    let (e, _) = fails(|d| d.fail_on_driver_ok = true, true);
    assert_eq!(e, Error::DeviceFailed);
}

#[test]
fn running_out_of_dma_memory_is_an_error() {
    let dev = device(|_| {});
    let mut hal = FakeHal::new(dev.clone());
    hal.limit = Some(1);
    let live = hal.live.clone();
    let e = start_on(hal, &dev, Config::default(), true).unwrap_err();
    assert!(matches!(e, Error::OutOfMemory { .. }), "{e:?}");
    assert_eq!(live.get(), 0);
}

#[test]
fn a_too_small_common_region_is_an_error() {
    #[derive(Debug)]
    struct Short(FakeRegs);
    impl crate::PciRegs for Short {
        fn len(&self, region: Region) -> usize {
            if region == Region::Common {
                0x20
            } else {
                self.0.len(region)
            }
        }
        fn read8(&self, r: Region, o: usize) -> u8 {
            self.0.read8(r, o)
        }
        fn read16(&self, r: Region, o: usize) -> u16 {
            self.0.read16(r, o)
        }
        fn read32(&self, r: Region, o: usize) -> u32 {
            self.0.read32(r, o)
        }
        fn write8(&self, r: Region, o: usize, v: u8) {
            self.0.write8(r, o, v)
        }
        fn write16(&self, r: Region, o: usize, v: u16) {
            self.0.write16(r, o, v)
        }
        fn write32(&self, r: Region, o: usize, v: u32) {
            self.0.write32(r, o, v)
        }
    }
    let dev = device(|_| {});
    let e = PciTransport::new(Short(FakeRegs(dev)), 4).unwrap_err();
    assert_eq!(
        e,
        Error::RegionTooSmall {
            region: Region::Common,
            len: 0x20
        }
    );
}

#[test]
fn bogus_used_elements_are_counted_and_skipped() {
    let dev = device(|d| d.queues[0].max_size = 8);
    let mut net = start(&dev);
    // A frame shorter than an Ethernet header, one longer than its buffer, and an index
    // out of range.
    assert!(
        dev.borrow_mut()
            .receive_with_len(&frame(1, 60), Some(12 + 10))
    );
    assert!(dev.borrow_mut().receive_with_len(&frame(2, 60), Some(5000)));
    dev.borrow_mut().push_used(0, 77, 100);
    assert!(recv(&mut net).is_none());
    assert_eq!(net.stats().rx_errors, 3);
    assert!(!net.is_broken());
    // The two short/long buffers went back to the device: 8 can be filled again.
    let mut n = 0;
    while dev.borrow_mut().receive(&frame(n, 60)) {
        n += 1;
    }
    assert_eq!(n, 8);
    for i in 0..8 {
        assert_eq!(recv(&mut net).unwrap(), frame(i, 60));
    }
}

#[test]
fn a_device_announcing_more_buffers_than_it_had_is_given_up() {
    let dev = device(|d| d.queues[0].max_size = 4);
    let mut net = start(&dev);
    {
        let mut d = dev.borrow_mut();
        for _ in 0..6 {
            d.push_used(0, 0, 100);
        }
    }
    assert!(recv(&mut net).is_none());
    assert!(net.is_broken());
    let (count, waker) = counting_waker();
    net.register_rx_waker(&waker);
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        0,
        "a broken queue does not spin"
    );
}

/// A device that asked not to be notified while it worked through the ring, and then
/// ran dry, may stop taking frames from its backend until it is notified again (QEMU's
/// `-netdev dgram` under loss did: free buffers in the ring, frames held in QEMU's
/// queue, every ACK lost to the guest). Before waiting, the driver notifies once if it
/// added buffers since the device last heard from it, whatever the flag says.
#[test]
fn a_device_that_went_quiet_is_notified_before_the_driver_waits() {
    let dev = device(|_| {});
    let mut net = start(&dev);
    let (_count, waker) = counting_waker();
    net.register_rx_waker(&waker);
    let before = dev.borrow().queues[0].notifications;
    // Busy device: no notifications wanted while frames come and go.
    dev.borrow_mut().set_no_notify(0, true);
    for i in 0..10 {
        assert!(dev.borrow_mut().receive(&frame(i, 80)));
        assert_eq!(recv(&mut net).unwrap(), frame(i, 80));
    }
    assert!(recv(&mut net).is_none());
    assert_eq!(
        dev.borrow().queues[0].notifications,
        before,
        "flag honoured"
    );
    // Going to sleep: one notification for the ten buffers given back.
    net.register_rx_waker(&waker);
    assert_eq!(dev.borrow().queues[0].notifications, before + 1);
    // Nothing new since: no more.
    net.register_rx_waker(&waker);
    assert_eq!(dev.borrow().queues[0].notifications, before + 1);
}

/// While the driver takes frames it asks the device not to interrupt (under QEMU each
/// interrupt stops the vCPU's translated code, whether or not it is taken); the driver
/// waiting for frames turns them back on, and a frame that came in between is found
/// by that wait rather than lost.
#[test]
fn receive_interrupts_are_off_while_frames_are_taken_and_on_while_the_driver_waits() {
    let dev = device(|_| {});
    let mut net = start(&dev);
    let (count, waker) = counting_waker();
    net.register_rx_waker(&waker);
    assert!(dev.borrow_mut().receive(&frame(0, 80)));
    assert_eq!(
        dev.borrow().interrupts,
        1,
        "a waiting driver is interrupted"
    );
    assert_eq!(recv(&mut net).unwrap(), frame(0, 80));
    // Busy: frames arriving now raise no interrupt.
    for i in 1..5 {
        assert!(dev.borrow_mut().receive(&frame(i, 80)));
    }
    assert_eq!(
        dev.borrow().interrupts,
        1,
        "no interrupt while frames are taken"
    );
    // The wait finds them at once.
    let woken = count.0.load(Ordering::Relaxed);
    net.register_rx_waker(&waker);
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        woken + 1,
        "woken for the frames waiting"
    );
    for i in 1..5 {
        assert_eq!(recv(&mut net).unwrap(), frame(i, 80));
    }
    assert!(recv(&mut net).is_none());
    // Waiting again with nothing there: the next frame interrupts.
    net.register_rx_waker(&waker);
    assert!(dev.borrow_mut().receive(&frame(9, 80)));
    assert_eq!(dev.borrow().interrupts, 2);
}

/// An interrupt whose platform watches the receive queue (`Interrupt::watch_queue`), as
/// the PVH kernel's idle step does: it keeps the offer, and the test plays the idle step.
struct WatchingIrq {
    inner: FakeIrq,
    watch: Rc<Cell<Option<crate::QueueWatch>>>,
}

impl crate::Interrupt for WatchingIrq {
    fn msix_entry(&self) -> Option<u16> {
        self.inner.msix_entry()
    }

    fn register(&self, waker: &Waker) {
        self.inner.register(waker);
    }

    unsafe fn watch_queue(&self, watch: crate::QueueWatch) -> bool {
        self.watch.set(Some(watch));
        true
    }

    fn unwatch_queue(&self) {
        self.watch.set(None);
    }
}

impl WatchingIrq {
    /// The idle step about to halt: interrupts on, then one more look. Whether the CPU
    /// may halt (nothing arrived since the driver's last look).
    fn arm_and_look(&self) -> bool {
        let w = self.watch.get().expect("the driver offered its queue");
        // SAFETY: the driver keeps the ring alive while the watch is offered (the
        // test holds the driver).
        unsafe {
            w.arm.write_volatile(w.on.to_le());
            u16::from_le(w.used_index.read_volatile()) == w.seen
        }
    }
}

/// With a platform that watches the receive queue, a waiting driver leaves interrupts
/// off (the CPU may still run other work); the platform turns them on only as the CPU
/// halts, after a last look that finds a frame that came in between; the next frame
/// taken turns them off again although the driver's shadow of the flag was stale. The
/// watch is withdrawn when the driver drops.
#[test]
fn a_watched_receive_queue_interrupts_only_once_the_platform_arms_it() {
    watched_receive_queue(true);
}

/// The same through the available ring's flag, with a device that does not offer
/// `VIRTIO_F_EVENT_IDX`.
#[test]
fn a_watched_receive_queue_without_event_indices_uses_the_flag() {
    watched_receive_queue(false);
}

fn watched_receive_queue(event_idx: bool) {
    let dev = device(|d| {
        if !event_idx {
            d.offered &= !feature::EVENT_IDX;
        }
    });
    let transport = PciTransport::new(FakeRegs(dev.clone()), NOTIFY_MULTIPLIER).unwrap();
    let irq = WatchingIrq {
        inner: FakeIrq {
            waker: dev.borrow().waker.clone(),
            msix: true,
            registrations: Cell::new(0),
        },
        watch: Rc::new(Cell::new(None)),
    };
    let mut net = Net::new(FakeHal::new(dev.clone()), transport, irq, Config::default())
        .expect("driver starts");
    assert_eq!(net.features() & feature::EVENT_IDX != 0, event_idx);
    let (count, waker) = counting_waker();
    // Take one frame so that the driver has turned interrupts off.
    net.register_rx_waker(&waker);
    assert!(dev.borrow_mut().receive(&frame(0, 80)));
    assert_eq!(recv(&mut net).unwrap(), frame(0, 80));
    assert!(recv(&mut net).is_none());
    let before = dev.borrow().interrupts;
    // Waiting: the offer carries the index taken so far; frames raise no interrupt.
    net.register_rx_waker(&waker);
    let w = net.interrupt().watch.get().expect("offered");
    assert_eq!(w.seen, 1);
    // With event indices: one interrupt once the device uses element 1, none before
    // element 0 comes round again.
    assert_eq!((w.on, w.off), if event_idx { (1, 0) } else { (0, 1) });
    assert!(dev.borrow_mut().receive(&frame(1, 80)));
    assert_eq!(
        dev.borrow().interrupts,
        before,
        "no interrupt while the CPU runs"
    );
    // The idle step's last look finds it: the CPU does not halt.
    assert!(!net.interrupt().arm_and_look());
    assert_eq!(recv(&mut net).unwrap(), frame(1, 80));
    assert!(recv(&mut net).is_none());
    // Taking the frame turned interrupts off again (the platform had turned them on).
    assert!(dev.borrow_mut().receive(&frame(2, 80)));
    assert_eq!(dev.borrow().interrupts, before);
    assert_eq!(recv(&mut net).unwrap(), frame(2, 80));
    assert!(recv(&mut net).is_none());
    // Waiting, nothing there: the CPU halts, and the next frame interrupts it.
    let woken = count.0.load(Ordering::Relaxed);
    net.register_rx_waker(&waker);
    assert_eq!(
        count.0.load(Ordering::Relaxed),
        woken,
        "nothing to wake for"
    );
    assert_eq!(net.interrupt().watch.get().unwrap().seen, 3);
    assert!(net.interrupt().arm_and_look());
    assert!(dev.borrow_mut().receive(&frame(3, 80)));
    assert_eq!(
        dev.borrow().interrupts,
        before + 1,
        "a halted CPU is interrupted"
    );
    // Another frame before the CPU has run: with event indices the device interrupted
    // once for the arming, with the flag it interrupts again.
    assert!(dev.borrow_mut().receive(&frame(4, 80)));
    assert_eq!(
        dev.borrow().interrupts,
        before + if event_idx { 1 } else { 2 }
    );
    assert_eq!(recv(&mut net).unwrap(), frame(3, 80));
    assert_eq!(recv(&mut net).unwrap(), frame(4, 80));
    // Dropping the driver withdraws the offer before the ring is freed.
    let offer = net.interrupt().watch.clone();
    drop(net);
    assert!(offer.get().is_none(), "withdrawn");
}
