//! End to end: the udp-echo appliance (`appliances/udp-echo`: a `UdpSocket` device
//! handed to the job) three ways, each checked with a real client (socat) on a UDP port
//! of its own:
//!
//! 1. a Unix process on the host's sockets;
//! 2. a Unix process on Morgana's own stack (`stack: Direct`) over a tap in a network
//!    namespace the test makes (host side 10.99.7.1/24, appliance 10.99.7.2/24), socat
//!    in the namespace;
//! 3. a PVH kernel under QEMU on Morgana's own stack over virtio-net.
//!
//! Small datagrams come back byte for byte, so does one at the Ethernet MTU's payload
//! (1472 bytes, a full frame), and a longer one is not echoed: on host sockets it
//! arrives truncated at the appliance's limit and the console says so; on the direct
//! stack its IP packet is larger than the link's MTU, the sender's kernel (socat's over
//! the tap, QEMU's slirp) sends it in fragments, and the direct stack (built without
//! IPv4 reassembly) drops them. One QEMU boot serves every kernel check; the generated
//! `.qemu` file's `hostfwd=udp:` rule carries the traffic.
//!
//! Needs socat, ip (iproute2) and QEMU (scripts/setup.sh installs them): without them
//! the test fails when `CI=true` and is skipped, saying so, elsewhere.

use morgana_tests::netns::{Netns, have};
use morgana_tests::scratch::{Guard, build, cargo, scratch_appliance};
use morgana_tests::scratch_target;
use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A UDP port nothing is bound to right now.
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind port 0")
        .port()
}

/// Where the echo service is: an address and port, reached from this network namespace
/// or from one the test made.
struct Service<'a> {
    ns: Option<&'a Netns>,
    host: &'a str,
    port: u16,
}

/// The service on the host's loopback.
fn local(port: u16) -> Service<'static> {
    Service {
        ns: None,
        host: "127.0.0.1",
        port,
    }
}

/// Sends `data` as one datagram with socat and returns what came back within `wait`
/// (socat's `-t`: how long it waits for the answer after sending).
fn socat(to: &Service<'_>, data: &[u8], wait: Duration) -> Vec<u8> {
    let argv = [
        "socat",
        "-b",
        "65536",
        "-t",
        &format!("{:.1}", wait.as_secs_f64()),
        "-",
        &format!("UDP:{}:{}", to.host, to.port),
    ];
    let mut command = match to.ns {
        Some(ns) => ns.command(&argv),
        None => {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("socat runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(data)
        .expect("write to socat");
    let out = child.wait_with_output().expect("socat ends");
    out.stdout
}

/// Bytes that are not all alike, so that an echo of anything else is noticed.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// The checks both targets pass; `oversize` is the length of a datagram that must not
/// come back.
fn check_echo(to: &Service<'_>, oversize: usize) {
    let wait = Duration::from_secs(2);
    assert_eq!(socat(to, b"hello, udp\n", wait), b"hello, udp\n");
    let mtu = pattern(1472);
    assert_eq!(socat(to, &mtu, wait), mtu, "a 1472-byte datagram");
    assert!(
        socat(to, &pattern(oversize), wait).is_empty(),
        "a {oversize}-byte datagram is not echoed"
    );
    // The service goes on.
    assert_eq!(socat(to, b"still here", wait), b"still here");
}

/// Stage 2: udp-echo on the direct stack over a tap in a namespace of its own.
fn over_a_tap(port: u16) {
    let ns = Netns::new(format!("morgana-udp-{}", std::process::id()));
    let tap = format!("mut{}", std::process::id());
    ns.exec_ok(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"]);
    ns.exec_ok(&["ip", "addr", "add", "10.99.7.1/24", "dev", &tap]);
    ns.exec_ok(&["ip", "link", "set", &tap, "up"]);
    let dir = scratch_appliance(
        "udp-echo",
        &format!("udp-echo-tap-{}", std::process::id()),
        |ron| {
            let edited = ron
                .replace(
                    "\"net\": Network(),",
                    &format!(
                        "\"net\": Network(stack: Direct, tap: \"{tap}\", ipv4: Static(\"10.99.7.2/24\")),"
                    ),
                )
                .replace(
                    "UdpSocket(net: \"net\", port: 7007)",
                    &format!("UdpSocket(net: \"net\", address: \"0.0.0.0\", port: {port})"),
                );
            assert!(
                edited.contains("stack: Direct") && edited.contains(&format!("port: {port}")),
                "udp-echo's appliance.ron declares `\"net\": Network(),` and `UdpSocket(net: \"net\", port: 7007)`"
            );
            edited
        },
    );
    let target = scratch_target();
    build(&dir, &target, false);
    let child = ns
        .command(&[target
            .join("release/udp-echo")
            .to_str()
            .expect("utf-8 path")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("udp-echo starts in the namespace");
    let mut guard = Guard(Some(child));
    let stdout = guard
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .expect("stdout");
    // Kept open while the appliance runs (a closed pipe would fail its console).
    let mut console = BufReader::new(stdout).lines();
    let first = console.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(
        first,
        format!("udp echo on 0.0.0.0:{port} (datagrams up to 1472 bytes)")
    );
    let to = Service {
        ns: Some(&ns),
        host: "10.99.7.2",
        port,
    };
    // The first datagram waits for ARP; ask until the stack answers.
    let start = Instant::now();
    while socat(&to, b"ping", Duration::from_millis(500)) != b"ping" {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "udp-echo never echoed over the tap"
        );
    }
    check_echo(&to, 1473);
    drop(guard.0.take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));
    drop(console);
    drop(ns);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn udp_echo_answers_on_unix_over_a_tap_and_as_a_kernel_under_qemu() {
    for tool in ["socat", "ip", "qemu-system-x86_64"] {
        if !have(tool) {
            let why = format!("{tool} is not installed (scripts/setup.sh installs it)");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            return;
        }
    }
    let port = free_udp_port();
    let dir = scratch_appliance(
        "udp-echo",
        &format!("udp-echo-{}", std::process::id()),
        |ron| {
            let edited = ron.replace("port: 7007", &format!("port: {port}"));
            assert_ne!(edited, ron, "udp-echo's appliance.ron says `port: 7007`");
            edited
        },
    );

    // Unix: the host's sockets.
    let unix_target = scratch_target();
    build(&dir, &unix_target, false);
    let mut child = Command::new(unix_target.join("release/udp-echo"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("udp-echo starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut guard = Guard(Some(child));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    assert_eq!(
        first,
        format!("udp echo on 127.0.0.1:{port} (datagrams up to 1472 bytes)")
    );
    check_echo(&local(port), 2000);
    let said = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    assert!(
        said.starts_with("udp echo: a datagram from 127.0.0.1:")
            && said.ends_with("was truncated: longer than 1472 bytes, not echoed (1 so far)"),
        "the console reports the truncated datagram: {said:?}"
    );
    drop(guard.0.take().map(|mut c| {
        let _ = c.kill();
        c.wait()
    }));

    // The direct stack on Unix, over a tap.
    over_a_tap(port);

    // Xen: a PVH kernel under QEMU, booted by `cargo run` through scripts/morgana-run
    // with the generated `.qemu` file.
    // Into the Unix build's target directory: the Unix binary has done its work, and the
    // dependencies compiled for it are reused (a directory of its own compiled them all
    // again, minutes of a cold CI run).
    let xen_target = scratch_target();
    build(&dir, &xen_target, true);
    // The kernel has smoltcp's UDP socket (the `udp` feature the build checked for) and
    // no IPv6 (nothing asked for it); static-website's kernel has neither
    // (tests/kernel.rs).
    let nm = Command::new("nm")
        .args(["-C", "--defined-only"])
        .arg(xen_target.join("release/udp-echo"))
        .output()
        .expect("nm (binutils) runs");
    let symbols = String::from_utf8_lossy(&nm.stdout).to_ascii_lowercase();
    assert!(
        symbols.contains("smoltcp::socket::udp"),
        "no UDP code in the kernel"
    );
    for absent in ["ipv6", "slaac", "ndisc"] {
        assert!(
            !symbols.contains(absent),
            "the kernel contains {absent} code"
        );
    }
    let qemu_args =
        std::fs::read_to_string(xen_target.join("release/udp-echo.qemu")).expect("udp-echo.qemu");
    assert!(
        qemu_args.contains(&format!("hostfwd=udp:127.0.0.1:{port}-:{port}")),
        "{qemu_args}"
    );
    let run = cargo(&dir, &xen_target, true, &["run", "--release", "--quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo run starts");
    let mut guard = Guard(Some(run));
    // Until the guest is up, QEMU's forward drops what it sends: ask until it answers.
    let start = Instant::now();
    while socat(&local(port), b"ping", Duration::from_millis(500)) != b"ping" {
        let exited = guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
        assert!(
            start.elapsed() < Duration::from_secs(120) && exited.is_none(),
            "the kernel never echoed on UDP port {port} (QEMU exited: {exited:?})"
        );
    }
    check_echo(&local(port), 1473);

    // Ctrl-C: cargo exec'd the runner, which exec'd QEMU.
    let (console, stderr) = guard.interrupt();
    let console = console.replace("\r\n", "\n");
    assert!(
        stderr.contains(&format!(
            "booting udp-echo under QEMU; it will listen on udp://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(
        console.contains(&format!(
            "udp echo on 0.0.0.0:{port} (datagrams up to 1472 bytes)"
        )),
        "{console}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
