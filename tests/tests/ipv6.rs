//! End to end over IPv6: the static website (a scratch copy of `appliances/static-website`
//! built with morgana-direct's `ipv6` feature) fetched with curl over v6, three ways:
//!
//! 1. Unix, the host's sockets, listening on `[::]`: `curl -g http://[::1]:PORT/`.
//! 2. Unix, Morgana's own stack on a tap in a network namespace the test makes, with a
//!    static address (`ipv6: Static("fd00:99:1::2/64")`): curl over v6, and `ping -6`
//!    answered (ICMPv6 echo; neighbour discovery carries both).
//! 3. The same stack IPv6 only (`ipv4: Off`, `ipv6: Slaac`): radvd in the namespace
//!    advertises a prefix, the appliance logs the address it made from it, the test
//!    checks that address is the prefix + the modified EUI-64 of the MAC address the same
//!    line names (RFC 4862), then fetches and pings over it; over IPv4 the appliance is
//!    not there (no address, no ARP answer).
//!
//! Each check compares index.html byte for byte with status 200. Needs curl, ip
//! (iproute2), ping (iputils-ping) and radvd (scripts/setup.sh installs them): without
//! one the test fails when `CI=true` and is skipped, saying so, elsewhere.

use morgana_tests::netns::{Netns, have};
use morgana_tests::scratch::{Guard, build, scratch_appliance};
use morgana_tests::{curl, scratch_target, workspace_root};
use std::io::{BufRead, BufReader};
use std::net::{Ipv6Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

fn index_html() -> Vec<u8> {
    std::fs::read(workspace_root().join("appliances/static-website/htdocs/index.html"))
        .expect("index.html")
}

/// A scratch static-website with `net` and `http` replaced by the given device lines, and
/// morgana-direct's `ipv6` feature turned on (every copy alike, so the dependencies are
/// compiled once); returns its folder after building it.
fn site(tag: &str, net: &str, http: &str) -> PathBuf {
    let dir = scratch_appliance(
        "static-website",
        &format!("ipv6-{tag}-{}", std::process::id()),
        |ron| {
            let mut replaced = 0;
            let ron = ron
                .lines()
                .map(|l| match l.trim_start() {
                    t if t.starts_with("\"net\":") => {
                        replaced += 1;
                        format!("        \"net\": {net},")
                    }
                    t if t.starts_with("\"http\":") => {
                        replaced += 1;
                        format!("        \"http\": {http},")
                    }
                    _ => l.to_string(),
                })
                .collect::<Vec<_>>()
                .join("\n");
            assert_eq!(replaced, 2, "static-website declares \"net\" and \"http\"");
            ron
        },
    );
    let manifest_path = dir.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).expect("Cargo.toml");
    let mut found = false;
    let manifest = manifest
        .lines()
        .map(|l| match l.strip_prefix("morgana-direct = { path = ") {
            Some(rest) => {
                found = true;
                let path = rest.trim_end_matches('}').trim();
                format!("morgana-direct = {{ path = {path}, features = [\"ipv6\"] }}")
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(found, "the scratch Cargo.toml depends on morgana-direct");
    std::fs::write(&manifest_path, manifest).expect("Cargo.toml");
    build(&dir, &scratch_target(), false);
    dir
}

/// The built binary, copied beside the scratch folder (the next build overwrites the
/// shared target's).
fn binary(dir: &Path) -> PathBuf {
    let to = dir.join("static-website.bin");
    std::fs::copy(scratch_target().join("release/static-website"), &to).expect("binary");
    to
}

/// The lines of a child's pipe, as they come.
fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The first line `pick` accepts within `limit`; panics with what came otherwise.
fn wait_line<T>(rx: &Receiver<String>, limit: Duration, pick: impl Fn(&str) -> Option<T>) -> T {
    let start = Instant::now();
    let mut seen = Vec::new();
    while let Some(left) = limit.checked_sub(start.elapsed()) {
        match rx.recv_timeout(left) {
            Ok(line) => match pick(&line) {
                Some(t) => return t,
                None => seen.push(line),
            },
            Err(_) => break,
        }
    }
    panic!(
        "no expected line within {limit:?}; saw:\n{}",
        seen.join("\n")
    );
}

#[test]
fn static_website_over_ipv6() {
    for tool in ["curl", "ip", "ping", "radvd"] {
        if !have(tool) {
            let why = format!("{tool} is not installed (scripts/setup.sh installs it)");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            return;
        }
    }
    let index = index_html();

    // 1. Host sockets on `[::]`, fetched at `[::1]`.
    let port = TcpListener::bind("[::1]:0")
        .and_then(|l| l.local_addr())
        .expect("IPv6 loopback (::1) on this machine")
        .port();
    let dir = site(
        "host",
        "Network()",
        &format!("HttpServer(net: \"net\", address: \"::\", port: {port})"),
    );
    let mut child = Command::new(binary(&dir))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("static-website starts");
    let out = lines(child.stdout.take().expect("stdout"));
    let guard = Guard(Some(child));
    wait_line(&out, Duration::from_secs(10), |l| {
        l.ends_with(&format!(" on http://[0:0:0:0:0:0:0:0]:{port}/"))
            .then_some(())
    });
    let got = curl(&format!("http://[::1]:{port}/"), &["-g"]);
    assert_eq!(got.status, 200, "GET / at [::1]:{port}");
    assert_eq!(got.body, index, "GET / at [::1]:{port}: bytes differ");
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);

    // 2. The direct stack with a static address, on a tap in a namespace.
    let ns = Namespace::new();
    let http = "HttpServer(net: \"net\", address: \"::\", port: 8086)";
    let dir = site(
        "static",
        &format!(
            "Network(stack: Direct, tap: \"{}\", ipv4: Static(\"10.99.6.2/24\"), ipv6: Some(Static(\"fd00:99:1::2/64\")), gateway6: Some(\"fd00:99:1::1\"))",
            ns.tap
        ),
        http,
    );
    let (mut app, log) = ns.spawn(&binary(&dir));
    wait_line(&log, Duration::from_secs(10), |l| {
        l.contains("ipv6 fd00:99:1::2/64 (static)").then_some(())
    });
    ns.check("fd00:99:1::2".parse().expect("address"), &index);
    // Dual stack: `::` takes IPv4 connections too.
    let v4 = ns.exec(&[
        "curl",
        "-s",
        "-S",
        "--max-time",
        "5",
        "http://10.99.6.2:8086/",
    ]);
    assert!(
        v4.status.success(),
        "{}",
        String::from_utf8_lossy(&v4.stderr)
    );
    assert_eq!(
        v4.stdout, index,
        "GET / over IPv4 beside IPv6: bytes differ"
    );
    app.kill_now();
    let _ = std::fs::remove_dir_all(&dir);

    // 3. IPv6 only, with SLAAC: radvd advertises fd00:99:2::/64 on the tap.
    let dir = site(
        "slaac",
        &format!(
            "Network(stack: Direct, tap: \"{}\", ipv4: Off, ipv6: Some(Slaac))",
            ns.tap
        ),
        http,
    );
    let (mut app, log) = ns.spawn(&binary(&dir));
    wait_line(&log, Duration::from_secs(10), |l| {
        l.contains(": ipv4 off (IPv6 only)").then_some(())
    });
    let conf = std::env::temp_dir().join(format!("morgana-radvd-{}.conf", std::process::id()));
    std::fs::write(
        &conf,
        format!(
            "interface {} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n  prefix fd00:99:2::/64 {{\n    AdvOnLink on;\n    AdvAutonomous on;\n  }};\n}};\n",
            ns.tap
        ),
    )
    .expect("radvd.conf");
    let pid_file = std::env::temp_dir().join(format!("morgana-radvd-{}.pid", std::process::id()));
    let radvd = ns
        .command(&[
            "radvd",
            "-n",
            "-m",
            "stderr",
            "-C",
            conf.to_str().expect("utf-8"),
            "-p",
            pid_file.to_str().expect("utf-8"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("radvd starts");
    let radvd = Guard(Some(radvd));
    // `02:..: ipv6 fd00:99:2:0:...:x/64 from a router advertisement, gateway fe80::...`
    let (mac, address) = wait_line(&log, Duration::from_secs(30), |l| {
        let rest = l.split_once("] ")?.1;
        let (mac, rest) = rest.split_once(": ipv6 ")?;
        let (cidr, _) = rest.split_once(" from a router advertisement")?;
        let address: Ipv6Addr = cidr.strip_suffix("/64")?.parse().ok()?;
        Some((mac.to_string(), address))
    });
    let octets: Vec<u8> = mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).expect("a MAC address"))
        .collect();
    assert_eq!(octets.len(), 6, "MAC {mac}");
    // Modified EUI-64: the universal/local bit flipped, ff:fe in the middle.
    let eui = [
        octets[0] ^ 0x02,
        octets[1],
        octets[2],
        0xff,
        0xfe,
        octets[3],
        octets[4],
        octets[5],
    ];
    let mut want = [0u8; 16];
    want[..8].copy_from_slice(&"fd00:99:2::".parse::<Ipv6Addr>().expect("prefix").octets()[..8]);
    want[8..].copy_from_slice(&eui);
    assert_eq!(
        address,
        Ipv6Addr::from(want),
        "the SLAAC address is the advertised prefix + the EUI-64 of {mac}"
    );
    eprintln!("SLAAC gave {address} (the EUI-64 of {mac})");
    ns.check(address, &index);
    // No IPv4: the address the dual stack had is nobody's now (forget what ARP learnt
    // of it then).
    ns.exec_ok(&["ip", "neigh", "flush", "dev", &ns.tap]);
    let v4 = ns.exec(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "--max-time",
        "3",
        "http://10.99.6.2:8086/",
    ]);
    assert!(
        !v4.status.success(),
        "an IPv6-only appliance answered over IPv4"
    );
    let arp = ns.exec(&["ip", "neigh", "show", "10.99.6.2"]);
    let arp = String::from_utf8_lossy(&arp.stdout);
    assert!(
        !arp.contains("lladdr"),
        "an IPv6-only appliance answered ARP: {arp}"
    );
    app.kill_now();
    drop(radvd);
    let _ = std::fs::remove_file(&conf);
    let _ = std::fs::remove_file(&pid_file);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A running appliance in the namespace, killed on drop.
struct App(Option<Child>);

impl App {
    fn kill_now(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// A network namespace holding a tap (host side 10.99.6.1/24, fd00:99:1::1/64 and
/// fd00:99:2::1/64),
/// deleted on drop.
struct Namespace {
    net: Netns,
    tap: String,
}

impl std::ops::Deref for Namespace {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.net
    }
}

impl Namespace {
    fn new() -> Namespace {
        let ns = Namespace {
            net: Netns::new(format!("morgana-v6-{}", std::process::id())),
            tap: format!("m6t{}", std::process::id()),
        };
        let tap = ns.tap.as_str();
        // radvd expects to advertise from a router. /proc/sys/net is the namespace's own
        // (no procps needed for `sysctl`).
        ns.exec_ok(&[
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
        ]);
        ns.exec_ok(&["ip", "tuntap", "add", "dev", tap, "mode", "tap"]);
        ns.exec_ok(&["ip", "addr", "add", "10.99.6.1/24", "dev", tap]);
        for cidr in ["fd00:99:1::1/64", "fd00:99:2::1/64"] {
            ns.exec_ok(&["ip", "-6", "addr", "add", cidr, "dev", tap, "nodad"]);
        }
        ns.exec_ok(&["ip", "link", "set", tap, "up"]);
        ns
    }

    /// Starts `binary` in the namespace; returns it and its log (stderr) lines.
    fn spawn(&self, binary: &Path) -> (App, Receiver<String>) {
        let mut child = self
            .command(&[binary.to_str().expect("utf-8 path")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the appliance in the namespace");
        let log = lines(child.stderr.take().expect("stderr"));
        (App(Some(child)), log)
    }

    /// index.html over v6 at `address`, port 8086, byte for byte, and ping -6 answered.
    fn check(&self, address: Ipv6Addr, index: &[u8]) {
        let url = format!("http://[{address}]:8086/");
        let body = std::env::temp_dir().join(format!("morgana-v6-body-{}", std::process::id()));
        let body_s = body.to_str().expect("utf-8");
        let start = Instant::now();
        loop {
            let out = self.exec(&[
                "curl",
                "-g",
                "-s",
                "-S",
                "--max-time",
                "5",
                "-o",
                body_s,
                "-w",
                "%{http_code}",
                &url,
            ]);
            if String::from_utf8_lossy(&out.stdout) == "200" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the appliance never answered at {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        let got = std::fs::read(&body).expect("curl wrote the body");
        let _ = std::fs::remove_file(&body);
        assert_eq!(got, index, "GET {url}: bytes differ");
        let address = address.to_string();
        let ping = self.exec(&["ping", "-6", "-c", "3", "-i", "0.2", "-W", "2", &address]);
        assert!(
            ping.status.success(),
            "ping -6 {address}: {}{}",
            String::from_utf8_lossy(&ping.stdout),
            String::from_utf8_lossy(&ping.stderr)
        );
    }
}
