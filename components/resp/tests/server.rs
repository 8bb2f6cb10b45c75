//! What only this server can be asked (no reference to compare with): its limits and
//! their error texts, a full disk, damaged or foreign disk images, everysec
//! durability, and the replies that describe the server.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Client, Proc, encode, kv_server, scratch, show};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn hostile_requests_get_clear_errors_and_cost_no_memory() {
    let dir = scratch("hostile");
    let disk = dir.join("kv.img");
    let server = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "32"]);
    let pid = server.child.id();
    let before = rss_kib(pid);

    // A bulk string larger than the store takes: refused at once, connection closed.
    let mut c = server.connect();
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    assert_eq!(
        show(&c.reply().unwrap()),
        "-ERR Protocol error: bulk length 2000000 is above this server's limit of 1048576 bytes\\r\\n"
    );
    assert!(c.closed());

    // A million elements announced, a few sent, then silence: nothing is reserved for
    // them. Fifty such clients at once.
    let mut idle = Vec::new();
    for _ in 0..50 {
        let mut c = server.connect();
        c.send_raw(b"*1000000\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        idle.push(c);
    }
    // A billion: refused.
    let mut c = server.connect();
    c.send_raw(b"*1000000000\r\n");
    assert_eq!(
        show(&c.reply().unwrap()),
        "-ERR Protocol error: invalid multibulk length\\r\\n"
    );
    // The others are served meanwhile.
    let mut ok = server.connect();
    assert_eq!(ok.call(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(ok.call(&["GET", "k"]), b"$1\r\nv\r\n");
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(grown < 16 * 1024, "RSS grew by {grown} KiB");
    drop(idle);

    // Keys and values above the store's limits.
    let long_key = "k".repeat(5000);
    assert_eq!(
        show(&ok.call(&["SET", &long_key, "v"])),
        "-ERR key of 5000 bytes is longer than the store's limit of 4096\\r\\n"
    );
    let big = vec![b'v'; 1 << 20];
    ok.send_raw(&encode(&[b"SET", b"big", &big]));
    assert_eq!(ok.reply().unwrap(), b"+OK\r\n");
    ok.send_raw(&encode(&[b"APPEND", b"big", b"x"]));
    assert_eq!(
        show(&ok.reply().unwrap()),
        "-ERR value of 1048577 bytes is larger than the store's limit of 1048576\\r\\n"
    );
    assert_eq!(ok.call(&["STRLEN", "big"]), b":1048576\r\n");
    assert_eq!(
        ok.call(&["SELECT", "1"]),
        b"-ERR DB index is out of range\r\n"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn clients_beyond_the_cap_are_told_so() {
    let dir = scratch("cap");
    let disk = dir.join("kv.img");
    let server = Proc::kv(&[
        "--disk",
        disk.to_str().unwrap(),
        "--size-mib",
        "16",
        "--max-connections",
        "2",
    ]);
    let mut a = server.connect();
    let mut b = server.connect();
    assert_eq!(a.call(&["PING"]), b"+PONG\r\n");
    assert_eq!(b.call(&["PING"]), b"+PONG\r\n");
    let mut c = server.connect();
    assert_eq!(
        show(&c.reply().unwrap()),
        "-ERR max number of clients reached\\r\\n"
    );
    assert!(c.closed());
    drop(a);
    // A slot frees up.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = server.connect();
        d.send_raw(&encode(&[b"PING"]));
        match d.reply() {
            Some(r) if r == b"+PONG\r\n" => break,
            _ => assert!(Instant::now() < until, "the freed slot was not reused"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = show(&b.call(&["INFO", "stats"]));
    assert!(
        stats.contains("rejected_connections:") && !stats.contains("rejected_connections:0"),
        "{stats}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_full_disk_is_an_error_reply_and_deleting_makes_room() {
    let dir = scratch("full");
    let disk = dir.join("kv.img");
    let server = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "16"]);
    let mut c = server.connect();
    let value = vec![b'x'; 100_000];
    let mut stored = 0;
    let err = loop {
        let key = format!("k{stored}");
        c.send_raw(&encode(&[b"SET", key.as_bytes(), &value]));
        let r = c.reply().unwrap();
        if r != b"+OK\r\n" {
            break r;
        }
        stored += 1;
        assert!(stored < 1000, "16 MiB never filled up");
    };
    assert!(
        show(&err).starts_with("-ERR no space left on the store ("),
        "{}",
        show(&err)
    );
    assert!(stored > 40, "only {stored} values of 100 kB fit in 16 MiB");
    // Reads still work; deleting makes room again.
    assert_eq!(c.call(&["STRLEN", "k0"]), b":100000\r\n");
    for i in 0..stored / 2 {
        assert_eq!(c.call(&["DEL", &format!("k{i}")]), b":1\r\n");
    }
    c.send_raw(&encode(&[b"SET", b"again", &value]));
    assert_eq!(c.reply().unwrap(), b"+OK\r\n");
    assert_eq!(
        c.call(&["DBSIZE"]),
        format!(":{}\r\n", stored - stored / 2 + 1).into_bytes()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs kv-server on `disk` expecting it to refuse to start; returns its stderr.
fn refused(disk: &std::path::Path) -> String {
    let out = Command::new(kv_server())
        .args(["--disk", disk.to_str().unwrap(), "--port", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("run kv-server");
    assert_eq!(out.status.code(), Some(1), "kv-server must refuse {disk:?}");
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn damaged_foreign_and_newer_disk_images_are_refused_not_reformatted() {
    let dir = scratch("refuse");
    let disk = dir.join("kv.img");
    {
        let server = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "16"]);
        assert_eq!(server.connect().call(&["SET", "k", "v"]), b"+OK\r\n");
    }
    let good = std::fs::read(&disk).unwrap();

    let mut bad = good.clone();
    bad[44] ^= 1;
    std::fs::write(&disk, &bad).unwrap();
    let err = refused(&disk);
    assert!(
        err.contains("morgana: store: the store's superblock is corrupt (checksum mismatch): refusing to mount"),
        "{err}"
    );
    assert_eq!(std::fs::read(&disk).unwrap(), bad, "the image was changed");

    let mut newer = good.clone();
    newer[8] = 2;
    std::fs::write(&disk, &newer).unwrap();
    let err = refused(&disk);
    assert!(
        err.contains("the store is in format version 2; this build reads version 1"),
        "{err}"
    );

    let mut foreign = good.clone();
    foreign[..16].copy_from_slice(b"SQLite format 3\0");
    std::fs::write(&disk, &foreign).unwrap();
    let err = refused(&disk);
    assert!(
        err.contains("the device holds something other than a Morgana store: refusing to use it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&disk).unwrap(),
        foreign,
        "a foreign image was changed"
    );

    std::fs::write(&disk, &good).unwrap();
    let server = Proc::kv(&["--disk", disk.to_str().unwrap()]);
    assert_eq!(server.connect().call(&["GET", "k"]), b"$1\r\nv\r\n");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn everysec_loses_at_most_about_a_second() {
    let dir = scratch("everysec");
    let disk = dir.join("kv.img");
    let disk = disk.to_str().unwrap();
    let server = Proc::kv(&[
        "--disk",
        disk,
        "--size-mib",
        "16",
        "--durability",
        "everysec",
    ]);
    let mut c = server.connect();
    for i in 0..100 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), "v"]), b"+OK\r\n");
    }
    assert!(show(&c.call(&["INFO", "persistence"])).contains("appendfsync:everysec"));
    std::thread::sleep(Duration::from_millis(2500));
    let _ = server.kill();
    let server = Proc::kv(&["--disk", disk]);
    assert_eq!(server.connect().call(&["DBSIZE"]), b":100\r\n");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_server_describes_itself_and_keeps_expiry_times_across_restarts() {
    let dir = scratch("describe");
    let disk = dir.join("kv.img");
    let disk = disk.to_str().unwrap();
    let server = Proc::kv(&["--disk", disk, "--size-mib", "16"]);
    let mut c = server.connect();
    let info = show(&c.call(&["INFO"]));
    for field in [
        "redis_version:7.0.0",
        "connected_clients:1",
        "appendfsync:always",
        "total_commands_processed:",
        "# Keyspace",
    ] {
        assert!(info.contains(field), "{field} missing from {info}");
    }
    assert!(show(&c.call(&["TIME"])).starts_with("*2\\r\\n$10\\r\\n"));
    assert!(show(&c.call(&["HELLO", "2"])).contains("$5\\r\\nredis"));
    // Sections by name (any case, several at once); "all" and "default" give every one,
    // an unknown name none.
    let sections = |c: &mut Client, args: &[&str]| -> Vec<String> {
        let info = String::from_utf8_lossy(&c.call(args)).into_owned();
        info.split("# ")
            .skip(1)
            .map(|s| s.lines().next().unwrap_or("").to_string())
            .collect()
    };
    let every = ["Server", "Clients", "Persistence", "Stats", "Keyspace"];
    assert_eq!(sections(&mut c, &["INFO"]), every);
    assert_eq!(sections(&mut c, &["INFO", "all"]), every);
    assert_eq!(sections(&mut c, &["INFO", "DEFAULT"]), every);
    assert_eq!(
        sections(&mut c, &["INFO", "keyspace", "Server"]),
        ["Server", "Keyspace"]
    );
    assert_eq!(c.call(&["INFO", "nosuch"]), b"$0\r\n\r\n");
    assert_eq!(
        c.call(&["HELLO", "2"]),
        [
            &b"*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n"[..],
            b"$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:1\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n",
            b"$4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n"
        ]
        .concat()
    );
    assert_eq!(
        c.call(&["HELLO", "3"]),
        b"-NOPROTO unsupported protocol version\r\n"
    );
    assert_eq!(c.call(&["SET", "short", "v", "PX", "300"]), b"+OK\r\n");
    assert_eq!(c.call(&["SET", "long", "v", "EX", "1000"]), b"+OK\r\n");
    let _ = server.kill();
    std::thread::sleep(Duration::from_millis(400));
    let server = Proc::kv(&["--disk", disk]);
    let mut c = server.connect();
    assert_eq!(c.call(&["GET", "short"]), b"$-1\r\n");
    let ttl = show(&c.call(&["TTL", "long"]));
    assert!(ttl == ":1000\\r\\n" || ttl == ":999\\r\\n", "{ttl}");
    // The expiry cycle deletes keys nobody reads.
    for i in 0..300 {
        c.send_raw(&encode(&[
            b"SET",
            format!("e{i}").as_bytes(),
            b"v",
            b"PX",
            b"50",
        ]));
    }
    for _ in 0..300 {
        assert_eq!(c.reply().unwrap(), b"+OK\r\n");
    }
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if c.call(&["DBSIZE"]) == b":1\r\n" {
            break;
        }
        assert!(Instant::now() < until, "expired keys were never deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(show(&c.call(&["INFO", "stats"])).contains("expired_keys:30"));
    // One key retimed 3000 times, one given a deadline and then persisted: `expires`
    // stays exact, the persisted key stays, the retimed one goes at its last deadline.
    for i in 0..3000 {
        let secs = format!("{}", 1000 + i);
        c.send_raw(&encode(&[b"SET", b"r", b"v", b"EX", secs.as_bytes()]));
    }
    for _ in 0..3000 {
        assert_eq!(c.reply().unwrap(), b"+OK\r\n");
    }
    assert_eq!(c.call(&["SET", "p", "v", "PX", "200"]), b"+OK\r\n");
    assert_eq!(c.call(&["PERSIST", "p"]), b":1\r\n");
    let info = show(&c.call(&["INFO", "keyspace"]));
    assert!(info.contains("db0:keys=3,expires=2"), "{info}");
    assert_eq!(c.call(&["PEXPIRE", "r", "200"]), b":1\r\n");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if c.call(&["DBSIZE"]) == b":2\r\n" {
            break;
        }
        assert!(Instant::now() < until, "the retimed key was never deleted");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(c.call(&["GET", "p"]), b"$1\r\nv\r\n");
    assert_eq!(c.call(&["EXISTS", "r"]), b":0\r\n");
    let info = show(&c.call(&["INFO", "keyspace"]));
    assert!(info.contains("db0:keys=2,expires=1"), "{info}");
    let stats = show(&c.call(&["INFO", "stats"]));
    // 300 by the cycle, `short` by the GET after the restart, `r`.
    assert!(stats.contains("expired_keys:302\\r"), "{stats}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_benchmark_runs_unchanged() {
    if !common::have("redis-benchmark") {
        return;
    }
    let dir = scratch("benchmark");
    let disk = dir.join("kv.img");
    let server = Proc::kv(&["--disk", disk.to_str().unwrap(), "--size-mib", "32"]);
    let out = Command::new("redis-benchmark")
        .args([
            "-p",
            &server.addr.port().to_string(),
            "-t",
            "ping,set,get,incr,mset",
        ])
        .args(["-n", "2000", "-c", "8", "-P", "4", "-q"])
        .stderr(Stdio::piped())
        .output()
        .expect("redis-benchmark");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    for t in ["PING_INLINE", "SET", "GET", "INCR", "MSET"] {
        assert!(
            text.lines().any(|l| l.starts_with(t)
                && l[t.len()..].starts_with([':', ' '])
                && l.contains("requests per second")),
            "{t} missing from {text}"
        );
    }
    let mut c = Client::connect(server.addr);
    assert_eq!(c.call(&["GET", "counter:__rand_int__"]), b"$4\r\n2000\r\n");
    let _ = std::io::stdout().flush();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
