//! End to end: the static website on the Unix target with `stack: Direct` — the same
//! appliance code over Morgana's own TCP/IP stack and a Linux tap device instead of
//! host sockets. The test makes its own network namespace holding the tap (host side
//! 10.99.0.1/24, appliance 10.99.0.2/24); nothing leaves that namespace.

use morgana_tests::netns::Netns;
use morgana_tests::{Reply, files_below, scratch_target, target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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
    let root = workspace_root();
    let src = root.join("appliances/static-website");
    let ron = std::fs::read_to_string(src.join("appliance.ron")).expect("appliance.ron");
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
    let ron = ron.replace("HttpServer(", "HttpServer(address: \"0.0.0.0\", ");

    let dir = target_dir().join("scratch").join("direct-site");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    copy_dir(&src.join("src"), &dir.join("src"));
    copy_dir(&src.join("htdocs"), &dir.join("htdocs"));
    std::fs::copy(src.join("redirects"), dir.join("redirects")).expect("redirects");
    std::fs::write(dir.join("appliance.ron"), &ron).expect("ron");
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    morgana_codegen::build()\n}\n",
    )
    .expect("build.rs");
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).expect("Cargo.toml");
    let path = |p: &str| root.join(p).display().to_string();
    let manifest = manifest
        .replace("version.workspace = true", "version = \"0.1.0\"")
        .replace("edition.workspace = true", "edition = \"2024\"")
        .replace("license.workspace = true", "")
        .lines()
        .map(|l| match l.split_once(".workspace = true") {
            Some((name, _)) => {
                let folder = workspace_path(&root, name)
                    .unwrap_or_else(|| panic!("{name} is not a path dependency of the workspace"));
                format!("{name} = {{ path = \"{}\" }}", path(&folder))
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let profiles = "\n[workspace]\n\n[profile.dev]\npanic = \"abort\"\n\n[profile.release]\npanic = \"abort\"\nopt-level = \"s\"\nlto = \"fat\"\ncodegen-units = 1\n";
    std::fs::write(dir.join("Cargo.toml"), manifest + profiles).expect("Cargo.toml");
    let out = Command::new(env!("CARGO"))
        .current_dir(&dir)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", scratch_target())
        .env_remove("MORGANA_TARGET")
        .output()
        .expect("cargo");
    assert!(
        out.status.success(),
        "build of the direct-stack site failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    scratch_target().join("release/static-website")
}

/// The folder of workspace dependency `name`, from the root Cargo.toml's
/// `[workspace.dependencies]` (`name = { path = "folder" }`).
fn workspace_path(root: &Path, name: &str) -> Option<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    manifest.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        if key.trim() != name {
            return None;
        }
        let (_, rest) = value.split_once("path = \"")?;
        Some(rest.split('"').next()?.to_string())
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let dest = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
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
