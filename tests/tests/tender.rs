//! The static-website kernel image — the very image QEMU boots (`MORGANA_TARGET=xen`) —
//! under `morgana-tender` on KVM at CPL 3: entered through its tender note, its generated
//! wiring unchanged, its NIC the tender's frame calls over a host tap.
//!
//! One boot serves every check: the test makes a network namespace (named with the
//! process id) holding a tap whose host side is 10.98.0.1/24 and busybox's `udhcpd`,
//! which leases 10.98.0.2 to the appliance (its `Network()` asks DHCP, as under QEMU's
//! slirp); then curl, inside the namespace, gets every file of `htdocs` byte for byte,
//! a 404, and the tender is stopped. The namespace is deleted whatever happens.
//!
//! Needs /dev/kvm, root, /dev/net/tun, iproute2, curl and udhcpd (`scripts/setup.sh`):
//! without them the test fails under `CI=true` and skips with the reason otherwise.

use morgana_tests::netns::have;
use morgana_tests::{build_kernel, files_below, kernel_target_dir, parse_reply, workspace_root};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HOST_SIDE: &str = "10.98.0.1";
const GUEST: &str = "10.98.0.2";
const TAP: &str = "mtsite0";
const MAC: &str = "02:4d:54:00:01:02";
/// Boot, DHCP (udhcpd's ARP probe is 100 ms) and the first request take well under a
/// second here; this bounds a hang, it is not a speed target.
const LIMIT: Duration = Duration::from_secs(60);

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Whether this machine can run the tender tests; under CI it must (a failure says why),
/// elsewhere a test that cannot run says so and is skipped.
fn can_run() -> bool {
    let Some(why) = missing() else { return true };
    assert!(
        !in_ci(),
        "CI=true and this machine cannot run the tender test: {why}"
    );
    eprintln!("skipped: {why}");
    false
}

/// Why this machine cannot run the test, if it cannot.
fn missing() -> Option<String> {
    if let Err(e) = std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return Some(format!("/dev/kvm cannot be opened: {e}"));
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
    ["ip", "curl", "udhcpd"]
        .into_iter()
        .find(|t| !have(t))
        .map(|t| format!("{t} is not installed (scripts/setup.sh installs it)"))
}

/// Builds the tender (release) into the kernels' target directory.
fn build_tender() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "-p", "morgana-tender"])
        .env("CARGO_TARGET_DIR", kernel_target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p morgana-tender failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kernel_target_dir().join("release").join("morgana-tender")
}

/// The namespace, its tap and its processes; dropping it kills them and deletes it.
struct Netns {
    name: String,
    dir: PathBuf,
    children: Vec<Child>,
}

impl Netns {
    /// A namespace `<prefix><pid>` with the tap `TAP`, the host side `host/24`.
    fn new(prefix: &str, host: &str) -> Netns {
        let name = format!("{prefix}{}", std::process::id());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).expect("temp dir");
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            dir,
            children: Vec::new(),
        };
        // No IPv6 chatter on the link (router solicitations); through /proc, so no
        // procps is needed.
        ns.exec(&[
            "sh",
            "-c",
            "for c in all default; do echo 1 > /proc/sys/net/ipv6/conf/$c/disable_ipv6; done 2>/dev/null || true",
        ]);
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
        ns.exec(&["ip", "addr", "add", &format!("{host}/24"), "dev", TAP]);
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

    /// busybox's DHCP server on the tap, leasing exactly the guest's address.
    fn start_dhcp(&mut self) {
        let conf = self.dir.join("udhcpd.conf");
        let leases = self.dir.join("leases");
        std::fs::write(&leases, b"").expect("leases file");
        std::fs::write(
            &conf,
            format!(
                "start {GUEST}\nend {GUEST}\ninterface {TAP}\nlease_file {}\npidfile {}\n\
                 option subnet 255.255.255.0\noption router {HOST_SIDE}\noption lease 600\n",
                leases.display(),
                self.dir.join("pid").display(),
            ),
        )
        .expect("udhcpd.conf");
        // -f: foreground; -a 100: a short ARP probe before offering.
        let child = self
            .command(&[
                "udhcpd",
                "-f",
                "-a",
                "100",
                conf.to_str().expect("utf-8 path"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting udhcpd");
        self.children.push(child);
    }

    /// GET `path` from the guest with curl inside the namespace.
    fn get(&self, path: &str) -> morgana_tests::Reply {
        self.get_from(GUEST, path)
    }

    /// GET `path` from `guest`:8080 with curl inside the namespace.
    fn get_from(&self, guest: &str, path: &str) -> morgana_tests::Reply {
        let head = self.dir.join("head");
        let body = self.dir.join("body");
        let _ = std::fs::remove_file(&body);
        let out = self
            .command(&["curl", "-s", "-S", "--max-time", "10", "-D"])
            .arg(&head)
            .arg("-o")
            .arg(&body)
            .arg(format!("http://{guest}:8080{path}"))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "curl {path} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let head = std::fs::read_to_string(&head).expect("curl wrote the head");
        parse_reply(&head, std::fs::read(&body).unwrap_or_default())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
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

/// Lines of a child's stream, as they come.
fn lines(stream: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn static_website_kernel_serves_every_file_under_the_tender() {
    if !can_run() {
        return;
    }
    let image = build_kernel("static-website");
    let tender = build_tender();

    let mut ns = Netns::new("mtsite", HOST_SIDE);
    ns.start_dhcp();
    let mut child = ns
        .command(&[
            tender.to_str().expect("utf-8 path"),
            "--tap",
            TAP,
            "--mac",
            MAC,
        ])
        .arg(&image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the tender");
    let console = lines(child.stdout.take().expect("piped"));
    let report = lines(child.stderr.take().expect("piped"));
    ns.children.push(child);

    // The appliance says when it listens (after its DHCP lease).
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let left = LIMIT.saturating_sub(start.elapsed());
        match console.recv_timeout(left) {
            Ok(line) => {
                let serving = line.contains("static-website: serving");
                seen.push(line);
                if serving {
                    break;
                }
            }
            Err(_) => panic!(
                "the appliance never said it was serving; console:\n{}\ntender:\n{}",
                seen.join("\n"),
                report.try_iter().collect::<Vec<_>>().join("\n")
            ),
        }
    }
    let console_text = seen.join("\n");
    assert!(console_text.contains("morgana: ready in"), "{console_text}");

    let htdocs = workspace_root().join("appliances/static-website/htdocs");
    let files = files_below(&htdocs);
    assert!(files.iter().any(|(k, _)| k == "index.html"));
    let index = ns.get("/");
    assert_eq!(index.status, 200, "GET /");
    assert_eq!(
        index.body,
        std::fs::read(htdocs.join("index.html")).expect("index.html"),
        "GET /: bytes differ"
    );
    for (key, path) in &files {
        let got = ns.get(&format!("/{key}"));
        assert_eq!(got.status, 200, "GET /{key}");
        assert_eq!(
            got.body,
            std::fs::read(path).expect("fixture"),
            "GET /{key}: bytes differ"
        );
    }
    assert_eq!(ns.get("/missing.html").status, 404);

    // Still running, and nothing reported: no fault, no bad request.
    let child = ns.children.last_mut().expect("the tender");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the tender stopped while serving: {}",
        report.try_iter().collect::<Vec<_>>().join("\n")
    );
    let _ = child.kill();
    let _ = child.wait();
    let reported: Vec<String> = report.try_iter().collect();
    assert!(
        !reported.iter().any(|l| l.contains("guest stopped")),
        "{reported:?}"
    );
}

/// Waits (at most until `deadline`) for a line of `rx` containing `what`; the lines
/// before it are appended to `seen`.
fn wait_for_line(
    rx: &mpsc::Receiver<String>,
    what: &str,
    deadline: Instant,
    seen: &mut Vec<String>,
) -> Option<String> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).ok()?;
        if line.contains(what) {
            return Some(line);
        }
        seen.push(line);
    }
}

/// Summon: `morgana-tender --summon` holds the tap of static-website without running
/// it; the first request boots it, is answered (the page byte for byte, the client's
/// first SYN taken, not retransmitted), the guest stops after its idle time, and the next
/// request summons it again. The first summon is woken by the client's ARP request (no
/// neighbour entry), the second, with a permanent one, by the SYN itself: both frames
/// are held while the guest boots and replayed into its NIC. The address is static
/// (`--ipv4` at boot), so a summon does not wait for a DHCP lease.
#[test]
fn a_request_summons_static_website_and_idle_stops_it() {
    const HOST: &str = "10.97.0.1";
    const ADDR: &str = "10.97.0.2";
    const MAC2: &str = "02:4d:54:00:01:03";
    if !can_run() {
        return;
    }
    let image = build_kernel("static-website");
    let tender = build_tender();
    let index = std::fs::read(workspace_root().join("appliances/static-website/htdocs/index.html"))
        .expect("index.html");

    let mut ns = Netns::new("mtsum", HOST);
    let mut child = ns
        .command(&[
            tender.to_str().expect("utf-8 path"),
            "--summon",
            "--idle-ms",
            "300",
            "--max-summons",
            "2",
            "--tap",
            TAP,
            "--mac",
            MAC2,
            "--memory-mib",
            "32",
        ])
        .arg(&image)
        .arg(format!("--ipv4={ADDR}/24"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the tender");
    let console = lines(child.stdout.take().expect("piped"));
    let report = lines(child.stderr.take().expect("piped"));
    ns.children.push(child);
    let deadline = Instant::now() + LIMIT;
    let mut log = Vec::new();
    let holding = wait_for_line(&report, "holding tap", deadline, &mut log);
    assert!(holding.is_some(), "the tender never held the tap: {log:?}");

    // Not running: give a wrongly started guest time to say so, then look.
    std::thread::sleep(Duration::from_millis(200));
    let early: Vec<String> = console.try_iter().collect();
    assert!(
        early.is_empty(),
        "the guest ran before any request: {early:?}"
    );
    let early: Vec<String> = report.try_iter().collect();
    assert!(
        !early.iter().any(|l| l.contains("summon")),
        "a summon before any request: {early:?}"
    );

    let mut summons = Vec::new();
    for (n, woken_by) in [(1, format!("ARP who-has {ADDR}")), (2, "TCP SYN".into())] {
        let got = ns.get_from(ADDR, "/");
        assert_eq!(got.status, 200, "summon {n}: GET /");
        assert!(got.body == index, "summon {n}: GET / bytes differ");
        // The line comes when the guest stops: after the idle time.
        let line = wait_for_line(&report, &format!("summon {n}: woken"), deadline, &mut log)
            .unwrap_or_else(|| panic!("no line for summon {n}; tender said: {log:?}"));
        assert!(line.contains(&format!("woken by {woken_by}")), "{line}");
        // Exactly one SYN: the client's first, held while the guest booted.
        assert!(line.contains("(1 TCP SYN)"), "{line}");
        assert!(line.contains("stopped: idle"), "{line}");
        summons.push(line);
        if n == 1 {
            // The client now knows the guest's MAC: its SYN is the waking frame.
            ns.exec(&[
                "ip",
                "neigh",
                "replace",
                ADDR,
                "lladdr",
                MAC2,
                "dev",
                TAP,
                "nud",
                "permanent",
            ]);
        }
    }

    // --max-summons 2: the tender exits by itself.
    let child = ns.children.last_mut().expect("the tender");
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the tender did not exit after 2 summons"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "tender: {status}; {log:?} {summons:?}");
    // The tender has exited: its console ends (bounded, in case a reader lingers).
    let mut boots = 0;
    while let Ok(line) = console.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        boots += usize::from(line.contains("morgana: ready in"));
    }
    assert_eq!(boots, 2, "one boot per summon");
    eprintln!("{}", summons.join("\n"));
}

/// The kv appliance's kernel image under the tender, its disk the image file the
/// `.tender` names: `cargo run`'s runner (`scripts/morgana-run`, `MORGANA_RUNNER=tender`)
/// creates `kv.img` in the working directory on the first run and passes it as `--disk`;
/// `redis-cli` SETs keys (every write acknowledged after the tender's `fdatasync`,
/// `durability: Always`); the tender is killed with SIGKILL, started again on the same
/// image (not recreated), and the keys are there. One boot sequence: two boots of kv.
#[test]
fn kv_under_the_tender_keeps_acknowledged_writes_across_a_sigkill() {
    if !can_run() {
        return;
    }
    if !have("redis-cli") {
        assert!(!in_ci(), "CI=true and redis-cli is not installed");
        eprintln!("skipped: redis-cli is not installed (scripts/setup.sh installs it)");
        return;
    }
    let image = build_kernel("kv");
    let tender = build_tender();
    let spec = std::fs::read_to_string(image.with_extension("tender")).expect("kv.tender");
    assert!(
        spec.contains("# disk 256 rw kv.img\n--disk\nkv.img\n"),
        "kv.tender gives the tender its disk:\n{spec}"
    );

    let mut ns = Netns::new("mtkv", HOST_SIDE);
    ns.start_dhcp();
    let disk = ns.dir.join("kv.img");
    let runner = workspace_root().join("scripts/morgana-run");
    // `ip netns exec` and morgana-run both exec: the child is the tender itself.
    let boot = |ns: &mut Netns| {
        let mut child = ns
            .command(&["env", "MORGANA_RUNNER=tender"])
            .arg(format!("MORGANA_TAP={TAP}"))
            .arg(format!("MORGANA_TENDER={}", tender.display()))
            // A fixed MAC: udhcpd leases the one address to one client.
            .arg(format!("MORGANA_TENDER_ARGS=--mac {MAC}"))
            .arg(&runner)
            .arg(&image)
            .current_dir(&ns.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting morgana-run");
        let console = lines(child.stdout.take().expect("piped"));
        let report = lines(child.stderr.take().expect("piped"));
        ns.children.push(child);
        let deadline = Instant::now() + LIMIT;
        let mut seen = Vec::new();
        let serving = wait_for_line(
            &console,
            "kv: serving the Redis protocol",
            deadline,
            &mut seen,
        );
        let runner_said: Vec<String> = report.try_iter().collect();
        assert!(
            serving.is_some(),
            "kv never said it was serving; console:\n{}\nrunner and tender:\n{}",
            seen.join("\n"),
            runner_said.join("\n")
        );
        (seen, runner_said, report)
    };
    let cli = |ns: &Netns, args: &[&str]| -> String {
        let mut all = vec!["redis-cli", "-h", GUEST, "-p", "6379"];
        all.extend_from_slice(args);
        let out = ns.exec(&all);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    };

    assert!(!disk.exists());
    let (console, said, _report) = boot(&mut ns);
    assert!(
        said.iter()
            .any(|l| l.contains("created the disk image kv.img (256 MiB, sparse)")),
        "{said:?}"
    );
    assert_eq!(std::fs::metadata(&disk).expect("kv.img").len(), 256 << 20);
    assert!(
        console.iter().any(|l| l.contains("store: formatted")),
        "a blank disk is formatted: {console:?}"
    );
    assert_eq!(cli(&ns, &["PING"]), "PONG");
    assert_eq!(
        cli(&ns, &["SET", "greeting", "hello from the tender"]),
        "OK"
    );
    // 100 KiB: a record over many sectors (an argument stays under Linux's 128 KiB).
    let big = "0123456789abcdef".repeat(6400);
    assert_eq!(cli(&ns, &["SET", "big", &big]), "OK");
    assert_eq!(cli(&ns, &["GET", "greeting"]), "hello from the tender");

    // SIGKILL right after the acknowledgements: no chance to write anything more.
    let mut first = ns.children.pop().expect("the tender");
    first.kill().expect("SIGKILL");
    let status = first.wait().expect("wait");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "the tender died by SIGKILL"
    );

    let (console, said, report) = boot(&mut ns);
    assert!(
        !said.iter().any(|l| l.contains("created")),
        "an existing image is never recreated: {said:?}"
    );
    assert!(
        console.iter().any(|l| l.contains("store: mounted: 2 keys")),
        "{console:?}"
    );
    assert_eq!(cli(&ns, &["GET", "greeting"]), "hello from the tender");
    assert_eq!(cli(&ns, &["STRLEN", "big"]), big.len().to_string());
    assert_eq!(cli(&ns, &["GET", "big"]), big);
    assert_eq!(cli(&ns, &["DBSIZE"]), "2");
    let child = ns.children.last_mut().expect("the tender");
    assert!(
        child.try_wait().expect("wait").is_none(),
        "the tender stopped"
    );
    let _ = child.kill();
    let _ = child.wait();
    let reported: Vec<String> = report.try_iter().collect();
    assert!(
        !reported.iter().any(|l| l.contains("guest stopped")),
        "{reported:?}"
    );
}
