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
