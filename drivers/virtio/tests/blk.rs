//! Boots the `disk` example kernel under QEMU (TCG) with two real virtio-blk devices on
//! disk image files, twice on the same images: raw sectors written, flushed and read
//! back with many requests in flight, the key-value store formatted, filled and synced;
//! then, after a fresh boot, the store mounted and every key checked, and the second
//! disk attached read-only refusing writes and flushes. The images are checked from the
//! host as well. A third boot without disks checks the error that says what to add.
//!
//! The example is built with the release profile into the same target directory.
//! QEMU must be installed (`scripts/setup.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

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
                "--example",
                "disk",
                "--message-format=json-render-diagnostics",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .stderr(Stdio::inherit())
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "building the disk example failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.contains("\"reason\":\"compiler-artifact\"") && l.contains("\"name\":\"disk\"")
            })
            .find_map(|l| {
                let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
                let end = start + l[start..].find('"')?;
                Some(PathBuf::from(&l[start..end]))
            })
            .expect("cargo did not report the disk executable")
    })
}

/// Boots with `drives` (QEMU `-drive` values, each attached as virtio-blk-pci) and
/// returns the exit status (0: powered off) and the console.
fn boot(drives: &[String], append: &str) -> (Option<i32>, String) {
    let mut c = Command::new("qemu-system-x86_64");
    c.args(["-accel", "tcg", "-display", "none", "-serial", "stdio"])
        .args(["-no-reboot", "-m", "128M"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    for (i, d) in drives.iter().enumerate() {
        c.args(["-drive", &format!("{d},if=none,id=d{i}")])
            .args(["-device", &format!("virtio-blk-pci,drive=d{i}")]);
    }
    c.arg("-kernel").arg(kernel()).args(["-append", append]);
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu-system-x86_64");
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for QEMU") {
            break st.code();
        }
        if started.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("QEMU output");
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "")
        + &String::from_utf8_lossy(&out.stderr);
    (status, console)
}

fn expect(console: &str, lines: &[&str]) {
    for l in lines {
        assert!(
            console.contains(l),
            "expected {l:?} on the console:\n{console}"
        );
    }
}

fn pattern(i: usize) -> u8 {
    (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8
}

#[test]
fn raw_sectors_and_the_store_survive_a_reboot_and_read_only_disks_refuse_writes() {
    let dir = std::env::temp_dir().join(format!("morgana-virtio-blk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = dir.join("store.img");
    let raw = dir.join("raw.img");
    std::fs::File::create(&store)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let mut first = b"MORGANA-DISK-TEST".to_vec();
    first.resize(4 << 20, 0);
    std::fs::write(&raw, &first).unwrap();
    let drive = |p: &Path, extra: &str| format!("file={},format=raw{extra}", p.display());

    let (status, console) = boot(&[drive(&store, ""), drive(&raw, "")], "mode=first");
    expect(
        &console,
        &[
            "virtio-blk 00:04.0: 64 MiB in 512-byte sectors, write cache, 8 slots of 32 KiB, MSI-X",
            "disk1: wrote, flushed and read back 262144 bytes:",
            "at most 8 in flight, 1 flushes",
            "store: 300 keys (1966500 bytes) put and synced",
            "disk: all checks passed",
        ],
    );
    assert_eq!(status, Some(0), "QEMU status (0 = power-off):\n{console}");
    // On the host: the pattern is in the image file, after the untouched signature.
    let bytes = std::fs::read(&raw).unwrap();
    assert!(bytes.starts_with(b"MORGANA-DISK-TEST"));
    assert!(
        bytes[4096..4096 + 256 * 1024]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == pattern(i)),
        "the pattern did not reach the image file"
    );
    assert!(bytes[4096 + 256 * 1024..].iter().all(|&b| b == 0));
    let head = std::fs::read(&store).unwrap();
    assert_eq!(
        &head[..8],
        b"MORGANKV",
        "the store's superblock is on the disk"
    );

    let (status, console) = boot(
        &[drive(&store, ""), drive(&raw, ",readonly=on")],
        "mode=second",
    );
    expect(
        &console,
        &[
            "4 MiB in 512-byte sectors, read-only",
            "store: mounted: 300 keys",
            "store: mounted after reboot, all 300 keys intact",
            "disk1: read-only true, pattern intact",
            "disk1: write refused: virtio-blk: the device is read-only",
            "disk1: flush refused: virtio-blk: the device is read-only",
            "disk: all checks passed",
        ],
    );
    assert_eq!(status, Some(0), "QEMU status (0 = power-off):\n{console}");
    assert_eq!(
        std::fs::read(&raw).unwrap(),
        bytes,
        "the read-only image changed"
    );

    // No disk at all: the error says what to add, and the kernel fails.
    let (status, console) = boot(&[], "mode=first");
    expect(
        &console,
        &[
            "morgana: disk0: no virtio-blk device found on the PCI bus (add -drive file=IMG,format=raw,if=none,id=d0 -device virtio-blk-pci,drive=d0)",
        ],
    );
    assert_ne!(status, Some(0), "{console}");
    let _ = std::fs::remove_dir_all(&dir);
}
