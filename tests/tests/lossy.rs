//! TCP over a bad link, on the kernel target: the static website as a PVH image under
//! QEMU, its NIC joined to a tap through `lossy-relay` (10 % loss, 1 % corruption, 1 %
//! duplication, 2 % reordering in both directions, fixed seed; see
//! `morgana_tests::lossy`), serves a 256 KiB file that must arrive byte-identical. No
//! timing is asserted: `bench/lossy.sh` compares the time with a Linux guest's.

use morgana_tests::lossy::{GUEST_IP, LossyLink, missing};
use morgana_tests::{target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const FILE_BYTES: usize = 256 * 1024;
const SEED: u64 = 20_261_202;

/// A copy of static-website with a static address on the lossy link's subnet and a
/// 256 KiB pseudo-random `lossy.bin`, built for the kernel target. Returns the image
/// and the file's bytes.
fn build_lossy_site(relay: &Path) -> (PathBuf, Vec<u8>) {
    let root = workspace_root();
    let src = root.join("appliances/static-website");
    let dir = target_dir().join("scratch").join("lossy-site");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch");
    copy_dir(&src.join("src"), &dir.join("src"));
    copy_dir(&src.join("htdocs"), &dir.join("htdocs"));
    std::fs::copy(src.join("redirects"), dir.join("redirects")).expect("redirects");
    let file = dir.join("htdocs/lossy.bin");
    let made = Command::new(relay)
        .args(["--make-file", file.to_str().unwrap()])
        .args([FILE_BYTES.to_string(), SEED.to_string()])
        .status()
        .expect("lossy-relay --make-file");
    assert!(made.success());
    let ron = std::fs::read_to_string(src.join("appliance.ron")).expect("appliance.ron");
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
    std::fs::write(dir.join("appliance.ron"), ron).expect("ron");
    std::fs::write(
        dir.join("build.rs"),
        "fn main() {\n    morgana_codegen::build()\n}\n",
    )
    .expect("build.rs");
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).expect("Cargo.toml");
    let manifest = manifest
        .replace("version.workspace = true", "version = \"0.1.0\"")
        .replace("edition.workspace = true", "edition = \"2024\"")
        .replace("license.workspace = true", "")
        .lines()
        .map(|l| match l.split_once(".workspace = true") {
            Some((name, _)) => {
                let folder = workspace_path(&root, name)
                    .unwrap_or_else(|| panic!("{name} is not a path dependency of the workspace"));
                format!("{name} = {{ path = \"{}\" }}", root.join(folder).display())
            }
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The workspace's profiles, verbatim: with the same settings the scratch build
    // reuses what the kernel tests compiled in the same target directory.
    let root_manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
    let profiles = &root_manifest[root_manifest.find("[profile").expect("profiles")..];
    // Its own binary name, so the workspace's static-website image beside it stays.
    let manifest = manifest.replacen(
        "name = \"static-website\"\npath",
        "name = \"static-website-lossy\"\npath",
        1,
    );
    assert!(
        manifest.contains("static-website-lossy"),
        "the [[bin]] section moved"
    );
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{manifest}\n\n[workspace]\n\n{profiles}"),
    )
    .expect("Cargo.toml");
    let target = morgana_tests::kernel_target_dir();
    let out = Command::new(env!("CARGO"))
        .current_dir(&dir)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", &target)
        .env("MORGANA_TARGET", "xen")
        .output()
        .expect("cargo");
    assert!(
        out.status.success(),
        "build of the lossy-link site failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = std::fs::read(&file).expect("lossy.bin");
    (target.join("release/static-website-lossy"), want)
}

/// The folder of workspace dependency `name` (`name = { path = "folder" }`).
fn workspace_path(root: &Path, name: &str) -> Option<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    manifest.lines().find_map(|l| {
        let (key, value) = l.split_once('=')?;
        if key.trim() != name {
            return None;
        }
        let (_, rest) = value.split_once("path = \"")?;
        Some(rest.split('"').next()?.to_string())
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let path = entry.expect("entry").path();
        let dest = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).expect("copy");
        }
    }
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
