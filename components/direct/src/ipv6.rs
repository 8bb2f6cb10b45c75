//! IPv6 on the stack (the `ipv6` feature): addresses, the default route, SLAAC's
//! bookkeeping. smoltcp does the protocol itself: neighbour discovery (solicitations
//! answered, the neighbour cache), ICMPv6 echo, router solicitation and the processing
//! of router advertisements.
//!
//! What smoltcp 0.14 leaves to its user, and this module does:
//! - the link-local address (`fe80::` + modified EUI-64 of the MAC, RFC 4291 appendix A):
//!   smoltcp's SLAAC adds only the addresses of advertised prefixes;
//! - waking the pump for SLAAC: `Interface::poll_at` folds SLAAC's deadline in with
//!   `Option::min`, so when no socket has a deadline of its own (a server with only
//!   listening sockets) the router-solicitation retries are never scheduled. While no
//!   address has come from a router advertisement, for the first [`SLAAC_WINDOW`] after
//!   start, the pump runs every [`SLAAC_TICK`] (smoltcp sends at most three
//!   solicitations, four seconds apart); after that an unsolicited advertisement still
//!   configures the stack when it comes;
//! - logging what SLAAC configured or withdrew.
//!
//! Not done: duplicate address detection (RFC 4862 5.4; smoltcp has none), privacy
//! addresses (RFC 8981), DHCPv6, more than one prefix per interface
//! (smoltcp's `iface-max-prefix-count` is 1), router preference and route information
//! options.

use alloc::vec::Vec;
use core::net::Ipv6Addr;
use core::time::Duration;

use morgana_signatures::{Instant, MacAddress};
use smoltcp::iface::Interface;
use smoltcp::wire::{IpAddress, IpCidr, Ipv6Cidr};

use crate::config::Ipv6Config;

/// How often the pump runs while SLAAC waits for its first router advertisement.
pub(crate) const SLAAC_TICK: Duration = Duration::from_secs(1);

/// How long after start the pump is woken for SLAAC's router solicitations.
pub(crate) const SLAAC_WINDOW: Duration = Duration::from_secs(16);

/// The link-local address of a MAC: `fe80::` and the modified EUI-64 (the U/L bit
/// flipped, `ff:fe` in the middle).
pub fn link_local(mac: MacAddress) -> Ipv6Addr {
    let m = mac.0;
    Ipv6Addr::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([m[0] ^ 0x02, m[1]]),
        u16::from_be_bytes([m[2], 0xff]),
        u16::from_be_bytes([0xfe, m[3]]),
        u16::from_be_bytes([m[4], m[5]]),
    )
}

/// The address SLAAC makes for `prefix` (a /64) on an interface with `mac`.
pub fn slaac_address(prefix: Ipv6Addr, mac: MacAddress) -> Ipv6Addr {
    let ll = u128::from(link_local(mac));
    let net = u128::from(prefix) & (u128::MAX << 64);
    Ipv6Addr::from(net | (ll & u128::from(u64::MAX)))
}

fn groups(g: [u16; 8]) -> Ipv6Addr {
    let [a, b, c, d, e, f, h, i] = g;
    Ipv6Addr::new(a, b, c, d, e, f, h, i)
}

/// The stack's IPv6 state beyond smoltcp's.
pub(crate) struct V6State {
    config: Option<Ipv6Config>,
    /// Until when the pump is woken for SLAAC (none once an address came).
    slaac_until: Option<Instant>,
    /// The addresses last seen, to log changes.
    known: Vec<Ipv6Cidr>,
}

impl V6State {
    /// Sets up `iface` for `config` (nothing for `None`).
    pub(crate) fn configure(
        iface: &mut Interface,
        mac: MacAddress,
        config: Option<Ipv6Config>,
        now: Instant,
    ) -> V6State {
        let mut state = V6State {
            config,
            slaac_until: None,
            known: Vec::new(),
        };
        let Some(config) = config else {
            return state;
        };
        let ll = Ipv6Cidr::new(link_local(mac), 64);
        iface.update_ip_addrs(|addrs| {
            // Cannot fail: the stack has at most one IPv4 address, and room for four.
            let _ = addrs.push(IpCidr::Ipv6(ll));
        });
        match config {
            Ipv6Config::LinkLocal => log::info!("{mac}: ipv6 {ll} (link-local)"),
            Ipv6Config::Slaac => {
                state.slaac_until = Some(now.saturating_add(SLAAC_WINDOW));
                log::info!("{mac}: ipv6 {ll} (link-local), SLAAC: soliciting routers");
            }
            Ipv6Config::Static {
                address,
                prefix_len,
                gateway,
            } => {
                let cidr = Ipv6Cidr::new(groups(address), prefix_len);
                iface.update_ip_addrs(|addrs| {
                    let _ = addrs.push(IpCidr::Ipv6(cidr));
                });
                match gateway.map(groups) {
                    Some(g) => {
                        // Cannot fail: the default route replaces any previous one.
                        let _ = iface.routes_mut().add_default_ipv6_route(g);
                        log::info!("{mac}: ipv6 {cidr} (static), {ll} (link-local), gateway {g}");
                    }
                    None => {
                        log::info!("{mac}: ipv6 {cidr} (static), {ll} (link-local), no gateway")
                    }
                }
            }
        }
        state.known = v6_addresses(iface);
        state
    }

    /// Whether the stack speaks IPv6 at all.
    pub(crate) fn enabled(&self) -> bool {
        self.config.is_some()
    }

    /// After a pump: notices (and logs) addresses SLAAC added or removed.
    pub(crate) fn after_pump(&mut self, iface: &mut Interface, mac: MacAddress) {
        if self.config != Some(Ipv6Config::Slaac) {
            return;
        }
        let now = v6_addresses(iface);
        if now == self.known {
            return;
        }
        for c in now.iter().filter(|c| !self.known.contains(c)) {
            match default_v6_gateway(iface) {
                Some(IpAddress::Ipv6(g)) => {
                    log::info!("{mac}: ipv6 {c} from a router advertisement, gateway {g}")
                }
                _ => log::info!("{mac}: ipv6 {c} from a router advertisement"),
            }
            self.slaac_until = None;
        }
        for c in self.known.iter().filter(|c| !now.contains(c)) {
            log::warn!("{mac}: ipv6 {c} withdrawn (its prefix expired)");
        }
        self.known = now;
    }

    /// When the pump must run for IPv6's sake.
    pub(crate) fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let until = self.slaac_until?;
        if now >= until {
            self.slaac_until = None;
            return None;
        }
        Some(now.saturating_add(SLAAC_TICK).min(until))
    }
}

/// The router of the default IPv6 route, if there is one.
pub(crate) fn default_v6_gateway(iface: &mut Interface) -> Option<IpAddress> {
    let mut found = None;
    iface.routes_mut().update(|routes| {
        found = routes
            .iter()
            .find(|r| r.cidr.prefix_len() == 0 && r.is_ipv6_gateway())
            .map(|r| r.via_router);
    });
    found
}

/// The interface's IPv6 addresses, in its order.
pub(crate) fn v6_addresses(iface: &Interface) -> Vec<Ipv6Cidr> {
    iface
        .ip_addrs()
        .iter()
        .filter_map(|c| match c {
            IpCidr::Ipv6(c) => Some(*c),
            #[allow(unreachable_patterns)]
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_and_slaac_addresses_follow_eui64() {
        let mac = MacAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
        assert_eq!(
            link_local(mac),
            "fe80::5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            slaac_address("fd00:1:2:3::".parse().unwrap(), mac),
            "fd00:1:2:3:5054:ff:fe12:3456".parse::<Ipv6Addr>().unwrap()
        );
    }
}
