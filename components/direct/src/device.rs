//! The bridge from a [`NetIf`] to smoltcp's `phy::Device`: token wrappers that show
//! every frame to the loss-recovery agent ([`Recovery`]) on its way; nothing else
//! copied. On the way in, a SYN for a listener that has no listening socket left (its
//! backlog or the stack's sockets are full) is dropped here, before smoltcp would
//! answer it with a reset: the client retransmits its SYN (after 1, 3, 7 s ...) and
//! gets in once `accept` has made room, as with a full accept queue on Linux.

use crate::recovery::Recovery;
use alloc::vec::Vec;
use core::cell::RefCell;
use morgana_signatures::{NetIf, RxToken, TxToken};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::time::Instant as SmolInstant;

/// Length of an Ethernet header (two MAC addresses and the EtherType), which smoltcp
/// counts in its MTU and [`NetIf::mtu`] does not.
const ETHERNET_HEADER: usize = 14;

/// A [`NetIf`] seen as a smoltcp device, with the loss-recovery agent beside it and the
/// ports whose SYNs are held off (listeners with no listening socket: see the module
/// docs; kept by the stack's listener top-up).
pub(crate) struct Device<N>(
    pub(crate) N,
    pub(crate) RefCell<Recovery>,
    pub(crate) Vec<u16>,
);

impl<N> Device<N> {
    pub(crate) fn new(netif: N) -> Self {
        Device(netif, RefCell::new(Recovery::new()), Vec::new())
    }
}

pub(crate) struct Rx<'a, T>(T, &'a RefCell<Recovery>, i64, &'a [u16]);

/// Whether `frame` is a TCP SYN without ACK (a connection attempt) to one of `ports`,
/// over IPv4 or IPv6 (without extension headers). Truncated frames are not: smoltcp
/// drops those itself.
fn is_held_syn(frame: &[u8], ports: &[u16]) -> bool {
    if ports.is_empty() || frame.len() < ETHERNET_HEADER {
        return false;
    }
    let ip = &frame[ETHERNET_HEADER..];
    let tcp = match u16::from_be_bytes([frame[12], frame[13]]) {
        // IPv4: protocol 6, first (or only) fragment, header length from IHL.
        0x0800 if ip.len() >= 20 && ip[9] == 6 && ip[7] == 0 && ip[6] & 0x1f == 0 => {
            ip.get(usize::from(ip[0] & 0x0f) * 4..)
        }
        // IPv6: next header 6.
        0x86dd if ip.len() >= 40 && ip[6] == 6 => ip.get(40..),
        _ => None,
    };
    match tcp {
        Some(t) if t.len() >= 20 => {
            let (port, flags) = (u16::from_be_bytes([t[2], t[3]]), t[13]);
            // SYN set; ACK and RST clear.
            flags & 0x16 == 0x02 && ports.contains(&port)
        }
        _ => false,
    }
}
pub(crate) struct Tx<'a, T>(T, &'a RefCell<Recovery>, i64);

impl<T: RxToken> phy::RxToken for Rx<'_, T> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        let Rx(token, agent, now, held) = self;
        token.consume(|frame| {
            if is_held_syn(frame, held) {
                // An empty frame: smoltcp drops it without a word (no reset goes out).
                return f(&[]);
            }
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
        let (agent, held) = (&self.1, &self.2[..]);
        let now = now.total_micros();
        self.0
            .receive()
            .map(|(rx, tx)| (Rx(rx, agent, now, held), Tx(tx, agent, now)))
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
