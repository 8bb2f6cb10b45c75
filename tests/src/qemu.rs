//! Booting kernel images under QEMU (TCG) for the end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A booted QEMU, killed when dropped. The guest's serial console goes to a file.
pub struct Qemu {
    child: Child,
    serial: PathBuf,
}

/// The arguments every test boot uses: TCG, no display, serial to a file, no reboot on
/// triple fault, and the isa-debug-exit device through which the kernel reports failure.
fn base_args(memory: &str, serial: &Path) -> Vec<String> {
    [
        "-accel",
        "tcg",
        "-m",
        memory,
        "-display",
        "none",
        "-monitor",
        "none",
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
        "-serial",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("file:{}", serial.display())])
    .collect()
}

/// A fresh file for a guest's serial console.
fn serial_path() -> PathBuf {
    // A counter, not a clock: two guests booted by one thread in a row must never share
    // a console file (the second's `remove_file` would take the first's name).
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let serial = std::env::temp_dir().join(format!(
        "morgana-serial-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_file(&serial);
    serial
}

impl Qemu {
    /// Boots `image` with `memory` (e.g. "32M") and `extra` arguments (machine type, NIC).
    pub fn boot(image: &Path, memory: &str, extra: &[&str]) -> Qemu {
        Qemu::boot_via(Command::new("qemu-system-x86_64"), image, memory, extra)
    }

    /// As [`Qemu::boot`], with QEMU started by `launcher`: e.g. a test's network
    /// namespace's `ip netns exec NAME qemu-system-x86_64` (which execs QEMU, so the
    /// child killed on drop is QEMU itself).
    pub fn boot_via(mut launcher: Command, image: &Path, memory: &str, extra: &[&str]) -> Qemu {
        let serial = serial_path();
        let child = launcher
            .args(base_args(memory, &serial))
            .args(extra)
            .arg("-kernel")
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 is installed (scripts/setup.sh installs it)");
        Qemu { child, serial }
    }

    /// Boots `image` with the arguments of a deployment file codegen wrote next to it
    /// (`<image>.<suffix>`, e.g. `qemu`, `microvm.qemu`: one argument per line, `#`
    /// lines comments), as scripts/morgana-run does with MORGANA_ACCEL=tcg: the file's
    /// `-accel` choices become TCG alone and its `-serial stdio` a file this reads.
    /// `edit` may change each argument (a test's own host port); `extra` follows them.
    pub fn boot_file(
        image: &Path,
        suffix: &str,
        edit: impl Fn(&str) -> String,
        extra: &[&str],
    ) -> Qemu {
        let path = PathBuf::from(format!("{}.{suffix}", image.display()));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (codegen writes it)", path.display()));
        let serial = serial_path();
        let mut args: Vec<String> = vec![
            "-accel".into(),
            "tcg".into(),
            "-monitor".into(),
            "none".into(),
        ];
        let mut lines = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
        while let Some(arg) = lines.next() {
            match arg {
                "-accel" => {
                    lines.next();
                }
                "-serial" => {
                    assert_eq!(lines.next(), Some("stdio"), "{}", path.display());
                    args.extend(["-serial".to_string(), format!("file:{}", serial.display())]);
                }
                _ => args.push(edit(arg)),
            }
        }
        assert!(
            args.iter().any(|a| a.starts_with("file:")),
            "{} sends the console to stdio",
            path.display()
        );
        let child = Command::new("qemu-system-x86_64")
            .args(&args)
            .args(extra)
            .arg("-kernel")
            .arg(image)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 is installed (scripts/setup.sh installs it)");
        Qemu { child, serial }
    }

    /// What the guest printed on its serial console so far, with the serial line's
    /// `\r\n` line ends turned into `\n`.
    pub fn serial(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.serial).unwrap_or_default())
            .replace("\r\n", "\n")
    }

    /// Waits until the serial output contains `needle`; panics with the output after
    /// `limit` or if QEMU exits first.
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = self.serial();
            if out.contains(needle) {
                return out;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("QEMU exited ({status}) before printing {needle:?}; console:\n{out}");
            }
            if start.elapsed() > limit {
                panic!("no {needle:?} on the console after {limit:?}; console:\n{out}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for QEMU to exit by itself and returns its status with the console output.
    pub fn wait_exit(mut self, limit: Duration) -> (ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (status, self.serial());
            }
            if start.elapsed() > limit {
                panic!(
                    "QEMU still running after {limit:?}; console:\n{}",
                    self.serial()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.serial);
    }
}

/// QEMU's exit status for a kernel that reported failure code `code` through
/// isa-debug-exit: `(code << 1) | 1`.
pub const fn debug_exit_status(code: i32) -> i32 {
    (code << 1) | 1
}

/// The QEMU arguments of a generated `<name>.qemu` file (one per line, `#` lines are
/// comments) as the tests run them: with TCG alone in place of the file's `-accel kvm
/// -accel tcg`, as scripts/morgana-run does on a host whose KVM cannot run the guest
/// (this project's machines: docs/deploy.md, "Acceleration").
pub fn spec_args(spec: &str) -> Vec<String> {
    let mut args = vec!["-accel".to_string(), "tcg".to_string()];
    let mut lines = spec
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    while let Some(arg) = lines.next() {
        if arg == "-accel" {
            lines.next();
        } else {
            args.push(arg.to_string());
        }
    }
    args
}
