//! What every appliance's clean build compiles (docs/benchmarks.md, "Build cost"): read
//! from the workspace's Cargo.lock, so that a `cargo update` that would bring a second
//! `syn` (or zerocopy) into an appliance's build fails here with the reason, not only in
//! `bench/build-cost.sh`'s figures.

use std::collections::BTreeSet;

/// The proc macros and host crates of an appliance's build that parse Rust with syn:
/// one syn between them, compiled once (a second major version is ~6 s of CPU).
const SYN_USERS: &[&str] = &[
    "morgana-codegen",
    "morgana-macros",
    "prettyplease",
    "serde_derive",
    "rkyv_derive",
    "bytecheck_derive",
    "ptr_meta_derive",
    "munge_macro",
];

/// (name, version, dependencies as written in the lock: `name` or `name version`).
fn packages(lock: &str) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for block in lock.split("[[package]]").skip(1) {
        let field = |key: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(" = "))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default()
        };
        let deps = block
            .split_once("dependencies = [")
            .map(|(_, rest)| rest.split(']').next().unwrap_or(""))
            .unwrap_or("")
            .lines()
            .map(|l| l.trim().trim_end_matches(',').trim_matches('"').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        out.push((field("name"), field("version"), deps));
    }
    out
}

fn lock() -> Vec<(String, String, Vec<String>)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    packages(&std::fs::read_to_string(path).expect("the workspace's Cargo.lock"))
}

#[test]
fn an_appliance_build_compiles_one_syn() {
    let lock = lock();
    let mut versions = BTreeSet::new();
    for user in SYN_USERS {
        let (_, version, deps) = lock
            .iter()
            .find(|p| p.0 == *user)
            .unwrap_or_else(|| panic!("{user} is not in Cargo.lock"));
        for d in deps {
            let mut parts = d.split(' ');
            if parts.next() == Some("syn") {
                versions.insert((
                    parts.next().unwrap_or("the only one").to_string(),
                    format!("{user} {version}"),
                ));
            }
        }
    }
    let distinct: BTreeSet<&String> = versions.iter().map(|v| &v.0).collect();
    assert!(
        distinct.len() == 1,
        "an appliance's build would compile {} versions of syn: {versions:?}\n\
         keep serde_derive, rkyv_derive, bytecheck_derive and ptr_meta_derive on versions \
         whose syn is munge_macro's and prettyplease's (`cargo update -p serde --precise ..`)",
        distinct.len()
    );
}

#[test]
fn the_kernel_entropy_generator_brings_no_zerocopy() {
    let lock = lock();
    let virtio = lock
        .iter()
        .find(|p| p.0 == "morgana-virtio")
        .expect("morgana-virtio");
    for d in &virtio.2 {
        assert!(
            !d.starts_with("rand_chacha") && !d.starts_with("ppv-lite86"),
            "morgana-virtio depends on {d}: rand_chacha's ppv-lite86 compiles zerocopy into \
             every appliance (chacha20's `rng` feature is the same generator without it)"
        );
    }
}

/// The `[profile.NAME.package]` table of the workspace's Cargo.toml: `crate.opt-level = N`
/// lines, as (crate, level).
fn package_levels(profile: &str) -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let text = std::fs::read_to_string(path).expect("the workspace's Cargo.toml");
    let header = format!("[profile.{profile}.package]");
    let table = text
        .split_once(&header)
        .unwrap_or_else(|| panic!("no {header} in Cargo.toml"))
        .1;
    let table = table.split("\n[").next().unwrap_or("");
    table
        .lines()
        .filter_map(|l| l.split_once(".opt-level = "))
        .map(|(krate, level)| {
            (
                krate.trim_matches('"').to_string(),
                level.trim().to_string(),
            )
        })
        .collect()
}

#[test]
fn crunch_work_is_optimised_apart_from_the_macro() {
    // The per-byte work (SHA-256, gzip, the secret-content scan) lives in
    // morgana-crunch-work, so that morgana-macros can be compiled at level 0 (2 s of CPU
    // less per clean build) without slowing a big site's rebuild.
    let lock = lock();
    let macros = lock
        .iter()
        .find(|p| p.0 == "morgana-macros")
        .expect("morgana-macros");
    for d in &macros.2 {
        assert!(
            !d.starts_with("sha2") && !d.starts_with("flate2"),
            "morgana-macros depends on {d} itself: its per-byte work belongs in \
             morgana-crunch-work, the crate the profile optimises"
        );
    }
    for profile in ["dev", "release"] {
        let levels = package_levels(profile);
        let level = |krate: &str| {
            levels
                .iter()
                .find(|(k, _)| k == krate)
                .map(|(_, l)| l.as_str())
        };
        assert_eq!(
            level("morgana-crunch-work"),
            Some("3"),
            "[profile.{profile}.package]: crunch!'s per-byte work is optimised"
        );
        for krate in ["morgana-macros", "proc-macro2"] {
            assert!(
                matches!(level(krate), None | Some("0")),
                "[profile.{profile}.package]: {krate} at level {:?}: it does no per-byte \
                 work (about 2 s and 1.4 s of CPU per clean build at level 3)",
                level(krate)
            );
        }
    }
}
