//! The job: say where the server listens, then serve until the listener fails.

use alloc::format;
use core::fmt;
use morgana_resp::{Error, Server};
use morgana_signatures::{Console, Kv, ShowAddr, Tcp, Timer, WallClock};

/// The application, written against the signatures only: the same code serves from a Unix
/// process and from a kernel.
pub struct KvServer;

/// Why the server stopped.
pub struct Stopped<E, S>(Error<E, S>);

impl<E: fmt::Display, S: fmt::Display> fmt::Display for Stopped<E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the Redis-protocol server stopped: {}", self.0)
    }
}

impl KvServer {
    /// Serves the store behind `redis`; says on `console` where it listens first.
    pub async fn start<C, T, Tm, K>(
        console: C,
        redis: Server<T, Tm, K>,
    ) -> Result<(), Stopped<T::Error, K::Error>>
    where
        C: Console,
        T: Tcp,
        Tm: Timer + WallClock,
        K: Kv,
    {
        console.write_str(&format!(
            "{}: serving the Redis protocol on redis://{}/\n",
            env!("CARGO_PKG_NAME"),
            ShowAddr(redis.local_addr())
        ));
        redis.serve().await.map_err(Stopped)
    }
}
