//! The commands: what each does to the store, and its reply, with Redis 7's error texts.
//!
//! Every value carries its expiry time in the store's `meta` word (Unix milliseconds,
//! 0 for none). A key whose time has passed is treated as absent everywhere and deleted
//! when a command meets it (and by the expiry cycle, `Server`'s job).

use alloc::boxed::Box;
use alloc::vec::Vec;

use morgana_signatures::{Kv, KvError, KvErrorKind, MonotonicClock, WallClock};

use crate::glob;
use crate::protocol::{Args, parse_i64, reply};
use crate::state::{Shared, State};

/// What the connection does after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum After {
    Continue,
    /// `QUIT`: send the replies, then close.
    Close,
}

fn expired(meta: u64, now: u64) -> bool {
    meta != 0 && meta <= now
}

const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const SYNTAX: &str = "ERR syntax error";

/// Writes the error of a store failure.
fn store_error<E: core::fmt::Display>(out: &mut Vec<u8>, e: &E) {
    reply::error_fmt(out, format_args!("ERR {e}"));
}

/// `-ERR <a><shown b, at most 128 bytes><c>`, without `core::fmt`.
#[inline(never)]
fn error3(out: &mut Vec<u8>, a: &str, b: &[u8], c: &str) {
    out.push(b'-');
    out.extend_from_slice(a.as_bytes());
    reply::line_shown(out, b, 128);
    out.extend_from_slice(c.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Command `i`'s name as Redis shows it in errors: lower case.
fn name_of(i: usize) -> &'static [u8] {
    NAMES.split(|&b| b == b' ').nth(i).unwrap_or(b"")
}

fn arity(out: &mut Vec<u8>, i: usize) {
    let name = name_of(i);
    error3(
        out,
        "ERR wrong number of arguments for '",
        name,
        "' command",
    );
}

fn invalid_expire(out: &mut Vec<u8>, i: usize) {
    let name = name_of(i);
    error3(out, "ERR invalid expire time in '", name, "' command");
}

/// Case-insensitive comparison with an upper-case ASCII word.
#[inline(never)]
fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The commands [`execute`] knows, found once from the lower-cased name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cmd {
    Get,
    Incr,
    Decr,
    Ttl,
    Pttl,
    Persist,
    Keys,
    Echo,
    Select,
    Type,
    Getdel,
    Strlen,
    Incrby,
    Decrby,
    Setnx,
    Getset,
    Append,
    Setex,
    Psetex,
    Set,
    Mset,
    Expire,
    Pexpire,
    Expireat,
    Pexpireat,
    Del,
    Exists,
    Mget,
    Scan,
    Config,
    Client,
    Dbsize,
    Time,
    Flushdb,
    Flushall,
    Info,
    Quit,
    Ping,
    Command,
    Hello,
}

/// The commands' names (lower case, as arity errors show them), one space between
/// each, in [`SPEC`]'s order: found by one pass, without copying the name.
const NAMES: &[u8] = b"set get incr decr ttl pttl persist keys echo select type getdel strlen incrby decrby setnx getset append setex psetex mset expire pexpire expireat pexpireat del exists mget scan config client dbsize time flushdb flushall info quit ping command hello";

/// Each of [`NAMES`]: the command and its arity (a positive arity is exact, a negative
/// one a minimum, as Redis counts it).
const SPEC: [(Cmd, i8); 40] = [
    (Cmd::Set, -3),
    (Cmd::Get, 2),
    (Cmd::Incr, 2),
    (Cmd::Decr, 2),
    (Cmd::Ttl, 2),
    (Cmd::Pttl, 2),
    (Cmd::Persist, 2),
    (Cmd::Keys, 2),
    (Cmd::Echo, 2),
    (Cmd::Select, 2),
    (Cmd::Type, 2),
    (Cmd::Getdel, 2),
    (Cmd::Strlen, 2),
    (Cmd::Incrby, 3),
    (Cmd::Decrby, 3),
    (Cmd::Setnx, 3),
    (Cmd::Getset, 3),
    (Cmd::Append, 3),
    (Cmd::Setex, 4),
    (Cmd::Psetex, 4),
    (Cmd::Mset, -3),
    (Cmd::Expire, -3),
    (Cmd::Pexpire, -3),
    (Cmd::Expireat, -3),
    (Cmd::Pexpireat, -3),
    (Cmd::Del, -2),
    (Cmd::Exists, -2),
    (Cmd::Mget, -2),
    (Cmd::Scan, -2),
    (Cmd::Config, -2),
    (Cmd::Client, -2),
    (Cmd::Dbsize, 1),
    (Cmd::Time, 1),
    (Cmd::Flushdb, -1),
    (Cmd::Flushall, -1),
    (Cmd::Info, -1),
    (Cmd::Quit, -1),
    (Cmd::Ping, -1),
    (Cmd::Command, -1),
    (Cmd::Hello, -1),
];

/// Runs one command (`args` not empty) and writes its reply. `now` is the time in Unix
/// milliseconds, read once per batch of pipelined commands (as Redis reads it once per
/// command: the difference is microseconds).
pub(crate) async fn execute<K: Kv, C: MonotonicClock + WallClock>(
    args: Args<'_>,
    st: &mut State<K>,
    shared: &Shared<K, C>,
    now: u64,
    out: &mut Vec<u8>,
) -> After {
    st.stats.commands += 1;
    let name = args.get(0);
    let n = args.len();
    let Some(i) = word(NAMES, name) else {
        unknown(out, args);
        return After::Continue;
    };
    // A positive arity is exact, a negative one a minimum (Redis's).
    let (c, want) = SPEC[i];
    let ok = if want > 0 {
        n == want as usize
    } else {
        n >= want.unsigned_abs() as usize
    };
    if !ok || (c == Cmd::Ping && n > 2) || (c == Cmd::Mset && n.is_multiple_of(2)) {
        arity(out, i);
        return After::Continue;
    }
    match c {
        Cmd::Ping => {
            if n == 2 {
                reply::bulk(out, args.get(1));
            } else {
                reply::simple(out, "PONG");
            }
        }
        Cmd::Echo => reply::bulk(out, args.get(1)),
        Cmd::Quit => {
            reply::ok(out);
            return After::Close;
        }
        Cmd::Get | Cmd::Mget => {
            if c == Cmd::Mget {
                reply::array(out, n - 1);
            }
            for i in 1..n {
                get(args.get(i), st, now, out).await;
            }
        }
        Cmd::Keys | Cmd::Scan => {
            // SCAN answers a whole iteration at once (cursor 0 back), which SCAN's
            // contract allows: its reply's head is two elements, the cursor "0" first.
            const HEAD: &[u8] = b"*2\r\n$1\r\n0\r\n";
            let (pattern, head) = if c == Cmd::Keys {
                (args.get(1), &b""[..])
            } else {
                match scan_options(args, out) {
                    Some(Some(pattern)) => (pattern, HEAD),
                    Some(None) => {
                        out.extend_from_slice(HEAD);
                        reply::array(out, 0);
                        return After::Continue;
                    }
                    None => return After::Continue,
                }
            };
            matching(st, pattern, now, head, out).await;
        }
        Cmd::Dbsize => reply::integer(out, st.kv.len() as i64),
        Cmd::Flushdb | Cmd::Flushall => {
            if n > 2 || (n == 2 && !is(args.get(1), "ASYNC") && !is(args.get(1), "SYNC")) {
                reply::error(out, SYNTAX);
                return After::Continue;
            }
            match st.kv.clear().await {
                Ok(()) => {
                    st.writes += 1;
                    st.ttl.clear();
                    reply::ok(out);
                }
                Err(e) => store_error(out, &e),
            }
        }
        Cmd::Select => match parse_i64(args.get(1)) {
            Some(0) => reply::ok(out),
            Some(_) => reply::error(out, "ERR DB index is out of range"),
            None => reply::error(out, NOT_INTEGER),
        },
        Cmd::Time => {
            let us = match shared.clock.now_since_epoch() {
                Some(d) => u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
                None => now * 1000,
            };
            reply::array(out, 2);
            let mut b = Vec::new();
            reply::unsigned(&mut b, us / 1_000_000);
            reply::bulk(out, &b);
            b.clear();
            reply::unsigned(&mut b, us % 1_000_000);
            reply::bulk(out, &b);
        }
        Cmd::Info => info(args, st, shared, out),
        Cmd::Command => {
            if n >= 2 && is(args.get(1), "COUNT") {
                reply::integer(out, 37);
            } else {
                // No command documentation: clients (redis-cli's hints) cope with none.
                reply::array(out, 0);
            }
        }
        Cmd::Config => config(args, shared, out),
        Cmd::Client => {
            if is(args.get(1), "SETNAME") && n == 3 {
                reply::ok(out);
            } else {
                error3(
                    out,
                    "ERR unknown subcommand '",
                    args.get(1),
                    "'. Try CLIENT HELP.",
                );
            }
        }
        Cmd::Hello => {
            if n >= 2 && args.get(1) != b"2" {
                if parse_i64(args.get(1)).is_some() {
                    reply::error(out, "NOPROTO unsupported protocol version");
                } else {
                    reply::error(
                        out,
                        "ERR Protocol version is not an integer or out of range",
                    );
                }
            } else {
                hello(shared, out);
            }
        }
        _ => return keys(c, i, args, st, now, out).await,
    }
    After::Continue
}

/// What a key command needs to know of its key before deciding.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Need {
    Nothing,
    Meta,
    Value,
}

/// A key command's options, checked before its key is looked up.
#[derive(Clone, Copy, Default)]
struct Opts {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    /// `SET ... GET`.
    get: bool,
    /// `SET ... KEEPTTL`.
    keep: bool,
    /// The deadline to set (Unix ms; `SET`, `SETEX`: 0 for none; `EXPIRE`: may be in
    /// the past).
    deadline: i64,
    /// `INCR` and friends: what to add.
    by: i64,
}

/// What a key command writes, after looking its key up.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    Nothing,
    /// Stores argument `i` with this deadline.
    Arg(usize, u64),
    /// Stores the command's computed value with this deadline.
    Buf(u64),
    Delete,
}

/// A key command's reply once its write is done.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rep {
    /// Nothing now: an error already written, or a reply written after the last key.
    Written,
    Ok,
    Nil,
    Int(i64),
    /// The old value (nil if there was none).
    Old,
    Simple(&'static str),
    /// One more for `DEL` and `EXISTS`.
    Count,
}

/// The commands on keys: each key is looked up once, what to write is decided, written,
/// then answered. (One path for all of them keeps the async state machine small.)
async fn keys<K: Kv>(
    c: Cmd,
    cmd: usize,
    args: Args<'_>,
    st: &mut State<K>,
    now: u64,
    out: &mut Vec<u8>,
) -> After {
    let Some(o) = options(c, cmd, args, now, out) else {
        return After::Continue;
    };
    let n = args.len();
    let need = match c {
        Cmd::Setex | Cmd::Psetex | Cmd::Mset => Need::Nothing,
        Cmd::Setnx | Cmd::Del | Cmd::Exists | Cmd::Type | Cmd::Ttl | Cmd::Pttl => Need::Meta,
        _ => Need::Value,
    };
    // MSET's keys are every other argument, DEL's and EXISTS's every one.
    let (last, step) = match c {
        Cmd::Mset => (n - 1, 2),
        Cmd::Del | Cmd::Exists => (n, 1),
        _ => (2, 1),
    };
    let mut count = 0;
    let mut buf = Vec::new();
    let mut i = 1;
    while i < last {
        let key = args.get(i);
        let mut old = None;
        if need != Need::Nothing {
            match lookup(st, key, now, need == Need::Value, out).await {
                Ok(found) => old = found,
                Err(()) => return After::Continue,
            }
        }
        let (write, rep) = decide(c, &o, &mut old, args, i, now, &mut buf, out);
        let (value, meta) = match write {
            Write::Nothing => (None, 0),
            Write::Delete => (Some(None), 0),
            Write::Arg(j, meta) => (Some(Some(args.get(j))), meta),
            Write::Buf(meta) => (Some(Some(&buf[..])), meta),
        };
        if let Some(value) = value
            && !store(st, key, value, meta, out).await
        {
            return After::Continue;
        }
        match rep {
            Rep::Written => {}
            Rep::Ok => reply::ok(out),
            Rep::Nil => reply::nil(out),
            Rep::Int(v) => reply::integer(out, v),
            Rep::Old => match &old {
                Some((v, _)) => reply::bulk(out, v),
                None => reply::nil(out),
            },
            Rep::Simple(s) => reply::simple(out, s),
            Rep::Count => count += 1,
        }
        i += step;
    }
    match c {
        Cmd::Del | Cmd::Exists => reply::integer(out, count),
        Cmd::Mset => reply::ok(out),
        _ => {}
    }
    After::Continue
}

/// Checks a key command's options and numbers before its key is looked up; `None`
/// when the error reply is written.
fn options(c: Cmd, cmd: usize, args: Args<'_>, now: u64, out: &mut Vec<u8>) -> Option<Opts> {
    let mut o = Opts::default();
    match c {
        Cmd::Set => set_options(cmd, args, now, &mut o, out)?,
        Cmd::Setex | Cmd::Psetex => {
            let Some(t) = parse_i64(args.get(2)) else {
                reply::error(out, NOT_INTEGER);
                return None;
            };
            let ms = if c == Cmd::Setex {
                t.checked_mul(1000)
            } else {
                Some(t)
            };
            match ms
                .filter(|&ms| ms > 0)
                .and_then(|ms| (ms as u64).checked_add(now))
            {
                Some(deadline) => o.deadline = deadline as i64,
                None => {
                    invalid_expire(out, cmd);
                    return None;
                }
            }
        }
        Cmd::Incr => o.by = 1,
        Cmd::Decr => o.by = -1,
        Cmd::Incrby | Cmd::Decrby => {
            o.by = match parse_i64(args.get(2)) {
                Some(v) if c == Cmd::Incrby => v,
                Some(i64::MIN) => {
                    reply::error(out, "ERR decrement would overflow");
                    return None;
                }
                Some(v) => -v,
                None => {
                    reply::error(out, NOT_INTEGER);
                    return None;
                }
            }
        }
        Cmd::Expire | Cmd::Pexpire | Cmd::Expireat | Cmd::Pexpireat => {
            expire_options(c, cmd, args, now, &mut o, out)?
        }
        _ => {}
    }
    Some(o)
}

/// What a key command does once its key (argument `i`) is looked up: what to write
/// and how to answer.
#[allow(clippy::too_many_arguments)]
fn decide(
    c: Cmd,
    o: &Opts,
    old: &mut Option<(Vec<u8>, u64)>,
    args: Args<'_>,
    i: usize,
    now: u64,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> (Write, Rep) {
    let old_meta = old.as_ref().map(|o| o.1);
    match c {
        Cmd::Set => {
            if (o.nx && old.is_some()) || (o.xx && old.is_none()) {
                return (Write::Nothing, if o.get { Rep::Old } else { Rep::Nil });
            }
            let meta = if o.keep {
                old_meta.unwrap_or(0)
            } else {
                o.deadline as u64
            };
            let rep = if o.get { Rep::Old } else { Rep::Ok };
            if meta != 0 && meta <= now {
                // A deadline already past (EXAT/PXAT): the key is gone at once.
                let w = if old.is_some() {
                    Write::Delete
                } else {
                    Write::Nothing
                };
                (w, rep)
            } else {
                (Write::Arg(2, meta), rep)
            }
        }
        Cmd::Setnx => match old {
            Some(_) => (Write::Nothing, Rep::Int(0)),
            None => (Write::Arg(2, 0), Rep::Int(1)),
        },
        Cmd::Setex | Cmd::Psetex => (Write::Arg(3, o.deadline as u64), Rep::Ok),
        Cmd::Mset => (Write::Arg(i + 1, 0), Rep::Written),
        Cmd::Getset => (Write::Arg(2, 0), Rep::Old),
        Cmd::Getdel => match old {
            Some(_) => (Write::Delete, Rep::Old),
            None => (Write::Nothing, Rep::Nil),
        },
        Cmd::Append => {
            *buf = old.take().map_or_else(Vec::new, |o| o.0);
            buf.extend_from_slice(args.get(2));
            (
                Write::Buf(old_meta.unwrap_or(0)),
                Rep::Int(buf.len() as i64),
            )
        }
        Cmd::Strlen => (
            Write::Nothing,
            Rep::Int(old.as_ref().map_or(0, |o| o.0.len() as i64)),
        ),
        Cmd::Incr | Cmd::Decr | Cmd::Incrby | Cmd::Decrby => {
            let current = match old {
                Some((v, _)) => match parse_i64(v) {
                    Some(v) => v,
                    None => {
                        reply::error(out, NOT_INTEGER);
                        return (Write::Nothing, Rep::Written);
                    }
                },
                None => 0,
            };
            let Some(new) = current.checked_add(o.by) else {
                reply::error(out, "ERR increment or decrement would overflow");
                return (Write::Nothing, Rep::Written);
            };
            reply::decimal(buf, new);
            (Write::Buf(old_meta.unwrap_or(0)), Rep::Int(new))
        }
        Cmd::Del => match old {
            Some(_) => (Write::Delete, Rep::Count),
            None => (Write::Nothing, Rep::Written),
        },
        Cmd::Exists => match old {
            Some(_) => (Write::Nothing, Rep::Count),
            None => (Write::Nothing, Rep::Written),
        },
        Cmd::Type => (
            Write::Nothing,
            Rep::Simple(if old.is_some() { "string" } else { "none" }),
        ),
        Cmd::Ttl | Cmd::Pttl => (
            Write::Nothing,
            Rep::Int(match old_meta {
                None => -2,
                Some(0) => -1,
                Some(deadline) => {
                    let ms = deadline - now;
                    (if c == Cmd::Ttl { (ms + 500) / 1000 } else { ms }) as i64
                }
            }),
        ),
        Cmd::Persist => match old.take() {
            Some((value, meta)) if meta != 0 => {
                *buf = value;
                (Write::Buf(0), Rep::Int(1))
            }
            _ => (Write::Nothing, Rep::Int(0)),
        },
        // EXPIRE and friends.
        _ => {
            let Some((value, meta)) = old.take() else {
                return (Write::Nothing, Rep::Int(0));
            };
            // No expiry time counts as infinite for GT and LT.
            let current = if meta == 0 { i64::MAX } else { meta as i64 };
            let deadline = o.deadline;
            if (o.nx && meta != 0)
                || (o.xx && meta == 0)
                || (o.gt && deadline <= current)
                || (o.lt && deadline >= current)
            {
                return (Write::Nothing, Rep::Int(0));
            }
            if deadline <= now as i64 {
                (Write::Delete, Rep::Int(1))
            } else {
                *buf = value;
                (Write::Buf(deadline as u64), Rep::Int(1))
            }
        }
    }
}

/// `ERR unknown command 'NAME', with args beginning with: 'a' 'b' ` (Redis 7's text,
/// arguments cut at 128 bytes in all).
fn unknown(out: &mut Vec<u8>, args: Args<'_>) {
    out.push(b'-');
    out.extend_from_slice(b"ERR unknown command '");
    reply::line_shown(out, args.get(0), 128);
    out.extend_from_slice(b"', with args beginning with: ");
    let mut used = 0usize;
    for i in 1..args.len() {
        let room = 128usize.saturating_sub(used);
        if room == 0 {
            break;
        }
        let a = args.get(i);
        let shown = a.len().min(room);
        out.push(b'\'');
        reply::line_shown(out, a, shown);
        out.extend_from_slice(b"' ");
        used += shown + 3;
    }
    out.extend_from_slice(b"\r\n");
}

/// The key's value (a copy; empty unless `value`) and meta, if it exists and has not
/// expired; an expired key is deleted. `Err(())` when the store failed (its error is
/// written to `out`).
async fn lookup<K: Kv>(
    st: &mut State<K>,
    key: &[u8],
    now: u64,
    value: bool,
    out: &mut Vec<u8>,
) -> Result<Option<(Vec<u8>, u64)>, ()> {
    let found = if value {
        st.kv
            .get(key)
            .await
            .map(|v| v.map(|v| (v.data.to_vec(), v.meta)))
    } else {
        st.kv.meta(key).await.map(|m| m.map(|m| (Vec::new(), m)))
    };
    match found {
        Ok(Some((_, meta))) if expired(meta, now) => {
            reap(st, key, meta).await;
            Ok(None)
        }
        Ok(found) => Ok(found),
        Err(e) => {
            store_error(out, &e);
            Err(())
        }
    }
}

/// Deletes an expired key (best effort: a failure here shows on the next write).
async fn reap<K: Kv>(st: &mut State<K>, key: &[u8], meta: u64) {
    if st.kv.delete(key).await.is_ok() {
        st.writes += 1;
        st.retime(key, meta, 0);
        st.stats.expired_keys += 1;
    }
}

/// Stores `value` with deadline `meta`, or deletes `key` (`None`); on failure writes
/// the error and returns false.
async fn store<K: Kv>(
    st: &mut State<K>,
    key: &[u8],
    value: Option<&[u8]>,
    meta: u64,
    out: &mut Vec<u8>,
) -> bool {
    // The old deadline, to keep the expiry index exact (only looked up when some key
    // has one at all; a delete goes ahead without it).
    let old = if st.ttl.is_empty() {
        0
    } else {
        match st.kv.meta(key).await {
            Ok(m) => m.unwrap_or(0),
            Err(e) if value.is_some() => {
                store_error(out, &e);
                return false;
            }
            Err(_) => 0,
        }
    };
    let done = match value {
        Some(value) => st.kv.put(key, value, meta).await,
        None => st.kv.delete(key).await.map(|_| ()),
    };
    match done {
        Ok(()) => {
            st.writes += 1;
            st.retime(key, old, meta);
            true
        }
        Err(e) => {
            store_error(out, &e);
            false
        }
    }
}

/// `GET`: the value, or nil.
async fn get<K: Kv>(key: &[u8], st: &mut State<K>, now: u64, out: &mut Vec<u8>) {
    let stale = match st.kv.get(key).await {
        Ok(Some(v)) if !expired(v.meta, now) => {
            reply::bulk(out, v.data);
            st.stats.keyspace_hits += 1;
            return;
        }
        Ok(Some(v)) => Some(v.meta),
        Ok(None) => None,
        Err(e) => {
            store_error(out, &e);
            return;
        }
    };
    if let Some(meta) = stale {
        reap(st, key, meta).await;
    }
    st.stats.keyspace_misses += 1;
    reply::nil(out);
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`'s options.
fn set_options(
    cmd: usize,
    args: Args<'_>,
    now: u64,
    o: &mut Opts,
    out: &mut Vec<u8>,
) -> Option<()> {
    // The expiry option: 0 none, 1 KEEPTTL, else the word's number below (4 EX, 5 PX,
    // 6 EXAT, 7 PXAT).
    let mut exp = 0;
    let mut exp_arg: &[u8] = b"";
    let mut i = 3;
    while i < args.len() {
        let a = args.get(i);
        let next = (i + 1 < args.len()).then(|| args.get(i + 1));
        match (word(b"NX XX GET KEEPTTL EX PX EXAT PXAT", a), next) {
            (Some(0), _) if !o.xx => o.nx = true,
            (Some(1), _) if !o.nx => o.xx = true,
            (Some(2), _) => o.get = true,
            (Some(3), _) if exp == 0 => exp = 1,
            (Some(w @ 4..), Some(v)) if exp == 0 => {
                exp = w;
                exp_arg = v;
                i += 1;
            }
            _ => {
                reply::error(out, SYNTAX);
                return None;
            }
        }
        i += 1;
    }
    o.keep = exp == 1;
    if exp <= 1 {
        return Some(());
    }
    let Some(v) = parse_i64(exp_arg) else {
        reply::error(out, NOT_INTEGER);
        return None;
    };
    // EX and EXAT are in seconds; EX and PX are from now.
    let ms = if exp % 2 == 0 {
        v.checked_mul(1000)
    } else {
        Some(v)
    };
    let at = match ms {
        Some(ms) if ms > 0 && exp < 6 => (ms as u64).checked_add(now),
        Some(ms) if ms > 0 => Some(ms as u64),
        _ => None,
    };
    match at.filter(|&t| t <= i64::MAX as u64) {
        Some(t) => {
            o.deadline = t as i64;
            Some(())
        }
        None => {
            invalid_expire(out, cmd);
            None
        }
    }
}

/// The number of `arg` among the space-separated `words` (ASCII case ignored).
#[inline(never)]
fn word(words: &[u8], arg: &[u8]) -> Option<usize> {
    words
        .split(|&b| b == b' ')
        .position(|w| w.eq_ignore_ascii_case(arg))
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and its millisecond and absolute forms' options
/// and deadline.
fn expire_options(
    c: Cmd,
    cmd: usize,
    args: Args<'_>,
    now: u64,
    o: &mut Opts,
    out: &mut Vec<u8>,
) -> Option<()> {
    for i in 3..args.len() {
        let a = args.get(i);
        match word(b"NX XX GT LT", a) {
            Some(0) => o.nx = true,
            Some(1) => o.xx = true,
            Some(2) => o.gt = true,
            Some(3) => o.lt = true,
            _ => {
                error3(out, "ERR Unsupported option ", a, "");
                return None;
            }
        }
    }
    if o.nx && (o.xx || o.gt || o.lt) {
        reply::error(
            out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
        return None;
    }
    if o.gt && o.lt {
        reply::error(
            out,
            "ERR GT and LT options at the same time are not compatible",
        );
        return None;
    }
    let Some(t) = parse_i64(args.get(2)) else {
        reply::error(out, NOT_INTEGER);
        return None;
    };
    let ms = match c {
        Cmd::Expire | Cmd::Expireat => t.checked_mul(1000),
        _ => Some(t),
    };
    let deadline = ms.and_then(|ms| {
        if matches!(c, Cmd::Expireat | Cmd::Pexpireat) {
            Some(ms)
        } else {
            ms.checked_add(now as i64)
        }
    });
    match deadline {
        Some(d) => {
            o.deadline = d;
            Some(())
        }
        None => {
            invalid_expire(out, cmd);
            None
        }
    }
}

/// Writes `head`, then the keys matching `pattern` (not expired) as an array of bulk
/// strings; or only the store's error if it failed.
async fn matching<K: Kv>(
    st: &mut State<K>,
    pattern: &[u8],
    now: u64,
    head: &[u8],
    out: &mut Vec<u8>,
) {
    let mut count = 0;
    let mut body = Vec::new();
    let prefix = glob::literal_prefix(pattern);
    let all = pattern == b"*";
    let scanned = st
        .kv
        .scan(prefix, None, |k, meta| {
            if !expired(meta, now) && (all || glob::matches(pattern, k)) {
                reply::bulk(&mut body, k);
                count += 1;
            }
            true
        })
        .await;
    match scanned {
        Ok(()) => {
            out.extend_from_slice(head);
            reply::array(out, count);
            out.extend_from_slice(&body);
        }
        Err(e) => store_error(out, &e),
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`'s options: the pattern, or
/// `Some(None)` when the type asked for is not `string` (nothing matches); `None` when
/// the error reply is written.
fn scan_options<'a>(args: Args<'a>, out: &mut Vec<u8>) -> Option<Option<&'a [u8]>> {
    if parse_u64(args.get(1)).is_none() {
        reply::error(out, "ERR invalid cursor");
        return None;
    }
    let mut pattern: &[u8] = b"*";
    let mut only_strings = true;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        let Some(v) = (i + 1 < args.len()).then(|| args.get(i + 1)) else {
            reply::error(out, SYNTAX);
            return None;
        };
        match word(b"MATCH COUNT TYPE", a) {
            Some(0) => pattern = v,
            Some(1) => match parse_i64(v) {
                Some(c) if c >= 1 => {}
                Some(_) => {
                    reply::error(out, SYNTAX);
                    return None;
                }
                None => {
                    reply::error(out, NOT_INTEGER);
                    return None;
                }
            },
            Some(2) => only_strings = is(v, "string"),
            _ => {
                reply::error(out, SYNTAX);
                return None;
            }
        }
        i += 2;
    }
    Some(only_strings.then_some(pattern))
}

/// Redis cursors are unsigned 64-bit decimals.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    b.iter().try_fold(0u64, |v, &d| {
        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// `CONFIG GET` for the few parameters clients ask about; no `CONFIG SET`.
fn config<K: Kv, C: MonotonicClock + WallClock>(
    args: Args<'_>,
    shared: &Shared<K, C>,
    out: &mut Vec<u8>,
) {
    let sub = args.get(1);
    if !is(sub, "GET") || args.len() < 3 {
        if is(sub, "SET") {
            error3(
                out,
                "ERR Unknown option or number of arguments for CONFIG SET - '",
                if args.len() > 2 { args.get(2) } else { b"" },
                "'",
            );
        } else {
            error3(
                out,
                "ERR unknown subcommand or wrong number of arguments for '",
                sub,
                "'. Try CONFIG HELP.",
            );
        }
        return;
    }
    let fsync = fsync_name(shared.durability);
    let known: [(&str, &str); 4] = [
        ("save", ""),
        ("appendonly", "yes"),
        ("appendfsync", fsync),
        ("databases", "1"),
    ];
    let mut body = Vec::new();
    let mut count = 0;
    for i in 2..args.len() {
        let want = args.get(i).to_ascii_lowercase();
        for (k, v) in known {
            if glob::matches(&want, k.as_bytes()) {
                reply::bulk(&mut body, k.as_bytes());
                reply::bulk(&mut body, v.as_bytes());
                count += 2;
            }
        }
    }
    reply::array(out, count);
    out.extend_from_slice(&body);
}

/// `HELLO` (RESP2 only): the server's description.
fn hello<K: Kv, C: MonotonicClock + WallClock>(shared: &Shared<K, C>, out: &mut Vec<u8>) {
    // Fourteen elements: server, version, proto, id, mode, role, modules and their values.
    out.extend_from_slice(b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n");
    reply::bulk(out, crate::REDIS_VERSION.as_bytes());
    out.extend_from_slice(b"$5\r\nproto\r\n:2\r\n$2\r\nid\r\n");
    reply::integer(out, shared.connections_total.get() as i64);
    out.extend_from_slice(
        b"$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n",
    );
}

/// `INFO [section]`.
fn info<K: Kv, C: MonotonicClock + WallClock>(
    args: Args<'_>,
    st: &State<K>,
    shared: &Shared<K, C>,
    out: &mut Vec<u8>,
) {
    // The sections asked for, one bit each in this order; "all", "everything" and
    // "default" (bits 5-7), or no argument, ask for every one.
    let mut asked = 0u32;
    for i in 1..args.len() {
        if let Some(w) = word(
            b"server clients persistence stats keyspace all everything default",
            args.get(i),
        ) {
            asked |= 1 << w;
        }
    }
    if args.len() < 2 || asked >= 1 << 5 {
        asked = u32::MAX;
    }
    let want = |bit: u32| asked & (1 << bit) != 0;
    let mut t = Vec::new();
    let uptime = shared
        .clock
        .now()
        .saturating_duration_since(shared.started)
        .as_secs();
    if want(0) {
        t.extend_from_slice(b"# Server\r\nredis_version:");
        t.extend_from_slice(crate::REDIS_VERSION.as_bytes());
        t.extend_from_slice(b"\r\nmorgana_version:");
        t.extend_from_slice(env!("CARGO_PKG_VERSION").as_bytes());
        t.extend_from_slice(b"\r\nredis_mode:standalone\r\nos:Morgana\r\narch_bits:64\r\nmultiplexing_api:morgana\r\n");
        field(&mut t, "tcp_port:", shared.port.into());
        field(&mut t, "uptime_in_seconds:", uptime);
        field(&mut t, "uptime_in_days:", uptime / 86400);
        t.extend_from_slice(b"\r\n");
    }
    if want(1) {
        t.extend_from_slice(b"# Clients\r\n");
        field(&mut t, "connected_clients:", shared.connected.get() as u64);
        t.extend_from_slice(b"\r\n");
    }
    if want(2) {
        t.extend_from_slice(b"# Persistence\r\nloading:0\r\naof_enabled:1\r\nappendfsync:");
        t.extend_from_slice(fsync_name(shared.durability).as_bytes());
        t.extend_from_slice(b"\r\n");
        field(&mut t, "commits:", shared.commits.get());
        field(
            &mut t,
            "changes_not_durable:",
            st.writes.saturating_sub(shared.durable.get()),
        );
        t.extend_from_slice(if shared.failure.borrow().is_some() {
            b"last_commit_status:err\r\n\r\n"
        } else {
            b"last_commit_status:ok\r\n\r\n"
        });
    }
    if want(3) {
        let s = st.stats;
        t.extend_from_slice(b"# Stats\r\n");
        field(
            &mut t,
            "total_connections_received:",
            shared.connections_total.get(),
        );
        field(&mut t, "total_commands_processed:", s.commands);
        field(&mut t, "rejected_connections:", shared.rejected.get());
        field(&mut t, "expired_keys:", s.expired_keys);
        field(&mut t, "keyspace_hits:", s.keyspace_hits);
        field(&mut t, "keyspace_misses:", s.keyspace_misses);
        t.extend_from_slice(b"\r\n");
    }
    if want(4) {
        t.extend_from_slice(b"# Keyspace\r\n");
        let keys = st.kv.len();
        if keys > 0 {
            t.extend_from_slice(b"db0:keys=");
            reply::unsigned(&mut t, keys);
            t.extend_from_slice(b",expires=");
            reply::unsigned(&mut t, st.ttl.len() as u64);
            t.extend_from_slice(b",avg_ttl=0\r\n");
        }
    }
    reply::bulk(out, &t);
}

/// `name` (with its colon), `v` in decimal, and a line end, for `INFO`.
fn field(t: &mut Vec<u8>, name: &str, v: u64) {
    t.extend_from_slice(name.as_bytes());
    reply::unsigned(t, v);
    t.extend_from_slice(b"\r\n");
}

/// `appendfsync`'s value for `durability`.
fn fsync_name(durability: crate::Durability) -> &'static str {
    match durability {
        crate::Durability::Always => "always",
        crate::Durability::EverySec => "everysec",
    }
}

/// Rebuilds the expiry index from the store (at start).
pub(crate) async fn load_ttls<K: Kv>(st: &mut State<K>) -> Result<(), K::Error> {
    let mut found: Vec<(u64, Box<[u8]>)> = Vec::new();
    st.kv
        .scan(b"", None, |k, meta| {
            if meta != 0 {
                found.push((meta, k.into()));
            }
            true
        })
        .await?;
    st.ttl.extend(found);
    Ok(())
}

/// Deletes up to `limit` keys whose time has come; returns how many it looked at.
pub(crate) async fn expire_cycle<K: Kv>(st: &mut State<K>, now: u64, limit: usize) -> usize {
    let mut done = 0;
    while done < limit {
        let Some((deadline, key)) = st.ttl.first().cloned() else {
            break;
        };
        if deadline > now {
            break;
        }
        st.ttl.pop_first();
        done += 1;
        match st.kv.meta(&key).await {
            Ok(Some(m)) if m == deadline => {
                if st.kv.delete(&key).await.is_ok() {
                    st.writes += 1;
                    st.stats.expired_keys += 1;
                }
            }
            Ok(_) => {}
            Err(e) if e.kind() == KvErrorKind::Io => break,
            Err(_) => {}
        }
    }
    done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_name_has_its_own_entry() {
        let names: Vec<&[u8]> = NAMES.split(|&b| b == b' ').collect();
        assert_eq!(names.len(), SPEC.len());
        for (i, name) in names.iter().enumerate() {
            assert!(!name.is_empty() && name.iter().all(u8::is_ascii_lowercase));
            assert!(!names[..i].contains(name), "{name:?} twice");
            assert!(
                !SPEC[..i].iter().any(|s| s.0 == SPEC[i].0),
                "{name:?}: its command twice"
            );
        }
    }
}
