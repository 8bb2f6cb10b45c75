//! The HTTPS website (appliances/https-website) end to end: as a Unix process, as a
//! PVH image under QEMU with user networking (one boot) and on a tap in a network
//! namespace (one boot), checked with real clients — curl (every file byte for byte,
//! status codes, the redirect from plain HTTP, HSTS) and `openssl s_client` (TLS 1.3
//! and 1.2, ALPN, SNI, resumption) — and the images themselves: the private key lies
//! only inside `.morgana.secrets`, and a build without `Secrets` carries no key material
//! at all. A copy with `Secrets(from: Boot)` takes a certificate made at test time
//! through `MORGANA_SECRETS_DIR`, and refuses to start without one or with a bad one.
//!
//! The certificate is the appliance's development certificate, made by its build script
//! with openssl when `secrets/` is empty (never committed).

use morgana_tests::netns::{Netns, have};
use morgana_tests::qemu::Qemu;
use morgana_tests::workspace::free_port;
use morgana_tests::{
    Reply, Running, build_appliance, build_kernel, curl, files_below, kernel_target_dir,
    raw_exchange, wait_for_port, workspace_root,
};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The ports in appliances/https-website/appliance.ron.
const HTTPS_PORT: u16 = 8443;
const HTTP_PORT: u16 = 8081;

/// The pages it serves: static-website's (its appliance.ron crunches that directory).
fn site_dir() -> PathBuf {
    workspace_root().join("appliances/static-website/htdocs")
}

fn appliance_dir() -> PathBuf {
    workspace_root().join("appliances/https-website")
}

fn cert() -> PathBuf {
    appliance_dir().join("secrets/tls.crt")
}

/// GET `url` over HTTPS, trusting only the appliance's certificate.
fn get(url: &str) -> Reply {
    let cert = cert();
    curl(url, &["--cacert", cert.to_str().expect("utf-8 path")])
}

/// Every file of the site, byte for byte, with HSTS; a missing file is a 404 with HSTS.
fn check_site(base: &str) {
    let files = files_below(&site_dir());
    assert!(files.len() >= 5, "the site has its files: {files:?}");
    for (key, path) in &files {
        let r = get(&format!("{base}/{key}"));
        assert_eq!(r.status, 200, "GET /{key}");
        assert_eq!(
            r.body,
            std::fs::read(path).expect("site file"),
            "GET /{key}: the bytes served"
        );
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000"),
            "GET /{key}: HSTS"
        );
    }
    let r = get(&format!("{base}/no-such-page"));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    // A range request over HTTPS (large downloads resume).
    let cert = cert();
    let r = curl(
        &format!("{base}/index.html"),
        &["--cacert", cert.to_str().unwrap(), "-r", "0-9"],
    );
    assert_eq!(r.status, 206);
    let index = std::fs::read(site_dir().join("index.html")).unwrap();
    assert_eq!(r.body, &index[..10]);
}

/// Plain HTTP answers 301 to the same path and query on HTTPS, without HSTS.
fn check_redirect(http_base: &str) {
    let r = curl(&format!("{http_base}/docs/?from=plain"), &[]);
    assert_eq!(r.status, 301, "the plain-HTTP redirect");
    assert_eq!(
        r.header("location"),
        Some(format!("https://127.0.0.1:{HTTPS_PORT}/docs/?from=plain").as_str())
    );
    assert_eq!(
        r.header("strict-transport-security"),
        None,
        "no HSTS over HTTP"
    );
}

/// `openssl s_client` with `args` against `addr`; its whole output.
fn s_client(addr: &str, args: &[&str]) -> String {
    s_client_with(addr, &cert(), args)
}

/// `openssl s_client` trusting `ca` with `args` against `addr`; its whole output.
fn s_client_with(addr: &str, ca: &Path, args: &[&str]) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-CAfile"])
        .arg(ca)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/setup.sh installs it)");
    // A request, so that the TLS 1.3 tickets arrive before the client closes.
    let _ = child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"HEAD / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let start = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("s_client output");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn check_tls(addr: &str) {
    let out = s_client(
        addr,
        &["-tls1_3", "-alpn", "http/1.1", "-servername", "localhost"],
    );
    assert!(
        out.contains("New, TLSv1.3, Cipher is TLS_AES_128_GCM_SHA256"),
        "{out}"
    );
    assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client(addr, &["-tls1_2", "-reconnect"]);
    assert!(out.contains("Protocol  : TLSv1.2"), "{out}");
    assert!(out.contains("Cipher    : ECDHE-ECDSA-"), "{out}");
    assert!(
        out.contains("Reused, TLSv1.2"),
        "resumption with a ticket: {out}"
    );
    // A client offering only another protocol is refused.
    let out = s_client(addr, &["-tls1_3", "-alpn", "h2"]);
    assert!(out.contains("no application protocol"), "{out}");
    // TLS 1.1 is not spoken.
    let out = s_client(addr, &["-tls1_1"]);
    assert!(
        out.contains("Cipher is (NONE)") && out.contains("no peer certificate available"),
        "{out}"
    );
}

/// TLS 1.3 and 1.2 both negotiated and verified against `ca` (SNI `localhost`).
fn check_tls_with(addr: &str, ca: &Path) {
    for (version, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let out = s_client_with(addr, ca, &[version, "-servername", "localhost"]);
        assert!(out.contains(&format!("New, {name}, Cipher is ")), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    }
}

#[test]
fn https_website_as_a_unix_process() {
    let binary = build_appliance("https-website", &[]);
    let app = Running::start(&binary, &[]);
    let https: SocketAddr = format!("127.0.0.1:{HTTPS_PORT}").parse().unwrap();
    wait_for_port(https, Duration::from_secs(10));
    wait_for_port(
        format!("127.0.0.1:{HTTP_PORT}").parse().unwrap(),
        Duration::from_secs(10),
    );
    check_site(&format!("https://127.0.0.1:{HTTPS_PORT}"));
    check_site(&format!("https://localhost:{HTTPS_PORT}"));
    check_redirect(&format!("http://127.0.0.1:{HTTP_PORT}"));
    check_tls(&https.to_string());
    drop(app);
}

#[test]
fn https_website_as_a_pvh_image_under_qemu() {
    let image = build_kernel("https-website");
    // The generated QEMU arguments attach the virtio-rng device that seeds the keys.
    let qemu_file = kernel_target_dir().join("release/https-website.qemu");
    let spec = std::fs::read_to_string(&qemu_file).expect("the generated .qemu");
    assert!(spec.contains("-device\nvirtio-rng-pci\n"), "{spec}");
    assert!(
        spec.contains(&format!("# listen https://127.0.0.1:{HTTPS_PORT}/\n")),
        "{spec}"
    );
    assert!(
        spec.contains(&format!("# listen http://127.0.0.1:{HTTP_PORT}/\n")),
        "{spec}"
    );

    // QEMU's default CPU under TCG has no RDRAND: the keys are seeded from virtio-rng.
    let (https_host, http_host) = (free_port(), free_port());
    let netdev = format!(
        "user,id=n0,hostfwd=tcp:127.0.0.1:{https_host}-:{HTTPS_PORT},hostfwd=tcp:127.0.0.1:{http_host}-:{HTTP_PORT}"
    );
    let mut qemu = Qemu::boot(
        &image,
        "32M",
        &[
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-rng-pci",
        ],
    );
    let console = qemu.wait_for("serving", Duration::from_secs(90));
    assert!(
        console.contains("entropy: seeded from virtio-rng"),
        "{console}"
    );
    let http: SocketAddr = format!("127.0.0.1:{http_host}").parse().unwrap();
    // slirp accepts before the guest listens: poll the plain side until it answers.
    let start = Instant::now();
    while !raw_exchange(
        http,
        b"HEAD / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        Duration::from_millis(500),
    )
    .starts_with(b"HTTP/1.1 301")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the kernel never answered; console:\n{}",
            qemu.serial()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    check_site(&format!("https://127.0.0.1:{https_host}"));
    // Behind port forwarding the redirect names the appliance's own HTTPS port.
    check_redirect(&format!("http://127.0.0.1:{http_host}"));
    check_tls(&format!("127.0.0.1:{https_host}"));
}

/// curl `args` `url` inside namespace `ns`, parsed (curl must succeed).
fn curl_in(ns: &Netns, url: &str, args: &[&str]) -> Reply {
    let dir = morgana_tests::target_dir().join(format!("curl-ns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (head, body) = (dir.join("head"), dir.join("body"));
    let (head_s, body_s) = (head.to_str().unwrap(), body.to_str().unwrap());
    let mut argv = vec![
        "curl",
        "-s",
        "-S",
        "--max-time",
        "20",
        "-D",
        head_s,
        "-o",
        body_s,
    ];
    argv.extend(args);
    argv.push(url);
    let out = ns.exec(&argv);
    assert!(
        out.status.success(),
        "curl {args:?} {url} in {}: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    let reply = morgana_tests::parse_reply(
        &std::fs::read_to_string(&head).expect("curl wrote the head"),
        std::fs::read(&body).unwrap_or_default(),
    );
    let _ = std::fs::remove_dir_all(&dir);
    reply
}

/// The HTTPS kernel on a tap: QEMU runs inside a network namespace of this test, its
/// virtio-net on a tap there (host side 10.97.0.1/24, the kernel 10.97.0.2 from the
/// command line: no DHCP, no port forwarding), and the clients run in the namespace
/// too: every file over HTTPS with the appliance's certificate, TLS 1.3 and 1.2, the
/// redirect from plain HTTP. One boot.
#[test]
fn https_website_as_a_pvh_image_on_a_tap() {
    for tool in ["qemu-system-x86_64", "ip", "curl", "openssl"] {
        if !have(tool) {
            let why = format!("{tool} is not installed (scripts/setup.sh installs it)");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
            eprintln!("skipped: {why}");
            return;
        }
    }
    let image = build_kernel("https-website");
    let pid = std::process::id();
    let tap = format!("mtls{}", pid % 10_000_000);
    let ns = Netns::new(format!("morgana-tls-{pid}"));
    ns.exec_ok(&["ip", "tuntap", "add", "dev", &tap, "mode", "tap"]);
    ns.exec_ok(&["ip", "addr", "add", "10.97.0.1/24", "dev", &tap]);
    ns.exec_ok(&["ip", "link", "set", &tap, "up"]);
    let serial = morgana_tests::target_dir().join(format!("tls-tap-serial-{pid}"));
    let _ = std::fs::remove_file(&serial);
    let netdev = format!("tap,id=n0,ifname={tap},script=no,downscript=no");
    let serial_arg = format!("file:{}", serial.display());
    let qemu = ns
        .command(&[
            "qemu-system-x86_64",
            "-accel",
            "tcg",
            "-m",
            "32M",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
            "-serial",
            &serial_arg,
            "-netdev",
            &netdev,
            "-device",
            "virtio-net-pci,netdev=n0",
            "-device",
            "virtio-rng-pci",
            "-append",
            "--ipv4=10.97.0.2/24",
            "-kernel",
            image.to_str().expect("utf-8 path"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("qemu-system-x86_64 runs in the namespace");
    // `ip netns exec` execs QEMU: the child is QEMU itself.
    let _qemu = morgana_tests::scratch::Guard(Some(qemu));
    let console =
        || String::from_utf8_lossy(&std::fs::read(&serial).unwrap_or_default()).into_owned();
    let start = Instant::now();
    while !console().contains("serving") {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the kernel did not start serving; console:\n{}",
            console()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The ARP and the first SYN may meet a kernel still setting up: retry the plain side.
    let start = Instant::now();
    loop {
        let out = ns.exec(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            &format!("http://10.97.0.2:{HTTP_PORT}/"),
        ]);
        if String::from_utf8_lossy(&out.stdout) == "301" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no answer on the tap; console:\n{}",
            console()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The certificate names localhost: resolve it to the kernel's address.
    let resolve = format!("localhost:{HTTPS_PORT}:10.97.0.2");
    let cacert = cert();
    let tls = ["--cacert", cacert.to_str().unwrap(), "--resolve", &resolve];
    let files = files_below(&site_dir());
    assert!(files.len() >= 5, "the site has its files: {files:?}");
    for (key, path) in &files {
        let r = curl_in(&ns, &format!("https://localhost:{HTTPS_PORT}/{key}"), &tls);
        assert_eq!(r.status, 200, "GET /{key} over the tap");
        assert_eq!(
            r.body,
            std::fs::read(path).expect("site file"),
            "GET /{key}"
        );
        assert_eq!(
            r.header("strict-transport-security"),
            Some("max-age=31536000")
        );
    }
    // curl held to each version in turn.
    for (min, max) in [("--tlsv1.3", "1.3"), ("--tlsv1.2", "1.2")] {
        let mut args = tls.to_vec();
        args.extend([min, "--tls-max", max]);
        let r = curl_in(
            &ns,
            &format!("https://localhost:{HTTPS_PORT}/index.html"),
            &args,
        );
        assert_eq!(r.status, 200, "curl with TLS {max}");
        assert_eq!(
            r.body,
            std::fs::read(site_dir().join("index.html")).unwrap()
        );
    }
    for (flag, name) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let mut c = ns.command(&[
            "openssl",
            "s_client",
            "-connect",
            &format!("10.97.0.2:{HTTPS_PORT}"),
            "-servername",
            "localhost",
            "-verify_hostname",
            "localhost",
            "-CAfile",
            cacert.to_str().unwrap(),
            flag,
        ]);
        let out = c
            .stdin(Stdio::null())
            .output()
            .expect("openssl s_client runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&format!("New, {name}, Cipher is ")), "{text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    }
    let r = curl_in(&ns, &format!("http://10.97.0.2:{HTTP_PORT}/docs/?x=1"), &[]);
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        Some(format!("https://10.97.0.2:{HTTPS_PORT}/docs/?x=1").as_str())
    );
    let _ = std::fs::remove_file(&serial);
}

/// (offset, size) of `section` in the ELF file `image`, if it has one.
fn section(image: &Path, section: &str) -> Option<(usize, usize)> {
    let out = Command::new("readelf")
        .args(["-W", "-S"])
        .arg(image)
        .output()
        .expect("readelf (binutils, scripts/setup.sh)");
    assert!(out.status.success(), "readelf {}", image.display());
    let table = String::from_utf8_lossy(&out.stdout);
    let line = table.lines().find(|l| {
        l.split(']')
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            == Some(section)
    })?;
    // `[Nr] Name Type Address Off Size ...`
    let fields: Vec<&str> = line.split(']').nth(1)?.split_whitespace().collect();
    let offset = usize::from_str_radix(fields[3], 16).ok()?;
    let size = usize::from_str_radix(fields[4], 16).ok()?;
    Some((offset, size))
}

fn positions(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// The key's bytes appear once, inside `.morgana.secrets`; no other PEM private key
/// is anywhere in the image.
fn key_only_in_secrets(image: &Path, key: &[u8]) {
    let bytes = std::fs::read(image).expect("image");
    let (offset, size) = section(image, ".morgana.secrets")
        .unwrap_or_else(|| panic!("{} has no .morgana.secrets", image.display()));
    let at = positions(&bytes, key);
    assert_eq!(
        at.len(),
        1,
        "{}: the key appears {} times",
        image.display(),
        at.len()
    );
    assert!(
        at[0] >= offset && at[0] + key.len() <= offset + size,
        "{}: the key lies at {:#x}, outside .morgana.secrets ({offset:#x}+{size:#x})",
        image.display(),
        at[0]
    );
    for pem in positions(&bytes, b"PRIVATE KEY-----") {
        assert!(
            pem >= offset && pem < offset + size,
            "{}: a PEM private key marker at {pem:#x}, outside .morgana.secrets",
            image.display()
        );
    }
    // The key's base64 body, line by line: no line of it anywhere else either.
    let text = String::from_utf8_lossy(key);
    for line in text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        for p in positions(&bytes, line.as_bytes()) {
            assert!(
                p >= offset && p < offset + size,
                "{}: key text outside",
                image.display()
            );
        }
    }
}

/// A build without a `Secrets` device: no section, no PEM private key, no byte of the key.
fn no_key_material(image: &Path, key: &[u8]) {
    let bytes = std::fs::read(image).expect("image");
    assert_eq!(
        section(image, ".morgana.secrets"),
        None,
        "{}",
        image.display()
    );
    assert!(
        positions(&bytes, b"PRIVATE KEY").is_empty(),
        "{}",
        image.display()
    );
    let text = String::from_utf8_lossy(key);
    for line in text
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(
            positions(&bytes, line.as_bytes()).is_empty(),
            "{}: holds key text",
            image.display()
        );
    }
}

#[test]
fn the_private_key_lies_only_in_the_secrets_section() {
    let unix = build_appliance("https-website", &[]);
    let kernel = build_kernel("https-website");
    let key = std::fs::read(appliance_dir().join("secrets/tls.key")).expect("the key");
    key_only_in_secrets(&unix, &key);
    key_only_in_secrets(&kernel, &key);
    // The same site without TLS: nothing of the key, no section.
    no_key_material(&build_appliance("static-website", &[]), &key);
    no_key_material(&build_kernel("static-website"), &key);
    // The section holds the two secrets and nothing else.
    let (_, size) = section(&kernel, ".morgana.secrets").unwrap();
    let cert_len = std::fs::metadata(cert()).unwrap().len() as usize;
    assert!(
        size >= key.len() + cert_len && size < key.len() + cert_len + 64,
        "{size} bytes for a {}-byte key and a {cert_len}-byte certificate",
        key.len()
    );
}

/// A self-signed P-256 certificate for localhost and 127.0.0.1 and its key, made now in
/// `dir` (`tls.crt`, `tls.key`).
fn make_cert(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            "tls.key",
            "-out",
            "tls.crt",
        ])
        .output()
        .expect("openssl is installed (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `binary` with `MORGANA_SECRETS_DIR` set to `dir` (or unset) until it exits
/// (bounded); its status and stderr.
fn run_to_exit(binary: &Path, dir: Option<&Path>) -> (std::process::ExitStatus, String) {
    let mut cmd = Command::new(binary);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("MORGANA_SECRETS_DIR");
    if let Some(d) = dir {
        cmd.env("MORGANA_SECRETS_DIR", d);
    }
    let mut child = cmd.spawn().expect("the appliance starts");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("the appliance kept running with bad secrets");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    use std::io::Read;
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err);
    (status, err)
}

/// `Secrets(from: Boot)`: one binary, the certificate and key given at start through
/// `MORGANA_SECRETS_DIR` (a pair made now, not the one the build checked); a missing
/// or malformed key stops it with the fix, never a byte of the key.
#[test]
fn https_website_with_secrets_given_at_start() {
    let pid = std::process::id();
    let (https_port, http_port) = (free_port(), free_port());
    let dir = morgana_tests::scratch::scratch_appliance(
        "https-website",
        &format!("https-boot-{pid}"),
        |ron| {
            let edited = ron
                .replace(
                    r#""secrets": Secrets(files: ["secrets/tls.crt", "secrets/tls.key"]),"#,
                    r#""secrets": Secrets(files: ["secrets/tls.crt", "secrets/tls.key"], from: Boot, boot_dir: "/nonexistent"),"#,
                )
                .replace("../static-website/htdocs", "htdocs")
                .replace("port: 8443", &format!("port: {https_port}"))
                .replace("port: 8081", &format!("port: {http_port}"));
            assert!(edited.contains("from: Boot") && edited.contains(&https_port.to_string()));
            edited
        },
    );
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(site_dir())
            .arg(dir.join("htdocs"))
            .status()
            .expect("cp")
            .success()
    );
    let target = morgana_tests::scratch_target();
    morgana_tests::scratch::build(&dir, &target, false);
    let binary = target.join("release/https-website");

    // Nothing at boot_dir and no MORGANA_SECRETS_DIR: stops, naming the fix.
    let (status, err) = run_to_exit(&binary, None);
    assert!(!status.success());
    assert!(
        err.contains("morgana: secrets: no secret `secrets/tls.crt`: /nonexistent/secrets/tls.crt: open secret: ")
            && err.contains("help: the directory is `boot_dir` of appliance.ron ($MORGANA_SECRETS_DIR is not set): put the file there, set MORGANA_SECRETS_DIR to the directory that holds `secrets/tls.crt`, or compile the secrets in (`Secrets(from: Build)` in appliance.ron)"),
        "{err}"
    );

    // A malformed key: refused at start, the key's bytes never shown.
    let bad = morgana_tests::target_dir().join(format!("boot-secrets-bad-{pid}"));
    make_cert(&bad.join("secrets"));
    let garbage =
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END PRIVATE KEY-----\n";
    std::fs::write(bad.join("secrets/tls.key"), garbage).unwrap();
    let (status, err) = run_to_exit(&binary, Some(&bad));
    assert!(!status.success());
    assert!(
        err.contains("morgana: tls: certificate 0: the private key is not ECDSA P-256")
            && !err.contains("bm90IGEga2V5"),
        "{err}"
    );

    // A fresh pair at start: served, and trusted with exactly that certificate.
    let good = morgana_tests::target_dir().join(format!("boot-secrets-{pid}"));
    make_cert(&good.join("secrets"));
    let child = Command::new(&binary)
        .env("MORGANA_SECRETS_DIR", &good)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the appliance starts");
    let guard = morgana_tests::scratch::Guard(Some(child));
    let addr: SocketAddr = format!("127.0.0.1:{https_port}").parse().unwrap();
    wait_for_port(addr, Duration::from_secs(10));
    let cacert = good.join("secrets/tls.crt");
    let r = curl(
        &format!("https://localhost:{https_port}/index.html"),
        &["--cacert", cacert.to_str().unwrap()],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        std::fs::read(site_dir().join("index.html")).unwrap()
    );
    check_tls_with(&addr.to_string(), &cacert);
    // The development certificate the build checked is not the one served: curl
    // refuses the peer (exit 60, "SSL certificate problem").
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "--max-time", "10", "--cacert"])
        .arg(dir.join("secrets/tls.crt"))
        .arg(format!("https://localhost:{https_port}/"))
        .output()
        .expect("curl");
    assert_eq!(out.status.code(), Some(60), "{out:?}");
    drop(guard);
    let _ = std::fs::remove_dir_all(&bad);
    let _ = std::fs::remove_dir_all(&good);
    let _ = std::fs::remove_dir_all(&dir);
}
