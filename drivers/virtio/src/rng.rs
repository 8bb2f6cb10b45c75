//! virtio-rng, the entropy device (virtio 1.x §5.4, device ID 4): QEMU's `-device
//! virtio-rng-pci`, fed by the host's `/dev/urandom` (or `getrandom`).
//!
//! The device has one request queue and no features or configuration: the driver posts
//! device-writable buffers, the device fills them with random bytes and returns them
//! with the count written. [`Rng`] keeps [`QUEUE_SIZE`] buffers of [`REQUEST_BYTES`]
//! posted and is polled (no interrupt: it is read a few times at start-up, to seed a
//! generator, not on a hot path). [`Rng::fill`] waits on a timer and gives up at its
//! deadline: a device that never answers ends in [`RngError::Timeout`], not a hang.
//!
//! [`KernelEntropy`] is what a kernel that makes keys (TLS) uses: the CPU's RDRAND/RDSEED
//! when it has them, else a ChaCha20 generator seeded from virtio-rng (and mixed with
//! the timing jitter of every call), else a refusal naming the fix. The refusal lives
//! here, where the sources are known; the TLS component also refuses any source that
//! does not claim to be strong (`Entropy::is_strong`), on every platform.

use alloc::boxed::Box;
use core::fmt;
use core::time::Duration;

use chacha20::ChaCha20Rng;
use morgana_signatures::{Instant, MonotonicClock, Timer};
use rand_core::{Rng as _, SeedableRng};

use crate::hal::Hal;
use crate::queue::{Used, Virtqueue};
use crate::transport::{self, Transport, feature};

/// PCI device ID of a modern (virtio 1.x) entropy device.
pub const RNG_MODERN_DEVICE_ID: u16 = 0x1044;
/// PCI device ID of QEMU's transitional `virtio-rng-pci`.
pub const RNG_TRANSITIONAL_DEVICE_ID: u16 = 0x1005;

/// Buffers kept posted.
pub const QUEUE_SIZE: u16 = 4;
/// Bytes asked for per buffer.
pub const REQUEST_BYTES: usize = 64;
/// How often [`Rng::fill`] looks at the used ring while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How long [`KernelEntropy::find`] waits for the device's first bytes.
pub const SEED_TIMEOUT: Duration = Duration::from_secs(5);

/// The request queue's index.
const REQUEST_QUEUE: u16 = 0;

/// Why no random bytes came from the entropy device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RngError {
    /// No virtio entropy device on the PCI bus.
    NoDevice,
    /// Neither RDRAND/RDSEED nor a virtio entropy device: only timing jitter is left,
    /// which is not enough for keys.
    NoStrongSource,
    /// The device did not answer in time.
    Timeout,
    /// The device could not be set up.
    Device(crate::Error),
}

impl fmt::Display for RngError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RngError::NoDevice => {
                f.write_str("no virtio-rng device on the PCI bus (add -device virtio-rng-pci)")
            }
            // At most 120 bytes: the start-up error message holds no more.
            RngError::NoStrongSource => f.write_str(
                "no strong random source (no RDRAND, no virtio-rng): run QEMU with -cpu max or add -device virtio-rng-pci",
            ),
            RngError::Timeout => f.write_str("the virtio-rng device sent no random bytes in time"),
            RngError::Device(e) => write!(f, "virtio-rng: {e}"),
        }
    }
}

impl From<crate::Error> for RngError {
    fn from(e: crate::Error) -> RngError {
        RngError::Device(e)
    }
}

/// The entropy device's driver, generic over the platform ([`Hal`]) and the transport.
pub struct Rng<H: Hal, T: Transport> {
    hal: H,
    transport: T,
    queue: Virtqueue<H::Dma>,
    /// Bytes received from the device so far.
    received: u64,
}

impl<H: Hal, T: Transport> Rng<H, T> {
    /// Initialises the device (no features beyond `VERSION_1`), sets up the request
    /// queue and posts every buffer. On failure the device is reset and marked FAILED.
    pub fn new(hal: H, transport: T) -> Result<Rng<H, T>, crate::Error> {
        transport::initialize(&transport, |_| {
            feature::VERSION_1 | feature::ACCESS_PLATFORM
        })?;
        let mut queue = Virtqueue::new(
            &hal,
            &transport,
            REQUEST_QUEUE,
            QUEUE_SIZE,
            REQUEST_BYTES,
            true,
            None,
        )
        .map_err(|e| abandon(&transport, e))?;
        transport.set_config_vector(None);
        queue.suppress_interrupts();
        for id in 0..queue.size() {
            queue.push(&hal, id, REQUEST_BYTES as u32);
        }
        let rng = Rng {
            hal,
            transport,
            queue,
            received: 0,
        };
        // Dropping `rng` on failure resets the device before its memory goes.
        transport::driver_ok(&rng.transport)?;
        rng.queue.kick(&rng.hal, &rng.transport);
        Ok(rng)
    }

    /// Takes the random bytes the device has returned (at most `out.len()`) and posts
    /// the buffers again. Returns how many bytes were written to `out`; bytes of a
    /// buffer that do not fit are discarded, never handed out twice.
    pub fn poll(&mut self, out: &mut [u8]) -> usize {
        let mut n = 0;
        let mut reposted = false;
        while n < out.len() {
            let Some(used) = self.queue.pop_used(&self.hal) else {
                break;
            };
            let Used::Buffer { id, len } = used else {
                continue; // a buffer the device did not own: the queue noted it
            };
            let len = (len as usize).min(REQUEST_BYTES).min(out.len() - n);
            let buffer = self.queue.buffer(id);
            // SAFETY: `buffer` points at this descriptor's REQUEST_BYTES-byte DMA buffer,
            // which the device has returned (it no longer writes it); `len` is at most
            // REQUEST_BYTES, and the buffer is zeroed before it is posted again.
            unsafe {
                core::ptr::copy_nonoverlapping(buffer, out[n..].as_mut_ptr(), len);
                core::ptr::write_bytes(buffer, 0, REQUEST_BYTES);
            }
            n += len;
            self.queue.push(&self.hal, id, REQUEST_BYTES as u32);
            reposted = true;
        }
        if reposted {
            self.queue.kick(&self.hal, &self.transport);
        }
        self.received += n as u64;
        n
    }

    /// Fills `out` with random bytes from the device, polling every [`POLL_INTERVAL`]
    /// until `deadline`.
    pub async fn fill<C: Timer>(
        &mut self,
        clock: &C,
        out: &mut [u8],
        deadline: Instant,
    ) -> Result<(), RngError> {
        let mut n = 0;
        loop {
            n += self.poll(&mut out[n..]);
            if n == out.len() {
                return Ok(());
            }
            if self.queue.is_broken() {
                return Err(RngError::Device(crate::Error::DeviceFailed));
            }
            if clock.now() >= deadline {
                return Err(RngError::Timeout);
            }
            clock.sleep(POLL_INTERVAL).await;
        }
    }

    /// Bytes received from the device so far.
    pub fn received(&self) -> u64 {
        self.received
    }
}

impl<H: Hal, T: Transport> Drop for Rng<H, T> {
    fn drop(&mut self) {
        // The device must stop writing the buffers before their memory is freed.
        if transport::reset(&self.transport).is_err() {
            log::error!("virtio-rng: the device did not reset; leaking its queue memory");
            self.queue.leak();
        }
    }
}

fn abandon<T: Transport>(t: &T, e: crate::Error) -> crate::Error {
    if transport::reset(t).is_err() {
        log::error!("virtio-rng: the device did not reset after: {e}");
    }
    transport::fail(t);
    e
}

/// The entropy device's driver on morgana-pvh.
pub type VirtioRng = Rng<crate::PvhHal, crate::PciTransport<crate::PvhRegs>>;

/// Whether `f` is a virtio entropy device.
pub fn is_virtio_rng(f: &morgana_pvh::PciFunction) -> bool {
    f.vendor_id == crate::pci::VIRTIO_VENDOR_ID
        && (f.device_id == RNG_MODERN_DEVICE_ID || f.device_id == RNG_TRANSITIONAL_DEVICE_ID)
}

impl VirtioRng {
    /// Finds the first virtio entropy device on the PCI bus (vendor 0x1af4, device
    /// 0x1044, or 0x1005 for QEMU's transitional `virtio-rng-pci`), maps its regions,
    /// enables memory decoding and bus mastering and drives it (polled: no interrupt).
    pub fn find(platform: &'static morgana_pvh::Platform) -> Result<VirtioRng, RngError> {
        use morgana_pvh::pci::{capability, command};
        let pci = platform.pci();
        let function = pci
            .scan()
            .into_iter()
            .find(is_virtio_rng)
            .ok_or(RngError::NoDevice)?;
        let at = function.address;
        let vendor_caps = pci
            .capabilities(at)
            .filter(|&(id, _)| id == capability::VENDOR)
            .map(|(_, offset)| offset);
        let caps = crate::VirtioPciCaps::parse(vendor_caps, |offset| pci.read32(at, offset))?;
        let regs = crate::PvhRegs::map(&pci, at, &caps)?;
        pci.enable(at, command::MEMORY | command::BUS_MASTER);
        let transport = crate::PciTransport::new(regs, caps.notify_off_multiplier)?;
        let rng = Rng::new(crate::PvhHal, transport)?;
        log::info!("virtio-rng {at}: {QUEUE_SIZE} requests of {REQUEST_BYTES} bytes, polled");
        Ok(rng)
    }
}

/// A ChaCha20 generator seeded once from a strong source (virtio-rng), rekeyed after
/// every fill from its own output mixed with a word of `jitter` (so a memory dump cannot
/// replay earlier output, and the weak source still adds what it has). The handle is
/// `Copy`; every copy shares the one generator.
#[derive(Clone, Copy)]
pub struct Seeded<J> {
    state: &'static spin::Mutex<ChaCha20Rng>,
    jitter: J,
}

impl<J> fmt::Debug for Seeded<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Seeded")
    }
}

impl<J: morgana_signatures::Entropy> Seeded<J> {
    /// A generator keyed with `seed` (32 bytes from a strong source).
    pub fn new(seed: [u8; 32], jitter: J) -> Seeded<J> {
        Seeded {
            state: Box::leak(Box::new(spin::Mutex::new(ChaCha20Rng::from_seed(seed)))),
            jitter,
        }
    }
}

impl<J: morgana_signatures::Entropy> morgana_signatures::Entropy for Seeded<J> {
    type Error = core::convert::Infallible;

    fn fill(&self, buf: &mut [u8]) -> Result<(), Self::Error> {
        let mut extra = [0u8; 8];
        let _ = self.jitter.fill(&mut extra);
        let mut rng = self.state.lock();
        rng.fill_bytes(buf);
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        for (k, e) in key.iter_mut().zip(extra) {
            *k ^= e;
        }
        *rng = ChaCha20Rng::from_seed(key);
        key.fill(0);
        Ok(())
    }

    fn is_strong(&self) -> bool {
        true
    }
}

/// The kernel's trustworthy entropy, found at start-up: see the module documentation.
#[derive(Clone, Copy, Debug)]
pub enum KernelEntropy {
    /// RDRAND or RDSEED.
    Cpu(morgana_pvh::Entropy),
    /// A generator seeded from virtio-rng.
    Device(Seeded<morgana_pvh::Entropy>),
}

impl KernelEntropy {
    /// RDRAND/RDSEED if the CPU has them; else 32 bytes from the first virtio-rng device
    /// (within [`SEED_TIMEOUT`]) seeding [`Seeded`]; else
    /// [`RngError::NoStrongSource`], whose message names the fix. On Xen (no PCI bus to
    /// scan) only the CPU counts.
    pub async fn find(platform: &'static morgana_pvh::Platform) -> Result<KernelEntropy, RngError> {
        use morgana_signatures::Entropy as _;
        let cpu = platform.entropy();
        if cpu.is_strong() {
            return Ok(KernelEntropy::Cpu(cpu));
        }
        if morgana_pvh::xen::on_xen() {
            return Err(RngError::NoStrongSource);
        }
        let mut rng = match VirtioRng::find(platform) {
            Ok(rng) => rng,
            Err(RngError::NoDevice) => return Err(RngError::NoStrongSource),
            Err(e) => return Err(e),
        };
        let clock = platform.clock();
        let mut seed = [0u8; 32];
        let deadline = clock.now().saturating_add(SEED_TIMEOUT);
        rng.fill(&clock, &mut seed, deadline).await?;
        log::info!("entropy: seeded from virtio-rng (the CPU has no RDRAND/RDSEED)");
        let seeded = Seeded::new(seed, cpu);
        seed.fill(0);
        Ok(KernelEntropy::Device(seeded))
    }
}

impl morgana_signatures::Entropy for KernelEntropy {
    type Error = morgana_pvh::EntropyError;

    fn fill(&self, buf: &mut [u8]) -> Result<(), Self::Error> {
        match self {
            KernelEntropy::Cpu(e) => e.fill(buf),
            KernelEntropy::Device(s) => {
                let Ok(()) = s.fill(buf);
                Ok(())
            }
        }
    }

    fn is_strong(&self) -> bool {
        true
    }
}
