//! Reconfiguring is recompiling: a copy of `hello` with another greeting in its
//! appliance.ron prints that greeting after `cargo build`, and a broken appliance.ron
//! stops `cargo build` with the file, line and column of the mistake.

use morgana_tests::{scratch_target, target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Copies appliances/hello into a scratch crate of its own (a one-member workspace that
/// depends on Morgana's crates by path) with `ron` as its appliance.ron.
fn scratch_hello(tag: &str, ron: &str) -> PathBuf {
    let root = workspace_root();
    let dir = target_dir().join("scratch").join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("src")).expect("scratch dir");
    std::fs::copy(
        root.join("appliances/hello/src/main.rs"),
        dir.join("src/main.rs"),
    )
    .expect("copy");
    std::fs::write(
        dir.join("build.rs"),
        "fn main() { morgana_codegen::build() }\n",
    )
    .expect("build.rs");
    std::fs::write(dir.join("appliance.ron"), ron).expect("appliance.ron");
    let path = |p: &str| root.join(p).display().to_string();
    let manifest = format!(
        r#"[package]
name = "hello"
version = "0.1.0"
edition = "2024"
publish = false

[[bin]]
name = "hello"
path = "src/main.rs"
test = false

[dependencies]
morgana-signatures = {{ path = "{sig}" }}
morgana-unix = {{ path = "{unix}" }}

[build-dependencies]
morgana-codegen = {{ path = "{codegen}" }}

[workspace]

[profile.dev]
panic = "abort"

[profile.release]
panic = "abort"
opt-level = "s"
lto = "fat"
codegen-units = 1
"#,
        sig = path("platform/signatures"),
        unix = path("platform/unix"),
        codegen = path("codegen"),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("Cargo.toml");
    dir
}

fn build(dir: &Path) -> Output {
    Command::new(env!("CARGO"))
        .current_dir(dir)
        .args(["build", "--release", "--quiet"])
        .env("CARGO_TARGET_DIR", scratch_target())
        .env_remove("MORGANA_TARGET")
        .output()
        .expect("cargo runs")
}

fn hello_ron(greeting: &str, extra_device: &str) -> String {
    let original = std::fs::read_to_string(workspace_root().join("appliances/hello/appliance.ron"))
        .expect("ron");
    original
        .replace(
            "\"greeting\": \"Hello\"",
            &format!("\"greeting\": \"{greeting}\""),
        )
        .replace("devices: {}", &format!("devices: {{{extra_device}}}"))
}

#[test]
fn editing_appliance_ron_changes_the_binary_and_errors_point_at_the_mistake() {
    let ron = hello_ron("Bonjour", "");
    assert!(ron.contains("Bonjour"), "the fixture edit applied");
    let dir = scratch_hello("reconfigure", &ron);
    let out = build(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(scratch_target().join("release/hello"))
        .output()
        .expect("runs");
    assert_eq!(String::from_utf8_lossy(&run.stdout), "Bonjour, world!\n");

    // Now break it: an unknown component. The build must stop at the build script with
    // the exact location.
    let broken = hello_ron("Bonjour", "\n        \"net\": Netwrok(stack: Host),\n    ");
    std::fs::write(dir.join("appliance.ron"), &broken).expect("write");
    let line = broken
        .lines()
        .position(|l| l.contains("Netwrok"))
        .expect("the broken line")
        + 1;
    let col = broken
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("Netwrok")
        .unwrap()
        + 1;
    let out = build(&dir);
    assert!(
        !out.status.success(),
        "a broken appliance.ron must fail the build"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("appliance.ron:{line}:{col}")),
        "location appliance.ron:{line}:{col} in:\n{stderr}"
    );
    assert!(stderr.contains("Netwrok"), "{stderr}");
    assert!(stderr.contains("did you mean `Network`"), "{stderr}");
    assert!(
        !stderr.contains("error[E"),
        "rustc never saw generated code:\n{stderr}"
    );
}
