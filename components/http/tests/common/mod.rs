//! In-memory test doubles: a TCP stack over byte queues with wakers, a clock that the
//! executor's idle hook advances to the next timer (virtual time), and a small KV store.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::{Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use morgana_http::{Config, Handler, Server, StaticSite};
use morgana_rt::{Either, Idle, block_on, select};
use morgana_signatures::{
    Instant, KvRo, MonotonicClock, Object, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream,
    Timer,
};

// ---------------------------------------------------------------------------------------
// TCP

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FakeError(pub TcpErrorKind);

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

/// One direction of a connection.
#[derive(Default)]
struct Pipe {
    data: VecDeque<u8>,
    closed: bool,
    waker: Option<Waker>,
}

impl Pipe {
    fn wake(&mut self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }
}

struct ConnState {
    /// Client to server.
    up: Pipe,
    /// Server to client.
    down: Pipe,
    /// The server has dropped its stream.
    server_dropped: bool,
    /// At most this many bytes per server read.
    read_chunk: usize,
    /// The server's writes block while `down` holds this many bytes.
    down_capacity: usize,
    /// Writer of `down` waiting for room.
    writer_waker: Option<Waker>,
    /// Reads and writes fail with this.
    fail: Option<FakeError>,
    write_calls: usize,
    vectored_calls: usize,
    shutdowns: usize,
}

impl ConnState {
    fn new() -> Self {
        ConnState {
            up: Pipe::default(),
            down: Pipe::default(),
            server_dropped: false,
            read_chunk: usize::MAX,
            down_capacity: usize::MAX,
            writer_waker: None,
            fail: None,
            write_calls: 0,
            vectored_calls: 0,
            shutdowns: 0,
        }
    }

    fn room(&self) -> usize {
        self.down_capacity.saturating_sub(self.down.data.len())
    }
}

#[derive(Default)]
struct NetState {
    backlog: VecDeque<Rc<RefCell<ConnState>>>,
    accept_waker: Option<Waker>,
    accept_errors: VecDeque<FakeError>,
    listen_error: Option<FakeError>,
    live_streams: usize,
    accepted: usize,
}

#[derive(Clone, Default)]
pub struct FakeNet {
    state: Rc<RefCell<NetState>>,
}

impl FakeNet {
    /// Queues a new connection and returns the client's end.
    pub fn connect(&self) -> Client {
        let conn = Rc::new(RefCell::new(ConnState::new()));
        let mut s = self.state.borrow_mut();
        s.backlog.push_back(conn.clone());
        if let Some(w) = s.accept_waker.take() {
            w.wake();
        }
        Client { conn }
    }

    /// The next `accept` fails with `kind`.
    pub fn fail_next_accept(&self, kind: TcpErrorKind) {
        let mut s = self.state.borrow_mut();
        s.accept_errors.push_back(FakeError(kind));
        if let Some(w) = s.accept_waker.take() {
            w.wake();
        }
    }

    pub fn fail_listen(&self, kind: TcpErrorKind) {
        self.state.borrow_mut().listen_error = Some(FakeError(kind));
    }

    /// Server-side streams not yet dropped.
    pub fn live_streams(&self) -> usize {
        self.state.borrow().live_streams
    }

    pub fn accepted(&self) -> usize {
        self.state.borrow().accepted
    }
}

impl Tcp for FakeNet {
    type Error = FakeError;
    type Stream = FakeStream;
    type Listener = FakeListener;

    async fn listen(&self, addr: SocketAddr) -> Result<FakeListener, FakeError> {
        if let Some(e) = self.state.borrow_mut().listen_error.take() {
            return Err(e);
        }
        let mut addr = addr;
        if addr.port() == 0 {
            addr.set_port(40000);
        }
        Ok(FakeListener {
            net: self.clone(),
            addr,
        })
    }
}

pub struct FakeListener {
    net: FakeNet,
    addr: SocketAddr,
}

impl TcpListener for FakeListener {
    type Error = FakeError;
    type Stream = FakeStream;

    async fn accept(&mut self) -> Result<(FakeStream, SocketAddr), FakeError> {
        poll_fn(|cx| {
            let mut s = self.net.state.borrow_mut();
            if let Some(e) = s.accept_errors.pop_front() {
                return Poll::Ready(Err(e));
            }
            match s.backlog.pop_front() {
                Some(conn) => {
                    s.live_streams += 1;
                    s.accepted += 1;
                    let port = 50000 + (s.accepted % 10000) as u16;
                    Poll::Ready(Ok((
                        FakeStream {
                            conn,
                            net: self.net.clone(),
                        },
                        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                    )))
                }
                None => {
                    s.accept_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    fn local_addr(&self) -> Result<SocketAddr, FakeError> {
        Ok(self.addr)
    }
}

pub struct FakeStream {
    conn: Rc<RefCell<ConnState>>,
    net: FakeNet,
}

impl Drop for FakeStream {
    fn drop(&mut self) {
        let mut c = self.conn.borrow_mut();
        c.server_dropped = true;
        c.down.closed = true;
        c.down.wake();
        self.net.state.borrow_mut().live_streams -= 1;
    }
}

impl FakeStream {
    /// Appends as much of `bufs` (after skipping `done` bytes) as fits; returns how much.
    fn push(c: &mut ConnState, bufs: &[&[u8]], mut done: usize) -> usize {
        let mut written = 0;
        for b in bufs {
            if done >= b.len() {
                done -= b.len();
                continue;
            }
            let part = &b[done..];
            done = 0;
            let n = part.len().min(c.room());
            c.down.data.extend(&part[..n]);
            written += n;
            if n < part.len() {
                break;
            }
        }
        if written > 0 {
            c.down.wake();
        }
        written
    }
}

impl TcpStream for FakeStream {
    type Error = FakeError;

    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, FakeError> {
        poll_fn(|cx| {
            let mut c = self.conn.borrow_mut();
            if let Some(e) = c.fail {
                return Poll::Ready(Err(e));
            }
            if !c.up.data.is_empty() {
                let n = buf.len().min(c.read_chunk).min(c.up.data.len());
                for (slot, byte) in buf.iter_mut().zip(c.up.data.drain(..n)) {
                    *slot = byte;
                }
                return Poll::Ready(Ok(n));
            }
            if c.up.closed {
                return Poll::Ready(Ok(0));
            }
            c.up.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    async fn write(&mut self, buf: &[u8]) -> Result<usize, FakeError> {
        self.conn.borrow_mut().write_calls += 1;
        self.write_vectored_from(&[buf], 0).await
    }

    async fn write_all_vectored(&mut self, bufs: &[&[u8]]) -> Result<(), FakeError> {
        self.conn.borrow_mut().vectored_calls += 1;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut done = 0;
        while done < total {
            done += self.write_vectored_from(bufs, done).await?;
        }
        Ok(())
    }

    async fn shutdown(&mut self) -> Result<(), FakeError> {
        let mut c = self.conn.borrow_mut();
        c.shutdowns += 1;
        c.down.closed = true;
        c.down.wake();
        Ok(())
    }
}

impl FakeStream {
    async fn write_vectored_from(
        &mut self,
        bufs: &[&[u8]],
        done: usize,
    ) -> Result<usize, FakeError> {
        poll_fn(|cx| {
            let mut c = self.conn.borrow_mut();
            if let Some(e) = c.fail {
                return Poll::Ready(Err(e));
            }
            if c.down.closed {
                return Poll::Ready(Err(FakeError(TcpErrorKind::Invalid)));
            }
            let remaining: usize = bufs.iter().map(|b| b.len()).sum::<usize>() - done;
            if remaining == 0 {
                return Poll::Ready(Ok(0));
            }
            let n = Self::push(&mut c, bufs, done);
            if n > 0 {
                Poll::Ready(Ok(n))
            } else {
                c.writer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// The client's end of a connection.
pub struct Client {
    conn: Rc<RefCell<ConnState>>,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The head as received.
    pub raw_head: String,
}

impl Resp {
    pub fn status(&self) -> u16 {
        self.status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }

    /// The only value of `name`; panics if it appears several times.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut values = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = values.next();
        assert!(values.next().is_none(), "{name} appears twice: {self:?}");
        first
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

impl Client {
    pub fn send(&self, bytes: impl AsRef<[u8]>) {
        let mut c = self.conn.borrow_mut();
        c.up.data.extend(bytes.as_ref());
        c.up.wake();
    }

    /// Closes the client's sending side.
    pub fn shutdown(&self) {
        let mut c = self.conn.borrow_mut();
        c.up.closed = true;
        c.up.wake();
    }

    /// Server reads return at most `n` bytes.
    pub fn set_read_chunk(&self, n: usize) {
        self.conn.borrow_mut().read_chunk = n;
    }

    /// The server's writes block while this many bytes are unread by the client.
    pub fn set_receive_window(&self, n: usize) {
        self.conn.borrow_mut().down_capacity = n;
    }

    /// Every later server read/write fails with `kind`.
    pub fn fail(&self, kind: TcpErrorKind) {
        let mut c = self.conn.borrow_mut();
        c.fail = Some(FakeError(kind));
        c.up.wake();
        if let Some(w) = c.writer_waker.take() {
            w.wake();
        }
    }

    pub fn write_calls(&self) -> (usize, usize) {
        let c = self.conn.borrow();
        (c.write_calls, c.vectored_calls)
    }

    pub fn shutdowns(&self) -> usize {
        self.conn.borrow().shutdowns
    }

    /// Bytes received and not yet taken.
    pub fn available(&self) -> usize {
        self.conn.borrow().down.data.len()
    }

    /// Whether the server has closed its sending side (shutdown or drop).
    pub fn server_closed(&self) -> bool {
        self.conn.borrow().down.closed
    }

    pub fn server_dropped(&self) -> bool {
        self.conn.borrow().server_dropped
    }

    /// Takes every received byte.
    pub fn take_all(&self) -> Vec<u8> {
        let mut c = self.conn.borrow_mut();
        let out: Vec<u8> = c.down.data.drain(..).collect();
        if let Some(w) = c.writer_waker.take() {
            w.wake();
        }
        out
    }

    /// Waits until `cond` holds for the connection state.
    async fn wait(&self, mut cond: impl FnMut(&ConnState) -> bool) {
        poll_fn(|cx| {
            let mut c = self.conn.borrow_mut();
            if cond(&c) {
                Poll::Ready(())
            } else {
                c.down.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }

    /// Waits until bytes are waiting or the server closed its sending side.
    pub async fn readable(&self) {
        self.wait(|c| !c.down.data.is_empty() || c.down.closed)
            .await
    }

    /// Waits until the server has dropped its stream, then returns everything received.
    pub async fn read_to_end(&self) -> Vec<u8> {
        self.dropped().await;
        self.take_all()
    }

    /// Waits until the server dropped its stream.
    pub async fn dropped(&self) {
        self.wait(|c| c.server_dropped).await
    }

    /// Waits until the server closed its sending side.
    pub async fn closed(&self) {
        self.wait(|c| c.down.closed).await
    }

    /// Reads one response whose body length is given by `Content-Length`.
    pub async fn response(&self) -> Resp {
        self.next_response(true).await
    }

    /// Reads one response to `HEAD` (or a 304): no body whatever `Content-Length` says.
    pub async fn head_response(&self) -> Resp {
        self.next_response(false).await
    }

    async fn next_response(&self, with_body: bool) -> Resp {
        self.wait(|c| find(&c.down.data, b"\r\n\r\n").is_some() || c.down.closed)
            .await;
        let bytes: Vec<u8> = self.conn.borrow().down.data.iter().copied().collect();
        let end = find(&bytes, b"\r\n\r\n").unwrap_or_else(|| {
            panic!(
                "connection closed without a complete response head; got {:?}",
                String::from_utf8_lossy(&bytes)
            )
        }) + 4;
        let raw_head = String::from_utf8(bytes[..end].to_vec()).expect("ASCII head");
        let mut lines = raw_head[..end - 4].split("\r\n");
        let status_line = lines.next().unwrap().to_string();
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(": ")
                    .unwrap_or_else(|| panic!("bad line {l:?}"));
                (n.to_string(), v.to_string())
            })
            .collect();
        let len = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .map(|(_, v)| v.parse::<usize>().expect("numeric Content-Length"));
        let body_len = if with_body { len.unwrap_or(0) } else { 0 };
        self.wait(|c| c.down.data.len() >= end + body_len || c.down.closed)
            .await;
        let mut c = self.conn.borrow_mut();
        assert!(
            c.down.data.len() >= end + body_len,
            "connection closed in the body of {status_line}"
        );
        c.down.data.drain(..end);
        let body: Vec<u8> = c.down.data.drain(..body_len).collect();
        if let Some(w) = c.writer_waker.take() {
            w.wake();
        }
        Resp {
            status_line,
            headers,
            body,
            raw_head,
        }
    }
}

pub fn find(
    hay: impl IntoIterator<Item = impl std::borrow::Borrow<u8>>,
    needle: &[u8],
) -> Option<usize> {
    let hay: Vec<u8> = hay.into_iter().map(|b| *b.borrow()).collect();
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// Time

#[derive(Default)]
struct ClockState {
    now: u64,
    timers: Vec<(u64, Waker)>,
}

/// A clock that only moves when told (or when the executor idles: see [`TestIdle`]).
#[derive(Clone, Default)]
pub struct FakeClock {
    state: Rc<RefCell<ClockState>>,
}

impl FakeClock {
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.state.borrow().now)
    }

    /// Moves time to the earliest pending deadline and wakes every timer due. Returns
    /// false when no timer is pending.
    pub fn fire_next(&self) -> bool {
        let due: Vec<Waker> = {
            let mut s = self.state.borrow_mut();
            let Some(next) = s.timers.iter().map(|(d, _)| *d).min() else {
                return false;
            };
            s.now = s.now.max(next);
            let now = s.now;
            let (due, keep): (Vec<_>, Vec<_>) = s.timers.drain(..).partition(|(d, _)| *d <= now);
            s.timers = keep;
            due.into_iter().map(|(_, w)| w).collect()
        };
        for w in due {
            w.wake();
        }
        true
    }
}

impl MonotonicClock for FakeClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(self.state.borrow().now)
    }
}

impl Timer for FakeClock {
    async fn sleep_until(&self, deadline: Instant) {
        poll_fn(|cx| {
            let mut s = self.state.borrow_mut();
            if s.now >= deadline.as_nanos() {
                Poll::Ready(())
            } else {
                s.timers.push((deadline.as_nanos(), cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// The executor's idle hook: when every task waits, time jumps to the next timer. With
/// no timer pending, nothing can ever happen again: the test is stuck.
pub struct TestIdle {
    pub clock: FakeClock,
}

impl Idle for TestIdle {
    fn wait(&mut self) {
        assert!(
            self.clock.fire_next(),
            "deadlock: every task waits and no timer is pending"
        );
    }
}

// ---------------------------------------------------------------------------------------
// KV

#[derive(Debug)]
pub struct KvError;

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("store failure")
    }
}

pub struct FakeKv {
    entries: Vec<(&'static str, Object<'static>)>,
}

pub const HOME: &str = "<!DOCTYPE html><title>home</title><p>Welcome\n";
pub const DOCS: &str = "<!DOCTYPE html><title>docs</title>\n";
pub const CSS: &str = "body { color: #333; margin: 0 auto; max-width: 40em; }\n";
pub const CSS_GZ: &[u8] = b"\x1f\x8b\x08\x00fake-gzip-css";
pub const GUIDE: &str = "Read the guide.\n";
pub const UMLAUT: &str = "umlaut file\n";
pub const BIG_LEN: usize = 256 * 1024;

impl FakeKv {
    pub fn new() -> FakeKv {
        let big: &'static [u8] = Box::leak(vec![b'x'; BIG_LEN].into_boxed_slice());
        FakeKv {
            entries: vec![
                (
                    "index.html",
                    Object {
                        data: HOME.as_bytes(),
                        media_type: "text/html; charset=utf-8",
                        etag: "\"home-1\"",
                        gzip: None,
                    },
                ),
                (
                    "style.css",
                    Object {
                        data: CSS.as_bytes(),
                        media_type: "text/css; charset=utf-8",
                        etag: "\"css-7\"",
                        gzip: Some(CSS_GZ),
                    },
                ),
                (
                    "docs/index.html",
                    Object {
                        data: DOCS.as_bytes(),
                        media_type: "text/html; charset=utf-8",
                        etag: "\"docs-2\"",
                        gzip: None,
                    },
                ),
                (
                    "docs/guide.txt",
                    Object {
                        data: GUIDE.as_bytes(),
                        media_type: "text/plain; charset=utf-8",
                        etag: "\"guide-3\"",
                        gzip: None,
                    },
                ),
                (
                    "a b/ü.txt",
                    Object {
                        data: UMLAUT.as_bytes(),
                        media_type: "text/plain; charset=utf-8",
                        etag: "\"u-4\"",
                        gzip: None,
                    },
                ),
                (
                    "big.bin",
                    Object {
                        data: big,
                        media_type: "application/octet-stream",
                        etag: "\"big-5\"",
                        gzip: None,
                    },
                ),
                (
                    "empty.txt",
                    Object {
                        data: b"",
                        media_type: "text/plain",
                        etag: "\"empty\"",
                        gzip: None,
                    },
                ),
            ],
        }
    }
}

impl Default for FakeKv {
    fn default() -> Self {
        FakeKv::new()
    }
}

impl KvRo for FakeKv {
    type Error = KvError;

    fn get(&self, key: &str) -> Result<Option<Object<'_>>, KvError> {
        if key.starts_with("broken") {
            return Err(KvError);
        }
        Ok(self
            .entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, o)| *o))
    }

    fn is_dir(&self, key: &str) -> Result<bool, KvError> {
        Ok(self.entries.iter().any(|(k, _)| {
            k.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with('/'))
        }))
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

// ---------------------------------------------------------------------------------------
// Harness

pub const IDLE: Duration = Duration::from_secs(30);

pub fn config(max_connections: usize) -> Config {
    Config {
        address: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        max_connections,
        idle_timeout: IDLE,
    }
}

/// What a test script gets.
#[derive(Clone)]
pub struct Env {
    pub net: FakeNet,
    pub clock: FakeClock,
}

impl Env {
    pub fn connect(&self) -> Client {
        self.net.connect()
    }
}

/// Runs `script` against a server with `handler`, under virtual time. The server must
/// still be serving when the script ends.
pub fn run_with<H, F, Fut>(config: Config, handler: H, script: F)
where
    H: Handler,
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    let net = FakeNet::default();
    let clock = FakeClock::default();
    let env = Env {
        net: net.clone(),
        clock: clock.clone(),
    };
    let mut idle = TestIdle {
        clock: clock.clone(),
    };
    block_on(
        async move {
            let server = Server::connect(net, clock, config)
                .await
                .expect("server starts");
            assert_eq!(server.local_addr().port(), 40000);
            match select(server.serve(handler), script(env)).await {
                Either::Left(r) => panic!("server stopped: {r:?}"),
                Either::Right(()) => {}
            }
        },
        &mut idle,
    );
}

/// [`run_with`] a [`StaticSite`] over [`FakeKv`].
pub fn run<F, Fut>(config: Config, script: F)
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(config, StaticSite::new(FakeKv::new()), script)
}

/// Sends `request` on a new connection and returns its (first) response.
pub async fn exchange(env: &Env, request: &str) -> (Client, Resp) {
    let c = env.connect();
    c.send(request);
    let r = if request.starts_with("HEAD ") {
        c.head_response().await
    } else {
        c.response().await
    };
    (c, r)
}

/// A future that is pending once (lets the server run).
pub async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}
