//! A deterministic simulated network for the direct stack, in smoltcp's spirit:
//!
//! - [`Wire`]: two NICs joined back to back by in-memory frame queues, with a log of
//!   every frame and an optional loss pattern;
//! - [`FakeClock`]: virtual time that the executor's idle hook ([`SimIdle`]) advances to
//!   the next armed timer, and that panics when every task waits and no timer is armed
//!   (a lost wake-up would otherwise hang the test);
//! - [`Peer`]: a plain smoltcp interface on the other end of the wire, acting as the
//!   client (the TCP signature has no `connect`);
//! - frame builders for crafted ARP, ICMP and DHCP traffic.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::{Future, poll_fn};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use morgana_direct::{Ipv4Config, Stack, StackConfig};
use morgana_rt::{Either, Idle, block_on, select};
use morgana_signatures::{Entropy, Instant, MacAddress, MonotonicClock, NetIf, Timer};
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress,
    EthernetFrame, EthernetProtocol, EthernetRepr, HardwareAddress, IpAddress, IpCidr, IpEndpoint,
    IpProtocol, Ipv4Packet, Ipv4Repr, Ipv6Address, UdpPacket, UdpRepr,
};

pub const STACK_MAC: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 0x02]);
pub const PEER_MAC: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 0x01]);
pub const STACK_IP: [u8; 4] = [10, 99, 0, 2];
pub const PEER_IP: [u8; 4] = [10, 99, 0, 1];

/// The stack's and the peer's IPv6 addresses in the simulations with a static IPv6
/// address (`fd00::/64`).
pub const STACK_IP6: [u16; 8] = [0xfd00, 0, 0, 0, 0, 0, 0, 2];
pub const PEER_IP6: [u16; 8] = [0xfd00, 0, 0, 0, 0, 0, 0, 1];

pub fn ip6(g: [u16; 8]) -> Ipv6Address {
    let [a, b, c, d, e, f, h, i] = g;
    Ipv6Address::new(a, b, c, d, e, f, h, i)
}

pub fn addr6(g: [u16; 8], port: u16) -> SocketAddr {
    SocketAddr::from((ip6(g), port))
}

pub fn static_config() -> StackConfig {
    StackConfig::new(Ipv4Config::Static {
        address: STACK_IP,
        prefix_len: 24,
        gateway: Some(PEER_IP),
    })
}

// ---------------------------------------------------------------------------------------
// Virtual time

struct Time {
    now: Instant,
    timers: BTreeMap<(Instant, u64), Waker>,
    seq: u64,
}

/// A clock whose time moves only when the simulation idles.
#[derive(Clone)]
pub struct FakeClock(Rc<RefCell<Time>>);

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock(Rc::new(RefCell::new(Time {
            // Not zero: catches code that treats zero specially.
            now: Instant::from_nanos(1_000_000_000),
            timers: BTreeMap::new(),
            seq: 0,
        })))
    }

    pub fn idle(&self) -> SimIdle {
        SimIdle {
            clock: self.clone(),
        }
    }

    /// Virtual time since the clock was made.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.0.borrow().now.as_nanos() - 1_000_000_000)
    }

    pub fn armed_timers(&self) -> usize {
        self.0.borrow().timers.len()
    }
}

impl MonotonicClock for FakeClock {
    fn now(&self) -> Instant {
        self.0.borrow().now
    }
}

struct Sleep {
    clock: FakeClock,
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut t = this.clock.0.borrow_mut();
        if t.now >= this.deadline {
            if let Some(k) = this.key.take() {
                t.timers.remove(&k);
            }
            return Poll::Ready(());
        }
        let key = *this.key.get_or_insert_with(|| {
            t.seq += 1;
            (this.deadline, t.seq)
        });
        t.timers.insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.clock.0.borrow_mut().timers.remove(&k);
        }
    }
}

impl Timer for FakeClock {
    async fn sleep_until(&self, deadline: Instant) {
        Sleep {
            clock: self.clone(),
            deadline,
            key: None,
        }
        .await
    }
}

/// The most virtual time a test may take: beyond it, something waits forever while
/// timers keep firing (a peer retransmitting to a stack nobody drives, say).
pub const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(3600);

/// The executor's idle hook: jumps to the earliest timer and fires everything due.
pub struct SimIdle {
    clock: FakeClock,
}

impl Idle for SimIdle {
    fn wait(&mut self) {
        let due = {
            let mut t = self.clock.0.borrow_mut();
            let Some((&(deadline, _), _)) = t.timers.first_key_value() else {
                panic!(
                    "simulation stalled at {:?}: every task waits and no timer is armed (a lost wake-up?)",
                    t.now
                );
            };
            if deadline > t.now {
                t.now = deadline;
            }
            assert!(
                t.now.as_nanos() < 1_000_000_000 + MAX_VIRTUAL_TIME.as_nanos() as u64,
                "virtual time ran away past {MAX_VIRTUAL_TIME:?}: something never completes"
            );
            let now = t.now;
            let mut due = Vec::new();
            while let Some(e) = t.timers.first_entry() {
                if e.key().0 > now {
                    break;
                }
                due.push(e.remove());
            }
            due
        };
        for w in due {
            w.wake();
        }
    }
}

/// Runs `fut` in virtual time.
pub fn run<F: Future>(clock: &FakeClock, fut: F) -> F::Output {
    block_on(fut, &mut clock.idle())
}

/// A deterministic entropy source.
pub struct FixedEntropy(pub u8);

impl Entropy for FixedEntropy {
    type Error = core::convert::Infallible;
    fn fill(&self, buf: &mut [u8]) -> Result<(), Self::Error> {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = self.0.wrapping_mul(31).wrapping_add(i as u8 * 7);
        }
        Ok(())
    }
}

/// An entropy source that fails.
pub struct BrokenEntropy;

impl Entropy for BrokenEntropy {
    type Error = &'static str;
    fn fill(&self, _: &mut [u8]) -> Result<(), &'static str> {
        Err("no randomness today")
    }
}

// ---------------------------------------------------------------------------------------
// The wire

/// Decides whether the n-th frame (counting from 0) sent from `side` is lost.
pub type LossFn = Box<dyn FnMut(u64, usize, &[u8]) -> bool>;

struct WireState {
    /// Frames waiting to be received by side 0 and side 1.
    queues: [VecDeque<Vec<u8>>; 2],
    wakers: [Option<Waker>; 2],
    /// Every frame sent, with the sending side (lost ones included).
    log: Vec<(usize, Vec<u8>)>,
    /// Whether frames are logged (a fuzz run sends millions).
    logging: bool,
    loss: Option<LossFn>,
    sent: u64,
    lost: u64,
}

/// The in-memory link between two [`SimNic`]s.
#[derive(Clone)]
pub struct Wire(Rc<RefCell<WireState>>);

impl Wire {
    /// A link and its two ends: side 0 (for the stack) and side 1 (for the peer).
    pub fn new() -> (Wire, SimNic, SimNic) {
        let wire = Wire(Rc::new(RefCell::new(WireState {
            queues: [VecDeque::new(), VecDeque::new()],
            wakers: [None, None],
            log: Vec::new(),
            logging: true,
            loss: None,
            sent: 0,
            lost: 0,
        })));
        let a = SimNic::new(wire.clone(), 0, STACK_MAC);
        let b = SimNic::new(wire.clone(), 1, PEER_MAC);
        (wire, a, b)
    }

    /// Stops logging frames (the log of a long run would grow without bound).
    pub fn stop_logging(&self) {
        let mut w = self.0.borrow_mut();
        w.logging = false;
        w.log = Vec::new();
    }

    /// How many frames wait for side `to`.
    pub fn queued(&self, to: usize) -> usize {
        self.0.borrow().queues[to].len()
    }

    /// Drops every frame waiting for side `to`.
    pub fn discard(&self, to: usize) {
        self.0.borrow_mut().queues[to].clear();
    }

    pub fn set_loss(&self, f: LossFn) {
        self.0.borrow_mut().loss = Some(f);
    }

    /// Sends `frame` from `from` to the other side.
    pub fn send(&self, from: usize, frame: Vec<u8>) {
        let waker = {
            let mut w = self.0.borrow_mut();
            let n = w.sent;
            w.sent += 1;
            if w.logging {
                w.log.push((from, frame.clone()));
            }
            let lost = match w.loss.as_mut() {
                Some(f) => f(n, from, &frame),
                None => false,
            };
            if lost {
                w.lost += 1;
                return;
            }
            w.queues[1 - from].push_back(frame);
            w.wakers[1 - from].take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Takes the next frame waiting for side `to`.
    pub fn take(&self, to: usize) -> Option<Vec<u8>> {
        self.0.borrow_mut().queues[to].pop_front()
    }

    /// Waits for the next frame for side `to`.
    pub async fn recv(&self, to: usize) -> Vec<u8> {
        poll_fn(|cx| {
            let mut w = self.0.borrow_mut();
            match w.queues[to].pop_front() {
                Some(f) => Poll::Ready(f),
                None => {
                    w.wakers[to] = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Every frame sent so far, with its sending side.
    pub fn log(&self) -> Vec<(usize, Vec<u8>)> {
        self.0.borrow().log.clone()
    }

    pub fn lost(&self) -> u64 {
        self.0.borrow().lost
    }
}

/// One end of a [`Wire`], implementing [`NetIf`].
pub struct SimNic {
    wire: Wire,
    side: usize,
    mac: MacAddress,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

impl SimNic {
    fn new(wire: Wire, side: usize, mac: MacAddress) -> SimNic {
        SimNic {
            wire,
            side,
            mac,
            rx: Vec::new(),
            tx: Vec::new(),
        }
    }

    pub fn with_mac(mut self, mac: MacAddress) -> SimNic {
        self.mac = mac;
        self
    }

    fn has_frames(&self) -> bool {
        !self.wire.0.borrow().queues[self.side].is_empty()
    }
}

pub struct SimRx<'a>(&'a [u8]);

impl morgana_signatures::RxToken for SimRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.0)
    }
}

pub struct SimTx<'a> {
    wire: &'a Wire,
    side: usize,
    buf: &'a mut Vec<u8>,
}

impl morgana_signatures::TxToken for SimTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.buf.clear();
        self.buf.resize(len, 0);
        let r = f(&mut self.buf[..]);
        self.wire.send(self.side, self.buf.clone());
        r
    }
}

impl NetIf for SimNic {
    type RxToken<'a> = SimRx<'a>;
    type TxToken<'a> = SimTx<'a>;

    fn receive(&mut self) -> Option<(SimRx<'_>, SimTx<'_>)> {
        let frame = self.wire.take(self.side)?;
        self.rx = frame;
        Some((
            SimRx(&self.rx),
            SimTx {
                wire: &self.wire,
                side: self.side,
                buf: &mut self.tx,
            },
        ))
    }

    fn transmit(&mut self) -> Option<SimTx<'_>> {
        Some(SimTx {
            wire: &self.wire,
            side: self.side,
            buf: &mut self.tx,
        })
    }

    fn mac_address(&self) -> MacAddress {
        self.mac
    }

    fn mtu(&self) -> usize {
        1500
    }

    fn register_rx_waker(&self, waker: &Waker) {
        let mut w = self.wire.0.borrow_mut();
        if w.queues[self.side].is_empty() {
            w.wakers[self.side] = Some(waker.clone());
        } else {
            drop(w);
            waker.wake_by_ref();
        }
    }
}

// ---------------------------------------------------------------------------------------
// The peer: smoltcp as a client

struct PeerDev(SimNic);

impl phy::Device for PeerDev {
    type RxToken<'a> = PeerRx<'a>;
    type TxToken<'a> = PeerTx<'a>;

    fn receive(
        &mut self,
        _: smoltcp::time::Instant,
    ) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        let (rx, tx) = self.0.receive()?;
        Some((PeerRx(rx), PeerTx(tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Self::TxToken<'_>> {
        self.0.transmit().map(PeerTx)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

struct PeerRx<'a>(SimRx<'a>);
struct PeerTx<'a>(SimTx<'a>);

impl phy::RxToken for PeerRx<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        morgana_signatures::RxToken::consume(self.0, f)
    }
}

impl phy::TxToken for PeerTx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        morgana_signatures::TxToken::consume(self.0, len, f)
    }
}

fn smol(t: Instant) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros((t.as_nanos() / 1000) as i64)
}

struct PeerState {
    dev: PeerDev,
    iface: Interface,
    sockets: SocketSet<'static>,
    next_port: u16,
}

/// The client end: a smoltcp interface at 10.99.0.1/24 on side 1 of the wire.
#[derive(Clone)]
pub struct Peer {
    state: Rc<RefCell<PeerState>>,
    clock: FakeClock,
}

impl Peer {
    pub fn new(nic: SimNic, clock: &FakeClock) -> Peer {
        let mut dev = PeerDev(nic);
        let mut config = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(PEER_MAC.0)));
        config.random_seed = 0x5eed;
        let mut iface = Interface::new(config, &mut dev, smol(clock.now()));
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::from(Ipv4Addr::from(PEER_IP)), 24))
                .unwrap()
        });
        Peer {
            state: Rc::new(RefCell::new(PeerState {
                dev,
                iface,
                sockets: SocketSet::new(Vec::new()),
                next_port: 40000,
            })),
            clock: clock.clone(),
        }
    }

    fn pump(&self) {
        let now = smol(self.clock.now());
        let mut s = self.state.borrow_mut();
        let PeerState {
            dev,
            iface,
            sockets,
            ..
        } = &mut *s;
        iface.poll(now, dev, sockets);
    }

    /// Drives the peer's interface forever (run it in `select` with the test).
    pub async fn run(&self) -> core::convert::Infallible {
        loop {
            self.pump();
            let next = {
                let mut s = self.state.borrow_mut();
                let PeerState { iface, sockets, .. } = &mut *s;
                iface.poll_at(smol(self.clock.now()), sockets)
            };
            let rx = poll_fn(|cx| {
                let s = self.state.borrow();
                if s.dev.0.has_frames() {
                    Poll::Ready(())
                } else {
                    s.dev.0.register_rx_waker(cx.waker());
                    Poll::Pending
                }
            });
            match next {
                Some(t) => {
                    let deadline = Instant::from_nanos(
                        (t.total_micros().max(0) as u64 * 1000).max(self.clock.now().as_nanos()),
                    );
                    let _ = select(rx, self.clock.sleep_until(deadline)).await;
                }
                None => rx.await,
            }
        }
    }

    /// Polls `f` with the peer's state, pumping before and after.
    async fn wait<T>(
        &self,
        mut f: impl FnMut(&mut tcp::Socket<'static>, &mut Context<'_>) -> Poll<T>,
        handle: SocketHandle,
    ) -> T {
        poll_fn(|cx| {
            self.pump();
            let r = {
                let mut s = self.state.borrow_mut();
                f(s.sockets.get_mut::<tcp::Socket>(handle), cx)
            };
            self.pump();
            r
        })
        .await
    }

    /// Adds an address to the peer's interface (an IPv6 one, say).
    pub fn add_address(&self, cidr: IpCidr) {
        self.state
            .borrow_mut()
            .iface
            .update_ip_addrs(|a| a.push(cidr).unwrap());
    }

    /// Binds a UDP socket on `port` (every address).
    pub fn udp_bind(&self, port: u16) -> SocketHandle {
        let mut s = self.state.borrow_mut();
        let buffer =
            || udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; 64 * 1024]);
        let mut socket = udp::Socket::new(buffer(), buffer());
        socket.bind(port).unwrap();
        s.sockets.add(socket)
    }

    /// Sends one datagram from the UDP socket `h` to `to`.
    pub fn udp_send(&self, h: SocketHandle, data: &[u8], to: SocketAddr) {
        self.state
            .borrow_mut()
            .sockets
            .get_mut::<udp::Socket>(h)
            .send_slice(data, IpEndpoint::from(to))
            .expect("peer udp send");
        self.pump();
    }

    /// Waits for the next datagram on `h`.
    pub async fn udp_recv(&self, h: SocketHandle) -> (Vec<u8>, SocketAddr) {
        poll_fn(|cx| {
            self.pump();
            let mut s = self.state.borrow_mut();
            let socket = s.sockets.get_mut::<udp::Socket>(h);
            match socket.recv() {
                Ok((data, meta)) => Poll::Ready((data.to_vec(), SocketAddr::from(meta.endpoint))),
                Err(_) => {
                    socket.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Opens a connection to `remote`; `Err` with the socket state if it failed.
    pub async fn connect(&self, remote: SocketAddr) -> Result<SocketHandle, tcp::State> {
        let handle = {
            let mut s = self.state.borrow_mut();
            let socket = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
                tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            );
            let port = s.next_port;
            s.next_port += 1;
            let handle = s.sockets.add(socket);
            let PeerState { iface, sockets, .. } = &mut *s;
            sockets
                .get_mut::<tcp::Socket>(handle)
                .connect(iface.context(), IpEndpoint::from(remote), port)
                .unwrap();
            handle
        };
        self.wait(
            |s, cx| match s.state() {
                tcp::State::Established => Poll::Ready(Ok(handle)),
                tcp::State::SynSent => {
                    s.register_send_waker(cx.waker());
                    s.register_recv_waker(cx.waker());
                    Poll::Pending
                }
                other => Poll::Ready(Err(other)),
            },
            handle,
        )
        .await
    }

    pub fn local_port(&self, handle: SocketHandle) -> u16 {
        self.state
            .borrow()
            .sockets
            .get::<tcp::Socket>(handle)
            .local_endpoint()
            .unwrap()
            .port
    }

    pub async fn send_all(&self, handle: SocketHandle, data: &[u8]) {
        let mut off = 0;
        self.wait(
            |s, cx| {
                while off < data.len() {
                    match s.send_slice(&data[off..]) {
                        Ok(0) => {
                            s.register_send_waker(cx.waker());
                            return Poll::Pending;
                        }
                        Ok(n) => off += n,
                        Err(e) => panic!("peer send: {e:?} in {}", s.state()),
                    }
                }
                Poll::Ready(())
            },
            handle,
        )
        .await
    }

    /// Reads exactly `n` bytes.
    pub async fn recv_exact(&self, handle: SocketHandle, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        self.wait(
            |s, cx| {
                while out.len() < n {
                    let mut buf = vec![0; n - out.len()];
                    match s.recv_slice(&mut buf) {
                        Ok(0) => {
                            s.register_recv_waker(cx.waker());
                            return Poll::Pending;
                        }
                        Ok(k) => out.extend_from_slice(&buf[..k]),
                        Err(e) => panic!("peer recv: {e:?} after {} bytes", out.len()),
                    }
                }
                Poll::Ready(())
            },
            handle,
        )
        .await;
        out
    }

    /// Reads until the server's FIN; `Err` if the connection was reset instead.
    pub async fn recv_to_end(&self, handle: SocketHandle) -> Result<Vec<u8>, Vec<u8>> {
        let mut out = Vec::new();
        let ok = self
            .wait(
                |s, cx| {
                    let mut buf = [0u8; 4096];
                    loop {
                        match s.recv_slice(&mut buf) {
                            Ok(0) => {
                                s.register_recv_waker(cx.waker());
                                return Poll::Pending;
                            }
                            Ok(k) => out.extend_from_slice(&buf[..k]),
                            Err(tcp::RecvError::Finished) => return Poll::Ready(true),
                            Err(tcp::RecvError::InvalidState) => return Poll::Ready(false),
                        }
                    }
                },
                handle,
            )
            .await;
        if ok { Ok(out) } else { Err(out) }
    }

    pub async fn close(&self, handle: SocketHandle) {
        self.state
            .borrow_mut()
            .sockets
            .get_mut::<tcp::Socket>(handle)
            .close();
        self.pump();
    }

    /// Waits until the connection is fully closed on this side.
    pub async fn closed(&self, handle: SocketHandle) {
        self.wait(
            |s, cx| match s.state() {
                tcp::State::Closed | tcp::State::TimeWait => Poll::Ready(()),
                _ => {
                    s.register_recv_waker(cx.waker());
                    s.register_send_waker(cx.waker());
                    Poll::Pending
                }
            },
            handle,
        )
        .await
    }

    pub fn abort(&self, handle: SocketHandle) {
        self.state
            .borrow_mut()
            .sockets
            .get_mut::<tcp::Socket>(handle)
            .abort();
        self.pump();
    }

    pub fn state_of(&self, handle: SocketHandle) -> tcp::State {
        self.state
            .borrow()
            .sockets
            .get::<tcp::Socket>(handle)
            .state()
    }
}

/// Runs `test` with `peer` driven beside it.
pub async fn with_peer<F: Future>(peer: &Peer, test: F) -> F::Output {
    match select(test, peer.run()).await {
        Either::Left(out) => out,
        Either::Right(never) => match never {},
    }
}

/// Runs `test` with both `peer` and `stack` driven beside it (for tests about TCP
/// behaviour rather than about how the stack is driven).
pub async fn with_both<F: Future>(
    stack: &Stack<SimNic, FakeClock>,
    peer: &Peer,
    test: F,
) -> F::Output {
    match select(test, select(peer.run(), stack.run())).await {
        Either::Left(out) => out,
        Either::Right(Either::Left(never) | Either::Right(never)) => match never {},
    }
}

/// Both futures to completion.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut ra = None;
    let mut rb = None;
    poll_fn(|cx| {
        if ra.is_none()
            && let Poll::Ready(x) = a.as_mut().poll(cx)
        {
            ra = Some(x);
        }
        if rb.is_none()
            && let Poll::Ready(y) = b.as_mut().poll(cx)
        {
            rb = Some(y);
        }
        if ra.is_some() && rb.is_some() {
            Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// A stack on side 0 with the static configuration, and a peer on side 1.
pub async fn stack_and_peer(
    clock: &FakeClock,
    config: StackConfig,
) -> (Stack<SimNic, FakeClock>, Peer, Wire) {
    let (wire, a, b) = Wire::new();
    let stack = Stack::connect(a, clock.clone(), FixedEntropy(7), config)
        .await
        .expect("stack up");
    let peer = Peer::new(b, clock);
    (stack, peer, wire)
}

pub fn addr(ip: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((ip, port))
}

// ---------------------------------------------------------------------------------------
// Crafted frames

fn ethernet(
    dst: EthernetAddress,
    src: EthernetAddress,
    ethertype: EthernetProtocol,
    payload_len: usize,
) -> (Vec<u8>, usize) {
    let repr = EthernetRepr {
        src_addr: src,
        dst_addr: dst,
        ethertype,
    };
    let mut frame = vec![0u8; repr.buffer_len() + payload_len];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    (frame, repr.buffer_len())
}

pub fn arp_request(from_mac: MacAddress, from_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    arp(
        ArpOperation::Request,
        from_mac,
        from_ip,
        EthernetAddress([0; 6]),
        target_ip,
        EthernetAddress::BROADCAST,
    )
}

pub fn arp_reply(
    from_mac: MacAddress,
    from_ip: [u8; 4],
    to_mac: MacAddress,
    to_ip: [u8; 4],
) -> Vec<u8> {
    arp(
        ArpOperation::Reply,
        from_mac,
        from_ip,
        EthernetAddress(to_mac.0),
        to_ip,
        EthernetAddress(to_mac.0),
    )
}

fn arp(
    operation: ArpOperation,
    from_mac: MacAddress,
    from_ip: [u8; 4],
    target_mac: EthernetAddress,
    target_ip: [u8; 4],
    dst: EthernetAddress,
) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation,
        source_hardware_addr: EthernetAddress(from_mac.0),
        source_protocol_addr: Ipv4Addr::from(from_ip),
        target_hardware_addr: target_mac,
        target_protocol_addr: Ipv4Addr::from(target_ip),
    };
    let (mut frame, off) = ethernet(
        dst,
        EthernetAddress(from_mac.0),
        EthernetProtocol::Arp,
        repr.buffer_len(),
    );
    repr.emit(&mut ArpPacket::new_unchecked(&mut frame[off..]));
    frame
}

/// Parses an ARP frame.
pub fn parse_arp(frame: &[u8]) -> Option<(EthernetRepr, ArpRepr)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    let eth_repr = EthernetRepr::parse(&eth).ok()?;
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()?;
    Some((eth_repr, arp))
}

/// An IPv4 frame carrying `payload` (already emitted) with protocol `proto`.
pub fn ipv4_frame(
    src_mac: MacAddress,
    dst_mac: EthernetAddress,
    src: [u8; 4],
    dst: [u8; 4],
    proto: IpProtocol,
    payload: &[u8],
) -> Vec<u8> {
    let ip = Ipv4Repr {
        src_addr: Ipv4Addr::from(src),
        dst_addr: Ipv4Addr::from(dst),
        next_header: proto,
        payload_len: payload.len(),
        hop_limit: 64,
    };
    let (mut frame, off) = ethernet(
        dst_mac,
        EthernetAddress(src_mac.0),
        EthernetProtocol::Ipv4,
        ip.buffer_len() + payload.len(),
    );
    let mut packet = Ipv4Packet::new_unchecked(&mut frame[off..]);
    ip.emit(&mut packet, &ChecksumCapabilities::default());
    packet.payload_mut().copy_from_slice(payload);
    frame
}

/// Parses an IPv4 frame: (ethernet, ip source, ip destination, protocol, payload).
pub fn parse_ipv4(frame: &[u8]) -> Option<(EthernetRepr, Ipv4Addr, Ipv4Addr, IpProtocol, Vec<u8>)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let eth_repr = EthernetRepr::parse(&eth).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    assert!(ip.verify_checksum(), "bad IPv4 header checksum");
    Some((
        eth_repr,
        ip.src_addr(),
        ip.dst_addr(),
        ip.next_header(),
        ip.payload().to_vec(),
    ))
}

// ---------------------------------------------------------------------------------------
// A tiny DHCP server

pub struct Lease {
    pub address: [u8; 4],
    pub server: [u8; 4],
    pub router: Option<[u8; 4]>,
    pub seconds: u32,
}

/// Answers DISCOVER with OFFER and REQUEST with ACK for `lease`, forever. Returns the
/// message types it saw through `seen`.
pub async fn dhcp_server(wire: &Wire, lease: &Lease, seen: &RefCell<Vec<DhcpMessageType>>) {
    const SERVER_MAC: MacAddress = PEER_MAC;
    loop {
        let frame = wire.recv(1).await;
        if let Some((
            _,
            ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Request,
                source_hardware_addr,
                source_protocol_addr,
                target_protocol_addr,
                ..
            },
        )) = parse_arp(&frame)
            && target_protocol_addr == Ipv4Addr::from(lease.server)
        {
            // A renewal is unicast: the client first asks for the server's MAC.
            wire.send(
                1,
                arp_reply(
                    SERVER_MAC,
                    lease.server,
                    MacAddress(source_hardware_addr.0),
                    source_protocol_addr.octets(),
                ),
            );
            continue;
        }
        let Some((eth, src, dst, IpProtocol::Udp, payload)) = parse_ipv4(&frame) else {
            continue;
        };
        let udp = UdpPacket::new_checked(&payload[..]).unwrap();
        let udp_repr = UdpRepr::parse(
            &udp,
            &IpAddress::from(src),
            &IpAddress::from(dst),
            &ChecksumCapabilities::default(),
        )
        .expect("valid UDP");
        if udp_repr.dst_port != 67 {
            continue;
        }
        let dhcp = DhcpPacket::new_checked(udp.payload()).unwrap();
        let req = DhcpRepr::parse(&dhcp).expect("valid DHCP");
        seen.borrow_mut().push(req.message_type);
        let reply_type = match req.message_type {
            DhcpMessageType::Discover => DhcpMessageType::Offer,
            DhcpMessageType::Request => {
                // Selecting: the offered address is in `requested_ip`; renewing: the
                // client already has it (`client_ip`).
                let asked = req.requested_ip.unwrap_or(req.client_ip);
                assert_eq!(
                    asked,
                    Ipv4Addr::from(lease.address),
                    "REQUEST for the offered address"
                );
                DhcpMessageType::Ack
            }
            _ => continue,
        };
        let reply = DhcpRepr {
            message_type: reply_type,
            transaction_id: req.transaction_id,
            secs: 0,
            client_hardware_address: req.client_hardware_address,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: Ipv4Addr::from(lease.address),
            server_ip: Ipv4Addr::from(lease.server),
            router: lease.router.map(Ipv4Addr::from),
            subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: false,
            requested_ip: None,
            client_identifier: None,
            server_identifier: Some(Ipv4Addr::from(lease.server)),
            parameter_request_list: None,
            dns_servers: None,
            max_size: None,
            lease_duration: Some(lease.seconds),
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut dhcp_buf = vec![0u8; reply.buffer_len()];
        reply
            .emit(&mut DhcpPacket::new_unchecked(&mut dhcp_buf[..]))
            .unwrap();
        let udp_reply = UdpRepr {
            src_port: 67,
            dst_port: 68,
        };
        let dst_ip = [255, 255, 255, 255];
        let mut udp_buf = vec![0u8; udp_reply.header_len() + dhcp_buf.len()];
        udp_reply.emit(
            &mut UdpPacket::new_unchecked(&mut udp_buf[..]),
            &IpAddress::from(Ipv4Addr::from(lease.server)),
            &IpAddress::from(Ipv4Addr::from(dst_ip)),
            dhcp_buf.len(),
            |p| p.copy_from_slice(&dhcp_buf),
            &ChecksumCapabilities::default(),
        );
        let out = ipv4_frame(
            SERVER_MAC,
            eth.src_addr,
            lease.server,
            dst_ip,
            IpProtocol::Udp,
            &udp_buf,
        );
        wire.send(1, out);
    }
}
