//! Crash consistency of the whole server as a Unix process: writers issue numbered
//! `SET`s, `INCR`s and `DEL`s with `always` durability over pipelined connections; the
//! process is killed with SIGKILL at random moments (fixed seeds), restarted on the same
//! disk image, and checked:
//! - every acknowledged `SET` is there with its value, byte for byte;
//! - every acknowledged `DEL` holds (unless the key was set again after it);
//! - the counter is at least the number of acknowledged `INCR`s, at most the number sent;
//! - no key exists that was never written, and no value is torn or invented.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Client, Proc, encode, scratch};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The value of write number `n`: its length varies (up to 64 KiB) and every byte
/// depends on `n`, so a torn or misplaced value cannot pass.
fn value(n: u64) -> Vec<u8> {
    let len = match n % 40 {
        0 => 40_000 + (n % 24_000) as usize,
        1..=12 => 200 + (n % 800) as usize,
        _ => 8 + (n % 40) as usize,
    };
    let mut v = format!("{n}:").into_bytes();
    let mut x = n.wrapping_mul(0x2545_F491_4F6C_DD1D);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b'a' + (x % 26) as u8);
    }
    v
}

/// What the writer knows.
#[derive(Default)]
struct Model {
    /// Key -> the last acknowledged value (None: acknowledged delete).
    acked: BTreeMap<String, Option<u64>>,
    /// Key -> writes sent but not acknowledged since the last acknowledged one.
    unacked: BTreeMap<String, Vec<Option<u64>>>,
    incr_acked: i64,
    incr_sent: i64,
    /// Keys written since the last check.
    touched: std::collections::BTreeSet<String>,
}

/// How many keys the writers use: later writes overwrite earlier ones (and compaction
/// runs between crashes), so the live data stays near 50 MB however fast the machine
/// writes; the disk is [`DISK_MIB`]. (With a key per write, an idle CI machine filled a
/// 64 MiB disk by the tenth cycle and got `-ERR no space left on the store`.)
const KEYS: u64 = 32_768;
const DISK_MIB: &str = "256";

/// Writes until the server dies; records what was acknowledged.
fn write_until_killed(server: &Proc, model: &mut Model, next: &mut u64, rng: &mut Rng) -> u64 {
    let mut c = Client::connect(server.addr);
    let mut acks = 0;
    loop {
        // A batch of 16 pipelined commands.
        let mut batch = Vec::new();
        let mut sent: Vec<(String, Option<u64>)> = Vec::new();
        for _ in 0..16 {
            *next += 1;
            let n = *next;
            match rng.next() % 10 {
                0 => {
                    batch.extend(encode(&[b"INCR", b"counter"]));
                    sent.push(("counter".into(), None));
                }
                1 if n > 20 => {
                    let key = format!("k{}", rng.next() % n.min(KEYS));
                    batch.extend(encode(&[b"DEL", key.as_bytes()]));
                    sent.push((key, None));
                }
                _ => {
                    let key = format!("k{}", n % KEYS);
                    batch.extend(encode(&[b"SET", key.as_bytes(), &value(n)]));
                    sent.push((key, Some(n)));
                }
            }
        }
        for (key, v) in &sent {
            if key == "counter" {
                model.incr_sent += 1;
            } else {
                model.unacked.entry(key.clone()).or_default().push(*v);
                model.touched.insert(key.clone());
            }
        }
        if std::io::Write::write_all(&mut c.stream, &batch).is_err() {
            return acks;
        }
        for (key, v) in sent {
            match c.reply() {
                Some(r) if key == "counter" && r.starts_with(b":") => model.incr_acked += 1,
                Some(r) if r.starts_with(b"+OK") || r.starts_with(b":") => {
                    // Acknowledged, so durable: the key's state is this write's.
                    let pending = model.unacked.entry(key.clone()).or_default();
                    if let Some(i) = pending.iter().position(|p| *p == v) {
                        pending.drain(..=i);
                    }
                    model.acked.insert(key, v);
                    acks += 1;
                }
                Some(r) => panic!("unexpected reply {:?}", String::from_utf8_lossy(&r)),
                None => return acks,
            }
        }
    }
}

/// The value number a `GET` reply holds (`None`: nil), checked whole.
fn parse_get(reply: &[u8], key: &str, cycle: u32) -> Option<u64> {
    if reply == b"$-1\r\n" {
        return None;
    }
    let body_at = reply.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let body = &reply[body_at..reply.len() - 2];
    let n: u64 = std::str::from_utf8(body.split(|&b| b == b':').next().unwrap())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cycle {cycle}: {key} holds an invented value"));
    assert_eq!(body, value(n), "cycle {cycle}: {key} holds a torn value");
    Some(n)
}

/// Reads `keys` (pipelined) and returns what each holds.
fn get_all(c: &mut Client, keys: &[&String], cycle: u32) -> Vec<Option<u64>> {
    let mut out = Vec::new();
    for chunk in keys.chunks(256) {
        let mut batch = Vec::new();
        for k in chunk {
            batch.extend(encode(&[b"GET", k.as_bytes()]));
        }
        c.send_raw(&batch);
        for k in chunk {
            let r = c.reply().expect("a reply");
            out.push(parse_get(&r, k, cycle));
        }
    }
    out
}

/// Checks that no key exists that was never written, that each of `keys` holds a
/// state it may hold, and the counter; then takes what survived as acknowledged.
fn check(server: &Proc, model: &mut Model, keys: &[&String], cycle: u32) {
    let mut c = Client::connect(server.addr);
    let listed = c.call(&["KEYS", "*"]);
    let mut at = listed.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut count = 0;
    while at < listed.len() {
        let n = common::reply_len(&listed[at..]).unwrap();
        let item = &listed[at..at + n];
        let body_at = item.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let key = String::from_utf8_lossy(&item[body_at..item.len() - 2]).into_owned();
        assert!(
            key == "counter" || model.acked.contains_key(&key) || model.unacked.contains_key(&key),
            "cycle {cycle}: key {key} was never written"
        );
        count += 1;
        at += n;
    }
    let got = get_all(&mut c, keys, cycle);
    for (key, got_n) in keys.iter().zip(got) {
        let acked = model.acked.get(*key).copied().flatten();
        let ok = got_n == acked || model.unacked.get(*key).is_some_and(|p| p.contains(&got_n));
        assert!(
            ok,
            "cycle {cycle}: {key} is {got_n:?}; acknowledged {:?}, sent since {:?}",
            model.acked.get(*key),
            model.unacked.get(*key)
        );
    }
    let counter = c.call(&["GET", "counter"]);
    let n: i64 = if counter == b"$-1\r\n" {
        0
    } else {
        let s = String::from_utf8_lossy(&counter);
        s.lines().nth(1).unwrap().parse().unwrap()
    };
    assert!(
        n >= model.incr_acked && n <= model.incr_sent,
        "cycle {cycle}: counter {n}, acknowledged {}, sent {}",
        model.incr_acked,
        model.incr_sent
    );
    // What survived is the state now: a later crash cannot take it back.
    let pending: Vec<String> = model.unacked.keys().cloned().collect();
    let refs: Vec<&String> = pending.iter().collect();
    let now = get_all(&mut c, &refs, cycle);
    for (key, v) in pending.into_iter().zip(now) {
        model.acked.insert(key, v);
    }
    model.unacked.clear();
    model.incr_acked = n;
    model.incr_sent = n;
    eprintln!("cycle {cycle}: {count} keys, {} checked", keys.len());
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_write() {
    let dir = scratch("crash");
    let disk = dir.join("kv.img");
    let disk = disk.to_str().unwrap();
    let mut rng = Rng(0x5EED_0013);
    let mut model = Model::default();
    let mut next = 0;
    let mut total_acks = 0;
    let cycles = 24;
    let started = Instant::now();
    for cycle in 0..cycles {
        let server = Proc::kv(&[
            "--disk",
            disk,
            "--size-mib",
            DISK_MIB,
            "--durability",
            "always",
        ]);
        if cycle > 0 {
            // The keys written since the last check, and a sample of the older ones.
            let touched: Vec<String> = std::mem::take(&mut model.touched).into_iter().collect();
            let older: Vec<String> = model
                .acked
                .keys()
                .filter(|k| !touched.contains(k) && rng.next().is_multiple_of(16))
                .cloned()
                .collect();
            let keys: Vec<&String> = touched.iter().chain(older.iter()).collect();
            check(&server, &mut model, &keys, cycle);
        }
        // Kill it while the writer is busy, after 30 to 400 ms.
        let delay = Duration::from_millis(30 + rng.next() % 370);
        let pid = server.child.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            // SIGKILL, by pid: the test owns this child.
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        });
        total_acks += write_until_killed(&server, &mut model, &mut next, &mut rng);
        killer.join().unwrap();
        let _ = server.kill();
    }
    let server = Proc::kv(&["--disk", disk, "--size-mib", DISK_MIB]);
    let all: Vec<String> = model
        .acked
        .keys()
        .chain(model.unacked.keys())
        .cloned()
        .collect();
    let keys: Vec<&String> = all.iter().collect();
    check(&server, &mut model, &keys, cycles);
    eprintln!(
        "{cycles} SIGKILLs, {total_acks} acknowledged writes checked in {:?}",
        started.elapsed()
    );
    assert!(
        total_acks > 500,
        "too few writes were acknowledged: {total_acks}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
