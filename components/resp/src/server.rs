//! The server: configuration, errors, the accept loop, connections, the group commit
//! and the expiry cycle.

use alloc::vec;
use alloc::vec::Vec;
use core::cell::Cell;
use core::fmt;
use core::future::{Future, poll_fn};
use core::net::SocketAddr;
use core::pin::pin;
use core::task::Poll;
use core::time::Duration;

use morgana_rt::{TaskSet, select, timeout};
use morgana_signatures::{
    Kv, ShowAddr, Tcp, TcpError, TcpErrorKind, TcpListener, TcpStream, Timer, WallClock,
};

use crate::commands::{self, After};
use crate::protocol::{Parsed, Parser, reply};
use crate::state::Shared;

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// After it is durable: the replies to a batch of commands wait for one flush that
    /// covers every write made by every connection in that turn of the event loop
    /// (Redis's `appendfsync always`, with the same group commit).
    #[default]
    Always,
    /// At once; the store is flushed every second, so a crash loses at most about the
    /// last second of writes (Redis's `appendfsync everysec`).
    EverySec,
}

/// The server's settings (compiled in by codegen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub address: SocketAddr,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// The most clients at once; beyond it a client gets
    /// `-ERR max number of clients reached` and is closed.
    pub max_connections: usize,
    /// A client that sends nothing (or reads nothing) for this long is closed;
    /// `Duration::ZERO`: never.
    pub idle_timeout: Duration,
    /// The largest command (all its arguments), in bytes.
    pub max_request: usize,
}

/// Default [`Config::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default [`Config::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default [`Config::max_request`]: 64 MiB.
pub const DEFAULT_MAX_REQUEST: usize = 64 << 20;
/// Replies are sent once this many bytes wait, even in the middle of a pipeline.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// Bytes read from a client at once.
const READ_CHUNK: usize = 16 * 1024;
/// How often expired keys are looked for, and how many are deleted at most each time.
const EXPIRY_PERIOD: Duration = Duration::from_millis(100);
const EXPIRY_BATCH: usize = 200;
/// Rejecting tasks (clients beyond the cap get their error from one of them).
const REJECT_SLOTS: usize = 16;

impl Config {
    /// `address`, `durability`, and the defaults.
    pub const fn new(address: SocketAddr, durability: Durability) -> Config {
        Config {
            address,
            durability,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_request: DEFAULT_MAX_REQUEST,
        }
    }
}

/// Why the server could not start or stopped. `E` is the TCP stack's error, `S` the
/// store's.
#[derive(Debug)]
pub enum Error<E, S> {
    /// The configuration cannot work.
    InvalidConfig(&'static str),
    /// The stack refused to listen.
    Listen {
        /// The configured address.
        address: SocketAddr,
        /// The stack's reason.
        error: E,
    },
    /// The listener could not tell its address.
    LocalAddr(E),
    /// Accepting failed in a way that will not get better by waiting.
    Accept(E),
    /// The store could not be read at start.
    Store(S),
}

impl<E: fmt::Display, S: fmt::Display> fmt::Display for Error<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Listen { address, error } => {
                write!(f, "cannot listen on {}: {error}", ShowAddr(*address))
            }
            Error::LocalAddr(e) => write!(f, "cannot read the listening address: {e}"),
            Error::Accept(e) => write!(f, "cannot accept connections: {e}"),
            Error::Store(e) => write!(f, "cannot read the store: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display, S: fmt::Debug + fmt::Display> core::error::Error
    for Error<E, S>
{
}

/// A Redis-protocol server over a [`Tcp`] stack and a [`Kv`] store, with timers from
/// a clock that also tells the wall time (for expiry times that outlive a restart).
pub struct Server<T: Tcp, C: Timer + WallClock, K: Kv> {
    _net: T,
    listener: T::Listener,
    clock: C,
    kv: K,
    config: Config,
    local_addr: SocketAddr,
}

impl<T: Tcp, C: Timer + WallClock, K: Kv> fmt::Debug for Server<T, C, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: Tcp, C: Timer + WallClock, K: Kv> Server<T, C, K> {
    /// Checks `config` and listens on `config.address`.
    pub async fn connect(
        net: T,
        clock: C,
        kv: K,
        config: Config,
    ) -> Result<Self, Error<T::Error, K::Error>> {
        if config.max_connections == 0 {
            return Err(Error::InvalidConfig("max_connections must be at least 1"));
        }
        if config.max_request < 1024 {
            return Err(Error::InvalidConfig(
                "max_request must be at least 1024 bytes",
            ));
        }
        let listener = net
            .listen(config.address)
            .await
            .map_err(|error| Error::Listen {
                address: config.address,
                error,
            })?;
        let local_addr = listener.local_addr().map_err(Error::LocalAddr)?;
        Ok(Server {
            _net: net,
            listener,
            clock,
            kv,
            config,
            local_addr,
        })
    }

    /// The address actually listened on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves clients until accepting fails for good.
    pub async fn serve(self) -> Result<(), Error<T::Error, K::Error>> {
        let Server {
            _net,
            mut listener,
            clock,
            kv,
            config,
            local_addr,
        } = self;
        let limits = Limits {
            max_bulk: kv.max_value_len().max(kv.max_key_len()),
            max_request: config.max_request,
            idle: config.idle_timeout,
        };
        let shared = Shared::new(kv, clock, config.durability, local_addr.port());
        {
            let mut st = shared.state.lock().await;
            commands::load_ttls(&mut st).await.map_err(Error::Store)?;
        }
        let shared = &shared;
        let limits = &limits;
        // The clients served and, beyond the cap, those being told so: one task set.
        let mut conns = TaskSet::new(config.max_connections + REJECT_SLOTS);
        let mut committer = pin!(committer(shared));
        let mut expiry = pin!(expiry(shared));
        // After an `Exhausted` accept, a pause before the next accept.
        let mut pause = false;
        loop {
            let accepted = {
                let mut accept = pin!(listener.accept());
                let mut sleep =
                    pin!(
                        shared
                            .clock
                            .sleep(Duration::from_millis(if pause { 100 } else { 0 }))
                    );
                poll_fn(|cx| {
                    conns.poll_tasks(cx);
                    // After the connections: everything they wrote in this turn shares
                    // one commit.
                    let _ = committer.as_mut().poll(cx);
                    let _ = expiry.as_mut().poll(cx);
                    if pause {
                        if sleep.as_mut().poll(cx).is_pending() {
                            return Poll::Pending;
                        }
                        pause = false;
                    }
                    accept.as_mut().poll(cx)
                })
                .await
            };
            match accepted {
                Ok((stream, peer)) => {
                    shared
                        .connections_total
                        .set(shared.connections_total.get() + 1);
                    let refused = shared.connected.get() >= config.max_connections;
                    let count = if refused {
                        shared.rejected.set(shared.rejected.get() + 1);
                        &shared.refusing
                    } else {
                        &shared.connected
                    };
                    if refused && count.get() >= REJECT_SLOTS {
                        log::debug!("{}: dropped: at the connection cap", ShowAddr(peer));
                        continue;
                    }
                    count.set(count.get() + 1);
                    let task = connection(stream, shared, limits, Counted(count), refused);
                    if conns.insert(task).is_err() {
                        log::debug!("{}: dropped: connection set full", ShowAddr(peer));
                    }
                }
                Err(e) => match e.kind() {
                    TcpErrorKind::Reset => log::debug!("accept: {e}"),
                    TcpErrorKind::Exhausted => {
                        log::debug!("accept: {e}; pausing");
                        pause = true;
                    }
                    _ => return Err(Error::Accept(e)),
                },
            }
        }
    }
}

/// Per-connection limits.
struct Limits {
    max_bulk: usize,
    max_request: usize,
    idle: Duration,
}

/// Flushes the store when connections wait for durability (`Always`) or every second
/// (`EverySec`), and tells the waiters.
async fn committer<K: Kv, C: Timer + WallClock>(shared: &Shared<K, C>) {
    loop {
        match shared.durability {
            Durability::Always => shared.commit_wanted().await,
            Durability::EverySec => {
                select(
                    shared.commit_wanted(),
                    shared.clock.sleep(Duration::from_secs(1)),
                )
                .await;
            }
        }
        let (upto, result) = {
            let mut st = shared.state.lock().await;
            let upto = st.writes;
            if upto <= shared.durable.get() {
                continue;
            }
            let r = st.kv.sync().await.map_err(|e| alloc::format!("{e}"));
            (upto, r)
        };
        if let Err(e) = &result {
            log::error!("store: commit failed: {e}");
        }
        shared.committed(upto, result);
    }
}

/// Deletes expired keys a batch at a time.
async fn expiry<K: Kv, C: Timer + WallClock>(shared: &Shared<K, C>) {
    loop {
        let done = {
            let mut st = shared.state.lock().await;
            let now = shared.now_ms();
            commands::expire_cycle(&mut st, now, EXPIRY_BATCH).await
        };
        let pause = if done == EXPIRY_BATCH {
            Duration::from_millis(1)
        } else {
            EXPIRY_PERIOD
        };
        shared.clock.sleep(pause).await;
    }
}

/// Counts a task in one of `Shared`'s gauges while it lives (from its insertion).
struct Counted<'a>(&'a Cell<usize>);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// One client: reads commands, runs every whole one in order, replies. A client beyond
/// the cap (`refused`) is told so, and closed.
async fn connection<S: TcpStream, K: Kv, C: Timer + WallClock>(
    mut stream: S,
    shared: &Shared<K, C>,
    limits: &Limits,
    _count: Counted<'_>,
    refused: bool,
) {
    if refused {
        let deadline = shared.clock.now().saturating_add(Duration::from_secs(1));
        let _ = timeout(&shared.clock, deadline, async {
            let _ = stream
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            let _ = stream.shutdown().await;
        })
        .await;
        return;
    }
    let mut input = vec![0u8; READ_CHUNK];
    let mut filled = 0;
    let mut parser = Parser::new(limits.max_bulk, limits.max_request);
    let mut out = Vec::with_capacity(READ_CHUNK);
    // Replies in `out` wait for the store's change number `needs` to be durable; they
    // answer `commands` commands.
    let mut needs = 0u64;
    let mut commands = 0usize;
    loop {
        let mut start = 0;
        let mut close = false;
        let now = shared.now_ms();
        // The store is locked once for the whole batch, and let go while replies are
        // sent.
        let mut st = None;
        while start < filled {
            match parser.parse(&input[start..filled]) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Command { len }) => {
                    let args = parser.args(&input[start..filled]);
                    if !args.is_empty() {
                        if st.is_none() {
                            st = Some(shared.state.lock().await);
                        }
                        let state = st.as_mut().expect("locked above");
                        let before = state.writes;
                        let after = commands::execute(args, state, shared, now, &mut out).await;
                        if state.writes != before {
                            needs = state.writes;
                        }
                        commands += 1;
                        close = after == After::Close;
                    }
                    start += len;
                    if close {
                        break;
                    }
                    if out.len() >= OUT_HIGH_WATER {
                        st = None;
                        if send(
                            &mut stream,
                            shared,
                            limits,
                            &mut out,
                            &mut needs,
                            &mut commands,
                        )
                        .await
                        .is_err()
                        {
                            return;
                        }
                    }
                }
                Err(e) => {
                    out.extend_from_slice(b"-ERR ");
                    let at = out.len();
                    e.write_message(&mut out);
                    log::debug!(
                        "closing a client: {}",
                        core::str::from_utf8(&out[at..]).unwrap_or("?")
                    );
                    out.extend_from_slice(b"\r\n");
                    commands += 1;
                    close = true;
                    break;
                }
            }
        }
        drop(st);
        if send(
            &mut stream,
            shared,
            limits,
            &mut out,
            &mut needs,
            &mut commands,
        )
        .await
        .is_err()
            || close
        {
            let _ = stream.shutdown().await;
            return;
        }
        // Keep the unfinished command at the start of the buffer (the parser's
        // positions are relative to it), then read more.
        input.copy_within(start..filled, 0);
        filled -= start;
        if input.len() > 4 * READ_CHUNK && filled < READ_CHUNK {
            input.truncate(2 * READ_CHUNK);
            input.shrink_to(2 * READ_CHUNK);
        }
        if input.len() < filled + READ_CHUNK {
            input.resize(filled + READ_CHUNK, 0);
        }
        let read = stream.read(&mut input[filled..]);
        let n = if limits.idle.is_zero() {
            read.await
        } else {
            let deadline = shared.clock.now().saturating_add(limits.idle);
            match timeout(&shared.clock, deadline, read).await {
                Ok(r) => r,
                Err(_) => {
                    log::debug!("closing an idle client");
                    return;
                }
            }
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
    }
}

/// Sends the replies in `out`, first waiting until the writes they acknowledge are
/// durable (with `Durability::Always`). If that commit failed, every reply of the batch
/// becomes the error instead: nothing is acknowledged that is not durable.
async fn send<S: TcpStream, K: Kv, C: Timer + WallClock>(
    stream: &mut S,
    shared: &Shared<K, C>,
    limits: &Limits,
    out: &mut Vec<u8>,
    needs: &mut u64,
    commands: &mut usize,
) -> Result<(), ()> {
    if out.is_empty() {
        return Ok(());
    }
    if shared.durability == Durability::Always
        && *needs > shared.durable.get()
        && let Err(message) = shared.durable(*needs).await
    {
        out.clear();
        for _ in 0..*commands {
            out.extend_from_slice(b"-ERR the write could not be made durable: ");
            reply::line_text(out, message.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    *needs = 0;
    *commands = 0;
    let write = stream.write_all(out);
    let result = if limits.idle.is_zero() {
        write.await.map_err(|_| ())
    } else {
        // A client must read its replies at a reasonable pace.
        let deadline = shared.clock.now().saturating_add(limits.idle);
        match timeout(&shared.clock, deadline, write).await {
            Ok(r) => r.map_err(|_| ()),
            Err(_) => Err(()),
        }
    };
    out.clear();
    if out.capacity() > 4 * OUT_HIGH_WATER {
        out.shrink_to(OUT_HIGH_WATER);
    }
    result
}
