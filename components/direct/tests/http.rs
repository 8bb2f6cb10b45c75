//! The HTTP server component, unchanged, over the direct stack on the simulated network.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use common::*;
use morgana_http::{Config, Server, StaticSite};
use morgana_rt::{Either, TaskSet, select};
use morgana_signatures::Timer;

static SITE: kv_crunch::Table = kv_crunch::crunch!("examples/site");

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

async fn fetch_twice(peer: Peer, done: Rc<Cell<usize>>) {
    let h = peer.connect(addr(STACK_IP, 80)).await.expect("connect");
    // Two pipelined requests on one connection, the second closing it.
    peer.send_all(
        h,
        b"GET / HTTP/1.1\r\nHost: appliance\r\n\r\n\
          GET /css/site.css HTTP/1.1\r\nHost: appliance\r\nConnection: close\r\n\r\n",
    )
    .await;
    let response = peer.recv_to_end(h).await.expect("a clean close");
    peer.close(h).await;
    assert_eq!(count(&response, b"HTTP/1.1 200 OK\r\n"), 2);
    assert_eq!(count(&response, b"Server: morgana\r\n"), 2);
    assert_eq!(
        count(&response, include_bytes!("../examples/site/index.html")),
        1
    );
    assert_eq!(
        count(&response, include_bytes!("../examples/site/css/site.css")),
        1
    );
    done.set(done.get() + 1);
}

#[test]
fn http_server_runs_unchanged_over_the_direct_stack() {
    const CLIENTS: usize = 12;
    let clock = FakeClock::new();
    let done = Rc::new(Cell::new(0));
    run(&clock, async {
        let (stack, peer, _wire) = stack_and_peer(&clock, static_config()).await;
        let mut config = Config::new(addr([0, 0, 0, 0], 80));
        config.idle_timeout = Duration::from_secs(5);
        let server = Server::connect(stack.clone(), clock.clone(), config)
            .await
            .expect("listening");
        assert_eq!(server.local_addr(), addr([0, 0, 0, 0], 80));
        let clients = async {
            let mut set = TaskSet::new(CLIENTS);
            for _ in 0..CLIENTS {
                assert!(set.insert(fetch_twice(peer.clone(), done.clone())).is_ok());
            }
            set.join_all().await;
            // The server's linger and our closes finish; then only the listener's
            // spare sockets remain.
            clock.sleep(Duration::from_secs(3)).await;
        };
        match select(
            server.serve(StaticSite::new(&SITE)),
            with_peer(&peer, clients),
        )
        .await
        {
            Either::Left(r) => panic!("the server stopped: {r:?}"),
            Either::Right(()) => {}
        }
        assert_eq!(
            stack.stats().tcp_sockets,
            0,
            "dropping the server closes its listener: {:?}",
            stack.stats()
        );
    });
    assert_eq!(done.get(), CLIENTS);
}

/// The HTTP server on `[::]` of a dual stack: clients over IPv6 and over IPv4 both get
/// the site.
#[test]
fn http_server_listens_on_both_families_on_a_dual_stack() {
    use morgana_direct::Ipv6Config;
    use smoltcp::wire::{IpCidr, Ipv6Cidr};
    let clock = FakeClock::new();
    let done = Rc::new(Cell::new(0));
    run(&clock, async {
        let config = static_config().with_ipv6(Ipv6Config::Static {
            address: STACK_IP6,
            prefix_len: 64,
            gateway: None,
        });
        let (stack, peer, _wire) = stack_and_peer(&clock, config).await;
        peer.add_address(IpCidr::Ipv6(Ipv6Cidr::new(ip6(PEER_IP6), 64)));
        let server = Server::connect(stack.clone(), clock.clone(), Config::new(addr6([0; 8], 80)))
            .await
            .expect("listening on [::]");
        assert_eq!(server.local_addr(), addr6([0; 8], 80));
        let clients = async {
            for target in [addr6(STACK_IP6, 80), addr(STACK_IP, 80)] {
                let h = peer.connect(target).await.expect("connect");
                peer.send_all(
                    h,
                    b"GET / HTTP/1.1\r\nHost: [fd00::2]\r\nConnection: close\r\n\r\n",
                )
                .await;
                let response = peer.recv_to_end(h).await.expect("a clean close");
                peer.close(h).await;
                assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"), "{target}");
                assert_eq!(
                    count(&response, include_bytes!("../examples/site/index.html")),
                    1
                );
                done.set(done.get() + 1);
            }
        };
        match select(
            server.serve(StaticSite::new(&SITE)),
            with_peer(&peer, clients),
        )
        .await
        {
            Either::Left(r) => panic!("the server stopped: {r:?}"),
            Either::Right(()) => {}
        }
    });
    assert_eq!(done.get(), 2);
}
