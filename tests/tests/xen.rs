//! The kernel image as a real Xen guest: Debian's Xen 4.17 boots under QEMU (TCG) with a
//! Linux dom0 whose /init runs each image as a PVH domU in turn
//! (`tests/xen/run-guest.sh`), then reports the guest's PV console log and the
//! shutdown reason it gave Xen.
//!
//! Booting Xen and dom0 under TCG is the slow part (20-60 s), so every test's guest
//! runs in one boot: the first test to need the results starts it, the others wait.
//! The first run also downloads the Xen, Linux and tool packages (~76 MB) with
//! `apt-get download` into `~/.cache/morgana-xen` (or `$MORGANA_XEN_CACHE`).
//!
//! static-website runs with the `static-website.xl` its build wrote, on dom0's bridge
//! xenbr0 (10.0.0.1/24, DHCP); a check script in dom0 fetches the site with busybox nc
//! (busybox-static's wget segfaults there) and sha256sum, then runs the short soak of
//! issue 17 against it — [`SOAK_SEQUENTIAL`] sequential HTTP/1.0 connections and
//! [`SOAK_CONCURRENT`] concurrent ones, [`SOAK_WIDTH`] at a time
//! (`tests/xen/soak-client.c`) — and presses the kernel's debug key. The same load runs
//! against the control guest in the same boot: Debian's Linux as a PV domU with
//! xen-netfront and busybox httpd serving the same site. The full soak, several boots
//! and far more connections, is `bench/xen-soak.sh`. Only this test, by hand (one Xen
//! boot for the whole file: 19 minutes on a 2-core machine busy with other builds; a
//! failure prints the guest's console, the harness's lines about it and the tail of the
//! serial log; `MORGANA_XEN_VERBOSE=1` with --nocapture prints all of it):
//!
//! ```sh
//! cargo test -p morgana-tests --test xen -- --nocapture static_website
//! ```
//!
//! or without cargo test, see the example at the top of `tests/xen/run-guest.sh`.
//!
//! The kv appliance runs twice from its generated `kv.xl` on one disk image (dom0's
//! xen-blkback over a loop device, attached by the harness's hotplug script
//! `tests/xen/block`): the first domain (the image for every hypervisor) stores a key
//! over RESP and is shut down, the second (the image built for Xen only) reads it back
//! through blkfront.

use morgana_tests::{
    build_kernel, build_kernel_for, files_below, kernel_target_dir, workspace_root,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What the harness reported for one guest.
struct Guest {
    console: String,
    shutdown: String,
    /// The vif line (`backend-state:S hotplug-status:H bridge:B`), if it has a vif.
    vif: Option<String>,
    /// The check script's output and its status (`ok` or `failed`), if it has one.
    check: Option<(String, String)>,
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
const STATIC_WEBSITE: usize = 3;
/// static-website started with the harness's own config, which has no vif.
const WEBSITE_WITHOUT_VIF: usize = 4;
/// `hello` with `morgana.fault=<kind>`, one guest per kind, from this index on.
const FIRST_FAULT: usize = 5;
/// The soak's control guest (Linux PV, xen-netfront, busybox httpd), after the faults.
const LINUX_CONTROL: usize = FIRST_FAULT + FAULTS.len();
/// The kv appliance from its generated `kv.xl` with its disk: the first domain (the image
/// for every hypervisor) writes a key over RESP, is shut down, and a fresh domain of the
/// Xen-only image on the same disk image reads it back.
const KV_WRITE: usize = LINUX_CONTROL + 1;
const KV_READ: usize = LINUX_CONTROL + 2;
/// The key, and the value the first kv domain writes.
const KV_KEY: &str = "written-on-xen";
const KV_VALUE: &str = "by-the-first-domain-through-blkfront";
/// Wake-ups of the platform example's `storm=` (see
/// `platform_example_sleeps_and_reads_xenstore`).
const STORM_WAKEUPS: u32 = 1000;
/// The short soak against each web server: sequential connections, then
/// [`SOAK_CONCURRENT`] more with [`SOAK_WIDTH`] open at any time (below the direct
/// stack's default backlog of 128; a burst beyond it has its SYNs dropped and retried,
/// as on Linux).
const SOAK_SEQUENTIAL: u32 = 1000;
const SOAK_CONCURRENT: u32 = 300;
const SOAK_WIDTH: u32 = 30;
/// The share of its concurrent connections the control guest must answer (see
/// `the_linux_control_guest_takes_the_same_soak`).
const CONTROL_CONCURRENT_MIN_PERCENT: u32 = 90;
/// How many of the control guest's sequential connections one restart of its httpd may
/// cost (the connection it died in, and those refused while the loop in
/// tests/xen/linux-control-init.sh starts it again).
const CONTROL_FAILURES_PER_RESTART: u32 = 3;
/// The control guest's address (outside dom0's DHCP range).
const LINUX_CONTROL_IP: &str = "10.0.0.3";
/// The CPU exceptions `morgana.fault=` provokes, and what each report must say beyond
/// the vector (the page-fault error code's reading, or the guard page that was hit).
const FAULTS: [(&str, &str); 4] = [
    ("null", "error code: 0x0 (read, page not present)"),
    (
        "stack-overflow",
        "stack overflow: the boot stack ran into its guard page",
    ),
    ("wx", "(write, protection violation)"),
    ("nx", "(instruction fetch, protection violation)"),
];

/// One guest of the shared run: its image, command line, xl config and check script.
struct Spec {
    image: PathBuf,
    cmdline: String,
    xl: Option<PathBuf>,
    check: Option<PathBuf>,
    /// What the control guest's httpd serves.
    www: Option<PathBuf>,
    /// `MIB:IMAGE`: the disk image its xl config names (run-guest.sh's `--disk`).
    disk: Option<String>,
    /// Make `disk` blank for this guest (run-guest.sh's `--new-disk`).
    new_disk: bool,
    /// Host files copied to the same path in dom0 (run-guest.sh's `--file`).
    files: Vec<PathBuf>,
}

/// static-website's site as the host has it: (URL path, file).
fn site_files() -> Vec<(String, PathBuf)> {
    files_below(&workspace_root().join("appliances/static-website/htdocs"))
        .into_iter()
        .map(|(key, path)| (format!("/{key}"), path))
        .collect()
}

/// The dom0 check of static-website (busybox sh, sourced by tests/xen/dom0-init.sh with
/// its helpers): waits until the appliance serves, then prints `ADDRESS <ip>`, one
/// `GOT <path> <sha256> <bytes>` (or `GOT <path> FAILED <why>`) per path, the `ETAG` of
/// /index.html, and `STATUS <name> <status line>` of raw requests.
fn website_check(paths: &[String]) -> String {
    let gets: String = paths.iter().map(|p| format!("get {p}\n")).collect();
    format!(
        r#"# The static-website check, generated by tests/tests/xen.rs.
wait_console 'static-website: serving' 90 || exit 1
ip=$(sed -n 's/.*ipv4 \([0-9.]*\)\/[0-9]* leased from DHCP.*/\1/p' "$CONSOLE" | tail -n 1)
if [ -z "$ip" ]; then echo "no DHCP lease on the guest's console"; exit 1; fi
echo "ADDRESS $ip"
# Xen's TSC mode of the domain (its `.xl` says tsc_mode="native": mode 2, rdtsc never
# trapped; docs/xen-under-qemu.md, "Triple faults").
xl debug-keys s
echo "TSC-MODE $(xl dmesg | sed -n "s/.*dom$DOMID(hvm): mode=\([0-9]*\).*/\1/p" | tail -n 1)"
fail=0
# get PATH: one GET over nc (busybox-static's wget segfaults in this dom0); the body is
# what follows the head's empty line.
get() {{
  printf 'GET %s HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n' "$1" |
    timeout 20 nc $ip 8080 > /tmp/resp 2>/tmp/err
  status=$(head -n 1 /tmp/resp | tr -d '\r')
  head_len=$(awk '{{ n += length($0) + 1 }} /^\r?$/ {{ print n; exit }}' /tmp/resp)
  case "$status" in
    "HTTP/1.1 200 OK")
      tail -c +$((head_len + 1)) /tmp/resp > /tmp/body
      echo "GOT $1 $(sha256sum < /tmp/body | cut -d ' ' -f 1) $(wc -c < /tmp/body)" ;;
    *)
      echo "GOT $1 FAILED status '$status' $(tr '\n' ' ' < /tmp/err)"
      fail=1 ;;
  esac
}}
# request NAME REQUEST: sends REQUEST (printf %b escapes) and prints the status line.
request() {{
  printf '%b' "$2" | timeout 20 nc $ip 8080 > /tmp/resp 2>&1
  echo "STATUS $1 $(head -n 1 /tmp/resp | tr -d '\r')"
}}
{gets}request missing 'GET /no/such/page.html HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n'
request index 'GET /index.html HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n'
etag=$(sed -n 's/^[Ee][Tt][Aa][Gg]: *//p' /tmp/resp | tr -d '\r')
echo "ETAG $etag"
request not-modified "GET /index.html HTTP/1.1\r\nHost: guest\r\nIf-None-Match: $etag\r\nConnection: close\r\n\r\n"
{soak}
# The debug key: the kernel, netfront and the stack report on the console.
xl sysrq $GUEST d
sleep 3
[ $fail = 0 ]
"#,
        soak = soak_line("morgana", "$ip"),
    )
}

/// The dom0 check of the control guest: waits until its httpd serves, then the same
/// soak as static-website's, then its own diagnostics on its console.
fn linux_control_check() -> String {
    format!(
        r#"# The control guest's check, generated by tests/tests/xen.rs.
wait_console 'linux-control: serving' 180 || exit 1
{soak}
tty=$(xenstore-read /local/domain/$DOMID/console/tty)
[ -n "$tty" ] && echo diag > "$tty"
sleep 3
"#,
        soak = soak_line("linux", LINUX_CONTROL_IP),
    )
}

/// The dom0 check of a kv domain: waits until it serves, then (`write`) SETs
/// [`KV_KEY`] or GETs it, over RESP with busybox nc, and prints `REPLY <reply>` (CR LF
/// as spaces) and the disk's backend state (`VBD <state>`).
fn kv_check(write: bool) -> String {
    let bulk = |s: &str| format!("${}\\r\\n{s}\\r\\n", s.len());
    let command = if write {
        format!("*3\\r\\n{}{}{}", bulk("SET"), bulk(KV_KEY), bulk(KV_VALUE))
    } else {
        format!("*2\\r\\n{}{}", bulk("GET"), bulk(KV_KEY))
    };
    format!(
        r#"# A kv check, generated by tests/tests/xen.rs.
echo "VBD $(xenstore-read /local/domain/0/backend/vbd/$DOMID/51712/state 2>&1)"
wait_console 'serving the Redis protocol' 120 || exit 1
ip=$(sed -n 's/.*ipv4 \([0-9.]*\)\/[0-9]* leased from DHCP.*/\1/p' "$CONSOLE" | tail -n 1)
if [ -z "$ip" ]; then echo "no DHCP lease on the guest's console"; exit 1; fi
echo "ADDRESS $ip"
printf '{command}*1\r\n$4\r\nQUIT\r\n' | timeout 20 nc $ip 6379 > /tmp/resp 2>&1
echo "REPLY $(tr '\r\n' '  ' < /tmp/resp)"
echo "VBD $(xenstore-read /local/domain/0/backend/vbd/$DOMID/51712/state 2>&1)"
"#
    )
}

/// The `soak` call (dom0-init.sh's helper) for one guest: GET / must return index.html.
fn soak_line(kind: &str, addr: &str) -> String {
    let index = workspace_root().join("appliances/static-website/htdocs/index.html");
    let bytes = index.metadata().expect("index.html").len();
    format!("soak {kind} {addr} 8080 {SOAK_SEQUENTIAL} {SOAK_WIDTH} {SOAK_CONCURRENT} {bytes}")
}

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

/// Boots Xen once with every guest. Xen's own tools under TCG are known to fail
/// now and then without any fault of the guest (`xl` aborting, a domain reported gone,
/// see docs/xen-under-qemu.md): such an infrastructure failure — the harness failing,
/// dom0 never reaching its end marker, markers missing, or a guest whose end `xl` never
/// saw — gets one more whole boot, and the retry is printed (on the terminal, even when
/// the test passes). What the guests print, how they shut down and what the checks
/// measured is asserted on the run that completed, never retried.
fn run_on_xen() -> XenRun {
    let hello = build_kernel("hello");
    let example = build_platform_example();
    let website = build_kernel("static-website");
    let paths: Vec<String> = site_files().into_iter().map(|(p, _)| p).collect();
    let check = kernel_target_dir().join("static-website.check.sh");
    let script = website_check(&[&["/".to_string()], &paths[..]].concat());
    std::fs::write(&check, script).expect("write the check script");
    let linux_check = kernel_target_dir().join("linux-control.check.sh");
    std::fs::write(&linux_check, linux_control_check()).expect("write the check script");
    let plain = |image: &Path, cmdline: &str| Spec {
        image: image.to_path_buf(),
        cmdline: cmdline.to_string(),
        xl: None,
        check: None,
        www: None,
        disk: None,
        new_disk: false,
        files: Vec::new(),
    };
    let mut guests = vec![
        plain(&hello, ""),
        plain(&hello, "morgana.fault=panic"),
        // A thousand wake-ups from short sleeps, a xenstore read every eighth: the
        // idle step's block in Xen (SCHEDOP_poll), woken by its timeout and by the
        // store's event channel, many times over (a lost wake-up hangs the guest).
        plain(&example, &format!("storm={STORM_WAKEUPS}")),
        // The deployment file the build wrote, as a user would start it.
        Spec {
            xl: Some(website.with_extension("xl")),
            check: Some(check),
            ..plain(&website, "")
        },
        plain(&website, ""),
    ];
    for (kind, _) in FAULTS {
        guests.push(plain(&hello, &format!("morgana.fault={kind}")));
    }
    guests.push(Spec {
        check: Some(linux_check),
        www: Some(workspace_root().join("appliances/static-website/htdocs")),
        ..plain(
            Path::new("@linux-control"),
            &format!("console=hvc0 quiet soak.ip={LINUX_CONTROL_IP}/24"),
        )
    });
    // kv twice on one disk image (the `target=` of its generated kv.xl, created by the
    // harness at its size: 256 MiB, sparse): a write, `xl shutdown`, a read. The write is
    // made by the image for every hypervisor (`xen`), the read by the one built for Xen
    // only (`xen-only`, its own generated kv.xl): both images on Xen, one disk format.
    let kv = build_kernel("kv");
    let kv_xen_only = build_kernel_for("kv", "xen-only");
    for (index, kv, script) in [
        (KV_WRITE, &kv, kv_check(true)),
        (KV_READ, &kv_xen_only, kv_check(false)),
    ] {
        let check = kernel_target_dir().join(format!("kv-{index}.check.sh"));
        std::fs::write(&check, script).expect("write the check script");
        guests.push(Spec {
            xl: Some(kv.with_extension("xl")),
            check: Some(check),
            disk: Some("256:kv.img".to_string()),
            ..plain(kv, "")
        });
    }
    assert_eq!(guests.len(), KV_READ + 1);
    match boot_xen(&guests) {
        Ok(run) => run,
        Err(why) => {
            announce_retry(&why);
            boot_xen(&guests).unwrap_or_else(|why| {
                // The reason and the end of the run first (a CI report may keep only
                // the head of a message), then all of it.
                let lines: Vec<&str> = why.lines().collect();
                let tail = &lines[lines.len().saturating_sub(REPORT_TAIL_LINES)..];
                panic!(
                    "{}\n--- the last {} lines ---\n{}\n--- all of it ---\n{why}",
                    lines.first().unwrap_or(&""),
                    tail.len(),
                    tail.join("\n")
                )
            })
        }
    }
}

/// Prints a retry of the harness straight to the terminal: `eprintln!` inside a test is
/// captured and shown only if the test fails, and a retry must be visible either way.
fn announce_retry(why: &str) {
    use std::io::Write;
    let first = why.lines().next().unwrap_or("");
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "xen: infrastructure failure ({first}); booting Xen once more. The failed run's output:\n{why}"
    );
}

fn boot_xen(guests: &[Spec]) -> Result<XenRun, String> {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("tests/xen/run-guest.sh"));
    for g in guests {
        if let Some(xl) = &g.xl {
            cmd.arg("--xl").arg(xl);
        }
        if let Some(check) = &g.check {
            cmd.arg("--check").arg(check);
        }
        if let Some(www) = &g.www {
            cmd.arg("--www").arg(www);
        }
        if let Some(disk) = &g.disk {
            cmd.arg(if g.new_disk { "--new-disk" } else { "--disk" })
                .arg(disk);
        }
        for f in &g.files {
            cmd.arg("--file").arg(f);
        }
        cmd.arg(&g.image).arg(&g.cmdline);
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
    if !text.contains("===MORGANA-XEN-DONE===") {
        return Err(format!("dom0 did not finish (no DONE marker):\n{output}"));
    }
    let mut parsed = Vec::new();
    for (n, spec) in guests.iter().enumerate() {
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
        let vif = between(&text, &format!("===MORGANA-XEN-VIF-{n}="), "===").map(str::to_string);
        let check = spec.check.as_ref().map(|_| {
            let begin = format!("===MORGANA-XEN-CHECK-BEGIN-{n}===\n");
            let end = format!("===MORGANA-XEN-CHECK-END-{n}=");
            let out = between(&text, &begin, &end).unwrap_or_default().to_string();
            let status = between(&text, &end, "===").unwrap_or("missing").to_string();
            (out, status)
        });
        parsed.push(Guest {
            console,
            shutdown,
            vif,
            check,
        });
    }
    Ok(XenRun {
        guests: parsed,
        output,
    })
}

/// The one Xen boot all tests share. A run that failed (twice, see [`run_on_xen`]) fails
/// every test with its message; it is not booted again for each of them.
fn run() -> &'static XenRun {
    static RUN: OnceLock<Result<XenRun, String>> = OnceLock::new();
    let result = RUN.get_or_init(|| {
        let run = std::panic::catch_unwind(run_on_xen);
        if let (Ok(run), Some(_)) = (&run, std::env::var_os("MORGANA_XEN_VERBOSE")) {
            eprintln!("{}", run.output);
        }
        run.map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the Xen run panicked".to_string())
        })
    });
    match result {
        Ok(run) => run,
        Err(why) => panic!("{why}"),
    }
}

#[test]
fn hello_greets_on_the_pv_console_and_powers_off() {
    let run = run();
    let g = &run.guests[HELLO];
    assert!(
        g.console.contains("Hello, world!\n"),
        "no greeting on the PV console:\n{}",
        report(run, HELLO)
    );
    assert!(
        g.console.contains("morgana: ready in"),
        "{}",
        report(run, HELLO)
    );
    assert_eq!(g.shutdown, "poweroff", "{}", report(run, HELLO));
}

#[test]
fn panic_on_xen_shuts_down_with_reason_crash() {
    let run = run();
    let g = &run.guests[HELLO_PANIC];
    let report = || report(run, HELLO_PANIC);
    assert!(g.console.contains("panic"), "{}", report());
    assert!(
        g.console.contains("morgana: exit status 5 (Panic)"),
        "{}",
        report()
    );
    assert!(!g.console.contains("Hello, world!"), "{}", report());
    assert_eq!(g.shutdown, "crash", "{}", report());
}

/// An appliance whose domain has no network device stops at once with an error that
/// says what is missing and how to add it, and the domain shuts down with reason crash:
/// no hang waiting for a backend that cannot come.
#[test]
fn a_website_without_a_vif_says_so_and_crashes() {
    let run = run();
    let g = &run.guests[WEBSITE_WITHOUT_VIF];
    let report = || report(run, WEBSITE_WITHOUT_VIF);
    assert!(
        g.console
            .contains("net: netfront: no device/vif/0 in xenstore (for a network, add"),
        "{}",
        report()
    );
    assert!(
        g.console.contains("vif = [ 'bridge=xenbr0' ]"),
        "{}",
        report()
    );
    assert!(!g.console.contains("serving"), "{}", report());
    assert_eq!(g.shutdown, "crash", "{}", report());
}

/// A CPU exception in a Xen guest is reported on the PV console like under QEMU —
/// vector, error code, registers, the guard page a stack overflow hit — and the domain
/// shuts down with reason crash (never a silent triple fault). Under this harness CR2
/// reads 0 (see `interrupts::cr2_fits`): the report must then not blame a null pointer
/// for a write to `.rodata` or a fetch from the heap.
#[test]
fn cpu_exceptions_on_xen_are_reported_and_crash() {
    let run = run();
    for (i, (kind, detail)) in FAULTS.iter().enumerate() {
        let g = &run.guests[FIRST_FAULT + i];
        let context = || format!("morgana.fault={kind}:\n{}", report(run, FIRST_FAULT + i));
        for text in [
            "morgana: CPU exception #PF page fault (vector 14)",
            detail,
            "  rip: 0x",
            "morgana: exit status 7 (Exception)",
        ] {
            assert!(g.console.contains(text), "no {text:?}: {}", context());
        }
        if matches!(*kind, "wx" | "nx") {
            assert!(!g.console.contains("null pointer"), "{}", context());
        }
        assert!(!g.console.contains("Hello, world!"), "{}", context());
        assert_eq!(g.shutdown, "crash", "{}", context());
    }
}

/// The platform's own example kernel exercises what `hello` does not: [`STORM_WAKEUPS`]
/// short sleeps with xenstore reads between them and a longer sleep (the idle step's
/// `SCHEDOP_poll`, ended by its timeout or the store's event channel), a self-IPI (the
/// one interrupt a Xen PVH guest takes), xenstore reads and the wall clock from the
/// shared info page.
#[test]
fn platform_example_sleeps_and_reads_xenstore() {
    let run = run();
    let g = &run.guests[PLATFORM_EXAMPLE];
    let storm = format!(
        "storm: {STORM_WAKEUPS} wake-ups and {} xenstore reads in ",
        STORM_WAKEUPS / 8
    );
    for text in [
        "Hello from a Morgana PVH kernel",
        &storm,
        "INFO  hello] slept ",
        "interrupt on vector",
        "xenstore: name Ok(\"guest2\")",
        "wall clock: ",
    ] {
        assert!(
            g.console.contains(text),
            "no {text:?} in:\n{}",
            report(run, PLATFORM_EXAMPLE)
        );
    }
    assert_eq!(g.shutdown, "poweroff", "{}", report(run, PLATFORM_EXAMPLE));
}

/// The harness side of the network, whatever the guest's driver does: the generated
/// `static-website.xl` has a vif on xenbr0, so xl creates it, netback comes up (state 2,
/// InitWait, until a frontend connects; 4 once it has), and the hotplug script puts it
/// into the bridge.
#[test]
fn static_website_on_xen_gets_a_vif_on_the_bridge() {
    let run = run();
    let g = &run.guests[STATIC_WEBSITE];
    let vif = g.vif.as_deref().unwrap_or_else(|| {
        panic!(
            "no vif for static-website:\n{}",
            report(run, STATIC_WEBSITE)
        )
    });
    assert!(
        vif.contains("hotplug-status:connected") && vif.contains("bridge:xenbr0"),
        "the vif is not in xenbr0 ({vif}):\n{}",
        report(run, STATIC_WEBSITE)
    );
    assert!(
        vif.starts_with("backend-state:2 ") || vif.starts_with("backend-state:4 "),
        "netback is not up ({vif}):\n{}",
        report(run, STATIC_WEBSITE)
    );
}

/// Issue 13 on Xen: the kv appliance from its generated `kv.xl`, whose `disk` line dom0
/// serves with xen-blkback over a loop device. The image for every hypervisor finds the
/// disk with blkfront (the same image finds virtio-blk under QEMU), formats it, and
/// acknowledges a SET only once it is flushed; after `xl shutdown` a fresh domain of the
/// Xen-only image (blkfront alone, no virtio) on the same disk image reads the value back.
#[test]
fn kv_on_xen_keeps_a_write_on_its_blkfront_disk_for_the_next_domain() {
    let run = run();
    let context = |g: &Guest| {
        let (out, status) = g.check.clone().unwrap_or_default();
        format!(
            "--- check ({status}) ---\n{out}\n--- console ---\n{}\n--- shutdown: {} ---",
            g.console, g.shutdown
        )
    };
    let reply = |g: &Guest| -> Vec<String> {
        let (out, _) = g.check.as_ref().expect("kv has a check");
        out.lines()
            .find_map(|l| l.strip_prefix("REPLY"))
            .unwrap_or_else(|| panic!("no reply from kv:\n{}", context(g)))
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    for index in [KV_WRITE, KV_READ] {
        let g = &run.guests[index];
        assert!(
            g.console
                .contains("blkfront device/vbd/51712: 256 MiB in 512-byte sectors"),
            "no blkfront disk on the console:\n{}",
            context(g)
        );
        assert!(
            g.console.contains("serving the Redis protocol"),
            "kv never served:\n{}",
            context(g)
        );
        assert_eq!(
            g.check.as_ref().map(|c| c.1.as_str()),
            Some("ok"),
            "{}",
            context(g)
        );
        assert_eq!(g.shutdown, "poweroff", "{}", context(g));
    }
    let w = &run.guests[KV_WRITE];
    assert_eq!(reply(w), ["+OK", "+OK"], "SET, QUIT:\n{}", context(w));
    let r = &run.guests[KV_READ];
    let want = format!("${}", KV_VALUE.len());
    assert_eq!(
        reply(r),
        [want.as_str(), KV_VALUE, "+OK"],
        "GET after a fresh boot on the same disk:\n{}",
        context(r)
    );
}

/// static-website as a Xen domU started from its generated xl config: its own stack
/// over netfront leases an address from dom0's DHCP server, and dom0 fetches every file
/// of the site byte for byte, gets 404 for a missing page and 304 for a matching ETag.
#[test]
fn static_website_on_xen_serves_every_file_to_dom0() {
    let run = run();
    let g = &run.guests[STATIC_WEBSITE];
    let (out, status) = g.check.as_ref().expect("static-website has a check");
    let context = || {
        format!(
            "--- check output ---\n{out}\n--- static-website's console ---\n{}\n--- shutdown: {} ---\n(the whole serial output: MORGANA_XEN_VERBOSE=1 with --nocapture)",
            g.console, g.shutdown
        )
    };
    assert!(
        g.console.contains("leased from DHCP server 10.0.0.1"),
        "no DHCP lease from dom0 on the console:\n{}",
        context()
    );
    assert!(
        g.console.contains("static-website: serving"),
        "the appliance never served:\n{}",
        context()
    );
    assert!(
        out.lines().any(|l| l == "TSC-MODE 2"),
        "Xen does not run the domain with a native TSC (tsc_mode=\"native\" of its .xl is mode 2):\n{}",
        context()
    );
    let got = |path: &str| {
        let prefix = format!("GOT {path} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no fetch of {path}:\n{}", context()))
    };
    let index = workspace_root().join("appliances/static-website/htdocs/index.html");
    let files = site_files();
    assert!(files.len() > 3, "htdocs has {} files", files.len());
    for (path, file) in [("/".to_string(), index)].into_iter().chain(files) {
        let want = format!("{} {}", sha256(&file), file.metadata().expect("stat").len());
        assert_eq!(
            got(&path),
            want,
            "{path} (from {}) differs in dom0 (sha256 bytes):\n{}",
            file.display(),
            context()
        );
    }
    let status_of = |name: &str| {
        let prefix = format!("STATUS {name} ");
        out.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no request {name}:\n{}", context()))
    };
    assert_eq!(
        status_of("missing"),
        "HTTP/1.1 404 Not Found",
        "{}",
        context()
    );
    assert_eq!(status_of("index"), "HTTP/1.1 200 OK", "{}", context());
    assert!(
        out.lines().any(|l| l.starts_with("ETAG \"")),
        "no ETag for /index.html:\n{}",
        context()
    );
    assert_eq!(
        status_of("not-modified"),
        "HTTP/1.1 304 Not Modified",
        "{}",
        context()
    );
    assert_eq!(status, "ok", "{}", context());
    // A server runs until it is stopped: after the check the harness runs `xl shutdown`,
    // which the kernel sees through its watch on control/shutdown and obeys by powering
    // off (reason poweroff, not a crash, and not "running" = ignored and destroyed).
    assert_eq!(
        g.shutdown,
        "poweroff",
        "static-website did not power off on `xl shutdown`:\n{}\n--- the harness after the check ---\n{}",
        context(),
        harness_after(&run.output, STATIC_WEBSITE)
    );
    assert!(
        g.console
            .contains("powering off at the toolstack's request"),
        "{}",
        context()
    );
}

/// One phase of a soak as soak-client reported it: `SOAK <mode> ok=.. failed=..`.
#[derive(Debug, PartialEq, Eq)]
struct SoakResult {
    ok: u32,
    failed: u32,
}

/// The soak's result for `mode` (`seq` or `conc`) in a check's output.
fn soak_result(out: &str, mode: &str) -> Option<SoakResult> {
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix(&format!("SOAK {mode} ")))?;
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
    };
    Some(SoakResult {
        ok: field("ok")?,
        failed: field("failed")?,
    })
}

/// Asserts that guest `index` answered every connection of the short soak.
fn assert_soak_passed(run: &XenRun, index: usize, who: &str) {
    let g = &run.guests[index];
    let (out, _) = g.check.as_ref().expect("a guest with a soak has a check");
    let context = || {
        format!(
            "--- {who}'s check output ---\n{out}\n--- its console ---\n{}\n--- the other \
             guest's soak, for comparison ---\n{}",
            g.console,
            other_soak(run, index)
        )
    };
    for (mode, want) in [("seq", SOAK_SEQUENTIAL), ("conc", SOAK_CONCURRENT)] {
        let got = soak_result(out, mode)
            .unwrap_or_else(|| panic!("no `SOAK {mode}` result from {who}:\n{}", context()));
        assert_eq!(
            got,
            SoakResult {
                ok: want,
                failed: 0
            },
            "{who}: the soak's {mode} phase failed:\n{}",
            context()
        );
    }
}

/// The soak lines of the other guest (static-website's for the control, and back).
fn other_soak(run: &XenRun, index: usize) -> String {
    let other = if index == STATIC_WEBSITE {
        LINUX_CONTROL
    } else {
        STATIC_WEBSITE
    };
    let out = run.guests[other]
        .check
        .as_ref()
        .map(|(o, _)| o.as_str())
        .unwrap_or("");
    out.lines()
        .filter(|l| l.starts_with("SOAK") || l.starts_with("FAIL") || l.starts_with("STALLED"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 17's short soak: static-website from its `.xl` answers every one of
/// [`SOAK_SEQUENTIAL`] sequential and [`SOAK_CONCURRENT`] concurrent connections from
/// dom0 (status 200, the whole index.html), in the same boot as the control guest.
/// A failure prints both guests' results: the control tells dom0's share.
#[test]
fn static_website_on_xen_survives_the_short_soak() {
    let run = run();
    assert_soak_passed(run, STATIC_WEBSITE, "static-website");
    // The watchdog's figures, for the record (a lost notification is recovered, and
    // logged, not a failure: see drivers/netfront/src/watchdog.rs).
    let g = &run.guests[STATIC_WEBSITE];
    let watchdog = g
        .console
        .lines()
        .find_map(|l| l.split_once("; watchdog ").map(|(_, w)| w))
        .unwrap_or("no report");
    print_figures(&format!(
        "static-website: sequential {SOAK_SEQUENTIAL}/{SOAK_SEQUENTIAL}, concurrent \
         {SOAK_CONCURRENT}/{SOAK_CONCURRENT}; netfront watchdog: {watchdog}"
    ));
}

/// The control: Debian's Linux as a PV domU, with xen-netfront and busybox httpd, takes
/// the same load in the same boot. Its sequential phase must succeed whole, but for the
/// few connections lost when its httpd dies and is started again (at most
/// [`CONTROL_FAILURES_PER_RESTART`] each, 1 % in all) — that is what tells dom0's share
/// when static-website fails. Its concurrent phase must reach
/// [`CONTROL_CONCURRENT_MIN_PERCENT`]: in this nested guest busybox's httpd children
/// now and then die of a segfault (as busybox-static does in dom0), and its listen
/// backlog of 9 overflows at 30 connections under TCG, so some of those connections are
/// reset or time out (docs/xen-under-qemu.md). Both guests' figures are printed.
#[test]
fn the_linux_control_guest_takes_the_same_soak() {
    let run = run();
    let g = &run.guests[LINUX_CONTROL];
    let (out, _) = g.check.as_ref().expect("the control guest has a check");
    let context = || {
        format!(
            "--- the control guest's check output ---\n{out}\n--- its console ---\n{}\n\
             --- static-website's soak ---\n{}",
            g.console,
            other_soak(run, LINUX_CONTROL)
        )
    };
    let seq = soak_result(out, "seq")
        .unwrap_or_else(|| panic!("no sequential result from the control:\n{}", context()));
    // A failure of the control's own server is not dom0's: each restart of its httpd
    // (printed by its init) may cost a few connections, and no more than 1 % in all.
    let restarts = g.console.matches("linux-control: httpd exited").count() as u32;
    assert!(
        seq.ok + seq.failed == SOAK_SEQUENTIAL
            && seq.failed <= restarts * CONTROL_FAILURES_PER_RESTART
            && seq.ok * 100 >= SOAK_SEQUENTIAL * 99,
        "the control guest's sequential phase failed ({} of {SOAK_SEQUENTIAL} answered, {} \
         failed, {restarts} restarts of its httpd):\n{}",
        seq.ok,
        seq.failed,
        context()
    );
    let conc = soak_result(out, "conc")
        .unwrap_or_else(|| panic!("no concurrent result from the control:\n{}", context()));
    // The kernel's crash reports its `diag` printed (the last 10 of its dmesg at most).
    let crashes = g.console.matches("segfault at").count()
        + g.console.matches("general protection fault").count();
    print_figures(&format!(
        "the Linux control guest: sequential {}/{SOAK_SEQUENTIAL}, concurrent {}/{SOAK_CONCURRENT} \
         ({crashes} crash reports in its kernel log (10 shown at most), {restarts} httpd \
         restarts on its console)",
        seq.ok, conc.ok
    ));
    assert!(
        conc.ok * 100 >= SOAK_CONCURRENT * CONTROL_CONCURRENT_MIN_PERCENT,
        "the control guest answered only {} of {SOAK_CONCURRENT} concurrent connections:\n{}",
        conc.ok,
        context()
    );
    assert!(
        g.console.contains("linux diagnostics: "),
        "the control guest did not answer `diag` on its console:\n{}",
        g.console
    );
}

/// What the harness printed about guest `n` after its check: `shutdown:` lines, Xen's
/// triple-fault line and its dump of the vCPU after it, and, when the guest
/// triple-faulted, what dom0 read of it (dom0-init.sh's `guest_context`, between
/// `===MORGANA-XEN-CONTEXT-BEGIN-n===` and `-END-n`: registers and stack named with the
/// image's symbols, Xen's saved CPU state, the flight recorder, the interrupt stacks).
fn harness_after(output: &str, n: usize) -> String {
    let begin = format!("===MORGANA-XEN-CONTEXT-BEGIN-{n}===");
    let end = format!("===MORGANA-XEN-CONTEXT-END-{n}===");
    let mut lines: Vec<&str> = output
        .lines()
        .filter(|l| l.starts_with("shutdown:"))
        .collect();
    // Xen's own dump of the vCPU follows its triple-fault line: the registers, with
    // RIP and RFLAGS (whether interrupts were on), and the control registers.
    let all: Vec<&str> = output.lines().collect();
    for (i, l) in all.iter().enumerate() {
        if l.contains("Triple fault") {
            lines.extend(all[i..].iter().take(24).filter(|l| l.starts_with("(XEN)")));
        }
    }
    if let Some(at) = output.find(&begin) {
        let section = &output[at..];
        let section = section
            .find(&end)
            .map_or(section, |e| &section[..e + end.len()]);
        lines.extend(section.lines());
    }
    lines.join("\n")
}

/// Lines of the whole serial output that [`report`] ends with.
const REPORT_TAIL_LINES: usize = 150;
/// Lines [`report`] keeps of each end of a long harness section.
const REPORT_SECTION_ENDS: usize = 50;

/// A failure message about guest `n`, most telling first (a CI report that keeps only
/// the head of a long message still shows the guest): its PV console and shutdown
/// reason; then what the harness printed about it (its section from
/// `===MORGANA-XEN-CREATE-n===` on: `xl` messages, the VIF and CHECK markers,
/// `guest n ends`, Xen's lines meanwhile; the console is not repeated); then the last
/// [`REPORT_TAIL_LINES`] lines of the whole output. The whole serial log, from Xen's
/// banner on: `MORGANA_XEN_VERBOSE=1` with `--nocapture`.
fn report(run: &XenRun, n: usize) -> String {
    let g = &run.guests[n];
    let text = run.output.replace('\r', "");
    let create = format!("===MORGANA-XEN-CREATE-{n}===");
    let console_begin = format!("===MORGANA-XEN-CONSOLE-BEGIN-{n}===");
    let console_end = format!("===MORGANA-XEN-CONSOLE-END-{n}===");
    let next = format!("===MORGANA-XEN-CREATE-{}===", n + 1);
    let mut harness = Vec::new();
    if let Some(at) = text.find(&create) {
        let mut in_console = false;
        for line in text[at..].lines() {
            if line.starts_with(&next) || line.starts_with("===MORGANA-XEN-DONE===") {
                break;
            }
            if line == console_begin {
                in_console = true;
                harness.push("(its console, as above)");
            } else if line == console_end {
                in_console = false;
            } else if !in_console {
                harness.push(line);
            }
        }
    } else {
        harness.push("(no CREATE marker for this guest in the output)");
    }
    // A check's soak can print hundreds of lines: keep the ends of the section.
    let omitted;
    if harness.len() > 2 * REPORT_SECTION_ENDS {
        omitted = format!(
            "... ({} lines) ...",
            harness.len() - 2 * REPORT_SECTION_ENDS
        );
        let end = harness.split_off(harness.len() - REPORT_SECTION_ENDS);
        harness.truncate(REPORT_SECTION_ENDS);
        harness.push(&omitted);
        harness.extend(end);
    }
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(REPORT_TAIL_LINES)..];
    format!(
        "--- guest {n}'s PV console ---\n{}\n--- guest {n}'s shutdown reason: {} ---\n\
         --- the harness about guest {n} ---\n{}\n--- the last {} lines of the whole \
         output (all of it: MORGANA_XEN_VERBOSE=1 with --nocapture) ---\n{}",
        g.console.trim_end(),
        g.shutdown,
        harness.join("\n"),
        tail.len(),
        tail.join("\n")
    )
}

/// [`report`] on a made-up run (no Xen boot): the guest's console and reason come
/// first, then its own harness lines without its console again nor another guest's,
/// then the tail of the output, cut to [`REPORT_TAIL_LINES`].
#[test]
fn a_failure_report_shows_the_guest_before_the_tail_of_the_log() {
    let mut output = String::from("(XEN) Xen version 4.17 banner\r\n");
    for i in 0..2 * REPORT_TAIL_LINES {
        output += &format!("(XEN) filler {i}\n");
    }
    for n in 0..2 {
        output += &format!(
            "===MORGANA-XEN-CREATE-{n}=== (dom0 up 1 s)\r\nParsing config from /guest/{n}\r\n\
             guest {n} ends (dom0 up 2 s; console log: 10 bytes)\r\n\
             ===MORGANA-XEN-CONSOLE-BEGIN-{n}===\r\nconsole of {n}\r\n\
             ===MORGANA-XEN-CONSOLE-END-{n}===\r\n===MORGANA-XEN-SHUTDOWN-{n}=crash===\r\n"
        );
    }
    output += "===MORGANA-XEN-DONE===\n";
    let guest = |n: usize| Guest {
        console: format!("console of {n}\n"),
        shutdown: "crash".to_string(),
        vif: None,
        check: None,
    };
    let run = XenRun {
        guests: vec![guest(0), guest(1)],
        output,
    };
    let r = report(&run, 1);
    let at = |s: &str| r.find(s).unwrap_or_else(|| panic!("no {s:?} in:\n{r}"));
    assert!(
        r.starts_with("--- guest 1's PV console ---\nconsole of 1\n"),
        "{r}"
    );
    assert!(at("shutdown reason: crash") < at("guest 1 ends"));
    assert!(at("Parsing config from /guest/1") < at("the last 150 lines"));
    let section = &r[at("--- the harness about")..at("--- the last 150 lines")];
    assert!(!section.contains("console of"), "{r}");
    assert!(!section.contains("/guest/0"), "{r}");
    assert!(!r.contains("banner") && !r.contains("filler 10\n"), "{r}");
    assert!(r.contains("filler 299\n===MORGANA-XEN-CREATE-0"), "{r}");
    assert!(r.ends_with("===MORGANA-XEN-DONE==="), "{r}");
}

/// Prints a line on the terminal whether the test passes or not (`eprintln!` in a test
/// is captured and shown only on failure).
fn print_figures(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "xen soak: {line}");
}

/// The debug key (`xl sysrq <domain> d`, a watch on control/sysrq) prints the kernel's
/// event channels, then netfront's rings and the stack's sockets, on the PV console.
#[test]
fn the_debug_key_prints_diagnostics_on_the_pv_console() {
    let run = run();
    let g = &run.guests[STATIC_WEBSITE];
    for text in [
        "xen diagnostics at ",
        "xen diagnostics: port ",
        " (device): pending ",
        "grant entries in use",
        "netfront diagnostics: rx ring req_prod ",
        "netfront diagnostics: tx ring req_prod ",
        "watchdog ",
        "direct diagnostics: ",
        " listen, ",
        // The flight recorder (what the harness dumps from a guest that triple-faults).
        "xen diagnostics: flight recorder: ",
    ] {
        assert!(
            g.console.contains(text),
            "no {text:?} on static-website's console:\n{}",
            g.console
        );
    }
}

/// The SHA-256 of `file`, by the host's sha256sum.
fn sha256(file: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(file)
        .output()
        .expect("sha256sum runs");
    assert!(out.status.success(), "sha256sum {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a checksum")
        .to_string()
}
