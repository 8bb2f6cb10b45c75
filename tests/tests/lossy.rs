//! TCP over a bad link, on the kernel target: the static website as a PVH image under
//! QEMU, its NIC joined to a tap through `lossy-relay` (10 % loss, 1 % corruption, 1 %
//! duplication, 2 % reordering in both directions, fixed seed; see
//! `morgana_tests::lossy`), serves a 256 KiB file that must arrive byte-identical. No
//! timing is asserted: `bench/lossy.sh` compares the time with a Linux guest's.

use morgana_tests::lossy::{GUEST_IP, LossyLink, missing};
use morgana_tests::scratch::{build, scratch_appliance};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FILE_BYTES: usize = 256 * 1024;
const SEED: u64 = 20_261_202;

/// A copy of static-website with a static address on the lossy link's subnet and a
/// 256 KiB pseudo-random `lossy.bin`, built for the kernel target. Returns the image
/// and the file's bytes.
fn build_lossy_site(relay: &Path) -> (PathBuf, Vec<u8>) {
    let dir = scratch_appliance("static-website", "lossy-site", |ron| {
        let mut replaced = false;
        let ron: String = ron
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("\"net\":") {
                    replaced = true;
                    format!(
                        "        \"net\": Network(ipv4: Static(\"{GUEST_IP}/24\"), gateway: Some(\"{}\")),",
                        morgana_tests::lossy::HOST_IP
                    )
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        assert!(replaced, "the site declares a \"net\" device");
        ron
    });
    let file = dir.join("htdocs/lossy.bin");
    let made = Command::new(relay)
        .args(["--make-file", file.to_str().unwrap()])
        .args([FILE_BYTES.to_string(), SEED.to_string()])
        .status()
        .expect("lossy-relay --make-file");
    assert!(made.success());
    // Its own binary name, so the workspace's static-website image beside it stays.
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
    let manifest = manifest.replacen(
        "name = \"static-website\"\npath",
        "name = \"static-website-lossy\"\npath",
        1,
    );
    assert!(
        manifest.contains("static-website-lossy"),
        "the [[bin]] section moved"
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("Cargo.toml");
    let target = morgana_tests::kernel_target_dir();
    build(&dir, &target, true);
    let want = std::fs::read(&file).expect("lossy.bin");
    (target.join("release/static-website-lossy"), want)
}

#[test]
fn a_file_crosses_a_lossy_link_intact() {
    if let Some(why) = missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let relay = Path::new(env!("CARGO_BIN_EXE_lossy-relay"));
    let (image, want) = build_lossy_site(relay);
    let mut link = LossyLink::new(relay, SEED);
    let serial = std::env::temp_dir().join(format!("morgana-lossy-{}.serial", std::process::id()));
    let mut qemu: Vec<String> = [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-m",
        "32M",
        "-display",
        "none",
        "-no-reboot",
        "-nodefaults",
        "-no-user-config",
        "-bios",
        "qboot.rom",
        "-serial",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    qemu.push(format!("file:{}", serial.display()));
    qemu.extend(LossyLink::qemu_net_args());
    qemu.extend(["-kernel".to_string(), image.display().to_string()]);
    link.spawn(&qemu);

    // Up: the page answers through the lossy link (short tries: a lost SYN is retried).
    let url = format!("http://{GUEST_IP}:8080");
    let start = Instant::now();
    loop {
        let out = link
            .command(&[
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "2",
            ])
            .arg(format!("{url}/robots.txt"))
            .output()
            .expect("curl");
        if out.stdout == b"200" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the guest never answered; console:\n{}",
            std::fs::read_to_string(&serial).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let got = std::env::temp_dir().join(format!("morgana-lossy-{}.bin", std::process::id()));
    let out = link
        .command(&["curl", "-sS", "-m", "300", "-o", got.to_str().unwrap()])
        .arg(format!("{url}/lossy.bin"))
        .output()
        .expect("curl");
    // The relay reports every two seconds: let it report the end of the download.
    std::thread::sleep(Duration::from_millis(2500));
    let counters = link.relay_counters();
    let console = std::fs::read_to_string(&serial).unwrap_or_default();
    drop(link);
    let _ = std::fs::remove_file(&serial);
    assert!(
        out.status.success(),
        "the download failed: {}\nrelay:\n{counters}\nconsole:\n{console}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = std::fs::read(&got).expect("downloaded file");
    let _ = std::fs::remove_file(&got);
    assert_eq!(body.len(), want.len(), "length; relay:\n{counters}");
    assert!(
        body == want,
        "the file arrived corrupted; relay:\n{counters}"
    );
    // The link really was bad.
    assert!(
        counters.contains(" dropped") && !counters.contains(", 0 dropped"),
        "the relay dropped nothing:\n{counters}"
    );
    eprintln!("lossy link, 256 KiB intact; relay:\n{counters}");
}
