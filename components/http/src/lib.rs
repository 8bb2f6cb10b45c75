//! Morgana's HTTP/1.1 server component.
//!
//! [`Server`] is generic over the `TCP` and `TIME` signatures ([`Tcp`] and [`Timer`]), so
//! the same code serves from a Unix process and from a bare-metal kernel. What it answers
//! is decided by a [`Handler`]; [`StaticSite`] is the handler that serves a read-only
//! key-value store ([`KvRo`]) such as a compiled-in `crunch!` table.
//!
//! [`Tcp`]: morgana_signatures::Tcp
//! [`Timer`]: morgana_signatures::Timer
//! [`KvRo`]: morgana_signatures::KvRo
//!
//! ```ignore
//! let http = Server::connect(net, clock, Config::new(addr)).await?;
//! http.serve(StaticSite::new(&SITE)).await?;
//! ```
//!
//! # What the server does
//!
//! - Methods `GET` and `HEAD`; every other method gets `405` with `Allow: GET, HEAD`.
//!   `HEAD` gets exactly the headers `GET` would get (including `Content-Length`) and no
//!   body.
//! - Persistent connections and pipelining: requests on one connection are answered in
//!   order; bytes after a request head stay in the buffer for the next request.
//!   HTTP/1.1 keeps the connection unless the request says `Connection: close`;
//!   HTTP/1.0 closes after the response unless it says `Connection: keep-alive`, which
//!   the response then echoes.
//! - Responses carry `Server: morgana` and a `Content-Length` (none on `304`); no `Date`,
//!   because a server without a reliable clock must not send one (RFC 9110 §6.6.1).
//! - The request head is parsed by `httparse`. The target may be in origin form
//!   (`/path?query`) or absolute form (`http://host/path`); the path is percent-decoded
//!   and must be UTF-8 without control characters or `.`/`..` segments, else `400`. The
//!   query is handed to the handler but not used for lookups.
//! - `400` for malformed heads, for HTTP/1.1 without `Host`, for several `Host` fields
//!   or an invalid one, for `Content-Length` together with `Transfer-Encoding`, for an
//!   invalid or repeated `Content-Length` (lists such as `5, 5` included), and for a
//!   `Transfer-Encoding` whose last coding is not `chunked` (RFC 9112 §6.3).
//! - Request bodies: a `Content-Length` body of up to [`MAX_DISCARDED_BODY`] bytes is read
//!   and discarded before the handler runs (after a `100 Continue` when the client asked
//!   for it); a larger one gets `413`. Chunked request bodies are not decoded: such a
//!   request gets `411 Length Required` (the server needs a length to skip a body it has
//!   no use for). Any `Expect` other than `100-continue` gets `417`.
//! - `414` when the request line does not fit in the [`MAX_REQUEST_HEAD`] buffer or the
//!   path is longer than [`MAX_PATH`]; `431` when the head does not fit in
//!   [`MAX_REQUEST_HEAD`] or has more than [`MAX_HEADERS`] fields. `505` for a version
//!   other than HTTP/1.0 and HTTP/1.1 (an `HTTP/1.2` request line included: no such
//!   version exists, and `httparse` refuses it).
//! - Every error response the server makes on its own (`400`, `405`, `408`, `411`, `413`,
//!   `414`, `417`, `431`, `503`, `505`) has a small HTML body and closes the connection.
//!   (The `503` at the connection cap is sent without reading the request, so it has its
//!   body even for `HEAD`.) Handler responses, `404` and `500` included, keep it.
//! - Closing is graceful: the server shuts down its sending side and then reads and
//!   discards what the client still sends (at most [`LINGER_BYTES`] for at most
//!   [`LINGER_TIMEOUT`]), so that the client's stack does not reset the connection before
//!   the client has read the response.
//!
//! - Range requests (RFC 9110 §14) for responses a handler allows them on
//!   ([`Response::with_ranges`]; [`StaticSite`] does for every file): `Accept-Ranges:
//!   bytes`, `206` with one range or `multipart/byteranges` (ranges sorted and
//!   coalesced, at most [`MAX_RANGES`]), `416` with `Content-Range: bytes */<length>`,
//!   `If-Range` by strong entity-tag comparison. Ranges count in the representation
//!   sent (the gzip variant when chosen). Details in `range.rs`.
//!
//! # Time limits
//!
//! - `Config::idle_timeout` bounds the wait for a request head, measured from the end of
//!   the previous response (or the accept): a connection that sends nothing is closed
//!   silently; one that sent part of a head gets `408` and is closed. The same bound
//!   applies to a request body being discarded.
//! - Sending a response may take `idle_timeout` plus one second per [`MIN_SEND_RATE`]
//!   bytes of body; a client that reads slower is dropped.
//!
//! # Memory
//!
//! Each connection owns one heap block of [`MAX_REQUEST_HEAD`] + [`MAX_PATH`] +
//! [`RESPONSE_HEAD_CAPACITY`] bytes (the read buffer, the decoded path and the response
//! head), allocated once when it is accepted, plus its future (about 3.5 KiB, mostly the
//! `httparse` field table, plus the handler's future): about 18 KiB per connection, so
//! 9 MiB for 512 connections. At most `Config::max_connections` connections run at
//! once. When that many are open, a new connection is still accepted, answered `503`
//! with `Retry-After: 1` and closed, by one of at most [`REJECT_SLOTS`] small rejecting
//! tasks; when those are busy too, the new connection is closed at once. Accepting and
//! refusing (rather than leaving connections in the kernel's backlog) tells clients at
//! once instead of letting them hang behind idle keep-alive connections.
//!
//! # Handlers
//!
//! [`Handler::handle`] gets the [`Request`] and a [`Headers`] writer, and returns a
//! [`Response`]: a [`Status`] and a body borrowed from the handler, so a compiled-in store
//! is served without copying. Headers are rendered straight into the connection's
//! response-head buffer; the server adds `Server`, `Content-Length` and `Connection`
//! itself (a handler may not set those) and sends head and body with one gather write.
//! Conditional requests and content negotiation are left to the handler; [`Request`] has
//! the helpers ([`Request::if_none_match`], [`Request::accepts_gzip`]).
//!
//! [`StaticSite`] maps `/a/b` to the key `a/b`, `/` and `/dir/` to `index.html` and
//! `dir/index.html`, and answers `/dir` with `301` to `/dir/` when `dir` is a directory of
//! the store. It sends the store's media type and entity tag, answers `304` to a matching
//! `If-None-Match` (lists, `*` and weak comparison), and sends the gzip variant when the
//! client accepts gzip (a non-zero q-value, not below a weight the client gave
//! `identity`; see [`Request::accepts_gzip`]). Every response of a resource that has a
//! gzip variant carries `Vary: Accept-Encoding`; the gzip variant's entity tag is the
//! store's tag with `-gzip` appended inside the quotes, so the two representations never
//! share a strong validator.
//!
//! # Logging
//!
//! One `debug` line per connection that ends in an error (a refused request, a broken or
//! timed-out connection); nothing per request above `trace`.
#![no_std]
#![deny(unsafe_code)]
#![allow(async_fn_in_trait)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(test)]
extern crate std;

mod conn;
pub mod https;
mod negotiate;
mod range;
mod request;
mod response;
mod server;
mod static_site;

use core::time::Duration;

pub use https::{Hsts, RedirectToHttps};
pub use range::MAX_RANGES;
pub use request::{Method, Request, Version};
pub use response::{HeaderError, Headers, Response, Status};
pub use server::{Config, Error, Handler, Server};
pub use static_site::StaticSite;

/// Size of a connection's read buffer, and so the largest request head (request line,
/// header fields and the empty line) the server accepts. A request line that does not
/// fit gets `414`, a head that does not fit gets `431`.
pub const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// The longest request path (before `?`, as sent, still percent-encoded); a longer one
/// gets `414`.
pub const MAX_PATH: usize = 2 * 1024;

/// The most header fields in a request head; more get `431`.
pub const MAX_HEADERS: usize = 64;

/// The largest `Content-Length` request body the server reads and throws away; a larger
/// one gets `413`.
pub const MAX_DISCARDED_BODY: u64 = 64 * 1024;

/// Size of a connection's response-head buffer: the status line, the handler's headers
/// and the server's own. A handler may fill all of it but the last 256 bytes, which are
/// kept for the server's headers.
pub const RESPONSE_HEAD_CAPACITY: usize = 4 * 1024;

/// Bytes of body a client must accept per second (beyond `idle_timeout`) while a
/// response is sent.
pub const MIN_SEND_RATE: u64 = 4 * 1024;

/// The longest the server waits, after its last response on a connection, for the
/// client to close (capped by `idle_timeout`).
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// The most bytes read and discarded while waiting for the client to close.
pub const LINGER_BYTES: usize = 64 * 1024;

/// How many connections beyond `max_connections` can be being answered `503` at once.
pub const REJECT_SLOTS: usize = 8;

/// The `Retry-After` of a `503` at the connection cap, in seconds.
pub const RETRY_AFTER_SECS: u32 = 1;

/// How long the server pauses accepting after the stack ran out of resources.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The default `max_connections` of [`Config::new`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The default `idle_timeout` of [`Config::new`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
