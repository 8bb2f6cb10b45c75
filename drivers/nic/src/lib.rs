//! The PVH kernel's network interface, found at boot: one image, whichever device the
//! machine offers.
//!
//! ```ignore
//! // What the generated connect chain does on the xen target:
//! let nic = morgana_nic::Nic::find(platform).await?;   // impl morgana_signatures::NetIf
//! ```
//!
//! On Xen (detected by morgana-pvh from the CPUID leaves) a PVH guest has no PCI bus
//! worth scanning: the NIC is the first `vif` in xenstore, driven by netfront. Elsewhere
//! (QEMU, KVM, Firecracker) it is the first virtio-net device on the PCI bus, else over
//! virtio-mmio (QEMU `-machine microvm`, Firecracker). Under `morgana-tender` (the kernel
//! entered at CPL 3 through its tender note) it is the tender's device, a host tap behind
//! its frame calls ([`tender`]). [`Nic`] is a plain enum over the three drivers; its tokens are enums too, so the stack above is
//! monomorphised once and a `match` per frame picks the driver.
//!
//! A kernel built for one hypervisor (codegen's `qemu` and `xen-only` targets, whose
//! entry is `morgana_pvh::qemu_entry!` or `xen_entry!`) names one driver instead:
//! [`qemu::Nic`] (virtio-net) or [`xen::Nic`] (netfront), and links none of the others.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks, missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod tender;

use core::fmt;
use core::task::Waker;
use morgana_netfront::XenNet;
use morgana_pvh::Platform;
use morgana_signatures::{MacAddress, NetIf};
use morgana_virtio::AnyVirtioNet as VirtioNet;

/// The network interface this machine offers.
pub enum Nic {
    /// A virtio-net device on the PCI bus or over virtio-mmio (QEMU, KVM, Firecracker).
    Virtio(VirtioNet),
    /// A Xen vif, driven by netfront.
    Xen(XenNet),
    /// The tender's device (a host tap), through its frame calls.
    Tender(tender::TenderNet),
}

/// Why no network interface could be driven.
#[derive(Debug)]
pub enum Error {
    /// The virtio-net driver failed (or found no device).
    Virtio(morgana_virtio::Error),
    /// The netfront driver failed (no vif, backend missing or closed, ...).
    Xen(morgana_netfront::Error),
    /// The tender has no network device for this guest.
    Tender(tender::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Virtio(e) => fmt::Display::fmt(e, f),
            Error::Xen(e) => fmt::Display::fmt(e, f),
            Error::Tender(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl Nic {
    /// Finds and drives the machine's network interface.
    pub async fn find(platform: &'static Platform) -> Result<Nic, Error> {
        if morgana_pvh::tender::on_tender() {
            tender::TenderNet::find()
                .map(Nic::Tender)
                .map_err(Error::Tender)
        } else if morgana_pvh::xen::on_xen() {
            morgana_netfront::connect()
                .await
                .map(Nic::Xen)
                .map_err(Error::Xen)
        } else {
            find_virtio(platform)
        }
    }
}

/// The virtio-net device. Not inlined into the appliance's start-up: it runs once per boot
/// and is optimised for size with this crate (root `Cargo.toml`).
#[inline(never)]
fn find_virtio(platform: &'static Platform) -> Result<Nic, Error> {
    VirtioNet::find_any(platform)
        .map(Nic::Virtio)
        .map_err(Error::Virtio)
}

/// The network interface of a kernel for QEMU/KVM only (codegen's `qemu` target): the
/// first virtio-net device, on the PCI bus or over virtio-mmio; no netfront, no tender.
pub mod qemu {
    use morgana_pvh::Platform;

    /// virtio-net, on the PCI bus or over virtio-mmio.
    pub type Nic = morgana_virtio::AnyVirtioNet;
    /// Why no virtio-net device could be driven.
    pub type Error = morgana_virtio::Error;

    /// Finds and drives the machine's virtio-net device.
    pub async fn find(platform: &'static Platform) -> Result<Nic, Error> {
        super::find_virtio_only(platform)
    }
}

/// The network interface of a kernel for Xen only (codegen's `xen-only` target): the
/// domain's first `vif`, driven by netfront; no virtio, no tender.
pub mod xen {
    use morgana_pvh::Platform;

    /// A Xen vif, driven by netfront.
    pub type Nic = morgana_netfront::XenNet;
    /// Why the vif could not be driven.
    pub type Error = morgana_netfront::Error;

    /// Finds and drives the domain's first vif (`platform` for the same shape as
    /// [`super::Nic::find`]).
    pub async fn find(_platform: &'static Platform) -> Result<Nic, Error> {
        morgana_netfront::connect().await
    }
}

/// [`qemu::find`]'s search, out of the appliance's start-up as [`find_virtio`].
#[inline(never)]
fn find_virtio_only(platform: &'static Platform) -> Result<VirtioNet, morgana_virtio::Error> {
    VirtioNet::find_any(platform)
}

/// A received frame of whichever driver.
pub enum RxToken<'a> {
    /// virtio-net's.
    Virtio(<VirtioNet as NetIf>::RxToken<'a>),
    /// netfront's.
    Xen(<XenNet as NetIf>::RxToken<'a>),
    /// The tender's.
    Tender(tender::RxToken<'a>),
}

/// Room for a frame to send, of whichever driver.
pub enum TxToken<'a> {
    /// virtio-net's.
    Virtio(<VirtioNet as NetIf>::TxToken<'a>),
    /// netfront's.
    Xen(<XenNet as NetIf>::TxToken<'a>),
    /// The tender's.
    Tender(tender::TxToken<'a, tender::GuestCalls>),
}

impl morgana_signatures::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        match self {
            RxToken::Virtio(t) => t.consume(f),
            RxToken::Xen(t) => t.consume(f),
            RxToken::Tender(t) => t.consume(f),
        }
    }
}

impl morgana_signatures::TxToken for TxToken<'_> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        match self {
            TxToken::Virtio(t) => t.consume(len, f),
            TxToken::Xen(t) => t.consume(len, f),
            TxToken::Tender(t) => t.consume(len, f),
        }
    }
}

impl NetIf for Nic {
    type RxToken<'a> = RxToken<'a>;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self) -> Option<(RxToken<'_>, TxToken<'_>)> {
        match self {
            Nic::Virtio(n) => n
                .receive()
                .map(|(rx, tx)| (RxToken::Virtio(rx), TxToken::Virtio(tx))),
            Nic::Xen(n) => n
                .receive()
                .map(|(rx, tx)| (RxToken::Xen(rx), TxToken::Xen(tx))),
            Nic::Tender(n) => n
                .receive()
                .map(|(rx, tx)| (RxToken::Tender(rx), TxToken::Tender(tx))),
        }
    }

    fn transmit(&mut self) -> Option<TxToken<'_>> {
        match self {
            Nic::Virtio(n) => n.transmit().map(TxToken::Virtio),
            Nic::Xen(n) => n.transmit().map(TxToken::Xen),
            Nic::Tender(n) => n.transmit().map(TxToken::Tender),
        }
    }

    fn mac_address(&self) -> MacAddress {
        match self {
            Nic::Virtio(n) => n.mac_address(),
            Nic::Xen(n) => n.mac_address(),
            Nic::Tender(n) => n.mac_address(),
        }
    }

    fn mtu(&self) -> usize {
        match self {
            Nic::Virtio(n) => n.mtu(),
            Nic::Xen(n) => n.mtu(),
            Nic::Tender(n) => n.mtu(),
        }
    }

    fn register_rx_waker(&self, waker: &Waker) {
        match self {
            Nic::Virtio(n) => n.register_rx_waker(waker),
            Nic::Xen(n) => n.register_rx_waker(waker),
            Nic::Tender(n) => n.register_rx_waker(waker),
        }
    }

    fn diagnostics_requested(&self) -> bool {
        match self {
            Nic::Virtio(n) => n.diagnostics_requested(),
            Nic::Xen(n) => n.diagnostics_requested(),
            Nic::Tender(n) => n.diagnostics_requested(),
        }
    }
}
