//! Boot-time configuration (`boot: [..]` in appliance.ron): static-website reads
//! `--port` from its arguments on Unix, and `--ipv4`, `--ipv4-gateway` and `--port` from
//! the kernel command line. `--help` is pinned (`tests/terminal/boot-help-*.txt`;
//! `UPDATE_GOLDEN=1` rewrites them), a bad value stops the start with the key, the
//! value and why, and the failure status; and ONE kernel image booted twice with two
//! `--ipv4` settings answers on each instance's own address.
//!
//! The two instances share one Ethernet: two taps on a bridge in a network namespace of
//! the test's own (the bridge is 10.0.2.2/24, the instances' gateway), each QEMU with a
//! MAC of its own. Each instance must answer HTTP on its own address, and the
//! namespace's neighbour table must map each address to that instance's MAC: an
//! instance that also took the other's address would answer its ARP too.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use morgana_tests::netns::Netns;
use morgana_tests::qemu::{Qemu, debug_exit_status, spec_args};
use morgana_tests::workspace::free_port;
use morgana_tests::{Running, build_appliance, build_kernel, curl, wait_for_port, workspace_root};

const BOOT: Duration = Duration::from_secs(90);

/// Compares `got` with `tests/terminal/<name>.txt` (rewritten under `UPDATE_GOLDEN=1`).
fn pinned(name: &str, got: &str) {
    let path = workspace_root().join(format!("tests/terminal/{name}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).expect("write the pinned text");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[test]
fn unix_reads_the_port_from_its_arguments() {
    let bin = build_appliance("static-website", &[]);

    // `--help`: the keys read on Unix (the host stack has no `ipv4`), and success.
    let out = Command::new(&bin).arg("--help").output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    pinned("boot-help-unix", &String::from_utf8_lossy(&out.stdout));

    // Bad words: the key, the value and why on stderr, status 1, nothing served.
    for (args, message) in [
        (
            &["--port=65536"][..],
            "morgana: boot: boot argument `--port=65536`: out of range (0 to 65535)\n",
        ),
        (
            &["--port=80x"][..],
            "morgana: boot: boot argument `--port=80x`: not a whole number (decimal digits only)\n",
        ),
        (
            &["--ipv4=10.0.2.16/24"][..],
            "morgana: boot: boot argument `--ipv4`: no such boot-time key (the keys are --port)\n",
        ),
        (
            &["8080"][..],
            "morgana: boot: boot argument `8080`: not a --key=value word (--help lists the keys)\n",
        ),
    ] {
        let out = Command::new(&bin).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), message, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
    }

    // A port of its own at start; a later word wins over an earlier one.
    let port = free_port();
    let mut site = Running::start(&bin, &["--port=1", &format!("--port={port}")]);
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(20),
    );
    let index = curl(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(index.status, 200);
    let want = std::fs::read(workspace_root().join("appliances/static-website/htdocs/index.html"))
        .expect("index.html");
    assert_eq!(index.body, want, "the site's index.html, byte for byte");
    assert!(site.is_running());
}

/// The `.qemu` arguments of `image` with its user network replaced by `netdev`.
fn qemu_args(image: &Path, netdev: &str) -> Vec<String> {
    let spec = std::fs::read_to_string(format!("{}.qemu", image.display())).expect(".qemu file");
    let args = spec_args(&spec);
    assert!(
        args.iter().any(|a| a.starts_with("user,id=n0")),
        "the .qemu file has a user network: {args:?}"
    );
    args.into_iter()
        .map(|a| {
            if a.starts_with("user,id=n0") {
                netdev.to_string()
            } else {
                a
            }
        })
        .collect()
}

/// Boots `image` with the arguments of its `.qemu` file, `netdev` and `cmdline`.
fn boot(image: &Path, netdev: &str, cmdline: &str) -> Qemu {
    let mut args = qemu_args(image, netdev);
    // `-m` is set by Qemu::boot.
    if let Some(i) = args.iter().position(|a| a == "-m") {
        args.drain(i..i + 2);
    }
    args.extend(["-append".to_string(), cmdline.to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Qemu::boot(image, "32M", &args)
}

#[test]
fn one_kernel_image_many_instances_each_with_its_own_address() {
    let image = build_kernel("static-website");
    let none = "user,id=n0";

    // `--help` among platform words: the keys, and a power-off with success before any
    // device is touched.
    let (status, console) = boot(&image, none, "morgana.log=warn --help --port=1").wait_exit(BOOT);
    assert_eq!(status.code(), Some(0), "power-off with success: {console}");
    let help = console
        .split_once("static-website: boot-time configuration")
        .map(|(_, rest)| format!("static-website: boot-time configuration{rest}"))
        .unwrap_or_else(|| panic!("no help on the console:\n{console}"));
    pinned("boot-help-xen", &help);

    // A bad value: the key, the value and why, and the failure status.
    let (status, console) = boot(&image, none, "--ipv4=10.0.2.300/24").wait_exit(BOOT);
    assert!(
        console.contains(
            "morgana: boot: boot argument `--ipv4=10.0.2.300/24`: not an IPv4 address such as 10.0.2.15\n"
        ),
        "console:\n{console}"
    );
    assert_eq!(status.code(), Some(debug_exit_status(1)), "{console}");

    // The same image twice, at the same time: .16 and .17 on one bridge.
    let pid = std::process::id();
    let ns = Netns::new(format!("morgana-boot-{pid}"));
    ns.exec_ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    ns.exec_ok(&["ip", "addr", "add", "10.0.2.2/24", "dev", "br0"]);
    ns.exec_ok(&["ip", "link", "set", "br0", "up"]);
    let instances = [
        (
            "10.0.2.16",
            "52:54:00:00:02:16",
            "--ipv4=10.0.2.16/24 --ipv4-gateway=10.0.2.2",
        ),
        // The later `--ipv4` wins over `dhcp` (no DHCP server on this bridge).
        (
            "10.0.2.17",
            "52:54:00:00:02:17",
            "--ipv4=dhcp --ipv4=10.0.2.17/24",
        ),
    ];
    let mut guests = Vec::new();
    for (i, (_, mac, cmdline)) in instances.iter().enumerate() {
        let tap = format!("mboot{i}");
        ns.exec_ok(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"]);
        ns.exec_ok(&["ip", "link", "set", &tap, "master", "br0"]);
        ns.exec_ok(&["ip", "link", "set", &tap, "up"]);
        let mut args = qemu_args(
            &image,
            &format!("tap,id=n0,ifname={tap},script=no,downscript=no"),
        );
        for a in args.iter_mut() {
            if a.starts_with("virtio-net-pci,") {
                a.push_str(&format!(",mac={mac}"));
            }
        }
        if let Some(i) = args.iter().position(|a| a == "-m") {
            args.drain(i..i + 2);
        }
        args.extend(["-append".to_string(), cmdline.to_string()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let launcher = ns.command(&["qemu-system-x86_64"]);
        guests.push(Qemu::boot_via(launcher, &image, "32M", &args));
    }
    for ((address, _, _), guest) in instances.iter().zip(guests.iter_mut()) {
        let console = guest.wait_for("serving", BOOT);
        assert!(console.contains(address), "console:\n{console}");
        assert!(!console.contains("DHCP"), "no DHCP asked for: {console}");
    }
    let want = std::fs::read(workspace_root().join("appliances/static-website/htdocs/index.html"))
        .expect("index.html");
    for ((address, mac, _), guest) in instances.iter().zip(guests.iter()) {
        // The first ARP and SYN may meet a stack still settling: a few tries.
        let url = format!("http://{address}:8080/");
        let mut tries = 0;
        let body = loop {
            let out = ns.exec(&["curl", "-s", "--max-time", "5", &url]);
            if out.status.success() {
                break out.stdout;
            }
            tries += 1;
            assert!(
                tries < 12,
                "no answer from {url}: {}; console:\n{}",
                String::from_utf8_lossy(&out.stderr),
                guest.serial()
            );
            std::thread::sleep(Duration::from_millis(500));
        };
        assert_eq!(body, want, "{url}: index.html, byte for byte");
        let neigh = ns.exec(&["ip", "neigh", "show", address, "dev", "br0"]);
        let neigh = String::from_utf8_lossy(&neigh.stdout);
        assert!(
            neigh.contains(&format!("lladdr {mac}")),
            "{address} is not the instance with MAC {mac}: `ip neigh` says {neigh:?}"
        );
    }
}
