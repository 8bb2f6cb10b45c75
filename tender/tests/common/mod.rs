//! What the tender's end-to-end tests share: building the test guest, running the
//! tender with a time limit, and deciding whether this machine can run them.
#![allow(dead_code)] // each test file uses its own part

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one tender run may take before the test kills it.
pub const RUN_LIMIT: Duration = Duration::from_secs(60);

/// The tender binary under test.
pub fn tender() -> &'static str {
    env!("CARGO_BIN_EXE_morgana-tender")
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `Some(reason)` when the test cannot run here. Under CI (`CI=true`) a missing
/// requirement is a failure, not a skip.
pub fn unavailable(reason: Option<String>) -> bool {
    match reason {
        None => false,
        Some(why) if in_ci() => panic!("CI=true and this machine cannot run the test: {why}"),
        Some(why) => {
            eprintln!("skipped: {why}");
            true
        }
    }
}

/// Why KVM cannot be used here, if it cannot.
pub fn kvm_missing() -> Option<String> {
    match std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm cannot be opened: {e}")),
    }
}

/// Builds the test guest once (release profile, warnings denied) and returns its path.
pub fn guest() -> &'static Path {
    static GUEST: OnceLock<PathBuf> = OnceLock::new();
    GUEST.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        // target/<profile>/deps/<test> -> target
        let target_dir = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .expect("target dir");
        let status = Command::new(env!("CARGO"))
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .args(["rustc", "--release", "-p", "morgana-tender-test-guest"])
            .args(["--bin", "tender-test-guest", "--features", "kernel"])
            .env("CARGO_TARGET_DIR", target_dir)
            // The workspace's clippy run does not see the guest (it needs the feature).
            .args(["--", "-D", "warnings"])
            .status()
            .expect("running cargo");
        assert!(status.success(), "building the test guest failed");
        let bin = target_dir.join("release").join("tender-test-guest");
        assert!(bin.exists(), "{} was not built", bin.display());
        bin
    })
}

/// One finished tender run.
#[derive(Debug)]
pub struct Run {
    /// Exit status (`None`: killed after [`RUN_LIMIT`]).
    pub status: Option<i32>,
    /// The guest's console.
    pub stdout: String,
    /// The tender's reports.
    pub stderr: String,
    /// Start to exit.
    pub elapsed: Duration,
}

impl Run {
    /// Panics unless stderr contains `what`.
    pub fn report_has(&self, what: &str) -> &Run {
        assert!(
            self.stderr.contains(what),
            "expected {what:?} in the tender's report:\n{}\n(console:\n{})",
            self.stderr,
            self.stdout
        );
        self
    }

    /// Panics unless stdout contains `what`.
    pub fn console_has(&self, what: &str) -> &Run {
        assert!(
            self.stdout.contains(what),
            "expected {what:?} on the console:\n{}\n(report:\n{})",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Panics unless the tender exited with `status`.
    pub fn status_is(&self, status: i32) -> &Run {
        assert_eq!(
            self.status,
            Some(status),
            "tender exit status\nconsole:\n{}\nreport:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Waits for `child`, killing it after [`RUN_LIMIT`].
/// (A stream the caller took already reads as empty.)
pub fn finish(mut child: Child, start: Instant) -> Run {
    let out = child.stdout.take();
    let err = child.stderr.take();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut out) = out {
            let _ = out.read_to_string(&mut s);
        }
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut err) = err {
            let _ = err.read_to_string(&mut s);
        }
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st.code();
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Run {
        status,
        stdout: reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
        elapsed: start.elapsed(),
    }
}

/// Runs `command` (the tender, or `ip netns exec ... tender`) to its end.
pub fn run(mut command: Command) -> Run {
    let start = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the tender");
    finish(child, start)
}

/// Runs the tender with `tender_args`, then the test guest with `guest_args`.
pub fn run_guest(tender_args: &[&str], guest_args: &[&str]) -> Run {
    let mut c = Command::new(tender());
    c.args(tender_args).arg(guest()).args(guest_args);
    run(c)
}
