//! An in-memory virtio-net device for the host tests: the modern PCI register file
//! ([`FakeRegs`], a [`PciRegs`]), the device side of the split virtqueues, a [`Hal`]
//! whose bus addresses differ from host addresses, and an [`Interrupt`] the device
//! fires.
//!
//! Bus addresses are host addresses plus [`BUS_OFFSET`], so a driver that handed the
//! device a CPU pointer instead of a bus address is caught at once. Every DMA region
//! checks, when it is freed, that no enabled queue of the device still points into it
//! (the driver must reset the device first).
// The virtio-rng device model serves the `rng` feature's tests only.
#![cfg_attr(not(feature = "rng"), allow(dead_code))]

use crate::pci::{PciRegs, Region, common};
use crate::transport::{NO_VECTOR, status};
use crate::{DmaMemory, Hal, Interrupt};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::Waker;
use std::vec::Vec;

/// Bus address = host address + this.
pub const BUS_OFFSET: u64 = 1 << 56;

/// Bytes of the notification region; queue `q` notifies at `q * NOTIFY_MULTIPLIER`.
pub const NOTIFY_LEN: usize = 0x1000;
/// The notification offset multiplier.
pub const NOTIFY_MULTIPLIER: u32 = 4;

/// One queue's registers and the device's position in its rings.
#[derive(Clone, Copy, Debug, Default)]
pub struct QueueState {
    pub max_size: u16,
    pub size: u16,
    pub vector: u16,
    pub enable: u16,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
    pub notify_off: u16,
    pub last_avail: u16,
    pub used_idx: u16,
    pub notifications: u32,
    /// With `VIRTIO_F_EVENT_IDX`: the used index at the last interrupt decision.
    pub signalled: Option<u16>,
}

/// The fake device: knobs, registers, and ring state.
#[derive(Debug)]
pub struct Device {
    // --- knobs ---
    /// Features offered.
    pub offered: u64,
    /// Clears FEATURES_OK when set.
    pub refuse_features: bool,
    /// Never completes a reset.
    pub stuck_in_reset: bool,
    /// Ignores writes to the queue size.
    pub fixed_queue_size: bool,
    /// Number of MSI-X table entries (0: every vector write reads back NO_VECTOR).
    pub msix_entries: u16,
    /// Sets DEVICE_NEEDS_RESET when the driver sets DRIVER_OK.
    pub fail_on_driver_ok: bool,
    /// The device configuration (`struct virtio_net_config`).
    pub config: [u8; 12],
    /// Length of the device configuration region.
    pub config_len: usize,
    /// Bumped on each configuration read of byte 0 when set (a device whose
    /// configuration keeps changing).
    pub unstable_config: bool,
    // --- registers ---
    pub status: u8,
    pub driver_features: u64,
    pub config_vector: u16,
    pub isr: u8,
    pub generation: u8,
    pub queues: [QueueState; 2],
    pub(crate) device_feature_select: u32,
    pub(crate) driver_feature_select: u32,
    pub(crate) queue_select: u16,
    /// Status values written, in order.
    pub status_writes: Vec<u8>,
    /// The driver's waker, as registered with [`FakeIrq`].
    pub waker: Rc<RefCell<Option<Waker>>>,
    /// Interrupts raised.
    pub interrupts: u32,
}

impl Default for Device {
    fn default() -> Device {
        Device::new()
    }
}

impl Device {
    /// A device like QEMU's virtio-net-pci: VERSION_1, MAC 52:54:00:12:34:56, STATUS
    /// (link up), and offloads the driver must decline; 256-entry queues; 3 MSI-X entries.
    pub fn new() -> Device {
        let mut config = [0u8; 12];
        config[..6].copy_from_slice(&[0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        config[6] = 1; // link up
        config[8] = 1; // one queue pair
        let queue = |q: u16| QueueState {
            max_size: 256,
            vector: NO_VECTOR,
            notify_off: q,
            ..QueueState::default()
        };
        Device {
            offered: crate::transport::feature::VERSION_1
                | 1 << 0 // CSUM
                | 1 << 1 // GUEST_CSUM
                | 1 << 5 // MAC
                | 1 << 7 // GUEST_TSO4
                | 1 << 15 // MRG_RXBUF
                | 1 << 16 // STATUS
                | 1 << 17 // CTRL_VQ
                | 1 << 28 // INDIRECT_DESC
                | 1 << 29, // EVENT_IDX
            refuse_features: false,
            stuck_in_reset: false,
            fixed_queue_size: false,
            msix_entries: 3,
            fail_on_driver_ok: false,
            config,
            config_len: 12,
            unstable_config: false,
            status: 0,
            driver_features: 0,
            config_vector: NO_VECTOR,
            isr: 0,
            generation: 0,
            queues: [queue(0), queue(1)],
            device_feature_select: 0,
            driver_feature_select: 0,
            queue_select: 0,
            status_writes: Vec::new(),
            waker: Rc::new(RefCell::new(None)),
            interrupts: 0,
        }
    }

    fn reset(&mut self) {
        self.driver_features = 0;
        self.config_vector = NO_VECTOR;
        self.isr = 0;
        for q in &mut self.queues {
            *q = QueueState {
                max_size: q.max_size,
                vector: NO_VECTOR,
                notify_off: q.notify_off,
                ..QueueState::default()
            };
        }
    }

    pub(crate) fn selected(&mut self) -> Option<&mut QueueState> {
        self.queues.get_mut(usize::from(self.queue_select))
    }

    pub(crate) fn write_status(&mut self, v: u8) {
        self.status_writes.push(v);
        if v == 0 {
            self.reset();
            self.status = if self.stuck_in_reset {
                status::ACKNOWLEDGE
            } else {
                0
            };
            return;
        }
        let mut v = v;
        if v & status::FEATURES_OK != 0 && self.refuse_features {
            v &= !status::FEATURES_OK;
        }
        if v & status::DRIVER_OK != 0 && self.fail_on_driver_ok {
            v |= status::DEVICE_NEEDS_RESET;
        }
        self.status = v;
    }

    fn read_common(&mut self, offset: usize, width: usize) -> u32 {
        let q = self.queues.get(usize::from(self.queue_select)).copied();
        match (offset, width) {
            (common::DEVICE_FEATURE, 4) => match self.device_feature_select {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            (common::DEVICE_FEATURE_SELECT, 4) => self.device_feature_select,
            (common::DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select,
            (common::DRIVER_FEATURE, 4) => match self.driver_feature_select {
                0 => self.driver_features as u32,
                1 => (self.driver_features >> 32) as u32,
                _ => 0,
            },
            (common::CONFIG_MSIX_VECTOR, 2) => u32::from(self.config_vector),
            (common::NUM_QUEUES, 2) => self.queues.len() as u32,
            (common::DEVICE_STATUS, 1) => u32::from(self.status),
            (common::CONFIG_GENERATION, 1) => u32::from(self.generation),
            (common::QUEUE_SELECT, 2) => u32::from(self.queue_select),
            (common::QUEUE_SIZE, 2) => q.map_or(0, |q| {
                u32::from(if q.size == 0 { q.max_size } else { q.size })
            }),
            (common::QUEUE_MSIX_VECTOR, 2) => q.map_or(0, |q| u32::from(q.vector)),
            (common::QUEUE_ENABLE, 2) => q.map_or(0, |q| u32::from(q.enable)),
            (common::QUEUE_NOTIFY_OFF, 2) => q.map_or(0, |q| u32::from(q.notify_off)),
            _ => panic!("driver read common config offset {offset:#x} with width {width}"),
        }
    }

    fn write_common(&mut self, offset: usize, width: usize, v: u32) {
        let entries = self.msix_entries;
        let fixed = self.fixed_queue_size;
        match (offset, width) {
            (common::DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = v,
            (common::DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = v,
            (common::DRIVER_FEATURE, 4) => {
                assert_eq!(
                    self.status,
                    status::ACKNOWLEDGE | status::DRIVER,
                    "features written outside negotiation"
                );
                match self.driver_feature_select {
                    0 => {
                        self.driver_features = (self.driver_features & !0xFFFF_FFFF) | u64::from(v)
                    }
                    1 => {
                        self.driver_features =
                            (self.driver_features & 0xFFFF_FFFF) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            (common::CONFIG_MSIX_VECTOR, 2) => {
                self.config_vector = if (v as u16) < entries {
                    v as u16
                } else {
                    NO_VECTOR
                }
            }
            (common::DEVICE_STATUS, 1) => self.write_status(v as u8),
            (common::QUEUE_SELECT, 2) => self.queue_select = v as u16,
            (common::QUEUE_SIZE, 2) => {
                if let Some(q) = self.selected()
                    && !fixed
                    && v as u16 <= q.max_size
                {
                    q.size = v as u16;
                }
            }
            (common::QUEUE_MSIX_VECTOR, 2) => {
                if let Some(q) = self.selected() {
                    q.vector = if (v as u16) < entries {
                        v as u16
                    } else {
                        NO_VECTOR
                    };
                }
            }
            (common::QUEUE_ENABLE, 2) => {
                if let Some(q) = self.selected() {
                    assert_eq!(v, 1, "only 1 may be written to queue_enable");
                    if q.size == 0 {
                        q.size = q.max_size;
                    }
                    q.enable = 1;
                }
            }
            (o, 4) if (common::QUEUE_DESC..common::LEN).contains(&o) => {
                let status = self.status;
                let Some(q) = self.selected() else { return };
                assert_eq!(q.enable, 0, "queue address changed while enabled");
                assert!(
                    status & status::FEATURES_OK != 0,
                    "queue set up before FEATURES_OK"
                );
                let field = match (o - common::QUEUE_DESC) / 8 {
                    0 => &mut q.desc,
                    1 => &mut q.driver,
                    _ => &mut q.device,
                };
                if o % 8 == 0 {
                    *field = (*field & !0xFFFF_FFFF) | u64::from(v);
                } else {
                    *field = (*field & 0xFFFF_FFFF) | (u64::from(v) << 32);
                }
            }
            _ => panic!("driver wrote {v:#x} to common config offset {offset:#x} width {width}"),
        }
    }

    fn notify(&mut self, offset: usize, v: u16) {
        let q = &mut self.queues[usize::from(v)];
        assert_eq!(
            offset,
            usize::from(q.notify_off) * NOTIFY_MULTIPLIER as usize,
            "queue {v} notified at the wrong address"
        );
        assert!(
            self.status & status::DRIVER_OK != 0,
            "notified before DRIVER_OK"
        );
        q.notifications += 1;
    }

    /// Whether the driver is live and queue `q` enabled.
    pub(crate) fn live(&self, q: usize) -> bool {
        self.status & status::DRIVER_OK != 0 && self.queues[q].enable == 1
    }

    /// Whether the driver accepted `VIRTIO_F_EVENT_IDX`.
    pub fn event_idx(&self) -> bool {
        self.driver_features & crate::transport::feature::EVENT_IDX != 0
    }

    /// Raises the interrupt of queue `q` (unless the driver suppressed it: the flag, or
    /// with event indices a `used_event` the used index did not move past since the
    /// last decision).
    fn interrupt(&mut self, q: usize) {
        let s = self.queues[q];
        if self.event_idx() {
            let used_event = self.ring16(q, s.driver + 4 + 2 * u64::from(s.size));
            let old = self.queues[q].signalled.replace(s.used_idx);
            if old.is_some_and(|old| !crate::transport::need_event(used_event, s.used_idx, old)) {
                return;
            }
        } else if self.ring16(q, s.driver) & 1 != 0 {
            return; // VIRTQ_AVAIL_F_NO_INTERRUPT
        }
        self.isr |= 1;
        self.interrupts += 1;
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn host<T>(bus: u64) -> *mut T {
        assert!(
            bus >= BUS_OFFSET,
            "the driver gave the device a CPU address: {bus:#x}"
        );
        (bus - BUS_OFFSET) as *mut T
    }

    fn ring16(&self, _q: usize, bus: u64) -> u16 {
        // SAFETY: the driver gave this bus address for a ring it owns and keeps alive
        // while the queue is enabled (checked when it frees DMA memory).
        unsafe { Self::host::<u16>(bus).read_volatile() }
    }

    fn set_ring16(&self, bus: u64, v: u16) {
        // SAFETY: as in `ring16`.
        unsafe { Self::host::<u16>(bus).write_volatile(v) }
    }

    /// The next available descriptor of queue `q`: `(id, addr, len, flags)`.
    fn next_avail(&mut self, q: usize) -> Option<(u16, u64, u32, u16)> {
        if !self.live(q) {
            return None;
        }
        let s = self.queues[q];
        let avail_idx = self.ring16(q, s.driver + 2);
        if avail_idx == s.last_avail {
            return None;
        }
        let slot = u64::from(s.last_avail % s.size);
        let id = self.ring16(q, s.driver + 4 + 2 * slot);
        assert!(id < s.size, "available descriptor {id} out of range");
        let d = s.desc + 16 * u64::from(id);
        // SAFETY: as in `ring16`; the descriptor table is 16-byte aligned.
        let (addr, len, flags) = unsafe {
            (
                Self::host::<u64>(d).read_volatile(),
                Self::host::<u32>(d + 8).read_volatile(),
                Self::host::<u16>(d + 12).read_volatile(),
            )
        };
        assert_eq!(flags & 1, 0, "chained descriptors are not expected");
        self.queues[q].last_avail = s.last_avail.wrapping_add(1);
        if self.event_idx() {
            // As QEMU does: notify me of anything past what I have taken.
            self.set_avail_event(q, s.last_avail.wrapping_add(1));
        }
        Some((id, addr, len, flags))
    }

    /// Puts `(id, len)` in queue `q`'s used ring (no interrupt).
    pub fn push_used(&mut self, q: usize, id: u32, len: u32) {
        let s = self.queues[q];
        let slot = u64::from(s.used_idx % s.size);
        let e = s.device + 4 + 8 * slot;
        // SAFETY: as in `ring16`; used elements are 4-byte aligned.
        unsafe {
            Self::host::<u32>(e).write_volatile(id);
            Self::host::<u32>(e + 4).write_volatile(len);
        }
        self.queues[q].used_idx = s.used_idx.wrapping_add(1);
        self.set_ring16(s.device + 2, self.queues[q].used_idx);
    }

    /// With event indices: asks for a notification once the driver publishes past
    /// available index `v` (the used ring's `avail_event`).
    pub fn set_avail_event(&mut self, q: usize, v: u16) {
        let s = self.queues[q];
        self.set_ring16(s.device + 4 + 8 * u64::from(s.size), v);
    }

    /// Sets or clears VIRTQ_USED_F_NO_NOTIFY on queue `q`.
    pub fn set_no_notify(&mut self, q: usize, on: bool) {
        self.set_ring16(self.queues[q].device, u16::from(on));
    }

    /// Delivers `frame` into the next receive buffer, reporting `reported_len` bytes
    /// used (None: header + frame). Returns false when the driver has no buffer posted.
    pub fn receive_with_len(&mut self, frame: &[u8], reported_len: Option<u32>) -> bool {
        let Some((id, addr, len, flags)) = self.next_avail(0) else {
            return false;
        };
        assert_eq!(flags, 2, "receive buffers must be device-writable");
        let total = crate::NET_HDR_LEN + frame.len();
        assert!(
            total <= len as usize,
            "receive buffer of {len} bytes too small"
        );
        let mut header = [0u8; crate::NET_HDR_LEN];
        header[10] = 1; // num_buffers
        // SAFETY: the buffer is the driver's DMA memory of `len` bytes, now the device's.
        unsafe {
            let p = Self::host::<u8>(addr);
            p.copy_from_nonoverlapping(header.as_ptr(), header.len());
            p.add(header.len())
                .copy_from_nonoverlapping(frame.as_ptr(), frame.len());
        }
        self.push_used(0, u32::from(id), reported_len.unwrap_or(total as u32));
        self.interrupt(0);
        true
    }

    /// Delivers `frame` into the next receive buffer; false when none is posted.
    pub fn receive(&mut self, frame: &[u8]) -> bool {
        self.receive_with_len(frame, None)
    }

    /// Takes every frame the driver queued for transmission, returning the buffers.
    pub fn transmit(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        while let Some((id, addr, len, flags)) = self.next_avail(1) {
            assert_eq!(flags, 0, "transmit buffers must be device-readable");
            let len = len as usize;
            assert!(
                len >= crate::NET_HDR_LEN,
                "transmit buffer without a header"
            );
            // SAFETY: the driver's DMA buffer of at least `len` bytes, now the device's.
            let bytes = unsafe { std::slice::from_raw_parts(Self::host::<u8>(addr), len) };
            assert!(
                bytes[..crate::NET_HDR_LEN].iter().all(|&b| b == 0),
                "transmit header must be all zero (no offloads)"
            );
            frames.push(bytes[crate::NET_HDR_LEN..].to_vec());
            self.push_used(1, u32::from(id), 0);
        }
        if !frames.is_empty() {
            self.interrupt(1);
        }
        frames
    }

    /// Whether any enabled queue points into `bus..bus + len`.
    fn uses(&self, bus: u64, len: usize) -> bool {
        let range = bus..bus + len as u64;
        self.queues.iter().filter(|q| q.enable == 1).any(|q| {
            [q.desc, q.driver, q.device]
                .iter()
                .any(|a| range.contains(a))
        })
    }
}

/// The register file, shared with the test that drives the device side.
#[derive(Clone, Debug)]
pub struct FakeRegs(pub Rc<RefCell<Device>>);

impl PciRegs for FakeRegs {
    fn len(&self, region: Region) -> usize {
        match region {
            Region::Common => common::LEN,
            Region::Notify => NOTIFY_LEN,
            Region::Isr => 1,
            Region::Device => self.0.borrow().config_len,
        }
    }

    fn read8(&self, region: Region, offset: usize) -> u8 {
        let mut d = self.0.borrow_mut();
        match region {
            Region::Common => d.read_common(offset, 1) as u8,
            Region::Isr => std::mem::take(&mut d.isr),
            Region::Device => {
                assert!(offset < d.config_len);
                if d.unstable_config && offset == 0 {
                    d.generation = d.generation.wrapping_add(1);
                }
                d.config[offset]
            }
            Region::Notify => panic!("notify region read"),
        }
    }

    fn read16(&self, region: Region, offset: usize) -> u16 {
        let mut d = self.0.borrow_mut();
        match region {
            Region::Common => d.read_common(offset, 2) as u16,
            Region::Device => {
                assert!(offset.is_multiple_of(2) && offset + 2 <= d.config_len);
                u16::from_le_bytes([d.config[offset], d.config[offset + 1]])
            }
            _ => panic!("16-bit read of {region}"),
        }
    }

    fn read32(&self, region: Region, offset: usize) -> u32 {
        assert_eq!(region, Region::Common, "32-bit read of {region}");
        self.0.borrow_mut().read_common(offset, 4)
    }

    fn write8(&self, region: Region, offset: usize, value: u8) {
        assert_eq!(region, Region::Common, "8-bit write to {region}");
        self.0
            .borrow_mut()
            .write_common(offset, 1, u32::from(value));
    }

    fn write16(&self, region: Region, offset: usize, value: u16) {
        match region {
            Region::Common => self
                .0
                .borrow_mut()
                .write_common(offset, 2, u32::from(value)),
            Region::Notify => self.0.borrow_mut().notify(offset, value),
            _ => panic!("16-bit write to {region}"),
        }
    }

    fn write32(&self, region: Region, offset: usize, value: u32) {
        assert_eq!(region, Region::Common, "32-bit write to {region}");
        self.0.borrow_mut().write_common(offset, 4, value);
    }
}

/// DMA memory from the host allocator, at a bus address [`BUS_OFFSET`] away.
pub struct FakeDma {
    ptr: NonNull<u8>,
    layout: Layout,
    device: Rc<RefCell<Device>>,
    live: Rc<Cell<usize>>,
}

// SAFETY: `alloc_zeroed` gives zeroed memory of `layout.size()` bytes, 4096-aligned,
// owned by this value until drop; the fake device reaches it at `phys()` (host address
// + BUS_OFFSET, translated back in `Device::host`).
unsafe impl DmaMemory for FakeDma {
    fn phys(&self) -> u64 {
        self.ptr.as_ptr() as u64 + BUS_OFFSET
    }

    fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for FakeDma {
    fn drop(&mut self) {
        assert!(
            !self.device.borrow().uses(self.phys(), self.len()),
            "DMA memory freed while the device still uses it"
        );
        self.live.set(self.live.get() - 1);
        // SAFETY: allocated in `FakeHal::dma_alloc` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// The HAL of the tests.
#[derive(Clone)]
pub struct FakeHal {
    pub device: Rc<RefCell<Device>>,
    /// DMA regions alive.
    pub live: Rc<Cell<usize>>,
    /// Allocations fail once this many have succeeded.
    pub limit: Option<usize>,
    allocated: Rc<Cell<usize>>,
}

impl FakeHal {
    pub fn new(device: Rc<RefCell<Device>>) -> FakeHal {
        FakeHal {
            device,
            live: Rc::new(Cell::new(0)),
            limit: None,
            allocated: Rc::new(Cell::new(0)),
        }
    }
}

impl Hal for FakeHal {
    type Dma = FakeDma;

    fn dma_alloc(&self, len: usize) -> Option<FakeDma> {
        if self.limit.is_some_and(|l| self.allocated.get() >= l) {
            return None;
        }
        let layout = Layout::from_size_align(len.next_multiple_of(4096), 4096).ok()?;
        // SAFETY: nonzero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        self.allocated.set(self.allocated.get() + 1);
        self.live.set(self.live.get() + 1);
        Some(FakeDma {
            ptr,
            layout,
            device: self.device.clone(),
            live: self.live.clone(),
        })
    }
}

/// The interrupt of the tests: MSI-X entry 0 (or INTx), woken by the fake device.
pub struct FakeIrq {
    pub waker: Rc<RefCell<Option<Waker>>>,
    pub msix: bool,
    pub registrations: Cell<u32>,
}

impl Interrupt for FakeIrq {
    fn msix_entry(&self) -> Option<u16> {
        self.msix.then_some(0)
    }

    fn needs_isr_ack(&self) -> bool {
        !self.msix
    }

    fn register(&self, waker: &Waker) {
        self.registrations.set(self.registrations.get() + 1);
        *self.waker.borrow_mut() = Some(waker.clone());
    }
}

/// The entropy device's side (virtio-rng): the request queue is queue 0.
impl Device {
    /// Like QEMU's `virtio-rng-pci`: VERSION_1 only, no configuration, one request
    /// queue of `max_size` entries.
    pub fn rng(max_size: u16) -> Device {
        let mut d = Device::new();
        d.offered = crate::transport::feature::VERSION_1;
        d.config_len = 0;
        d.queues[0].max_size = max_size;
        d.queues[1].max_size = 0;
        d
    }

    /// Writes `bytes` (at most the buffer's length) into the next request buffer of queue
    /// 0 and returns it, reporting `reported_len` written (None: the bytes written).
    /// Returns the buffer's length, or None when no request is posted.
    pub fn answer_request(&mut self, bytes: &[u8], reported_len: Option<u32>) -> Option<u32> {
        let (id, addr, len, flags) = self.next_avail(0)?;
        assert_eq!(flags, 2, "entropy requests must be device-writable");
        let n = bytes.len().min(len as usize);
        // SAFETY: the buffer is the driver's DMA memory of `len` bytes, now the device's.
        unsafe { Self::host::<u8>(addr).copy_from_nonoverlapping(bytes.as_ptr(), n) };
        self.push_used(0, u32::from(id), reported_len.unwrap_or(n as u32));
        Some(len)
    }

    /// Requests posted and not answered.
    pub fn pending_requests(&self) -> u16 {
        let s = self.queues[0];
        if !self.live(0) {
            return 0;
        }
        self.ring16(0, s.driver + 2).wrapping_sub(s.last_avail)
    }
}
