//! Boots the `entropy` example kernel under QEMU (TCG): with `-device virtio-rng-pci` and
//! QEMU's default CPU (no RDRAND) the kernel seeds from the device; with `-cpu max` it
//! uses RDRAND; with neither it refuses to start, naming the fix.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(90);

fn kernel() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "-p",
                "morgana-virtio",
                "--features",
                "example-kernels",
            ])
            .args([
                "--example",
                "entropy",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "building the entropy example failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.contains("\"reason\":\"compiler-artifact\"") && l.contains("\"name\":\"entropy\"")
            })
            .find_map(|l| {
                let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = start + l[start..].find('"')?;
                Some(PathBuf::from(&l[start..end]))
            })
            .expect("cargo did not report the entropy executable")
    })
}

/// Boots with `args`; returns QEMU's exit status and the console (serial on stdout).
fn boot(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel", "tcg", "-m", "32M", "-display", "none", "-serial", "stdio",
        ])
        .args(["-no-reboot", "-nodefaults", "-no-user-config"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(args)
        .arg("-kernel")
        .arg(kernel())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("qemu-system-x86_64 (scripts/setup.sh installs it)");
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut console = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut console)
        .unwrap();
    (status, console.replace("\r\n", "\n"))
}

#[test]
fn without_rdrand_the_kernel_seeds_from_virtio_rng() {
    let (status, console) = boot(&["-device", "virtio-rng-pci"]);
    for line in [
        "entropy: seeded from virtio-rng (the CPU has no RDRAND/RDSEED)",
        "entropy: from virtio-rng\n",
        "entropy: two fills of 32 bytes differ\n",
        "virtio-rng: 1024 bytes, ",
    ] {
        assert!(console.contains(line), "want {line:?} in:\n{console}");
    }
    let distinct: usize = console
        .split("virtio-rng: 1024 bytes, ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count");
    // 1024 random bytes hold about 252 of the 256 values; a stuck device far fewer.
    assert!(distinct > 200, "{distinct} distinct values:\n{console}");
    assert_eq!(status, Some(0), "QEMU status (0 = power-off):\n{console}");
}

#[test]
fn with_rdrand_the_cpu_is_enough() {
    let (status, console) = boot(&["-cpu", "max"]);
    assert!(
        console.contains("entropy: from the CPU (RDRAND/RDSEED)\n"),
        "{console}"
    );
    assert_eq!(status, Some(0), "{console}");
}

#[test]
fn without_either_the_kernel_refuses_and_names_the_fix() {
    let (status, console) = boot(&[]);
    assert!(
        console.contains(
            "morgana: entropy: no strong random source (no RDRAND, no virtio-rng): run QEMU with -cpu max or add -device virtio-rng-pci"
        ),
        "{console}"
    );
    assert_ne!(status, Some(0), "{console}");
}
