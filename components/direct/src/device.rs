//! The bridge from a [`NetIf`] to smoltcp's `phy::Device`: token wrappers, nothing
//! copied.

use morgana_signatures::{NetIf, RxToken, TxToken};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

/// Length of an Ethernet header (two MAC addresses and the EtherType), which smoltcp
/// counts in its MTU and [`NetIf::mtu`] does not.
const ETHERNET_HEADER: usize = 14;

/// A [`NetIf`] seen as a smoltcp device.
pub(crate) struct Device<N>(pub(crate) N);

pub(crate) struct Rx<T>(T);
pub(crate) struct Tx<T>(T);

impl<T: RxToken> phy::RxToken for Rx<T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        self.0.consume(f)
    }
}

impl<T: TxToken> phy::TxToken for Tx<T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        self.0.consume(len, f)
    }
}

impl<N: NetIf> phy::Device for Device<N> {
    type RxToken<'a>
        = Rx<N::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<N::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, _now: SmolInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.0.receive().map(|(rx, tx)| (Rx(rx), Tx(tx)))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<Self::TxToken<'_>> {
        self.0.transmit().map(Tx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.0.mtu() + ETHERNET_HEADER;
        // Checksums are computed and verified in software (the default): a tap does no
        // offloading.
        caps
    }
}
