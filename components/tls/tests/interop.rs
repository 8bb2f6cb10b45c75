//! The TLS component against real clients: `examples/https.rs` (a Morgana Unix process:
//! HTTP over TLS over the host's sockets) driven by curl, `openssl s_client` and
//! testssl.sh, with certificates that openssl makes at test time (nothing secret is
//! committed).
//!
//! Needs `openssl`, `curl` and `testssl` (`scripts/setup.sh` installs them). Without one,
//! a test fails when `CI=true` and is skipped with a message otherwise.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("workspace root")
}

/// Whether `program` is on the PATH; without it the test fails on CI and is skipped
/// (with the reason printed) elsewhere.
fn need(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{program} is missing (scripts/setup.sh installs it)"
        );
        eprintln!("skipping: {program} is missing (scripts/setup.sh installs it)");
    }
    found
}

/// Builds the example once (release: the handshakes are real cryptography) in
/// `target/e2e`, the release directory of the end-to-end tests: not the outer cargo's, so
/// it never waits for that one's lock, and the cryptography the HTTPS appliances compiled
/// there is reused rather than compiled once more.
fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = workspace().join("target").join("e2e");
        let status = Command::new(env!("CARGO"))
            .current_dir(workspace())
            .args([
                "rustc",
                "--release",
                "-p",
                "morgana-tls",
                "--example",
                "https",
            ])
            .args(["--features", "example"])
            .env("CARGO_TARGET_DIR", &target)
            // Warnings are errors here: the workspace's clippy run does not see the
            // example (it needs the `example` feature).
            .args(["--", "-D", "warnings"])
            .status()
            .expect("running cargo");
        assert!(status.success(), "building the https example failed");
        target.join("release").join("examples").join("https")
    })
}

/// Test certificates, made by openssl: a P-256 CA; `ec` (P-256, localhost and
/// 127.0.0.1), `rsa` (RSA 2048, localhost), `other` (P-256, other.test). Valid for a
/// year, with a CRL distribution point (testssl asks for revocation information).
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn get() -> &'static Certs {
        static CERTS: OnceLock<Certs> = OnceLock::new();
        CERTS.get_or_init(|| {
            let dir = workspace()
                .join("target")
                .join("tls-interop")
                .join(format!("certs-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let sh = |script: &str| {
                let out = Command::new("sh")
                    .args(["-ec", script])
                    .current_dir(&dir)
                    .output()
                    .expect("running openssl");
                assert!(
                    out.status.success(),
                    "openssl failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            sh("openssl ecparam -name prime256v1 -genkey -noout -out ca.key
                openssl req -x509 -new -key ca.key -sha256 -days 365 -subj '/CN=Morgana Test CA' -out ca.pem");
            for (name, keygen, san) in [
                ("ec", "openssl ecparam -name prime256v1 -genkey -noout -out ec.key", "DNS:localhost,IP:127.0.0.1"),
                ("rsa", "openssl genrsa -out rsa.key 2048", "DNS:localhost"),
                ("other", "openssl ecparam -name prime256v1 -genkey -noout -out other.key", "DNS:other.test"),
            ] {
                sh(&format!(
                    "{keygen} 2>/dev/null
                     openssl req -new -key {name}.key -subj '/CN={name}' -out {name}.csr
                     printf 'subjectAltName={san}\\nbasicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\nextendedKeyUsage=serverAuth\\ncrlDistributionPoints=URI:http://crl.invalid/ca.crl\\n' > {name}.ext
                     openssl x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365 -sha256 -extfile {name}.ext -out {name}.pem 2>/dev/null"
                ));
            }
            Certs { dir }
        })
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

/// A running `https` example, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(certs: &[&str], extra: &[&str]) -> Server {
        let c = Certs::get();
        let mut cmd = Command::new(server_binary());
        for name in certs {
            cmd.args(["--cert", &c.path(&format!("{name}.pem"))]);
            cmd.args(["--key", &c.path(&format!("{name}.key"))]);
        }
        let mut child = cmd
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the https example");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("VmRSS")
    }

    fn assert_alive(&mut self) {
        assert!(
            self.child.try_wait().unwrap().is_none(),
            "the server exited"
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl(port: u16, path: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "20", "--cacert"])
        .arg(Certs::get().path("ca.pem"))
        .args(extra)
        .arg(format!("https://localhost:{port}{path}"))
        .output()
        .expect("running curl");
    assert!(
        out.status.success(),
        "curl {path} {extra:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs `openssl s_client` with `args`; stdin is held open for `hold` so that tickets
/// sent after the handshake arrive. Returns stdout and stderr together.
fn s_client(port: u16, args: &[&str], hold: Duration) -> String {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
        ])
        .arg(Certs::get().path("ca.pem"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl s_client");
    let stdin = child.stdin.take().unwrap();
    std::thread::sleep(hold);
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text
}

fn bench_file(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn curl_and_openssl_are_served_every_version_name_and_resumption() {
    if !(need("openssl") && need("curl")) {
        return;
    }
    let server = Server::start(&["ec", "rsa", "other"], &[]);
    let port = server.port();
    let site = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/site");

    // Every file byte for byte, over TLS 1.3 and TLS 1.2.
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("/", std::fs::read(site.join("index.html")).unwrap()),
        (
            "/css/site.css",
            std::fs::read(site.join("css/site.css")).unwrap(),
        ),
        ("/bench/600.txt", bench_file(600)),
        ("/bench/100k.txt", bench_file(102_400)),
    ];
    for version in [&["--tlsv1.3"][..], &["--tlsv1.2", "--tls-max", "1.2"][..]] {
        for (path, expected) in &files {
            assert!(
                curl(port, path, version) == *expected,
                "{path} over {version:?}"
            );
        }
    }

    // Versions, ALPN, the chain checked against the CA.
    for (flag, protocol) in [("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")] {
        let out = s_client(
            port,
            &[flag, "-servername", "localhost", "-alpn", "http/1.1"],
            Duration::ZERO,
        );
        // `New, <version>, Cipher is ..` is printed once the handshake is done; the
        // `Protocol  :` line of a TLS 1.3 session only with a ticket, which races with
        // s_client's exit when its stdin closes at once.
        assert!(
            out.contains(&format!("New, {protocol}, Cipher is")),
            "{flag}: {out}"
        );
        assert!(out.contains("Verify return code: 0 (ok)"), "{flag}: {out}");
        assert!(out.contains("ALPN protocol: http/1.1"), "{flag}: {out}");
        assert!(out.contains("Peer signature type: ECDSA"), "{flag}: {out}");
    }

    // SNI: each name gets its certificate; a client that can only check RSA signatures
    // gets the RSA one for the same name.
    let out = s_client(
        port,
        &[
            "-tls1_3",
            "-servername",
            "other.test",
            "-verify_hostname",
            "other.test",
        ],
        Duration::ZERO,
    );
    assert!(out.contains("subject=CN = other"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let out = s_client(
        port,
        &[
            "-tls1_2",
            "-servername",
            "localhost",
            "-sigalgs",
            "RSA-PSS+SHA256:RSA+SHA256",
        ],
        Duration::ZERO,
    );
    assert!(out.contains("subject=CN = rsa"), "{out}");
    assert!(out.contains("Peer signature type: RSA"), "{out}");
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    // Key exchange groups and ciphers.
    let out = s_client(
        port,
        &[
            "-tls1_3",
            "-groups",
            "P-256",
            "-ciphersuites",
            "TLS_CHACHA20_POLY1305_SHA256",
        ],
        Duration::ZERO,
    );
    assert!(out.contains("Server Temp Key: ECDH, prime256v1"), "{out}");
    assert!(out.contains("TLS_CHACHA20_POLY1305_SHA256"), "{out}");
    let out = s_client(
        port,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-GCM-SHA384"],
        Duration::ZERO,
    );
    assert!(
        out.contains("Cipher is ECDHE-ECDSA-AES256-GCM-SHA384"),
        "{out}"
    );

    // Resumption. TLS 1.2: `-reconnect` reuses the ticket. TLS 1.3: `-reconnect` in
    // OpenSSL 3.0's s_client closes before reading the tickets (nginx shows the same),
    // so the session goes out to a file and comes back.
    let out = s_client(
        port,
        &["-tls1_2", "-reconnect", "-servername", "localhost"],
        Duration::ZERO,
    );
    assert!(out.contains("Reused, TLSv1.2"), "{out}");
    let sess = Certs::get().path("session.pem");
    let out = s_client(
        port,
        &["-tls1_3", "-sess_out", &sess, "-servername", "localhost"],
        Duration::from_millis(500),
    );
    assert!(out.contains("New, TLSv1.3"), "{out}");
    let out = s_client(
        port,
        &["-tls1_3", "-sess_in", &sess, "-servername", "localhost"],
        Duration::ZERO,
    );
    assert!(out.contains("Reused, TLSv1.3"), "{out}");

    // Refused: old versions, weak suites, an ALPN the server does not speak.
    for args in [
        &["-tls1_1"][..],
        &["-tls1"][..],
        &["-tls1_2", "-cipher", "AES128-SHA"][..],
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"][..],
    ] {
        let out = s_client(port, args, Duration::ZERO);
        assert!(
            out.contains("Cipher is (NONE)") && !out.contains("New, TLS"),
            "{args:?} was accepted: {out}"
        );
        assert!(
            out.contains("alert")
                || out.contains("no protocols available")
                || out.contains("no cipher"),
            "{args:?}: {out}"
        );
    }
    let out = s_client(port, &["-tls1_3", "-alpn", "h2"], Duration::ZERO);
    assert!(
        out.contains("alert number 120") || out.contains("no application protocol"),
        "{out}"
    );

    // close_notify: the server ends its answer with one (curl would complain otherwise,
    // and s_client prints the alert it read).
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'GET /css/site.css HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | openssl s_client -connect 127.0.0.1:{port} -CAfile {} -servername localhost -ign_eof -msg 2>&1",
            Certs::get().path("ca.pem")
        ))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("200 OK") && out.contains("font-family"),
        "{out}"
    );
    assert!(out.contains("close_notify"), "no close_notify seen: {out}");
}

#[test]
fn testssl_finds_nothing_worse_than_low() {
    if !(need("openssl") && need("testssl")) {
        return;
    }
    let server = Server::start(&["ec", "rsa"], &[]);
    let json = Certs::get().path(&format!("testssl-{}.json", server.port()));
    let _ = std::fs::remove_file(&json);
    // Protocols, cipher categories, forward secrecy, server preferences, server defaults
    // (certificates) and every vulnerability check except BREACH, which is about HTTP
    // compression of pages that mix secrets with attacker input (a static site has
    // neither); HTTP headers (-h) are the HTTP component's business, not TLS's.
    let started = Instant::now();
    let out = Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--warnings",
            "off",
            "--ip",
            "127.0.0.1",
        ])
        .args([
            "-p", "-s", "-f", "-P", "-S", "-H", "-I", "-T", "-BB", "-R", "-C", "-O", "-Z", "-W",
            "-A", "-L", "-F", "-J", "-D", "-4",
        ])
        .args([
            "--add-ca",
            &Certs::get().path("ca.pem"),
            "--jsonfile",
            &json,
        ])
        .arg(format!("https://localhost:{}/", server.port()))
        .output()
        .expect("running testssl");
    let text = String::from_utf8_lossy(&out.stdout);
    let findings =
        std::fs::read_to_string(&json).unwrap_or_else(|_| panic!("no JSON from testssl: {text}"));
    let mut worse = Vec::new();
    let mut summary = String::new();
    // One finding per object: {"id": .., "severity": .., "finding": ..}. A tiny scanner
    // rather than a JSON dependency: the file is testssl's flat list.
    for object in findings.split('}') {
        let field = |name: &str| {
            let key = format!("\"{name}\"");
            let at = object.find(&key)? + key.len();
            let rest = object[at..]
                .trim_start()
                .strip_prefix(':')?
                .trim_start()
                .strip_prefix('"')?;
            Some(rest[..rest.find('"')?].to_string())
        };
        let (Some(id), Some(severity), Some(finding)) =
            (field("id"), field("severity"), field("finding"))
        else {
            continue;
        };
        if !matches!(severity.as_str(), "OK" | "INFO" | "DEBUG" | "LOW" | "WARN") {
            worse.push(format!("{severity} {id}: {finding}"));
        }
        if matches!(
            id.as_str(),
            "SSLv2"
                | "SSLv3"
                | "TLS1"
                | "TLS1_1"
                | "TLS1_2"
                | "TLS1_3"
                | "FS"
                | "cipher_order"
                | "heartbleed"
                | "CCS"
                | "ROBOT"
                | "secure_renego"
                | "secure_client_renego"
                | "CRIME_TLS"
                | "POODLE_SSL"
                | "fallback_SCSV"
                | "SWEET32"
                | "BEAST"
                | "LUCKY13"
                | "FREAK"
                | "LOGJAM"
                | "DROWN"
                | "RC4"
        ) {
            summary.push_str(&format!("  {id:22} {severity:8} {finding}\n"));
        }
    }
    println!(
        "testssl summary ({} s):\n{summary}",
        started.elapsed().as_secs()
    );
    assert!(summary.contains("TLS1_3"), "testssl tested nothing: {text}");
    assert!(
        worse.is_empty(),
        "testssl findings worse than LOW:\n{}",
        worse.join("\n")
    );
}

/// A ClientHello cut short: a record header announcing 512 bytes and only the first few.
const PARTIAL_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
];

#[test]
fn hostile_clients_get_an_alert_or_a_close_and_real_clients_are_still_served() {
    if !(need("openssl") && need("curl")) {
        return;
    }
    let mut server = Server::start(
        &["ec"],
        &[
            "--handshake-timeout-ms",
            "3000",
            "--max-connections",
            "2048",
        ],
    );
    let port = server.port();
    let idle_rss = server.rss_kib();

    // Garbage: a fatal alert (content type 21), then the server closes.
    let mut garbage = TcpStream::connect(server.addr).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = garbage.read_to_end(&mut answer);
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "no alert for plaintext HTTP: {answer:?}"
    );

    // A record longer than TLS allows: alert and close.
    let mut huge = TcpStream::connect(server.addr).unwrap();
    huge.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    huge.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff]).unwrap();
    let mut answer = Vec::new();
    let _ = huge.read_to_end(&mut answer);
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "no alert for an oversized record: {answer:?}"
    );

    // A thousand half-open handshakes, each a truncated ClientHello.
    let mut half_open = Vec::new();
    for _ in 0..1000 {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(PARTIAL_HELLO).unwrap();
        half_open.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    server.assert_alive();
    // Real clients are still served meanwhile.
    let page = curl(port, "/bench/600.txt", &[]);
    assert_eq!(page, bench_file(600));
    let out = s_client(port, &["-tls1_2"], Duration::ZERO);
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let loaded_rss = server.rss_kib();
    let per_connection = (loaded_rss.saturating_sub(idle_rss)) * 1024 / 1000;
    println!(
        "RSS idle {idle_rss} KiB, with 1000 half-open handshakes {loaded_rss} KiB: {per_connection} B each"
    );
    assert!(
        per_connection < 48 * 1024,
        "{per_connection} bytes per half-open handshake"
    );

    // The handshake timeout closes them all.
    let deadline = Instant::now() + Duration::from_secs(15);
    for s in &mut half_open {
        s.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(10)),
        ))
        .unwrap();
        let mut buf = [0u8; 64];
        // A blocking read with a timeout (SO_RCVTIMEO) fails with EINTR when the test
        // process is stopped and continued (signal(7)), even without a handler: retry it.
        let read = loop {
            match s.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        match read {
            Ok(0) => {}
            Ok(_) => {} // an alert, then the close
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "a half-open handshake was not closed: {e}"
            ),
        }
    }
    assert!(
        Instant::now() < deadline,
        "half-open handshakes outlived the timeout"
    );
    drop(half_open);

    // A client that stops in the middle of the handshake, after its ClientHello: the
    // server answers, then closes at the timeout.
    let mut stalled = TcpStream::connect(server.addr).unwrap();
    let hello = client_hello();
    stalled.write_all(&hello).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stalled.read_to_end(&mut answer);
    assert_eq!(answer.first(), Some(&0x16), "no ServerHello: {answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stalled handshake was not closed"
    );

    // Still serving.
    assert_eq!(curl(port, "/bench/100k.txt", &[]), bench_file(102_400));
    server.assert_alive();
}

/// A real ClientHello, captured from `openssl s_client` through a local listener.
fn client_hello() -> Vec<u8> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_3",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut hello = vec![0u8; 5];
    s.read_exact(&mut hello).unwrap();
    let len = usize::from(u16::from_be_bytes([hello[3], hello[4]]));
    hello.resize(5 + len, 0);
    s.read_exact(&mut hello[5..]).unwrap();
    drop(s);
    let mut child = child;
    let _ = child.kill();
    let _ = child.wait();
    hello
}
