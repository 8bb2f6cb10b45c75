//! The virtio-net driver proper, generic over the platform ([`Hal`]), the bus
//! ([`Transport`]) and the way interrupts arrive ([`Interrupt`]).

use crate::hal::{DmaMemory, Hal};
use crate::queue::{Used, Virtqueue};
use crate::transport::{self, Transport, feature};
use crate::{Error, Interrupt};
use alloc::vec::Vec;
use core::cell::Cell;
use core::task::Waker;
use morgana_signatures::{MacAddress, NetIf};

/// virtio-net feature bits this driver knows (virtio 1.x, "Feature bits" of the
/// network device). Only [`VIRTIO_NET_F_MAC`], [`VIRTIO_NET_F_STATUS`] and
/// [`VIRTIO_NET_F_MTU`] are ever accepted: no offloads, no mergeable buffers, no
/// control queue, one queue pair.
pub mod net_feature {
    /// The device tells the maximum MTU it supports.
    pub const VIRTIO_NET_F_MTU: u64 = 1 << 3;
    /// The device has a MAC address in its configuration.
    pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
    /// Receive buffers may be merged (not accepted: every buffer holds a whole frame).
    pub const VIRTIO_NET_F_MRG_RXBUF: u64 = 1 << 15;
    /// The configuration has a link status field.
    pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
}
use net_feature::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS};

/// Queue indices of the first (and only) queue pair.
const RX_QUEUE: u16 = 0;
const TX_QUEUE: u16 = 1;

/// Offsets in the network device's configuration (`struct virtio_net_config`).
const CONFIG_MAC: usize = 0;
const CONFIG_STATUS: usize = 6;
const CONFIG_MTU: usize = 10;
/// Link-status bit of the `status` field.
const NET_S_LINK_UP: u16 = 1;

/// Size of `struct virtio_net_hdr` with `VIRTIO_F_VERSION_1` (it always carries
/// `num_buffers`), which precedes every frame in both directions.
pub const NET_HDR_LEN: usize = 12;
/// The standard Ethernet MTU, and the largest this driver uses.
pub const ETHERNET_MTU: usize = 1500;
/// Ethernet header length (destination, source, EtherType).
pub const ETHERNET_HEADER_LEN: usize = 14;
/// Bytes per buffer: header + the largest frame (1514 bytes, or 1518 with a VLAN tag,
/// which a device may still deliver), rounded up to a multiple of 64.
pub const BUFFER_SIZE: usize = 1536;
/// Default number of entries per queue (each with a [`BUFFER_SIZE`] buffer).
pub const DEFAULT_QUEUE_SIZE: u16 = 128;

/// Driver settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Receive queue entries wanted (rounded down to a power of two and to the device's
    /// maximum). Each holds a [`BUFFER_SIZE`] buffer: the default 128 take 192 KiB.
    pub rx_queue_size: u16,
    /// Transmit queue entries wanted, as above.
    pub tx_queue_size: u16,
    /// The MAC address used when the device has none (no `VIRTIO_NET_F_MAC`): it should
    /// be a locally administered unicast address (`02:...`).
    pub fallback_mac: MacAddress,
    /// Accept `VIRTIO_F_EVENT_IDX` when the device offers it: notifications and
    /// interrupts are then asked for with ring indices instead of the rings' flags.
    pub event_idx: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            rx_queue_size: DEFAULT_QUEUE_SIZE,
            tx_queue_size: DEFAULT_QUEUE_SIZE,
            fallback_mac: MacAddress([0x02, 0, 0, 0, 0, 1]),
            event_idx: true,
        }
    }
}

/// Counters of the driver's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the stack.
    pub rx_frames: u64,
    /// Used receive buffers that held no valid frame (too short, too long, a buffer the
    /// device did not own): dropped.
    pub rx_errors: u64,
    /// Frames given to the device.
    pub tx_frames: u64,
    /// Frames dropped because the transmit queue was full or the frame too long.
    pub tx_dropped: u64,
    /// Notifications sent to the device (those it asked not to get are not sent).
    pub kicks: u64,
}

/// The receive side: every buffer not lent to the stack is in the device's hands.
pub(crate) struct RxQueue<D: DmaMemory> {
    vq: Virtqueue<D>,
    /// Buffers returned to the ring since the last notification.
    unkicked: Cell<u16>,
    /// The available index the device was last actually notified of.
    notified: Cell<u16>,
    frames: u64,
    errors: u64,
    kicks: Cell<u64>,
}

/// The transmit side: free buffers wait in `free`.
pub(crate) struct TxQueue<D: DmaMemory> {
    vq: Virtqueue<D>,
    free: Vec<u16>,
    /// Where a frame goes that cannot be sent (queue full, too long): the closure still
    /// needs a buffer to write into.
    scratch: Vec<u8>,
    frames: u64,
    dropped: u64,
    kicks: u64,
}

/// A virtio-net device, driven.
///
/// One receive and one transmit queue. Received frames are lent to the stack in place
/// ([`RxToken`]); frames to send are written in place into the transmit buffer the
/// device will read ([`TxToken`]). Nothing is copied by the driver.
pub struct Net<H: Hal, T: Transport, I: Interrupt> {
    hal: H,
    transport: T,
    irq: I,
    rx: RxQueue<H::Dma>,
    tx: TxQueue<H::Dma>,
    mac: MacAddress,
    mtu: usize,
    features: u64,
    /// Initialisation failed after the queues were made: mark the device FAILED on drop.
    failed: bool,
}

impl<H: Hal, T: Transport, I: Interrupt> core::fmt::Debug for Net<H, T, I> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("mac", &self.mac)
            .field("mtu", &self.mtu)
            .field("features", &format_args!("{:#x}", self.features))
            .field("rx_queue_size", &self.rx.vq.size())
            .field("tx_queue_size", &self.tx.vq.size())
            .finish_non_exhaustive()
    }
}

impl<H: Hal, T: Transport, I: Interrupt> Net<H, T, I> {
    /// Initialises the device behind `transport`: reset, feature negotiation
    /// (`VERSION_1` required; `MAC`, `STATUS` and `MTU` if offered, nothing else), both
    /// queues with all receive buffers posted, the receive queue's interrupt on
    /// `irq`'s MSI-X entry (if any), DRIVER_OK.
    ///
    /// Fails with a clear [`Error`] rather than waiting forever on a broken device. On
    /// failure the device is marked FAILED.
    pub fn new(hal: H, transport: T, irq: I, config: Config) -> Result<Net<H, T, I>, Error> {
        let mut device_mtu = None;
        let features = transport::initialize(&transport, |offered| {
            let mut accept = feature::VERSION_1
                | feature::ACCESS_PLATFORM
                | VIRTIO_NET_F_MAC
                | VIRTIO_NET_F_STATUS;
            if config.event_idx {
                accept |= feature::EVENT_IDX;
            }
            // A device MTU above 1500 would oblige us to receive frames larger than our
            // buffers; one below it is the MTU to use.
            if offered & VIRTIO_NET_F_MTU != 0 {
                let mtu = transport.read_config16(CONFIG_MTU).map(usize::from);
                if let Some(mtu @ 68..=ETHERNET_MTU) = mtu {
                    accept |= VIRTIO_NET_F_MTU;
                    device_mtu = Some(mtu);
                }
            }
            accept
        })?;
        let mac = if features & VIRTIO_NET_F_MAC != 0 {
            read_mac(&transport).unwrap_or(config.fallback_mac)
        } else {
            config.fallback_mac
        };
        // A queue whose set-up failed was never enabled, so the device does not use its
        // memory; one that was set up is dropped only after `abandon` reset the device.
        let mut rx = Virtqueue::new(
            &hal,
            &transport,
            RX_QUEUE,
            config.rx_queue_size,
            BUFFER_SIZE,
            true,
            irq.msix_entry(),
        )
        .map_err(|e| abandon(&transport, e))?;
        let mut tx = match Virtqueue::new(
            &hal,
            &transport,
            TX_QUEUE,
            config.tx_queue_size,
            BUFFER_SIZE,
            false,
            None,
        ) {
            Ok(tx) => tx,
            Err(e) => {
                let e = abandon(&transport, e);
                drop(rx);
                return Err(e);
            }
        };
        transport.set_config_vector(None);
        if features & feature::EVENT_IDX != 0 {
            rx.use_event_idx();
            tx.use_event_idx();
        }
        tx.suppress_interrupts();
        let free = (0..tx.size()).rev().collect();
        let mut net = Net {
            hal,
            transport,
            irq,
            rx: RxQueue {
                vq: rx,
                unkicked: Cell::new(0),
                notified: Cell::new(0),
                frames: 0,
                errors: 0,
                kicks: Cell::new(0),
            },
            tx: TxQueue {
                vq: tx,
                free,
                scratch: Vec::new(),
                frames: 0,
                dropped: 0,
                kicks: 0,
            },
            mac,
            mtu: device_mtu.unwrap_or(ETHERNET_MTU),
            features,
            failed: false,
        };
        for id in 0..net.rx.vq.size() {
            net.rx.vq.push(&net.hal, id, BUFFER_SIZE as u32);
        }
        if let Err(e) = transport::driver_ok(&net.transport) {
            // Dropping `net` resets the device before the queues' memory goes, then
            // marks it FAILED.
            net.failed = true;
            return Err(e);
        }
        // The device may only be notified once it is live.
        net.rx.unkicked.set(net.rx.vq.size());
        net.rx.flush(&net.hal, &net.transport);
        Ok(net)
    }

    /// The negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Whether the link is up: `None` when the device does not report it (then assume
    /// it is).
    pub fn link_up(&self) -> Option<bool> {
        if self.features & VIRTIO_NET_F_STATUS == 0 {
            return None;
        }
        self.transport
            .read_config16(CONFIG_STATUS)
            .map(|s| s & NET_S_LINK_UP != 0)
    }

    /// Entries of the receive and transmit queues.
    pub fn queue_sizes(&self) -> (u16, u16) {
        (self.rx.vq.size(), self.tx.vq.size())
    }

    /// Bytes of DMA memory used by the receive and the transmit queue (rings and
    /// buffers, as allocated).
    pub fn dma_bytes(&self) -> (usize, usize) {
        (self.rx.vq.dma_bytes(), self.tx.vq.dma_bytes())
    }

    /// Takes back the transmit buffers the device is done with and returns how many
    /// frames it has not sent yet. A device sends asynchronously after its notification
    /// (QEMU from its main loop): wait for 0 before powering off, or the last frames are
    /// lost.
    pub fn pending_tx(&mut self) -> usize {
        self.tx.reclaim(&self.hal);
        usize::from(self.tx.vq.size()) - self.tx.free.len()
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            rx_frames: self.rx.frames,
            rx_errors: self.rx.errors,
            tx_frames: self.tx.frames,
            tx_dropped: self.tx.dropped,
            kicks: self.rx.kicks.get() + self.tx.kicks,
        }
    }

    /// Whether the device misbehaved on a queue (returned more buffers than it had) and
    /// the driver stopped using it; the device must be reset (re-created) to recover.
    pub fn is_broken(&self) -> bool {
        self.rx.vq.is_broken() || self.tx.vq.is_broken()
    }

    /// How interrupts reach the driver.
    pub fn interrupt(&self) -> &I {
        &self.irq
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }
}

/// Gives up on a device whose initialisation failed half-way: resets it (so it stops
/// using any queue memory) and marks it FAILED. Returns `e`.
fn abandon<T: Transport>(t: &T, e: Error) -> Error {
    if transport::reset(t).is_err() {
        log::error!("virtio-net: the device did not reset after: {e}");
    }
    transport::fail(t);
    e
}

/// Reads the MAC address, retrying while the configuration changes under the read.
fn read_mac<T: Transport>(t: &T) -> Option<MacAddress> {
    for _ in 0..8 {
        let before = t.config_generation();
        let mut mac = [0; 6];
        for (i, b) in mac.iter_mut().enumerate() {
            *b = t.read_config8(CONFIG_MAC + i)?;
        }
        if t.config_generation() == before {
            let mac = MacAddress(mac);
            if !mac.is_unicast() || mac == MacAddress([0; 6]) {
                log::warn!("virtio-net: the device's MAC {mac} is not a unicast address");
                return None;
            }
            return Some(mac);
        }
    }
    None
}

impl<D: DmaMemory> RxQueue<D> {
    /// Returns buffer `id` to the device; notifies it once a quarter of the ring has
    /// come back (the rest waits for [`RxQueue::flush`]).
    fn recycle<H: Hal, T: Transport>(&mut self, hal: &H, transport: &T, id: u16) {
        self.vq.push(hal, id, BUFFER_SIZE as u32);
        self.unkicked.set(self.unkicked.get() + 1);
        if self.unkicked.get() >= (self.vq.size() / 4).max(1) {
            self.flush(hal, transport);
        }
    }

    /// Notifies the device of the buffers returned since the last notification.
    fn flush<H: Hal, T: Transport>(&self, hal: &H, transport: &T) {
        if self.unkicked.get() > 0 {
            self.unkicked.set(0);
            if self.vq.kick(hal, transport) {
                self.kicks.set(self.kicks.get() + 1);
                self.notified.set(self.vq.avail_idx());
            }
        }
    }

    /// Before the driver waits for frames: makes sure the device has been told of every
    /// buffer it was given. `flush` skips the notification while the device says it
    /// does not want one (it is still working through the ring), and a device that then
    /// runs dry may stop taking frames from its backend until it is notified again:
    /// seen with QEMU's `-netdev dgram` under loss (the receive ring full of free
    /// buffers, QEMU's queue holding the frames, every ACK lost to the guest until the
    /// connection timed out). One notification per wait at most, and only when buffers
    /// were added since the last one.
    fn settle<H: Hal, T: Transport>(&self, hal: &H, transport: &T) {
        self.flush(hal, transport);
        if self.notified.get() != self.vq.avail_idx() {
            self.vq.kick_always(hal, transport);
            self.kicks.set(self.kicks.get() + 1);
            self.notified.set(self.vq.avail_idx());
        }
    }
}

impl<D: DmaMemory> TxQueue<D> {
    /// Takes back the buffers the device has sent.
    fn reclaim<H: Hal>(&mut self, hal: &H) {
        let mut any = false;
        while let Some(used) = self.vq.pop_used(hal) {
            any = true;
            if let Used::Buffer { id, .. } = used {
                self.free.push(id);
            }
        }
        if any {
            self.vq.keep_interrupts_off();
        }
    }
}

impl<H: Hal, T: Transport, I: Interrupt> Drop for Net<H, T, I> {
    fn drop(&mut self) {
        // Nobody may look at the ring once it is freed.
        self.irq.unwatch_queue();
        // The device must stop using the rings and buffers before their memory is
        // freed (the fields drop after this).
        if transport::reset(&self.transport).is_err() {
            log::error!("virtio-net: the device did not reset; leaking its queue memory");
            self.rx.vq.leak();
            self.tx.vq.leak();
        }
        if self.failed {
            transport::fail(&self.transport);
        }
    }
}

/// A received frame, lent in place until
/// [`consume`](morgana_signatures::RxToken::consume) returns; its buffer then
/// goes back to the device.
pub struct RxToken<'a, H: Hal, T: Transport> {
    rx: &'a mut RxQueue<H::Dma>,
    hal: &'a H,
    transport: &'a T,
    id: u16,
    len: usize,
}

impl<H: Hal, T: Transport> core::fmt::Debug for RxToken<'_, H, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RxToken")
            .field("buffer", &self.id)
            .field("len", &self.len)
            .finish()
    }
}

impl<H: Hal, T: Transport> morgana_signatures::RxToken for RxToken<'_, H, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let buffer = self.rx.vq.buffer(self.id);
        // SAFETY: the device returned this buffer through the used ring and does not
        // touch it until it is pushed again (in `drop`, after `f` returned: the slice
        // does not outlive this call). `NET_HDR_LEN + len <= BUFFER_SIZE` was checked
        // in `receive`, and the device's writes were ordered before the used index we
        // read (`pop_used`'s read barrier).
        let frame = unsafe { core::slice::from_raw_parts(buffer.add(NET_HDR_LEN), self.len) };
        f(frame)
        // `self` drops here and recycles the buffer.
    }
}

impl<H: Hal, T: Transport> Drop for RxToken<'_, H, T> {
    fn drop(&mut self) {
        self.rx.frames += 1;
        self.rx.recycle(self.hal, self.transport, self.id);
    }
}

/// Room for one frame in a transmit buffer.
///
/// A token from [`NetIf::transmit`] is backed by a free buffer. The one lent with a
/// received frame looks for a free buffer when it is used: if there is none (or the
/// frame is longer than the MTU allows) the frame is written to a scratch buffer and
/// dropped, as the signature allows.
pub struct TxToken<'a, H: Hal, T: Transport> {
    tx: &'a mut TxQueue<H::Dma>,
    hal: &'a H,
    transport: &'a T,
}

impl<H: Hal, T: Transport> core::fmt::Debug for TxToken<'_, H, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TxToken")
            .field("free", &self.tx.free.len())
            .finish()
    }
}

impl<H: Hal, T: Transport> morgana_signatures::TxToken for TxToken<'_, H, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let tx = self.tx;
        if tx.free.is_empty() {
            tx.reclaim(self.hal);
        }
        let room = tx.vq.buf_size() - NET_HDR_LEN;
        let id = match tx.free.pop() {
            Some(id) if len <= room => id,
            other => {
                if let Some(id) = other {
                    tx.free.push(id);
                }
                tx.dropped += 1;
                tx.scratch.clear();
                tx.scratch.resize(len, 0);
                return f(&mut tx.scratch);
            }
        };
        let buffer = tx.vq.buffer(id);
        // SAFETY: buffer `id` was free (the device returned it or never had it), so
        // nothing else accesses it until it is pushed below, after the slice is gone;
        // `NET_HDR_LEN + len <= buf_size`.
        let (header, frame) = unsafe {
            (
                core::slice::from_raw_parts_mut(buffer, NET_HDR_LEN),
                core::slice::from_raw_parts_mut(buffer.add(NET_HDR_LEN), len),
            )
        };
        // No checksum offload, no GSO: an all-zero header.
        header.fill(0);
        let result = f(frame);
        tx.vq.push(self.hal, id, (NET_HDR_LEN + len) as u32);
        tx.frames += 1;
        if tx.vq.kick(self.hal, self.transport) {
            tx.kicks += 1;
        }
        result
    }
}

impl<H: Hal, T: Transport, I: Interrupt> NetIf for Net<H, T, I> {
    type RxToken<'a>
        = RxToken<'a, H, T>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, H, T>
    where
        Self: 'a;

    fn receive(&mut self) -> Option<(RxToken<'_, H, T>, TxToken<'_, H, T>)> {
        let Net {
            hal,
            transport,
            rx,
            tx,
            ..
        } = self;
        loop {
            let Some(used) = rx.vq.pop_used(hal) else {
                // Going idle: hand back what was consumed so the device can fill it.
                rx.flush(hal, transport);
                return None;
            };
            // Frames are being taken: the driver will look again before it waits, so
            // further frames need no interrupt until then (`register_rx_waker` turns
            // them back on). Under QEMU each one is a message to the vCPU that stops
            // its translated code and takes the big lock, whether or not the CPU
            // accepts interrupts at that moment.
            rx.vq.set_interrupts(false);
            let Used::Buffer { id, len } = used else {
                rx.errors += 1;
                continue;
            };
            let len = len as usize;
            if len < NET_HDR_LEN + ETHERNET_HEADER_LEN || len > rx.vq.buf_size() {
                log::debug!("virtio-net: dropped a received buffer of {len} bytes");
                rx.errors += 1;
                rx.recycle(hal, transport, id);
                continue;
            }
            return Some((
                RxToken {
                    rx,
                    hal,
                    transport,
                    id,
                    len: len - NET_HDR_LEN,
                },
                TxToken { tx, hal, transport },
            ));
        }
    }

    fn transmit(&mut self) -> Option<TxToken<'_, H, T>> {
        self.tx.reclaim(&self.hal);
        if self.tx.free.is_empty() {
            return None;
        }
        Some(TxToken {
            tx: &mut self.tx,
            hal: &self.hal,
            transport: &self.transport,
        })
    }

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn register_rx_waker(&self, waker: &Waker) {
        self.rx.settle(&self.hal, &self.transport);
        if self.irq.needs_isr_ack() {
            // Deasserts the INTx line before it is unmasked by `register`.
            self.transport.ack_interrupt();
        }
        self.irq.register(waker);
        // SAFETY: the pointers are into the receive ring, which lives as long as `self`
        // (or for ever, leaked); `Drop` withdraws the watch first.
        if unsafe { self.irq.watch_queue(self.rx.vq.watch()) } {
            // The platform turns interrupts on when the CPU is about to halt, and looks
            // at the used index before it does: interrupts stay off while the CPU still
            // runs, whether this driver or other work. The flag is no longer known.
            self.rx.vq.interrupts_may_be_on();
        } else {
            // Interrupts back on (`receive` turned them off while it took frames), and
            // the flag written before the used ring is read: a frame that arrived
            // before the device could see the flag is found here instead.
            self.rx.vq.set_interrupts(true);
            self.hal.mb();
        }
        // A frame that arrived before the interrupt was armed would not wake anyone.
        if self.rx.vq.has_used() {
            waker.wake_by_ref();
        }
    }
}
