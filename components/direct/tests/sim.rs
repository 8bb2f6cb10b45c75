//! The direct stack over a simulated network, in virtual time: a `Stack` on one end of an
//! in-memory wire, and on the other a plain smoltcp client ([`Peer`]) or a test that
//! crafts frames by hand (ARP, ICMP echo, a tiny DHCP server).

mod common;

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use common::*;
use morgana_direct::{
    Error, Ipv4Config, LISTEN_SPARES, RecoveryStats, Stack, StackConfig, Stats, Stream,
};
use morgana_rt::{Either, TaskSet, select};
use morgana_signatures::{
    MacAddress, MonotonicClock, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer,
};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::tcp::State;
use smoltcp::wire::{
    ArpOperation, ArpRepr, DhcpMessageType, EthernetAddress, Icmpv4Packet, Icmpv4Repr, IpProtocol,
};

type SimStream = Stream<SimNic, FakeClock>;

/// Runs `fut` while polling `set`.
async fn drive<F: Future, T: Future<Output = ()>>(set: &mut TaskSet<T>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        set.poll_tasks(cx);
        fut.as_mut().poll(cx)
    })
    .await
}

async fn read_exact(s: &mut SimStream, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = s.read(&mut out[got..]).await.expect("read");
        assert_ne!(k, 0, "EOF after {got} of {n} bytes");
        got += k;
    }
    out
}

/// Lets virtual time pass with the stack driven (closing sockets finish).
async fn settle(stack: &Stack<SimNic, FakeClock>, clock: &FakeClock, d: Duration) {
    let _ = select(stack.run(), clock.sleep(d)).await;
}

fn is_arp(frame: &[u8], op: ArpOperation, sender_ip: [u8; 4], target_ip: [u8; 4]) -> bool {
    match parse_arp(frame) {
        Some((
            _,
            ArpRepr::EthernetIpv4 {
                operation,
                source_protocol_addr,
                target_protocol_addr,
                ..
            },
        )) => {
            operation == op
                && source_protocol_addr == Ipv4Addr::from(sender_ip)
                && target_protocol_addr == Ipv4Addr::from(target_ip)
        }
        _ => false,
    }
}

#[test]
fn static_address_accepts_reads_writes_and_shuts_down() {
    let clock = FakeClock::new();
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let (got, stack, wire) = run(&clock, async {
        let (stack, peer, wire) = stack_and_peer(&clock, static_config()).await;
        assert_eq!(stack.ipv4_address(), Some((Ipv4Addr::from(STACK_IP), 24)));
        assert_eq!(stack.gateway(), Some(Ipv4Addr::from(PEER_IP)));
        assert_eq!(stack.mac_address(), STACK_MAC);
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        assert_eq!(listener.local_addr().unwrap(), addr([0, 0, 0, 0], 80));

        let server = async {
            let (mut s, peer_addr) = listener.accept().await.unwrap();
            assert_eq!(peer_addr.ip(), Ipv4Addr::from(PEER_IP));
            assert_eq!(s.peer_addr(), peer_addr);
            assert_eq!(s.local_addr(), addr(STACK_IP, 80));
            assert_eq!(read_exact(&mut s, 5).await, b"hello");
            // Larger than the transmit buffer: must wait for ACKs and resume.
            let (head, rest) = body.split_at(1000);
            s.write_all_vectored(&[b"", head, b"", rest]).await.unwrap();
            s.shutdown().await.unwrap();
            let e = s.write(b"late").await.unwrap_err();
            assert!(matches!(e, Error::Shutdown), "{e}");
            // The client closes after reading everything: EOF, not an error.
            let mut buf = [0u8; 16];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        };
        let client = async {
            let h = peer.connect(addr(STACK_IP, 80)).await.expect("connected");
            peer.send_all(h, b"hello").await;
            let got = peer.recv_to_end(h).await.expect("FIN, not a reset");
            peer.close(h).await;
            peer.closed(h).await;
            got
        };
        let ((), got) = with_peer(&peer, join(server, client)).await;
        drop(listener);
        (got, stack, wire)
    });
    assert_eq!(got.len(), body.len());
    assert!(got == body, "the response was corrupted");

    // ARP: the peer asked who has 10.99.0.2, and the stack answered with its MAC.
    let log = wire.log();
    assert!(
        log.iter()
            .any(|(side, f)| *side == 1 && is_arp(f, ArpOperation::Request, PEER_IP, STACK_IP)),
        "no ARP request from the peer"
    );
    let reply = log
        .iter()
        .find(|(side, f)| *side == 0 && is_arp(f, ArpOperation::Reply, STACK_IP, PEER_IP))
        .expect("no ARP reply from the stack");
    let (eth, _) = parse_arp(&reply.1).unwrap();
    assert_eq!(eth.src_addr, EthernetAddress(STACK_MAC.0));

    // Every socket is gone: the stream (closed), the listener's spares (dropped).
    assert_eq!(
        stack.stats(),
        Stats {
            tcp_sockets: 0,
            closing: 0,
            listeners: 0,
            udp_sockets: 0,
            // A clean link: the loss-recovery agent resent nothing.
            recovery: RecoveryStats::default(),
        }
    );
    // A LAN exchange in virtual time: no retransmission timeouts were needed.
    assert!(
        clock.elapsed() < Duration::from_millis(500),
        "took {:?} of virtual time",
        clock.elapsed()
    );
}

async fn echo(mut s: SimStream) {
    let mut buf = [0u8; 1500];
    loop {
        let n = s.read(&mut buf).await.expect("server read");
        if n == 0 {
            break;
        }
        s.write_all(&buf[..n]).await.expect("server write");
    }
    s.shutdown().await.unwrap();
}

async fn echo_client(peer: Peer, id: usize, done: Rc<Cell<usize>>) {
    let h = peer.connect(addr(STACK_IP, 7)).await.expect("connect");
    for round in 0..3usize {
        let len = 1 + id * 97 + round * 1400;
        let msg: Vec<u8> = (0..len).map(|i| (i + id * 13 + round) as u8).collect();
        peer.send_all(h, &msg).await;
        assert_eq!(
            peer.recv_exact(h, len).await,
            msg,
            "client {id} round {round}"
        );
    }
    peer.close(h).await;
    let rest = peer.recv_to_end(h).await.expect("FIN");
    assert!(rest.is_empty());
    done.set(done.get() + 1);
}

#[test]
fn serves_many_concurrent_connections() {
    const N: usize = 30;
    let clock = FakeClock::new();
    let done = Rc::new(Cell::new(0));
    let stack = run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr(STACK_IP, 7)).await.unwrap();
        let server = async {
            let mut conns = TaskSet::new(N);
            for _ in 0..N {
                let (s, _) = drive(&mut conns, listener.accept()).await.unwrap();
                assert!(conns.insert(echo(s)).is_ok());
            }
            conns.join_all().await;
        };
        let clients = async {
            let mut set = TaskSet::new(N);
            for id in 0..N {
                assert!(
                    set.insert(echo_client(peer.clone(), id, done.clone()))
                        .is_ok()
                );
            }
            set.join_all().await;
        };
        with_peer(&peer, join(server, clients)).await;
        settle(&stack, &clock, Duration::from_secs(1)).await;
        stack
    });
    assert_eq!(done.get(), N);
    // Only the listener's spares are left; every connection's socket was removed.
    assert_eq!(stack.stats().tcp_sockets, 0, "{:?}", stack.stats());
    assert!(
        clock.elapsed() < Duration::from_secs(2),
        "took {:?} of virtual time",
        clock.elapsed()
    );
}

/// Whether the stack sent a TCP reset (frames from wire end 0).
fn stack_sent_a_reset(wire: &Wire) -> bool {
    wire.log().iter().any(|(from, f)| {
        *from == 0
            && matches!(parse_ipv4(f), Some((_, _, _, IpProtocol::Tcp, p))
                if smoltcp::wire::TcpPacket::new_unchecked(&p[..]).rst())
    })
}

#[test]
fn a_full_backlog_holds_syns_off_and_recovers() {
    let clock = FakeClock::new();
    run(&clock, async {
        let mut config = static_config();
        config.backlog = 2;
        let (stack, peer, wire) = stack_and_peer(&clock, config).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        assert_eq!(stack.stats().tcp_sockets, LISTEN_SPARES);
        with_both(&stack, &peer, async {
            // Eight connection attempts at once, nobody accepting: backlog + spares get
            // through, the others' SYNs are dropped (no reset), as with a full accept
            // queue on Linux, and the clients keep trying.
            let outcomes = RefCell::new(Vec::new());
            let mut set = TaskSet::new(8);
            for _ in 0..8 {
                let outcomes = &outcomes;
                let peer = &peer;
                assert!(
                    set.insert(async move {
                        let r = peer.connect(addr(STACK_IP, 80)).await;
                        outcomes.borrow_mut().push(r);
                    })
                    .is_ok()
                );
            }
            drive(&mut set, clock.sleep(Duration::from_millis(2500))).await;
            let first = outcomes.borrow().clone();
            assert_eq!(first.len(), 2 + LISTEN_SPARES, "{first:?}");
            assert!(first.iter().all(Result::is_ok), "{first:?}");
            assert!(
                !stack_sent_a_reset(&wire),
                "a SYN was answered with a reset"
            );
            // Accepting makes room: the held-off clients' next SYNs get in.
            let mut streams = Vec::new();
            drive(&mut set, async {
                for _ in 0..8 {
                    streams.push(listener.accept().await.unwrap().0);
                }
            })
            .await;
            set.join_all().await;
            let outcomes = outcomes.take();
            assert_eq!(outcomes.len(), 8);
            assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
            let h = outcomes[7].unwrap();
            peer.send_all(h, b"x").await;
            let s = streams
                .iter_mut()
                .find(|s| s.peer_addr().port() == peer.local_port(h));
            assert_eq!(read_exact(s.expect("accepted"), 1).await, b"x");
            assert!(
                !stack_sent_a_reset(&wire),
                "a SYN was answered with a reset"
            );
        })
        .await;
    });
}

#[test]
fn max_sockets_bounds_connections_and_recovers() {
    let clock = FakeClock::new();
    run(&clock, async {
        let mut config = static_config();
        config.max_sockets = 4;
        let (stack, peer, wire) = stack_and_peer(&clock, config).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        with_both(&stack, &peer, async {
            let mut held = Vec::new();
            let mut streams = Vec::new();
            for _ in 0..4 {
                held.push(peer.connect(addr(STACK_IP, 80)).await.expect("room"));
                streams.push(listener.accept().await.unwrap().0);
            }
            assert_eq!(stack.stats().tcp_sockets, 4);
            // All four sockets carry connections: the fifth waits (its SYNs dropped,
            // not reset) ...
            let fifth = RefCell::new(None);
            let mut set = TaskSet::new(1);
            let (peer_ref, fifth_ref) = (&peer, &fifth);
            assert!(
                set.insert(async move {
                    *fifth_ref.borrow_mut() = Some(peer_ref.connect(addr(STACK_IP, 80)).await);
                })
                .is_ok()
            );
            drive(&mut set, clock.sleep(Duration::from_secs(3))).await;
            assert!(fifth.borrow().is_none(), "{:?}", fifth.borrow());
            assert!(
                !stack_sent_a_reset(&wire),
                "a SYN was answered with a reset"
            );
            // ... until one closes (both sides): its socket is freed, and the fifth's
            // next SYN gets in.
            let s = streams.pop().unwrap();
            drop(s);
            let h = held.pop().unwrap();
            assert!(peer.recv_to_end(h).await.is_ok());
            peer.close(h).await;
            peer.closed(h).await;
            let (mut s, _) = drive(&mut set, listener.accept()).await.unwrap();
            set.join_all().await;
            let h = fifth.take().unwrap().expect("the fifth got in");
            peer.send_all(h, b"ok").await;
            assert_eq!(read_exact(&mut s, 2).await, b"ok");
        })
        .await;
    });
}

#[test]
fn reset_connections_report_reset() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        with_both(&stack, &peer, async {
            let h = peer.connect(addr(STACK_IP, 80)).await.unwrap();
            let (mut s, _) = listener.accept().await.unwrap();
            peer.abort(h);
            let mut buf = [0u8; 8];
            let e = s.read(&mut buf).await.unwrap_err();
            assert_eq!(e.kind(), TcpErrorKind::Reset, "{e}");
            let e = s.write(b"anyone?").await.unwrap_err();
            assert_eq!(e.kind(), TcpErrorKind::Reset, "{e}");
            assert_eq!(format!("{e}"), "connection reset by peer or timed out");

            // A connection reset before it is accepted is not handed out; the next
            // one is.
            let early = peer.connect(addr(STACK_IP, 80)).await.unwrap();
            peer.abort(early);
            let late = peer.connect(addr(STACK_IP, 80)).await.unwrap();
            let late_port = peer.local_port(late);
            let (s, from) = listener.accept().await.unwrap();
            assert_eq!(from.port(), late_port);
            drop(s);
        })
        .await;
    });
}

#[test]
fn dropped_streams_finish_closing_in_the_background() {
    let clock = FakeClock::new();
    let body: Vec<u8> = (0..60_000u32).map(|i| (i % 253) as u8).collect();
    run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        let mut other = stack.listen(addr([0, 0, 0, 0], 81)).await.unwrap();
        let test = async {
            let (h, r) = join(peer.connect(addr(STACK_IP, 80)), listener.accept()).await;
            let (h, (mut s, _)) = (h.unwrap(), r.unwrap());
            // Queue more than the transmit buffer holds, then drop without shutdown.
            let (a, b) = body.split_at(30_000);
            s.write_all(a).await.unwrap();
            s.write_all(b).await.unwrap();
            drop(s);
            assert_eq!(stack.stats().closing, 1);
            // Nothing of the stream is pending any more: a server's accept (here on
            // another port) is what drives the rest of the data and the FIN out.
            let client = async {
                let got = peer.recv_to_end(h).await.expect("FIN after the data");
                assert!(got == body, "data lost after the drop");
                peer.close(h).await;
                peer.closed(h).await;
            };
            match select(client, other.accept()).await {
                Either::Left(()) => {}
                Either::Right(_) => panic!("nobody connected to port 81"),
            }
        };
        with_peer(&peer, test).await;
        // With no operation pending at all, `run` finishes the close.
        with_peer(&peer, settle(&stack, &clock, Duration::from_secs(1))).await;
        assert_eq!(stack.stats().closing, 0);
        assert_eq!(stack.stats().tcp_sockets, 2 * LISTEN_SPARES);
    });
}

#[test]
fn abandoned_connections_are_reset_after_the_orphan_timeout() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        with_both(&stack, &peer, async {
            let h = peer.connect(addr(STACK_IP, 80)).await.unwrap();
            let (s, _) = listener.accept().await.unwrap();
            drop(s);
            // The peer never closes its side: the stack gives up after the timeout.
            let got = peer.recv_to_end(h).await;
            assert_eq!(got, Ok(Vec::new()));
            settle(&stack, &clock, morgana_direct::ORPHAN_TIMEOUT).await;
            settle(&stack, &clock, Duration::from_secs(1)).await;
            assert_eq!(stack.stats().closing, 0);
            assert_eq!(peer.state_of(h), State::Closed, "the peer got a reset");
        })
        .await;
    });
}

#[test]
fn lossy_link_still_delivers_everything() {
    let clock = FakeClock::new();
    let up: Vec<u8> = (0..150_000u32).map(|i| (i * 3) as u8).collect();
    let down: Vec<u8> = (0..150_000u32).map(|i| (i * 5 + 1) as u8).collect();
    let (lost, got_up, got_down) = run(&clock, async {
        let (stack, peer, wire) = stack_and_peer(&clock, static_config()).await;
        // Every 7th frame in each direction is lost.
        wire.set_loss(Box::new(|n, _, _| n % 7 == 3));
        let mut listener = stack.listen(addr([0, 0, 0, 0], 9)).await.unwrap();
        let server = async {
            let (mut s, _) = listener.accept().await.unwrap();
            let got = read_exact(&mut s, up.len()).await;
            s.write_all(&down).await.unwrap();
            s.shutdown().await.unwrap();
            let mut buf = [0u8; 1];
            assert_eq!(s.read(&mut buf).await.unwrap(), 0);
            got
        };
        let client = async {
            let h = peer.connect(addr(STACK_IP, 9)).await.unwrap();
            peer.send_all(h, &up).await;
            let got = peer.recv_to_end(h).await.unwrap();
            peer.close(h).await;
            got
        };
        let (got_up, got_down) = with_peer(&peer, join(server, client)).await;
        let recovery = stack.stats().recovery;
        // The download's holes were repaired by the loss-recovery agent, not only by
        // smoltcp's timer.
        assert!(recovery.fast_resends > 0, "{recovery:?}");
        (wire.lost(), got_up, got_down)
    });
    assert!(lost > 10, "only {lost} frames lost");
    assert!(got_up == up, "upload corrupted");
    assert!(got_down == down, "download corrupted");
    assert!(
        clock.elapsed() < Duration::from_secs(120),
        "{:?}",
        clock.elapsed()
    );
}

#[test]
fn arp_requests_for_our_address_are_answered() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (wire, nic, _) = Wire::new();
        let stack = Stack::connect(nic, clock.clone(), FixedEntropy(1), static_config())
            .await
            .unwrap();
        let stranger = MacAddress([0x02, 0xaa, 0, 0, 0, 9]);
        let test = async {
            // Someone else's address: ignored.
            wire.send(1, arp_request(stranger, [10, 99, 0, 9], [10, 99, 0, 77]));
            wire.send(1, arp_request(stranger, [10, 99, 0, 9], STACK_IP));
            let frame = wire.recv(1).await;
            let (eth, arp) = parse_arp(&frame).expect("an ARP frame");
            assert_eq!(eth.dst_addr, EthernetAddress(stranger.0));
            assert_eq!(eth.src_addr, EthernetAddress(STACK_MAC.0));
            assert_eq!(
                arp,
                ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Reply,
                    source_hardware_addr: EthernetAddress(STACK_MAC.0),
                    source_protocol_addr: Ipv4Addr::from(STACK_IP),
                    target_hardware_addr: EthernetAddress(stranger.0),
                    target_protocol_addr: Ipv4Addr::from([10, 99, 0, 9]),
                }
            );
            assert!(wire.take(1).is_none(), "only one answer");
        };
        match select(test, stack.run()).await {
            Either::Left(()) => {}
            Either::Right(never) => match never {},
        }
    });
}

#[test]
fn icmp_echo_requests_are_answered() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (wire, nic, _) = Wire::new();
        let stack = Stack::connect(nic, clock.clone(), FixedEntropy(1), static_config())
            .await
            .unwrap();
        let pinger = MacAddress([0x02, 0xbb, 0, 0, 0, 5]);
        let pinger_ip = [10, 99, 0, 5];
        let payload = b"morgana ping 0123456789";
        let request = Icmpv4Repr::EchoRequest {
            ident: 0x4d47,
            seq_no: 3,
            data: payload,
        };
        let mut icmp = vec![0u8; request.buffer_len()];
        request.emit(
            &mut Icmpv4Packet::new_unchecked(&mut icmp[..]),
            &ChecksumCapabilities::default(),
        );
        let frame = ipv4_frame(
            pinger,
            EthernetAddress(STACK_MAC.0),
            pinger_ip,
            STACK_IP,
            IpProtocol::Icmp,
            &icmp,
        );
        let test = async {
            wire.send(1, frame.clone());
            loop {
                let out = wire.recv(1).await;
                if is_arp(&out, ArpOperation::Request, STACK_IP, pinger_ip) {
                    // The stack resolves the pinger first (the first request is lost,
                    // as with any IP stack): answer, and ping again like ping(8).
                    wire.send(1, arp_reply(pinger, pinger_ip, STACK_MAC, STACK_IP));
                    wire.send(1, frame.clone());
                    continue;
                }
                let (eth, src, dst, proto, payload_out) = parse_ipv4(&out).expect("an IPv4 frame");
                assert_eq!(eth.dst_addr, EthernetAddress(pinger.0));
                assert_eq!(src, Ipv4Addr::from(STACK_IP));
                assert_eq!(dst, Ipv4Addr::from(pinger_ip));
                assert_eq!(proto, IpProtocol::Icmp);
                let packet = Icmpv4Packet::new_checked(&payload_out[..]).unwrap();
                let reply = Icmpv4Repr::parse(&packet, &ChecksumCapabilities::default())
                    .expect("a valid ICMP packet");
                assert_eq!(
                    reply,
                    Icmpv4Repr::EchoReply {
                        ident: 0x4d47,
                        seq_no: 3,
                        data: payload
                    }
                );
                break;
            }
        };
        match select(test, stack.run()).await {
            Either::Left(()) => {}
            Either::Right(never) => match never {},
        }
    });
}

#[test]
fn dhcp_leases_an_address_and_renews_it() {
    let clock = FakeClock::new();
    let seen = RefCell::new(Vec::new());
    run(&clock, async {
        let (wire, nic, _) = Wire::new();
        let lease = Lease {
            address: [10, 99, 0, 50],
            server: PEER_IP,
            router: Some(PEER_IP),
            seconds: 600,
        };
        let config = StackConfig::new(Ipv4Config::Dhcp);
        let connect = Stack::connect(nic, clock.clone(), FixedEntropy(3), config);
        let stack = match select(connect, dhcp_server(&wire, &lease, &seen)).await {
            Either::Left(r) => r.expect("leased"),
            Either::Right(()) => unreachable!(),
        };
        assert_eq!(
            stack.ipv4_address(),
            Some((Ipv4Addr::from(lease.address), 24))
        );
        assert_eq!(stack.gateway(), Some(Ipv4Addr::from(PEER_IP)));
        assert_eq!(
            *seen.borrow(),
            [DhcpMessageType::Discover, DhcpMessageType::Request]
        );
        assert!(
            clock.elapsed() < Duration::from_secs(1),
            "{:?}",
            clock.elapsed()
        );

        // The stack can listen on the leased address.
        let l = stack.listen(addr(lease.address, 80)).await.unwrap();
        assert_eq!(l.local_addr().unwrap(), addr(lease.address, 80));

        // Half-way through the lease the stack renews it (a unicast REQUEST).
        let renewal = async {
            let _ = select(stack.run(), clock.sleep(Duration::from_secs(400))).await;
        };
        let _ = select(renewal, dhcp_server(&wire, &lease, &seen)).await;
        assert!(
            seen.borrow().len() >= 3 && seen.borrow()[2] == DhcpMessageType::Request,
            "{:?}",
            seen.borrow()
        );
        assert_eq!(
            stack.ipv4_address(),
            Some((Ipv4Addr::from(lease.address), 24))
        );
    });
}

#[test]
fn no_dhcp_answer_is_a_clear_error() {
    let clock = FakeClock::new();
    let (wire, nic, _) = Wire::new();
    let err = run(&clock, async {
        let config = StackConfig::new(Ipv4Config::Dhcp);
        Stack::connect(nic, clock.clone(), FixedEntropy(3), config)
            .await
            .unwrap_err()
    });
    assert_eq!(format!("{err}"), "no DHCP answer after 10 s");
    assert_eq!(err.kind(), TcpErrorKind::Other);
    let waited = clock.elapsed();
    assert!(
        waited >= Duration::from_secs(10) && waited < Duration::from_secs(11),
        "{waited:?}"
    );
    // DISCOVER was repeated while waiting.
    let discovers = wire
        .log()
        .iter()
        .filter(|(side, f)| {
            *side == 0
                && parse_ipv4(f).is_some_and(|(_, _, dst, proto, _)| {
                    proto == IpProtocol::Udp && dst == Ipv4Addr::BROADCAST
                })
        })
        .count();
    assert!(discovers >= 4, "{discovers} DISCOVERs");
    // Nothing is left armed.
    assert_eq!(clock.armed_timers(), 0);
}

#[test]
fn listen_checks_addresses_and_ports() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, _peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let l = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();

        let e = stack.listen(addr(STACK_IP, 80)).await.unwrap_err();
        assert_eq!(e.kind(), TcpErrorKind::AddrInUse);
        assert_eq!(format!("{e}"), "address 10.99.0.2:80 already in use");

        let e = stack.listen(addr([10, 99, 0, 3], 81)).await.unwrap_err();
        assert_eq!(e.kind(), TcpErrorKind::Invalid);
        assert_eq!(
            format!("{e}"),
            "address 10.99.0.3:81 is not an address of this stack (it has no loopback \
             interface: listen on 0.0.0.0 or on the stack's own address)"
        );

        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        let e = stack.listen(v6).await.unwrap_err();
        assert_eq!(e.kind(), TcpErrorKind::Invalid);
        // IPv6 addresses are written in full (`ShowAddr`: no IPv6 formatter in kernels).
        assert_eq!(
            format!("{e}"),
            "cannot use [0:0:0:0:0:0:0:1]:80: IPv6 is not configured on this stack"
        );

        let a = stack.listen(addr([0, 0, 0, 0], 0)).await.unwrap();
        let b = stack.listen(addr(STACK_IP, 0)).await.unwrap();
        let (pa, pb) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
        );
        assert!(pa >= 49152 && pb >= 49152 && pa != pb, "{pa} {pb}");
        assert_eq!(b.local_addr().unwrap().ip(), Ipv4Addr::from(STACK_IP));
        assert_eq!(stack.stats().listeners, 3);

        // A closed listener's port can be listened on again.
        drop(l);
        let again = stack.listen(addr(STACK_IP, 80)).await.unwrap();
        assert_eq!(again.local_addr().unwrap(), addr(STACK_IP, 80));
        drop((a, b, again));
        assert_eq!(stack.stats().tcp_sockets, 0);
    });
}

#[test]
fn bad_configurations_are_refused_with_a_reason() {
    let clock = FakeClock::new();
    let try_config = |config: StackConfig| {
        let (_wire, nic, _) = Wire::new();
        run(
            &clock,
            Stack::connect(nic, clock.clone(), FixedEntropy(1), config),
        )
        .map(|_| ())
        .map_err(|e| format!("{e}"))
    };
    let static_ip = |address: [u8; 4], prefix_len: u8, gateway: Option<[u8; 4]>| {
        StackConfig::new(Ipv4Config::Static {
            address,
            prefix_len,
            gateway,
        })
    };
    assert_eq!(try_config(static_config()), Ok(()));
    assert_eq!(
        try_config(static_ip([10, 99, 0, 2], 33, None)),
        Err("invalid configuration: prefix_len must be between 1 and 32".into())
    );
    assert_eq!(
        try_config(static_ip([10, 99, 0, 255], 24, None)),
        Err(
            "invalid configuration: the static address is the network or broadcast address of its subnet"
                .into()
        )
    );
    assert!(
        try_config(static_ip([0, 0, 0, 0], 24, None))
            .unwrap_err()
            .contains("must be a unicast address")
    );
    assert_eq!(
        try_config(static_ip([10, 99, 0, 2], 24, Some([10, 98, 0, 1]))),
        Err("invalid configuration: the gateway must be inside the stack's subnet".into())
    );
    assert_eq!(try_config(static_ip([10, 99, 0, 2], 32, None)), Ok(()));
    let mut small = static_config();
    small.rx_buffer = 100;
    assert!(try_config(small).unwrap_err().contains("rx_buffer"));

    // A NIC with a multicast MAC, and a broken entropy source.
    let (_wire, nic, _) = Wire::new();
    let nic = nic.with_mac(MacAddress([0x01, 0, 0x5e, 0, 0, 1]));
    let e = run(
        &clock,
        Stack::connect(nic, clock.clone(), FixedEntropy(1), static_config()),
    )
    .unwrap_err();
    assert!(format!("{e}").contains("MAC address is not a unicast address"));
    let (_wire, nic, _) = Wire::new();
    let e = run(
        &clock,
        Stack::connect(nic, clock.clone(), BrokenEntropy, static_config()),
    )
    .unwrap_err();
    assert_eq!(
        format!("{e}"),
        "cannot seed the TCP/IP stack: the entropy source failed: no randomness today"
    );
}

#[test]
fn a_write_while_another_operation_drives_is_sent_by_the_driver() {
    // A `write` while an accept drives only queues its data and wakes the driver, whose
    // next pump sends it: nothing leaves before, and the writer needs no further call.
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        with_peer(&peer, async {
            let (h, r) = join(peer.connect(addr(STACK_IP, 80)), listener.accept()).await;
            let (h, (mut s, _)) = (h.unwrap(), r.unwrap());
            let from_stack = || wire.log().iter().filter(|(side, _)| *side == 0).count();
            {
                let mut accept = pin!(listener.accept());
                // The accept is polled first: it drives.
                poll_fn(|cx| {
                    assert!(accept.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                let before = from_stack();
                assert_eq!(s.write(b"queued").await.unwrap(), 6);
                assert_eq!(from_stack(), before, "sent by the write itself");
                poll_fn(|cx| {
                    assert!(accept.as_mut().poll(cx).is_pending());
                    Poll::Ready(())
                })
                .await;
                assert!(from_stack() > before, "the driver's pump sent nothing");
                assert_eq!(peer.recv_exact(h, 6).await, b"queued");
            }
            // Without a driver (the accept dropped), a write is on the wire when it returns
            // (once "queued" is acknowledged: Nagle holds a small segment until then).
            settle(&stack, &clock, Duration::from_millis(500)).await;
            let before = from_stack();
            assert_eq!(s.write(b"at once").await.unwrap(), 7);
            assert!(from_stack() > before, "not sent by the write");
            assert_eq!(peer.recv_exact(h, 7).await, b"at once");
        })
        .await;
    });
}

#[test]
fn a_cancelled_driver_hands_over() {
    // A read that drives the stack is cancelled by a timeout while an accept waits: the
    // accept must take over driving, or the next connection would never be answered.
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        with_peer(&peer, async {
            let (h, r) = join(peer.connect(addr(STACK_IP, 80)), listener.accept()).await;
            let (h, (mut s, _)) = (h.unwrap(), r.unwrap());
            let mut accept = pin!(listener.accept());
            {
                let mut buf = [0u8; 4];
                let deadline = clock.now().saturating_add(Duration::from_millis(50));
                let mut read = pin!(morgana_rt::timeout(&clock, deadline, s.read(&mut buf)));
                // The read is polled first, so it becomes the driver; the accept waits.
                let timed_out = poll_fn(|cx| {
                    if let Poll::Ready(r) = read.as_mut().poll(cx) {
                        return Poll::Ready(r);
                    }
                    assert!(accept.as_mut().poll(cx).is_pending());
                    Poll::Pending
                })
                .await;
                assert!(timed_out.is_err(), "nothing was sent yet");
            }
            // Only the accept is left. A second connection arrives later.
            let client = async {
                clock.sleep(Duration::from_millis(100)).await;
                peer.connect(addr(STACK_IP, 80)).await.unwrap()
            };
            let (r, h2) = join(accept, client).await;
            let (mut s2, from) = r.unwrap();
            assert_eq!(from.port(), peer.local_port(h2));
            peer.send_all(h2, b"two").await;
            assert_eq!(read_exact(&mut s2, 3).await, b"two");
            peer.send_all(h, b"one").await;
            assert_eq!(read_exact(&mut s, 3).await, b"one");
        })
        .await;
    });
}

#[test]
fn a_waiting_accept_hears_of_connections_on_sockets_made_after_it_was_polled() {
    // The stack is driven by `run` (polled first), so the accept is not the driver: it
    // only learns of connections through the wakers on its listener's sockets. With
    // every socket in use the listener has none; when one frees up, the new spare is
    // made by the driver's pump, and a connection on it must still wake the accept.
    let clock = FakeClock::new();
    run(&clock, async {
        let mut config = static_config();
        config.max_sockets = 3;
        let (stack, peer, _wire) = stack_and_peer(&clock, config).await;
        let mut listener = stack.listen(addr([0, 0, 0, 0], 80)).await.unwrap();
        let test = async {
            let mut held = Vec::new();
            let mut streams = Vec::new();
            for _ in 0..3 {
                let (h, r) = join(peer.connect(addr(STACK_IP, 80)), listener.accept()).await;
                held.push(h.expect("room"));
                streams.push(r.unwrap().0);
            }
            assert_eq!(stack.stats().tcp_sockets, 3);
            // The listener has no socket left; an accept waits anyway, in a task of its
            // own (a `TaskSet` member is polled only when its own waker fires).
            let accepted = RefCell::new(None);
            let mut task = TaskSet::new(1);
            let listener = &mut listener;
            let accepted_ref = &accepted;
            assert!(
                task.insert(async move {
                    *accepted_ref.borrow_mut() = Some(listener.accept().await);
                })
                .is_ok()
            );
            let late = async {
                clock.sleep(Duration::from_millis(100)).await;
                // Free one socket: both sides close.
                drop(streams.pop());
                let h = held.pop().unwrap();
                assert!(peer.recv_to_end(h).await.is_ok());
                peer.close(h).await;
                peer.closed(h).await;
                clock.sleep(Duration::from_millis(100)).await;
                let h = peer
                    .connect(addr(STACK_IP, 80))
                    .await
                    .expect("a spare again");
                clock.sleep(Duration::from_millis(100)).await;
                h
            };
            let h = drive(&mut task, late).await;
            assert!(task.is_empty(), "the accept was never woken");
            let (mut s, from) = accepted.take().unwrap().unwrap();
            assert_eq!(from.port(), peer.local_port(h));
            peer.send_all(h, b"hi").await;
            assert_eq!(read_exact(&mut s, 2).await, b"hi");
        };
        match select(select(stack.run(), peer.run()), test).await {
            Either::Right(()) => {}
            Either::Left(Either::Left(never) | Either::Right(never)) => match never {},
        }
    });
}

/// A kernel descheduled by its host (a starved machine) sees its clock jump: the ACKs
/// that arrived meanwhile are processed seconds after the data they acknowledge was
/// sent. A segment lost after that must still be resent within a few seconds on every
/// connection (not after a retransmission timeout grown from that one bogus round
/// trip, up to smoltcp's 60 s, where the connection timeout aborts the connection).
#[test]
fn a_long_pause_of_the_stack_does_not_stall_its_connections() {
    const CONNS: usize = 12;
    const PAUSE: Duration = Duration::from_secs(20);
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr(STACK_IP, 7)).await.unwrap();
        let (hs, mut streams) = with_both(&stack, &peer, async {
            let (mut hs, mut ss) = (Vec::new(), Vec::new());
            for _ in 0..CONNS {
                hs.push(peer.connect(addr(STACK_IP, 7)).await.unwrap());
                ss.push(listener.accept().await.unwrap().0);
            }
            // Round trips at wire speed first.
            for (s, &h) in ss.iter_mut().zip(&hs) {
                s.write_all(&[1; 1000]).await.unwrap();
                assert_eq!(peer.recv_exact(h, 1000).await, [1; 1000]);
            }
            (hs, ss)
        })
        .await;
        // Each connection sends, then the stack is not run for PAUSE while the peer
        // reads and acknowledges.
        for s in streams.iter_mut() {
            s.write_all(&[2; 1000]).await.unwrap();
        }
        settle(&stack, &clock, Duration::from_millis(1)).await;
        with_peer(&peer, async {
            for &h in &hs {
                assert_eq!(peer.recv_exact(h, 1000).await, [2; 1000]);
            }
            clock.sleep(PAUSE).await;
        })
        .await;
        // Back: the first data segment of each connection is lost.
        let seen = Rc::new(RefCell::new(std::collections::BTreeSet::new()));
        let seen2 = seen.clone();
        wire.set_loss(Box::new(move |_, from, frame| {
            if from != 0 {
                return false;
            }
            match parse_ipv4(frame) {
                Some((_, _, _, IpProtocol::Tcp, p)) => {
                    let t = smoltcp::wire::TcpPacket::new_unchecked(&p[..]);
                    !t.payload().is_empty() && seen2.borrow_mut().insert(t.dst_port())
                }
                _ => false,
            }
        }));
        let start = clock.elapsed();
        with_both(&stack, &peer, async {
            for s in streams.iter_mut() {
                s.write_all(&[3; 1000]).await.unwrap();
            }
            for &h in &hs {
                assert_eq!(peer.recv_exact(h, 1000).await, [3; 1000]);
            }
        })
        .await;
        let took = clock.elapsed() - start;
        assert_eq!(seen.borrow().len(), CONNS);
        assert!(
            took < Duration::from_secs(5),
            "the lost segments took {took:?} to be resent after a pause of {PAUSE:?}"
        );
    });
}
