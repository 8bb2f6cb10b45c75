//! `crunch!` errors are compile errors at the literal, naming the path: this builds a
//! tiny crate with Cargo and reads rustc's messages.
//!
//! The crate lives in `<target dir>/kv-crunch-compile-fail/`; it and the secrets test's
//! crate build in one target directory of their own, [`check_target`], so the first run
//! compiles the macro's dependencies once more (not twice).

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

/// The target directory of both tests' crates: not the outer cargo's (another profile,
/// and another feature set for the macro's dependencies), but one for the two, so their
/// dependencies (syn, the macro) compile once. Cargo's lock serialises the two checks.
fn check_target() -> PathBuf {
    target_dir().join("kv-crunch-check")
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
        .arg(check_target())
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

/// The secret-looking corpus: one crunched directory per kind of secret, each refused
/// with its file and reason; an allowed one compiles. The files are written here at test
/// time (key armour assembled from pieces), so the repository holds nothing that looks
/// secret.
#[test]
fn secret_looking_files_are_refused_and_an_allowed_one_accepted() {
    let kv_crunch = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = target_dir().join("kv-crunch-secrets");
    let _ = std::fs::remove_dir_all(project.join("corpus"));
    let begin = "-----BEGIN";
    let corpus: &[(&str, &str, String, &str)] = &[
        (
            "pem",
            "notes.txt",
            format!("{begin} PRIVATE KEY-----\nMIIE\n"),
            "contains a PEM private key",
        ),
        (
            "rsa",
            "old.pem",
            format!("{begin} RSA PRIVATE KEY-----\nMIIE\n"),
            "contains a PEM private key",
        ),
        (
            "openssh",
            "backup.txt",
            format!("{begin} OPENSSH PRIVATE KEY-----\nb3Bl\n"),
            "contains a PEM private key",
        ),
        (
            "ssh",
            "id_rsa",
            String::from("x"),
            "an SSH private key (named id_*)",
        ),
        (
            "ed25519",
            "id_ed25519",
            String::from("x"),
            "an SSH private key (named id_*)",
        ),
        (
            "env",
            ".env",
            String::from("DB_PASSWORD=x\n"),
            "an environment file (.env)",
        ),
        (
            "envlocal",
            ".env.local",
            String::from("X=1\n"),
            "an environment file (.env)",
        ),
        (
            "key",
            "server.key",
            String::from("x"),
            "a private key file (*.key)",
        ),
        ("p12", "bundle.p12", String::from("x"), "a PKCS#12 bundle"),
        (
            "htpasswd",
            ".htpasswd",
            String::from("u:$apr1$x\n"),
            "a password file",
        ),
        (
            "awsid",
            "config.js",
            format!("const id = '{}{}';\n", "AKIA", "IOSFODNN7EXAMPLE"),
            "contains an AWS access key ID",
        ),
        (
            "awssecret",
            "deploy.sh",
            String::from("export AWS_SECRET_ACCESS_KEY=x\n"),
            "contains an AWS secret access key",
        ),
        (
            "git",
            ".git/HEAD",
            String::from("ref: refs/heads/main\n"),
            "Git metadata",
        ),
    ];
    let mut source = String::new();
    for (dir, file, contents, _) in corpus {
        let path = project.join("corpus").join(dir).join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        std::fs::write(project.join("corpus").join(dir).join("index.html"), "<h1>").unwrap();
        source.push_str(&format!(
            "pub static S_{}: kv_crunch::Table = kv_crunch::crunch!(\"corpus/{dir}\");\n",
            dir.to_uppercase()
        ));
    }
    // The allowed one: a demo key meant to be public, listed in .crunch-allow.
    let allowed = project.join("corpus/allowed");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::write(allowed.join("demo.key"), "a key published on purpose").unwrap();
    std::fs::write(
        allowed.join(".crunch-allow"),
        "# test key, public on purpose\ndemo.key\n",
    )
    .unwrap();

    let check = |source: &str| {
        std::fs::create_dir_all(project.join("src")).unwrap();
        std::fs::write(
            project.join("Cargo.toml"),
            format!(
                "[package]\nname = \"crunch-secrets\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
                 publish = false\n\n[dependencies]\nkv-crunch = {{ path = {:?} }}\n\n[workspace]\n",
                kv_crunch.to_str().unwrap()
            ),
        )
        .unwrap();
        std::fs::write(project.join("src/lib.rs"), source).unwrap();
        if let Ok(lock) = std::fs::read(kv_crunch.join("../Cargo.lock")) {
            std::fs::write(project.join("Cargo.lock"), lock).unwrap();
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(cargo)
            .args(["check", "--quiet", "--color=never", "--target-dir"])
            .arg(check_target())
            .current_dir(&project)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };

    let (ok, stderr) = check(&source);
    assert!(!ok, "a secret-looking corpus compiled:\n{stderr}");
    for (dir, file, _, why) in corpus {
        let shown = if *dir == "git" { ".git" } else { file };
        let line = format!("  corpus/{dir}/{shown}: {why}");
        assert!(stderr.contains(&line), "want {line:?} in:\n{stderr}");
        assert!(
            stderr.contains(&format!(
                "help: move keys and credentials out of corpus/{dir}"
            )),
            "no fix for corpus/{dir} in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("corpus/allowed"), "{stderr}");

    let (ok, stderr) =
        check("pub static ALLOWED: kv_crunch::Table = kv_crunch::crunch!(\"corpus/allowed\");\n");
    assert!(ok, "the allowed corpus was refused:\n{stderr}");
}
