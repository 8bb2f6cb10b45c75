//! End to end on the kernel target: the same appliances, built with
//! `MORGANA_TARGET=xen`, boot as PVH images under QEMU (TCG) and behave as on Unix.

use morgana_tests::qemu::{Qemu, debug_exit_status};
use morgana_tests::{
    build_kernel, build_kernel_for, curl, files_below, wait_for_200, workspace_root,
};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BOOT: Duration = Duration::from_secs(60);

#[test]
fn hello_kernel_greets_and_powers_off() {
    let image = build_kernel("hello");
    for machine in ["pc", "q35"] {
        let (status, console) =
            Qemu::boot(&image, "32M", &["-machine", machine, "-nic", "none"]).wait_exit(BOOT);
        assert!(console.contains("Hello, world!\n"), "{machine}: {console}");
        assert!(
            console.contains("morgana: ready in"),
            "{machine}: {console}"
        );
        assert_eq!(
            status.code(),
            Some(0),
            "{machine}: ACPI power-off: {console}"
        );
    }
}

#[test]
fn kernel_failures_are_reported_and_exit_with_failure() {
    let image = build_kernel("hello");
    // (kernel command line, QEMU exit status, text the console must show)
    let cases = [
        ("morgana.fault=panic", debug_exit_status(2), "panic"),
        ("morgana.fault=null", debug_exit_status(3), "page fault"),
        (
            "morgana.fault=stack-overflow",
            debug_exit_status(3),
            "stack overflow",
        ),
    ];
    for (cmdline, want, text) in cases {
        let (status, console) =
            Qemu::boot(&image, "32M", &["-nic", "none", "-append", cmdline]).wait_exit(BOOT);
        assert_eq!(status.code(), Some(want), "{cmdline}: {console}");
        assert!(
            console.contains(text),
            "{cmdline}: no {text:?} in:\n{console}"
        );
        assert!(
            !console.contains("Hello, world!"),
            "{cmdline}: the fault comes before main: {console}"
        );
    }
}

fn defined_symbols(image: &Path) -> String {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(image)
        .output()
        .expect("nm (binutils) is installed");
    assert!(out.status.success(), "nm failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_kernel_carries_only_what_it_uses() {
    let hello = defined_symbols(&build_kernel("hello"));
    assert!(
        hello.contains("morgana_pvh"),
        "nm sees the kernel's symbols"
    );
    for absent in [
        "smoltcp",
        "morgana_virtio",
        "morgana_direct",
        "morgana_http",
        "morgana_unix",
        "rustix",
        "kv_crunch",
    ] {
        assert!(!hello.contains(absent), "hello's kernel contains {absent}");
    }
    let site = defined_symbols(&build_kernel("static-website"));
    for present in ["smoltcp", "morgana_virtio", "morgana_http"] {
        assert!(
            site.contains(present),
            "static-website's kernel lacks {present}"
        );
    }
    for absent in ["morgana_unix", "rustix"] {
        assert!(
            !site.contains(absent),
            "static-website's kernel contains {absent}"
        );
    }
    // It uses neither UDP nor IPv6: morgana-direct is built without its `udp` and
    // `ipv6` features, so none of smoltcp's UDP socket or IPv6 code is in the image.
    let image = build_kernel("static-website");
    let out = Command::new("nm")
        .args(["-C", "--defined-only"])
        .arg(&image)
        .output()
        .expect("nm (binutils) is installed");
    assert!(out.status.success(), "nm -C failed");
    let lower = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(lower.contains("smoltcp::"), "nm -C demangles");
    for absent in ["smoltcp::socket::udp", "ipv6", "slaac", "ndisc"] {
        assert!(
            !lower.contains(absent),
            "static-website's kernel contains {absent} code"
        );
    }
}

/// Boots the static website with its port forwarded to `host_port` and waits until it
/// answers (slirp accepts connections before the guest is up, so poll with short
/// timeouts). `firmware`: extra arguments (none: SeaBIOS, which assigns the PCI BARs).
fn boot_site(memory: &str, machine: &str, host_port: u16, firmware: &[&str]) -> Qemu {
    boot_site_image(
        &build_kernel("static-website"),
        memory,
        machine,
        host_port,
        firmware,
    )
}

/// [`boot_site`] with the image `image`.
fn boot_site_image(
    image: &Path,
    memory: &str,
    machine: &str,
    host_port: u16,
    firmware: &[&str],
) -> Qemu {
    let netdev = format!("user,id=n0,hostfwd=tcp:127.0.0.1:{host_port}-:8080");
    let mut args = vec![
        "-machine",
        machine,
        "-netdev",
        &netdev,
        "-device",
        "virtio-net-pci,netdev=n0",
    ];
    args.extend_from_slice(firmware);
    let mut qemu = Qemu::boot(image, memory, &args);
    qemu.wait_for("morgana: ready in", BOOT);
    wait_for_200(host_port, BOOT, || qemu.serial());
    qemu
}

#[test]
fn static_website_kernel_serves_every_file() {
    let qemu = boot_site("32M", "pc", 18080, &[]);
    let base = "http://127.0.0.1:18080";
    let htdocs = workspace_root().join("appliances/static-website/htdocs");
    for (key, path) in files_below(&htdocs) {
        let want = std::fs::read(&path).expect("fixture");
        let got = curl(&format!("{base}/{key}"), &[]);
        assert_eq!(got.status, 200, "GET /{key}");
        assert_eq!(got.body, want, "GET /{key}: bytes differ");
    }
    let index = curl(&format!("{base}/"), &[]);
    let etag = index.header("etag").expect("ETag").to_string();
    let again = curl(
        &format!("{base}/"),
        &["-H", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(again.status, 304);
    assert_eq!(curl(&format!("{base}/missing.html"), &[]).status, 404);
    let want = std::fs::read(htdocs.join("docs/appliance-ron.html")).expect("page");
    let gz = curl(
        &format!("{base}/docs/appliance-ron.html"),
        &["--compressed"],
    );
    assert_eq!(gz.header("content-encoding"), Some("gzip"));
    assert_eq!(gz.body, want);
    drop(qemu);
}

/// Also with the generated deployment file's firmware (schemas/catalog.ron): qboot,
/// which leaves the PCI BARs unassigned, so the kernel assigns them.
#[test]
fn static_website_kernel_serves_in_16_mib_on_q35() {
    let _qemu = boot_site(
        "16M",
        "q35",
        18081,
        &["-nodefaults", "-no-user-config", "-bios", "qboot.rom"],
    );
    let want =
        std::fs::read(workspace_root().join("appliances/static-website/htdocs/img/logo.png"))
            .expect("logo");
    let got = curl("http://127.0.0.1:18081/img/logo.png", &[]);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, want);
}

/// The sections a loader loads, summed as bench/run.sh does (`size -A`).
fn loaded_bytes(image: &Path) -> u64 {
    let out = Command::new("size")
        .arg("-A")
        .arg(image)
        .output()
        .expect("size (binutils) is installed");
    assert!(out.status.success(), "size -A failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            [".text", ".rodata", ".data", ".note"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// The kernel targets for one hypervisor (`qemu`, `xen-only`): that hypervisor's drivers
/// only, a smaller image than `xen`'s (which carries every driver), and that hypervisor's
/// deployment files only.
#[test]
fn a_kernel_for_one_hypervisor_carries_its_drivers_only() {
    let any = build_kernel("static-website");
    let qemu = build_kernel_for("static-website", "qemu");
    let xen = build_kernel_for("static-website", "xen-only");
    let (any_syms, qemu_syms, xen_syms) = (
        defined_symbols(&any),
        defined_symbols(&qemu),
        defined_symbols(&xen),
    );
    for both in ["morgana_virtio", "morgana_netfront"] {
        assert!(any_syms.contains(both), "the xen image lacks {both}");
    }
    assert!(
        qemu_syms.contains("morgana_virtio"),
        "qemu image: no virtio-net"
    );
    for absent in ["morgana_netfront", "TenderNet"] {
        assert!(
            !qemu_syms.contains(absent),
            "the qemu image contains {absent}"
        );
    }
    assert!(
        xen_syms.contains("morgana_netfront"),
        "xen-only image: no netfront"
    );
    for absent in ["morgana_virtio", "TenderNet"] {
        assert!(
            !xen_syms.contains(absent),
            "the xen-only image contains {absent}"
        );
    }
    let (a, q, x) = (loaded_bytes(&any), loaded_bytes(&qemu), loaded_bytes(&xen));
    assert!(
        q < a && x < a,
        "loaded bytes: xen {a}, qemu {q}, xen-only {x}"
    );
    let next_to = |image: &Path, file: &str| image.with_file_name(file).exists();
    for file in ["static-website.qemu", "static-website.microvm.qemu"] {
        assert!(next_to(&qemu, file), "qemu: no {file}");
        assert!(!next_to(&xen, file), "xen-only: {file}");
    }
    for file in ["static-website.xl", "static-website.libvirt-xen.xml"] {
        assert!(next_to(&xen, file), "xen-only: no {file}");
        assert!(!next_to(&qemu, file), "qemu: {file}");
    }
    for image in [&qemu, &xen] {
        assert!(
            !next_to(image, "static-website.tender"),
            "{}",
            image.display()
        );
    }
}

/// The QEMU-only image serves under QEMU as the image for every hypervisor does, with
/// the generated deployment file's firmware (qboot).
#[test]
fn static_website_qemu_only_kernel_serves() {
    let image = build_kernel_for("static-website", "qemu");
    let _qemu = boot_site_image(
        &image,
        "32M",
        "pc",
        18082,
        &["-nodefaults", "-no-user-config", "-bios", "qboot.rom"],
    );
    let htdocs = workspace_root().join("appliances/static-website/htdocs");
    for (key, path) in files_below(&htdocs) {
        let got = curl(&format!("http://127.0.0.1:18082/{key}"), &[]);
        assert_eq!(got.status, 200, "GET /{key}");
        assert_eq!(
            got.body,
            std::fs::read(&path).expect("fixture"),
            "GET /{key}"
        );
    }
}

/// A Xen-only image booted under QEMU says what it is built for and stops (failure
/// status 9, `Failure::Boot`), before the appliance starts; the QEMU-only image of the
/// same appliance runs there.
#[test]
fn a_xen_only_kernel_under_qemu_says_so_and_stops() {
    let image = build_kernel_for("hello", "xen-only");
    let (status, console) = Qemu::boot(&image, "32M", &["-nic", "none"]).wait_exit(BOOT);
    assert_eq!(status.code(), Some(debug_exit_status(4)), "{console}");
    assert!(
        console.contains("this kernel is built for Xen only (target xen-only")
            && console.contains("this machine is not Xen")
            && console.contains("MORGANA_TARGET=qemu"),
        "{console}"
    );
    assert!(!console.contains("Hello, world!"), "{console}");

    let image = build_kernel_for("hello", "qemu");
    let (status, console) = Qemu::boot(&image, "32M", &["-nic", "none"]).wait_exit(BOOT);
    assert!(console.contains("Hello, world!\n"), "{console}");
    assert_eq!(status.code(), Some(0), "{console}");
}

/// `cargo run` (scripts/morgana-run) of a Xen-only image: no `.qemu` next to it, but its
/// `.xl`, so the runner says where it runs instead of executing the kernel on the host.
#[test]
fn morgana_run_sends_a_xen_only_kernel_to_xl() {
    let image = build_kernel_for("hello", "xen-only");
    let out = Command::new(workspace_root().join("scripts/morgana-run"))
        .arg(&image)
        .output()
        .expect("scripts/morgana-run runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("a kernel for Xen only (target xen-only)")
            && stderr.contains(&format!("xl create {}.xl", image.display())),
        "{stderr}"
    );
}
