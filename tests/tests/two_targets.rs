//! Several targets in one build (`target: [Unix, Xen]`, appliances/two-targets): ONE
//! `cargo build --release -p two-targets` links the Unix process `two-targets` and the
//! PVH kernel `two-targets-xen`, each with its own generated wiring. The process serves
//! every file; the kernel, booted under QEMU (TCG) from the `two-targets-xen.qemu` codegen
//! wrote next to it, serves the same bytes; neither binary carries the other platform.

use morgana_tests::qemu::Qemu;
use morgana_tests::workspace::free_port;
use morgana_tests::{
    Running, build_appliance, curl, files_below, wait_for_200, wait_for_port, workspace_root,
};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long a boot may take on a busy machine (TCG).
const BOOT: Duration = Duration::from_secs(120);

fn defined_symbols(binary: &Path) -> String {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(binary)
        .output()
        .expect("nm (binutils) is installed");
    assert!(out.status.success(), "nm {}", binary.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every file below htdocs from `base`, as (path, status, body).
fn fetch_all(base: &str) -> Vec<(String, u16, Vec<u8>)> {
    let htdocs = workspace_root().join("appliances/two-targets/htdocs");
    let files = files_below(&htdocs);
    assert!(files.len() >= 2, "the site has its files");
    files
        .into_iter()
        .map(|(key, path)| {
            let want = std::fs::read(&path).expect("fixture");
            let got = curl(&format!("{base}/{key}"), &[]);
            assert_eq!(got.status, 200, "GET {base}/{key}");
            assert_eq!(
                got.body,
                want,
                "GET {base}/{key}: bytes differ from {}",
                path.display()
            );
            (key, got.status, got.body)
        })
        .collect()
}

#[test]
fn one_build_links_a_unix_process_and_a_kernel_that_serve_the_same_bytes() {
    // One cargo invocation (no MORGANA_TARGET).
    let unix = build_appliance("two-targets", &[]);
    let kernel = unix.with_file_name("two-targets-xen");
    assert!(
        kernel.is_file(),
        "{} is built by the same cargo build",
        kernel.display()
    );

    // Each binary links its own platform only (and the kernel no std: a kernel that
    // links std fails to link with a duplicate `panic_impl`).
    let (u, k) = (defined_symbols(&unix), defined_symbols(&kernel));
    assert!(
        u.contains("morgana_unix") && k.contains("morgana_pvh"),
        "nm sees both"
    );
    for absent in ["morgana_pvh", "morgana_virtio", "morgana_direct", "smoltcp"] {
        assert!(!u.contains(absent), "the Unix binary contains {absent}");
    }
    for absent in ["morgana_unix", "rustix", "std..io", "std..rt"] {
        assert!(!k.contains(absent), "the kernel contains {absent}");
    }

    // The Unix process, on a port of its own (`boot: ["http.port"]`).
    let port = free_port();
    let flag = format!("--port={port}");
    let mut process = Running::start(&unix, &[&flag]);
    wait_for_port(
        SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(30),
    );
    assert!(process.is_running());
    let from_unix = fetch_all(&format!("http://127.0.0.1:{port}"));
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/missing.html"), &[]).status,
        404
    );
    drop(process);

    // The kernel, from the deployment file named after its binary.
    let port = free_port();
    let forward = format!("hostfwd=tcp:127.0.0.1:{port}-:8080");
    let mut qemu = Qemu::boot_file(
        &kernel,
        "qemu",
        |a| a.replace("hostfwd=tcp:127.0.0.1:8080-:8080", &forward),
        &[],
    );
    qemu.wait_for("serving", BOOT);
    wait_for_200(port, BOOT, || qemu.serial());
    let from_kernel = fetch_all(&format!("http://127.0.0.1:{port}"));
    assert_eq!(from_unix, from_kernel, "the same files, byte for byte");
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/missing.html"), &[]).status,
        404
    );
}
