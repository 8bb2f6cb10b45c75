//! `cargo run` of a kernel image under morgana-tender: scripts/morgana-run (cargo's
//! runner) reads the `<name>.tender` file codegen writes next to the image and execs
//! the tender, whose console is the program's output and whose exit status is the
//! guest's (docs/tender.md, "cargo run").
//!
//! - `MORGANA_RUNNER=tender cargo run -p hello` prints the greeting and exits 0; with
//!   `-- morgana.fault=panic` it exits 5 (as under QEMU), with `morgana.fault=null` the
//!   tender's fault report and 100;
//! - without MORGANA_RUNNER (and MORGANA_ACCEL) the tender is chosen on its own for an
//!   appliance without a network, once it is built, and for one with a network when
//!   MORGANA_TAP names a tap (QEMU without it);
//! - where the tender cannot serve: not built (the command that builds it), a network
//!   that needs a tap and none named, something it cannot give (a disk), a bad
//!   MORGANA_RUNNER: each a clear message and a failure, before anything boots.
//! - with a tap named (MORGANA_TAP), a stand-in for the tender shows the arguments it
//!   gets: the file's, `--tap`, the image, the command line; its status is the run's.
//!
//! Needs /dev/kvm: without it the test fails under `CI=true` and skips with the reason
//! otherwise.

use morgana_tests::{build_kernel, kernel_target_dir, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Why this machine cannot run the tender, if it cannot.
fn missing() -> Option<String> {
    std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .err()
        .map(|e| format!("/dev/kvm cannot be opened: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Builds the tender (release) into the kernels' target directory.
fn build_tender() -> PathBuf {
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args(["build", "--release", "--quiet", "-p", "morgana-tender"])
        .env("CARGO_TARGET_DIR", kernel_target_dir())
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build -p morgana-tender failed:\n{}",
        text(&out.stderr)
    );
    kernel_target_dir().join("release").join("morgana-tender")
}

/// `cargo run --release -p hello -- ARGS` for the kernel target, with `env` (and no
/// runner or QEMU choice inherited from the caller's environment).
fn cargo_run_hello(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(workspace_root())
        .args(["run", "--release", "--quiet", "-p", "hello", "--"])
        .args(args)
        .env("CARGO_TARGET_DIR", kernel_target_dir())
        .env("MORGANA_TARGET", "xen");
    for var in [
        "MORGANA_RUNNER",
        "MORGANA_ACCEL",
        "MORGANA_TENDER",
        "MORGANA_TENDER_ARGS",
        "MORGANA_TAP",
    ] {
        c.env_remove(var);
    }
    c.envs(env.iter().copied());
    c.output().expect("cargo run starts")
}

#[test]
fn cargo_run_boots_a_kernel_under_the_tender() {
    if let Some(why) = missing() {
        assert!(!in_ci(), "CI=true: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    build_tender();
    let tender = [("MORGANA_RUNNER", "tender")];

    let out = cargo_run_hello(&[], &tender);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stdout.contains("Hello, world!\n") && stdout.contains("morgana: ready in"),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains("morgana-run: booting hello under morgana-tender\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("QEMU"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");

    // The guest's failures are the run's: a panic is status 5, as under QEMU.
    let out = cargo_run_hello(&["morgana.fault=panic"], &tender);
    let all = text(&out.stdout) + &text(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{all}");
    assert!(all.contains("panic"), "{all}");
    assert!(!all.contains("Hello, world!"), "{all}");
    // A CPU exception is the tender's fault report and its status 100.
    let out = cargo_run_hello(&["morgana.fault=null"], &tender);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(100), "{stderr}");
    assert!(stderr.contains("CPU exception #PF page fault"), "{stderr}");

    // Nobody asks: hello has no network, KVM works and the tender is built, so the
    // tender runs it; MORGANA_RUNNER=qemu (not booted here) or MORGANA_ACCEL keep QEMU.
    let out = cargo_run_hello(&[], &[]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("morgana-run: booting hello under morgana-tender\n"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout).matches("Hello, world!\n").count(), 1);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// The image with its `.qemu` and `.tender` files, copied into a directory of its own
/// (no morgana-tender next to it), the `.tender` file edited by `edit`.
fn lone_copy(image: &Path, tag: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tender-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let copy = dir.join("hello");
    std::fs::copy(image, &copy).expect("copy image");
    std::fs::copy(image.with_extension("qemu"), dir.join("hello.qemu")).expect("copy .qemu");
    let spec = std::fs::read_to_string(image.with_extension("tender")).expect("hello.tender");
    std::fs::write(dir.join("hello.tender"), edit(spec)).expect("write .tender");
    copy
}

/// scripts/morgana-run IMAGE, with `env` and a PATH without morgana-tender.
fn morgana_run(image: &Path, env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(workspace_root().join("scripts/morgana-run"));
    c.arg(image)
        .current_dir(image.parent().expect("dir"))
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env_remove("MORGANA_ACCEL")
        .env_remove("MORGANA_TENDER")
        .env_remove("MORGANA_TAP");
    c.envs(env.iter().copied());
    c.output().expect("morgana-run starts")
}

#[test]
fn where_the_tender_cannot_serve_morgana_run_says_why() {
    if let Some(why) = missing() {
        assert!(!in_ci(), "CI=true: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let image = build_kernel("hello");
    let tender = [("MORGANA_RUNNER", "tender")];

    // Not built: the command that builds it.
    let copy = lone_copy(&image, "unbuilt", |s| s);
    let out = morgana_run(&copy, &tender);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("morgana-tender is not built")
            && stderr.contains("build it: cargo build --release -p morgana-tender"),
        "{stderr}"
    );
    // MORGANA_TENDER naming something that is not a program.
    let out = morgana_run(
        &copy,
        &[tender[0], ("MORGANA_TENDER", "/nonexistent/tender")],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("(MORGANA_TENDER=/nonexistent/tender is not an executable)"),
        "{stderr}"
    );
    std::fs::remove_dir_all(copy.parent().unwrap()).ok();

    // A network on a tap, and no tap named.
    let copy = lone_copy(&image, "tap", |s| {
        s.replace("\n# network none\n", "\n# network tap\n")
    });
    let out = morgana_run(&copy, &tender);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("its network needs a host tap; name one in MORGANA_TAP"),
        "{stderr}"
    );
    std::fs::remove_dir_all(copy.parent().unwrap()).ok();

    // With the tap named, the tender gets it, the file's arguments, the image and the
    // command line, in that order, and its exit status is the run's (a stand-in for the
    // tender that prints its arguments, as MORGANA_TENDER may name any build of it).
    let copy = lone_copy(&image, "tapped", |s| {
        s.replace(
            "\n# network none\n",
            "\n# network tap\n--mac\n02:4d:54:00:00:09\n",
        )
    });
    let stand_in = copy.with_file_name("stand-in-tender");
    std::fs::write(&stand_in, "#!/bin/sh\nprintf '%s\\n' \"$@\"\nexit 7\n").expect("stand-in");
    std::fs::set_permissions(
        &stand_in,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let mut c = Command::new(workspace_root().join("scripts/morgana-run"));
    let out = c
        .arg(&copy)
        .args(["morgana.log=debug", "-x"])
        .env("MORGANA_RUNNER", "tender")
        .env("MORGANA_TENDER", &stand_in)
        .env("MORGANA_TAP", "mtrun0")
        .env_remove("MORGANA_TENDER_ARGS")
        .output()
        .expect("morgana-run starts");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert_eq!(
        text(&out.stdout),
        format!(
            "--memory-mib\n32\n--mac\n02:4d:54:00:00:09\n--tap\nmtrun0\n{}\nmorgana.log=debug\n-x\n",
            copy.display()
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "morgana-run: booting hello under morgana-tender; its network is the tap mtrun0\n"
        ),
        "{stderr}"
    );

    // Nobody asks for a runner: a network on a tap is the tender's once MORGANA_TAP names
    // one, QEMU's (a stand-in QEMU here, MORGANA_QEMU) without it.
    let stand_in_qemu = copy.with_file_name("stand-in-qemu");
    std::fs::write(&stand_in_qemu, "#!/bin/sh\necho stand-in QEMU\nexit 8\n").expect("stand-in");
    std::fs::set_permissions(
        &stand_in_qemu,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let tender_env = [
        ("MORGANA_TENDER", stand_in.to_str().expect("utf-8 path")),
        ("MORGANA_QEMU", stand_in_qemu.to_str().expect("utf-8 path")),
    ];
    let out = morgana_run(
        &copy,
        &[tender_env[0], tender_env[1], ("MORGANA_TAP", "mtrun1")],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        text(&out.stdout).contains("--tap\nmtrun1\n"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains("booting hello under morgana-tender; its network is the tap mtrun1"),
        "{stderr}"
    );
    let out = morgana_run(&copy, &tender_env);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert_eq!(text(&out.stdout), "stand-in QEMU\n", "{stderr}");
    assert!(!stderr.contains("morgana-tender"), "{stderr}");
    std::fs::remove_dir_all(copy.parent().unwrap()).ok();

    // Something the tender cannot give the appliance.
    let copy = lone_copy(&image, "disk", |s| {
        s + "# unsupported a disk (hello.img): no tender path\n"
    });
    let out = morgana_run(&copy, &tender);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "cannot run hello under morgana-tender: it needs a disk (hello.img): no tender path"
        ),
        "{stderr}"
    );
    std::fs::remove_dir_all(copy.parent().unwrap()).ok();

    // A runner nobody knows.
    let out = morgana_run(&image, &[("MORGANA_RUNNER", "firecracker")]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("MORGANA_RUNNER=firecracker: expected tender, qemu or auto"),
        "{stderr}"
    );
}
