//! The tender's network over a real Linux tap, in a network namespace made for each
//! test: the test guest serves HTTP with smoltcp through the tender's frame calls and
//! answers pings; under `--summon` it is booted by the first packet for it, stopped when
//! idle and booted again by the next one, and a guest that hands the tender a bad
//! pointer is stopped while the tender lives on and serves the next client.
//!
//! The tap and its host side (10.96.0.1/24) live in the namespace, the guest is
//! 10.96.0.2; the namespace, with the tap, is deleted when the test ends, failed or not.
//! Needs root, /dev/net/tun, /dev/kvm, iproute2, curl and ping (`scripts/setup.sh`);
//! without them the tests skip, or fail under `CI=true`.

mod common;

use common::{Run, finish, guest, kvm_missing, tender, unavailable};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HOST_SIDE: &str = "10.96.0.1";
const GUEST: &str = "10.96.0.2";
const TAP: &str = "mtt0";
const MAC: &str = "02:4d:54:00:00:02";

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn missing() -> Option<String> {
    if let Some(why) = kvm_missing() {
        return Some(why);
    }
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    });
    if !root {
        return Some("not root (taps and namespaces need CAP_NET_ADMIN)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    ["ip", "curl", "ping"]
        .into_iter()
        .find(|t| !have(t))
        .map(|t| format!("{t} is not installed (scripts/setup.sh installs it)"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A namespace with a tap whose host side is 10.96.0.1/24 and IPv6 off (no router
/// solicitations on the link). Dropping it kills the tender and deletes the namespace.
struct Netns {
    name: String,
    tender: Option<Child>,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "mtender{}-{tag}{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name, tender: None };
        // (Through /proc: no procps needed; a kernel without IPv6 has nothing to mute.)
        ns.exec(&[
            "sh",
            "-c",
            "for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done 2>/dev/null || true",
        ]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
        ns.exec(&["ip", "addr", "add", &format!("{HOST_SIDE}/24"), "dev", TAP]);
        ns.exec(&["ip", "link", "set", TAP, "up"]);
        ns
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    fn exec(&self, args: &[&str]) -> Output {
        run_ok(&mut self.command(args))
    }

    /// Starts the tender in the namespace; returns a receiver of its stderr lines.
    fn start_tender(
        &mut self,
        tender_args: &[&str],
        guest_args: &[&str],
    ) -> mpsc::Receiver<String> {
        let mut cmd = self.command(&[tender(), "--tap", TAP, "--mac", MAC]);
        cmd.args(tender_args).arg(guest()).args(guest_args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the tender");
        let stderr = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.tender = Some(child);
        rx
    }

    /// Waits for the tender to exit by itself; its report is what `stderr` (from
    /// [`Netns::start_tender`]) still holds.
    fn wait_tender(&mut self, stderr: &mpsc::Receiver<String>) -> Run {
        let child = self.tender.take().expect("a tender was started");
        let mut run = finish(child, Instant::now());
        while let Ok(line) = stderr.recv_timeout(Duration::from_secs(5)) {
            run.stderr.push_str(&line);
            run.stderr.push('\n');
        }
        run
    }

    /// curl in the namespace (at most 5 s): (exit success, body).
    fn curl(&self, path: &str) -> (bool, String) {
        let out = self
            .command(&[
                "curl",
                "-sS",
                "--max-time",
                "5",
                &format!("http://{GUEST}{path}"),
            ])
            .output()
            .expect("curl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut child) = self.tender.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// The next stderr line containing `what` (30 s at most); every line read is kept in
/// `seen` for failure messages.
fn expect_line(rx: &mpsc::Receiver<String>, what: &str, seen: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if line.contains(what) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no line with {what:?} from the tender; it wrote:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[test]
fn the_guest_serves_http_and_answers_ping_through_the_tender() {
    if unavailable(missing()) {
        return;
    }
    let mut ns = Netns::new("serve");
    let stderr = ns.start_tender(
        &["--stats"],
        &["serve", &format!("ip={GUEST}/24"), "requests=2"],
    );
    // The guest may still be booting: ping until it answers (bounded).
    let mut answered = false;
    for _ in 0..50 {
        let ping = ns
            .command(&["ping", "-c", "1", "-W", "1", GUEST])
            .output()
            .expect("ping");
        if ping.status.success() {
            answered = true;
            break;
        }
    }
    assert!(answered, "the guest never answered ping");
    let (ok, body) = ns.curl("/");
    assert!(ok, "{body}");
    assert_eq!(body, "hello from the tender test guest, request 1\n");
    let (ok, body) = ns.curl("/again");
    assert!(ok, "{body}");
    assert_eq!(body, "hello from the tender test guest, request 2\n");
    let run = ns.wait_tender(&stderr);
    run.status_is(0)
        .console_has(&format!("network: mac {MAC}, mtu 1500"))
        .console_has("served 2 request(s)");
    let stats = run
        .stderr
        .lines()
        .find(|l| l.contains("stats:"))
        .unwrap_or_else(|| panic!("no stats line:\n{}", run.stderr));
    assert!(
        !stats.contains("net-send=0 ") && !stats.contains("net-recv=0 "),
        "{stats}"
    );
}

#[test]
fn summon_boots_on_the_first_packet_stops_when_idle_and_survives_a_bad_guest() {
    if unavailable(missing()) {
        return;
    }
    let mut ns = Netns::new("summon");
    // The host knows the guest's MAC: the client's first packet is its SYN itself, which
    // must be queued while the guest boots and answered once its network is up.
    ns.exec(&[
        "ip",
        "neigh",
        "replace",
        GUEST,
        "lladdr",
        MAC,
        "dev",
        TAP,
        "nud",
        "permanent",
    ]);
    let stderr = ns.start_tender(
        &["--summon", "--idle-ms", "300"],
        &["quiet", "serve", &format!("ip={GUEST}/24")],
    );
    let mut seen = Vec::new();
    expect_line(&stderr, "the guest boots on the first frame", &mut seen);

    for n in 1..=2 {
        let (ok, body) = ns.curl("/");
        assert!(ok, "summon {n}: {body}\n{}", seen.join("\n"));
        // A fresh guest each time: its request counter starts again.
        assert_eq!(body, "hello from the tender test guest, request 1\n");
        let line = expect_line(&stderr, &format!("summon {n}: "), &mut seen);
        assert!(
            line.contains(&format!("woken by TCP SYN {HOST_SIDE}:")),
            "{line}"
        );
        assert!(line.contains(&format!("> {GUEST}:80")), "{line}");
        // The first SYN was answered: the guest saw exactly one.
        assert!(line.contains("(1 TCP SYN)"), "{line}");
        assert!(line.contains("stopped: idle"), "{line}");
        assert!(!line.contains("first reply after never"), "{line}");
    }

    // A guest that hands the tender a bad pointer is stopped with a report...
    let (ok, body) = ns.curl("/bad-pointer");
    assert!(!ok, "a stopped guest cannot answer: {body}");
    let line = expect_line(&stderr, "summon 3: ", &mut seen);
    assert!(line.contains("stopped: failure (status 102)"), "{line}");
    expect_line(
        &stderr,
        "summon 3: guest stopped: bad request: console-write: its text: ",
        &mut seen,
    );
    // ... and the tender lives: the next client summons a new guest. (The failed
    // client's retransmissions may summon one in between, which resets them.)
    let (ok, body) = ns.curl("/");
    assert!(ok, "after the bad guest: {body}\n{}", seen.join("\n"));
    assert_eq!(body, "hello from the tender test guest, request 1\n");
    let tender = ns.tender.as_mut().expect("started");
    assert!(
        tender.try_wait().expect("wait").is_none(),
        "the tender exited"
    );
}
