//! Boots the `ping` example kernel under QEMU (TCG) with a real virtio-net-pci device.
//!
//! - Against QEMU's user network (slirp): the kernel resolves the gateway 10.0.2.2 by ARP
//!   and pings it, on `pc` and `q35` (16 MiB), with MSI-X, INTx and polling, with the
//!   BAR above 4 GiB, and 300 times in a row (both 128-entry rings wrap twice).
//! - Against this test itself, over QEMU's `dgram` netdev (one Unix datagram per
//!   Ethernet frame): the test sends ARP requests and pings to 10.0.2.15 and checks the
//!   kernel's answers byte by byte.
//! - Without a virtio NIC, and with a legacy-only one: the error says what to do.
//!
//! The example is built with the release profile into the same target directory
//! (`env!("CARGO")`, inheriting `CARGO_TARGET_DIR`). QEMU must be installed.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long one boot may take before the test gives up (TCG on a busy machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const GUEST_IP: [u8; 4] = [10, 0, 2, 15];

/// Builds the example kernel once per test process and returns its path.
fn kernel() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "morgana-virtio",
                "--features",
                "example-kernels",
                "--example",
                "ping",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "building the ping example failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.contains("\"reason\":\"compiler-artifact\"") && l.contains("\"name\":\"ping\"")
            })
            .find_map(|l| {
                let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = start + l[start..].find('"')?;
                Some(PathBuf::from(&l[start..end]))
            })
            .expect("cargo did not report the ping executable")
    })
}

fn qemu(args: &[&str], append: Option<&str>) -> Command {
    let mut c = Command::new("qemu-system-x86_64");
    c.args([
        "-accel",
        "tcg",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .args(args)
    .arg("-kernel")
    .arg(kernel());
    if !args.contains(&"-m") {
        c.args(["-m", "32M"]);
    }
    if let Some(a) = append {
        c.args(["-append", a]);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A running QEMU whose console lines arrive on a channel.
struct Vm {
    child: Child,
    lines: mpsc::Receiver<String>,
    console: String,
    stderr: std::thread::JoinHandle<String>,
    started: Instant,
}

impl Vm {
    fn start(args: &[&str], append: Option<&str>) -> Vm {
        let mut child = qemu(args, append)
            .spawn()
            .expect("start qemu-system-x86_64");
        let stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if send.send(line.trim_end_matches('\r').to_string()).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Vm {
            child,
            lines,
            console: String::new(),
            stderr,
            started: Instant::now(),
        }
    }

    /// Waits for a console line containing `what`.
    fn wait_for(&mut self, what: &str) {
        while !self.console.contains(what) {
            let left = BOOT_TIMEOUT.saturating_sub(self.started.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.console.push_str(&line);
                    self.console.push('\n');
                }
                Err(_) => panic!("no {what:?} on the console:\n{}", self.console),
            }
        }
    }

    /// Waits for QEMU to exit (killing it after the timeout) and returns its status.
    fn finish(mut self) -> (Option<i32>, String) {
        let status = loop {
            if let Some(st) = self.child.try_wait().expect("wait for QEMU") {
                break st.code();
            }
            if self.started.elapsed() > BOOT_TIMEOUT {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.console.push_str(&line);
            self.console.push('\n');
        }
        let stderr = self.stderr.join().unwrap_or_default();
        assert!(!stderr.contains("without PVH ELF Note"), "{stderr}");
        if !stderr.trim().is_empty() {
            self.console.push_str("--- QEMU stderr ---\n");
            self.console.push_str(&stderr);
        }
        (status, self.console)
    }
}

/// Boots to the end and returns the status and the console.
fn boot(args: &[&str], append: Option<&str>) -> (Option<i32>, String) {
    Vm::start(args, append).finish()
}

fn assert_lines(console: &str, expected: &[&str]) {
    for e in expected {
        assert!(
            console.contains(e),
            "expected {e:?} on the console:\n{console}"
        );
    }
}

const SLIRP: [&str; 4] = [
    "-netdev",
    "user,id=n0",
    "-device",
    "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56",
];

/// Boots with slirp, pings the gateway `count` times, checks the output.
fn ping_gateway(extra: &[&str], device: &str, append: &str, mode: &str, count: u32) -> String {
    let mut args: Vec<&str> = vec!["-netdev", "user,id=n0", "-device", device];
    args.extend_from_slice(extra);
    let (status, console) = boot(&args, Some(append));
    assert_lines(
        &console,
        &[
            &format!("virtio-net: MAC 52:54:00:12:34:56, interrupts: {mode}"),
            "ARP reply: 10.0.2.2 is at 52:55:0a:00:02:02\n",
            "ICMP echo reply from 10.0.2.2: seq=1 ttl=255 bytes=64 time=",
            &format!("ICMP echo reply from 10.0.2.2: seq={count} ttl=255 bytes=64"),
            &format!("ping: {count} echo replies"),
            "(0 errors)",
            "(0 dropped)",
        ],
    );
    assert_eq!(status, Some(0), "QEMU status (0 = power-off):\n{console}");
    console
}

#[test]
fn pings_the_slirp_gateway_on_pc() {
    let console = ping_gateway(&[], SLIRP[3], "count=3", "MSI-X (vector 0x30)", 3);
    eprintln!("{console}");
}

#[test]
fn pings_the_slirp_gateway_on_q35_in_16_mib() {
    ping_gateway(
        &["-machine", "q35", "-m", "16M"],
        SLIRP[3],
        "count=3",
        "MSI-X (vector 0x30)",
        3,
    );
}

#[test]
fn three_hundred_pings_wrap_both_rings() {
    let console = ping_gateway(&[], SLIRP[3], "count=300", "MSI-X", 300);
    assert_lines(&console, &["rx 301 frames", "tx 301 frames"]);
}

#[test]
fn intx_when_the_device_has_no_msix() {
    for machine in ["pc", "q35"] {
        ping_gateway(
            &["-machine", machine],
            "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,vectors=0",
            "count=200",
            "INTx (IRQ ",
            200,
        );
    }
}

#[test]
fn polling_when_asked() {
    ping_gateway(
        &[],
        SLIRP[3],
        "count=200 irq=poll",
        "polling every 1000 us",
        200,
    );
}

#[test]
fn works_with_its_bar_above_4_gib() {
    let console = ping_gateway(
        &["-machine", "q35", "-m", "4G"],
        SLIRP[3],
        "count=3 morgana.log=debug",
        "MSI-X",
        3,
    );
    let line = console
        .lines()
        .find(|l| l.contains("common configuration at 0x"))
        .unwrap_or_else(|| panic!("no region line:\n{console}"));
    let addr = line
        .split("common configuration at 0x")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| panic!("bad line {line:?}"));
    assert!(
        addr >= 1 << 32,
        "common configuration at {addr:#x}, below 4 GiB"
    );
}

#[test]
fn without_a_virtio_nic_the_error_says_what_to_add() {
    // `pc` with QEMU's default NIC (an e1000, not virtio), and `q35` with none at all.
    for args in [
        &["-m", "32M"][..],
        &["-machine", "q35", "-m", "16M", "-nic", "none"][..],
    ] {
        let (status, console) = boot(args, None);
        assert_lines(
            &console,
            &[
                "morgana: net: no virtio-net device found on the PCI bus (add -device virtio-net-pci,netdev=...)\n",
            ],
        );
        assert_eq!(status, Some(3), "{args:?}: error status:\n{console}");
    }
}

#[test]
fn a_legacy_only_device_is_refused_clearly() {
    let (status, console) = boot(
        &[
            "-netdev",
            "user,id=n0",
            "-device",
            "virtio-net-pci,netdev=n0,disable-modern=on",
        ],
        None,
    );
    assert_lines(
        &console,
        &[
            "morgana: net: the virtio-net device has no common configuration capability: it is legacy-only (drop disable-modern=on)",
        ],
    );
    assert_eq!(status, Some(3), "{console}");
}

// ---- A peer on the wire: this test, through QEMU's dgram netdev. ----

const PEER_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xAA, 0xBB, 0xCC];
const PEER_IP: [u8; 4] = [10, 0, 2, 100];

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

fn arp_request() -> Vec<u8> {
    let mut f = vec![0xFF; 6];
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&PEER_IP);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&GUEST_IP);
    f.resize(60, 0);
    f
}

fn echo_request(seq: u16, payload_len: usize) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend((0..payload_len).map(|i| (i as u16 ^ seq) as u8));
    let c = checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + icmp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&PEER_IP);
    ip.extend_from_slice(&GUEST_IP);
    let c = checksum(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = GUEST_MAC.to_vec();
    f.extend_from_slice(&PEER_MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&ip);
    f.extend_from_slice(&icmp);
    f
}

/// Checks that `reply` answers `request` (an echo request built by `echo_request`).
fn check_echo_reply(request: &[u8], reply: &[u8]) {
    assert!(
        reply.len() >= request.len(),
        "reply too short: {reply:02x?}"
    );
    assert_eq!(reply[0..6], PEER_MAC, "destination MAC");
    assert_eq!(reply[6..12], GUEST_MAC, "source MAC");
    assert_eq!(reply[12..14], [0x08, 0x00]);
    let ip = &reply[14..34];
    assert_eq!(checksum(ip), 0, "IPv4 header checksum");
    assert_eq!(ip[9], 1, "ICMP");
    assert_eq!(ip[12..16], GUEST_IP);
    assert_eq!(ip[16..20], PEER_IP);
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let icmp = &reply[34..14 + total];
    let sent = &request[34..];
    assert_eq!(checksum(icmp), 0, "ICMP checksum");
    assert_eq!(icmp[0], 0, "echo reply");
    assert_eq!(
        icmp[4..],
        sent[4..],
        "identifier, sequence and payload echoed"
    );
}

struct Wire {
    socket: UnixDatagram,
    qemu: PathBuf,
    dir: PathBuf,
}

impl Wire {
    fn new() -> Wire {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("morgana-virtio-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = UnixDatagram::bind(dir.join("peer")).expect("bind the peer socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Wire {
            socket,
            qemu: dir.join("qemu"),
            dir,
        }
    }

    fn netdev(&self) -> String {
        format!(
            "dgram,id=n0,local.type=unix,local.path={},remote.type=unix,remote.path={}",
            self.qemu.display(),
            self.dir.join("peer").display()
        )
    }

    fn send(&self, frame: &[u8]) {
        self.socket
            .send_to(frame, &self.qemu)
            .expect("send a frame to QEMU");
    }

    /// The next frame from the guest; on a timeout, stops `vm` and fails with its
    /// console.
    fn recv(&self, vm: &mut Option<Vm>, what: &str) -> Vec<u8> {
        let mut buf = vec![0; 2048];
        match self.socket.recv(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                buf
            }
            Err(e) => {
                let mut vm = vm.take().expect("running");
                let _ = vm.child.kill();
                let (_, console) = vm.finish();
                panic!("no {what} from the guest ({e}):\n{console}")
            }
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn answers_arp_and_ping_from_a_peer() {
    let wire = Wire::new();
    let netdev = wire.netdev();
    let mut vm = Some(Vm::start(
        &[
            "-machine", "q35", "-m", "16M", "-netdev", &netdev, "-device", SLIRP[3],
        ],
        Some("mode=serve count=250"),
    ));
    vm.as_mut().unwrap().wait_for("serving 10.0.2.15");

    wire.send(&arp_request());
    let reply = wire.recv(&mut vm, "ARP reply");
    assert_eq!(reply.len(), 60, "padded to the Ethernet minimum");
    assert_eq!(reply[0..6], PEER_MAC);
    assert_eq!(reply[6..12], GUEST_MAC);
    assert_eq!(reply[12..22], [0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2]);
    assert_eq!(reply[22..28], GUEST_MAC, "sender hardware address");
    assert_eq!(reply[28..32], GUEST_IP, "sender protocol address");
    assert_eq!(reply[32..38], PEER_MAC);
    assert_eq!(reply[38..42], PEER_IP);

    // 100 pings one at a time, sizes from 0 to 1472 bytes of payload (a full 1514-byte
    // frame)...
    for seq in 0..100u16 {
        let len = usize::from(seq) * 1472 / 99;
        let request = echo_request(seq, len);
        wire.send(&request);
        check_echo_reply(&request, &wire.recv(&mut vm, &format!("echo reply {seq}")));
    }
    // ...then 150 in bursts of 50: several frames wait in the receive ring at once, and
    // both rings (128 entries) wrap.
    for burst in 0..3u16 {
        let requests: Vec<Vec<u8>> = (0..50)
            .map(|i| echo_request(100 + burst * 50 + i, 56))
            .collect();
        for r in &requests {
            wire.send(r);
        }
        for (i, r) in requests.iter().enumerate() {
            check_echo_reply(r, &wire.recv(&mut vm, &format!("burst {burst} reply {i}")));
        }
    }
    let mut vm = vm.take().expect("running");
    vm.wait_for("answered 250 echo requests");
    let (status, console) = vm.finish();
    assert_lines(
        &console,
        &[
            "answered ARP request from 10.0.2.100",
            "(0 errors)",
            "tx 251 frames (0 dropped)",
        ],
    );
    assert_eq!(status, Some(0), "{console}");
}

#[test]
fn kernel_size() {
    let elf = std::fs::metadata(kernel()).expect("kernel").len();
    let stripped = std::env::temp_dir().join(format!("morgana-virtio-ping-{}", std::process::id()));
    let ok = Command::new("strip")
        .arg("-o")
        .arg(&stripped)
        .arg(kernel())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        let size = std::fs::metadata(&stripped).expect("stripped kernel").len();
        let _ = std::fs::remove_file(&stripped);
        eprintln!("ping kernel: {elf} bytes, {size} bytes stripped");
        assert!(
            size < 256 * 1024,
            "the ping kernel grew to {size} bytes stripped"
        );
    } else {
        eprintln!("ping kernel: {elf} bytes (no `strip` to measure the stripped size)");
    }
}
