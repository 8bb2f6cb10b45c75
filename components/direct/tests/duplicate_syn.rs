//! A client that sees no SYN-ACK within its retransmission timeout (1 s) sends its SYN
//! again. On a slow machine (the Xen soak of issue 17, under QEMU TCG) both copies can
//! reach the stack before it answers, or the second after. The copy must not start a
//! second half-open connection on another listening socket of the listener: the
//! client's ACK could then land on that socket, which knows nothing of the first
//! socket's SYN-ACK and answers it with a reset ("Connection reset by peer" on a
//! connection the client already saw established).

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use morgana_direct::LISTEN_SPARES;
use morgana_signatures::{Tcp, TcpListener, TcpStream, Timer};
use smoltcp::wire::{IpProtocol, TcpPacket};

/// Whether `frame` is a TCP SYN (without ACK) from the peer.
fn is_syn(frame: &[u8]) -> bool {
    match parse_ipv4(frame) {
        Some((_, _, _, IpProtocol::Tcp, payload)) => {
            let tcp = TcpPacket::new_unchecked(&payload[..]);
            tcp.syn() && !tcp.ack()
        }
        _ => false,
    }
}

/// One request and its echo over a fresh connection whose SYN reaches the stack twice,
/// both copies before the stack runs.
async fn connection_with_a_duplicated_syn(
    stack: &morgana_direct::Stack<SimNic, FakeClock>,
    listener: &mut morgana_direct::Listener<SimNic, FakeClock>,
    peer: &Peer,
    wire: &Wire,
    clock: &FakeClock,
) {
    // The peer's first SYN is held back, then sent twice by `inject`.
    let held: Rc<RefCell<(bool, Option<Vec<u8>>)>> = Rc::default();
    let stash = held.clone();
    wire.set_loss(Box::new(move |_, from, frame| {
        let mut stash = stash.borrow_mut();
        if from == 1 && is_syn(frame) && !stash.0 {
            *stash = (true, Some(frame.to_vec()));
            return true;
        }
        false
    }));
    let inject = async {
        loop {
            let taken = held.borrow_mut().1.take();
            if let Some(syn) = taken {
                wire.send(1, syn.clone());
                wire.send(1, syn);
                break;
            }
            clock.sleep(Duration::from_millis(1)).await;
        }
    };
    let client = async {
        let h = peer.connect(addr(STACK_IP, 80)).await.expect("connected");
        peer.send_all(h, b"ping").await;
        let echo = peer.recv_to_end(h).await;
        peer.close(h).await;
        echo
    };
    let server = async {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            got += s.read(&mut buf[got..]).await.unwrap();
        }
        s.write_all(&buf).await.unwrap();
        s.shutdown().await.unwrap();
    };
    let ((_, echo), _) = with_both(stack, peer, join(join(inject, client), server)).await;
    assert_eq!(echo, Ok(b"ping".to_vec()), "the connection was reset");
    // Let the closes finish, so that the sockets' slots are free for the next round.
    with_both(stack, peer, clock.sleep(Duration::from_secs(2))).await;
}

#[test]
fn a_retransmitted_syn_does_not_reset_the_connection() {
    let clock = FakeClock::new();
    run(&clock, async {
        let (stack, peer, wire) = stack_and_peer(&clock, static_config()).await;
        let mut listener = stack.listen(addr(STACK_IP, 80)).await.unwrap();
        // Several rounds: which socket a copy meets first depends on the slots earlier
        // connections freed (a spare made after the first copy may sit in a lower slot
        // than the socket that took it, and smoltcp asks sockets in slot order).
        const ROUNDS: usize = 6;
        for _ in 0..ROUNDS {
            connection_with_a_duplicated_syn(&stack, &mut listener, &peer, &wire, &clock).await;
        }
        // One handshake per connection: every SYN-ACK the stack sent (first ones and
        // retransmissions) carries one of ROUNDS initial sequence numbers.
        let mut isns: Vec<u32> = wire
            .log()
            .iter()
            .filter(|(from, _)| *from == 0)
            .filter_map(|(_, f)| match parse_ipv4(f) {
                Some((_, _, _, IpProtocol::Tcp, p)) => {
                    let t = TcpPacket::new_unchecked(&p[..]);
                    (t.syn() && t.ack()).then(|| t.seq_number().0 as u32)
                }
                _ => None,
            })
            .collect();
        isns.sort();
        isns.dedup();
        assert_eq!(
            isns.len(),
            ROUNDS,
            "a copy of a SYN started a second handshake"
        );
        // And no half-open socket is left behind.
        assert_eq!(
            stack.stats().tcp_sockets,
            LISTEN_SPARES,
            "{:?}",
            stack.stats()
        );
    });
}
