//! `crunch!` errors are compile errors at the literal, naming the path: this builds a
//! tiny crate with Cargo and reads rustc's messages.
//!
//! The crate lives in `<target dir>/kv-crunch-compile-fail/` and has its own target
//! directory there, so the first run compiles the macro's dependencies once more.

use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCE: &str = r#"
pub static MISSING: kv_crunch::Table = kv_crunch::crunch!("no-such-dir");
pub static NOT_A_DIR: kv_crunch::Table = kv_crunch::crunch!("Cargo.toml");
pub static NOT_A_STRING: kv_crunch::Table = kv_crunch::crunch!(42);
"#;

/// The target directory this test binary was built into (`<target>/debug/deps/<exe>`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

#[test]
fn errors_name_the_path_and_the_manifest_dir() {
    let kv_crunch = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = target_dir().join("kv-crunch-compile-fail");
    std::fs::create_dir_all(project.join("src")).unwrap();
    std::fs::write(
        project.join("Cargo.toml"),
        format!(
            "[package]\nname = \"crunch-compile-fail\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
             publish = false\n\n[dependencies]\nkv-crunch = {{ path = {:?} }}\n\n[workspace]\n",
            kv_crunch.to_str().unwrap()
        ),
    )
    .unwrap();
    std::fs::write(project.join("src/lib.rs"), SOURCE).unwrap();
    // Same versions as the workspace, and no resolution against the registry.
    if let Ok(lock) = std::fs::read(kv_crunch.join("../Cargo.lock")) {
        std::fs::write(project.join("Cargo.lock"), lock).unwrap();
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .arg("check")
        .arg("--quiet")
        .arg("--color=never")
        .arg("--target-dir")
        .arg(project.join("target"))
        .current_dir(&project)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET_DIR")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must not compile:\n{stderr}");

    let project = project.to_str().unwrap();
    let missing = format!(
        "error: crunch!: directory {project}/no-such-dir not found \
         (\"no-such-dir\" resolved against CARGO_MANIFEST_DIR {project})"
    );
    assert!(stderr.contains(&missing), "want {missing:?} in:\n{stderr}");
    let not_dir = format!("error: crunch!: {project}/Cargo.toml is not a directory");
    assert!(stderr.contains(&not_dir), "want {not_dir:?} in:\n{stderr}");
    assert!(
        stderr.contains("error: crunch!: expected one string literal"),
        "{stderr}"
    );
    // Each error points at the macro argument.
    for (line, col) in [(2, 59), (3, 61), (4, 64)] {
        let at = format!("src/lib.rs:{line}:{col}");
        assert!(stderr.contains(&at), "want {at} in:\n{stderr}");
    }
    // The errors replace the expansion: no follow-on type errors.
    assert!(!stderr.contains("mismatched types"), "{stderr}");
    assert!(!stderr.contains("E0308"), "{stderr}");
}
