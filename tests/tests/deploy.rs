//! Deployment where people run VMs, with the static-website PVH image (built by the
//! current codegen with `MORGANA_TARGET=xen`):
//!
//! - under QEMU's `-machine microvm` (Firecracker's device model: virtio-mmio, no PCI),
//!   booted from the `<name>.microvm.qemu` codegen writes next to the image (qboot), with
//!   ACPI (the NIC found in the DSDT, interrupt-driven) serving every file byte for
//!   byte, without ACPI (found from `virtio_mmio.device=` on the command line, polled),
//!   and refused with the fix when QEMU's virtio-mmio is left legacy;
//! - as a libvirt domain: a private root `libvirtd` (tests/libvirt/private-libvirtd.sh),
//!   the `<name>.libvirt.xml` codegen writes next to the image, checked by
//!   `virt-xml-validate` (with `<name>.libvirt-xen.xml`, the Xen PVH form, and every
//!   libvirt file of codegen's goldens), `virsh create` with TCG (the file's `kvm`
//!   changed to `qemu`, its name and host port made unique), every file fetched through
//!   passt's port forward, `virsh destroy`;
//! - the `<name>.firecracker.json` written beside them, read as JSON;
//! - packed by scripts/oci-image as an OCI image layout for urunc, read back with
//!   `skopeo inspect` and `umoci unpack`.
//!
//! A tool that is missing fails the test under CI (`CI=true`) and skips it elsewhere,
//! saying which package brings it (scripts/setup.sh installs them all).

use morgana_tests::qemu::{Qemu, debug_exit_status};
use morgana_tests::workspace::{free_port, processes_with};
use morgana_tests::{build_kernel, curl, files_below, wait_for_200, workspace_root};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a boot may take on a busy machine (TCG).
const BOOT: Duration = Duration::from_secs(120);

/// Whether `tool` is installed; under CI its absence is a failure.
fn have(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
        || Path::new("/usr/sbin").join(tool).is_file();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is not installed (Debian package {package}; scripts/setup.sh installs it)"
        );
        eprintln!(
            "skipped: {tool} is not installed (Debian package {package}; run scripts/setup.sh)"
        );
    }
    found
}

/// A scratch directory of this test process, emptied first.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("morgana-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Fetches every file of the site from `base` and compares it byte for byte.
fn serves_every_file(base: &str) {
    let htdocs = workspace_root().join("appliances/static-website/htdocs");
    let files = files_below(&htdocs);
    assert!(files.len() >= 5, "the site has its files");
    for (key, path) in files {
        let want = std::fs::read(&path).expect("fixture");
        let got = curl(&format!("{base}/{key}"), &[]);
        assert_eq!(got.status, 200, "GET /{key}");
        assert_eq!(got.body, want, "GET /{key}: bytes differ");
    }
    assert_eq!(curl(&format!("{base}/missing.html"), &[]).status, 404);
}

/// Boots `image` from the `<name>.microvm.qemu` codegen wrote next to it, its host port
/// made `port`, with `edit` applied to each argument and `extra` after them.
fn boot_microvm_file(
    image: &Path,
    port: u16,
    edit: &dyn Fn(&str) -> String,
    extra: &[&str],
) -> Qemu {
    let forward = format!("hostfwd=tcp:127.0.0.1:{port}-:8080");
    Qemu::boot_file(
        image,
        "microvm.qemu",
        |arg| edit(&arg.replace("hostfwd=tcp:127.0.0.1:8080-:8080", &forward)),
        extra,
    )
}

#[test]
fn microvm_virtio_mmio_serves_every_file() {
    let image = build_kernel("static-website");
    let file = deployment_file(&image, "microvm.qemu");
    for arg in [
        "-machine\nmicrovm\n",
        "-bios\nqboot.rom\n",
        "-global\nvirtio-mmio.force-legacy=false\n",
        "-device\nvirtio-net-device,netdev=n0\n",
        "-netdev\nuser,id=n0,hostfwd=tcp:127.0.0.1:8080-:8080\n",
    ] {
        assert!(
            file.contains(arg),
            "{arg:?} in static-website.microvm.qemu:\n{file}"
        );
    }
    assert!(!file.contains("pci"), "no PCI device on microvm:\n{file}");

    // The generated file: QEMU 10's microvm with ACPI (its default, tables installed by
    // qboot): the transport is in the DSDT, its line on the second I/O APIC; QEMU puts
    // nothing on the command line. Here the command line names the same window again
    // (taken once) and a malformed one (ignored, with the reason).
    let port = free_port();
    let mut qemu = boot_microvm_file(
        &image,
        port,
        &|a| a.to_string(),
        &[
            "-append",
            "virtio_mmio.device=512@0xfeb02e00:47 virtio_mmio.device=junk",
        ],
    );
    let console = qemu.wait_for("serving", BOOT);
    assert!(
        console.contains("virtio-net virtio-mmio 0xfeb02e00 (512 bytes, IRQ 47)")
            && console.contains("INTx (IRQ 47"),
        "the NIC is found over virtio-mmio and interrupts; console:\n{console}"
    );
    assert!(
        console.contains("ignored virtio_mmio.device=junk: no `@<base>` after the size"),
        "console:\n{console}"
    );
    wait_for_200(port, BOOT, || qemu.serial());
    serves_every_file(&format!("http://127.0.0.1:{port}"));
    drop(qemu);

    // The same file with microvm's ACPI off: QEMU passes `virtio_mmio.device=512@0x...:<irq>`
    // on the command line; no I/O APIC is described, so the driver polls (and says so).
    let port = free_port();
    let acpi_off = |a: &str| {
        if a == "microvm" {
            "microvm,acpi=off".to_string()
        } else {
            a.to_string()
        }
    };
    let mut qemu = boot_microvm_file(&image, port, &acpi_off, &[]);
    let console = qemu.wait_for("serving", BOOT);
    assert!(
        console.contains("virtio-net virtio-mmio 0xfeb") && console.contains("polling every"),
        "console:\n{console}"
    );
    wait_for_200(port, BOOT, || qemu.serial());
    let index = curl(&format!("http://127.0.0.1:{port}/"), &[]);
    assert_eq!(index.status, 200);
    drop(qemu);

    // QEMU's virtio-mmio left legacy (its default without the file's `-global`): refused
    // with the fix.
    let legacy = |a: &str| a.replace("force-legacy=false", "force-legacy=true");
    let qemu = boot_microvm_file(&image, free_port(), &legacy, &[]);
    let (status, console) = qemu.wait_exit(BOOT);
    assert!(
        console.contains(
            "morgana: net: the virtio-mmio device at 0xfeb02e00 is legacy-only (version 1); QEMU needs -global virtio-mmio.force-legacy=false"
        ),
        "console:\n{console}"
    );
    assert_eq!(
        status.code(),
        Some(debug_exit_status(1)),
        "the start error status"
    );
}

/// A deployment file codegen wrote next to `image` (`<image>.<suffix>`).
fn deployment_file(image: &Path, suffix: &str) -> String {
    let path = PathBuf::from(format!("{}.{suffix}", image.display()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `text` with `from` replaced by `to`, where `from` occurs exactly once.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "{from} once in:\n{text}");
    text.replacen(from, to, 1)
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn validate(xml: &str, file: &Path) {
    std::fs::write(file, xml).expect("write XML");
    let out = run(Command::new("virt-xml-validate").arg(file).arg("domain"));
    assert!(
        out.status.success(),
        "virt-xml-validate {}:\n{}{}\n{xml}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private libvirtd and the domain it runs; both go when dropped.
struct Libvirt {
    daemon: Child,
    dir: PathBuf,
    domain: String,
}

impl Libvirt {
    fn start(dir: &Path, domain: &str) -> Libvirt {
        let log = std::fs::File::create(dir.join("libvirtd.log")).expect("log");
        let daemon = Command::new(workspace_root().join("tests/libvirt/private-libvirtd.sh"))
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start private-libvirtd.sh");
        let lv = Libvirt {
            daemon,
            dir: dir.to_path_buf(),
            domain: domain.to_string(),
        };
        let start = Instant::now();
        while !dir.join("sock/libvirt-sock").exists() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "libvirtd did not open its socket:\n{}",
                lv.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        lv
    }

    fn uri(&self) -> String {
        format!(
            "qemu:///system?socket={}",
            self.dir.join("sock/libvirt-sock").display()
        )
    }

    fn virsh(&self, args: &[&str]) -> Output {
        run(Command::new("virsh").arg("-c").arg(self.uri()).args(args))
    }

    fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("libvirtd.log")).unwrap_or_default()
    }

    fn console(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("log/{}-console.log", self.domain)))
            .unwrap_or_default()
            .replace("\r\n", "\n")
    }
}

impl Drop for Libvirt {
    fn drop(&mut self) {
        let _ = self.virsh(&["destroy", &self.domain]);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // A QEMU that outlived the daemon (a failed destroy): ours by its unique name.
        for pid in processes_with(&["qemu-system-x86_64", &format!("guest={}", self.domain)]) {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

#[test]
fn libvirt_domain_boots_serves_and_is_destroyed() {
    if !(have("libvirtd", "libvirt-daemon")
        && have("virsh", "libvirt-clients")
        && have("virt-xml-validate", "libvirt-clients")
        && have("passt", "passt"))
    {
        return;
    }
    let image = build_kernel("static-website");
    let dir = scratch("libvirt");
    let name = format!("morgana-static-website-{}", std::process::id());
    let port = free_port();

    // The Xen PVH form of the same build validates, and so does every libvirt file of
    // codegen's goldens (a disk, a read-only one, UDP forwards, ...).
    let xen = deployment_file(&image, "libvirt-xen.xml");
    assert!(xen.contains("<type arch='x86_64' machine='xenpvh'>xenpvh</type>"));
    validate(&xen, &dir.join("xen.xml"));
    let mut checked = 0;
    let goldens = ["codegen/tests/golden", "codegen/tests/tls"]
        .into_iter()
        .flat_map(|d| files_below(&workspace_root().join(d)));
    for (_, path) in goldens {
        if path.extension().is_some_and(|e| e == "xml") {
            let text = std::fs::read_to_string(&path).expect("golden");
            validate(&text, &dir.join("golden.xml"));
            checked += 1;
        }
    }
    assert!(checked >= 16, "{checked} golden libvirt files");

    // The QEMU form, as codegen wrote it, with what a second instance on a host without
    // usable KVM changes: TCG, its own name (and console log), its own host port.
    let xml = deployment_file(&image, "libvirt.xml");
    assert!(
        xml.contains(&format!("<kernel>{}</kernel>", image.display())),
        "{xml}"
    );
    let xml = replace_once(&xml, "<domain type='kvm'>", "<domain type='qemu'>");
    let xml = replace_once(
        &xml,
        "<name>static-website</name>",
        &format!("<name>{name}</name>"),
    );
    let xml = replace_once(
        &xml,
        "/static-website-console.log'",
        &format!("/{name}-console.log'"),
    );
    let xml = replace_once(
        &xml,
        "<range start='8080' to='8080'/>",
        &format!("<range start='{port}' to='8080'/>"),
    );
    let file = dir.join("static-website.libvirt.xml");
    validate(&xml, &file);

    let lv = Libvirt::start(&dir, &name);
    let out = lv.virsh(&["create", &file.display().to_string()]);
    assert!(
        out.status.success(),
        "virsh create:\n{}\nlibvirtd:\n{}\nQEMU log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        lv.daemon_log(),
        std::fs::read_to_string(dir.join(format!("log/{name}.log"))).unwrap_or_default()
    );
    wait_for_200(port, BOOT, || lv.console());
    serves_every_file(&format!("http://127.0.0.1:{port}"));
    let console = lv.console();
    assert!(
        console.contains("virtio-net PCI") && console.contains("static-website: serving"),
        "console:\n{console}"
    );
    let state = lv.virsh(&["domstate", &name]);
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "running");

    let out = lv.virsh(&["destroy", &name]);
    assert!(
        out.status.success(),
        "virsh destroy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A transient domain is gone once destroyed, and so is its QEMU.
    assert!(!lv.virsh(&["domstate", &name]).status.success());
    let start = Instant::now();
    while !processes_with(&["qemu-system-x86_64", &format!("guest={name}")]).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QEMU outlived destroy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(lv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn firecracker_configuration_is_written_next_to_the_image() {
    // Not booted (no Firecracker binary in any registry this project may use): the file
    // codegen writes is read as Firecracker reads it, as JSON.
    let image = build_kernel("static-website");
    let text = deployment_file(&image, "firecracker.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(
        json["boot-source"]["kernel_image_path"].as_str(),
        Some(image.display().to_string().as_str()),
        "{text}"
    );
    assert_eq!(json["machine-config"]["mem_size_mib"], 32, "{text}");
    assert_eq!(json["machine-config"]["vcpu_count"], 1, "{text}");
    let nics = json["network-interfaces"].as_array().expect("NICs");
    assert_eq!(nics.len(), 1, "{text}");
    assert_eq!(nics[0]["host_dev_name"], "tap0", "{text}");
    assert_eq!(json["drives"].as_array().map(Vec::len), Some(0), "{text}");
}

/// The members of a flat JSON object of strings, as scripts/oci-image writes urunc.json.
fn flat_json(text: &str) -> Vec<(String, String)> {
    let body = text.trim().trim_start_matches('{').trim_end_matches('}');
    body.split(", ")
        .map(|member| {
            let (k, v) = member.split_once(": ").expect("member");
            (
                k.trim_matches('"').to_string(),
                v.trim_matches('"').to_string(),
            )
        })
        .collect()
}

fn base64_decode(s: &str) -> String {
    let mut child = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("base64");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(s.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("base64 -d");
    assert!(out.status.success(), "base64 -d {s}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

#[test]
fn oci_image_layout_for_urunc() {
    if !(have("skopeo", "skopeo") && have("umoci", "umoci")) {
        return;
    }
    let image = build_kernel("static-website");
    let dir = scratch("oci");
    let script = workspace_root().join("scripts/oci-image");
    let cmdline = r#"--log=info greeting="a \b""#;
    let pack = |out: &Path| {
        let o = run(Command::new(&script)
            .arg("--kernel")
            .arg(&image)
            .arg("--out")
            .arg(out)
            .args(["--tag", "v1", "--cmdline", cmdline]));
        assert!(
            o.status.success(),
            "oci-image: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let layout = dir.join("layout");
    pack(&layout);

    let labels = [
        ("com.urunc.unikernel.binary", "/unikernel/static-website"),
        ("com.urunc.unikernel.unikernelType", "mirage"),
        ("com.urunc.unikernel.hypervisor", "qemu"),
        (
            "com.urunc.unikernel.cmdline",
            r#"--log=info greeting=\"a \\b\""#,
        ),
        ("com.urunc.unikernel.useDMBlock", "false"),
    ];
    let reference = format!("oci:{}:v1", layout.display());
    let inspect = run(Command::new("skopeo").args(["inspect", &reference]));
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let inspect = String::from_utf8_lossy(&inspect.stdout).to_string();
    for (k, v) in labels {
        assert!(
            inspect.contains(&format!("\"{k}\": \"{v}\"")),
            "label {k} = {v} in:\n{inspect}"
        );
    }
    assert!(inspect.contains("\"Architecture\": \"amd64\""), "{inspect}");
    let raw = run(Command::new("skopeo").args(["inspect", "--raw", &reference]));
    let manifest = String::from_utf8_lossy(&raw.stdout).to_string();
    assert!(manifest.contains("application/vnd.oci.image.manifest.v1+json"));
    for (k, v) in labels {
        assert!(
            manifest.contains(&format!("\"{k}\": \"{v}\"")),
            "annotation {k} in:\n{manifest}"
        );
    }

    // umoci validates the layout as it unpacks it: the kernel and urunc.json.
    let bundle = dir.join("bundle");
    let out = run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:v1", layout.display()))
        .arg(&bundle));
    assert!(
        out.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kernel = std::fs::read(bundle.join("rootfs/unikernel/static-website")).expect("kernel");
    assert_eq!(
        kernel,
        std::fs::read(&image).expect("image"),
        "kernel bytes"
    );
    let urunc = std::fs::read_to_string(bundle.join("rootfs/urunc.json")).expect("urunc.json");
    let decoded: Vec<(String, String)> = flat_json(&urunc)
        .into_iter()
        .map(|(k, v)| (k, base64_decode(&v)))
        .collect();
    let want: Vec<(String, String)> = [
        ("com.urunc.unikernel.binary", "/unikernel/static-website"),
        ("com.urunc.unikernel.unikernelType", "mirage"),
        ("com.urunc.unikernel.hypervisor", "qemu"),
        ("com.urunc.unikernel.cmdline", cmdline),
        ("com.urunc.unikernel.useDMBlock", "false"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(decoded, want, "urunc.json:\n{urunc}");

    // Reproducible: the same kernel and options give the same digests.
    let again = dir.join("again");
    pack(&again);
    assert_eq!(
        std::fs::read(layout.join("index.json")).expect("index"),
        std::fs::read(again.join("index.json")).expect("index")
    );

    // Bad input: a clear message and failure.
    let o = run(Command::new(&script)
        .args(["--kernel", "/nonexistent/kernel", "--out"])
        .arg(dir.join("x")));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no kernel image at /nonexistent/kernel"));
    let o = run(Command::new(&script)
        .arg("--kernel")
        .arg(workspace_root().join("Cargo.toml"))
        .arg("--out")
        .arg(dir.join("x")));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not an ELF file"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The generated `.qemu` asks for KVM, then TCG; scripts/morgana-run runs it as written
/// on a host with VT-x/AMD-V, with TCG alone (and says why) on one without (this
/// project's machines, whose nested KVM cannot run the guest's kernel code), and as
/// `MORGANA_ACCEL` says when that is set. QEMU here is a stand-in that records its
/// arguments: the runner's choice is what is under test.
#[test]
fn morgana_run_chooses_the_accelerator() {
    let spec = std::fs::read_to_string(
        workspace_root().join("codegen/tests/golden/appliance-hello-xen/hello.qemu"),
    )
    .expect("hello.qemu golden");
    assert!(spec.contains("\n-accel\nkvm\n-accel\ntcg\n"), "{spec}");
    let dir = scratch("accel");
    let image = dir.join("hello");
    std::fs::write(&image, b"").expect("image");
    std::fs::write(dir.join("hello.qemu"), &spec).expect("spec");
    let fake = fake_qemu(&dir);
    let hardware = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .split_whitespace()
        .any(|w| w == "vmx" || w == "svm");
    let run = |accel: Option<&str>| -> (Vec<String>, String) {
        let mut cmd = Command::new(workspace_root().join("scripts/morgana-run"));
        cmd.arg(&image).env("MORGANA_QEMU", &fake).current_dir(&dir);
        match accel {
            Some(a) => cmd.env("MORGANA_ACCEL", a),
            None => cmd.env_remove("MORGANA_ACCEL"),
        };
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "morgana-run: {stderr}");
        let args = std::fs::read_to_string(dir.join("args")).expect("args");
        let accels: Vec<String> = args
            .lines()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|w| w[0] == "-accel")
            .map(|w| w[1].to_string())
            .collect();
        (accels, stderr)
    };
    let (accels, stderr) = run(None);
    if hardware {
        assert_eq!(accels, ["kvm", "tcg"], "{stderr}");
    } else {
        assert_eq!(accels, ["tcg"], "{stderr}");
        assert!(
            stderr.contains("has no VT-x/AMD-V") && stderr.contains("QEMU runs with TCG"),
            "{stderr}"
        );
    }
    let (accels, stderr) = run(Some("tcg"));
    assert_eq!(accels, ["tcg"]);
    assert!(!stderr.contains("VT-x"), "{stderr}");
    let (accels, _) = run(Some("kvm"));
    assert_eq!(accels, ["kvm"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A port read at boot moves its forward: static-website's `.qemu` forwards 8080 and
/// says `# port --port 8080`; `cargo run -- --port=N` (morgana-run's ARGS) boots it with
/// `hostfwd=tcp:127.0.0.1:N-:N` and says where it listens, the last `--port` winning.
/// QEMU is a stand-in that records its arguments.
#[test]
fn morgana_run_moves_the_forward_with_a_boot_time_port() {
    let spec = std::fs::read_to_string(
        workspace_root()
            .join("codegen/tests/golden/appliance-static-website-xen/static-website.qemu"),
    )
    .expect("static-website.qemu golden");
    assert!(spec.contains("\n# port --port 8080\n"), "{spec}");
    let dir = scratch("port-follows");
    let image = dir.join("static-website");
    std::fs::write(&image, b"").expect("image");
    std::fs::write(dir.join("static-website.qemu"), &spec).expect("spec");
    let fake = fake_qemu(&dir);
    let (first, port) = (free_port(), free_port());
    let out = run(Command::new(workspace_root().join("scripts/morgana-run"))
        .arg(&image)
        .arg(format!("--port={first}"))
        .arg(format!("--port={port}"))
        .env("MORGANA_QEMU", &fake)
        .env("MORGANA_ACCEL", "tcg")
        .current_dir(&dir));
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "morgana-run: {stderr}");
    let args = std::fs::read_to_string(dir.join("args")).expect("args");
    assert!(
        args.contains(&format!(
            "user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:{port}\n"
        )),
        "{args}"
    );
    assert!(!args.contains("8080"), "{args}");
    assert!(
        args.contains(&format!("\n-append\n--port={first} --port={port}\n")),
        "{args}"
    );
    assert!(
        stderr.contains(&format!(
            "morgana-run: --port={port}: QEMU forwards 127.0.0.1:{port} to the appliance's port {port} (the file says 8080)\n"
        )) && stderr.contains(&format!(
            "morgana-run: booting static-website under QEMU; it will listen on http://127.0.0.1:{port}/\n"
        )),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A stand-in for QEMU in `dir` that writes its arguments, one per line, to `dir/args`.
fn fake_qemu(dir: &Path) -> PathBuf {
    let fake = dir.join("fake-qemu");
    std::fs::write(
        &fake,
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$(dirname \"$0\")/args\"\n",
    )
    .expect("fake QEMU");
    let ok = Command::new("chmod")
        .arg("+x")
        .arg(&fake)
        .status()
        .expect("chmod");
    assert!(ok.success());
    fake
}
