//! Robustness of every parser on the receive path: random and mutated frames, by the
//! million, into a real `Stack` (smoltcp's Ethernet, ARP, IPv4, IPv6 with extension
//! headers, ICMPv4/v6 and neighbour discovery, UDP, TCP with its options, DHCP) over the
//! simulated wire, in virtual time. The stack must neither panic nor grow its memory.
//!
//! A seeded property loop rather than cargo-fuzz (which needs a nightly toolchain and
//! libFuzzer): each protocol starts from valid frames that reach the stack's sockets
//! (a listener, a bound UDP socket, a DHCP lease in progress) and mutates them (bit
//! flips, interesting bytes, 16-bit boundary values, truncation, extension, inserted
//! and deleted bytes); half of the mutants get their checksums fixed, so the parsers
//! behind the checksum checks (TCP options, DHCP options, NDP options) see them too.
//! Fully random frames come on top.
//!
//! The CI run is small (`FRAMES_DEFAULT` per protocol, debug build). The full run:
//!
//! ```text
//! MORGANA_FUZZ_FRAMES=10000000 cargo test --release -p morgana-direct --test fuzz -- --nocapture
//! ```
//!
//! prints, per protocol, the frames fed, the time, and the heap in use at the end
//! (a counting allocator wraps the system one); docs/benchmarks.md records a run.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant as WallInstant};

use common::*;
use morgana_direct::{Ipv4Config, Ipv6Config, Stack, StackConfig};
use morgana_rt::select;
use morgana_signatures::{Tcp, TcpListener, Timer, Udp, UdpSocket};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpProtocol,
    Ipv4Packet, Ipv6Address, Ipv6Packet, Ipv6Repr, NdiscRepr, RawHardwareAddress, TcpControl,
    TcpPacket, TcpRepr, TcpSeqNumber, TcpTimestampRepr, UdpPacket, UdpRepr,
};

/// Heap bytes in use, counted by the allocator below.
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Frames per protocol in the CI run.
const FRAMES_DEFAULT: u64 = 20_000;

fn frames_per_protocol() -> u64 {
    std::env::var("MORGANA_FUZZ_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FRAMES_DEFAULT)
}

/// xorshift64*: a reproducible stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const PEER_IP6: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1);
const STACK_IP6_ADDR: Ipv6Address = Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn caps() -> ChecksumCapabilities {
    ChecksumCapabilities::default()
}

fn eth(ethertype: EthernetProtocol, dst: EthernetAddress, payload: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(PEER_MAC.0),
        dst_addr: dst,
        ethertype,
    };
    let mut f = vec![0u8; repr.buffer_len() + payload.len()];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[repr.buffer_len()..].copy_from_slice(payload);
    f
}

fn to_stack() -> EthernetAddress {
    EthernetAddress(STACK_MAC.0)
}

fn ipv4(proto: IpProtocol, payload: &[u8]) -> Vec<u8> {
    ipv4_frame(PEER_MAC, to_stack(), PEER_IP, STACK_IP, proto, payload)
}

fn ipv6(next: IpProtocol, payload: &[u8], dst: Ipv6Address) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: PEER_IP6,
        dst_addr: dst,
        next_header: next,
        payload_len: payload.len(),
        hop_limit: 255,
    };
    let mut p = vec![0u8; ip.buffer_len() + payload.len()];
    ip.emit(&mut Ipv6Packet::new_unchecked(&mut p[..]));
    p[ip.buffer_len()..].copy_from_slice(payload);
    eth(EthernetProtocol::Ipv6, to_stack(), &p)
}

fn tcp_segment(
    dst_port: u16,
    control: TcpControl,
    ack: Option<u32>,
    src: IpAddress,
    dst: IpAddress,
) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port,
        control,
        seq_number: TcpSeqNumber(1000),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 64000,
        window_scale: Some(7),
        max_seg_size: Some(1460),
        sack_permitted: true,
        sack_ranges: [Some((5, 9)), Some((100, 200)), None],
        timestamp: Some(TcpTimestampRepr::new(12345, 0)),
        payload: b"GET / HTTP/1.1\r\n\r\n",
    };
    let mut b = vec![0u8; repr.buffer_len()];
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut b[..]),
        &src,
        &dst,
        &caps(),
    );
    b
}

fn udp_datagram(dst_port: u16, payload: &[u8], src: IpAddress, dst: IpAddress) -> Vec<u8> {
    let repr = UdpRepr {
        src_port: 5353,
        dst_port,
    };
    let mut b = vec![0u8; repr.header_len() + payload.len()];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut b[..]),
        &src,
        &dst,
        payload.len(),
        |p| p.copy_from_slice(payload),
        &caps(),
    );
    b
}

fn v4(a: [u8; 4]) -> IpAddress {
    IpAddress::Ipv4(Ipv4Addr::from(a))
}

/// Valid frames of one protocol, to mutate.
fn seeds(protocol: &str) -> Vec<Vec<u8>> {
    match protocol {
        "ethernet" => vec![
            eth(EthernetProtocol::Unknown(0x88b5), to_stack(), &[0u8; 46]),
            eth(
                EthernetProtocol::Ipv4,
                EthernetAddress::BROADCAST,
                &[0x45; 40],
            ),
        ],
        "arp" => vec![
            arp_request(PEER_MAC, PEER_IP, STACK_IP),
            arp_reply(PEER_MAC, PEER_IP, STACK_MAC, STACK_IP),
        ],
        "ipv4" => {
            let echo = Icmpv4Repr::EchoRequest {
                ident: 7,
                seq_no: 1,
                data: b"ping",
            };
            let mut icmp = vec![0u8; echo.buffer_len()];
            echo.emit(&mut Icmpv4Packet::new_unchecked(&mut icmp[..]), &caps());
            // With IP options: IHL 6, one NOP-padded option word.
            let mut with_options = ipv4(IpProtocol::Icmp, &icmp);
            with_options[14] = 0x46;
            with_options.splice(34..34, [1u8, 1, 1, 0]);
            let total = (with_options.len() - 14) as u16;
            with_options[16..18].copy_from_slice(&total.to_be_bytes());
            vec![ipv4(IpProtocol::Icmp, &icmp), with_options]
        }
        "ipv6" => {
            let echo = Icmpv6Repr::EchoRequest {
                ident: 7,
                seq_no: 1,
                data: b"ping6",
            };
            let ll = morgana_direct::link_local(STACK_MAC);
            let mut icmp = vec![0u8; echo.buffer_len()];
            echo.emit(
                &PEER_IP6,
                &ll,
                &mut Icmpv6Packet::new_unchecked(&mut icmp[..]),
                &caps(),
            );
            let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                target_addr: STACK_IP6_ADDR,
                lladdr: Some(RawHardwareAddress::from_bytes(&PEER_MAC.0)),
            });
            let mut nsb = vec![0u8; ns.buffer_len()];
            ns.emit(
                &PEER_IP6,
                &STACK_IP6_ADDR,
                &mut Icmpv6Packet::new_unchecked(&mut nsb[..]),
                &caps(),
            );
            // A hop-by-hop options header (PadN) before the ICMPv6 message.
            let mut hbh = vec![58u8, 0, 1, 4, 0, 0, 0, 0];
            hbh.extend_from_slice(&icmp);
            vec![
                ipv6(IpProtocol::Icmpv6, &icmp, ll),
                ipv6(IpProtocol::Icmpv6, &nsb, STACK_IP6_ADDR),
                ipv6(IpProtocol::HopByHop, &hbh, ll),
            ]
        }
        "udp" => vec![
            ipv4(
                IpProtocol::Udp,
                &udp_datagram(53, b"query", v4(PEER_IP), v4(STACK_IP)),
            ),
            ipv4(
                IpProtocol::Udp,
                &udp_datagram(9, b"nobody", v4(PEER_IP), v4(STACK_IP)),
            ),
            ipv6(
                IpProtocol::Udp,
                &udp_datagram(
                    53,
                    b"query6",
                    IpAddress::Ipv6(PEER_IP6),
                    IpAddress::Ipv6(STACK_IP6_ADDR),
                ),
                STACK_IP6_ADDR,
            ),
        ],
        "tcp" => vec![
            ipv4(
                IpProtocol::Tcp,
                &tcp_segment(80, TcpControl::Syn, None, v4(PEER_IP), v4(STACK_IP)),
            ),
            ipv4(
                IpProtocol::Tcp,
                &tcp_segment(80, TcpControl::None, Some(1), v4(PEER_IP), v4(STACK_IP)),
            ),
            ipv6(
                IpProtocol::Tcp,
                &tcp_segment(
                    80,
                    TcpControl::Syn,
                    None,
                    IpAddress::Ipv6(PEER_IP6),
                    IpAddress::Ipv6(STACK_IP6_ADDR),
                ),
                STACK_IP6_ADDR,
            ),
        ],
        "dhcp" => [
            DhcpMessageType::Offer,
            DhcpMessageType::Ack,
            DhcpMessageType::Nak,
        ]
        .into_iter()
        .map(dhcp_frame)
        .collect(),
        other => panic!("no seeds for {other}"),
    }
}

/// A DHCP reply from 10.99.0.1 to the stack (transaction ids of smoltcp's client come
/// from its seeded generator; a wrong one still goes through the parser).
fn dhcp_frame(message_type: DhcpMessageType) -> Vec<u8> {
    let server = Ipv4Addr::from(PEER_IP);
    let reply = DhcpRepr {
        message_type,
        transaction_id: 0x1234_5678,
        secs: 0,
        client_hardware_address: EthernetAddress(STACK_MAC.0),
        client_ip: Ipv4Addr::UNSPECIFIED,
        your_ip: Ipv4Addr::from(STACK_IP),
        server_ip: server,
        router: Some(server),
        subnet_mask: Some(Ipv4Addr::new(255, 255, 255, 0)),
        relay_agent_ip: Ipv4Addr::UNSPECIFIED,
        broadcast: false,
        requested_ip: None,
        client_identifier: None,
        server_identifier: Some(server),
        parameter_request_list: None,
        dns_servers: None,
        max_size: None,
        lease_duration: Some(600),
        renew_duration: None,
        rebind_duration: None,
        additional_options: &[],
    };
    let mut dhcp = vec![0u8; reply.buffer_len()];
    reply
        .emit(&mut DhcpPacket::new_unchecked(&mut dhcp[..]))
        .unwrap();
    let udp = udp_datagram(68, &dhcp, v4(PEER_IP), v4([255, 255, 255, 255]));
    let mut f = ipv4_frame(
        PEER_MAC,
        EthernetAddress::BROADCAST,
        PEER_IP,
        [255, 255, 255, 255],
        IpProtocol::Udp,
        &udp,
    );
    // Source port 67.
    f[34..36].copy_from_slice(&67u16.to_be_bytes());
    fix_checksums(&mut f);
    f
}

/// Recomputes the IPv4 header checksum and the TCP, UDP, ICMPv4 or ICMPv6 checksum, as
/// far as the frame can be parsed.
fn fix_checksums(frame: &mut [u8]) {
    if frame.len() < 14 {
        return;
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let payload = &mut frame[14..];
    match ethertype {
        0x0800 => {
            let Ok(ip) = Ipv4Packet::new_checked(&*payload) else {
                return;
            };
            let (hl, total) = (usize::from(ip.header_len()), usize::from(ip.total_len()));
            let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
            let fragment = ip.more_frags() || ip.frag_offset() != 0;
            Ipv4Packet::new_unchecked(&mut *payload).fill_checksum();
            if fragment || hl > total {
                return;
            }
            let l4 = &mut payload[hl..total];
            let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
            match proto {
                IpProtocol::Tcp => {
                    if let Ok(mut t) = TcpPacket::new_checked(l4) {
                        t.fill_checksum(&s, &d);
                    }
                }
                IpProtocol::Udp => {
                    if let Ok(mut u) = UdpPacket::new_checked(l4) {
                        u.fill_checksum(&s, &d);
                    }
                }
                IpProtocol::Icmp => {
                    if let Ok(mut i) = Icmpv4Packet::new_checked(l4) {
                        i.fill_checksum();
                    }
                }
                _ => {}
            }
        }
        0x86dd => {
            let Ok(ip) = Ipv6Packet::new_checked(&*payload) else {
                return;
            };
            let (src, dst, next) = (ip.src_addr(), ip.dst_addr(), ip.next_header());
            let end = 40 + usize::from(ip.payload_len());
            if end > payload.len() {
                return;
            }
            let l4 = &mut payload[40..end];
            let (s, d) = (IpAddress::Ipv6(src), IpAddress::Ipv6(dst));
            match next {
                IpProtocol::Tcp => {
                    if let Ok(mut t) = TcpPacket::new_checked(l4) {
                        t.fill_checksum(&s, &d);
                    }
                }
                IpProtocol::Udp => {
                    if let Ok(mut u) = UdpPacket::new_checked(l4) {
                        u.fill_checksum(&s, &d);
                    }
                }
                IpProtocol::Icmpv6 => {
                    if let Ok(mut i) = Icmpv6Packet::new_checked(l4) {
                        i.fill_checksum(&src, &dst);
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

/// One mutant of `seed` (or, now and then, random bytes).
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    if rng.chance(5) {
        let len = rng.below(1600);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut f = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if f.is_empty() {
            f.push(rng.next() as u8);
        }
        let at = rng.below(f.len());
        match rng.below(7) {
            0 => f[at] ^= 1 << rng.below(8),
            1 => f[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)],
            2 => f[at] = rng.next() as u8,
            3 => f.truncate(at),
            4 => {
                let n = 1 + rng.below(64);
                f.extend((0..n).map(|_| rng.next() as u8));
            }
            5 => {
                if rng.chance(50) {
                    f.insert(at, rng.next() as u8);
                } else {
                    f.remove(at);
                }
            }
            _ => {
                // A 16-bit field set to a boundary value (lengths, ports, options).
                let v: u16 = [0, 1, 0x7fff, 0x8000, 0xffff, 20, 40, 60][rng.below(8)];
                if at + 1 < f.len() {
                    f[at..at + 2].copy_from_slice(&v.to_be_bytes());
                }
            }
        }
    }
    // Keep the frames addressed to the stack most of the time: mutated MACs are dropped
    // at the first check and test little beyond it.
    if f.len() >= 14 && rng.chance(80) {
        f[..6].copy_from_slice(&seed[..6.min(seed.len())]);
    }
    if rng.chance(50) {
        fix_checksums(&mut f);
    }
    f
}

fn dual_config(ipv4: Ipv4Config) -> StackConfig {
    StackConfig::new(ipv4).with_ipv6(Ipv6Config::Static {
        address: STACK_IP6,
        prefix_len: 64,
        gateway: None,
    })
}

/// What one protocol's run did.
struct Run {
    frames: u64,
    took: Duration,
    /// Heap in use before the stack was made, and after it (and everything it had) was
    /// dropped: a leak shows as a difference.
    before: isize,
    after: isize,
    /// The most heap in use while frames came.
    peak: isize,
}

/// Feeds `n` mutants of `protocol`'s seeds to a stack.
fn feed(protocol: &str, n: u64, seed: u64) -> Run {
    let before = LIVE.load(Ordering::Relaxed);
    let mut peak = before;
    let clock = FakeClock::new();
    let (wire, nic, _) = Wire::new();
    wire.stop_logging();
    let dhcp = protocol == "dhcp";
    let config = if dhcp {
        let mut c = dual_config(Ipv4Config::Dhcp);
        c.dhcp_timeout = Duration::from_secs(3600);
        c
    } else {
        dual_config(static_config().ipv4)
    };
    let seed_frames = seeds(protocol);
    let mut rng = Rng(seed | 1);
    let started = WallInstant::now();
    run(&clock, async {
        // A DHCP stack waits for its lease: serve it one (then mutants hit its renewals).
        let stack = if dhcp {
            let lease = Lease {
                address: STACK_IP,
                server: PEER_IP,
                router: Some(PEER_IP),
                seconds: 60,
            };
            let seen = RefCell::new(Vec::new());
            let connect = Stack::connect(nic, clock.clone(), FixedEntropy(5), config);
            match select(connect, dhcp_server(&wire, &lease, &seen)).await {
                morgana_rt::Either::Left(s) => s.expect("leased"),
                morgana_rt::Either::Right(()) => unreachable!(),
            }
        } else {
            Stack::connect(nic, clock.clone(), FixedEntropy(5), config)
                .await
                .expect("stack up")
        };
        let mut listener = stack.listen(addr6([0; 8], 80)).await.unwrap();
        let mut udp = stack.bind(addr6([0; 8], 53)).await.unwrap();
        let mut buf = [0u8; 2048];
        let mut sent = 0u64;
        while sent < n {
            for _ in 0..64 {
                let s = &seed_frames[rng.below(seed_frames.len())];
                wire.send(1, mutate(&mut rng, s));
            }
            sent += 64;
            // One pump for the batch (the budget is 64 frames), with the sockets' users
            // taking what arrives, then a millisecond of virtual time.
            let accept = async {
                loop {
                    let _ = listener.accept().await;
                }
            };
            let recv = async {
                loop {
                    let _ = udp.recv_from(&mut buf).await;
                }
            };
            let _ = select(
                select(accept, recv),
                select(stack.run(), clock.sleep(Duration::from_millis(1))),
            )
            .await;
            wire.discard(0);
            wire.discard(1);
            peak = peak.max(LIVE.load(Ordering::Relaxed));
        }
        assert!(stack.stats().tcp_sockets <= StackConfig::new(Ipv4Config::Dhcp).max_sockets);
        // Still alive: a clean ping to the link-local address is answered (IPv6: the
        // DHCP run's mutants may well have cost the stack its IPv4 lease). The
        // neighbour solicitation before it tells the stack the peer's MAC address.
        let probes = seeds("ipv6");
        wire.send(1, probes[1].clone());
        wire.send(1, probes[0].clone());
        let _ = select(stack.run(), clock.sleep(Duration::from_millis(1))).await;
        // Side 1 is the peer's: what waits there, the stack sent.
        assert!(
            wire.queued(1) >= 1,
            "the stack stopped answering after {protocol}"
        );
        drop((listener, udp));
        let _ = stack;
    });
    let took = started.elapsed();
    drop((clock, wire, seed_frames));
    Run {
        frames: n,
        took,
        before,
        after: LIVE.load(Ordering::Relaxed),
        peak,
    }
}

#[test]
fn every_parser_survives_random_and_mutated_frames() {
    let n = frames_per_protocol();
    for (i, protocol) in ["ethernet", "arp", "ipv4", "ipv6", "udp", "tcp", "dhcp"]
        .into_iter()
        .enumerate()
    {
        let r = feed(protocol, n, 0x5eed + i as u64);
        eprintln!(
            "fuzz {protocol:8}: {} frames in {:.1} s ({:.0}/s); heap before {} B, peak {} B, after {} B",
            r.frames,
            r.took.as_secs_f64(),
            r.frames as f64 / r.took.as_secs_f64(),
            r.before,
            r.peak,
            r.after
        );
        // No leak: everything the stack had is freed with it.
        assert!(
            r.after - r.before < 4096,
            "{protocol}: {} bytes not freed",
            r.after - r.before
        );
        // Bounded while it runs: at most every socket's buffers (a SYN flood fills the
        // listener's backlog) and a margin for the rest.
        let c = StackConfig::new(Ipv4Config::Dhcp);
        let bound = c.max_sockets * (c.rx_buffer + c.tx_buffer) + 1024 * 1024;
        assert!(
            ((r.peak - r.before) as usize) < bound,
            "{protocol}: {} bytes in use at the peak",
            r.peak - r.before
        );
    }
}
