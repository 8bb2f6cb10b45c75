//! Helpers for Morgana's end-to-end tests: build an appliance with the real `cargo`, run
//! it, and talk to it with real clients (`curl`, raw TCP).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

pub mod lossy;
pub mod netns;
pub mod qemu;
pub mod resp;
pub mod scratch;
pub mod workspace;

/// Where the end-to-end tests build appliances. A target directory of its own, so the
/// nested `cargo build` never waits for the lock of the `cargo test` that runs us.
pub fn target_dir() -> PathBuf {
    workspace_root().join("target").join("e2e")
}

/// The target directory shared by scratch copies of appliances (one-member workspaces
/// made by the tests), so their dependencies are compiled once.
pub fn scratch_target() -> PathBuf {
    target_dir().join("scratch-target")
}

/// Where the end-to-end tests build kernel images (`MORGANA_TARGET=xen`): a directory
/// apart from the Unix builds, so switching target never overwrites the other binary.
pub fn kernel_target_dir() -> PathBuf {
    kernel_target_dir_for("xen")
}

/// Where the end-to-end tests build kernel images for kernel target `target` (`xen`,
/// `qemu`, `xen-only`): one directory each, as the image has the same name on every one.
pub fn kernel_target_dir_for(target: &str) -> PathBuf {
    workspace_root()
        .join("target")
        .join(format!("e2e-{target}"))
}

/// Builds appliance `name` for the kernel target (`MORGANA_TARGET=xen`, release: the
/// image for every hypervisor) and returns the path of its PVH image.
pub fn build_kernel(name: &str) -> PathBuf {
    build_kernel_for(name, "xen")
}

/// Builds appliance `name` for kernel target `target` (`MORGANA_TARGET=<target>`,
/// release): `xen` (every hypervisor), `qemu` (QEMU/KVM only) or `xen-only`, and returns
/// the path of its PVH image.
pub fn build_kernel_for(name: &str, target: &str) -> PathBuf {
    let _guard = CARGO.lock().unwrap_or_else(|e| e.into_inner());
    let dir = kernel_target_dir_for(target);
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "-p", name])
        .env("CARGO_TARGET_DIR", &dir)
        .env("MORGANA_TARGET", target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "MORGANA_TARGET={target} cargo build -p {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("release").join(name)
}

/// Serialises nested cargo invocations within one test binary.
static CARGO: Mutex<()> = Mutex::new(());

/// Builds appliance `name` in release mode (with `env` added to cargo's environment) and
/// returns the path of its binary. Panics with cargo's output when the build fails.
pub fn build_appliance(name: &str, env: &[(&str, &str)]) -> PathBuf {
    let out = cargo_build(name, env);
    assert!(
        out.status.success(),
        "cargo build -p {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target_dir().join("release").join(name)
}

/// Runs `cargo build --release -p name` and returns its output, whatever the outcome.
pub fn cargo_build(name: &str, env: &[(&str, &str)]) -> Output {
    let _guard = CARGO.lock().unwrap_or_else(|e| e.into_inner());
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "-p", name])
        .env("CARGO_TARGET_DIR", target_dir())
        .env_remove("MORGANA_TARGET");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cargo runs")
}

/// A running appliance process, killed when dropped.
pub struct Running {
    child: Child,
}

impl Running {
    /// Starts `binary` with `args`, stdout and stderr piped.
    pub fn start(binary: &Path, args: &[&str]) -> Running {
        let child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        Running { child }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something accepts TCP connections at `addr`, or panics after `limit`.
pub fn wait_for_port(addr: SocketAddr, limit: Duration) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {addr} after {limit:?}");
}

/// One HTTP exchange as curl saw it.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Header lines of the final response, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The body (decoded if curl was asked to decompress).
    pub body: Vec<u8>,
}

impl Reply {
    /// The value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runs curl with `args` against `url` and parses what it received.
pub fn curl(url: &str, args: &[&str]) -> Reply {
    let dir = std::env::temp_dir().join(format!(
        "morgana-curl-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let head = dir.join("head");
    let body = dir.join("body");
    let out = Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-D"])
        .arg(&head)
        .arg("-o")
        .arg(&body)
        .args(args)
        .arg(url)
        .output()
        .expect("curl is installed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "curl {args:?} {url} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let head = std::fs::read_to_string(&head).expect("curl wrote the head");
    let body = std::fs::read(&body).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    parse_reply(&head, body)
}

/// Parses a response head as curl wrote it (`-D`), with the body already read.
pub fn parse_reply(head: &str, body: Vec<u8>) -> Reply {
    // With redirects or 100-continue there can be several heads: keep the last.
    let last = head
        .split("\r\n\r\n")
        .filter(|h| !h.trim().is_empty())
        .last()
        .unwrap_or("");
    let mut lines = last.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body,
    }
}

/// Waits until `127.0.0.1:port` answers `HEAD /` with 200 (QEMU's slirp and passt accept
/// connections before the guest is up, so each attempt is short), or panics after
/// `bound` with `console()` (the guest's output so far).
pub fn wait_for_200(port: u16, bound: Duration, console: impl Fn() -> String) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = std::time::Instant::now();
    loop {
        let got = raw_exchange(
            addr,
            b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            Duration::from_millis(500),
        );
        if got.starts_with(b"HTTP/1.1 200") {
            return;
        }
        assert!(
            start.elapsed() < bound,
            "no HTTP 200 on port {port} after {bound:?}; console:\n{}",
            console()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends `request` as raw bytes on a new connection and returns everything the server
/// sent until it closed the connection (or `limit` passed).
pub fn raw_exchange(addr: SocketAddr, request: &[u8], limit: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(limit)).expect("timeout");
    s.write_all(request).expect("send");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let start = Instant::now();
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    got
}

/// Every regular file below `dir`, as (key relative to `dir` with `/`, absolute path),
/// sorted.
pub fn files_below(dir: &Path) -> Vec<(String, PathBuf)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
        for entry in std::fs::read_dir(dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let key = path
                    .strip_prefix(root)
                    .expect("below root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((key, path));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
