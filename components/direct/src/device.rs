//! The bridge from a [`NetIf`] to smoltcp's `phy::Device`: token wrappers that show
//! every frame to the loss-recovery agent ([`Recovery`]) on its way; nothing else
//! copied.

use crate::recovery::Recovery;
use core::cell::RefCell;
use morgana_signatures::{NetIf, RxToken, TxToken};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

/// Length of an Ethernet header (two MAC addresses and the EtherType), which smoltcp
/// counts in its MTU and [`NetIf::mtu`] does not.
const ETHERNET_HEADER: usize = 14;

/// A [`NetIf`] seen as a smoltcp device, with the loss-recovery agent beside it.
pub(crate) struct Device<N>(pub(crate) N, pub(crate) RefCell<Recovery>);

impl<N> Device<N> {
    pub(crate) fn new(netif: N) -> Self {
        Device(netif, RefCell::new(Recovery::new()))
    }
}

pub(crate) struct Rx<'a, T>(T, &'a RefCell<Recovery>, i64);
pub(crate) struct Tx<'a, T>(T, &'a RefCell<Recovery>, i64);

impl<T: RxToken> phy::RxToken for Rx<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let Rx(token, agent, now) = self;
        token.consume(|frame| {
            agent.borrow_mut().on_receive(frame, now);
            f(frame)
        })
    }
}

impl<T: TxToken> phy::TxToken for Tx<'_, T> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        let Tx(token, agent, now) = self;
        token.consume(len, |frame| {
            let r = f(frame);
            agent.borrow_mut().on_transmit(frame, now);
            r
        })
    }
}

impl<N: NetIf> phy::Device for Device<N> {
    type RxToken<'a>
        = Rx<'a, N::RxToken<'a>>
    where
        Self: 'a;
    type TxToken<'a>
        = Tx<'a, N::TxToken<'a>>
    where
        Self: 'a;

    fn receive(&mut self, now: SmolInstant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let agent = &self.1;
        let now = now.total_micros();
        self.0
            .receive()
            .map(|(rx, tx)| (Rx(rx, agent, now), Tx(tx, agent, now)))
    }

    fn transmit(&mut self, now: SmolInstant) -> Option<Self::TxToken<'_>> {
        let agent = &self.1;
        self.0
            .transmit()
            .map(|tx| Tx(tx, agent, now.total_micros()))
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
