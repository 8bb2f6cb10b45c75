//! A new user's first ten minutes, in a scratch copy of the workspace
//! (`target/e2e-newcomer/ws`, built in `target/e2e-newcomer/target`):
//!
//! - a broken appliance stops `cargo build` with Cargo's own `error:` lines and nothing
//!   of a failed build script's dump: the whole terminal output of a few broken (and
//!   warned-about) builds is pinned in `tests/terminal/*.txt` (`UPDATE_GOLDEN=1`
//!   re-blesses), and README's example is one of them;
//! - `cargo new-appliance` creates an appliance from every starting point, which builds
//!   and runs on both targets; taken and invalid names are refused;
//! - `cargo run` of a kernel says where it listens and how to stop it, refuses a busy
//!   host port before QEMU starts, and Ctrl-C (SIGINT to the process group) stops it
//!   with the signal's status and no QEMU left.

use morgana_tests::workspace::{free_port, processes_with, sync};
use morgana_tests::{curl, wait_for_port, workspace_root};
use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// How the workspace's root is shown in pinned output.
const SHOWN_ROOT: &str = "~/morgana";

fn base() -> PathBuf {
    workspace_root().join("target").join("e2e-newcomer")
}

fn scratch_target() -> PathBuf {
    base().join("target")
}

/// The scratch workspace, synchronised with the real tree once per run; the guard
/// serialises the tests that change it or run cargo in it.
fn scratch() -> (PathBuf, MutexGuard<'static, ()>) {
    static LOCK: Mutex<()> = Mutex::new(());
    static SYNCED: OnceLock<PathBuf> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let ws = SYNCED
        .get_or_init(|| {
            let ws = base().join("ws");
            sync(&workspace_root(), &ws);
            ws
        })
        .clone();
    (ws, guard)
}

fn cargo_cmd(ws: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO"));
    cmd.current_dir(ws)
        .args(args)
        .env("CARGO_TARGET_DIR", scratch_target())
        .env("CARGO_TERM_COLOR", "never")
        .env_remove("MORGANA_TARGET")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

fn cargo(ws: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    cargo_cmd(ws, args, env).output().expect("cargo runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Cargo's output as a user reads it, with what differs from run to run replaced: the
/// workspace's path, the build time, and waits for locks other cargo processes hold.
fn normalise(out: &str, ws: &Path) -> String {
    let mut lines = Vec::new();
    for line in out.lines() {
        if line
            .trim_start()
            .starts_with("Blocking waiting for file lock")
        {
            continue;
        }
        let mut line = line.replace(&ws.display().to_string(), SHOWN_ROOT);
        if let Some(i) = line.find(" target(s) in ") {
            line.truncate(i + " target(s) in ".len());
            line.push_str("[TIME]");
        }
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

fn updating() -> bool {
    std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1")
}

/// An edit of one file of the scratch workspace, undone when dropped.
struct Edit {
    path: PathBuf,
    original: Option<Vec<u8>>,
}

impl Edit {
    fn replace(ws: &Path, file: &str, from: &str, to: &str) -> Edit {
        let path = ws.join(file);
        let original = std::fs::read_to_string(&path).expect("file to edit");
        assert!(original.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, original.replacen(from, to, 1)).expect("write edit");
        Edit {
            path,
            original: Some(original.into_bytes()),
        }
    }

    fn create(path: PathBuf) -> Edit {
        Edit {
            path,
            original: None,
        }
    }
}

impl Drop for Edit {
    fn drop(&mut self) {
        match &self.original {
            Some(data) => std::fs::write(&self.path, data).expect("undo edit"),
            None if self.path.is_dir() => std::fs::remove_dir_all(&self.path).expect("undo"),
            None => {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// One pinned build: edits, then `cargo build --release -p package`.
struct Case {
    /// The file `tests/terminal/<name>.txt`.
    name: &'static str,
    package: &'static str,
    /// (file, text, replacement)
    edits: &'static [(&'static str, &'static str, &'static str)],
    env: &'static [(&'static str, &'static str)],
    success: bool,
}

const CASES: &[Case] = &[
    Case {
        name: "unknown-component",
        package: "static-website",
        edits: &[(
            "appliances/static-website/appliance.ron",
            "\"http\": HttpServer(",
            "\"http\": HttpSrever(",
        )],
        env: &[],
        success: false,
    },
    Case {
        name: "syntax-error",
        package: "hello",
        edits: &[(
            "appliances/hello/appliance.ron",
            "\"audience\": \"world\",",
            "\"audience\": \"world\"",
        )],
        env: &[],
        success: false,
    },
    Case {
        name: "two-errors",
        package: "hello",
        edits: &[(
            "appliances/hello/appliance.ron",
            "heap_mib: 1,",
            "heap_mib: \"one\",\n    heap_kib: 1024,",
        )],
        env: &[],
        success: false,
    },
    Case {
        name: "missing-dependency",
        package: "static-website",
        edits: &[(
            "appliances/static-website/Cargo.toml",
            "morgana-http.workspace = true\n",
            "",
        )],
        env: &[],
        success: false,
    },
    Case {
        name: "warnings",
        package: "hello",
        edits: &[(
            "appliances/hello/appliance.ron",
            "devices: {},",
            "devices: {\n        \"net\": Network(tap: \"tap0\"),\n    },",
        )],
        env: &[("MORGANA_TARGET", "xen")],
        success: true,
    },
    // A mistake in data compiled at build time (a component's compiler, here the
    // redirects file's) comes the same way, at the data file's own line and column.
    Case {
        name: "bad-redirect",
        package: "static-website",
        edits: &[(
            "appliances/static-website/redirects",
            "/docs/appliance-ron.html          308",
            "/docs/appliance-ron.html          399",
        )],
        env: &[],
        success: false,
    },
    Case {
        name: "big-site",
        package: "static-website",
        edits: &[(
            "appliances/static-website/appliance.ron",
            "Crunch(dir: \"htdocs\")",
            "Crunch(dir: \"big\")",
        )],
        env: &[],
        success: true,
    },
];

/// The command a pinned output comes from, as README shows it.
fn command_line(case: &Case) -> String {
    let env: String = case.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    format!("$ {env}cargo build --release -p {}", case.package)
}

fn pinned(case: &Case) -> PathBuf {
    workspace_root()
        .join("tests/terminal")
        .join(format!("{}.txt", case.name))
}

#[test]
fn broken_builds_print_cargo_errors_without_the_build_script_dump() {
    let (ws, _guard) = scratch();
    // Build once as it is, so that the pinned builds compile only the appliance.
    for package in ["hello", "static-website"] {
        for env in [&[][..], &[("MORGANA_TARGET", "xen")][..]] {
            let out = cargo(&ws, &["build", "--release", "-p", package], env);
            assert!(out.status.success(), "{package}: {}", text(&out.stderr));
        }
    }
    let mut failures = Vec::new();
    for case in CASES {
        let mut edits: Vec<Edit> = case
            .edits
            .iter()
            .map(|(f, a, b)| Edit::replace(&ws, f, a, b))
            .collect();
        if case.name == "big-site" {
            // 1,000 files: enough to be announced before rustc crunches them.
            let big = ws.join("appliances/static-website/big");
            let _ = std::fs::remove_dir_all(&big);
            edits.push(Edit::create(big.clone()));
            for i in 0..1000 {
                let dir = big.join(format!("d{}", i / 100));
                std::fs::create_dir_all(&dir).expect("mkdir");
                std::fs::write(dir.join(format!("{i}.txt")), format!("file {i:04}\n"))
                    .expect("write");
            }
        }
        let out = cargo(&ws, &["build", "--release", "-p", case.package], case.env);
        drop(edits);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.success(),
            case.success,
            "{}: cargo build's status: {}",
            case.name,
            stderr
        );
        for dump in [
            "failed to run custom build command",
            "--- stdout",
            "--- stderr",
            "cargo:",
            "error[E",
            "could not compile",
        ] {
            assert!(
                !stderr.contains(dump),
                "{}: `{dump}` in the output:\n{stderr}",
                case.name
            );
        }
        let shown = format!("{}\n{}", command_line(case), normalise(&stderr, &ws));
        let file = pinned(case);
        if updating() {
            std::fs::write(&file, &shown).expect("bless");
            if case.name == README_CASE {
                bless_readme(&shown);
            }
            continue;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        if want != shown {
            failures.push(format!(
                "{} differs (UPDATE_GOLDEN=1 re-blesses)\n--- expected\n{want}--- actual\n{shown}",
                file.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The case README.md shows.
const README_CASE: &str = "unknown-component";

/// Replaces README's copy of the `README_CASE` output (the `console` block that starts
/// with its command line) with `shown`.
fn bless_readme(shown: &str) {
    let path = workspace_root().join("README.md");
    let readme = std::fs::read_to_string(&path).expect("README");
    let first = shown.lines().next().expect("command line");
    let start = readme
        .find(&format!("```console\n{first}\n"))
        .expect("README has a console block for the pinned broken build")
        + "```console\n".len();
    let end = start + readme[start..].find("```\n").expect("end of the block");
    let updated = format!("{}{shown}{}", &readme[..start], &readme[end..]);
    std::fs::write(&path, updated).expect("write README");
}

#[test]
fn readme_shows_a_real_broken_build() {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let case = CASES
        .iter()
        .find(|c| c.name == README_CASE)
        .expect("README's case");
    let pinned = std::fs::read_to_string(pinned(case)).expect("pinned output");
    assert!(
        readme.contains(&format!("```console\n{pinned}```\n")),
        "README.md must show {} as it is (tests/terminal/{}.txt; UPDATE_GOLDEN=1 cargo test -p morgana-tests --test newcomer rewrites both):\n{pinned}",
        command_line(case),
        case.name
    );
}

/// `cargo new-appliance ARGS` in the scratch workspace.
fn new_appliance(ws: &Path, args: &[&str]) -> Output {
    let mut all = vec!["new-appliance"];
    all.extend_from_slice(args);
    cargo(ws, &all, &[])
}

#[test]
fn new_appliance_refuses_taken_and_invalid_names() {
    let (ws, _guard) = scratch();
    let manifest = std::fs::read_to_string(ws.join("Cargo.toml")).expect("Cargo.toml");
    let listing = |ws: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(ws.join("appliances"))
            .expect("appliances")
            .map(|e| e.expect("entry").file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(&ws);
    for (args, says) in [
        (&["hello"][..], "error: appliances/hello already exists"),
        (
            &["smoltcp"][..],
            "error: `smoltcp` is already the name of a package",
        ),
        (
            &["morgana_http"][..],
            "error: `morgana-http` is already the name of a package",
        ),
        (&["My-Site"][..], "`M` is upper case"),
        (&["my.site"][..], "invalid character `.`"),
        (
            &["x", "--from", "nope"][..],
            "there is no starting point `nope`",
        ),
    ] {
        let out = new_appliance(&ws, args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let out = new_appliance(&ws, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("usage: cargo new-appliance NAME"));
    assert_eq!(
        std::fs::read_to_string(ws.join("Cargo.toml")).expect("Cargo.toml"),
        manifest,
        "the workspace is unchanged"
    );
    assert_eq!(listing(&ws), before, "nothing was created");
}

/// The starting points, as `cargo new-appliance --list` shows them.
fn starters(ws: &Path) -> Vec<String> {
    let out = new_appliance(ws, &["--list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn new_appliance_from_every_starter_builds_and_runs_on_both_targets() {
    let (ws, _guard) = scratch();
    let starters = starters(&ws);
    assert!(
        starters.len() >= 2,
        "hello and static-website are starters: {starters:?}"
    );
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    for starter in &starters {
        let name = match starter.as_str() {
            "hello" => "greeter".to_string(),
            "static-website" => "my-site".to_string(),
            other => format!("my-{other}"),
        };
        let out = new_appliance(&ws, &[&name, "--from", starter]);
        let stdout = text(&out.stdout);
        assert!(out.status.success(), "{name}: {}", text(&out.stderr));
        if name == "my-site" {
            let shown = format!(
                "```console\n$ cargo new-appliance my-site --from static-website\n{stdout}```\n"
            );
            assert!(
                readme.contains(&shown),
                "README.md must show `cargo new-appliance` as it is:\n{shown}"
            );
        }
        for line in [
            format!("    cargo build --release -p {name}\n"),
            format!("    cargo run --release -p {name}\n"),
        ] {
            assert!(stdout.contains(&line), "{name}: no {line:?} in:\n{stdout}");
        }
        let dir = ws.join("appliances").join(&name);
        let ron = std::fs::read_to_string(dir.join("appliance.ron")).expect("appliance.ron");
        assert!(ron.contains(&format!("name: \"{name}\"")), "{ron}");
        let manifest = std::fs::read_to_string(ws.join("Cargo.toml")).expect("Cargo.toml");
        assert!(manifest.contains(&format!("\"appliances/{name}\",")));
        match starter.as_str() {
            "hello" => check_hello(&ws, &name),
            "static-website" => check_site(&ws, &name),
            "kv" => check_kv(&ws, &name),
            "udp-echo" => check_udp_echo(&ws, &name),
            "dns" => check_dns(&ws, &name),
            other => panic!(
                "the starting point `{other}` has no check here: add one to tests/tests/newcomer.rs (build it for both targets and run it)"
            ),
        }
    }
}

fn build(ws: &Path, name: &str, xen: bool) {
    let env: &[(&str, &str)] = if xen {
        &[("MORGANA_TARGET", "xen")]
    } else {
        &[]
    };
    let out = cargo(ws, &["build", "--release", "-p", name], env);
    assert!(
        out.status.success(),
        "{name} (xen: {xen}): {}",
        text(&out.stderr)
    );
}

fn check_hello(ws: &Path, name: &str) {
    build(ws, name, false);
    let out = cargo(ws, &["run", "--release", "--quiet", "-p", name], &[]);
    assert_eq!(
        text(&out.stdout),
        "Hello, world!\n",
        "{}",
        text(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));

    build(ws, name, true);
    let out = cargo(
        ws,
        &["run", "--release", "--quiet", "-p", name],
        // QEMU, as the README's first run shows it (morgana-run may otherwise pick
        // morgana-tender for an appliance without a network: tests/tender_run.rs).
        &[("MORGANA_TARGET", "xen"), ("MORGANA_RUNNER", "qemu")],
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(
        stderr.contains(&format!("morgana-run: booting {name} under QEMU\n")),
        "{stderr}"
    );
    assert!(stderr.contains("press Ctrl-C to stop it"), "{stderr}");
    assert!(stdout.contains("Hello, world!"), "{stdout}\n{stderr}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "powered off: {stdout}\n{stderr}"
    );
}

/// `cargo run` in a process group of its own, as a shell runs a command in the
/// foreground: a terminal's Ctrl-C sends SIGINT to that whole group.
fn spawn_run(ws: &Path, name: &str, env: &[(&str, &str)]) -> Child {
    cargo_cmd(ws, &["run", "--release", "--quiet", "-p", name], env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("cargo run starts")
}

/// Sends SIGINT to the process group `pgid`, as Ctrl-C in a terminal does.
fn ctrl_c(pgid: u32) {
    // The shell's `kill` builtin: no procps needed.
    let status = Command::new("bash")
        .args(["-c", &format!("kill -INT -- -{pgid}")])
        .status()
        .expect("bash runs");
    assert!(status.success(), "kill -INT -{pgid}");
}

fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("still running {limit:?} after Ctrl-C");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_all(mut r: impl Read) -> String {
    let mut s = String::new();
    let _ = r.read_to_string(&mut s);
    s
}

/// The UDP echo starter: it runs on Unix and echoes a datagram (socat as the client);
/// its kernel builds (tests/udp_echo.rs boots the appliance itself under QEMU).
fn check_udp_echo(ws: &Path, name: &str) {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("bind port 0")
        .port();
    let ron = ws.join("appliances").join(name).join("appliance.ron");
    let text_ron = std::fs::read_to_string(&ron).expect("appliance.ron");
    assert!(text_ron.contains("port: 7007"), "{text_ron}");
    std::fs::write(
        &ron,
        text_ron.replace("port: 7007", &format!("port: {port}")),
    )
    .expect("write port");
    build(ws, name, false);
    let mut run = spawn_run(ws, name, &[]);
    let start = Instant::now();
    let echoed = loop {
        let out = Command::new("socat")
            .args(["-t", "0.5", "-", &format!("UDP:127.0.0.1:{port}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(b"echo?")?;
                c.wait_with_output()
            })
            .expect("socat runs (scripts/setup.sh installs it)");
        if out.stdout == b"echo?" || start.elapsed() > Duration::from_secs(30) {
            break out.stdout;
        }
    };
    ctrl_c(run.id());
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(echoed, b"echo?", "{name} echoes on UDP port {port}");
    assert_eq!(status.signal(), Some(2), "Unix: {status}");
    build(ws, name, true);
}

/// The DNS starter: it runs on Unix and answers dig from its example zone; its kernel
/// builds (tests/dns.rs boots the appliance itself under QEMU and compares it with NSD).
fn check_dns(ws: &Path, name: &str) {
    let port = loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind port 0");
        let port = u.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            break port;
        }
    };
    let ron = ws.join("appliances").join(name).join("appliance.ron");
    let text_ron = std::fs::read_to_string(&ron).expect("appliance.ron");
    assert!(text_ron.contains("port: 5353"), "{text_ron}");
    std::fs::write(
        &ron,
        text_ron.replace("port: 5353", &format!("port: {port}")),
    )
    .expect("write port");
    build(ws, name, false);
    let mut run = spawn_run(ws, name, &[]);
    let start = Instant::now();
    let answer = loop {
        let out = Command::new("dig")
            .args(["+short", "+time=1", "+tries=1", "@127.0.0.1", "-p"])
            .arg(port.to_string())
            .args(["www.example.test", "A"])
            .output()
            .expect("dig runs (scripts/setup.sh installs it)");
        let text = text(&out.stdout);
        if text.contains("192.0.2.80") || start.elapsed() > Duration::from_secs(30) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    ctrl_c(run.id());
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert!(
        answer.contains("web.example.test.") && answer.contains("192.0.2.80"),
        "{name} answers on port {port}: {answer:?}"
    );
    assert_eq!(status.signal(), Some(2), "Unix: {status}");
    build(ws, name, true);
}

/// The starter's `redirects` file, compiled in at build time, is served.
fn compiled_in_redirect(url: &str) {
    let r = curl(&format!("{url}docs/ron"), &[]);
    assert_eq!(r.status, 308, "GET /docs/ron");
    assert_eq!(r.header("location"), Some("/docs/appliance-ron.html"));
}

fn check_site(ws: &Path, name: &str) {
    // A port of its own: the appliance listens on it on Unix, and QEMU forwards it.
    let port = free_port();
    let ron = ws.join("appliances").join(name).join("appliance.ron");
    let text_ron = std::fs::read_to_string(&ron).expect("appliance.ron");
    assert!(text_ron.contains("port: 8080"), "{text_ron}");
    std::fs::write(
        &ron,
        text_ron.replace("port: 8080", &format!("port: {port}")),
    )
    .expect("write port");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let url = format!("http://127.0.0.1:{port}/");
    let index = std::fs::read(ws.join("appliances").join(name).join("htdocs/index.html"))
        .expect("index.html");

    // Unix: a process that serves / until Ctrl-C.
    build(ws, name, false);
    let mut run = spawn_run(ws, name, &[]);
    wait_for_port(addr, Duration::from_secs(30));
    let got = curl(&url, &[]);
    assert_eq!((got.status, &got.body), (200, &index));
    compiled_in_redirect(&url);
    ctrl_c(run.id());
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(2), "Unix: {status}");

    // Xen: a kernel under QEMU. First with the port taken: refused before QEMU starts.
    build(ws, name, true);
    let xen = [("MORGANA_TARGET", "xen")];
    let holder = std::net::TcpListener::bind(addr).expect("hold the port");
    let out = cargo(ws, &["run", "--release", "--quiet", "-p", name], &xen);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "busy port: {stderr}");
    assert!(
        stderr.contains(&format!(
            "morgana-run: cannot boot {name}: host port {port} (tcp) is already in use"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "give the appliance another port in appliances/{name}/appliance.ron and rebuild"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("booting"), "QEMU did not start: {stderr}");
    drop(holder);

    // Then it boots, says where it listens, serves /, and Ctrl-C stops it.
    let mut run = spawn_run(ws, name, &xen);
    let served = (|| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            if let Ok(Some(status)) = run.try_wait() {
                return Err(format!("QEMU ended first: {status}"));
            }
            // Nothing listens until QEMU has set up its forward; then slirp accepts
            // before the guest is up: poll with short timeouts.
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let got = morgana_tests::raw_exchange(
                addr,
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                Duration::from_millis(500),
            );
            if got.starts_with(b"HTTP/1.1 200") {
                compiled_in_redirect(&url);
                return Ok(got);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err("no HTTP answer after 90 s".to_string())
    })();
    let pgid = run.id();
    ctrl_c(pgid);
    let status = wait_exit(&mut run, Duration::from_secs(20));
    let stderr = read_all(run.stderr.take().expect("stderr"));
    let stdout = read_all(run.stdout.take().expect("stdout"));
    let got = served.unwrap_or_else(|e| panic!("{e}\n{stderr}\n{stdout}"));
    assert!(
        got.ends_with(&index),
        "GET / returns index.html:\n{}",
        text(&got)
    );
    assert!(
        stderr.contains(&format!(
            "morgana-run: booting {name} under QEMU; it will listen on {url}\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("morgana-run: press Ctrl-C to stop it\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("morgana-run: stopped {name} (SIGINT)")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("{name}: serving")),
        "the job names itself: {stdout}"
    );
    assert_eq!(
        status.signal(),
        Some(2),
        "exits by SIGINT, as a shell reports (130): {status}\n{stderr}"
    );
    let image = scratch_target().join("release").join(name);
    let qemu = [
        String::from("qemu-system"),
        format!("-kernel {}", image.display()),
    ];
    let qemu: Vec<&str> = qemu.iter().map(String::as_str).collect();
    let left = processes_with(&qemu);
    assert!(left.is_empty(), "QEMU left running: {left:?}");

    // Killed outright (SIGKILL, as `Child::kill` does), the runner cannot pass anything
    // on: QEMU still goes (its parent-death signal).
    let mut run = spawn_run(ws, name, &xen);
    let start = Instant::now();
    while processes_with(&qemu).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QEMU never started"
        );
        assert!(run.try_wait().expect("try_wait").is_none(), "ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    run.kill().expect("SIGKILL");
    let status = run.wait().expect("wait");
    assert_eq!(status.signal(), Some(9));
    let start = Instant::now();
    while !processes_with(&qemu).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "QEMU outlived its runner: {:?}",
            processes_with(&qemu)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One RESP exchange (the request, then QUIT): the replies before QUIT's `+OK`.
fn resp(addr: SocketAddr, args: &[&str]) -> String {
    let mut request =
        morgana_tests::resp::encode(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>());
    request.extend_from_slice(&morgana_tests::resp::encode(&[b"QUIT"]));
    let got = text(&morgana_tests::raw_exchange(
        addr,
        &request,
        Duration::from_secs(10),
    ));
    got.strip_suffix("+OK\r\n").unwrap_or(&got).to_string()
}

fn check_kv(ws: &Path, name: &str) {
    // A port of its own: the appliance listens on it on Unix, and QEMU forwards it.
    let port = free_port();
    let ron = ws.join("appliances").join(name).join("appliance.ron");
    let text_ron = std::fs::read_to_string(&ron).expect("appliance.ron");
    assert!(text_ron.contains("port: 6379"), "{text_ron}");
    std::fs::write(
        &ron,
        text_ron.replace("port: 6379", &format!("port: {port}")),
    )
    .expect("write port");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // `cargo run` starts in the workspace: the disk image is made there (the starter's
    // `kv.img`, renamed with the appliance).
    assert!(
        text_ron.contains(&format!("image: \"{name}.img\"")),
        "{text_ron}"
    );
    let image = ws.join(format!("{name}.img"));
    let _ = std::fs::remove_file(&image);

    // Unix: a process that creates its disk image, acknowledges a write once it is on
    // the disk, and stops on Ctrl-C.
    build(ws, name, false);
    let mut run = spawn_run(ws, name, &[]);
    wait_for_port(addr, Duration::from_secs(30));
    assert_eq!(
        resp(addr, &["SET", "starter", "written by unix"]),
        "+OK\r\n"
    );
    ctrl_c(run.id());
    let status = wait_exit(&mut run, Duration::from_secs(10));
    assert_eq!(status.signal(), Some(2), "Unix: {status}");
    let stdout = read_all(run.stdout.take().expect("stdout"));
    assert!(
        stdout.contains(&format!(
            "{name}: serving the Redis protocol on redis://127.0.0.1:{port}/"
        )),
        "{stdout}"
    );
    let size = std::fs::metadata(&image)
        .expect("the disk image exists")
        .len();
    assert_eq!(size, 256 << 20, "created at size_mib");

    // Xen: a kernel under QEMU on the same image (the generated .qemu attaches it as a
    // virtio-blk disk): the key the Unix process wrote is there.
    build(ws, name, true);
    let xen = [("MORGANA_TARGET", "xen")];
    let mut run = spawn_run(ws, name, &xen);
    let served = (|| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            if let Ok(Some(status)) = run.try_wait() {
                return Err(format!("QEMU ended first: {status}"));
            }
            // slirp accepts before the guest is up: poll with short timeouts.
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let mut request = morgana_tests::resp::encode(&[b"GET", b"starter"]);
            request.extend_from_slice(&morgana_tests::resp::encode(&[b"QUIT"]));
            let got = morgana_tests::raw_exchange(addr, &request, Duration::from_millis(1000));
            if !got.is_empty() {
                return Ok(text(&got));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err("no Redis-protocol answer after 90 s".to_string())
    })();
    ctrl_c(run.id());
    let status = wait_exit(&mut run, Duration::from_secs(20));
    let stderr = read_all(run.stderr.take().expect("stderr"));
    let stdout = read_all(run.stdout.take().expect("stdout"));
    let got = served.unwrap_or_else(|e| panic!("{e}\n{stderr}\n{stdout}"));
    assert_eq!(got, "$15\r\nwritten by unix\r\n+OK\r\n", "{stdout}");
    assert!(
        stderr.contains(&format!(
            "morgana-run: booting {name} under QEMU; it will listen on redis://127.0.0.1:{port}/\n"
        )),
        "{stderr}"
    );
    assert_eq!(status.signal(), Some(2), "{status}\n{stderr}");
    let _ = std::fs::remove_file(&image);
}
