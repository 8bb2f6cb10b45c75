//! End to end: `MORGANA_TARGET=xen cargo run --release` of the static website, as a user
//! runs it. The build writes `static-website.qemu` next to the PVH image; cargo's runner
//! (`scripts/morgana-run`, from `.cargo/config.toml`) boots the image under QEMU with the
//! arguments that file names, the HTTP port forwarded from the host's 127.0.0.1. One
//! boot serves every check: the site's pages and a redirect, then a clean stop on
//! SIGINT (Ctrl-C), QEMU gone and the console's output intact.
//!
//! The copy of the appliance listens on a port of its own (from the host's free ones),
//! so that the test does not take 8080 from anything else.

use morgana_tests::scratch::scratch_appliance;
use morgana_tests::{curl, kernel_target_dir, workspace_root};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BOOT: Duration = Duration::from_secs(90);

/// A TCP port that nothing listens on right now.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// The `cargo run` child (cargo exec's the runner, which exec's QEMU): killed if the
/// test panics, so that no QEMU outlives a failed run.
struct Run(Option<Child>);

impl Run {
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("running")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Whether a whole `200` comes back for `HEAD /`. Before the guest is up, QEMU's port
/// forward refuses the connection or closes it without an answer: `false`, not a panic.
fn answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut got = [0u8; 12];
    s.read_exact(&mut got).is_ok() && got.starts_with(b"HTTP/1.1 200")
}

#[test]
fn cargo_run_boots_the_kernel_under_qemu_serves_and_stops_on_ctrl_c() {
    let port = free_port();
    let dir = scratch_appliance(
        "static-website",
        &format!("xen-run-{}", std::process::id()),
        |ron| {
            let edited = ron.replace("port: 8080", &format!("port: {port}"));
            assert_ne!(edited, ron, "the site's appliance.ron says `port: 8080`");
            edited
        },
    );
    let target = kernel_target_dir().join("run-target");
    let cargo = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO"));
        c.current_dir(&dir)
            .args(args)
            .env("MORGANA_TARGET", "xen")
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("MORGANA_QEMU")
            .env_remove("MORGANA_QEMU_ARGS");
        c
    };
    // Build first, so that the boot below is timed on its own.
    let built = cargo(&["build", "--release", "--quiet"])
        .output()
        .expect("cargo runs");
    assert!(
        built.status.success(),
        "MORGANA_TARGET=xen cargo build failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let qemu_args = std::fs::read_to_string(target.join("release/static-website.qemu"))
        .expect("the build wrote static-website.qemu next to the image");
    assert!(
        qemu_args.contains(&format!("hostfwd=tcp:127.0.0.1:{port}-:{port}")),
        "{qemu_args}"
    );

    let mut run = Run(Some(
        cargo(&["run", "--release", "--quiet"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cargo run starts"),
    ));
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let base = format!("http://{addr}");
    let start = Instant::now();
    let up = loop {
        if answers(addr) {
            break true;
        }
        if start.elapsed() > BOOT || run.child().try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if !up {
        let mut child = run.0.take().expect("running");
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "the kernel never answered on {addr} within {BOOT:?}:\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let htdocs = workspace_root().join("appliances/static-website/htdocs");
    for page in [
        "index.html",
        "about.html",
        "docs/appliance-ron.html",
        "img/logo.png",
    ] {
        let want = std::fs::read(htdocs.join(page)).expect("fixture");
        let got = curl(&format!("{base}/{page}"), &[]);
        assert_eq!(got.status, 200, "GET /{page}");
        assert_eq!(got.body, want, "GET /{page}: bytes differ");
    }
    let r = curl(&format!("{base}/docs/ron"), &[]);
    assert_eq!(r.status, 308, "the compiled-in redirects are served");
    assert_eq!(r.header("location"), Some("/docs/appliance-ron.html"));

    // Ctrl-C: cargo exec'd the runner, which exec'd QEMU, so this is QEMU's pid.
    let child = run.child();
    let pid = child.id().to_string();
    let sent = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "kill -INT {pid}");
    let stopped = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if stopped.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("QEMU still runs 20 s after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut stdout);
    }
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let console = stdout.replace("\r\n", "\n");
    assert!(
        status.success(),
        "QEMU exits 0 when interrupted, got {status}:\n{stderr}\n{console}"
    );
    assert!(
        stderr.contains(&format!(
            "morgana-run: booting static-website under QEMU; it will listen on http://127.0.0.1:{port}/"
        )),
        "{stderr}"
    );
    assert!(
        console.contains("static-website: serving 9 files and 4 redirects on http://"),
        "{console}"
    );
    // Nothing keeps the port once QEMU is gone.
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err(),
        "something still listens on {addr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
