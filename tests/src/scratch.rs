//! Scratch copies of an appliance: a one-member workspace under `target/e2e/scratch/`
//! whose Cargo.toml depends on this checkout's crates by path, with an edited
//! appliance.ron. Being below the workspace, it finds `.cargo/config.toml` (cargo's
//! runner, `scripts/morgana-run`) as the real appliance does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::{target_dir, workspace_root};

/// The folder of workspace dependency `name`, from the root Cargo.toml's
/// `[workspace.dependencies]` (`name = { path = "folder" }`).
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

/// Copies `appliances/<name>` (everything but its Cargo.toml, which is rewritten) to
/// `target/e2e/scratch/<tag>`, with `edit` applied to its appliance.ron; returns the copy.
pub fn scratch_appliance(name: &str, tag: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let root = workspace_root();
    let src = root.join("appliances").join(name);
    let dir = target_dir().join("scratch").join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&src, &dir);
    let ron = std::fs::read_to_string(src.join("appliance.ron")).expect("appliance.ron");
    std::fs::write(dir.join("appliance.ron"), edit(ron)).expect("appliance.ron");
    let manifest = std::fs::read_to_string(src.join("Cargo.toml")).expect("Cargo.toml");
    let manifest = manifest
        .replace("version.workspace = true", "version = \"0.1.0\"")
        .replace("edition.workspace = true", "edition = \"2024\"")
        .replace("license.workspace = true", "")
        .lines()
        .map(|l| {
            let path = |dep: &str| {
                let folder = workspace_path(&root, dep)
                    .unwrap_or_else(|| panic!("{dep} is not a path dependency of the workspace"));
                format!("path = \"{}\"", root.join(folder).display())
            };
            if let Some((dep, _)) = l.split_once(".workspace = true") {
                format!("{dep} = {{ {} }}", path(dep))
            } else if let Some((dep, rest)) = l.split_once(" = { workspace = true")
                && !dep.contains(' ')
            {
                // `dep = { workspace = true, features = [..] }`
                format!("{dep} = {{ {}{rest}", path(dep))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    // The workspace's profiles (panic = "abort", the size settings, the build-dependency
    // levels), repeated for a package of its own.
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let profiles = workspace.find("\n[profile").map_or("", |i| &workspace[i..]);
    std::fs::write(
        dir.join("Cargo.toml"),
        format!("{manifest}\n\n[workspace]\n{profiles}"),
    )
    .expect("Cargo.toml");
    // The workspace's lock file: the same versions, and nothing to resolve afresh.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
    dir
}

/// Kills the child when dropped (a failed assertion leaves no process behind).
pub struct Guard(pub Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Guard {
    /// Ctrl-C to the guarded `cargo run` (cargo exec'd the runner, which exec'd QEMU);
    /// waits for it to stop, then returns what it wrote (stdout, stderr). Its output is
    /// read while it runs, so a full pipe never keeps it from stopping; on a loaded
    /// machine QEMU may need a while, so the bound is [`INTERRUPT_BOUND`], after which
    /// it is killed and the test fails with what it wrote.
    pub fn interrupt(mut self) -> (String, String) {
        let mut child = self.0.take().expect("running");
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .expect("kill runs")
                .success()
        );
        let stopped = Instant::now();
        while child.try_wait().expect("wait").is_none() {
            if stopped.elapsed() > INTERRUPT_BOUND {
                let _ = child.kill();
                let _ = child.wait();
                let grace = Duration::from_secs(5);
                panic!(
                    "QEMU still ran {} s after SIGINT (killed)\n--- its output:\n{}\n--- its errors:\n{}",
                    INTERRUPT_BOUND.as_secs(),
                    stdout.recv_timeout(grace).unwrap_or_default(),
                    stderr.recv_timeout(grace).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let bound = Duration::from_secs(10);
        let out = stdout
            .recv_timeout(bound)
            .expect("stdout closed after exit");
        let err = stderr
            .recv_timeout(bound)
            .expect("stderr closed after exit");
        (out, err)
    }
}

/// How long [`Guard::interrupt`] waits for QEMU to stop after SIGINT.
pub const INTERRUPT_BOUND: Duration = Duration::from_secs(60);

/// Reads a pipe to its end on a thread of its own; the text arrives on the channel.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut p) = pipe {
            let mut bytes = Vec::new();
            let _ = p.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        let _ = tx.send(text);
    });
    rx
}

/// `cargo ARGS` in a scratch appliance `dir`, building into `target`, for the xen target
/// or Unix; QEMU overrides of the caller's environment are dropped.
pub fn cargo(dir: &Path, target: &Path, xen: bool, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO"));
    c.current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target)
        .env_remove("MORGANA_QEMU")
        .env_remove("MORGANA_QEMU_ARGS");
    if xen {
        c.env("MORGANA_TARGET", "xen");
    } else {
        c.env_remove("MORGANA_TARGET");
    }
    c
}

/// `cargo build --release` of the scratch appliance `dir`; a failure shows cargo's output.
pub fn build(dir: &Path, target: &Path, xen: bool) {
    let out = cargo(dir, target, xen, &["build", "--release", "--quiet"])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build of {} (xen: {xen}) failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
