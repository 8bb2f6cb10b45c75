//! Builds `src/bin/link-check.rs` (freestanding: no std, no libc, `morgana_unix::entry!`)
//! with a zone archive compiled in, runs it, and checks its answer: everything the DNS
//! server links must be no_std (a std crate in the graph fails the link with a duplicate
//! `panic_impl`), and answering must work in a freestanding image. Prints the image's size.

use std::path::Path;
use std::process::Command;

#[test]
fn the_server_links_freestanding_and_answers() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    // The archive, as the appliance build will make it.
    let texts: Vec<(String, String)> = [
        "tests/zones/example.test.zone",
        "tests/zones/second.test.zone",
    ]
    .iter()
    .map(|p| {
        (
            p.to_string(),
            std::fs::read_to_string(base.join(p)).unwrap(),
        )
    })
    .collect();
    let files: Vec<_> = texts
        .iter()
        .map(|(p, t)| morgana_dns_zone::ZoneFile {
            path: p,
            text: t,
            origin: None,
        })
        .collect();
    let archive = morgana_dns_zone::compile(&files)
        .expect("zones compile")
        .archive;
    let zones_path = target_dir.join("dns-link-check.zones.rkyv");
    if std::fs::read(&zones_path).ok().as_deref() != Some(&archive[..]) {
        std::fs::write(&zones_path, &archive).unwrap();
    }
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(base)
        .args([
            "rustc",
            "-p",
            "morgana-dns",
            "--bin",
            "link-check",
            "--features",
            "freestanding",
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .env("MORGANA_DNS_LINK_CHECK_ZONES", &zones_path);
    if release {
        cmd.arg("--release");
    }
    cmd.args(["--", "-D", "warnings"]);
    assert!(
        cmd.status().expect("cargo").success(),
        "building link-check failed"
    );
    let bin = profile_dir.join("link-check");
    let out = Command::new(&bin).output().expect("run link-check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "link-check failed: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        "answered 189 bytes: rcode 0 answer 3 authority 2 additional 4",
        "the freestanding answer"
    );
    let size = std::fs::metadata(&bin).unwrap().len();
    println!(
        "link-check: {} ({size} bytes, archive {} bytes)",
        bin.display(),
        archive.len()
    );
    // No libc, no std: nothing dynamic, no interpreter.
    let file = Command::new("sh")
        .arg("-c")
        .arg(format!("od -An -c -N4 {}", bin.display()))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&file.stdout).contains("E   L   F"));
}
