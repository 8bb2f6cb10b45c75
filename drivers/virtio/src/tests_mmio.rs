//! Host tests of the virtio-mmio transport: the same virtio-net driver, over the fake
//! device behind an MMIO register window (`fake_mmio.rs`), and windows that are wrong
//! in every way the transport checks.

use crate::fake::{BUS_OFFSET, Device, FakeHal, FakeIrq};
use crate::fake_mmio::FakeMmio;
use crate::mmio::{MmioTransport, device_id};
use crate::net::net_feature::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS};
use crate::transport::{QueueSetup, Transport, feature, status};
use crate::{Config, Error, Net};
use morgana_signatures::{MacAddress, NetIf, RxToken as _, TxToken as _};
use std::cell::{Cell, RefCell};
use std::format;
use std::rc::Rc;
use std::vec::Vec;

type MmioNet = Net<FakeHal, MmioTransport<FakeMmio>, FakeIrq>;

const BASE: u64 = 0xFEB0_0000;

fn window(tweak: impl FnOnce(&mut FakeMmio)) -> FakeMmio {
    let mut w = FakeMmio::new(Rc::new(RefCell::new(Device::new())));
    tweak(&mut w);
    w
}

/// The interrupt of a virtio-mmio device: one line, no MSI-X, acknowledged.
fn line_irq(dev: &Rc<RefCell<Device>>) -> FakeIrq {
    FakeIrq {
        waker: dev.borrow().waker.clone(),
        msix: false,
        registrations: Cell::new(0),
    }
}

fn start(w: FakeMmio) -> Result<MmioNet, Error> {
    let dev = w.dev.clone();
    let transport = MmioTransport::new(w, BASE)?;
    Net::new(
        FakeHal::new(dev.clone()),
        transport,
        line_irq(&dev),
        Config::default(),
    )
}

fn frame(n: u8, len: usize) -> Vec<u8> {
    let mut f = std::vec![0xFF; 6];
    f.extend_from_slice(&[0x52, 0x54, 0, 0, 0, 2, 0x88, 0xB5, n]);
    f.resize(len, n ^ 0x5A);
    f
}

#[test]
fn initialises_like_over_pci_with_bus_addresses() {
    let w = window(|_| {});
    let dev = w.dev.clone();
    let net = start(w).expect("driver starts over MMIO");
    let d = dev.borrow();
    assert_eq!(
        d.driver_features,
        feature::VERSION_1 | VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | feature::EVENT_IDX
    );
    assert_eq!(
        d.status_writes,
        [
            0,
            status::ACKNOWLEDGE,
            status::ACKNOWLEDGE | status::DRIVER,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK,
        ]
    );
    for q in &d.queues {
        assert_eq!((q.enable, q.size), (1, 128));
        assert!(q.desc >= BUS_OFFSET && q.driver > q.desc && q.device > q.driver);
    }
    assert_eq!(
        d.queues[0].notifications, 1,
        "receive buffers announced once"
    );
    assert_eq!(
        net.mac_address(),
        MacAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
    );
    drop(d);
    assert_eq!(net.link_up(), Some(true));
    assert_eq!(net.transport().device_id(), device_id::NET);
    assert_eq!(net.transport().base(), BASE);
}

#[test]
fn frames_go_both_ways_and_wrap_the_rings() {
    let w = window(|w| {
        w.dev.borrow_mut().queues[0].max_size = 8;
        w.dev.borrow_mut().queues[1].max_size = 8;
    });
    let dev = w.dev.clone();
    let mut net = start(w).unwrap();
    assert_eq!(net.queue_sizes(), (8, 8));
    for n in 0..200u8 {
        let len = 60 + usize::from(n) * 7;
        assert!(dev.borrow_mut().receive(&frame(n, len)));
        let (rx, _tx) = net.receive().expect("a frame");
        let got = rx.consume(|f| f.to_vec());
        assert_eq!(got, frame(n, len));
        let reply = frame(n.wrapping_add(1), len);
        net.transmit()
            .expect("room to send")
            .consume(reply.len(), |b| b.copy_from_slice(&reply));
        assert_eq!(dev.borrow_mut().transmit(), [reply]);
    }
    assert!(net.receive().is_none());
    assert_eq!(net.stats().rx_frames, 200);
    assert_eq!(net.stats().tx_frames, 200);
    // The device took every frame before the next: each one was announced.
    assert_eq!(dev.borrow().queues[1].notifications, 200);
}

#[test]
fn the_interrupt_status_is_acknowledged_before_waiting() {
    let w = window(|_| {});
    let dev = w.dev.clone();
    let mut net = start(w).unwrap();
    assert!(dev.borrow_mut().receive(&frame(1, 60)));
    assert_eq!(dev.borrow().isr, 1, "the device raised its line");
    let (counter, waker) = {
        struct W(std::sync::atomic::AtomicUsize);
        impl std::task::Wake for W {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let c = std::sync::Arc::new(W(0.into()));
        (c.clone(), std::task::Waker::from(c))
    };
    net.register_rx_waker(&waker);
    assert_eq!(dev.borrow().isr, 0, "acknowledged through InterruptACK");
    // A frame was already waiting: woken at once rather than after a lost interrupt.
    assert_eq!(counter.0.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert!(net.receive().is_some());
    assert_eq!(net.transport().ack_interrupt(), 0, "nothing pending");
}

#[test]
fn dropping_the_driver_resets_the_device_before_freeing_its_memory() {
    let w = window(|_| {});
    let dev = w.dev.clone();
    let net = start(w).unwrap();
    drop(net); // FakeDma checks on free that no ready queue points into it
    let d = dev.borrow();
    assert_eq!(*d.status_writes.last().unwrap(), 0);
    assert!(d.queues.iter().all(|q| q.enable == 0));
}

#[test]
fn a_legacy_window_names_the_qemu_option() {
    let e = start(window(|w| w.version = 1)).unwrap_err();
    assert_eq!(e, Error::MmioLegacy { base: BASE });
    let text = format!("{e}");
    assert!(
        text.contains("0xfeb00000") && text.contains("-global virtio-mmio.force-legacy=false"),
        "{text}"
    );
}

#[test]
fn windows_that_are_not_virtio_are_refused() {
    assert_eq!(
        start(window(|w| w.magic = 0xFFFF_FFFF)).unwrap_err(),
        Error::MmioBadMagic {
            base: BASE,
            magic: 0xFFFF_FFFF
        }
    );
    assert_eq!(
        start(window(|w| w.version = 3)).unwrap_err(),
        Error::MmioVersion {
            base: BASE,
            version: 3
        }
    );
    assert_eq!(
        start(window(|w| w.len = 0xFF)).unwrap_err(),
        Error::MmioWindowTooSmall {
            base: BASE,
            len: 0xFF
        }
    );
}

#[test]
fn an_empty_slot_reads_device_id_zero() {
    let w = window(|w| w.device_id = device_id::NONE);
    let t = MmioTransport::new(w, BASE).unwrap();
    assert_eq!(t.device_id(), device_id::NONE);
}

#[test]
fn a_missing_queue_is_an_error() {
    let w = window(|w| w.dev.borrow_mut().queues[1].max_size = 0);
    let dev = w.dev.clone();
    assert_eq!(start(w).unwrap_err(), Error::QueueMissing { queue: 1 });
    assert!(dev.borrow().status & status::FAILED != 0);
}

#[test]
fn a_queue_that_never_becomes_ready_is_an_error_not_a_hang() {
    let w = window(|w| w.never_ready = true);
    let dev = w.dev.clone();
    assert_eq!(start(w).unwrap_err(), Error::MmioQueueNotReady { queue: 0 });
    assert!(dev.borrow().status & status::FAILED != 0);
}

#[test]
fn a_queue_already_in_use_is_an_error() {
    let w = window(|_| {});
    let dev = w.dev.clone();
    let t = MmioTransport::new(w, BASE).unwrap();
    {
        let mut d = dev.borrow_mut();
        d.status = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        d.queues[0].size = 8;
        d.queues[0].enable = 1;
    }
    let setup = QueueSetup {
        size: 8,
        desc: BUS_OFFSET,
        driver: BUS_OFFSET + 128,
        device: BUS_OFFSET + 256,
        msix_vector: None,
    };
    assert_eq!(
        t.setup_queue(0, &setup),
        Err(Error::MmioQueueBusy { queue: 0 })
    );
    // MMIO has no MSI-X: asking for a vector is refused, not silently dropped.
    let msix = QueueSetup {
        msix_vector: Some(0),
        ..setup
    };
    assert_eq!(
        t.setup_queue(1, &msix),
        Err(Error::MsixVectorRejected {
            queue: 1,
            vector: 0
        })
    );
}

#[test]
fn configuration_reads_stay_inside_the_window() {
    // A window that ends 12 bytes into the configuration (virtio_net_config's size).
    let w = window(|w| w.len = 0x100 + 12);
    let t = MmioTransport::new(w, BASE).unwrap();
    assert_eq!(t.read_config8(0), Some(0x52));
    assert_eq!(t.read_config8(11), Some(0));
    assert_eq!(t.read_config16(6), Some(1), "link up");
    assert_eq!(t.read_config8(12), None, "beyond the window");
    assert_eq!(t.read_config16(12), None, "beyond the window");
    assert_eq!(t.read_config16(7), None, "misaligned");
}
