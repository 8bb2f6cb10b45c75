//! The fake device of `fake.rs` behind a virtio-mmio register window (version 2), as
//! QEMU's `virtio-mmio` with `force-legacy=false` and Firecracker lay it out, with
//! knobs for the ways a window can be wrong. Registers below 0x100 accept only 32-bit
//! accesses, and reads of write-only registers fail the test, as the specification
//! forbids both.

use crate::fake::{Device, QueueState};
use crate::mmio::{MAGIC, MmioRegs, device_id, reg};
use crate::transport::status;
use std::cell::RefCell;
use std::rc::Rc;

/// A virtio-mmio window over a fake device.
#[derive(Clone, Debug)]
pub struct FakeMmio {
    pub dev: Rc<RefCell<Device>>,
    /// What `MagicValue` reads.
    pub magic: u32,
    /// What `Version` reads.
    pub version: u32,
    /// What `DeviceID` reads.
    pub device_id: u32,
    /// The window's length.
    pub len: usize,
    /// `QueueReady` never reads back 1.
    pub never_ready: bool,
}

impl FakeMmio {
    /// A modern virtio-net window of 512 bytes (QEMU's size).
    pub fn new(dev: Rc<RefCell<Device>>) -> FakeMmio {
        FakeMmio {
            dev,
            magic: MAGIC,
            version: 2,
            device_id: device_id::NET,
            len: 0x200,
            never_ready: false,
        }
    }

    fn selected(d: &mut Device) -> Option<&mut QueueState> {
        d.selected()
    }
}

impl MmioRegs for FakeMmio {
    fn len(&self) -> usize {
        self.len
    }

    fn read8(&self, offset: usize) -> u8 {
        assert!(offset >= reg::CONFIG, "8-bit read of register {offset:#x}");
        let mut d = self.dev.borrow_mut();
        let at = offset - reg::CONFIG;
        assert!(at < d.config_len && offset < self.len);
        if d.unstable_config && at == 0 {
            d.generation = d.generation.wrapping_add(1);
        }
        d.config[at]
    }

    fn read16(&self, offset: usize) -> u16 {
        assert!(offset >= reg::CONFIG, "16-bit read of register {offset:#x}");
        let d = self.dev.borrow();
        let at = offset - reg::CONFIG;
        assert!(at.is_multiple_of(2) && at + 2 <= d.config_len && offset + 2 <= self.len);
        u16::from_le_bytes([d.config[at], d.config[at + 1]])
    }

    fn read32(&self, offset: usize) -> u32 {
        let mut d = self.dev.borrow_mut();
        match offset {
            reg::MAGIC_VALUE => self.magic,
            reg::VERSION => self.version,
            reg::DEVICE_ID => self.device_id,
            reg::VENDOR_ID => 0x554D_4551, // "QEMU"
            reg::DEVICE_FEATURES => match d.device_feature_select {
                0 => d.offered as u32,
                1 => (d.offered >> 32) as u32,
                _ => 0,
            },
            reg::QUEUE_NUM_MAX => Self::selected(&mut d).map_or(0, |q| u32::from(q.max_size)),
            reg::QUEUE_READY => {
                let never = self.never_ready;
                Self::selected(&mut d).map_or(0, |q| u32::from(q.enable == 1 && !never))
            }
            reg::INTERRUPT_STATUS => u32::from(d.isr),
            reg::STATUS => u32::from(d.status),
            reg::CONFIG_GENERATION => u32::from(d.generation),
            _ => panic!("driver read write-only or reserved register {offset:#x}"),
        }
    }

    fn write32(&self, offset: usize, v: u32) {
        let mut d = self.dev.borrow_mut();
        let d = &mut *d;
        match offset {
            reg::DEVICE_FEATURES_SEL => d.device_feature_select = v,
            reg::DRIVER_FEATURES_SEL => d.driver_feature_select = v,
            reg::DRIVER_FEATURES => {
                assert_eq!(
                    d.status,
                    status::ACKNOWLEDGE | status::DRIVER,
                    "features written outside negotiation"
                );
                match d.driver_feature_select {
                    0 => d.driver_features = (d.driver_features & !0xFFFF_FFFF) | u64::from(v),
                    1 => {
                        d.driver_features = (d.driver_features & 0xFFFF_FFFF) | (u64::from(v) << 32)
                    }
                    _ => {}
                }
            }
            reg::QUEUE_SEL => d.queue_select = v as u16,
            reg::QUEUE_NUM => {
                let Some(q) = d.selected() else { return };
                assert_eq!(q.enable, 0, "queue size changed while ready");
                assert!(
                    v <= u32::from(q.max_size) && v.is_power_of_two(),
                    "queue size {v} (max {})",
                    q.max_size
                );
                q.size = v as u16;
            }
            reg::QUEUE_READY => {
                let status = d.status;
                let Some(q) = d.selected() else { return };
                if v == 1 {
                    assert!(q.size != 0, "queue made ready without a size");
                    assert!(
                        status & status::FEATURES_OK != 0,
                        "queue set up before FEATURES_OK"
                    );
                    q.enable = 1;
                } else {
                    q.enable = 0;
                }
            }
            reg::QUEUE_NOTIFY => {
                assert!(
                    d.status & status::DRIVER_OK != 0,
                    "notified before DRIVER_OK"
                );
                d.queues[v as usize].notifications += 1;
            }
            reg::INTERRUPT_ACK => d.isr &= !(v as u8),
            reg::STATUS => d.write_status(v as u8),
            o @ (reg::QUEUE_DESC_LOW..=reg::QUEUE_DEVICE_HIGH) => {
                let Some(q) = d.selected() else { return };
                assert_eq!(q.enable, 0, "queue address changed while ready");
                let field = match o & !0xF {
                    reg::QUEUE_DESC_LOW => &mut q.desc,
                    reg::QUEUE_DRIVER_LOW => &mut q.driver,
                    reg::QUEUE_DEVICE_LOW => &mut q.device,
                    _ => panic!("write to reserved register {o:#x}"),
                };
                match o & 0xF {
                    0 => *field = (*field & !0xFFFF_FFFF) | u64::from(v),
                    4 => *field = (*field & 0xFFFF_FFFF) | (u64::from(v) << 32),
                    _ => panic!("write to reserved register {o:#x}"),
                }
            }
            _ => panic!("driver wrote {v:#x} to read-only or reserved register {offset:#x}"),
        }
    }
}
