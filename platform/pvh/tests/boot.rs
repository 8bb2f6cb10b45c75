//! Boots the example kernels under QEMU (TCG) and checks what they print and how QEMU
//! exits: success, each fault kind, several machine types and memory sizes, MMIO above
//! 4 GiB, and that an idle kernel halts instead of spinning.
//!
//! The examples are built with the release profile into the same target directory
//! (`env!("CARGO")`, inheriting `CARGO_TARGET_DIR`). QEMU must be installed
//! (`scripts/setup.sh` installs `qemu-system-x86`).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long one boot may take before the test gives up (TCG on a busy CI machine).
const BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds `example` once per test process and returns the kernel's path.
fn kernel(example: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = built.get(example) {
        return p.clone();
    }
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "-p",
            "morgana-pvh",
            "--features",
            "example-kernels",
            "--example",
            example,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .stderr(Stdio::inherit())
        .output()
        .expect("run cargo");
    assert!(out.status.success(), "building example {example} failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .filter(|l| l.contains("\"reason\":\"compiler-artifact\""))
        .filter(|l| l.contains(&format!("\"name\":\"{example}\"")))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = start + l[start..].find('"')?;
            Some(PathBuf::from(&l[start..end]))
        })
        .unwrap_or_else(|| panic!("cargo did not report the {example} executable"));
    built.insert(example.to_string(), path.clone());
    path
}

fn qemu_binary() -> &'static str {
    let found = Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "qemu-system-x86_64 not found: install it (scripts/setup.sh installs qemu-system-x86)"
    );
    "qemu-system-x86_64"
}

/// What one boot produced.
struct Boot {
    /// Exit status; `None` if QEMU had to be killed after the timeout.
    status: Option<i32>,
    /// Console output, CR LF turned into LF.
    console: String,
    /// Each console line with the host time (since QEMU start) it arrived at.
    lines: Vec<(Duration, String)>,
    /// QEMU start to exit.
    elapsed: Duration,
}

impl Boot {
    fn ready_us(&self) -> u64 {
        let line = self
            .console
            .lines()
            .find(|l| l.starts_with("morgana: ready in "))
            .unwrap_or_else(|| panic!("no ready line in:\n{}", self.console));
        line.trim_start_matches("morgana: ready in ")
            .trim_end_matches(" us")
            .parse()
            .unwrap_or_else(|_| panic!("bad ready line {line:?}"))
    }

    fn assert_contains(&self, what: &str) {
        assert!(
            self.console.contains(what),
            "expected {what:?} in the console output:\n{}",
            self.console
        );
    }
}

fn qemu_command(kernel: &Path, machine_args: &[&str], append: Option<&str>) -> Command {
    let mut c = Command::new(qemu_binary());
    c.args([
        "-accel",
        "tcg",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
    ])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .args(machine_args)
    .arg("-kernel")
    .arg(kernel);
    if !machine_args.contains(&"-m") {
        c.args(["-m", "32M"]);
    }
    if let Some(a) = append {
        c.args(["-append", a]);
    }
    c.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Boots `kernel` and collects its console until QEMU exits (or the timeout).
fn boot(kernel: &Path, machine_args: &[&str], append: Option<&str>) -> Boot {
    let start = Instant::now();
    let mut child = qemu_command(kernel, machine_args, append)
        .spawn()
        .expect("start QEMU");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut stderr = child.stderr.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut line = Vec::new();
        while stdout.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).replace("\r\n", "\n");
            lines.push((start.elapsed(), text));
            line.clear();
        }
        lines
    });
    let stderr = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let status = wait_with_timeout(child, start);
    let elapsed = start.elapsed();
    let lines = reader.join().expect("reader");
    let console = lines.iter().map(|(_, l)| l.as_str()).collect();
    let stderr = String::from_utf8_lossy(&stderr.join().expect("reader")).into_owned();
    assert!(
        !stderr.contains("without PVH ELF Note"),
        "QEMU did not find the PVH note: {stderr}"
    );
    Boot {
        status,
        console,
        lines,
        elapsed,
    }
}

/// Waits for QEMU to exit; kills it after [`BOOT_TIMEOUT`] (then `None`).
fn wait_with_timeout(mut child: std::process::Child, start: Instant) -> Option<i32> {
    loop {
        if let Some(st) = child.try_wait().expect("wait for QEMU") {
            return st.code();
        }
        if start.elapsed() > BOOT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn hello_succeeds(machine_args: &[&str]) -> Boot {
    let b = boot(&kernel("hello"), machine_args, None);
    b.assert_contains("Hello from a Morgana PVH kernel\n");
    b.assert_contains("interrupt on vector 0x30 delivered");
    b.assert_contains("I/O APIC: COM1 IRQ 4 delivered on vector 0x31");
    let slept: u64 = b
        .console
        .lines()
        .find_map(|l| l.split("slept ").nth(1))
        .and_then(|s| s.trim_end_matches(" ms").parse().ok())
        .unwrap_or_else(|| panic!("no sleep line:\n{}", b.console));
    assert!((100..1000).contains(&slept), "slept {slept} ms for 100 ms");
    assert!(b.ready_us() < 2_000_000, "ready after {} us", b.ready_us());
    assert_eq!(
        b.status,
        Some(0),
        "QEMU status (0 = ACPI power-off):\n{}",
        b.console
    );
    eprintln!(
        "{machine_args:?}: ready in {} us, QEMU start to exit {} ms",
        b.ready_us(),
        b.elapsed.as_millis()
    );
    b
}

#[test]
fn hello_on_pc_powers_off_with_status_0() {
    let b = hello_succeeds(&[]);
    // Log lines carry the time since entry.
    assert!(
        b.console
            .lines()
            .any(|l| l.starts_with("[    0.") && l.contains(" INFO  hello] slept ")),
        "{}",
        b.console
    );
}

/// The TSC rate against the host's clock. A sleep measured by the kernel's own clock
/// cannot show a wrong rate (it is wrong by the same factor), so the host times the 100 ms
/// sleep between the greeting and the `slept` line. The bounds are generous (TCG on a
/// busy machine) and still catch what happened before: on `-M microvm`, where port 0x61
/// reads 0xFF, the old calibration read the TSC ~2,500 times too slow.
#[test]
fn clock_rate_agrees_with_the_host() {
    for machine in ["pc", "q35", "microvm"] {
        let b = boot(&kernel("hello"), &["-machine", machine], None);
        let arrived = |what: &str| {
            b.lines
                .iter()
                .find(|(_, l)| l.contains(what))
                .map(|(t, _)| *t)
                .unwrap_or_else(|| panic!("no {what:?} line on {machine}:\n{}", b.console))
        };
        let host = arrived("slept ").saturating_sub(arrived("Hello from a Morgana PVH kernel"));
        assert!(
            (Duration::from_millis(60)..Duration::from_secs(5)).contains(&host),
            "{machine}: a 100 ms sleep took {host:?} of host time:\n{}",
            b.console
        );
        assert!(
            b.ready_us() < 2_000_000,
            "{machine}: ready after {} us",
            b.ready_us()
        );
        eprintln!(
            "{machine}: 100 ms sleep = {host:?} host time, ready in {} us",
            b.ready_us()
        );
    }
}

#[test]
fn hello_on_q35_powers_off_with_status_0() {
    hello_succeeds(&["-machine", "q35"]);
}

#[test]
fn hello_boots_in_16_mib() {
    hello_succeeds(&["-m", "16M"]);
    hello_succeeds(&["-machine", "q35", "-m", "16M"]);
}

#[test]
fn success_does_not_depend_on_no_reboot() {
    // ACPI power-off, not the triple-fault fallback: without -no-reboot a triple fault
    // would reboot the guest and run into the timeout.
    for machine in ["pc", "q35"] {
        let child = Command::new(qemu_binary())
            .args([
                "-machine", machine, "-accel", "tcg", "-m", "32M", "-display", "none",
            ])
            .args([
                "-serial",
                "null",
                "-device",
                "isa-debug-exit,iobase=0xf4,iosize=0x04",
            ])
            .arg("-kernel")
            .arg(kernel("hello"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start QEMU");
        assert_eq!(
            wait_with_timeout(child, Instant::now()),
            Some(0),
            "-machine {machine}"
        );
    }
}

/// Boots hello with `fault=<kind>` and checks the report and the failure status.
fn fault(kind: &str, status: i32, expected: &[&str]) {
    let b = boot(&kernel("hello"), &[], Some(&format!("fault={kind}")));
    for e in expected {
        b.assert_contains(e);
    }
    assert!(
        !b.console.contains("Hello from a Morgana PVH kernel"),
        "the fault did not stop the kernel:\n{}",
        b.console
    );
    assert_eq!(
        b.status,
        Some(status),
        "QEMU status for fault={kind}:\n{}",
        b.console
    );
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    fault(
        "stack-overflow",
        7,
        &[
            "morgana: CPU exception #PF page fault (vector 14)",
            "error code: 0x2 (write, page not present)",
            "stack overflow: the boot stack ran into its guard page",
            "  rip: 0x",
            "  cr2: 0x",
        ],
    );
}

#[test]
fn null_pointer_read_faults() {
    fault(
        "null",
        7,
        &[
            "#PF page fault",
            "(read, page not present)",
            "cr2: 0x0000000000000000",
            "null pointer dereference",
        ],
    );
}

#[test]
fn panic_prints_and_fails() {
    fault(
        "panic",
        5,
        &[
            "panic: panicked at ",
            "fault=panic requested on the command line",
        ],
    );
}

#[test]
fn rodata_is_not_writable() {
    fault(
        "wx",
        7,
        &["#PF page fault", "(write, protection violation)"],
    );
}

#[test]
fn heap_is_not_executable() {
    fault(
        "nx",
        7,
        &[
            "#PF page fault",
            "(instruction fetch, protection violation)",
        ],
    );
}

#[test]
fn out_of_memory_is_reported() {
    fault(
        "oom",
        5,
        &[
            "morgana: out of memory: cannot allocate",
            "panic: ",
            "memory allocation of",
        ],
    );
}

#[test]
fn appliance_error_is_reported() {
    fault("error", 3, &["morgana: main: fault=error requested"]);
}

#[test]
fn entropy_and_virtio_bars_above_4g() {
    let b = boot(
        &kernel("hello"),
        &[
            "-machine",
            "q35",
            "-cpu",
            "max",
            "-m",
            "4G",
            "-device",
            "virtio-rng-pci",
        ],
        None,
    );
    assert_eq!(b.status, Some(0), "{}", b.console);
    b.assert_contains("random: [");
    let bar = b
        .console
        .lines()
        .find(|l| l.contains("(64-bit), mapped"))
        .unwrap_or_else(|| panic!("no 64-bit BAR mapped:\n{}", b.console));
    let addr = bar
        .split(": 0x")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .unwrap_or_else(|| panic!("bad BAR line {bar:?}"));
    assert!(addr >= 1 << 32, "BAR at {addr:#x} is not above 4 GiB");
    b.assert_contains("MSI-X: ");
}

#[test]
fn idle_kernel_halts() {
    let kernel = kernel("idle");
    let mut child = qemu_command(&kernel, &[], Some("seconds=4"))
        .spawn()
        .expect("start QEMU");
    let mut stdout = child.stdout.take().expect("piped");
    // Wait for the kernel to be idle, then measure QEMU's CPU time over 2 s.
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("idling for") {
        let n = stdout.read(&mut buf).expect("read console");
        assert!(n > 0, "console closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    std::thread::sleep(Duration::from_millis(300));
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        ticks as f64 / 100.0 // USER_HZ
    };
    let (c0, t0) = (cpu(child.id()), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (c1, t1) = (cpu(child.id()), Instant::now());
    let share = (c1 - c0) / (t1 - t0).as_secs_f64();
    let status = child.wait().expect("wait");
    eprintln!("idle kernel: QEMU used {:.1} % of a core", share * 100.0);
    assert!(
        share < 0.25,
        "an idle kernel kept QEMU {:.0} % busy",
        share * 100.0
    );
    assert_eq!(status.code(), Some(0));
}

#[test]
fn kernel_image_has_the_pvh_note_and_w_xor_x_segments() {
    let elf = std::fs::read(kernel("hello")).expect("read kernel");
    assert_eq!(&elf[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    let mut note_ok = false;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let (p_type, flags) = (u32_at(ph), u32_at(ph + 4));
        if p_type == 1 {
            assert!(
                flags & 2 == 0 || flags & 1 == 0,
                "segment {i} is writable and executable"
            );
        }
        if p_type == 4 {
            let off = u64_at(ph + 8);
            assert_eq!(off % 4, 0);
            let (namesz, descsz, kind) = (u32_at(off), u32_at(off + 4), u32_at(off + 8));
            note_ok =
                namesz == 4 && descsz == 4 && kind == 18 && &elf[off + 12..off + 16] == b"Xen\0";
        }
    }
    assert!(note_ok, "no XEN_ELFNOTE_PHYS32_ENTRY note");
}
