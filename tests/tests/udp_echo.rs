//! End to end: the udp-echo appliance (`appliances/udp-echo`: a `UdpSocket` device
//! handed to the job) as a Unix process on the host's sockets and as a PVH kernel under
//! QEMU on Morgana's own stack, each checked with a real client (socat) on a UDP port of
//! its own: small datagrams come back byte for byte, so does one at the Ethernet MTU's
//! payload (1472 bytes, a full frame), and a longer one is not echoed: on Unix it
//! arrives truncated at the appliance's limit and the console says so; in the kernel
//! its IP packet is larger than the link's MTU, QEMU sends it in fragments, and the
//! direct stack (built without IPv4 reassembly) drops them. One QEMU boot serves every
//! kernel check; the generated `.qemu` file's `hostfwd=udp:` rule carries the traffic.
//!
//! Needs socat and QEMU (scripts/setup.sh installs both): without them the test fails
//! when `CI=true` and is skipped, saying so, elsewhere.

use morgana_tests::netns::have;
use morgana_tests::scratch::{Guard, build, cargo, scratch_appliance};
use morgana_tests::{kernel_target_dir, scratch_target};
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

/// Sends `data` as one datagram with socat and returns what came back within `wait`
/// (socat's `-t`: how long it waits for the answer after sending).
fn socat(port: u16, data: &[u8], wait: Duration) -> Vec<u8> {
    let mut child = Command::new("socat")
        .args([
            "-b",
            "65536",
            "-t",
            &format!("{:.1}", wait.as_secs_f64()),
            "-",
            &format!("UDP:127.0.0.1:{port}"),
        ])
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
fn check_echo(port: u16, oversize: usize) {
    let wait = Duration::from_secs(2);
    assert_eq!(socat(port, b"hello, udp\n", wait), b"hello, udp\n");
    let mtu = pattern(1472);
    assert_eq!(socat(port, &mtu, wait), mtu, "a 1472-byte datagram");
    assert!(
        socat(port, &pattern(oversize), wait).is_empty(),
        "a {oversize}-byte datagram is not echoed"
    );
    // The service goes on.
    assert_eq!(socat(port, b"still here", wait), b"still here");
}

#[test]
fn udp_echo_answers_on_unix_and_as_a_kernel_under_qemu() {
    for tool in ["socat", "qemu-system-x86_64"] {
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
    check_echo(port, 2000);
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

    // Xen: a PVH kernel under QEMU, booted by `cargo run` through scripts/morgana-run
    // with the generated `.qemu` file.
    let xen_target = kernel_target_dir().join("udp-echo-target");
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
    while socat(port, b"ping", Duration::from_millis(500)) != b"ping" {
        let exited = guard.0.as_mut().and_then(|c| c.try_wait().ok().flatten());
        assert!(
            start.elapsed() < Duration::from_secs(120) && exited.is_none(),
            "the kernel never echoed on UDP port {port} (QEMU exited: {exited:?})"
        );
    }
    check_echo(port, 1473);

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
