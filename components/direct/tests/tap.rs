//! End to end over a real Linux tap: build `examples/direct-http.rs` (a static,
//! libc-free appliance binary with its own TCP/IP stack), run it inside a network
//! namespace made for the test, and talk to it from the same namespace with curl and
//! ping (and, for DHCP, with busybox's udhcpd as the server).
//!
//! Traffic stays inside the namespace: the tap and its host side (10.99.0.1/24) live
//! there, the appliance is 10.99.0.2, and the namespace, with the tap in it, is deleted
//! when the test ends, failed or not. Needs root (or CAP_NET_ADMIN and CAP_SYS_ADMIN),
//! `/dev/net/tun`, iproute2 and curl; the ping check needs ping (Debian: iputils-ping)
//! and the DHCP test udhcpd (Debian: udhcpd, busybox's DHCP server). A test or check
//! whose tools are missing says so on stderr and passes on a developer's machine; under
//! CI (`CI=true`), where scripts/setup.sh installs them and tests run as root, it fails.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const HOST_SIDE: &str = "10.99.0.1";
const APPLIANCE: &str = "10.99.0.2";
const TAP: &str = "mtap0";

/// Builds the example once per test run, in this test binary's target directory and
/// profile, and returns its path.
fn appliance_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("profile dir");
        let target_dir = profile_dir.parent().expect("target dir");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["rustc", "-p", "morgana-direct", "--example", "direct-http"])
            .args(["--features", "example"])
            .env("CARGO_TARGET_DIR", target_dir);
        if release {
            cmd.arg("--release");
        }
        // Warnings are errors here: the workspace's clippy run does not see the example
        // (it needs the `example` feature).
        cmd.args(["--", "-D", "warnings"]);
        let status = cmd.status().expect("running cargo");
        assert!(status.success(), "building the direct-http example failed");
        let bin = profile_dir.join("examples").join("direct-http");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

/// Whether a test or check whose needs are `missing` (why, if it cannot run) may go
/// on: it skips with the reason on a developer's machine, and fails under `CI=true`.
fn can_run(missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "cannot run under CI=true: {why} (CI runs as root with scripts/setup.sh's packages)"
    );
    eprintln!("skipped: {why}");
    false
}

/// Why this machine cannot run the tap tests, if it cannot.
fn missing(extra: &[&str]) -> Option<String> {
    if !is_root() {
        return Some("not root (tap and namespaces need CAP_NET_ADMIN)".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for tool in ["ip", "curl"].iter().chain(extra) {
        if !have(tool) {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace with a tap whose host side is 10.99.0.1/24. Dropping it kills
/// the processes started in it and deletes the namespace (and the tap with it).
struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "morgana-t{}-{tag}{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        run(Command::new("ip").args(["netns", "add", &name]));
        // From here on, Drop cleans up even if a step below fails.
        let ns = Netns {
            name,
            children: Vec::new(),
        };
        ns.exec(&["ip", "link", "set", "lo", "up"]);
        ns.exec(&["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
        ns.exec(&["ip", "addr", "add", &format!("{HOST_SIDE}/24"), "dev", TAP]);
        ns.exec(&["ip", "link", "set", TAP, "up"]);
        ns
    }

    /// A command that runs inside the namespace.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    fn exec(&self, args: &[&str]) -> Output {
        run(&mut self.command(args))
    }

    /// Starts the appliance and waits for its `listening on ...` line; returns that
    /// address and the child's index.
    fn start_appliance(&mut self, args: &[&str]) -> (String, usize) {
        let bin = appliance_binary().to_str().unwrap().to_owned();
        let mut all = vec![bin.as_str(), "--tap", TAP];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the appliance");
        let stdout = child.stdout.take().unwrap();
        self.children.push(child);
        let index = self.children.len() - 1;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let log = self.stop(index);
            panic!("the appliance did not start: {line:?}\n{log}");
        };
        (addr.to_owned(), index)
    }

    /// Kills child `index` and returns what it wrote on stderr.
    fn stop(&mut self, index: usize) -> String {
        let child = &mut self.children[index];
        let _ = child.kill();
        let _ = child.wait();
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    /// curl inside the namespace: (status code, body).
    fn curl(&self, url: &str) -> (u16, Vec<u8>) {
        let out = self.exec(&[
            "curl",
            "-sS",
            "--max-time",
            "10",
            "-w",
            "\n%{http_code}",
            url,
        ]);
        let text = out.stdout;
        let split = text.iter().rposition(|&b| b == b'\n').unwrap();
        let code = std::str::from_utf8(&text[split + 1..])
            .unwrap()
            .parse()
            .unwrap();
        (code, text[..split].to_vec())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

const INDEX: &[u8] = include_bytes!("../examples/site/index.html");
const CSS: &[u8] = include_bytes!("../examples/site/css/site.css");

/// `n` GETs of `url` from one curl process: keep-alive unless `close`. Returns the
/// requests per second.
fn curl_loop(ns: &Netns, url: &str, n: usize, close: bool) -> f64 {
    let mut args: Vec<String> = ["curl", "-sS", "--max-time", "60", "-o", "/dev/null"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["-w".into(), "%{http_code}\\n".into()]);
    if close {
        args.extend(["-H".into(), "Connection: close".into()]);
    }
    args.extend(std::iter::repeat_n(url.to_owned(), n));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let out = ns.exec(&args);
    let secs = t.elapsed().as_secs_f64();
    let codes = String::from_utf8(out.stdout).unwrap();
    assert_eq!(codes.lines().filter(|l| *l == "200").count(), n, "{codes}");
    n as f64 / secs
}

#[test]
fn serves_http_and_answers_ping_over_a_tap() {
    if !can_run(missing(&[])) {
        return;
    }
    let mut ns = Netns::new("s");
    let (addr, appliance) =
        ns.start_appliance(&["--address", &format!("{APPLIANCE}/24"), "--port", "80"]);
    assert_eq!(addr, format!("{APPLIANCE}:80"));

    // ICMP echo, answered by the appliance's own stack.
    if can_run((!have("ping")).then(|| "ping is not installed (Debian: iputils-ping)".into())) {
        let ping = ns.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", APPLIANCE]);
        let text = String::from_utf8_lossy(&ping.stdout);
        assert!(text.contains("3 received"), "{text}");
    }

    let base = format!("http://{APPLIANCE}");
    assert_eq!(ns.curl(&format!("{base}/")), (200, INDEX.to_vec()));
    assert_eq!(
        ns.curl(&format!("{base}/css/site.css")),
        (200, CSS.to_vec())
    );
    assert_eq!(ns.curl(&format!("{base}/missing")).0, 404);

    // Concurrent clients, each with several requests on one connection.
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let mut cmd = ns.command(&["curl", "-sS", "--max-time", "20"]);
            for _ in 0..10 {
                cmd.arg(format!("{base}/css/site.css"));
            }
            cmd.output().expect("curl")
        })
        .collect();
    for out in clients {
        assert!(out.status.success());
        assert_eq!(out.stdout, CSS.repeat(10));
    }

    // Throughput, bounded in count: keep-alive, then one connection per request.
    let keep_alive = curl_loop(&ns, &format!("{base}/"), 1000, false);
    let per_connection = curl_loop(&ns, &format!("{base}/"), 300, true);
    eprintln!(
        "direct stack over tap: {keep_alive:.0} requests/s keep-alive, {per_connection:.0} requests/s with a connection each"
    );

    let log = ns.stop(appliance);
    assert!(
        log.contains(&format!("ipv4 {APPLIANCE}/24 (static), no gateway")),
        "log:\n{log}"
    );
    assert!(
        !log.contains("WARN") && !log.contains("panic"),
        "log:\n{log}"
    );
}

#[test]
fn leases_an_address_from_a_dhcp_server() {
    if !can_run(missing(&["udhcpd"])) {
        return;
    }
    let mut ns = Netns::new("d");
    let dir = std::env::temp_dir().join(format!("{}-udhcpd", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("udhcpd.conf");
    std::fs::write(
        &conf,
        format!(
            "start {APPLIANCE}\nend {APPLIANCE}\ninterface {TAP}\n\
             lease_file {leases}\npidfile {pid}\n\
             option subnet 255.255.255.0\noption router {HOST_SIDE}\noption lease 600\n",
            leases = dir.join("leases").display(),
            pid = dir.join("pid").display(),
        ),
    )
    .unwrap();
    std::fs::write(dir.join("leases"), b"").unwrap();
    // -f: foreground; -a 100: a short ARP probe before offering.
    let server = ns
        .command(&["udhcpd", "-f", "-a", "100", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting udhcpd");
    ns.children.push(server);

    let (addr, appliance) = ns.start_appliance(&["--dhcp", "--dhcp-timeout-ms", "20000"]);
    assert_eq!(addr, format!("{APPLIANCE}:80"));
    assert_eq!(
        ns.curl(&format!("http://{APPLIANCE}/")),
        (200, INDEX.to_vec())
    );
    let log = ns.stop(appliance);
    assert!(
        log.contains(&format!(
            "ipv4 {APPLIANCE}/24 leased from DHCP server {HOST_SIDE}, gateway {HOST_SIDE}"
        )),
        "log:\n{log}"
    );
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_dhcp_server_is_a_clear_start_error() {
    if !can_run(missing(&[])) {
        return;
    }
    let ns = Netns::new("n");
    let bin = appliance_binary().to_str().unwrap().to_owned();
    let out = ns
        .command(&[&bin, "--tap", TAP, "--dhcp", "--dhcp-timeout-ms", "1500"])
        .output()
        .expect("running the appliance");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("morgana: net: no DHCP answer after 1500 ms"),
        "{err}"
    );
}

#[test]
fn tap_errors_are_explained() {
    if !can_run(missing(&[])) {
        return;
    }
    let mut ns = Netns::new("e");
    // The tap is already in use by a first appliance: the second is told so.
    let (_, _first) = ns.start_appliance(&["--address", &format!("{APPLIANCE}/24")]);
    let bin = appliance_binary().to_str().unwrap().to_owned();
    let out = ns
        .command(&[&bin, "--tap", TAP, "--address", "10.99.0.3/24"])
        .output()
        .expect("running the appliance");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("morgana: net: tap mtap0 is busy: another process has it open (EBUSY)"),
        "{err}"
    );
    // A bad name never reaches the kernel.
    let out = ns
        .command(&[&bin, "--tap", "no/such", "--address", "10.99.0.3/24"])
        .output()
        .expect("running the appliance");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not a valid interface name"), "{err}");
}

/// `missing(extra)`, except that under `CI=true` a missing tool fails the test (the
/// house rule for tests added with IPv6 and UDP; scripts/setup.sh installs them).
fn missing_unless_ci(extra: &[&str]) -> Option<String> {
    let why = missing(extra)?;
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "cannot run under CI: {why}"
    );
    Some(why)
}

/// The appliance's MAC in the IPv6 test, and the addresses it makes from it (modified
/// EUI-64: the U/L bit flipped, ff:fe in the middle).
const MAC6: &str = "02:00:00:00:99:02";
const LINK_LOCAL6: &str = "fe80::ff:fe00:9902";
const PREFIX6: &str = "fd00:99::";
const SLAAC6: &str = "fd00:99::ff:fe00:9902";
const STATIC6: &str = "fd00:99::2";

/// Sends `data` with socat to `target` (`UDP4:...` or `UDP6:[...]:...`) from inside the
/// namespace and returns the echo.
fn socat_echo(ns: &Netns, target: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = ns
        .command(&["socat", "-b", "9000", "-t", "2", "-T", "5", "-", target])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("socat");
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "socat {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Pings `addr` until it answers (the first echo may be lost while the stack resolves
/// the host's link-layer address, which smoltcp does not queue for), or panics.
fn ping6_answered(ns: &Netns, addr: &str, within: Duration) {
    let start = Instant::now();
    loop {
        let out = ns
            .command(&["ping", "-6", "-c", "3", "-i", "0.2", "-W", "1", addr])
            .output()
            .expect("ping");
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains(" 2 received") || text.contains(" 3 received") {
            return;
        }
        assert!(
            start.elapsed() < within,
            "{addr} never answered ping6:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// IPv6 over a real tap: SLAAC from radvd's router advertisements, then a static
/// address; each time ping6 (link-local and global), the site fetched over IPv6 with
/// curl, and the UDP echo checked with socat over both families, including datagrams
/// at the MTU (1472 bytes over IPv4, 1452 over IPv6).
#[test]
fn ipv6_slaac_static_and_udp_over_a_tap() {
    if let Some(why) = missing_unless_ci(&["radvd", "socat", "ping"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let mut ns = Netns::new("6");
    ns.exec(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{PREFIX6}1/64"),
        "dev",
        TAP,
        "nodad",
    ]);
    // radvd advertises only on a router.
    ns.exec(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let dir = std::env::temp_dir().join(format!("{}-radvd", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("radvd.conf");
    std::fs::write(
        &conf,
        format!(
            "interface {TAP} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n  \
             prefix {PREFIX6}/64 {{ AdvOnLink on; AdvAutonomous on; }};\n}};\n"
        ),
    )
    .unwrap();
    let (addr, appliance) = ns.start_appliance(&[
        "--address",
        &format!("{APPLIANCE}/24"),
        "--mac",
        MAC6,
        "--ipv6",
        "slaac",
        "--udp-echo",
        "7",
    ]);
    assert_eq!(addr, format!("{APPLIANCE}:80"));
    let radvd = ns
        .command(&[
            "radvd",
            "-n",
            "-C",
            conf.to_str().unwrap(),
            "-p",
            dir.join("pid").to_str().unwrap(),
            "-m",
            "stderr",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting radvd");
    ns.children.push(radvd);

    // Link-local first (no router needed), then the address SLAAC makes from the
    // advertised prefix (the stack solicits routers every 4 s at first; radvd
    // advertises every 3-4 s).
    ping6_answered(
        &ns,
        &format!("{LINK_LOCAL6}%{TAP}"),
        Duration::from_secs(10),
    );
    ping6_answered(&ns, SLAAC6, Duration::from_secs(20));
    let v6_url = format!("http://[{SLAAC6}]");
    let out = ns.exec(&[
        "curl",
        "-sS",
        "-g",
        "--max-time",
        "10",
        &format!("{v6_url}/"),
    ]);
    assert_eq!(out.stdout, INDEX, "GET / over IPv6");
    let out = ns.exec(&[
        "curl",
        "-sS",
        "-g",
        "--max-time",
        "10",
        &format!("{v6_url}/css/site.css"),
    ]);
    assert_eq!(out.stdout, CSS);
    // IPv4 still works beside it.
    assert_eq!(
        ns.curl(&format!("http://{APPLIANCE}/")),
        (200, INDEX.to_vec())
    );

    // UDP echo on [::]: both families, small and MTU-sized datagrams.
    let udp6 = format!("UDP6:[{SLAAC6}]:7");
    let udp4 = format!("UDP4:{APPLIANCE}:7");
    assert_eq!(
        socat_echo(&ns, &udp6, b"hello over six\n"),
        b"hello over six\n"
    );
    assert_eq!(
        socat_echo(&ns, &udp4, b"hello over four\n"),
        b"hello over four\n"
    );
    let mtu6: Vec<u8> = (0..1452u32).map(|i| b'a' + (i % 26) as u8).collect();
    let mtu4: Vec<u8> = (0..1472u32).map(|i| b'A' + (i % 26) as u8).collect();
    assert!(
        socat_echo(&ns, &udp6, &mtu6) == mtu6,
        "1452 bytes over IPv6"
    );
    assert!(
        socat_echo(&ns, &udp4, &mtu4) == mtu4,
        "1472 bytes over IPv4"
    );

    let log = ns.stop(appliance);
    assert!(
        log.contains(&format!(
            "ipv6 {SLAAC6}/64 from a router advertisement, gateway fe80::"
        )),
        "log:\n{log}"
    );
    assert!(!log.contains("panic"), "log:\n{log}");

    // A static address with a gateway, and no router advertisements needed.
    let (_, appliance) = ns.start_appliance(&[
        "--address",
        &format!("{APPLIANCE}/24"),
        "--mac",
        MAC6,
        "--ipv6",
        &format!("{STATIC6}/64"),
        "--gateway6",
        &format!("{PREFIX6}1"),
        "--udp-echo",
        "7",
    ]);
    ping6_answered(&ns, STATIC6, Duration::from_secs(10));
    let out = ns.exec(&[
        "curl",
        "-sS",
        "-g",
        "--max-time",
        "10",
        &format!("http://[{STATIC6}]/"),
    ]);
    assert_eq!(out.stdout, INDEX, "GET / over the static IPv6 address");
    assert_eq!(socat_echo(&ns, &format!("UDP6:[{STATIC6}]:7"), &mtu6), mtu6);
    let log = ns.stop(appliance);
    assert!(
        log.contains(&format!(
            "ipv6 {STATIC6}/64 (static), {LINK_LOCAL6}/64 (link-local), gateway {PREFIX6}1"
        )),
        "log:\n{log}"
    );
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}
