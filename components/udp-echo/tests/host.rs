//! End to end over the host's sockets: build `examples/udp-echo.rs` (a static, libc-free
//! binary), run it, and talk to it with `socat` (a real client) and with plain sockets:
//! small datagrams, one at the Ethernet MTU (1472 bytes), the largest UDP allows
//! (65,507), IPv4 and IPv6 on a dual-stack socket.
//!
//! Needs socat (Debian: socat, installed by scripts/setup.sh): without it the test fails
//! when `CI=true` and is skipped (saying so) elsewhere.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["rustc", "-p", "morgana-udp-echo", "--example", "udp-echo"])
            .args(["--features", "example"])
            .env("CARGO_TARGET_DIR", target_dir);
        if release {
            cmd.arg("--release");
        }
        cmd.args(["--", "-D", "warnings"]);
        assert!(
            cmd.status().expect("cargo").success(),
            "building udp-echo failed"
        );
        profile_dir.join("examples").join("udp-echo")
    })
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `Some(reason)` when `tool` is missing and this is not CI (where it is a failure).
fn missing(tool: &str) -> Option<String> {
    if have(tool) {
        return None;
    }
    let why = format!("{tool} is not installed (scripts/setup.sh installs it)");
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
    Some(why)
}

struct Echo {
    child: Child,
    addr: SocketAddr,
}

impl Echo {
    fn start(address: &str) -> Echo {
        let mut child = Command::new(binary())
            .args(["--address", address])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start udp-echo");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
        let addr = line
            .trim()
            .strip_prefix("udp echo on ")
            .unwrap_or_else(|| panic!("udp-echo did not start: {line:?}"))
            .parse()
            .expect("an address");
        Echo { child, addr }
    }

    /// The address a client uses (the loopback of the bound family).
    fn target(&self) -> SocketAddr {
        let mut a = self.addr;
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        a
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `data` through socat and returns what came back.
fn socat(target: &str, data: &[u8]) -> Vec<u8> {
    let mut child = Command::new("socat")
        .args(["-b", "70000", "-t", "2", "-T", "5", "-", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "socat: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn exchange(sock: &UdpSocket, to: SocketAddr, data: &[u8]) -> (Vec<u8>, SocketAddr) {
    sock.send_to(data, to).unwrap();
    let mut buf = vec![0u8; 70_000];
    let (n, from) = sock.recv_from(&mut buf).expect("an echo");
    buf.truncate(n);
    (buf, from)
}

#[test]
fn echoes_over_host_sockets_with_socat() {
    let echo = Echo::start("127.0.0.1:0");
    let target = echo.target();

    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    for len in [0usize, 1, 1472, 9000, 65_507] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
        let (got, from) = exchange(&client, target, &data);
        assert_eq!(from, target);
        assert!(got == data, "{len}-byte datagram came back different");
    }

    if let Some(why) = missing("socat") {
        eprintln!("socat part skipped: {why}");
        return;
    }
    let udp = format!("UDP4:{target}");
    assert_eq!(socat(&udp, b"hello over socat\n"), b"hello over socat\n");
    // A datagram at the Ethernet MTU's UDP payload, in one piece.
    let mtu: Vec<u8> = (0..1472u32).map(|i| b'a' + (i % 26) as u8).collect();
    assert_eq!(socat(&udp, &mtu), mtu);
}

#[test]
fn a_dual_stack_socket_answers_both_families() {
    let echo = Echo::start("[::]:0");
    let port = echo.addr.port();
    let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
    v4.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (got, from) = exchange(&v4, SocketAddr::from(([127, 0, 0, 1], port)), b"four");
    assert_eq!((got.as_slice(), from.port()), (&b"four"[..], port));
    let Ok(v6) = UdpSocket::bind("[::1]:0") else {
        eprintln!("IPv6 part skipped: no ::1 on this host");
        return;
    };
    v6.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (got, _) = exchange(&v6, echo.target(), b"six");
    assert_eq!(got, b"six");
    if missing("socat").is_none() {
        let target = format!("UDP6:[::1]:{port}");
        assert_eq!(socat(&target, b"six via socat"), b"six via socat");
    }
}

#[test]
fn a_taken_port_is_a_clear_start_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Command::new(binary())
        .args(["--address", &addr.to_string()])
        .output()
        .expect("run udp-echo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "morgana: echo: address {addr} already in use (EADDRINUSE)"
        )),
        "{err}"
    );
}
