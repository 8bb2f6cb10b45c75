//! The server: configuration, errors, the handler trait and the accept loop.

use core::fmt;
use core::future::{Future, poll_fn};
use core::net::SocketAddr;
use core::pin::pin;
use core::time::Duration;

use morgana_rt::TaskSet;
use morgana_signatures::{ShowAddr, Tcp, TcpError, TcpErrorKind, TcpListener, Timer};

use crate::conn;
use crate::request::Request;
use crate::response::{Headers, Response};
use crate::{ACCEPT_BACKOFF, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, REJECT_SLOTS};

/// What the server is told by the appliance (compiled in by codegen).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub address: SocketAddr,
    /// The most connections served at once; beyond it a new connection gets `503`.
    pub max_connections: usize,
    /// How long a connection may wait for (or dawdle over) a request head.
    pub idle_timeout: Duration,
}

impl Config {
    /// A configuration for `address` with [`DEFAULT_MAX_CONNECTIONS`] and
    /// [`DEFAULT_IDLE_TIMEOUT`].
    pub const fn new(address: SocketAddr) -> Config {
        Config {
            address,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// Why the server could not start or stopped. `E` is the TCP stack's error.
#[derive(Debug)]
pub enum Error<E> {
    /// The configuration cannot work (zero connections, zero timeout).
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
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            Error::Listen { address, error } => {
                write!(f, "cannot listen on {}: {error}", ShowAddr(*address))
            }
            Error::LocalAddr(e) => write!(f, "cannot read the listening address: {e}"),
            Error::Accept(e) => write!(f, "cannot accept connections: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

/// The application: turns a request into a response.
///
/// The server calls it for `GET` and `HEAD` requests that passed every protocol check;
/// everything else the server answers itself. The handler writes its header fields into
/// `headers` and returns the status and a body borrowed from itself (`'a`), so content
/// kept by the handler (a compiled-in store) is sent without a copy. See
/// [`Headers`] for what happens when a field cannot be written.
///
/// The server adds `Server`, `Content-Length` and `Connection`, sends `HEAD` responses
/// without the body, and drops the body of `204` and `304`. A `405` from a handler gets
/// `Allow: GET, HEAD` like the server's own.
pub trait Handler {
    /// Answers `request`.
    async fn handle<'a>(&'a self, request: &Request<'_>, headers: &mut Headers<'_>)
    -> Response<'a>;
}

impl<H: Handler + ?Sized> Handler for &H {
    async fn handle<'a>(
        &'a self,
        request: &Request<'_>,
        headers: &mut Headers<'_>,
    ) -> Response<'a> {
        (**self).handle(request, headers).await
    }
}

/// An HTTP/1.1 server listening on a [`Tcp`] stack, with timeouts from a [`Timer`].
pub struct Server<T: Tcp, C: Timer> {
    /// Kept so that a stack whose handle owns resources stays alive while serving.
    _net: T,
    listener: T::Listener,
    clock: C,
    config: Config,
    local_addr: SocketAddr,
}

impl<T: Tcp, C: Timer> fmt::Debug for Server<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<T: Tcp, C: Timer> Server<T, C> {
    /// Checks `config` and starts listening on `config.address`.
    pub async fn connect(net: T, clock: C, config: Config) -> Result<Self, Error<T::Error>> {
        if config.max_connections == 0 {
            return Err(Error::InvalidConfig("max_connections must be at least 1"));
        }
        if config.idle_timeout.is_zero() {
            return Err(Error::InvalidConfig("idle_timeout must not be zero"));
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
            config,
            local_addr,
        })
    }

    /// The address actually listened on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Serves connections with `handler` until accepting fails for good.
    ///
    /// Connections run concurrently as members of a [`TaskSet`] polled by this future
    /// (no spawning executor). Accept errors of kind `Reset` (a connection aborted
    /// before it was accepted) are skipped; `Exhausted` pauses accepting for
    /// [`ACCEPT_BACKOFF`] while the open connections carry on; any other error ends
    /// `serve` with [`Error::Accept`], dropping the open connections.
    pub async fn serve<H: Handler>(self, handler: H) -> Result<(), Error<T::Error>> {
        let Server {
            _net,
            mut listener,
            clock,
            config,
            local_addr: _,
        } = self;
        let handler = &handler;
        let clock = &clock;
        let idle = config.idle_timeout;
        let mut conns = TaskSet::new(config.max_connections);
        let mut rejects = TaskSet::new(REJECT_SLOTS);
        loop {
            let accepted = drive(&mut conns, &mut rejects, listener.accept()).await;
            match accepted {
                Ok((stream, peer)) => {
                    if conns.is_full() {
                        if rejects.insert(conn::refuse(stream, clock, idle)).is_err() {
                            log::debug!("{}: dropped: at the connection cap", ShowAddr(peer));
                        }
                    } else if conns
                        .insert(conn::serve(stream, peer, clock, idle, handler))
                        .is_err()
                    {
                        // Not reached: the set had room.
                        log::debug!("{}: dropped: connection set full", ShowAddr(peer));
                    }
                }
                Err(e) => match e.kind() {
                    TcpErrorKind::Reset => log::debug!("accept: {e}"),
                    TcpErrorKind::Exhausted => {
                        log::debug!("accept: {e}; pausing");
                        drive(&mut conns, &mut rejects, clock.sleep(ACCEPT_BACKOFF)).await;
                    }
                    _ => return Err(Error::Accept(e)),
                },
            }
        }
    }
}

/// Runs `fut` to completion while driving both task sets.
async fn drive<A, B, F>(conns: &mut TaskSet<A>, rejects: &mut TaskSet<B>, fut: F) -> F::Output
where
    A: Future<Output = ()>,
    B: Future<Output = ()>,
    F: Future,
{
    let mut fut = pin!(fut);
    poll_fn(|cx| {
        conns.poll_tasks(cx);
        rejects.poll_tasks(cx);
        fut.as_mut().poll(cx)
    })
    .await
}
