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

fn arity(out: &mut Vec<u8>, name: &str) {
    error3(
        out,
        "ERR wrong number of arguments for '",
        name.as_bytes(),
        "' command",
    );
}

fn invalid_expire(out: &mut Vec<u8>, name: &str) {
    error3(
        out,
        "ERR invalid expire time in '",
        name.as_bytes(),
        "' command",
    );
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
    // Lower-case ASCII name for the lookup (and for arity errors), up to 16 bytes.
    let mut lower = [0u8; 16];
    if name.len() > lower.len() {
        unknown(out, args);
        return After::Continue;
    }
    for (d, s) in lower.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    let cmd = core::str::from_utf8(&lower[..name.len()]).unwrap_or("");
    // (command, arity): a positive arity is exact, a negative one a minimum (Redis's).
    let (c, want): (Cmd, i32) = match cmd {
        "get" => (Cmd::Get, 2),
        "incr" => (Cmd::Incr, 2),
        "decr" => (Cmd::Decr, 2),
        "ttl" => (Cmd::Ttl, 2),
        "pttl" => (Cmd::Pttl, 2),
        "persist" => (Cmd::Persist, 2),
        "keys" => (Cmd::Keys, 2),
        "echo" => (Cmd::Echo, 2),
        "select" => (Cmd::Select, 2),
        "type" => (Cmd::Type, 2),
        "getdel" => (Cmd::Getdel, 2),
        "strlen" => (Cmd::Strlen, 2),
        "incrby" => (Cmd::Incrby, 3),
        "decrby" => (Cmd::Decrby, 3),
        "setnx" => (Cmd::Setnx, 3),
        "getset" => (Cmd::Getset, 3),
        "append" => (Cmd::Append, 3),
        "setex" => (Cmd::Setex, 4),
        "psetex" => (Cmd::Psetex, 4),
        "set" => (Cmd::Set, -3),
        "mset" => (Cmd::Mset, -3),
        "expire" => (Cmd::Expire, -3),
        "pexpire" => (Cmd::Pexpire, -3),
        "expireat" => (Cmd::Expireat, -3),
        "pexpireat" => (Cmd::Pexpireat, -3),
        "del" => (Cmd::Del, -2),
        "exists" => (Cmd::Exists, -2),
        "mget" => (Cmd::Mget, -2),
        "scan" => (Cmd::Scan, -2),
        "config" => (Cmd::Config, -2),
        "client" => (Cmd::Client, -2),
        "dbsize" => (Cmd::Dbsize, 1),
        "time" => (Cmd::Time, 1),
        "flushdb" => (Cmd::Flushdb, -1),
        "flushall" => (Cmd::Flushall, -1),
        "info" => (Cmd::Info, -1),
        "quit" => (Cmd::Quit, -1),
        "ping" => (Cmd::Ping, -1),
        "command" => (Cmd::Command, -1),
        "hello" => (Cmd::Hello, -1),
        _ => {
            unknown(out, args);
            return After::Continue;
        }
    };
    let ok = if want > 0 {
        n == want as usize
    } else {
        n >= want.unsigned_abs() as usize
    };
    if !ok || (c == Cmd::Ping && n > 2) || (c == Cmd::Mset && n.is_multiple_of(2)) {
        arity(out, cmd);
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
        Cmd::Get => get(args.get(1), st, now, out).await,
        Cmd::Set => set(args, st, now, out).await,
        Cmd::Setnx => {
            let key = args.get(1);
            match live_meta(st, key, now, out).await {
                Ok(Some(_)) => reply::integer(out, 0),
                Ok(None) => {
                    if put(st, key, args.get(2), 0, out).await {
                        reply::integer(out, 1);
                    }
                }
                Err(()) => {}
            }
        }
        Cmd::Setex | Cmd::Psetex => {
            let Some(t) = parse_i64(args.get(2)) else {
                reply::error(out, NOT_INTEGER);
                return After::Continue;
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
                Some(deadline) => {
                    if put(st, args.get(1), args.get(3), deadline, out).await {
                        reply::ok(out);
                    }
                }
                None => invalid_expire(out, cmd),
            }
        }
        Cmd::Getset | Cmd::Getdel => {
            let key = args.get(1);
            let old = match read(st, key, now, out).await {
                Ok(v) => v,
                Err(()) => return After::Continue,
            };
            let done = if c == Cmd::Getset {
                put(st, key, args.get(2), 0, out).await
            } else {
                old.is_none() || delete(st, key, out).await
            };
            if done {
                match old {
                    Some((v, _)) => reply::bulk(out, &v),
                    None => reply::nil(out),
                }
            }
        }
        Cmd::Append => {
            let key = args.get(1);
            let (mut value, meta) = match read(st, key, now, out).await {
                Ok(Some(v)) => v,
                Ok(None) => (Vec::new(), 0),
                Err(()) => return After::Continue,
            };
            value.extend_from_slice(args.get(2));
            if put(st, key, &value, meta, out).await {
                reply::integer(out, value.len() as i64);
            }
        }
        Cmd::Strlen => match st.kv.get(args.get(1)).await {
            Ok(Some(v)) if !expired(v.meta, now) => {
                let len = v.data.len() as i64;
                reply::integer(out, len)
            }
            Ok(_) => reply::integer(out, 0),
            Err(e) => store_error(out, &e),
        },
        Cmd::Incr | Cmd::Decr | Cmd::Incrby | Cmd::Decrby => {
            let by = match c {
                Cmd::Incr => 1,
                Cmd::Decr => -1,
                _ => match parse_i64(args.get(2)) {
                    Some(v) if c == Cmd::Incrby => v,
                    Some(i64::MIN) => {
                        reply::error(out, "ERR decrement would overflow");
                        return After::Continue;
                    }
                    Some(v) => -v,
                    None => {
                        reply::error(out, NOT_INTEGER);
                        return After::Continue;
                    }
                },
            };
            incr(args.get(1), by, st, now, out).await;
        }
        Cmd::Mget => {
            reply::array(out, n - 1);
            for i in 1..n {
                get(args.get(i), st, now, out).await;
            }
        }
        Cmd::Mset => {
            let mut all = true;
            for i in (1..n).step_by(2) {
                if !put(st, args.get(i), args.get(i + 1), 0, out).await {
                    all = false;
                    break;
                }
            }
            if all {
                reply::ok(out);
            }
        }
        Cmd::Del | Cmd::Exists => {
            let mut count = 0;
            for i in 1..n {
                let key = args.get(i);
                match live_meta(st, key, now, out).await {
                    Ok(Some(_)) => {
                        if c == Cmd::Del && !delete(st, key, out).await {
                            return After::Continue;
                        }
                        count += 1;
                    }
                    Ok(None) => {}
                    Err(()) => return After::Continue,
                }
            }
            reply::integer(out, count);
        }
        Cmd::Type => match live_meta(st, args.get(1), now, out).await {
            Ok(Some(_)) => reply::simple(out, "string"),
            Ok(None) => reply::simple(out, "none"),
            Err(()) => {}
        },
        Cmd::Expire | Cmd::Pexpire | Cmd::Expireat | Cmd::Pexpireat => {
            expire(cmd, args, st, now, out).await
        }
        Cmd::Ttl | Cmd::Pttl => match live_meta(st, args.get(1), now, out).await {
            Ok(None) => reply::integer(out, -2),
            Ok(Some(0)) => reply::integer(out, -1),
            Ok(Some(deadline)) => {
                let ms = deadline - now;
                let v = if c == Cmd::Ttl { (ms + 500) / 1000 } else { ms };
                reply::integer(out, v as i64)
            }
            Err(()) => {}
        },
        Cmd::Persist => {
            let key = args.get(1);
            match read(st, key, now, out).await {
                Ok(Some((value, meta))) if meta != 0 => {
                    if put(st, key, &value, 0, out).await {
                        reply::integer(out, 1);
                    }
                }
                Ok(_) => reply::integer(out, 0),
                Err(()) => {}
            }
        }
        Cmd::Keys => matching(st, args.get(1), now, b"", out).await,
        Cmd::Scan => scan(args, st, now, out).await,
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
            reply::decimal(&mut b, (us / 1_000_000) as i64);
            reply::bulk(out, &b);
            b.clear();
            reply::decimal(&mut b, (us % 1_000_000) as i64);
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
    }
    After::Continue
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

/// The key's meta if it exists and has not expired; an expired key is deleted.
/// `Err(())` when the store failed (its error is written to `out`).
async fn live_meta<K: Kv>(
    st: &mut State<K>,
    key: &[u8],
    now: u64,
    out: &mut Vec<u8>,
) -> Result<Option<u64>, ()> {
    match st.kv.meta(key).await {
        Ok(Some(meta)) if expired(meta, now) => {
            reap(st, key, meta).await;
            Ok(None)
        }
        Ok(m) => Ok(m),
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

/// A copy of the key's value and meta, if it exists and has not expired. `Err(())`
/// when the store failed (its error is written to `out`).
async fn read<K: Kv>(
    st: &mut State<K>,
    key: &[u8],
    now: u64,
    out: &mut Vec<u8>,
) -> Result<Option<(Vec<u8>, u64)>, ()> {
    let found = match st.kv.get(key).await {
        Ok(Some(v)) => Some((v.data.to_vec(), v.meta)),
        Ok(None) => None,
        Err(e) => {
            store_error(out, &e);
            return Err(());
        }
    };
    match found {
        Some((_, meta)) if expired(meta, now) => {
            reap(st, key, meta).await;
            Ok(None)
        }
        other => Ok(other),
    }
}

/// Stores `value` with deadline `meta`; on failure writes the error and returns false.
async fn put<K: Kv>(
    st: &mut State<K>,
    key: &[u8],
    value: &[u8],
    meta: u64,
    out: &mut Vec<u8>,
) -> bool {
    // The old deadline, to keep the expiry index exact (only looked up when some key
    // has one at all).
    let old = if st.ttl.is_empty() {
        0
    } else {
        match st.kv.meta(key).await {
            Ok(m) => m.unwrap_or(0),
            Err(e) => {
                store_error(out, &e);
                return false;
            }
        }
    };
    match st.kv.put(key, value, meta).await {
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

/// Deletes `key`; on failure writes the error and returns false.
async fn delete<K: Kv>(st: &mut State<K>, key: &[u8], out: &mut Vec<u8>) -> bool {
    let old = if st.ttl.is_empty() {
        0
    } else {
        st.kv.meta(key).await.ok().flatten().unwrap_or(0)
    };
    match st.kv.delete(key).await {
        Ok(_) => {
            st.writes += 1;
            st.retime(key, old, 0);
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

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`.
async fn set<K: Kv>(args: Args<'_>, st: &mut State<K>, now: u64, out: &mut Vec<u8>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Exp {
        None,
        Keep,
        Ex,
        Px,
        ExAt,
        PxAt,
    }
    let (mut nx, mut xx, mut want_old) = (false, false, false);
    let mut exp = Exp::None;
    let mut exp_arg: &[u8] = b"";
    let mut i = 3;
    while i < args.len() {
        let a = args.get(i);
        let next = (i + 1 < args.len()).then(|| args.get(i + 1));
        if is(a, "NX") && !xx {
            nx = true;
        } else if is(a, "XX") && !nx {
            xx = true;
        } else if is(a, "GET") {
            want_old = true;
        } else if is(a, "KEEPTTL") && exp == Exp::None {
            exp = Exp::Keep;
        } else if let (Some(v), true) = (next, exp == Exp::None) {
            exp = if is(a, "EX") {
                Exp::Ex
            } else if is(a, "PX") {
                Exp::Px
            } else if is(a, "EXAT") {
                Exp::ExAt
            } else if is(a, "PXAT") {
                Exp::PxAt
            } else {
                reply::error(out, SYNTAX);
                return;
            };
            exp_arg = v;
            i += 1;
        } else {
            reply::error(out, SYNTAX);
            return;
        }
        i += 1;
    }
    let deadline = match exp {
        Exp::None | Exp::Keep => None,
        _ => {
            let Some(v) = parse_i64(exp_arg) else {
                reply::error(out, NOT_INTEGER);
                return;
            };
            let ms = match exp {
                Exp::Ex | Exp::ExAt => v.checked_mul(1000),
                _ => Some(v),
            };
            let at = match (ms, exp) {
                (Some(ms), Exp::Ex | Exp::Px) if ms > 0 => (ms as u64).checked_add(now),
                (Some(ms), Exp::ExAt | Exp::PxAt) if ms > 0 => Some(ms as u64),
                _ => None,
            };
            match at.filter(|&t| t <= i64::MAX as u64) {
                Some(t) => Some(t),
                None => {
                    reply::error(out, "ERR invalid expire time in 'set' command");
                    return;
                }
            }
        }
    };
    let key = args.get(1);
    let old = match read(st, key, now, out).await {
        Ok(v) => v,
        Err(()) => return,
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        match (&old, want_old) {
            (Some((v, _)), true) => reply::bulk(out, v),
            _ => reply::nil(out),
        }
        return;
    }
    let meta = match (exp, deadline) {
        (Exp::Keep, _) => old.as_ref().map_or(0, |o| o.1),
        (_, Some(t)) => t,
        _ => 0,
    };
    let stored = if meta != 0 && meta <= now {
        // A deadline already past (EXAT/PXAT): the key is gone at once.
        old.is_none() || delete(st, key, out).await
    } else {
        put(st, key, args.get(2), meta, out).await
    };
    if !stored {
        return;
    }
    match (want_old, old) {
        (true, Some((v, _))) => reply::bulk(out, &v),
        (true, None) => reply::nil(out),
        (false, _) => reply::ok(out),
    }
}

/// `INCR` and friends: adds `by` to the integer in `key` (0 if absent), keeping its
/// expiry time.
async fn incr<K: Kv>(key: &[u8], by: i64, st: &mut State<K>, now: u64, out: &mut Vec<u8>) {
    let (current, meta) = match read(st, key, now, out).await {
        Ok(Some((v, meta))) => match parse_i64(&v) {
            Some(n) => (n, meta),
            None => {
                reply::error(out, NOT_INTEGER);
                return;
            }
        },
        Ok(None) => (0, 0),
        Err(()) => return,
    };
    let Some(new) = current.checked_add(by) else {
        reply::error(out, "ERR increment or decrement would overflow");
        return;
    };
    let mut text = Vec::new();
    reply::decimal(&mut text, new);
    if put(st, key, &text, meta, out).await {
        reply::integer(out, new);
    }
}

/// `EXPIRE key seconds [NX|XX|GT|LT]` and its millisecond and absolute forms.
async fn expire<K: Kv>(cmd: &str, args: Args<'_>, st: &mut State<K>, now: u64, out: &mut Vec<u8>) {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for i in 3..args.len() {
        let a = args.get(i);
        if is(a, "NX") {
            nx = true;
        } else if is(a, "XX") {
            xx = true;
        } else if is(a, "GT") {
            gt = true;
        } else if is(a, "LT") {
            lt = true;
        } else {
            error3(out, "ERR Unsupported option ", a, "");
            return;
        }
    }
    if nx && (xx || gt || lt) {
        reply::error(
            out,
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        );
        return;
    }
    if gt && lt {
        reply::error(
            out,
            "ERR GT and LT options at the same time are not compatible",
        );
        return;
    }
    let Some(t) = parse_i64(args.get(2)) else {
        reply::error(out, NOT_INTEGER);
        return;
    };
    let ms = match cmd {
        "expire" | "expireat" => t.checked_mul(1000),
        _ => Some(t),
    };
    let deadline = ms.and_then(|ms| {
        if cmd.ends_with("at") {
            Some(ms)
        } else {
            ms.checked_add(now as i64)
        }
    });
    let Some(deadline) = deadline else {
        invalid_expire(out, cmd);
        return;
    };
    let key = args.get(1);
    let (value, meta) = match read(st, key, now, out).await {
        Ok(Some(v)) => v,
        Ok(None) => {
            reply::integer(out, 0);
            return;
        }
        Err(()) => return,
    };
    // No expiry time counts as infinite for GT and LT.
    let current = if meta == 0 { i64::MAX } else { meta as i64 };
    if (nx && meta != 0)
        || (xx && meta == 0)
        || (gt && deadline <= current)
        || (lt && deadline >= current)
    {
        reply::integer(out, 0);
        return;
    }
    let done = if deadline <= now as i64 {
        delete(st, key, out).await
    } else {
        put(st, key, &value, deadline as u64, out).await
    };
    if done {
        reply::integer(out, 1);
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

/// `SCAN cursor [MATCH pattern] [COUNT n] [TYPE t]`: this server answers a whole
/// iteration at once (cursor 0 back), which SCAN's contract allows.
async fn scan<K: Kv>(args: Args<'_>, st: &mut State<K>, now: u64, out: &mut Vec<u8>) {
    if parse_u64(args.get(1)).is_none() {
        reply::error(out, "ERR invalid cursor");
        return;
    }
    let mut pattern: &[u8] = b"*";
    let mut only_strings = true;
    let mut i = 2;
    while i < args.len() {
        let a = args.get(i);
        let Some(v) = (i + 1 < args.len()).then(|| args.get(i + 1)) else {
            reply::error(out, SYNTAX);
            return;
        };
        if is(a, "MATCH") {
            pattern = v;
        } else if is(a, "COUNT") {
            match parse_i64(v) {
                Some(c) if c >= 1 => {}
                Some(_) => {
                    reply::error(out, SYNTAX);
                    return;
                }
                None => {
                    reply::error(out, NOT_INTEGER);
                    return;
                }
            }
        } else if is(a, "TYPE") {
            only_strings = is(v, "string");
        } else {
            reply::error(out, SYNTAX);
            return;
        }
        i += 2;
    }
    // The reply's head: two elements, the cursor "0" back.
    const HEAD: &[u8] = b"*2\r\n$1\r\n0\r\n";
    if only_strings {
        matching(st, pattern, now, HEAD, out).await;
    } else {
        out.extend_from_slice(HEAD);
        reply::array(out, 0);
    }
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
        let want = args.get(i);
        for (k, v) in known {
            if glob::matches(&want.to_ascii_lowercase(), k.as_bytes()) {
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
    reply::array(out, 14);
    for (k, v) in [("server", "redis"), ("version", crate::REDIS_VERSION)] {
        reply::bulk(out, k.as_bytes());
        reply::bulk(out, v.as_bytes());
    }
    reply::bulk(out, b"proto");
    reply::integer(out, 2);
    reply::bulk(out, b"id");
    reply::integer(out, shared.connections_total.get() as i64);
    for (k, v) in [("mode", "standalone"), ("role", "master")] {
        reply::bulk(out, k.as_bytes());
        reply::bulk(out, v.as_bytes());
    }
    reply::bulk(out, b"modules");
    reply::array(out, 0);
}

/// `INFO [section]`.
fn info<K: Kv, C: MonotonicClock + WallClock>(
    args: Args<'_>,
    st: &State<K>,
    shared: &Shared<K, C>,
    out: &mut Vec<u8>,
) {
    let want = |s: &str| {
        args.len() < 2
            || (1..args.len()).any(|i| {
                let a = args.get(i);
                is(a, s) || is(a, "all") || is(a, "everything") || is(a, "default")
            })
    };
    let mut t = Vec::new();
    let uptime = shared
        .clock
        .now()
        .saturating_duration_since(shared.started)
        .as_secs();
    if want("server") {
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
    if want("clients") {
        t.extend_from_slice(b"# Clients\r\n");
        field(&mut t, "connected_clients:", shared.connected.get() as u64);
        t.extend_from_slice(b"\r\n");
    }
    if want("persistence") {
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
    if want("stats") {
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
    if want("keyspace") {
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
