//! End to end: the static website on the Unix target with `stack: Direct` — the same
//! appliance code over Morgana's own TCP/IP stack and a Linux tap device instead of
//! host sockets. The test makes its own network namespace holding the tap (host side
//! 10.99.0.1/24, appliance 10.99.0.2/24); nothing leaves that namespace.

use morgana_tests::netns::Netns;
use morgana_tests::scratch::{build, scratch_appliance};
use morgana_tests::{Reply, files_below, scratch_target, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const TAP: &str = "mtap0";
const APPLIANCE_IP: &str = "10.99.0.2";

/// A network namespace with a tap device in it, deleted (with what runs in it) on drop.
struct Namespace {
    net: Netns,
    children: Vec<Child>,
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
            net: Netns::new(format!("morgana-e2e-{}", std::process::id())),
            children: Vec::new(),
        };
        ns.exec_ok(&["ip", "tuntap", "add", "dev", TAP, "mode", "tap"]);
        ns.exec_ok(&["ip", "addr", "add", "10.99.0.1/24", "dev", TAP]);
        ns.exec_ok(&["ip", "link", "set", TAP, "up"]);
        ns
    }

    fn spawn(&mut self, binary: &Path) {
        let child = self
            .command(&[binary.to_str().expect("utf-8 path")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the appliance in the namespace");
        self.children.push(child);
    }

    /// curl inside the namespace; returns the reply.
    fn curl(&self, path: &str, extra: &[&str]) -> Reply {
        let dir = std::env::temp_dir().join(format!("morgana-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp");
        let head = dir.join("head");
        let body = dir.join("body");
        let url = format!("http://{APPLIANCE_IP}:8080{path}");
        let mut argv = vec!["curl", "-s", "-S", "--max-time", "10", "-D"];
        let head_s = head.to_str().expect("utf-8");
        let body_s = body.to_str().expect("utf-8");
        argv.extend([head_s, "-o", body_s]);
        argv.extend(extra);
        argv.push(&url);
        let out = self.exec(&argv);
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let reply = morgana_tests::parse_reply(
            &std::fs::read_to_string(&head).expect("head"),
            std::fs::read(&body).unwrap_or_default(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        reply
    }
}

/// The appliances go first; then `Netns` deletes the namespace.
impl Drop for Namespace {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A copy of static-website whose appliance.ron picks the direct stack on the tap.
fn build_direct_site() -> PathBuf {
    let dir = scratch_appliance("static-website", "direct-site", |ron| {
        // Replace the `"net": ...` device line with the direct stack on our tap.
        let direct = format!(
            "        \"net\": Network(stack: Direct, tap: \"{TAP}\", ipv4: Static(\"{APPLIANCE_IP}/24\"), gateway: Some(\"10.99.0.1\")),"
        );
        let mut replaced = false;
        let ron: String = ron
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("\"net\":") {
                    replaced = true;
                    direct.clone()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(replaced, "the site declares a \"net\" device");
        // The direct stack has no loopback interface: listen on its own address.
        ron.replace("HttpServer(", "HttpServer(address: \"0.0.0.0\", ")
    });
    build(&dir, &scratch_target(), false);
    scratch_target().join("release/static-website")
}

#[test]
fn static_website_over_the_direct_stack_on_a_tap() {
    let binary = build_direct_site();
    let mut ns = Namespace::new();
    ns.spawn(&binary);

    let start = Instant::now();
    loop {
        let out = ns.exec(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "1",
            &format!("http://{APPLIANCE_IP}:8080/"),
        ]);
        if String::from_utf8_lossy(&out.stdout) == "200" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the appliance never answered on the tap"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let ping = ns.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "2", APPLIANCE_IP]);
    assert!(
        ping.status.success(),
        "ICMP echo: {}",
        String::from_utf8_lossy(&ping.stdout)
    );

    let htdocs = workspace_root().join("appliances/static-website/htdocs");
    for (key, path) in files_below(&htdocs) {
        let want = std::fs::read(&path).expect("fixture");
        let got = ns.curl(&format!("/{key}"), &[]);
        assert_eq!(got.status, 200, "GET /{key}");
        assert_eq!(got.body, want, "GET /{key} over the tap: bytes differ");
    }
    let etag = ns.curl("/", &[]).header("etag").expect("ETag").to_string();
    assert_eq!(
        ns.curl("/", &["-H", &format!("If-None-Match: {etag}")])
            .status,
        304
    );
    assert_eq!(ns.curl("/nope", &[]).status, 404);
    let gz = ns.curl("/docs/appliance-ron.html", &["--compressed"]);
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
}
