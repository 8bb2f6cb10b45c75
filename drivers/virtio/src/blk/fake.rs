//! An in-memory virtio-blk device for the host tests: the modern PCI register file, the
//! device side of the request queue (descriptor chains checked like QEMU checks them),
//! a disk with a volatile cache, and knobs for hostile behaviour: completions held back
//! and given in any order, I/O errors, unsupported requests, chains it never had.
//!
//! Bus addresses are host addresses plus [`BUS_OFFSET`], and DMA memory checks on drop
//! that the device no longer points into it, as in the NIC's fake.

use crate::fake::BUS_OFFSET;
use crate::pci::{PciRegs, Region, common};
use crate::transport::{NO_VECTOR, feature, status};
use crate::{DmaMemory, Hal};
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::Waker;
use std::vec;
use std::vec::Vec;

use super::blk_feature::{BLK_SIZE, DISCARD, FLUSH, SEG_MAX, SIZE_MAX};

pub const NOTIFY_LEN: usize = 0x1000;
pub const NOTIFY_MULTIPLIER: u32 = 4;

/// One request as the device saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub kind: u32,
    pub sector: u64,
    pub len: u32,
}

#[derive(Debug)]
pub struct BlkDevice {
    // --- knobs ---
    pub offered: u64,
    /// In 512-byte sectors.
    pub capacity: u64,
    pub blk_size: u32,
    pub size_max: u32,
    pub max_discard_sectors: u32,
    pub queue_max: u16,
    pub msix_entries: u16,
    /// Hold completions until the test calls [`BlkDevice::complete`].
    pub defer: bool,
    /// Requests touching this 512-byte sector fail with IOERR.
    pub fail_sector: Option<u64>,
    /// Requests of this type get UNSUPP.
    pub unsupported: Option<u32>,
    /// The next completion names a chain the device never had.
    pub bogus_next: bool,
    // --- the disk ---
    /// What reads see.
    pub data: Vec<u8>,
    /// What survives a power loss: `data` as of the last flush.
    pub durable: Vec<u8>,
    pub seen: Vec<Seen>,
    pub pending: VecDeque<u16>,
    pub max_pending: usize,
    // --- registers ---
    pub status: u8,
    pub driver_features: u64,
    pub isr: u8,
    pub queue: Queue,
    device_feature_select: u32,
    driver_feature_select: u32,
    queue_select: u16,
    pub waker: Rc<RefCell<Option<Waker>>>,
    pub interrupts: u32,
    pub notifications: u32,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Queue {
    pub size: u16,
    pub vector: u16,
    pub enable: u16,
    pub desc: u64,
    pub driver: u64,
    pub device: u64,
    pub last_avail: u16,
    pub used_idx: u16,
}

fn host<T>(bus: u64) -> *mut T {
    assert!(
        bus >= BUS_OFFSET,
        "the driver gave the device a CPU address: {bus:#x}"
    );
    (bus - BUS_OFFSET) as *mut T
}

impl BlkDevice {
    /// Like QEMU's virtio-blk-pci on a `bytes`-byte raw image: VERSION_1, SEG_MAX,
    /// BLK_SIZE 512, FLUSH, DISCARD (plus what the driver must decline).
    pub fn new(bytes: usize) -> BlkDevice {
        BlkDevice {
            offered: feature::VERSION_1
                | SEG_MAX
                | BLK_SIZE
                | FLUSH
                | DISCARD
                | 1 << 4 // GEOMETRY
                | 1 << 10 // TOPOLOGY
                | 1 << 11 // CONFIG_WCE
                | 1 << 12 // MQ
                | 1 << 14 // WRITE_ZEROES
                | 1 << 28 // INDIRECT_DESC
                | 1 << 29, // EVENT_IDX
            capacity: bytes as u64 / 512,
            blk_size: 512,
            size_max: 0,
            max_discard_sectors: 8192,
            queue_max: 256,
            msix_entries: 2,
            defer: false,
            fail_sector: None,
            unsupported: None,
            bogus_next: false,
            data: vec![0; bytes],
            durable: vec![0; bytes],
            seen: Vec::new(),
            pending: VecDeque::new(),
            max_pending: 0,
            status: 0,
            driver_features: 0,
            isr: 0,
            queue: Queue {
                vector: NO_VECTOR,
                ..Queue::default()
            },
            device_feature_select: 0,
            driver_feature_select: 0,
            queue_select: 0,
            waker: Rc::new(RefCell::new(None)),
            interrupts: 0,
            notifications: 0,
        }
    }

    fn config(&self) -> [u8; 60] {
        let mut c = [0u8; 60];
        c[0..8].copy_from_slice(&self.capacity.to_le_bytes());
        c[8..12].copy_from_slice(&self.size_max.to_le_bytes());
        c[12..16].copy_from_slice(&126u32.to_le_bytes());
        c[20..24].copy_from_slice(&self.blk_size.to_le_bytes());
        c[34..36].copy_from_slice(&1u16.to_le_bytes());
        c[36..40].copy_from_slice(&self.max_discard_sectors.to_le_bytes());
        c[40..44].copy_from_slice(&1u32.to_le_bytes());
        c[44..48].copy_from_slice(&1u32.to_le_bytes());
        c
    }

    fn reset(&mut self) {
        self.driver_features = 0;
        self.isr = 0;
        self.queue = Queue {
            vector: NO_VECTOR,
            ..Queue::default()
        };
        self.pending.clear();
    }

    fn read_common(&mut self, offset: usize, width: usize) -> u32 {
        let q = self.queue;
        let selected = self.queue_select == 0;
        match (offset, width) {
            (common::DEVICE_FEATURE, 4) => match self.device_feature_select {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            (common::DEVICE_FEATURE_SELECT, 4) => self.device_feature_select,
            (common::DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select,
            (common::CONFIG_MSIX_VECTOR, 2) => u32::from(NO_VECTOR),
            (common::NUM_QUEUES, 2) => 1,
            (common::DEVICE_STATUS, 1) => u32::from(self.status),
            (common::CONFIG_GENERATION, 1) => 0,
            (common::QUEUE_SELECT, 2) => u32::from(self.queue_select),
            (common::QUEUE_SIZE, 2) if selected => {
                u32::from(if q.size == 0 { self.queue_max } else { q.size })
            }
            (common::QUEUE_SIZE, 2) => 0,
            (common::QUEUE_MSIX_VECTOR, 2) => u32::from(q.vector),
            (common::QUEUE_ENABLE, 2) => u32::from(q.enable),
            (common::QUEUE_NOTIFY_OFF, 2) => 0,
            _ => panic!("driver read common config offset {offset:#x} with width {width}"),
        }
    }

    fn write_common(&mut self, offset: usize, width: usize, v: u32) {
        let entries = self.msix_entries;
        match (offset, width) {
            (common::DEVICE_FEATURE_SELECT, 4) => self.device_feature_select = v,
            (common::DRIVER_FEATURE_SELECT, 4) => self.driver_feature_select = v,
            (common::DRIVER_FEATURE, 4) => match self.driver_feature_select {
                0 => self.driver_features = (self.driver_features & !0xFFFF_FFFF) | u64::from(v),
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xFFFF_FFFF) | (u64::from(v) << 32)
                }
                _ => {}
            },
            (common::CONFIG_MSIX_VECTOR, 2) => {}
            (common::DEVICE_STATUS, 1) => {
                if v == 0 {
                    self.reset();
                }
                self.status = v as u8;
            }
            (common::QUEUE_SELECT, 2) => self.queue_select = v as u16,
            (common::QUEUE_SIZE, 2) => {
                if v as u16 <= self.queue_max {
                    self.queue.size = v as u16;
                }
            }
            (common::QUEUE_MSIX_VECTOR, 2) => {
                self.queue.vector = if (v as u16) < entries {
                    v as u16
                } else {
                    NO_VECTOR
                }
            }
            (common::QUEUE_ENABLE, 2) => {
                assert_eq!(v, 1);
                if self.queue.size == 0 {
                    self.queue.size = self.queue_max;
                }
                self.queue.enable = 1;
            }
            (o, 4) if (common::QUEUE_DESC..common::LEN).contains(&o) => {
                assert_eq!(self.queue.enable, 0, "queue address changed while enabled");
                let field = match (o - common::QUEUE_DESC) / 8 {
                    0 => &mut self.queue.desc,
                    1 => &mut self.queue.driver,
                    _ => &mut self.queue.device,
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

    fn ring16(bus: u64) -> u16 {
        // SAFETY: a ring address the driver gave for memory it keeps alive while the
        // queue is enabled (checked when it frees DMA memory).
        unsafe { host::<u16>(bus).read_volatile() }
    }

    fn desc(&self, i: u16) -> (u64, u32, u16, u16) {
        assert!(i < self.queue.size, "descriptor {i} out of range");
        let d = self.queue.desc + 16 * u64::from(i);
        // SAFETY: as in `ring16`; descriptors are 16-byte aligned.
        unsafe {
            (
                host::<u64>(d).read_volatile(),
                host::<u32>(d + 8).read_volatile(),
                host::<u16>(d + 12).read_volatile(),
                host::<u16>(d + 14).read_volatile(),
            )
        }
    }

    fn notify(&mut self) {
        assert!(
            self.status & status::DRIVER_OK != 0,
            "notified before DRIVER_OK"
        );
        self.notifications += 1;
        let q = self.queue;
        let avail_idx = Self::ring16(q.driver + 2);
        let mut last = q.last_avail;
        while last != avail_idx {
            let slot = u64::from(last % q.size);
            let head = Self::ring16(q.driver + 4 + 2 * slot);
            self.pending.push_back(head);
            last = last.wrapping_add(1);
        }
        self.queue.last_avail = last;
        self.max_pending = self.max_pending.max(self.pending.len());
        if !self.defer {
            while let Some(head) = self.pending.pop_front() {
                self.process(head);
            }
            self.interrupt();
        }
    }

    /// Completes the held-back requests, in the order `pick` gives (indices into the
    /// pending list, taken one at a time), then interrupts.
    pub fn complete_with(&mut self, mut pick: impl FnMut(usize) -> usize) {
        while !self.pending.is_empty() {
            let i = pick(self.pending.len()) % self.pending.len();
            let head = self.pending.remove(i).expect("in range");
            self.process(head);
        }
        self.interrupt();
    }

    /// Completes only the `n`th held-back request, then interrupts.
    pub fn complete_one(&mut self, n: usize) {
        let head = self.pending.remove(n).expect("a pending request");
        self.process(head);
        self.interrupt();
    }

    fn interrupt(&mut self) {
        self.isr |= 1;
        self.interrupts += 1;
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// Carries out the request whose chain starts at `head` and puts it in the used ring.
    fn process(&mut self, head: u16) {
        let (haddr, hlen, hflags, mut next) = self.desc(head);
        assert_eq!(hlen, 16, "request header of {hlen} bytes");
        assert_eq!(hflags & 2, 0, "the header must be device-readable");
        assert_ne!(
            hflags & 1,
            0,
            "a request has at least a status after its header"
        );
        // SAFETY: the header buffer the driver gave, 16 bytes.
        let (kind, sector) = unsafe {
            (
                u32::from_le(host::<u32>(haddr).read_volatile()),
                u64::from_le(host::<u64>(haddr + 8).read_volatile()),
            )
        };
        let mut segs = Vec::new();
        loop {
            let (addr, len, flags, n) = self.desc(next);
            segs.push((addr, len, flags));
            if flags & 1 == 0 {
                break;
            }
            next = n;
            assert!(segs.len() < 8, "descriptor chain too long");
        }
        let (saddr, slen, sflags) = segs.pop().expect("a status descriptor");
        assert_eq!(
            (slen, sflags & 2),
            (1, 2),
            "the status must be one writable byte"
        );
        let data_len: u32 = segs.iter().map(|s| s.1).sum();
        self.seen.push(Seen {
            kind,
            sector,
            len: data_len,
        });
        let start = (sector * 512) as usize;
        let in_range = start + data_len as usize <= self.data.len();
        let touches_bad = self.fail_sector.is_some_and(|s| {
            (sector..sector + u64::from(data_len).div_ceil(512).max(1)).contains(&s)
        });
        let mut written = 0;
        let status = if self.unsupported == Some(kind) {
            2
        } else {
            match kind {
                0 | 1 if !in_range || touches_bad => 1,
                0 => {
                    let mut at = start;
                    for (addr, len, flags) in &segs {
                        assert_eq!(flags & 2, 2, "read data must be device-writable");
                        // SAFETY: the driver's buffer of `len` bytes, the device's now.
                        unsafe {
                            host::<u8>(*addr)
                                .copy_from_nonoverlapping(self.data[at..].as_ptr(), *len as usize)
                        };
                        at += *len as usize;
                        written += len;
                    }
                    0
                }
                1 => {
                    let mut at = start;
                    for (addr, len, flags) in &segs {
                        assert_eq!(flags & 2, 0, "write data must be device-readable");
                        // SAFETY: as above, read-only for the device.
                        let src =
                            unsafe { std::slice::from_raw_parts(host::<u8>(*addr), *len as usize) };
                        self.data[at..at + *len as usize].copy_from_slice(src);
                        at += *len as usize;
                    }
                    0
                }
                4 => {
                    assert!(segs.is_empty(), "a flush carries no data");
                    self.durable.clone_from(&self.data);
                    0
                }
                11 => {
                    let (addr, len, _) = segs[0];
                    assert_eq!(len, 16);
                    // SAFETY: the discard segment, 16 bytes.
                    let (from, count) = unsafe {
                        (
                            u64::from_le(host::<u64>(addr).read_volatile()),
                            u32::from_le(host::<u32>(addr + 8).read_volatile()),
                        )
                    };
                    assert!(
                        count <= self.max_discard_sectors,
                        "discard above the maximum"
                    );
                    let a = (from * 512) as usize;
                    let b = a + count as usize * 512;
                    if b <= self.data.len() {
                        self.data[a..b].fill(0);
                        0
                    } else {
                        1
                    }
                }
                _ => 2,
            }
        };
        // SAFETY: the status byte the driver gave.
        unsafe { host::<u8>(saddr).write_volatile(status) };
        let id = if std::mem::take(&mut self.bogus_next) {
            u32::from(head) + 1
        } else {
            u32::from(head)
        };
        let q = self.queue;
        let slot = u64::from(q.used_idx % q.size);
        let e = q.device + 4 + 8 * slot;
        // SAFETY: the used ring, 4-byte aligned elements.
        unsafe {
            host::<u32>(e).write_volatile(id);
            host::<u32>(e + 4).write_volatile(written + 1);
        }
        self.queue.used_idx = q.used_idx.wrapping_add(1);
        // SAFETY: the used index.
        unsafe { host::<u16>(q.device + 2).write_volatile(self.queue.used_idx) };
    }

    fn uses(&self, bus: u64, len: usize) -> bool {
        let range = bus..bus + len as u64;
        self.queue.enable == 1
            && [self.queue.desc, self.queue.driver, self.queue.device]
                .iter()
                .any(|a| range.contains(a))
    }
}

/// The register file over a shared device.
#[derive(Clone, Debug)]
pub struct BlkRegs(pub Rc<RefCell<BlkDevice>>);

impl PciRegs for BlkRegs {
    fn len(&self, region: Region) -> usize {
        match region {
            Region::Common => common::LEN,
            Region::Notify => NOTIFY_LEN,
            Region::Isr => 1,
            Region::Device => 60,
        }
    }

    fn read8(&self, region: Region, offset: usize) -> u8 {
        let mut d = self.0.borrow_mut();
        match region {
            Region::Common => d.read_common(offset, 1) as u8,
            Region::Isr => std::mem::take(&mut d.isr),
            Region::Device => d.config()[offset],
            Region::Notify => panic!("notify region read"),
        }
    }

    fn read16(&self, region: Region, offset: usize) -> u16 {
        let mut d = self.0.borrow_mut();
        match region {
            Region::Common => d.read_common(offset, 2) as u16,
            Region::Device => {
                let c = d.config();
                u16::from_le_bytes([c[offset], c[offset + 1]])
            }
            _ => panic!("16-bit read of {region}"),
        }
    }

    fn read32(&self, region: Region, offset: usize) -> u32 {
        let mut d = self.0.borrow_mut();
        match region {
            Region::Common => d.read_common(offset, 4),
            Region::Device => {
                assert!(offset.is_multiple_of(4), "misaligned 32-bit config read");
                let c = d.config();
                u32::from_le_bytes(c[offset..offset + 4].try_into().unwrap())
            }
            _ => panic!("32-bit read of {region}"),
        }
    }

    fn write8(&self, region: Region, offset: usize, value: u8) {
        assert_eq!(region, Region::Common);
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
            Region::Notify => {
                assert_eq!((offset, value), (0, 0), "only queue 0 exists");
                self.0.borrow_mut().notify();
            }
            _ => panic!("16-bit write to {region}"),
        }
    }

    fn write32(&self, region: Region, offset: usize, value: u32) {
        assert_eq!(region, Region::Common);
        self.0.borrow_mut().write_common(offset, 4, value);
    }
}

/// DMA memory from the host allocator at a bus address [`BUS_OFFSET`] away.
pub struct BlkDma {
    ptr: NonNull<u8>,
    layout: Layout,
    device: Rc<RefCell<BlkDevice>>,
    live: Rc<Cell<usize>>,
}

// SAFETY: zeroed memory of `layout.size()` bytes, 4096-aligned, owned until drop; the
// fake device reaches it at `phys()`.
unsafe impl DmaMemory for BlkDma {
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

impl Drop for BlkDma {
    fn drop(&mut self) {
        assert!(
            !self.device.borrow().uses(self.phys(), self.len()),
            "DMA memory freed while the device still uses it"
        );
        self.live.set(self.live.get() - 1);
        // SAFETY: allocated in `BlkHal::dma_alloc` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

#[derive(Clone)]
pub struct BlkHal {
    pub device: Rc<RefCell<BlkDevice>>,
    pub live: Rc<Cell<usize>>,
}

impl Hal for BlkHal {
    type Dma = BlkDma;

    fn dma_alloc(&self, len: usize) -> Option<BlkDma> {
        let layout = Layout::from_size_align(len.next_multiple_of(4096), 4096).ok()?;
        // SAFETY: nonzero size.
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) })?;
        self.live.set(self.live.get() + 1);
        Some(BlkDma {
            ptr,
            layout,
            device: self.device.clone(),
            live: self.live.clone(),
        })
    }
}

/// Expected size of `SIZE_MAX` knob users: a helper for tests.
pub fn with_size_max(d: &mut BlkDevice, bytes: u32) {
    d.offered |= SIZE_MAX;
    d.size_max = bytes;
}
