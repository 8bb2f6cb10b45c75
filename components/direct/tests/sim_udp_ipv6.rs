//! UDP and IPv6 on the direct stack over the simulated network, in virtual time: the
//! stack on one end of the wire, a smoltcp peer (or frames crafted by hand: router
//! advertisements, neighbour solicitations, ICMPv6 echo) on the other.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::*;
use morgana_direct::{Error, Ipv4Config, Ipv6Config, Stack, StackConfig};
use morgana_signatures::{
    MacAddress, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer, Udp, UdpSocket,
};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Duration as SmolDuration;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv6Packet, Icmpv6Repr,
    IpCidr, IpProtocol, Ipv6Address, Ipv6Cidr, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags,
    NdiscPrefixInfoFlags, NdiscPrefixInformation, NdiscRepr, NdiscRouterFlags, RawHardwareAddress,
};

fn dual_config() -> StackConfig {
    static_config().with_ipv6(Ipv6Config::Static {
        address: STACK_IP6,
        prefix_len: 64,
        gateway: Some(PEER_IP6),
    })
}

/// A stack with `config` and a peer that also has fd00::1/64.
async fn dual_stack_and_peer(
    clock: &FakeClock,
    config: StackConfig,
) -> (Stack<SimNic, FakeClock>, Peer, Wire) {
    let (stack, peer, wire) = stack_and_peer(clock, config).await;
    peer.add_address(IpCidr::Ipv6(Ipv6Cidr::new(ip6(PEER_IP6), 64)));
    (stack, peer, wire)
}

async fn echo_tcp<S: TcpStream>(mut s: S) {
    let mut buf = [0u8; 2048];
    loop {
        let n = s.read(&mut buf).await.expect("server read");
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await.expect("server write");
    }
    s.shutdown().await.unwrap();
}

#[test]
fn udp_echoes_and_reports_truncation_and_limits() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, wire) = stack_and_peer(&clock, static_config()).await;
        let mut sock = stack.bind(addr([0, 0, 0, 0], 7)).await.unwrap();
        assert_eq!(sock.local_addr().unwrap(), addr([0, 0, 0, 0], 7));
        // 1500-byte MTU less 20 (IPv4) and 8 (UDP).
        assert_eq!(sock.max_payload(), 1472);
        assert_eq!(stack.stats().udp_sockets, 1);

        let p = peer.udp_bind(5000);
        let mtu_sized: Vec<u8> = (0..1472u32).map(|i| (i * 13) as u8).collect();
        peer.udp_send(p, b"hello", addr(STACK_IP, 7));
        peer.udp_send(p, &mtu_sized, addr(STACK_IP, 7));
        peer.udp_send(p, &mtu_sized, addr(STACK_IP, 7));
        peer.udp_send(p, b"", addr(STACK_IP, 7));

        let server = async {
            let mut buf = vec![0u8; 2048];
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!((r.len, r.truncated), (5, false));
            assert_eq!(r.peer, addr(PEER_IP, 5000));
            sock.send_to(&buf[..r.len], r.peer).await.unwrap();
            // A datagram at the MTU, whole, echoed whole.
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!((r.len, r.truncated), (1472, false));
            sock.send_to(&buf[..r.len], r.peer).await.unwrap();
            // The same into a small buffer: cut, and said so.
            let mut small = [0u8; 100];
            let r = sock.recv_from(&mut small).await.unwrap();
            assert_eq!((r.len, r.truncated), (100, true));
            assert_eq!(&small[..], &mtu_sized[..100]);
            let r = sock.recv_from(&mut buf).await.unwrap();
            assert_eq!((r.len, r.truncated), (0, false));

            let e = sock.send_to(&buf[..1473], r.peer).await.unwrap_err();
            assert_eq!(
                morgana_signatures::UdpError::kind(&e),
                TcpErrorKind::Invalid
            );
            assert_eq!(
                format!("{e}"),
                "datagram of 1473 bytes is larger than the 1472 bytes one frame can carry"
            );
            // An IPv6 peer from a socket on 0.0.0.0.
            let e = sock.send_to(b"x", addr6(PEER_IP6, 1)).await.unwrap_err();
            assert!(matches!(e, Error::Ipv6(_) | Error::Unaddressable(_)), "{e}");
            let e = sock.send_to(b"x", addr([0, 0, 0, 0], 9)).await.unwrap_err();
            assert!(matches!(e, Error::Unaddressable(_)), "{e}");
        };
        let client = async {
            let (got, from) = peer.udp_recv(p).await;
            assert_eq!((got.as_slice(), from), (&b"hello"[..], addr(STACK_IP, 7)));
            let (got, _) = peer.udp_recv(p).await;
            assert!(
                got == mtu_sized,
                "the MTU-sized datagram came back different"
            );
        };
        with_peer(&peer, join(server, client)).await;

        // Ports: taken, ephemeral, freed on drop; TCP's ports are another space.
        let e = stack.bind(addr(STACK_IP, 7)).await.unwrap_err();
        assert_eq!(
            morgana_signatures::UdpError::kind(&e),
            TcpErrorKind::AddrInUse
        );
        let e = stack.bind(addr([10, 99, 0, 9], 8)).await.unwrap_err();
        assert!(matches!(e, Error::AddrNotAvailable(_)), "{e}");
        let any = stack.bind(addr(STACK_IP, 0)).await.unwrap();
        assert!(any.local_addr().unwrap().port() >= 49152);
        let tcp = stack.listen(addr([0, 0, 0, 0], 7)).await.unwrap();
        drop((sock, any, tcp));
        assert_eq!(stack.stats().udp_sockets, 0);
        stack.bind(addr([0, 0, 0, 0], 7)).await.unwrap();

        // A datagram to a port nobody binds gets ICMP port unreachable, not silence.
        let before = wire.log().len();
        peer.udp_send(p, b"anyone?", addr(STACK_IP, 9));
        settle(&stack, &peer, &clock).await;
        let unreachable = wire.log()[before..].iter().any(|(side, f)| {
            *side == 0
                && parse_ipv4(f).is_some_and(|(_, _, _, proto, payload)| {
                    proto == IpProtocol::Icmp && payload[0] == 3 && payload[1] == 3
                })
        });
        assert!(unreachable, "no ICMP port unreachable");
    });
}

/// Lets virtual time pass with both ends driven.
async fn settle(stack: &Stack<SimNic, FakeClock>, peer: &Peer, clock: &FakeClock) {
    with_both(stack, peer, clock.sleep(Duration::from_millis(50))).await;
}

#[test]
fn a_full_udp_receive_buffer_drops_and_recovers() {
    let clock = FakeClock::new();
    run(&clock, async {
        let mut config = static_config();
        config.udp_rx_buffer = 4096;
        let (stack, peer, _wire) = stack_and_peer(&clock, config).await;
        let mut sock = stack.bind(addr([0, 0, 0, 0], 7)).await.unwrap();
        assert_eq!(sock.max_payload(), 1472);
        let p = peer.udp_bind(5000);
        // 40 datagrams of 1000 bytes while nobody reads: most are dropped.
        for i in 0..40u8 {
            peer.udp_send(p, &[i; 1000], addr(STACK_IP, 7));
            settle(&stack, &peer, &clock).await;
        }
        let mut got = Vec::new();
        let mut buf = [0u8; 1500];
        while let Ok(r) = morgana_rt::timeout(
            &clock,
            morgana_signatures::MonotonicClock::now(&clock)
                .saturating_add(Duration::from_millis(10)),
            sock.recv_from(&mut buf),
        )
        .await
        {
            let r = r.unwrap();
            got.push(buf[0]);
            assert_eq!(r.len, 1000);
        }
        assert!(!got.is_empty() && got.len() < 40, "kept {}", got.len());
        assert_eq!(got[0], 0, "the oldest datagrams are kept");
        // Room again: the next datagram arrives.
        peer.udp_send(p, b"after", addr(STACK_IP, 7));
        let r = with_peer(&peer, sock.recv_from(&mut buf)).await.unwrap();
        assert_eq!(&buf[..r.len], b"after");
    });
}

#[test]
fn answers_to_a_burst_leave_even_when_the_server_then_waits_elsewhere() {
    // Three queries arrive together; the first two are answered while more wait in the
    // socket (held back, to go out in one pump), then the server sleeps instead of
    // receiving the third: the answers must still leave at once, not when the sleep
    // ends or the next frame arrives.
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut sock = stack.bind(addr([0, 0, 0, 0], 53)).await.unwrap();
        let p = peer.udp_bind(5000);
        for q in [&b"q1"[..], b"q2", b"q3"] {
            peer.udp_send(p, q, addr(STACK_IP, 53));
        }
        settle(&stack, &peer, &clock).await;
        let start = clock.elapsed();
        let server = async {
            // Yield once, so that the stack's own loop (`with_both`) is waiting and
            // drives the interface when the answers are held back.
            let mut yielded = false;
            std::future::poll_fn(|cx| {
                if yielded {
                    return std::task::Poll::Ready(());
                }
                yielded = true;
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            })
            .await;
            let mut buf = [0u8; 64];
            for _ in 0..2 {
                let r = sock.recv_from(&mut buf).await.unwrap();
                let mut answer = buf[..r.len].to_vec();
                answer[0] = b'a';
                sock.send_to(&answer, r.peer).await.unwrap();
            }
            clock.sleep(Duration::from_secs(5)).await;
            sock
        };
        let client = async {
            let (a1, _) = peer.udp_recv(p).await;
            let (a2, _) = peer.udp_recv(p).await;
            (a1, a2, clock.elapsed() - start)
        };
        let (mut sock, (a1, a2, took)) = with_both(&stack, &peer, join(server, client)).await;
        assert_eq!((a1.as_slice(), a2.as_slice()), (&b"a1"[..], &b"a2"[..]));
        assert!(took.is_zero(), "answers held back for {took:?}");
        // The third query is still there, and answered without a driver waiting.
        let mut buf = [0u8; 64];
        let r = sock.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..r.len], b"q3");
        sock.send_to(b"a3", r.peer).await.unwrap();
        let (a3, _) = with_peer(&peer, peer.udp_recv(p)).await;
        assert_eq!(a3, b"a3");
    });
}

#[test]
fn tcp_and_udp_over_a_static_ipv6_address() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, wire) = dual_stack_and_peer(&clock, dual_config()).await;
        let ll = morgana_direct::link_local(STACK_MAC);
        assert_eq!(stack.ipv6_addresses(), vec![(ll, 64), (ip6(STACK_IP6), 64)]);
        assert_eq!(stack.ipv6_gateway(), Some(ip6(PEER_IP6)));

        // `[::]` takes both families.
        let mut both = stack.listen(addr6([0; 8], 80)).await.unwrap();
        let mut v4_only = stack.listen(addr([0, 0, 0, 0], 81)).await.unwrap();
        let mut udp = stack.bind(addr6([0; 8], 53)).await.unwrap();
        // [::] takes IPv4 too: the IPv4 maximum, and the IPv6 one for IPv6 peers.
        assert_eq!(udp.max_payload(), 1472, "1500 less 20 (IPv4) and 8 (UDP)");
        let mut only6 = stack.bind(addr6(STACK_IP6, 54)).await.unwrap();
        assert_eq!(only6.max_payload(), 1452, "1500 less 40 (IPv6) and 8 (UDP)");
        let e = udp
            .send_to(&[0; 1453], addr6(PEER_IP6, 9))
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::DatagramTooLarge {
                    len: 1453,
                    max: 1452
                }
            ),
            "{e}"
        );
        let e = only6.send_to(b"x", addr(PEER_IP, 9)).await.unwrap_err();
        assert!(matches!(e, Error::Unaddressable(_)), "{e}");

        let server = async {
            for _ in 0..2 {
                let (s, peer_addr) = both.accept().await.unwrap();
                assert!(
                    peer_addr == SocketAddr::from((ip6(PEER_IP6), 40000))
                        || peer_addr.ip() == Ipv4Addr::from(PEER_IP),
                    "{peer_addr}"
                );
                echo_tcp(s).await;
            }
            let mut buf = [0u8; 1500];
            for _ in 0..2 {
                let r = udp.recv_from(&mut buf).await.unwrap();
                udp.send_to(&buf[..r.len], r.peer).await.unwrap();
            }
        };
        let client = async {
            let h = peer
                .connect(addr6(STACK_IP6, 80))
                .await
                .expect("v6 connect");
            peer.send_all(h, b"over six").await;
            assert_eq!(peer.recv_exact(h, 8).await, b"over six");
            peer.close(h).await;
            assert!(peer.recv_to_end(h).await.unwrap().is_empty());
            let h = peer.connect(addr(STACK_IP, 80)).await.expect("v4 connect");
            peer.send_all(h, b"four").await;
            assert_eq!(peer.recv_exact(h, 4).await, b"four");
            peer.close(h).await;
            assert!(peer.recv_to_end(h).await.unwrap().is_empty());
            let p = peer.udp_bind(5353);
            let big: Vec<u8> = (0..1452u32).map(|i| i as u8).collect();
            peer.udp_send(p, &big, addr6(STACK_IP6, 53));
            let (got, from) = peer.udp_recv(p).await;
            assert!(got == big);
            assert_eq!(from, addr6(STACK_IP6, 53));
            peer.udp_send(p, b"v4 on [::]", addr(STACK_IP, 53));
            let (got, from) = peer.udp_recv(p).await;
            assert_eq!(
                (got.as_slice(), from),
                (&b"v4 on [::]"[..], addr(STACK_IP, 53))
            );
            let h = peer.connect(addr6(STACK_IP6, 81)).await;

            if let Ok(h) = h {
                assert!(peer.recv_to_end(h).await.is_err(), "not reset");
            }
        };
        with_both(&stack, &peer, join(server, client)).await;
        // Nothing was accepted on the IPv4-only listener.
        let none = morgana_rt::timeout(
            &clock,
            morgana_signatures::MonotonicClock::now(&clock).saturating_add(Duration::from_secs(1)),
            v4_only.accept(),
        )
        .await;
        assert!(none.is_err());

        // Neighbour discovery happened both ways, with the stack answering for its
        // address.
        let log = wire.log();
        assert!(
            log.iter().any(|(side, f)| *side == 0
                && matches!(
                    parse_icmpv6(f),
                    Some((_, _, NdiscOrEcho::Ndisc(NdiscRepr::NeighborAdvert { target_addr, .. })))
                        if target_addr == ip6(STACK_IP6)
                )),
            "no neighbour advertisement from the stack"
        );
    });
}

/// What a crafted ICMPv6 frame holds.
#[derive(Debug)]
enum NdiscOrEcho {
    Ndisc(NdiscRepr<'static>),
    EchoReply {
        ident: u16,
        seq_no: u16,
        data: Vec<u8>,
    },
    Other,
}

/// Parses an ICMPv6 frame: (ethernet, IPv6 header, message).
fn parse_icmpv6(frame: &[u8]) -> Option<(EthernetRepr, Ipv6Repr, NdiscOrEcho)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv6 {
        return None;
    }
    let eth_repr = EthernetRepr::parse(&eth).ok()?;
    let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
    let ip_repr = Ipv6Repr::parse(&ip).ok()?;
    if ip_repr.next_header != IpProtocol::Icmpv6 {
        return None;
    }
    let payload = ip.payload().to_vec().leak();
    let icmp = Icmpv6Packet::new_checked(&payload[..]).ok()?;
    let repr = Icmpv6Repr::parse(
        &ip_repr.src_addr,
        &ip_repr.dst_addr,
        &icmp,
        &ChecksumCapabilities::default(),
    )
    .ok()?;
    let what = match repr {
        Icmpv6Repr::Ndisc(n) => NdiscOrEcho::Ndisc(n),
        Icmpv6Repr::EchoReply {
            ident,
            seq_no,
            data,
        } => NdiscOrEcho::EchoReply {
            ident,
            seq_no,
            data: data.to_vec(),
        },
        _ => NdiscOrEcho::Other,
    };
    Some((eth_repr, ip_repr, what))
}

/// An Ethernet + IPv6 frame carrying `icmp`.
fn icmpv6_frame(
    src_mac: MacAddress,
    dst_mac: EthernetAddress,
    src: Ipv6Address,
    dst: Ipv6Address,
    icmp: &Icmpv6Repr<'_>,
) -> Vec<u8> {
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: 255,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac.0),
        dst_addr: dst_mac,
        ethertype: EthernetProtocol::Ipv6,
    };
    let mut frame = vec![0u8; eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut frame[..]));
    let mut packet = Ipv6Packet::new_unchecked(&mut frame[eth.buffer_len()..]);
    ip.emit(&mut packet);
    icmp.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(packet.payload_mut()),
        &ChecksumCapabilities::default(),
    );
    frame
}

const ROUTER_MAC: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 0x09]);
const ALL_NODES_MAC: EthernetAddress = EthernetAddress([0x33, 0x33, 0, 0, 0, 1]);

fn router_ll() -> Ipv6Address {
    Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1)
}

/// A router advertisement for `prefix`/64 (autonomous, on-link), router lifetime
/// 1800 s.
fn router_advert(prefix: Ipv6Address) -> Vec<u8> {
    let ra = Icmpv6Repr::Ndisc(NdiscRepr::RouterAdvert {
        hop_limit: 64,
        flags: NdiscRouterFlags::empty(),
        router_lifetime: SmolDuration::from_secs(1800),
        reachable_time: SmolDuration::ZERO,
        retrans_time: SmolDuration::ZERO,
        lladdr: Some(RawHardwareAddress::from_bytes(&ROUTER_MAC.0)),
        mtu: Some(1500),
        prefix_info: Some(NdiscPrefixInformation {
            prefix_len: 64,
            flags: NdiscPrefixInfoFlags::ON_LINK | NdiscPrefixInfoFlags::ADDRCONF,
            valid_lifetime: SmolDuration::from_secs(86400),
            preferred_lifetime: SmolDuration::from_secs(14400),
            prefix,
        }),
    });
    icmpv6_frame(
        ROUTER_MAC,
        ALL_NODES_MAC,
        router_ll(),
        Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        &ra,
    )
}

fn is_router_solicit(frame: &[u8]) -> bool {
    matches!(
        parse_icmpv6(frame),
        Some((_, _, NdiscOrEcho::Ndisc(NdiscRepr::RouterSolicit { .. })))
    )
}

#[test]
fn slaac_takes_an_address_from_a_router_advertisement() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (wire, nic, _) = Wire::new();
        let config = StackConfig::new(Ipv4Config::Static {
            address: STACK_IP,
            prefix_len: 24,
            gateway: None,
        })
        .with_ipv6(Ipv6Config::Slaac);
        let stack = Stack::connect(nic, clock.clone(), FixedEntropy(3), config)
            .await
            .unwrap();
        // A server: its pending accept is all that drives the stack.
        let mut listener = stack.listen(addr6([0; 8], 80)).await.unwrap();
        let ll = morgana_direct::link_local(STACK_MAC);
        assert_eq!(stack.ipv6_addresses(), vec![(ll, 64)]);

        // No router yet: the stack solicits, and again (smoltcp: three, 4 s apart),
        // though only listening sockets wait.
        let _ = morgana_rt::timeout(
            &clock,
            morgana_signatures::MonotonicClock::now(&clock).saturating_add(Duration::from_secs(10)),
            listener.accept(),
        )
        .await;
        let solicits = wire
            .log()
            .iter()
            .filter(|(side, f)| *side == 0 && is_router_solicit(f))
            .count();
        assert!(solicits >= 2, "{solicits} router solicitations in 10 s");

        // The router answers: the stack takes prefix + EUI-64, and the router as gateway.
        let prefix = Ipv6Address::new(0xfd00, 0x1, 0x2, 0x3, 0, 0, 0, 0);
        wire.send(1, router_advert(prefix));
        let _ = morgana_rt::timeout(
            &clock,
            morgana_signatures::MonotonicClock::now(&clock)
                .saturating_add(Duration::from_millis(100)),
            listener.accept(),
        )
        .await;
        let global = morgana_direct::slaac_address(prefix, STACK_MAC);
        assert_eq!(
            global,
            "fd00:1:2:3:0:ff:fe00:2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(stack.ipv6_addresses(), vec![(ll, 64), (global, 64)]);
        assert_eq!(stack.ipv6_gateway(), Some(router_ll()));
    });
}

#[test]
fn icmpv6_echo_and_neighbour_solicitations_are_answered() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, _peer, wire) = stack_and_peer(&clock, dual_config()).await;
        let ll = morgana_direct::link_local(STACK_MAC);
        let me = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x77);
        // Who has the stack's link-local address? (to its solicited-node group)
        let t = ll.octets();
        let solicited = Ipv6Address::new(
            0xff02,
            0,
            0,
            0,
            0,
            1,
            0xff00 | u16::from(t[13]),
            u16::from_be_bytes([t[14], t[15]]),
        );
        let ns = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
            target_addr: ll,
            lladdr: Some(RawHardwareAddress::from_bytes(&PEER_MAC.0)),
        });
        let group_mac = EthernetAddress([0x33, 0x33, 0xff, t[13], t[14], t[15]]);
        wire.send(1, icmpv6_frame(PEER_MAC, group_mac, me, solicited, &ns));
        let data = b"ping over six".to_vec();
        let echo = Icmpv6Repr::EchoRequest {
            ident: 0x4242,
            seq_no: 7,
            data: &data,
        };
        wire.send(
            1,
            icmpv6_frame(PEER_MAC, EthernetAddress(STACK_MAC.0), me, ll, &echo),
        );
        let _ = morgana_rt::select(stack.run(), clock.sleep(Duration::from_millis(50))).await;
        let replies: Vec<_> = wire
            .log()
            .into_iter()
            .filter(|(side, _)| *side == 0)
            .filter_map(|(_, f)| parse_icmpv6(&f))
            .collect();
        assert!(
            replies.iter().any(|(eth, ip, m)| eth.dst_addr == EthernetAddress(PEER_MAC.0)
                && ip.dst_addr == me
                && matches!(m, NdiscOrEcho::Ndisc(NdiscRepr::NeighborAdvert { target_addr, flags, lladdr: Some(l) })
                    if *target_addr == ll && flags.contains(NdiscNeighborFlags::SOLICITED)
                        && l.as_bytes() == STACK_MAC.0)),
            "no neighbour advertisement: {replies:?}"
        );
        assert!(
            replies.iter().any(|(_, ip, m)| ip.src_addr == ll
                && matches!(m, NdiscOrEcho::EchoReply { ident: 0x4242, seq_no: 7, data: d } if *d == data)),
            "no echo reply: {replies:?}"
        );
    });
}

#[test]
fn ipv6_needs_configuring() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, _peer, _wire) = stack_and_peer(&clock, static_config()).await;
        assert!(stack.ipv6_addresses().is_empty());
        let e = stack.listen(addr6([0; 8], 80)).await.unwrap_err();
        assert_eq!(e.kind(), TcpErrorKind::Invalid);
        assert_eq!(
            format!("{e}"),
            "cannot use [0:0:0:0:0:0:0:0]:80: IPv6 is not configured on this stack"
        );
        let e = stack.bind(addr6([0; 8], 53)).await.unwrap_err();
        assert!(matches!(e, Error::Ipv6(_)), "{e}");
        // A static IPv6 stack has its own addresses only.
        let (stack6, _p, _w) = stack_and_peer(&clock, dual_config()).await;
        let e = stack6
            .listen(addr6([0xfd00, 0, 0, 0, 0, 0, 0, 3], 80))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AddrNotAvailable(_)), "{e}");
        stack6.listen(addr6(STACK_IP6, 80)).await.unwrap();
    });
}

#[test]
fn an_ipv6_only_stack_has_no_ipv4() {
    let clock = FakeClock::new();
    run(&clock, async {
        // Off needs IPv6: without it the stack would have no address.
        let (wire, a, _b) = Wire::new();
        drop(wire);
        let e = Stack::connect(
            a,
            clock.clone(),
            FixedEntropy(7),
            StackConfig::new(Ipv4Config::Off),
        )
        .await
        .map(|_| ())
        .unwrap_err();
        assert!(matches!(e, Error::InvalidConfig(_)), "{e}");
        assert!(
            format!("{e}").contains("ipv4 is off and there is no IPv6"),
            "{e}"
        );

        let config = StackConfig::new(Ipv4Config::Off).with_ipv6(Ipv6Config::Static {
            address: STACK_IP6,
            prefix_len: 64,
            gateway: Some(PEER_IP6),
        });
        let (stack, peer, wire) = dual_stack_and_peer(&clock, config).await;
        assert_eq!(stack.ipv4_address(), None);
        assert_eq!(stack.gateway(), None);
        // No IPv4 socket, not even on 0.0.0.0.
        let e = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap_err();
        assert!(matches!(e, Error::NoIpv4(_)), "{e}");
        assert_eq!(
            format!("{e}"),
            "cannot use 0.0.0.0:80: IPv4 is off on this stack (IPv6 only): use `::` or one of its IPv6 addresses"
        );
        let e = stack.bind(addr([0, 0, 0, 0], 53)).await.unwrap_err();
        assert!(matches!(e, Error::NoIpv4(_)), "{e}");

        let mut l = stack.listen(addr6([0; 8], 80)).await.unwrap();
        let mut udp = stack.bind(addr6([0; 8], 53)).await.unwrap();
        let server = async {
            let (s, from) = l.accept().await.unwrap();
            assert_eq!(from, SocketAddr::from((ip6(PEER_IP6), 40000)));
            echo_tcp(s).await;
            let mut buf = [0u8; 1500];
            let r = udp.recv_from(&mut buf).await.unwrap();
            udp.send_to(&buf[..r.len], r.peer).await.unwrap();
        };
        let client = async {
            let h = peer
                .connect(addr6(STACK_IP6, 80))
                .await
                .expect("v6 connect");
            peer.send_all(h, b"six only").await;
            assert_eq!(peer.recv_exact(h, 8).await, b"six only");
            peer.close(h).await;
            assert!(peer.recv_to_end(h).await.unwrap().is_empty());
            let p = peer.udp_bind(5353);
            let big: Vec<u8> = (0..1452u32).map(|i| i as u8).collect();
            peer.udp_send(p, &big, addr6(STACK_IP6, 53));
            let (got, from) = peer.udp_recv(p).await;
            assert!(got == big);
            assert_eq!(from, addr6(STACK_IP6, 53));
            // An IPv4 datagram to the address the stack would have had: nobody answers
            // (not even ARP).
            peer.udp_send(p, b"v4?", addr(STACK_IP, 53));
        };
        with_both(&stack, &peer, join(server, client)).await;
        let waited = morgana_rt::timeout(
            &clock,
            morgana_signatures::MonotonicClock::now(&clock).saturating_add(Duration::from_secs(3)),
            with_both(&stack, &peer, core::future::pending::<()>()),
        )
        .await;
        assert!(waited.is_err());
        // The stack sent no IPv4 and no ARP at all: DHCP is off too.
        let sent_v4 = wire.log().iter().any(|(side, f)| {
            *side == 0
                && EthernetFrame::new_checked(&f[..]).is_ok_and(|e| {
                    matches!(
                        e.ethertype(),
                        EthernetProtocol::Ipv4 | EthernetProtocol::Arp
                    )
                })
        });
        assert!(!sent_v4, "an IPv6-only stack sent IPv4 or ARP frames");
    });
}
