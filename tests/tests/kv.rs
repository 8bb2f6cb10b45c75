//! End to end: `appliances/kv`, the Redis-protocol server on a disk, built from its
//! appliance.ron for both targets.
//!
//! - `unix_and_kernel_answer_like_redis_server`: the Unix process (in a network
//!   namespace of its own, so its compiled-in port 6379 is never the host's) and the PVH
//!   kernel under QEMU (the image for QEMU/KVM only, `MORGANA_TARGET=qemu`, as in the
//!   crash test; booted from the generated `kv.qemu`, its virtio-blk disk and port
//!   forward pointed at this test's) each get the same `redis-cli` session as Debian's
//!   redis-server, and their output must be the same byte for byte; then a second boot
//!   of the kernel on the same disk finds the session's data. One boot serves every
//!   check of the first part. Also: `scripts/morgana-run` creates a missing disk image
//!   (and says so) before QEMU starts, and refuses a missing read-only one. And 50
//!   clients connecting to the kernel at once (redis-benchmark's default) all get PONG.
//! - `kernel_keeps_every_acknowledged_write_across_sigkill`: issue 13's crash test. The
//!   kernel (QEMU/KVM only) under QEMU is killed with SIGKILL at a pseudo-random moment (fixed seed)
//!   while a client pipelines numbered `SET`s and `INCR`s with `always` durability; after
//!   each reboot on the same disk every acknowledged write is present byte for byte,
//!   nothing unacknowledged is torn or invented, and the store mounts without salvage.
//!   `MORGANA_KV_CRASH_CYCLES` cycles (default 5, as CI runs it; bench/kv-crash.sh runs
//!   20 and prints the figures).

use morgana_tests::resp::{Client, Reply};
use morgana_tests::workspace::free_port;
use morgana_tests::{build_appliance, build_kernel, build_kernel_for, workspace_root};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn have(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()));
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed (Debian package {package}; scripts/setup.sh installs it)"
        );
        eprintln!(
            "skipped: {tool} is not installed (Debian package {package}; run scripts/setup.sh)"
        );
    }
    found
}

/// A scratch directory of this test, emptied first.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-kv-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A child process killed (SIGKILL) and reaped when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The kernel booted from its generated `kv.qemu`: the same arguments, with the host
/// side of the port forward, the disk image and the serial console made this test's.
struct Kernel {
    qemu: Proc,
    serial: PathBuf,
    addr: SocketAddr,
}

fn qemu_args(image: &Path, disk: &Path, port: u16, serial: &Path) -> Vec<String> {
    let spec = std::fs::read_to_string(image.with_extension("qemu")).expect("kv.qemu");
    let mut args = morgana_tests::qemu::spec_args(&spec);
    let mut seen = (false, false, false);
    for a in &mut args {
        if a.contains("hostfwd=tcp:127.0.0.1:6379-:6379") {
            *a = a.replace("127.0.0.1:6379-", &format!("127.0.0.1:{port}-"));
            seen.0 = true;
        } else if a.starts_with("file=kv.img,") {
            *a = a.replace("file=kv.img,", &format!("file={},", disk.display()));
            seen.1 = true;
        } else if a == "stdio" {
            *a = format!("file:{}", serial.display());
            seen.2 = true;
        }
    }
    assert_eq!(
        seen,
        (true, true, true),
        "kv.qemu forwards 6379, attaches kv.img and has a serial console:\n{spec}"
    );
    args
}

/// bench/lib/listen-backlog.c built once: preloaded into QEMU, every listen(2) gets a
/// backlog of at least 128 (its header says why).
fn listen_backlog_shim() -> PathBuf {
    static SHIM: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    SHIM.get_or_init(|| {
        let dir = morgana_tests::target_dir();
        // A fresh clone has no target/e2e yet when this test runs first.
        std::fs::create_dir_all(&dir).expect("create target/e2e");
        let out = dir.join(format!("listen-backlog-{}.so", std::process::id()));
        let status = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&out)
            .arg(workspace_root().join("bench/lib/listen-backlog.c"))
            .arg("-ldl")
            .status()
            .expect("gcc runs (scripts/setup.sh installs it)");
        assert!(
            status.success(),
            "gcc could not build the listen-backlog shim"
        );
        out
    })
    .clone()
}

impl Kernel {
    fn boot(image: &Path, disk: &Path, dir: &Path) -> Kernel {
        let port = free_port();
        let serial = dir.join(format!("serial-{port}.txt"));
        let _ = std::fs::remove_file(&serial);
        let child = Command::new("qemu-system-x86_64")
            // slirp listens on the forwarded port with a backlog of 1: a burst of
            // connects would test the host's accept queue, not the guest's.
            .env("LD_PRELOAD", listen_backlog_shim())
            .args(qemu_args(image, disk, port, &serial))
            .args(["-monitor", "none", "-kernel"])
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 runs");
        Kernel {
            qemu: Proc(child),
            serial,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default())
            .replace("\r\n", "\n")
    }

    /// A connection once the server answers PING (slirp accepts before the guest is up).
    fn client(&mut self, limit: Duration) -> Client {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Ok(Some(status)) = self.qemu.0.try_wait() {
                panic!("QEMU ended ({status}); console:\n{}", self.console());
            }
            if let Ok(mut c) = Client::connect(self.addr, Duration::from_millis(300))
                && c.call(&[b"PING"]).ok() == Some(Reply::Status("PONG".into()))
            {
                c.set_timeout(Duration::from_secs(30)).expect("timeout");
                return c;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no PONG after {limit:?}; console:\n{}", self.console());
    }
}

/// The redis-cli session of the differential test: every command the issue lists, with
/// options, errors and edge cases. Keys are chosen so that `KEYS` matches at most one
/// (Redis lists keys in hash order).
const SESSION: &str = "\
PING
PING \"hello there\"
FLUSHDB
DBSIZE
SET greeting \"hello world\"
GET greeting
GET nothing
SET k v NX
SET k w NX
SET k w XX
SET absent x XX
GET k
GET absent
SET timed v EX 100
TTL timed
SET timed2 v PX 100000
TTL timed2
SET bad v EX 0
SET bad v EX -5
SET bad v PX abc
SET bad v NX XX
TTL greeting
TTL nothing
EXPIRE greeting 500
TTL greeting
EXPIRE nothing 5
INCR visits
INCR visits
DECR visits
INCRBY visits 41
DECRBY visits 2
INCR greeting
SET big 9223372036854775807
INCR big
MSET a 1 b 2 c 3
MGET a b c d
MSET odd
EXISTS a b nothing a
DEL a b nothing
EXISTS a b
KEYS greet*
KEYS zz*
KEYS v?sits
KEYS [h-v]isits
DBSIZE
GET
SET onlykey
NOSUCHCOMMAND arg
ECHO \"two words\"
FLUSHDB
DBSIZE
GET greeting
";

/// Runs the session through redis-cli, with `prefix` (nsenter into a namespace) before it.
fn cli_session(prefix: &[&str], port: u16) -> String {
    let (program, rest) = match prefix.split_first() {
        Some((p, rest)) => (*p, rest.to_vec()),
        None => ("redis-cli", Vec::new()),
    };
    let mut cmd = Command::new(program);
    cmd.args(rest);
    if !prefix.is_empty() {
        cmd.arg("redis-cli");
    }
    let mut child = cmd
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(SESSION.as_bytes())
        .expect("session written");
    let out = child.wait_with_output().expect("redis-cli ends");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_until(limit: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn unix_and_kernel_answer_like_redis_server() {
    let tools = [
        ("redis-server", "redis-server"),
        ("redis-cli", "redis-tools"),
        ("qemu-system-x86_64", "qemu-system-x86"),
        ("unshare", "util-linux"),
        ("nsenter", "util-linux"),
        ("ip", "iproute2"),
    ];
    if !tools.iter().all(|(t, p)| have(t, p)) {
        return;
    }
    let dir = scratch("diff");

    // The reference: redis-server on a port of its own, no persistence.
    let redis_port = free_port();
    let _redis = Proc(
        Command::new("redis-server")
            .args(["--port", &redis_port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server runs"),
    );
    let redis_addr = SocketAddr::from(([127, 0, 0, 1], redis_port));
    wait_until(Duration::from_secs(10), "redis-server is not up", || {
        std::net::TcpStream::connect(redis_addr).is_ok()
    });
    let want = cli_session(&[], redis_port);
    assert!(
        want.contains("hello world") && want.lines().count() > 50,
        "{want}"
    );

    // Unix: the appliance in a network namespace of its own (its port is compiled in),
    // its disk image made in its working directory.
    let unix = build_appliance("kv", &[]);
    let unix_dir = dir.join("unix");
    std::fs::create_dir_all(&unix_dir).expect("dir");
    let mut server = Proc(
        Command::new("unshare")
            .args(["--net", "sh", "-c", "ip link set lo up && exec \"$0\""])
            .arg(&unix)
            .current_dir(&unix_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare runs"),
    );
    let ns = format!("--net=/proc/{}/ns/net", server.0.id());
    let nsenter = ["nsenter", ns.as_str()];
    wait_until(Duration::from_secs(30), "the Unix kv is not up", || {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("kv ended: {status}");
        }
        Command::new("nsenter")
            .arg(&ns)
            .args(["redis-cli", "-p", "6379", "PING"])
            .output()
            .is_ok_and(|o| o.stdout == b"PONG\n")
    });
    let got = cli_session(&nsenter, 6379);
    assert_eq!(got, want, "the Unix kv answers as redis-server does");
    let image = unix_dir.join("kv.img");
    assert_eq!(
        std::fs::metadata(&image).expect("kv.img made").len(),
        256 << 20
    );
    drop(server);

    // The kernel: first through scripts/morgana-run with a stand-in for QEMU that shows
    // its arguments, in a directory without the image: the image is created first.
    // The image for QEMU/KVM only (`MORGANA_TARGET=qemu`), the one bench/kv.sh measures.
    let kernel = build_kernel_for("kv", "qemu");
    let run_dir = dir.join("run");
    std::fs::create_dir_all(&run_dir).expect("dir");
    let fake = dir.join("fake-qemu");
    std::fs::write(&fake, "#!/bin/sh\necho \"$@\"\n").expect("fake qemu");
    Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .expect("chmod");
    let out = Command::new(workspace_root().join("scripts/morgana-run"))
        .arg(&kernel)
        .current_dir(&run_dir)
        .env("MORGANA_QEMU", &fake)
        .output()
        .expect("morgana-run runs");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    // (A redis-server of the host on 6379 would make morgana-run refuse: said so.)
    if !stderr.contains("host port 6379 (tcp) is already in use") {
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "morgana-run: created the disk image kv.img (256 MiB, sparse) in {}; the appliance formats it at boot\n",
                run_dir.display()
            )),
            "{stderr}"
        );
        assert!(
            stdout.contains("-drive file=kv.img,format=raw,if=none,id=disk0,cache=writeback -device virtio-blk-pci,drive=disk0"),
            "{stdout}"
        );
        let made = std::fs::metadata(run_dir.join("kv.img")).expect("made");
        assert_eq!(made.len(), 256 << 20);
        // Run again: the image exists and is left alone.
        std::fs::write(run_dir.join("kv.img"), b"keep").expect("write");
        let out = Command::new(workspace_root().join("scripts/morgana-run"))
            .arg(&kernel)
            .current_dir(&run_dir)
            .env("MORGANA_QEMU", &fake)
            .output()
            .expect("morgana-run runs");
        assert!(out.status.success());
        assert!(!String::from_utf8_lossy(&out.stderr).contains("created"));
        assert_eq!(
            std::fs::read(run_dir.join("kv.img")).expect("kept"),
            b"keep"
        );
    }

    // Booted for real on a disk image of this test: the same session.
    let disk = dir.join("kernel.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(64 << 20))
        .expect("disk");
    let mut k = Kernel::boot(&kernel, &disk, &dir);
    let mut c = k.client(Duration::from_secs(120));
    let got = cli_session(&[], k.addr.port());
    assert_eq!(
        got,
        want,
        "the kernel answers as redis-server does; console:\n{}",
        k.console()
    );
    // Data the next boot must find.
    assert_eq!(
        c.call(&[b"SET", b"survivor", b"still here"]).expect("SET"),
        Reply::Status("OK".into())
    );
    let console = k.console();
    assert!(
        console.contains("kv: serving the Redis protocol on redis://0.0.0.0:6379/"),
        "{console}"
    );
    assert!(console.contains("virtio-blk"), "{console}");
    // redis-benchmark's default: 50 clients connecting at once, every one served.
    burst_of_clients(&k, BURST);
    drop(c);
    drop(k);

    // A second boot on the same disk (the first was killed, as a power cut would).
    let mut k = Kernel::boot(&kernel, &disk, &dir);
    let mut c = k.client(Duration::from_secs(120));
    assert_eq!(
        c.call(&[b"GET", b"survivor"]).expect("GET"),
        Reply::Bulk(Some(b"still here".to_vec()))
    );
    assert_eq!(c.call(&[b"DBSIZE"]).expect("DBSIZE"), Reply::Int(1));
    let console = k.console();
    assert!(console.contains("store: mounted: 1 keys"), "{console}");
    drop(k);

    // A read-only disk that does not exist: morgana-run refuses before QEMU starts.
    let spec = std::fs::read_to_string(kernel.with_extension("qemu")).expect("spec");
    let ro = dir.join("ro");
    std::fs::create_dir_all(&ro).expect("dir");
    let ro_kernel = ro.join("kv");
    std::fs::copy(&kernel, &ro_kernel).expect("copy");
    std::fs::write(
        ro.join("kv.qemu"),
        spec.replace("# disk 256 rw kv.img", "# disk 256 ro kv.img"),
    )
    .expect("spec");
    let out = Command::new(workspace_root().join("scripts/morgana-run"))
        .arg(&ro_kernel)
        .current_dir(&ro)
        .env("MORGANA_QEMU", &fake)
        .output()
        .expect("morgana-run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot boot kv: its read-only disk image kv.img does not exist"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Clients that connect at once in `burst_of_clients`: redis-benchmark's default `-c`.
const BURST: usize = 50;

/// `n` clients connect at the same moment (one thread each, released together), each
/// sends PING at once and must read `+PONG`; all stay open until every one has its
/// answer. The kernel's listener must take the burst without resetting any (a SYN it
/// has no room for waits for the client's retransmission: `components/direct`).
/// QEMU's port forward accepts on the host side first (backlog 1, so the host's kernel
/// holds back some SYNs for a second or more) and then connects to the guest.
fn burst_of_clients(k: &Kernel, n: usize) {
    let go = std::sync::Arc::new(std::sync::Barrier::new(n));
    let addr = k.addr;
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let go = go.clone();
            std::thread::spawn(move || -> Result<std::net::TcpStream, String> {
                use std::io::Read;
                go.wait();
                let limit = Duration::from_secs(60);
                let mut s = std::net::TcpStream::connect_timeout(&addr, limit)
                    .map_err(|e| format!("connect: {e}"))?;
                s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
                s.write_all(b"PING\r\n")
                    .map_err(|e| format!("write: {e}"))?;
                let mut got = Vec::new();
                let mut buf = [0u8; 16];
                while got.len() < 7 {
                    match s.read(&mut buf) {
                        Ok(0) => return Err(format!("closed after {got:?}")),
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                        Err(e) => return Err(format!("read after {got:?}: {e}")),
                    }
                }
                if got == b"+PONG\r\n" {
                    Ok(s)
                } else {
                    Err(format!("answered {:?}", String::from_utf8_lossy(&got)))
                }
            })
        })
        .collect();
    let outcomes: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("client thread"))
        .collect();
    let failed: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {n} clients connecting at once failed: {failed:?}; console:\n{}",
        failed.len(),
        k.console()
    );
}

/// A deterministic pseudo-random sequence (fixed seeds: a failure is reproducible).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// The value of key `i` written in cycle `c`: its own name, then a pattern, 1..=3000
/// bytes (many span sectors, so a torn write would show).
fn value(c: usize, i: usize) -> Vec<u8> {
    let len = (i * 7919 + c * 104729) % 3000 + 1;
    let head = format!("{c}:{i}:");
    head.bytes()
        .chain((0..).map(|n| b'a' + (n % 26) as u8))
        .take(len)
        .collect()
}

/// What the client knows of the writes it made.
#[derive(Default)]
struct Ledger {
    /// key -> value, for every SET sent; whether it was acknowledged.
    sets: BTreeMap<Vec<u8>, (Vec<u8>, bool)>,
    /// INCRs sent, and the highest value an acknowledged one returned.
    incrs_sent: i64,
    incr_acked: i64,
}

/// Checks the store against the ledger: every acknowledged SET present byte for byte,
/// every unacknowledged one absent or whole, no other key, the counter between what was
/// acknowledged and what was sent.
fn verify(c: &mut Client, ledger: &Ledger, cycle: usize) -> usize {
    let keys: Vec<&Vec<u8>> = ledger.sets.keys().collect();
    let mut present = 0;
    for chunk in keys.chunks(200) {
        let mut args: Vec<&[u8]> = vec![b"MGET"];
        args.extend(chunk.iter().map(|k| k.as_slice()));
        let Reply::Array(Some(values)) = c.call(&args).expect("MGET") else {
            panic!("MGET is an array");
        };
        for (k, v) in chunk.iter().zip(values) {
            let (want, acked) = &ledger.sets[*k];
            match v {
                Reply::Bulk(Some(got)) => {
                    assert!(
                        &got == want,
                        "cycle {cycle}: {} holds {} bytes that were never written to it ({:?}...)",
                        String::from_utf8_lossy(k),
                        got.len(),
                        String::from_utf8_lossy(&got[..got.len().min(40)])
                    );
                    present += 1;
                }
                Reply::Bulk(None) => assert!(
                    !acked,
                    "cycle {cycle}: the acknowledged write of {} is lost",
                    String::from_utf8_lossy(k)
                ),
                other => panic!("MGET item {other:?}"),
            }
        }
    }
    let counter = match c.call(&[b"GET", b"counter"]).expect("GET") {
        Reply::Bulk(Some(v)) => String::from_utf8_lossy(&v).parse::<i64>().expect("number"),
        Reply::Bulk(None) => 0,
        other => panic!("GET counter: {other:?}"),
    };
    assert!(
        counter >= ledger.incr_acked && counter <= ledger.incrs_sent,
        "cycle {cycle}: counter {counter}, acknowledged {}, sent {}",
        ledger.incr_acked,
        ledger.incrs_sent
    );
    let dbsize = c.call(&[b"DBSIZE"]).expect("DBSIZE");
    let extra = usize::from(counter > 0);
    assert_eq!(
        dbsize,
        Reply::Int((present + extra) as i64),
        "cycle {cycle}: no key is invented"
    );
    present
}

#[test]
fn kernel_keeps_every_acknowledged_write_across_sigkill() {
    if !have("qemu-system-x86_64", "qemu-system-x86") {
        return;
    }
    let cycles: usize = std::env::var("MORGANA_KV_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    // The image for QEMU/KVM only (`MORGANA_TARGET=qemu`), the one bench/kv.sh measures.
    let kernel = build_kernel_for("kv", "qemu");
    let dir = scratch("crash");
    // Sparse, and large enough for 20 cycles of values of 1.5 KB on average.
    let disk = dir.join("crash.img");
    std::fs::File::create(&disk)
        .and_then(|f| f.set_len(256 << 20))
        .expect("disk");
    let mut rng = Lcg(0x6b76_2d63_7261_7368);
    let mut ledger = Ledger::default();
    let (mut boot_ms, mut acked_total, mut sent_total) = (Vec::new(), 0usize, 0usize);
    let mut mounted_at = Vec::new();
    for cycle in 0..=cycles {
        let booted = Instant::now();
        let mut k = Kernel::boot(&kernel, &disk, &dir);
        let mut c = k.client(Duration::from_secs(120));
        boot_ms.push(booted.elapsed().as_millis());
        let present = verify(&mut c, &ledger, cycle);
        let console = k.console();
        assert!(
            !console.contains("salvag") && console.contains("store: mounted"),
            "cycle {cycle}: the store mounts cleanly:\n{console}"
        );
        // The kernel's clock when the store was mounted (`[    0.181121 INFO ...`).
        mounted_at.push(
            console
                .lines()
                .find(|l| l.contains("store: mounted"))
                .and_then(|l| l.trim_start_matches('[').split_whitespace().next())
                .and_then(|t| t.parse::<f64>().ok())
                .map_or(-1.0, |t| (t * 1000.0).round()),
        );
        if cycle == cycles {
            eprintln!(
                "crash test: {cycles} SIGKILLs; {acked_total} of {sent_total} writes acknowledged, all present; {present} keys after the last restart"
            );
            eprintln!("crash test: boot to PONG (ms, host): {boot_ms:?}");
            eprintln!("crash test: store mounted at (ms, guest clock): {mounted_at:?}");
            break;
        }
        // Pipelined writes, up to 32 in flight, until QEMU is killed at a moment chosen
        // by the seeded sequence.
        let kill_after = Duration::from_millis(200 + rng.next() % 2300);
        let qemu_pid = k.qemu.0.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(kill_after);
            let _ = Command::new("kill")
                .args(["-KILL", &qemu_pid.to_string()])
                .status();
        });
        c.set_timeout(Duration::from_secs(5)).expect("timeout");
        let mut in_flight: std::collections::VecDeque<Option<Vec<u8>>> = Default::default();
        let mut i = 0usize;
        let mut dead = false;
        let started = Instant::now();
        while !dead && started.elapsed() < Duration::from_secs(60) {
            while in_flight.len() < 32 {
                if i % 10 == 9 {
                    ledger.incrs_sent += 1;
                    if c.send(&[b"INCR", b"counter"]).is_err() {
                        dead = true;
                        break;
                    }
                    in_flight.push_back(None);
                } else {
                    let key = format!("c{cycle}:{i}").into_bytes();
                    let v = value(cycle, i);
                    ledger.sets.insert(key.clone(), (v.clone(), false));
                    sent_total += 1;
                    if c.send(&[b"SET", &key, &v]).is_err() {
                        dead = true;
                        break;
                    }
                    in_flight.push_back(Some(key));
                }
                i += 1;
            }
            if dead {
                break;
            }
            match c.reply() {
                Ok(Reply::Status(s)) if s == "OK" => {
                    let Some(Some(key)) = in_flight.pop_front() else {
                        panic!("cycle {cycle}: +OK to an INCR");
                    };
                    ledger.sets.get_mut(&key).expect("sent").1 = true;
                    acked_total += 1;
                }
                Ok(Reply::Int(n)) => {
                    assert_eq!(in_flight.pop_front(), Some(None), "an integer to a SET");
                    ledger.incr_acked = ledger.incr_acked.max(n);
                }
                Ok(other) => panic!("cycle {cycle}: unexpected reply {other:?}"),
                Err(_) => dead = true,
            }
        }
        killer.join().expect("killer");
        assert!(dead, "cycle {cycle}: the server outlived its SIGKILL");
        let _ = k.qemu.0.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two disks in one kernel (`appliances/kv-seeded`): a read-only image (`seed_disk`,
/// declared first) built by `cargo build` from the directory `appliances/kv-seeded/seed`
/// (`Block(from: "seed/")`), and the store's data disk (`disk`, second), found at boot
/// by position. One boot from the generated `kv-seeded.qemu`, which attaches the built
/// image read-only: every file of the directory is served as its key, a SET lands on
/// the second disk's file, and the image's file is unchanged. Swapped disks would not
/// start: the data disk is blank (no image to mount) and the image's disk is read-only.
/// (That the build rewrites the image when the directory changes is
/// `codegen/tests/build_script.rs`'s host test.)
#[test]
fn kernel_finds_its_two_disks_by_position() {
    if !have("qemu-system-x86_64", "qemu-system-x86") {
        return;
    }
    let dir = scratch("two-disks");
    let data = dir.join("data.img");
    std::fs::File::create(&data)
        .and_then(|f| f.set_len(64 << 20))
        .expect("data disk");

    let kernel = build_kernel("kv-seeded");
    // What the image must hold: the files of the directory, by path.
    let seed_dir = morgana_tests::workspace_root().join("appliances/kv-seeded/seed");
    let mut files = Vec::new();
    let mut todo = vec![seed_dir.clone()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("seed/") {
            let p = e.expect("entry").path();
            if p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else {
                let key = p
                    .strip_prefix(&seed_dir)
                    .expect("below")
                    .to_string_lossy()
                    .into_owned();
                files.push((key, std::fs::read(&p).expect("read")));
            }
        }
    }
    assert!(files.len() >= 2, "{files:?}");
    let seed = kernel.with_file_name("kv-seeded-seed_disk.img");
    let image = std::fs::read(&seed).expect("cargo build wrote the image next to the kernel");
    let spec = std::fs::read_to_string(kernel.with_extension("qemu")).expect("kv-seeded.qemu");
    // The drives in the order of appliance.ron: the image first, the data disk second.
    let first = spec
        .find(&format!("file={},", seed.display()))
        .expect("the built image attached");
    let second = spec.find("file=kv.img,").expect("kv.img attached");
    assert!(first < second, "{spec}");
    assert!(
        spec.contains(
            "id=disk0,cache=writeback,readonly=on\n-device\nvirtio-blk-pci,drive=disk0\n"
        ),
        "{spec}"
    );
    assert!(
        spec.contains("id=disk1,cache=writeback\n-device\nvirtio-blk-pci,drive=disk1\n"),
        "{spec}"
    );
    let port = free_port();
    let serial = dir.join("serial.txt");
    let mut args = morgana_tests::qemu::spec_args(&spec);
    for a in &mut args {
        *a = a
            .replace("127.0.0.1:6379-", &format!("127.0.0.1:{port}-"))
            .replace("file=kv.img,", &format!("file={},", data.display()));
        if a == "stdio" {
            *a = format!("file:{}", serial.display());
        }
    }
    let child = Command::new("qemu-system-x86_64")
        .args(args)
        .args(["-monitor", "none", "-kernel"])
        .arg(&kernel)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 runs");
    let mut k = Kernel {
        qemu: Proc(child),
        serial,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    let mut c = k.client(Duration::from_secs(120));
    let (key, value) = &files[0];
    assert_eq!(
        c.call(&[b"GET", key.as_bytes()]).expect("GET"),
        Reply::Bulk(Some(value.clone())),
        "console:\n{}",
        k.console()
    );
    for (key, value) in &files[1..] {
        assert_eq!(
            c.call(&[b"GET", key.as_bytes()]).expect("GET"),
            Reply::Bulk(Some(value.clone())),
            "{key}"
        );
    }
    let count = files.len() as i64;
    assert_eq!(c.call(&[b"DBSIZE"]).expect("DBSIZE"), Reply::Int(count));
    let marker = b"written to the second disk 7f3a9c";
    assert_eq!(
        c.call(&[b"SET", b"mine", marker]).expect("SET"),
        Reply::Status("OK".into())
    );
    assert_eq!(
        c.call(&[b"DEL", files[0].0.as_bytes()]).expect("DEL"),
        Reply::Int(1)
    );
    assert_eq!(c.call(&[b"DBSIZE"]).expect("DBSIZE"), Reply::Int(count));
    let console = k.console();
    assert!(
        console.contains(&format!(
            "seed: copied {count} keys from the image into the empty store"
        )),
        "{console}"
    );
    assert_eq!(console.matches("virtio-blk").count(), 2, "{console}");
    drop(c);
    drop(k);

    // `always`: the SET was on the data disk before its reply.
    let on_disk = std::fs::read(&data).expect("data disk");
    assert!(
        on_disk.windows(marker.len()).any(|w| w == marker),
        "the SET is on the second disk"
    );
    assert_eq!(
        std::fs::read(&seed).expect("the image"),
        image,
        "the image is untouched"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
