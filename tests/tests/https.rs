//! The HTTPS website (appliances/https-website) end to end: as a Unix process and as a
//! PVH image under QEMU (one boot), checked with real clients — curl (every file byte
//! for byte, status codes, the redirect from plain HTTP, HSTS) and `openssl s_client`
//! (TLS 1.3 and 1.2, ALPN, SNI, resumption) — and the images themselves: the private key
//! lies only inside `.morgana.secrets`, and a build without `Secrets` carries no key
//! material at all.
//!
//! The certificate is the appliance's development certificate, made by its build script
//! with openssl when `secrets/` is empty (never committed).

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
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", addr, "-CAfile"])
        .arg(cert())
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
