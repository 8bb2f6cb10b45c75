//! The server against simulated peers on virtual time: in-memory UDP and TCP stacks whose
//! failures the test injects, and a clock that only moves when every task waits (the
//! executor's idle hook jumps to the next timer). Timeouts are checked to the
//! millisecond, deterministically; a test that would wait forever fails instead.

mod support;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use morgana_rt::{Either, Idle, block_on, select};
use morgana_signatures::{
    Instant, MonotonicClock, Received, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer,
    Udp, UdpError, UdpSocket,
};
use support::hostnet::compile_zones;
use support::msg::{parse, query};

#[derive(Debug)]
struct FakeError(TcpErrorKind);

impl fmt::Display for FakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fake {:?}", self.0)
    }
}
impl TcpError for FakeError {
    fn kind(&self) -> TcpErrorKind {
        self.0
    }
}
impl UdpError for FakeError {
    fn kind(&self) -> TcpErrorKind {
        self.0
    }
}

#[derive(Default)]
struct Conn {
    up: RefCell<VecDeque<u8>>,
    up_closed: Cell<bool>,
    down: RefCell<Vec<u8>>,
    server_closed: Cell<bool>,
    reader: RefCell<Option<Waker>>,
}

#[derive(Default)]
struct World {
    now: Cell<u64>,
    timers: RefCell<Vec<(u64, Waker)>>,
    udp_in: RefCell<VecDeque<Result<Vec<u8>, TcpErrorKind>>>,
    udp_out: RefCell<Vec<(Vec<u8>, u64)>>,
    udp_waker: RefCell<Option<Waker>>,
    backlog: RefCell<VecDeque<Rc<Conn>>>,
    accept_waker: RefCell<Option<Waker>>,
}

fn wake(w: &RefCell<Option<Waker>>) {
    if let Some(w) = w.borrow_mut().take() {
        w.wake();
    }
}

#[derive(Clone, Default)]
struct Sim(Rc<World>);

const PEER: &str = "192.0.2.7:5353";

impl Sim {
    fn ms(&self) -> u64 {
        self.0.now.get() / 1_000_000
    }
    fn datagram(&self, d: Result<Vec<u8>, TcpErrorKind>) {
        self.0.udp_in.borrow_mut().push_back(d);
        wake(&self.0.udp_waker);
    }
    fn connect(&self) -> Rc<Conn> {
        let c = Rc::new(Conn::default());
        self.0.backlog.borrow_mut().push_back(c.clone());
        wake(&self.0.accept_waker);
        c
    }
    fn send(&self, c: &Conn, bytes: &[u8]) {
        c.up.borrow_mut().extend(bytes);
        wake(&c.reader);
    }
    fn close(&self, c: &Conn) {
        c.up_closed.set(true);
        wake(&c.reader);
    }
}

/// The idle hook: time jumps to the next timer; with no timer, nothing can ever happen.
impl Idle for Sim {
    fn wait(&mut self) {
        let mut timers = self.0.timers.borrow_mut();
        let next = timers
            .iter()
            .map(|(at, _)| *at)
            .min()
            .expect("deadlock: every task waits and no timer is set");
        self.0.now.set(next.max(self.0.now.get()));
        let (due, later): (Vec<_>, Vec<_>) = timers.drain(..).partition(|(at, _)| *at <= next);
        *timers = later;
        drop(timers);
        due.into_iter().for_each(|(_, w)| w.wake());
    }
}

impl MonotonicClock for Sim {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.0.now.get())
    }
}

impl Timer for Sim {
    async fn sleep_until(&self, deadline: Instant) {
        poll_fn(|cx| {
            if self.0.now.get() >= deadline.as_nanos() {
                return Poll::Ready(());
            }
            self.0
                .timers
                .borrow_mut()
                .push((deadline.as_nanos(), cx.waker().clone()));
            Poll::Pending
        })
        .await
    }
}

struct SimUdp(Sim);
struct SimListener(Sim);
struct SimStream(Rc<Conn>);

impl Drop for SimStream {
    fn drop(&mut self) {
        self.0.server_closed.set(true);
    }
}

impl Udp for Sim {
    type Error = FakeError;
    type Socket = SimUdp;
    async fn bind(&self, _: SocketAddr) -> Result<SimUdp, FakeError> {
        Ok(SimUdp(self.clone()))
    }
}

impl UdpSocket for SimUdp {
    type Error = FakeError;
    async fn recv_from(&mut self, buf: &mut [u8]) -> Result<Received, FakeError> {
        let w = &self.0.0;
        poll_fn(|cx| match w.udp_in.borrow_mut().pop_front() {
            Some(Ok(d)) => {
                let len = d.len().min(buf.len());
                buf[..len].copy_from_slice(&d[..len]);
                Poll::Ready(Ok(Received {
                    len,
                    peer: PEER.parse().unwrap(),
                    truncated: d.len() > buf.len(),
                }))
            }
            Some(Err(k)) => Poll::Ready(Err(FakeError(k))),
            None => {
                *w.udp_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
    async fn send_to(&mut self, buf: &[u8], _: SocketAddr) -> Result<(), FakeError> {
        let at = self.0.ms();
        self.0.0.udp_out.borrow_mut().push((buf.to_vec(), at));
        Ok(())
    }
    fn local_addr(&self) -> Result<SocketAddr, FakeError> {
        Ok("192.0.2.1:53".parse().unwrap())
    }
    fn max_payload(&self) -> usize {
        1472
    }
}

impl Tcp for Sim {
    type Error = FakeError;
    type Stream = SimStream;
    type Listener = SimListener;
    async fn listen(&self, _: SocketAddr) -> Result<SimListener, FakeError> {
        Ok(SimListener(self.clone()))
    }
}

impl TcpListener for SimListener {
    type Error = FakeError;
    type Stream = SimStream;
    async fn accept(&mut self) -> Result<(SimStream, SocketAddr), FakeError> {
        let w = &self.0.0;
        poll_fn(|cx| match w.backlog.borrow_mut().pop_front() {
            Some(c) => Poll::Ready(Ok((SimStream(c), PEER.parse().unwrap()))),
            None => {
                *w.accept_waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
    fn local_addr(&self) -> Result<SocketAddr, FakeError> {
        Ok("192.0.2.1:53".parse().unwrap())
    }
}

impl TcpStream for SimStream {
    type Error = FakeError;
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, FakeError> {
        let c = &self.0;
        poll_fn(|cx| {
            let mut up = c.up.borrow_mut();
            if !up.is_empty() {
                let n = buf.len().min(up.len());
                for (d, s) in buf.iter_mut().zip(up.drain(..n)) {
                    *d = s;
                }
                return Poll::Ready(Ok(n));
            }
            if c.up_closed.get() {
                return Poll::Ready(Ok(0));
            }
            *c.reader.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
    async fn write(&mut self, buf: &[u8]) -> Result<usize, FakeError> {
        self.0.down.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }
    async fn shutdown(&mut self) -> Result<(), FakeError> {
        self.0.server_closed.set(true);
        Ok(())
    }
}

/// Runs the server on `sim` with `idle` as its TCP idle timeout, beside `script`; returns
/// what the script returned, or the server's error if it stopped first.
fn run<T>(
    sim: &Sim,
    idle: Duration,
    script: impl std::future::Future<Output = T>,
) -> Result<T, String> {
    let base = env!("CARGO_MANIFEST_DIR");
    let zones = compile_zones(&[&format!("{base}/tests/zones/example.test.zone")]);
    let config = morgana_dns::Config {
        tcp_idle_timeout: idle,
        ..morgana_dns::Config::new("192.0.2.1:53".parse().unwrap())
    };
    let s = sim.clone();
    let server = async move {
        let server = morgana_dns::Server::connect(s.clone(), s.clone(), s, zones, config)
            .await
            .map_err(|e| e.to_string())?;
        server.serve().await.map_err(|e| e.to_string())
    };
    let mut idle_hook = sim.clone();
    match block_on(select(server, script), &mut idle_hook) {
        Either::Left(r) => Err(format!("server stopped: {r:?}")),
        Either::Right(t) => Ok(t),
    }
}

fn framed(q: &[u8]) -> Vec<u8> {
    let mut v = (q.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(q);
    v
}

#[test]
fn a_silent_tcp_connection_closes_exactly_at_the_idle_timeout() {
    let sim = Sim::default();
    let s = sim.clone();
    run(&sim, Duration::from_millis(500), async move {
        let c = s.connect();
        s.sleep(Duration::from_millis(499)).await;
        assert!(!c.server_closed.get(), "closed early, at {} ms", s.ms());
        s.sleep(Duration::from_millis(2)).await;
        assert!(c.server_closed.get(), "still open at {} ms", s.ms());
        // After an answer the clock starts again.
        let d = s.connect();
        s.send(&d, &framed(&query(1, "web.example.test.", 1, 1, None)));
        s.sleep(Duration::from_millis(300)).await;
        assert!(!d.down.borrow().is_empty(), "no answer");
        s.send(&d, &framed(&query(2, "web.example.test.", 1, 1, None)));
        s.sleep(Duration::from_millis(499)).await;
        assert!(
            !d.server_closed.get(),
            "the second query did not restart the idle clock"
        );
        s.sleep(Duration::from_millis(2)).await;
        assert!(d.server_closed.get());
    })
    .unwrap();
}

#[test]
fn a_query_dribbled_slower_than_the_timeout_is_cut_off() {
    let sim = Sim::default();
    let s = sim.clone();
    run(&sim, Duration::from_millis(400), async move {
        let c = s.connect();
        let q = framed(&query(3, "web.example.test.", 1, 1, None));
        let start = s.ms();
        for b in &q {
            if c.server_closed.get() {
                break;
            }
            s.send(&c, &[*b]);
            s.sleep(Duration::from_millis(50)).await;
        }
        assert!(
            c.server_closed.get(),
            "a slow-loris client kept its connection"
        );
        assert!(
            c.down.borrow().is_empty(),
            "answered a query that never arrived in time"
        );
        assert!(
            s.ms() - start <= 450,
            "cut at {} ms, after the timeout of 400",
            s.ms() - start
        );
    })
    .unwrap();
}

#[test]
fn pipelined_queries_then_a_half_close_are_all_answered() {
    let sim = Sim::default();
    let s = sim.clone();
    run(&sim, Duration::from_secs(10), async move {
        let c = s.connect();
        let mut all = Vec::new();
        for id in 10..13u16 {
            all.extend(framed(&query(id, "mail.example.test.", 1, 1, None)));
        }
        s.send(&c, &all);
        s.close(&c);
        s.sleep(Duration::from_millis(1)).await;
        let down = c.down.borrow().clone();
        let mut at = 0;
        for id in 10..13u16 {
            let len = usize::from(u16::from_be_bytes([down[at], down[at + 1]]));
            let m = parse(&down[at + 2..at + 2 + len]).unwrap();
            assert_eq!((m.id, m.answer.len()), (id, 1));
            at += 2 + len;
        }
        assert_eq!(at, down.len());
        assert!(
            c.server_closed.get(),
            "the server keeps a connection the client closed"
        );
    })
    .unwrap();
}

#[test]
fn udp_errors_are_survived_or_reported_and_oversized_datagrams_dropped() {
    let sim = Sim::default();
    let s = sim.clone();
    let r = run(&sim, Duration::from_secs(10), async move {
        s.datagram(Err(TcpErrorKind::Other));
        s.datagram(Err(TcpErrorKind::Reset));
        s.datagram(Ok(query(1, "web.example.test.", 1, 1, None)));
        s.sleep(Duration::from_millis(1)).await;
        assert_eq!(
            s.0.udp_out.borrow().len(),
            1,
            "transient errors stopped the UDP loop"
        );
        // Out of buffers: the loop pauses for UDP_BACKOFF, then answers.
        let t0 = s.ms();
        s.datagram(Err(TcpErrorKind::Exhausted));
        s.datagram(Ok(query(2, "web.example.test.", 1, 1, None)));
        s.sleep(Duration::from_millis(50)).await;
        let out = s.0.udp_out.borrow().clone();
        assert_eq!(out.len(), 2);
        assert!(
            out[1].1 >= t0 + morgana_dns::UDP_BACKOFF.as_millis() as u64,
            "no pause after Exhausted"
        );
        // Longer than the socket's max_payload: reported truncated, dropped.
        let mut big = query(3, "web.example.test.", 1, 1, None);
        big.resize(2000, 0);
        s.datagram(Ok(big));
        s.datagram(Ok(query(4, "web.example.test.", 1, 1, None)));
        s.sleep(Duration::from_millis(1)).await;
        let out = s.0.udp_out.borrow().clone();
        assert_eq!(out.len(), 3);
        assert_eq!(parse(&out[2].0).unwrap().id, 4);
        // A lasting error ends `serve` with a message.
        s.datagram(Err(TcpErrorKind::Invalid));
        s.sleep(Duration::from_secs(3600)).await;
    });
    let e = r.expect_err("the server should have stopped");
    assert!(
        e.contains("cannot receive UDP queries: fake Invalid"),
        "{e}"
    );
}
