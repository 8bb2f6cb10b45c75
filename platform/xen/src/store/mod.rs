//! A xenstore client over the store ring (`xenstore_domain_interface`).
//!
//! The page that `HVM_PARAM_STORE_PFN` names holds two byte rings — `req[1024]` at 0
//! (guest → xenstored) and `rsp[1024]` at 1024 — then the free-running indices
//! `req_cons`, `req_prod`, `rsp_cons`, `rsp_prod` (u32 at 2048..2064). Every message is
//! a 16-byte header (`type`, `req_id`, `tx_id`, `len`, little-endian u32) and `len`
//! payload bytes (at most 4096). Requests and replies are streamed through the rings
//! in as many pieces as needed; the store's event channel is signalled after each.
//!
//! The client is generic over a [`Transport`] (ring memory, notify, bounded wait) so
//! that the host tests drive it against a simulated ring and server. Whatever the
//! other side does — malformed or oversized replies, error replies, replies for
//! another request, indices that make no sense, silence — the client returns a typed
//! [`StoreError`] instead of hanging or panicking; after a framing error the ring's
//! state is unknown and the client refuses further requests ([`StoreError::Broken`]).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Ring size of each direction.
pub const RING_SIZE: u32 = 1024;
/// Largest payload xenstored accepts or sends.
pub const PAYLOAD_MAX: usize = 4096;
const HEADER: usize = 16;
const REQ: usize = 0;
const RSP: usize = 1024;
const REQ_CONS: usize = 2048;
const REQ_PROD: usize = 2052;
const RSP_CONS: usize = 2056;
const RSP_PROD: usize = 2060;

/// Message types (`xsd_sockmsg_type`) the client uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MsgType {
    /// List the children of a node.
    Directory = 1,
    /// Read a node.
    Read = 2,
    /// Watch a path.
    Watch = 4,
    /// Stop watching.
    Unwatch = 5,
    /// Write a node.
    Write = 11,
    /// Remove a node and everything below it.
    Rm = 13,
    /// A watch fired (unsolicited).
    WatchEvent = 15,
    /// Error reply; the payload is the errno name (`"ENOENT\0"`).
    Error = 16,
}

/// The ring memory and the event channel: what the client needs from its host.
pub trait Transport {
    /// Reads the u32 at byte `offset` of the shared page (volatile, acquire).
    fn read_u32(&mut self, offset: usize) -> u32;
    /// Writes the u32 at byte `offset` (release).
    fn write_u32(&mut self, offset: usize, value: u32);
    /// Reads the byte at `offset`.
    fn read_u8(&mut self, offset: usize) -> u8;
    /// Writes the byte at `offset`.
    fn write_u8(&mut self, offset: usize, value: u8);
    /// Signals the store's event channel.
    fn notify(&mut self);
    /// Waits a little for the other side; `false` when the time allowed for the current
    /// request has run out.
    fn wait(&mut self) -> bool;
    /// Starts the time allowed for one request.
    fn start_request(&mut self) {}
}

/// Why a xenstore operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// xenstored answered with this error (`ENOENT`, `EACCES`...).
    Xen(String),
    /// No (complete) reply in the time allowed.
    Timeout,
    /// A reply header claims a payload longer than [`PAYLOAD_MAX`].
    Oversized(u32),
    /// A request payload would exceed [`PAYLOAD_MAX`].
    RequestTooLarge(usize),
    /// The ring indices are inconsistent (more than a ring's worth outstanding).
    CorruptRing,
    /// A reply of an unexpected type or request id.
    UnexpectedReply {
        /// Its type.
        kind: u32,
        /// Its request id.
        req_id: u32,
    },
    /// A reply payload that does not parse (e.g. a watch event without a token).
    Malformed,
    /// An earlier framing error left the ring in an unknown state.
    Broken,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Xen(e) => write!(f, "xenstore error {e}"),
            StoreError::Timeout => f.write_str("xenstore did not answer in time"),
            StoreError::Oversized(n) => write!(f, "xenstore reply of {n} bytes exceeds 4096"),
            StoreError::RequestTooLarge(n) => {
                write!(f, "xenstore request of {n} bytes exceeds 4096")
            }
            StoreError::CorruptRing => f.write_str("xenstore ring indices are inconsistent"),
            StoreError::UnexpectedReply { kind, req_id } => {
                write!(
                    f,
                    "unexpected xenstore reply type {kind} for request {req_id}"
                )
            }
            StoreError::Malformed => f.write_str("malformed xenstore reply"),
            StoreError::Broken => {
                f.write_str("xenstore connection unusable after an earlier error")
            }
        }
    }
}

/// A fired watch: the path that changed and the watch's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// The node that changed.
    pub path: String,
    /// The token given to [`Client::watch`].
    pub token: String,
}

/// A reply: its type and payload.
struct Reply {
    kind: u32,
    req_id: u32,
    payload: Vec<u8>,
}

/// The xenstore client (no transactions: `tx_id` 0).
pub struct Client<T: Transport> {
    t: T,
    next_id: u32,
    broken: bool,
    events: VecDeque<WatchEvent>,
}

impl<T: Transport> Client<T> {
    /// A client over `transport`.
    pub fn new(transport: T) -> Client<T> {
        Client {
            t: transport,
            next_id: 1,
            broken: false,
            events: VecDeque::new(),
        }
    }

    /// The transport (for tests and drivers that share the event channel).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.t
    }

    /// Reads node `path`.
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>, StoreError> {
        self.request(MsgType::Read, &[path.as_bytes(), b"\0"])
    }

    /// Reads node `path` as text (invalid UTF-8 is an error: [`StoreError::Malformed`]).
    pub fn read_string(&mut self, path: &str) -> Result<String, StoreError> {
        String::from_utf8(self.read(path)?).map_err(|_| StoreError::Malformed)
    }

    /// Writes `value` to node `path` (creating it).
    pub fn write(&mut self, path: &str, value: &[u8]) -> Result<(), StoreError> {
        self.request(MsgType::Write, &[path.as_bytes(), b"\0", value])
            .map(drop)
    }

    /// Removes node `path` and everything below it.
    pub fn remove(&mut self, path: &str) -> Result<(), StoreError> {
        self.request(MsgType::Rm, &[path.as_bytes(), b"\0"])
            .map(drop)
    }

    /// The names of `path`'s children.
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, StoreError> {
        let p = self.request(MsgType::Directory, &[path.as_bytes(), b"\0"])?;
        split_nul(&p)
            .map(|s| String::from_utf8(s.to_vec()).map_err(|_| StoreError::Malformed))
            .collect()
    }

    /// Watches `path` (and below); events carry `token`. xenstored fires one event at
    /// once, which [`Client::next_event`] returns like any other.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), StoreError> {
        self.request(
            MsgType::Watch,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )
        .map(drop)
    }

    /// Stops watching `path` with `token`.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), StoreError> {
        self.request(
            MsgType::Unwatch,
            &[path.as_bytes(), b"\0", token.as_bytes(), b"\0"],
        )
        .map(drop)
    }

    /// The next watch event, if one has arrived (does not wait). Only whole messages
    /// are taken: xenstored writes a message's header and payload separately and
    /// signals after each, so the event loop may look between the two; a half-written
    /// event stays in the ring until the rest arrives.
    pub fn next_event(&mut self) -> Result<Option<WatchEvent>, StoreError> {
        if self.events.is_empty() && !self.broken {
            while self.message_ready()? {
                let r = self.read_reply()?;
                if r.kind == MsgType::WatchEvent as u32 {
                    self.events.push_back(parse_event(&r.payload)?);
                } else {
                    return Err(StoreError::UnexpectedReply {
                        kind: r.kind,
                        req_id: r.req_id,
                    });
                }
            }
        }
        Ok(self.events.pop_front())
    }

    /// Sends one request and waits for its reply; watch events that arrive meanwhile
    /// are queued for [`Client::next_event`].
    pub fn request(&mut self, kind: MsgType, parts: &[&[u8]]) -> Result<Vec<u8>, StoreError> {
        if self.broken {
            return Err(StoreError::Broken);
        }
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > PAYLOAD_MAX {
            return Err(StoreError::RequestTooLarge(len));
        }
        let req_id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.t.start_request();
        let mut header = [0u8; HEADER];
        header[0..4].copy_from_slice(&(kind as u32).to_le_bytes());
        header[4..8].copy_from_slice(&req_id.to_le_bytes());
        header[12..16].copy_from_slice(&(len as u32).to_le_bytes());
        let result = self
            .send(&header)
            .and_then(|()| parts.iter().try_for_each(|p| self.send(p)));
        self.t.notify();
        self.fail_on_framing(result)?;
        loop {
            let r = self.read_reply()?;
            if r.kind == MsgType::WatchEvent as u32 {
                let ev = parse_event(&r.payload);
                let ev = self.fail_on_framing(ev)?;
                self.events.push_back(ev);
                continue;
            }
            if r.req_id != req_id {
                self.broken = true;
                return Err(StoreError::UnexpectedReply {
                    kind: r.kind,
                    req_id: r.req_id,
                });
            }
            if r.kind == MsgType::Error as u32 {
                let name = r.payload.split(|&b| b == 0).next().unwrap_or(&[]);
                // Xen's names are ASCII ("ENOENT"); bytes as Latin-1 chars need no
                // UTF-8 repair code (`from_utf8_lossy` is a kilobyte of image).
                return Err(StoreError::Xen(
                    name.iter().map(|&b| char::from(b)).collect(),
                ));
            }
            if r.kind != kind as u32 {
                self.broken = true;
                return Err(StoreError::UnexpectedReply {
                    kind: r.kind,
                    req_id: r.req_id,
                });
            }
            return Ok(r.payload);
        }
    }

    fn fail_on_framing<V>(&mut self, r: Result<V, StoreError>) -> Result<V, StoreError> {
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    /// Streams `bytes` into the request ring.
    fn send(&mut self, mut bytes: &[u8]) -> Result<(), StoreError> {
        while !bytes.is_empty() {
            let cons = self.t.read_u32(REQ_CONS);
            let prod = self.t.read_u32(REQ_PROD);
            let used = prod.wrapping_sub(cons);
            if used > RING_SIZE {
                return Err(StoreError::CorruptRing);
            }
            let free = (RING_SIZE - used) as usize;
            if free == 0 {
                self.t.notify();
                if !self.t.wait() {
                    return Err(StoreError::Timeout);
                }
                continue;
            }
            let n = free.min(bytes.len());
            for (i, &b) in bytes[..n].iter().enumerate() {
                let at = REQ + (prod.wrapping_add(i as u32) % RING_SIZE) as usize;
                self.t.write_u8(at, b);
            }
            self.t.write_u32(REQ_PROD, prod.wrapping_add(n as u32));
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Bytes waiting in the reply ring.
    fn reply_available(&mut self) -> Result<usize, StoreError> {
        let cons = self.t.read_u32(RSP_CONS);
        let prod = self.t.read_u32(RSP_PROD);
        let avail = prod.wrapping_sub(cons);
        if avail > RING_SIZE {
            self.broken = true;
            return Err(StoreError::CorruptRing);
        }
        Ok(avail as usize)
    }

    /// Whether a whole message (header and payload) waits in the ring, without taking
    /// anything from it.
    fn message_ready(&mut self) -> Result<bool, StoreError> {
        let avail = self.reply_available()?;
        if avail < HEADER {
            return Ok(false);
        }
        let cons = self.t.read_u32(RSP_CONS);
        let mut len = [0u8; 4];
        for (i, b) in len.iter_mut().enumerate() {
            let at = RSP + (cons.wrapping_add(12 + i as u32) % RING_SIZE) as usize;
            *b = self.t.read_u8(at);
        }
        let len = u32::from_le_bytes(len);
        if len as usize > PAYLOAD_MAX {
            self.broken = true;
            return Err(StoreError::Oversized(len));
        }
        Ok(avail >= HEADER + len as usize)
    }

    /// Reads exactly `out.len()` bytes of reply, waiting (bounded) as needed.
    fn receive(&mut self, out: &mut [u8]) -> Result<(), StoreError> {
        let mut done = 0;
        while done < out.len() {
            let avail = self.reply_available()?;
            if avail == 0 {
                if !self.t.wait() {
                    self.broken = true;
                    return Err(StoreError::Timeout);
                }
                continue;
            }
            let cons = self.t.read_u32(RSP_CONS);
            let n = avail.min(out.len() - done);
            for (i, slot) in out[done..done + n].iter_mut().enumerate() {
                let at = RSP + (cons.wrapping_add(i as u32) % RING_SIZE) as usize;
                *slot = self.t.read_u8(at);
            }
            self.t.write_u32(RSP_CONS, cons.wrapping_add(n as u32));
            self.t.notify();
            done += n;
        }
        Ok(())
    }

    fn read_reply(&mut self) -> Result<Reply, StoreError> {
        if self.broken {
            return Err(StoreError::Broken);
        }
        let mut h = [0u8; HEADER];
        self.receive(&mut h)?;
        let word = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        let (kind, req_id, len) = (word(0), word(4), word(12));
        if len as usize > PAYLOAD_MAX {
            self.broken = true;
            return Err(StoreError::Oversized(len));
        }
        let mut payload = alloc::vec![0u8; len as usize];
        self.receive(&mut payload)?;
        Ok(Reply {
            kind,
            req_id,
            payload,
        })
    }
}

/// The NUL-terminated strings of a payload (a trailing NUL ends the list).
fn split_nul(p: &[u8]) -> impl Iterator<Item = &[u8]> {
    let p = p.strip_suffix(b"\0").unwrap_or(p);
    p.split(|&b| b == 0).filter(move |_| !p.is_empty())
}

fn parse_event(p: &[u8]) -> Result<WatchEvent, StoreError> {
    let mut it = split_nul(p);
    let path = it.next().ok_or(StoreError::Malformed)?;
    let token = it.next().ok_or(StoreError::Malformed)?;
    let s = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| StoreError::Malformed);
    Ok(WatchEvent {
        path: s(path)?,
        token: s(token)?,
    })
}

#[cfg(test)]
pub(crate) mod tests;
