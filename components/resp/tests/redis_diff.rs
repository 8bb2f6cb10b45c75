//! Differential test: the same scripted sessions against `redis-server` (Debian's 7.0)
//! and against `examples/kv-server` (this crate over host sockets and a disk image), and
//! the replies compared byte for byte — through raw RESP, through inline commands,
//! through malformed requests, and through `redis-cli`.
//!
//! Where the two legitimately differ, replies are normalised first: `KEYS` and `SCAN`
//! list keys in hash order on Redis and in key order here (compared as sets). Commands
//! whose replies describe the server itself (`INFO`, `TIME`, `HELLO`, `COMMAND`) are
//! left out; `tests/server.rs` checks them.

mod common;

use common::{Client, Proc, encode, have, scratch, show};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How a reply is compared.
#[derive(Clone, Copy, PartialEq)]
enum Cmp {
    Exact,
    /// An array whose elements may come in any order.
    Unordered,
    /// `SCAN`'s reply: cursor, then an array in any order.
    Scan,
}

fn split_array(reply: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let head_end = reply.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut at = head_end;
    let mut items = Vec::new();
    while at < reply.len() {
        let n = common::reply_len(&reply[at..]).unwrap();
        items.push(reply[at..at + n].to_vec());
        at += n;
    }
    (reply[..head_end].to_vec(), items)
}

fn normalise(reply: &[u8], cmp: Cmp) -> Vec<u8> {
    match cmp {
        Cmp::Exact => reply.to_vec(),
        Cmp::Unordered if reply.starts_with(b"*") => {
            let (head, mut items) = split_array(reply);
            items.sort();
            [head, items.concat()].concat()
        }
        Cmp::Scan if reply.starts_with(b"*2\r\n") => {
            let (head, items) = split_array(reply);
            [head, items[0].clone(), normalise(&items[1], Cmp::Unordered)].concat()
        }
        _ => reply.to_vec(),
    }
}

/// Runs `script` on both servers over one connection each; panics at the first reply
/// that differs.
fn compare(redis: &mut Client, ours: &mut Client, script: &[(Cmp, Vec<Vec<u8>>)]) -> usize {
    for (i, (cmp, args)) in script.iter().enumerate() {
        let args: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        let request = encode(&args);
        redis.send_raw(&request);
        ours.send_raw(&request);
        let a = redis.reply().expect("redis-server replied");
        let b = ours.reply().expect("kv-server replied");
        assert_eq!(
            show(&normalise(&b, *cmp)),
            show(&normalise(&a, *cmp)),
            "command {i}: {:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(&a[..a.len().min(40)]).into_owned())
                .collect::<Vec<_>>()
        );
    }
    script.len()
}

/// A script written as lines of space-separated words (`\s` stands for a space).
fn script(text: &str) -> Vec<(Cmp, Vec<Vec<u8>>)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let words: Vec<Vec<u8>> = l
                .split(' ')
                .map(|w| w.replace("\\s", " ").into_bytes())
                .collect();
            let name = String::from_utf8_lossy(&words[0]).to_ascii_uppercase();
            let cmp = match name.as_str() {
                "KEYS" => Cmp::Unordered,
                "SCAN" => Cmp::Scan,
                _ => Cmp::Exact,
            };
            (cmp, words)
        })
        .collect()
}

const SESSION: &str = r"
FLUSHALL
PING
PING hello
ECHO a\sb
SET a 1
GET a
GET missing
SET a 2 NX
SET a 3 XX
SET b 4 XX
SET b 4 NX
SET a 5 GET
SET c v NX GET
SET c w XX GET
SET k v EX 0
SET k v EX -5
SET k v EX abc
SET k v PX 10 EX 10
SET k v NX XX
SET k v KEEPTTL EX 10
SET k v FOO
SET k v EX
SET k v EX 9223372036854775807
set lower case
GeT lower
SET t v EX 100
TTL t
SET t w KEEPTTL
TTL t
GET t
SET t v
TTL t
TTL missing
PTTL missing
EXPIRE t 50
EXPIRE t 100 GT
EXPIRE t 10 GT
EXPIRE t 10 LT
EXPIRE t 10 NX
EXPIRE t 20 XX
TTL t
EXPIRE t 10 NX XX
EXPIRE t 10 GT LT
EXPIRE t 10 FOO
EXPIRE t abc
EXPIRE t 9223372036854775807
EXPIRE missing 10
PERSIST t
PERSIST t
TTL t
EXPIRE t -1
EXISTS t
GET t
PEXPIRE a 100000
PERSIST a
EXPIREAT a 1
GET a
SET a 1
PEXPIREAT a 99999999999999
TTL a
SET a 1
INCR a
INCRBY a 10
DECR a
DECRBY a 5
INCR newcounter
GET newcounter
SET big 9223372036854775807
INCR big
DECRBY a -9223372036854775808
INCRBY a 9223372036854775808
INCRBY a x
SET s abc
INCR s
SET lz 01
INCR lz
SET sp \s1
INCR sp
INCR
INCRBY a
MSET m1 a m2 b m3 c
MGET m1 m2 nope m3
MSET m1
MSET m1 a m2
MGET
DEL m1 m1 nope
EXISTS m2 m2 m3 nope
DEL
EXISTS
KEYS *
KEYS m*
KEYS m[23]
KEYS m[^2]
KEYS ?2
KEYS *o*
KEYS nomatch*
KEYS
SCAN 0 MATCH m* COUNT 1000
SCAN 0 COUNT 1000
SCAN x
SCAN 0 COUNT 0
SCAN 0 COUNT x
SCAN 0 FOO
SCAN 0 MATCH
DBSIZE
DBSIZE x
TYPE m2
TYPE nope
SETNX m2 z
SETNX n1 z
SETEX se 100 v
TTL se
SETEX se 0 v
SETEX se -3 v
SETEX se x v
SETEX se 100
PSETEX pse 100000 v
TTL pse
PSETEX pse 0 v
GETSET n1 new
GETSET nope2 v
GETSET n1
GETDEL n1
GETDEL n1
APPEND ap abc
APPEND ap de
GET ap
STRLEN ap
STRLEN nope
APPEND ap
SELECT 0
SELECT x
FOO
FOO a b
FOO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b c
GET
GET a b
PING a b
ECHO
TTL
FLUSHDB FOO
FLUSHDB A B
SET ttlkeep 1 EX 100
INCR ttlkeep
TTL ttlkeep
APPEND ttlkeep 0
TTL ttlkeep
SET ttlkeep 5
TTL ttlkeep
DBSIZE
FLUSHDB ASYNC
DBSIZE
KEYS *
FLUSHALL SYNC
CONFIG GET appendonly
";

#[test]
fn scripted_sessions_get_the_same_replies_as_redis_server() {
    if !have("redis-server") {
        return;
    }
    let dir = scratch("diff");
    let redis = Proc::redis(&dir, &["--appendonly", "yes", "--appendfsync", "always"]);
    let disk = dir.join("kv.img");
    let ours = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "64"]);
    let (mut r, mut o) = (redis.connect(), ours.connect());

    let mut steps = compare(&mut r, &mut o, &script(SESSION));

    // Binary, empty and large values, and keys with spaces and newlines.
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let binary: Vec<(Cmp, Vec<Vec<u8>>)> = vec![
        (
            Cmp::Exact,
            vec![
                b"SET".to_vec(),
                b"bin\x00\xff".to_vec(),
                b"\r\n\x00\x01\xfe".to_vec(),
            ],
        ),
        (Cmp::Exact, vec![b"GET".to_vec(), b"bin\x00\xff".to_vec()]),
        (
            Cmp::Exact,
            vec![b"SET".to_vec(), b"empty".to_vec(), Vec::new()],
        ),
        (Cmp::Exact, vec![b"GET".to_vec(), b"empty".to_vec()]),
        (Cmp::Exact, vec![b"STRLEN".to_vec(), b"empty".to_vec()]),
        (
            Cmp::Exact,
            vec![b"SET".to_vec(), b"big".to_vec(), big.clone()],
        ),
        (Cmp::Exact, vec![b"GET".to_vec(), b"big".to_vec()]),
        (
            Cmp::Exact,
            vec![b"APPEND".to_vec(), b"big".to_vec(), b"tail".to_vec()],
        ),
        (Cmp::Exact, vec![b"STRLEN".to_vec(), b"big".to_vec()]),
        (
            Cmp::Exact,
            vec![
                b"SET".to_vec(),
                b"a key\nwith lines".to_vec(),
                b"v".to_vec(),
            ],
        ),
        (Cmp::Unordered, vec![b"KEYS".to_vec(), b"*".to_vec()]),
        (
            Cmp::Exact,
            vec![b"EXISTS".to_vec(), b"a key\nwith lines".to_vec()],
        ),
    ];
    steps += compare(&mut r, &mut o, &binary);

    // Pipelined: 200 commands in one write, replies compared as one stream.
    let mut batch = Vec::new();
    for i in 0..200 {
        let k = format!("p{}", i % 17);
        let v = i.to_string();
        let cmd: Vec<&[u8]> = match i % 4 {
            0 => vec![b"SET", k.as_bytes(), v.as_bytes()],
            1 => vec![b"GET", k.as_bytes()],
            2 => vec![b"INCR", k.as_bytes()],
            _ => vec![b"DEL", k.as_bytes()],
        };
        batch.extend_from_slice(&encode(&cmd));
    }
    r.send_raw(&batch);
    o.send_raw(&batch);
    for i in 0..200 {
        assert_eq!(
            show(&o.reply().unwrap()),
            show(&r.reply().unwrap()),
            "pipelined command {i}"
        );
    }
    steps += 200;

    // Inline commands, as typed into telnet.
    for line in [
        "SET inl \"a b\\x41\\n\"\r\n",
        "GET inl\r\n",
        "SET q 'it\\'s'\r\n",
        "GET q\r\n",
        "   \r\n",
        "MGET inl q nope\n",
        "EXISTS inl    q\r\n",
    ] {
        r.send_raw(line.as_bytes());
        o.send_raw(line.as_bytes());
        if line.trim().is_empty() {
            continue;
        }
        assert_eq!(
            show(&o.reply().unwrap()),
            show(&r.reply().unwrap()),
            "inline {line:?}"
        );
        steps += 1;
    }

    // Expiry: both forget a key whose time has passed, for every command.
    let expiring = script("SET px v PX 100\nSET ex v EX 1\nSET keep v\nTTL ex");
    steps += compare(&mut r, &mut o, &expiring);
    std::thread::sleep(Duration::from_millis(1300));
    let after = script(
        "GET px\nEXISTS px ex keep\nTTL ex\nKEYS *x\nSCAN 0 MATCH ?x COUNT 100\nSTRLEN px\nTYPE ex\nINCR px\nGET px\nTTL px",
    );
    steps += compare(&mut r, &mut o, &after);

    // QUIT: +OK, then the server closes.
    steps += compare(&mut r, &mut o, &script("QUIT"));
    assert!(r.closed() && o.closed(), "QUIT closes the connection");
    eprintln!("{steps} replies identical");
    drop((redis, ours));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_requests_get_the_same_errors_and_close_the_connection() {
    if !have("redis-server") {
        return;
    }
    let dir = scratch("malformed");
    let redis = Proc::redis(&dir, &[]);
    let disk = dir.join("kv.img");
    let ours = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "32"]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("negative bulk length", b"*1\r\n$-5\r\n".to_vec()),
        ("bulk length not a number", b"*1\r\n$x\r\n".to_vec()),
        ("huge multibulk", b"*99999999999\r\n".to_vec()),
        ("multibulk not a number", b"*abc\r\n".to_vec()),
        ("no dollar", b"*3\r\nx\r\n".to_vec()),
        ("unbalanced quotes", b"SET \"a\r\n".to_vec()),
        ("quote then letter", b"SET \"a\"b c\r\n".to_vec()),
        (
            "reply before the error",
            b"PING\r\n*1\r\n$-1\r\nPING\r\n".to_vec(),
        ),
        ("inline too long", vec![b'A'; 70_000]),
        (
            "bulk count too long",
            [b"*1\r\n$".to_vec(), vec![b'1'; 70_000]].concat(),
        ),
    ];
    for (what, bytes) in &cases {
        let (mut r, mut o) = (redis.connect(), ours.connect());
        r.send_raw(bytes);
        o.send_raw(bytes);
        loop {
            let (a, b) = (r.reply(), o.reply());
            assert_eq!(b.as_deref().map(show), a.as_deref().map(show), "{what}");
            let Some(a) = a else { break };
            if a.starts_with(b"-ERR Protocol error") {
                assert!(
                    o.closed(),
                    "{what}: kv-server must close after a protocol error"
                );
                break;
            }
        }
    }
    // Empty arrays and blank lines are ignored by both.
    let (mut r, mut o) = (redis.connect(), ours.connect());
    for c in [&mut r, &mut o] {
        c.send_raw(b"*0\r\n*-1\r\n\r\n \r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(c.reply().unwrap(), b"+PONG\r\n");
    }
    drop((redis, ours));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_cli_sessions_print_the_same() {
    if !have("redis-server") || !have("redis-cli") {
        return;
    }
    let dir = scratch("cli");
    let redis = Proc::redis(&dir, &[]);
    let disk = dir.join("kv.img");
    let ours = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "32"]);
    let input = "FLUSHALL\nSET greeting \"hello world\"\nGET greeting\nGET nothing\nINCR visits\nINCRBY visits 41\nMSET a 1 b 2\nMGET a b c\nEXPIRE a 100\nTTL a\nTTL b\nDEL a b c\nEXISTS a b\nSET n x\nINCR n\nNOSUCH arg\nDBSIZE\nSET k v NX\nSET k w NX\nGET k\nKEYS greet*\nPING\nECHO \"two words\"\n";
    let run = |addr: std::net::SocketAddr| {
        let mut child = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let (a, b) = (run(redis.addr), run(ours.addr));
    assert!(a.contains("hello world") && a.lines().count() > 20, "{a}");
    assert_eq!(b, a);
    drop((redis, ours));
    let _ = std::fs::remove_dir_all(&dir);
}
