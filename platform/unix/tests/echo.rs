//! End-to-end: build `examples/echo.rs` (a static, libc-free binary made with
//! `morgana_unix::entry!`), run it, and talk to it over real sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Builds the example once per test run, in the target directory of this test binary,
/// with the same profile, and returns its path.
fn echo_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // <target>/<profile>/deps/echo-<hash>
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
        // From the executable's own path, not $CARGO_TARGET_DIR: that may be relative to
        // a directory other than this test's working directory.
        let target_dir = profile_dir.parent().expect("target dir");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        // `cargo rustc` = `cargo build` plus flags for the example alone: its warnings
        // are errors here, since the workspace's clippy run does not see it (it needs
        // the `example` feature; see Cargo.toml).
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["rustc", "-p", "morgana-unix", "--example", "echo"])
            .args(["--features", "example"])
            .env("CARGO_TARGET_DIR", target_dir);
        if release {
            cmd.arg("--release");
        }
        cmd.args(["--", "-D", "warnings"]);
        let status = cmd.status().expect("running cargo");
        assert!(status.success(), "building the echo example failed");
        let bin = profile_dir.join("examples").join("echo");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// A running echo server, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(echo_binary())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting echo");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("reading the address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .expect("an address");
        Server { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Kills the server and returns what it wrote on stderr.
    fn stop(mut self) -> String {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        err
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(echo_binary())
        .args(args)
        .output()
        .expect("running echo")
}

#[test]
fn echoes_concurrent_connections_and_closes_idle_ones() {
    let server = Server::start(&["--idle-ms", "400", "--max", "32"]);

    // Several clients at once, each with several messages, one of them large.
    let clients: Vec<_> = (0..8u8)
        .map(|id| {
            let s = server.connect();
            std::thread::spawn(move || {
                let mut s = s;
                for round in 0..5usize {
                    let len = if round == 3 { 200_000 } else { 1 + 37 * round };
                    let msg: Vec<u8> = (0..len).map(|i| (i as u8) ^ id).collect();
                    s.write_all(&msg).unwrap();
                    let mut back = vec![0u8; len];
                    s.read_exact(&mut back).unwrap();
                    assert_eq!(back, msg, "client {id} round {round}");
                    // Pauses shorter than the idle timeout keep the connection open.
                    std::thread::sleep(Duration::from_millis(50));
                }
                s.shutdown(std::net::Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).unwrap();
                assert!(rest.is_empty());
            })
        })
        .collect();
    for c in clients {
        c.join().expect("a client failed");
    }

    // A silent connection is closed by the server after the idle timeout.
    let mut idle = server.connect();
    let t = Instant::now();
    let mut buf = [0u8; 8];
    let n = idle.read(&mut buf).expect("server closes, no timeout");
    let waited = t.elapsed();
    assert_eq!(n, 0, "expected EOF");
    assert!(
        waited >= Duration::from_millis(350),
        "closed too early: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );

    // Still accepting afterwards.
    let mut s = server.connect();
    s.write_all(b"again").unwrap();
    let mut back = [0u8; 5];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"again");
    drop(s);

    let log = server.stop();
    let first = log.lines().next().unwrap_or_default();
    assert!(
        first.starts_with('[') && first.contains(" INFO  echo] starting;"),
        "log line: {first:?}"
    );
    assert!(log.contains("idle for 400ms, closing"), "log:\n{log}");
}

#[test]
fn binary_is_static_and_libc_free() {
    let bin = echo_binary();
    let elf = std::fs::read(bin).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(elf[4], 2, "not ELF64");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap());
    assert_eq!(
        u16_at(16),
        2,
        "e_type is not ET_EXEC (a PIE or a shared object)"
    );
    let phoff = u64_at(32) as usize;
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        let p_type = u32_at(phoff + i * phentsize);
        assert_ne!(p_type, PT_INTERP, "has an ELF interpreter: not static");
        assert_ne!(p_type, PT_DYNAMIC, "has a dynamic section");
    }
    println!(
        "echo example: {} bytes ({} program headers), {}",
        elf.len(),
        phnum,
        bin.display()
    );
}

#[test]
fn panic_prints_and_exits_101() {
    let out = run(&["--panic"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "stderr: {err}");
    assert!(
        err.contains("morgana: panic: --panic was given at "),
        "stderr: {err}"
    );
}

#[test]
fn out_of_memory_is_reported() {
    let out = run(&["--oom"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "stderr: {err}");
    assert!(
        err.contains(
            "morgana: out of memory: an allocation of 65536 bytes failed (heap_bytes = 1048576)"
        ),
        "stderr: {err}"
    );
}

#[test]
fn start_errors_print_the_device_and_exit_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = run(&["--port", &port.to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&format!(
            "morgana: net: address 127.0.0.1:{port} already in use (EADDRINUSE)"
        )),
        "stderr: {err}"
    );

    let out = run(&["--frobnicate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("morgana: main: unknown argument"));
}

#[test]
fn refuses_connections_beyond_the_limit() {
    let server = Server::start(&["--idle-ms", "5000", "--max", "2"]);
    let mut a = server.connect();
    let mut b = server.connect();
    for s in [&mut a, &mut b] {
        s.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        s.read_exact(&mut one).unwrap();
    }
    // The third is accepted by the kernel, then dropped by the server: EOF or reset.
    let mut c = server.connect();
    let _ = c.write_all(b"y");
    let mut buf = [0u8; 1];
    match c.read(&mut buf) {
        Ok(0) | Err(_) => {}
        Ok(n) => panic!("the third connection was served ({n} bytes)"),
    }
    // Closing one makes room again.
    drop(a);
    let t = Instant::now();
    loop {
        let mut d = server.connect();
        d.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = d.write_all(b"z");
        if matches!(d.read(&mut buf), Ok(1)) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no room after a close"
        );
    }
    drop(b);
    let log = server.stop();
    assert!(log.contains("too many connections, refused"), "log:\n{log}");
}

#[test]
fn runs_with_standard_streams_closed() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cmd = Command::new(echo_binary());
    cmd.args(["--port", &port.to_string(), "--idle-ms", "5000"]);
    // SAFETY: runs in the forked child before exec; close(2) is async-signal-safe, and
    // fds 1 and 2 are not used by anything else there.
    unsafe {
        cmd.pre_exec(|| {
            drop(OwnedFd::from_raw_fd(1));
            drop(OwnedFd::from_raw_fd(2));
            Ok(())
        });
    }
    let child = cmd.stdin(Stdio::null()).spawn().expect("starting echo");
    let server = Server {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    };
    // Wait for the listener.
    let t = Instant::now();
    let mut s = loop {
        match TcpStream::connect(server.addr) {
            Ok(s) => break s,
            Err(e) if t.elapsed() > Duration::from_secs(5) => panic!("never listened: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // Only the echo comes back: no log line or console output leaks into the socket.
    s.write_all(b"ping").unwrap();
    let mut back = [0u8; 4];
    s.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"ping");
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(
        rest.is_empty(),
        "extra bytes: {:?}",
        String::from_utf8_lossy(&rest)
    );
}
