//! The stack: shared state, the pump that runs smoltcp, and the driver election that
//! decides which pending operation runs the pump.

use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::convert::Infallible;
use core::future::poll_fn;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::pin::pin;
use core::task::{Context, Poll, Waker};
use core::time::Duration;

use morgana_signatures::{Entropy, Instant, MacAddress, NetIf, StartMessage, Timer};
use smoltcp::iface::{
    Config as IfaceConfig, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, IpAddress, IpCidr, IpListenEndpoint, Ipv4Cidr,
};

use crate::config::{Ipv4Config, StackConfig};

mod diagnostics;
mod pause;
mod repeated_syn;
use crate::device::Device;
use crate::{
    CONNECTION_TIMEOUT, Error, HANDSHAKE_TIMEOUT, INGRESS_BUDGET, LISTEN_SPARES, ORPHAN_TIMEOUT,
};

/// How soon the pump runs again when smoltcp asks to be polled "now" right after a
/// poll (a device that had no room to transmit): a retry tick instead of a busy loop.
const RETRY_TICK: Duration = Duration::from_millis(1);

/// How often a DHCP DISCOVER is repeated while no server answers (smoltcp's default is
/// 10 s, too slow for a boot that waits for the lease).
const DHCP_DISCOVER_RETRY: smoltcp::time::Duration = smoltcp::time::Duration::from_secs(2);

/// The first port handed out for `listen` on port 0 (the IANA dynamic range).
const EPHEMERAL_FIRST: u16 = 49152;

pub(crate) fn smol_instant(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros_const((t.as_nanos() / 1000) as i64)
}

fn smol_duration(d: Duration) -> smoltcp::time::Duration {
    smoltcp::time::Duration::from_micros(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn from_smol_instant(t: smoltcp::time::Instant) -> Instant {
    Instant::from_nanos((t.total_micros().max(0) as u64).saturating_mul(1000))
}

/// The direct TCP/IP stack: smoltcp over the network interface `N`, with timers from
/// `C`. Implements [`Tcp`](morgana_signatures::Tcp).
///
/// A `Stack` is a cheap handle (an `Rc`): clones, listeners and streams share one
/// interface. It is neither `Send` nor `Sync`, like everything in a Morgana appliance.
/// See the [crate documentation](crate) for how it is driven.
pub struct Stack<N: NetIf, C: Timer> {
    pub(crate) shared: Rc<Shared<N, C>>,
}

impl<N: NetIf, C: Timer> Clone for Stack<N, C> {
    fn clone(&self) -> Self {
        Stack {
            shared: self.shared.clone(),
        }
    }
}

impl<N: NetIf, C: Timer> core::fmt::Debug for Stack<N, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let inner = self.shared.inner.borrow();
        f.debug_struct("Stack")
            .field("mac", &inner.mac)
            .field("ipv4", &inner.ipv4)
            .field("gateway", &inner.gateway)
            .field("tcp_sockets", &inner.tcp_sockets)
            .finish_non_exhaustive()
    }
}

/// Counters of a [`Stack`], for diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP sockets that exist (listening, connected, or closing).
    pub tcp_sockets: usize,
    /// Of those, sockets the application has dropped that are still closing.
    pub closing: usize,
    /// Listeners.
    pub listeners: usize,
    /// UDP sockets (bound and not dropped).
    pub udp_sockets: usize,
    /// What the loss-recovery agent resent (`crate::recovery`).
    pub recovery: crate::RecoveryStats,
}

impl<N: NetIf, C: Timer> Stack<N, C> {
    /// Brings the stack up on `netif`: seeds it from `entropy` (the initial sequence
    /// numbers and the ephemeral ports come from that seed), sets the address, and with
    /// [`Ipv4Config::Dhcp`] waits for the first lease, failing with
    /// [`Error::NoDhcpAnswer`] ("no DHCP answer after 10 s") after
    /// [`StackConfig::dhcp_timeout`]. The address is logged at `info` level.
    pub async fn connect<E: Entropy>(
        netif: N,
        clock: C,
        entropy: E,
        config: StackConfig,
    ) -> Result<Self, Error> {
        config.check()?;
        let mac = netif.mac_address();
        if !mac.is_unicast() || mac.0 == [0; 6] {
            return Err(Error::InvalidConfig(
                "the network interface's MAC address is not a unicast address",
            ));
        }
        // Seeds smoltcp's generator (initial sequence numbers, IP identification) and the
        // first port handed out for `listen` on port 0.
        let mut seed = [0u8; 8];
        let mut port = [0u8; 2];
        entropy
            .fill(&mut seed)
            .and_then(|()| entropy.fill(&mut port))
            .map_err(|e| Error::Entropy(StartMessage::new(&e)))?;

        let mut dev = Device::new(netif);
        let mut iface_config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac.0)));
        iface_config.random_seed = u64::from_le_bytes(seed);
        #[cfg(feature = "ipv6")]
        {
            iface_config.slaac = config.ipv6 == Some(crate::Ipv6Config::Slaac);
        }
        let mut iface = Interface::new(iface_config, &mut dev, smol_instant(clock.now()));
        let mut sockets = SocketSet::new(Vec::new());
        #[cfg(feature = "ipv6")]
        let v6 = crate::ipv6::V6State::configure(&mut iface, mac, config.ipv6, clock.now());

        let (dhcp, ipv4, gateway) = match config.ipv4 {
            Ipv4Config::Static {
                address,
                prefix_len,
                gateway,
            } => {
                let cidr = Ipv4Cidr::new(Ipv4Addr::from(address), prefix_len);
                let gateway = gateway.map(Ipv4Addr::from);
                set_address(&mut iface, Some(cidr), gateway);
                (None, Some(cidr), gateway)
            }
            Ipv4Config::Dhcp => {
                let mut socket = dhcpv4::Socket::new();
                let mut retry = socket.get_retry_config();
                retry.discover_timeout = DHCP_DISCOVER_RETRY;
                socket.set_retry_config(retry);
                (Some(sockets.add(socket)), None, None)
            }
            // `check` refused it without IPv6, so only an `ipv6` build gets here.
            Ipv4Config::Off => {
                #[cfg(feature = "ipv6")]
                log::info!("{mac}: ipv4 off (IPv6 only)");
                (None, None, None)
            }
        };

        let inner = Inner {
            dev,
            iface,
            sockets,
            mac,
            dhcp,
            ipv4,
            gateway,
            config,
            listeners: Vec::new(),
            orphans: Vec::new(),
            tcp_sockets: 0,
            udp_sockets: 0,
            #[cfg(feature = "ipv6")]
            v6,
            waiters: Vec::new(),
            free_waiters: Vec::new(),
            driver: None,
            dirty: false,
            paused: 0,
            due: None,
            next_port: EPHEMERAL_FIRST
                + u16::from_le_bytes(port) % (u16::MAX - EPHEMERAL_FIRST + 1),
        };
        let stack = Stack {
            shared: Rc::new(Shared {
                clock,
                inner: RefCell::new(inner),
            }),
        };

        if dhcp.is_some() {
            let clock = &stack.shared.clock;
            let deadline = clock.now().saturating_add(config.dhcp_timeout);
            let leased = stack.shared.drive(|inner, cx| {
                if inner.ipv4.is_some() {
                    Poll::Ready(())
                } else {
                    inner.register_dhcp_waker(cx.waker());
                    Poll::Pending
                }
            });
            morgana_rt::timeout(clock, deadline, leased)
                .await
                .map_err(|_| Error::NoDhcpAnswer {
                    after: config.dhcp_timeout,
                })?;
        } else if let Some(cidr) = ipv4 {
            match gateway {
                Some(g) => log::info!("{mac}: ipv4 {cidr} (static), gateway {g}"),
                None => log::info!("{mac}: ipv4 {cidr} (static), no gateway"),
            }
        }
        Ok(stack)
    }

    /// The IPv4 address and prefix length, or `None` while a DHCP stack has no lease.
    pub fn ipv4_address(&self) -> Option<(Ipv4Addr, u8)> {
        let inner = self.shared.inner.borrow();
        inner.ipv4.map(|c| (c.address(), c.prefix_len()))
    }

    /// The default gateway, if there is one.
    pub fn gateway(&self) -> Option<Ipv4Addr> {
        self.shared.inner.borrow().gateway
    }

    /// The IPv6 addresses with their prefix lengths (link-local first), empty without
    /// IPv6.
    pub fn ipv6_addresses(&self) -> Vec<(core::net::Ipv6Addr, u8)> {
        #[cfg(feature = "ipv6")]
        {
            let inner = self.shared.inner.borrow();
            crate::ipv6::v6_addresses(&inner.iface)
                .into_iter()
                .map(|c| (c.address(), c.prefix_len()))
                .collect()
        }
        #[cfg(not(feature = "ipv6"))]
        Vec::new()
    }

    /// The IPv6 default gateway (static, or the router SLAAC learnt), if there is one.
    pub fn ipv6_gateway(&self) -> Option<core::net::Ipv6Addr> {
        #[cfg(feature = "ipv6")]
        {
            let mut inner = self.shared.inner.borrow_mut();
            match crate::ipv6::default_v6_gateway(&mut inner.iface) {
                Some(IpAddress::Ipv6(g)) => Some(g),
                _ => None,
            }
        }
        #[cfg(not(feature = "ipv6"))]
        None
    }

    /// The interface's MAC address.
    pub fn mac_address(&self) -> MacAddress {
        self.shared.inner.borrow().mac
    }

    /// Socket counters.
    pub fn stats(&self) -> Stats {
        let inner = self.shared.inner.borrow();
        Stats {
            tcp_sockets: inner.tcp_sockets,
            closing: inner.orphans.len(),
            listeners: inner.listeners.iter().flatten().count(),
            udp_sockets: inner.udp_sockets,
            recovery: inner.dev.1.borrow().stats,
        }
    }

    /// Drives the interface forever: answers ARP and ping, renews the DHCP lease, and
    /// finishes closing connections even while no stack operation is pending.
    ///
    /// A server does not need this (its pending `accept` drives the stack). Run it with
    /// `morgana_rt::select` next to code that uses the stack only now and then.
    pub async fn run(&self) -> Infallible {
        self.shared.drive(|_, _| Poll::Pending).await
    }
}

/// Sets (or clears) the interface's one IPv4 address and its default route; IPv6
/// addresses are kept.
fn set_address(iface: &mut Interface, cidr: Option<Ipv4Cidr>, gateway: Option<Ipv4Addr>) {
    iface.update_ip_addrs(|addrs| {
        addrs.retain(|a| !matches!(a, IpCidr::Ipv4(_)));
        if let Some(cidr) = cidr {
            // Cannot fail: the list was just emptied and holds at least one address.
            let _ = addrs.push(IpCidr::Ipv4(cidr));
        }
    });
    match gateway {
        Some(g) => {
            // Cannot fail: the default route replaces any previous one.
            let _ = iface.routes_mut().add_default_ipv4_route(g);
        }
        None => {
            iface.routes_mut().remove_default_ipv4_route();
        }
    }
}

/// The stack's state and its clock, shared by every handle.
pub(crate) struct Shared<N: NetIf, C> {
    pub(crate) clock: C,
    pub(crate) inner: RefCell<Inner<N>>,
}

/// What one poll of an operation came to.
enum Step<T> {
    /// The operation finished.
    Done(T),
    /// Pending; another operation drives the interface.
    Waiting,
    /// Pending, and this operation drives the interface: it must wake up again at
    /// this deadline (if any), besides on received frames and its own socket.
    Driving(Option<Instant>),
}

impl<N: NetIf, C: Timer> Shared<N, C> {
    /// Runs `op` until it is ready, driving the interface while it waits.
    ///
    /// Each poll runs the pump if this operation is the driver (see the crate docs) or
    /// if someone queued work (`dirty`), then `op`, then the pump again if `op` queued
    /// work, so that what `op` queued is on the wire before it returns. `op` registers
    /// its waker on the smoltcp sockets it waits for. The driver also parks its waker
    /// on the device and sleeps until smoltcp's next deadline.
    pub(crate) async fn drive<T>(
        &self,
        mut op: impl FnMut(&mut Inner<N>, &mut Context<'_>) -> Poll<T>,
    ) -> T {
        let waiter = Waiter {
            shared: self,
            slot: Cell::new(None),
        };
        // One timer future, re-armed in place (`Pin::set`) when the deadline moves.
        let mut sleep = pin!(self.clock.sleep_until(Instant::ZERO));
        let mut armed: Option<Instant> = None;
        poll_fn(|cx| {
            loop {
                let next = match self.step(&waiter.slot, &mut op, cx) {
                    Step::Done(v) => return Poll::Ready(v),
                    Step::Waiting => return Poll::Pending,
                    Step::Driving(next) => next,
                };
                if next != armed {
                    // An unpolled sleep arms nothing; replacing the old one disarms it.
                    sleep.set(self.clock.sleep_until(next.unwrap_or(Instant::ZERO)));
                    armed = next;
                }
                if armed.is_none() || sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                // The deadline passed: pump again.
                armed = None;
            }
        })
        .await
    }

    fn step<T>(
        &self,
        slot: &Cell<Option<usize>>,
        op: &mut impl FnMut(&mut Inner<N>, &mut Context<'_>) -> Poll<T>,
        cx: &mut Context<'_>,
    ) -> Step<T> {
        let now = self.clock.now();
        let mut inner = self.inner.borrow_mut();
        let driving = inner.enlist(slot, cx.waker());
        let mut pumped = false;
        if driving || inner.dirty {
            inner.pump(now);
            pumped = true;
        }
        let result = op(&mut inner, cx);
        if inner.dirty {
            inner.pump(now);
            pumped = true;
        }
        match result {
            Poll::Ready(v) => {
                if pumped && !driving {
                    inner.rearm_driver();
                }
                Step::Done(v)
            }
            Poll::Pending if driving => {
                inner.dev.0.register_rx_waker(cx.waker());
                Step::Driving(inner.next_wake(now))
            }
            Poll::Pending => {
                if pumped {
                    inner.rearm_driver();
                }
                Step::Waiting
            }
        }
    }

    /// Runs the pump now if something was queued outside an operation (a shutdown, a
    /// dropped stream), so that it goes out without waiting for the driver.
    pub(crate) fn flush(&self) {
        let now = self.clock.now();
        let mut inner = self.inner.borrow_mut();
        if inner.dirty {
            inner.pump(now);
            inner.rearm_driver();
        }
    }
}

/// A pending operation's entry in the waiter table. Dropping it (the operation finished
/// or was cancelled) hands the driver role on.
struct Waiter<'a, N: NetIf, C> {
    shared: &'a Shared<N, C>,
    slot: Cell<Option<usize>>,
}

impl<N: NetIf, C> Drop for Waiter<'_, N, C> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.get() {
            // Busy only while a panic unwinds out of a pump: nothing to hand over then.
            let Ok(mut inner) = self.shared.inner.try_borrow_mut() else {
                return;
            };
            let successor = inner.delist(slot);
            drop(inner);
            // Woken outside the borrow: the successor polls, pumps, and takes over.
            if let Some(w) = successor {
                w.wake();
            }
        }
    }
}

/// A listener's sockets: spare listening ones and connections not accepted yet.
pub(crate) struct ListenState {
    endpoint: IpListenEndpoint,
    local: SocketAddr,
    /// Listening on `0.0.0.0` on a dual-stack: IPv6 handshakes are reset (as on Linux,
    /// only `[::]` means both families).
    v4_only: bool,
    /// In arrival order of the sockets (not of the connections).
    sockets: Vec<SocketHandle>,
    /// Whether the last attempt to add a spare failed for want of sockets (logged once).
    starved: bool,
    /// The waker of the pending `accept`, registered on sockets added while it waits.
    acceptor: Option<Waker>,
    /// The sockets that were listening at the last top-up (see `repeated_syn`).
    listening: Vec<SocketHandle>,
}

/// A socket the application dropped, left to finish closing.
#[derive(Clone, Copy)]
struct Orphan {
    handle: SocketHandle,
    /// When it is aborted if it has not closed by then.
    deadline: Instant,
    aborted: bool,
}

/// Everything behind the `RefCell`.
pub(crate) struct Inner<N: NetIf> {
    pub(crate) dev: Device<N>,
    iface: Interface,
    pub(crate) sockets: SocketSet<'static>,
    mac: MacAddress,
    dhcp: Option<SocketHandle>,
    ipv4: Option<Ipv4Cidr>,
    gateway: Option<Ipv4Addr>,
    pub(crate) config: StackConfig,
    listeners: Vec<Option<ListenState>>,
    orphans: Vec<Orphan>,
    tcp_sockets: usize,
    pub(crate) udp_sockets: usize,
    #[cfg(feature = "ipv6")]
    pub(crate) v6: crate::ipv6::V6State,
    /// Wakers of the pending operations (indexed by their `Waiter` slot).
    waiters: Vec<Option<Waker>>,
    free_waiters: Vec<usize>,
    /// The slot of the operation that drives the interface.
    driver: Option<usize>,
    /// Work was queued (data, a FIN, a new socket) that the next pump must send.
    pub(crate) dirty: bool,
    next_port: u16,
    /// Nanoseconds the stack was paused, which its clock skips (`stack/pause.rs`).
    paused: u64,
    /// The deadline the driver last slept for, in real time.
    due: Option<Instant>,
}

impl<N: NetIf> Inner<N> {
    /// Records the waker of the operation in `slot` (allocating the slot on first use)
    /// and makes it the driver if there is none. Returns whether it is the driver.
    fn enlist(&mut self, slot: &Cell<Option<usize>>, waker: &Waker) -> bool {
        let index = match slot.get() {
            Some(i) => {
                match &self.waiters[i] {
                    Some(w) if w.will_wake(waker) => {}
                    _ => self.waiters[i] = Some(waker.clone()),
                }
                i
            }
            None => {
                let w = Some(waker.clone());
                let i = match self.free_waiters.pop() {
                    Some(i) => {
                        self.waiters[i] = w;
                        i
                    }
                    None => {
                        self.waiters.push(w);
                        self.waiters.len() - 1
                    }
                };
                slot.set(Some(i));
                i
            }
        };
        if self.driver.is_none() {
            self.driver = Some(index);
        }
        self.driver == Some(index)
    }

    /// The waker of the operation that drives the interface, if one waits (used by UDP
    /// sends that only queue their datagram).
    pub(crate) fn driver_waker(&self) -> Option<Waker> {
        self.driver.and_then(|d| self.waiters[d].clone())
    }

    /// After a pump run by an operation other than the driver: parks the driver's waker
    /// on the device again. A device may stop interrupting while its frames are taken
    /// (virtio-net does, until the driver's next wait): the frames that arrive after
    /// this pump must still wake the driver, which waits for them.
    fn rearm_driver(&mut self) {
        if let Some(w) = self.driver_waker() {
            self.dev.0.register_rx_waker(&w);
        }
    }

    /// Removes the operation in `slot`; if it was the driver, returns the waker of
    /// another pending operation, which must be woken to take over.
    fn delist(&mut self, slot: usize) -> Option<Waker> {
        self.waiters[slot] = None;
        self.free_waiters.push(slot);
        if self.driver != Some(slot) {
            return None;
        }
        self.driver = None;
        self.waiters.iter().flatten().next().cloned()
    }

    /// Runs smoltcp once: at most [`INGRESS_BUDGET`] received frames (topping up the
    /// listeners' spare sockets after each), then everything there is to send, then the
    /// bookkeeping (closing sockets, DHCP events).
    pub(crate) fn pump(&mut self, now: Instant) {
        let ts = smol_instant(self.stack_time(now));
        self.dirty = false;
        self.iface.poll_maintenance(ts);
        for _ in 0..INGRESS_BUDGET {
            match self
                .iface
                .poll_ingress_single(ts, &mut self.dev, &mut self.sockets)
            {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                // A SYN may have taken a spare listening socket: replace it before the
                // next frame, which may be another SYN.
                PollIngressSingleResult::SocketStateChanged => self.top_up_listeners(),
            }
        }
        // Frames left over (budget spent) are picked up at the driver's next poll: the
        // device wakes it at once because its queue was not drained.
        self.resend_lost(ts);
        if self.dev.0.diagnostics_requested() {
            self.log_diagnostics(now);
        }
        self.expire_orphans(now);
        while self.iface.poll_egress(ts, &mut self.dev, &mut self.sockets)
            == PollResult::SocketStateChanged
        {}
        self.reap_orphans();
        self.take_dhcp_event();
        #[cfg(feature = "ipv6")]
        self.v6.after_pump(&mut self.iface, self.mac);
        self.top_up_listeners();
    }

    /// Runs the loss-recovery agent's timer and puts the copies it wants resent on the
    /// wire, before smoltcp sends anything new (`crate::recovery`).
    fn resend_lost(&mut self, ts: smoltcp::time::Instant) {
        let agent = self.dev.1.get_mut();
        agent.on_timer(ts.total_micros());
        let netif = &mut self.dev.0;
        use morgana_signatures::TxToken as _;
        agent.flush(|frame| match netif.transmit() {
            Some(token) => {
                token.consume(frame.len(), |buf| buf.copy_from_slice(frame));
                true
            }
            None => false,
        });
    }

    /// When the pump must run next, besides when a frame arrives: smoltcp's own deadline
    /// (retransmissions, delayed ACKs, DHCP), the loss-recovery agent's or a closing
    /// socket's.
    fn next_wake(&mut self, now: Instant) -> Option<Instant> {
        let stack_now = Instant::from_nanos(now.as_nanos().saturating_sub(self.paused));
        let mut next = self
            .iface
            .poll_at(smol_instant(stack_now), &self.sockets)
            .map(|t| self.real_time(from_smol_instant(t)));
        for o in self.orphans.iter().filter(|o| !o.aborted) {
            next = Some(next.map_or(o.deadline, |n| n.min(o.deadline)));
        }
        if let Some(t) = self.dev.1.get_mut().poll_at() {
            let t = self.real_time(from_smol_instant(smoltcp::time::Instant::from_micros(
                t.max(0),
            )));
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        #[cfg(feature = "ipv6")]
        if let Some(t) = self.v6.next_wake(now) {
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        let next = next.map(|t| {
            if t <= now {
                now.saturating_add(RETRY_TICK)
            } else {
                t
            }
        });
        self.due = next;
        next
    }

    fn register_dhcp_waker(&mut self, waker: &Waker) {
        if let Some(h) = self.dhcp {
            self.sockets
                .get_mut::<dhcpv4::Socket>(h)
                .register_waker(waker);
        }
    }

    /// Applies what the DHCP client learned.
    fn take_dhcp_event(&mut self) {
        let Some(h) = self.dhcp else { return };
        let lease = match self.sockets.get_mut::<dhcpv4::Socket>(h).poll() {
            None => return,
            Some(dhcpv4::Event::Configured(c)) => Some((c.address, c.router, c.server.address)),
            Some(dhcpv4::Event::Deconfigured) => None,
        };
        let mac = self.mac;
        match lease {
            Some((cidr, router, server)) => {
                let changed = self.ipv4 != Some(cidr) || self.gateway != router;
                set_address(&mut self.iface, Some(cidr), router);
                self.ipv4 = Some(cidr);
                self.gateway = router;
                if changed {
                    match router {
                        Some(g) => log::info!(
                            "{mac}: ipv4 {cidr} leased from DHCP server {server}, gateway {g}"
                        ),
                        None => log::info!(
                            "{mac}: ipv4 {cidr} leased from DHCP server {server}, no gateway"
                        ),
                    }
                } else {
                    log::debug!("{mac}: DHCP lease of {cidr} renewed");
                }
            }
            None => {
                if let Some(old) = self.ipv4.take() {
                    log::warn!(
                        "{mac}: DHCP lease of {old} lost; no IPv4 address until a new lease"
                    );
                }
                set_address(&mut self.iface, None, None);
                self.gateway = None;
            }
        }
    }

    /// A new TCP socket with this stack's buffers, or `Exhausted`. At the limit, the
    /// oldest closing socket is reclaimed first.
    fn new_tcp_socket(&mut self) -> Result<SocketHandle, Error> {
        if self.tcp_sockets >= self.config.max_sockets {
            if self.orphans.is_empty() {
                return Err(Error::Exhausted {
                    max_sockets: self.config.max_sockets,
                });
            }
            let oldest = self.orphans.remove(0);
            self.remove_tcp(oldest.handle);
        }
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; self.config.rx_buffer]),
            tcp::SocketBuffer::new(vec![0; self.config.tx_buffer]),
        );
        // Like TCP_NODELAY on host sockets: a response head must not wait for an ACK.
        // Writers hand over whole responses (gather writes), so segments stay full.
        socket.set_nagle_enabled(false);
        socket.set_timeout(Some(smol_duration(HANDSHAKE_TIMEOUT)));
        self.tcp_sockets += 1;
        Ok(self.sockets.add(socket))
    }

    fn remove_tcp(&mut self, handle: SocketHandle) {
        self.sockets.remove(handle);
        self.tcp_sockets -= 1;
    }

    /// Aborts closing sockets whose time is up (the RST goes out in the same pump).
    fn expire_orphans(&mut self, now: Instant) {
        for o in self.orphans.iter_mut().filter(|o| !o.aborted) {
            if now >= o.deadline {
                self.sockets.get_mut::<tcp::Socket>(o.handle).abort();
                o.aborted = true;
            }
        }
    }

    /// Removes closing sockets that are done: closed (after a RST was sent, if one was
    /// due) or in TIME-WAIT.
    fn reap_orphans(&mut self) {
        let mut i = 0;
        while i < self.orphans.len() {
            let handle = self.orphans[i].handle;
            if is_finished(self.sockets.get::<tcp::Socket>(handle)) {
                self.orphans.swap_remove(i);
                self.remove_tcp(handle);
            } else {
                i += 1;
            }
        }
    }

    /// The application dropped a connection: close it gracefully (FIN after what is
    /// queued) and let the pump finish it, for at most [`ORPHAN_TIMEOUT`].
    pub(crate) fn release_stream(&mut self, handle: SocketHandle, now: Instant) {
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        if is_finished(socket) {
            self.remove_tcp(handle);
            return;
        }
        socket.close();
        self.orphans.push(Orphan {
            handle,
            deadline: now.saturating_add(ORPHAN_TIMEOUT),
            aborted: false,
        });
        self.dirty = true;
    }

    /// The next port for `listen` (or `bind`) on port 0 that `in_use` says is free.
    pub(crate) fn ephemeral_port(&mut self, in_use: impl Fn(&Self, u16) -> bool) -> Option<u16> {
        let span = u16::MAX - EPHEMERAL_FIRST + 1;
        for _ in 0..span {
            let port = self.next_port;
            self.next_port = if port == u16::MAX {
                EPHEMERAL_FIRST
            } else {
                port + 1
            };
            if !in_use(self, port) {
                return Some(port);
            }
        }
        None
    }

    /// Where a socket asked to be bound at `addr` listens: the endpoint for smoltcp
    /// (no address for `0.0.0.0` and `[::]`), and whether it takes IPv4 only (a
    /// dual-stack's `0.0.0.0`). Checks that the stack has the address and speaks its
    /// family.
    pub(crate) fn local_endpoint(
        &self,
        addr: SocketAddr,
    ) -> Result<(Option<IpAddress>, bool), Error> {
        let ip = match addr.ip() {
            #[cfg(feature = "ipv6")]
            IpAddr::V4(_) if self.config.ipv4 == Ipv4Config::Off => {
                return Err(Error::NoIpv4(addr));
            }
            IpAddr::V4(ip) => {
                if !ip.is_unspecified() && self.ipv4.is_none_or(|c| c.address() != ip) {
                    return Err(Error::AddrNotAvailable(addr));
                }
                IpAddress::Ipv4(ip)
            }
            #[cfg(feature = "ipv6")]
            IpAddr::V6(ip) if self.v6.enabled() => {
                if !ip.is_unspecified() && !self.iface.has_ip_addr(IpAddress::Ipv6(ip)) {
                    return Err(Error::AddrNotAvailable(addr));
                }
                IpAddress::Ipv6(ip)
            }
            IpAddr::V6(_) => return Err(Error::Ipv6(addr)),
        };
        let v4_only = cfg!(feature = "ipv6") && addr.is_ipv4();
        Ok(((!addr.ip().is_unspecified()).then_some(ip), v4_only))
    }

    fn port_in_use(&self, port: u16) -> bool {
        self.listeners
            .iter()
            .flatten()
            .any(|l| l.endpoint.port == port)
    }

    /// Starts a listener on `addr` with its spare sockets.
    pub(crate) fn add_listener(&mut self, addr: SocketAddr) -> Result<(usize, SocketAddr), Error> {
        let (endpoint_addr, v4_only) = self.local_endpoint(addr)?;
        let port = match addr.port() {
            0 => self
                .ephemeral_port(Self::port_in_use)
                .ok_or(Error::AddrInUse(addr))?,
            p if self.port_in_use(p) => return Err(Error::AddrInUse(addr)),
            p => p,
        };
        let local = SocketAddr::new(addr.ip(), port);
        let state = ListenState {
            endpoint: IpListenEndpoint {
                addr: endpoint_addr,
                port,
            },
            local,
            v4_only,
            sockets: Vec::new(),
            starved: false,
            acceptor: None,
            listening: Vec::new(),
        };
        let id = match self.listeners.iter().position(Option::is_none) {
            Some(id) => {
                self.listeners[id] = Some(state);
                id
            }
            None => {
                self.listeners.push(Some(state));
                self.listeners.len() - 1
            }
        };
        self.top_up(id);
        if self.listeners[id]
            .as_ref()
            .is_none_or(|l| l.sockets.is_empty())
        {
            self.listeners[id] = None;
            return Err(Error::Exhausted {
                max_sockets: self.config.max_sockets,
            });
        }
        log::debug!("listening on {}", morgana_signatures::ShowAddr(local));
        Ok((id, local))
    }

    /// Closes a listener: spare sockets go at once, connections it had not handed out
    /// are reset.
    pub(crate) fn remove_listener(&mut self, id: usize, now: Instant) {
        let Some(state) = self.listeners.get_mut(id).and_then(Option::take) else {
            return;
        };
        self.dev.2.retain(|&p| p != state.endpoint.port);
        for handle in state.sockets {
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            if socket.state() == tcp::State::Listen || is_finished(socket) {
                self.remove_tcp(handle);
            } else {
                socket.abort();
                self.orphans.push(Orphan {
                    handle,
                    deadline: now,
                    aborted: true,
                });
                self.dirty = true;
            }
        }
    }

    fn top_up_listeners(&mut self) {
        for id in 0..self.listeners.len() {
            self.top_up(id);
        }
    }

    /// Keeps [`LISTEN_SPARES`] sockets of listener `id` listening while fewer than about
    /// `backlog` connections wait for `accept`, and puts sockets whose connection died
    /// before it was accepted back to listening.
    fn top_up(&mut self, id: usize) {
        let Some(mut state) = self.listeners.get_mut(id).and_then(Option::take) else {
            return;
        };
        self.drop_repeated_syns(&mut state);
        let mut listening = 0;
        for &handle in &state.sockets {
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            match socket.state() {
                tcp::State::Listen => listening += 1,
                // An IPv6 handshake on a listener for 0.0.0.0: refused with a reset
                // (which goes out before the socket is put back to listening).
                tcp::State::SynReceived
                    if state.v4_only
                        && socket
                            .local_endpoint()
                            .is_some_and(|e| !matches!(e.addr, IpAddress::Ipv4(_))) =>
                {
                    socket.abort();
                }
                // A reset still to be sent: put back to listening after the next pump.
                tcp::State::Closed if socket.remote_endpoint().is_some() => {}
                // Reset or timed out before it was accepted: reuse it.
                tcp::State::Closed | tcp::State::TimeWait => {
                    socket.set_timeout(Some(smol_duration(HANDSHAKE_TIMEOUT)));
                    if socket.listen(state.endpoint).is_ok() {
                        listening += 1;
                    }
                    if let Some(w) = &state.acceptor {
                        socket.register_recv_waker(w);
                    }
                }
                _ => {}
            }
        }
        let limit = self.config.backlog + LISTEN_SPARES;
        while listening < LISTEN_SPARES && state.sockets.len() < limit {
            match self.new_tcp_socket() {
                Ok(handle) => {
                    let socket = self.sockets.get_mut::<tcp::Socket>(handle);
                    // Cannot fail: a new socket is closed and the port is not zero.
                    let _ = socket.listen(state.endpoint);
                    // A waiting accept must hear of a connection on this socket even if
                    // it is not polled before the connection completes.
                    if let Some(w) = &state.acceptor {
                        socket.register_recv_waker(w);
                    }
                    state.sockets.push(handle);
                    listening += 1;
                    state.starved = false;
                }
                Err(e) => {
                    if !state.starved {
                        log::warn!(
                            "{e}: new connections to {} are refused until some close",
                            morgana_signatures::ShowAddr(state.local)
                        );
                        state.starved = true;
                    }
                    break;
                }
            }
        }
        // No socket left listening: hold this port's SYNs off (`crate::device`) rather
        // than let smoltcp answer them with resets.
        let port = state.endpoint.port;
        let held = &mut self.dev.2;
        match (listening == 0, held.iter().position(|&p| p == port)) {
            (true, None) => held.push(port),
            (false, Some(i)) => {
                held.swap_remove(i);
            }
            _ => {}
        }
        self.note_listening(&mut state);
        self.listeners[id] = Some(state);
    }

    /// Forgets the waker of a cancelled `accept` of listener `id`.
    pub(crate) fn clear_acceptor(&mut self, id: usize) {
        if let Some(Some(state)) = self.listeners.get_mut(id) {
            state.acceptor = None;
        }
    }

    /// Takes the first connection of listener `id` that completed its handshake, or
    /// registers `cx` to hear of the next one.
    pub(crate) fn poll_accept(
        &mut self,
        id: usize,
        cx: &mut Context<'_>,
    ) -> Poll<(SocketHandle, SocketAddr, SocketAddr)> {
        let Some(state) = self.listeners.get_mut(id).and_then(Option::as_mut) else {
            return Poll::Pending;
        };
        let mut ready = None;
        for (i, &handle) in state.sockets.iter().enumerate() {
            let socket = self.sockets.get_mut::<tcp::Socket>(handle);
            match socket.state() {
                tcp::State::Listen
                | tcp::State::SynReceived
                | tcp::State::Closed
                | tcp::State::TimeWait => socket.register_recv_waker(cx.waker()),
                _ => {
                    ready = Some(i);
                    break;
                }
            }
        }
        let Some(i) = ready else {
            match &state.acceptor {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => state.acceptor = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        };
        state.acceptor = None;
        let handle = state.sockets.remove(i);
        let socket = self.sockets.get_mut::<tcp::Socket>(handle);
        socket.set_timeout(Some(smol_duration(CONNECTION_TIMEOUT)));
        let unspecified = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let peer = socket
            .remote_endpoint()
            .map_or(unspecified, SocketAddr::from);
        let local = socket
            .local_endpoint()
            .map_or(unspecified, SocketAddr::from);
        self.top_up(id);
        Poll::Ready((handle, peer, local))
    }
}

/// Whether a socket has nothing left to do: closed with no RST pending, or in
/// TIME-WAIT (whose only job, re-acknowledging a repeated FIN, is not worth holding
/// the buffers for: the peer then sees a RST for a connection it already closed).
fn is_finished(socket: &tcp::Socket<'_>) -> bool {
    match socket.state() {
        tcp::State::TimeWait => true,
        tcp::State::Closed => socket.remote_endpoint().is_none(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_convert_to_smoltcp_and_back() {
        let t = Instant::from_nanos(12_345_678_999);
        let s = smol_instant(t);
        assert_eq!(s.total_micros(), 12_345_678);
        // Rounded down to the microsecond.
        assert_eq!(from_smol_instant(s), Instant::from_nanos(12_345_678_000));
        assert_eq!(
            from_smol_instant(smoltcp::time::Instant::from_micros(-5)),
            Instant::ZERO
        );
        assert_eq!(
            smol_duration(Duration::from_millis(1500)),
            smoltcp::time::Duration::from_millis(1500)
        );
    }
}
