//! Morgana's Redis-protocol server: RESP2 over the `TCP` signature, keys in any `KV`
//! store, timeouts and expiry from a `TIME` clock that also knows the wall time.
//!
//! ```ignore
//! let store = morgana_store::Store::open_or_format(disk, FormatOptions::new(id), Default::default()).await?;
//! let server = Server::connect(net, clock, store, Config::new(addr, Durability::Always)).await?;
//! server.serve().await?;
//! ```
//!
//! # Commands
//!
//! `PING`, `ECHO`, `GET`, `SET` (with `NX`, `XX`, `GET`, `EX`, `PX`, `EXAT`, `PXAT`,
//! `KEEPTTL`), `SETNX`, `SETEX`, `PSETEX`, `GETSET`, `GETDEL`, `APPEND`, `STRLEN`,
//! `DEL`, `EXISTS`, `TYPE`, `INCR`, `DECR`, `INCRBY`, `DECRBY`, `MGET`, `MSET`,
//! `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT` (with `NX`, `XX`, `GT`, `LT`), `TTL`,
//! `PTTL`, `PERSIST`, `KEYS` (Redis glob patterns), `SCAN` (`MATCH`, `COUNT`, `TYPE`;
//! one whole iteration per call, cursor `0` back), `DBSIZE`, `FLUSHDB`, `FLUSHALL`,
//! `SELECT 0`, `TIME`, `INFO` (server, clients, persistence, stats, keyspace), `QUIT`,
//! and for clients' start-up `HELLO 2`, `COMMAND` (no documentation), `CONFIG GET`
//! (`save`, `appendonly`, `appendfsync`, `databases`), `CLIENT SETNAME`. Replies and
//! error texts are Redis 7.0's (checked by a differential test against
//! `redis-server`); every other command gets `-ERR unknown command '...', with args
//! beginning with: ...`. Values are strings: there are no lists, hashes or sets.
//!
//! Deliberate differences from Redis: one database (`SELECT` of another number is
//! `-ERR DB index is out of range`); a bulk string longer than the store takes is a
//! protocol error that says so (`bulk length N is above this server's limit of M
//! bytes`) and closes the connection, where Redis would take up to 512 MB; a bulk string
//! not followed by CRLF is a protocol error (Redis skips two bytes blindly).
//!
//! # Protocol and bad input
//!
//! Requests are RESP arrays of bulk strings or inline commands (quoting as
//! `redis-cli` and Redis understand it); pipelined commands are answered in order. A
//! malformed request gets `-ERR Protocol error: ...` (Redis's texts) and the connection
//! is closed after the replies before it, as Redis does. Nothing is allocated from a
//! length the client announces: a header of a million elements costs nothing until the
//! elements arrive, and a command larger than [`Config::max_request`] is refused. A full
//! disk, a key or value above the store's limits, a corrupt record: `-ERR` with the
//! store's message, and the server carries on.
//!
//! # Durability
//!
//! [`Durability::Always`]: the replies to a client's batch of pipelined commands wait
//! until the writes they acknowledge are durable. One commit (the store's `sync`) covers
//! everything every connection wrote in the same turn of the event loop — Redis's group
//! commit for `appendfsync always`. If the commit fails, the batch's replies are errors
//! instead. [`Durability::EverySec`]: replies at once, a commit every second.
//!
//! # Expiry
//!
//! A key's expiry time (Unix milliseconds) is its `meta` word in the store, so it
//! survives restarts. Expired keys are absent to every command and deleted when met;
//! an index of the keys that have one (rebuilt from the store at start) lets a cycle
//! delete up to 200 expired keys every 100 ms, more often while there are more.
//!
//! # Memory
//!
//! Per connection: a 16 KiB input buffer (growing to the largest command, at most
//! [`Config::max_request`], and shrinking back), the replies of one batch (sent once
//! 64 KiB wait), and the argument positions of one command. At most
//! [`Config::max_connections`] connections; the others get
//! `-ERR max number of clients reached`.
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

#[cfg(test)]
extern crate std;

mod commands;
pub mod glob;
pub mod protocol;
mod server;
mod state;

pub use server::{
    Config, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_REQUEST, Durability, Error,
    Server,
};

/// The Redis version this server answers to `INFO` and `HELLO`: the one whose commands
/// and replies it follows.
pub const REDIS_VERSION: &str = "7.0.0";
