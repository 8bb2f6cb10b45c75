//! The lossy-link rig: a guest under QEMU whose NIC reaches a tap through
//! `lossy-relay` (10 % loss, 1 % corruption, 1 % duplication, 2 % reordering each way,
//! fixed seed), all inside a network namespace made for the run:
//!
//! ```text
//! guest virtio-net ─ QEMU -netdev dgram 127.0.0.1:20000 ⇄ lossy-relay :20001 | :20002
//!     ⇄ socat :20003 ⇄ tap mlossy0 (10.0.2.2/24) ⇄ curl
//! ```
//!
//! The guest is 10.0.2.15/24. Every address and port lives in the namespace, so runs in
//! parallel (other test binaries, other sessions) never meet. `bench/lossy.sh` builds
//! the same rig in shell for the Morgana-vs-Linux comparison.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The guest's address on the lossy link.
pub const GUEST_IP: &str = "10.0.2.15";
/// The host side (the tap in the namespace).
pub const HOST_IP: &str = "10.0.2.2";

/// Whether `program` is on the PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why this machine cannot run the rig (a missing tool, not root), if it cannot. Under
/// `CI=true` that is a failure, not a reason to skip.
pub fn missing() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    });
    let why = if !root {
        Some("not root (namespaces and taps need CAP_NET_ADMIN)".to_string())
    } else {
        ["ip", "socat", "curl", "qemu-system-x86_64"]
            .iter()
            .find(|t| !have(t))
            .map(|t| format!("{t} is not installed (scripts/setup.sh installs it)"))
    };
    if let Some(why) = &why {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "the lossy-link test cannot run under CI: {why}"
        );
    }
    why
}

/// A network namespace with the relay, the socat bridge and the tap; everything started
/// in it is killed, and the namespace deleted, on drop.
pub struct LossyLink {
    name: String,
    children: Vec<Child>,
    relay_log: PathBuf,
}

impl LossyLink {
    /// Sets up the namespace, the relay (`relay` is the `lossy-relay` binary) with
    /// `seed`, and the tap bridged by socat.
    pub fn new(relay: &Path, seed: u64) -> LossyLink {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "morgana-lossy-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "ip netns add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let relay_log = std::env::temp_dir().join(format!("{name}-relay.log"));
        let mut link = LossyLink {
            name,
            children: Vec::new(),
            relay_log,
        };
        link.exec(&["ip", "link", "set", "lo", "up"]);
        let log = std::fs::File::create(&link.relay_log).expect("relay log");
        let seed = seed.to_string();
        let relay = link
            .command(&[
                relay.to_str().expect("utf-8 path"),
                "--guest",
                "127.0.0.1:20001",
                "127.0.0.1:20000",
                "--host",
                "127.0.0.1:20002",
                "127.0.0.1:20003",
                "--seed",
                &seed,
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start lossy-relay");
        link.children.push(relay);
        let socat = link
            .command(&[
                "socat",
                "-b",
                "65536",
                "UDP-DATAGRAM:127.0.0.1:20002,bind=127.0.0.1:20003",
                &format!("TUN:{HOST_IP}/24,tun-type=tap,tun-name=mlossy0,iff-up,iff-no-pi"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start socat");
        link.children.push(socat);
        // socat creates the tap: wait for it.
        for _ in 0..100 {
            if link
                .command(&["ip", "link", "show", "mlossy0"])
                .output()
                .is_ok_and(|o| o.status.success())
            {
                return link;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("socat did not create the tap mlossy0");
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).args(argv);
        c
    }

    /// Runs `argv` in the namespace; panics if it fails.
    pub fn exec(&self, argv: &[&str]) -> Output {
        let out = self.command(argv).output().expect("ip netns exec");
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The QEMU network arguments of a guest on this link.
    pub fn qemu_net_args() -> Vec<String> {
        [
            "-netdev",
            "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=20000,\
             remote.type=inet,remote.host=127.0.0.1,remote.port=20001",
            "-device",
            "virtio-net-pci,netdev=n0,romfile=",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Starts `argv` (a QEMU) in the namespace; it is killed on drop.
    pub fn spawn(&mut self, argv: &[String]) {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let child = self
            .command(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the guest");
        self.children.push(child);
    }

    /// The relay's last counter lines (what it dropped, corrupted, ...).
    pub fn relay_counters(&self) -> String {
        let log = std::fs::read_to_string(&self.relay_log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(2)..].join("\n")
    }
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = std::fs::remove_file(&self.relay_log);
    }
}
