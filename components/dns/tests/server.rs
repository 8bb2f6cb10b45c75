//! The server over real sockets (through the host adapter) against misbehaving clients:
//! junk datagrams, pipelined and byte-by-byte TCP queries, oversized length prefixes,
//! silent and half-finished connections (idle timeout), clients that vanish, and more
//! connections than allowed. Waits are bounded; nothing asserts on timing.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::hostnet::{HostNet, compile_zones};
use support::msg::{parse, query};

fn start(config: impl FnOnce(SocketAddr) -> morgana_dns::Config + Send + 'static) -> SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let base = env!("CARGO_MANIFEST_DIR");
        let zones = compile_zones(&[&format!("{base}/tests/zones/example.test.zone")]);
        let mut net = HostNet::default();
        let (udp, tcp, clock) = (net.clone(), net.clone(), net.clone());
        let cfg = config("127.0.0.1:0".parse().unwrap());
        let run = async move {
            let server = morgana_dns::Server::connect(udp, tcp, clock, zones, cfg)
                .await
                .expect("server starts");
            tx.send(server.local_addr()).unwrap();
            server.serve().await
        };
        let r = morgana_rt::block_on(run, &mut net);
        panic!("server stopped: {r:?}");
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("server address")
}

fn udp_ask(to: SocketAddr, q: &[u8]) -> Option<Vec<u8>> {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(q, to).unwrap();
    let mut buf = [0u8; 65_536];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

fn framed(q: &[u8]) -> Vec<u8> {
    let mut v = (q.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(q);
    v
}

fn read_msg(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut b = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut b).ok()?;
    Some(b)
}

/// Whether the server closes `s` within `within` (EOF or a reset, not a timeout).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn udp_junk_is_dropped_and_serving_goes_on() {
    let addr = start(morgana_dns::Config::new);
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for junk in [&b""[..], b"\x01", b"\x12\x34\x81\x00\x00\x01"] {
        s.send_to(junk, addr).unwrap();
    }
    let mut buf = [0u8; 512];
    assert!(
        s.recv(&mut buf).is_err(),
        "a reply to junk too short for a header"
    );
    // A response (QR set) is never answered: no reflection loops between servers.
    let mut resp = query(9, "www.example.test.", 1, 1, None);
    resp[2] |= 0x80;
    s.send_to(&resp, addr).unwrap();
    assert!(s.recv(&mut buf).is_err(), "a reply to a response");
    let big = vec![0u8; 60_000];
    s.send_to(&big, addr).unwrap();
    let r = udp_ask(addr, &query(7, "web.example.test.", 1, 1, None)).expect("answer");
    let m = parse(&r).unwrap();
    assert_eq!((m.id, m.rcode, m.answer.len()), (7, 0, 3));
}

#[test]
fn tcp_serves_pipelined_and_byte_by_byte_queries_in_order() {
    let addr = start(morgana_dns::Config::new);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut all = Vec::new();
    for id in 1..=5u16 {
        all.extend(framed(&query(id, "big.example.test.", 1, 1, None)));
    }
    s.write_all(&all).unwrap();
    for id in 1..=5u16 {
        let m = parse(&read_msg(&mut s).expect("answer")).unwrap();
        assert_eq!(
            (m.id, m.answer.len(), m.flags & 0x0200),
            (id, 40, 0),
            "no TC over TCP"
        );
    }
    for b in framed(&query(
        77,
        "mail.example.test.",
        15,
        1,
        Some((4096, 0, false)),
    )) {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let m = parse(&read_msg(&mut s).expect("answer")).unwrap();
    assert_eq!(m.id, 77);
}

#[test]
fn tcp_refuses_oversized_and_empty_messages_by_closing() {
    let addr = start(morgana_dns::Config::new);
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&[0xff, 0xff]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "a 65535-byte query is not read"
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&[0, 0]).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "an empty message"
    );
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&framed(b"\x00\x01\x00")).unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "a message too short for a header"
    );
}

#[test]
fn tcp_idle_and_half_finished_connections_time_out() {
    let addr = start(|a| morgana_dns::Config {
        tcp_idle_timeout: Duration::from_millis(300),
        ..morgana_dns::Config::new(a)
    });
    let mut silent = TcpStream::connect(addr).unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&framed(&query(1, "web.example.test.", 1, 1, None))[..9])
        .unwrap();
    let mut served = TcpStream::connect(addr).unwrap();
    served
        .write_all(&framed(&query(2, "web.example.test.", 1, 1, None)))
        .unwrap();
    served
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert!(read_msg(&mut served).is_some());
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a silent connection stays open"
    );
    assert!(
        closed_within(&mut half, Duration::from_secs(5)),
        "a half-sent query keeps its connection"
    );
    assert!(
        closed_within(&mut served, Duration::from_secs(5)),
        "an idle connection after an answer"
    );
}

#[test]
fn tcp_connection_cap_and_vanishing_clients() {
    let addr = start(|a| morgana_dns::Config {
        max_tcp_connections: 2,
        ..morgana_dns::Config::new(a)
    });
    // Clients that go away mid-query, or before reading their answer.
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).unwrap();
        let q = framed(&query(3, "big.example.test.", 1, 1, None));
        s.write_all(&q[..5]).unwrap();
        drop(s);
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&q).unwrap();
        s.shutdown(Shutdown::Both).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut a, mut b) = loop {
        // The vanished ones may still hold slots for a moment: retry until two stick.
        let mut a = TcpStream::connect(addr).unwrap();
        let mut b = TcpStream::connect(addr).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        b.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        a.write_all(&framed(&query(4, "web.example.test.", 1, 1, None)))
            .unwrap();
        b.write_all(&framed(&query(5, "web.example.test.", 1, 1, None)))
            .unwrap();
        if read_msg(&mut a).is_some() && read_msg(&mut b).is_some() {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "two connections never got served"
        );
    };
    let mut third = TcpStream::connect(addr).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)),
        "a third connection beyond the cap"
    );
    for (s, id) in [(&mut a, 6u16), (&mut b, 7)] {
        s.write_all(&framed(&query(id, "web.example.test.", 1, 1, None)))
            .unwrap();
        assert_eq!(parse(&read_msg(s).expect("still served")).unwrap().id, id);
    }
    // UDP is served all along.
    assert!(udp_ask(addr, &query(8, "web.example.test.", 1, 1, None)).is_some());
}
