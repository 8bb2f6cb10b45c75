//! Boot-time configuration (`boot: [..]` in appliance.ron): static-website reads
//! `--port` from its arguments on Unix, and `--ipv4`, `--ipv4-gateway` and `--port` from
//! the kernel command line. `--help` is pinned (`tests/terminal/boot-help-*.txt`;
//! `UPDATE_GOLDEN=1` rewrites them), a bad value stops the start with the key, the
//! value and why, and the failure status; and ONE kernel image booted twice with two
//! `--ipv4` settings answers on each instance's own address.
//!
//! QEMU's user network (slirp) forwards `hostfwd=tcp:127.0.0.1:<port>-<guest>:8080` to
//! the guest address named, so a forward to 10.0.2.16 reaches only an instance that
//! took 10.0.2.16.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use morgana_tests::qemu::{Qemu, debug_exit_status, spec_args};
use morgana_tests::workspace::free_port;
use morgana_tests::{
    Running, build_appliance, build_kernel, curl, raw_exchange, wait_for_200, wait_for_port,
    workspace_root,
};

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

    // The same image twice, at the same time: .16 and .17 on QEMU's user network.
    let (a16, b16, b17) = (free_port(), free_port(), free_port());
    let mut a = boot(
        &image,
        &format!("user,id=n0,hostfwd=tcp:127.0.0.1:{a16}-10.0.2.16:8080"),
        "--ipv4=10.0.2.16/24 --ipv4-gateway=10.0.2.2",
    );
    let mut b = boot(
        &image,
        &format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{b16}-10.0.2.16:8080,hostfwd=tcp:127.0.0.1:{b17}-10.0.2.17:8080"
        ),
        "--ipv4=dhcp --ipv4=10.0.2.17/24",
    );
    let console_a = a.wait_for("serving", BOOT);
    let console_b = b.wait_for("serving", BOOT);
    assert!(console_a.contains("10.0.2.16"), "console:\n{console_a}");
    assert!(console_b.contains("10.0.2.17"), "console:\n{console_b}");
    assert!(
        !console_b.contains("DHCP"),
        "the later --ipv4 wins over `dhcp`: {console_b}"
    );
    wait_for_200(a16, BOOT, || a.serial());
    wait_for_200(b17, BOOT, || b.serial());
    let want = std::fs::read(workspace_root().join("appliances/static-website/htdocs/index.html"))
        .expect("index.html");
    for port in [a16, b17] {
        let index = curl(&format!("http://127.0.0.1:{port}/"), &[]);
        assert_eq!(index.status, 200, "port {port}");
        assert_eq!(index.body, want, "port {port}: index.html, byte for byte");
    }
    // The second instance did not take 10.0.2.16: nothing answers there.
    let got = raw_exchange(
        SocketAddr::from(([127, 0, 0, 1], b16)),
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(
        got.is_empty(),
        "10.0.2.16 in the second instance's network answered: {:?}",
        String::from_utf8_lossy(&got)
    );
}
