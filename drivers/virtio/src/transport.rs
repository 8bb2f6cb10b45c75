//! The transport: how the driver reaches a virtio device's basic facilities (status,
//! feature bits, virtqueue configuration, notifications, interrupt status, configuration
//! space), whatever bus it sits on.
//!
//! The methods follow the virtio 1.x "basic facilities of a virtio device" one for one,
//! so a transport is a thin register map: [`crate::PciTransport`] for the modern PCI
//! layout, [`crate::MmioTransport`] for virtio-mmio (Firecracker, `-machine microvm`),
//! and [`crate::PvhTransport`] for either, chosen at boot. The device initialisation
//! sequence built on top of them ([`initialize`]) is shared by every device type and
//! every transport.

use crate::Error;

/// Device status bits (virtio 1.x, "Device Status Field").
pub mod status {
    /// The guest has noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive the device.
    pub const DRIVER: u8 = 2;
    /// The driver is set up and ready to drive the device.
    pub const DRIVER_OK: u8 = 4;
    /// The driver has acknowledged the features it understands; feature negotiation is
    /// complete (if the device keeps the bit set).
    pub const FEATURES_OK: u8 = 8;
    /// The device has hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Device-independent feature bits (virtio 1.x, "Reserved Feature Bits").
pub mod feature {
    /// The device complies with virtio 1.x (not the legacy interface).
    pub const VERSION_1: u64 = 1 << 32;
    /// The device accesses memory through the platform's DMA translation (an IOMMU).
    /// Accepted: this driver gives bus addresses from the platform's [`crate::Hal`].
    pub const ACCESS_PLATFORM: u64 = 1 << 33;
    /// `VIRTIO_F_EVENT_IDX`: each side says up to which ring index it wants to hear of
    /// the other's progress (the used ring's `avail_event`, the available ring's
    /// `used_event`) in place of the rings' on/off flags, which both sides then ignore.
    pub const EVENT_IDX: u64 = 1 << 29;
}

/// The event-index rule (virtio 1.x, "Virtqueue Notification Suppression"): with the
/// ring's index moved from `old` to `new`, whether the other side asked to hear once it
/// moved past `event` (that is, `event` lies in `old..new`, modulo 2^16).
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// The MSI-X "no vector" value: the event raises no interrupt.
pub const NO_VECTOR: u16 = 0xFFFF;

/// The largest queue size virtio allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Where one virtqueue lives and how it interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSetup {
    /// Number of entries (a power of two, at most the device's maximum).
    pub size: u16,
    /// Bus address of the descriptor table.
    pub desc: u64,
    /// Bus address of the available ring (the "driver area").
    pub driver: u64,
    /// Bus address of the used ring (the "device area").
    pub device: u64,
    /// MSI-X table entry to signal used buffers with; `None` for no interrupt (or when
    /// the device interrupts through INTx).
    pub msix_vector: Option<u16>,
}

/// How to notify one set-up queue: returned by [`Transport::setup_queue`], given back to
/// [`Transport::notify`]. `cookie` is the transport's own (for PCI, the byte offset in
/// the notification region).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueNotify {
    /// The queue's index.
    pub queue: u16,
    /// Transport-specific.
    pub cookie: u32,
}

/// Access to a virtio 1.x device's basic facilities.
///
/// Implementations only move values to and from registers; the sequencing (reset,
/// feature negotiation, error checks) is the driver's. Single-threaded: `&self`
/// everywhere, registers have their own state.
pub trait Transport {
    /// Reads the device status.
    fn status(&self) -> u8;
    /// Writes the device status (0 resets the device).
    fn set_status(&self, status: u8);
    /// The 64 feature bits the device offers.
    fn device_features(&self) -> u64;
    /// Writes the feature bits the driver accepts.
    fn set_driver_features(&self, features: u64);
    /// The largest size queue `queue` may have; 0 when the queue does not exist.
    fn max_queue_size(&self, queue: u16) -> u16;
    /// Configures queue `queue` as `setup` says and enables it. Fails (clearly, without
    /// enabling the queue) when the device does not take the size or the MSI-X vector,
    /// or names a notification address outside its notification region.
    fn setup_queue(&self, queue: u16, setup: &QueueSetup) -> Result<QueueNotify, Error>;
    /// Tells the device that queue `notify.queue` has new available buffers.
    fn notify(&self, notify: QueueNotify);
    /// Sets the MSI-X table entry for configuration changes (`None`: no interrupt).
    fn set_config_vector(&self, vector: Option<u16>);
    /// Reads (and so clears) the interrupt status: bit 0 a used buffer, bit 1 a
    /// configuration change. Reading it deasserts an INTx line.
    fn ack_interrupt(&self) -> u8;
    /// The configuration generation: changes whenever the device changed its
    /// configuration space, so a multi-byte read can be checked for consistency.
    fn config_generation(&self) -> u8;
    /// Reads a byte of the device-specific configuration; `None` beyond its end.
    fn read_config8(&self, offset: usize) -> Option<u8>;
    /// Reads a 16-bit field of the device-specific configuration (little-endian);
    /// `None` beyond its end or misaligned.
    fn read_config16(&self, offset: usize) -> Option<u16>;
    /// Reads a 32-bit field (or half of a 64-bit one) of the device-specific
    /// configuration (little-endian); `None` beyond its end or misaligned. A transport
    /// that cannot is `None` throughout (the default).
    fn read_config32(&self, offset: usize) -> Option<u32> {
        let _ = offset;
        None
    }
}

/// How many status reads a reset may take before the device is declared stuck. QEMU
/// resets synchronously (the first read returns 0); the bound keeps a broken device from
/// hanging the boot.
pub const RESET_POLLS: u32 = 100_000;

/// Resets the device and waits until it reads back status 0.
pub fn reset<T: Transport>(t: &T) -> Result<(), Error> {
    t.set_status(0);
    for _ in 0..RESET_POLLS {
        if t.status() == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(Error::ResetTimeout)
}

/// Steps 1-6 of the virtio 1.x initialisation sequence: reset, ACKNOWLEDGE, DRIVER,
/// feature negotiation, FEATURES_OK and its check. `choose` sees the features the device
/// offers (`VERSION_1` already checked) and returns those the driver accepts (a subset;
/// it may read the configuration space to decide). Returns the negotiated features.
///
/// On failure the device is left with `FAILED` set, as the specification asks.
pub fn initialize<T: Transport>(t: &T, choose: impl FnOnce(u64) -> u64) -> Result<u64, Error> {
    reset(t)?;
    t.set_status(status::ACKNOWLEDGE);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER);
    let offered = t.device_features();
    if offered & feature::VERSION_1 == 0 {
        fail(t);
        return Err(Error::NoVersion1 { offered });
    }
    let features = choose(offered) & offered;
    t.set_driver_features(features);
    t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK);
    if t.status() & status::FEATURES_OK == 0 {
        fail(t);
        return Err(Error::FeaturesRefused { features });
    }
    Ok(features)
}

/// Step 8: the driver is ready. Checks that the device did not fail on the way.
pub fn driver_ok<T: Transport>(t: &T) -> Result<(), Error> {
    t.set_status(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK);
    if t.status() & status::DEVICE_NEEDS_RESET != 0 {
        fail(t);
        return Err(Error::DeviceFailed);
    }
    Ok(())
}

/// Tells the device that the driver gave up on it.
pub fn fail<T: Transport>(t: &T) {
    t.set_status(t.status() | status::FAILED);
}
