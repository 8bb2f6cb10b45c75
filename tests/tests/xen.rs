//! The kernel image as a real Xen guest: Debian's Xen 4.17 boots under QEMU (TCG) with a
//! Linux dom0 whose /init runs each image as a PVH domU in turn
//! (`tests/xen/run-guest.sh`), then reports the guest's PV console log and the
//! shutdown reason it gave Xen.
//!
//! Booting Xen and dom0 under TCG is the slow part (20-60 s), so every test's guest
//! runs in one boot: the first test to need the results starts it, the others wait.
//! The first run also downloads the Xen, Linux and tool packages (~76 MB) with
//! `apt-get download` into `~/.cache/morgana-xen` (or `$MORGANA_XEN_CACHE`).

use morgana_tests::{build_kernel, kernel_target_dir, workspace_root};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// What the harness reported for one guest.
struct Guest {
    console: String,
    shutdown: String,
}

/// Every guest's report, and the whole serial output for failure messages.
struct XenRun {
    guests: Vec<Guest>,
    output: String,
}

/// Indices of the guests in the shared run (see `run_on_xen`).
const HELLO: usize = 0;
const HELLO_PANIC: usize = 1;
const PLATFORM_EXAMPLE: usize = 2;

fn between<'a>(text: &'a str, begin: &str, end: &str) -> Option<&'a str> {
    let start = text.find(begin)? + begin.len();
    let len = text[start..].find(end)?;
    Some(&text[start..start + len])
}

/// Builds the morgana-pvh example kernel `hello` (release) and returns its path.
fn build_platform_example() -> PathBuf {
    let target = kernel_target_dir();
    let out = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "morgana-pvh",
            "--features",
            "example-kernels",
            "--example",
            "hello",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "building the morgana-pvh example failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    target.join("release/examples/hello")
}

/// Boots Xen once with the three guests. Xen's own tools under TCG are known to fail
/// now and then without any fault of the guest (`xl` aborting, a domain reported gone,
/// see the notes on Xen under QEMU): such an infrastructure failure — the harness
/// failing, markers missing, or a guest whose end `xl` never saw — gets one more whole
/// boot. What the guests print and how they shut down is asserted on the run that
/// completed, never retried.
fn run_on_xen() -> XenRun {
    let hello = build_kernel("hello");
    let example = build_platform_example();
    match boot_xen(&hello, &example) {
        Ok(run) => run,
        Err(why) => {
            eprintln!("Xen harness failed ({why}); booting Xen once more");
            boot_xen(&hello, &example).unwrap_or_else(|why| panic!("{why}"))
        }
    }
}

fn boot_xen(hello: &PathBuf, example: &PathBuf) -> Result<XenRun, String> {
    let guests: [(&PathBuf, &str); 3] =
        [(hello, ""), (hello, "morgana.fault=panic"), (example, "")];
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("tests/xen/run-guest.sh"));
    for (image, cmdline) in guests {
        cmd.arg(image).arg(cmdline);
    }
    let out = cmd.output().expect("bash runs tests/xen/run-guest.sh");
    let output = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        return Err(format!("run-guest.sh failed:\n{output}"));
    }
    // Serial output from dom0 ends lines with CR LF (sometimes CR CR LF): drop every CR.
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let mut parsed = Vec::new();
    for n in 0..guests.len() {
        let console = between(
            &text,
            &format!("===MORGANA-XEN-CONSOLE-BEGIN-{n}===\n"),
            &format!("===MORGANA-XEN-CONSOLE-END-{n}==="),
        )
        .ok_or_else(|| format!("no console markers for guest {n} in:\n{output}"))?
        .to_string();
        let shutdown = between(&text, &format!("===MORGANA-XEN-SHUTDOWN-{n}="), "===")
            .ok_or_else(|| format!("no shutdown marker for guest {n} in:\n{output}"))?
            .to_string();
        if shutdown == "gone" {
            return Err(format!("xl lost track of guest {n}:\n{output}"));
        }
        parsed.push(Guest { console, shutdown });
    }
    Ok(XenRun {
        guests: parsed,
        output,
    })
}

/// The one Xen boot all tests share. A failed run panics in the test that started it
/// and poisons the lock for the others, which then fail too.
fn run() -> &'static XenRun {
    static RUN: OnceLock<XenRun> = OnceLock::new();
    RUN.get_or_init(run_on_xen)
}

#[test]
fn hello_greets_on_the_pv_console_and_powers_off() {
    let run = run();
    let g = &run.guests[HELLO];
    assert!(
        g.console.contains("Hello, world!\n"),
        "no greeting on the PV console:\n{}",
        run.output
    );
    assert!(g.console.contains("morgana: ready in"), "{}", run.output);
    assert_eq!(g.shutdown, "poweroff", "{}", run.output);
}

#[test]
fn panic_on_xen_shuts_down_with_reason_crash() {
    let run = run();
    let g = &run.guests[HELLO_PANIC];
    assert!(g.console.contains("panic"), "{}", run.output);
    assert!(
        g.console.contains("morgana: exit status 5 (Panic)"),
        "{}",
        run.output
    );
    assert!(!g.console.contains("Hello, world!"), "{}", run.output);
    assert_eq!(g.shutdown, "crash", "{}", run.output);
}

/// The platform's own example kernel exercises what `hello` does not: a sleep (Xen's
/// single-shot timer and the event channel upcall), a self-IPI, xenstore reads and the
/// wall clock from the shared info page.
#[test]
fn platform_example_sleeps_and_reads_xenstore() {
    let run = run();
    let g = &run.guests[PLATFORM_EXAMPLE];
    for text in [
        "Hello from a Morgana PVH kernel",
        "INFO  hello] slept ",
        "interrupt on vector",
        "xenstore: name Ok(\"guest2\")",
        "wall clock: ",
    ] {
        assert!(g.console.contains(text), "no {text:?} in:\n{}", run.output);
    }
    assert_eq!(g.shutdown, "poweroff", "{}", run.output);
}
